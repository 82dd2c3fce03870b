"""``ttg demo``: the ``ttg up`` stack with the example hubs and a small simulated cohort, so a
newcomer sees alerts, tasks and texts (in the outbox) within a minute.

The cohort lives in the areas and prisons the hub directory covers, so its tasks land in real
hubs rather than UNROUTED. Texts go to the outbox unless a Twilio account is configured; outside
production only allow-listed numbers are texted, so the demo allows exactly the cohort's and the
directory staff's (Ofcom drama-range) numbers for the services it starts: staff get a text for
each urgent task within about a minute, people their reminders as they fall due.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from infra.config import Settings
from infra.directory import Directory, parse_file

log = logging.getLogger(__name__)

EXAMPLE_HUBS = Path(__file__).resolve().parents[1] / "examples" / "hubs.toml"


def cohort(directory: Directory, people: int, seed: int, now: datetime) -> list[dict[str, Any]]:
    """Simulated events for ``people`` living in the directory's areas and prisons."""
    from infra.simulator import SimulationConfig, simulate

    areas = tuple(la for h in directory.hubs for la in h.local_authorities)
    prisons = tuple(p.code for p in directory.prisons)
    cfg = SimulationConfig(people=people, seed=seed, now=now,
                           **({"local_authorities": areas} if areas else {}),
                           **({"prisons": prisons} if prisons else {}))
    return list(simulate(cfg))


def mobiles(events: list[dict[str, Any]]) -> list[str]:
    return sorted({e["payload"]["mobile"] for e in events
                   if e["type"] == "case_note.contact" and e["payload"].get("mobile")})


def publish(settings: Settings, events: list[dict[str, Any]]) -> int:
    from infra.kafka import make_producer
    from infra.topics import Topics
    from schemas.events import input_family

    topics = Topics.from_settings(settings)
    producer = make_producer(settings)
    try:
        for e in events:
            producer.send(topics.for_family(input_family(e["type"])),
                          key=e["person"]["prison_number"].encode(),
                          value=json.dumps(e, separators=(",", ":")).encode())
        producer.flush()
    finally:
        producer.close()
    return len(events)


def guide(settings: Settings, directory: Directory, people: int, sent: int) -> str:
    community = [h.code for h in directory.hubs if h.kind == "community"]
    lines = [
        f"demo: {sent} events for {people} simulated people published; alerts and tasks follow "
        "within seconds (texts respect quiet hours, 21:00-08:00).",
        "Look at:",
        *(f"  ttg tasks list --hub {code}" for code in community),
        "  ttg outbox list",
        f"  hub web app: {settings.hub_public_url}  (demo sign-in printed in .ttg/logs/hub.log)",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def run_demo(settings: Settings, hubs_file: Path, people: int, seed: int) -> None:
    from infra.database import engine_for, migrate
    from infra.directory import store
    from infra.stack import run_stack

    directory = parse_file(hubs_file)
    engine = engine_for(settings)
    migrate(engine)
    # Before the services start, so the hub app's demo user joins a real hub.
    store(engine, directory)
    engine.dispose()
    events = cohort(directory, people, seed, datetime.now(UTC).replace(microsecond=0))
    if not settings.sms_allow_list:
        staff = [m.phone for h in directory.hubs for m in h.staff if m.phone]
        os.environ["TTG_SMS_ALLOW_LIST"] = json.dumps(sorted({*mobiles(events), *staff}))
    # A newcomer should see texts within a minute, not after the production cadence.
    os.environ.setdefault("TTG_SMS_DISPATCH_INTERVAL_SECONDS", "5")

    def on_ready(where: dict[str, str]) -> None:
        for name, what in where.items():
            typer.echo(f"{name:>14}: {what}")
        live = settings.model_copy(update={"kafka_bootstrap": settings.resolved_bootstrap()})
        sent = publish(live, events)
        typer.echo(guide(settings, directory, people, sent))

    run_stack(settings, on_ready=on_ready)


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        people: int = typer.Option(40, "--people", "-n", min=1, help="Simulated people."),
        seed: int = typer.Option(1, "--seed", "-s", help="Same seed, same cohort."),
        hubs: Path | None = typer.Option(
            None, "--hubs", help="Hub directory (TOML); default: settings.hub_directory_file, "
            "else examples/hubs.toml."),
    ) -> None:
        """Run the whole stack with example hubs and a small simulated cohort."""
        from infra.config import get_settings
        from infra.stack import StackAlreadyRunning

        settings = get_settings()
        try:
            run_demo(settings, hubs or settings.hub_directory_file or EXAMPLE_HUBS, people, seed)
        except StackAlreadyRunning as exc:
            raise typer.BadParameter(str(exc)) from exc
