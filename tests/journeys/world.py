"""The running system for the journeys: real broker, stream worker (subprocess, controlled clock),
alerts -> tasks consumer and notifications consumer (threads), outbox texts, one SQLite file.

Started once per module; each journey uses its own prison numbers, so journeys never see each
other's rows. The whole world shares one clock: the moment ``start`` plus the wall time elapsed
since the world started (the worker's ``OffsetClock`` does the same from ``worker_clock_start``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import TopicPartition
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from consumers.alerts import AlertsConsumer
from consumers.notifications.consumer import NotificationConsumer
from consumers.notifications.dispatch import Dispatcher, DispatchReport
from consumers.notifications.sender import OutboxBackend
from infra.config import Settings
from infra.database import make_engine, migrate
from infra.directory import load_file
from infra.kafka import ensure_topics, make_consumer, make_producer
from infra.models.messages import OutboxMessage, Reminder
from infra.models.tasks import Task, TaskAlert, TaskHistory
from infra.topics import Topics
from schemas.codec import encode
from schemas.common import Person
from schemas.envelope import Envelope
from schemas.events import INPUT_MODELS, input_family

EXAMPLE_HUBS = Path(__file__).resolve().parents[2] / "examples" / "hubs.toml"


class WorldClock:
    """``start`` + wall time elapsed since construction."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self._t0 = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._t0)


def event(type_: str, pn: str, occurred: datetime, recorded: datetime | None = None,
          **payload: Any) -> Envelope:
    return INPUT_MODELS[type_](
        event_id=uuid.uuid4(), occurred_at=occurred, recorded_at=recorded or occurred,
        source="PBI", person=Person(prison_number=pn), payload=payload,
    )


