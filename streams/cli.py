"""``ttg worker`` (the stream worker) and ``ttg rules`` (the rule catalogue)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import typer

from infra.config import Settings
from infra.topics import Topics

if TYPE_CHECKING:
    import faust


def quiet_worker(app: faust.App, log_level: str) -> faust.Worker:
    """Faust's worker without its terminal spinner. To spin on every log record the spinner sets
    the root logger to DEBUG, so every library's debug call builds a record only for the handler
    to drop it: about 7 % of the worker's time under load."""
    import faust

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            self.spinner = None
            super().on_setup_root_logger(logger, level)

    return Worker(app, loglevel=log_level)


def run_worker(
    settings: Settings, log_level: str = "info", commit_interval: float | None = None,
) -> None:
    """Create topics if missing, then run the Faust worker in this process until signalled."""
    from infra.kafka import ensure_topics
    from streams.app import make_app

    ensure_topics(settings)
    app = make_app(settings)
    if commit_interval is not None:
        app.conf.broker_commit_interval = commit_interval
    logging.getLogger(__name__).info(
        "stream worker %s: inputs %s, sweep every %gs, store %s",
        app.conf.id, ", ".join(Topics.from_settings(settings).inputs),
        settings.worker_sweep_seconds, settings.faust_store,
    )
    quiet_worker(app, log_level).execute_from_commandline()


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        log_level: str = typer.Option("info", "--loglevel", help="Faust worker log level."),
    ) -> None:
        """Run the release-risk stream worker (Faust) until stopped."""
        from infra.config import get_settings

        run_worker(get_settings(), log_level)

    @app.command("rules")
    def rules() -> None:
        """List the rule catalogue: id, pathway, owner, severity range and source."""
        from rich.console import Console
        from rich.table import Table

        from streams.rules import CATALOGUE

        table = Table("id", "pathway", "owner", "severity", "source", show_lines=True)
        table.columns[0].no_wrap = True
        for rule in CATALOGUE:
            spec = rule.spec
            table.add_row(spec.id, spec.pathway.title, spec.owner.value,
                          " / ".join(s.value for s in spec.severities), spec.source)
        Console().print(table)

