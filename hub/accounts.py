"""Users, passwords, API tokens and sessions.

Passwords are argon2id hashes (argon2-cffi, rehashed on sign-in when its parameters change);
API tokens and session ids are 256-bit random strings stored only as SHA-256 digests.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from infra.database import session_scope
from infra.models.access import ApiToken, HubSession, HubUser
from infra.models.columns import as_utc
from infra.models.hubs import Hub, Staff
from schemas.common import StaffRole

_hasher = PasswordHasher()
#: Verified against when a username is unknown, so timing does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
TOKEN_PREFIX = "ttg_"


class AccountError(ValueError):
    """The account change is not allowed; the message says why."""


@dataclass(frozen=True)
class Principal:
    """The signed-in user as requests see them."""

    user_id: int
    username: str
    name: str
    hub_code: str
    role: StaffRole
    staff_id: str | None
    channel: str  # "page" or "api"

    @property
    def actor(self) -> str:
        return f"user:{self.username}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def principal_of(user: HubUser, channel: str) -> Principal:
    assert user.id is not None
    return Principal(user.id, user.username, user.name, user.hub_code, StaffRole(user.role),
                     user.staff_id, channel)


def add_user(
    engine: Engine, *, username: str, name: str, hub_code: str, role: StaffRole,
    password: str | None, staff_id: str | None, now: datetime,
) -> HubUser:
    if password is not None and len(password) < 10:
        raise AccountError("passwords need at least 10 characters")
    with session_scope(engine) as session:
        if session.get(Hub, hub_code) is None:
            raise AccountError(f"no hub {hub_code!r}; load the hub directory first")
        if session.exec(select(HubUser).where(HubUser.username == username)).first():
            raise AccountError(f"user {username!r} already exists")
        if staff_id is not None:
            staff = session.get(Staff, staff_id)
            if staff is None:
                session.add(Staff(staff_id=staff_id, hub_code=hub_code, name=name, role=role.value))
                session.flush()  # the user row refers to it
            elif staff.hub_code != hub_code:
                raise AccountError(f"staff {staff_id!r} belongs to another hub")
        user = HubUser(username=username, name=name, hub_code=hub_code, role=role.value,
                       staff_id=staff_id, active=True, created_at=now,
                       password_hash=_hasher.hash(password) if password else None)
        session.add(user)
        session.flush()
        session.refresh(user)
        return user


def authenticate(engine: Engine, username: str, password: str) -> HubUser | None:
    with session_scope(engine) as session:
        user = session.exec(select(HubUser).where(HubUser.username == username)).first()
        if user is None or not user.active or not user.password_hash:
            with contextlib.suppress(VerificationError):
                _hasher.verify(_DUMMY_HASH, password)
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
            session.add(user)
        return user


def issue_token(engine: Engine, username: str, label: str, now: datetime) -> str:
    """A new API token for ``username``; the caller shows it once, we keep only its digest."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with session_scope(engine) as session:
        user = session.exec(select(HubUser).where(HubUser.username == username)).first()
        if user is None or user.id is None:
            raise AccountError(f"no user {username!r}")
        session.add(ApiToken(user_id=user.id, token_hash=digest(token), label=label[:100],
                             created_at=now))
    return token


def user_for_token(session: Session, token: str, now: datetime) -> HubUser | None:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == digest(token))).first()
    if row is None or row.revoked:
        return None
    user = session.get(HubUser, row.user_id)
    if user is None or not user.active:
        return None
    row.last_used_at = now
    session.add(row)
    return user


def start_session(engine: Engine, user_id: int, now: datetime, max_age_seconds: int) -> str:
    sid = secrets.token_urlsafe(32)
    with session_scope(engine) as session:
        session.add(HubSession(id_hash=digest(sid), user_id=user_id, created_at=now,
                               expires_at=now + timedelta(seconds=max_age_seconds)))
    return sid


def user_for_session(session: Session, sid: str, now: datetime) -> HubUser | None:
    row = session.get(HubSession, digest(sid))
    if row is None or row.revoked or as_utc(row.expires_at) <= now:  # type: ignore[operator]
        return None
    user = session.get(HubUser, row.user_id)
    return user if user is not None and user.active else None


def end_session(engine: Engine, sid: str) -> None:
    with session_scope(engine) as session:
        row = session.get(HubSession, digest(sid))
        if row is not None:
            row.revoked = True
            session.add(row)
