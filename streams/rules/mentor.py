"""Short sentences: no statutory supervision, so a peer mentor is the support at the gate."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.common import Pathway, Severity, StaffRole
from streams.calendar import ReleaseCalendar
from streams.rules.base import Finding, Phase, RuleSpec, fmt, situation
from streams.state import PersonState

MENTOR_DAYS = 14

NO_MENTOR = RuleSpec(
    id="mentor.short_sentence",
    title="Short sentence with no peer mentor within 14 days of release",
    pathway=Pathway.ATTITUDES_THINKING_BEHAVIOUR,
    need="mentor",
    owner=StaffRole.MENTOR_COORDINATOR,
    source='[SC] short-sentence prisoners have a "70-76% chance of being re-incarcerated within '
    'two years"; [NE] mentors "in the days following their release"',
    cleared="peer mentor assigned",
)


def short_sentence_no_mentor(
    state: PersonState, now: datetime, cal: ReleaseCalendar
) -> list[Finding]:
    """Sentence under 12 months or no statutory supervision, release within 14 days and no peer
    mentor: [SC] "70-76% chance of being re-incarcerated within two years"; [NE] mentors "in the
    days following their release".
    """
    if not state.short_sentence or state.mentor:
        return []
    sit = situation(state, now, cal)
    if sit.phase is Phase.RELEASED and sit.recently_released and sit.released_at:
        return [NO_MENTOR.finding(
            sit, Severity.URGENT, sit.released_at + timedelta(hours=24),
            f"Short sentence, released on {fmt(cal.local_date(sit.released_at))} with no peer "
            "mentor.",
        )]
    if not sit.within(MENTOR_DAYS):
        return []
    assert sit.release_date is not None
    return [NO_MENTOR.finding(
        sit, Severity.WARNING, cal.at(sit.release_date - timedelta(days=2), 17),
        f"Short sentence, release on {fmt(sit.release_date)} with no peer mentor arranged.",
    )]
