"""Input events: release-date changes, custody events and case notes.

Each family has its own topic, keyed by prison number. ``InputEvent`` validates any of them,
choosing the model from ``type``.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, TypeAdapter, model_validator

from schemas.common import (
    AgencyCode,
    LongText,
    Pathway,
    PathwayStatus,
    ShortText,
    StaffRole,
    Strict,
)
from schemas.envelope import Envelope

# A release date outside this window is a keying error, not a sentence.
_EARLIEST = date(1990, 1, 1)
_LATEST = date(2100, 12, 31)


def _plausible(d: date | None) -> date | None:
    if d is not None and not (_EARLIEST <= d <= _LATEST):
        raise ValueError(f"date {d.isoformat()} is outside {_EARLIEST.year}-{_LATEST.year}")
    return d


# ---------------------------------------------------------------- release-date changes


class ReleaseType(StrEnum):
    CONDITIONAL_RELEASE = "conditional_release"
    AUTOMATIC_RELEASE = "automatic_release"
    HOME_DETENTION_CURFEW = "home_detention_curfew"
    PAROLE = "parole"
    EARLY_RELEASE_SCHEME = "early_release_scheme"
    END_OF_SENTENCE = "end_of_sentence"
    RERELEASE_AFTER_RECALL = "rerelease_after_recall"


class ReleaseDateChanged(Strict):
    new_date: date | None = Field(description="The release date now in force; null if withdrawn.")
    previous_date: date | None = None
    release_type: ReleaseType
    reason: ShortText | None = None
    recalculated_by: ShortText | None = None

    @model_validator(mode="after")
    def _dates_plausible(self) -> ReleaseDateChanged:
        _plausible(self.new_date)
        _plausible(self.previous_date)
        return self


class ReleaseDateChangedEvent(Envelope):
    type: Literal["release_date.changed"] = "release_date.changed"
    payload: ReleaseDateChanged


# ---------------------------------------------------------------- custody events


class ReceptionStatus(StrEnum):
    REMAND = "remand"
    SENTENCED = "sentenced"
    RECALL = "recall"


class Reception(Strict):
    prison: AgencyCode
    status: ReceptionStatus
    sentence_length_days: int | None = Field(default=None, ge=0, le=365 * 100)
    statutory_supervision: bool | None = Field(
        default=None, description="False when the sentence carries no licence or supervision."
    )
    female: bool | None = None
    mappa_level: int | None = Field(default=None, ge=1, le=3)


class Transfer(Strict):
    from_prison: AgencyCode
    to_prison: AgencyCode


class Release(Strict):
    prison: AgencyCode
    destination_address: ShortText | None = None
    local_authority: ShortText | None = None
    on_licence: bool = True
    release_type: ReleaseType | None = None


class Recall(Strict):
    reason: ShortText | None = None
    prison: AgencyCode | None = None


class TemporaryRelease(Strict):
    prison: AgencyCode
    return_due: AwareDatetime | None = None


class Escape(Strict):
    kind: Literal["escape", "abscond"] = "escape"
    prison: AgencyCode | None = None


class Death(Strict):
    prison: AgencyCode | None = None


class CourtProduction(Strict):
    prison: AgencyCode
    court: ShortText


class ReceptionEvent(Envelope):
    type: Literal["custody.reception"] = "custody.reception"
    payload: Reception


class TransferEvent(Envelope):
    type: Literal["custody.transfer"] = "custody.transfer"
    payload: Transfer


class ReleaseEvent(Envelope):
    type: Literal["custody.release"] = "custody.release"
    payload: Release


class RecallEvent(Envelope):
    type: Literal["custody.recall"] = "custody.recall"
    payload: Recall


class TemporaryReleaseEvent(Envelope):
    type: Literal["custody.temporary_release"] = "custody.temporary_release"
    payload: TemporaryRelease


class EscapeEvent(Envelope):
    type: Literal["custody.escape"] = "custody.escape"
    payload: Escape


class DeathEvent(Envelope):
    type: Literal["custody.death"] = "custody.death"
    payload: Death


class CourtProductionEvent(Envelope):
    type: Literal["custody.court_production"] = "custody.court_production"
    payload: CourtProduction


# ---------------------------------------------------------------- case notes


class AccommodationStatus(StrEnum):
    CONFIRMED = "confirmed"
    NONE = "none"
    SHELTER = "shelter"
    UNVERIFIED = "unverified"


class AccommodationNote(Strict):
    status: AccommodationStatus
    address: ShortText | None = None
    local_authority: ShortText | None = None


class FinanceIdNote(Strict):
    """Only the facts a note states are set; ``None`` means "not mentioned", not "no"."""

    benefit_claim_made: bool | None = None
    jobcentre_appointment: AwareDatetime | None = None
    id_held: bool | None = None
    bank_account: bool | None = None


class HealthNote(Strict):
    """Health and drugs facts. Sensitive: never shown to police roles."""

    opiate_substitution_in_custody: bool | None = None
    medication_in_custody: bool | None = None
    community_prescriber_booked: bool | None = None
    gp_registered: bool | None = None
    text: LongText | None = None


class AppointmentAction(StrEnum):
    BOOKED = "booked"
    MOVED = "moved"
    CANCELLED = "cancelled"
    ATTENDED = "attended"
    MISSED = "missed"


class AppointmentKind(StrEnum):
    SUPERVISION = "supervision"  # with the supervising probation / IOM officer
    JOBCENTRE = "jobcentre"
    HOUSING = "housing"
    PRESCRIBER = "prescriber"
    GP = "gp"
    MENTOR = "mentor"
    OTHER = "other"


class AppointmentNote(Strict):
    appointment_id: Annotated[str, Field(min_length=1, max_length=64)]
    action: AppointmentAction
    kind: AppointmentKind = AppointmentKind.SUPERVISION
    at: AwareDatetime | None = None
    place: ShortText | None = None
    with_whom: ShortText | None = None
    owner_role: StaffRole | None = None

    @model_validator(mode="after")
    def _time_when_booking(self) -> AppointmentNote:
        if self.action in (AppointmentAction.BOOKED, AppointmentAction.MOVED) and self.at is None:
            raise ValueError(f"an appointment that is {self.action.value} needs 'at'")
        return self


class ContactNote(Strict):
    """Contact details and SMS consent. The number is personal data: never log it."""

    mobile: Annotated[str, Field(max_length=32)] | None = None
    sms_consent: bool | None = None
    consent_recorded_by: ShortText | None = None


class MentorNote(Strict):
    assigned: bool = True
    mentor_name: ShortText | None = None
    organisation: ShortText | None = None


class PathwayStatusNote(Strict):
    pathway: Pathway
    status: PathwayStatus


class GeneralNote(Strict):
    subtype: Annotated[str, Field(min_length=1, max_length=64)]
    pathway: Pathway | None = None
    text: LongText
    sensitivity: Literal["health", "police_intelligence", "victim"] | None = None


class AccommodationNoteEvent(Envelope):
    type: Literal["case_note.accommodation"] = "case_note.accommodation"
    payload: AccommodationNote


class FinanceIdNoteEvent(Envelope):
    type: Literal["case_note.finance_id"] = "case_note.finance_id"
    payload: FinanceIdNote


class HealthNoteEvent(Envelope):
    type: Literal["case_note.health"] = "case_note.health"
    payload: HealthNote


class AppointmentNoteEvent(Envelope):
    type: Literal["case_note.appointment"] = "case_note.appointment"
    payload: AppointmentNote


class ContactNoteEvent(Envelope):
    type: Literal["case_note.contact"] = "case_note.contact"
    payload: ContactNote


class MentorNoteEvent(Envelope):
    type: Literal["case_note.mentor"] = "case_note.mentor"
    payload: MentorNote


class PathwayStatusNoteEvent(Envelope):
    type: Literal["case_note.pathway_status"] = "case_note.pathway_status"
    payload: PathwayStatusNote


class GeneralNoteEvent(Envelope):
    type: Literal["case_note.general"] = "case_note.general"
    payload: GeneralNote


# ---------------------------------------------------------------- unions

ReleaseDateEvent = ReleaseDateChangedEvent
CustodyEvent = Annotated[
    ReceptionEvent
    | TransferEvent
    | ReleaseEvent
    | RecallEvent
    | TemporaryReleaseEvent
    | EscapeEvent
    | DeathEvent
    | CourtProductionEvent,
    Field(discriminator="type"),
]
CaseNoteEvent = Annotated[
    AccommodationNoteEvent
    | FinanceIdNoteEvent
    | HealthNoteEvent
    | AppointmentNoteEvent
    | ContactNoteEvent
    | MentorNoteEvent
    | PathwayStatusNoteEvent
    | GeneralNoteEvent,
    Field(discriminator="type"),
]
InputEvent = Annotated[
    ReleaseDateChangedEvent
    | ReceptionEvent
    | TransferEvent
    | ReleaseEvent
    | RecallEvent
    | TemporaryReleaseEvent
    | EscapeEvent
    | DeathEvent
    | CourtProductionEvent
    | AccommodationNoteEvent
    | FinanceIdNoteEvent
    | HealthNoteEvent
    | AppointmentNoteEvent
    | ContactNoteEvent
    | MentorNoteEvent
    | PathwayStatusNoteEvent
    | GeneralNoteEvent,
    Field(discriminator="type"),
]

INPUT_ADAPTER: TypeAdapter[InputEvent] = TypeAdapter(InputEvent)

#: Every input model, by its ``type``.
INPUT_MODELS: dict[str, type[Envelope]] = {
    m.model_fields["type"].default: m
    for m in (
        ReleaseDateChangedEvent,
        ReceptionEvent,
        TransferEvent,
        ReleaseEvent,
        RecallEvent,
        TemporaryReleaseEvent,
        EscapeEvent,
        DeathEvent,
        CourtProductionEvent,
        AccommodationNoteEvent,
        FinanceIdNoteEvent,
        HealthNoteEvent,
        AppointmentNoteEvent,
        ContactNoteEvent,
        MentorNoteEvent,
        PathwayStatusNoteEvent,
        GeneralNoteEvent,
    )
}

Family = Literal["release_dates", "custody", "case_notes"]


def input_family(event_type: str) -> Family:
    """Which input family (and so which topic) an event type belongs to."""
    prefix = event_type.split(".", 1)[0]
    families: dict[str, Family] = {
        "release_date": "release_dates",
        "custody": "custody",
        "case_note": "case_notes",
    }
    try:
        return families[prefix]
    except KeyError:
        raise ValueError(f"unknown event type {event_type!r}") from None


