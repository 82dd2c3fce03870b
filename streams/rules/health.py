"""Continuity of care through the gate: prescriptions and GP registration."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.common import Pathway, PathwayStatus, Severity, StaffRole
from schemas.events import AppointmentKind
from streams.calendar import ReleaseCalendar
from streams.rules.base import Finding, Phase, RuleSpec, fmt, situation
from streams.state import PersonState

CONTINUITY_DAYS = 7

CONTINUITY = RuleSpec(
    id="health.continuity",
    title="Treatment in custody with no community prescriber or GP arranged",
    pathway=Pathway.DRUGS_ALCOHOL,
    need="continuity_of_care",
    owner=StaffRole.DRUG_ALCOHOL_WORKER,
    source='[NE] drug information shared "into and out of prisons"; [HMIP] GP catchment lost '
    "on release, leaving people without medication",
    cleared="community prescriber or GP arranged",
)


def _booked(state: PersonState, kind: AppointmentKind) -> bool:
    return any(a.kind is kind and a.live for a in state.appointments.values())


def continuity(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """Opiate substitution or other medication in custody, release within 7 days, and no
    community prescriber or GP arranged ([NE] "into and out of prisons"; [HMIP] GP catchment
    lost, no medication).
    """
    declined = (PathwayStatus.DECLINED, PathwayStatus.SUPPORT_NOT_REQUIRED)
    needs: list[str] = []
    if (
        state.opiate_substitution
        and not (state.prescriber_booked or _booked(state, AppointmentKind.PRESCRIBER))
        and state.pathways.get(Pathway.DRUGS_ALCOHOL) not in declined
    ):
        needs.append("community prescriber")
    if (
        state.medication_in_custody
        and not (state.gp_registered or _booked(state, AppointmentKind.GP))
        and state.pathways.get(Pathway.HEALTH) not in declined
    ):
        needs.append("GP")
    if not needs:
        return []
    sit = situation(state, now, cal)
    what = " or ".join(needs)
    pathway = Pathway.DRUGS_ALCOHOL if "community prescriber" in needs else Pathway.HEALTH
    # A gap in substitution treatment at release is the dangerous one: always urgent.
    opiate = pathway is Pathway.DRUGS_ALCOHOL
    if sit.phase is Phase.RELEASED and sit.recently_released and sit.released_at:
        return [CONTINUITY.finding(
            sit, Severity.URGENT, sit.released_at + timedelta(hours=24),
            f"Released on {fmt(cal.local_date(sit.released_at))} with no {what} arranged.",
            pathway=pathway,
        )]
    if not sit.within(CONTINUITY_DAYS):
        return []
    assert sit.release_date is not None and sit.days_to_release is not None
    severity = Severity.URGENT if opiate or sit.days_to_release <= 2 else Severity.WARNING
    return [CONTINUITY.finding(
        sit, severity, cal.at(sit.release_date - timedelta(days=1), 17),
        f"Release on {fmt(sit.release_date)} with no {what} arranged.",
        pathway=pathway,
    )]
