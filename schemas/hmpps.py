"""HMPPS domain events, as prison systems publish them today, translated into our contracts.

An HMPPS domain event looks like::

    {"eventType": "prison-offender-events.prisoner.released", "version": 1,
     "occurredAt": "2026-11-20T10:15:00+00:00", "publishedAt": "2026-11-20T10:15:03+00:00",
     "description": "A prisoner has been released from prison",
     "additionalInformation": {"nomsNumber": "A1234BC", "prisonId": "MDI",
                               "reason": "RELEASED", "details": "Movement reason code CR"},
     "personReference": {"identifiers": [{"type": "NOMS", "value": "A1234BC"}]}}

``additionalInformation`` values are strings on the wire (the publisher's map is
``Map<String, String>``). The SNS notification wrapper (``{"Type": "Notification",
"Message": "<json>"}``) that SQS subscribers receive is unwrapped too.

The ``event_id`` is a UUIDv5 over the event's identity (type, time, prison number and ids),
so a re-delivered HMPPS event becomes the same event here and is deduplicated downstream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from schemas.codec import DecodeError, _explain
from schemas.common import Person
from schemas.envelope import Envelope
from schemas.events import (
    CourtProduction,
    CourtProductionEvent,
    GeneralNote,
    GeneralNoteEvent,
    Recall,
    RecallEvent,
    Reception,
    ReceptionEvent,
    ReceptionStatus,
    Release,
    ReleaseDateChanged,
    ReleaseDateChangedEvent,
    ReleaseEvent,
    ReleaseType,
    TemporaryRelease,
    TemporaryReleaseEvent,
    Transfer,
    TransferEvent,
)

#: Namespace for event ids derived from HMPPS events (never change it: ids must stay stable).
HMPPS_NAMESPACE = uuid.UUID("0c6f5d7e-2a41-4b8e-9f3c-7d9e4a1b5c20")
#: NOMIS records local UK time; an occurredAt without an offset is read in this zone.
NOMIS_TIMEZONE = ZoneInfo("Europe/London")
#: Stands in for the prison a movement's other end is at when the event does not name it.
UNKNOWN_PRISON = "UNKNOWN"
#: ``source`` when the event names no prison (case notes).
HMPPS_SOURCE = "HMPPS"

RELEASED = "prison-offender-events.prisoner.released"
RECEIVED = "prison-offender-events.prisoner.received"
SENTENCE_DATES_CHANGED = "prison-offender-events.prisoner.sentence-dates-changed"
CASE_NOTE_PUBLISHED = "prison.case-note.published"


class HmppsEventError(DecodeError):
    """An HMPPS event we cannot translate; the reason says why (it goes to the dead letter)."""


def is_hmpps(data: Any) -> bool:
    """Whether parsed JSON looks like an HMPPS domain event (or its SNS notification)."""
    return isinstance(data, dict) and (
        "eventType" in data or (data.get("Type") == "Notification" and "Message" in data)
    )


# ---------------------------------------------------------------- envelope helpers


class _Hmpps:
    """Read access to one HMPPS event with reasons a person can act on."""

    def __init__(self, data: Mapping[str, Any]):
        self.data = data
        self.event_type = str(data["eventType"])
        info = data.get("additionalInformation") or {}
        if not isinstance(info, dict):
            raise HmppsEventError("additionalInformation: must be an object")
        self.info: dict[str, Any] = info
        occurred = self._time("occurredAt")
        if occurred is None:
            raise HmppsEventError("occurredAt: missing")
        self.occurred_at = occurred
        published = self._time("publishedAt")
        # publishedAt is when HMPPS recorded it; without one the event time is the best we have.
        self.recorded_at = published if published and published >= occurred else occurred

    def _time(self, field: str) -> datetime | None:
        raw = self.data.get(field)
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            raise HmppsEventError(f"{field}: not an ISO 8601 date-time: {str(raw)[:40]!r}") \
                from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=NOMIS_TIMEZONE)
        return value

    def identifiers(self) -> dict[str, str]:
        ref = self.data.get("personReference") or {}
        found: dict[str, str] = {}
        for ident in (ref.get("identifiers") or []) if isinstance(ref, dict) else []:
            if isinstance(ident, dict) and ident.get("type") and ident.get("value"):
                found.setdefault(str(ident["type"]).upper(), str(ident["value"]).strip())
        return found

    def person(self) -> Person:
        ids = self.identifiers()
        noms = self.info.get("nomsNumber") or ids.get("NOMS")
        if not noms:
            raise HmppsEventError(
                f"{self.event_type}: no prison number (additionalInformation.nomsNumber or a "
                "NOMS personReference identifier); only events about people in prison are used"
            )
        try:
            return Person(prison_number=str(noms).strip().upper(), crn=ids.get("CRN"))
        except ValidationError as exc:
            raise HmppsEventError(f"personReference: {_explain(exc)}") from None

    def text(self, field: str) -> str | None:
        value = self.info.get(field)
        return None if value in (None, "") else str(value).strip()

    def prison(self, required: bool = True) -> str | None:
        value = self.text("prisonId")
        if value is None and required:
            raise HmppsEventError(f"{self.event_type}: additionalInformation.prisonId missing")
        return value.upper() if value else None

    def event_id(self, person: Person, *ids: str | None) -> uuid.UUID:
        anchor = "|".join([
            self.event_type,
            self.occurred_at.astimezone(UTC).isoformat(),
            person.prison_number,
            *(i or "" for i in ids),
        ])
        return uuid.uuid5(HMPPS_NAMESPACE, anchor)

    def envelope(self, person: Person, source: str | None, *ids: str | None) -> dict[str, Any]:
        return {
            "event_id": self.event_id(person, *ids),
            "occurred_at": self.occurred_at,
            "recorded_at": self.recorded_at,
            "source": source or HMPPS_SOURCE,
            "person": person,
        }


# ---------------------------------------------------------------- translations


def _released(ev: _Hmpps) -> Envelope:
    person, prison = ev.person(), ev.prison()
    assert prison is not None
    reason = (ev.text("reason") or "UNKNOWN").upper()
    details = ev.text("details")
    base = ev.envelope(person, prison, reason, ev.text("nomisMovementReasonCode"))
    if reason in ("RELEASED", "RELEASED_TO_HOSPITAL"):
        return ReleaseEvent(**base, payload=Release(prison=prison))
    if reason == "TRANSFERRED":
        # The released half of a transfer names the prison left, not the one going to.
        return TransferEvent(**base, payload=Transfer(from_prison=prison, to_prison=UNKNOWN_PRISON))
    if reason == "TEMPORARY_ABSENCE_RELEASE":
        return TemporaryReleaseEvent(**base, payload=TemporaryRelease(prison=prison))
    if reason == "SENT_TO_COURT":
        court = (details or "court not named")[:500]
        return CourtProductionEvent(**base, payload=CourtProduction(prison=prison, court=court))
    raise HmppsEventError(f"{ev.event_type}: release reason {reason!r} is not one we can use")


#: Receive reasons that say why the person is held (older publishers sent these).
_RECEPTION_STATUS = {
    "ADMISSION": None,
    # Back from court or from temporary absence: held again, and after court perhaps on a new
    # legal status, so these are receptions (into the prison named) like any other.
    "RETURN_FROM_COURT": None,
    "TEMPORARY_ABSENCE_RETURN": None,
    "CONVICTED": ReceptionStatus.SENTENCED,
    "SENTENCED": ReceptionStatus.SENTENCED,
    "REMAND": ReceptionStatus.REMAND,
}


def _received(ev: _Hmpps) -> Envelope:
    person, prison = ev.person(), ev.prison()
    assert prison is not None
    reason = (ev.text("reason") or "ADMISSION").upper()
    base = ev.envelope(person, prison, reason, ev.text("nomisMovementReasonCode"))
    if reason == "TRANSFERRED":
        return TransferEvent(**base, payload=Transfer(from_prison=UNKNOWN_PRISON, to_prison=prison))
    if reason == "RECALL":
        return RecallEvent(**base, payload=Recall(prison=prison, reason=ev.text("details")))
    if reason not in _RECEPTION_STATUS:
        raise HmppsEventError(f"{ev.event_type}: receive reason {reason!r} is not one we can use")
    status = _RECEPTION_STATUS[reason] or _status_from_details(ev.text("details"))
    return ReceptionEvent(**base, payload=Reception(prison=prison, status=status))


def _status_from_details(details: str | None) -> ReceptionStatus:
    # details is "<status>:<statusReason>", e.g. "ACTIVE IN:ADM-N"; NOMIS legal status is not in
    # the event, so remand is assumed only when the details say so and sentenced otherwise.
    text = (details or "").upper()
    if "RECALL" in text:
        return ReceptionStatus.RECALL
    if "REMAND" in text:
        return ReceptionStatus.REMAND
    return ReceptionStatus.SENTENCED


#: Sentence-calculation date fields, most specific first, and the release each one means.
_DATE_FIELDS: tuple[tuple[str, ReleaseType], ...] = (
    ("homeDetentionCurfewActualDate", ReleaseType.HOME_DETENTION_CURFEW),
    ("actualParoleDate", ReleaseType.PAROLE),
    ("postRecallReleaseDate", ReleaseType.RERELEASE_AFTER_RECALL),
    ("earlyReleaseSchemeDate", ReleaseType.EARLY_RELEASE_SCHEME),
    ("conditionalReleaseDate", ReleaseType.CONDITIONAL_RELEASE),
    ("automaticReleaseDate", ReleaseType.AUTOMATIC_RELEASE),
    ("sentenceExpiryDate", ReleaseType.END_OF_SENTENCE),
)


def _date(ev: _Hmpps, field: str) -> date | None:
    raw = ev.text(field)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise HmppsEventError(f"additionalInformation.{field}: not a date: {raw[:20]!r}") from None


def _sentence_dates_changed(ev: _Hmpps) -> Envelope:
    person = ev.person()
    typed = [(d, kind) for field, kind in _DATE_FIELDS if (d := _date(ev, field)) is not None]
    release_date = _date(ev, "confirmedReleaseDate") or _date(ev, "releaseDate")
    if release_date is None and not typed:
        raise HmppsEventError(
            f"{ev.event_type}: carries no release date (conditionalReleaseDate, releaseDate, ...);"
            " fetch the calculation by sentenceCalculationId and publish release_date.changed"
        )
    new_date = release_date or typed[0][0]
    # The release type is the one whose date is the release date; otherwise the first named.
    kind = next((k for d, k in typed if d == new_date), typed[0][1] if typed else None)
    payload = ReleaseDateChanged(
        new_date=new_date,
        previous_date=_date(ev, "previousReleaseDate"),
        release_type=kind or ReleaseType.CONDITIONAL_RELEASE,
        reason="sentence calculation",
        recalculated_by=f"sentence calculation {calc}" if (calc := ev.text(
            "sentenceCalculationId")) else None,
    )
    base = ev.envelope(person, ev.prison(required=False), ev.text("bookingId"),
                       ev.text("sentenceCalculationId"), new_date.isoformat())
    return ReleaseDateChangedEvent(**base, payload=payload)


def _case_note_published(ev: _Hmpps) -> Envelope:
    person = ev.person()
    combined = ev.text("caseNoteType") or ""
    # Published today as type/subType plus caseNoteType "TYPE-SUBTYPE"; accept either form.
    note_type = ev.text("type") or combined.split("-", 1)[0] or None
    sub_type = ev.text("subType") or ev.text("caseNoteSubType") or (
        combined.split("-", 1)[1] if "-" in combined else None
    )
    if not note_type:
        raise HmppsEventError(f"{ev.event_type}: additionalInformation.caseNoteType missing")
    note_id = ev.text("caseNoteId")
    label = f"{note_type}/{sub_type}" if sub_type else note_type
    payload = GeneralNote(
        subtype=f"hmpps:{label}"[:64],
        text=f"HMPPS case note {label} (id {note_id or 'unknown'}); its text is not carried "
        "by the event.",
    )
    base = ev.envelope(person, ev.prison(required=False), note_id)
    return GeneralNoteEvent(**base, payload=payload)


TRANSLATORS: dict[str, Callable[[_Hmpps], Envelope]] = {
    RELEASED: _released,
    RECEIVED: _received,
    SENTENCE_DATES_CHANGED: _sentence_dates_changed,
    CASE_NOTE_PUBLISHED: _case_note_published,
}


def from_hmpps(data: Mapping[str, Any] | bytes | str) -> Envelope:
    """Translate one HMPPS domain event; raise :class:`HmppsEventError` saying why not."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise HmppsEventError(f"not JSON: {exc}") from None
    if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
        return from_hmpps(data["Message"])
    if not isinstance(data, dict) or "eventType" not in data:
        raise HmppsEventError("not an HMPPS domain event: no eventType")
    translate = TRANSLATORS.get(str(data["eventType"]))
    if translate is None:
        raise HmppsEventError(
            f"HMPPS eventType {str(data['eventType'])[:100]!r} is not supported; supported: "
            + ", ".join(sorted(TRANSLATORS))
        )
    try:
        return translate(_Hmpps(data))
    except ValidationError as exc:
        raise HmppsEventError(f"{data['eventType']}: {_explain(exc)}") from None
