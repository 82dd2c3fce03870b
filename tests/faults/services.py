"""One pipeline service in its own process, so a test can ``kill -9`` it:
``python -m tests.faults.services tasks|notify|scheduler``.

Each command runs the very function the real command runs (``serve`` in consumers/alerts.py and
scheduler/service.py, :class:`consumers.notifications.service.NotifyService`), configured from the
same ``TTG_*`` environment. Two things differ, both about the test world:

- "now" is the world's clock, shared by every process and unchanged by restarts:
  ``TTG_FAULTS_CLOCK=<start, ISO 8601>@<unix time the world started>`` means start + the wall
  time elapsed since then (the real commands read the wall clock);
- ``TTG_FAULTS_ALLOW_FILE`` (one E.164 number a line) replaces ``TTG_SMS_ALLOW_LIST``: a
  cohort's thousand numbers do not fit in one environment variable.

The stream worker needs neither: it is run as ``python -m streams`` with
``TTG_WORKER_CLOCK_START`` set to the world's time when it starts.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from infra.config import Settings, get_settings
from infra.logs import setup_logging


class WorldClock:
    """``start`` + wall time since ``epoch`` (a unix time): the same in every process."""

    def __init__(self, start: datetime, epoch: float) -> None:
        self.start, self.epoch = start, epoch

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.time() - self.epoch)

    def encode(self) -> str:
        return f"{self.start.isoformat()}@{self.epoch!r}"

    @classmethod
    def decode(cls, text: str) -> WorldClock:
        start, epoch = text.rsplit("@", 1)
        return cls(datetime.fromisoformat(start), float(epoch))


def _settings() -> Settings:
    settings = get_settings()
    allow = os.environ.get("TTG_FAULTS_ALLOW_FILE")
    if allow:
        numbers = [n.strip() for n in Path(allow).read_text().splitlines() if n.strip()]
        settings = settings.model_copy(update={"sms_allow_list": numbers})
    return settings


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def tasks(settings: Settings, clock: Callable[[], datetime]) -> None:
    """``ttg consume``: alerts -> tasks."""
    from consumers.alerts import serve

    serve(settings, _stop_on_signals(), clock)


def notify(settings: Settings, clock: Callable[[], datetime]) -> None:
    """``ttg notify``: the notifications consumer and its text jobs (dispatch, staff texts)."""
    from consumers.notifications.service import NotifyService
    from infra.database import engine_for

    NotifyService(settings, engine_for(settings), clock=clock).run(_stop_on_signals())


def scheduler(settings: Settings, clock: Callable[[], datetime]) -> None:
    """``ttg scheduler``: escalations, digests, the task-event outbox; one leader at a time."""
    from scheduler.service import serve

    serve(settings, _stop_on_signals(), clock)


COMMANDS: dict[str, Callable[[Settings, Callable[[], datetime]], None]] = {
    "tasks": tasks, "notify": notify, "scheduler": scheduler,
}


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in COMMANDS:
        raise SystemExit(f"usage: python -m tests.faults.services {'|'.join(COMMANDS)}")
    setup_logging(os.environ.get("TTG_LOG_LEVEL", "INFO"))
    clock = WorldClock.decode(os.environ["TTG_FAULTS_CLOCK"])
    COMMANDS[argv[0]](_settings(), clock)


if __name__ == "__main__":
    main(sys.argv[1:])
