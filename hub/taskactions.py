"""Acknowledge, complete and reassign, from the hub app, within the caller's hub only.

Acknowledge and complete reuse the task lifecycle (consumers.lifecycle); reassignment is the
hub's own action. Each returns the task event, which the app publishes after the commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from consumers.lifecycle import TaskError, acknowledge, finish, lead_staff
from consumers.tasks import history, task_event
from hub.accounts import Principal
from hub.views import NotFound, require_task
from infra.database import session_scope
from infra.models.hubs import Staff
from infra.models.tasks import ACTIVE_STATUSES, TaskStatus
from schemas.common import StaffRole
from schemas.outputs import TaskEvent

__all__ = ["TaskError", "ack", "done", "reassign"]


def _check(engine: Engine, who: Principal, task_id: str) -> None:
    with session_scope(engine) as session:
        require_task(session, who, task_id)


def ack(engine: Engine, who: Principal, task_id: str, now: datetime) -> TaskEvent:
    _check(engine, who, task_id)
    return acknowledge(engine, task_id, who.actor, now)


def done(engine: Engine, who: Principal, task_id: str, now: datetime,
         reason: str | None = None) -> TaskEvent:
    _check(engine, who, task_id)
    return finish(engine, task_id, who.actor, now, TaskStatus.DONE, reason)


def reassign(
    engine: Engine, who: Principal, task_id: str, now: datetime, *,
    staff_id: str | None = None, role: StaffRole | None = None,
) -> TaskEvent:
    """Give the task to a named member of the same hub, or to a role's queue (its lead, if any)."""
    if (staff_id is None) == (role is None):
        raise TaskError("name exactly one of staff_id or role")
    with session_scope(engine) as session:
        task = require_task(session, who, task_id)
        if task.status not in ACTIVE_STATUSES:
            raise TaskError(f"task {task_id} is {task.status}; only open tasks can be reassigned")
        if staff_id is not None:
            staff = session.get(Staff, staff_id)
            if staff is None or staff.hub_code != who.hub_code or not staff.active:
                raise NotFound(staff_id)
            task.owner_staff_id, task.owner_role = staff.staff_id, staff.role
            detail = f"to {staff.staff_id} ({staff.role})"
        else:
            assert role is not None
            task.owner_role = role.value
            task.owner_staff_id = lead_staff(session, who.hub_code, role)
            detail = f"to the {role.value} queue"
        task.updated_at = now
        session.add(task)
        history(session, task, "reassigned", who.actor, now, detail)
        cause = f"reassign|{detail}|{now.isoformat()}"
        return task_event(task, "task.updated", now, who.actor, cause)
