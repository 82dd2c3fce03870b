"""The real worker on the embedded broker: events in over Kafka, alerts and dead letters out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from kafka import TopicPartition

from infra.config import Settings
from infra.kafka import ensure_topics, log_ends, make_consumer, make_producer
from infra.topics import Topics
from schemas.codec import encode
from tests.streams.factory import PN, ev, release_date

pytestmark = pytest.mark.kafka

#: Half a minute before midnight (GMT = UTC in November): the sweep must notice the new day.
START = datetime(2026, 11, 26, 23, 59, 30, tzinfo=UTC)
PN2 = "B7654CD"


def _read_until(consumer, want, timeout: float, worker=None) -> list[dict]:
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (worker is None or worker.poll() is None):
        for records in consumer.poll(timeout_ms=500).values():
            seen.extend(json.loads(r.value) for r in records)
        if want(seen):
            return seen
    return seen


def _read_to_end(settings: Settings, consumer, topic: str, timeout: float = 30) -> list[dict]:
    """What is left of ``topic`` for ``consumer`` (assigned all of it), up to the topic's real
    end: ``log_ends``, since the embedded broker lists the end of the last batch's first record."""
    tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
    ends = log_ends(settings, consumer.end_offsets(tps))
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while (any(consumer.position(tp) < (ends[tp] or 0) for tp in tps)
           and time.monotonic() < deadline):
        for records in consumer.poll(timeout_ms=500).values():
            seen.extend(json.loads(r.value) for r in records)
    return seen


def _assign_all(settings: Settings, topic: str):
    consumer = make_consumer(settings, None, consumer_timeout_ms=1000)  # type: ignore[arg-type]
    consumer.assign([TopicPartition(topic, p) for p in range(settings.topic_partitions)])
    consumer.seek_to_beginning()
    return consumer


def _start_worker(settings: Settings, tmp_path, start: datetime, name: str = "worker"):
    env = {
        **os.environ,
        "TTG_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "TTG_TOPIC_PREFIX": settings.topic_prefix,
        "TTG_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "TTG_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka_session_timeout_ms),
        "TTG_FAUST_DATADIR": str(tmp_path / "faust"),
        "TTG_WORKER_CLOCK_START": start.isoformat(),
        "TTG_WORKER_SWEEP_SECONDS": "1",
    }
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams"], cwd=tmp_path, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    return worker, log_path


def _stop(worker) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def test_worker_raises_alerts_and_dead_letters_bad_input(settings: Settings, tmp_path) -> None:
    topics = Topics.from_settings(settings)
    ensure_topics(settings)
    worker, log_path = _start_worker(settings, tmp_path, START)
    alerts = _assign_all(settings, topics.alerts)
    dead = _assign_all(settings, topics.dead_letter)
    producer = make_producer(settings)
    try:
        producer.send(topics.custody, key=PN.encode(), value=b"\xff not an event")
        good = release_date(date(2026, 12, 11), START - timedelta(days=30))
        producer.send(topics.release_dates, key=PN.encode(), value=encode(good))
        # 15 days out tonight, 14 tomorrow: only the sweep can raise the benefits alert.
        later = release_date(date(2026, 12, 11), START - timedelta(days=30), pn=PN2)
        producer.send(topics.release_dates, key=PN2.encode(), value=encode(later))
        producer.flush()

        def friday_raised(events: list[dict]) -> bool:
            return any(e["type"] == "alert.raised"
                       and e["alert"]["rule_id"] == "release.friday_or_pre_holiday"
                       for e in events)

        got = _read_until(alerts, friday_raised, timeout=90, worker=worker)
        assert friday_raised(got), log_path.read_text()[-3000:]
        friday = next(e for e in got if e["alert"]["rule_id"] == "release.friday_or_pre_holiday")
        assert friday["alert"]["prison_number"] == PN
        assert friday["alert"]["suggested_release_date"] == "2026-12-09"
        assert len({e["event_id"] for e in got}) == len(got)

        letters = _read_until(dead, lambda ls: bool(ls), timeout=30)
        assert len(letters) == 1
        assert letters[0]["topic"] == topics.custody and letters[0]["stage"] == "decode"
        assert letters[0]["offset"] == 0 and "UTF-8" in letters[0]["reason"]
        assert worker.poll() is None, "the worker must keep running after bad input"

        def swept(events: list[dict]) -> bool:
            return any(e["alert"]["rule_id"] == "benefits.no_claim"
                       and e["alert"]["prison_number"] == PN2 for e in events)

        got += _read_until(alerts, swept, timeout=60, worker=worker)
        assert swept(got), log_path.read_text()[-3000:]
        mine = [e for e in got if e["alert"]["prison_number"] == PN2]
        before = [e for e in mine if e["occurred_at"].startswith("2026-11-26")]
        after = [e for e in mine if e["occurred_at"].startswith("2026-11-27")]
        assert {e["alert"]["rule_id"] for e in before} >= {"accommodation.none"}
        assert "benefits.no_claim" not in {e["alert"]["rule_id"] for e in before}
        assert {e["alert"]["rule_id"] for e in after} >= {"benefits.no_claim", "benefits.no_id"}
        assert len({e["event_id"] for e in got}) == len(got)
    finally:
        producer.close()
        alerts.close()
        dead.close()
        _stop(worker)


