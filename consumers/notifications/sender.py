"""Where texts go: Twilio, or (with no account configured) an outbox table and the log.

Pointing the real ``twilio`` library at another server: ``twilio.rest.Client`` builds each URL
from its domain objects (``client.api`` is a :class:`twilio.base.domain.Domain` whose public
``base_url`` starts as ``https://api.twilio.com``; ``Domain.absolute_url`` joins it with the
resource path, and ``ClientBase.get_hostname`` only rewrites hosts when ``edge``/``region`` are
set). So ``client.api.base_url = settings.twilio_base_url`` sends every Messages call to a local
Twilio-compatible server, with the library's own request building, auth, JSON parsing and
:class:`~twilio.base.exceptions.TwilioRestException` mapping unchanged. ``edge``/``region``
cannot do this (they only insert labels into ``*.twilio.com`` host names), and a custom
``http_client`` would replace the transport we want to exercise. We also pass ``environment={}``
so the client never reads ``TWILIO_*`` variables: configuration comes only from Settings.

Idempotency: Twilio's Messages API takes no idempotency key, so the stable hint we pass is the
reminder id in the status-callback URL (``?rid=<id>``). Twilio echoes it on every callback, and
after a crash :meth:`SmsBackend.find_sent` can find a message by recipient, body and time.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlencode

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from infra.config import Settings
from infra.models.columns import as_utc
from infra.models.messages import OutboxMessage

log = logging.getLogger(__name__)

#: Twilio errors that will not get better by retrying, and what they mean for us.
INVALID_NUMBER = 21211
UNSUBSCRIBED = 21610
NOT_MOBILE = 21614
PERMANENT_CODES = {INVALID_NUMBER, UNSUBSCRIBED, NOT_MOBILE, 21408, 21612}


@dataclass(frozen=True)
class SendRequest:
    reminder_id: str
    to: str
    body: str
    prison_number: str | None = None


@dataclass(frozen=True)
class SendResult:
    sid: str
    status: str


#: Kinds of send failure (``SendError.kind``), counted in dispatch reports and logs.
TIMEOUT = "timeout"            # no answer in time: the request may or may not have arrived
UNREACHABLE = "unreachable"    # could not connect (or the connection broke) before an answer
THROTTLED = "throttled"        # HTTP 429
SERVER_ERROR = "server_error"  # HTTP 5xx
REJECTED = "rejected"          # any other HTTP error (4xx): permanent
CONFIG = "config"              # our configuration is incomplete


class SendError(Exception):
    """A send that failed; ``transient`` ones are retried with backoff. ``kind`` is one of the
    module's failure kinds; ``kind`` is derived from ``http_status`` when not given."""

    def __init__(self, message: str, *, transient: bool, code: int | None = None,
                 http_status: int | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.transient, self.code, self.http_status = transient, code, http_status
        self.kind = kind or (http_kind(http_status) if http_status is not None else UNREACHABLE)

    @property
    def may_have_arrived(self) -> bool:
        """Whether Twilio may have taken the message despite the error: a timeout, a broken
        connection, or a 5xx (the server may fail after storing it). Only a 429 or another 4xx
        answer says for certain that nothing was sent."""
        return self.kind in (TIMEOUT, UNREACHABLE, SERVER_ERROR)


def http_kind(status: int) -> str:
    return THROTTLED if status == 429 else SERVER_ERROR if status >= 500 else REJECTED


def _network_error(exc: OSError, what: str) -> SendError:
    """A requests/urllib3 failure (all OSErrors) as a transient SendError of the right kind."""
    import requests

    timeout = isinstance(exc, requests.Timeout | TimeoutError)
    return SendError(f"twilio {'timed out' if timeout else 'unreachable'}{what}: "
                     f"{type(exc).__name__}", transient=True,
                     kind=TIMEOUT if timeout else UNREACHABLE)


class SmsBackend(Protocol):
    name: str

    def send(self, request: SendRequest) -> SendResult: ...

    def lookup(self, sid: str) -> SendResult | None:
        """The message with this SID, or None if the provider has no such message."""
        ...

    def find_sent(self, request: SendRequest, since: datetime) -> SendResult | None:
        """A message this request already produced (after a crash, before its SID was saved)."""
        ...


def status_callback_url(settings: Settings, reminder_id: str) -> str:
    return f"{settings.hub_public_url.rstrip('/')}/twilio/status?{urlencode({'rid': reminder_id})}"


class TwilioBackend:
    name = "twilio"

    def __init__(self, settings: Settings) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise ValueError("TwilioBackend needs twilio_account_sid and twilio_auth_token")
        self.settings = settings
        self.client = Client(
            settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
            environment={},
            http_client=TwilioHttpClient(timeout=settings.twilio_timeout_seconds),
        )
        if settings.twilio_base_url:
            self.client.api.base_url = settings.twilio_base_url.rstrip("/")

    def _sender(self) -> dict[str, str]:
        if self.settings.twilio_messaging_service_sid:
            return {"messaging_service_sid": self.settings.twilio_messaging_service_sid}
        if self.settings.twilio_from_number:
            return {"from_": self.settings.twilio_from_number}
        raise SendError("no twilio_from_number or twilio_messaging_service_sid", transient=False,
                        kind=CONFIG)

    def send(self, request: SendRequest) -> SendResult:
        from twilio.base.exceptions import TwilioRestException

        try:
            msg = self.client.messages.create(
                to=request.to, body=request.body,
                status_callback=status_callback_url(self.settings, request.reminder_id),
                **self._sender(),
            )
        except TwilioRestException as exc:
            transient = exc.status == 429 or exc.status >= 500
            raise SendError(f"twilio {exc.status} code {exc.code}", transient=transient,
                            code=exc.code, http_status=exc.status) from None
        except OSError as exc:  # requests' timeouts and connection errors are OSErrors
            raise _network_error(exc, "") from None
        return SendResult(sid=str(msg.sid), status=str(msg.status))

    # Lookups raise transient SendErrors that carry no ``http_status``: a failed lookup says
    # nothing about whether an earlier send arrived.

    def lookup(self, sid: str) -> SendResult | None:
        from twilio.base.exceptions import TwilioRestException

        try:
            msg = self.client.messages(sid).fetch()
        except TwilioRestException as exc:
            if exc.status == 404:
                return None
            raise SendError(f"twilio {exc.status} on lookup", transient=True,
                            kind=http_kind(exc.status)) from None
        except OSError as exc:
            raise _network_error(exc, " on lookup") from None
        return SendResult(sid=str(msg.sid), status=str(msg.status))

    def find_sent(self, request: SendRequest, since: datetime) -> SendResult | None:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        try:
            recent = self.client.messages.list(to=request.to, limit=50)
        except TwilioRestException as exc:
            raise SendError(f"twilio {exc.status} on list", transient=True,
                            kind=http_kind(exc.status)) from None
        except TwilioException as exc:
            # A list page answered with an error is a plain TwilioException("Unable to fetch
            # page", response) in the twilio library, not a TwilioRestException.
            status = getattr(exc.args[1] if len(exc.args) > 1 else None, "status_code", 500)
            raise SendError(f"twilio {status} on list", transient=True,
                            kind=http_kind(int(status))) from None
        except OSError as exc:
            raise _network_error(exc, " on list") from None
        floor = since - timedelta(minutes=5)  # clocks differ
        for msg in recent:
            created = msg.date_created
            if msg.body == request.body and (created is None or as_utc(created) >= floor):
                return SendResult(sid=str(msg.sid), status=str(msg.status))
        return None


class OutboxBackend:
    """No credentials: every message is stored in ``sms_outbox`` and logged without the number."""

    name = "outbox"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def send(self, request: SendRequest) -> SendResult:
        sid = "OB" + uuid.uuid4().hex
        with Session(self.engine) as session:
            session.add(OutboxMessage(sid=sid, reminder_id=request.reminder_id,
                                      prison_number=request.prison_number, to_e164=request.to,
                                      body=request.body, created_at=datetime.now(UTC)))
            session.commit()
        log.info("outbox: message %s to person %s", sid, request.prison_number or "(staff)")
        return SendResult(sid=sid, status="sent")

    def lookup(self, sid: str) -> SendResult | None:
        with Session(self.engine) as session:
            row = session.get(OutboxMessage, sid)
        return SendResult(sid, "sent") if row else None

    def find_sent(self, request: SendRequest, since: datetime) -> SendResult | None:
        with Session(self.engine) as session:
            row = session.exec(select(OutboxMessage).where(
                OutboxMessage.reminder_id == request.reminder_id)).first()
        return SendResult(row.sid, "sent") if row else None


def make_backend(settings: Settings, engine: Engine) -> SmsBackend:
    """Twilio when an account is configured, else the outbox (so ``ttg up`` needs no account)."""
    if settings.twilio_account_sid and settings.twilio_auth_token and (
        settings.twilio_from_number or settings.twilio_messaging_service_sid
    ):
        return TwilioBackend(settings)
    return OutboxBackend(engine)
