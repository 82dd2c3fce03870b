"""Which reminders should exist for one person, now. Pure: facts and a clock in, a plan out.

The plan is the *desired* set, keyed by idempotency key ``prison_number|appointment|kind``;
:mod:`consumers.notifications.store` makes the table match it (insert the new, move the changed,
cancel the unwanted) and never touches a text already sent.

Rules:
- nothing without recorded consent, a valid UK mobile, and no opt-out;
- nothing (so everything pending is cancelled) once a person is back in custody or unlawfully at
  large;
- a welcome text before any other;
- on the release day, a text naming the first appointment (time, place, who to ask for);
- for each booked appointment: the evening before (``sms_evening_before_time``) and about
  ``sms_hours_before`` hours before;
- a reminder whose moment has passed is sent now if still useful (before its ``latest``), else
  dropped; quiet hours move it to the morning or drop it (see :mod:`quiet_hours`);
- before release, appointment reminders that would fall before the release day are dropped (the
  release-day text names the first appointment instead);
- an appointment moved after a text named its old time gets a "changed" text now (key
  ``…|changed@<new time>``, so each move is told once); one cancelled after a text named it
  gets a "cancelled" text. Reminders already sent are never re-sent; the ones not yet sent move.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from consumers.notifications import templates
from consumers.notifications.quiet_hours import QuietHours, parse_hhmm
from infra.config import Settings
from infra.models.messages import CustodyState

WELCOME = "welcome"
DAY_OF_RELEASE = "day_of_release"
EVENING_BEFORE = "evening_before"
HOURS_BEFORE = "hours_before"
CHANGED = "changed"
CANCELLED = "cancelled"
PERSON_KINDS = (WELCOME, DAY_OF_RELEASE, EVENING_BEFORE, HOURS_BEFORE, CHANGED, CANCELLED)

#: The on-the-day reminder is pointless closer than this to the appointment.
MIN_LEAD = timedelta(minutes=30)
ACTIVE_APPOINTMENT = ("booked", "moved")


def reminder_key(prison_number: str, appointment_id: str | None, kind: str) -> str:
    return f"{prison_number}|{appointment_id or '-'}|{kind}"


@dataclass(frozen=True)
class AppointmentFacts:
    appointment_id: str
    kind: str
    status: str
    at: datetime | None
    place: str | None = None
    with_whom: str | None = None
    told_for: datetime | None = None  # the time the person was last told by text


@dataclass(frozen=True)
class PersonFacts:
    prison_number: str
    mobile_e164: str | None
    sms_consent: bool | None
    opted_out: bool
    custody: CustodyState
    release_date: date | None = None
    released_at: datetime | None = None
    appointments: tuple[AppointmentFacts, ...] = field(default_factory=tuple)
    #: Local date on which a day-of-release text last went (or may have gone) to the person.
    release_text_sent_on: date | None = None


@dataclass(frozen=True)
class Policy:
    tz: str
    quiet: QuietHours
    evening_time: time
    hours_before: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            tz=settings.timezone,
            quiet=QuietHours.from_settings(settings),
            evening_time=parse_hhmm(settings.sms_evening_before_time),
            hours_before=timedelta(hours=settings.sms_hours_before),
        )

    def local_start(self, day: date) -> datetime:
        return datetime.combine(day, time(0, 0), tzinfo=ZoneInfo(self.tz))

    def local_date(self, at: datetime) -> date:
        return at.astimezone(ZoneInfo(self.tz)).date()


@dataclass(frozen=True)
class PlannedReminder:
    key: str
    prison_number: str
    kind: str
    appointment_id: str | None
    send_at: datetime
    expires_at: datetime | None
    body: str


def may_text(facts: PersonFacts) -> bool:
    return (
        facts.sms_consent is True
        and not facts.opted_out
        and facts.mobile_e164 is not None
        and facts.custody not in (CustodyState.RETURNED, CustodyState.UNLAWFULLY_AT_LARGE)
    )


def _timed(planned: datetime, latest: datetime | None, now: datetime, policy: Policy
           ) -> datetime | None:
    at = max(planned, now)
    if latest is not None and at > latest:
        return None
    return policy.quiet.shift(at, latest)


def _text(appt: AppointmentFacts) -> templates.AppointmentText:
    assert appt.at is not None
    return templates.AppointmentText(appt.kind, appt.at, appt.place, appt.with_whom)


def plan(facts: PersonFacts, now: datetime, policy: Policy) -> dict[str, PlannedReminder]:
    if not may_text(facts):
        return {}
    pn = facts.prison_number
    booked = sorted(
        (a for a in facts.appointments
         if a.status in ACTIVE_APPOINTMENT and a.at is not None and a.at > now),
        key=lambda a: a.at,  # type: ignore[arg-type, return-value]
    )
    out: list[PlannedReminder] = []

    def add(kind: str, appt: AppointmentFacts | None, send_at: datetime | None,
            latest: datetime | None, body: str) -> None:
        if send_at is not None:
            appt_id = appt.appointment_id if appt else None
            out.append(PlannedReminder(reminder_key(pn, appt_id, kind), pn, kind, appt_id,
                                       send_at, latest, body))

    # Before release, nothing is useful earlier than the morning of the release day.
    release_day_start: datetime | None = None
    if facts.custody is CustodyState.PRE_RELEASE and facts.release_date is not None:
        release_day_start = policy.local_start(facts.release_date)

    release_text_for: str | None = None
    release_text_at: datetime | None = None
    # One day-of-release text per release: it names the first appointment still to come, and
    # once it has gone, that appointment being attended (or moved) must not make the next one
    # "first" and text the person again.
    release_texted = (facts.release_date is not None and facts.release_text_sent_on is not None
                      and facts.release_text_sent_on >= facts.release_date)
    if facts.release_date is not None and not release_texted and (
        facts.custody is CustodyState.PRE_RELEASE
        or (facts.released_at is not None
            and policy.local_date(facts.released_at) == facts.release_date)
    ):
        day_start = policy.local_start(facts.release_date)
        first = next((a for a in booked if a.at and a.at >= day_start), None)
        if first is not None and first.at is not None:
            morning = datetime.combine(facts.release_date, policy.quiet.end,
                                       tzinfo=ZoneInfo(policy.tz))
            if facts.released_at is not None:
                morning = max(morning, facts.released_at)
            release_text_at = _timed(morning, first.at - MIN_LEAD, now, policy)
            release_text_for = first.appointment_id
            add(DAY_OF_RELEASE, first, release_text_at, first.at,
                templates.day_of_release(_text(first), policy.tz))

    for appt in booked:
        assert appt.at is not None
        day = policy.local_date(appt.at)
        evening = datetime.combine(day - timedelta(days=1), policy.evening_time,
                                   tzinfo=ZoneInfo(policy.tz))
        latest_evening = policy.local_start(day)
        at = _timed(evening, latest_evening, now, policy)
        if at is not None and (release_day_start is None or at >= release_day_start):
            add(EVENING_BEFORE, appt, at, latest_evening,
                templates.evening_before(_text(appt), policy.tz))
        at = _timed(appt.at - policy.hours_before, appt.at - MIN_LEAD, now, policy)
        if at is not None and release_day_start is not None and at < release_day_start:
            at = None
        if (at is not None and release_text_for == appt.appointment_id
                and release_text_at is not None and abs(at - release_text_at) < timedelta(hours=1)):
            at = None  # the release-day text an hour earlier already says it
        if at is not None:
            add(HOURS_BEFORE, appt, at, appt.at - MIN_LEAD,
                templates.hours_before(_text(appt), policy.tz))

    # Out of prison: welcome now (quiet hours allowing). Before release: just ahead of the first
    # text, on the release day. Dispatch also holds other texts until the welcome has gone.
    for appt in facts.appointments:
        told = appt.told_for
        if told is None or told <= now:
            continue
        if appt.status in ACTIVE_APPOINTMENT and appt.at is not None and appt.at > now \
                and appt.at != told:
            at = _timed(now, appt.at - MIN_LEAD, now, policy)
            if at is not None:
                out.append(PlannedReminder(
                    reminder_key(pn, appt.appointment_id, f"{CHANGED}@{appt.at:%Y%m%dT%H%M}"),
                    pn, CHANGED, appt.appointment_id, at, appt.at,
                    templates.changed(_text(appt), policy.tz)))
        elif appt.status == "cancelled":
            at = _timed(now, told, now, policy)
            if at is not None:
                out.append(PlannedReminder(
                    reminder_key(pn, appt.appointment_id, CANCELLED), pn, CANCELLED,
                    appt.appointment_id, at, told,
                    templates.cancelled(templates.AppointmentText(
                        appt.kind, told, appt.place, appt.with_whom), policy.tz)))

    welcome_at: datetime | None = None
    if facts.custody is CustodyState.RELEASED:
        welcome_at = _timed(now, None, now, policy)
    elif out:
        welcome_at = min(r.send_at for r in out)
    if welcome_at is not None:
        add(WELCOME, None, welcome_at, None, templates.welcome())
    return {r.key: r for r in out}


def first_upcoming(appointments: Iterable[AppointmentFacts], now: datetime
                   ) -> AppointmentFacts | None:
    upcoming = [a for a in appointments
                if a.status in ACTIVE_APPOINTMENT and a.at is not None and a.at > now]
    return min(upcoming, key=lambda a: a.at) if upcoming else None  # type: ignore[arg-type, return-value]
