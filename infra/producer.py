"""Publishing events to Kafka from Python: the API for prison-side integrations.

``EventProducer`` picks the topic from the event's family and keys every record by prison
number, so one person's events stay in order on one partition. ``send`` returns only once the
broker has acknowledged the record (``acks=all``): a returned :class:`Delivery` means stored.

``send_dead_letter`` is the one way any part of the project parks input it cannot use::

    with EventProducer(settings) as producer:
        producer.send(event)                       # -> Delivery(topic, partition, offset, ...)
        producer.send_dead_letter("bad JSON", raw_bytes, msg.topic, msg.partition, msg.offset,
                                  msg.key)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata, RecordMetadata

from infra.bulk import partition_of
from infra.config import Settings
from infra.kafka import make_producer
from infra.topics import Topics
from schemas.envelope import Envelope
from schemas.events import input_family
from schemas.outputs import DeadLetter

log = logging.getLogger(__name__)

#: Base64 grows bytes by 4/3; this keeps a dead letter under Kafka's default 1 MiB message limit.
MAX_DEAD_LETTER_ORIGINAL = 700 * 1024
_MAX_REASON = 4000
#: Keys whose partition we remember; prison numbers repeat, murmur2 in Python is not free.
_PARTITION_CACHE_LIMIT = 500_000


@dataclass(frozen=True)
class Delivery:
    """The broker's confirmation that a record is stored."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    event_id: uuid.UUID | None = None

    @classmethod
    def of(cls, md: RecordMetadata, key: bytes | None, event_id: uuid.UUID | None) -> Delivery:
        return cls(md.topic, md.partition, md.offset, key, event_id)


class DeliveryError(RuntimeError):
    """Some records were not acknowledged; ``failures`` pairs each with its error."""

    def __init__(self, failures: list[tuple[Any, BaseException]], delivered: list[Delivery]):
        self.failures = failures
        self.delivered = delivered
        first = failures[0][1]
        super().__init__(
            f"{len(failures)} record(s) not acknowledged by the broker "
            f"({len(delivered)} were); first error: {type(first).__name__}: {first}"
        )


def build_dead_letter(
    reason: str,
    original: bytes,
    topic: str,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | None = None,
    *,
    stage: str = "decode",
) -> DeadLetter:
    """A :class:`DeadLetter` that always validates, however long or odd its inputs are."""
    if len(reason) > _MAX_REASON:
        reason = reason[: _MAX_REASON - 1] + "…"
    if len(original) > MAX_DEAD_LETTER_ORIGINAL:
        reason = (f"{reason} (original was {len(original)} bytes; first "
                  f"{MAX_DEAD_LETTER_ORIGINAL} kept)")[-_MAX_REASON:]
        original = original[:MAX_DEAD_LETTER_ORIGINAL]
    return DeadLetter(
        reason=reason, original=original, original_key=key, topic=topic,
        partition=partition, offset=offset, stage=stage[:500],
    )


class EventProducer:
    """Sends input events (and dead letters) with delivery confirmation.

    One instance is cheap to share within a thread of work; use it as a context manager so
    buffered records are flushed and the connection closed.
    """

    def __init__(self, settings: Settings, producer: KafkaProducer | None = None):
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self._timeout = settings.producer_ack_timeout_s
        self._producer = producer or make_producer(
            settings,
            linger_ms=settings.producer_linger_ms,
            batch_size=settings.producer_batch_size,
            compression_type=None,  # events are small JSON; CPU matters more than bytes here
            metrics_enabled=False,  # per-record metrics cost ~10% of send time in kafka-python
        )
        self._partitions: dict[tuple[str, bytes], int] = {}
        self._partition_counts: dict[str, int] = {}

    # ------------------------------------------------------------------ routing

    def topic_for(self, event: Envelope) -> str:
        return self.topics.for_family(input_family(event.type))

    def _partition(self, topic: str, key: bytes) -> int:
        # Same result as kafka-python's (and Java's) default partitioner, computed once per key.
        found = self._partitions.get((topic, key))
        if found is not None:
            return found
        count = self._partition_counts.get(topic)
        if count is None:
            parts = self._producer.partitions_for(topic)
            if not parts:
                raise RuntimeError(f"topic {topic} has no partitions; run `ttg topics create`")
            count = self._partition_counts[topic] = len(parts)
        if len(self._partitions) >= _PARTITION_CACHE_LIMIT:
            self._partitions.clear()
        found = self._partitions[(topic, key)] = partition_of(key, count)
        return found

    # ------------------------------------------------------------------ sending

    def send_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> FutureRecordMetadata:
        """Queue already-encoded bytes; the future resolves when the broker acknowledges."""
        partition = self._partition(topic, key) if key is not None else None
        return self._producer.send(
            topic, value=value, key=key, partition=partition,
            headers=list(headers) if headers else None,
        )

    def send_async(self, event: Envelope) -> FutureRecordMetadata:
        return self.send_raw(self.topic_for(event), event.model_dump_json().encode(), event.key)

    def send(self, event: Envelope, timeout: float | None = None) -> Delivery:
        """Send one event and wait for the broker to store it."""
        future = self.send_async(event)
        self._producer.flush(timeout or self._timeout)
        md = future.get(timeout=timeout or self._timeout)
        return Delivery.of(md, event.key, event.event_id)

    def send_many(self, events: Iterable[Envelope], timeout: float | None = None) -> list[Delivery]:
        """Send events in order, batched; raise :class:`DeliveryError` if any was not stored."""
        pending = [(event, self.send_async(event)) for event in events]
        self._producer.flush(timeout or self._timeout)
        delivered: list[Delivery] = []
        failures: list[tuple[Any, BaseException]] = []
        for event, future in pending:
            try:
                delivered.append(Delivery.of(future.get(timeout=0.1), event.key, event.event_id))
            except Exception as exc:  # noqa: BLE001 - every kind of failure is reported
                failures.append((event, exc))
        if failures:
            raise DeliveryError(failures, delivered)
        return delivered

    def send_dead_letter(
        self,
        reason: str,
        original: bytes,
        topic: str,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
        *,
        stage: str = "decode",
        source: str | None = None,
        wait: bool = True,
    ) -> Delivery | FutureRecordMetadata:
        """Park input that could not be used on the dead-letter topic, whole.

        ``topic``/``partition``/``offset``/``key`` say where the input came from (a Kafka
        record's coordinates; for a file, the file name and the line number as ``offset``).
        ``source`` (e.g. ``"events.jsonl:12"``) travels as the ``ttg-source`` header. With
        ``wait`` (the default) this logs a warning and returns once the broker has stored the
        dead letter, so a consumer may then commit its offset past the bad record; without it,
        it returns the future and leaves reporting to the caller (bulk publishing).
        """
        letter = build_dead_letter(reason, original, topic, partition, offset, key, stage=stage)
        headers = [("ttg-source", source.encode())] if source else None
        future = self.send_raw(self.topics.dead_letter, letter.model_dump_json().encode(), key,
                               headers)
        if not wait:
            return future
        log.warning("dead letter from %s%s: %s", topic,
                    f" [{partition}]@{offset}" if partition is not None else "", letter.reason)
        self._producer.flush(self._timeout)
        return Delivery.of(future.get(timeout=self._timeout), key, None)

    # ------------------------------------------------------------------ lifecycle

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout or self._timeout)

    def close(self, timeout: float | None = None) -> None:
        self._producer.close(timeout=timeout or self._timeout)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            self.flush()
        self.close()
