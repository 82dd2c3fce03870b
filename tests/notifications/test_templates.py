"""Texts: segment counting, length, wording, STOP line; phone numbers; quiet hours; the planner."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.notifications import templates
from consumers.notifications.phones import InvalidMobile, normalise_uk_mobile
from consumers.notifications.planner import (
    AppointmentFacts,
    PersonFacts,
    Policy,
    plan,
)
from consumers.notifications.quiet_hours import QuietHours
from infra.config import Settings
from infra.models.messages import CustodyState

TZ = "Europe/London"
BANNED = re.compile(r"probation|offen|prison|licen[cs]e|recall|parole|mental|drug|alcohol|"
                    r"health|methadone|court|crime|criminal", re.IGNORECASE)
APPT = templates.AppointmentText("supervision", datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
                                 "Probation Office, Unit 4, Riverside Business Park, "
                                 "Long Road Industrial Estate, Cambridge CB1 1AA",
                                 "Jo Bloggs (offender manager) at the drug and alcohol desk")


def person_texts(appt: templates.AppointmentText) -> list[str]:
    return [templates.welcome(), templates.day_of_release(appt, TZ),
            templates.evening_before(appt, TZ), templates.hours_before(appt, TZ),
            templates.changed(appt, TZ), templates.cancelled(appt, TZ),
            templates.help_reply(), templates.confirmed_reply(appt, TZ),
            templates.confirmed_reply(None, TZ)]


def test_segment_counting_gsm7_and_ucs2():
    assert templates.segments("a" * 160) == 1
    assert templates.segments("a" * 161) == 2
    assert templates.segments("a" * 306) == 2 and templates.segments("a" * 307) == 3
    assert templates.segments("€" * 80) == 1  # extension characters cost two septets
    assert templates.segments("€" * 81) == 2
    assert templates.segments("é" * 160) == 1  # é is in the GSM-7 basic set
    assert templates.segments("ł" * 70) == 1  # not GSM-7: UCS-2
    assert templates.segments("ł" * 71) == 2
    assert templates.segments("ł" * 134) == 2 and templates.segments("ł" * 135) == 3


def test_every_person_text_is_short_plain_and_has_stop():
    for text in person_texts(APPT):
        assert templates.segments(text) <= templates.MAX_SEGMENTS, text
        assert templates.is_gsm7(text), text
        assert not BANNED.search(text), text
        assert text.endswith(templates.STOP_LINE)


@settings(max_examples=200, deadline=None)
@given(place=st.text(max_size=500), who=st.text(max_size=500),
       kind=st.sampled_from(sorted(templates.KIND_WORDS)))
def test_any_staff_free_text_still_fits(place, who, kind):
    appt = templates.AppointmentText(kind, datetime(2026, 6, 1, 9, 30, tzinfo=UTC), place, who)
    for text in person_texts(appt):
        assert templates.segments(text) <= 2
        assert templates.is_gsm7(text)
        assert not re.search(r"probation|offender|mental health", text, re.IGNORECASE)


def test_free_text_keeps_useful_details():
    text = templates.evening_before(
        templates.AppointmentText("jobcentre", datetime(2026, 6, 2, 9, 30, tzinfo=UTC),
                                  "Jobcentre Plus, 1 High St", "Sam"), TZ)
    # 09:30 UTC in June is 10:30 in London.
    assert text == ("Reminder: your Jobcentre appointment is tomorrow, Tue 2 Jun at 10:30 at "
                    "Jobcentre Plus, 1 High St. Ask for Sam. Reply C to confirm. "
                    "Reply STOP to stop texts.")
    assert templates.clean_free_text("Probation Office, 1 High St") == "Office, 1 High St"
    assert templates.clean_free_text("St John’s Hall – rear door") == "St John's Hall - rear door"


def test_staff_texts_fit():
    t = templates.staff_urgent_task("tsk-123", "A1234BC", "accommodation",
                                    datetime(2026, 11, 24, 9, tzinfo=UTC), TZ)
    assert "A1234BC" in t and templates.segments(t) <= 2
    assert templates.segments(templates.staff_digest("IOM-CAMBS", date(2026, 11, 24), 12, 3)) == 1


@pytest.mark.parametrize("raw", ["07400 123456", "+44 7400 123456", "0044 7400 123456",
                                 "(07400) 123-456", "447400123456"])
def test_uk_mobiles_normalise(raw):
    assert normalise_uk_mobile(raw) == "+447400123456"


@pytest.mark.parametrize("raw", ["07700 900123", "+44 7700 900123"])
def test_ofcom_drama_numbers_count_as_mobiles(raw):
    assert normalise_uk_mobile(raw) == "+447700900123"


@pytest.mark.parametrize("raw,why", [("020 7946 0000", "not a mobile"),
                                     ("07700 9001234", "not a valid number"),
                                     ("07624 123456", "not a UK number"),  # Isle of Man
                                     ("+1 202 555 0143", "not a UK number"),
                                     ("07400 12345", "not a valid number"),
                                     ("call me", "not a phone number")])
def test_bad_numbers_refused_without_echoing(raw, why):
    with pytest.raises(InvalidMobile) as exc:
        normalise_uk_mobile(raw)
    assert why in str(exc.value) and raw not in str(exc.value)


def _quiet() -> QuietHours:
    return QuietHours.from_settings(Settings(_env_file=None))


def test_quiet_hours_in_london_time_across_bst():
    q = _quiet()
    # 20:30 UTC in June is 21:30 BST: quiet; moves to 08:00 BST = 07:00 UTC next day.
    assert q.is_quiet(datetime(2026, 6, 1, 20, 30, tzinfo=UTC))
    assert q.next_allowed(datetime(2026, 6, 1, 20, 30, tzinfo=UTC)) == datetime(
        2026, 6, 2, 7, 0, tzinfo=UTC)
    # 20:30 UTC in January is 20:30 GMT: allowed.
    assert not q.is_quiet(datetime(2026, 1, 5, 20, 30, tzinfo=UTC))
    # After midnight: the same morning.
    assert q.next_allowed(datetime(2026, 1, 5, 3, 0, tzinfo=UTC)) == datetime(
        2026, 1, 5, 8, 0, tzinfo=UTC)
    # Pointless after the move: skipped.
    assert q.shift(datetime(2026, 1, 5, 6, 0, tzinfo=UTC),
                   latest=datetime(2026, 1, 5, 7, 30, tzinfo=UTC)) is None


def _facts(**kw) -> PersonFacts:
    base = dict(prison_number="A1234BC", mobile_e164="+447400123456", sms_consent=True,
                opted_out=False, custody=CustodyState.PRE_RELEASE)
    base.update(kw)
    return PersonFacts(**base)


def test_release_day_text_names_first_appointment():
    policy = Policy.from_settings(Settings(_env_file=None))
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    first = AppointmentFacts("ap1", "supervision", "booked",
                             datetime(2026, 11, 27, 14, 0, tzinfo=UTC), "1 High St", "Sam")
    later = AppointmentFacts("ap2", "jobcentre", "booked",
                             datetime(2026, 11, 30, 11, 0, tzinfo=UTC))
    early = AppointmentFacts("ap0", "housing", "booked",
                             datetime(2026, 11, 26, 11, 0, tzinfo=UTC))  # before release: ignored
    out = plan(_facts(release_date=date(2026, 11, 27), appointments=(first, later, early)),
               now, policy)
    by_kind = {(r.kind, r.appointment_id): r for r in out.values()}
    release = by_kind[("day_of_release", "ap1")]
    assert release.send_at == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert "14:00 at 1 High St. Ask for Sam." in release.body
    assert by_kind[("welcome", None)].send_at == release.send_at
    # The evening before ap1 falls before release: not planned; ap1's 12:00 reminder is.
    assert ("evening_before", "ap1") not in by_kind
    assert by_kind[("hours_before", "ap1")].send_at == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert by_kind[("evening_before", "ap2")].send_at == datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
    assert not any(r.appointment_id == "ap0" for r in out.values())


@pytest.mark.parametrize("change", [
    {"sms_consent": None}, {"sms_consent": False}, {"opted_out": True}, {"mobile_e164": None},
    {"custody": CustodyState.RETURNED}, {"custody": CustodyState.UNLAWFULLY_AT_LARGE},
])
def test_no_plan_without_permission_or_in_custody(change):
    policy = Policy.from_settings(Settings(_env_file=None))
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    appt = AppointmentFacts("ap1", "supervision", "booked", now + timedelta(days=2))
    assert plan(_facts(custody=CustodyState.RELEASED, appointments=(appt,)), now, policy)
    assert plan(_facts(**{"custody": CustodyState.RELEASED, **change}, appointments=(appt,)),
                now, policy) == {}


def test_late_booking_sends_now_if_still_useful():
    policy = Policy.from_settings(Settings(_env_file=None))
    now = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)  # after 18:00, appointment tomorrow 10:00
    appt = AppointmentFacts("ap1", "supervision", "booked", datetime(2026, 11, 25, 10, tzinfo=UTC))
    out = plan(_facts(custody=CustodyState.RELEASED, appointments=(appt,)), now, policy)
    assert out["A1234BC|ap1|evening_before"].send_at == now
    late = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)  # quiet until 08:00: pointless, dropped
    out = plan(_facts(custody=CustodyState.RELEASED, appointments=(appt,)), late, policy)
    assert "A1234BC|ap1|evening_before" not in out
    assert out["A1234BC|-|welcome"].send_at == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
