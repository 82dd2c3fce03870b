"""The JSON API (``/api/v1``): everything the pages do, for other systems. Bearer tokens only.

Another hub's person or task answers 404 "not found", exactly like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from hub import releases, reports, taskactions, views
from hub.accounts import Principal
from hub.deps import DbSession, HubContext, api_user, audit, ctx
from infra.database import session_scope
from schemas.common import Pathway, StaffRole
from schemas.outputs import TaskEvent

router = APIRouter(prefix="/api/v1", tags=["hub"])

User = Annotated[Principal, Depends(api_user)]
Ctx = Annotated[HubContext, Depends(ctx)]
T = TypeVar("T")


class Me(BaseModel):
    username: str
    name: str
    hub: str
    role: str
    staff_id: str | None


class DoneBody(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


class ReassignBody(BaseModel):
    staff_id: str | None = Field(default=None, max_length=64)
    role: StaffRole | None = None


class TaskChange(BaseModel):
    task: views.TaskView
    event_id: str


def not_found() -> HTTPException:
    return HTTPException(404, "not found")


@router.get("/me", response_model=Me)
def me(who: User) -> Me:
    return Me(username=who.username, name=who.name, hub=who.hub_code, role=who.role.value,
              staff_id=who.staff_id)


@router.get("/staff", response_model=list[views.StaffView])
def staff(who: User, session: DbSession) -> list[views.StaffView]:
    """Members of the caller's hub (reassignment targets)."""
    return views.hub_staff(session, who)


# ------------------------------------------------------------------ tasks


@router.get("/tasks", response_model=list[views.TaskView])
def tasks(
    who: User, hub: Ctx, session: DbSession,
    scope: Annotated[views.TaskScope | None, Query(
        description="mine, queue (my role's), hub (all); default: mine and my role's queue",
    )] = None,
    pathway: Pathway | None = None,
    due: views.DueFilter = "any",
    include_closed: bool = False,
) -> list[views.TaskView]:
    return views.list_tasks(session, who, hub.now(), scope=scope, pathway=pathway, due=due,
                            include_closed=include_closed)


@router.get("/tasks/{task_id}", response_model=views.TaskDetail)
def task(task_id: str, who: User, hub: Ctx, session: DbSession) -> views.TaskDetail:
    try:
        return views.task_detail(session, who, task_id, hub.now())
    except views.NotFound:
        raise not_found() from None


def act(hub: HubContext, who: Principal, task_id: str, fn: Callable[..., TaskEvent],
        *args: Any, **kwargs: Any) -> TaskEvent:
    """Run one task action; publish its event once the change is committed."""
    try:
        event = fn(hub.engine, who, task_id, hub.now(), *args, **kwargs)
    except views.NotFound:
        raise not_found() from None
    except taskactions.TaskError as exc:
        raise HTTPException(409, str(exc)) from None
    if hub.publish is not None:
        hub.publish(event)
    return event


def _act(hub: HubContext, who: Principal, task_id: str, fn: Callable[..., TaskEvent],
         *args: Any, **kwargs: Any) -> TaskChange:
    event = act(hub, who, task_id, fn, *args, **kwargs)
    with session_scope(hub.engine) as session:
        view = views.task_detail(session, who, task_id, hub.now())
    return TaskChange(task=views.TaskView(**view.model_dump(exclude={"history"})),
                      event_id=str(event.event_id))


@router.post("/tasks/{task_id}/ack", response_model=TaskChange)
def ack_task(task_id: str, who: User, hub: Ctx) -> TaskChange:
    return _act(hub, who, task_id, taskactions.ack)


@router.post("/tasks/{task_id}/done", response_model=TaskChange)
def done_task(task_id: str, who: User, hub: Ctx,
              body: Annotated[DoneBody | None, Body()] = None) -> TaskChange:
    return _act(hub, who, task_id, taskactions.done, body.reason if body else None)


@router.post("/tasks/{task_id}/reassign", response_model=TaskChange)
def reassign_task(task_id: str, body: ReassignBody, who: User, hub: Ctx) -> TaskChange:
    return _act(hub, who, task_id, taskactions.reassign, staff_id=body.staff_id, role=body.role)


