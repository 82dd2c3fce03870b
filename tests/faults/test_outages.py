"""Dependencies failing (issue 8, item 4): the broker unreachable at start and mid-run, the
database unreachable, Twilio timing out and answering 429 and 5xx for a share of calls.
Everything must recover by itself, lose nothing, send nothing twice, and show the failures in
logs and metrics.

How the faults are made:
- broker: our own Tansu behind a :class:`~tests.faults.proxy.TcpProxy`, advertised at the
  proxy's address so every client (the Faust worker subprocess, both consumers, the test's own
  producers) reconnects through it. ``cut()`` drops every connection and refuses new ones.
- PostgreSQL: the database URL points at a proxy in front of 127.0.0.1:5432, cut the same way.
- SQLite: another connection holds ``BEGIN EXCLUSIVE`` (writers wait out the busy timeout,
  then fail with "database is locked").
- Twilio: the local Twilio-compatible server's :class:`Faults` (answers after the client's
  timeout, requests dropped, 429, 500/503, 500 after storing the message).

The pipeline is the journeys harness (tests/journeys/world.py): the real stream worker
(subprocess), the alerts -> tasks consumer, and here the whole ``ttg notify`` service
(:class:`~consumers.notifications.service.NotifyService`: consumer, APScheduler dispatch job,
reminder-event publisher) texting through the real ``twilio`` library to the local server.

"Nothing lost, nothing duplicated" is checked per person against people published after the
last fault (the control group, same event shapes): the same open tasks and open alerts, each
alert linked to one task, no dead letters, every reminder planned, and at the Twilio server
every due text stored exactly once (counted per reminder id).

Default run: short outages (8 s). ``./dev slow tests/faults/test_outages.py``: 30 s outages and
more events.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from consumers.notifications.dispatch import Dispatcher
from consumers.notifications.sender import SendError, TwilioBackend
from consumers.notifications.service import NotifyService, build_scheduler
from infra import kafka as infra_kafka
from infra.broker import EmbeddedBroker, free_port
from infra.config import Settings
from infra.database import make_engine, migrate
from infra.kafka import make_producer
from infra.models.messages import Reminder
from infra.models.tasks import Task, TaskAlert
from scheduler.jobstore import ResilientJobStore
from scheduler.reminders import add_reminder_jobs
from schemas.codec import encode
from schemas.envelope import Envelope
from schemas.events import input_family
from tests.faults.proxy import TcpProxy
from tests.journeys.world import World, event
from tests.notifications.builders import apply as apply_events
from tests.notifications.builders import appointment, contact, release_date, released
from tests.notifications.fake_twilio import FakeTwilio, Faults

#: Monday 23 November 2026, 10:00 (GMT = UTC).
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
#: Ofcom's drama numbers: distinct per texted person, all on the allow list.
MOBILES = [f"+447700900{i:03d}" for i in range(1000)]
SHORT, LONG = 8.0, 30.0

log = logging.getLogger(__name__)


# ====================================================================== people and outcomes


@dataclass(frozen=True)
class Person:
    """A plain person (release in 20 days, no address: housing tasks) or, with a mobile, one
    released two days ago with consent and a booked appointment (a welcome text is due now)."""

    pn: str
    mobile: str | None = None

    @property
    def kind(self) -> str:
        return "texted" if self.mobile else "plain"

    def events(self) -> list[Envelope]:
        if self.mobile is None:
            return [
                event("case_note.accommodation", self.pn, START - timedelta(days=1),
                      status="none", local_authority="Peterborough"),
                event("release_date.changed", self.pn, START - timedelta(days=30),
                      new_date=(START + timedelta(days=20)).date(),
                      release_type="conditional_release"),
            ]
        out = START - timedelta(days=2)
        national = "0" + self.mobile[3:7] + " " + self.mobile[7:]
        return [
            event("release_date.changed", self.pn, out - timedelta(days=30),
                  new_date=out.date(), release_type="conditional_release"),
            event("custody.release", self.pn, out, prison="PBI",
                  local_authority="Huntingdonshire"),
            event("case_note.contact", self.pn, out, mobile=national, sms_consent=True),
            event("case_note.appointment", self.pn, out, appointment_id="a1", action="booked",
                  at=START + timedelta(days=2, hours=4), place="Probation office, 1 High St",
                  with_whom="Sam"),
        ]


class Numbers:
    """Hands out prison numbers and mobiles, never the same twice in a test run."""

    def __init__(self) -> None:
        self.next_mobile = 0

    def people(self, letter: str, count: int, texted_every: int = 3) -> list[Person]:
        out = []
        for i in range(count):
            mobile = None
            if i % texted_every == 0:
                mobile, self.next_mobile = MOBILES[self.next_mobile], self.next_mobile + 1
            out.append(Person(f"{letter}{i:04d}{'TX' if mobile else 'PL'}", mobile))
        return out


class Upstream:
    """The prison side: publishes people's events in order and makes sure the broker has each
    one, sending again what it did not acknowledge (readers deduplicate on event_id)."""

    def __init__(self, settings: Settings, topics: Any) -> None:
        self.topics = topics
        self.producer = make_producer(settings, broker_wait_s=None,
                                      delivery_timeout_ms=180_000, request_timeout_ms=10_000)
        self.pending: list[tuple[Envelope, Any]] = []
        self.events = 0
        self.resent = 0

    def send(self, people: list[Person], pace: float = 0.0) -> None:
        for p in people:
            for e in p.events():
                self._send(e)
                self.events += 1
            if pace:
                time.sleep(pace)

    def _send(self, e: Envelope) -> None:
        topic = self.topics.for_family(input_family(e.type))
        self.pending.append((e, self.producer.send(topic, key=e.key, value=encode(e))))

    def settle(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pending:
            assert time.monotonic() < deadline, f"{len(self.pending)} events never stored"
            pending, self.pending = self.pending, []
            for e, future in pending:
                try:
                    future.get(timeout=max(1.0, deadline - time.monotonic()))
                except Exception:  # noqa: BLE001 - not stored: a source system sends again
                    self.resent += 1
                    self._send(e)

    def close(self) -> None:
        self.settle()
        self.producer.close()


def open_tasks(world: World, pns: list[str]) -> dict[str, Counter[tuple[str, str]]]:
    with Session(world.engine) as s:
        rows = s.exec(select(Task).where(Task.prison_number.in_(pns))).all()  # type: ignore[attr-defined]
    out: dict[str, Counter[tuple[str, str]]] = {pn: Counter() for pn in pns}
    for t in rows:
        if t.active_key:
            out[t.prison_number][(t.need, t.rule_id)] += 1
    return out


def reminder_rows(world: World, pns: list[str]) -> dict[str, list[Reminder]]:
    with Session(world.engine) as s:
        rows = s.exec(select(Reminder).where(Reminder.prison_number.in_(pns))).all()  # type: ignore[attr-defined]
    out: dict[str, list[Reminder]] = {pn: [] for pn in pns}
    for r in rows:
        out[r.prison_number or ""].append(r)
    return out


def done(world: World, people: list[Person]) -> bool:
    """Every person has an open task, and every texted person's welcome has been sent."""
    pns = [p.pn for p in people]
    tasks = open_tasks(world, pns)
    texted = reminder_rows(world, [p.pn for p in people if p.mobile])
    return all(tasks[pn] for pn in pns) and all(
        any(r.kind == "welcome" and r.state == "sent" for r in rows) for rows in texted.values())


