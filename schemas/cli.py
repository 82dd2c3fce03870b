"""``ttg schemas``: list the event contracts and export them as JSON Schema."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    schemas = typer.Typer(help="Event contracts (JSON Schema for publishers).",
                          no_args_is_help=True)
    app.add_typer(schemas, name="schemas")

    @schemas.command("export")
    def export_cmd(
        directory: Path = typer.Argument(..., help="Where to write <type>.schema.json files."),
    ) -> None:
        """Write one JSON Schema file per event type (inputs and outputs)."""
        from schemas.export import export

        written = export(directory)
        for path in written:
            typer.echo(str(path))
        typer.echo(f"{len(written)} schema file(s) written to {directory}", err=True)

    @schemas.command("list")
    def list_cmd() -> None:
        """List every event type: direction, family and model."""
        from schemas.export import event_types

        for et in event_types():
            typer.echo(f"{et.name}\t{et.direction}\t{et.family}\t{et.model.__name__}")
