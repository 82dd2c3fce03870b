"""`ttg consume` and two `ttg scheduler` processes as real child processes (as `ttg up` runs
them): alerts become tasks, a bad message is dead-lettered, the urgent task escalates once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from consumers.lifecycle import task_history
from infra.config import Settings
from infra.kafka import ensure_topics
from infra.models.tasks import Task
from schemas.common import Severity
from tests.tasks.conftest import event, make_alert, publish, task_events

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_consumer_and_two_schedulers_as_processes(
    settings: Settings, database_url: str, hubs_engine: Engine,
) -> None:
    ensure_topics(settings)
    env = {**os.environ, "TTG_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
           "TTG_DATABASE_URL": database_url, "TTG_TOPIC_PREFIX": settings.topic_prefix,
           "TTG_KAFKA_SESSION_TIMEOUT_MS": "2000", "TTG_ESCALATION_INTERVAL_SECONDS": "0.5",
           "TTG_ESCALATE_URGENT_AFTER_MINUTES": "0.02", "TTG_SCHEDULER_LEASE_SECONDS": "3"}
    procs = [subprocess.Popen([sys.executable, "-m", "infra", *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for args in (["consume"], ["scheduler"], ["scheduler"])]
    try:
        publish(settings, event(make_alert(severity=Severity.URGENT)), b"not an alert",
                event(make_alert(prison_number="B1111BB", local_authority="Leeds")))
        deadline = time.monotonic() + 60
        escalated: list[Task] = []
        while time.monotonic() < deadline and not escalated:
            time.sleep(0.5)
            with Session(hubs_engine) as s:
                escalated = list(s.exec(select(Task).where(Task.owner_role == "hub_manager")))
        assert escalated, "the urgent task was not escalated"
        time.sleep(2)  # both schedulers keep running; neither escalates again
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=30) for p in procs]
    assert codes == [0, 0, 0]
    with Session(hubs_engine) as s:
        tasks = {t.prison_number: t for t in s.exec(select(Task))}
        assert tasks["B1111BB"].hub_code is None
        assert [h.action for h in task_history(s, tasks["A1234BC"].id)].count("escalated") == 1
    kinds = sorted((e.prison_number, e.type) for e in task_events(settings))
    assert kinds == [("A1234BC", "task.created"), ("A1234BC", "task.updated"),
                     ("B1111BB", "task.created")]
