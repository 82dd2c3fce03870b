"""The alert diff: raise once, update on change, resolve with a reason, repeat nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from schemas.common import Severity
from schemas.outputs import alert_id_for
from streams.calendar import ReleaseCalendar
from streams.clock import FixedClock
from streams.person import Evaluator, PersonRecord, sweep_records
from tests.streams.factory import PN, ev, release_date

CAL = ReleaseCalendar()
NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)
RELEASE = date(2026, 12, 24)


def _types(events) -> list[tuple[str, str]]:
    return [(e.type, e.alert.rule_id) for e in events]


def test_raise_once_update_on_escalation_resolve_on_clear() -> None:
    clock = FixedClock(NOW)
    w = Evaluator(CAL, clock)
    rec, out = w.on_event(None, release_date(RELEASE, NOW - timedelta(days=60)))
    raised = {e.alert.rule_id: e for e in out if e.type == "alert.raised"}
    acc = raised["accommodation.none"]
    assert acc.alert.alert_id == alert_id_for(PN, "accommodation.none", RELEASE)
    assert acc.alert.severity is Severity.WARNING  # 23 days out

    # Same state, same day: nothing new; reprocessing the same event: nothing new.
    assert w.on_sweep(rec)[1] == []
    again, out2 = w.on_event(rec, release_date(RELEASE, NOW - timedelta(days=60)))
    assert out2 == []

    # Sixteen days later the 7-day check escalates the same alert.
    clock.set(NOW + timedelta(days=16))
    rec, out = w.on_sweep(rec)
    updated = [e for e in out if e.alert.rule_id == "accommodation.none"]
    assert [e.type for e in updated] == ["alert.updated"]
    assert updated[0].alert.severity is Severity.URGENT
    assert updated[0].alert.alert_id == acc.alert.alert_id

    # Accommodation confirmed: it resolves, saying why.
    rec, out = w.on_event(rec, ev("case_note.accommodation", clock.now(), status="confirmed"))
    resolved = [e for e in out if e.alert.rule_id == "accommodation.none"]
    assert [e.type for e in resolved] == ["alert.resolved"]
    assert resolved[0].resolution == "accommodation confirmed"
    assert "accommodation.none" not in rec.alerts
    assert len({e.event_id for e in out}) == len(out)


def test_date_change_resolves_old_alerts_and_raises_under_the_new_date() -> None:
    w = Evaluator(CAL, FixedClock(NOW))
    rec, _ = w.on_event(None, release_date(RELEASE, NOW - timedelta(days=60)))
    new_date = date(2026, 12, 22)
    rec, out = w.on_event(rec, release_date(new_date, NOW))
    acc = [e for e in out if e.alert.rule_id == "accommodation.none"]
    assert [e.type for e in acc] == ["alert.resolved", "alert.raised"]
    assert acc[0].resolution == "release date changed to 2026-12-22"
    assert acc[1].alert.release_date == new_date


def test_back_in_custody_resolves_community_alerts() -> None:
    w = Evaluator(CAL, FixedClock(NOW))
    rec, _ = w.on_event(None, release_date(date(2026, 11, 28), NOW - timedelta(days=60)))
    rec, _ = w.on_event(rec, ev("custody.release", NOW - timedelta(days=3), prison="MDI"))
    assert "accommodation.none" in rec.alerts
    rec, out = w.on_event(rec, ev("custody.recall", NOW, prison="MDI"))
    kinds = {(e.type, e.alert.rule_id) for e in out}
    assert ("alert.raised", "custody.back_in_custody") in kinds
    assert all(e.resolution == "back in custody: community tasks stand down"
               for e in out if e.type == "alert.resolved")
    assert set(rec.alerts) == {"custody.back_in_custody"}


def test_replay_marks_past_alerts_historical() -> None:
    past = datetime(2024, 3, 1, 10, tzinfo=UTC)
    w = Evaluator(CAL, FixedClock(past, replay=True))
    _, out = w.on_event(None, release_date(date(2024, 3, 8), past))
    assert out and all(e.alert.historical for e in out)
    live = Evaluator(CAL, FixedClock(past))
    _, out = live.on_event(None, release_date(date(2024, 3, 8), past))
    assert not any(e.alert.historical for e in out)


def test_sweep_skips_people_out_of_window_and_already_evaluated() -> None:
    clock = FixedClock(NOW)
    w = Evaluator(CAL, clock)
    far, _ = w.on_event(None, release_date(date(2027, 6, 1), NOW))
    near, _ = w.on_event(None, ev("release_date.changed", NOW, pn="B1234BC",
                                  new_date=date(2026, 12, 20), release_type="parole"))
    items = [("A1234BC", far), ("B1234BC", near)]
    assert sweep_records(w, items) == []  # both evaluated today already
    clock.advance(timedelta(days=1))
    assert sweep_records(w, items) == []  # 2 Dec: no rule's window opens or closes
    clock.set(datetime(2026, 12, 6, 8, tzinfo=UTC))  # 14 days before B's release
    changed = sweep_records(w, items)
    assert [k for k, _, _ in changed] == ["B1234BC"]
    assert sweep_records(w, items, partitions={7}) == []  # not our partition


def test_record_round_trips_through_json() -> None:
    w = Evaluator(CAL, FixedClock(NOW))
    rec, _ = w.on_event(None, release_date(RELEASE, NOW), partition=2)
    back = PersonRecord.load_json(rec.dump_json())
    assert back == rec and back.partition == 2


def test_event_time_clock_replays_at_the_pace_of_events() -> None:
    from streams.clock import EventTimeClock

    clock = EventTimeClock()
    w = Evaluator(CAL, clock)
    past = datetime(2024, 3, 1, 10, tzinfo=UTC)
    rec, out = w.on_event(None, release_date(date(2024, 3, 8), past))
    assert clock.now() == past
    assert out and all(e.alert.historical for e in out)
    assert all(e.occurred_at == past for e in out)
    rec, _ = w.on_event(rec, ev("case_note.general", past - timedelta(days=5), subtype="x",
                                text="late"))
    assert clock.now() == past  # a late event does not turn the clock back


def test_every_alert_event_of_a_cohort_meets_its_contract() -> None:
    """What the diff builds (from plain findings) is exactly what the contract accepts back,
    through the days a sweep passes as well as the events."""
    from infra.simulator import SimulationConfig, simulate, to_json_lines
    from schemas.codec import decode_input, encode
    from schemas.outputs import AlertEvent

    clock = FixedClock(NOW)
    w = Evaluator(CAL, clock, namespace="contract")
    records: dict[str, PersonRecord] = {}
    checked = 0
    for line in to_json_lines(simulate(SimulationConfig(people=60, seed=5, now=NOW))):
        event = decode_input(line.encode())
        key = event.person.prison_number
        records[key], out = w.on_event(records.get(key), event)
        for e in out:
            assert AlertEvent.model_validate_json(encode(e)) == e
            checked += 1
    for day in range(1, 40, 3):
        clock.set(NOW + timedelta(days=day))
        for key, rec in list(records.items()):
            records[key], out = w.on_sweep(rec)
            for e in out:
                assert AlertEvent.model_validate_json(encode(e)) == e
                checked += 1
    assert checked > 200
