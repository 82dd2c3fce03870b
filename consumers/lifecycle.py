"""What people (and the scheduler) do to tasks: acknowledge, finish, cancel, escalate.

Each function runs in its own transaction, records history, and returns the task event to
publish once the change is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from consumers.tasks import close, enqueue, history, task_event, utc
from infra.database import session_scope
from infra.models.hubs import Staff
from infra.models.tasks import ACTIVE_STATUSES, UNROUTED, Task, TaskHistory, TaskStatus
from schemas.common import Severity, StaffRole
from schemas.outputs import TaskEvent


class TaskError(ValueError):
    """The change is not allowed (unknown task, or a state it cannot move from)."""


def _load(session: Session, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise TaskError(f"no task {task_id}")
    return task


def acknowledge(engine: Engine, task_id: str, by: str, now: datetime) -> TaskEvent:
    now = utc(now)
    with session_scope(engine) as session:
        task = _load(session, task_id)
        if task.status != TaskStatus.OPEN.value:
            raise TaskError(f"task {task_id} is {task.status}; only open tasks can be acknowledged")
        task.status, task.acknowledged_at, task.acknowledged_by = (
            TaskStatus.ACKNOWLEDGED.value, now, by
        )
        task.updated_at = now
        session.add(task)
        history(session, task, "acknowledged", by, now)
        event = task_event(task, "task.acknowledged", now, by, f"ack|{now.isoformat()}")
        enqueue(session, [event], now)
        return event


def finish(
    engine: Engine, task_id: str, by: str, now: datetime, status: TaskStatus,
    reason: str | None = None,
) -> TaskEvent:
    """Mark a task done or cancelled (with the reason)."""
    if status not in (TaskStatus.DONE, TaskStatus.CANCELLED):
        raise TaskError(f"cannot finish a task as {status}")
    now = utc(now)
    with session_scope(engine) as session:
        task = _load(session, task_id)
        if task.status not in ACTIVE_STATUSES:
            raise TaskError(f"task {task_id} is already {task.status}")
        text = reason or ("done" if status is TaskStatus.DONE else "cancelled")
        close(session, task, status, by, now, text)
        kind = "task.done" if status is TaskStatus.DONE else "task.cancelled"
        event = task_event(task, kind, now, by, f"{status.value}|{now.isoformat()}")
        enqueue(session, [event], now)
        return event


def lead_staff(session: Session, hub_code: str | None, role: StaffRole) -> str | None:
    if hub_code is None:
        return None
    row = session.exec(
        select(Staff).where(Staff.hub_code == hub_code, Staff.role == role.value, Staff.lead,
                            Staff.active)
    ).first()
    return row.staff_id if row else None


ESCALATOR = "scheduler"


def escalate_due(engine: Engine, now: datetime, window: timedelta) -> list[TaskEvent]:
    """Escalate every urgent task still open ``window`` after it became urgent to its hub
    manager. Each escalation happens once: the update claims the task only while
    ``escalated_at`` is still empty, so two schedulers racing cannot both escalate it."""
    now = utc(now)
    cutoff = now - window
    events: list[TaskEvent] = []
    with Session(engine, expire_on_commit=False) as session:
        candidates = session.exec(
            select(Task.id).where(
                Task.status == TaskStatus.OPEN.value, Task.priority == Severity.URGENT.value,
                col(Task.escalated_at).is_(None), col(Task.urgent_since).is_not(None),
                col(Task.urgent_since) <= cutoff, Task.historical == False,  # noqa: E712
            )
        ).all()
    for task_id in candidates:
        with session_scope(engine) as session:
            claimed = session.exec(  # type: ignore[call-overload]
                update(Task)
                .where(and_(Task.id == task_id, col(Task.escalated_at).is_(None),
                            Task.status == TaskStatus.OPEN.value))
                .values(escalated_at=now)
            )
            if claimed.rowcount != 1:
                continue  # someone else escalated it, or it was acknowledged meanwhile
            task = _load(session, task_id)
            before = f"{task.owner_role} ({task.owner_staff_id})" if task.owner_staff_id else (
                f"{task.owner_role} queue")
            manager = lead_staff(session, task.hub_code, StaffRole.HUB_MANAGER)
            waited = now - utc(task.urgent_since or task.created_at)
            history(session, task, "escalated", ESCALATOR, now,
                    f"urgent and not acknowledged for {int(waited.total_seconds() // 60)} min")
            task.owner_role, task.owner_staff_id = StaffRole.HUB_MANAGER.value, manager
            task.updated_at = now
            session.add(task)
            after = f"hub_manager ({manager})" if manager else "hub_manager queue"
            history(session, task, "reassigned", ESCALATOR, now, f"{before} -> {after}")
            event = task_event(task, "task.updated", now, ESCALATOR, f"escalated|{task.id}")
            enqueue(session, [event], now)
            events.append(event)
    return events


@dataclass(frozen=True)
class TaskFilter:
    hub: str | None = None  # a hub code, or UNROUTED
    role: StaffRole | None = None
    overdue: bool = False
    include_closed: bool = False
    prison_number: str | None = None


def list_tasks(session: Session, f: TaskFilter, now: datetime) -> list[Task]:
    q = select(Task)
    if f.hub == UNROUTED:
        q = q.where(col(Task.hub_code).is_(None))
    elif f.hub:
        q = q.where(Task.hub_code == f.hub)
    if f.role:
        q = q.where(Task.owner_role == f.role.value)
    if f.prison_number:
        q = q.where(Task.prison_number == f.prison_number)
    if not f.include_closed:
        q = q.where(col(Task.status).in_(ACTIVE_STATUSES))
    if f.overdue:
        q = q.where(col(Task.status).in_(ACTIVE_STATUSES), col(Task.due_at) < utc(now))
    rank = {"urgent": 0, "warning": 1, "info": 2}
    rows = list(session.exec(q).all())
    rows.sort(key=lambda t: (rank.get(t.priority, 3), utc(t.due_at), t.id))
    return rows


def task_history(session: Session, task_id: str) -> list[TaskHistory]:
    return list(session.exec(
        select(TaskHistory).where(TaskHistory.task_id == task_id)
        .order_by(col(TaskHistory.at), col(TaskHistory.id))
    ).all())


def count_unrouted(session: Session) -> int:
    return len(session.exec(
        select(Task.id).where(col(Task.hub_code).is_(None), col(Task.status).in_(ACTIVE_STATUSES),
                              Task.historical == False)  # noqa: E712
    ).all())


REROUTER = "directory"


def reroute_unrouted(engine: Engine, now: datetime) -> list[TaskEvent]:
    """Route again every open unrouted task, e.g. after the directory gained a hub or an OMU."""
    from consumers.routing import route_for
    from infra import directory as hub_directory

    now = utc(now)
    events: list[TaskEvent] = []
    with session_scope(engine) as session:
        snapshot = hub_directory.read(session)
        waiting = session.exec(
            select(Task).where(col(Task.hub_code).is_(None),
                               col(Task.status).in_(ACTIVE_STATUSES))
        ).all()
        for task in waiting:
            r = route_for(StaffRole(task.owner_role), task.pre_release, task.prison,
                          task.local_authority, snapshot)
            if not r.routed:
                continue
            task.hub_code, task.owner_staff_id, task.routing = (
                r.hub_code, r.owner_staff_id, r.why[:500])
            task.updated_at = now
            session.add(task)
            owner = f"{r.owner_role.value} ({r.owner_staff_id})" if r.owner_staff_id else (
                f"{r.owner_role.value} queue")
            history(session, task, "reassigned", REROUTER, now,
                    f"UNROUTED -> {r.hub_code} / {owner}; routing: {r.why}")
            event = task_event(task, "task.updated", now, REROUTER, f"rerouted|{now.isoformat()}")
            enqueue(session, [event], now)
            events.append(event)
    return events
