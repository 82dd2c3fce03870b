"""The task-event outbox: events are stored with the change, then published.

Publishing after the commit can fail (broker down) or be cut short (crash); the row stays unsent
and :func:`flush` sends it later, from the consumer, the scheduler, or the CLI. Delivery is at
least once: a flush racing an immediate publish may send an event twice, with the same
deterministic ``event_id``, so readers of the tasks topic deduplicate on it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from consumers.publish import Publisher
from consumers.tasks import enqueue, utc
from infra.models.tasks import TaskOutbox
from schemas.outputs import TaskEvent

log = logging.getLogger(__name__)

__all__ = ["enqueue", "flush", "mark_sent", "publish_now", "unsent"]


def mark_sent(engine: Engine, events: Iterable[TaskEvent], now: datetime) -> None:
    ids = [str(e.event_id) for e in events]
    if not ids:
        return
    with engine.begin() as conn:
        conn.execute(update(TaskOutbox).where(col(TaskOutbox.event_id).in_(ids),
                                              col(TaskOutbox.sent_at).is_(None))
                     .values(sent_at=utc(now)))


def publish_now(engine: Engine, publisher: Publisher, events: list[TaskEvent],
                now: datetime) -> bool:
    """Publish events whose change is committed; on failure they wait in the outbox."""
    if not events:
        return True
    try:
        publisher.task_events(events)
    except Exception as exc:  # noqa: BLE001 - the outbox keeps them for the next flush
        log.warning("task events not published yet (%s); kept in the outbox", type(exc).__name__)
        return False
    try:
        mark_sent(engine, events, now)
    except Exception as exc:  # noqa: BLE001 - they went; the next flush sends them again
        log.warning("task events published but not marked sent (%s); they may go twice, "
                    "readers deduplicate on event_id", type(exc).__name__)
    return True


def unsent(engine: Engine, limit: int = 500) -> list[TaskEvent]:
    with Session(engine) as session:
        rows = session.exec(
            select(TaskOutbox).where(col(TaskOutbox.sent_at).is_(None))
            .order_by(col(TaskOutbox.id)).limit(limit)
        ).all()
    return [TaskEvent.model_validate_json(r.payload) for r in rows]


def flush(engine: Engine, publisher: Publisher, now: datetime) -> int:
    """Publish every unsent event, oldest first; returns how many were sent."""
    sent = 0
    while batch := unsent(engine):
        if not publish_now(engine, publisher, batch, now):
            break
        sent += len(batch)
    if sent:
        log.info("published %d task event(s) from the outbox", sent)
    return sent
