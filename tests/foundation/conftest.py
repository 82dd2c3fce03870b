"""Helpers for the foundation tests: read a topic back from the real broker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import typer
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from infra.config import Settings, get_settings
from infra.kafka import client_config, ensure_topics


def read_topic(settings: Settings, topic: str, expected: int, timeout: float = 20.0
               ) -> list[ConsumerRecord]:
    """Every record on ``topic`` (all partitions, from the start), waiting for ``expected``."""
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False,
                             consumer_timeout_ms=500)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300, max_records=10_000).values():
                records.extend(batch)
        # A short grace read: more than expected is a bug the caller should see.
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


@pytest.fixture
def topics_ready(settings: Settings) -> Settings:
    ensure_topics(settings)
    return settings


@pytest.fixture
def cli_env(topics_ready: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The in-process ``ttg`` CLI configured (through the environment) like ``settings``."""
    s = topics_ready
    monkeypatch.setenv("TTG_KAFKA_BOOTSTRAP", s.kafka_bootstrap or "")
    monkeypatch.setenv("TTG_TOPIC_PREFIX", s.topic_prefix)
    monkeypatch.setenv("TTG_TOPIC_PARTITIONS", str(s.topic_partitions))
    monkeypatch.setenv("TTG_DATABASE_URL", s.database_url)
    get_settings.cache_clear()
    yield s
    get_settings.cache_clear()


@pytest.fixture
def cli_app() -> typer.Typer:
    """A ``ttg`` app with the foundation's commands (other areas' commands are theirs to test)."""
    import infra.commands
    import infra.publish_commands
    import schemas.cli

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    for module in (infra.commands, infra.publish_commands, schemas.cli):
        module.register(app)
    return app
