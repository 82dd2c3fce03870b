"""The release-risk agent, its table, and the sweep that makes deadlines fire without events.

One agent reads the three input topics as raw bytes. A message that cannot be decoded (or that
breaks evaluation) goes to the dead-letter topic whole, and the agent carries on. The table keeps
each person's :class:`PersonRecord`, keyed by prison number and co-partitioned with the inputs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import EventT

from infra.config import Settings
from infra.topics import Topics
from schemas.codec import DecodeError, decode_input, encode
from schemas.outputs import AlertEvent, DeadLetter
from streams.calendar import ReleaseCalendar
from streams.clock import Clock
from streams.person import Evaluator, sweep_records

log = logging.getLogger(__name__)

TABLE_NAME = "people"
AGENT_NAME = "release-risk"


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

    async def publish_alerts(self, events: list[AlertEvent]) -> None:
        for event in events:
            await self.alerts.send(key=event.key, value=encode(event))

    async def handle(self, event: EventT) -> None:
        """Process one input message (any outcome leaves the agent running)."""
        msg = event.message
        raw = msg.value if isinstance(msg.value, bytes) else bytes(msg.value or b"")
        try:
            parsed = decode_input(raw)
        except DecodeError as exc:
            await self._dead_letter(msg, raw, str(exc), "decode")
            return
        key = parsed.person.prison_number
        try:
            before = self.table.get(key)
            record, out = self.evaluator.on_event(before, parsed, msg.partition)
            if record is not before:
                self.table[key] = record
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop everyone's alerts
            log.exception("evaluation failed for %s event %s", key, parsed.event_id)
            await self._dead_letter(msg, raw, f"{type(exc).__name__}: {exc}", "evaluate")
            return
        await self.publish_alerts(out)

    async def sweep(self) -> int:
        """Re-evaluate people whose deadlines may have moved; returns alert events emitted."""
        started = time.perf_counter()
        actives = {
            tp.partition for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.topics.release_dates
        }
        store = self.table.data
        changed = sweep_records(self.evaluator, store.items(), actives)
        emitted: list[AlertEvent] = []
        for key, record, events in changed:
            # Outside a stream event Faust cannot pick the changelog partition, so write it
            # ourselves: the partition the person's events arrive on.
            store[key] = record
            if events:
                self.table.send_changelog(record.partition, key, record)
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
    from streams.app import PersonRecordCodec

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
    table.value_serializer = PersonRecordCodec()
    table.changelog_topic = table._new_changelog_topic()
    parts = StreamParts(
        app=app, topics=topics, evaluator=Evaluator(calendar, clock), table=table,
        inputs=inputs, alerts=alerts, dead_letter=dead_letter, agent=None,
    )

    async def release_risk(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await parts.handle(event)

    parts.agent = app.agent(inputs, name=AGENT_NAME)(release_risk)

    async def sweep() -> None:
        await parts.sweep()

    app.timer(interval=settings.worker_sweep_seconds, name="sweep")(sweep)
    app.ttg = parts  # type: ignore[attr-defined]


def parts_of(app: faust.App) -> StreamParts:
    return app.ttg  # type: ignore[attr-defined,no-any-return]


__all__ = ["StreamParts", "install", "parts_of"]
