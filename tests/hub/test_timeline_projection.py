"""The timeline projection: idempotent on event id, sensitivity marked, and over a real broker
with bad input dead-lettered and offsets committed after the database commit."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
from hubworld import event
from kafka import TopicPartition
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from consumers.timeline import apply_event, run
from infra.config import Settings
from infra.database import session_scope
from infra.kafka import ensure_topics, make_consumer, make_producer
from infra.models.timeline import (
    AppointmentState,
    PersonSummary,
    ReleaseDateChange,
    TimelineEntry,
)
from infra.topics import Topics
from schemas.codec import decode_input

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _count(engine: Engine) -> int:
    with session_scope(engine) as s:
        return s.exec(select(func.count()).select_from(TimelineEntry)).one()


def test_apply_is_idempotent_and_builds_the_summary(engine: Engine) -> None:
    raws = [
        event("custody.reception", "A1234BC", {"prison": "MDI", "status": "sentenced"}, AT),
        event("release_date.changed", "A1234BC",
              {"new_date": "2026-04-10", "release_type": "parole"}, AT),
        event("custody.transfer", "A1234BC", {"from_prison": "MDI", "to_prison": "PBI"}, AT),
        event("case_note.general", "A1234BC",
              {"subtype": "gp", "text": "asthma", "sensitivity": "health"}, AT),
        event("case_note.general", "A1234BC",
              {"subtype": "intel", "text": "x", "sensitivity": "police_intelligence"}, AT),
        event("case_note.health", "A1234BC", {"gp_registered": False}, AT),
        event("case_note.contact", "A1234BC", {"mobile": "+447700900123", "sms_consent": True},
              AT),
        event("case_note.appointment", "A1234BC",
              {"appointment_id": "a1", "action": "booked", "at": "2026-04-10T13:00:00+01:00"}, AT),
        event("case_note.appointment", "A1234BC", {"appointment_id": "a1", "action": "missed"},
              AT),
        event("custody.release", "A1234BC", {"prison": "PBI", "local_authority": "Fenland"}, AT),
    ]
    events = [decode_input(json.dumps(r)) for r in raws]
    assert all(apply_event(engine, e) for e in events)
    assert not any(apply_event(engine, e) for e in events)  # a replay adds nothing
    assert _count(engine) == len(raws)
    with session_scope(engine) as s:
        sens = {r.type + ":" + r.summary.split(":")[0]: r.sensitivity
                for r in s.exec(select(TimelineEntry)).all()}
        person = s.get(PersonSummary, "A1234BC")
        appt = s.exec(select(AppointmentState)).one()
        texts = " ".join(r.summary for r in s.exec(select(TimelineEntry)).all())
        changes = s.exec(select(ReleaseDateChange)).all()
    assert sens["case_note.general:gp"] == "health"
    assert sens["case_note.general:intel"] == "police_intelligence"
    assert sens["case_note.health:Health"] == "health"
    assert sens["custody.reception:Received into MDI (sentenced)"] is None
    assert "+447700900123" not in texts and "mobile number recorded" in texts
    assert person is not None
    assert (person.current_prison, person.custody_status, person.release_date.isoformat(),  # type: ignore[union-attr]
            person.destination_local_authority, person.destination_la_key) == (
        "PBI", "released", "2026-04-10", "Fenland", "fenland")
    assert appt.status == "missed" and appt.at is not None  # "missed" keeps the booked time
    assert len(changes) == 1


def _wait(predicate, timeout: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.kafka
def test_consumer_over_the_broker(settings: Settings, engine: Engine) -> None:
    topics = Topics.from_settings(settings)
    ensure_topics(settings)
    producer = make_producer(settings)
    raws = [event("release_date.changed", f"A{i:04d}BC",
                  {"new_date": "2026-05-01", "release_type": "parole"}, AT) for i in range(20)]
    for r in raws:
        producer.send(topics.release_dates, json.dumps(r).encode(),
                      key=r["person"]["prison_number"].encode())
    producer.send(topics.custody, b'{"type": "custody.nonsense"}', key=b"A0001BC")
    producer.flush()

    def run_until(n: int, group: str = "tl-test") -> None:
        stop = threading.Event()
        t = threading.Thread(target=run, args=(settings, engine, stop), kwargs={"group_id": group},
                             daemon=True)
        t.start()
        try:
            _wait(lambda: _count(engine) >= n)
            time.sleep(1.0)  # let it commit offsets for what it has applied
        finally:
            stop.set()
            t.join(timeout=30)
        assert not t.is_alive()

    run_until(20)
    assert _count(engine) == 20

    # The bad message went to the dead-letter topic with its coordinates, and the worker went on.
    dlq = make_consumer(settings, f"dlq-{topics.dead_letter}", consumer_timeout_ms=5000)
    parts = [TopicPartition(topics.dead_letter, p)
             for p in dlq.partitions_for_topic(topics.dead_letter) or []]
    dlq.assign(parts)
    dlq.seek_to_beginning(*parts)
    letters = [json.loads(m.value) for m in dlq]
    dlq.close()
    assert len(letters) == 1
    assert letters[0]["topic"] == topics.custody and letters[0]["stage"] == "timeline"
    assert letters[0]["offset"] is not None

    # Offsets were committed: the same group resumes after them and adds nothing.
    probe = make_consumer(settings, "tl-test")
    committed = sum((probe.committed(TopicPartition(topics.release_dates, p)) or 0)
                    for p in range(settings.topic_partitions))
    probe.close()
    assert committed == 20

    # A full replay from the beginning by a new group adds nothing either.
    more = event("custody.reception", "A0001BC", {"prison": "MDI", "status": "recall"}, AT)
    producer.send(topics.custody, json.dumps(more).encode(), key=b"A0001BC").get(10)
    run_until(21, group="tl-replay")
    assert _count(engine) == 21
    with session_scope(engine) as s:
        ids = s.exec(select(TimelineEntry.event_id).order_by(col(TimelineEntry.id))).all()
    assert len(set(ids)) == 21
    producer.close()
