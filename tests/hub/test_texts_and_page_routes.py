"""Texts and their delivery status on the person record and in the reports; every page route
refuses a browser that has not signed in."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi.routing import APIRoute
from hubworld import T0, World
from pydantic import SecretStr
from sqlmodel import select

from hub import pages
from infra.database import session_scope
from infra.models.access import AuditView
from infra.models.messages import Reminder


def _text(world: World, pn: str, status: str | None, sent: bool = True) -> str:
    rid = str(uuid.uuid4())
    with session_scope(world.engine) as s:
        s.add(Reminder(id=rid, idempotency_key=f"k-{rid}", prison_number=pn, kind="release_day",
                       state="sent" if sent else "scheduled", send_at=T0 - timedelta(hours=3),
                       sent_at=T0 - timedelta(hours=3) if sent else None, delivery_status=status,
                       body="Your appointment is at 2pm at the probation office.",
                       to_e164="+447700900123", created_at=T0 - timedelta(days=1),
                       updated_at=T0 - timedelta(hours=3)))
    return rid


def test_texts_with_delivery_status(world: World) -> None:
    delivered = _text(world, "A1234BC", "delivered")
    _text(world, "A1234BC", "undelivered")
    _text(world, "A1234BC", None, sent=False)
    _text(world, "C3456DE", "delivered")  # NORF's person
    texts = world.client.get("/api/v1/persons/A1234BC/texts", headers=world.api("hana")).json()
    assert len(texts) == 3
    assert {t["delivery_status"] for t in texts} == {"delivered", "undelivered", None}
    assert delivered in {t["id"] for t in texts}
    body = world.client.get("/api/v1/persons/A1234BC/texts", headers=world.api("hana")).text
    assert "+447700900123" not in body  # the number is never shown
    c = world.sign_in("hana")
    page = c.get("/persons/A1234BC").text
    assert "delivered" in page and "undelivered" in page and "+447700900123" not in page

    rep = world.client.get("/api/v1/reports?start=2026-01-01&end=2026-01-31&period=all",
                           headers=world.api("hana")).json()
    assert rep["rows"][0]["texts_delivered"] == {"numerator": 1, "denominator": 2,
                                                 "percent": 50.0}


def test_every_page_route_needs_a_session(world: World) -> None:
    public = {"/signin", "/"}
    checked = 0
    for route in pages.router.routes:
        if not isinstance(route, APIRoute) or route.path in public:
            continue
        path = route.path.replace("{prison_number}", "A1234BC").replace(
            "{task_id}", world.tasks["cambs_mine"])
        for method in route.methods:
            r = world.client.request(method, path, follow_redirects=False)
            if method == "GET" and route.path == "/person":
                assert r.status_code == 303  # a search redirect; the target page checks
                continue
            assert r.status_code in (303, 403), (method, path, r.status_code)
            if r.status_code == 303:
                assert r.headers["location"].startswith("/signin")
            checked += 1
    assert checked >= 9
    with session_scope(world.engine) as s:
        assert s.exec(select(AuditView)).all() == []


def test_twilio_status_callback_is_served_by_the_hub(world: World) -> None:
    """The reminders area's webhooks are mounted under /twilio: a signed delivery callback
    updates the text the person page shows; an unsigned one is refused."""
    from fastapi.testclient import TestClient
    from twilio.request_validator import RequestValidator

    from hub.app import create_app

    rid = _text(world, "A1234BC", "sent")
    settings = world.settings.model_copy(update={
        "twilio_auth_token": SecretStr("twilio-test-token"),
        "hub_public_url": "https://hub.example.test"})
    params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    url = f"https://hub.example.test/twilio/status?rid={rid}"
    signature = RequestValidator("twilio-test-token").compute_signature(url, params)
    with TestClient(create_app(settings, world.engine, clock=world.clock)) as client:
        assert client.post(f"/twilio/status?rid={rid}", data=params).status_code == 403
        r = client.post(f"/twilio/status?rid={rid}", data=params,
                        headers={"X-Twilio-Signature": signature})
        assert r.status_code == 204, r.text
        texts = client.get("/api/v1/persons/A1234BC/texts", headers=world.api("hana")).json()
    assert [t["delivery_status"] for t in texts if t["id"] == rid] == ["delivered"]
