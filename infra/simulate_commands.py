"""``ttg simulate``: a reproducible cohort's event stream, to a file or straight to Kafka."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.progress import Progress

from infra.config import get_settings
from infra.simulator import SimulationConfig, simulate, to_json_lines


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_cmd(
        people: int = typer.Option(100, "--people", "-n", min=1, help="How many people."),
        seed: int = typer.Option(1, "--seed", "-s", help="Same seed, same events."),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="JSON-lines file ('-' = stdout)."
        ),
        kafka: bool = typer.Option(False, "--kafka", help="Publish straight to the input topics."),
        now: datetime | None = typer.Option(
            None, help="Simulated 'now' (UTC); default: the clock."
        ),
        horizon_days: int = typer.Option(120, help="Release dates fall within this many days."),
        include_future: bool = typer.Option(
            False, help="Also emit events after 'now' (whole lifecycles, for replays)."
        ),
    ) -> None:
        """Generate a realistic cohort and its events (reproducible by seed)."""
        if out is None and not kafka:
            raise typer.BadParameter("give --out FILE (or '-') and/or --kafka")
        moment = (now or datetime.now(UTC)).replace(microsecond=0)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        cfg = SimulationConfig(
            people=people,
            seed=seed,
            now=moment.astimezone(UTC),
            horizon_days=horizon_days,
            include_future=include_future,
        )
        lines = list(to_json_lines(simulate(cfg)))
        sink = None
        if out is not None:
            sink = sys.stdout if str(out) == "-" else out.open("w", encoding="utf-8")
        producer = topics = None
        if kafka:
            from infra.kafka import ensure_topics, make_producer
            from infra.topics import Topics

            settings = get_settings()
            ensure_topics(settings)
            topics = Topics.from_settings(settings)
            producer = make_producer(settings, linger_ms=20, batch_size=256 * 1024)
        import json

        from schemas.events import input_family

        with Progress(transient=True, disable=len(lines) < 5_000) as progress:
            task = progress.add_task("simulating", total=len(lines))
            for i, line in enumerate(lines):
                if sink is not None:
                    sink.write(line + "\n")
                if producer is not None and topics is not None:
                    head = json.loads(line)
                    producer.send(
                        topics.for_family(input_family(head["type"])),
                        key=head["person"]["prison_number"].encode(),
                        value=line.encode(),
                    )
                if i % 1000 == 0:
                    progress.update(task, completed=i)
        if producer is not None:
            producer.flush()
            producer.close()
        if sink is not None and sink is not sys.stdout:
            sink.close()
        typer.echo(f"{len(lines)} events for {people} people (seed {seed})", err=True)
