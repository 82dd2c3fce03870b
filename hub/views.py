"""What the pages and the API show, read from the database and already scoped and redacted.

Every function takes the :class:`Principal`; anything outside their hub raises
:class:`NotFound`, exactly as for a person or task that does not exist.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlmodel import Session, col, select

from hub.accounts import Principal
from hub.scope import (
    RESTRICTED,
    hidden_sensitivities,
    hub_prison_numbers,
    pathway_hidden,
    person_in_hub,
)
from infra.models.columns import as_utc
from infra.models.hubs import Staff
from infra.models.tasks import ACTIVE_STATUSES, Task, TaskAlert, TaskHistory
from infra.models.timeline import (
    AppointmentState,
    PathwayState,
    PersonSummary,
    ReleaseDateChange,
    TimelineEntry,
)
from schemas.common import Pathway, Severity


class NotFound(LookupError):
    """Absent, or outside the caller's hub: callers answer 404 "not found" for both."""


# ------------------------------------------------------------------ response models


class TaskView(BaseModel):
    id: str
    prison_number: str
    need: str
    pathway: str
    rule_id: str
    owner_role: str
    owner_staff_id: str | None
    priority: str
    status: str
    due_at: datetime
    overdue: bool
    reason: str
    release_date: date | None
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    mine: bool


class TaskHistoryView(BaseModel):
    at: datetime
    actor: str
    action: str
    detail: str


class TaskDetail(TaskView):
    history: list[TaskHistoryView]


class ReleaseChangeView(BaseModel):
    changed_at: datetime
    new_date: date | None
    previous_date: date | None
    reason: str | None


class PersonView(BaseModel):
    prison_number: str
    crn: str | None
    current_prison: str | None
    custody_status: str
    release_date: date | None
    release_type: str | None
    destination_local_authority: str | None
    accommodation_status: str | None
    released_at: datetime | None
    release_date_history: list[ReleaseChangeView]


class PersonListItem(BaseModel):
    prison_number: str
    custody_status: str
    current_prison: str | None
    release_date: date | None
    destination_local_authority: str | None


class TimelineItem(BaseModel):
    event_id: str
    type: str
    occurred_at: datetime
    source: str
    summary: str
    pathway: str | None
    restricted: bool


class PathwayView(BaseModel):
    pathway: str
    title: str
    status: str
    updated_at: datetime | None
    restricted: bool


class AlertView(BaseModel):
    alert_id: str
    task_id: str
    rule_id: str
    severity: str
    due_at: datetime
    reason: str
    open: bool
    updated_at: datetime


class AppointmentView(BaseModel):
    appointment_id: str
    kind: str
    status: str
    at: datetime | None
    place: str | None
    with_whom: str | None


class TextView(BaseModel):
    id: str
    kind: str
    state: str
    send_at: datetime
    sent_at: datetime | None
    delivery_status: str | None
    body: str


class StaffView(BaseModel):
    staff_id: str
    name: str
    role: str
    lead: bool


# ------------------------------------------------------------------ people


def require_person(session: Session, who: Principal, prison_number: str) -> PersonSummary:
    if not person_in_hub(session, who.hub_code, prison_number):
        raise NotFound(prison_number)
    return session.get(PersonSummary, prison_number) or PersonSummary(
        prison_number=prison_number, updated_at=datetime.min)


def people(session: Session, who: Principal) -> list[PersonListItem]:
    """The hub's caseload, soonest release first (a list, not a view of anyone's record)."""
    numbers = hub_prison_numbers(session, who.hub_code)
    rows = {r.prison_number: r for r in session.exec(select(PersonSummary).where(
        col(PersonSummary.prison_number).in_(numbers))).all()}
    out = [PersonListItem(
        prison_number=pn, custody_status=r.custody_status if r else "unknown",
        current_prison=r.current_prison if r else None,
        release_date=r.release_date if r else None,
        destination_local_authority=r.destination_local_authority if r else None)
        for pn in numbers for r in [rows.get(pn)]]
    return sorted(out, key=lambda p: (p.release_date is None, p.release_date or date.max,
                                      p.prison_number))