# ------------------------------------------------------------------ persons


def _person_call(session: Session, who: Principal, hub: HubContext, pn: str, resource: str,
                 fn: Callable[..., T], *args: Any) -> T:
    try:
        result = fn(session, who, pn, *args)
    except views.NotFound:
        raise not_found() from None
    audit(session, who, pn, resource, hub.now())
    return result


@router.get("/persons", response_model=list[views.PersonListItem])
def persons(who: User, session: DbSession) -> list[views.PersonListItem]:
    """Everyone the caller's hub may see, soonest release first."""
    return views.people(session, who)


@router.get("/persons/{prison_number}", response_model=views.PersonView)
def person(prison_number: str, who: User, hub: Ctx, session: DbSession) -> views.PersonView:
    return _person_call(session, who, hub, prison_number, "api:person", views.person)


@router.get("/persons/{prison_number}/timeline", response_model=list[views.TimelineItem])
def person_timeline(prison_number: str, who: User, hub: Ctx,
                    session: DbSession) -> list[views.TimelineItem]:
    return _person_call(session, who, hub, prison_number, "api:timeline", views.timeline)


@router.get("/persons/{prison_number}/pathways", response_model=list[views.PathwayView])
def person_pathways(prison_number: str, who: User, hub: Ctx,
                    session: DbSession) -> list[views.PathwayView]:
    return _person_call(session, who, hub, prison_number, "api:pathways", views.pathways)


@router.get("/persons/{prison_number}/alerts", response_model=list[views.AlertView])
def person_alerts(prison_number: str, who: User, hub: Ctx,
                  session: DbSession) -> list[views.AlertView]:
    return _person_call(session, who, hub, prison_number, "api:alerts", views.alerts)


@router.get("/persons/{prison_number}/tasks", response_model=list[views.TaskView])
def person_tasks(prison_number: str, who: User, hub: Ctx,
                 session: DbSession) -> list[views.TaskView]:
    return _person_call(session, who, hub, prison_number, "api:tasks", views.person_tasks,
                        hub.now())


@router.get("/persons/{prison_number}/appointments", response_model=list[views.AppointmentView])
def person_appointments(prison_number: str, who: User, hub: Ctx,
                        session: DbSession) -> list[views.AppointmentView]:
    return _person_call(session, who, hub, prison_number, "api:appointments", views.appointments)


@router.get("/persons/{prison_number}/texts", response_model=list[views.TextView])
def person_texts(prison_number: str, who: User, hub: Ctx,
                 session: DbSession) -> list[views.TextView]:
    return _person_call(session, who, hub, prison_number, "api:texts", views.texts)


# ------------------------------------------------------------------ calendar and reports


@router.get("/calendar", response_model=releases.Calendar)
def calendar(who: User, hub: Ctx, session: DbSession,
             weeks: Annotated[int, Query(ge=1, le=26)] = 12) -> releases.Calendar:
    return releases.build(session, who, hub.now(), hub.settings.timezone, weeks)


def _report(who: Principal, hub: HubContext, session: Session, start: date | None, end: date | None,
            period: reports.Period) -> reports.Report:
    end = end or hub.now().date()
    start = start or end - timedelta(days=89)
    if start > end or (end - start).days > 3 * 366:
        raise HTTPException(422, "start must be on or before end, and at most three years apart")
    return reports.build(session, who, start, end, period, hub.settings.timezone)


@router.get("/reports", response_model=reports.Report)
def report(who: User, hub: Ctx, session: DbSession, start: date | None = None,
           end: date | None = None, period: reports.Period = "month") -> reports.Report:
    return _report(who, hub, session, start, end, period)


@router.get("/reports.csv", response_class=PlainTextResponse,
            responses={200: {"content": {"text/csv": {}}}})
def report_csv(who: User, hub: Ctx, session: DbSession, start: date | None = None,
               end: date | None = None, period: reports.Period = "month") -> PlainTextResponse:
    rep = _report(who, hub, session, start, end, period)
    name = f"ttg-report-{rep.hub}-{rep.start.isoformat()}-{rep.end.isoformat()}.csv"
    return PlainTextResponse(reports.to_csv(rep), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
