"""Reminder changes onto the reminders topic (``schemas.outputs.ReminderEvent``), via an outbox.

``sms_reminder_history`` is the outbox: every change to a person's text is a history row written
in the same transaction as the change. :func:`publish_pending` sends the publishable ones
(scheduled / sent / cancelled / failed-or-skipped) and then marks every pending row handled. The
event id is derived from the history row id, so a crash between sending and marking re-sends
the same event ids, which readers deduplicate. Staff texts are not published (no prison number);
neither are phone numbers or bodies.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from kafka import KafkaProducer
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from infra.models.columns import as_utc
from infra.models.messages import Reminder, ReminderHistory
from schemas.codec import encode
from schemas.outputs import ReminderEvent

log = logging.getLogger(__name__)

EVENT_NAMESPACE = uuid.UUID("a4d7e0c2-1f3b-4c85-9e6a-7b2d5f8c0e19")


def event_type(row: ReminderHistory) -> str | None:
    """The ReminderEvent type for a history row, or None if the row is internal bookkeeping."""
    if row.source == "planner" and row.state == "scheduled":
        return "reminder.scheduled"
    if row.source == "callback":
        return None
    if row.state == "sent":
        return "reminder.sent"
    if row.state == "cancelled":
        return "reminder.cancelled"
    if row.state in ("failed", "skipped"):
        return "reminder.failed"
    return None  # claimed, deferred, retry, requeued


def to_event(row: ReminderHistory, reminder: Reminder) -> ReminderEvent | None:
    kind = event_type(row)
    if kind is None or reminder.prison_number is None:
        return None
    detail = row.detail if row.state != "skipped" else f"skipped: {row.detail or ''}"
    return ReminderEvent(
        event_id=uuid.uuid5(EVENT_NAMESPACE, f"history|{row.id}"), type=kind,  # type: ignore[arg-type]
        occurred_at=as_utc(row.at), reminder_key=reminder.idempotency_key[:500],  # type: ignore[arg-type]
        prison_number=reminder.prison_number, kind=reminder.kind,
        send_at=as_utc(reminder.send_at), detail=(detail or None) and detail[:500],
    )


def publish_pending(engine: Engine, producer: KafkaProducer, topic: str, now: datetime,
                    limit: int = 500, timeout: float = 30.0) -> int:
    """Publish pending reminder changes (oldest first); returns how many events were sent.
    Waits up to ``timeout`` seconds per event for the broker; raises if it does not answer."""
    with Session(engine) as session:
        rows = session.exec(
            select(ReminderHistory, Reminder)
            .join(Reminder, Reminder.id == ReminderHistory.reminder_id)  # type: ignore[arg-type]
            .where(ReminderHistory.published_at.is_(None))  # type: ignore[union-attr]
            .order_by(ReminderHistory.id).limit(limit)
        ).all()
    if not rows:
        return 0
    events = [e for e in (to_event(h, r) for h, r in rows) if e is not None]
    futures = [producer.send(topic, key=e.prison_number.encode(), value=encode(e)) for e in events]
    for f in futures:
        f.get(timeout=timeout)  # the broker has them before we mark them published
    ids = [h.id for h, _ in rows]
    with Session(engine) as session:
        session.exec(update(ReminderHistory).where(  # type: ignore[call-overload]
            ReminderHistory.id.in_(ids)).values(published_at=now))  # type: ignore[union-attr]
        session.commit()
    if events:
        log.info("published %d reminder event(s) to %s", len(events), topic)
    return len(events)
