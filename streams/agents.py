"""The release-risk agent, its table, and the sweep that makes deadlines fire without events.

One agent reads the three input topics as raw bytes, a batch at a time. A message that cannot be
decoded (or that breaks evaluation) goes to the dead-letter topic whole, and the agent carries
on. The table keeps each person's :class:`~streams.packed.Packed` record, keyed by prison number
and co-partitioned with the inputs.

Why batches: per event, Faust's own machinery (stream step, table write, changelog and alert
sends through its producer buffer) cost more than the rules. A batch is folded person by person,
each person evaluated and written to the table once, and alerts go straight to the producer; Faust
still flushes the producer before it commits the batch's offsets, so nothing is acknowledged
before its effects are on their way.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import EventT

from infra.config import Settings
from infra.topics import Topics
from schemas.codec import DecodeError, decode_input, encode
from schemas.envelope import Envelope
from schemas.outputs import AlertEvent, DeadLetter
from streams.calendar import ReleaseCalendar
from streams.clock import Clock
from streams.packed import Packed, sweep_packed
from streams.person import Evaluator, PersonRecord

log = logging.getLogger(__name__)

TABLE_NAME = "people"
AGENT_NAME = "release-risk"
#: Events per batch, and how long a batch waits to fill: at 1,000 events/s a batch is ~5 events,
#: so the wait, not the size, bounds the latency it adds.
BATCH_MAX = 1000
BATCH_WAIT_SECONDS = 0.005


@dataclass
class _Item:
    message: Any
    raw: bytes
    event: Envelope


@dataclass
class StreamParts:
    """Handles on what :func:`install` put into the app (tests and the CLI use them)."""

    app: faust.App
    topics: Topics
    evaluator: Evaluator
    table: Any
    inputs: Any
    alerts: Any
    dead_letter: Any
    agent: Any

    def record(self, key: str) -> PersonRecord | None:
        """A person's record as the table holds it now."""
        packed = self.table.data.get(key)
        return packed.unpack() if packed is not None else None

    async def produce(self, topic: str, key: bytes, value: bytes) -> None:
        """Hand one message to the producer (Faust flushes it before committing offsets)."""
        await self.app.producer.send(topic, key, value, None, None, None)

    async def publish_alerts(self, events: list[AlertEvent]) -> None:
        topic = self.topics.alerts
        for event in events:
            await self.produce(topic, event.key, encode(event))

    async def handle(self, event: EventT) -> None:
        """Process one input message (any outcome leaves the agent running)."""
        await self.handle_batch([event])

    async def handle_batch(self, batch: Sequence[EventT]) -> None:
        """Process a batch of input messages in order per person."""
        people: dict[str, list[_Item]] = {}
        for stream_event in batch:
            msg = stream_event.message
            raw = msg.value if isinstance(msg.value, bytes) else bytes(msg.value or b"")
            try:
                parsed = decode_input(raw)
            except DecodeError as exc:
                await self._dead_letter(msg, raw, str(exc), "decode")
                continue
            people.setdefault(parsed.person.prison_number, []).append(_Item(msg, raw, parsed))
        out: list[AlertEvent] = []
        for key, items in people.items():
            out.extend(await self._apply(key, items))
        await self.publish_alerts(out)

    async def _apply(self, key: str, items: list[_Item]) -> list[AlertEvent]:
        try:
            before = self.record(key)
            record, out = self.evaluator.on_events(
                before, [item.event for item in items], items[-1].message.partition)
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop everyone's alerts
            if len(items) > 1:  # find the event at fault: the others still count
                out = []
                for item in items:
                    out.extend(await self._apply(key, [item]))
                return out
            item = items[0]
            log.exception("evaluation failed for %s event %s", key, item.event.event_id)
            await self._dead_letter(item.message, item.raw, f"{type(exc).__name__}: {exc}",
                                    "evaluate")
            return []
        if record is not before:
            self._write(key, record)
        return out

    def _write(self, key: str, record: PersonRecord) -> None:
        # Written to the store and the changelog directly, on the partition the person's events
        # arrive on: outside a single stream event Faust cannot pick the changelog partition.
        packed = Packed.of(record)
        self.table.data[key] = packed
        self.table.send_changelog(record.partition, key, packed)

    async def sweep(self) -> int:
        """Re-evaluate people whose deadlines may have moved; returns alert events emitted."""
        started = time.perf_counter()
        actives = {
            tp.partition for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.topics.release_dates
        }
        changed = sweep_packed(self.evaluator, self.table.data, actives)
        emitted: list[AlertEvent] = []
        for key, record, events in changed:
            self._write(key, record)
            emitted.extend(events)
        await self.publish_alerts(emitted)
        level = logging.INFO if changed else logging.DEBUG
        log.log(level, "sweep: %d people re-evaluated, %d alert events, %.3fs",
                len(changed), len(emitted), time.perf_counter() - started)
        return len(emitted)

    async def _dead_letter(self, msg: Any, raw: bytes, reason: str, stage: str) -> None:
        letter = DeadLetter(
            reason=reason[:4000], original=raw, original_key=msg.key, topic=msg.topic,
            partition=msg.partition, offset=msg.offset, stage=stage,
        )
        log.warning("dead letter from %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset,
                    reason[:200])
        await self.dead_letter.send(key=msg.key, value=encode(letter))


def install(app: faust.App, settings: Settings, clock: Clock, calendar: ReleaseCalendar) -> None:
    from streams.app import PackedCodec

    topics = Topics.from_settings(settings)
    raw = {"key_type": bytes, "value_type": bytes,
           "key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*topics.inputs, **raw)
    alerts = app.topic(topics.alerts, **raw)
    dead_letter = app.topic(topics.dead_letter, **raw)
    table = app.Table(TABLE_NAME, partitions=settings.topic_partitions, key_type=str)
    # Faust derives serializers from types and has already made the changelog topic with
    # JSON; set ours and remake the topic, or recovery would hand back plain dicts.
    table.key_serializer = "json"
    table.value_serializer = PackedCodec()
    table.changelog_topic = table._new_changelog_topic()
    # A history of its own for each start (streams.person.Evaluator.namespace).
    evaluator = Evaluator(calendar, clock, namespace=uuid.uuid4().hex[:12])
    parts = StreamParts(
        app=app, topics=topics, evaluator=evaluator, table=table,
        inputs=inputs, alerts=alerts, dead_letter=dead_letter, agent=None,
    )

    async def release_risk(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WAIT_SECONDS):
            await parts.handle_batch(batch)

    parts.agent = app.agent(inputs, name=AGENT_NAME)(release_risk)

    async def sweep() -> None:
        await parts.sweep()

    app.timer(interval=settings.worker_sweep_seconds, name="sweep")(sweep)
    app.ttg = parts  # type: ignore[attr-defined]


def parts_of(app: faust.App) -> StreamParts:
    return app.ttg  # type: ignore[attr-defined,no-any-return]


__all__ = ["StreamParts", "install", "parts_of"]
