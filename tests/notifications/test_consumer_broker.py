"""End to end through the embedded broker: case notes and custody events on the input topics,
the notifications consumer plans, dispatch sends through the fake Twilio at the controlled time."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer, TopicPartition

from consumers.notifications.consumer import NotificationConsumer
from consumers.notifications.dispatch import Dispatcher
from consumers.notifications.events import publish_pending
from consumers.notifications.sender import TwilioBackend
from infra.kafka import client_config, ensure_topics, make_producer
from infra.topics import Topics
from schemas.codec import encode
from schemas.outputs import DEAD_LETTER_ADAPTER, ReminderEvent

from .builders import PN, appointment, contact, released, states

pytestmark = pytest.mark.kafka

WED_10 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _drain(consumer: NotificationConsumer, until, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        consumer.poll_once(timeout_ms=300)
    assert until(), "consumer did not catch up in time"


def test_consumer_plans_and_dispatch_sends(settings, sms_settings, engine, clock, fake_twilio):
    s = sms_settings.model_copy(update={
        "kafka_bootstrap": settings.kafka_bootstrap, "topic_prefix": settings.topic_prefix,
        "topic_partitions": settings.topic_partitions,
        "kafka_session_timeout_ms": settings.kafka_session_timeout_ms,
    })
    topics = Topics.from_settings(s)
    ensure_topics(s)
    now = clock()
    producer = make_producer(s)
    events = [(topics.custody, released(PN, now)), (topics.case_notes, contact(PN, now,
                                                                               "07400 123456")),
              (topics.case_notes, appointment(PN, now, "ap1", when=WED_10))]
    for topic, event in events:
        producer.send(topic, key=event.key, value=encode(event)).get(timeout=30)
    producer.send(topics.case_notes, key=PN.encode(), value=b'{"type": "case_note.contact"')
    producer.send(topics.case_notes, key=PN.encode(), value=encode(events[1][1]))  # redelivery
    producer.flush()
    producer.close()

    consumer = NotificationConsumer(s, engine, clock)
    try:
        _drain(consumer, lambda: consumer.applied == 3 and consumer.dead_lettered == 1)
    finally:
        consumer.close()
    assert states(engine, PN) == {f"{PN}|-|welcome": "scheduled",
                                  f"{PN}|ap1|evening_before": "scheduled",
                                  f"{PN}|ap1|hours_before": "scheduled"}

    # The undecodable message is on the dead-letter topic, whole, with a reason.
    dlq = KafkaConsumer(**client_config(s), enable_auto_commit=False,
                        consumer_timeout_ms=5000)
    parts = [TopicPartition(topics.dead_letter, p) for p in range(s.topic_partitions)]
    dlq.assign(parts)
    dlq.seek_to_beginning(*parts)
    letters = [DEAD_LETTER_ADAPTER.validate_json(m.value) for m in dlq]
    dlq.close()
    assert len(letters) == 1 and letters[0].original == b'{"type": "case_note.contact"'
    assert letters[0].topic == topics.case_notes and letters[0].stage == "decode"

    # A second consumer in the same group starts after the committed offsets: nothing re-applied.
    again = NotificationConsumer(s, engine, clock)
    try:
        deadline = time.monotonic() + 3  # a group join takes ~1 s here
        while time.monotonic() < deadline:
            again.poll_once(timeout_ms=300)
        assert again.applied == 0 and again.dead_lettered == 0
    finally:
        again.close()

    dispatcher = Dispatcher(engine, TwilioBackend(s), s, clock)
    assert dispatcher.run_once().sent == 1
    clock.set(datetime(2026, 11, 24, 18, 0, tzinfo=UTC))
    assert dispatcher.run_once().sent == 1
    bodies = [m["body"] for m in fake_twilio.created()]
    assert bodies[0].startswith("Hello") and "tomorrow, Wed 25 Nov at 10:00" in bodies[1]
    assert {m["to"] for m in fake_twilio.created()} == {"+447400123456"}

    # The changes are published to the reminders topic, once (a second run publishes nothing).
    producer = make_producer(s)
    # (5 or 6: if the release is read after the notes, the welcome is rescheduled once more.)
    count = publish_pending(engine, producer, topics.reminders, clock())
    assert count in (5, 6)
    assert publish_pending(engine, producer, topics.reminders, clock()) == 0
    producer.close()
    reader = KafkaConsumer(**client_config(s), enable_auto_commit=False,
                           consumer_timeout_ms=5000)
    parts = [TopicPartition(topics.reminders, p) for p in range(s.topic_partitions)]
    reader.assign(parts)
    reader.seek_to_beginning(*parts)
    published = [ReminderEvent.model_validate_json(m.value) for m in reader]
    reader.close()
    assert len(published) == count
    assert {e.reminder_key for e in published if e.type == "reminder.scheduled"} == {
        f"{PN}|-|welcome", f"{PN}|ap1|evening_before", f"{PN}|ap1|hours_before"}
    assert sorted(e.reminder_key for e in published if e.type == "reminder.sent") == [
        f"{PN}|-|welcome", f"{PN}|ap1|evening_before"]
    assert all(e.prison_number == PN and "+44" not in (e.detail or "") for e in published)
