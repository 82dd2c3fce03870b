"""Hostile input against the REAL running system: the Faust stream worker (a subprocess) and the
alerts -> tasks consumer, started by the journeys harness (tests/journeys/world.py).

Hypothesis generates hostile inputs in every category of ``tests.faults.hostile``; they are
published, shuffled in among valid events for fresh people, to the three input topics (and a
share to the alerts topic, for the tasks consumer). Then:

- every hostile message is on the dead-letter topic, once, with a reason, its original bytes and
  the topic/partition/offset it came from;
- the worker process and the consumer threads are still running;
- every valid event was processed: each valid person has an alert on the alerts topic and a task.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from kafka import TopicPartition

from infra.broker import EmbeddedBroker
from infra.kafka import make_consumer, make_producer
from schemas.outputs import DeadLetter
from tests.faults.hostile import CATEGORIES, rejected, valid_event
from tests.journeys.world import World

pytestmark = pytest.mark.kafka

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
#: Categories that are hostile to the tasks consumer too (not JSON objects at all).
ALERT_HOSTILE = ("malformed_bytes", "not_an_object", "invalid_utf8", "truncated",
                 "huge_payloads")


@pytest.fixture(scope="module")
def world(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World.start(broker.bootstrap, tmp_path_factory.mktemp("hostile"), START)
    try:
        yield w
    finally:
        w.close()


def collect_into(seen: dict[bytes, None], strategy: st.SearchStrategy[bytes], examples: int,
                 at: int):  # type: ignore[no-untyped-def]
    @seed(at)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(raw: bytes) -> None:
        if rejected(raw):
            seen[raw] = None

    return collect


def generate(per_category: int, seed: int) -> list[tuple[str, bytes]]:
    """Up to ``per_category`` distinct rejected inputs from each category, reproducibly."""
    out: list[tuple[str, bytes]] = []
    for i, (name, strategy) in enumerate(sorted(CATEGORIES.items())):
        seen: dict[bytes, None] = {}

        collect_into(seen, strategy, per_category, seed + i)()
        out.extend((name, raw) for raw in seen)
    return out


def read_all(world: World, topic: str, want: int, timeout: float) -> list[Any]:
    """Records on ``topic`` from the beginning, until ``want`` of them or ``timeout``."""
    consumer = make_consumer(world.settings, None, consumer_timeout_ms=500)  # type: ignore[arg-type]
    try:
        tps = [TopicPartition(topic, p) for p in range(world.settings.topic_partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            world.check()
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def run_hostile(world: World, per_category: int, valid: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    hostile = generate(per_category, seed)
    people = [f"H{seed % 10}{i:03d}{'XY'[i % 2]}Q" for i in range(valid)]
    valid_raw = [
        ("valid", json.dumps(valid_event(
            pn, (START + timedelta(days=20)).date(), START - timedelta(days=30))).encode(), pn)
        for pn in people
    ]
    items: list[tuple[str, bytes, str | None]] = [(n, r, None) for n, r in hostile] + valid_raw
    rng.shuffle(items)
    inputs = world.topics.inputs
    producer = make_producer(world.settings, max_request_size=4 * 1024 * 1024)
    sent: dict[tuple[str, int, int], tuple[str, bytes]] = {}
    try:
        futures = []
        for name, raw, pn in items:
            if pn is not None:
                topic = world.topics.release_dates
                key: bytes | None = pn.encode()
            elif name in ALERT_HOSTILE and rng.random() < 0.25:
                topic, key = world.topics.alerts, None
            else:
                topic = rng.choice(inputs)
                key = rng.choice([None, b"A1234BC", bytes(rng.randbytes(8))])
            futures.append((name, raw, pn, producer.send(topic, key=key, value=raw)))
        for name, raw, pn, fut in futures:
            md = fut.get(timeout=60)
            if pn is None:
                sent[(md.topic, md.partition, md.offset)] = (name, raw)
    finally:
        producer.close()

    # Each consumer of a topic dead-letters on its own: on the input topics the stream worker
    # and the notifications consumer (header ttg-source=notifications); on the alerts topic the
    # tasks consumer. So: one letter per (origin, reader), never more, never fewer.
    on_alerts = sum(1 for t, _, _ in sent if t == world.topics.alerts)
    expected = {(where, reader) for where in sent
                for reader in (("tasks",) if where[0] == world.topics.alerts
                               else ("worker", "notifications"))}
    letters_raw = read_all(world, world.topics.dead_letter, len(expected), timeout=90)
    by_origin: dict[tuple[tuple[str, int, int], str], list[DeadLetter]] = {}
    for record in letters_raw:
        letter = DeadLetter.model_validate_json(record.value)
        assert letter.partition is not None and letter.offset is not None
        headers = dict(record.headers or [])
        reader = headers.get("ttg-source", b"").decode() or (
            "tasks" if letter.topic == world.topics.alerts else "worker")
        where = (letter.topic, letter.partition, letter.offset)
        by_origin.setdefault((where, reader), []).append(letter)

    missing = [(where, reader, sent[where][0]) for where, reader in expected
               if (where, reader) not in by_origin]
    assert not missing, f"{len(missing)} hostile inputs never reached the dead-letter topic: " \
                        f"{missing[:10]}"
    for (where, reader) in expected:
        name, raw = sent[where]
        got = by_origin[(where, reader)]
        assert len(got) == 1, f"{name} at {where} dead-lettered {len(got)} times by {reader}"
        assert got[0].original == raw, f"{name} at {where}: original bytes differ"
        assert got[0].reason.strip(), f"{name} at {where}: no reason"
        assert got[0].stage == "decode", (name, reader, got[0].stage, got[0].reason)
    unexpected = [k for k in by_origin if k not in expected]
    assert not unexpected, f"valid or unknown inputs dead-lettered: {unexpected[:10]}"

    # Every valid event was processed: an alert on the alerts topic and a task, per person.
    def alerted() -> set[str]:
        records = read_all(world, world.topics.alerts, 10**9, timeout=3)
        pns = set()
        for r in records:
            try:
                pns.add(json.loads(r.value)["alert"]["prison_number"])
            except (ValueError, KeyError, TypeError):
                continue  # the hostile records we put on the alerts topic ourselves
        return pns & set(people)

    world.wait_for("alerts for every valid person", lambda: alerted() == set(people),
                   timeout=90)
    world.wait_for("a task for every valid person",
                   lambda: all(world.tasks(pn) for pn in people), timeout=90)
    world.check()
    return {"hostile": len(sent), "valid": len(people), "dead_letters": len(letters_raw),
            "to_alerts_topic": on_alerts,
            "categories": len({name for name, _ in sent.values()})}


def test_hostile_inputs_dead_lettered_and_valid_events_processed(world: World) -> None:
    figures = run_hostile(world, per_category=18, valid=50, seed=8)
    print(f"hostile-input figures: {figures}")
    assert figures["hostile"] >= 200
    assert figures["to_alerts_topic"] > 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_hostile_inputs_many(world: World) -> None:
    figures = run_hostile(world, per_category=160, valid=500, seed=9)
    print(f"hostile-input figures (slow): {figures}")
    assert figures["hostile"] >= 1500
