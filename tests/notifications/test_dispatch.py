"""Planning and sending through the real twilio library and a local Twilio-compatible server,
on SQLite and PostgreSQL, with a controlled clock (Mon 23 Nov 2026, GMT = UTC)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from consumers.notifications.dispatch import Dispatcher
from consumers.notifications.sender import SendRequest, SendResult, TwilioBackend
from infra.models.messages import NotificationIssue, NotifyPerson, Reminder, ReminderHistory

from .builders import (
    PN,
    PN2,
    apply,
    appointment,
    contact,
    escaped,
    recalled,
    released,
    reminders,
    states,
)
from .conftest import MOBILE, MOBILE_2

MON = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
WED_10 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def k(kind: str, appt: str | None = "ap1", pn: str = PN) -> str:
    return f"{pn}|{appt or '-'}|{kind}"


@pytest.fixture
def dispatcher(engine, sms_settings, clock):
    return Dispatcher(engine, TwilioBackend(sms_settings), sms_settings, clock)


def released_person(engine, settings, clock, pn=PN, mobile=MOBILE, when=WED_10):
    apply(engine, settings, clock(), released(pn, clock() - timedelta(hours=1)),
          contact(pn, clock(), mobile), appointment(pn, clock(), "ap1", when=when))


def issues(engine) -> list[NotificationIssue]:
    with Session(engine) as s:
        return list(s.exec(select(NotificationIssue)).all())


def test_reminder_times_and_sending_once(engine, sms_settings, clock, dispatcher, fake_twilio):
    released_person(engine, sms_settings, clock)
    rows = reminders(engine, PN)
    assert set(rows) == {k("welcome", None), k("evening_before"), k("hours_before")}
    assert rows[k("evening_before")].send_at.replace(tzinfo=UTC) == datetime(
        2026, 11, 24, 18, 0, tzinfo=UTC)
    assert rows[k("hours_before")].send_at.replace(tzinfo=UTC) == datetime(
        2026, 11, 25, 8, 0, tzinfo=UTC)

    assert dispatcher.run_once().sent == 1  # the welcome, now
    clock.set(datetime(2026, 11, 24, 17, 59, tzinfo=UTC))
    assert dispatcher.run_once().sent == 0
    clock.advance(minutes=1)
    assert dispatcher.run_once().sent == 1
    clock.set(datetime(2026, 11, 25, 8, 0, tzinfo=UTC))
    assert dispatcher.run_once().sent == 1
    clock.advance(days=2)
    assert dispatcher.run_once().sent == 0

    bodies = [m["body"] for m in fake_twilio.created()]
    assert len(bodies) == 3
    assert "STOP" in bodies[0] and "Reply HELP" in bodies[0]
    assert "tomorrow, Wed 25 Nov at 10:00" in bodies[1] and "Ask for Sam" in bodies[1]
    assert "today at 10:00" in bodies[2]
    assert all(m["to"] == MOBILE for m in fake_twilio.created())
    assert all(r.auth_ok for r in fake_twilio.requests)
    callbacks = [m["status_callback"] for m in fake_twilio.created()]
    assert all(c.startswith("https://hub.example.test/twilio/status?rid=") for c in callbacks)
    assert set(states(engine, PN).values()) == {"sent"}
    # Re-applying the same events (a redelivery) changes nothing.
    with Session(engine) as s:
        hist = len(s.exec(select(ReminderHistory)).all())
    released_person(engine, sms_settings, clock)
    with Session(engine) as s:
        assert len(s.exec(select(ReminderHistory)).all()) == hist


def test_quiet_hours_move_on_the_day_reminder_to_morning(engine, sms_settings, clock,
                                                         dispatcher, fake_twilio):
    released_person(engine, sms_settings, clock, when=datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    row = reminders(engine, PN)[k("hours_before")]
    assert row.send_at.replace(tzinfo=UTC) == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    # An 08:15 appointment: 06:15 is quiet and 08:00 is too close, so no on-the-day text.
    early = datetime(2026, 11, 26, 8, 15, tzinfo=UTC)
    apply(engine, sms_settings, clock(), appointment(PN, clock(), "ap2", when=early))
    keys = set(reminders(engine, PN))
    assert k("evening_before", "ap2") in keys and k("hours_before", "ap2") not in keys


def test_due_at_night_is_held_until_morning(engine, sms_settings, clock, dispatcher, fake_twilio):
    # The dispatcher was down; at 23:00 the welcome is due but quiet hours hold it until 08:00.
    released_person(engine, sms_settings, clock)
    clock.set(datetime(2026, 11, 23, 23, 0, tzinfo=UTC))
    report = dispatcher.run_once()
    assert report.sent == 0 and report.deferred == 1
    clock.set(datetime(2026, 11, 24, 7, 59, tzinfo=UTC))
    assert dispatcher.run_once().sent == 0
    clock.set(datetime(2026, 11, 24, 8, 0, tzinfo=UTC))
    assert dispatcher.run_once().sent == 1
    assert len(fake_twilio.created()) == 1


def test_moved_and_cancelled_appointments(engine, sms_settings, clock, dispatcher, fake_twilio):
    released_person(engine, sms_settings, clock)
    thu_14 = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    apply(engine, sms_settings, clock(), appointment(PN, clock(), "ap1", "moved", when=thu_14))
    rows = reminders(engine, PN)
    assert rows[k("evening_before")].send_at.replace(tzinfo=UTC) == datetime(
        2026, 11, 25, 18, 0, tzinfo=UTC)
    assert rows[k("hours_before")].send_at.replace(tzinfo=UTC) == datetime(
        2026, 11, 26, 12, 0, tzinfo=UTC)
    assert "Thu 26 Nov at 14:00" in rows[k("evening_before")].body
    apply(engine, sms_settings, clock(), appointment(PN, clock(), "ap1", "cancelled"))
    assert states(engine, PN) == {k("welcome", None): "scheduled",
                                  k("evening_before"): "cancelled",
                                  k("hours_before"): "cancelled"}
    clock.advance(days=5)
    dispatcher.run_once()
    assert [m["body"][:5] for m in fake_twilio.created()] == ["Hello"]


@pytest.mark.parametrize("event", [recalled, escaped])
def test_return_to_custody_cancels_everything(engine, sms_settings, clock, dispatcher,
                                              fake_twilio, event):
    released_person(engine, sms_settings, clock)
    dispatcher.run_once()
    apply(engine, sms_settings, clock(), event(PN, clock()))
    assert states(engine, PN) == {k("welcome", None): "sent", k("evening_before"): "cancelled",
                                  k("hours_before"): "cancelled"}
    clock.advance(days=3)
    dispatcher.run_once()
    assert len(fake_twilio.created()) == 1


def test_in_custody_waits_for_release(engine, sms_settings, clock, dispatcher, fake_twilio):
    apply(engine, sms_settings, clock(), contact(PN, clock(), MOBILE),
          appointment(PN, clock(), "ap1", when=WED_10))
    clock.set(datetime(2026, 11, 24, 18, 0, tzinfo=UTC))  # release not yet recorded
    report = dispatcher.run_once()
    assert report.deferred == 2 and not fake_twilio.created()  # welcome and evening-before
    clock.advance(hours=1)
    apply(engine, sms_settings, clock(), released(PN, clock()))
    report = dispatcher.run_once()
    assert [o for _, o in report.outcomes] == ["sent", "sent"]
    assert fake_twilio.created()[0]["body"].startswith("Hello")  # the welcome goes first


def test_crash_after_claim_before_request_is_sent_once(engine, sms_settings, clock, dispatcher,
                                                       fake_twilio):
    released_person(engine, sms_settings, clock)
    welcome = reminders(engine, PN)[k("welcome", None)]
    assert dispatcher.claim(welcome.id)  # ... and the process dies here
    assert not dispatcher.claim(welcome.id)  # nobody else can take it meanwhile
    assert dispatcher.run_once().sent == 0  # too soon to call it orphaned
    clock.advance(minutes=5)
    restarted = Dispatcher(engine, TwilioBackend(sms_settings), sms_settings, clock)
    report = restarted.run_once()
    assert report.requeued == 1 and report.sent == 1
    assert len(fake_twilio.created()) == 1


class Crash(BaseException):
    """Stands for the process dying (not an exception the dispatcher could handle)."""


class CrashAfterHttp(TwilioBackend):
    def send(self, request: SendRequest) -> SendResult:
        super().send(request)
        raise Crash


class CrashBeforeHttp(TwilioBackend):
    def send(self, request: SendRequest) -> SendResult:
        raise Crash


def test_crash_after_http_call_is_never_sent_twice(engine, sms_settings, clock, fake_twilio):
    released_person(engine, sms_settings, clock)
    with pytest.raises(Crash):
        Dispatcher(engine, CrashAfterHttp(sms_settings), sms_settings, clock).run_once()
    assert len(fake_twilio.created()) == 1
    assert set(states(engine, PN).values()) == {"sending", "scheduled"}
    clock.advance(minutes=5)
    report = Dispatcher(engine, TwilioBackend(sms_settings), sms_settings, clock).run_once()
    assert report.sent == 1  # found at Twilio and marked sent, not re-sent
    row = reminders(engine, PN)[k("welcome", None)]
    assert row.state == "sent" and row.twilio_sid == fake_twilio.created()[0]["sid"]
    assert len(fake_twilio.creates()) == 1


def test_crash_with_unknown_outcome_fails_safe(engine, sms_settings, clock, fake_twilio):
    released_person(engine, sms_settings, clock)
    with pytest.raises(Crash):
        Dispatcher(engine, CrashBeforeHttp(sms_settings), sms_settings, clock).run_once()
    clock.advance(minutes=5)
    Dispatcher(engine, TwilioBackend(sms_settings), sms_settings, clock).run_once()
    row = reminders(engine, PN)[k("welcome", None)]
    assert row.state == "failed" and "outcome unknown" in (row.detail or "")
    assert not fake_twilio.creates()
    assert [i.kind for i in issues(engine)] == ["could_not_text"]


def test_timeout_then_found_is_not_resent(engine, sms_settings, clock, dispatcher, fake_twilio):
    released_person(engine, sms_settings, clock)
    fake_twilio.delay_next = sms_settings.twilio_timeout_seconds + 1.0
    assert dispatcher.run_once().retried == 1  # timed out; Twilio got it anyway
    deadline = time.monotonic() + 10
    while not fake_twilio.created() and time.monotonic() < deadline:
        time.sleep(0.05)
    clock.advance(seconds=31)
    assert dispatcher.run_once().sent == 1
    assert len(fake_twilio.creates()) == 1 and len(fake_twilio.created()) == 1


def test_429_and_500_retry_with_backoff(engine, sms_settings, clock, dispatcher, fake_twilio):
    released_person(engine, sms_settings, clock)
    fake_twilio.fail_next(429, 500)
    assert dispatcher.run_once().retried == 1
    row = reminders(engine, PN)[k("welcome", None)]
    assert row.next_attempt_at.replace(tzinfo=UTC) == clock() + timedelta(seconds=30)
    clock.advance(seconds=29)
    assert dispatcher.run_once().outcomes == []
    clock.advance(seconds=1)
    assert dispatcher.run_once().retried == 1
    row = reminders(engine, PN)[k("welcome", None)]
    assert row.next_attempt_at.replace(tzinfo=UTC) == clock() + timedelta(seconds=60)
    clock.advance(seconds=60)
    assert dispatcher.run_once().sent == 1
    assert len(fake_twilio.creates()) == 3 and len(fake_twilio.created()) == 1


def test_21610_marks_opted_out_and_cancels(engine, sms_settings, clock, dispatcher, fake_twilio):
    released_person(engine, sms_settings, clock)
    fake_twilio.error_for[MOBILE] = 21610
    assert dispatcher.run_once().failed == 1
    with Session(engine) as s:
        assert s.get(NotifyPerson, PN).opted_out is True
    assert states(engine, PN) == {k("welcome", None): "failed", k("evening_before"): "cancelled",
                                  k("hours_before"): "cancelled"}
    assert "opted out" in issues(engine)[0].reason


def test_21211_creates_issue_for_owner(engine, sms_settings, clock, dispatcher, fake_twilio):
    released_person(engine, sms_settings, clock)
    fake_twilio.error_for[MOBILE] = 21211
    assert dispatcher.run_once().failed == 1
    [issue] = issues(engine)
    assert issue.kind == "could_not_text" and "not valid" in issue.reason
    assert issue.owner_role == "probation_practitioner" and issue.prison_number == PN
    with Session(engine) as s:
        assert s.get(NotifyPerson, PN).mobile_invalid is True
    clock.advance(days=3)
    dispatcher.run_once()
    assert len(fake_twilio.creates()) == 1


def test_allow_list_outside_production(engine, sms_settings, clock, fake_twilio):
    released_person(engine, sms_settings, clock, mobile="+447400999999")
    Dispatcher(engine, TwilioBackend(sms_settings), sms_settings, clock).run_once()
    assert reminders(engine, PN)[k("welcome", None)].state == "skipped"
    assert not fake_twilio.requests
    prod = sms_settings.model_copy(update={"environment": "production", "sms_allow_list": []})
    released_person(engine, sms_settings, clock, pn=PN2, mobile="+447400888888")
    Dispatcher(engine, TwilioBackend(prod), prod, clock).run_once()
    assert reminders(engine, PN2)[k("welcome", None, PN2)].state == "sent"


def test_shared_number_is_not_texted(engine, sms_settings, clock, dispatcher, fake_twilio):
    released_person(engine, sms_settings, clock)
    released_person(engine, sms_settings, clock, pn=PN2)
    dispatcher.run_once()
    assert not fake_twilio.requests
    assert {r.state for r in reminders(engine).values() if r.kind == "welcome"} == {"skipped"}
    assert len(issues(engine)) == 2
    # Once the second person's number is corrected, the first person's texts go again.
    apply(engine, sms_settings, clock(), contact(PN2, clock(), MOBILE_2))
    clock.advance(days=1, hours=8)
    dispatcher.run_once()
    assert {m["to"] for m in fake_twilio.created()} == {MOBILE, MOBILE_2}


def test_no_consent_no_texts(engine, sms_settings, clock, dispatcher, fake_twilio):
    apply(engine, sms_settings, clock(), released(PN, clock()),
          contact(PN, clock(), MOBILE, consent=False),
          appointment(PN, clock(), "ap1", when=WED_10))
    assert reminders(engine, PN) == {}
    apply(engine, sms_settings, clock(), contact(PN, clock(), None, consent=True))
    assert len(reminders(engine, PN)) == 3


def test_invalid_mobile_recorded_as_issue(engine, sms_settings, clock):
    apply(engine, sms_settings, clock(), released(PN, clock()),
          contact(PN, clock(), "020 7946 0000"))
    assert reminders(engine, PN) == {}
    assert "not a mobile" in issues(engine)[0].reason


def test_concurrent_dispatchers_send_once(engine, sms_settings, clock, fake_twilio):
    import threading

    released_person(engine, sms_settings, clock)
    workers = [Dispatcher(engine, TwilioBackend(sms_settings), sms_settings, clock)
               for _ in range(4)]
    threads = [threading.Thread(target=w.run_once) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_twilio.created()) == 1
    with Session(engine) as s:
        assert s.exec(select(Reminder).where(Reminder.state == "sent")).one()


def test_release_day_text_goes_when_the_release_is_recorded(engine, sms_settings, clock,
                                                             dispatcher, fake_twilio):
    from .builders import release_date

    fri = datetime(2026, 11, 27, tzinfo=UTC).date()
    apply(engine, sms_settings, clock(), release_date(PN, clock(), fri),
          contact(PN, clock(), MOBILE),
          appointment(PN, clock(), "ap1", when=datetime(2026, 11, 27, 14, 0, tzinfo=UTC),
                      place="Probation office, 1 High St", with_whom="Sam"))
    assert set(reminders(engine, PN)) == {k("welcome", None), k("day_of_release"),
                                          k("hours_before")}
    clock.set(datetime(2026, 11, 27, 8, 0, tzinfo=UTC))
    assert dispatcher.run_once().deferred == 2  # still inside: nothing to a person in custody
    clock.set(datetime(2026, 11, 27, 10, 30, tzinfo=UTC))
    apply(engine, sms_settings, clock(), released(PN, clock()))
    assert dispatcher.run_once().sent == 2
    welcome, release = (m["body"] for m in fake_twilio.created())
    assert welcome.startswith("Hello")
    assert release == ("Welcome back. First, your appointment: Fri 27 Nov at 14:00 at office, "
                       "1 High St. Ask for Sam. Reply C to confirm. Reply STOP to stop texts.")
    clock.set(datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    assert dispatcher.run_once().sent == 1


def test_logs_never_hold_phone_numbers(engine, sms_settings, clock, dispatcher, fake_twilio,
                                       caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    released_person(engine, sms_settings, clock)
    apply(engine, sms_settings, clock(), contact(PN2, clock(), "020 7946 0000"))
    fake_twilio.fail_next(429)
    dispatcher.run_once()
    clock.advance(minutes=1)
    dispatcher.run_once()
    fake_twilio.error_for[MOBILE] = 21610
    clock.set(datetime(2026, 11, 24, 18, 0, tzinfo=UTC))
    dispatcher.run_once()
    ours = [r.getMessage() for r in caplog.records
            if r.name.startswith(("consumers", "scheduler"))]
    assert any(PN in m for m in ours)  # the logs do say whom, by prison number
    for number in ("7400123456", "7400 123456", "7946 0000", "79460000"):
        assert not any(number in m for m in ours), number


def test_moved_or_cancelled_after_being_told(engine, sms_settings, clock, dispatcher,
                                             fake_twilio):
    released_person(engine, sms_settings, clock)
    clock.set(datetime(2026, 11, 24, 18, 0, tzinfo=UTC))
    assert dispatcher.run_once().sent == 2  # welcome, then the evening before (for Wed 10:00)
    clock.set(datetime(2026, 11, 24, 19, 0, tzinfo=UTC))
    thu_14 = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    apply(engine, sms_settings, clock(), appointment(PN, clock(), "ap1", "moved", when=thu_14))
    rows = reminders(engine, PN)
    assert rows[k("changed@20261126T1400")].state == "scheduled"
    assert rows[k("evening_before")].state == "sent"  # never re-sent for the new time
    assert rows[k("hours_before")].send_at.replace(tzinfo=UTC) == datetime(
        2026, 11, 26, 12, 0, tzinfo=UTC)
    assert dispatcher.run_once().sent == 1
    assert fake_twilio.created()[-1]["body"].startswith(
        "Change: your appointment is now Thu 26 Nov at 14:00 at Jobcentre Plus, 1 High St.")
    # Replanning again tells nothing new; a cancellation is told once.
    apply(engine, sms_settings, clock(), contact(PN, clock(), MOBILE))
    assert dispatcher.run_once().sent == 0
    apply(engine, sms_settings, clock(), appointment(PN, clock(), "ap1", "cancelled"))
    assert dispatcher.run_once().sent == 1
    assert fake_twilio.created()[-1]["body"].startswith(
        "Your appointment on Thu 26 Nov at 14:00 is cancelled.")
    assert states(engine, PN)[k("hours_before")] == "cancelled"
    clock.advance(days=3)
    assert dispatcher.run_once().sent == 0
    assert len(fake_twilio.created()) == 4
