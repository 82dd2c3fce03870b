"""Plumbing commands: the stack, the broker, topics and the database."""

from __future__ import annotations

import signal
import time

import typer
from rich.console import Console
from rich.table import Table

from infra.config import get_settings

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    topics = typer.Typer(help="Kafka topics.", no_args_is_help=True)
    db = typer.Typer(help="The database.", no_args_is_help=True)
    app.add_typer(topics, name="topics")
    app.add_typer(db, name="db")

    @app.command()
    def up(
        no_services: bool = typer.Option(
            False, "--no-services", help="Start only the broker, topics and database."
        ),
    ) -> None:
        """Start the whole stack on embedded defaults (broker, topics, database, services)."""
        from infra.stack import StackAlreadyRunning, run_stack

        def ready(where: dict[str, str]) -> None:
            table = Table(title="Through the Gate is running", show_header=False)
            for name, value in where.items():
                table.add_row(name, value)
            console.print(table)
            console.print("Press Ctrl-C to stop everything.")

        try:
            run_stack(get_settings(), services=() if no_services else None, on_ready=ready)
        except StackAlreadyRunning as exc:
            console.print(str(exc))
            raise typer.Exit(1) from None
        console.print("stopped cleanly")

    @app.command()
    def broker() -> None:
        """Run only the embedded memory-only broker, printing its address, until Ctrl-C."""
        from infra.broker import EmbeddedBroker

        def _term(signum: int, _frame: object) -> None:
            raise KeyboardInterrupt  # leave the `with` so the broker is stopped, not orphaned

        signal.signal(signal.SIGTERM, _term)
        with EmbeddedBroker() as b:
            typer.echo(b.bootstrap)
            console.print(
                f"embedded broker on {b.bootstrap}; export TTG_KAFKA_BOOTSTRAP={b.bootstrap}"
            )
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass

    @topics.command("create")
    def topics_create() -> None:
        """Create every topic with the configured partitions (existing ones are kept)."""
        from infra.kafka import ensure_topics
        from infra.topics import Topics

        settings = get_settings()
        created = ensure_topics(settings)
        for name in Topics.from_settings(settings).all():
            typer.echo(f"{name}\t{'created' if name in created else 'exists'}")

    @topics.command("list")
    def topics_list() -> None:
        """List the project's topics and whether each exists on the broker."""
        from kafka import KafkaAdminClient

        from infra.kafka import client_config
        from infra.topics import Topics

        settings = get_settings()
        admin = KafkaAdminClient(**client_config(settings))
        try:
            present = set(admin.list_topics())
        finally:
            admin.close()
        for name in Topics.from_settings(settings).all():
            typer.echo(f"{name}\t{'present' if name in present else 'missing'}")

    @db.command("upgrade")
    def db_upgrade(revision: str = typer.Argument("heads")) -> None:
        """Apply database migrations (safe to run on a live PostgreSQL deployment)."""
        from infra.database import engine_for, migrate

        migrate(engine_for(get_settings()), revision)
        typer.echo(f"database at {revision}")
