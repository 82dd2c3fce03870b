"""The whole pipeline with every service in its own process, for crash, rebalance and replay runs.

Unlike tests/journeys/world.py (whose tasks and notifications consumers are threads), here the
stream worker (``python -m streams``), the alerts -> tasks consumer, the notifications service
(consumer + text dispatch) and the scheduler (``python -m tests.faults.services ...``) are each a
process group of their own, so any of them can be killed with SIGKILL at any moment and started
again on the same topics, consumer groups and database. Every process shares the world's clock
(start + wall time since the cluster started), so a restart does not move time.

Finished means finished: :meth:`Cluster.settle` waits until every consumer group has committed
every record on its topics, no text is due or in flight, no task event is unsent, no urgent task
waits for an escalation that is due, and nothing has changed for a few seconds. (Waiting only for
"nothing changed for a while" can stop while a service is restarting or rebalancing, and compare
a run that has not finished with one that has.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from kafka import KafkaAdminClient, TopicPartition
from sqlalchemy import text
from sqlalchemy.engine import Engine

from infra.config import Settings
from infra.database import make_engine, migrate
from infra.directory import load_file
from infra.kafka import client_config, ensure_topics, log_ends, make_consumer, make_producer
from infra.simulator import SimulationConfig, simulate
from infra.topics import Topics
from schemas.events import input_family
from tests.faults.services import WorldClock

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_HUBS = ROOT / "examples" / "hubs.toml"
#: Ofcom's drama range, the only mobiles the simulator, the directory and the tests use.
DRAMA_NUMBERS = [f"+447700900{i:03d}" for i in range(1000)]
#: How long the escalation window is in these runs, so escalations happen while they run.
ESCALATE_AFTER_MINUTES = 0.2
#: Services the crash runs kill: stream worker, alerts -> tasks, notifications, scheduler.
SERVICES = ("worker", "tasks", "notify", "scheduler")
#: Texts a person gets once per release (the simulated people are released once).
ONCE_PER_RELEASE = ("welcome", "day_of_release")


# ---------------------------------------------------------------------- the input


def cohort(people: int, seed: int, now: datetime, include_future: bool = True) -> list[bytes]:
    """A simulated cohort's events, in the order they happened, each person with a mobile of
    their own. (The simulator draws mobiles from the thousand drama numbers, so people share
    them, and a shared number is not texted: whether a text goes then depends on which of two
    people was read first. Giving the first thousand people with a contact note a number each,
    and the rest none, keeps texts a function of the events.)"""
    numbers: dict[str, str] = {}
    out: list[bytes] = []
    for e in simulate(SimulationConfig(people=people, seed=seed, now=now,
                                       include_future=include_future)):
        if e["type"] == "case_note.contact":
            pn = e["person"]["prison_number"]
            if pn not in numbers and len(numbers) < len(DRAMA_NUMBERS):
                numbers[pn] = DRAMA_NUMBERS[len(numbers)]
            payload = dict(e["payload"])
            if pn in numbers:
                payload["mobile"] = numbers[pn]
            else:
                payload.pop("mobile", None)
            e = {**e, "payload": payload}
        out.append(json.dumps(e).encode())
    return out


def expected_open_alerts(events: list[bytes], at: datetime) -> dict[str, tuple[str, str]]:
    """alert id -> (prison number, rule) open after folding ``events`` in order at ``at``: what
    the rules say about each person's final state, worked out in this process (no Kafka)."""
    from schemas.codec import decode_input
    from streams.calendar import ReleaseCalendar
    from streams.clock import FixedClock
    from streams.person import Evaluator, PersonRecord

    evaluator = Evaluator(ReleaseCalendar(), FixedClock(at))
    records: dict[str, PersonRecord] = {}
    for raw in events:
        e = decode_input(raw)
        pn = e.person.prison_number
        records[pn], _ = evaluator.on_event(records.get(pn), e)
    return {str(a.alert_id): (pn, rule) for pn, r in records.items()
            for rule, a in r.alerts.items()}


def copy_sqlite(url: str, to: Path) -> str:
    """A consistent copy of a SQLite database (WAL included); returns the copy's URL."""
    import sqlite3

    to.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(url.removeprefix("sqlite:///"))
    dst = sqlite3.connect(to)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return f"sqlite:///{to}"


# ---------------------------------------------------------------------- what a run leaves

