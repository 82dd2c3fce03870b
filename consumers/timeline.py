"""The timeline projection: input events -> one line per event in a person's history, plus the
person summary, release-date history, pathway states and appointments the hub app reads.

Idempotent on ``event_id`` (a unique column, checked before applying), and offsets are committed
only after the database commit, so a crash replays at most the last batch and adds nothing twice.
An event that does not decode goes to the dead-letter topic and the consumer keeps going.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from infra.config import Settings
from infra.database import session_scope
from infra.directory import la_key
from infra.models.timeline import (
    AppointmentState,
    PathwayState,
    PersonSummary,
    ReleaseDateChange,
    TimelineEntry,
)
from schemas.codec import DecodeError, decode_input, encode
from schemas.common import Pathway
from schemas.envelope import Envelope
from schemas.events import (
    AccommodationNoteEvent,
    AccommodationStatus,
    AppointmentNoteEvent,
    ContactNoteEvent,
    CourtProductionEvent,
    DeathEvent,
    EscapeEvent,
    FinanceIdNoteEvent,
    GeneralNoteEvent,
    HealthNoteEvent,
    MentorNoteEvent,
    PathwayStatusNoteEvent,
    RecallEvent,
    ReceptionEvent,
    ReleaseDateChangedEvent,
    ReleaseEvent,
    TemporaryReleaseEvent,
    TransferEvent,
)
from schemas.outputs import DeadLetter

log = logging.getLogger(__name__)

CONSUMER_GROUP = "ttg-timeline"


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def describe(event: Envelope) -> tuple[str, str | None, str | None]:
    """(summary, pathway, sensitivity) for one event. Summaries hold no phone numbers."""
    p = getattr(event, "payload", None)
    match event:
        case ReleaseDateChangedEvent():
            new = p.new_date.isoformat() if p.new_date else "withdrawn"
            old = f" (was {p.previous_date.isoformat()})" if p.previous_date else ""
            why = f": {p.reason}" if p.reason else ""
            return f"Release date {new}{old}, {p.release_type.value}{why}", None, None
        case ReceptionEvent():
            return f"Received into {p.prison} ({p.status.value})", None, None
        case TransferEvent():
            return f"Transferred from {p.from_prison} to {p.to_prison}", None, None
        case ReleaseEvent():
            where = f" to {p.local_authority}" if p.local_authority else ""
            return f"Released from {p.prison}{where}", Pathway.ACCOMMODATION.value, None
        case RecallEvent():
            return f"Recalled{': ' + p.reason if p.reason else ''}", None, None
        case TemporaryReleaseEvent():
            return f"Temporary release from {p.prison}", None, None
        case EscapeEvent():
            return f"{p.kind.capitalize()}{' from ' + p.prison if p.prison else ''}", None, None
        case DeathEvent():
            return "Died in custody" if p.prison else "Died", None, None
        case CourtProductionEvent():
            return f"Produced at court ({p.court}) from {p.prison}", None, None
        case AccommodationNoteEvent():
            la = f" in {p.local_authority}" if p.local_authority else ""
            return f"Accommodation {p.status.value}{la}", Pathway.ACCOMMODATION.value, None
        case FinanceIdNoteEvent():
            facts = [f"{k.replace('_', ' ')}: {'yes' if v is True else 'no' if v is False else v}"
                     for k, v in p.model_dump(exclude_none=True).items()]
            return "Finance and ID: " + ("; ".join(facts) or "note"), Pathway.FINANCE_ID.value, None
        case HealthNoteEvent():
            facts = [k.replace("_", " ") + (": yes" if v else ": no")
                     for k, v in p.model_dump(exclude_none=True, exclude={"text"}).items()]
            text = f" {p.text}" if p.text else ""
            return ("Health: " + "; ".join(facts) + text).strip(), Pathway.HEALTH.value, "health"
        case AppointmentNoteEvent():
            at = f" at {p.at.isoformat()}" if p.at else ""
            return (f"Appointment {p.appointment_id} ({p.kind.value}) {p.action.value}{at}",
                    None, None)
        case ContactNoteEvent():
            # The number itself is personal data; the timeline records only that it changed.
            parts = []
            if p.mobile is not None:
                parts.append("mobile number recorded")
            if p.sms_consent is not None:
                parts.append("text consent " + ("given" if p.sms_consent else "withdrawn"))
            return "Contact: " + (", ".join(parts) or "note"), None, None
        case MentorNoteEvent():
            org = f" ({p.organisation})" if p.organisation else ""
            return ("Mentor assigned" if p.assigned else "Mentor ended") + org, None, None
        case PathwayStatusNoteEvent():
            return (f"{p.pathway.title}: {p.status.value.replace('_', ' ')}", p.pathway.value,
                    "health" if p.pathway is Pathway.HEALTH else None)
        case GeneralNoteEvent():
            pathway = p.pathway.value if p.pathway else None
            sens = p.sensitivity or ("health" if p.pathway is Pathway.HEALTH else None)
            return f"{p.subtype}: {p.text}", pathway, sens
    return event.type, None, None


def _summary(session: Session, event: Envelope, now: datetime) -> PersonSummary:
    row = session.get(PersonSummary, event.prison_number)
    if row is None:
        row = PersonSummary(prison_number=event.prison_number, updated_at=now)
    if event.person.crn:
        row.crn = event.person.crn
    row.updated_at = now
    return row


def _set_destination(row: PersonSummary, local_authority: str | None) -> None:
    if local_authority:
        row.destination_local_authority = local_authority
        row.destination_la_key = la_key(local_authority)


def _apply_state(session: Session, event: Envelope, now: datetime) -> None:
    """Fold one event into the person's current state."""
    row = _summary(session, event, now)
    p = getattr(event, "payload", None)
    at = _utc(event.occurred_at)
    match event:
        case ReleaseDateChangedEvent():
            row.release_date, row.release_type = p.new_date, p.release_type.value
            session.add(ReleaseDateChange(
                event_id=str(event.event_id), prison_number=event.prison_number, changed_at=at,
                new_date=p.new_date, previous_date=p.previous_date, reason=p.reason))
        case ReceptionEvent():
            row.current_prison, row.custody_status = p.prison, f"in_custody_{p.status.value}"
            row.released_at = None
        case TransferEvent():
            row.current_prison = p.to_prison
        case ReleaseEvent():
            row.custody_status, row.released_at = "released", at
            _set_destination(row, p.local_authority)
        case RecallEvent():
            row.custody_status = "recalled"
            row.current_prison = p.prison or row.current_prison
        case TemporaryReleaseEvent():
            row.custody_status = "temporary_release"
        case EscapeEvent():
            row.custody_status = "unlawfully_at_large"
        case DeathEvent():
            row.custody_status = "deceased"
        case AccommodationNoteEvent():
            row.accommodation_status = p.status.value
            _set_destination(row, p.local_authority)
            if p.status is AccommodationStatus.CONFIRMED and row.accommodation_confirmed_at is None:
                row.accommodation_confirmed_at = at
        case FinanceIdNoteEvent():
            if p.benefit_claim_made and row.benefit_claim_at is None:
                row.benefit_claim_at = at
        case PathwayStatusNoteEvent():
            state = session.exec(select(PathwayState).where(
                PathwayState.prison_number == event.prison_number,
                PathwayState.pathway == p.pathway.value)).first()
            state = state or PathwayState(prison_number=event.prison_number,
                                          pathway=p.pathway.value, status="", updated_at=at)
            state.status, state.updated_at = p.status.value, at
            session.add(state)
        case AppointmentNoteEvent():
            appt = session.exec(select(AppointmentState).where(
                AppointmentState.prison_number == event.prison_number,
                AppointmentState.appointment_id == p.appointment_id)).first()
            appt = appt or AppointmentState(prison_number=event.prison_number,
                                            appointment_id=p.appointment_id, kind=p.kind.value,
                                            status=p.action.value, updated_at=at)
            appt.kind, appt.status, appt.updated_at = p.kind.value, p.action.value, at
            appt.at = p.at or appt.at
            appt.place = p.place or appt.place
            appt.with_whom = p.with_whom or appt.with_whom
            session.add(appt)
    session.add(row)


