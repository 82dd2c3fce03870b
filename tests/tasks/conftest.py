"""Fixtures for the tasks area: the example hub directory loaded into each backend, alert
factories, and helpers that publish alert events and read task events over the real broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from sqlalchemy.engine import Engine

from infra.config import Settings
from infra.directory import load_file
from infra.kafka import client_config, ensure_topics, make_producer
from infra.topics import Topics
from schemas.codec import encode
from schemas.common import Pathway, Severity, StaffRole
from schemas.outputs import Alert, AlertEvent, TaskEvent, alert_id_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hubs.toml"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def hubs_engine(engine: Engine) -> Engine:
    """A migrated database on each backend with examples/hubs.toml loaded."""
    load_file(engine, EXAMPLE)
    return engine


@pytest.fixture
def db_settings(settings: Settings, database_url: str) -> Settings:
    """The broker settings of this test, pointed at this test's database backend."""
    return settings.model_copy(update={"database_url": database_url})


@pytest.fixture
def kafka_settings(db_settings: Settings) -> Iterator[Settings]:
    ensure_topics(db_settings)
    yield db_settings


def make_alert(
    prison_number: str = "A1234BC", rule_id: str = "no-accommodation-28",
    need: str = "accommodation",
    severity: Severity = Severity.WARNING, owner_role: StaffRole = StaffRole.HOUSING_OFFICER,
    due_at: datetime | None = None, prison: str | None = "PBI",
    local_authority: str | None = "Cambridge", pre_release: bool = True,
    release_date: date | None = date(2026, 12, 18), historical: bool = False,
    reason: str = "Release in 25 days and no confirmed address",
    pathway: Pathway = Pathway.ACCOMMODATION, also_notify: tuple[StaffRole, ...] = (),
) -> Alert:
    return Alert(
        alert_id=alert_id_for(prison_number, rule_id, release_date), prison_number=prison_number,
        rule_id=rule_id, need=need, pathway=pathway, severity=severity, owner_role=owner_role,
        due_at=due_at or NOW + timedelta(days=3), reason=reason,
        practice="[SC] 48 hours; [NE] the most important resettlement pathway",
        release_date=release_date, pre_release=pre_release, prison=prison,
        local_authority=local_authority, historical=historical, also_notify=also_notify,
    )


def event(alert: Alert, kind: str = "alert.raised", resolution: str | None = None) -> AlertEvent:
    return AlertEvent(event_id=uuid.uuid4(), type=kind, occurred_at=NOW, alert=alert,  # type: ignore[arg-type]
                      resolution=resolution)


def publish(settings: Settings, *items: AlertEvent | bytes) -> None:
    producer = make_producer(settings)
    topic = Topics.from_settings(settings).alerts
    try:
        for item in items:
            if isinstance(item, bytes):
                producer.send(topic, key=b"A0000AA", value=item).get(timeout=30)
            else:
                producer.send(topic, key=item.key, value=encode(item)).get(timeout=30)
    finally:
        producer.close()


def read_topic(settings: Settings, topic: str, timeout: float = 5.0) -> list[bytes]:
    """Every record now on ``topic``, per partition in offset order (manual assignment: no
    group join needed)."""
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False,
                             auto_offset_reset="earliest")
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        consumer.seek_to_beginning(*tps)
        got: list[ConsumerRecord] = []
        # poll(), not iteration: the position moves past every record a fetch returned, so
        # "position >= end" can hold while the iterator still holds records of the same batch.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=300).values():
                got.extend(records)
        return [r.value for r in sorted(got, key=lambda r: (r.partition, r.offset))]
    finally:
        consumer.close()


def task_events(settings: Settings) -> list[TaskEvent]:
    topic = Topics.from_settings(settings).tasks
    return [TaskEvent.model_validate_json(v) for v in read_topic(settings, topic)]


def committed(settings: Settings, group: str, topic: str) -> dict[int, int | None]:
    consumer = KafkaConsumer(**client_config(settings), group_id=group, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        return {p: consumer.committed(TopicPartition(topic, p)) for p in parts}
    finally:
        consumer.close()
