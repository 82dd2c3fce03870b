"""Request plumbing: the app's context, database sessions, who is asking, CSRF, the audit log."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.datastructures import FormData

from hub.accounts import Principal, principal_of, user_for_session, user_for_token
from infra.config import Settings
from infra.database import session_scope
from infra.models.access import AuditView
from schemas.outputs import TaskEvent

Clock = Callable[[], datetime]
Publisher = Callable[[TaskEvent], None]


@dataclass
class HubContext:
    settings: Settings
    engine: Engine
    clock: Clock
    publish: Publisher | None = None

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)


class SignInRequired(Exception):
    """A page was asked for without a live session; the app redirects to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def ctx(request: Request) -> HubContext:
    return request.app.state.hub  # type: ignore[no-any-return]


def db(hub: HubContext = Depends(ctx)) -> Iterator[Session]:
    with session_scope(hub.engine) as session:
        yield session


_bearer = HTTPBearer(auto_error=False, description="An API token from `ttg users token`.")


def api_user(
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
    hub: HubContext = Depends(ctx),
) -> Principal:
    """API calls authenticate with a bearer token only: no cookies, so no CSRF exposure."""
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(401, "not signed in", headers={"WWW-Authenticate": "Bearer"})
    with session_scope(hub.engine) as session:
        user = user_for_token(session, creds.credentials, hub.now())
        if user is None:
            raise HTTPException(401, "not signed in", headers={"WWW-Authenticate": "Bearer"})
        return principal_of(user, "api")


def page_user(request: Request, hub: HubContext = Depends(ctx)) -> Principal:
    sid = request.session.get("sid")
    if isinstance(sid, str):
        with session_scope(hub.engine) as session:
            user = user_for_session(session, sid, hub.now())
            if user is not None:
                return principal_of(user, "page")
    request.session.pop("sid", None)
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise SignInRequired(path)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def csrf_form(request: Request) -> FormData:
    """The posted form, once its CSRF token matches the one held in the signed session cookie."""
    form = await request.form()
    expected = request.session.get("csrf")
    got = form.get("csrf_token")
    if not isinstance(expected, str) or not isinstance(got, str) or not hmac.compare_digest(
        expected.encode(), got.encode()
    ):
        raise HTTPException(403, "The form has expired or did not come from this site.")
    return form


def audit(session: Session, who: Principal, prison_number: str, resource: str,
          now: datetime) -> None:
    """Record one view of a person's record in the same transaction that read it."""
    session.add(AuditView(at=now, user_id=who.user_id, username=who.username,
                          hub_code=who.hub_code, role=who.role.value,
                          prison_number=prison_number, channel=who.channel,
                          resource=resource[:200]))


#: A session committed when the endpoint returns, before the response is sent, so an audit row
#: exists by the time the caller sees the record.
DbSession = Annotated[Session, Depends(db, scope="function")]
