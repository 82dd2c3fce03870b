"""Property tests of ``schemas.decode_input``: any bytes in, an event or a DecodeError out.

Nothing else may escape the decoder (no UnicodeError, RecursionError, OverflowError, TypeError,
pydantic error...): the stream worker dead-letters on DecodeError only, so any other exception
would be a crash on hostile input.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import MAX_EVENT_BYTES, DecodeError, decode_input
from tests.faults.hostile import CATEGORIES, JSON, hostile, valid_event

FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _decode_or_reason(raw: bytes | str) -> str | None:
    try:
        decode_input(raw)
    except DecodeError as exc:
        return str(exc)
    return None


@FAST
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_decode_or_raise_decode_error(raw: bytes) -> None:
    reason = _decode_or_reason(raw)
    assert reason is None or reason.strip()


@FAST
@given(st.text(max_size=2_000))
def test_arbitrary_text_decode_or_raise_decode_error(raw: str) -> None:
    _decode_or_reason(raw)


@FAST
@given(JSON)
def test_arbitrary_json_decode_or_raise_decode_error(value: object) -> None:
    _decode_or_reason(json.dumps(value).encode())


def test_deeply_nested_json_is_a_decode_error() -> None:
    for depth in (1_000, 100_000):
        raw = b"[" * depth + b"]" * depth
        raw = raw[:MAX_EVENT_BYTES]
        assert _decode_or_reason(raw)
        raw = (b'{"a":' * depth + b"1" + b"}" * depth)[:MAX_EVENT_BYTES]
        assert _decode_or_reason(raw)


@FAST
@given(hostile())
def test_every_hostile_input_has_a_reason(pair: tuple[str, bytes]) -> None:
    _, raw = pair
    reason = _decode_or_reason(raw)
    assert reason and len(reason) > 5


@pytest.mark.parametrize("name", sorted(CATEGORIES))
def test_every_category_produces_rejected_inputs(name: str) -> None:
    """Guards the generator: each category yields inputs the decoder refuses (so the worker
    suite really exercises each kind of hostility)."""
    seen: list[bytes] = []

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(CATEGORIES[name])
    def collect(raw: bytes) -> None:
        seen.append(raw)

    collect()
    refused = [r for r in seen if _decode_or_reason(r)]
    assert seen and len(refused) >= len(seen) // 2


@FAST
@given(st.dates(min_value=date(2026, 1, 1), max_value=date(2030, 12, 31)),
       st.from_regex(r"\A[A-Z][0-9]{4}[A-Z]{2}\Z"))
def test_valid_events_still_decode(release: date, pn: str) -> None:
    raw = json.dumps(valid_event(pn, release, datetime(2025, 12, 1, tzinfo=UTC))).encode()
    assert _decode_or_reason(raw) is None
