"""Twilio webhooks: delivery-status callbacks and inbound replies, as a FastAPI router.

Mount with ``app.include_router(make_router(settings, engine))`` (the hub app owns the server).
Every request must carry a valid ``X-Twilio-Signature`` for ``settings.hub_public_url`` + path +
query (the URL Twilio called, which behind a proxy differs from what the app sees); unsigned or
wrongly signed requests get 403. Both endpoints are idempotent: Twilio retries, and callbacks
arrive duplicated and out of order, so a delivery status only ever moves forward.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from consumers.notifications import store, templates
from consumers.notifications.dispatch import better_status
from consumers.notifications.issues import default_issue_sink
from consumers.notifications.phones import try_normalise
from consumers.notifications.planner import Policy, first_upcoming
from infra.config import Settings
from infra.models.messages import (
    InboundMessage,
    NotifyAppointment,
    NotifyPerson,
    Reminder,
)

log = logging.getLogger(__name__)

STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
START_WORDS = {"START", "UNSTOP"}
HELP_WORDS = {"HELP", "INFO"}
CONFIRM_WORDS = {"C", "YES", "Y", "CONFIRM"}


def classify(body: str) -> str:
    word = body.strip().strip(".!").upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    if word in CONFIRM_WORDS:
        return "confirm"
    return "other"


def make_router(settings: Settings, engine: Engine,
                clock: Callable[[], datetime] | None = None) -> APIRouter:
    router = APIRouter(prefix="/twilio", tags=["twilio"])
    now_fn = clock or (lambda: datetime.now(UTC))
    policy = Policy.from_settings(settings)
    issue_sink = default_issue_sink(engine)

    async def verified_form(request: Request) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.form()).items()}
        signature = request.headers.get("X-Twilio-Signature")
        token = settings.twilio_auth_token
        url = settings.hub_public_url.rstrip("/") + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        if not signature or token is None or not RequestValidator(
            token.get_secret_value()
        ).validate(url, form, signature):
            log.warning("refused unsigned or wrongly signed Twilio request to %s",
                        request.url.path)
            raise HTTPException(status_code=403, detail="invalid Twilio signature")
        return form

    @router.post("/status", status_code=204)
    async def status(request: Request) -> Response:
        form = await verified_form(request)
        sid, new = form.get("MessageSid"), form.get("MessageStatus")
        rid = request.query_params.get("rid")
        now = now_fn()
        with Session(engine) as session:
            row = session.get(Reminder, rid) if rid else None
            if row is None and sid:
                row = session.exec(select(Reminder).where(Reminder.twilio_sid == sid)).first()
            if row is None:
                return Response(status_code=204)  # not ours (or long gone): nothing to do
            if row.twilio_sid is None and sid:
                row.twilio_sid = sid  # the callback can beat our own commit after a crash
            if better_status(row.delivery_status, new):
                row.delivery_status, row.updated_at = new, now
                store.history(session, row, now, "callback", f"status {new}")
            else:
                store.history(session, row, now, "callback",
                              f"ignored {new} (already {row.delivery_status})")
            error = form.get("ErrorCode")
            if new in ("failed", "undelivered") and error == "21610" and row.prison_number:
                person = session.get(NotifyPerson, row.prison_number)
                if person is not None:
                    person.opted_out, person.updated_at = True, now
                    session.flush()
                    store.replan(session, row.prison_number, now, policy, "unsubscribed (21610)")
            session.commit()
        return Response(status_code=204)

    @router.post("/inbound")
    async def inbound(request: Request) -> Response:
        form = await verified_form(request)
        sid = form.get("MessageSid", "")
        body = form.get("Body", "")
        sender = try_normalise(form.get("From"))
        action = classify(body)
        now = now_fn()
        reply: str | None = None
        with Session(engine) as session:
            if session.get(InboundMessage, sid) is not None:
                return _twiml(None)  # Twilio retried: already handled
            people = (session.exec(select(NotifyPerson).where(
                NotifyPerson.mobile_e164 == sender)).all() if sender else [])
            pn = people[0].prison_number if len(people) == 1 else None
            if not people:
                action = f"{action}:unknown_sender"
            elif action == "stop":
                for p in people:  # a shared phone asking to stop stops for everyone on it
                    p.opted_out, p.updated_at = True, now
            elif action == "start":
                for p in people:
                    p.opted_out, p.updated_at = False, now
            elif action == "help":
                reply = templates.help_reply()
            elif action == "confirm" and pn is not None:
                facts = store.facts_for(session, pn)
                nxt = first_upcoming(facts.appointments, now) if facts else None
                if nxt is not None:
                    appt = session.get(NotifyAppointment, (pn, nxt.appointment_id))
                    if appt is not None:
                        appt.confirmed_at = now
                    reply = templates.confirmed_reply(
                        templates.AppointmentText(nxt.kind, nxt.at, nxt.place, nxt.with_whom),  # type: ignore[arg-type]
                        settings.timezone)
                else:
                    reply = templates.confirmed_reply(None, settings.timezone)
            else:
                store.record_issue(
                    session, key=f"reply|{sid}", prison_number=pn, kind="text_reply", now=now,
                    reason="The person replied to a text; read the reply in the hub and "
                    "answer them." + ("" if pn else " (number shared by more than one person)"),
                    sink=issue_sink,
                )
            session.add(InboundMessage(sid=sid, prison_number=pn, body=body[:1600],
                                       action=action, received_at=now))
            session.flush()
            if action in ("stop", "start"):
                for p in people:
                    store.replan(session, p.prison_number, now, policy, f"reply {action}")
            session.commit()
        log.info("inbound text %s from person %s: %s", sid, pn or "(unknown/shared)", action)
        return _twiml(reply)

    return router


def _twiml(reply: str | None) -> Response:
    resp = MessagingResponse()
    if reply:
        resp.message(reply)
    return Response(content=str(resp), media_type="application/xml")
