"""Every rule, registered once: what ``ttg rules`` lists and what the worker evaluates."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from schemas.common import StaffRole
from schemas.outputs import Alert
from streams.calendar import ReleaseCalendar
from streams.rules import accommodation, appointments, finance, health, mentor, release
from streams.rules.base import Finding, Phase, Rule, situation
from streams.state import PersonState

CATALOGUE: tuple[Rule, ...] = (
    Rule(accommodation.FRIDAY, accommodation.friday_release),
    Rule(accommodation.NONE, accommodation.no_accommodation),
    Rule(accommodation.UNVERIFIED, accommodation.unverified_address),
    Rule(release.SHORT_NOTICE, release.short_notice),
    Rule(release.UNKNOWN, release.unknown_release),
    Rule(finance.NO_CLAIM, finance.no_benefit_claim),
    Rule(finance.NO_ID, finance.no_id),
    Rule(finance.NO_BANK, finance.no_bank_account),
    Rule(health.CONTINUITY, health.continuity),
    Rule(appointments.FIRST, appointments.first_appointment),
    Rule(appointments.MISSED, appointments.missed_appointment),
    Rule(mentor.NO_MENTOR, mentor.short_sentence_no_mentor),
    Rule(release.TRANSFER, release.transfer_near_release),
    Rule(release.BACK, release.back_in_custody),
)

BY_ID: dict[str, Rule] = {r.spec.id: r for r in CATALOGUE}
_STAND_DOWN = {Phase.BACK_IN_CUSTODY, Phase.UNLAWFULLY_AT_LARGE, Phase.DEAD}


def evaluate(
    state: PersonState, now: datetime, cal: ReleaseCalendar, rules: tuple[Rule, ...] = CATALOGUE
) -> list[Finding]:
    """All findings for one person at ``now``, in catalogue order."""
    phase = situation(state, now, cal).phase
    if phase is Phase.DEAD:
        return []
    community = phase not in _STAND_DOWN
    findings: list[Finding] = []
    for rule in rules:
        if community or not rule.spec.community:
            findings.extend(rule.check(state, now, cal))
    return _notify_open_owners(findings)


def _notify_open_owners(findings: list[Finding]) -> list[Finding]:
    wanted = {id(f) for f in findings if BY_ID[f.rule_id].spec.notify_open_owners}
    if not wanted:
        return findings
    out: list[Finding] = []
    for f in findings:
        if id(f) in wanted:
            others = {o.owner_role for o in findings if o is not f} - {f.owner_role}
            notify = tuple(sorted(set(f.also_notify) | others, key=list(StaffRole).index))
            f = replace(f, also_notify=notify)
        out.append(f)
    return out


def resolution_reason(alert: Alert, state: PersonState, now: datetime, cal: ReleaseCalendar) -> str:
    """Why an open alert no longer has a finding, in plain words."""
    sit = situation(state, now, cal)
    if sit.phase is Phase.DEAD:
        return "closed: death recorded"
    if sit.phase is Phase.BACK_IN_CUSTODY and BY_ID[alert.rule_id].spec.community:
        return "back in custody: community tasks stand down"
    if sit.phase is Phase.UNLAWFULLY_AT_LARGE:
        return "unlawfully at large: community tasks paused"
    if alert.release_date != sit.release_date:
        return _date_moved(sit.release_date)
    rule = BY_ID.get(alert.rule_id)
    return rule.spec.cleared if rule else "rule withdrawn"


def _date_moved(new: date | None) -> str:
    return f"release date changed to {new.isoformat()}" if new else "release date withdrawn"
