"""The tasks migration branch: builds the schema on an empty database, matches the models, and
downgrades and upgrades again without touching other areas' tables."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from infra.database import MIGRATIONS_DIR, import_models, make_engine, migrate

TABLES = {"hubs", "hub_areas", "prison_omus", "staff", "tasks", "task_alerts", "task_history",
          "processed_events", "task_digests", "task_outbox", "scheduler_leases", "apscheduler_jobs"}


def _alembic(engine: sa.Engine, fn, revision: str) -> None:  # type: ignore[no-untyped-def]
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        fn(cfg, revision)


def _dependents_tables(before: set[str], left: set[str]) -> set[str]:
    """Tables that went with the downgrade other than ours: only dependants' may."""
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    dependants = [r for r in ScriptDirectory.from_config(cfg).walk_revisions()
                  if "tasks_0001" in (r.dependencies or ())]
    gone = before - left - TABLES
    assert not gone or dependants, f"tables of independent branches dropped: {gone}"
    return gone


def _mine(diff: tuple) -> bool:  # type: ignore[type-arg]
    for part in diff if isinstance(diff, list) else [diff]:
        for item in part[1:]:
            table = getattr(item, "table", None)
            name = getattr(item, "name", None) or getattr(table, "name", None)
            if isinstance(item, str) and item in TABLES or name in TABLES:
                return True
    return False


def test_schema_matches_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        assert set(sa.inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), import_models().metadata)
        mine = [d for d in diffs if _mine(d) and not (isinstance(d, tuple) and
                                                      d[0] == "remove_table")]
        assert mine == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_empty_postgres_round_trip(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        migrate(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("insert into hubs (code, name, kind, active) "
                                 "values ('IOM-X', 'x', 'community', true)"))
        before = set(sa.inspect(engine).get_table_names())
        _alembic(engine, command.downgrade, "tasks@base")
        left = set(sa.inspect(engine).get_table_names())
        assert not (left & TABLES)
        # Branches that do not depend on this one keep their tables (those that declare
        # depends_on tasks_0001 go down with it, as Alembic requires).
        independent = before - TABLES - {"alembic_version"} - _dependents_tables(before, left)
        assert independent <= left
        _alembic(engine, command.upgrade, "heads")
        assert set(sa.inspect(engine).get_table_names()) == before
        migrate(engine)  # already at heads: nothing to do, no error
    finally:
        engine.dispose()


def test_sqlite_round_trip(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        migrate(engine)
        _alembic(engine, command.downgrade, "tasks@base")
        assert not (set(sa.inspect(engine).get_table_names()) & TABLES)
        _alembic(engine, command.upgrade, "tasks@head")
        assert set(sa.inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()