def person(session: Session, who: Principal, prison_number: str) -> PersonView:
    row = require_person(session, who, prison_number)
    changes = session.exec(select(ReleaseDateChange).where(
        ReleaseDateChange.prison_number == prison_number
    ).order_by(col(ReleaseDateChange.changed_at), col(ReleaseDateChange.id))).all()
    return PersonView(
        prison_number=row.prison_number, crn=row.crn, current_prison=row.current_prison,
        custody_status=row.custody_status, release_date=row.release_date,
        release_type=row.release_type,
        destination_local_authority=row.destination_local_authority,
        accommodation_status=row.accommodation_status, released_at=as_utc(row.released_at),
        release_date_history=[ReleaseChangeView(
            changed_at=as_utc(c.changed_at), new_date=c.new_date,  # type: ignore[arg-type]
            previous_date=c.previous_date, reason=c.reason) for c in changes],
    )


def timeline(session: Session, who: Principal, prison_number: str) -> list[TimelineItem]:
    require_person(session, who, prison_number)
    hidden = hidden_sensitivities(who.role)
    rows = session.exec(select(TimelineEntry).where(
        TimelineEntry.prison_number == prison_number
    ).order_by(col(TimelineEntry.occurred_at).desc(), col(TimelineEntry.id).desc())).all()
    out = []
    for r in rows:
        restricted = r.sensitivity in hidden
        if restricted and r.sensitivity == "health":
            continue  # police do not learn that a health note exists at all
        out.append(TimelineItem(
            event_id=r.event_id, type=r.type, occurred_at=as_utc(r.occurred_at),  # type: ignore[arg-type]
            source=r.source, summary=RESTRICTED if restricted else r.summary,
            pathway=r.pathway, restricted=restricted))
    return out


def pathways(session: Session, who: Principal, prison_number: str) -> list[PathwayView]:
    require_person(session, who, prison_number)
    states = {s.pathway: s for s in session.exec(
        select(PathwayState).where(PathwayState.prison_number == prison_number)).all()}
    out = []
    for p in Pathway:
        hidden = pathway_hidden(who.role, p.value)
        s = states.get(p.value)
        out.append(PathwayView(
            pathway=p.value, title=p.title, restricted=hidden,
            status="restricted" if hidden else (s.status if s else "not_started"),
            updated_at=None if hidden or s is None else as_utc(s.updated_at)))
    return out


def _redact_reason(who: Principal, pathway: str, reason: str) -> str:
    return RESTRICTED if pathway_hidden(who.role, pathway) else reason


def visible_tasks(who: Principal) -> Any:
    """SQL condition: the hub's tasks this role may see. Health-pathway tasks are left out for
    police altogether: their need and rule ("prescriber") would say what the notes hide."""
    cond = col(Task.hub_code) == who.hub_code
    if who.role.is_police:
        cond = cond & (col(Task.pathway) != Pathway.HEALTH.value)
    return cond


def alerts(session: Session, who: Principal, prison_number: str) -> list[AlertView]:
    require_person(session, who, prison_number)
    rows = session.exec(select(TaskAlert, Task).join(Task, col(Task.id) == TaskAlert.task_id).where(
        Task.prison_number == prison_number, visible_tasks(who),
    ).order_by(col(TaskAlert.open).desc(), col(TaskAlert.due_at))).all()
    return [AlertView(alert_id=a.alert_id, task_id=a.task_id, rule_id=a.rule_id,
                      severity=a.severity, due_at=as_utc(a.due_at), open=a.open,  # type: ignore[arg-type]
                      reason=_redact_reason(who, t.pathway, a.reason),
                      updated_at=as_utc(a.updated_at)) for a, t in rows]  # type: ignore[arg-type]


def appointments(session: Session, who: Principal, prison_number: str) -> list[AppointmentView]:
    require_person(session, who, prison_number)
    rows = session.exec(select(AppointmentState).where(
        AppointmentState.prison_number == prison_number).order_by(col(AppointmentState.at))).all()
    return [AppointmentView(appointment_id=r.appointment_id, kind=r.kind, status=r.status,
                            at=as_utc(r.at), place=r.place, with_whom=r.with_whom) for r in rows]


def texts(session: Session, who: Principal, prison_number: str) -> list[TextView]:
    require_person(session, who, prison_number)
    try:
        from infra.models.messages import Reminder
    except ImportError:  # the reminders area is optional for the hub
        return []
    rows = session.exec(select(Reminder).where(
        Reminder.prison_number == prison_number, Reminder.audience == "person",
    ).order_by(col(Reminder.send_at).desc())).all()
    return [TextView(id=r.id, kind=r.kind, state=r.state, send_at=as_utc(r.send_at),  # type: ignore[arg-type]
                     sent_at=as_utc(r.sent_at), delivery_status=r.delivery_status, body=r.body)
            for r in rows]


