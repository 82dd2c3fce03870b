"""`ttg topics create` and `ttg up`, as a newcomer runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from kafka import KafkaAdminClient
from typer.testing import CliRunner

from infra.config import Settings
from infra.kafka import client_config
from infra.topics import Topics

from .eventgen import lines

pytestmark = pytest.mark.kafka


def test_topics_create_is_idempotent(settings: Settings, cli_app: typer.Typer,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.config import get_settings

    monkeypatch.setenv("TTG_KAFKA_BOOTSTRAP", settings.kafka_bootstrap or "")
    monkeypatch.setenv("TTG_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("TTG_TOPIC_PARTITIONS", "3")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        first = runner.invoke(cli_app, ["topics", "create"])
        second = runner.invoke(cli_app, ["topics", "create"])
    finally:
        get_settings.cache_clear()
    names = Topics.from_settings(settings).all()
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert sorted(first.stdout.split()) == sorted([*names, *["created"] * len(names)])
    assert sorted(second.stdout.split()) == sorted([*names, *["exists"] * len(names)])
    admin = KafkaAdminClient(**client_config(settings))
    try:
        described = admin.describe_topics(list(names))
    finally:
        admin.close()
    assert {t["name"]: len(t["partitions"]) for t in described} == {n: 3 for n in names}


def _tansu_pids_on(port: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"tansu" in cmd and f":{port}".encode() in cmd:
            found.append(int(proc.name))
    return found


def _ttg(*args: str, cwd: Path, env: dict[str, str], **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra", *args], cwd=cwd, env=env,
                          capture_output=True, timeout=60, **kw)


def test_up_runs_the_stack_and_ctrl_c_stops_it_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTG_")}
    env.update(TTG_TOPIC_PREFIX="up.", TTG_TOPIC_PARTITIONS="2", COLUMNS="200")
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra", "up", "--no-services"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    stack_file = tmp_path / ".ttg" / "stack.json"
    try:
        deadline = time.monotonic() + 60
        while not stack_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stack_file.exists(), proc.stderr.read().decode() if proc.poll() is not None else ""
        bootstrap = json.loads(stack_file.read_text())["kafka_bootstrap"]
        port = int(bootstrap.rsplit(":", 1)[1])
        assert _tansu_pids_on(port)

        # Other commands in the same directory find the embedded broker through stack.json.
        listed = _ttg("topics", "list", cwd=tmp_path, env=env)
        assert listed.returncode == 0, listed.stderr.decode()
        assert listed.stdout.decode().count("present") == 7
        (tmp_path / "e.jsonl").write_bytes(b"".join(lines(20)))
        published = _ttg("publish", "e.jsonl", cwd=tmp_path, env=env)
        assert published.returncode == 0, published.stderr.decode()
        assert b"20 event(s) published" in published.stdout
        piped = _ttg("publish", "-", cwd=tmp_path, env=env, input=b"{}\n")
        assert piped.returncode == 1 and b"stdin:1:" in piped.stderr

        # A second `ttg up` here refuses rather than fighting over the directory.
        again = _ttg("up", "--no-services", cwd=tmp_path, env=env)
        assert again.returncode == 1 and b"already running" in again.stderr

        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, err = proc.communicate(timeout=15)
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.decode()
    assert proc.returncode == 0, text
    for row in ("broker", bootstrap, "embedded, memory-only", "topics", "database", "logs"):
        assert row in text, text
    assert "stopped cleanly" in text
    assert not stack_file.exists()
    assert _tansu_pids_on(port) == []
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_up_stops_on_sigterm_too(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTG_")}
    proc = subprocess.Popen([sys.executable, "-m", "infra", "up", "--no-services"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stack_file = tmp_path / ".ttg" / "stack.json"
    try:
        deadline = time.monotonic() + 60
        while not stack_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        port = int(json.loads(stack_file.read_text())["kafka_bootstrap"].rsplit(":", 1)[1])
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert not stack_file.exists() and _tansu_pids_on(port) == []
