"""The release itself: sudden dates, releases nobody was told of, moves, and returns to custody."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.common import Pathway, Severity, StaffRole
from streams.calendar import ReleaseCalendar
from streams.rules.base import (
    PLANNING_DAYS,
    POST_RELEASE_DAYS,
    Finding,
    Phase,
    RuleSpec,
    fmt,
    situation,
)
from streams.state import PersonState, ReturnKind

#: Less notice than this and the plan cannot be made in time.
NOTICE_DAYS = 14
TRANSFER_DAYS = 28

SHORT_NOTICE = RuleSpec(
    id="release_date.short_notice",
    title="Release date brought forward or notified at short notice",
    pathway=Pathway.ATTITUDES_THINKING_BEHAVIOUR,
    need="release_plan",
    owner=StaffRole.IOM_POLICE_OFFICER,
    also_notify=(StaffRole.PROBATION_PRACTITIONER,),
    source='[SC] release dates "can change significantly and suddenly": "a note one evening '
    'saying they would be released the next morning"',
    cleared="release day passed or the date changed again with enough notice",
    notify_open_owners=True,
    severities=(Severity.INFO, Severity.WARNING, Severity.URGENT),
)

UNKNOWN = RuleSpec(
    id="release.unknown",
    title="Released with no release date notified beforehand",
    pathway=Pathway.ATTITUDES_THINKING_BEHAVIOUR,
    need="release_plan",
    owner=StaffRole.HUB_MANAGER,
    also_notify=(StaffRole.PROBATION_PRACTITIONER, StaffRole.IOM_POLICE_OFFICER,
                 StaffRole.HOUSING_OFFICER),
    source='[NACRO] releases "not known to the IOM team"',
    cleared="more than four weeks since release",
    severities=(Severity.URGENT,),
)

TRANSFER = RuleSpec(
    id="custody.transfer_near_release",
    title="Moved to another prison within 28 days of release",
    pathway=Pathway.ATTITUDES_THINKING_BEHAVIOUR,
    need="release_plan",
    owner=StaffRole.OMU,
    also_notify=(StaffRole.HUB_MANAGER,),
    source="[NE] release planning fragmented when people move between prisons; OMU-led "
    '"whole prison" approach',
    cleared="released, or the release date moved",
)

BACK = RuleSpec(
    id="custody.back_in_custody",
    title="Back in custody (recall, remand or new sentence)",
    pathway=Pathway.ATTITUDES_THINKING_BEHAVIOUR,
    need="custody",
    owner=StaffRole.HUB_MANAGER,
    also_notify=(StaffRole.PROBATION_PRACTITIONER, StaffRole.IOM_POLICE_OFFICER),
    source="[HMIP] recall cases: cancel reminders and community tasks, notify the hub",
    cleared="a new release date was set, or four weeks passed",
    community=False,
    severities=(Severity.INFO,),
)

_RETURN_WORDS = {
    ReturnKind.RECALL: "Recalled",
    ReturnKind.REMAND: "Remanded in custody",
    ReturnKind.NEW_SENTENCE: "Received into custody on a new sentence",
}


def short_notice(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """Release dates "can change significantly and suddenly" — "a note one evening saying they
    would be released the next morning" [SC]. Flags a date brought forward, or notified with
    fewer than 14 days to go (urgent when overnight); tells every open task's owner.
    """
    sit = situation(state, now, cal)
    current = state.current_release
    if not sit.upcoming_within(PLANNING_DAYS) or current is None or current.new_date is None:
        return []
    release = current.new_date
    notified = cal.local_date(current.recorded_at)
    notice = (release - notified).days
    previous = current.previous_date
    if previous is None and len(state.history) > 1:
        previous = state.history[-2].new_date
    brought_forward = previous is not None and release < previous
    if notice >= NOTICE_DAYS and not brought_forward:
        return []
    release_moment = cal.at(release, 9)
    if notice <= 1:
        severity, within = Severity.URGENT, timedelta(hours=2)
    elif notice < NOTICE_DAYS:
        severity, within = Severity.WARNING, timedelta(hours=24)
    else:
        severity, within = Severity.INFO, timedelta(days=3)
    due = min(current.recorded_at + within, release_moment)
    told = "the day before" if notice == 1 else "the same day" if notice <= 0 else (
        f"{notice} days before")
    if brought_forward:
        assert previous is not None
        reason = f"Release brought forward from {fmt(previous)} to {fmt(release)}, notified {told}."
    else:
        reason = f"Release on {fmt(release)} was notified only {told}."
    return [SHORT_NOTICE.finding(sit, severity, due, reason)]


def unknown_release(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """A release "not known to the IOM team" [NACRO]: released with no date notified before, or
    earlier than the notified date. The hub must pick the person up the same day.
    """
    sit = situation(state, now, cal)
    if sit.phase is not Phase.RELEASED or not sit.recently_released or sit.released_at is None:
        return []
    released_on = cal.local_date(sit.released_at)
    known = [c for c in state.history if c.recorded_at <= sit.released_at]
    planned = known[-1].new_date if known else None
    if planned is not None and planned <= released_on:
        return []
    if planned is None:
        reason = f"Released on {fmt(released_on)} with no release date notified beforehand."
    else:
        reason = f"Released on {fmt(released_on)}, before the notified date {fmt(planned)}."
    return [UNKNOWN.finding(sit, Severity.URGENT, sit.released_at + timedelta(hours=4), reason)]


def transfer_near_release(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """A move between prisons in the last 28 days fragments release planning [NE]."""
    sit = situation(state, now, cal)
    if state.transferred_at is None or not sit.upcoming_within(TRANSFER_DAYS):
        return []
    assert sit.release_date is not None
    moved = cal.local_date(state.transferred_at)
    gap = (sit.release_date - moved).days
    if not 0 <= gap <= TRANSFER_DAYS:
        return []
    severity = Severity.URGENT if gap <= 7 else Severity.WARNING
    where = f" from {state.transferred_from}" if state.transferred_from else ""
    to = f" to {state.prison}" if state.prison else ""
    return [TRANSFER.finding(
        sit, severity, state.transferred_at + timedelta(hours=24),
        f"Moved{where}{to} on {fmt(moved)}, {gap} days before release on "
        f"{fmt(sit.release_date)}; check the release plan moved too.",
    )]


def back_in_custody(state: PersonState, now: datetime, cal: ReleaseCalendar) -> list[Finding]:
    """Recall, remand or a new sentence: community tasks and reminders stand down and the hub is
    told [HMIP recall cases]. This is the only finding while the person is back inside.
    """
    sit = situation(state, now, cal)
    if sit.phase is not Phase.BACK_IN_CUSTODY or state.returned_at is None:
        return []
    returned = cal.local_date(state.returned_at)
    if (sit.today - returned).days > POST_RELEASE_DAYS:
        return []
    words = _RETURN_WORDS[state.return_kind or ReturnKind.RECALL]
    return [BACK.finding(
        sit, Severity.INFO, state.returned_at + timedelta(hours=24),
        f"{words} on {fmt(returned)}; community tasks and reminders stand down.",
    )]
