"""Server-rendered pages: sign-in, inbox, release calendar, person record, reports.

Forms carry a CSRF token that must match the one in the signed session cookie.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.datastructures import FormData

from hub import accounts, releases, reports, taskactions, views
from hub.accounts import Principal
from hub.api import act
from hub.deps import DbSession, HubContext, audit, csrf_form, csrf_token, ctx, page_user
from schemas.common import PATHWAY_TITLES, Pathway, StaffRole

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

User = Annotated[Principal, Depends(page_user)]
Ctx = Annotated[HubContext, Depends(ctx)]
Form = Annotated[FormData, Depends(csrf_form)]


def _local(value: datetime | date | None, fmt: str = "%a %d %b %Y %H:%M") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(templates.env.globals["timezone"])).strftime(fmt)
    return value.strftime("%a %d %b %Y")


def _words(value: str | None) -> str:
    return (value or "").replace("_", " ")


templates.env.filters["local"] = _local
templates.env.filters["words"] = _words
templates.env.globals["timezone"] = "Europe/London"
templates.env.globals["pathway_titles"] = {p.value: t for p, t in PATHWAY_TITLES.items()}


def render(request: Request, name: str, who: Principal | None, status: int = 200,
           **context: Any) -> HTMLResponse:
    templates.env.globals["timezone"] = request.app.state.hub.settings.timezone
    return templates.TemplateResponse(request, name, {
        "who": who, "csrf": csrf_token(request), **context}, status_code=status)


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    title = {404: "Page not found", 403: "Not allowed", 409: "That could not be done"}.get(
        status, "Something went wrong")
    return render(request, "error.html", None, status=status, title=title,
                  detail="not found" if status == 404 else detail)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/inbox"


# ------------------------------------------------------------------ sign-in


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "signin.html", None, next=_safe_next(next), error=None)


@router.post("/signin")
def signin(request: Request, hub: Ctx, form: Form) -> Response:
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    user = accounts.authenticate(hub.engine, username, password)
    target = _safe_next(str(form.get("next", "")))
    if user is None or user.id is None:
        return render(request, "signin.html", None, status=401, next=target,
                      error="The username or password is not right.")
    sid = accounts.start_session(hub.engine, user.id, hub.now(),
                                 hub.settings.session_max_age_seconds)
    # A fresh session on sign-in: nothing set before it (including the CSRF token) carries over.
    request.session.clear()
    request.session["sid"] = sid
    csrf_token(request)
    return RedirectResponse(target, status_code=303)


@router.post("/signout")
def signout(request: Request, hub: Ctx, form: Form) -> Response:
    sid = request.session.get("sid")
    if isinstance(sid, str):
        accounts.end_session(hub.engine, sid)
    request.session.clear()
    return RedirectResponse("/signin", status_code=303)


@router.get("/")
def home() -> Response:
    return RedirectResponse("/inbox", status_code=303)


# ------------------------------------------------------------------ inbox


@router.get("/inbox", response_class=HTMLResponse)
def inbox(
    request: Request, who: User, hub: Ctx, session: DbSession,
    pathway: Annotated[str, Query()] = "", due: views.DueFilter = "any",
    scope: Annotated[str, Query()] = "",
) -> HTMLResponse:
    path = Pathway(pathway) if pathway in {p.value for p in Pathway} else None
    sc = scope if scope in ("mine", "queue", "hub") else None
    now = hub.now()
    zone = ZoneInfo(hub.settings.timezone)
    day_end = datetime.combine(now.astimezone(zone).date() + timedelta(days=1),
                               datetime.min.time(), zone)
    items = views.list_tasks(session, who, now, scope=sc, pathway=path, due=due,  # type: ignore[arg-type]
                             day_end=day_end)
    return render(request, "inbox.html", who, tasks=items, pathways=list(Pathway), now=now,
                  staff=views.hub_staff(session, who), roles=list(StaffRole),
                  filters={"pathway": pathway, "due": due, "scope": scope},
                  back=request.url.path + ("?" + request.url.query if request.url.query else ""))


def _task_action(request: Request, who: Principal, hub: HubContext, task_id: str,
                 form: FormData, fn: Any, **kwargs: Any) -> Response:
    act(hub, who, task_id, fn, **kwargs)
    return RedirectResponse(_safe_next(str(form.get("back", ""))), status_code=303)


@router.post("/tasks/{task_id}/ack")
def ack(request: Request, task_id: str, who: User, hub: Ctx, form: Form) -> Response:
    return _task_action(request, who, hub, task_id, form, taskactions.ack)


@router.post("/tasks/{task_id}/done")
def done(request: Request, task_id: str, who: User, hub: Ctx, form: Form) -> Response:
    reason = str(form.get("reason", "")).strip()[:500] or None
    return _task_action(request, who, hub, task_id, form, taskactions.done, reason=reason)


@router.post("/tasks/{task_id}/reassign")
def reassign(request: Request, task_id: str, who: User, hub: Ctx, form: Form) -> Response:
    target = str(form.get("target", ""))
    if target.startswith("staff:"):
        kwargs: dict[str, Any] = {"staff_id": target[len("staff:"):]}
    elif target.startswith("role:") and target[5:] in {r.value for r in StaffRole}:
        kwargs = {"role": StaffRole(target[5:])}
    else:
        raise HTTPException(422, "Choose who should own the task.")
    return _task_action(request, who, hub, task_id, form, taskactions.reassign, **kwargs)


# ------------------------------------------------------------------ calendar


@router.get("/calendar", response_class=HTMLResponse)
def calendar(request: Request, who: User, hub: Ctx, session: DbSession) -> HTMLResponse:
    cal = releases.build(session, who, hub.now(), hub.settings.timezone)
    weeks: list[list[releases.CalendarDay]] = []
    for day in cal.days:
        if not weeks or day.date.weekday() == 0:
            weeks.append([])
        weeks[-1].append(day)
    total = sum(len(d.releases) for d in cal.days)
    return render(request, "calendar.html", who, cal=cal, weeks=weeks, total=total)


# ------------------------------------------------------------------ person


@router.get("/person", response_class=HTMLResponse)
def find_person(prison_number: str = "") -> Response:
    pn = prison_number.strip().upper()
    return RedirectResponse(f"/persons/{quote(pn, safe='')}", status_code=303)


@router.get("/persons/{prison_number}", response_class=HTMLResponse)
def person(request: Request, prison_number: str, who: User, hub: Ctx,
           session: DbSession) -> HTMLResponse:
    now = hub.now()
    try:
        record = {
            "person": views.person(session, who, prison_number),
            "timeline": views.timeline(session, who, prison_number),
            "pathways": views.pathways(session, who, prison_number),
            "alerts": views.alerts(session, who, prison_number),
            "tasks": views.person_tasks(session, who, prison_number, now),
            "appointments": views.appointments(session, who, prison_number),
            "texts": views.texts(session, who, prison_number),
        }
    except views.NotFound:
        raise HTTPException(404, "not found") from None
    audit(session, who, prison_number, "page:person", now)
    return render(request, "person.html", who, now=now, staff=views.hub_staff(session, who),
                  roles=list(StaffRole), back=request.url.path, **record)


# ------------------------------------------------------------------ reports

CHART_METRICS = (
    ("accommodation_confirmed_by_release", "Accommodation confirmed by release day"),
    ("benefit_claim_before_release", "Benefit claim made before release"),
    ("first_appointment_attended", "First appointment attended"),
    ("texts_delivered", "Texts delivered"),
)


def bar_chart(title: str, bars: list[tuple[str, float | None]], unit: str = "%",
              scale: float | None = 100.0) -> Markup:
    """A small accessible SVG bar chart; the same figures are in the table beside it."""
    width, bar_h, gap, label_w = 560, 22, 8, 150
    top = max((v for _, v in bars if v is not None), default=0.0)
    full = scale or top or 1.0
    height = len(bars) * (bar_h + gap) + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" class="ttg-chart">'
             f"<title>{escape(title)}</title>"]
    for i, (label, value) in enumerate(bars):
        y = gap + i * (bar_h + gap)
        span = 0 if value is None else (width - label_w - 70) * min(value / full, 1.0)
        text = "no data" if value is None else f"{value:g}{unit}"
        parts.append(
            f'<text x="0" y="{y + 16}" font-size="14">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{span:.1f}" height="{bar_h}" fill="#1d70b8"/>'
            f'<text x="{label_w + span + 6:.1f}" y="{y + 16}" font-size="14">{escape(text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _report_params(hub: HubContext, start: str, end: str, period: str
                   ) -> tuple[date, date, reports.Period]:
    try:
        e = date.fromisoformat(end) if end else hub.now().date()
        s = date.fromisoformat(start) if start else e - timedelta(days=89)
    except ValueError:
        raise HTTPException(422, "Dates must look like 2026-01-31.") from None
    if s > e or (e - s).days > 3 * 366:
        raise HTTPException(422, "The start must be on or before the end, at most 3 years apart.")
    p: reports.Period = period if period in ("week", "month", "all") else "month"  # type: ignore[assignment]
    return s, e, p


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, who: User, hub: Ctx, session: DbSession, start: str = "",
                 end: str = "", period: str = "month") -> HTMLResponse:
    s, e, p = _report_params(hub, start, end, period)
    rep = reports.build(session, who, s, e, p, hub.settings.timezone)
    charts = []
    for key, title in CHART_METRICS:
        bars = []
        for row in rep.rows:
            share = getattr(row, key)
            bars.append((f"{row.period_start:%d %b}–{row.period_end:%d %b}",
                         None if share is None else share.percent))
        charts.append(bar_chart(title, bars))
    charts.append(bar_chart("Median minutes to acknowledge an urgent task", [
        (f"{r.period_start:%d %b}–{r.period_end:%d %b}", r.median_minutes_to_acknowledge_urgent)
        for r in rep.rows], unit=" min", scale=None))
    query = urlencode({"start": s.isoformat(), "end": e.isoformat(), "period": p})
    return render(request, "reports.html", who, report=rep, charts=charts, query=query,
                  titles=dict(CHART_METRICS))


@router.get("/reports.csv")
def reports_csv(who: User, hub: Ctx, session: DbSession, start: str = "", end: str = "",
                period: str = "month") -> PlainTextResponse:
    s, e, p = _report_params(hub, start, end, period)
    rep = reports.build(session, who, s, e, p, hub.settings.timezone)
    name = f"ttg-report-{rep.hub}-{s.isoformat()}-{e.isoformat()}.csv"
    return PlainTextResponse(reports.to_csv(rep), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
