"""One person's release plan, folded from their events.

:func:`fold` is pure, order-safe and idempotent. Every fact remembers the stamp of the event that
set it (when it happened, when it was recorded, which event), and only a later stamp may overwrite
it; history kept as sets (release-date changes, missed appointments) is keyed by event id. So any
order of the same events, duplicates included, folds to the same state, and a late event never
overwrites a newer fact. A bounded set of recently seen event ids lets callers skip duplicates
without re-evaluating rules.

The state is stored for every person in a Faust table (~100,000 of them), so fields default to
"unknown" and are left out when serialized (:meth:`PersonState.dump`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from schemas.common import Pathway, PathwayStatus
from schemas.envelope import Envelope
from schemas.events import (
    AccommodationNoteEvent,
    AccommodationStatus,
    AppointmentAction,
    AppointmentKind,
    AppointmentNoteEvent,
    ContactNoteEvent,
    CourtProductionEvent,
    DeathEvent,
    EscapeEvent,
    FinanceIdNoteEvent,
    HealthNoteEvent,
    MentorNoteEvent,
    PathwayStatusNoteEvent,
    RecallEvent,
    ReceptionEvent,
    ReceptionStatus,
    ReleaseDateChangedEvent,
    ReleaseEvent,
    ReleaseType,
    TemporaryReleaseEvent,
    TransferEvent,
)

#: How many event ids a person remembers. Folding is idempotent without it; this is a fast path.
SEEN_LIMIT = 128
#: Release-date changes kept per person (the newest by stamp).
HISTORY_LIMIT = 16

_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


def _us(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def stamp_of(event: Envelope) -> str:
    """A string that sorts like (occurred_at, recorded_at, event_id): a total order on events."""
    return f"{_us(event.occurred_at):017d}.{_us(event.recorded_at):017d}.{event.event_id.hex[:12]}"


class CustodyStatus(StrEnum):
    IN_CUSTODY = "in_custody"
    RELEASED = "released"
    UNLAWFULLY_AT_LARGE = "unlawfully_at_large"
    DEAD = "dead"
    TEMPORARY_RELEASE = "temporary_release"


class ReturnKind(StrEnum):
    RECALL = "recall"
    REMAND = "remand"
    NEW_SENTENCE = "new_sentence"


class _Compact(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=False)


class ReleaseChange(_Compact):
    """One release-date notification: what it said and when it was known."""

    event_id: str
    stamp: str
    new_date: date | None = None
    previous_date: date | None = None
    release_type: ReleaseType | None = None
    occurred_at: datetime
    recorded_at: datetime


class Appointment(_Compact):
    kind: AppointmentKind = AppointmentKind.SUPERVISION
    at: datetime | None = None
    at_stamp: str = ""
    kind_stamp: str = ""
    status: AppointmentAction | None = None
    status_stamp: str = ""
    #: Event ids (short) of "missed" notes: a set, so a duplicate note does not count twice.
    missed: list[str] = Field(default_factory=list)
    last_missed_at: datetime | None = None

    @property
    def missed_count(self) -> int:
        return len(self.missed)

    @property
    def live(self) -> bool:
        """Booked and still expected to happen."""
        return self.status in (AppointmentAction.BOOKED, AppointmentAction.MOVED)


class PersonState(_Compact):
    prison_number: str
    crn: str | None = None
    #: event id (short hex) -> when it occurred (µs), the newest SEEN_LIMIT events.
    seen: dict[str, int] = Field(default_factory=dict)
    #: fact name -> stamp of the event that set it.
    asof: dict[str, str] = Field(default_factory=dict)

    @field_serializer("asof")
    def _asof_by_stamp(self, asof: dict[str, str]) -> dict[str, list[str]]:
        # One event usually sets several facts: stored as stamp -> facts, the stamps (46
        # characters each) appear once, which takes a third off a stored person.
        grouped: dict[str, list[str]] = {}
        for fact, stamp in sorted(asof.items()):
            grouped.setdefault(stamp, []).append(fact)
        return dict(sorted(grouped.items()))

    @field_validator("asof", mode="before")
    @classmethod
    def _asof_by_fact(cls, value: object) -> object:
        if isinstance(value, dict) and any(isinstance(v, list) for v in value.values()):
            return {fact: stamp for stamp, facts in value.items() for fact in facts}
        return value  # fact -> stamp, as records stored before grouping have it

    # custody
    custody: CustodyStatus | None = None
    prison: str | None = None
    released_at: datetime | None = None
    released_on_licence: bool | None = None
    returned_at: datetime | None = None
    return_kind: ReturnKind | None = None
    transferred_at: datetime | None = None
    transferred_from: str | None = None
    temporary_return_due: datetime | None = None

    # release plan
    history: list[ReleaseChange] = Field(default_factory=list)
    local_authority: str | None = None

    # pathways and the facts behind them
    pathways: dict[Pathway, PathwayStatus] = Field(default_factory=dict)
    accommodation: AccommodationStatus | None = None
    address: str | None = None
    benefit_claim_made: bool | None = None
    jobcentre_appointment: datetime | None = None
    id_held: bool | None = None
    bank_account: bool | None = None
    opiate_substitution: bool | None = None
    medication_in_custody: bool | None = None
    prescriber_booked: bool | None = None
    gp_registered: bool | None = None
    appointments: dict[str, Appointment] = Field(default_factory=dict)
    mentor: bool | None = None
    sms_consent: bool | None = None

    # flags
    sentence_length_days: int | None = None
    statutory_supervision: bool | None = None
    female: bool | None = None
    mappa_level: int | None = None

    # ------------------------------------------------------------------ derived facts

    @property
    def current_release(self) -> ReleaseChange | None:
        return self.history[-1] if self.history else None

    @property
    def release_date(self) -> date | None:
        return self.history[-1].new_date if self.history else None

    @property
    def short_sentence(self) -> bool:
        """Under 12 months, or no statutory supervision after release."""
        if self.statutory_supervision is False:
            return True
        return self.sentence_length_days is not None and self.sentence_length_days < 365

    @property
    def back_in_custody(self) -> bool:
        """Recalled, remanded or sentenced again after a release (or after the plan was made)."""
        back = self.asof.get("return")
        if back is None:
            return False
        released = self.asof.get("release")
        if self.return_kind is not ReturnKind.RECALL and (released is None or back < released):
            return False
        plan = self.history[-1].stamp if self.history else ""
        # A release date notified after the return is a new plan (e.g. re-release after recall).
        return back > plan and (released is None or back > released)

    def pathway_status(self, pathway: Pathway) -> PathwayStatus | None:
        return self.pathways.get(pathway)

    def newer_than(self, fact: str, other: str) -> bool:
        return self.asof.get(fact, "") > self.asof.get(other, "")

    @property
    def accommodation_confirmed(self) -> bool:
        """Confirmed by a note, or the pathway marked done / not needed after the last note."""
        settled = self.pathways.get(Pathway.ACCOMMODATION) in (
            PathwayStatus.DONE,
            PathwayStatus.SUPPORT_NOT_REQUIRED,
        )
        if settled and self.newer_than(f"pathway:{Pathway.ACCOMMODATION}", "accommodation"):
            return True
        return self.accommodation is AccommodationStatus.CONFIRMED

    def dump(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_defaults=True)


# ---------------------------------------------------------------------- folding


def _set(s: PersonState, fact: str, stamp: str, **values: object) -> bool:
    """Last-writer-wins by stamp: set ``values`` if this event is the newest to say so."""
    if stamp < s.asof.get(fact, ""):
        return False
    s.asof[fact] = stamp
    for name, value in values.items():
        setattr(s, name, value)
    return True


def _remember(s: PersonState, key: str, occurred: int) -> None:
    s.seen[key] = occurred
    if len(s.seen) > SEEN_LIMIT:
        # Keep the newest by stamp: the same whichever order events came in.
        keep = sorted(s.seen.items(), key=lambda kv: (kv[1], kv[0]))[-SEEN_LIMIT:]
        s.seen = dict(keep)


def fold(state: PersonState | None, event: Envelope) -> PersonState:
    """The state after ``event``. Never mutates ``state``; a duplicate returns it unchanged."""
    key = event.event_id.hex[:16]
    if state is not None and key in state.seen:
        return state
    if state is None:
        s = PersonState(prison_number=event.person.prison_number)
    else:
        # A deep copy was a third of the worker's time per event. Folding only reassigns fields
        # and writes into these four containers (appointments are copied before change), so
        # copying the containers keeps ``state`` untouched at a fraction of the cost.
        s = state.model_copy(update={
            "seen": dict(state.seen), "asof": dict(state.asof),
            "pathways": dict(state.pathways), "appointments": dict(state.appointments),
        })
    stamp = stamp_of(event)
    if event.person.crn:
        _set(s, "crn", stamp, crn=event.person.crn)
    _apply(s, event, stamp)
    _remember(s, key, _us(event.occurred_at))
    return s


def _apply(s: PersonState, ev: Envelope, stamp: str) -> None:  # noqa: C901 - one case per type
    at = ev.occurred_at
    match ev:
        case ReleaseDateChangedEvent(payload=p):
            change = ReleaseChange(
                event_id=ev.event_id.hex, stamp=stamp, new_date=p.new_date,
                previous_date=p.previous_date, release_type=p.release_type,
                occurred_at=ev.occurred_at, recorded_at=ev.recorded_at,
            )
            if all(c.event_id != change.event_id for c in s.history):
                s.history = sorted([*s.history, change], key=lambda c: c.stamp)[-HISTORY_LIMIT:]
        case ReceptionEvent(payload=p):
            _set(s, "custody", stamp, custody=CustodyStatus.IN_CUSTODY, prison=p.prison)
            kind = {
                ReceptionStatus.RECALL: ReturnKind.RECALL,
                ReceptionStatus.REMAND: ReturnKind.REMAND,
                ReceptionStatus.SENTENCED: ReturnKind.NEW_SENTENCE,
            }[p.status]
            _set(s, "return", stamp, returned_at=at, return_kind=kind)
            for name in ("sentence_length_days", "statutory_supervision", "female", "mappa_level"):
                value = getattr(p, name)
                if value is not None:
                    _set(s, name, stamp, **{name: value})
        case TransferEvent(payload=p):
            _set(s, "custody", stamp, custody=CustodyStatus.IN_CUSTODY, prison=p.to_prison)
            _set(s, "transfer", stamp, transferred_at=at, transferred_from=p.from_prison)
        case ReleaseEvent(payload=p):
            _set(s, "custody", stamp, custody=CustodyStatus.RELEASED, prison=p.prison)
            _set(s, "release", stamp, released_at=at, released_on_licence=p.on_licence)
            if p.local_authority:
                _set(s, "local_authority", stamp, local_authority=p.local_authority)
        case RecallEvent(payload=p):
            if p.prison:
                _set(s, "custody", stamp, custody=CustodyStatus.IN_CUSTODY, prison=p.prison)
            _set(s, "return", stamp, returned_at=at, return_kind=ReturnKind.RECALL)
        case TemporaryReleaseEvent(payload=p):
            _set(s, "custody", stamp, custody=CustodyStatus.TEMPORARY_RELEASE, prison=p.prison,
                 temporary_return_due=p.return_due)
        case EscapeEvent(payload=p):
            _set(s, "custody", stamp, custody=CustodyStatus.UNLAWFULLY_AT_LARGE,
                 prison=p.prison or s.prison)
        case DeathEvent():
            _set(s, "custody", stamp, custody=CustodyStatus.DEAD)
        case CourtProductionEvent(payload=p):
            _set(s, "custody", stamp, custody=CustodyStatus.IN_CUSTODY, prison=p.prison)
        case AccommodationNoteEvent(payload=p):
            _set(s, "accommodation", stamp, accommodation=p.status, address=p.address)
            if p.local_authority:
                _set(s, "local_authority", stamp, local_authority=p.local_authority)
        case FinanceIdNoteEvent(payload=p):
            facts = {
                "benefit_claim_made": p.benefit_claim_made,
                "jobcentre_appointment": p.jobcentre_appointment,
                "id_held": p.id_held,
                "bank_account": p.bank_account,
            }
            for name, value in facts.items():
                if value is not None:
                    _set(s, name, stamp, **{name: value})
        case HealthNoteEvent(payload=p):
            facts = {
                "opiate_substitution": p.opiate_substitution_in_custody,
                "medication_in_custody": p.medication_in_custody,
                "prescriber_booked": p.community_prescriber_booked,
                "gp_registered": p.gp_registered,
            }
            for name, value in facts.items():
                if value is not None:
                    _set(s, name, stamp, **{name: value})
        case AppointmentNoteEvent(payload=p):
            _apply_appointment(s, ev, stamp)
        case ContactNoteEvent(payload=p):
            if p.sms_consent is not None:
                _set(s, "sms_consent", stamp, sms_consent=p.sms_consent)
        case MentorNoteEvent(payload=p):
            _set(s, "mentor", stamp, mentor=p.assigned)
        case PathwayStatusNoteEvent(payload=p):
            fact = f"pathway:{p.pathway}"
            if stamp >= s.asof.get(fact, ""):
                s.asof[fact] = stamp
                s.pathways[p.pathway] = p.status
        case _:
            pass  # general notes carry no fact the rules use


def _apply_appointment(s: PersonState, ev: AppointmentNoteEvent, stamp: str) -> None:
    p = ev.payload
    known = s.appointments.get(p.appointment_id)
    appt = known.model_copy() if known is not None else Appointment()
    if p.at is not None and stamp >= appt.at_stamp:
        appt.at, appt.at_stamp = p.at, stamp
    # A note that books a time says what the appointment is; a bare "missed" may not.
    kind_stamp = ("1" if p.at is not None else "0") + stamp
    if kind_stamp >= appt.kind_stamp:
        appt.kind, appt.kind_stamp = p.kind, kind_stamp
    if stamp >= appt.status_stamp:
        appt.status, appt.status_stamp = p.action, stamp
    if p.action is AppointmentAction.MISSED:
        short = ev.event_id.hex[:16]
        if short not in appt.missed:
            appt.missed = sorted([*appt.missed, short])
        if appt.last_missed_at is None or ev.occurred_at > appt.last_missed_at:
            appt.last_missed_at = ev.occurred_at
    s.appointments[p.appointment_id] = appt
