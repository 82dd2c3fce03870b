"""``ttg up``: the whole local stack in one process tree.

Starts the embedded broker when none is configured, creates topics, migrates the database, then
runs every service as a child process (each is an ordinary ``ttg`` subcommand, so production can
run them separately under any supervisor). A child that dies is restarted with backoff; Ctrl-C
stops children in reverse order, then the broker.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra.config import STACK_FILE, STATE_DIR, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Service:
    name: str
    args: tuple[str, ...]  # arguments to `ttg`
    describe: Callable[[Settings], str] = lambda s: ""


#: Every long-running service, in start order. Each area adds its own line.
SERVICES: tuple[Service, ...] = (
    Service("stream-worker", ("worker",), lambda s: f"sweep every {s.worker_sweep_seconds:g}s"),
    Service("task-consumer", ("consume",)),
    Service("scheduler", ("scheduler",)),
    Service("timeline", ("timeline",)),
    Service("hub", ("hub", "--seed-demo"),
            describe=lambda s: f"{s.hub_public_url} (demo sign-in: .ttg/logs/hub.log)"),
    Service("notifications", ("notify",)),
)


@dataclass
class _Child:
    service: Service
    proc: subprocess.Popen[bytes]
    log_path: Path
    restarts: int = 0
    started: float = field(default_factory=time.monotonic)


def _spawn(service: Service, env: dict[str, str], log_dir: Path) -> _Child:
    log_path = log_dir / f"{service.name}.log"
    out = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra", *service.args],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        start_new_session=True,
    )
    return _Child(service, proc, log_path)


class StackAlreadyRunning(RuntimeError):
    pass


def _running_stack() -> int | None:
    """The pid of a live ``ttg up`` recorded in this directory, if any (stale files ignored)."""
    try:
        pid = int(json.loads(STACK_FILE.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _stop_all(children: list[_Child], timeout: float = 15.0) -> None:
    """SIGTERM every child (in the order given) at once, then wait; kill what outlives it.

    Children shut down in parallel, so Ctrl-C takes as long as the slowest, not the sum.
    """
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    deadline = started + timeout
    for child in children:
        try:
            child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            if time.monotonic() - started > 3:
                log.info("%s took %.1fs to stop", child.service.name, time.monotonic() - started)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", child.service.name, timeout)
            child.proc.kill()
            child.proc.wait()


def run_stack(
    settings: Settings,
    services: tuple[Service, ...] | None = None,
    on_ready: Callable[[dict[str, str]], None] | None = None,
    until: Callable[[], bool] | None = None,
) -> None:
    from infra.broker import EmbeddedBroker
    from infra.database import engine_for, migrate
    from infra.kafka import ensure_topics

    services = SERVICES if services is None else services
    other = _running_stack()
    if other:
        raise StackAlreadyRunning(f"`ttg up` is already running here (pid {other}); stop it first")
    STATE_DIR.mkdir(exist_ok=True)
    log_dir = STATE_DIR / "logs"
    log_dir.mkdir(exist_ok=True)

    broker: EmbeddedBroker | None = None
    children: list[_Child] = []
    stopping = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # Handlers go in before the broker starts: a signal during start-up must not orphan it.
    old_int = signal.signal(signal.SIGINT, _on_signal)
    old_term = signal.signal(signal.SIGTERM, _on_signal)
    try:
        bootstrap = settings.kafka_bootstrap
        if not bootstrap:
            broker = EmbeddedBroker(log_file=log_dir / "broker.log").start()
            bootstrap = broker.bootstrap
        settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
        created = ensure_topics(settings)
        migrate(engine_for(settings))
        STACK_FILE.write_text(json.dumps({
            "kafka_bootstrap": bootstrap,
            "embedded_broker": broker is not None,
            "database_url": settings.database_url,
            "pid": os.getpid(),
        }))
        env = {**os.environ, "TTG_KAFKA_BOOTSTRAP": bootstrap,
               "TTG_DATABASE_URL": settings.database_url}
        for service in services:
            children.append(_spawn(service, env, log_dir))
        where = {
            "broker": f"{bootstrap} ({'embedded, memory-only' if broker else 'configured'})",
            "topics": f"{len(created)} created, partitions={settings.topic_partitions}",
            "database": settings.database_url,
            "logs": str(log_dir),
        }
        for child in children:
            where[child.service.name] = (
                f"pid {child.proc.pid} {child.service.describe(settings)}".strip()
            )
        if on_ready:
            on_ready(where)
        while not stopping and not (until and until()):
            for child in children:
                code = child.proc.poll()
                if code is None:
                    continue
                # Back off so a service failing at start does not spin the machine.
                delay = min(30.0, 2.0 ** min(child.restarts, 5))
                log.warning("%s exited with %s; restarting in %.0fs (see %s)",
                            child.service.name, code, delay, child.log_path)
                deadline = time.monotonic() + delay
                while not stopping and time.monotonic() < deadline:
                    time.sleep(0.1)  # a backoff must not delay Ctrl-C
                if stopping:
                    break
                fresh = _spawn(child.service, env, log_dir)
                child.proc, child.restarts = fresh.proc, child.restarts + 1
            time.sleep(0.5)
    finally:
        _stop_all(list(reversed(children)))
        if broker:
            # Memory-only: a graceful drain (Tansu takes ~5 s with clients gone) saves nothing.
            broker.stop(timeout=2.0)
        STACK_FILE.unlink(missing_ok=True)
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
