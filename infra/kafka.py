"""Kafka clients configured from :class:`Settings`: admin, producer, consumer options."""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from infra.config import Settings
from infra.topics import Topics

log = logging.getLogger(__name__)


class BrokerNotConfigured(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            "no Kafka broker: set TTG_KAFKA_BOOTSTRAP, or run `ttg up` (which starts an "
            "embedded broker) in this directory first"
        )


def bootstrap(settings: Settings) -> str:
    found = settings.resolved_bootstrap()
    if not found:
        raise BrokerNotConfigured()
    return found


def client_config(settings: Settings) -> dict[str, Any]:
    """Options every kafka-python client shares (connection and security)."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": bootstrap(settings).split(","),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        cfg["sasl_mechanism"] = settings.kafka_sasl_mechanism
        cfg["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password:
            cfg["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        cfg["ssl_cafile"] = settings.kafka_ssl_cafile
    return cfg


def faust_broker_url(settings: Settings) -> str:
    return ";".join(f"kafka://{hp}" for hp in bootstrap(settings).split(","))


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer that waits for the broker to acknowledge, so "sent" means stored."""
    opts: dict[str, Any] = {
        **client_config(settings),
        "acks": "all",
        "retries": 5,
        "linger_ms": 5,
        "max_in_flight_requests_per_connection": 1,  # keep a person's events in order on retry
    }
    opts.update(overrides)
    return KafkaProducer(**opts)


def make_consumer(
    settings: Settings, group_id: str, *topics: str, **overrides: Any
) -> KafkaConsumer:
    """A consumer that commits only when told: offsets move after the work is durable."""
    session = settings.kafka_session_timeout_ms
    opts: dict[str, Any] = {
        **client_config(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": session,
        "heartbeat_interval_ms": max(500, session // 4),
        # A join on Tansu completes after about half the session timeout, so tests use a short one.
        "max_poll_interval_ms": max(session, 60_000),
    }
    opts.update(overrides)
    return KafkaConsumer(*topics, **opts)


def ensure_topics(settings: Settings, topics: Topics | None = None) -> list[str]:
    """Create every topic the project uses; existing ones are left alone. Returns those created."""
    topics = topics or Topics.from_settings(settings)
    admin = KafkaAdminClient(**client_config(settings), client_id="ttg-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics.all() if t not in existing]
        created: list[str] = []
        for name in wanted:
            try:
                admin.create_topics(
                    [NewTopic(name, settings.topic_partitions, settings.topic_replication)]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another process won the race; that is the idempotent outcome we want
        return created
    finally:
        admin.close()
