"""APScheduler 3.x jobs for texts, kept in a persistent SQLAlchemyJobStore (same database).

Jobs model: a few *frequent* jobs, not one job per reminder. The reminders table already is a
durable, indexed queue with a state machine and idempotency keys; one APScheduler job per text
would duplicate that state in pickled job rows, and moving or cancelling a text would need a
second write that can disagree with the first. So:

- ``notify-dispatch`` (every ``sms_dispatch_interval_seconds``): reconcile orphaned sends, send
  everything due (:class:`consumers.notifications.dispatch.Dispatcher`);
- ``notify-staff`` (every minute), if the tasks tables exist: an urgent open task with an owner
  who has a phone gets one text (key ``staff|task|<id>|urgent``); once the tasks scheduler has
  built today's digest for a hub (``task_digests``, at ``digest_time``), each of that hub's
  managers gets one text of its counts (key ``staff|digest|<hub>|<day>|<staff>``). Polling for
  the digest row, rather than a cron at the same minute, cannot run before it exists.

Two ways to run them:
- :func:`add_reminder_jobs` on any APScheduler (``ttg notify`` uses its own, on its own job
  table ``settings.notify_jobs_table``);
- :func:`register_jobs`, the hook of :mod:`scheduler.service` (list ``"scheduler.reminders"`` in
  its ``JOB_MODULES``): the same work as ``notify.dispatch`` / ``notify.staff`` jobs taking the
  service's ``JobContext``, run only by the lease holder.

Persistent jobs are pickled into the job store, so their arguments must not carry secrets (the
Twilio token, a database password) or unpicklable objects (engine, clock, backend). Each job
therefore stores only a runtime *name*; :func:`add_reminder_jobs` registers the process's
runtime (engine, backend, clock, settings) under that name when the service starts. A job that
fires in a process without that runtime logs and does nothing. Running it twice at once is safe:
dispatch claims each row atomically.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from consumers.notifications import templates
from consumers.notifications.dispatch import Clock, Dispatcher, DispatchReport
from consumers.notifications.phones import try_normalise
from consumers.notifications.sender import SmsBackend, make_backend
from consumers.notifications.store import IssueSink
from infra.config import Settings
from infra.models.messages import Reminder, ReminderState
from schemas.envelope import utcnow

log = logging.getLogger(__name__)

DISPATCH_JOB = "notify-dispatch"
STAFF_JOB = "notify-staff"
#: Only urgent tasks this recent are texted (so a first start does not text old work).
URGENT_WINDOW = timedelta(hours=24)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    dispatcher: Dispatcher
    clock: Clock


#: Runtimes registered by this process, by name (see the module docstring for why).
_RUNTIMES: dict[str, Runtime] = {}


def add_reminder_jobs(scheduler: BaseScheduler, settings: Settings, engine: Engine, *,
                      backend: SmsBackend | None = None, clock: Clock | None = None,
                      jobstore: str = "default", runtime: str = "notifications",
                      issue_sink: IssueSink | None = None) -> Runtime:
    """Register the text jobs (replacing any stored ones with the same ids) and this process's
    runtime. ``jobstore`` names a persistent SQLAlchemyJobStore already added to ``scheduler``.
    """
    clock = clock or utcnow
    rt = Runtime(settings, engine,
                 Dispatcher(engine, backend or make_backend(settings, engine), settings, clock,
                            issue_sink),
                 clock)
    _RUNTIMES[runtime] = rt
    common = {"jobstore": jobstore, "replace_existing": True, "coalesce": True,
              "max_instances": 1, "kwargs": {"runtime": runtime}}
    scheduler.add_job("scheduler.reminders:dispatch_job", "interval", id=DISPATCH_JOB,
                      seconds=settings.sms_dispatch_interval_seconds,
                      misfire_grace_time=int(settings.sms_dispatch_interval_seconds * 4) + 1,
                      **common)
    scheduler.add_job("scheduler.reminders:staff_job", "interval", id=STAFF_JOB, seconds=60,
                      misfire_grace_time=300, **common)
    return rt


def register_jobs(scheduler: Any) -> None:
    """Hook for :class:`scheduler.service.TaskScheduler` (its ``JOB_MODULES`` convention)."""
    from apscheduler.triggers.interval import IntervalTrigger

    every = IntervalTrigger(seconds=scheduler.settings.sms_dispatch_interval_seconds)
    scheduler.add_job(dispatch_ctx_job, every, "notify.dispatch")
    scheduler.add_job(staff_ctx_job, IntervalTrigger(seconds=60), "notify.staff")


def _ctx_dispatcher(ctx: Any) -> Dispatcher:
    return Dispatcher(ctx.engine, make_backend(ctx.settings, ctx.engine), ctx.settings, ctx.clock)


def dispatch_ctx_job(ctx: Any) -> int:
    """``notify.dispatch`` for the scheduler service: returns the number of texts sent."""
    report = _ctx_dispatcher(ctx).run_once()
    log_report(report)
    return report.sent


def staff_ctx_job(ctx: Any) -> int:
    """``notify.staff`` for the scheduler service: returns the number of staff texts queued."""
    now = ctx.now()
    queued = (queue_urgent_task_texts(ctx.engine, ctx.settings, now)
              + queue_digest_texts(ctx.engine, ctx.settings, now))
    if queued:
        _ctx_dispatcher(ctx).run_once()
    return queued


def _runtime(name: str) -> Runtime | None:
    rt = _RUNTIMES.get(name)
    if rt is None:
        log.warning("text job fired but runtime %r is not registered in this process", name)
    return rt


def dispatch_job(runtime: str = "notifications") -> None:
    rt = _runtime(runtime)
    if rt is not None:
        log_report(rt.dispatcher.run_once())


def log_report(report: DispatchReport) -> None:
    """One line per dispatch run that did anything; a warning when anything failed."""
    if not (report.outcomes or report.errors):
        return
    errors = ", ".join(f"{k} {v}" for k, v in sorted(report.errors.items()))
    (log.warning if report.errors else log.info)(
        "dispatch: %d sent, %d retried, %d failed, %d skipped, %d deferred%s",
        report.sent, report.retried, report.failed, report.skipped, report.deferred,
        f"; errors: {errors}" if errors else "")


def staff_job(runtime: str = "notifications") -> None:
    rt = _runtime(runtime)
    if rt is not None:
        now = rt.clock()
        if (queue_urgent_task_texts(rt.engine, rt.settings, now)
                + queue_digest_texts(rt.engine, rt.settings, now)):
            rt.dispatcher.run_once()


# ---------------------------------------------------------------- staff texts


def _has_tables(engine: Engine, *names: str) -> bool:
    insp = inspect(engine)
    return all(insp.has_table(n) for n in names)


def _queue_staff(session: Session, key: str, kind: str, staff_id: str, phone: str | None,
                 body: str, now: datetime) -> bool:
    e164 = try_normalise(phone)
    if e164 is None:
        return False
    if session.exec(select(Reminder.id).where(Reminder.idempotency_key == key)).first():
        return False
    session.add(Reminder(id=str(uuid.uuid4()), idempotency_key=key, audience="staff",
                         staff_id=staff_id, kind=kind, state=ReminderState.SCHEDULED.value,
                         send_at=now, body=body, to_e164=e164, created_at=now, updated_at=now))
    return True


def queue_urgent_task_texts(engine: Engine, settings: Settings, now: datetime) -> int:
    """One text per urgent open task to its owner (by phone in the staff table). Returns count."""
    if not _has_tables(engine, "tasks", "staff"):
        return 0
    queued = 0
    with Session(engine) as session:
        rows = session.connection().execute(text(
            "SELECT t.id, t.prison_number, t.need, t.due_at, s.staff_id, s.phone "
            "FROM tasks t JOIN staff s ON s.staff_id = t.owner_staff_id "
            "WHERE t.priority = 'urgent' AND t.status = 'open' AND s.active "
            "AND t.created_at >= :since"
        ), {"since": now - URGENT_WINDOW}).all()
        for task_id, pn, need, due_at, staff_id, phone in rows:
            due = due_at if isinstance(due_at, datetime) else datetime.fromisoformat(str(due_at))
            due = due.replace(tzinfo=UTC) if due.tzinfo is None else due
            body = templates.staff_urgent_task(task_id, pn, need, due, settings.timezone)
            queued += _queue_staff(session, f"staff|task|{task_id}|urgent", "staff_urgent",
                                   staff_id, phone, body, now)
        session.commit()
    return queued


def queue_digest_texts(engine: Engine, settings: Settings, now: datetime) -> int:
    """Today's digest (from ``task_digests``) to each hub manager with a phone."""
    if not _has_tables(engine, "task_digests", "staff"):
        return 0
    today = now.astimezone(ZoneInfo(settings.timezone)).date()
    queued = 0
    with Session(engine) as session:
        rows = session.connection().execute(text(
            "SELECT d.hub_key, d.due_count, d.overdue_count, s.staff_id, s.phone "
            "FROM task_digests d JOIN staff s ON s.hub_code = d.hub_key "
            "WHERE d.digest_date = :day AND s.role = 'hub_manager' AND s.active"
        ), {"day": today}).all()
        for hub, due, overdue, staff_id, phone in rows:
            body = templates.staff_digest(hub, today, due, overdue)
            queued += _queue_staff(session, f"staff|digest|{hub}|{today}|{staff_id}",
                                   "staff_digest", staff_id, phone, body, now)
        session.commit()
    return queued
