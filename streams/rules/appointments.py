"""Appointments: met at the gate, and followed up when missed."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.common import Pathway, Severity, StaffRole
from schemas.events import AppointmentAction, AppointmentKind
from streams.calendar import ReleaseCalendar
from streams.rules.base import Finding, Phase, RuleSpec, fmt, situation
from streams.state import PersonState

FIRST_APPOINTMENT_DAYS = 7

FIRST = RuleSpec(
    id="appointment.first_missing",
    title="No first supervision appointment booked for release day",
    pathway=Pathway.ATTITUDES_THINKING_BEHAVIOUR,
    need="first_appointment",
    owner=StaffRole.PROBATION_PRACTITIONER,
    also_notify=(StaffRole.IOM_POLICE_OFFICER,),
    source="[HMIP] met at the gate and taken to the first appointment; an offender manager "
    '"sent him texts on the day to remind him of his appointments. He attended all his '
    'appointments"',
    cleared="first appointment booked, or release day passed",
)

MISSED = RuleSpec(
    id="appointment.missed",
    title="Missed appointment (one: follow up within 24 hours; two: escalate)",
    pathway=Pathway.ATTITUDES_THINKING_BEHAVIOUR,
    need="engagement",
    owner=StaffRole.PROBATION_PRACTITIONER,
    also_notify=(StaffRole.IOM_POLICE_OFFICER,),
    source='[HMIP] "Following two missed appointments he was close to being returned to court"',
    cleared="a later appointment was attended",
)


def first_appointment(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """Release within 7 days and no appointment with the supervising officer booked for release
    day: the good practice was meeting people at the gate [HMIP].
    """
    if state.statutory_supervision is False:
        return []  # no supervising officer; the short-sentence mentor rule covers them
    sit = situation(state, now, cal)
    if not sit.upcoming_within(FIRST_APPOINTMENT_DAYS):
        return []
    assert sit.release_date is not None and sit.days_to_release is not None
    days = {sit.release_date, cal.effective_release_day(sit.release_date)}
    for appt in state.appointments.values():
        if (
            appt.kind is AppointmentKind.SUPERVISION and appt.live and appt.at is not None
            and cal.local_date(appt.at) in days
        ):
            return []
    severity = Severity.URGENT if sit.days_to_release <= 2 else Severity.WARNING
    return [FIRST.finding(
        sit, severity, cal.at(sit.release_date - timedelta(days=1), 17),
        f"No first supervision appointment booked for release day, {fmt(sit.release_date)}.",
    )]


def missed_appointment(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """The latest appointment was missed: one miss is a task within 24 hours, two in a row are
    escalated — "Following two missed appointments he was close to being returned to court"
    [HMIP]. Clears when a later appointment is attended.
    """
    outcomes = [
        (appt.at or appt.last_missed_at, appt)
        for appt in state.appointments.values()
        if appt.status in (AppointmentAction.MISSED, AppointmentAction.ATTENDED)
        and (appt.at or appt.last_missed_at) is not None
    ]
    if not outcomes:
        return []
    sit = situation(state, now, cal)
    if sit.phase in (Phase.DEAD, Phase.BACK_IN_CUSTODY, Phase.UNLAWFULLY_AT_LARGE):
        return []
    outcomes.sort(key=lambda o: (o[0], o[1].status_stamp))
    latest_at, latest = outcomes[-1]
    if latest.status is not AppointmentAction.MISSED:
        return []
    attended = [t for t, a in outcomes if a.status is AppointmentAction.ATTENDED]
    since = attended[-1] if attended else None
    count = sum(a.missed_count or 1 for t, a in outcomes
                if a.status is AppointmentAction.MISSED and (since is None or t > since))
    noticed = latest.last_missed_at or latest_at
    assert noticed is not None and latest_at is not None
    when = fmt(cal.local_date(latest_at))
    if count >= 2:
        return [MISSED.finding(
            sit, Severity.URGENT, noticed + timedelta(hours=4),
            f"{count} appointments missed in a row, the latest on {when}; escalate.",
            also_notify=(
                StaffRole.IOM_POLICE_OFFICER, StaffRole.HUB_MANAGER, StaffRole.PEER_MENTOR,
            ),
        )]
    return [MISSED.finding(
        sit, Severity.WARNING, noticed + timedelta(hours=24),
        f"Appointment missed on {when}; make contact within 24 hours.",
    )]
