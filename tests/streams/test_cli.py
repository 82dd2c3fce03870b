import typer
from typer.testing import CliRunner

from infra.cli import COMMAND_MODULES
from infra.stack import SERVICES
from streams.cli import register
from streams.rules import CATALOGUE


def test_rules_lists_every_rule() -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["rules"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for rule in CATALOGUE:
        assert rule.spec.id in result.output


def test_worker_is_wired_into_ttg_and_ttg_up() -> None:
    assert "streams.cli" in COMMAND_MODULES
    assert any(s.args == ("worker",) for s in SERVICES)
