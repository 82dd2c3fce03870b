"""The release calendar: the next weeks of releases into a hub, with the days that make a release
risky marked (Fridays, and the last working day before an England and Wales bank holiday) and
each person's open-risk badges and release-date history.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel
from sqlmodel import Session, col, select

from hub.accounts import Principal
from hub.scope import hub_prison_numbers
from hub.views import ReleaseChangeView, visible_tasks
from infra.models.columns import as_utc
from infra.models.tasks import ACTIVE_STATUSES, Task
from infra.models.timeline import PersonSummary, ReleaseDateChange
from schemas.common import Severity


class Badge(BaseModel):
    need: str
    priority: str
    task_id: str


class CalendarRelease(BaseModel):
    prison_number: str
    release_date: date
    release_type: str | None
    current_prison: str | None
    destination_local_authority: str | None
    badges: list[Badge]
    moved: bool
    history: list[ReleaseChangeView]


class CalendarDay(BaseModel):
    date: date
    weekday: str
    friday: bool
    bank_holiday: str | None
    before_bank_holiday: str | None
    releases: list[CalendarRelease]


class Calendar(BaseModel):
    hub: str
    start: date
    end: date
    days: list[CalendarDay]


@lru_cache(maxsize=8)
def _bank_holidays(year: int) -> dict[date, str]:
    return dict(holidays.country_holidays("GB", subdiv="ENG", years=[year, year + 1]))


def bank_holiday(d: date) -> str | None:
    return _bank_holidays(d.year).get(d)


def holiday_after(d: date) -> str | None:
    """The bank holiday between working day ``d`` and the next working day, if any: e.g. the
    Thursday before Good Friday, or the Friday before a bank holiday Monday."""
    if d.weekday() >= 5 or bank_holiday(d):
        return None
    nxt = d + timedelta(days=1)
    while nxt.weekday() >= 5 or bank_holiday(nxt):
        if name := bank_holiday(nxt):
            return name
        nxt += timedelta(days=1)
    return None


def build(session: Session, who: Principal, now: datetime, tz: str, weeks: int = 12) -> Calendar:
    start = now.astimezone(ZoneInfo(tz)).date()
    end = start + timedelta(weeks=weeks) - timedelta(days=1)
    people = hub_prison_numbers(session, who.hub_code)
    rows = session.exec(select(PersonSummary).where(
        col(PersonSummary.prison_number).in_(people),
        col(PersonSummary.release_date) >= start, col(PersonSummary.release_date) <= end,
        col(PersonSummary.released_at).is_(None),
    ).order_by(col(PersonSummary.release_date), col(PersonSummary.prison_number))).all()
    numbers = [r.prison_number for r in rows]
    tasks = session.exec(select(Task).where(
        visible_tasks(who), col(Task.prison_number).in_(numbers),
        col(Task.status).in_(ACTIVE_STATUSES))).all()
    changes = session.exec(select(ReleaseDateChange).where(
        col(ReleaseDateChange.prison_number).in_(numbers)
    ).order_by(col(ReleaseDateChange.changed_at), col(ReleaseDateChange.id))).all()
    rank = {s.value: s.rank for s in Severity}
    by_day: dict[date, list[CalendarRelease]] = {}
    for r in rows:
        assert r.release_date is not None
        hist = [ReleaseChangeView(changed_at=as_utc(c.changed_at), new_date=c.new_date,  # type: ignore[arg-type]
                                  previous_date=c.previous_date, reason=c.reason)
                for c in changes if c.prison_number == r.prison_number]
        badges = sorted((Badge(need=t.need, priority=t.priority, task_id=t.id)
                         for t in tasks if t.prison_number == r.prison_number),
                        key=lambda b: (-rank.get(b.priority, 0), b.need))
        moved = any(h.previous_date and h.previous_date != h.new_date for h in hist) or len(
            {h.new_date for h in hist}) > 1
        by_day.setdefault(r.release_date, []).append(CalendarRelease(
            prison_number=r.prison_number, release_date=r.release_date,
            release_type=r.release_type, current_prison=r.current_prison,
            destination_local_authority=r.destination_local_authority, badges=badges,
            moved=moved, history=hist))
    days = []
    d = start
    while d <= end:
        days.append(CalendarDay(
            date=d, weekday=d.strftime("%A"), friday=d.weekday() == 4,
            bank_holiday=bank_holiday(d), before_bank_holiday=holiday_after(d),
            releases=by_day.get(d, [])))
        d += timedelta(days=1)
    return Calendar(hub=who.hub_code, start=start, end=end, days=days)