def wait_done(world: World, people: list[Person], since: float, timeout: float = 180.0,
              what: str = "") -> float:
    """Wait until ``people`` are done; returns the seconds since ``since`` (a restore)."""
    try:
        world.wait_for(f"every person's task and text {what}", lambda: done(world, people),
                       timeout=timeout)
    except AssertionError as exc:
        pns = [p.pn for p in people]
        tasks, reminders = open_tasks(world, pns), reminder_rows(world, pns)
        waiting = {p.pn: (dict(tasks[p.pn]), {r.kind: r.state for r in reminders[p.pn]})
                   for p in people if not done(world, [p])}
        raise AssertionError(f"{exc}\nnot done: {waiting}") from None
    return time.monotonic() - since


def alert_states(world: World) -> tuple[dict[str, dict[str, bool]], int]:
    """Per person: rule -> open?, from the alerts topic; and how many records repeat an event
    id (a producer retry; the tasks consumer applies each event id once)."""
    states: dict[str, dict[str, bool]] = {}
    ids: Counter[str] = Counter()
    for r in world.records(world.topics.alerts, timeout=30):
        e = json.loads(r.value)
        ids[e["event_id"]] += 1
        a = e["alert"]
        states.setdefault(a["prison_number"], {})[a["rule_id"]] = e["type"] != "alert.resolved"
    return states, sum(n - 1 for n in ids.values())


def settle(world: World, quiet: float = 4.0, timeout: float = 120.0) -> None:
    """Wait until alerts, tasks and reminders stop changing for ``quiet`` seconds."""
    last: tuple[int, ...] | None = None
    since = time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        world.check()
        with Session(world.engine) as s:
            now = (len(world.records(world.topics.alerts, timeout=20)),
                   len(s.exec(select(Task.id)).all()),
                   len(s.exec(select(Reminder.id, Reminder.state)
                              .where(Reminder.state != "scheduled")).all()))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.5)
    raise AssertionError(f"the pipeline did not settle: {last}")


