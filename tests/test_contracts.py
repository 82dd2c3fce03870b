"""The event contracts: valid events round-trip, invalid ones fail with a reason."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import pytest

from schemas import INPUT_MODELS, DecodeError, decode_input, encode, input_family
from schemas.events import (
    AppointmentNote,
    AppointmentNoteEvent,
    ReleaseDateChanged,
    ReleaseDateChangedEvent,
    ReleaseType,
)
from schemas.outputs import DeadLetter, alert_id_for

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def release_change(**payload: object) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "release_date.changed",
        "schema_version": 1,
        "occurred_at": "2026-11-20T10:00:00+00:00",
        "recorded_at": "2026-11-20T10:00:05+00:00",
        "source": "MDI",
        "person": {"prison_number": "A1234BC", "crn": "X123456"},
        "payload": {"new_date": "2026-12-04", "release_type": "conditional_release", **payload},
    }


def test_valid_event_round_trips() -> None:
    raw = json.dumps(release_change()).encode()
    event = decode_input(raw)
    assert isinstance(event, ReleaseDateChangedEvent)
    assert event.payload.new_date == date(2026, 12, 4)
    assert event.key == b"A1234BC"
    assert decode_input(encode(event)) == event


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.update(occurred_at="2026-11-20T10:00:00"), "timezone"),
        (lambda e: e["person"].update(prison_number="1234ABC"), "prison_number"),
        (lambda e: e["person"].update(crn="12345"), "crn"),
        (lambda e: e.update(type="release_date.exploded"), "does not match"),
        (lambda e: e.pop("event_id"), "event_id"),
        (lambda e: e.update(schema_version=99), "schema_version"),
        (lambda e: e["payload"].update(new_date="2026-02-30"), "new_date"),
        (lambda e: e["payload"].update(new_date="2999-01-01"), "outside"),
        (lambda e: e["payload"].update(release_type="whenever"), "release_type"),
        (lambda e: e.update(extra_field=1), "extra_field"),
    ],
)
def test_invalid_events_say_why(mutate, reason: str) -> None:
    event = release_change()
    mutate(event)
    with pytest.raises(DecodeError, match=reason):
        decode_input(json.dumps(event))


def test_garbage_bytes_are_refused_with_reason() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        decode_input(b"\xff\xfe\x00")
    with pytest.raises(DecodeError, match="Invalid JSON|json"):
        decode_input(b"{not json")
    with pytest.raises(DecodeError, match="limit"):
        decode_input(b" " * (300 * 1024))


def test_booked_appointment_needs_a_time() -> None:
    with pytest.raises(ValueError, match="needs 'at'"):
        AppointmentNote(appointment_id="a1", action="booked")


def test_every_type_has_a_family() -> None:
    families = {input_family(t) for t in INPUT_MODELS}
    assert families == {"release_dates", "custody", "case_notes"}
    with pytest.raises(ValueError):
        input_family("nonsense.type")


def test_python_construction_defaults_ids() -> None:
    e = ReleaseDateChangedEvent(
        occurred_at=NOW, source="MDI", person={"prison_number": "A1234BC"},
        payload=ReleaseDateChanged(new_date=date(2026, 12, 4), release_type=ReleaseType.PAROLE),
    )
    assert e.event_id != ReleaseDateChangedEvent(**e.model_dump(exclude={"event_id"})).event_id
    AppointmentNoteEvent(
        occurred_at=NOW, source="IOM-CAMBS", person={"prison_number": "A1234BC"},
        payload=AppointmentNote(appointment_id="a1", action="attended"),
    )


def test_alert_ids_are_deterministic() -> None:
    a = alert_id_for("A1234BC", "friday_release", date(2026, 12, 4))
    assert a == alert_id_for("A1234BC", "friday_release", date(2026, 12, 4))
    assert a != alert_id_for("A1234BC", "friday_release", date(2026, 12, 3))
    assert a != alert_id_for("A1234BD", "friday_release", date(2026, 12, 4))


def test_dead_letter_keeps_original_bytes_through_json() -> None:
    dl = DeadLetter(reason="bad", original=b"\xff\x00raw", topic="t", partition=1, offset=7)
    back = DeadLetter.model_validate_json(dl.model_dump_json())
    assert back.original == b"\xff\x00raw"
    assert back.offset == 7


@pytest.mark.parametrize("name", ["", "A1234BC|friday_release|2026-12-04", "ns|7|alert.raised",
                                  "\u00fc\u2603" * 40])
def test_fast_uuid5_is_exactly_uuid5(name: str) -> None:
    from schemas.ids import uuid5

    for namespace in (uuid.NAMESPACE_URL, uuid.uuid4()):
        ours, theirs = uuid5(namespace, name), uuid.uuid5(namespace, name)
        assert ours == theirs and str(ours) == str(theirs) and hash(ours) == hash(theirs)
        assert ours.version == 5 and ours.variant == theirs.variant
