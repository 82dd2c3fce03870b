"""The text jobs in APScheduler's persistent SQLAlchemyJobStore, and the staff texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from consumers.notifications.cli import build_scheduler
from consumers.notifications.sender import OutboxBackend, TwilioBackend
from infra.database import migrate
from infra.models.messages import OutboxMessage
from scheduler import reminders as jobs

from .builders import PN, states
from .test_dispatch import released_person


def test_jobs_persist_without_secrets_and_dispatch(engine, sms_settings, clock, fake_twilio):
    released_person(engine, sms_settings, clock)
    scheduler = build_scheduler(sms_settings, engine)
    jobs.add_reminder_jobs(scheduler, sms_settings, engine, backend=TwilioBackend(sms_settings),
                           clock=clock, runtime="test-rt")
    scheduler.start(paused=True)
    try:
        stored = {j.id: j for j in scheduler.get_jobs()}
        assert set(stored) == {jobs.DISPATCH_JOB, jobs.STAFF_JOB}
        assert stored[jobs.DISPATCH_JOB].kwargs == {"runtime": "test-rt"}
        assert stored[jobs.DISPATCH_JOB].trigger.interval == timedelta(seconds=30)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, job_state FROM notification_jobs")).all()
        assert {r[0] for r in rows} == set(stored)
        token = sms_settings.twilio_auth_token.get_secret_value().encode()
        assert all(token not in bytes(r[1]) for r in rows)
        # Registering again (a restart) replaces, not duplicates.
        jobs.add_reminder_jobs(scheduler, sms_settings, engine,
                               backend=TwilioBackend(sms_settings), clock=clock, runtime="test-rt")
        assert len(scheduler.get_jobs()) == 2
    finally:
        scheduler.shutdown(wait=False)
    # What the dispatch job runs: the welcome goes now, the rest at their time.
    stored[jobs.DISPATCH_JOB].func(**stored[jobs.DISPATCH_JOB].kwargs)
    assert len(fake_twilio.created()) == 1
    clock.set(datetime(2026, 11, 24, 18, 0, tzinfo=UTC))
    jobs.dispatch_job("test-rt")
    assert len(fake_twilio.created()) == 2
    jobs.dispatch_job("not-registered")  # logs, does nothing


def test_outbox_backend_without_credentials(engine, sms_settings, clock):
    plain = sms_settings.model_copy(update={"twilio_account_sid": None,
                                            "twilio_auth_token": None})
    released_person(engine, plain, clock)
    scheduler = build_scheduler(plain, engine)
    rt = jobs.add_reminder_jobs(scheduler, plain, engine, clock=clock, runtime="outbox-rt")
    assert isinstance(rt.dispatcher.backend, OutboxBackend)
    jobs.dispatch_job("outbox-rt")
    with Session(engine) as s:
        [msg] = s.exec(select(OutboxMessage)).all()
    assert msg.prison_number == PN and msg.body.startswith("Hello")
    assert states(engine, PN)[f"{PN}|-|welcome"] == "sent"


def _tasks_schema(engine) -> None:
    try:
        migrate(engine, "tasks@head")
    except Exception as exc:  # noqa: BLE001 - the other area's branch may be mid-change
        pytest.skip(f"tasks migration branch not usable: {type(exc).__name__}")


def test_urgent_task_and_digest_text_staff_once(engine, sms_settings, clock, fake_twilio):
    _tasks_schema(engine)
    # Through the tasks area's own models, so their defaults and new columns apply.
    from infra.models.hubs import Hub, Staff
    from infra.models.tasks import Task, TaskDigest

    now = clock()
    with Session(engine) as s:
        s.add(Hub(code="IOM-CAMBS", name="Cambs"))
        s.add(Staff(staff_id="s1", hub_code="IOM-CAMBS", name="x", role="housing_officer",
                    phone="07400 123456", lead=True))
        s.add(Staff(staff_id="s2", hub_code="IOM-CAMBS", name="y", role="hub_manager",
                    phone="07400 654321", lead=True))
        s.flush()
        s.add(Task(id="t1", prison_number=PN, need="accommodation", pathway="accommodation",
                   rule_id="r", hub_code="IOM-CAMBS", owner_role="housing_officer",
                   owner_staff_id="s1", priority="urgent", due_at=now + timedelta(hours=4),
                   reason="no address", created_at=now, updated_at=now))
        s.add(TaskDigest(hub_key="IOM-CAMBS", digest_date=now.date(), created_at=now,
                         due_count=4, overdue_count=2))
        s.commit()
    scheduler = build_scheduler(sms_settings, engine)
    jobs.add_reminder_jobs(scheduler, sms_settings, engine, backend=TwilioBackend(sms_settings),
                           clock=clock, runtime="staff-rt")
    jobs.staff_job("staff-rt")
    jobs.staff_job("staff-rt")
    sent = {m["to"]: m["body"] for m in fake_twilio.created()}
    assert len(fake_twilio.created()) == 2
    assert "urgent task t1 for A1234BC: accommodation" in sent["+447400123456"]
    assert "4 task(s) due, 2 overdue" in sent["+447400654321"]


def test_scheduler_service_hook(engine, sms_settings, clock, fake_twilio):
    """``register_jobs`` plugs into the tasks area's scheduler service (its JOB_MODULES hook)."""
    _tasks_schema(engine)
    service = pytest.importorskip("scheduler.service")
    released_person(engine, sms_settings, clock)
    sched = service.TaskScheduler(sms_settings, engine, clock=clock,
                                  job_modules=("scheduler.reminders",))
    sched.aps.start(paused=True)
    try:
        assert {j.id for j in sched.aps.get_jobs()} == {"notify.dispatch", "notify.staff"}
    finally:
        sched.aps.shutdown(wait=False)
    assert jobs.dispatch_ctx_job(service.JobContext(sms_settings, engine, clock)) == 1
    assert len(fake_twilio.created()) == 1


def test_could_not_text_becomes_a_task(engine, sms_settings, clock, fake_twilio):
    _tasks_schema(engine)
    from consumers.notifications.dispatch import Dispatcher

    released_person(engine, sms_settings, clock)
    fake_twilio.error_for["+447400123456"] = 21211
    Dispatcher(engine, TwilioBackend(sms_settings), sms_settings, clock).run_once()
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT prison_number, need, owner_role, status, reason FROM tasks")).all()
    assert len(rows) == 1
    pn, need, role, status, reason = rows[0]
    assert (pn, need, role, status) == (PN, "text_contact", "probation_practitioner", "open")
    assert "mobile number is not valid" in reason