def apply_event(engine: Engine, event: Envelope, now: datetime | None = None) -> bool:
    """Project one event; ``False`` when its id was already applied."""
    now = now or datetime.now(UTC)
    eid = str(event.event_id)
    try:
        with session_scope(engine) as session:
            if session.exec(select(TimelineEntry.id).where(TimelineEntry.event_id == eid)).first():
                return False
            summary, pathway, sensitivity = describe(event)
            session.add(TimelineEntry(
                event_id=eid, prison_number=event.prison_number, type=event.type,
                occurred_at=_utc(event.occurred_at), source=event.source, summary=summary[:10_000],
                pathway=pathway, sensitivity=sensitivity))
            session.flush()
            _apply_state(session, event, now)
        return True
    except IntegrityError:
        # Another projector instance applied it between our check and our commit; anything
        # else is a real failure and must not be skipped silently.
        with session_scope(engine) as session:
            if session.exec(select(TimelineEntry.id).where(TimelineEntry.event_id == eid)).first():
                return False
        raise


def run(
    settings: Settings, engine: Engine, stop: threading.Event | None = None,
    on_batch: Callable[[int], None] | None = None, group_id: str = CONSUMER_GROUP,
) -> None:
    """Consume the three input topics until ``stop`` is set."""
    from infra.kafka import make_consumer, make_producer
    from infra.topics import Topics

    topics = Topics.from_settings(settings)
    consumer = make_consumer(settings, group_id, *topics.inputs)
    producer = make_producer(settings)
    stop = stop or threading.Event()
    try:
        while not stop.is_set():
            batch = consumer.poll(timeout_ms=500, max_records=500)
            applied = 0
            for tp, records in batch.items():
                for rec in records:
                    try:
                        event = decode_input(rec.value)
                    except DecodeError as exc:
                        log.warning("timeline: dead-lettering %s[%s]@%s: %s",
                                    tp.topic, tp.partition, rec.offset, exc)
                        dead = DeadLetter(reason=str(exc), original=rec.value or b"",
                                          original_key=rec.key, topic=tp.topic,
                                          partition=tp.partition, offset=rec.offset,
                                          stage="timeline")
                        producer.send(topics.dead_letter, encode(dead), key=rec.key).get(30)
                        continue
                    applied += apply_event(engine, event)
            if batch:
                consumer.commit()
                if on_batch:
                    on_batch(applied)
    finally:
        consumer.close()
        producer.close()
