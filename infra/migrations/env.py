"""Alembic environment: runs on the connection :func:`infra.database.migrate` hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from infra.database import import_models, normalise_url

config = context.config
target_metadata = import_models().metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    from infra.config import get_settings

    url = normalise_url(config.get_main_option("sqlalchemy.url") or get_settings().database_url)
    engine = engine_from_config(
        {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=conn.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


run()
