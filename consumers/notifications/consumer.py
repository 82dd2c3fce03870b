"""Input events -> notification facts -> (re)planned reminders, exactly once in effect.

Reads the three input topics (case notes: contact/consent and appointments; custody: release,
recall, reception, escape, death; release-date changes) with kafka-python. Each event is applied
in one database transaction that also stores its ``event_id`` in ``notify_processed_events``, so
a redelivered event changes nothing; offsets are committed only after that commit. An event that
cannot be decoded (or applied, after retries) goes to the dead-letter topic through
``infra.producer.EventProducer.send_dead_letter`` and the consumer keeps going.

Outages are not bad events. When the database cannot be reached (connection refused or lost,
SQLite locked: :func:`database_unavailable`), or the broker does not take a dead letter, the
record is neither dead-lettered nor committed: the consumer rewinds to it, commits only what it
finished, waits (backing off up to :data:`MAX_OUTAGE_BACKOFF_S`) and reads it again, for as long
as the outage lasts. A commit the broker does not answer is logged and counted; the records come
again only after a rebalance, and their processed-event rows make that a no-op. What happened is
counted in :class:`ConsumerStats` (``consumer.stats``) and logged as warnings.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from consumers.notifications import store
from consumers.notifications.dispatch import Clock
from consumers.notifications.issues import default_issue_sink
from consumers.notifications.phones import InvalidMobile, normalise_uk_mobile
from consumers.notifications.planner import Policy
from infra.config import Settings
from infra.database import database_unavailable
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
#: Longest wait between two tries of a record held back by an outage.
MAX_OUTAGE_BACKOFF_S = 5.0
COMMIT_TIMEOUT_MS = 10_000
#: No broker connection for this long counts as a broker outage (not a reconnect in passing).
BROKER_DOWN_AFTER_S = 1.0


@dataclass
class ConsumerStats:
    """What the notifications consumer did, for logs and metrics."""

    applied: int = 0
    dead_lettered: int = 0
    #: Records held back because the database was unavailable (each retry counts once).
    database_waits: int = 0
    #: Records held back because the broker did not take their dead letter.
    dead_letter_waits: int = 0
    #: Offset commits the broker did not confirm.
    commit_failures: int = 0
    #: Outages seen (a run of failures ended by a success) and their total length.
    outages: int = 0
    outage_seconds: float = 0.0
    #: Times the consumer had no connection to the broker at all, and for how long in total
    #: (from kafka-python's ``connection-count``; the client reconnects by itself).
    broker_outages: int = 0
    broker_outage_seconds: float = 0.0


class _HoldBack(Exception):
    """The record cannot be settled now (an outage); read it again later."""

    def __init__(self, what: str, cause: BaseException) -> None:
        first_line = (str(cause).splitlines() or [""])[0]
        super().__init__(f"{type(cause).__name__}: {first_line}"[:300])
        self.what = what


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
    if isinstance(event, ReleaseEvent):
        # Texts held back while the person was inside go now, not after the custody recheck
        # (the release can be read after the notes that planned them, e.g. after an outage).
        store.lift_deferrals(session, pn, now)
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
        self.stats = ConsumerStats()
        self._outage_since: float | None = None
        self._backoff = 0.0
        self._broker_down_since: float | None = None
        self._broker_down = False
        self._connection_count: object = None  # kafka-python's gauge, found on first use

    @property
    def applied(self) -> int:
        return self.stats.applied

    @property
    def dead_lettered(self) -> int:
        return self.stats.dead_lettered

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self._make_producer()
        return self._producer

    def poll_once(self, timeout_ms: int = 500) -> int:
        """One batch: every record is settled (applied, already applied, dead-lettered) and
        committed, or, in an outage, the rest is rewound to be read again after a pause.
        Returns how many records were settled."""
        batches = list(self.consumer.poll(timeout_ms=timeout_ms, max_records=500).items())
        self._watch_broker()
        settled = 0
        held: _HoldBack | None = None
        for n, (tp, records) in enumerate(batches):
            for record in records:
                try:
                    self._handle(record)
                except _HoldBack as exc:
                    # Keep each partition's order: this record and everything after it (and
                    # every partition not started) are read again.
                    self._rewind(tp, record.offset)
                    for later_tp, later in batches[n + 1:]:
                        self._rewind(later_tp, later[0].offset)
                    held = exc
                    break
                settled += 1
            if held is not None:
                break
        if settled:
            self._commit()
        if held is not None:
            self._wait_out(held)
        elif settled and self._outage_since is not None:
            took = time.monotonic() - self._outage_since
            self.stats.outages += 1
            self.stats.outage_seconds += took
            self._outage_since, self._backoff = None, 0.0
            log.warning("notifications consumer: working again after %.1f s", took)
        return settled

    def _rewind(self, tp: object, offset: int) -> None:
        try:
            self.consumer.seek(tp, offset)
        except (KafkaError, AssertionError) as exc:
            # No longer ours (a rebalance): its new owner starts from the committed offset.
            log.warning("notifications consumer: could not rewind %s (%s)", tp,
                        type(exc).__name__)

    def _connections(self) -> int | None:
        """Open broker connections of the Kafka client, or None if it does not say."""
        try:
            if self._connection_count is None:
                raw = self.consumer.metrics(raw=True) or {}
                self._connection_count = next(
                    (m for name, m in raw.items() if name.name == "connection-count"
                     and name.group == "consumer-metrics"), False)
            if not self._connection_count:
                return None
            return int(self._connection_count.value())  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a metric must never stop the consumer
            return None

    def _watch_broker(self) -> None:
        """Count and log the spans with no connection to the broker (it reconnects itself)."""
        connections, now = self._connections(), time.monotonic()
        if connections == 0:
            if self._broker_down_since is None:
                self._broker_down_since = now
            elif not self._broker_down and now - self._broker_down_since >= BROKER_DOWN_AFTER_S:
                self._broker_down = True
                self.stats.broker_outages += 1
                log.warning("notifications consumer: no connection to the Kafka broker for "
                            "%.1f s; the client keeps reconnecting", now - self._broker_down_since)
        elif connections:
            if self._broker_down and self._broker_down_since is not None:
                took = now - self._broker_down_since
                self.stats.broker_outage_seconds += took
                log.warning("notifications consumer: connected to the Kafka broker again after "
                            "%.1f s", took)
            self._broker_down, self._broker_down_since = False, None

    def _commit(self) -> None:
        try:
            # Positions: past every settled record, at the first one held back.
            self.consumer.commit(timeout_ms=COMMIT_TIMEOUT_MS)
        except KafkaError as exc:
            self.stats.commit_failures += 1
            log.warning("notifications consumer: offset commit failed (%s); the records may "
                        "be read again, which changes nothing", type(exc).__name__)

    def _wait_out(self, held: _HoldBack) -> None:
        if held.what == "database":
            self.stats.database_waits += 1
        else:
            self.stats.dead_letter_waits += 1
        first = self._outage_since is None
        if first:
            self._outage_since = time.monotonic()
        self._backoff = min(MAX_OUTAGE_BACKOFF_S, max(0.25, self._backoff * 2))
        since = time.monotonic() - (self._outage_since or time.monotonic())
        (log.warning if first or self._backoff >= MAX_OUTAGE_BACKOFF_S else log.info)(
            "notifications consumer: %s unavailable for %.1f s (%s); holding the record, "
            "retry in %.2f s", held.what, since, held, self._backoff)
        time.sleep(self._backoff)

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
                    applied = apply_event(session, event, self.clock(), self.policy,
                                          self.issue_sink)
                    session.commit()
                if applied:
                    self.stats.applied += 1
                return
            except IntegrityError as exc:  # a concurrent consumer applied it first: re-check
                last = exc
            except Exception as exc:  # noqa: BLE001 - a bad event must not stop the consumer
                if database_unavailable(exc):
                    raise _HoldBack("database", exc) from exc
                last = exc
        self._dead_letter(record, f"could not apply: {type(last).__name__}: {last}"[:4000],
                          "apply")

    def _dead_letter(self, record: object, reason: str, stage: str) -> None:
        """Park the record on the dead-letter topic (waits for the broker) and count it."""
        from infra.producer import EventProducer

        try:
            EventProducer(self.settings, producer=self.producer).send_dead_letter(
                reason, record.value, record.topic,  # type: ignore[attr-defined]
                record.partition, record.offset, record.key,  # type: ignore[attr-defined]
                stage=stage, source="notifications",
            )
        except KafkaError as exc:  # the broker did not take it: do not commit past the record
            raise _HoldBack("broker (dead letter)", exc) from exc
        self.stats.dead_lettered += 1
