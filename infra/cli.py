"""The ``ttg`` command. Each area adds its own subcommands through a ``register(app)`` hook."""

from __future__ import annotations

import importlib
from functools import cache

import typer

from infra.logs import setup_logging

app = typer.Typer(
    name="ttg",
    help="Through the Gate: release coordination for prisons, IOM hubs and people leaving prison.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold personal data
)

#: Modules whose ``register(app)`` adds commands. Add one line per area.
COMMAND_MODULES: tuple[str, ...] = (
    "infra.commands",
    "streams.cli",
    "infra.publish_commands",
    "schemas.cli",
    "consumers.cli",
    "infra.simulate_commands",
    "hub.cli",
    "consumers.notifications.cli",
    "infra.demo",
    "infra.bench_commands",
)


@app.callback()
def _root(
    log_level: str = typer.Option("INFO", "--log-level", envvar="TTG_LOG_LEVEL"),
) -> None:
    setup_logging(log_level.upper())


@cache
def build() -> typer.Typer:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app


def main() -> None:
    build()()
