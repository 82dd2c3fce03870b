"""Escalation, digests and the leader lease, on SQLite and PostgreSQL, with a controlled clock."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from consumers.lifecycle import acknowledge, escalate_due, task_history
from consumers.tasks import apply_alert_event
from infra import directory as hub_directory
from infra.config import Settings
from infra.database import session_scope
from infra.models.columns import as_utc
from infra.models.tasks import Task, TaskDigest
from scheduler.digest import build_digests
from scheduler.lease import Lease
from scheduler.service import TaskScheduler
from schemas.common import Severity, StaffRole
from tests.tasks.conftest import NOW, event, make_alert

WINDOW = timedelta(minutes=60)


def seed(engine: Engine, *alerts) -> list[Task]:  # type: ignore[no-untyped-def]
    for a in alerts:
        with session_scope(engine) as s:
            apply_alert_event(s, event(a), hub_directory.read(s), NOW)
    with Session(engine) as s:
        return list(s.exec(select(Task).order_by(Task.prison_number)).all())


def history_of(engine: Engine, task_id: str) -> list[tuple[str, str, str]]:
    with Session(engine) as s:
        return [(h.action, h.actor, h.detail) for h in task_history(s, task_id)]


def test_lease_is_exclusive_until_it_expires(engine: Engine) -> None:
    a = Lease(engine, timedelta(seconds=30), holder="a")
    b = Lease(engine, timedelta(seconds=30), holder="b")
    assert a.acquire(NOW) and a.held(NOW)
    assert not b.acquire(NOW + timedelta(seconds=10)) and not b.held(NOW)
    assert a.acquire(NOW + timedelta(seconds=20))  # renewal extends to +50 s
    assert not b.acquire(NOW + timedelta(seconds=45))
    assert b.acquire(NOW + timedelta(seconds=51))  # a stalled; b takes over
    assert not a.held(NOW + timedelta(seconds=52)) and not a.acquire(NOW + timedelta(seconds=52))
    b.release()
    assert a.acquire(NOW + timedelta(seconds=53))


def test_lease_race_has_one_winner(engine: Engine) -> None:
    leases = [Lease(engine, timedelta(seconds=30), holder=f"h{i}") for i in range(6)]
    barrier = threading.Barrier(len(leases))
    wins: list[str] = []

    def go(lease: Lease) -> None:
        barrier.wait()
        if lease.acquire(NOW):
            wins.append(lease.holder)

    threads = [threading.Thread(target=go, args=(x,)) for x in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_urgent_unacknowledged_task_escalates_to_hub_manager_once(hubs_engine: Engine) -> None:
    urgent, acked, warning = seed(
        hubs_engine,
        make_alert(prison_number="A1111AA", severity=Severity.URGENT),
        make_alert(prison_number="B2222BB", severity=Severity.URGENT),
        make_alert(prison_number="C3333CC", severity=Severity.WARNING),
    )
    acknowledge(hubs_engine, acked.id, "Housing Officer One", NOW + timedelta(minutes=10))
    assert escalate_due(hubs_engine, NOW + timedelta(minutes=59), WINDOW) == []
    events = escalate_due(hubs_engine, NOW + timedelta(minutes=61), WINDOW)
    assert [(e.task_id, e.owner_role, e.owner_staff_id, e.type) for e in events] == [
        (urgent.id, StaffRole.HUB_MANAGER, "cambs-hm-1", "task.updated")]
    assert escalate_due(hubs_engine, NOW + timedelta(hours=5), WINDOW) == []  # once only
    hist = history_of(hubs_engine, urgent.id)
    assert [h[:2] for h in hist] == [("created", "alerts"), ("escalated", "scheduler"),
                                     ("reassigned", "scheduler")]
    assert hist[2][2] == "housing_officer (cambs-ho-1) -> hub_manager (cambs-hm-1)"
    with Session(hubs_engine) as s:
        t = s.get(Task, urgent.id)
        assert t is not None and as_utc(t.escalated_at) == NOW + timedelta(minutes=61)
        assert t.status == "open"


def test_concurrent_escalations_claim_each_task_once(hubs_engine: Engine) -> None:
    seed(hubs_engine, *(make_alert(prison_number=f"A{i:04d}AA", severity=Severity.URGENT)
                        for i in range(5)))
    barrier = threading.Barrier(4)
    got: list[int] = []

    def go() -> None:
        barrier.wait()
        got.append(len(escalate_due(hubs_engine, NOW + timedelta(hours=2), WINDOW)))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(got) == 5
    with Session(hubs_engine) as s:
        for t in s.exec(select(Task)).all():
            assert [h.action for h in task_history(s, t.id)].count("escalated") == 1


def test_two_scheduler_processes_escalate_exactly_once(
    settings: Settings, database_url: str, hubs_engine: Engine,
) -> None:
    [task] = seed(hubs_engine, make_alert(severity=Severity.URGENT))
    s = settings.model_copy(update={"database_url": database_url,
                                    "escalation_interval_seconds": 0.2,
                                    "scheduler_lease_seconds": 3.0})
    # Both run two hours ahead of the task's creation, so the escalation is due at once.
    clock = lambda: datetime.now(UTC) + timedelta(hours=2)  # noqa: E731
    schedulers = [TaskScheduler(s, hubs_engine, clock=clock, holder=f"proc-{i}") for i in (1, 2)]
    stop = threading.Event()
    threads = [threading.Thread(target=x.run, args=(stop,)) for x in schedulers]
    for t in threads:
        t.start()
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(timeout=20)
    runs = [x.ctx.runs.get("tasks.escalation", 0) for x in schedulers]
    assert sorted(r > 0 for r in runs) == [False, True], runs  # only the leader ran the job
    actions = [h[0] for h in history_of(hubs_engine, task.id)]
    assert actions.count("escalated") == 1
    with Session(hubs_engine) as sess:
        t = sess.get(Task, task.id)
        assert t is not None and (t.owner_role, t.owner_staff_id) == ("hub_manager", "cambs-hm-1")


def test_standby_takes_over_when_leader_stops(settings: Settings, database_url: str,
                                              hubs_engine: Engine) -> None:
    s = settings.model_copy(update={"database_url": database_url,
                                    "scheduler_lease_seconds": 30.0})
    a = TaskScheduler(s, hubs_engine, holder="a")
    b = TaskScheduler(s, hubs_engine, holder="b")
    stop_a = threading.Event()
    ta = threading.Thread(target=a.run, args=(stop_a,))
    ta.start()
    deadline = time.monotonic() + 10
    while not a.leading and time.monotonic() < deadline:
        time.sleep(0.05)
    assert a.leading
    b.aps.start(paused=True)
    try:
        assert not b.tick()
        stop_a.set()
        ta.join(timeout=20)  # a clean stop releases the lease
        assert b.tick() and b.leading
    finally:
        b.aps.shutdown()


def test_daily_digest_per_hub(hubs_engine: Engine) -> None:
    seed(
        hubs_engine,
        make_alert(prison_number="A1111AA", due_at=NOW - timedelta(hours=3),
                   severity=Severity.URGENT),
        make_alert(prison_number="B2222BB", due_at=NOW + timedelta(hours=5)),
        make_alert(prison_number="C3333CC", due_at=NOW + timedelta(days=5)),  # beyond horizon
        make_alert(prison_number="D4444DD", local_authority="Norwich",
                   due_at=NOW + timedelta(hours=1), owner_role=StaffRole.WORK_COACH),
        make_alert(prison_number="E5555EE", local_authority="Leeds", due_at=NOW),
        make_alert(prison_number="G7777GG", historical=True, due_at=NOW - timedelta(days=9)),
    )
    made = build_digests(hubs_engine, NOW, "Europe/London", 24)
    by = {d.hub_key: d for d in made}
    assert set(by) == {"IOM-CAMBS", "IOM-NORFOLK", "OMU-PBI", "OMU-NWI", "OMU-LHI", "UNROUTED"}
    cambs = by["IOM-CAMBS"]
    assert (cambs.overdue_count, cambs.due_count) == (1, 1)
    lines = cambs.body.splitlines()
    assert lines[0] == ("Tasks digest for IOM-CAMBS, Monday 23 November 2026: 1 overdue, "
                        "1 due in the next 24 h")
    assert lines[1] == "OVERDUE"
    assert "A1111AA accommodation [urgent] due Mon 23 Nov 06:00" in lines[2]
    assert lines[3] == "DUE"
    assert "B2222BB" in lines[4] and "housing_officer (cambs-ho-1)" in lines[4]
    assert "C3333CC" not in cambs.body and "G7777GG" not in cambs.body
    assert "work_coach queue" in by["IOM-NORFOLK"].body
    assert "E5555EE" in by["UNROUTED"].body
    assert by["OMU-LHI"].body.endswith("Nothing overdue or due.")
    assert "Housing Officer" not in cambs.body and "+44" not in cambs.body  # ids, not people
    # A second run the same day (or a second scheduler) stores nothing new.
    assert build_digests(hubs_engine, NOW + timedelta(hours=2), "Europe/London", 24) == []
    with Session(hubs_engine) as s:
        assert len(s.exec(select(TaskDigest)).all()) == 6
    assert len(build_digests(hubs_engine, NOW + timedelta(days=1), "Europe/London", 24)) == 6


def record_job(ctx, label: str) -> None:  # type: ignore[no-untyped-def]
    """A job another area might add: it gets the context first, then its own arguments."""
    key = f"ran:{label}:{ctx.engine.dialect.name}"
    ctx.runs[key] = ctx.runs.get(key, 0) + 1


def test_other_areas_add_persistent_jobs(settings: Settings, database_url: str,
                                         hubs_engine: Engine) -> None:
    s = settings.model_copy(update={"database_url": database_url,
                                    "scheduler_lease_seconds": 3.0})
    sched = TaskScheduler(s, hubs_engine, holder="x", job_modules=())
    sched.add_one_off(record_job, datetime.now(UTC) + timedelta(seconds=0.5), "test.once",
                      label="hello")
    stop = threading.Event()
    th = threading.Thread(target=sched.run, args=(stop,))
    th.start()
    key = f"ran:hello:{hubs_engine.dialect.name}"
    deadline = time.monotonic() + 10
    while sched.ctx.runs.get(key) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    th.join(timeout=20)
    assert sched.ctx.runs.get(key) == 1
    # The core jobs live in the job store table in the same database, kept after shutdown.
    again = TaskScheduler(s, hubs_engine, holder="y")
    again.aps.start(paused=True)
    again.aps.shutdown()
    with hubs_engine.connect() as conn:
        ids = {r[0] for r in conn.execute(text("select id from apscheduler_jobs"))}
    assert ids == {"tasks.escalation", "tasks.digest", "tasks.outbox"}


def test_a_running_scheduler_without_the_lease_runs_nothing(
    settings: Settings, database_url: str, hubs_engine: Engine,
) -> None:
    s = settings.model_copy(update={"database_url": database_url})
    other = Lease(hubs_engine, timedelta(seconds=60), holder="someone-else")
    assert other.acquire(datetime.now(UTC))
    sched = TaskScheduler(s, hubs_engine, holder="me", job_modules=())
    sched.add_one_off(record_job, datetime.now(UTC) + timedelta(seconds=0.3), "test.guard",
                      label="guard")
    sched.aps.start()  # resumed by mistake, not paused: the executor still checks the lease
    try:
        time.sleep(1.5)
    finally:
        sched.aps.shutdown()
    assert sched.ctx.runs == {}