#: A task left open for an alert every run ends with resolved ("stale", see :func:`compare`)
#: fails the comparison; TTG_FAULTS_TOLERATE_STALE_TASKS=1 counts them instead (to study one).
TOLERATE_STALE_TASKS = os.environ.get("TTG_FAULTS_TOLERATE_STALE_TASKS", "") == "1"
ACTIVE = ("open", "acknowledged")


class AlertState(NamedTuple):
    prison_number: str
    rule: str
    need: str
    open: bool


class TaskRow(NamedTuple):
    id: str
    prison_number: str
    need: str
    status: str
    rule: str
    escalations: int
    #: alert ids of the task's links still marked open
    open_links: tuple[str, ...]


class TextRow(NamedTuple):
    reminder_id: str
    key: str
    audience: str
    prison_number: str
    kind: str


@dataclass
class Snapshot:
    """What a run left behind, in the terms a user cares about."""

    #: alert id -> its state after the last event the alerts topic has for it.
    alerts: dict[str, AlertState]
    alert_events: int
    tasks: list[TaskRow]
    #: every text in the outbox (what was sent), with its reminder.
    texts: list[TextRow]
    #: idempotency key -> (state, detail) for every person's reminder.
    reminders: dict[str, tuple[str, str]]
    #: people the notifications service may not text now, or whose number is shared.
    untextable: set[str]
    #: people released, consenting, with a number of their own: the welcome must reach them.
    textable: set[str]
    dead_letters: int

    @property
    def open_alerts(self) -> set[str]:
        return {k for k, v in self.alerts.items() if v.open}

    @property
    def open_needs(self) -> set[tuple[str, str]]:
        return {(v.prison_number, v.need) for v in self.alerts.values() if v.open}

    def active_tasks(self) -> list[TaskRow]:
        """Open and acknowledged tasks from alerts ("could not text" tasks are the
        notifications service's; see :func:`compare`)."""
        return [t for t in self.tasks if t.status in ACTIVE and t.need != "text_contact"]

    def stale(self, task: TaskRow) -> tuple[str, ...]:
        """The task's open links to alerts that are not open any more."""
        return tuple(a for a in task.open_links if a not in self.open_alerts)

    def live_work(self) -> Counter[tuple[str, str]]:
        """(prison number, need) of every active task with at least one alert still open."""
        return Counter((t.prison_number, t.need) for t in self.active_tasks()
                       if len(self.stale(t)) < len(t.open_links))

    def stale_tasks(self) -> list[TaskRow]:
        """Active tasks none of whose alerts is open: work for a need that has gone."""
        return [t for t in self.active_tasks() if len(self.stale(t)) == len(t.open_links)]

    def rules(self) -> dict[tuple[str, str], str]:
        """(prison number, need) -> the rule leading the task, for tasks with no stale link."""
        return {(t.prison_number, t.need): t.rule for t in self.active_tasks()
                if t.open_links and not self.stale(t)}

    def closed_tasks(self) -> int:
        return sum(1 for t in self.tasks if t.status not in ACTIVE)

    @property
    def person_texts(self) -> Counter[tuple[str, str]]:
        return Counter((t.prison_number, t.key) for t in self.texts if t.audience == "person")

    def sent_kinds(self) -> set[tuple[str, str]]:
        """(person, what) per text to a person: the kind for texts sent once per release, the
        reminder key for the others."""
        return {(t.prison_number, t.kind if t.kind in ONCE_PER_RELEASE else t.key)
                for t in self.texts if t.audience == "person"}

    @property
    def unknown_outcome(self) -> set[str]:
        """Texts a restart left with an unknown outcome: failed, never re-sent, and reported."""
        return {k for k, (state, detail) in self.reminders.items()
                if state == "failed" and "outcome unknown" in detail}


# ---------------------------------------------------------------------- the cluster


