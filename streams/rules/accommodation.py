"""Accommodation: the pathway the North East called "the most important and most challenging"."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.common import Pathway, Severity, StaffRole
from schemas.events import AccommodationStatus
from streams.calendar import ReleaseCalendar
from streams.rules.base import PLANNING_DAYS, Finding, Phase, RuleSpec, fmt, situation
from streams.state import PersonState

FRIDAY = RuleSpec(
    id="release.friday_or_pre_holiday",
    title="Friday or pre-holiday release without confirmed accommodation",
    pathway=Pathway.ACCOMMODATION,
    need="accommodation",
    owner=StaffRole.HOUSING_OFFICER,
    also_notify=(StaffRole.OMU,),
    source='[SC] "Unexpected release on a Friday should only take place where it is genuinely '
    'unavoidable"; Offenders (Day of Release from Detention) Act 2023: up to two working days '
    "earlier",
    cleared="accommodation confirmed, or the release day moved off a Friday / pre-holiday day",
)

NONE = RuleSpec(
    id="accommodation.none",
    title="No confirmed accommodation (56 / 28 / 7 / 2 days before release, 48 hours after)",
    pathway=Pathway.ACCOMMODATION,
    need="accommodation",
    owner=StaffRole.HOUSING_OFFICER,
    source='[SC] without "shelter and occupation within 48 hours" a person is "almost inevitably '
    'going to reoffend"; [NE] accommodation is "the most important and most challenging '
    'resettlement pathway"; Duty to Refer: 56 days',
    cleared="accommodation confirmed",
    severities=(Severity.INFO, Severity.WARNING, Severity.URGENT),
)

UNVERIFIED = RuleSpec(
    id="accommodation.unverified",
    title="Declared address is a night shelter or has not been checked",
    pathway=Pathway.ACCOMMODATION,
    need="accommodation",
    owner=StaffRole.HOUSING_OFFICER,
    source='[SC] "There is no process of checking addresses"',
    cleared="address checked and confirmed",
)

#: Days before release -> (severity, days before release the work is due, who else hears).
_TIERS: tuple[tuple[int, Severity, int, tuple[StaffRole, ...]], ...] = (
    (2, Severity.URGENT, 1, (StaffRole.PROBATION_PRACTITIONER, StaffRole.HUB_MANAGER)),
    (7, Severity.URGENT, 2, (StaffRole.PROBATION_PRACTITIONER,)),
    (28, Severity.WARNING, 7, ()),
    (PLANNING_DAYS, Severity.INFO, 28, ()),
)


def friday_release(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """Releases bunch on Fridays, when "agencies can find it particularly difficult to provide
    housing in time" [SC]. Flags a release due on a Friday or the last working day before a
    bank holiday with accommodation not confirmed, and suggests the earliest lawful earlier day.
    """
    sit = situation(state, now, cal)
    if not sit.upcoming_within(PLANNING_DAYS) or state.accommodation_confirmed:
        return []
    assert sit.release_date is not None and sit.days_to_release is not None
    if not cal.is_friday_or_pre_holiday_release(sit.release_date):
        return []
    actual = cal.effective_release_day(sit.release_date)
    after = actual + timedelta(days=1)
    before = cal.bank_holiday(after) or "the weekend"
    suggested = cal.earliest_lawful_release_day(sit.release_date)
    severity = Severity.URGENT if sit.days_to_release <= 7 else Severity.WARNING
    decide_by = cal.previous_working_day(suggested or actual)
    reason = f"Release on {fmt(actual)}, just before {before}, with no confirmed accommodation"
    if suggested:
        reason += f"; consider release on {fmt(suggested)}"
    return [FRIDAY.finding(
        sit, severity, cal.at(decide_by, 12), reason + ".", suggested_release_date=suggested,
    )]


def no_accommodation(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """No confirmed address as release nears: 56 days (Duty to Refer), 28, 7 and 2 days, each
    more urgent; after release, someone needs "shelter and occupation within 48 hours" [SC].
    """
    if state.accommodation_confirmed or state.accommodation in (
        AccommodationStatus.SHELTER, AccommodationStatus.UNVERIFIED,
    ):
        return []  # a declared but doubtful address is the "unverified" rule's business
    sit = situation(state, now, cal)
    if sit.phase is Phase.RELEASED and sit.recently_released and sit.released_at:
        return [NONE.finding(
            sit, Severity.URGENT, sit.released_at + timedelta(hours=48),
            f"Released on {fmt(cal.local_date(sit.released_at))} with no confirmed "
            "accommodation; shelter is needed within 48 hours.",
            also_notify=(StaffRole.PROBATION_PRACTITIONER, StaffRole.HUB_MANAGER),
        )]
    if not sit.within(PLANNING_DAYS):
        return []
    assert sit.release_date is not None and sit.days_to_release is not None
    for days, severity, due_before, notify in _TIERS:
        if sit.days_to_release <= days:
            due = cal.at(sit.release_date - timedelta(days=due_before), 17)
            reason = (
                f"No confirmed accommodation for release on {fmt(sit.release_date)} "
                f"({days}-day check)."
            )
            return [NONE.finding(sit, severity, due, reason, also_notify=notify)]
    return []


def unverified_address(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """A night shelter or an address nobody has checked is not a plan: "There is no process of
    checking addresses" [SC].
    """
    if state.accommodation not in (AccommodationStatus.SHELTER, AccommodationStatus.UNVERIFIED):
        return []
    if state.accommodation_confirmed:
        return []
    sit = situation(state, now, cal)
    what = (
        "a night shelter, not settled accommodation"
        if state.accommodation is AccommodationStatus.SHELTER
        else "not checked"
    )
    if sit.phase is Phase.RELEASED and sit.recently_released and sit.released_at:
        return [UNVERIFIED.finding(
            sit, Severity.URGENT, sit.released_at + timedelta(hours=48),
            f"Released on {fmt(cal.local_date(sit.released_at))}; the declared address is {what}.",
        )]
    if not sit.within(PLANNING_DAYS):
        return []
    assert sit.release_date is not None and sit.days_to_release is not None
    near = sit.days_to_release <= 7
    due = cal.at(sit.release_date - timedelta(days=1 if near else 7), 17)
    return [UNVERIFIED.finding(
        sit, Severity.URGENT if near else Severity.WARNING, due,
        f"Release on {fmt(sit.release_date)}; the declared address is {what}.",
    )]
