"""`ttg demo` as a newcomer runs it: the stack comes up, the simulated cohort's tasks (and, in
daytime, texts) reach the SQLite database, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.demo import EXAMPLE_HUBS, cohort, mobiles
from infra.directory import parse_file

pytestmark = pytest.mark.kafka


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _count(db: Path, table: str, where: str = "1=1") -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute(f"select count(*) from {table} where {where}").fetchone()[0])
    except sqlite3.OperationalError:  # not migrated yet, or busy
        return 0


def test_cohort_lives_where_the_hubs_are() -> None:
    directory = parse_file(EXAMPLE_HUBS)
    from datetime import UTC, datetime

    events = cohort(directory, 40, 1, datetime(2026, 11, 23, 10, tzinfo=UTC))
    areas = {la for h in directory.hubs for la in h.local_authorities}
    seen = {e["payload"].get("local_authority") for e in events} - {None}
    assert seen and seen <= areas
    assert len({e["person"]["prison_number"] for e in events}) == 40
    assert all(m.startswith("+447700900") for m in mobiles(events))


def test_demo_shows_tasks_then_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTG_")}
    port = _free_port()
    env.update(TTG_TOPIC_PARTITIONS="2", TTG_HUB_PORT=str(port), COLUMNS="200",
               TTG_HUB_PUBLIC_URL=f"http://127.0.0.1:{port}", TTG_WORKER_SWEEP_SECONDS="5")
    out = (tmp_path / "demo.out").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "infra", "demo", "--people", "40"],
                            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    db = tmp_path / "ttg.db"
    try:
        deadline = time.monotonic() + 90
        routed = "hub_code in ('IOM-CAMBS', 'IOM-NORFOLK', 'OMU-PBI', 'OMU-NWI', 'OMU-LHI')"
        while time.monotonic() < deadline and _count(db, "tasks", routed) == 0:
            assert proc.poll() is None, (tmp_path / "demo.out").read_text()
            time.sleep(1)
        # Tasks in the example hubs: the cohort lives where the directory has hubs.
        assert _count(db, "tasks", routed) > 0, (tmp_path / "demo.out").read_text()
        printed = (tmp_path / "demo.out").read_text()
        assert "ttg tasks list --hub IOM-CAMBS" in printed and "ttg outbox list" in printed
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        out.close()
    assert code == 0, (tmp_path / "demo.out").read_text()[-3000:]
    assert not (tmp_path / ".ttg" / "stack.json").exists()