# ------------------------------------------------------------------ tasks

TaskScope = Literal["mine", "queue", "hub"]
DueFilter = Literal["any", "overdue", "today", "week"]


def _task_view(who: Principal, t: Task, now: datetime) -> TaskView:
    due = as_utc(t.due_at)
    assert due is not None
    return TaskView(
        id=t.id, prison_number=t.prison_number, need=t.need, pathway=t.pathway,
        rule_id=t.rule_id, owner_role=t.owner_role, owner_staff_id=t.owner_staff_id,
        priority=t.priority, status=t.status, due_at=due,
        overdue=t.status in ACTIVE_STATUSES and due < now,
        reason=_redact_reason(who, t.pathway, t.reason), release_date=t.release_date,
        created_at=as_utc(t.created_at), acknowledged_at=as_utc(t.acknowledged_at),  # type: ignore[arg-type]
        acknowledged_by=t.acknowledged_by,
        mine=who.staff_id is not None and t.owner_staff_id == who.staff_id)


def list_tasks(
    session: Session, who: Principal, now: datetime, *, scope: TaskScope | None = None,
    pathway: Pathway | None = None, due: DueFilter = "any", include_closed: bool = False,
    day_end: datetime | None = None,
) -> list[TaskView]:
    """My tasks and my role's queue (or the whole hub), most urgent then most overdue first."""
    q = select(Task).where(visible_tasks(who))
    mine = col(Task.owner_staff_id) == who.staff_id if who.staff_id else None
    # My role's queue: the role's tasks that are not already mine.
    queue = col(Task.owner_role) == who.role.value
    if who.staff_id:
        queue = queue & (col(Task.owner_staff_id).is_(None)
                         | (col(Task.owner_staff_id) != who.staff_id))
    if scope == "mine":
        q = q.where(mine if mine is not None else col(Task.id).is_(None))
    elif scope == "queue":
        q = q.where(queue)
    elif scope is None:
        q = q.where(queue | mine if mine is not None else queue)
    if not include_closed:
        q = q.where(col(Task.status).in_(ACTIVE_STATUSES))
    if pathway is not None:
        q = q.where(Task.pathway == pathway.value)
    if due == "overdue":
        q = q.where(col(Task.due_at) < now)
    elif due == "today":
        q = q.where(col(Task.due_at) < (day_end or now + timedelta(days=1)))
    elif due == "week":
        q = q.where(col(Task.due_at) < now + timedelta(days=7))
    rows = session.exec(q).all()
    rank = {s.value: s.rank for s in Severity}
    rows = sorted(rows, key=lambda t: (-rank.get(t.priority, 0), as_utc(t.due_at), t.id))
    return [_task_view(who, t, now) for t in rows]


def require_task(session: Session, who: Principal, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None or task.hub_code != who.hub_code or pathway_hidden(who.role, task.pathway):
        raise NotFound(task_id)
    return task


def task_detail(session: Session, who: Principal, task_id: str, now: datetime) -> TaskDetail:
    task = require_task(session, who, task_id)
    hist = session.exec(select(TaskHistory).where(TaskHistory.task_id == task_id)
                        .order_by(col(TaskHistory.at), col(TaskHistory.id))).all()
    hidden = pathway_hidden(who.role, task.pathway)
    return TaskDetail(**_task_view(who, task, now).model_dump(), history=[
        TaskHistoryView(at=as_utc(h.at), actor=h.actor, action=h.action,  # type: ignore[arg-type]
                        detail=RESTRICTED if hidden and h.detail else h.detail) for h in hist])


def person_tasks(session: Session, who: Principal, prison_number: str,
                 now: datetime) -> list[TaskView]:
    require_person(session, who, prison_number)
    rows = session.exec(select(Task).where(
        visible_tasks(who), Task.prison_number == prison_number,
    ).order_by(col(Task.created_at).desc())).all()
    return [_task_view(who, t, now) for t in rows]


def hub_staff(session: Session, who: Principal) -> list[StaffView]:
    rows = session.exec(select(Staff).where(Staff.hub_code == who.hub_code, Staff.active)
                        .order_by(col(Staff.role), col(Staff.name))).all()
    return [StaffView(staff_id=s.staff_id, name=s.name, role=s.role, lead=s.lead) for s in rows]
