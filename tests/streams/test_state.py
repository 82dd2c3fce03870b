"""Folding is pure, order-safe and idempotent."""

from __future__ import annotations

import json
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.state import SEEN_LIMIT, CustodyStatus, fold
from tests.streams.factory import T0, ev, release_date, state_of

EVENTS = [
    release_date(date(2026, 12, 11), T0),
    release_date(date(2026, 12, 4), T0 + timedelta(days=3)),
    ev("custody.reception", T0 - timedelta(days=100), prison="MDI", status="sentenced",
       sentence_length_days=200, statutory_supervision=False),
    ev("custody.transfer", T0 + timedelta(days=1), from_prison="MDI", to_prison="LEI"),
    ev("case_note.accommodation", T0 + timedelta(days=2), status="none"),
    ev("case_note.accommodation", T0 + timedelta(days=4), status="confirmed", address="x"),
    ev("case_note.finance_id", T0, id_held=True),
    ev("case_note.finance_id", T0 + timedelta(days=1), id_held=False, bank_account=True),
    ev("case_note.health", T0, opiate_substitution_in_custody=True),
    ev("case_note.appointment", T0, appointment_id="a", action="booked",
       at=T0 + timedelta(days=40)),
    ev("case_note.appointment", T0 + timedelta(days=41), appointment_id="a", action="missed"),
    ev("case_note.appointment", T0 + timedelta(days=42), appointment_id="a", action="moved",
       at=T0 + timedelta(days=45)),
    ev("case_note.appointment", T0 + timedelta(days=46), appointment_id="a", action="missed"),
    ev("case_note.mentor", T0, assigned=True),
    ev("case_note.pathway_status", T0, pathway="finance_id", status="in_progress"),
    ev("case_note.contact", T0, mobile="+447700900123", sms_consent=True),
    ev("custody.release", T0 + timedelta(days=33), prison="LEI", local_authority="Leeds"),
    ev("custody.recall", T0 + timedelta(days=50), prison="LEI"),
    ev("case_note.general", T0, subtype="note", text="hello"),
]


def _facts(s) -> dict:
    return s.dump()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(range(len(EVENTS))), min_size=1, max_size=40))
def test_any_order_with_duplicates_folds_to_the_same_state(picks: list[int]) -> None:
    chosen = sorted(set(picks))
    reference = state_of(*(EVENTS[i] for i in chosen))
    shuffled = state_of(*(EVENTS[i] for i in picks))
    assert _facts(shuffled) == _facts(reference)


@settings(max_examples=50, deadline=None)
@given(st.permutations(EVENTS))
def test_every_permutation_agrees(order) -> None:
    assert _facts(state_of(*order)) == _facts(state_of(*EVENTS))


def test_late_events_do_not_overwrite_newer_facts() -> None:
    s = state_of(*EVENTS)
    assert s.release_date == date(2026, 12, 4)  # the later notification wins
    assert s.accommodation_confirmed
    assert s.id_held is False and s.bank_account is True
    assert s.prison == "LEI" and s.custody is CustodyStatus.IN_CUSTODY
    assert s.back_in_custody
    assert s.appointments["a"].missed_count == 2
    assert s.short_sentence and s.mentor and s.sms_consent


def test_duplicate_returns_the_same_object() -> None:
    s = state_of(*EVENTS[:3])
    assert fold(s, EVENTS[1]) is s


def test_fold_does_not_mutate_its_input() -> None:
    s = state_of(EVENTS[0])
    before = s.dump()
    fold(s, EVENTS[4])
    assert s.dump() == before


def test_state_is_compact_and_keeps_no_phone_number() -> None:
    s = state_of(*EVENTS)
    raw = json.dumps(s.dump())
    assert "+4477" not in raw and "hello" not in raw
    assert len(raw) < 4000
    many = state_of(*[ev("case_note.general", T0 + timedelta(minutes=i), subtype="n", text="t")
                      for i in range(SEEN_LIMIT + 20)])
    assert len(many.seen) == SEEN_LIMIT


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(range(len(EVENTS))), min_size=2, max_size=25))
def test_no_fold_ever_changes_an_earlier_state(picks: list[int]) -> None:
    """Fold copies only what it writes; every intermediate state must survive what follows."""
    states, snapshots, s = [], [], None
    for i in picks:
        s = fold(s, EVENTS[i])
        states.append(s)
        snapshots.append(json.dumps(s.dump(), sort_keys=True, default=str))
    for state, snap in zip(states, snapshots, strict=True):
        assert json.dumps(state.dump(), sort_keys=True, default=str) == snap
