"""Two journeys again on PostgreSQL: the same running system, the database the hubs use in
production. (The full set runs on SQLite in test_journeys.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from infra.broker import EmbeddedBroker
from tests.journeys import test_journeys as journeys
from tests.journeys.world import World

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture(scope="module")
def pg_world(broker: EmbeddedBroker, postgres_admin: Engine,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    name = f"ttg_j{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    w = World.start(broker.bootstrap, tmp_path_factory.mktemp("journeys-pg"), journeys.START,
                    database_url=url)
    try:
        yield w
    finally:
        w.close()
        with postgres_admin.connect() as conn:
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
            ), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


def test_recall_cancels_everything_on_postgres(pg_world: World) -> None:
    journeys.test_recall_cancels_everything(pg_world)


def test_duplicate_housing_alerts_collapse_on_postgres(pg_world: World) -> None:
    journeys.test_duplicate_housing_alerts_collapse_to_one_task(pg_world)
