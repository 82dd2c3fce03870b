"""One uninterrupted run of the short cohort, shared by the crash, rebalance and replay suites:
each compares its own run with it (see tests/faults/cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from infra.broker import EmbeddedBroker
from tests.faults.cluster import Run, cohort, expected_open_alerts, run

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
#: The short cohort: 100 people, 1,152 events (release dates, custody events, case notes).
SHORT_PEOPLE, SHORT_SEED = 100, 11


@pytest.fixture(scope="session")
def short_events() -> list[bytes]:
    return cohort(SHORT_PEOPLE, SHORT_SEED, START)


def checked_reference(reference: Run, events: list[bytes]) -> Run:
    """An uninterrupted run must also agree with the rules worked out in this process."""
    expected = expected_open_alerts(events, START)
    got = reference.snapshot.open_alerts
    assert got == set(expected), {
        "missing": [expected[k] for k in set(expected) - got][:20],
        "extra": [reference.snapshot.alerts[k] for k in got - set(expected)][:20]}
    assert reference.snapshot.dead_letters == 0
    return reference


@pytest.fixture(scope="session")
def short_reference(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory,
                    short_events: list[bytes]) -> Iterator[Run]:
    """Every service running, nothing killed, the whole short cohort at once."""
    reference = run(broker.bootstrap, tmp_path_factory.mktemp("reference"), short_events, START)
    try:
        yield checked_reference(reference, short_events)
    finally:
        reference.cluster.close()
