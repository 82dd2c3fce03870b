"""Alerts become tasks: one active task per (person, need), its alerts linked, every change in
its history. These functions work inside the caller's transaction and never commit, so the
caller can record the processed event id in the same transaction as the change.

A caller applying many alert events in one transaction calls :func:`read_ahead` first: what the
events will look up is then read in a few queries and kept current in memory, so applying each
event issues no query and no flush, and the batch's rows reach the database together.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlmodel import Session, col, select

from consumers.routing import Route, route
from infra.directory import Directory
from infra.models.columns import as_utc
from infra.models.tasks import (
    ProcessedEvent,
    Task,
    TaskAlert,
    TaskHistory,
    TaskOutbox,
    TaskStatus,
)
from schemas.common import Severity, StaffRole
from schemas.outputs import Alert, AlertEvent, TaskEvent

log = logging.getLogger(__name__)

TaskEventType = Literal[
    "task.created", "task.updated", "task.acknowledged", "task.done", "task.cancelled"
]

#: Who the history names when the alert stream made the change.
ALERTS_ACTOR = "alerts"
HISTORICAL_REASON = "historical: raised during a replay after its moment had passed"
#: Namespace for TaskEvent ids, so the same change always carries the same event id.
TASK_EVENT_NAMESPACE = uuid.UUID("0d7f6c0e-2b9a-4d59-8d0e-7a3c61f4b5e2")


def utc(value: datetime) -> datetime:
    """UTC, always: SQLite drops the offset, so every stored or compared time must be UTC."""
    out = as_utc(value)
    assert out is not None
    return out


def new_task_id() -> str:
    return "T-" + uuid.uuid4().hex[:10].upper()


def active_key(prison_number: str, need: str) -> str:
    return f"{prison_number}|{need}"


@dataclass
class Applied:
    """What applying one alert event did: the task events to publish after the commit."""

    duplicate: bool = False
    events: list[TaskEvent] = field(default_factory=list)
    unrouted: bool = False


def history(
    session: Session, task: Task, action: str, actor: str, at: datetime, detail: str = "",
    event_id: str | None = None,
) -> None:
    session.add(TaskHistory(task_id=task.id, at=utc(at), actor=actor, action=action,
                            detail=detail[:4000], event_id=event_id))


def task_event(
    task: Task, kind: TaskEventType, at: datetime, by: str | None, cause: str,
) -> TaskEvent:
    """The notification for one change; ``cause`` (the source event id, or the action and time)
    makes its id deterministic so a consumer of the tasks topic can deduplicate."""
    return TaskEvent(
        event_id=uuid.uuid5(TASK_EVENT_NAMESPACE, f"{task.id}|{kind}|{cause}"),
        type=kind,
        occurred_at=utc(at),
        task_id=task.id,
        prison_number=task.prison_number,
        hub=task.hub_code,
        owner_role=StaffRole(task.owner_role),
        owner_staff_id=task.owner_staff_id,
        need=task.need,
        priority=Severity(task.priority),
        due_at=utc(task.due_at),
        reason=task.reason,
        by=by,
    )


def enqueue(
    session: Session, events: Iterable[TaskEvent], now: datetime, *, check: bool = True,
) -> None:
    """Put task events in the outbox, in the caller's transaction (see consumers.outbox).

    An event already there is not added again; ``check=False`` skips that look-up when the
    caller knows the ids are new (see :func:`apply_alert_event`)."""
    for e in events:
        if check and session.exec(
            select(TaskOutbox.id).where(TaskOutbox.event_id == str(e.event_id))
        ).first() is not None:
            continue
        session.add(TaskOutbox(event_id=str(e.event_id), task_id=e.task_id, key=e.prison_number,
                               payload=e.model_dump_json(), created_at=utc(now)))


def find_active(session: Session, prison_number: str, need: str) -> Task | None:
    key = active_key(prison_number, need)
    ahead = _read_ahead(session)
    if ahead is not None and key in ahead.active:
        return ahead.active[key]
    return session.exec(select(Task).where(Task.active_key == key)).first()


# --------------------------------------------------------------------------- read-ahead

_READ_AHEAD = "ttg.tasks.read_ahead"
#: Most values in one IN (...) of the read-ahead queries.
_CHUNK = 500


@dataclass
class _ReadAhead:
    """What a batch of alert events looks up, read before applying it and kept current as the
    batch changes it (the objects are the session's own, so their changes show here too)."""

    processed: set[str]  # event ids applied before or earlier in this batch
    checked: set[str]  # event ids whose "processed" state the set above answers for
    active: dict[str, Task | None]  # active key -> the active task, for every key read
    links: dict[str, dict[str, TaskAlert]]  # task id -> alert id -> link: all of that task's
    by_alert: dict[str, list[TaskAlert]]  # alert id -> every link to that alert, on any task
    historical: dict[str, Task | None]  # alert id -> a historical task linked to it
    transaction: object  # what it holds is true only inside this transaction


def _read_ahead(session: Session) -> _ReadAhead | None:
    ahead: _ReadAhead | None = session.info.get(_READ_AHEAD)
    if ahead is None or ahead.transaction is not session.get_transaction():
        return None
    return ahead


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(values)
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def read_ahead(session: Session, events: Sequence[AlertEvent]) -> None:
    """Before applying ``events`` in this session's transaction, read what they will look up.

    Until the transaction ends, :func:`apply_alert_event` answers its look-ups for these
    events from memory (so nothing else may change those rows in this session meanwhile): it
    issues no query and no flush, so an exception it raises belongs to the event being applied,
    and every row of the batch is written at the caller's flush or commit, in multi-row
    statements. (The flush writes tasks before the links and history that refer to them: with
    no relationship() between the models, SQLAlchemy orders the tables of one flush by class
    name, and ``Task`` sorts first.) Look-ups for anything else are queried as usual.
    """
    eids = {str(e.event_id) for e in events}
    keys = {active_key(e.alert.prison_number, e.alert.need) for e in events}
    alert_ids = {str(e.alert.alert_id) for e in events}
    processed: set[str] = set()
    for part in _chunks(eids):
        processed.update(session.exec(
            select(ProcessedEvent.event_id).where(col(ProcessedEvent.event_id).in_(part))
        ).all())
    active: dict[str, Task | None] = dict.fromkeys(keys)
    for part in _chunks(keys):
        for task in session.exec(select(Task).where(col(Task.active_key).in_(part))).all():
            active[task.active_key] = task  # type: ignore[index]
    links: dict[str, dict[str, TaskAlert]] = {t.id: {} for t in active.values() if t}
    by_alert: dict[str, list[TaskAlert]] = {a: [] for a in alert_ids}
    found: dict[tuple[str, str], TaskAlert] = {}
    for part in _chunks(links):
        for link in session.exec(select(TaskAlert).where(col(TaskAlert.task_id).in_(part))):
            found[(link.task_id, link.alert_id)] = link
    for part in _chunks(alert_ids):
        for link in session.exec(select(TaskAlert).where(col(TaskAlert.alert_id).in_(part))):
            found[(link.task_id, link.alert_id)] = link
    for (task_id, alert_id), link in sorted(found.items()):
        if task_id in links:
            links[task_id][alert_id] = link
        if alert_id in by_alert:
            by_alert[alert_id].append(link)
    historical: dict[str, Task | None] = dict.fromkeys(alert_ids)
    for part in _chunks(alert_ids):
        for task, alert_id in session.exec(
            select(Task, TaskAlert.alert_id).join(TaskAlert, col(TaskAlert.task_id) == Task.id)
            .where(col(TaskAlert.alert_id).in_(part), Task.historical)
        ).all():
            historical[alert_id] = historical[alert_id] or task
    session.info[_READ_AHEAD] = _ReadAhead(processed, set(eids), active, links, by_alert,
                                           historical, session.get_transaction())


def _was_processed(session: Session, eid: str) -> bool:
    ahead = _read_ahead(session)
    if ahead is not None and eid in ahead.checked:
        return eid in ahead.processed
    return session.get(ProcessedEvent, eid) is not None


def _find_link(session: Session, task: Task, alert_id: str) -> TaskAlert | None:
    ahead = _read_ahead(session)
    if ahead is not None:
        if task.id in ahead.links:
            return ahead.links[task.id].get(alert_id)
        if alert_id in ahead.by_alert:
            return next((x for x in ahead.by_alert[alert_id] if x.task_id == task.id), None)
    return session.get(TaskAlert, (task.id, alert_id))


def _open_links(session: Session, task: Task) -> list[TaskAlert]:
    ahead = _read_ahead(session)
    if ahead is not None and task.id in ahead.links:
        return [x for x in ahead.links[task.id].values() if x.open]
    return list(session.exec(
        select(TaskAlert).where(TaskAlert.task_id == task.id, TaskAlert.open)
    ).all())


def _open_links_to(session: Session, alert_id: str) -> list[TaskAlert]:
    ahead = _read_ahead(session)
    if ahead is not None and alert_id in ahead.by_alert:
        return [x for x in ahead.by_alert[alert_id] if x.open]
    return list(session.exec(
        select(TaskAlert).where(TaskAlert.alert_id == alert_id, TaskAlert.open)
    ).all())


def _historical_task(session: Session, alert_id: str) -> Task | None:
    ahead = _read_ahead(session)
    if ahead is not None and alert_id in ahead.historical:
        return ahead.historical[alert_id]
    return session.exec(
        select(Task).join(TaskAlert, col(TaskAlert.task_id) == Task.id)
        .where(TaskAlert.alert_id == alert_id, Task.historical)
    ).first()


def _added_task(session: Session, task: Task, alert_id: str) -> None:
    """A task this session has just made: in the read-ahead from now on."""
    session.add(task)
    ahead = _read_ahead(session)
    if ahead is None:
        # Without the read-ahead other look-ups query, and may flush: the task row goes first,
        # before the links and history that refer to it.
        session.flush()
        return
    ahead.links[task.id] = {}
    if task.active_key is not None:
        ahead.active[task.active_key] = task
    if task.historical and alert_id in ahead.historical:
        ahead.historical[alert_id] = ahead.historical[alert_id] or task


def apply_alert_event(
    session: Session, event: AlertEvent, directory: Directory, now: datetime,
    consumer: str = "tasks",
) -> Applied:
    """Apply one alert event unless its id was applied before (then report a duplicate)."""
    eid = str(event.event_id)
    if _was_processed(session, eid):
        return Applied(duplicate=True)
    now = utc(now)
    if event.alert.historical:
        out = _historical(session, event, directory, now)
    elif event.type == "alert.resolved":
        out = _resolve(session, event, now)
    else:
        out = _raise_or_update(session, event, directory, now)
    # Every event made here is named after (task, kind, this event id), and this event id is
    # recorded as processed in the same transaction: the ids cannot be in the outbox yet.
    enqueue(session, out.events, now, check=False)
    session.add(ProcessedEvent(event_id=eid, consumer=consumer, processed_at=now))
    if (ahead := _read_ahead(session)) is not None:
        ahead.processed.add(eid)
        ahead.checked.add(eid)
    return out


def _owner_text(r: Route | Task) -> str:
    staff = r.owner_staff_id
    role = r.owner_role.value if isinstance(r, Route) else r.owner_role
    return f"{role} ({staff})" if staff else f"{role} queue"


def _link(
    session: Session, task: Task, event: AlertEvent, now: datetime, new_task: bool = False,
) -> tuple[TaskAlert, bool]:
    a = event.alert
    # A task made just now has no links yet: no need to look.
    link = None if new_task else _find_link(session, task, str(a.alert_id))
    created = link is None
    if link is None:
        link = TaskAlert(task_id=task.id, alert_id=str(a.alert_id), rule_id=a.rule_id,
                         severity=a.severity.value, due_at=utc(a.due_at), reason=a.reason,
                         open=True, last_event_id=str(event.event_id), updated_at=now)
        if (ahead := _read_ahead(session)) is not None:
            if task.id in ahead.links:
                ahead.links[task.id][link.alert_id] = link
            if link.alert_id in ahead.by_alert:
                ahead.by_alert[link.alert_id].append(link)
    else:
        link.rule_id, link.severity, link.due_at = a.rule_id, a.severity.value, utc(a.due_at)
        link.reason, link.open = a.reason, event.type != "alert.resolved"
        link.last_event_id, link.updated_at = str(event.event_id), now
    session.add(link)
    return link, created


def _new_task(alert: Alert, r: Route, now: datetime) -> Task:
    urgent = alert.severity is Severity.URGENT
    return Task(
        id=new_task_id(), prison_number=alert.prison_number, need=alert.need,
        pathway=alert.pathway.value, rule_id=alert.rule_id, hub_code=r.hub_code,
        owner_role=r.owner_role.value, owner_staff_id=r.owner_staff_id,
        priority=alert.severity.value, due_at=utc(alert.due_at), reason=alert.reason,
        status=TaskStatus.OPEN.value, routing=r.why[:500], release_date=alert.release_date,
        pre_release=alert.pre_release,
        prison=alert.prison, local_authority=alert.local_authority, created_at=now,
        updated_at=now, urgent_since=now if urgent else None,
        active_key=active_key(alert.prison_number, alert.need),
    )


def _closed_with_alert_open(session: Session, a: Alert) -> list[TaskAlert]:
    """Open links to alert ``a`` (same rule) on live tasks that someone has closed."""
    out = []
    for link in _open_links_to(session, str(a.alert_id)):
        task = session.get(Task, link.task_id) if link.rule_id == a.rule_id else None
        if task is not None and task.active_key is None and not task.historical:
            out.append(link)
    return out


def _raise_or_update(
    session: Session, event: AlertEvent, directory: Directory, now: datetime
) -> Applied:
    a, eid = event.alert, str(event.event_id)
    task = find_active(session, a.prison_number, a.need)
    if task is None and event.type == "alert.raised" and (
            known := _closed_with_alert_open(session, a)):
        # Raised before and never resolved, and its task closed by someone meanwhile: this is
        # the same alert told again by another history (a restarted worker, a replay), not new
        # work. (One history raises an alert once until it resolves it.)
        for link in known:
            link.last_event_id, link.updated_at = eid, now
            session.add(link)
        return Applied()
    if task is None:
        r = route(a, directory)
        task = _new_task(a, r, now)
        _added_task(session, task, str(a.alert_id))
        _link(session, task, event, now, new_task=True)
        notify = f"; also notify: {', '.join(x.value for x in a.also_notify)}" if (
            a.also_notify) else ""
        history(session, task, "created", ALERTS_ACTOR, now,
                f"from alert {a.alert_id} ({a.rule_id}, {event.type}); priority {a.severity.value};"
                f" owner {_owner_text(r)}; routing: {r.why}{notify}", eid)
        if not r.routed:
            log.warning("unrouted task %s for %s need=%s: %s", task.id, a.prison_number, a.need,
                        r.why)
        return Applied(events=[task_event(task, "task.created", now, ALERTS_ACTOR, eid)],
                       unrouted=not r.routed)

    _, linked = _link(session, task, event, now)
    changes: list[str] = []
    if linked:
        history(session, task, "linked", ALERTS_ACTOR, now,
                f"alert {a.alert_id} ({a.rule_id}) concerns the same need", eid)
        changes.append("linked")
    task.release_date, task.local_authority = a.release_date, a.local_authority
    task.pre_release = a.pre_release
    task.prison = a.prison or task.prison
    changes += _recompute(session, task, now, eid)
    changes += _reroute(session, task, a, directory, now, eid)
    if not changes:
        return Applied()
    task.updated_at = now
    session.add(task)
    return Applied(events=[task_event(task, "task.updated", now, ALERTS_ACTOR, eid)],
                   unrouted=task.hub_code is None)


def _recompute(
    session: Session, task: Task, now: datetime, eid: str,
    links: list[TaskAlert] | None = None,
) -> list[str]:
    """Priority, due time and reason follow the task's most pressing open alert (``links``:
    the task's open links, when the caller has just read them)."""
    if links is None:
        links = _open_links(session, task)
    if not links:
        return []
    # Ties go to the lowest alert id, whatever order the links were read in.
    lead = min(links, key=lambda x: (-Severity(x.severity).rank, utc(x.due_at), x.alert_id))
    priority = max((Severity(x.severity) for x in links), key=lambda s: s.rank)
    due = min(utc(x.due_at) for x in links)
    parts = []
    if priority.value != task.priority:
        parts.append(f"priority {task.priority} -> {priority.value}")
        if priority is Severity.URGENT:
            task.urgent_since = now
        elif task.priority == Severity.URGENT.value:
            task.urgent_since = None
        task.priority = priority.value
    if due != utc(task.due_at):
        parts.append(f"due {utc(task.due_at).isoformat()} -> {due.isoformat()}")
        task.due_at = due
    if lead.reason != task.reason:
        parts.append("reason updated")
        task.reason = lead.reason
    task.rule_id = lead.rule_id
    if parts:
        action = "reprioritised" if parts[0].startswith("priority") else "updated"
        history(session, task, action, ALERTS_ACTOR, now, "; ".join(parts), eid)
    return parts


def _reroute(
    session: Session, task: Task, a: Alert, directory: Directory, now: datetime, eid: str
) -> list[str]:
    """A new destination moves the task to the hub now covering the person (same role)."""
    r = route(a, directory, role=StaffRole(task.owner_role))
    if r.hub_code == task.hub_code or (not r.routed and task.hub_code is not None):
        # Same hub, or the new alert lacks what routing needs: keep the owner people know.
        return []
    before = f"{task.hub_code or 'UNROUTED'} / {_owner_text(task)}"
    task.hub_code, task.owner_staff_id, task.routing = r.hub_code, r.owner_staff_id, r.why[:500]
    history(session, task, "reassigned", ALERTS_ACTOR, now,
            f"{before} -> {r.hub_code} / {_owner_text(r)}; routing: {r.why}", eid)
    return ["reassigned"]


def _resolve(session: Session, event: AlertEvent, now: datetime) -> Applied:
    a, eid = event.alert, str(event.event_id)
    task = find_active(session, a.prison_number, a.need)
    link = _find_link(session, task, str(a.alert_id)) if task else None
    if task is None or link is None:
        # Closed already, or the alert never made a task here: close any stale link quietly.
        for stale in _open_links_to(session, str(a.alert_id)):
            stale.open, stale.last_event_id, stale.updated_at = False, eid, now
            session.add(stale)
        return Applied()
    _link(session, task, event, now)
    why = event.resolution or a.reason
    history(session, task, "alert_resolved", ALERTS_ACTOR, now,
            f"alert {a.alert_id} ({a.rule_id}) resolved: {why}", eid)
    still_open = _open_links(session, task)
    task.updated_at = now
    if not still_open:
        close(session, task, TaskStatus.DONE, ALERTS_ACTOR, now, f"resolved: {why}", eid)
        return Applied(events=[task_event(task, "task.done", now, ALERTS_ACTOR, eid)])
    _recompute(session, task, now, eid, still_open)
    session.add(task)
    return Applied(events=[task_event(task, "task.updated", now, ALERTS_ACTOR, eid)])


def close(
    session: Session, task: Task, status: TaskStatus, actor: str, now: datetime, reason: str,
    event_id: str | None = None,
) -> None:
    task.status, task.closed_at, task.closed_reason = status.value, now, reason[:500]
    ahead = _read_ahead(session)
    if ahead is not None and task.active_key is not None and (
            ahead.active.get(task.active_key) is task):
        ahead.active[task.active_key] = None
    task.active_key, task.updated_at = None, now
    session.add(task)
    history(session, task, status.value, actor, now, reason, event_id)


def _historical(
    session: Session, event: AlertEvent, directory: Directory, now: datetime
) -> Applied:
    """Replayed alerts whose moment has passed are kept as closed, historical tasks: the record
    shows what would have been raised, but nobody is asked to act and nothing escalates."""
    a, eid = event.alert, str(event.event_id)
    existing = _historical_task(session, str(a.alert_id))
    if existing is not None:
        _link(session, existing, event, now)
        history(session, existing, "updated", ALERTS_ACTOR, now,
                f"historical {event.type} for alert {a.alert_id}", eid)
        return Applied()
    if event.type == "alert.resolved":
        return Applied()
    r = route(a, directory)
    task = _new_task(a, r, now)
    task.historical, task.urgent_since = True, None
    task.status, task.closed_at = TaskStatus.CANCELLED.value, now
    task.closed_reason = HISTORICAL_REASON
    task.active_key = None
    _added_task(session, task, str(a.alert_id))
    _link(session, task, event, now, new_task=True)
    history(session, task, "created", ALERTS_ACTOR, now,
            f"historical alert {a.alert_id} ({a.rule_id}); routing: {r.why}", eid)
    history(session, task, TaskStatus.CANCELLED.value, ALERTS_ACTOR, now, HISTORICAL_REASON, eid)
    return Applied()

