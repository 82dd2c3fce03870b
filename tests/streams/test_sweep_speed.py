"""The sweep over 100,000 people (the benchmark target: one second). Slow: run with -m slow."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from streams.calendar import ReleaseCalendar
from streams.clock import FixedClock
from streams.person import Evaluator, sweep_records
from tests.streams.factory import ev

NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)


def _people(n: int, w: Evaluator) -> list[tuple[str, object]]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        pn = f"A{i % 10000:04d}{chr(65 + i // 10000 % 26)}{chr(65 + i // 260000 % 26)}"
        # ~60,000 releases a year: release dates spread over two years around today.
        release = date(2026, 12, 1) + timedelta(days=rng.randint(-365, 365))
        rec, _ = w.on_event(None, ev("release_date.changed", NOW - timedelta(days=90), pn=pn,
                                     event_id=uuid.UUID(int=rng.getrandbits(128)),
                                     new_date=release, release_type="conditional_release"),
                            partition=i % 6)
        if rng.random() < 0.5:
            rec, _ = w.on_event(rec, ev("case_note.accommodation", NOW - timedelta(days=80),
                                        pn=pn, status="confirmed"))
        out.append((pn, rec))
    return out


@pytest.mark.slow
def test_sweep_of_100k_people_takes_under_a_second() -> None:
    clock = FixedClock(NOW - timedelta(days=1))
    w = Evaluator(ReleaseCalendar(), clock)
    people = _people(100_000, w)
    clock.set(NOW)  # a new day: everyone in a window is due
    started = time.perf_counter()
    changed = sweep_records(w, people, partitions=set(range(6)))
    first = time.perf_counter() - started
    people = [(k, r) for k, r in people]
    by_key = {k: r for k, r, _ in changed}
    people = [(k, by_key.get(k, r)) for k, r in people]
    started = time.perf_counter()
    again = sweep_records(w, people, partitions=set(range(6)))
    steady = time.perf_counter() - started
    print(f"\nfirst sweep of the day: {len(changed)} re-evaluated in {first:.3f}s; "
          f"next sweep: {len(again)} in {steady:.3f}s")
    assert again == []
    assert first < 1.0
