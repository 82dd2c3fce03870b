"""HMPPS domain events translate into our contracts; what cannot be used says why."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from schemas import decode_input, encode
from schemas.events import ReceptionStatus, ReleaseType
from schemas.hmpps import UNKNOWN_PRISON, HmppsEventError, from_hmpps, is_hmpps


def hmpps(event_type: str, info: dict[str, Any], noms: str | None = "A5194DY",
          **extra: Any) -> dict[str, Any]:
    identifiers = [{"type": "NOMS", "value": noms}] if noms else []
    return {
        "eventType": event_type,
        "version": 1,
        "occurredAt": "2026-11-20T14:41:11.526762Z",
        "publishedAt": "2026-11-20T14:41:13.1+00:00",
        "description": "…",
        "additionalInformation": info,
        "personReference": {"identifiers": identifiers},
        **extra,
    }


def released(reason: str, **info: str) -> dict[str, Any]:
    return hmpps("prison-offender-events.prisoner.released",
                 {"nomsNumber": "A5194DY", "prisonId": "MDI", "reason": reason, **info})


def received(reason: str, **info: str) -> dict[str, Any]:
    return hmpps("prison-offender-events.prisoner.received",
                 {"nomsNumber": "A5194DY", "prisonId": "LEI", "reason": reason, **info})


def check_contract(event: Any) -> None:
    """Whatever the adapter makes must pass our own wire validation unchanged."""
    assert decode_input(encode(event)) == event
    assert event.person.prison_number == "A5194DY"


@pytest.mark.parametrize(
    ("data", "type_", "check"),
    [
        (released("RELEASED", details="Movement reason code CR"), "custody.release",
         lambda p: p.prison == "MDI"),
        (released("RELEASED_TO_HOSPITAL"), "custody.release", lambda p: p.prison == "MDI"),
        (released("TRANSFERRED"), "custody.transfer",
         lambda p: (p.from_prison, p.to_prison) == ("MDI", UNKNOWN_PRISON)),
        (released("TEMPORARY_ABSENCE_RELEASE"), "custody.temporary_release",
         lambda p: p.prison == "MDI"),
        (released("SENT_TO_COURT"), "custody.court_production", lambda p: p.prison == "MDI"),
        (received("ADMISSION", details="ACTIVE IN:ADM-N"), "custody.reception",
         lambda p: (p.prison, p.status) == ("LEI", ReceptionStatus.SENTENCED)),
        (received("ADMISSION", details="ACTIVE IN:REMAND"), "custody.reception",
         lambda p: p.status == ReceptionStatus.REMAND),
        (received("RETURN_FROM_COURT"), "custody.reception", lambda p: p.prison == "LEI"),
        (received("TEMPORARY_ABSENCE_RETURN"), "custody.reception", lambda p: p.prison == "LEI"),
        (received("TRANSFERRED"), "custody.transfer",
         lambda p: (p.from_prison, p.to_prison) == (UNKNOWN_PRISON, "LEI")),
        (received("RECALL"), "custody.recall", lambda p: p.prison == "LEI"),
    ],
)
def test_movements(data: dict, type_: str, check: Any) -> None:
    event = from_hmpps(data)
    assert event.type == type_
    assert check(event.payload)
    assert event.occurred_at == datetime(2026, 11, 20, 14, 41, 11, 526762, tzinfo=UTC)
    check_contract(event)


def test_sentence_dates_changed_takes_the_release_date() -> None:
    event = from_hmpps(hmpps(
        "prison-offender-events.prisoner.sentence-dates-changed",
        {"nomsNumber": "A5194DY", "bookingId": "1201234", "sentenceCalculationId": "5531",
         "conditionalReleaseDate": "2027-03-05", "sentenceExpiryDate": "2028-01-01"},
    ))
    assert event.type == "release_date.changed"
    assert event.payload.new_date == date(2027, 3, 5)
    assert event.payload.release_type is ReleaseType.CONDITIONAL_RELEASE
    assert "5531" in (event.payload.recalculated_by or "")
    check_contract(event)


def test_sentence_dates_confirmed_date_chooses_its_type() -> None:
    event = from_hmpps(hmpps(
        "prison-offender-events.prisoner.sentence-dates-changed",
        {"nomsNumber": "A5194DY", "releaseDate": "2027-02-01",
         "conditionalReleaseDate": "2027-03-05", "homeDetentionCurfewActualDate": "2027-02-01"},
    ))
    assert event.payload.new_date == date(2027, 2, 1)
    assert event.payload.release_type is ReleaseType.HOME_DETENTION_CURFEW


def test_sentence_dates_changed_without_dates_is_refused_with_a_reason() -> None:
    # As published today the event names only the calculation; it must be looked up first.
    with pytest.raises(HmppsEventError, match="no release date"):
        from_hmpps(hmpps("prison-offender-events.prisoner.sentence-dates-changed",
                         {"nomsNumber": "A5194DY", "bookingId": "1", "sentenceCalculationId": "2"}))


@pytest.mark.parametrize("info", [
    {"caseNoteId": "1234567", "caseNoteType": "GEN-OSE", "type": "GEN", "subType": "OSE"},
    {"caseNoteId": "1234567", "caseNoteType": "GEN", "caseNoteSubType": "OSE"},
])
def test_case_note_published_records_type_and_subtype(info: dict) -> None:
    event = from_hmpps(hmpps("prison.case-note.published", info))
    assert event.type == "case_note.general"
    assert event.payload.subtype == "hmpps:GEN/OSE"
    assert "1234567" in event.payload.text
    check_contract(event)


def test_event_id_is_stable_across_redelivery_and_differs_between_events() -> None:
    a, b = from_hmpps(released("RELEASED")), from_hmpps(json.dumps(released("RELEASED")))
    assert a.event_id == b.event_id
    later = released("RELEASED")
    later["occurredAt"] = "2026-11-21T09:00:00Z"
    assert from_hmpps(later).event_id != a.event_id
    assert from_hmpps(released("TRANSFERRED")).event_id != a.event_id


def test_sns_notification_wrapper_is_unwrapped() -> None:
    wrapped = {"Type": "Notification", "Message": json.dumps(released("RELEASED"))}
    assert is_hmpps(wrapped)
    assert from_hmpps(wrapped) == from_hmpps(released("RELEASED"))


def test_crn_identifier_is_carried() -> None:
    data = released("RELEASED")
    data["personReference"]["identifiers"].append({"type": "CRN", "value": "X123456"})
    assert from_hmpps(data).person.crn == "X123456"


def test_naive_occurred_at_is_read_as_uk_local_time() -> None:
    data = released("RELEASED")
    data["occurredAt"], data["publishedAt"] = "2026-07-01T10:00:00", "2026-07-01T10:00:02"
    assert from_hmpps(data).occurred_at == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def test_noms_from_person_reference_when_not_in_additional_information() -> None:
    data = hmpps("prison.case-note.published", {"caseNoteId": "9", "caseNoteType": "GEN-OSE"})
    assert from_hmpps(data).person.prison_number == "A5194DY"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (hmpps("prison-offender-events.prisoner.merged", {"nomsNumber": "A5194DY"}),
         "not supported"),
        (hmpps("prison.case-note.published", {"caseNoteId": "1", "caseNoteType": "GEN-OSE"},
               noms=None), "no prison number"),
        ({**released("RELEASED"), "additionalInformation": {"prisonId": "MDI",
                                                            "reason": "RELEASED"},
          "personReference": {"identifiers": [{"type": "CRN", "value": "X123456"}]}},
         "no prison number"),
        (released("RELEASED", nomsNumber="12345"), "prison_number"),
        (released("UNKNOWN"), "release reason"),
        ({**released("RELEASED"), "occurredAt": "yesterday"}, "occurredAt"),
        ({k: v for k, v in released("RELEASED").items() if k != "occurredAt"}, "occurredAt"),
        (hmpps("prison-offender-events.prisoner.released", {"nomsNumber": "A5194DY",
                                                            "reason": "RELEASED"}), "prisonId"),
        ({"type": "custody.release"}, "no eventType"),
        (b"{not json", "not JSON"),
    ],
)
def test_what_cannot_be_used_says_why(data: Any, reason: str) -> None:
    with pytest.raises(HmppsEventError, match=reason):
        from_hmpps(data)
