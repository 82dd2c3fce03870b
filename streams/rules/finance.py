"""Money and ID: the discharge grant was £46 and a claim "does not normally come through until
3 weeks after application" [SC], so the claim must be made before the gate."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.common import Pathway, PathwayStatus, Severity, StaffRole
from streams.calendar import ReleaseCalendar
from streams.rules.base import Finding, Phase, RuleSpec, Situation, fmt, situation
from streams.state import PersonState

BENEFITS_DAYS = 14

_SOURCE = (
    '[SC] target "first benefit payment arrives at the end of the first week after release"; '
    'a claim "does not normally come through until 3 weeks after application"'
)

NO_CLAIM = RuleSpec(
    id="benefits.no_claim",
    title="No benefit claim or Jobcentre appointment within 14 days of release",
    pathway=Pathway.FINANCE_ID,
    need="benefits",
    owner=StaffRole.WORK_COACH,
    also_notify=(StaffRole.PEER_MENTOR,),
    source=_SOURCE,
    cleared="benefit claim made or Jobcentre appointment booked",
)
NO_ID = RuleSpec(
    id="benefits.no_id",
    title="No ID within 14 days of release",
    pathway=Pathway.FINANCE_ID,
    need="identity_documents",
    owner=StaffRole.WORK_COACH,
    also_notify=(StaffRole.PEER_MENTOR,),
    source=_SOURCE + "; a claim and a bank account need ID",
    cleared="ID held",
)
NO_BANK = RuleSpec(
    id="benefits.no_bank_account",
    title="No bank account within 14 days of release",
    pathway=Pathway.FINANCE_ID,
    need="bank_account",
    owner=StaffRole.WORK_COACH,
    also_notify=(StaffRole.PEER_MENTOR,),
    source=_SOURCE + "; benefits are paid into a bank account",
    cleared="bank account opened",
)

_SETTLED = (PathwayStatus.DONE, PathwayStatus.SUPPORT_NOT_REQUIRED, PathwayStatus.DECLINED)


def _gap(
    spec: RuleSpec, sit: Situation, cal: ReleaseCalendar, missing: str
) -> list[Finding]:
    if sit.phase is Phase.RELEASED and sit.recently_released and sit.released_at:
        return [spec.finding(
            sit, Severity.URGENT, sit.released_at + timedelta(hours=24),
            f"Released on {fmt(cal.local_date(sit.released_at))} with {missing}.",
        )]
    if not sit.within(BENEFITS_DAYS):
        return []
    assert sit.release_date is not None and sit.days_to_release is not None
    if sit.days_to_release <= 2:
        severity, due = Severity.URGENT, cal.at(sit.release_date, 17)
    else:
        severity, due = Severity.WARNING, cal.at(sit.release_date - timedelta(days=7), 17)
    return [spec.finding(sit, severity, due, f"Release on {fmt(sit.release_date)} with {missing}.")]


def _applies(state: PersonState) -> bool:
    return state.pathways.get(Pathway.FINANCE_ID) not in _SETTLED


def no_benefit_claim(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """Release within 14 days and no benefit claim made or Jobcentre appointment booked, so the
    first payment will not arrive "at the end of the first week after release" [SC].
    """
    if state.benefit_claim_made or state.jobcentre_appointment is not None or not _applies(state):
        return []
    return _gap(NO_CLAIM, situation(state, now, cal), cal,
                "no benefit claim made and no Jobcentre appointment booked")


def no_id(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """Release within 14 days and no ID held: a claim and a bank account both need it [SC]."""
    if state.id_held or not _applies(state):
        return []
    return _gap(NO_ID, situation(state, now, cal), cal, "no ID recorded")


def no_bank_account(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """Release within 14 days and no bank account to be paid into [SC]."""
    if state.bank_account or not _applies(state):
        return []
    return _gap(NO_BANK, situation(state, now, cal), cal, "no bank account recorded")
