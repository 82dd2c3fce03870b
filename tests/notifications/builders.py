"""Input events for notification tests, built from the shared contracts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from consumers.notifications.consumer import apply_event
from consumers.notifications.planner import Policy
from infra.config import Settings
from infra.models.messages import Reminder
from schemas.common import Person
from schemas.envelope import Envelope
from schemas.events import (
    AppointmentAction,
    AppointmentKind,
    AppointmentNote,
    AppointmentNoteEvent,
    ContactNote,
    ContactNoteEvent,
    Escape,
    EscapeEvent,
    Recall,
    RecallEvent,
    Release,
    ReleaseDateChanged,
    ReleaseDateChangedEvent,
    ReleaseEvent,
    ReleaseType,
)

PN = "A1234BC"
PN2 = "B2345CD"


def _env(pn: str, at: datetime) -> dict:
    return {"occurred_at": at, "recorded_at": at, "source": "MDI",
            "person": Person(prison_number=pn)}


def contact(pn: str, at: datetime, mobile: str | None, consent: bool | None = True) -> Envelope:
    return ContactNoteEvent(**_env(pn, at), payload=ContactNote(mobile=mobile, sms_consent=consent))


def appointment(pn: str, at: datetime, appt_id: str, action: str = "booked",
                when: datetime | None = None, place: str | None = "Jobcentre Plus, 1 High St",
                with_whom: str | None = "Sam", kind: str = "supervision") -> Envelope:
    return AppointmentNoteEvent(**_env(pn, at), payload=AppointmentNote(
        appointment_id=appt_id, action=AppointmentAction(action), kind=AppointmentKind(kind),
        at=when, place=place, with_whom=with_whom))


def released(pn: str, at: datetime) -> Envelope:
    return ReleaseEvent(**_env(pn, at), payload=Release(prison="MDI"))


def recalled(pn: str, at: datetime) -> Envelope:
    return RecallEvent(**_env(pn, at), payload=Recall(reason="breach"))


def escaped(pn: str, at: datetime) -> Envelope:
    return EscapeEvent(**_env(pn, at), payload=Escape())


def release_date(pn: str, at: datetime, new: date) -> Envelope:
    return ReleaseDateChangedEvent(**_env(pn, at), payload=ReleaseDateChanged(
        new_date=new, release_type=ReleaseType.CONDITIONAL_RELEASE))


def apply(engine: Engine, settings: Settings, now: datetime, *events: Envelope) -> None:
    policy = Policy.from_settings(settings)
    for event in events:
        with Session(engine) as session:
            apply_event(session, event, now, policy)
            session.commit()


def reminders(engine: Engine, pn: str | None = None) -> dict[str, Reminder]:
    with Session(engine) as session:
        q = select(Reminder)
        if pn:
            q = q.where(Reminder.prison_number == pn)
        return {r.idempotency_key: r for r in session.exec(q).all()}


def states(engine: Engine, pn: str | None = None) -> dict[str, str]:
    return {k: r.state for k, r in reminders(engine, pn).items()}
