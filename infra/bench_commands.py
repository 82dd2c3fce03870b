"""``ttg bench``: measure detection, latency, sweep, memory and publish rates on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _fmt(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value:.0%}"
    if unit == "bytes":
        return f"{value:,.0f} B"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.0f} {unit}"


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(
        events: int = typer.Option(50_000, help="Simulated events for ceiling, detection and "
                                   "bulk publish."),
        publish_events: int = typer.Option(200_000, help="Lines in the bulk publish file."),
        people: int = typer.Option(100_000, help="Tracked people for the sweep and memory."),
        rate: int = typer.Option(1_000, help="Offered events/s for the latency run."),
        seconds: float = typer.Option(10.0, help="Length of the latency run."),
        quick: bool = typer.Option(False, "--quick", help="A small, fast run (smoke test)."),
        json_file: Path | None = typer.Option(None, "--json", help="Also write JSON here."),
    ) -> None:
        """Measure the six figures of issue 7 against their targets; prints a table and JSON."""
        from rich.console import Console
        from rich.table import Table

        from infra.bench import BenchConfig, run_bench

        if quick:
            events, people, rate, seconds = min(events, 3_000), min(people, 2_000), \
                min(rate, 50), min(seconds, 2.0)
            publish_events = min(publish_events, 5_000)
        console = Console(stderr=True)
        cfg = BenchConfig(events=events, publish_events=publish_events, people=people, rate=rate,
                          latency_seconds=seconds)
        result = run_bench(cfg, progress=lambda m: console.log(m))
        table = Table("metric", "measured", "target", "met",
                      title=f"ttg bench ({result['cpus']} CPUs, load average "
                      f"{' '.join(map(str, result['load_average_start']))} at start, "
                      f"{' '.join(map(str, result['load_average_end']))} at end; "
                      f"{result['seconds']} s)")
        for m in result["metrics"]:
            target = "-" if m["target"] is None or m["target"] == 0 else (
                ("≥ " if m["unit"] in ("events/s", "ratio") else "≤ ")
                + _fmt(m["target"], m["unit"]))
            met = {True: "[green]yes[/]", False: "[red]NO[/]", None: "-"}[m["met"]]
            measured = _fmt(m["value"], m["unit"])
            if m["name"].startswith(("detection", "Faust floor")):
                measured += f" ({m['detail']['events_per_s']:,.0f} events/s)"
            table.add_row(m["name"], measured, target, met)
        console.print(table)
        text = json.dumps(result, indent=2)
        if json_file:
            json_file.write_text(text + "\n")
        typer.echo(text)
