"""Kafka clients configured from :class:`Settings`: admin, producer, consumer options.

A broker that cannot be reached when a client is created is waited for (``broker_wait_s``,
default :data:`BROKER_WAIT_S`), with a warning every few seconds, instead of failing after
kafka-python's single 30 s bootstrap attempt: a service started while the broker is down (or
restarting) starts working when it comes back. Once created, clients reconnect by themselves;
their reconnect backoff is capped at :data:`RECONNECT_BACKOFF_MAX_MS` so that, after a long
outage, they are back within seconds of the broker rather than up to 30 s later.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, TopicAlreadyExistsError

from infra.config import Settings
from infra.topics import Topics

log = logging.getLogger(__name__)

#: How long creating a producer or consumer waits for an unreachable broker before it fails.
BROKER_WAIT_S = 300.0
#: Longest pause between a client's reconnection attempts (kafka-python's default is 30 s).
RECONNECT_BACKOFF_MAX_MS = 2_000
_WARN_EVERY_S = 10.0

_Client = TypeVar("_Client", KafkaProducer, KafkaConsumer, KafkaAdminClient)


@dataclass
class BrokerWaits:
    """Process-wide count of clients that had to wait for the broker when created (metrics)."""

    clients: int = 0
    seconds: float = 0.0
    gave_up: int = 0


#: This process's waits for an unreachable broker (see :func:`make_producer`).
broker_waits = BrokerWaits()


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


def make_producer(
    settings: Settings, *, broker_wait_s: float | None = BROKER_WAIT_S, **overrides: Any
) -> KafkaProducer:
    """A producer that waits for the broker to acknowledge, so "sent" means stored.

    Waits up to ``broker_wait_s`` (None: for ever) for an unreachable broker."""
    opts: dict[str, Any] = {
        **client_config(settings),
        "acks": "all",
        "retries": 5,
        "linger_ms": 5,
        "max_in_flight_requests_per_connection": 1,  # keep a person's events in order on retry
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    opts.update(overrides)
    return _create(KafkaProducer, (), opts, broker_wait_s)


def make_consumer(
    settings: Settings, group_id: str, *topics: str, broker_wait_s: float | None = BROKER_WAIT_S,
    **overrides: Any,
) -> KafkaConsumer:
    """A consumer that commits only when told: offsets move after the work is durable.

    Waits up to ``broker_wait_s`` (None: for ever) for an unreachable broker."""
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
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    opts.update(overrides)
    return _create(KafkaConsumer, topics, opts, broker_wait_s)


def _reachable(servers: list[str], timeout: float = 2.0) -> bool:
    """Whether a TCP connection to any bootstrap server opens (cheap; starts no client)."""
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or "]" in port:  # no port given: Kafka's default
            host, port = server, "9092"
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)),
                                          timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def _discard(client: Any) -> None:
    """Close what a constructor that failed half-way had started (its network thread)."""
    inner = client.__dict__.get("_client")
    if inner is not None:
        with contextlib.suppress(Exception):
            inner.close()


def _create(cls: type[_Client], topics: tuple[str, ...], opts: dict[str, Any],
            wait_s: float | None) -> _Client:
    """``cls(*topics, **opts)``, retried while the broker cannot be reached, up to ``wait_s``."""
    started = time.monotonic()
    warned: float | None = None
    pause = 0.2
    what = cls.__name__
    servers = opts["bootstrap_servers"]
    while True:
        last: Exception | None = None
        if _reachable(servers):
            client = cls.__new__(cls)
            try:
                client.__init__(*topics, **opts)  # type: ignore[misc]
                if warned is not None:
                    waited = time.monotonic() - started
                    broker_waits.clients += 1
                    broker_waits.seconds += waited
                    log.warning("%s connected to Kafka at %s after %.1f s", what,
                                ",".join(servers), waited)
                return client
            except (KafkaTimeoutError, KafkaConnectionError) as exc:
                _discard(client)
                last = exc
        waited = time.monotonic() - started
        if wait_s is not None and waited >= wait_s:
            broker_waits.gave_up += 1
            raise last or KafkaTimeoutError(
                f"Kafka at {','.join(servers)} unreachable for {waited:.0f} s")
        if warned is None or time.monotonic() - warned >= _WARN_EVERY_S:
            warned = time.monotonic()
            log.warning("%s: Kafka at %s unreachable (%.0f s so far%s); still trying", what,
                        ",".join(servers), waited,
                        "" if wait_s is None else f", giving up after {wait_s:.0f} s")
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


def ensure_topics(settings: Settings, topics: Topics | None = None, *,
                  broker_wait_s: float | None = BROKER_WAIT_S) -> list[str]:
    """Create every topic the project uses; existing ones are left alone. Returns those created.

    Waits up to ``broker_wait_s`` (None: for ever) for an unreachable broker."""
    topics = topics or Topics.from_settings(settings)
    admin = _create(KafkaAdminClient, (), {**client_config(settings), "client_id": "ttg-admin"},
                    broker_wait_s)
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


def log_ends(
    settings: Settings, listed: Mapping[Any, int | None], timeout: float = 30.0,
) -> dict[Any, int | None]:
    """The offset after the last record of each partition in ``listed`` (partition -> end offset
    as ListOffsets(latest) gave it; keys are any (topic, partition) named tuples, kept as is).

    Not ``end_offsets`` alone: the embedded broker (Tansu 0.6.0) answers ListOffsets(latest)
    with the partition's last record *batch*'s base offset + 1, short of the real end whenever
    that batch holds several records (tests/faults/test_broker_offsets.py). A fetch response's
    high watermark is right, so the last batch of each partition is fetched and its high
    watermark read. Partitions with no answer within ``timeout`` keep the listed end."""
    ends: dict[Any, int | None] = dict(listed)
    todo = {TopicPartition(tp.topic, tp.partition): tp for tp, end in listed.items() if end}
    if not todo:
        return ends
    consumer = make_consumer(settings, None, broker_wait_s=timeout)  # type: ignore[arg-type]
    try:
        consumer.assign(list(todo))
        for tp, key in todo.items():
            consumer.seek(tp, listed[key] - 1)  # type: ignore[operator]
        pending = set(todo)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200, max_records=1)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    ends[todo[tp]] = max(highwater, listed[todo[tp]] or 0)
                    consumer.pause(tp)
                    pending.discard(tp)
        if pending:
            log.warning("no high watermark fetched for %d partition(s) in %.0f s; using the "
                        "broker's listed end offsets", len(pending), timeout)
    finally:
        consumer.close()
    return ends
