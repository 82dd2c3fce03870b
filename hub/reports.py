"""Hub outcome reports, per period: the shares the practice measures itself by.

- accommodation confirmed by release day [SC: "shelter and occupation within 48 hours"]
- benefit claim made before release [SC: first payment at the end of the first week]
- first appointment after release attended [HMIP]
- texts delivered (of texts sent to people leaving prison)
- median minutes to acknowledge an urgent task
"""

from __future__ import annotations

import csv
import io
import statistics
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, computed_field
from sqlmodel import Session, col, select

from hub.accounts import Principal
from hub.scope import hub_prison_numbers
from infra.models.columns import as_utc
from infra.models.tasks import Task
from infra.models.timeline import AppointmentState, PersonSummary

Period = Literal["week", "month", "all"]


class Share(BaseModel):
    numerator: int
    denominator: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def percent(self) -> float | None:
        return round(100 * self.numerator / self.denominator, 1) if self.denominator else None


class ReportRow(BaseModel):
    hub: str
    period_start: date
    period_end: date
    releases: int
    accommodation_confirmed_by_release: Share
    benefit_claim_before_release: Share
    first_appointment_attended: Share
    texts_delivered: Share | None  # None: the reminders area is not installed
    urgent_tasks: int
    urgent_acknowledged: int
    median_minutes_to_acknowledge_urgent: float | None


class Report(BaseModel):
    hub: str
    start: date
    end: date
    period: Period
    rows: list[ReportRow]


def buckets(start: date, end: date, period: Period) -> list[tuple[date, date]]:
    out: list[tuple[date, date]] = []
    d = start
    while d <= end:
        if period == "week":
            nxt = d + timedelta(days=7 - d.weekday())
        elif period == "month":
            nxt = (d.replace(day=1) + timedelta(days=32)).replace(day=1)
        else:
            nxt = end + timedelta(days=1)
        out.append((d, min(nxt - timedelta(days=1), end)))
        d = nxt
    return out


def build(session: Session, who: Principal, start: date, end: date, period: Period,
          tz: str) -> Report:
    zone = ZoneInfo(tz)
    people = hub_prison_numbers(session, who.hub_code)

    def span(a: date, b: date) -> tuple[datetime, datetime]:
        return (datetime.combine(a, time.min, zone), datetime.combine(b + timedelta(days=1),
                                                                       time.min, zone))

    lo, hi = span(start, end)
    released = [p for p in session.exec(select(PersonSummary).where(
        col(PersonSummary.prison_number).in_(people),
        col(PersonSummary.released_at).is_not(None))).all()
        if lo <= as_utc(p.released_at) < hi]  # type: ignore[operator]
    appts = session.exec(select(AppointmentState).where(
        col(AppointmentState.prison_number).in_([p.prison_number for p in released]))).all()
    urgent = session.exec(select(Task).where(Task.hub_code == who.hub_code,
                                             Task.priority == "urgent")).all()
    try:
        from infra.models.messages import Reminder
        sent = [r for r in session.exec(select(Reminder).where(
            col(Reminder.prison_number).in_(people), Reminder.audience == "person",
            col(Reminder.sent_at).is_not(None))).all()]
    except ImportError:
        sent = None

    rows = []
    for a, b in buckets(start, end, period):
        blo, bhi = span(a, b)
        mine = [p for p in released if blo <= as_utc(p.released_at) < bhi]  # type: ignore[operator]
        acc = ben = first = 0
        for p in mine:
            out_at = as_utc(p.released_at)
            assert out_at is not None
            day_end = datetime.combine(out_at.astimezone(zone).date() + timedelta(days=1),
                                       time.min, zone)
            if p.accommodation_confirmed_at and as_utc(p.accommodation_confirmed_at) < day_end:
                acc += 1
            if p.benefit_claim_at and as_utc(p.benefit_claim_at) < out_at:  # type: ignore[operator]
                ben += 1
            after = sorted((x for x in appts if x.prison_number == p.prison_number and x.at
                            and x.status != "cancelled"
                            and as_utc(x.at) >= out_at - timedelta(hours=12)),  # type: ignore[operator]
                           key=lambda x: as_utc(x.at))  # type: ignore[arg-type,return-value]
            if after and after[0].status == "attended":
                first += 1
        texts = None
        if sent is not None:
            in_b = [r for r in sent if blo <= as_utc(r.sent_at) < bhi]  # type: ignore[operator]
            texts = Share(numerator=sum(r.delivery_status == "delivered" for r in in_b),
                          denominator=len(in_b))
        u = [t for t in urgent if blo <= as_utc(t.created_at) < bhi]  # type: ignore[operator]
        waits = [(as_utc(t.acknowledged_at) - as_utc(t.created_at)).total_seconds() / 60  # type: ignore[operator]
                 for t in u if t.acknowledged_at]
        rows.append(ReportRow(
            hub=who.hub_code, period_start=a, period_end=b, releases=len(mine),
            accommodation_confirmed_by_release=Share(numerator=acc, denominator=len(mine)),
            benefit_claim_before_release=Share(numerator=ben, denominator=len(mine)),
            first_appointment_attended=Share(numerator=first, denominator=len(mine)),
            texts_delivered=texts, urgent_tasks=len(u), urgent_acknowledged=len(waits),
            median_minutes_to_acknowledge_urgent=(
                round(statistics.median(waits), 1) if waits else None)))
    return Report(hub=who.hub_code, start=start, end=end, period=period, rows=rows)


CSV_COLUMNS = (
    "hub", "period_start", "period_end", "releases",
    "accommodation_confirmed_by_release", "accommodation_confirmed_by_release_pct",
    "benefit_claim_before_release", "benefit_claim_before_release_pct",
    "first_appointment_attended", "first_appointment_attended_pct",
    "texts_sent", "texts_delivered", "texts_delivered_pct",
    "urgent_tasks", "urgent_acknowledged", "median_minutes_to_acknowledge_urgent",
)


def to_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in report.rows:
        t = r.texts_delivered

        def pct(s: Share | None) -> str:
            return "" if s is None or s.percent is None else f"{s.percent:.1f}"

        w.writerow([
            r.hub, r.period_start.isoformat(), r.period_end.isoformat(), r.releases,
            r.accommodation_confirmed_by_release.numerator,
            pct(r.accommodation_confirmed_by_release),
            r.benefit_claim_before_release.numerator, pct(r.benefit_claim_before_release),
            r.first_appointment_attended.numerator, pct(r.first_appointment_attended),
            "" if t is None else t.denominator, "" if t is None else t.numerator, pct(t),
            r.urgent_tasks, r.urgent_acknowledged,
            "" if r.median_minutes_to_acknowledge_urgent is None
            else r.median_minutes_to_acknowledge_urgent,
        ])
    return buf.getvalue()