def test_restart_recovers_the_table_and_repeats_nothing(settings: Settings, tmp_path) -> None:
    """A restarted worker rebuilds each person from the changelog: a replayed duplicate raises
    nothing, and a new fact resolves the alert the first worker raised."""
    topics = Topics.from_settings(settings)
    ensure_topics(settings)
    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    alerts = _assign_all(settings, topics.alerts)
    producer = make_producer(settings)
    plan = release_date(date(2026, 12, 11), start - timedelta(days=30))
    worker, log_path = _start_worker(settings, tmp_path, start, "first")
    try:
        producer.send(topics.release_dates, key=PN.encode(), value=encode(plan))
        producer.flush()

        def has(rule: str, kind: str):
            return lambda es: any(e["type"] == kind and e["alert"]["rule_id"] == rule for e in es)

        first = _read_until(alerts, has("accommodation.none", "alert.raised"), 90, worker)
        assert has("accommodation.none", "alert.raised")(first), log_path.read_text()[-3000:]
        time.sleep(1.5)  # let Faust commit offsets and flush the changelog
    finally:
        _stop(worker)
    first += _read_until(alerts, lambda es: False, 1)

    worker, log_path = _start_worker(settings, tmp_path, start, "second")
    try:
        producer.send(topics.release_dates, key=PN.encode(), value=encode(plan))  # duplicate
        housed = ev("case_note.accommodation", start, status="confirmed")
        producer.send(topics.case_notes, key=PN.encode(), value=encode(housed))
        producer.flush()
        second = _read_until(alerts, has("accommodation.none", "alert.resolved"), 90, worker)
        assert has("accommodation.none", "alert.resolved")(second), log_path.read_text()[-3000:]
        second += _read_until(alerts, lambda es: False, 2)
        assert not [e for e in second if e["type"] == "alert.raised"], "nothing raised twice"
        assert {e["alert"]["rule_id"] for e in second} == {
            "accommodation.none", "release.friday_or_pre_holiday"}
        assert all(e["type"] == "alert.resolved" for e in second)
        ids = [e["event_id"] for e in first + second]
        assert len(ids) == len(set(ids))
    finally:
        producer.close()
        alerts.close()
        _stop(worker)


def test_restart_recovers_every_person_written_in_one_changelog_batch(
    settings: Settings, tmp_path,
) -> None:
    """The worker writes a batch of people to the changelog at once. The embedded broker reports
    such a partition's end as its last batch's first record + 1, and Faust's recovery stopped
    there: everyone after that record came back as they were before (streams/highwaters.py).
    After a restart every person must resolve the alert the first worker raised, and nobody
    must be raised again as if new.

    The notes are waiting in the input topic when the second worker finishes its recovery: the
    moment Faust lost input records, by clearing the stream queues after the inputs were resumed
    and by letting a fetch for "no partitions" hand over all of them (streams/app.py). Those
    failed about one run in four on a loaded machine ("never resolved"). Everything the first
    worker published is read before the second starts, or its last alerts would be counted as
    "raised again"."""
    topics = Topics.from_settings(settings)
    ensure_topics(settings)
    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    people = [f"R{i:04d}AA" for i in range(40)]
    alerts = _assign_all(settings, topics.alerts)
    producer = make_producer(settings, linger_ms=50)
    worker, log_path = _start_worker(settings, tmp_path, start, "first")
    try:
        for pn in people:
            plan = release_date(date(2026, 12, 11), start - timedelta(days=30), pn=pn)
            producer.send(topics.release_dates, key=pn.encode(), value=encode(plan))
        producer.flush()

        def raised_for_all(es: list[dict]) -> bool:
            return {e["alert"]["prison_number"] for e in es if e["type"] == "alert.raised"
                    and e["alert"]["rule_id"] == "accommodation.none"} == set(people)

        first = _read_until(alerts, raised_for_all, 90, worker)
        assert raised_for_all(first), log_path.read_text()[-3000:]
        time.sleep(1.5)  # let Faust commit offsets and flush the changelog
    finally:
        _stop(worker)
    # Each person's alerts follow their accommodation one, maybe in a later produce batch.
    first += _read_to_end(settings, alerts, topics.alerts)

    worker, log_path = _start_worker(settings, tmp_path, start, "second")
    try:
        for pn in people:
            housed = ev("case_note.accommodation", start, pn=pn, status="confirmed")
            producer.send(topics.case_notes, key=pn.encode(), value=encode(housed))
        producer.flush()

        def resolved_for_all(es: list[dict]) -> bool:
            return {e["alert"]["prison_number"] for e in es if e["type"] == "alert.resolved"
                    and e["alert"]["rule_id"] == "accommodation.none"} == set(people)

        second = _read_until(alerts, resolved_for_all, 90, worker)
        second += _read_until(alerts, lambda es: False, 2)
        raised_again = sorted({e["alert"]["prison_number"] for e in second
                               if e["type"] == "alert.raised"})
        assert not raised_again, (f"{len(raised_again)} people came back from the changelog "
                                  f"as if new: {raised_again[:10]}")
        resolved = {e["alert"]["prison_number"] for e in second if e["type"] == "alert.resolved"
                    and e["alert"]["rule_id"] == "accommodation.none"}
        assert resolved == set(people), (sorted(set(people) - resolved),
                                         log_path.read_text()[-3000:])
    finally:
        producer.close()
        alerts.close()
        _stop(worker)
