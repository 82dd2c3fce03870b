"""Input events -> notification facts -> (re)planned reminders, exactly once in effect.

Reads the three input topics (case notes: contact/consent and appointments; custody: release,
recall, reception, escape, death; release-date changes) with kafka-python. Each event is applied
in one database transaction that also stores its ``event_id`` in ``notify_processed_events``, so
a redelivered event changes nothing; offsets are committed only after that commit. An event that
cannot be decoded (or applied, after retries) goes to the dead-letter topic through
``infra.producer.EventProducer.send_dead_letter`` and the consumer keeps going.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from consumers.notifications import store
from consumers.notifications.dispatch import Clock
from consumers.notifications.issues import default_issue_sink
from consumers.notifications.phones import InvalidMobile, normalise_uk_mobile
from consumers.notifications.planner import Policy
from infra.config import Settings
from infra.models.messages import (
    CustodyState,
    NotifyAppointment,
    NotifyProcessedEvent,
)
from infra.topics import Topics
from schemas.codec import DecodeError, decode_input
from schemas.envelope import Envelope
from schemas.events import (
    AppointmentAction,
    AppointmentNoteEvent,
    ContactNoteEvent,
    DeathEvent,
    EscapeEvent,
    RecallEvent,
    ReceptionEvent,
    ReceptionStatus,
    ReleaseDateChangedEvent,
    ReleaseEvent,
)

log = logging.getLogger(__name__)

RELEVANT = (ContactNoteEvent, AppointmentNoteEvent, ReleaseDateChangedEvent, ReleaseEvent,
            RecallEvent, ReceptionEvent, EscapeEvent, DeathEvent)
APPLY_ATTEMPTS = 3


def apply_event(session: Session, event: Envelope, now: datetime, policy: Policy,
                issue_sink: store.IssueSink | None = None) -> bool:
    """Apply one event to the facts and replan that person. False if already applied/irrelevant.

    Runs in the caller's transaction; the processed-event row is part of it.
    """
    if not isinstance(event, RELEVANT):
        return False
    event_id = str(event.event_id)
    if session.get(NotifyProcessedEvent, event_id) is not None:
        return False
    session.add(NotifyProcessedEvent(event_id=event_id, processed_at=now))
    pn = event.prison_number
    row = store.person(session, pn, now)
    row.updated_at = now
    reason = event.type
    if isinstance(event, ContactNoteEvent):
        note = event.payload
        if note.mobile is not None:
            try:
                row.mobile_e164, row.mobile_invalid = normalise_uk_mobile(note.mobile), False
            except InvalidMobile as exc:
                row.mobile_e164, row.mobile_invalid = None, True
                store.record_issue(session, key=f"bad-mobile|{event_id}", prison_number=pn,
                                   kind="could_not_text", now=now,
                                   reason=f"Could not text the person: the mobile number "
                                   f"recorded is {exc}.", sink=issue_sink)
        if note.sms_consent is not None:
            row.sms_consent = note.sms_consent
    elif isinstance(event, AppointmentNoteEvent):
        note = event.payload
        appt = session.get(NotifyAppointment, (pn, note.appointment_id))
        if appt is None:
            appt = NotifyAppointment(prison_number=pn, appointment_id=note.appointment_id,
                                     kind=note.kind.value, status=note.action.value,
                                     updated_at=now)
            session.add(appt)
        appt.status, appt.updated_at = note.action.value, now
        if note.action in (AppointmentAction.BOOKED, AppointmentAction.MOVED):
            appt.kind, appt.at = note.kind.value, note.at
            appt.place = note.place if note.place is not None else appt.place
            appt.with_whom = note.with_whom if note.with_whom is not None else appt.with_whom
            if note.owner_role is not None:
                appt.owner_role = note.owner_role.value
            appt.confirmed_at = None
        reason = f"appointment {note.action.value}"
    elif isinstance(event, ReleaseDateChangedEvent):
        row.release_date = event.payload.new_date
    elif isinstance(event, ReleaseEvent):
        row.custody, row.released_at = CustodyState.RELEASED.value, event.occurred_at
        row.prison = event.payload.prison
        row.local_authority = event.payload.local_authority or row.local_authority
    elif isinstance(event, RecallEvent):
        row.custody = CustodyState.RETURNED.value
    elif isinstance(event, ReceptionEvent):
        row.prison = event.payload.prison
        if (row.custody != CustodyState.PRE_RELEASE.value
                or event.payload.status is ReceptionStatus.RECALL):
            row.custody = CustodyState.RETURNED.value
    elif isinstance(event, EscapeEvent):
        row.custody = CustodyState.UNLAWFULLY_AT_LARGE.value
    elif isinstance(event, DeathEvent):
        row.custody, row.sms_consent = CustodyState.RETURNED.value, False
    session.flush()
    store.replan(session, pn, now, policy, reason)
    return True


class NotificationConsumer:
    """kafka-python consumer over the input topics; ``poll_once`` is one batch, fully settled."""

    def __init__(self, settings: Settings, engine: Engine, clock: Clock | None = None,
                 consumer: KafkaConsumer | None = None, producer: KafkaProducer | None = None
                 ) -> None:
        from infra.kafka import make_consumer, make_producer

        self.settings, self.engine = settings, engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self.policy = Policy.from_settings(settings)
        self.topics = Topics.from_settings(settings)
        self.consumer = consumer or make_consumer(settings, settings.notify_consumer_group,
                                                  *self.topics.inputs)
        self._producer = producer
        self._make_producer = lambda: make_producer(settings)
        self.issue_sink = default_issue_sink(engine)
        self.applied = 0
        self.dead_lettered = 0

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self._make_producer()
        return self._producer

    def poll_once(self, timeout_ms: int = 500) -> int:
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=500)
        seen = 0
        for records in batches.values():
            for record in records:
                seen += 1
                self._handle(record)
        if seen:
            # Every record above is durable (applied, already applied, or dead-lettered).
            self.consumer.commit()
        return seen

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.poll_once()

    def close(self) -> None:
        self.consumer.close()
        if self._producer is not None:
            self._producer.flush()
            self._producer.close()

    def _handle(self, record: object) -> None:
        raw: bytes = record.value  # type: ignore[attr-defined]
        try:
            event = decode_input(raw)
        except DecodeError as exc:
            self._dead_letter(record, str(exc), "decode")
            return
        last: Exception | None = None
        for _ in range(APPLY_ATTEMPTS):
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    if apply_event(session, event, self.clock(), self.policy,
                                   self.issue_sink):
                        self.applied += 1
                    session.commit()
                return
            except IntegrityError as exc:  # a concurrent consumer applied it first: re-check
                last = exc
            except Exception as exc:  # noqa: BLE001 - a bad event must not stop the consumer
                last = exc
        self._dead_letter(record, f"could not apply: {type(last).__name__}: {last}"[:4000],
                          "apply")

    def _dead_letter(self, record: object, reason: str, stage: str) -> None:
        """Park the record on the dead-letter topic (waits for the broker) and count it."""
        from infra.producer import EventProducer

        EventProducer(self.settings, producer=self.producer).send_dead_letter(
            reason, record.value, record.topic,  # type: ignore[attr-defined]
            record.partition, record.offset, record.key,  # type: ignore[attr-defined]
            stage=stage, source="notifications",
        )
        self.dead_lettered += 1
