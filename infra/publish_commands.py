"""``ttg publish FILE``: send a JSON-lines file of events (``-`` reads standard input)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from infra.config import get_settings


def register(app: typer.Typer) -> None:
    @app.command()
    def publish(
        file: str = typer.Argument(
            ..., help="JSON lines, one event per line (our contracts or HMPPS domain events); "
            "'-' for standard input."
        ),
    ) -> None:
        """Validate and publish events; invalid lines are reported and dead-lettered.

        Exit code 0 when every line was published, 1 when any line failed.
        """
        from kafka.errors import KafkaError

        from infra.bulk import BulkWriter
        from infra.kafka import BrokerNotConfigured
        from infra.publish import LineError, publish_lines
        from infra.topics import Topics

        if file == "-":
            stream, source = sys.stdin.buffer, "stdin"
        else:
            path = Path(file)
            if not path.is_file():
                typer.echo(f"no such file: {file}", err=True)
                raise typer.Exit(2)
            stream, source = path.open("rb"), path.name

        def report(e: LineError) -> None:
            # Plain, unwrapped lines: people grep these and editors jump to file:line.
            typer.echo(f"{source}:{e.line}: {e.reason}", err=True)

        try:
            settings = get_settings()
            with stream, BulkWriter(settings) as writer:
                result = publish_lines(stream, writer, Topics.from_settings(settings), source,
                                       on_error=report, workers=settings.publish_workers)
        except BrokerNotConfigured as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        except KafkaError as exc:
            typer.echo(f"cannot publish to the broker: {exc}", err=True)
            raise typer.Exit(2) from None
        for problem in result.delivery_errors:
            typer.echo(f"delivery failed: {problem}", err=True)
        typer.echo(result.summary())
        raise typer.Exit(0 if result.ok else 1)
