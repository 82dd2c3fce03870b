"""``ttg users add`` / ``ttg users token``: a user made on the command line can use the API."""

from __future__ import annotations

import pytest
import typer
from fastapi.testclient import TestClient
from hubworld import DIRECTORY
from sqlalchemy.engine import Engine
from sqlmodel import select
from typer.testing import CliRunner

import hub.cli
from hub.app import create_app
from infra.config import Settings, get_settings
from infra.directory import Directory, store
from infra.models.access import ApiToken


@pytest.fixture
def cli(database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("TTG_DATABASE_URL", database_url)
    get_settings.cache_clear()
    store(engine, Directory.model_validate(DIRECTORY))
    app = typer.Typer()
    app.command("noop")(lambda: None)  # typer needs two commands to keep group semantics
    hub.cli.register(app)
    yield app
    get_settings.cache_clear()


def test_users_add_and_token(cli: typer.Typer, engine: Engine) -> None:
    runner = CliRunner()
    r = runner.invoke(cli, ["users", "add", "wendy", "--hub", "CAMBS", "--role", "work_coach",
                            "--name", "Wendy Work", "--staff-id", "cambs-wc",
                            "--password-stdin"], input="a long enough password\n")
    assert r.exit_code == 0, r.output
    assert "added user wendy" in r.output and "password" not in r.output
    r = runner.invoke(cli, ["users", "add", "wendy", "--hub", "CAMBS", "--role", "work_coach",
                            "--name", "W"])
    assert r.exit_code == 1 and "already exists" in r.output
    r = runner.invoke(cli, ["users", "add", "x", "--hub", "CAMBS", "--role", "wizard",
                            "--name", "X"])
    assert r.exit_code != 0
    r = runner.invoke(cli, ["users", "add", "y", "--hub", "NOPE", "--role", "omu", "--name", "Y"])
    assert r.exit_code == 1 and "no hub" in r.output

    r = runner.invoke(cli, ["users", "token", "wendy", "--label", "case system"])
    assert r.exit_code == 0, r.output
    token = r.output.strip()
    assert token.startswith("ttg_") and len(token) > 40
    from infra.database import session_scope

    with session_scope(engine) as s:
        rows = s.exec(select(ApiToken)).all()
    assert len(rows) == 1 and rows[0].token_hash != token and token not in rows[0].token_hash

    settings = Settings(_env_file=None, environment="test", secret_key="k" * 32)
    with TestClient(create_app(settings, engine)) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json() == {"username": "wendy", "name": "Wendy Work", "hub": "CAMBS",
                         "role": "work_coach", "staff_id": "cambs-wc"}
