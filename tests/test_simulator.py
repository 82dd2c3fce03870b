"""The simulator: reproducible, valid against the contracts, shaped like the practice."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from typer.testing import CliRunner

from infra.cli import build
from infra.simulator import SimulationConfig, simulate, to_json_lines
from schemas import decode_input

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    cfg = SimulationConfig(people=200, seed=3, now=NOW, include_future=True)
    a = list(to_json_lines(simulate(cfg)))
    assert a == list(to_json_lines(simulate(cfg)))
    b = list(
        to_json_lines(simulate(SimulationConfig(people=200, seed=4, now=NOW, include_future=True)))
    )
    assert a != b


def test_every_event_is_valid_and_in_time_order() -> None:
    events = [
        decode_input(line)
        for line in to_json_lines(
            simulate(SimulationConfig(people=300, seed=11, now=NOW, include_future=True))
        )
    ]
    times = [e.occurred_at for e in events]
    assert times == sorted(times)
    assert len({e.event_id for e in events}) == len(events)
    kinds = Counter(e.type for e in events)
    for expected in (
        "custody.reception",
        "release_date.changed",
        "case_note.accommodation",
        "case_note.appointment",
        "custody.release",
        "custody.transfer",
    ):
        assert kinds[expected] > 0, expected


def test_about_a_third_of_releases_fall_on_a_friday() -> None:
    releases = Counter()
    for e in map(
        decode_input,
        to_json_lines(
            simulate(SimulationConfig(people=2000, seed=5, now=NOW, include_future=True))
        ),
    ):
        if e.type == "custody.release":
            releases[e.occurred_at.weekday()] += 1
    share = releases[4] / sum(releases.values())
    assert 0.25 < share < 0.42, share
    assert releases[5] == releases[6] == 0  # nobody is released at a weekend


def test_without_future_nothing_after_now() -> None:
    events = list(simulate(SimulationConfig(people=100, seed=2, now=NOW)))
    assert events and all(e["occurred_at"] <= NOW.isoformat() for e in events)


def test_cli_writes_file(tmp_path) -> None:
    out = tmp_path / "sim.jsonl"
    result = CliRunner().invoke(
        build(),
        [
            "simulate",
            "-n",
            "50",
            "-s",
            "9",
            "-o",
            str(out),
            "--now",
            "2026-11-23T09:00:00",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines and all(decode_input(line) for line in lines)
