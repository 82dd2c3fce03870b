"""Shared fixtures: a real embedded broker, real SQLite and PostgreSQL databases.

Each test gets its own topic prefix and its own database, so tests never see each other's data.
PostgreSQL tests run whenever a server answers at ``TTG_TEST_POSTGRES_URL`` (default: the local
server, database ``test``) and are skipped with that reason otherwise.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from infra.broker import EmbeddedBroker
from infra.config import Settings
from infra.database import make_engine, migrate

PG_ADMIN_URL = os.environ.get(
    "TTG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path) -> Settings:
    """Settings for one test: the session's broker, a private topic prefix, a SQLite file."""
    return Settings(
        _env_file=None,
        environment="test",
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        topic_partitions=3,
        kafka_session_timeout_ms=2_000,
        database_url=f"sqlite:///{tmp_path / 'ttg.db'}",
    )


def _postgres_reachable() -> str | None:
    try:
        eng = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(exc).__name__}"


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    reason = _postgres_reachable()
    if reason and os.environ.get("TTG_REQUIRE_POSTGRES"):
        pytest.fail(reason + " (TTG_REQUIRE_POSTGRES is set, so this is an error, not a skip)")
    if reason:
        pytest.skip(reason)
    eng = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield eng
    eng.dispose()


@pytest.fixture
def postgres_url(postgres_admin: Engine) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"ttg_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with postgres_admin.connect() as conn:
        conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
        ), {"n": name})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Run a test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ttg.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database on each backend."""
    eng = make_engine(database_url)
    migrate(eng)
    yield eng
    eng.dispose()