def check_outcomes(world: World, fake: FakeTwilio, faulted: list[Person],
                   control: list[Person]) -> dict[str, Any]:
    """Compare every faulted person with the control group; returns lost/duplicated counts
    (asserted zero by the caller, with the details)."""
    everyone = faulted + control
    pns = [p.pn for p in everyone]
    tasks = open_tasks(world, pns)
    alerts, repeated_records = alert_states(world)
    reminders = reminder_rows(world, pns)
    expected_tasks: dict[str, Counter[tuple[str, str]]] = {}
    expected_alerts: dict[str, set[str]] = {}
    for p in control:
        open_alerts = {rule for rule, is_open in alerts.get(p.pn, {}).items() if is_open}
        expected_tasks.setdefault(p.kind, tasks[p.pn])
        expected_alerts.setdefault(p.kind, open_alerts)
        assert tasks[p.pn] == expected_tasks[p.kind], ("control group disagrees", p, tasks[p.pn])
        assert open_alerts == expected_alerts[p.kind], ("control group disagrees", p)
    assert set(expected_tasks) == {"plain", "texted"} and all(expected_tasks.values())

    lost: list[Any] = []
    duplicated: list[Any] = []
    for p in faulted:
        want, got = expected_tasks[p.kind], tasks[p.pn]
        if want - got:
            lost.append((p.pn, "tasks", dict(want - got)))
        if got - want:
            duplicated.append((p.pn, "tasks", dict(got - want)))
        open_alerts = {rule for rule, is_open in alerts.get(p.pn, {}).items() if is_open}
        if expected_alerts[p.kind] - open_alerts:
            lost.append((p.pn, "alerts", expected_alerts[p.kind] - open_alerts))
        if open_alerts - expected_alerts[p.kind]:
            duplicated.append((p.pn, "alerts", open_alerts - expected_alerts[p.kind]))

    # Each alert is linked to one task only.
    with Session(world.engine) as s:
        links = s.exec(select(TaskAlert.alert_id, Task.prison_number)
                       .join(Task, Task.id == TaskAlert.task_id)  # type: ignore[arg-type]
                       .where(Task.prison_number.in_(pns))).all()  # type: ignore[attr-defined]
    per_alert = Counter(alert_id for alert_id, _ in links)
    duplicated += [("link", a, n) for a, n in per_alert.items() if n > 1]

    # Reminders planned as for the control group (same keys, same states: the due ones sent),
    # once each; at Twilio, each sent reminder stored exactly once and nothing else.
    def planned(pn: str) -> dict[str, str]:
        return {r.kind + (f"|{r.appointment_id}" if r.appointment_id else ""): r.state
                for r in reminders[pn]}

    expected_reminders: dict[str, str] | None = None
    for p in control:
        if p.mobile is not None:
            expected_reminders = expected_reminders or planned(p.pn)
            assert planned(p.pn) == expected_reminders, ("control group disagrees", p)
    assert expected_reminders and "sent" in expected_reminders.values()
    sends = fake.sends_per_reminder()
    sent_ids = set()
    for p in everyone:
        if p.mobile is None:
            continue
        keys = Counter(r.kind + (f"|{r.appointment_id}" if r.appointment_id else "")
                       for r in reminders[p.pn])
        duplicated += [(p.pn, "reminder", k, n) for k, n in keys.items() if n > 1]
        got = planned(p.pn)
        if got != expected_reminders:
            lost.append((p.pn, "reminders", got))
        for r in reminders[p.pn]:
            if r.state == "sent":
                sent_ids.add(r.id)
                if sends[r.id] == 0:
                    lost.append((p.pn, "text never reached Twilio", r.kind))
    # Other texts (e.g. the staff job's "urgent task" texts to hub staff) are fine when their
    # reminder row says sent; each still only once.
    with Session(world.engine) as s:
        sent_ids |= set(s.exec(select(Reminder.id).where(Reminder.state == "sent")).all())
    duplicated += [("text", rid, n) for rid, n in sends.items() if n > 1]
    duplicated += [("text not marked sent", rid) for rid in set(sends) - sent_ids]

    letters = world.records(world.topics.dead_letter, timeout=10)
    lost += [("dead letter", json.loads(r.value)["reason"][:200]) for r in letters]
    return {"lost": len(lost), "duplicated": len(duplicated), "lost_detail": lost[:10],
            "duplicated_detail": duplicated[:10], "texts": sum(sends.values()),
            "repeated_alert_records": repeated_records}


# ====================================================================== the running system


@dataclass
class Pipeline:
    """A World plus the local Twilio server and the notify service running in it."""

    world: World
    fake: FakeTwilio
    notify: NotifyService | None = None
    started_at: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        self.world.close()
        self.fake.stop()


def twilio_settings(fake: FakeTwilio) -> dict[str, Any]:
    return {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": SecretStr(fake.auth_token),
        "twilio_from_number": "+447400000001", "twilio_base_url": fake.base_url,
        "hub_public_url": "https://hub.example.test", "sms_allow_list": MOBILES,
        "twilio_timeout_seconds": 2.0, "sms_dispatch_interval_seconds": 0.5,
        "sms_retry_base_seconds": 0.5,
    }


def start_pipeline(bootstrap: str, tmp: Path, *, database_url: str | None = None,
                   before_services: Callable[[World], None] | None = None,
                   ready_timeout: float = 90.0, **overrides: Any) -> Pipeline:
    fake = FakeTwilio().start()
    holder: dict[str, NotifyService] = {}

    def notify(world: World) -> None:
        service = NotifyService(world.settings, world.engine, clock=world.clock,
                                runtime_name=f"notify-{uuid.uuid4().hex[:8]}",
                                poll_timeout_ms=300)
        holder["service"] = service
        service.run(world.stop)

    def before(world: World) -> None:
        fake.clock = world.clock
        if before_services is not None:
            before_services(world)

    try:
        world = World.start(bootstrap, tmp, START, database_url=database_url,
                            settings_overrides={**twilio_settings(fake), **overrides},
                            before_services=before, notify=notify, ready_timeout=ready_timeout)
    except BaseException:
        fake.stop()
        raise
    pipeline = Pipeline(world, fake)
    pipeline.notify = holder.get("service")
    return pipeline


def publish_during(upstream: Upstream, people: list[Person], seconds: float) -> threading.Thread:
    """Publish ``people`` evenly over ``seconds`` in the background."""
    pace = seconds / max(1, len(people))
    t = threading.Thread(target=upstream.send, args=(people, pace), daemon=True)
    t.start()
    return t


def report(name: str, figures: dict[str, Any]) -> None:
    print(f"\noutage figures [{name}]: " + json.dumps(
        {k: v for k, v in figures.items() if not k.endswith("_detail")}, default=str))


# ====================================================================== broker


@pytest.fixture(scope="module")
def proxied_broker() -> Iterator[tuple[EmbeddedBroker, TcpProxy]]:
    """Our own Tansu (cutting it must not disturb other tests), reached only through a proxy."""
    port = free_port()
    proxy = TcpProxy(port).start()
    broker = EmbeddedBroker(port=port, advertised=proxy.address).start()
    try:
        yield broker, proxy
    finally:
        broker.stop()
        proxy.close()


