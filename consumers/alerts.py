"""The alerts -> tasks consumer (kafka-python).

For each alert event, in order per partition: decode it (undecodable -> dead-letter topic),
apply it to the task store and record its event id in the same database transaction, then
publish the resulting task events, and only then commit the Kafka offset. A crash anywhere
before the offset commit means the message comes again; the processed-event row makes that
second delivery a no-op, so a replay never duplicates a task.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from consumers.lifecycle import count_unrouted
from consumers.outbox import flush as flush_outbox
from consumers.outbox import publish_now
from consumers.publish import Publisher
from consumers.tasks import Applied, apply_alert_event
from infra import directory as hub_directory
from infra.config import Settings
from infra.database import engine_for, session_scope
from infra.directory import Directory
from infra.kafka import make_consumer
from infra.topics import Topics
from schemas.envelope import utcnow
from schemas.outputs import ALERT_ADAPTER, AlertEvent

log = logging.getLogger(__name__)

ApplyFn = Callable[[Session, AlertEvent, Directory, datetime], Applied]


@dataclass
class Stats:
    consumed: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retried: int = 0
    unrouted: int = 0
    task_events: int = 0


class _Retry(Exception):
    """This message must be read again (its database work failed and may succeed later)."""


class AlertsConsumer:
    def __init__(
        self, settings: Settings, engine: Engine | None = None, *,
        publisher: Publisher | None = None, apply: ApplyFn = apply_alert_event,
        clock: Callable[[], datetime] = utcnow, retry_backoff: float = 1.0,
    ) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.engine = engine or engine_for(settings)
        self.publisher = publisher or Publisher(settings)
        self._apply = apply
        self._clock = clock
        self._backoff = retry_backoff
        self._attempts: dict[tuple[str, int, int], int] = {}
        self.stats = Stats()

    def make_kafka_consumer(self) -> KafkaConsumer:
        return make_consumer(self.settings, self.settings.tasks_consumer_group, self.topics.alerts)

    def run(
        self, stop: threading.Event | None = None, idle_timeout: float | None = None,
    ) -> Stats:
        """Consume until ``stop`` is set (or, for tests and batch runs, nothing arrives for
        ``idle_timeout`` seconds after the first message)."""
        stop = stop or threading.Event()
        with Session(self.engine) as session:
            waiting = count_unrouted(session)
        if waiting:
            log.warning("%d open task(s) are UNROUTED (ttg tasks list --hub UNROUTED)", waiting)
        # Events a previous run committed but could not publish go out first.
        self.stats.task_events += flush_outbox(self.engine, self.publisher, self._clock())
        consumer = self.make_kafka_consumer()
        last_seen = time.monotonic()
        started = last_seen
        try:
            while not stop.is_set():
                batch = consumer.poll(timeout_ms=500, max_records=200)
                if batch:
                    last_seen = time.monotonic()
                    self._process_batch(consumer, batch)
                elif idle_timeout is not None:
                    # Before the first message allow for the group join and the first fetch.
                    grace = idle_timeout if self.stats.consumed else max(idle_timeout, 15.0)
                    if time.monotonic() - (last_seen if self.stats.consumed else started) > grace:
                        break
        finally:
            consumer.close(autocommit=False)
        log.info("alerts consumer stopped: %s", self.stats)
        return self.stats

    def _process_batch(self, consumer: KafkaConsumer, batch: dict) -> None:  # type: ignore[type-arg]
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, messages in batch.items():
            for msg in messages:
                try:
                    self.handle(msg.value, msg.key, tp.topic, tp.partition, msg.offset)
                except _Retry:
                    # Read this partition again from the failed message; later ones wait.
                    consumer.seek(tp, msg.offset)
                    time.sleep(self._backoff)
                    break
                offsets[tp] = OffsetAndMetadata(msg.offset + 1, "", -1)
        if offsets:
            try:
                self.commit(consumer, offsets)
            except CommitFailedError:
                # A rebalance took the partitions away; whoever gets them reads these messages
                # again, and the processed-event rows make that harmless.
                log.warning("offset commit failed after a rebalance; messages will be re-read")

    def commit(
        self, consumer: KafkaConsumer, offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> None:
        consumer.commit(offsets)

    def handle(
        self, value: bytes | None, key: bytes | None, topic: str, partition: int, offset: int,
    ) -> None:
        """Apply one message; raise :class:`_Retry` when it must be read again."""
        self.stats.consumed += 1
        raw = value or b""
        try:
            event = ALERT_ADAPTER.validate_json(raw)
        except (ValidationError, ValueError) as exc:
            self.publisher.dead_letter(f"undecodable alert event: {exc}"[:4000], raw, key, topic,
                                       partition, offset, stage="decode")
            self.stats.dead_lettered += 1
            return
        where = (topic, partition, offset)
        try:
            with session_scope(self.engine) as session:
                snapshot = hub_directory.read(session)
                applied = self._apply(session, event, snapshot, self._clock())
        except Exception as exc:  # noqa: BLE001 - any failure of the database work is retried
            # (An IntegrityError usually means another consumer applied the same event or need
            # at the same moment: reading the message again sees its result.)
            tries = self._attempts.get(where, 0) + 1
            self._attempts[where] = tries
            if tries >= self.settings.tasks_max_attempts:
                log.exception("alert event %s failed %d times; dead-lettering", event.event_id,
                              tries)
                self.publisher.dead_letter(f"{type(exc).__name__}: {exc}", raw, key, topic,
                                           partition, offset, stage="apply")
                self._attempts.pop(where, None)
                self.stats.dead_lettered += 1
                return
            log.warning("alert event %s failed (attempt %d): %s; will retry", event.event_id,
                        tries, type(exc).__name__)
            self.stats.retried += 1
            raise _Retry() from exc
        self._attempts.pop(where, None)
        if applied.duplicate:
            self.stats.duplicates += 1
            log.info("alert event %s already applied; skipped", event.event_id)
            return
        self.stats.applied += 1
        if applied.unrouted:
            self.stats.unrouted += 1
        # After the database commit; if the broker refuses, the outbox keeps them for later.
        if publish_now(self.engine, self.publisher, applied.events, self._clock()):
            self.stats.task_events += len(applied.events)
