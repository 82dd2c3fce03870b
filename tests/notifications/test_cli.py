"""``ttg outbox list`` shows what the outbox backend recorded, numbers masked."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from consumers.notifications.cli import register
from consumers.notifications.dispatch import Dispatcher
from consumers.notifications.sender import OutboxBackend
from infra.config import get_settings

from .builders import PN
from .test_dispatch import released_person


def test_outbox_list(engine, sms_settings, clock, database_url, monkeypatch):
    released_person(engine, sms_settings, clock)
    Dispatcher(engine, OutboxBackend(engine), sms_settings, clock).run_once()
    monkeypatch.setenv("TTG_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        app = typer.Typer()
        register(app)  # as infra.cli does for each COMMAND_MODULES entry
        result = CliRunner().invoke(app, ["outbox", "list"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert PN in result.output and "*********456" in result.output
    assert "7400123456" not in result.output and "Hello from" in result.output