def broker_outages(proxied: tuple[EmbeddedBroker, TcpProxy], tmp: Path, outage: float,
                   at_start: int, mid_run: int, control: int,
                   caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    broker, proxy = proxied
    numbers = Numbers()
    before, during, after = (numbers.people("A", at_start), numbers.people("B", mid_run),
                             numbers.people("C", control))
    waits_before = infra_kafka.broker_waits.clients
    restored: dict[str, float] = {}
    upstream_box: dict[str, Upstream] = {}

    def cut_before_services(world: World) -> None:
        upstream = upstream_box["u"] = Upstream(world.settings, world.topics)
        upstream.send(before)  # published while the broker is up; then it goes away
        upstream.settle()

        def restore() -> None:
            proxy.restore()
            restored["start"] = time.monotonic()

        proxy.cut()
        threading.Timer(outage, restore).start()

    pipeline = start_pipeline(broker.bootstrap, tmp, before_services=cut_before_services,
                              ready_timeout=outage + 120)
    world = pipeline.world
    try:
        upstream = upstream_box["u"]
        recovery_start = wait_done(world, before, restored["start"], what="(broker at start)")
        waited_at_start = infra_kafka.broker_waits.clients - waits_before

        # Mid-run: people keep arriving at an even pace; the broker goes for `outage` seconds.
        publisher = publish_during(upstream, during, 2 * outage)
        time.sleep(outage / 2)
        proxy.cut()
        time.sleep(outage)
        proxy.restore()
        restored["mid"] = time.monotonic()
        publisher.join()
        upstream.settle()
        recovery_mid = wait_done(world, during, restored["mid"], what="(broker mid-run)")

        upstream.send(after)
        upstream.close()
        wait_done(world, after, time.monotonic(), what="(control group)")
        settle(world)
        figures = check_outcomes(world, pipeline.fake, before + during, after)
        world.check()
        assert pipeline.notify is not None and pipeline.notify.consumer is not None
        stats = pipeline.notify.consumer.stats
        logs = caplog.text
        figures |= {
            "outage_s": outage, "outages": proxy.cuts, "events_in": upstream.events,
            "events_resent_by_upstream": upstream.resent,
            "people": len(before + during + after),
            "recovery_at_start_s": round(recovery_start, 1),
            "recovery_mid_run_s": round(recovery_mid, 1),
            "clients_that_waited_at_start": waited_at_start,
            "notify_broker_outages": stats.broker_outages,
            "notify_broker_outage_s": round(stats.broker_outage_seconds, 1),
            "notify_commit_failures": stats.commit_failures,
            "reminder_publish_failures": pipeline.notify.stats.publish_failures,
        }
        report(f"broker {outage:.0f}s", figures)
        assert figures["lost"] == 0, figures["lost_detail"]
        assert figures["duplicated"] == 0, figures["duplicated_detail"]
        # Visible: counted, and logged by us, by kafka-python and by the worker (aiokafka).
        assert waited_at_start >= 2  # at least the tasks publisher and the notify consumer
        assert stats.broker_outages >= 1 and stats.broker_outage_seconds >= outage / 2
        assert "unreachable" in logs and "no connection to the Kafka broker" in logs
        worker_log = (world.tmp / "worker.log").read_text(errors="replace")
        assert "Connect call failed" in worker_log or "Unable connect" in worker_log
        return figures
    finally:
        pipeline.close()


@pytest.mark.kafka
@pytest.mark.timeout(420)
def test_broker_unreachable_at_start_and_mid_run(proxied_broker, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    figures = broker_outages(proxied_broker, tmp_path, SHORT, at_start=12, mid_run=24,
                             control=6, caplog=caplog)
    assert figures["events_in"] >= 80


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.timeout(900)
def test_broker_unreachable_30s_at_start_and_mid_run(proxied_broker, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    figures = broker_outages(proxied_broker, tmp_path, LONG, at_start=90, mid_run=150,
                             control=12, caplog=caplog)
    assert figures["events_in"] >= 650


# ====================================================================== database


@pytest.fixture
def pg_behind_proxy(postgres_admin: Engine) -> Iterator[tuple[str, TcpProxy]]:
    """A fresh PostgreSQL database reached through a proxy that can be cut."""
    name = f"ttg_o{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    host, port = postgres_admin.url.host or "127.0.0.1", postgres_admin.url.port or 5432
    proxy = TcpProxy(port, target_host=host).start()
    url = postgres_admin.url.set(host="127.0.0.1", port=proxy.port, database=name)
    try:
        yield url.render_as_string(hide_password=False), proxy
    finally:
        proxy.close()
        with postgres_admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :n"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


class SqliteLock:
    """Holds the write lock of a SQLite database (``BEGIN EXCLUSIVE``) while cut."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self.cuts = 0

    def cut(self) -> None:
        self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")
        self.cuts += 1

    def restore(self) -> None:
        assert self.conn is not None
        self.conn.execute("ROLLBACK")
        self.conn.close()
        self.conn = None


def database_outage(bootstrap: str, tmp: Path, database_url: str, cut: Callable[[], None],
                    restore: Callable[[], None], outage: float, during: int, control: int,
                    caplog: pytest.LogCaptureFixture, name: str,
                    before_services: Callable[[World], None] | None = None,
                    fails_fast: bool = True) -> dict[str, Any]:
    numbers = Numbers()
    faulted, after = numbers.people("D", during), numbers.people("E", control)
    # The tasks consumer runs with its default attempts: an outage is not counted against them
    # (consumers/alerts.py; test_tasks_consumer_default_attempts_ride_out_a_database_outage).
    pipeline = start_pipeline(bootstrap, tmp, database_url=database_url,
                              before_services=before_services)
    world = pipeline.world
    try:
        upstream = Upstream(world.settings, world.topics)
        publisher = publish_during(upstream, faulted, 2 * outage)
        time.sleep(outage / 2)
        cut()
        time.sleep(outage)
        restore()
        restored = time.monotonic()
        publisher.join()
        upstream.settle()
        recovery = wait_done(world, faulted, restored, what=f"({name})")

        upstream.send(after)
        upstream.close()
        wait_done(world, after, time.monotonic(), what="(control group)")
        settle(world)
        figures = check_outcomes(world, pipeline.fake, faulted, after)
        world.check()
        assert pipeline.notify is not None and pipeline.notify.consumer is not None
        assert pipeline.notify.runtime is not None and world.tasks_consumer is not None
        stats = pipeline.notify.consumer.stats
        dispatch = pipeline.notify.runtime.dispatcher.totals
        tasks_stats = world.tasks_consumer.stats
        figures |= {
            "outage_s": outage, "events_in": upstream.events, "people": len(faulted + after),
            "recovery_s": round(recovery, 1),
            "notify_records_held": stats.database_waits, "notify_outages": stats.outages,
            "notify_outage_s": round(stats.outage_seconds, 1),
            "dispatch_runs_cut_short": dispatch.errors["database"],
            "job_store_failures": pipeline.notify.jobstore.failures,
            "tasks_consumer_retries": tasks_stats.retried,
            "tasks_consumer_database_waits": tasks_stats.database_waits,
            "tasks_consumer_dead_lettered": tasks_stats.dead_lettered,
            "reminder_publish_failures": pipeline.notify.stats.publish_failures,
        }
        report(name, figures)
        assert figures["lost"] == 0, figures["lost_detail"]
        assert figures["duplicated"] == 0, figures["duplicated_detail"]
        assert tasks_stats.dead_lettered == 0
        # Visible in metrics and logs.
        counted = (stats.database_waits, pipeline.notify.jobstore.failures,
                   dispatch.errors["database"], tasks_stats.database_waits,
                   pipeline.notify.stats.publish_failures)
        logs = caplog.text
        if fails_fast:
            assert stats.database_waits >= 1 and stats.outages >= 1
            # The dispatch job reads its job store in the same database: during the outage it
            # is not started at all (the store's failures), or a run already going stops early.
            assert pipeline.notify.jobstore.failures + dispatch.errors["database"] >= 1
            assert tasks_stats.database_waits >= 1
            assert "database unavailable" in logs and "working again after" in logs
            assert "waits: database unavailable" in logs  # the tasks consumer's own warning
        else:
            # Writers wait out SQLite's busy timeout one at a time, so which of them gives up
            # first (and is counted) depends on timing; at least one does, and says so.
            assert sum(counted) >= 1, counted
            assert "database is locked" in logs
        return figures
    finally:
        pipeline.close()


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_postgres_unreachable_mid_run(broker, pg_behind_proxy, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    url, proxy = pg_behind_proxy
    figures = database_outage(broker.bootstrap, tmp_path, url, proxy.cut, proxy.restore,
                              SHORT, during=24, control=6, caplog=caplog,
                              name=f"postgres {SHORT:.0f}s")
    assert figures["events_in"] >= 60


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_postgres_unreachable_30s_mid_run(broker, pg_behind_proxy, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    url, proxy = pg_behind_proxy
    figures = database_outage(broker.bootstrap, tmp_path, url, proxy.cut, proxy.restore,
                              LONG, during=150, control=12, caplog=caplog,
                              name=f"postgres {LONG:.0f}s")
    assert figures["events_in"] >= 400


def short_busy_timeout(ms: int) -> Callable[[World], None]:
    """Lower SQLite's busy timeout (30 s in infra.database) so a short lock outlasts it."""

    def hook(world: World) -> None:
        @sa_event.listens_for(world.engine, "connect")
        def _busy(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.execute(f"PRAGMA busy_timeout={ms}")

        world.engine.dispose()

    return hook


@pytest.mark.kafka
@pytest.mark.timeout(300)
def test_sqlite_locked_longer_than_its_busy_timeout(broker, tmp_path, caplog) -> None:
    """Short form: busy timeout lowered to 1 s, the database locked for 8 s."""
    caplog.set_level(logging.WARNING)
    lock = SqliteLock(tmp_path / "ttg.db")
    figures = database_outage(broker.bootstrap, tmp_path, f"sqlite:///{tmp_path / 'ttg.db'}",
                              lock.cut, lock.restore, SHORT, during=24, control=6,
                              caplog=caplog, name=f"sqlite locked {SHORT:.0f}s",
                              before_services=short_busy_timeout(1_000))
    assert figures["events_in"] >= 60


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.timeout(900)
def test_sqlite_locked_35s_past_the_real_busy_timeout(broker, tmp_path, caplog) -> None:
    """The real 30 s busy timeout, the database locked for 35 s."""
    caplog.set_level(logging.WARNING)
    lock = SqliteLock(tmp_path / "ttg.db")
    figures = database_outage(broker.bootstrap, tmp_path, f"sqlite:///{tmp_path / 'ttg.db'}",
                              lock.cut, lock.restore, 35.0, during=100, control=12,
                              caplog=caplog, name="sqlite locked 35s", fails_fast=False)
    assert figures["events_in"] >= 250


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_tasks_consumer_default_attempts_ride_out_a_database_outage(
    broker, pg_behind_proxy, tmp_path,
) -> None:
    from consumers.alerts import AlertsConsumer
    from infra.directory import load_file
    from infra.kafka import ensure_topics
    from schemas.common import Pathway, Severity, StaffRole
    from schemas.outputs import Alert, AlertEvent
    from tests.journeys.world import EXAMPLE_HUBS

    url, proxy = pg_behind_proxy
    settings = Settings(_env_file=None, environment="test", kafka_bootstrap=broker.bootstrap,
                        topic_prefix=f"o{uuid.uuid4().hex[:10]}.", topic_partitions=3,
                        kafka_session_timeout_ms=2_000, database_url=url)
    engine = make_engine(url)
    migrate(engine)
    load_file(engine, EXAMPLE_HUBS)
    ensure_topics(settings)
    topic = f"{settings.topic_prefix}alerts"
    people = [f"F{i:04d}AL" for i in range(12)]

    def alert(pn: str) -> AlertEvent:
        return AlertEvent(type="alert.raised", occurred_at=START, alert=Alert(
            alert_id=uuid.uuid5(uuid.NAMESPACE_URL, pn), prison_number=pn,
            rule_id="accommodation.none", need="accommodation",
            pathway=Pathway.ACCOMMODATION, severity=Severity.WARNING,
            owner_role=StaffRole.HOUSING_OFFICER, due_at=START + timedelta(days=1),
            reason="No confirmed accommodation", practice="test",
            local_authority="Peterborough"))

    consumer = AlertsConsumer(settings, engine)  # the defaults: 5 attempts, 1 s backoff
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    producer = make_producer(settings)
    try:
        for pn in people[:2]:
            producer.send(topic, key=pn.encode(), value=encode(alert(pn))).get(timeout=30)
        deadline = time.monotonic() + 60
        while not all(tasks_of(engine, pn) for pn in people[:2]):
            assert time.monotonic() < deadline, "the consumer did not start"
            time.sleep(0.25)
        proxy.cut()
        for pn in people[2:]:
            producer.send(topic, key=pn.encode(), value=encode(alert(pn))).get(timeout=30)
        time.sleep(SHORT)
        proxy.restore()
        deadline = time.monotonic() + 60
        while (not all(tasks_of(engine, pn) for pn in people) and time.monotonic() < deadline
               and not consumer.stats.dead_lettered):
            time.sleep(0.25)
    finally:
        producer.close()
        stop.set()
        thread.join(timeout=30)
        consumer.publisher.close()
        engine.dispose()
    assert consumer.stats.dead_lettered == 0, consumer.stats
    assert consumer.stats.database_waits > 0, consumer.stats  # the outage was seen, and waited
    assert all(tasks_of(engine, pn) for pn in people)


def tasks_of(engine: Engine, pn: str) -> list[Task]:
    with Session(engine) as s:
        return list(s.exec(select(Task).where(Task.prison_number == pn)).all())


# ====================================================================== the scheduler


RUNS: Counter[str] = Counter()


def tick(key: str) -> None:
    """A job for the job-store test (module level: the persistent store keeps a reference)."""
    RUNS[key] += 1


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_scheduler_outlives_the_database_going_away_mid_cycle(pg_behind_proxy) -> None:
    """APScheduler reads the due jobs, then (unguarded) stores each job's next run time: the
    database going away between the two used to end its thread for good, silently. Here the
    database goes away at exactly that moment; jobs must run again once it is back."""
    from scheduler.service import TaskScheduler

    url, proxy = pg_behind_proxy
    engine = make_engine(url)
    migrate(engine)
    settings = Settings(_env_file=None, environment="test", database_url=url)
    key = uuid.uuid4().hex
    cut_at: list[float] = []

    class CutAfterReading(ResilientJobStore):
        def get_due_jobs(self, now: datetime) -> list[Any]:
            jobs = super().get_due_jobs(now)
            if jobs and not cut_at and RUNS[key] >= 2:
                cut_at.append(time.monotonic())
                proxy.cut_for(3.0)
            return jobs

    store = CutAfterReading(engine=engine, tablename="outage_test_jobs")
    scheduler = build_scheduler(settings, engine, store)
    scheduler.add_job(f"{__name__}:tick", "interval", seconds=0.2, id="tick",
                      kwargs={"key": key})
    scheduler.start()
    try:
        deadline = time.monotonic() + 60
        while not (cut_at and time.monotonic() > cut_at[0] + 3.0):
            assert time.monotonic() < deadline, "the fault was never injected"
            time.sleep(0.1)
        after_restore = RUNS[key]
        while RUNS[key] < after_restore + 3:
            assert time.monotonic() < deadline, (
                "the scheduler stopped running jobs after the database came back")
            time.sleep(0.1)
    finally:
        scheduler.shutdown(wait=False)
        engine.dispose()
    assert store.failures >= 1
    # The tasks scheduler (`ttg scheduler`) uses the same store.
    tasks = TaskScheduler(settings, make_engine(url), job_modules=())
    assert isinstance(tasks.aps._lookup_jobstore("default"), ResilientJobStore)


# ====================================================================== Twilio


class ShiftClock:
    """Real time from ``start``, plus jumps (to make the next reminders due)."""

    def __init__(self, start: datetime) -> None:
        self.start, self._t0, self.shift = start, time.monotonic(), timedelta(0)

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._t0) + self.shift

    def jump_to(self, at: datetime) -> None:
        self.shift += at - self()


def twilio_faults(database_url: str, people: int, faults: Faults,
                  caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """Texts for ``people`` (welcome now, evening-before Tue 18:00, on-the-day Wed 08:00) sent
    by the ``ttg notify`` dispatch job on its APScheduler, through the real twilio library, to a
    server failing a share of calls."""
    clock = ShiftClock(START)
    fake = FakeTwilio(clock=clock, faults=faults).start()
    engine = make_engine(database_url)
    migrate(engine)
    settings = Settings(_env_file=None, environment="test", database_url=database_url,
                        **{**twilio_settings(fake), "twilio_timeout_seconds": 0.5,
                           "sms_retry_base_seconds": 0.2,
                           "sms_dispatch_interval_seconds": 0.2})
    assert faults.delay > settings.twilio_timeout_seconds
    wed_10 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    pns = [f"T{i:04d}WX" for i in range(people)]
    for i, pn in enumerate(pns):
        apply_events(engine, settings, clock(), released(pn, clock() - timedelta(hours=1)),
                     contact(pn, clock(), MOBILES[i]), appointment(pn, clock(), "a1", when=wed_10))
    scheduler = build_scheduler(settings, engine)
    runtime = add_reminder_jobs(scheduler, settings, engine, backend=TwilioBackend(settings),
                                clock=clock, runtime=f"twilio-{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    phases: dict[str, float] = {}

    def states(kind: str) -> Counter[str]:
        with Session(engine) as s:
            return Counter(s.exec(select(Reminder.state).where(Reminder.kind == kind)).all())

    scheduler.start()
    try:
        for kind, at in (("welcome", None), ("evening_before", datetime(2026, 11, 24, 18, 0,
                                                                          tzinfo=UTC)),
                         ("hours_before", datetime(2026, 11, 25, 8, 0, tzinfo=UTC))):
            if at is not None:
                clock.jump_to(at)
            t0 = time.monotonic()
            deadline = t0 + 60 + people * 2.0
            while (got := states(kind))["sent"] < people:
                assert "failed" not in got, (kind, got)
                assert time.monotonic() < deadline, (kind, got, fake.injected)
                time.sleep(0.2)
            phases[kind] = round(time.monotonic() - t0, 1)
    finally:
        scheduler.shutdown(wait=True)
    with Session(engine) as s:
        rows = s.exec(select(Reminder)).all()
    engine.dispose()
    fake.stop()

    totals, injected = runtime.dispatcher.totals, fake.injected
    sends = fake.sends_per_reminder()
    sent_ids = {r.id for r in rows if r.state == "sent"}
    lost = [(r.prison_number, r.kind, r.state) for r in rows if r.state != "sent"]
    lost += [("never reached Twilio", rid) for rid in sent_ids if sends[rid] == 0]
    duplicated = [(rid, n) for rid, n in sends.items() if n > 1]
    duplicated += [("stored but not marked sent", rid) for rid in set(sends) - sent_ids]
    lookups = sum(n for k, n in injected.items() if not k.startswith("create:"))
    figures = {
        "texts_due": len(rows), "texts_sent": len(sent_ids), "lost": len(lost),
        "duplicated": len(duplicated), "calls": len(fake.requests),
        "creates": len(fake.creates()), "faults_injected": dict(sorted(injected.items())),
        "faults_total": fake.injected_total(),
        "errors_counted": dict(sorted(totals.errors.items())), "retried": totals.retried,
        "found_already_sent": totals.found_sent,
        "max_attempts_one_text": max(r.attempts for r in rows),
        "seconds_per_phase": phases, "wall_s": round(time.monotonic() - started, 1),
    }
    report(f"twilio {people} people", figures)
    assert not lost, lost[:10]
    assert not duplicated, duplicated[:10]
    # Every fault is counted, by kind, in the dispatcher's metrics ...
    assert totals.errors["timeout"] == injected["create:timeout"] + injected["create:timeout_lost"]
    assert totals.errors["throttled"] == injected["create:throttled"]
    assert totals.errors["server_error"] == (injected["create:server_error"]
                                             + injected["create:server_error_stored"])
    assert sum(n for k, n in totals.errors.items() if k.startswith("lookup:")) == lookups
    assert totals.retried == sum(totals.errors.values()) and totals.failed == 0
    # ... texts Twilio had stored without telling us were found, not sent again ...
    assert totals.found_sent == injected["create:timeout"] + injected["create:server_error_stored"]
    # ... and logged, by kind.
    for kind in totals.errors:
        assert f"({kind.split(':')[-1]}); retry" in caplog.text, kind
    for kind in ("timeout", "timeout_lost", "throttled", "server_error", "server_error_stored"):
        assert injected[f"create:{kind}"] >= 1, (kind, injected)
    return figures


def short_faults() -> Faults:
    return Faults(timeout=0.06, timeout_lost=0.04, throttled=0.08, server_error=0.06,
                  server_error_stored=0.05, delay=0.9, max_per_recipient=4, seed=41)


@pytest.mark.timeout(300)
def test_twilio_timeouts_429_and_5xx_send_every_text_once(database_url, caplog) -> None:
    caplog.set_level(logging.WARNING)
    figures = twilio_faults(database_url, 24, short_faults(), caplog)
    assert figures["texts_due"] == 72 and figures["faults_total"] >= 12


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_twilio_failing_often_over_600_texts(database_url, caplog) -> None:
    caplog.set_level(logging.WARNING)
    faults = Faults(timeout=0.1, timeout_lost=0.05, throttled=0.15, server_error=0.1,
                    server_error_stored=0.05, delay=0.9, max_per_recipient=4, seed=42)
    figures = twilio_faults(database_url, 200, faults, caplog)
    assert figures["texts_due"] == 600 and figures["faults_total"] >= 200


# ---------------------------------------------------------------------- dispatcher details


@pytest.fixture
def one_text(database_url: str) -> Iterator[tuple[Engine, Settings, ShiftClock, FakeTwilio]]:
    clock = ShiftClock(START)
    fake = FakeTwilio(clock=clock).start()
    engine = make_engine(database_url)
    migrate(engine)
    settings = Settings(_env_file=None, environment="test", database_url=database_url,
                        **{**twilio_settings(fake), "twilio_timeout_seconds": 0.5})
    apply_events(engine, settings, clock(), released("G0001LK", clock() - timedelta(hours=1)),
                 contact("G0001LK", clock(), MOBILES[0]))
    yield engine, settings, clock, fake
    fake.stop()
    engine.dispose()


def test_a_failing_lookup_after_a_timeout_is_retried_not_sent_blind(one_text) -> None:
    engine, settings, clock, fake = one_text
    dispatcher = Dispatcher(engine, TwilioBackend(settings), settings, clock)
    fake.faults = Faults(timeout=1.0, delay=0.9, ops=frozenset({"create"}))
    assert dispatcher.run_once().errors["timeout"] == 1  # Twilio stored it; we do not know
    fake.faults = Faults(throttled=1.0, ops=frozenset({"list"}))
    clock.jump_to(clock() + timedelta(minutes=1))
    report = dispatcher.run_once()  # used to raise out of the run, leaving the row 'sending'
    assert report.errors["lookup:throttled"] == 1 and report.retried == 1
    fake.faults = None
    clock.jump_to(clock() + timedelta(minutes=2))
    report = dispatcher.run_once()
    assert report.sent == 1 and report.found_sent == 1
    assert len(fake.creates()) == 1 and list(fake.sends_per_reminder().values()) == [1]


def test_a_5xx_is_checked_before_sending_again(one_text) -> None:
    """A 500 can come after Twilio stored the message: look before retrying."""
    engine, settings, clock, fake = one_text
    dispatcher = Dispatcher(engine, TwilioBackend(settings), settings, clock)
    fake.faults = Faults(server_error_stored=1.0, ops=frozenset({"create"}))
    assert dispatcher.run_once().errors["server_error"] == 1
    fake.faults = None
    clock.jump_to(clock() + timedelta(minutes=1))
    assert dispatcher.run_once().found_sent == 1
    assert len(fake.creates()) == 1 and list(fake.sends_per_reminder().values()) == [1]


def test_reconcile_keeps_going_when_twilio_cannot_answer(one_text) -> None:
    engine, settings, clock, fake = one_text
    dispatcher = Dispatcher(engine, TwilioBackend(settings), settings, clock)
    [reminder_id] = dispatcher.due_ids()
    assert dispatcher.claim(reminder_id)
    with Session(engine) as s:  # a crash after the request started, before the answer
        row = s.get(Reminder, reminder_id)
        assert row is not None
        row.request_started_at = clock()
        s.commit()
    fake.faults = Faults(timeout=1.0, delay=0.9, ops=frozenset({"list"}))
    clock.jump_to(clock() + timedelta(minutes=5))
    report = dispatcher.run_once()  # used to raise: every later run failed the same way
    assert report.errors["lookup:timeout"] == 1
    assert reminders_in(engine, "sending") == [reminder_id]
    fake.faults = None
    report = dispatcher.run_once()
    # Not found at Twilio: "outcome unknown", never re-sent (see the dispatch module).
    assert reminders_in(engine, "failed") == [reminder_id] and not fake.creates()


def reminders_in(engine: Engine, state: str) -> list[str]:
    with Session(engine) as s:
        return list(s.exec(select(Reminder.id).where(Reminder.state == state)).all())


class CutTheDatabaseAfter(TwilioBackend):
    """Sends through Twilio (or fails with ``error``), then the database goes away before the
    dispatcher can record what happened."""

    def __init__(self, settings: Settings, proxy: TcpProxy,
                 error: SendError | None = None) -> None:
        super().__init__(settings)
        self.proxy, self.error = proxy, error

    def send(self, request: Any) -> Any:
        try:
            if self.error is not None:
                raise self.error
            return super().send(request)
        finally:
            self.proxy.cut()


@pytest.mark.postgres
@pytest.mark.parametrize("twilio", ["took it", "answered 429"])
def test_a_send_cut_short_by_the_database_is_settled_once_it_is_back(
    pg_behind_proxy, twilio: str,
) -> None:
    """No waiting ``stale_after`` (a minute and more) for a row this process knows about:
    found at Twilio -> sent; not there (the 429) -> sent now, once."""
    url, proxy = pg_behind_proxy
    clock = ShiftClock(START)
    fake = FakeTwilio(clock=clock).start()
    engine = make_engine(url)
    try:
        migrate(engine)
        settings = Settings(_env_file=None, environment="test", database_url=url,
                            **{**twilio_settings(fake), "twilio_timeout_seconds": 0.5})
        apply_events(engine, settings, clock(), released("H0001DB", clock()),
                     contact("H0001DB", clock(), MOBILES[0]))
        error = SendError("twilio 429 code 20429", transient=True, code=20429,
                          http_status=429) if twilio == "answered 429" else None
        dispatcher = Dispatcher(engine, CutTheDatabaseAfter(settings, proxy, error), settings,
                                clock)
        try:
            assert dispatcher.run_once().errors["database"] == 1
        finally:
            proxy.restore()
        assert len(reminders_in(engine, "sending")) == 1
        dispatcher.backend = TwilioBackend(settings)
        report = dispatcher.run_once()
        assert report.errors == Counter() and report.sent == 1, report
        assert len(reminders_in(engine, "sent")) == 1
        assert len(fake.created()) == 1 and list(fake.sends_per_reminder().values()) == [1]
    finally:
        fake.stop()
        engine.dispose()


def test_a_release_read_after_the_notes_lifts_the_custody_wait(database_url) -> None:
    """After an outage the backlog of three topics is read in any order. If dispatch runs
    between the case notes (which plan the welcome) and the release, the welcome is held
    "still in custody" for 15 minutes; the release, once read, must let it go at once."""
    clock = ShiftClock(START)
    fake = FakeTwilio(clock=clock).start()
    engine = make_engine(database_url)
    try:
        migrate(engine)
        settings = Settings(_env_file=None, environment="test", database_url=database_url,
                            **twilio_settings(fake))
        dispatcher = Dispatcher(engine, TwilioBackend(settings), settings, clock)
        out = START - timedelta(days=2)
        apply_events(engine, settings, clock(), release_date("K0001RL", out, out.date()),
                     contact("K0001RL", out, MOBILES[0]),
                     appointment("K0001RL", out, "a1", when=START + timedelta(days=2)))
        assert dispatcher.run_once().deferred >= 1 and not fake.creates()  # still inside
        apply_events(engine, settings, clock(), released("K0001RL", out))
        assert dispatcher.run_once().sent >= 1
        assert fake.created()[0]["body"].startswith("Hello")  # the welcome, now
    finally:
        fake.stop()
        engine.dispose()
