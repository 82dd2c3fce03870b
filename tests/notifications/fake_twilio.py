"""A small Twilio-compatible HTTP server for tests (the real ``twilio`` library talks to it).

Implements what we use of the 2010-04-01 Messages API:
- ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (create; basic auth checked),
- ``GET  /2010-04-01/Accounts/{sid}/Messages/{MessageSid}.json`` (fetch),
- ``GET  /2010-04-01/Accounts/{sid}/Messages.json?To=…`` (list),
answering with Twilio-shaped JSON, or Twilio error JSON when told to (``fail_next`` for 429/500,
``error_for[number] = 21211 / 21610`` for per-number permanent errors). Every request is recorded.
It can also build signed status callbacks and inbound messages for our webhooks.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
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
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
        if method == "POST" and url.path == prefix + ".json":
            return self._create(h, form)
        if method == "GET" and url.path == prefix + ".json":
            to = parse_qs(url.query).get("To", [None])[0]
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
        return self._reply(h, 201, msg)

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
