"""Publishing what the task consumer and scheduler produce: task events and dead letters, both
through the shared :class:`infra.producer.EventProducer` (which waits for the broker's ack)."""

from __future__ import annotations

from collections.abc import Iterable

from infra.config import Settings
from infra.producer import EventProducer
from infra.topics import Topics
from schemas.codec import encode
from schemas.outputs import TaskEvent


class Publisher:
    def __init__(self, settings: Settings, producer: EventProducer | None = None) -> None:
        self.topics = Topics.from_settings(settings)
        self._producer = producer or EventProducer(settings)
        self._owned = producer is None

    def task_events(self, events: Iterable[TaskEvent]) -> int:
        futures = [
            self._producer.send_raw(self.topics.tasks, encode(e), e.prison_number.encode())
            for e in events
        ]
        if futures:
            self._producer.flush()
            for f in futures:
                f.get(timeout=30)
        return len(futures)

    def dead_letter(
        self, reason: str, original: bytes, key: bytes | None, topic: str, partition: int | None,
        offset: int | None, stage: str = "decode",
    ) -> None:
        # Waits for the broker to store it, so the caller may then commit past the bad record.
        self._producer.send_dead_letter(reason, original, topic, partition, offset, key,
                                        stage=stage, wait=True)

    def close(self) -> None:
        if self._owned:
            self._producer.close()
