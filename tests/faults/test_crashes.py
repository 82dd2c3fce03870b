"""Crashes: kill -9 the stream worker at seeded random moments while a simulated stream flows,
restart it, and compare the final alerts and tasks with an uninterrupted run over the same
events: lost = 0, duplicated = 0.

Both runs use the real pipeline of tests/journeys/world.py (stream worker subprocess, alerts ->
tasks consumer, notifications consumer), each with its own topics and database. The worker is
killed with SIGKILL (its whole process group) and restarted on the same state directory; Faust
recovers its table from the changelog and resumes from the committed offsets. The tasks and
notifications consumers run as threads in the harness, so they are not killed here.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from infra.broker import EmbeddedBroker
from infra.kafka import make_consumer, make_producer
from infra.simulator import SimulationConfig, simulate
from schemas.events import input_family
from tests.faults.test_replay import alert_states, db_snapshot
from tests.journeys.world import World

pytestmark = pytest.mark.kafka

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def caught_up(world: World) -> bool:
    """The worker's group has committed every input record published so far."""
    s = world.settings
    consumer = make_consumer(s, s.topic("stream-worker"))
    try:
        tps = [TopicPartition(t, p) for t in world.topics.inputs
               for p in range(s.topic_partitions)]
        ends = consumer.end_offsets(tps)
        return all((consumer.committed(tp) or 0) >= ends[tp] for tp in tps)
    finally:
        consumer.close()


def settle(world: World, quiet: float = 6.0, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    last: tuple[int, int] | None = None
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        world.check()
        now = (len(alert_states(world)), len(db_snapshot(world)["tasks"]))
        if now != last or not caught_up(world):
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= quiet:
            return
        time.sleep(1.0)
    raise AssertionError(f"pipeline did not settle: {last}\n{world.worker_log()}")


def kill_worker(world: World) -> None:
    assert world.worker is not None and world.worker.poll() is None, world.worker_log()
    os.killpg(world.worker.pid, signal.SIGKILL)
    world.worker.wait()
    # Keep the killed worker's log: the restart truncates worker.log.
    log = world.tmp / "worker.log"
    with open(world.tmp / "worker-killed.log", "ab") as keep:
        keep.write(log.read_bytes())
    world._start_worker(START)


def run(broker: EmbeddedBroker, tmp: Path, events: list[bytes], kills: int,
        seed: int) -> dict[str, Any]:
    tmp.mkdir()
    world = World.start(broker.bootstrap, tmp, START)
    rng = random.Random(seed)
    # Kill points: after a random share of the events, and (once everything is published)
    # while the backlog is still being worked through.
    cuts = sorted(rng.sample(range(1, len(events)), kills)) if kills else []
    survived = 0
    try:
        producer = make_producer(world.settings)
        try:
            for i, raw in enumerate(events):
                e = json.loads(raw)
                producer.send(world.topics.for_family(input_family(e["type"])),
                              key=e["person"]["prison_number"].encode(), value=raw)
                if cuts and i == cuts[0]:
                    cuts.pop(0)
                    producer.flush(60)
                    time.sleep(rng.uniform(0.0, 2.0))  # a random moment in the worker's work
                    kill_worker(world)
                    survived += 1
            producer.flush(60)
        finally:
            producer.close()
        settle(world)
        return {"alerts": alert_states(world), "tasks": db_snapshot(world)["tasks"],
                "kills": survived}
    finally:
        world.close()


def compare(reference: dict[str, Any], crashed: dict[str, Any]) -> dict[str, int]:
    before, after = reference["alerts"], crashed["alerts"]
    # As in the replay suite: reading three topics at once, a custody.release can overtake the
    # release date and raise a "release.unknown" alert resolved a moment later, in either run.
    only = {k: v for k, v in before.items() if k not in after} | {
        k: v for k, v in after.items() if k not in before}
    lost = [v for k, v in before.items() if k not in after and v[2] != "resolved"]
    extra_open = [v for k, v in after.items() if k not in before and v[2] != "resolved"]
    changed = [(before[k], after[k]) for k in before if k in after and before[k] != after[k]]
    assert not lost and not extra_open and not changed, {
        "lost": lost[:10], "new": extra_open[:10], "changed": changed[:10]}

    transient = {(v[0], v[1]) for v in only.values()}

    def tasks(run: dict[str, Any], closed: bool) -> Counter[tuple[str, str, str, str]]:
        return Counter((pn, need, status, rule) for _, pn, need, status, rule in run["tasks"]
                       if (pn, rule) not in transient
                       and (status in ("done", "cancelled")) == closed)

    # Open and acknowledged tasks are the hub's live work: exactly the reference's, strictly.
    ref, got = tasks(reference, False), tasks(crashed, False)
    lost_tasks, dup_tasks = ref - got, got - ref
    assert not lost_tasks and not dup_tasks, {"lost": lost_tasks, "duplicated": dup_tasks}
    # Closed tasks: none may be missing; an extra closed one (a resolved alert re-raised and
    # re-resolved while the restarted worker re-reads uncommitted input) is counted, not hidden.
    ref_closed, got_closed = tasks(reference, True), tasks(crashed, True)
    assert not ref_closed - got_closed, {"lost closed": ref_closed - got_closed}
    return {"alerts": len(before), "open_tasks": sum(ref.values()),
            "closed_tasks": sum(ref_closed.values()), "lost": 0, "duplicated_open": 0,
            "extra_closed_tasks": sum((got_closed - ref_closed).values()),
            "transient_one_run_alerts": len(only)}


def crash_suite(broker: EmbeddedBroker, tmp: Path, people: int, kills: int,
                seed: int) -> dict[str, Any]:
    events = [json.dumps(e).encode() for e in simulate(
        SimulationConfig(people=people, seed=seed, now=START, include_future=True))]
    reference = run(broker, tmp / "reference", events, kills=0, seed=seed)
    crashed = run(broker, tmp / "crashed", events, kills=kills, seed=seed)
    figures = compare(reference, crashed)
    return {"events": len(events), "kills_survived": crashed["kills"], **figures}


# Slow for now: reading the three input topics in a different order can leave an open alert in
# one run only (seen in the large replay); until the worker orders a person's events by
# occurred_at on replay, this comparison is not deterministic enough for the CI gate.
@pytest.mark.slow
def test_worker_killed_three_times_loses_and_duplicates_nothing(
    broker: EmbeddedBroker, tmp_path: Path,
) -> None:
    figures = crash_suite(broker, tmp_path, people=100, kills=3, seed=11)
    print(f"crash figures: {figures}")
    assert figures["kills_survived"] == 3


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_worker_killed_twenty_times_over_100k_events(
    broker: EmbeddedBroker, tmp_path: Path,
) -> None:
    figures = crash_suite(broker, tmp_path, people=9_000, kills=20, seed=12)
    print(f"crash figures (slow): {figures}")
    assert figures["kills_survived"] == 20 and figures["events"] >= 100_000
