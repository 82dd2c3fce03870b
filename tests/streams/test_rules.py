"""Each rule: a case that fires, one that does not, and the boundary between them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from schemas.common import Severity, StaffRole
from streams.calendar import ReleaseCalendar
from streams.rules import BY_ID, CATALOGUE, evaluate
from streams.rules.base import Finding
from streams.state import PersonState
from tests.streams.factory import ev, release_date, state_of

CAL = ReleaseCalendar()
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # Tuesday 1 Dec 2026
EARLY = NOW - timedelta(days=60)  # when plans were first notified
HOUSED = ev("case_note.accommodation", EARLY, status="confirmed", address="1 High St")
FUNDED = ev("case_note.finance_id", EARLY, benefit_claim_made=True, id_held=True, bank_account=True)


def on(d: date, *more, notified: datetime = EARLY) -> PersonState:
    return state_of(release_date(d, notified), *more)


def found(state: PersonState, rule_id: str, now: datetime = NOW) -> list[Finding]:
    return BY_ID[rule_id].check(state, now, CAL)


def in_days(n: int) -> date:
    return NOW.date() + timedelta(days=n)


def test_catalogue_ids_are_unique_and_cite_a_source() -> None:
    assert len(BY_ID) == len(CATALOGUE) >= 14
    for rule in CATALOGUE:
        assert rule.spec.source and rule.spec.cleared
        assert rule.check.__doc__, f"{rule.spec.id} needs a docstring quoting the practice"


# ------------------------------------------------------------------ Friday / pre-holiday


@pytest.mark.parametrize(("release", "fires", "suggested"), [
    (date(2026, 12, 11), True, date(2026, 12, 9)),  # Friday
    (date(2026, 12, 10), False, None),  # Thursday
    (date(2026, 12, 24), True, date(2026, 12, 22)),  # before Christmas Day
])
def test_friday_release(release: date, fires: bool, suggested: date | None) -> None:
    got = found(on(release), "release.friday_or_pre_holiday")
    assert bool(got) is fires
    if fires:
        assert got[0].suggested_release_date == suggested
        assert got[0].owner_role is StaffRole.HOUSING_OFFICER
        assert StaffRole.OMU in got[0].also_notify
        assert "consider release on" in got[0].reason


def test_friday_release_before_good_friday_2027() -> None:
    now = datetime(2027, 3, 1, 10, tzinfo=UTC)
    assert found(on(date(2027, 3, 25)), "release.friday_or_pre_holiday", now)
    assert not found(on(date(2027, 4, 1)), "release.friday_or_pre_holiday", now)


def test_friday_release_with_confirmed_accommodation_is_fine() -> None:
    assert not found(on(date(2026, 12, 11), HOUSED), "release.friday_or_pre_holiday")


# ------------------------------------------------------------------ accommodation


@pytest.mark.parametrize(("days_out", "severity"), [
    (57, None), (56, Severity.INFO), (29, Severity.INFO), (28, Severity.WARNING),
    (8, Severity.WARNING), (7, Severity.URGENT), (2, Severity.URGENT), (0, Severity.URGENT),
])
def test_no_accommodation_escalates(days_out: int, severity: Severity | None) -> None:
    got = found(on(in_days(days_out)), "accommodation.none")
    assert (got[0].severity if got else None) == severity


def test_no_accommodation_due_moves_closer_at_each_check() -> None:
    dues = [found(on(in_days(d)), "accommodation.none")[0].due_at for d in (56, 28, 7, 2)]
    assert dues == sorted(dues, reverse=True) or dues == sorted(dues)
    assert len(set(dues)) == 4


def test_no_accommodation_after_release_is_due_within_48_hours() -> None:
    released = NOW - timedelta(hours=5)
    s = on(in_days(0), ev("custody.release", released, prison="MDI"))
    got = found(s, "accommodation.none")
    assert got[0].severity is Severity.URGENT and got[0].due_at == released + timedelta(hours=48)
    assert not got[0].pre_release
    assert not found(state_of(*s_events_housed(released)), "accommodation.none")


def s_events_housed(released: datetime) -> list:
    return [release_date(in_days(0), EARLY), ev("custody.release", released, prison="MDI"),
            HOUSED]


def test_confirmed_then_falls_through_fires_again() -> None:
    fell = ev("case_note.accommodation", NOW - timedelta(days=1), status="none")
    assert found(on(in_days(10), HOUSED, fell), "accommodation.none")


def test_pathway_done_after_the_last_note_counts_as_housed() -> None:
    done = ev("case_note.pathway_status", NOW - timedelta(days=1), pathway="accommodation",
              status="support_not_required")
    assert not found(on(in_days(10), done), "accommodation.none")


@pytest.mark.parametrize("status", ["shelter", "unverified"])
def test_unverified_or_shelter_address(status: str) -> None:
    note = ev("case_note.accommodation", EARLY, status=status, address="Night shelter")
    s = on(in_days(20), note)
    got = found(s, "accommodation.unverified")
    assert got and got[0].severity is Severity.WARNING and got[0].need == "accommodation"
    assert "1 High St" not in got[0].reason and "Night shelter" not in got[0].reason
    assert not found(s, "accommodation.none")  # one need, one rule
    assert not found(on(in_days(20), HOUSED), "accommodation.unverified")
    assert found(on(in_days(5), note), "accommodation.unverified")[0].severity is Severity.URGENT


# ------------------------------------------------------------------ date changes


def test_release_notified_overnight_is_urgent() -> None:
    evening = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)
    s = state_of(release_date(date(2026, 12, 2), evening))
    got = found(s, "release_date.short_notice", evening)
    assert got[0].severity is Severity.URGENT and "the day before" in got[0].reason
    assert got[0].due_at <= CAL.at(date(2026, 12, 2), 9)


@pytest.mark.parametrize(("notice", "fires"), [(13, True), (14, False), (15, False)])
def test_short_notice_boundary(notice: int, fires: bool) -> None:
    s = state_of(release_date(in_days(notice), NOW))
    assert bool(found(s, "release_date.short_notice")) is fires


def test_brought_forward_is_flagged_and_tells_open_task_owners() -> None:
    s = state_of(release_date(in_days(40), EARLY), release_date(in_days(30), NOW))
    got = [f for f in evaluate(s, NOW, CAL) if f.rule_id == "release_date.short_notice"]
    assert got and "brought forward" in got[0].reason
    assert StaffRole.HOUSING_OFFICER in got[0].also_notify  # owns the accommodation alert


def test_release_with_no_notified_date() -> None:
    released = NOW - timedelta(hours=1)
    s = state_of(ev("custody.release", released, prison="MDI"))
    got = found(s, "release.unknown")
    assert got[0].severity is Severity.URGENT and got[0].owner_role is StaffRole.HUB_MANAGER
    assert not found(on(NOW.date(), ev("custody.release", released, prison="MDI")),
                     "release.unknown")


def test_release_earlier_than_notified() -> None:
    s = on(in_days(5), ev("custody.release", NOW, prison="MDI"))
    assert "before the notified date" in found(s, "release.unknown")[0].reason


# ------------------------------------------------------------------ benefits


@pytest.mark.parametrize(("days_out", "fires"), [(14, True), (15, False), (3, True)])
def test_benefits_gap_window(days_out: int, fires: bool) -> None:
    s = on(in_days(days_out))
    for rule in ("benefits.no_claim", "benefits.no_id", "benefits.no_bank_account"):
        assert bool(found(s, rule)) is fires
    assert not any(found(on(in_days(days_out), FUNDED), r) for r in (
        "benefits.no_claim", "benefits.no_id", "benefits.no_bank_account"))


def test_jobcentre_appointment_closes_the_claim_gap_only() -> None:
    jca = ev("case_note.finance_id", EARLY, jobcentre_appointment=NOW + timedelta(days=12))
    s = on(in_days(10), jca)
    assert not found(s, "benefits.no_claim")
    assert found(s, "benefits.no_id")


# ------------------------------------------------------------------ health


@pytest.mark.parametrize(("days_out", "fires"), [(7, True), (8, False)])
def test_health_continuity_window(days_out: int, fires: bool) -> None:
    osc = ev("case_note.health", EARLY, opiate_substitution_in_custody=True)
    got = found(on(in_days(days_out), osc), "health.continuity")
    assert bool(got) is fires
    if got:
        assert got[0].severity is Severity.URGENT
        assert StaffRole.IOM_POLICE_OFFICER not in got[0].also_notify


def test_health_continuity_cleared_by_prescriber_or_gp_appointment() -> None:
    osc = ev("case_note.health", EARLY, opiate_substitution_in_custody=True)
    booked = ev("case_note.health", NOW, community_prescriber_booked=True)
    assert not found(on(in_days(3), osc, booked), "health.continuity")
    meds = ev("case_note.health", EARLY, medication_in_custody=True)
    gp = ev("case_note.appointment", NOW, appointment_id="gp1", action="booked", kind="gp",
            at=NOW + timedelta(days=4))
    assert found(on(in_days(3), meds), "health.continuity")[0].pathway.value == "health"
    assert not found(on(in_days(3), meds, gp), "health.continuity")
    assert not found(on(in_days(3)), "health.continuity")


# ------------------------------------------------------------------ appointments


def _supervision(at: datetime, action: str = "booked", appt: str = "s1", when=NOW):
    return ev("case_note.appointment", when, appointment_id=appt, action=action,
              kind="supervision", at=at)


@pytest.mark.parametrize(("days_out", "fires"), [(7, True), (8, False)])
def test_no_first_appointment_window(days_out: int, fires: bool) -> None:
    assert bool(found(on(in_days(days_out)), "appointment.first_missing")) is fires


def test_first_appointment_on_release_day_clears() -> None:
    release = in_days(5)
    s = on(release, _supervision(CAL.at(release, 14)))
    assert not found(s, "appointment.first_missing")
    s = on(release, _supervision(CAL.at(release + timedelta(days=3), 14)))
    assert found(s, "appointment.first_missing")
    s = on(release, _supervision(CAL.at(release, 14)),
           _supervision(CAL.at(release, 14), "cancelled", when=NOW + timedelta(minutes=1)))
    assert found(s, "appointment.first_missing")


def test_missed_appointments_one_then_two() -> None:
    released = NOW - timedelta(days=10)
    base = [release_date(released.date(), EARLY), ev("custody.release", released, prison="MDI")]
    a1 = NOW - timedelta(days=3)
    a2 = NOW - timedelta(days=1)
    one = state_of(*base, _supervision(a1, "booked", "s1", EARLY),
                   _supervision(a1, "missed", "s1", a1 + timedelta(hours=2)))
    got = found(one, "appointment.missed")
    assert got[0].severity is Severity.WARNING
    assert got[0].due_at == a1 + timedelta(hours=26)
    two = state_of(*base, _supervision(a1, "missed", "s1", a1 + timedelta(hours=2)),
                   _supervision(a2, "missed", "s2", a2 + timedelta(hours=2)))
    got = found(two, "appointment.missed")
    assert got[0].severity is Severity.URGENT and StaffRole.HUB_MANAGER in got[0].also_notify
    attended = state_of(*base, _supervision(a1, "missed", "s1", a1 + timedelta(hours=2)),
                        _supervision(a2, "attended", "s2", a2 + timedelta(hours=2)))
    assert not found(attended, "appointment.missed")


# ------------------------------------------------------------------ mentor, transfer, custody


SHORT = ev("custody.reception", EARLY - timedelta(days=90), prison="MDI", status="sentenced",
           sentence_length_days=180)


@pytest.mark.parametrize(("days_out", "fires"), [(14, True), (15, False)])
def test_short_sentence_without_mentor(days_out: int, fires: bool) -> None:
    assert bool(found(on(in_days(days_out), SHORT), "mentor.short_sentence")) is fires
    mentor = ev("case_note.mentor", NOW, assigned=True)
    assert not found(on(in_days(days_out), SHORT, mentor), "mentor.short_sentence")
    assert not found(on(in_days(days_out)), "mentor.short_sentence")  # no flag: not short


@pytest.mark.parametrize(("days_out", "fires"), [(28, True), (29, False)])
def test_transfer_near_release(days_out: int, fires: bool) -> None:
    move = ev("custody.transfer", NOW, from_prison="MDI", to_prison="LEI")
    got = found(on(in_days(days_out), move), "custody.transfer_near_release")
    assert bool(got) is fires
    if got:
        assert got[0].owner_role is StaffRole.OMU and "MDI" in got[0].reason


@pytest.mark.parametrize("how", ["recall", "remand", "sentenced"])
def test_back_in_custody_stands_down_community_findings(how: str) -> None:
    released = NOW - timedelta(days=5)
    base = [release_date(released.date(), EARLY), ev("custody.release", released, prison="MDI")]
    before = evaluate(state_of(*base), NOW, CAL)
    assert {f.rule_id for f in before} >= {"accommodation.none", "benefits.no_claim"}
    back = (ev("custody.recall", NOW - timedelta(hours=3), prison="MDI") if how == "recall"
            else ev("custody.reception", NOW - timedelta(hours=3), prison="MDI", status=how))
    after = evaluate(state_of(*base, back), NOW, CAL)
    assert [f.rule_id for f in after] == ["custody.back_in_custody"]
    assert after[0].severity is Severity.INFO


def test_rerelease_date_after_recall_restarts_planning() -> None:
    released = NOW - timedelta(days=20)
    s = state_of(release_date(released.date(), EARLY),
                 ev("custody.release", released, prison="MDI"),
                 ev("custody.recall", NOW - timedelta(days=10), prison="MDI"),
                 release_date(in_days(20), NOW - timedelta(days=2)))
    ids = {f.rule_id for f in evaluate(s, NOW, CAL)}
    assert "custody.back_in_custody" not in ids and "accommodation.none" in ids


def test_first_reception_is_not_back_in_custody() -> None:
    s = on(in_days(20), SHORT)
    assert not found(s, "custody.back_in_custody")


def test_death_closes_everything() -> None:
    assert evaluate(on(in_days(3), ev("custody.death", NOW)), NOW, CAL) == []


def test_reasons_are_plain_and_carry_no_countdown() -> None:
    s = on(in_days(5), SHORT, ev("case_note.health", EARLY, medication_in_custody=True))
    today = evaluate(s, NOW, CAL)
    tomorrow = evaluate(s, NOW + timedelta(days=1), CAL)
    for f in today:
        assert len(f.reason) < 200 and f.reason.endswith(".")
        assert "mental health" not in f.reason.lower()
    # Same facts, next day: reasons and due times stay put (only severities may step up).
    assert {(f.rule_id, f.due_at, f.reason) for f in today if f.rule_id != "accommodation.none"} \
        <= {(f.rule_id, f.due_at, f.reason) for f in tomorrow}