def _sqlite_time(moment: datetime) -> str:
    """A moment as SQLite holds the project's timestamps (naive UTC text), for comparisons."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class _Admin(KafkaAdminClient):
    """kafka-python's admin client, minus the ACL operations it cannot parse from the
    embedded broker's DescribeGroups answer."""

    def _process_acl_operations(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj.pop("authorized_operations", None)
        return obj


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class Cluster:
    settings: Settings
    engine: Engine
    tmp: Path
    clock: WorldClock
    procs: dict[str, Proc] = field(default_factory=dict)
    kills: Counter[str] = field(default_factory=Counter)
    stops: Counter[str] = field(default_factory=Counter)
    allow_file: Path | None = None
    #: How a stream worker is started (what `ttg worker` runs).
    worker_argv: tuple[str, ...] = ("-m", "streams")

    @property
    def topics(self) -> Topics:
        return Topics.from_settings(self.settings)

    @property
    def worker_group(self) -> str:
        return self.settings.topic("stream-worker")

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(cls, bootstrap: str, tmp: Path, start: datetime, *,
               database_url: str | None = None, session_timeout_ms: int = 3_000) -> Cluster:
        """Topics, a migrated database with the example hub directory; no service yet."""
        tmp.mkdir(parents=True, exist_ok=True)
        prefix = f"f{uuid.uuid4().hex[:10]}."
        settings = Settings(
            _env_file=None, environment="test", kafka_bootstrap=bootstrap,
            topic_prefix=prefix, topic_partitions=3,
            kafka_session_timeout_ms=session_timeout_ms,
            database_url=database_url or f"sqlite:///{tmp / 'ttg.db'}",
            worker_sweep_seconds=1.0, sms_allow_list=DRAMA_NUMBERS,
            faust_datadir=tmp / "faust", tasks_consumer_group=f"{prefix}tasks",
            notify_consumer_group=f"{prefix}notify", sms_dispatch_interval_seconds=1.0,
            twilio_timeout_seconds=1.0, escalate_urgent_after_minutes=ESCALATE_AFTER_MINUTES,
            escalation_interval_seconds=2.0, scheduler_lease_seconds=3.0,
        )
        engine = make_engine(settings.database_url)
        migrate(engine)
        load_file(engine, EXAMPLE_HUBS)
        ensure_topics(settings)
        allow = tmp / "allow.txt"
        allow.write_text("\n".join(settings.sms_allow_list) + "\n")
        return cls(settings, engine, tmp, WorldClock(start, time.time()), allow_file=allow)

    def again(self, tmp: Path, database_url: str | None = None) -> Cluster:
        """The same deployment (topics, consumer groups, Faust app) on ``database_url``, its
        clock carrying on from this one's; no service started."""
        tmp.mkdir(parents=True, exist_ok=True)
        settings = self.settings.model_copy(
            update={"database_url": database_url or self.settings.database_url})
        return Cluster(settings, make_engine(settings.database_url), tmp,
                       WorldClock(self.clock(), time.time()), allow_file=self.allow_file)

    def _env(self, name: str) -> dict[str, str]:
        s = self.settings
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TTG_FAUST_STORE": s.faust_store,
            "TTG_ENVIRONMENT": s.environment,
            "TTG_KAFKA_BOOTSTRAP": s.kafka_bootstrap or "",
            "TTG_TOPIC_PREFIX": s.topic_prefix,
            "TTG_TOPIC_PARTITIONS": str(s.topic_partitions),
            "TTG_KAFKA_SESSION_TIMEOUT_MS": str(s.kafka_session_timeout_ms),
            "TTG_DATABASE_URL": s.database_url,
            "TTG_FAUST_DATADIR": str(self.tmp / "faust" / name),
            "TTG_WORKER_CLOCK_START": self.clock().isoformat(),
            "TTG_WORKER_SWEEP_SECONDS": str(s.worker_sweep_seconds),
            "TTG_TASKS_CONSUMER_GROUP": s.tasks_consumer_group,
            "TTG_NOTIFY_CONSUMER_GROUP": s.notify_consumer_group,
            "TTG_SMS_DISPATCH_INTERVAL_SECONDS": str(s.sms_dispatch_interval_seconds),
            "TTG_TWILIO_TIMEOUT_SECONDS": str(s.twilio_timeout_seconds),
            "TTG_ESCALATE_URGENT_AFTER_MINUTES": str(s.escalate_urgent_after_minutes),
            "TTG_ESCALATION_INTERVAL_SECONDS": str(s.escalation_interval_seconds),
            "TTG_SCHEDULER_LEASE_SECONDS": str(s.scheduler_lease_seconds),
            "TTG_FAULTS_CLOCK": self.clock.encode(),
            "TTG_FAULTS_ALLOW_FILE": str(self.allow_file or ""),
            "TTG_LOG_LEVEL": os.environ.get("TTG_FAULTS_LOG_LEVEL", "INFO"),
        }
        for secret in ("TTG_TWILIO_ACCOUNT_SID", "TTG_TWILIO_AUTH_TOKEN", "TTG_SMS_ALLOW_LIST"):
            env.pop(secret, None)
        return env

    def spawn(self, name: str) -> Proc:
        """Start service ``name`` ("worker", "worker-b", ... or tasks / notify / scheduler)."""
        kind = name.split("-")[0]
        argv = ([sys.executable, *self.worker_argv] if kind == "worker"
                else [sys.executable, "-m", "tests.faults.services", kind])
        env = self._env(name)
        log = self.tmp / f"{name}.log"
        with open(log, "ab") as out:
            out.write(f"=== start {time.strftime('%H:%M:%S')} ===\n".encode())
            out.flush()
            popen = subprocess.Popen(argv, cwd=self.tmp, env=env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.procs[name] = Proc(name, argv, env, popen, log)
        return self.procs[name]

    def start_all(self, names: Iterable[str] = SERVICES) -> None:
        for name in names:
            self.spawn(name)

    def kill(self, name: str, restart: bool = True) -> None:
        """SIGKILL the service's whole process group (no clean-up of any kind), then start it
        again on the same topics, groups and database."""
        proc = self.procs[name]
        assert proc.popen.poll() is None, f"{name} died by itself:\n{self.log_tail(name)}"
        os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait()
        self.kills[name] += 1
        with open(proc.log, "ab") as out:
            out.write(f"=== SIGKILL {time.strftime('%H:%M:%S')} ===\n".encode())
        if restart:
            self.spawn(name)

    def stop(self, name: str, timeout: float = 30.0) -> None:
        """SIGTERM: the service leaves cleanly (a worker leaving its group: a rebalance)."""
        proc = self.procs.pop(name)
        if proc.popen.poll() is None:
            os.killpg(proc.popen.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait()
        self.stops[name] += 1

    def stop_all(self, timeout: float = 30.0) -> None:
        """SIGTERM every service at once, then wait (SIGKILL what outlives ``timeout``)."""
        procs = list(self.procs.values())
        for proc in procs:
            if proc.popen.poll() is None:
                os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait()
        self.procs.clear()

    def close(self) -> None:
        self.stop_all()
        self.engine.dispose()

    def reset_groups(self) -> None:
        """Make every consumer group of this deployment read its topics from the start again.
        Services must be stopped. (The groups are deleted, which is the same thing here: every
        consumer starts from the earliest offset when its group has none. The embedded broker
        refuses offset commits from outside a group that still lists members, and it keeps
        listing members that have stopped.)"""
        assert not self.procs, "stop the services first"
        groups = [self.worker_group, self.settings.tasks_consumer_group,
                  self.settings.notify_consumer_group]
        admin = _Admin(**client_config(self.settings))
        try:
            result = admin.delete_groups(groups)
        finally:
            admin.close()
        assert all(v == "OK" for v in result.values()), result
        for group in groups:
            consumer = make_consumer(self.settings, group)
            try:
                tps = [TopicPartition(t, p) for t in self.topics.all()
                       for p in range(self.settings.topic_partitions)]
                assert not any(consumer.committed(tp) for tp in tps), group
            finally:
                consumer.close()

    def check(self) -> None:
        for name, proc in self.procs.items():
            assert proc.popen.poll() is None, f"{name} exited:\n{self.log_tail(name)}"

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # ------------------------------------------------------------------ input

    def publish(self, events: list[bytes], *, rate: float | None = None) -> int:
        """Publish raw events (keyed by prison number) in order; ``rate``: events per second
        (None: as fast as the producer goes)."""
        producer = make_producer(self.settings, linger_ms=20)
        started = time.monotonic()
        try:
            for i, raw in enumerate(events):
                e = json.loads(raw)
                producer.send(self.topics.for_family(input_family(e["type"])),
                              key=e["person"]["prison_number"].encode(), value=raw)
                if rate is not None:
                    ahead = started + (i + 1) / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
            producer.flush(120)
        finally:
            producer.close()
        return len(events)

    def copy_inputs(self, other: Cluster) -> int:
        """Every record of ``other``'s input topics onto ours: same keys, partitions, order."""
        producer = make_producer(self.settings, linger_ms=20)
        copied = 0
        try:
            for mine, theirs in zip(self.topics.inputs, other.topics.inputs, strict=True):
                for r in other.records(theirs):
                    producer.send(mine, key=r.key, value=r.value, partition=r.partition)
                    copied += 1
            producer.flush(120)
        finally:
            producer.close()
        return copied

    # ------------------------------------------------------------------ reading

    def log_ends(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset after the last record of each partition: ``end_offsets`` corrected from
        fetch responses (:func:`infra.kafka.log_ends`; the embedded broker reports the end of a
        partition whose last record batch holds several records short)."""
        consumer = make_consumer(self.settings, None)  # type: ignore[arg-type]
        try:
            listed = consumer.end_offsets(tps)
        finally:
            consumer.close()
        return log_ends(self.settings, listed, timeout=60)  # type: ignore[return-value]

    def records(self, topic: str, timeout: float = 300.0) -> list[Any]:
        """Every record on ``topic`` now, per partition in offset order. Fails rather than
        return part of a topic."""
        tps = [TopicPartition(topic, p) for p in range(self.settings.topic_partitions)]
        ends = self.log_ends(tps)
        consumer = make_consumer(self.settings, None, consumer_timeout_ms=1000,  # type: ignore[arg-type]
                                 max_partition_fetch_bytes=8 * 1024 * 1024)
        try:
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            out: list[Any] = []
            deadline = time.monotonic() + timeout
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                assert time.monotonic() < deadline, f"could not read all of {topic}"
                for tp, batch in consumer.poll(timeout_ms=500, max_records=10_000).items():
                    out.extend(r for r in batch if r.offset < ends[tp])
            assert len(out) == sum(ends.values()), (topic, len(out), ends)
            return sorted(out, key=lambda r: (r.partition, r.offset))
        finally:
            consumer.close()

    def lag(self) -> dict[str, int]:
        """Records each consumer group has not committed yet."""
        groups = {
            "worker": (self.worker_group, self.topics.inputs),
            "tasks": (self.settings.tasks_consumer_group, (self.topics.alerts,)),
            "notify": (self.settings.notify_consumer_group, self.topics.inputs),
        }
        every = {t for _, topics in groups.values() for t in topics}
        ends = self.log_ends([TopicPartition(t, p) for t in sorted(every)
                              for p in range(self.settings.topic_partitions)])
        out: dict[str, int] = {}
        for name, (group, topics) in groups.items():
            consumer = make_consumer(self.settings, group)
            try:
                out[name] = sum(max(0, end - (consumer.committed(tp) or 0))
                                for tp, end in ends.items() if tp.topic in topics)
            finally:
                consumer.close()
        return out

    def members(self, group: str) -> int:
        """How many members the consumer group lists now."""
        admin = _Admin(**client_config(self.settings))
        try:
            return len(admin.describe_groups([group])[group]["members"])
        finally:
            admin.close()

    def end_offsets(self, topic: str) -> int:
        tps = [TopicPartition(topic, p) for p in range(self.settings.topic_partitions)]
        return sum(self.log_ends(tps).values())

    def pending_work(self) -> dict[str, int]:
        """Work the database says is due and not done: texts due or mid-send, task events not
        published, urgent tasks whose escalation is due."""
        now = self.clock()
        slack = timedelta(seconds=5)
        window = timedelta(minutes=self.settings.escalate_urgent_after_minutes)
        with self.engine.connect() as c:
            due = c.execute(text(
                "SELECT count(*) FROM sms_reminders WHERE (state = 'scheduled' AND send_at <= :t"
                " AND (next_attempt_at IS NULL OR next_attempt_at <= :t)) OR state = 'sending'"
            ), {"t": _sqlite_time(now - slack)}).scalar_one()
            unsent = c.execute(text(
                "SELECT count(*) FROM task_outbox WHERE sent_at IS NULL")).scalar_one()
            escalations = c.execute(text(
                "SELECT count(*) FROM tasks WHERE status = 'open' AND priority = 'urgent' AND "
                "escalated_at IS NULL AND urgent_since IS NOT NULL AND urgent_since <= :t AND "
                "NOT historical"), {"t": _sqlite_time(now - window - slack)}).scalar_one()
        return {"texts_due": due, "task_events_unsent": unsent, "escalations_due": escalations}

    def _progress(self) -> tuple[int, ...]:
        with self.engine.connect() as c:
            counts = tuple(c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in (
                "tasks", "task_history", "sms_reminders", "sms_outbox", "notification_issues"))
        return (self.end_offsets(self.topics.alerts), *counts)

    def settle(self, quiet: float = 5.0, timeout: float = 600.0) -> dict[str, Any]:
        """Wait until the run has finished (see the module docstring); returns what was seen."""
        deadline = time.monotonic() + timeout
        last: tuple[Any, ...] | None = None
        stable_since = time.monotonic()
        while True:
            self.check()
            lag, pending = self.lag(), self.pending_work()
            progress = self._progress()
            done = not any(lag.values()) and not any(pending.values())
            if progress != last or not done:
                last, stable_since = progress, time.monotonic()
            elif time.monotonic() - stable_since >= quiet:
                return {"lag": lag, **pending}
            if time.monotonic() > deadline:
                raise AssertionError(f"the pipeline did not finish: lag {lag}, {pending}\n"
                                     + "\n".join(f"--- {n}\n{self.log_tail(n, 1500)}"
                                                 for n in self.procs))
            time.sleep(1.0)

    def snapshot(self) -> Snapshot:
        alerts: dict[str, AlertState] = {}
        records = self.records(self.topics.alerts)
        with open(self.tmp / "alerts.jsonl", "wb") as keep:  # for a post-mortem
            for r in records:
                keep.write(b'{"partition": %d, "offset": %d, "event": %s}\n'
                           % (r.partition, r.offset, r.value))
        for r in records:
            e = json.loads(r.value)
            a = e["alert"]
            alerts[a["alert_id"]] = AlertState(a["prison_number"], a["rule_id"], a["need"],
                                               e["type"] != "alert.resolved")
        with self.engine.connect() as c:
            escalations = dict(c.execute(text(
                "SELECT task_id, count(*) FROM task_history WHERE action = 'escalated' "
                "GROUP BY task_id")).all())
            links: dict[str, list[str]] = {}
            for task_id, alert_id in c.execute(text(
                    "SELECT task_id, alert_id FROM task_alerts WHERE open")):
                links.setdefault(task_id, []).append(alert_id)
            tasks = sorted(
                TaskRow(t, pn, need, status, rule, escalations.get(t, 0),
                        tuple(sorted(links.get(t, ()))))
                for t, pn, need, status, rule in c.execute(text(
                    "SELECT id, prison_number, need, status, rule_id FROM tasks")))
            texts = sorted(TextRow(rid or "", key or "", audience or "", pn or "", kind or "")
                           for rid, key, audience, pn, kind in c.execute(text(
                               "SELECT o.reminder_id, r.idempotency_key, r.audience, "
                               "o.prison_number, r.kind FROM sms_outbox o "
                               "LEFT JOIN sms_reminders r ON r.id = o.reminder_id")))
            reminders = {key: (state, detail or "") for key, state, detail in c.execute(text(
                "SELECT idempotency_key, state, detail FROM sms_reminders "
                "WHERE audience = 'person'"))}
            untextable = {pn for (pn,) in c.execute(text(
                "SELECT prison_number FROM notify_people p WHERE custody IN "
                "('returned', 'unlawfully_at_large') OR opted_out OR EXISTS (SELECT 1 FROM "
                "notify_people q WHERE q.mobile_e164 = p.mobile_e164 AND "
                "q.prison_number != p.prison_number)"))}
            textable = {pn for (pn,) in c.execute(text(
                "SELECT prison_number FROM notify_people WHERE custody = 'released' AND "
                "sms_consent AND mobile_e164 IS NOT NULL AND NOT mobile_invalid AND NOT opted_out"
            ))} - untextable
        return Snapshot(alerts, len(records), tasks, texts, reminders, untextable, textable,
                        self.end_offsets(self.topics.dead_letter))


# ---------------------------------------------------------------------- comparing two runs


def check_texts(snap: Snapshot, name: str) -> None:
    """No text was sent twice: one outbox message per reminder, one per (person, key), and
    one welcome and one day-of-release text per person."""
    per_reminder = Counter(t.reminder_id for t in snap.texts)
    twice = {k: n for k, n in per_reminder.items() if n > 1}
    assert not twice, f"{name}: texts sent twice: {twice}"
    twice_keys = {k: n for k, n in snap.person_texts.items() if n > 1}
    assert not twice_keys, f"{name}: texts sent twice: {twice_keys}"
    per_kind = Counter((t.prison_number, t.kind) for t in snap.texts
                       if t.audience == "person" and t.kind in ONCE_PER_RELEASE)
    again = {k: n for k, n in per_kind.items() if n > 1}
    assert not again, f"{name}: the same text sent to a person more than once: {again}"
    marked = {k for k, (state, _) in snap.reminders.items() if state == "sent"}
    went = {key for _, key in snap.person_texts}
    assert marked == went, {f"{name}: marked sent, never sent": sorted(marked - went)[:10],
                            f"{name}: sent, not marked sent": sorted(went - marked)[:10]}
    stuck = [k for k, (state, _) in snap.reminders.items() if state == "sending"]
    assert not stuck, f"{name}: texts left mid-send: {stuck[:10]}"


def compare(reference: Snapshot, run: Snapshot) -> dict[str, int]:
    """``run`` against an uninterrupted ``reference`` over the same events. Fails on any open
    alert lost or extra, any open work lost, duplicated or led by another rule, any task
    escalated twice, any text sent twice, marked sent but not sent, left mid-send, or lost.

    What may differ, and why it is no harm to anyone (counted in the figures):
    - alerts and tasks raised and resolved again in one run only: a person's events arrive on
      three topics, and a different interleaving (or a restart re-reading uncommitted input) can
      briefly show a state that is not the final one. Such an alert ends resolved and its task
      closed "resolved" by the system, so nobody is left with work.
    - texts whose going depended on what had been read when the dispatch ran: a welcome sent
      before the person's recall was read, a day-of-release text naming the appointment that
      was next at that moment (one per release, whatever happens next). Everyone who may be
      texted at the end of both runs must have had their welcome.
    - a text whose send a crash interrupted after the request may have left: it is failed with
      "outcome unknown", never re-sent, and a "could not text" task asks its owner to check
      with the person (a duplicate text is worse than a missing one that is reported).

    And one that fails unless TTG_FAULTS_TOLERATE_STALE_TASKS=1:
    - "stale" tasks and links: an active task whose alerts the run's final alerts all say are
      resolved. (Alert event ids used to be the same in two histories of the same input - a
      worker back from an older changelog, a fresh deployment replaying - for different
      transitions, and the tasks consumer dropped some as copies; each worker start now names
      its history: ``streams.person.Evaluator.namespace``, tests/faults/test_order.py.)
    """
    lost_alerts = reference.open_alerts - run.open_alerts
    extra_alerts = run.open_alerts - reference.open_alerts
    assert not lost_alerts and not extra_alerts, {
        "open alerts lost": sorted(reference.alerts[k] for k in lost_alerts)[:20],
        "open alerts only in this run": sorted(run.alerts[k] for k in extra_alerts)[:20]}
    assert not reference.stale_tasks(), reference.stale_tasks()[:10]

    # Open work: one active task per (person, need) with an open alert, no other.
    for snap, name in ((reference, "reference"), (run, "run")):
        work = snap.live_work()
        assert set(work) == snap.open_needs, {
            f"{name}: open alerts with no task": sorted(snap.open_needs - set(work))[:20],
            f"{name}: tasks with no open alert": sorted(set(work) - snap.open_needs)[:20]}
        assert max(work.values(), default=1) == 1, f"{name}: duplicated tasks"
        twice = [t for t in snap.tasks if t.escalations > 1]
        assert not twice, f"{name}: tasks escalated more than once: {twice[:10]}"
    ref_rules, run_rules = reference.rules(), run.rules()
    changed = {k: (v, run_rules[k]) for k, v in ref_rules.items()
               if k in run_rules and run_rules[k] != v}
    assert not changed, f"tasks led by another rule: {changed}"
    stale_tasks = run.stale_tasks()
    stale_links = sum(len(run.stale(t)) for t in run.active_tasks()) - sum(
        len(t.open_links) for t in stale_tasks)
    assert TOLERATE_STALE_TASKS or not (stale_tasks or stale_links), {
        "stale tasks": stale_tasks[:10], "stale links": stale_links}

    # Texts: never twice, in either run; none marked sent that did not go (nor the reverse).
    check_texts(reference, "reference")
    check_texts(run, "run")
    # Which texts go depends on what had been read when the dispatch ran (a welcome sent before
    # the recall was read; a day-of-release text naming the appointment that was next at that
    # moment), so the two runs' texts are compared where the end says what is wanted: everyone
    # who may be texted at the end of both runs had their welcome, unless a crash left it with
    # an unknown outcome (failed, reported, never re-sent).
    unknown = {(key.split("|", 1)[0], key) for key in run.unknown_outcome}
    welcomed = {pn for pn, kind in run.sent_kinds() if kind == "welcome"} | {
        pn for pn, key in unknown if key.endswith("|welcome")}
    missing = sorted((reference.textable & run.textable) - welcomed)
    assert not missing, f"welcome texts lost: {missing[:20]}"
    ref_kinds, run_kinds = reference.sent_kinds(), run.sent_kinds()
    # "Could not text" tasks: only for people a crash left with a text of unknown outcome.
    contact = {t.prison_number for t in run.tasks
               if t.status in ACTIVE and t.need == "text_contact"}
    ref_contact = {t.prison_number for t in reference.tasks
                   if t.status in ACTIVE and t.need == "text_contact"}
    assert contact <= ref_contact | {pn for pn, _ in unknown}, contact

    return {
        "open_alerts": len(reference.open_alerts), "alert_ids": len(reference.alerts),
        "open_tasks": sum(reference.live_work().values()), "lost": 0, "duplicated": 0,
        "stale_tasks": len(stale_tasks), "stale_links": stale_links,
        "texts": len(reference.texts), "texts_run": len(run.texts), "texts_sent_twice": 0,
        "texts_unknown_outcome": len(unknown),
        "texts_timing_only_ref": len(ref_kinds - run_kinds),
        "texts_timing_only_run": len(run_kinds - ref_kinds),
        "transient_alerts_one_run": len(set(reference.alerts) ^ set(run.alerts)),
        "closed_tasks_ref": reference.closed_tasks(), "closed_tasks_run": run.closed_tasks(),
        "escalated_ref": sum(1 for t in reference.tasks if t.escalations),
        "escalated_run": sum(1 for t in run.tasks if t.escalations),
    }


# ---------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Step:
    """Something done to a service ``at`` seconds after the stream starts: ``kill`` (SIGKILL,
    then start it again, as a supervisor would), ``kill-only`` (SIGKILL, not started again),
    ``stop`` (SIGTERM: it leaves cleanly) or ``start``."""

    at: float
    action: str
    service: str


def random_kills(seed: int, kills: int, over: float, services: tuple[str, ...] = SERVICES,
                 first: float = 2.0) -> list[Step]:
    """``kills`` SIGKILLs at seeded random moments in [first, over] seconds, every service at
    least once when there are enough kills, the rest at random."""
    rng = random.Random(seed)
    targets = list(services) * (kills // len(services))
    targets += rng.sample(list(services), kills - len(targets))
    rng.shuffle(targets)
    times = sorted(rng.uniform(first, over) for _ in range(kills))
    return [Step(at, "kill", name) for at, name in zip(times, targets, strict=True)]


def perform(cluster: Cluster, events: list[bytes], steps: Iterable[Step],
            rate: float | None, min_gap: float = 1.0) -> None:
    """Publish ``events`` (``rate`` a second) while another thread carries out ``steps``."""
    errors: list[BaseException] = []
    started = time.monotonic()

    def director() -> None:
        try:
            last = -min_gap
            for step in sorted(steps, key=lambda s: s.at):
                at = max(step.at, last + min_gap)
                delay = started + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if step.action == "kill":
                    cluster.kill(step.service)
                elif step.action == "kill-only":
                    cluster.kill(step.service, restart=False)
                    cluster.procs.pop(step.service)
                elif step.action == "stop":
                    cluster.stop(step.service)
                elif step.action == "start":
                    cluster.spawn(step.service)
                else:
                    raise ValueError(step.action)
                last = time.monotonic() - started
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            errors.append(exc)

    t = threading.Thread(target=director, name="director", daemon=True)
    t.start()
    cluster.publish(events, rate=rate)
    t.join()
    if errors:
        raise errors[0]


@dataclass
class Run:
    """A finished run: what it left, and its (stopped) deployment for further runs."""

    snapshot: Snapshot
    cluster: Cluster
    events: int
    seconds: float
    settled: dict[str, Any]

    def figures(self) -> dict[str, Any]:
        c = self.cluster
        return {"events": self.events, "seconds": round(self.seconds, 1),
                "kills": dict(c.kills), "stops": dict(c.stops),
                "kills_total": sum(c.kills.values())}


def run(bootstrap: str, tmp: Path, events: list[bytes], start: datetime, *,
        services: tuple[str, ...] = SERVICES, steps: Iterable[Step] = (),
        rate: float | None = None, settle_timeout: float = 600.0,
        database_url: str | None = None,
        watch: Callable[[Cluster], None] | None = None) -> Run:
    """Start ``services``, publish ``events`` while ``steps`` happen, wait until the run has
    finished, take its snapshot and stop every service (SIGTERM). ``watch(cluster)`` is called
    once the services have started."""
    cluster = Cluster.create(bootstrap, tmp, start, database_url=database_url)
    began = time.monotonic()
    try:
        cluster.start_all(services)
        if watch is not None:
            watch(cluster)
        perform(cluster, events, steps, rate)
        settled = cluster.settle(timeout=settle_timeout)
        snapshot = cluster.snapshot()
    finally:
        cluster.stop_all()
    return Run(snapshot, cluster, len(events), time.monotonic() - began, settled)
