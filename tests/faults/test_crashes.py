"""Crashes: while a simulated stream flows, ``kill -9`` the stream worker, the alerts -> tasks
consumer, the notifications service and the scheduler at seeded random moments, start each again
as a supervisor would, and compare what the run leaves with an uninterrupted run over the same
events: no open alert lost or extra, no open task lost or duplicated, no text sent twice.

Every service is a process of its own (tests/faults/cluster.py); a kill takes its whole process
group with SIGKILL, so nothing is flushed, committed or cleaned up. The stream worker recovers its
table from the changelog and resumes from its committed offsets; the consumers resume from theirs
and skip what they had already applied (processed-event rows); the notifications service settles
half-done sends (reconcile) before sending anything; the scheduler waits for the leader lease of
the killed process to run out.

What "the same" means is in :func:`tests.faults.cluster.compare`; both runs' open alerts must
also be exactly what the rules say about the events (worked out in this process).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from infra.broker import EmbeddedBroker
from tests.faults.cluster import SERVICES, Run, cohort, compare, random_kills, run
from tests.faults.conftest import START, checked_reference

pytestmark = pytest.mark.kafka


def crash_run(broker: EmbeddedBroker, tmp: Path, events: list[bytes], reference: Run, *,
              kills: int, seed: int, rate: float, tail: float = 10.0) -> dict[str, Any]:
    """Publish ``events`` at ``rate`` a second with ``kills`` SIGKILLs spread over the stream
    and ``tail`` seconds after it (while the backlog is worked through)."""
    steps = random_kills(seed, kills, over=len(events) / rate + tail)
    crashed = run(broker.bootstrap, tmp, events, START, steps=steps, rate=rate,
                  settle_timeout=1800)
    try:
        checked_reference(crashed, events)
        figures = compare(reference.snapshot, crashed.snapshot)
    finally:
        crashed.cluster.close()
    return {**crashed.figures(), "reference_seconds": round(reference.seconds, 1), **figures}


@pytest.mark.timeout(600)
def test_every_service_killed_while_the_stream_flows(
    broker: EmbeddedBroker, tmp_path: Path, short_events: list[bytes], short_reference: Run,
) -> None:
    figures = crash_run(broker, tmp_path, short_events, short_reference, kills=6, seed=21,
                        rate=50.0)
    print(f"crash figures: {figures}")
    assert figures["kills_total"] == 6 and set(figures["kills"]) == set(SERVICES)


#: The long run's cohort. 9,000 people make ~100,000 events; on a 2-core machine the pipeline
#: (alerts -> tasks on SQLite above all) does ~90 events/s, so the default is what finishes
#: (reference + crashed run) in about ten minutes. TTG_FAULTS_CRASH_PEOPLE=9000 for 100,000.
LONG_PEOPLE = int(os.environ.get("TTG_FAULTS_CRASH_PEOPLE", "2000"))
LONG_RATE = float(os.environ.get("TTG_FAULTS_CRASH_RATE", "80"))


@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_twenty_four_kills_over_a_long_stream(broker: EmbeddedBroker, tmp_path: Path) -> None:
    events = cohort(LONG_PEOPLE, 12, START)
    reference = checked_reference(
        run(broker.bootstrap, tmp_path / "reference", events, START, settle_timeout=3600),
        events)
    try:
        figures = crash_run(broker, tmp_path / "crashed", events, reference, kills=24,
                            seed=22, rate=LONG_RATE)
    finally:
        reference.cluster.close()
    print(f"crash figures (slow): {figures}")
    assert figures["kills_total"] == 24 and min(figures["kills"].values()) >= 6
