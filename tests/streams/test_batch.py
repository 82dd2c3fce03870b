"""The agent's batch path: a batch of many people's events ends exactly where one event at a time
would, bad events in a batch are dead-lettered alone, and the table's packed values round-trip
through the changelog codec."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock

import pytest

from infra.config import Settings
from schemas.codec import encode
from streams.app import PackedCodec, make_app
from streams.clock import FixedClock
from streams.packed import Packed
from streams.person import PersonRecord
from tests.streams.factory import ev, release_date

NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)


def _parts(tmp_path: Any) -> Any:
    settings = Settings(_env_file=None, kafka_bootstrap="127.0.0.1:9", topic_prefix="batch.",
                        faust_datadir=tmp_path, topic_partitions=1)
    app = make_app(settings, clock=FixedClock(NOW))
    app.finalize()
    parts = app.ttg
    parts.produce = AsyncMock()
    parts.dead_letter.send = AsyncMock()
    parts.changelog = []
    parts.table.send_changelog = lambda p, k, v, *a, **kw: parts.changelog.append((p, k, v))
    return parts


def _message(value: bytes, offset: int, key: bytes = b"") -> Any:
    return SimpleNamespace(message=SimpleNamespace(
        value=value, key=key, topic="batch.release-dates", partition=0, offset=offset))


def _cohort(seed: int) -> list[bytes]:
    """Six people's events (duplicates and one undecodable message included), shuffled."""
    rng = random.Random(seed)
    out: list[bytes] = [b"{not json"]
    for i in range(6):
        pn = f"B{1000 + i}CD"
        release = date(2026, 12, 4) + timedelta(days=7 * i)
        events = [
            ev("release_date.changed", NOW - timedelta(days=40), pn=pn, new_date=release,
               release_type="conditional_release"),
            ev("case_note.accommodation", NOW - timedelta(days=10 - i), pn=pn,
               status="confirmed" if i % 2 else "none"),
            ev("case_note.finance_id", NOW - timedelta(days=5), pn=pn,
               bank_account=True, id_held=i % 3 != 0),
        ]
        out += [encode(e) for e in events]
        out.append(encode(events[0]))  # a redelivered duplicate
    rng.shuffle(out)
    return out


def _open_alerts(parts: Any) -> dict[str, set[str]]:
    return {key: set(packed.unpack().alerts) for key, packed in parts.table.data.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_batch_ends_where_one_event_at_a_time_ends(tmp_path: Any, seed: int) -> None:
    messages = _cohort(seed)
    batched, single = _parts(tmp_path / "a"), _parts(tmp_path / "b")

    async def run() -> None:
        await batched.handle_batch([_message(m, i) for i, m in enumerate(messages)])
        for i, m in enumerate(messages):
            await single.handle(_message(m, i))

    asyncio.run(run())
    assert _open_alerts(batched) == _open_alerts(single)
    assert len(_open_alerts(batched)) == 6
    for key in batched.table.data:
        assert batched.record(key).state == single.record(key).state
    assert batched.dead_letter.send.await_count == single.dead_letter.send.await_count == 1
    # One table write per person for the batch, on the person's partition.
    assert sorted(k for _, k, _ in batched.changelog) == sorted(batched.table.data)
    # Every alert the batch left open was announced to the alerts topic.
    raised = {json.loads(c.args[2])["alert"]["alert_id"] for c in
              batched.produce.await_args_list}
    for key in batched.table.data:
        assert {str(a.alert_id) for a in batched.record(key).alerts.values()} <= raised


def test_a_bad_event_in_a_batch_is_dead_lettered_alone(tmp_path: Any) -> None:
    parts = _parts(tmp_path)
    pn = "C2000DE"
    good = release_date(date(2026, 12, 11), NOW - timedelta(days=30))
    good = good.model_copy(update={"person": good.person.model_copy(
        update={"prison_number": pn})})
    poison = ev("case_note.accommodation", NOW - timedelta(days=1), pn=pn, status="none")
    evaluator = parts.evaluator
    real = evaluator.on_events

    def on_events(record: Any, events: Any, partition: Any = None) -> Any:
        if any(e.event_id == poison.event_id for e in events):
            raise RuntimeError("rule bug")
        return real(record, events, partition)

    evaluator.on_events = on_events
    asyncio.run(parts.handle_batch([_message(encode(good), 0), _message(encode(poison), 1)]))
    assert parts.dead_letter.send.await_count == 1
    letter = json.loads(parts.dead_letter.send.await_args.kwargs["value"])
    assert letter["stage"] == "evaluate" and "rule bug" in letter["reason"]
    assert letter["offset"] == 1
    record = parts.record(pn)
    assert record is not None and record.state.release_date == date(2026, 12, 11)
    assert record.alerts  # the good event still raised its alerts


def test_packed_values_round_trip_through_the_changelog(tmp_path: Any) -> None:
    parts = _parts(tmp_path)
    asyncio.run(parts.handle_batch([_message(encode(release_date(date(2026, 12, 11),
                                                                   NOW - timedelta(days=3))), 0)]))
    (key, packed), = parts.table.data.items()
    codec = PackedCodec()
    back = codec.loads(codec.dumps(packed))
    assert (back.next_change, back.partition) == (packed.next_change, packed.partition)
    assert back.unpack() == packed.unpack()
    # A changelog written before packing (plain JSON) still recovers.
    plain = packed.unpack().dump_json()
    old = codec.loads(plain)
    assert isinstance(old, Packed) and old.unpack() == PersonRecord.load_json(plain)
    assert len(packed.blob) < len(plain) / 2
    # So does one a zlib-packing worker wrote (``P1``), header and all.
    import struct
    import zlib

    p1 = struct.pack(">2sih", b"P1", packed.next_change, packed.partition) + zlib.compress(plain)
    older = codec.loads(p1)
    assert (older.next_change, older.partition) == (packed.next_change, packed.partition)
    assert older.unpack() == packed.unpack() and older.to_bytes()[:2] == b"P2"


def test_the_packing_dictionary_never_changes() -> None:
    """Every P2 value in every changelog needs these exact bytes to unpack."""
    import hashlib

    from streams.packed import DICTIONARY

    assert hashlib.sha256(DICTIONARY).hexdigest() == (
        "4d4cbafcd6c444a8d4cdc6124742a3336c114dacec1290a9e949bb524102f0d1")


def test_stored_facts_group_by_stamp_and_older_records_still_load() -> None:
    from tests.streams.factory import state_of

    state = state_of(release_date(date(2026, 12, 11), NOW - timedelta(days=3)),
                     ev("case_note.accommodation", NOW, status="none"))
    record = PersonRecord(state=state)
    stored = json.loads(record.dump_json())["state"]["asof"]
    assert all(isinstance(facts, list) for facts in stored.values())
    assert sorted(f for facts in stored.values() for f in facts) == sorted(state.asof)
    assert PersonRecord.load_json(record.dump_json()) == record
    legacy = json.loads(record.dump_json())
    legacy["state"]["asof"] = dict(state.asof)  # fact -> stamp, as stored before grouping
    assert PersonRecord.load_json(json.dumps(legacy)) == record
