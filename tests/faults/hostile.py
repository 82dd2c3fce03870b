"""Hypothesis strategies for hostile input events and a valid event to interleave with them.

Every strategy here starts from a real, valid event and breaks one thing (or sends no event at
all), so each input is hostile for one known reason: malformed bytes, invalid UTF-8, wrong types,
missing fields, huge payloads, unknown event types and schema versions, naive datetimes and
impossible dates. ``hostile()`` keeps only inputs ``decode_input`` rejects, so a generator slip
cannot turn a "hostile" input into a valid one unnoticed.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from schemas.codec import MAX_EVENT_BYTES, DecodeError, decode_input
from schemas.envelope import SCHEMA_VERSION
from schemas.events import INPUT_MODELS

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def valid_event(pn: str, release: date, occurred: datetime) -> dict[str, Any]:
    """A release-date event a running worker turns into at least one alert (no address yet)."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": "release_date.changed",
        "schema_version": SCHEMA_VERSION,
        "occurred_at": occurred.isoformat(),
        "recorded_at": occurred.isoformat(),
        "source": "MDI",
        "person": {"prison_number": pn},
        "payload": {"new_date": release.isoformat(), "release_type": "conditional_release"},
    }


def _base() -> dict[str, Any]:
    return valid_event("A1234BC", date(2026, 12, 14), datetime.fromisoformat(
        "2026-11-20T10:00:00+00:00"))


def _dumps(d: Any) -> bytes:
    return json.dumps(d).encode()


def _with(path: tuple[str, ...], value: Any) -> bytes:
    d = _base()
    target = d
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return _dumps(d)


def _without(path: tuple[str, ...]) -> bytes:
    d = _base()
    target = d
    for p in path[:-1]:
        target = target[p]
    del target[path[-1]]
    return _dumps(d)


FIELDS: tuple[tuple[str, ...], ...] = (
    ("event_id",), ("type",), ("schema_version",), ("occurred_at",), ("recorded_at",),
    ("source",), ("person",), ("person", "prison_number"), ("payload",),
    ("payload", "new_date"), ("payload", "release_type"),
)
DATE_FIELDS: tuple[tuple[str, ...], ...] = (("occurred_at",), ("recorded_at",))

malformed_bytes = st.binary(max_size=300)
not_an_object = JSON.map(_dumps)
truncated = st.integers(min_value=0, max_value=len(_dumps(_base())) - 1).map(
    lambda n: _dumps(_base())[:n])


@st.composite
def invalid_utf8(draw: st.DrawFn) -> bytes:
    raw = _dumps(_base())
    at = draw(st.integers(min_value=0, max_value=len(raw)))
    bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                                b"\x80", b"\xe2\x82"]))
    return raw[:at] + bad + raw[at:]


wrong_types = st.builds(_with, st.sampled_from(FIELDS), JSON)
missing_fields = st.sampled_from(FIELDS).map(_without)
unknown_types = st.builds(
    _with, st.just(("type",)),
    st.text(min_size=0, max_size=40).filter(lambda t: t not in INPUT_MODELS),
)
unknown_versions = st.builds(
    _with, st.just(("schema_version",)),
    st.integers().filter(lambda v: v < 1 or v > SCHEMA_VERSION) | st.text() | st.floats(),
)
naive_datetimes = st.builds(
    _with, st.sampled_from(DATE_FIELDS),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.isoformat()),
)


@st.composite
def impossible_dates(draw: st.DrawFn) -> bytes:
    y = draw(st.integers(min_value=1, max_value=9999))
    m, d = draw(st.sampled_from([(2, 30), (2, 31), (4, 31), (13, 1), (0, 10), (6, 0), (1, 32),
                                 (99, 99)]))
    text = f"{y:04d}-{m:02d}-{d:02d}"
    where = draw(st.sampled_from([("payload", "new_date"), ("payload", "previous_date"),
                                  ("occurred_at",), ("recorded_at",)]))
    return _with(where, text if where[0] == "payload" else f"{text}T10:00:00+00:00")


far_dates = st.builds(  # real dates, but not a plausible release date (year 1 or 9999)
    _with, st.just(("payload", "new_date")),
    st.sampled_from(["0001-01-01", "9999-12-31", "1900-01-01"]),
)


@st.composite
def huge_payloads(draw: st.DrawFn) -> bytes:
    size = draw(st.integers(min_value=MAX_EVENT_BYTES + 1, max_value=MAX_EVENT_BYTES + 40_000))
    where = draw(st.sampled_from([("payload", "reason"), ("source",), ("junk",)]))
    raw = _with(where, "x" * size)
    return raw


@st.composite
def big_field(draw: st.DrawFn) -> bytes:
    """Under the byte limit, over a field's limit."""
    size = draw(st.integers(min_value=5_000, max_value=100_000))
    return _with(draw(st.sampled_from([("payload", "reason"), ("source",),
                                       ("person", "prison_number")])), "y" * size)


CATEGORIES: dict[str, st.SearchStrategy[bytes]] = {
    "malformed_bytes": malformed_bytes,
    "not_an_object": not_an_object,
    "truncated": truncated,
    "invalid_utf8": invalid_utf8(),
    "wrong_types": wrong_types,
    "missing_fields": missing_fields,
    "unknown_types": unknown_types,
    "unknown_versions": unknown_versions,
    "naive_datetimes": naive_datetimes,
    "impossible_dates": impossible_dates(),
    "far_dates": far_dates,
    "huge_payloads": huge_payloads(),
    "big_field": big_field(),
}


def rejected(raw: bytes) -> bool:
    try:
        decode_input(raw)
    except DecodeError:
        return True
    return False


def hostile() -> st.SearchStrategy[tuple[str, bytes]]:
    """(category, bytes) pairs, every one rejected by the decoder."""
    return st.one_of(*(
        strategy.map(lambda raw, name=name: (name, raw))
        for name, strategy in CATEGORIES.items()
    )).filter(lambda pair: rejected(pair[1]))


__all__ = ["CATEGORIES", "hostile", "rejected", "valid_event", "timedelta"]
