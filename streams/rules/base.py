"""What every rule shares: the finding it returns, its catalogue entry, and where the person is.

A rule is a pure function ``(state, now, calendar) -> list[Finding]``. Rules depend on ``now``
only through the local date, and every due time is computed from facts (never from ``now``), so
evaluating the same state twice on the same day gives identical findings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache

from schemas.common import Pathway, Severity, StaffRole
from streams.calendar import ReleaseCalendar
from streams.state import CustodyStatus, PersonState

#: The Duty to Refer window: housing must be referred 56 days before release.
PLANNING_DAYS = 56
#: After release, rules keep watching for this long (the resettlement period).
POST_RELEASE_DAYS = 28


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """Something a rule found wrong with a person's plan, right now.

    A plain value, not a pydantic model: rules make one per rule per evaluation, their fields
    come from the catalogue and the validated state, and the alert built from it is the edge
    that the contract checks (tests/faults/test_security.py validates every alert sent)."""

    rule_id: str
    need: str
    pathway: Pathway
    severity: Severity
    owner_role: StaffRole
    also_notify: tuple[StaffRole, ...] = ()
    due_at: datetime
    reason: str
    practice: str
    release_date: date | None = None
    pre_release: bool = True
    suggested_release_date: date | None = None


@dataclass(frozen=True)
class RuleSpec:
    """A catalogue entry: what the rule is, who owns it, and the practice it encodes."""

    id: str
    title: str
    pathway: Pathway
    need: str
    owner: StaffRole
    source: str
    cleared: str  # why an alert from this rule closes by itself, in plain words
    also_notify: tuple[StaffRole, ...] = ()
    community: bool = True  # stands down when the person is back in custody
    notify_open_owners: bool = False  # also tell everyone who owns an open alert for the person
    severities: tuple[Severity, ...] = (Severity.WARNING, Severity.URGENT)  # what it can raise

    def finding(
        self,
        sit: Situation,
        severity: Severity,
        due_at: datetime,
        reason: str,
        *,
        also_notify: tuple[StaffRole, ...] | None = None,
        suggested_release_date: date | None = None,
        pathway: Pathway | None = None,
    ) -> Finding:
        return Finding(
            rule_id=self.id,
            need=self.need,
            pathway=pathway or self.pathway,
            severity=severity,
            owner_role=self.owner,
            also_notify=self.also_notify if also_notify is None else also_notify,
            due_at=due_at,
            reason=reason,
            practice=self.source,
            release_date=sit.release_date,
            pre_release=sit.phase is Phase.PRE_RELEASE,
            suggested_release_date=suggested_release_date,
        )


RuleCheck = Callable[[PersonState, datetime, ReleaseCalendar], list[Finding]]


@dataclass(frozen=True)
class Rule:
    spec: RuleSpec
    check: RuleCheck


# ---------------------------------------------------------------------- where the person is


class Phase(StrEnum):
    NO_PLAN = "no_plan"  # in custody with no release date
    PRE_RELEASE = "pre_release"
    RELEASED = "released"
    BACK_IN_CUSTODY = "back_in_custody"
    UNLAWFULLY_AT_LARGE = "unlawfully_at_large"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Situation:
    phase: Phase
    today: date
    #: The date alerts are anchored to: the notified date, else the day actually released.
    release_date: date | None
    days_to_release: int | None = None  # pre-release only; negative when the date has passed
    days_since_release: int | None = None  # released only
    released_at: datetime | None = None

    def within(self, days: int) -> bool:
        """Release is due within ``days`` (and the date has not long passed)."""
        d = self.days_to_release
        return d is not None and -POST_RELEASE_DAYS <= d <= days

    def upcoming_within(self, days: int) -> bool:
        d = self.days_to_release
        return d is not None and 0 <= d <= days

    @property
    def recently_released(self) -> bool:
        d = self.days_since_release
        return d is not None and d <= POST_RELEASE_DAYS


def situation(state: PersonState, now: datetime, cal: ReleaseCalendar) -> Situation:
    """Where the person is at ``now``. Every rule asks; the answer is worked out once."""
    memo = cal.memo
    if memo is not None and memo[0] is state and memo[1] == now:
        return memo[2]  # type: ignore[no-any-return]
    sit = _situation(state, now, cal)
    cal.memo = (state, now, sit)
    return sit


def phase_of(state: PersonState) -> Phase:
    """The phase depends on the state alone: only an event moves a person between phases."""
    if state.custody is CustodyStatus.DEAD:
        return Phase.DEAD
    if state.back_in_custody:
        return Phase.BACK_IN_CUSTODY
    if state.custody is CustodyStatus.UNLAWFULLY_AT_LARGE:
        return Phase.UNLAWFULLY_AT_LARGE
    if state.custody is CustodyStatus.RELEASED and state.released_at is not None:
        return Phase.RELEASED
    if state.release_date is not None:
        return Phase.PRE_RELEASE
    return Phase.NO_PLAN


def _situation(state: PersonState, now: datetime, cal: ReleaseCalendar) -> Situation:
    today = cal.local_date(now)
    planned = state.release_date
    phase = phase_of(state)
    if phase is Phase.RELEASED:
        assert state.released_at is not None
        day = cal.local_date(state.released_at)
        return Situation(
            phase, today, planned or day,
            days_since_release=(today - day).days, released_at=state.released_at,
        )
    if phase is Phase.PRE_RELEASE:
        assert planned is not None
        return Situation(phase, today, planned, days_to_release=(planned - today).days)
    return Situation(phase, today, planned if phase is not Phase.NO_PLAN else None)


#: Days, relative to the release date, on which some rule's window opens, closes or escalates,
#: while the person waits for release. Rules read "now" only through the local date and compare
#: it to these offsets, so findings can change with time alone only on these days
#: (tests/streams/test_wake.py checks every rule, day by day).
RELEASE_DATE_CHANGES = (-PLANNING_DAYS, -28, -14, -7, -2, 1, POST_RELEASE_DAYS + 1)
#: The same, relative to the day of release (once released) and the day of a return to custody.
RELEASED_CHANGES = (0, POST_RELEASE_DAYS + 1)
RETURN_CHANGES = (0, POST_RELEASE_DAYS + 1)


def change_days(state: PersonState, cal: ReleaseCalendar) -> list[int]:
    """Local dates (ordinals) on which this person's findings may change with no new event.

    Only the current phase's days count: the phase changes only with an event, and the event
    works the days out again. (Counting every phase's days woke a third of the people a sweep
    unpacked for nothing.)"""
    phase = phase_of(state)
    if phase is Phase.PRE_RELEASE:
        assert state.release_date is not None
        r = state.release_date.toordinal()
        return [r + k for k in RELEASE_DATE_CHANGES]
    if phase is Phase.RELEASED:
        assert state.released_at is not None
        d = cal.local_date(state.released_at).toordinal()
        return [d + k for k in RELEASED_CHANGES]
    if phase is Phase.BACK_IN_CUSTODY and state.returned_at is not None:
        t = cal.local_date(state.returned_at).toordinal()
        return [t + k for k in RETURN_CHANGES]
    return []


@lru_cache(maxsize=4096)
def fmt(d: date) -> str:
    """A date as people write it: Fri 11 Dec 2026."""
    return f"{d:%a} {d.day} {d:%b %Y}"


def escalate(severity: Severity, to: Severity) -> Severity:
    return to if to.rank > severity.rank else severity
