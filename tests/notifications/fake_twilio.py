"""A small Twilio-compatible HTTP server for tests (the real ``twilio`` library talks to it).

Implements what we use of the 2010-04-01 Messages API:
- ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (create; basic auth checked),
- ``GET  /2010-04-01/Accounts/{sid}/Messages/{MessageSid}.json`` (fetch),
- ``GET  /2010-04-01/Accounts/{sid}/Messages.json?To=…`` (list),
answering with Twilio-shaped JSON, or Twilio error JSON when told to (``fail_next`` for 429/500,
``error_for[number] = 21211 / 21610`` for per-number permanent errors). Every request is recorded.
It can also build signed status callbacks and inbound messages for our webhooks.

Fault injection for a share of calls (``faults = Faults(...)``, decided per call by a seeded
random generator, counted in ``injected`` as ``"<op>:<kind>"``): answers that come only after
the client's timeout (a create is stored first: Twilio got it, the client does not know), creates
held and then dropped unanswered and unstored, 429s, 5xx, and 5xx after the message was stored.
``sends_per_reminder()`` counts stored messages per reminder id (from the status-callback URL),
the measure of "sent exactly once".
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from twilio.request_validator import RequestValidator

ERRORS = {
    21211: (400, "The 'To' number is not a valid phone number."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number is not a valid mobile number"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
}


@dataclass
class Recorded:
    method: str
    path: str
    form: dict[str, str]
    auth_ok: bool


#: What a fault does, by kind (see :class:`Faults`).
FAULT_KINDS = ("timeout", "timeout_lost", "throttled", "server_error", "server_error_stored")


@dataclass
class Faults:
    """Shares (0..1) of calls that fail, by kind; the rest are answered normally.

    - ``timeout``: the answer comes only after ``delay`` seconds (set it past the client's
      timeout). A create is stored first, so Twilio has the message the client gave up on.
    - ``timeout_lost``: a create is held for ``delay`` and the connection dropped, unanswered
      and unstored (on a lookup: like ``timeout``).
    - ``throttled``: HTTP 429 (code 20429); nothing stored.
    - ``server_error``: HTTP 500 or 503; nothing stored.
    - ``server_error_stored``: a create is stored, then answered 500 (on a lookup: 500).

    ``ops`` limits faults to some calls (``create``, ``list``, ``fetch``).
    ``max_per_recipient`` caps the faults one number ever gets, so that a test about recovery
    is not decided by one text exhausting its attempts by chance.
    """

    timeout: float = 0.0
    timeout_lost: float = 0.0
    throttled: float = 0.0
    server_error: float = 0.0
    server_error_stored: float = 0.0
    delay: float = 2.0
    ops: frozenset[str] = frozenset({"create", "list", "fetch"})
    max_per_recipient: int | None = None
    seed: int = 0

    def pick(self, rng: random.Random) -> str | None:
        roll = rng.random()
        for kind in FAULT_KINDS:
            share = getattr(self, kind)
            if roll < share:
                return kind
            roll -= share
        return None


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-auth-token"
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    error_for: dict[str, int] = field(default_factory=dict)
    _fail_next: list[int] = field(default_factory=list)  # HTTP statuses to answer next creates
    delay_next: float = 0.0
    #: Twilio's clock (``date_created``); tests share their controlled clock with it.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: Failures for a share of calls (None: none).
    faults: Faults | None = None
    #: Faults injected so far, by ``"<op>:<kind>"``.
    injected: Counter[str] = field(default_factory=Counter)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _rng: random.Random | None = None
    _faults_per_recipient: Counter[str] = field(default_factory=Counter)

    # ----------------------------------------------------------------- control

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, *statuses: int) -> None:
        self._fail_next.extend(statuses)

    def created(self) -> list[dict[str, Any]]:
        """Messages accepted, in order."""
        return list(self.messages.values())

    def creates(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def sends_per_reminder(self) -> Counter[str]:
        """Stored messages per reminder id (the ``rid`` of the status-callback URL)."""
        with self._lock:
            callbacks = [m.get("status_callback") or "" for m in self.messages.values()]
        return Counter(parse_qs(urlparse(c).query).get("rid", ["?"])[0] for c in callbacks)

    def injected_total(self) -> int:
        return sum(self.injected.values())

    def start(self) -> FakeTwilio:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self, "POST")

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self, "GET")

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and hung up is part of the tests

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # ----------------------------------------------------------------- HTTP

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length).decode() if length else ""
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        expected = "Basic " + base64.b64encode(
            f"{self.account_sid}:{self.auth_token}".encode()).decode()
        auth_ok = h.headers.get("Authorization") == expected
        with self._lock:
            self.requests.append(Recorded(method, url.path, form, auth_ok))
        prefix = f"/2010-04-01/Accounts/{self.account_sid}/Messages"
        if not auth_ok:
            return self._reply(h, 401, _error(20003, 401, "Authenticate"))
        if self.faults is not None and self._inject(h, method, url, prefix, form):
            return None
        if method == "POST" and url.path == prefix + ".json":
            return self._create(h, form)
        if method == "GET" and url.path == prefix + ".json":
            to = parse_qs(url.query).get("To", [None])[0]
            with self._lock:
                found = [m for m in self.messages.values() if to is None or m["to"] == to]
            return self._reply(h, 200, {
                "messages": list(reversed(found)), "end": max(len(found) - 1, 0),
                "first_page_uri": url.path, "next_page_uri": None, "page": 0,
                "page_size": 50, "previous_page_uri": None, "start": 0, "uri": url.path,
            })
        if method == "GET" and url.path.startswith(prefix + "/") and url.path.endswith(".json"):
            sid = url.path[len(prefix) + 1: -len(".json")]
            if sid in self.messages:
                return self._reply(h, 200, self.messages[sid])
            return self._reply(h, 404, _error(20404, 404, "The requested resource was not found"))
        return self._reply(h, 404, _error(20404, 404, "not found"))

    def _inject(self, h: BaseHTTPRequestHandler, method: str, url: Any, prefix: str,
                form: dict[str, str]) -> bool:
        """Maybe fail this call (see :class:`Faults`); True if it was answered (or dropped)."""
        faults = self.faults
        assert faults is not None
        if method == "POST" and url.path == prefix + ".json":
            op, to = "create", form.get("To", "")
        elif method == "GET" and url.path == prefix + ".json":
            op, to = "list", parse_qs(url.query).get("To", [""])[0]
        elif method == "GET" and url.path.startswith(prefix + "/"):
            sid = url.path[len(prefix) + 1: -len(".json")]
            op, to = "fetch", self.messages.get(sid, {}).get("to", "")
        else:
            return False
        if op not in faults.ops:
            return False
        with self._lock:
            if self._rng is None:
                self._rng = random.Random(faults.seed)
            kind = faults.pick(self._rng)
            if kind is not None and faults.max_per_recipient is not None and (
                    self._faults_per_recipient[to] >= faults.max_per_recipient):
                kind = None
            if kind is None:
                return False
            self._faults_per_recipient[to] += 1
            self.injected[f"{op}:{kind}"] += 1
            status = self._rng.choice((500, 503))
        if kind in ("timeout", "timeout_lost"):
            # A "timeout" create is stored first: Twilio has it; the client will not hear so.
            stored = self._store(form) if op == "create" and kind == "timeout" else None
            time.sleep(faults.delay)
            if op != "create":
                return False  # a lookup: answered normally, too late
            if stored is None:
                h.close_connection = True  # dropped: no answer, nothing stored
                return True
            with contextlib.suppress(OSError):  # the client gave up long ago
                self._reply(h, 201, stored)
            return True
        if kind == "throttled":
            self._reply(h, 429, _error(20429, 429, ERRORS[20429][1]))
            return True
        if kind == "server_error_stored" and op == "create":
            self._store(form)
            status = 500
        self._reply(h, status, _error(20500, status, ERRORS[20500][1]))
        return True

    def _create(self, h: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        if self.delay_next:
            delay, self.delay_next = self.delay_next, 0.0
            time.sleep(delay)
        with self._lock:
            status = self._fail_next.pop(0) if self._fail_next else None
        if status is not None:
            code = 20429 if status == 429 else 20500
            return self._reply(h, status, _error(code, status, ERRORS[code][1]))
        to = form.get("To", "")
        if to in self.error_for:
            code = self.error_for[to]
            http, msg = ERRORS[code]
            return self._reply(h, http, _error(code, http, msg))
        return self._reply(h, 201, self._store(form))

    def _store(self, form: dict[str, str]) -> dict[str, Any]:
        """Accept a message: give it a SID and keep it."""
        to = form.get("To", "")
        sid = "SM" + uuid.uuid4().hex
        now = format_datetime(self.clock().astimezone(UTC), usegmt=True)
        msg = {
            "sid": sid, "account_sid": self.account_sid, "to": to,
            "from": form.get("From"), "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": form.get("Body", ""), "status": "queued", "num_segments": "1",
            "direction": "outbound-api", "api_version": "2010-04-01", "price": None,
            "price_unit": "GBP", "error_code": None, "error_message": None,
            "date_created": now, "date_updated": now, "date_sent": None, "num_media": "0",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            "subresource_uris": {}, "status_callback": form.get("StatusCallback"),
        }
        with self._lock:
            self.messages[sid] = msg
        return msg

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    # ----------------------------------------------------------------- webhooks

    def sign(self, url: str, params: dict[str, str]) -> str:
        return RequestValidator(self.auth_token).compute_signature(url, params)

    def status_callback(self, sid: str, status: str, error_code: int | None = None
                        ) -> tuple[str, dict[str, str], str]:
        """(url, form, signature) of the callback Twilio would post for message ``sid``."""
        msg = self.messages[sid]
        msg["status"] = status
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": self.account_sid,
                  "To": msg["to"], "SmsSid": sid, "SmsStatus": status}
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        url = msg["status_callback"]
        return url, params, self.sign(url, params)

    def inbound(self, url: str, from_: str, body: str, to: str = "+447400000001"
                ) -> tuple[dict[str, str], str]:
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": self.account_sid,
                  "From": from_, "To": to, "Body": body, "NumMedia": "0"}
        return params, self.sign(url, params)


def _error(code: int, status: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}
