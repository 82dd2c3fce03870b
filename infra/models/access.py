"""Who may use the hub app: users and their hub and role, API tokens, sessions, and the audit log
of every view of a person's record.

Secrets are never stored: passwords as argon2 hashes, API tokens and session ids as SHA-256
digests (they are long random strings, so a fast digest is enough to make a leaked table useless).
Times are UTC; read them through :func:`infra.models.tasks.as_utc` (SQLite returns them naive).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from infra.models.columns import ts as _ts


class HubUser(SQLModel, table=True):
    """A person who signs in. One hub, one role: what they see is scoped by both."""

    __tablename__ = "hub_users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, max_length=64)
    name: str = Field(max_length=200)
    hub_code: str = Field(foreign_key="hubs.code", index=True, max_length=32)
    role: str = Field(max_length=32)
    # The directory entry whose tasks are "mine"; optional for read-only or integration users.
    staff_id: str | None = Field(default=None, foreign_key="staff.staff_id", max_length=64)
    password_hash: str | None = Field(default=None, max_length=255)
    active: bool = True
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class ApiToken(SQLModel, table=True):
    __tablename__ = "hub_api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="hub_users.id", index=True)
    token_hash: str = Field(unique=True, max_length=64)
    label: str = Field(default="", max_length=100)
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    last_used_at: datetime | None = Field(default=None, sa_column=_ts())
    revoked: bool = False


class HubSession(SQLModel, table=True):
    """A signed-in browser. The cookie carries the id; the row decides whether it still counts."""

    __tablename__ = "hub_sessions"

    id_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="hub_users.id", index=True)
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    expires_at: datetime = Field(sa_column=_ts(nullable=False))
    revoked: bool = False


class AuditView(SQLModel, table=True):
    """One view of one person's record: who, when, which person, through which channel."""

    __tablename__ = "hub_audit_views"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_ts(nullable=False, index=True))
    user_id: int = Field(foreign_key="hub_users.id", index=True)
    username: str = Field(max_length=64)
    hub_code: str = Field(max_length=32)
    role: str = Field(max_length=32)
    prison_number: str = Field(index=True, max_length=7)
    channel: str = Field(max_length=8)  # "page" or "api"
    resource: str = Field(max_length=200)
