"""The producer API against the real embedded broker: confirmed delivery, keys, dead letters."""

from __future__ import annotations

import json

import pytest

from infra.config import Settings
from infra.producer import Delivery, EventProducer, build_dead_letter
from infra.topics import Topics
from schemas import decode_input
from schemas.outputs import DEAD_LETTER_ADAPTER

from .conftest import read_topic
from .eventgen import event

pytestmark = pytest.mark.kafka


def model(i: int, kind: str | None = None):
    return decode_input(json.dumps(event(i, kind)))


def test_send_waits_for_the_broker_and_round_trips(topics_ready: Settings) -> None:
    topics = Topics.from_settings(topics_ready)
    sent = model(1, "release_date.changed")
    with EventProducer(topics_ready) as producer:
        delivery = producer.send(sent)
    assert isinstance(delivery, Delivery)
    assert delivery.topic == topics.release_dates
    assert delivery.offset >= 0 and delivery.event_id == sent.event_id
    [record] = read_topic(topics_ready, topics.release_dates, 1)
    assert (record.partition, record.offset) == (delivery.partition, delivery.offset)
    assert record.key == sent.person.prison_number.encode()
    assert decode_input(record.value) == sent


def test_send_many_routes_by_family_and_keeps_a_person_on_one_partition(
    topics_ready: Settings,
) -> None:
    topics = Topics.from_settings(topics_ready)
    events = [model(i) for i in range(60)] + [model(7, "custody.release") for _ in range(5)]
    with EventProducer(topics_ready) as producer:
        deliveries = producer.send_many(events)
    assert len(deliveries) == len(events)
    by_topic: dict[str, list] = {}
    for t in topics.inputs:
        by_topic[t] = read_topic(topics_ready, t, sum(d.topic == t for d in deliveries))
    assert sum(len(v) for v in by_topic.values()) == len(events)
    for ev, d in zip(events, deliveries, strict=True):
        assert d.topic == producer.topic_for(ev)
    same_person = [d for ev, d in zip(events, deliveries, strict=True)
                   if ev.person.prison_number == events[-1].person.prison_number]
    assert len({(d.topic, d.partition) for d in same_person if d.topic == topics.custody}) == 1
    received = {decode_input(r.value).event_id for rs in by_topic.values() for r in rs}
    assert received == {e.event_id for e in events}


def test_our_partitioning_matches_kafka_python(topics_ready: Settings) -> None:
    topics = Topics.from_settings(topics_ready)
    with EventProducer(topics_ready) as producer:
        for i in range(40):
            ev = model(i, "custody.release")
            ours = producer.send(ev).partition
            # kafka-python's own partitioner, for the same key
            theirs = producer._producer.send(topics.custody, b"{}", key=ev.key).get(10).partition
            assert ours == theirs


def test_dead_letter_keeps_the_original_whole(topics_ready: Settings) -> None:
    topics = Topics.from_settings(topics_ready)
    original = b'{"type": "release_date.changed", \xff broken'
    with EventProducer(topics_ready) as producer:
        delivery = producer.send_dead_letter(
            "not UTF-8", original, "ttg.release-dates", 2, 41, b"A1234BC", source="test"
        )
    assert isinstance(delivery, Delivery) and delivery.topic == topics.dead_letter
    [record] = read_topic(topics_ready, topics.dead_letter, 1)
    letter = DEAD_LETTER_ADAPTER.validate_json(record.value)
    assert letter.original == original and letter.original_key == b"A1234BC"
    assert (letter.topic, letter.partition, letter.offset) == ("ttg.release-dates", 2, 41)
    assert letter.reason == "not UTF-8"
    assert ("ttg-source", b"test") in record.headers


def test_dead_letter_of_a_huge_or_odd_input_still_validates() -> None:
    letter = build_dead_letter("x" * 10_000, b"\x00" * 2_000_000, "t")
    assert len(letter.reason) <= 4000 and "2000000 bytes" in letter.reason
    assert len(letter.original) < 2_000_000
    assert DEAD_LETTER_ADAPTER.validate_json(letter.model_dump_json()) == letter

