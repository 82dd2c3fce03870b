"""Database engine and sessions: SQLite file by default, PostgreSQL in production.

Tables are SQLModel models imported by :func:`import_models`; the schema is owned by Alembic
migrations (``infra/migrations``), so a running PostgreSQL deployment upgrades in place.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session, SQLModel, create_engine

from infra.config import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: Modules that define tables. Each package adds its own; Alembic and tests import them all.
MODEL_MODULES: tuple[str, ...] = (
    "infra.models",
    "infra.models.hubs",
    "infra.models.tasks",
    "infra.models.access",
    "infra.models.timeline",
    "infra.models.messages",
)


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached or is busy (it will pass), not
    that this piece of work is wrong: refused or dropped connections, pool timeouts, and
    SQLite's "database is locked" (all OperationalError / InterfaceError in SQLAlchemy)."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def import_models() -> type[SQLModel]:
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return SQLModel


def normalise_url(url: str) -> str:
    # psycopg 3 is the driver we ship; accept the bare postgres:// forms people paste.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            # WAL lets the hub read while consumers write; foreign keys are off by default.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def engine_for(settings: Settings) -> Engine:
    return make_engine(settings.database_url)


def migrate(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema up to ``revision`` with Alembic (creates it on an empty database).

    Each area keeps its own migration branch (``branch_labels``), so the default is ``heads``.
    """
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
