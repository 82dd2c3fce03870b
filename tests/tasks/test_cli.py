"""The ``ttg tasks`` / ``ttg hubs`` commands through typer's CliRunner, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import typer
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from consumers import cli as tasks_cli
from consumers.tasks import apply_alert_event
from infra import directory as hub_directory
from infra.config import Settings, get_settings
from infra.database import session_scope
from schemas.common import Severity, StaffRole
from tests.tasks.conftest import EXAMPLE, NOW, event, make_alert, task_events


@pytest.fixture
def ttg(settings: Settings, database_url: str, engine: Engine,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    monkeypatch.setenv("TTG_DATABASE_URL", database_url)
    monkeypatch.setenv("TTG_KAFKA_BOOTSTRAP", settings.kafka_bootstrap or "")
    monkeypatch.setenv("TTG_TOPIC_PREFIX", settings.topic_prefix)
    get_settings.cache_clear()
    app = typer.Typer()
    tasks_cli.register(app)
    yield app
    get_settings.cache_clear()


def invoke(app: typer.Typer, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_hubs_commands(ttg: typer.Typer) -> None:
    out = invoke(ttg, "hubs", "load", str(EXAMPLE))
    assert "5 hubs, 13 local_authorities, 3 prisons, 13 staff loaded" in out
    listing = invoke(ttg, "hubs", "list")
    assert "IOM-NORFOLK\tcommunity\tNorfolk IOM hub" in listing
    assert "OMU for: PBI" in listing and "+44" not in listing
    assert "+447700900101" in invoke(ttg, "hubs", "list", "--phones")
    invoke(ttg, "hubs", "add-staff", "IOM-NORFOLK", "norf-wc-1", "--name", "Work Coach N",
           "--role", "work_coach", "--phone", "07700900250", "--lead")
    assert "norf-wc-1\twork_coach (lead)\tWork Coach N" in invoke(ttg, "hubs", "list")
    assert "no hub 'NOPE'" in invoke(ttg, "hubs", "add-staff", "NOPE", "x", "--name", "n",
                                     "--role", "work_coach", code=1)


def test_task_commands(ttg: typer.Typer, engine: Engine, settings: Settings) -> None:
    from infra.kafka import ensure_topics

    ensure_topics(settings)
    hub_directory.load_file(engine, EXAMPLE)
    ids = {}
    late = datetime.now(UTC) - timedelta(hours=1)
    for a in (make_alert(prison_number="A1111AA", severity=Severity.URGENT, due_at=late),
              make_alert(prison_number="B2222BB", local_authority="Norwich",
                         due_at=datetime.now(UTC) + timedelta(days=3)),
              make_alert(prison_number="C3333CC", local_authority="Leeds")):
        with session_scope(engine) as s:
            out = apply_alert_event(s, event(a), hub_directory.read(s), NOW)
        ids[a.prison_number] = out.events[0].task_id

    cambs = invoke(ttg, "tasks", "list", "--hub", "IOM-CAMBS")
    assert ids["A1111AA"] in cambs and ids["B2222BB"] not in cambs
    assert f"{ids['A1111AA']}\tA1111AA\taccommodation\turgent\topen\t" in cambs
    assert "OVERDUE" in cambs
    assert ids["C3333CC"] in invoke(ttg, "tasks", "list", "--hub", "UNROUTED")
    assert ids["A1111AA"] in invoke(ttg, "tasks", "list", "--role", "housing_officer")
    assert ids["A1111AA"] not in invoke(ttg, "tasks", "list", "--role", "work_coach")
    overdue = invoke(ttg, "tasks", "list", "--overdue")
    assert ids["A1111AA"] in overdue and ids["B2222BB"] not in overdue

    tid = ids["A1111AA"]
    assert f"{tid} acknowledged" in invoke(ttg, "tasks", "ack", tid, "--by", "Housing One")
    assert "only open tasks" in invoke(ttg, "tasks", "ack", tid, code=1)
    assert f"{tid} done" in invoke(ttg, "tasks", "done", tid, "--by", "Housing One")
    bid = ids["B2222BB"]
    invoke(ttg, "tasks", "cancel", bid, "--reason", "recalled to custody", "--by", "Hub")
    assert tid not in invoke(ttg, "tasks", "list")
    assert tid in invoke(ttg, "tasks", "list", "--all")

    shown = invoke(ttg, "tasks", "show", tid)
    assert "status: done" in shown and "acknowledged: " in shown and "by Housing One" in shown
    hist = shown.split("history:")[1]
    assert [line.split()[2] for line in hist.strip().splitlines()] == [
        "created", "acknowledged", "done"]
    assert "cancelled by Hub: recalled to custody" in invoke(ttg, "tasks", "show", bid)
    assert "no task T-NOPE" in invoke(ttg, "tasks", "show", "T-NOPE", code=1)

    # Each change was announced on the tasks topic: the first CLI change also sent the
    # creations waiting in the outbox (they were made here without a publisher).
    kinds = [(e.task_id, e.type, e.by) for e in task_events(settings)]
    assert sorted(kinds[:3]) == sorted((i, "task.created", "alerts") for i in ids.values())
    assert kinds[3:] == [(tid, "task.acknowledged", "Housing One"),
                         (tid, "task.done", "Housing One"), (bid, "task.cancelled", "Hub")]


def test_loading_the_directory_routes_waiting_tasks(ttg: typer.Typer, engine: Engine) -> None:
    # Alerts arrive before anyone loaded the directory: every task waits, unrouted.
    for a in (make_alert(prison_number="A1111AA", local_authority="Norwich"),
              make_alert(prison_number="B2222BB", rule_id="transfer", need="transfer",
                         owner_role=StaffRole.OMU, prison="PBI"),
              make_alert(prison_number="C3333CC", local_authority="Leeds")):
        with session_scope(engine) as s:
            apply_alert_event(s, event(a), hub_directory.read(s), NOW)
    assert invoke(ttg, "tasks", "list", "--hub", "UNROUTED").count("UNROUTED") == 3
    out = invoke(ttg, "hubs", "load", str(EXAMPLE))
    assert "2 unrouted task(s) now routed" in out
    left = invoke(ttg, "tasks", "list", "--hub", "UNROUTED")
    assert "C3333CC" in left and "A1111AA" not in left
    assert "A1111AA" in invoke(ttg, "tasks", "list", "--hub", "IOM-NORFOLK")
    assert "B2222BB" in invoke(ttg, "tasks", "list", "--hub", "OMU-PBI")
    tid = invoke(ttg, "tasks", "list", "--hub", "OMU-PBI").splitlines()[1].split("\t")[0]
    assert "reassigned by directory: UNROUTED -> OMU-PBI / omu (pbi-omu-1)" in invoke(
        ttg, "tasks", "show", tid)
    assert "now routed" not in invoke(ttg, "tasks", "reroute")  # nothing left it can route