@dataclass
class World:
    settings: Settings
    engine: Engine
    clock: WorldClock
    tmp: Path
    worker: subprocess.Popen[bytes] | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    #: The running alerts -> tasks consumer (for its ``stats``), once its thread has made it.
    tasks_consumer: AlertsConsumer | None = None

    @property
    def topics(self) -> Topics:
        return Topics.from_settings(self.settings)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls, bootstrap: str, tmp: Path, start: datetime,
              database_url: str | None = None, *,
              settings_overrides: dict[str, Any] | None = None,
              before_services: Callable[[World], None] | None = None,
              notify: Callable[[World], None] | None = None,
              ready_timeout: float = 90.0) -> World:
        """Start the world. Optional (fault suites): ``settings_overrides`` for the shared
        Settings; ``before_services(world)`` runs once topics and database are ready, before the
        worker and consumers start (e.g. to cut a dependency); ``notify(world)`` runs in the
        notifications thread instead of the plain consumer loop; ``ready_timeout`` bounds the
        wait for the probe person's task."""
        settings = Settings(**{
            "_env_file": None, "environment": "test", "kafka_bootstrap": bootstrap,
            "topic_prefix": f"j{uuid.uuid4().hex[:10]}.", "topic_partitions": 3,
            "kafka_session_timeout_ms": 2_000,
            "database_url": database_url or f"sqlite:///{tmp / 'ttg.db'}",
            "worker_sweep_seconds": 1.0, "sms_allow_list": ["+447700900999", "+447700900998"],
            "faust_datadir": tmp / "faust",
            **(settings_overrides or {}),
        })
        engine = make_engine(settings.database_url)
        migrate(engine)
        load_file(engine, EXAMPLE_HUBS)
        ensure_topics(settings)
        world = cls(settings, engine, WorldClock(start), tmp)
        if before_services is not None:
            before_services(world)
        world._start_worker(start)
        world._thread("tasks", world._run_tasks)
        world._thread("notify", world._run_notify if notify is None else lambda: notify(world))
        world._ready(start, ready_timeout)
        return world

    def _ready(self, start: datetime, timeout: float = 90.0) -> None:
        """Wait until the worker and the tasks consumer have joined and work: a probe person's
        task appears. Journeys then start against a running pipeline, so the order they publish
        in is the order the worker reads."""
        probe = "Z9999ZZ"
        try:
            self.publish(event("release_date.changed", probe, start - timedelta(days=30),
                               new_date=(start + timedelta(days=20)).date(),
                               release_type="conditional_release"))
            self.wait_for("the pipeline to start", lambda: self.tasks(probe), timeout=timeout)
        except BaseException:
            self.close()
            raise

    def _start_worker(self, start: datetime) -> None:
        s = self.settings
        env = {
            **os.environ,
            "TTG_KAFKA_BOOTSTRAP": s.kafka_bootstrap or "",
            "TTG_TOPIC_PREFIX": s.topic_prefix,
            "TTG_TOPIC_PARTITIONS": str(s.topic_partitions),
            "TTG_KAFKA_SESSION_TIMEOUT_MS": str(s.kafka_session_timeout_ms),
            "TTG_FAUST_DATADIR": str(self.tmp / "faust"),
            "TTG_WORKER_CLOCK_START": start.isoformat(),
            "TTG_WORKER_SWEEP_SECONDS": "1",
        }
        with open(self.tmp / "worker.log", "wb") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "streams"], cwd=self.tmp, env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def _thread(self, name: str, target: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - surfaced by check()
                self.errors.append(exc)

        t = threading.Thread(target=guarded, name=f"journey-{name}", daemon=True)
        t.start()
        self.threads.append(t)

    def _run_tasks(self) -> None:
        consumer = AlertsConsumer(self.settings, self.engine, clock=self.clock,
                                  retry_backoff=0.2)
        self.tasks_consumer = consumer
        try:
            consumer.run(self.stop)
        finally:
            consumer.publisher.close()

    def _run_notify(self) -> None:
        consumer = NotificationConsumer(self.settings, self.engine, self.clock)
        try:
            while not self.stop.is_set():
                consumer.poll_once(timeout_ms=300)
        finally:
            consumer.close()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)
        if self.worker is not None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        self.engine.dispose()

    def check(self) -> None:
        assert not self.errors, "a service thread failed: " + "".join(
            traceback.format_exception(self.errors[0]))
        assert self.worker is not None and self.worker.poll() is None, self.worker_log()

    def worker_log(self) -> str:
        return (self.tmp / "worker.log").read_text(errors="replace")[-3000:]

    # ------------------------------------------------------------------ input and output

    def publish(self, *events: Envelope) -> None:
        producer = make_producer(self.settings)
        try:
            for e in events:
                topic = self.topics.for_family(input_family(e.type))
                producer.send(topic, key=e.key, value=encode(e)).get(timeout=30)
        finally:
            producer.close()

    def records(self, topic: str, timeout: float = 10) -> list[Any]:
        """Every record on ``topic`` now, per partition in offset order."""
        consumer = make_consumer(self.settings, None, consumer_timeout_ms=500)  # type: ignore[arg-type]
        try:
            tps = [TopicPartition(topic, p) for p in range(self.settings.topic_partitions)]
            consumer.assign(tps)
            ends = consumer.end_offsets(tps)
            consumer.seek_to_beginning(*tps)
            out: list[Any] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(
                consumer.position(tp) < ends[tp] for tp in tps
            ):
                for batch in consumer.poll(timeout_ms=300).values():
                    out.extend(batch)
            return sorted(out, key=lambda r: (r.partition, r.offset))
        finally:
            consumer.close()

    def alerts(self, pn: str) -> list[dict[str, Any]]:
        """Every alert event for ``pn`` now on the alerts topic, in partition order."""
        events = (json.loads(r.value) for r in self.records(self.topics.alerts))
        return [e for e in events if e["alert"]["prison_number"] == pn]

    def tasks(self, pn: str) -> list[Task]:
        with Session(self.engine) as s:
            return list(s.exec(select(Task).where(Task.prison_number == pn)
                               .order_by(Task.created_at)).all())  # type: ignore[arg-type]

    def history(self, task_id: str) -> list[TaskHistory]:
        with Session(self.engine) as s:
            return list(s.exec(select(TaskHistory).where(TaskHistory.task_id == task_id)
                               .order_by(TaskHistory.id)).all())  # type: ignore[arg-type]

    def links(self, task_id: str) -> list[TaskAlert]:
        with Session(self.engine) as s:
            return list(s.exec(select(TaskAlert).where(TaskAlert.task_id == task_id)).all())

    def reminders(self, pn: str) -> dict[str, str]:
        with Session(self.engine) as s:
            rows = s.exec(select(Reminder).where(Reminder.prison_number == pn)).all()
            return {r.kind + (f"|{r.appointment_id}" if r.appointment_id else ""): r.state
                    for r in rows}

    def texts(self, pn: str) -> list[OutboxMessage]:
        with Session(self.engine) as s:
            return list(s.exec(select(OutboxMessage)
                               .where(OutboxMessage.prison_number == pn)).all())

    def dispatch(self) -> DispatchReport:
        """One run of the dispatch job `ttg notify` schedules, at the world's time."""
        return Dispatcher(self.engine, OutboxBackend(self.engine), self.settings,
                          self.clock).run_once()

    def wait_for(self, what: str, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            got = predicate()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.worker_log()}")
            time.sleep(0.25)


def open_task(world: World, pn: str, need: str) -> Callable[[], Task | None]:
    def find() -> Task | None:
        return next((t for t in world.tasks(pn) if t.need == need and t.active_key), None)
    return find

