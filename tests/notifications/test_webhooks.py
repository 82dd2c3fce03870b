"""Twilio webhooks: signatures, status callbacks in any order, inbound STOP / START / HELP / C."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from consumers.notifications.dispatch import Dispatcher
from consumers.notifications.sender import TwilioBackend
from consumers.notifications.webhooks import make_router
from infra.models.messages import (
    InboundMessage,
    NotificationIssue,
    NotifyAppointment,
    NotifyPerson,
    ReminderHistory,
)

from .builders import PN, reminders, states
from .conftest import MOBILE
from .test_dispatch import k, released_person

INBOUND = "https://hub.example.test/twilio/inbound"


@pytest.fixture
def client(engine, sms_settings, clock):
    app = FastAPI()
    app.include_router(make_router(sms_settings, engine, clock))
    return TestClient(app)


def _post(client, url: str, form: dict[str, str], signature: str | None):
    path = url.replace("https://hub.example.test", "")
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return client.post(path, data=form, headers=headers)


def _sent_welcome(engine, sms_settings, clock, fake_twilio):
    released_person(engine, sms_settings, clock)
    Dispatcher(engine, TwilioBackend(sms_settings), sms_settings, clock).run_once()
    [msg] = fake_twilio.created()
    return msg["sid"]


def test_unsigned_or_wrongly_signed_requests_are_refused(client, engine, sms_settings, clock,
                                                         fake_twilio):
    sid = _sent_welcome(engine, sms_settings, clock, fake_twilio)
    url, form, signature = fake_twilio.status_callback(sid, "delivered")
    assert _post(client, url, form, None).status_code == 403
    assert _post(client, url, form, "bm90IGEgc2lnbmF0dXJl").status_code == 403
    tampered = {**form, "MessageStatus": "failed"}
    assert _post(client, url, tampered, signature).status_code == 403
    params, sig = fake_twilio.inbound(INBOUND, MOBILE, "STOP")
    assert _post(client, INBOUND, params, None).status_code == 403
    with Session(engine) as s:
        assert s.get(NotifyPerson, PN).opted_out is False
    assert reminders(engine, PN)[k("welcome", None)].delivery_status == "queued"
    assert _post(client, url, form, signature).status_code == 204
    assert reminders(engine, PN)[k("welcome", None)].delivery_status == "delivered"


def test_status_callbacks_never_move_backwards(client, engine, sms_settings, clock, fake_twilio):
    sid = _sent_welcome(engine, sms_settings, clock, fake_twilio)
    for status in ("sent", "delivered", "sent", "queued", "delivered"):
        url, form, sig = fake_twilio.status_callback(sid, status)
        assert _post(client, url, form, sig).status_code == 204
    row = reminders(engine, PN)[k("welcome", None)]
    assert row.delivery_status == "delivered" and row.state == "sent"
    with Session(engine) as s:
        details = [h.detail for h in s.exec(select(ReminderHistory).where(
            ReminderHistory.reminder_id == row.id).order_by(ReminderHistory.id)).all()]
    assert details[-5:] == ["status sent", "status delivered", "ignored sent (already delivered)",
                            "ignored queued (already delivered)",
                            "ignored delivered (already delivered)"]


def test_undelivered_21610_callback_opts_out(client, engine, sms_settings, clock, fake_twilio):
    sid = _sent_welcome(engine, sms_settings, clock, fake_twilio)
    url, form, sig = fake_twilio.status_callback(sid, "undelivered", error_code=21610)
    assert _post(client, url, form, sig).status_code == 204
    with Session(engine) as s:
        assert s.get(NotifyPerson, PN).opted_out is True
    assert states(engine, PN)[k("evening_before")] == "cancelled"


def test_callback_before_our_commit_gives_the_sid(client, engine, sms_settings, clock,
                                                  fake_twilio):
    """Crash after Twilio accepted the text: the callback (with rid) records the SID, and the
    restart confirms the send by SID instead of re-sending."""
    from .test_dispatch import Crash, CrashAfterHttp

    released_person(engine, sms_settings, clock)
    with pytest.raises(Crash):
        Dispatcher(engine, CrashAfterHttp(sms_settings), sms_settings, clock).run_once()
    [msg] = fake_twilio.created()
    url, form, sig = fake_twilio.status_callback(msg["sid"], "sent")
    assert _post(client, url, form, sig).status_code == 204
    row = reminders(engine, PN)[k("welcome", None)]
    assert row.state == "sending" and row.twilio_sid == msg["sid"]
    clock.advance(minutes=5)
    assert Dispatcher(engine, TwilioBackend(sms_settings), sms_settings, clock).run_once().sent
    assert len(fake_twilio.creates()) == 1
    assert reminders(engine, PN)[k("welcome", None)].state == "sent"


def test_stop_then_start(client, engine, sms_settings, clock, fake_twilio):
    _sent_welcome(engine, sms_settings, clock, fake_twilio)
    params, sig = fake_twilio.inbound(INBOUND, "07400 123456", " stop ")
    r = _post(client, INBOUND, params, sig)
    assert r.status_code == 200 and "<Message>" not in r.text  # Twilio confirms STOP itself
    with Session(engine) as s:
        assert s.get(NotifyPerson, PN).opted_out is True
    assert states(engine, PN)[k("evening_before")] == "cancelled"
    assert _post(client, INBOUND, params, sig).status_code == 200  # a retry is harmless
    params, sig = fake_twilio.inbound(INBOUND, MOBILE, "START")
    assert _post(client, INBOUND, params, sig).status_code == 200
    assert states(engine, PN)[k("evening_before")] == "scheduled"
    clock.set(clock() + timedelta(days=1, hours=8))
    Dispatcher(engine, TwilioBackend(sms_settings), sms_settings, clock).run_once()
    assert len(fake_twilio.created()) == 2


def test_help_and_confirm_replies(client, engine, sms_settings, clock, fake_twilio):
    _sent_welcome(engine, sms_settings, clock, fake_twilio)
    params, sig = fake_twilio.inbound(INBOUND, MOBILE, "HELP")
    r = _post(client, INBOUND, params, sig)
    assert "<Message>These texts remind you" in r.text
    params, sig = fake_twilio.inbound(INBOUND, MOBILE, "C")
    r = _post(client, INBOUND, params, sig)
    assert "confirmed: Wed 25 Nov at 10:00" in r.text
    with Session(engine) as s:
        appt = s.get(NotifyAppointment, (PN, "ap1"))
        assert appt.confirmed_at.replace(tzinfo=UTC) == clock()
        assert s.exec(select(NotificationIssue)).all() == []


def test_other_reply_becomes_an_issue(client, engine, sms_settings, clock, fake_twilio):
    _sent_welcome(engine, sms_settings, clock, fake_twilio)
    params, sig = fake_twilio.inbound(INBOUND, MOBILE, "running late sorry")
    assert _post(client, INBOUND, params, sig).status_code == 200
    with Session(engine) as s:
        [issue] = s.exec(select(NotificationIssue)).all()
        assert issue.kind == "text_reply" and issue.prison_number == PN
        assert "running late" not in issue.reason  # the reply itself stays in sms_inbound
        assert s.get(InboundMessage, params["MessageSid"]).body == "running late sorry"
