"""Stream workers sharing the partitions, and rebalances while the stream flows: the same
result as one worker.

The workers are the real ``python -m streams`` processes in one consumer group (the Faust app
id). Kafka splits the partitions between them; the three input topics are co-partitioned, so a
person's release dates, custody events and case notes all go to the worker that holds that
person's table partition. When a worker joins or leaves, the group rebalances: partitions move,
and the worker that gains one recovers its people from the changelog before reading on from the
committed offsets. Compared with the uninterrupted one-worker run (tests/faults/cluster.py
``compare``); both must also say what the rules say about the events.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from infra.broker import EmbeddedBroker
from tests.faults.cluster import Cluster, Run, Step, cohort, compare, run
from tests.faults.conftest import START, checked_reference

pytestmark = pytest.mark.kafka

OTHERS = ("tasks", "notify", "scheduler")


class GroupWatch:
    """How many workers the group has, read once a second while the run goes on."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __call__(self, cluster: Cluster) -> None:
        def loop() -> None:
            while not self.stop.is_set():
                with contextlib.suppress(Exception):  # the group may not exist yet
                    self.seen.append(cluster.members(cluster.worker_group))
                self.stop.wait(1.0)

        self.thread = threading.Thread(target=loop, name="group-watch", daemon=True)
        self.thread.start()

    def close(self) -> int:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        return max(self.seen, default=0)


def rebalance_run(broker: EmbeddedBroker, tmp: Path, events: list[bytes], reference: Run, *,
                  workers: tuple[str, ...], steps: list[Step], rate: float) -> dict[str, Any]:
    watch = GroupWatch()
    try:
        result = run(broker.bootstrap, tmp, events, START, services=(*workers, *OTHERS),
                     steps=steps, rate=rate, watch=watch)
    finally:
        most = watch.close()
    try:
        checked_reference(result, events)
        figures = compare(reference.snapshot, result.snapshot)
    finally:
        result.cluster.close()
    return {**result.figures(), "most_workers_seen": most, **figures}


@pytest.mark.timeout(600)
def test_two_workers_share_the_partitions_then_one_leaves(
    broker: EmbeddedBroker, tmp_path: Path, short_events: list[bytes], short_reference: Run,
) -> None:
    rate = 50.0
    leave = 0.5 * len(short_events) / rate
    figures = rebalance_run(broker, tmp_path, short_events, short_reference,
                            workers=("worker", "worker-b"),
                            steps=[Step(leave, "stop", "worker-b")], rate=rate)
    print(f"rebalance figures: {figures}")
    assert figures["most_workers_seen"] == 2 and figures["stops"] == {"worker-b": 1}


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_workers_join_leave_and_die_over_a_longer_stream(
    broker: EmbeddedBroker, tmp_path: Path,
) -> None:
    """Two workers; a third joins at a quarter of the stream; one leaves at half; the first is
    killed (SIGKILL, not restarted) at three quarters: the third finishes the stream alone."""
    events = cohort(1_000, 13, START)
    reference = checked_reference(
        run(broker.bootstrap, tmp_path / "reference", events, START, settle_timeout=1800),
        events)
    rate = 80.0
    span = len(events) / rate
    steps = [Step(0.25 * span, "start", "worker-c"), Step(0.5 * span, "stop", "worker-b"),
             Step(0.75 * span, "kill-only", "worker")]
    started = time.monotonic()
    try:
        figures = rebalance_run(broker, tmp_path / "rebalanced", events, reference,
                                workers=("worker", "worker-b"), steps=steps, rate=rate)
    finally:
        reference.cluster.close()
    figures["wall_seconds"] = round(time.monotonic() - started, 1)
    print(f"rebalance figures (slow): {figures}")
    assert figures["most_workers_seen"] >= 2
