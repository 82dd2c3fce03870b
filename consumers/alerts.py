"""The alerts -> tasks consumer (kafka-python).

Each poll batch, in order per partition: decode every message (undecodable -> dead-letter
topic), apply them all to the task store in ONE database transaction that also records each
event id as processed, then publish the resulting task events with one producer flush (the
transactional outbox keeps them if the broker refuses), and only then commit the Kafka offsets.
A crash anywhere before the offset commit means the messages come again; the processed-event
rows make that second delivery a no-op, so a replay never duplicates a task.

When the batch transaction fails, no message is lost or skipped. If applying one message
raised (``consumers.tasks.read_ahead`` has read what the batch looks up, so applying a message
issues no query and an exception belongs to the message that raised it), that message is
retried or dead-lettered exactly as if it had been applied on its own, and the rest of the
batch is applied again in a new transaction. If the failure cannot be pinned on one message
(reading ahead, or writing the batch's rows at the commit, failed), the messages are applied
one by one, each in its own transaction, as before batching. A message to be retried is read
again from the broker (its partition from it on; later messages of that partition wait) after
``retry_backoff`` seconds; after ``tasks_max_attempts`` failures it goes to the dead-letter
topic (stage ``apply``) and its partition moves on.

An outage is not the message's fault. A failure that says the database cannot be reached or is
busy (:func:`infra.database.database_unavailable`) is not counted as an attempt: the message is
read again after a backoff that grows to :data:`MAX_OUTAGE_BACKOFF_S`, for as long as the outage
lasts. A dead letter the broker does not take holds its message back the same way, and task
events published but not marked sent stay in the outbox to go again (readers deduplicate).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from consumers.lifecycle import count_unrouted
from consumers.outbox import flush as flush_outbox
from consumers.outbox import publish_now
from consumers.publish import Publisher
from consumers.tasks import Applied, apply_alert_event, read_ahead
from infra import directory as hub_directory
from infra.config import Settings
from infra.database import database_unavailable, engine_for, migrate, session_scope
from infra.directory import Directory
from infra.kafka import make_consumer
from infra.topics import Topics
from schemas.envelope import utcnow
from schemas.outputs import ALERT_ADAPTER, AlertEvent, TaskEvent

log = logging.getLogger(__name__)

ApplyFn = Callable[[Session, AlertEvent, Directory, datetime], Applied]

#: Most messages one poll hands over: one database transaction and one producer flush each.
MAX_BATCH = 200
#: Longest wait before a message held back by an outage (database, broker) is read again.
MAX_OUTAGE_BACKOFF_S = 5.0
#: How long the broker may hold a fetch that finds nothing new (kafka-python's default: 500 ms).
#: The embedded broker (Tansu) holds it that long even when a record arrives meanwhile, which
#: then waits up to about half of it (measured, one record: 500 ms -> p50 110 / max 250 ms;
#: 100 ms -> p50 16 / max 47 ms). While idle 100 ms costs about 2 % of a core here and 1.5 % in
#: the broker (10 ms: 15 % and 5 %). A real Kafka broker answers when data arrives either way.
FETCH_MAX_WAIT_MS = 100


@dataclass
class Stats:
    consumed: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retried: int = 0
    unrouted: int = 0
    task_events: int = 0
    #: Messages held back because the database was unavailable (each retry counts once).
    database_waits: int = 0
    #: Messages held back because the broker did not take their dead letter.
    dead_letter_waits: int = 0
    #: Offset commits the broker did not confirm (an outage); a later commit covers them.
    commit_failures: int = 0


@dataclass
class _Message:
    """One polled record, decoded (``event``) or not (``error`` says why)."""

    tp: TopicPartition
    offset: int
    key: bytes | None
    raw: bytes
    event: AlertEvent | None = None
    error: str | None = None

    @property
    def where(self) -> tuple[str, int, int]:
        return (self.tp.topic, self.tp.partition, self.offset)


class _BatchFailed(Exception):
    """The batch transaction failed; ``index`` is the message whose work raised, if known."""

    def __init__(self, index: int | None, cause: Exception) -> None:
        super().__init__(str(cause))
        self.index = index
        self.cause = cause


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
        self._uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
        #: The wait before reading held-back messages again; grows while an outage lasts.
        self._wait = retry_backoff
        self._outage = False
        self.stats = Stats()

    def make_kafka_consumer(self) -> KafkaConsumer:
        return make_consumer(self.settings, self.settings.tasks_consumer_group, self.topics.alerts,
                             fetch_max_wait_ms=FETCH_MAX_WAIT_MS)

    def run(
        self, stop: threading.Event | None = None, idle_timeout: float | None = None,
    ) -> Stats:
        """Consume until ``stop`` is set (or, for tests and batch runs, nothing arrives for
        ``idle_timeout`` seconds after the first message)."""
        stop = stop or threading.Event()
        if not self._start_up(stop):
            return self.stats
        consumer = self.make_kafka_consumer()
        last_seen = time.monotonic()
        started = last_seen
        try:
            while not stop.is_set():
                batch = consumer.poll(timeout_ms=500, max_records=MAX_BATCH)
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

    def _start_up(self, stop: threading.Event) -> bool:
        """Report unrouted work and send what a previous run left in the outbox, waiting out a
        database outage; False if stopped meanwhile."""
        wait = self._backoff
        while not stop.is_set():
            try:
                with Session(self.engine) as session:
                    waiting = count_unrouted(session)
                if waiting:
                    log.warning("%d open task(s) are UNROUTED (ttg tasks list --hub UNROUTED)",
                                waiting)
                # Events a previous run committed but could not publish go out first.
                self.stats.task_events += flush_outbox(self.engine, self.publisher,
                                                       self._clock())
                return True
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                self.stats.database_waits += 1
                log.warning("alerts consumer: database unavailable at start (%s); retrying in "
                            "%.1f s", type(exc).__name__, wait)
                stop.wait(wait)
                wait = min(MAX_OUTAGE_BACKOFF_S, wait * 2)
        return False

    # ------------------------------------------------------------------ one poll batch

    def _process_batch(
        self, consumer: KafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]],
    ) -> None:
        messages = [self._decode(tp, rec) for tp, records in batch.items() for rec in records]
        # Partition -> offset to read again from (a message whose database work must be retried,
        # or whose dead letter the broker did not take; later messages of its partition wait).
        again: dict[TopicPartition, int] = {}
        self._outage = False
        for m in messages:
            if m.event is None and m.offset < again.get(m.tp, m.offset + 1) and not (
                    self._dead_letter(m, f"undecodable alert event: {m.error}", "decode")):
                again[m.tp] = m.offset
        done = self._apply_batch([m for m in messages if m.event is not None
                                  and m.offset < again.get(m.tp, m.offset + 1)], again)
        # What this poll handled: everything up to and including a message to be retried.
        handled = [m for m in messages if m.offset <= again.get(m.tp, m.offset)]
        self.stats.consumed += len(handled)
        events: list[TaskEvent] = []
        for m, applied in done:
            self._attempts.pop(m.where, None)
            if applied.duplicate:
                self.stats.duplicates += 1
                log.info("alert event %s already applied; skipped",
                         m.event.event_id if m.event else None)
                continue
            self.stats.applied += 1
            if applied.unrouted:
                self.stats.unrouted += 1
            events.extend(applied.events)
        # After the database commit, in one flush; if the broker refuses, the outbox keeps them.
        if publish_now(self.engine, self.publisher, events, self._clock()):
            self.stats.task_events += len(events)
        for tp, offset in again.items():
            consumer.seek(tp, offset)
        # Offsets a commit the broker did not confirm left behind go with this one.
        offsets: dict[TopicPartition, OffsetAndMetadata] = self._uncommitted
        self._uncommitted = {}
        for m in handled:
            if m.offset < again.get(m.tp, m.offset + 1):
                offsets[m.tp] = OffsetAndMetadata(m.offset + 1, "", -1)
        if offsets:
            try:
                self.commit(consumer, offsets)
            except CommitFailedError:
                # A rebalance took the partitions away; whoever gets them reads these messages
                # again, and the processed-event rows make that harmless.
                log.warning("offset commit failed after a rebalance; messages will be re-read")
            except KafkaError as exc:
                # The broker went away mid-commit: the database work stands, the next batch's
                # commit carries these offsets too, and a restart before then re-reads them,
                # which the processed-event rows make harmless. Ending the consumer would not.
                self.stats.commit_failures += 1
                self._uncommitted = offsets
                log.warning("offset commit not confirmed (%s); the next commit covers it",
                            type(exc).__name__)
        if again:
            time.sleep(self._wait)
            # A message's own failures are retried at the steady pace; an outage backs off.
            self._wait = min(MAX_OUTAGE_BACKOFF_S, self._wait * 2) if self._outage \
                else self._backoff
        else:
            self._wait = self._backoff

    def commit(
        self, consumer: KafkaConsumer, offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> None:
        consumer.commit(offsets)

    @staticmethod
    def _decode(tp: TopicPartition, rec: ConsumerRecord) -> _Message:
        raw = rec.value or b""
        m = _Message(tp, rec.offset, rec.key, raw)
        try:
            m.event = ALERT_ADAPTER.validate_json(raw)
        except (ValidationError, ValueError) as exc:
            m.error = str(exc)
        return m

    def _apply_batch(
        self, messages: list[_Message], again: dict[TopicPartition, int],
    ) -> list[tuple[_Message, Applied]]:
        """Apply ``messages`` in one transaction; on failure see the module docstring."""
        todo = messages
        while todo:
            try:
                return self._apply_together(todo)
            except _BatchFailed as failed:
                if failed.index is None:
                    log.warning("batch of %d alert event(s) failed (%s); applying one by one",
                                len(todo), type(failed.cause).__name__)
                    return self._apply_one_by_one(todo, again)
                culprit = todo[failed.index]
                if self._failed(culprit, failed.cause):
                    again[culprit.tp] = culprit.offset
                    todo = [m for m in todo if m.tp != culprit.tp or m.offset < culprit.offset]
                else:
                    todo = [m for m in todo if m is not culprit]
        return []

    def _apply_together(self, todo: list[_Message]) -> list[tuple[_Message, Applied]]:
        done: list[tuple[_Message, Applied]] = []
        index: int | None = None
        try:
            with session_scope(self.engine) as session:
                snapshot = hub_directory.read(session)
                events = [m.event for m in todo if m.event is not None]
                # Applying them now needs no query and no flush: the batch's rows are written
                # at the commit, and an exception raised below is that message's own.
                read_ahead(session, events)
                for index, m in enumerate(todo):  # noqa: B007 - read in the except clause
                    assert m.event is not None
                    done.append((m, self._apply(session, m.event, snapshot, self._clock())))
                index = None  # a failure from here on is the flush's or the commit's
        except Exception as exc:  # noqa: BLE001 - any failure of the database work
            raise _BatchFailed(index, exc) from exc
        return done

    def _apply_one_by_one(
        self, todo: list[_Message], again: dict[TopicPartition, int],
    ) -> list[tuple[_Message, Applied]]:
        done: list[tuple[_Message, Applied]] = []
        for m in todo:
            if m.offset >= again.get(m.tp, m.offset + 1):
                continue  # behind a message of its partition that must be read again
            assert m.event is not None
            try:
                with session_scope(self.engine) as session:
                    snapshot = hub_directory.read(session)
                    applied = self._apply(session, m.event, snapshot, self._clock())
            except Exception as exc:  # noqa: BLE001 - any failure of the database work
                if self._failed(m, exc):
                    again[m.tp] = m.offset
                continue
            done.append((m, applied))
        return done

    def _failed(self, m: _Message, exc: Exception) -> bool:
        """Count a failed attempt at ``m``'s database work: True if it must be read again,
        False if it has now been dead-lettered (stage 'apply')."""
        # (An IntegrityError usually means another consumer applied the same event or need
        # at the same moment: reading the message again sees its result.)
        assert m.event is not None
        if database_unavailable(exc):
            self.stats.database_waits += 1
            self._outage = True
            log.warning("alert event %s waits: database unavailable (%s)", m.event.event_id,
                        type(exc).__name__)
            return True
        tries = self._attempts.get(m.where, 0) + 1
        self._attempts[m.where] = tries
        if tries >= self.settings.tasks_max_attempts:
            log.error("alert event %s failed %d times; dead-lettering", m.event.event_id, tries,
                      exc_info=exc)
            if not self._dead_letter(m, f"{type(exc).__name__}: {exc}", "apply"):
                return True
            self._attempts.pop(m.where, None)
            return False
        log.warning("alert event %s failed (attempt %d): %s; will retry", m.event.event_id,
                    tries, type(exc).__name__)
        self.stats.retried += 1
        return True

    def _dead_letter(self, m: _Message, reason: str, stage: str) -> bool:
        """Send ``m`` to the dead-letter topic; False (held back, read again) if the broker
        does not take it."""
        try:
            self.publisher.dead_letter(reason[:4000], m.raw, m.key, m.tp.topic, m.tp.partition,
                                       m.offset, stage=stage)
        except KafkaError as exc:
            self.stats.dead_letter_waits += 1
            self._outage = True
            log.warning("dead letter for %s[%d]@%d not taken (%s); will try again", m.tp.topic,
                        m.tp.partition, m.offset, type(exc).__name__)
            return False
        self.stats.dead_lettered += 1
        return True


def serve(settings: Settings, stop: threading.Event,
          clock: Callable[[], datetime] = utcnow) -> None:
    """``ttg consume``: alerts -> tasks until ``stop`` is set (the fault suites run this too,
    with their world's clock)."""
    consumer = AlertsConsumer(settings, clock=clock)
    migrate(consumer.engine)
    log.info("alerts -> tasks consumer starting (group %s)", settings.tasks_consumer_group)
    try:
        consumer.run(stop)
    finally:
        consumer.publisher.close()
