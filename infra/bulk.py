"""Bulk writing to Kafka: whole record batches per request, for replaying files fast.

``KafkaProducer.send`` costs ~35 µs of Python per record in kafka-python 3 (futures, locks,
accumulator, partitioner), which caps a publisher near 20,000 records/s before any
validation. A bulk load does not need a future per record, so :class:`BulkWriter` builds each
partition's record batch with kafka-python's own ``DefaultRecordBatchBuilder`` (~3 µs a
record) and sends one ``ProduceRequest`` per broker per round with ``acks=all``, waiting for
the acknowledgement before the next round, so a partition's records stay in order.

Not idempotent: if a request times out and is retried, its records may be stored twice.
Every event carries ``event_id`` and consumers deduplicate on it, so a replay stays correct.
For one event at a time with per-record confirmation use :class:`infra.producer.EventProducer`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import kafka.errors as Errors
from kafka.net.compat import KafkaNetClient
from kafka.partitioner.default import murmur2
from kafka.protocol.producer.produce import ProduceRequest
from kafka.record.default_records import DefaultRecordBase
from kafka.record.util import calc_crc32c, encode_varint
from kafka.structs import TopicPartition

from infra.config import Settings
from infra.kafka import client_config

log = logging.getLogger(__name__)

_ATTEMPTS = 5
_PARTITION_CACHE_LIMIT = 500_000


@dataclass
class WriteFailure:
    topic: str
    partition: int
    records: int
    error: str


def _zigzag(n: int) -> bytes:
    out = bytearray()
    encode_varint(n, out.append)
    return bytes(out)


#: Kafka's zigzag varints for the small numbers every record carries (lengths, offsets).
_VARINTS = tuple(_zigzag(n) for n in range(1 << 14))
_NO_KEY = _zigzag(-1)
_NO_HEADERS = _VARINTS[0]
_HEADER = DefaultRecordBase.HEADER_STRUCT
_AFTER_LENGTH = 12  # base offset (8) + batch length (4)


def _varint(n: int) -> bytes:
    return _VARINTS[n] if n < 16384 else _zigzag(n)


class _RecordBatch:
    """One v2 record batch, uncompressed, written the way the Kafka protocol lays it out.

    kafka-python's ``DefaultRecordBatchBuilder`` does the same in ~25 µs a record; the bytes
    here are identical in form (checked by reading them back with kafka-python's consumer),
    built in a few µs because lengths come from a table and the batch shares one timestamp.
    """

    __slots__ = ("count", "parts", "size", "timestamp")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.count = 0
        self.size = _HEADER.size
        self.timestamp = int(time.time() * 1000)

    def record(self, tail: bytes) -> bytes:
        body = b"\x00\x00" + _varint(self.count) + tail  # attributes, timestamp/offset deltas
        return _varint(len(body)) + body

    def add(self, record: bytes) -> None:
        self.parts.append(record)
        self.size += len(record)
        self.count += 1

    def build(self) -> bytes:
        buf = bytearray(_HEADER.size)
        buf += b"".join(self.parts)
        _HEADER.pack_into(
            buf, 0, 0, len(buf) - _AFTER_LENGTH, 0, 2, 0, 0, self.count - 1,
            self.timestamp, self.timestamp, -1, -1, -1, self.count,
        )
        crc = calc_crc32c(memoryview(buf)[DefaultRecordBase.ATTRIBUTES_OFFSET:])
        buf[DefaultRecordBase.CRC_OFFSET:DefaultRecordBase.CRC_OFFSET + 4] = crc.to_bytes(4, "big")
        return bytes(buf)


def record_tail(
    key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
) -> bytes:
    """A record's key, value and headers as laid out on the wire (the part a batch can't vary).

    Pure and cheap to ship between processes, so validation workers can prepare records.
    """
    parts = [_NO_KEY if key is None else _varint(len(key)) + key, _varint(len(value)), value]
    if not headers:
        parts.append(_NO_HEADERS)
    else:
        parts.append(_varint(len(headers)))
        for name, raw in headers:
            encoded = name.encode()
            parts += [_varint(len(encoded)), encoded, _varint(len(raw)), raw]
    return b"".join(parts)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition kafka-python's (and Java's) default partitioner picks for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class BulkWriter:
    """Append records, then ``flush``; ``failures`` lists what the broker did not store."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._batch_bytes = settings.producer_batch_size
        # One request carries several partitions' batches; keep it well under broker limits.
        self._request_bytes = min(32 * 1024 * 1024, 8 * self._batch_bytes)
        self._timeout_ms = int(settings.producer_ack_timeout_s * 1000)
        self._client = KafkaNetClient(**client_config(settings))
        self._client.get_broker_version(self._timeout_ms)
        self._counts: dict[str, int] = {}
        self._partitions: dict[tuple[str, bytes], int] = {}
        self._open: dict[TopicPartition, _RecordBatch] = {}
        self._ready: list[tuple[TopicPartition, bytes, int]] = []
        self._ready_bytes = 0
        self.acknowledged = 0
        self._unkeyed = 0
        self.failures: list[WriteFailure] = []

    # ------------------------------------------------------------------ metadata

    def _refresh(self, topics: Sequence[str]) -> None:
        cluster = self._client.cluster
        cluster.set_topics(list({*self._counts, *topics}))
        # Always a fresh request: after NOT_LEADER a cached answer would send to the old leader.
        future = cluster.request_update()
        self._client.poll(timeout_ms=self._timeout_ms, future=future)
        if future.failed():
            raise future.exception
        if not future.is_done:
            raise Errors.KafkaTimeoutError(f"no metadata in {self._timeout_ms} ms")

    def _try_refresh(self, topics: Sequence[str]) -> None:
        # While retrying, a broker that is still away must not abort the accounting: the next
        # attempt fails too and its records are reported as not stored.
        try:
            self._refresh(topics)
        except Errors.KafkaError as exc:
            log.warning("metadata refresh failed: %s", exc)

    def partition_count(self, topic: str) -> int:
        count = self._counts.get(topic)
        if count is None:
            self._refresh([topic])
            parts = self._client.cluster.partitions_for_topic(topic)
            if not parts:
                raise RuntimeError(f"topic {topic} does not exist; run `ttg topics create`")
            count = self._counts[topic] = len(parts)
        return count

    def partition_for(self, topic: str, key: bytes) -> int:
        """The partition kafka-python's (and Java's) default partitioner picks for ``key``."""
        found = self._partitions.get((topic, key))
        if found is None:
            if len(self._partitions) >= _PARTITION_CACHE_LIMIT:
                self._partitions.clear()
            found = partition_of(key, self.partition_count(topic))
            self._partitions[(topic, key)] = found
        return found

    # ------------------------------------------------------------------ writing

    def append(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        if key is not None:
            partition = self.partition_for(topic, key)
        else:
            self._unkeyed += 1
            partition = self._unkeyed % self.partition_count(topic)
        self.append_tail(topic, partition, record_tail(key, value, headers))

    def append_tail(self, topic: str, partition: int, tail: bytes) -> None:
        """Append a record prepared by :func:`record_tail` to ``partition`` of ``topic``."""
        tp = TopicPartition(topic, partition)
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = _RecordBatch()
        record = batch.record(tail)
        if batch.count and batch.size + len(record) > self._batch_bytes:
            self._seal(tp)
            batch = self._open[tp] = _RecordBatch()
            record = batch.record(tail)
        batch.add(record)

    def _seal(self, tp: TopicPartition) -> None:
        batch = self._open.pop(tp)
        if batch.count:
            data = batch.build()
            self._ready.append((tp, data, batch.count))
            self._ready_bytes += len(data)
            if self._ready_bytes >= self._request_bytes:
                self._send_ready()

    def flush(self) -> None:
        """Send everything appended so far and wait for the broker's acknowledgements."""
        for tp in list(self._open):
            self._seal(tp)
        self._send_ready()

    def _send_ready(self) -> None:
        ready, self._ready, self._ready_bytes = self._ready, [], 0
        # A partition may have several sealed batches; send them in rounds so each round
        # carries at most one per partition and order is kept.
        while ready:
            round_, later, seen = [], [], set()
            for item in ready:
                (later if item[0] in seen else round_).append(item)
                seen.add(item[0])
            self._send_round(round_)
            ready = later

    def _send_round(self, batches: list[tuple[TopicPartition, bytes, int]]) -> None:
        pending = batches
        for attempt in range(1, _ATTEMPTS + 1):
            retry: list[tuple[TopicPartition, bytes, int]] = []
            for node, group in self._by_leader(pending).items():
                retry += self._produce(node, group, final=attempt == _ATTEMPTS)
            if not retry:
                return
            log.warning("retrying %d batch(es) (attempt %d)", len(retry), attempt + 1)
            time.sleep(min(2.0, 0.1 * 2**attempt))
            self._try_refresh([tp.topic for tp, _, _ in retry])
            pending = retry

    def _by_leader(
        self, batches: list[tuple[TopicPartition, bytes, int]]
    ) -> dict[int, list[tuple[TopicPartition, bytes, int]]]:
        groups: dict[int, list[tuple[TopicPartition, bytes, int]]] = {}
        for item in batches:
            leader = self._client.cluster.leader_for_partition(item[0])
            if leader is None or leader == -1:
                self._try_refresh([item[0].topic])
                leader = self._client.cluster.leader_for_partition(item[0])
            groups.setdefault(leader if leader is not None else -1, []).append(item)
        return groups

    def _produce(
        self, node: int, group: list[tuple[TopicPartition, bytes, int]], *, final: bool
    ) -> list[tuple[TopicPartition, bytes, int]]:
        """Send one request; return the batches worth retrying."""
        topic_cls = ProduceRequest.TopicProduceData
        part_cls = topic_cls.PartitionProduceData
        by_topic: dict[str, list] = {}
        for tp, data, _ in group:
            by_topic.setdefault(tp.topic, []).append(part_cls(index=tp.partition, records=data))
        request = ProduceRequest(
            transactional_id=None, acks=-1, timeout_ms=self._timeout_ms,
            topic_data=[topic_cls(name=t, partition_data=p) for t, p in by_topic.items()],
            min_version=3, max_version=9,
        )
        try:
            if node == -1:
                raise Errors.LeaderNotAvailableError("no leader known")
            response = self._client.send_and_receive(node, request, self._timeout_ms)
        except Errors.KafkaError as exc:
            if final:
                self._fail(group, exc)
                return []
            return group
        codes = {
            TopicPartition(t.name, p.index): p.error_code
            for t in response.responses for p in t.partition_responses
        }
        retry = []
        for item in group:
            code = codes.get(item[0], -1)
            if code == 0:
                self.acknowledged += item[2]
                continue
            error = Errors.for_code(code) if code != -1 else Errors.UnknownError
            if getattr(error, "retriable", False) and not final:
                retry.append(item)
            else:
                self._fail([item], error())
        return retry

    def _fail(self, group: list[tuple[TopicPartition, bytes, int]], exc: BaseException) -> None:
        for tp, _, count in group:
            self.failures.append(
                WriteFailure(tp.topic, tp.partition, count, f"{type(exc).__name__}: {exc}")
            )

    @property
    def failed(self) -> int:
        return sum(f.records for f in self.failures)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> BulkWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if et is None:
                self.flush()
        finally:
            self.close()
