"""The scheduler service: APScheduler 3 with its job store in the project database, run only by
the process holding the leader lease.

Every process starts its APScheduler paused and keeps trying to take the lease; the holder
resumes its scheduler, a process that loses the lease pauses again. Jobs also check the lease
in the executor just before running, and each job is idempotent on its own (an escalation claims
its task once; a digest is unique per hub and day), so even a stalled leader that wakes after
losing the lease cannot make anything happen twice.

Other areas add their jobs by listing a module in :data:`JOB_MODULES` whose
``register_jobs(scheduler: TaskScheduler)`` calls :meth:`TaskScheduler.add_job` (periodic) or
:meth:`TaskScheduler.add_one_off`. Job functions are module-level functions taking a
:class:`JobContext` first (the persistent job store keeps a reference to the function, not the
function itself), plus picklable keyword arguments.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor as _Pool
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.executors.base import run_job
from apscheduler.executors.pool import BasePoolExecutor
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from consumers.lifecycle import escalate_due
from consumers.outbox import flush, publish_now
from consumers.publish import Publisher
from infra.config import Settings
from infra.database import engine_for, migrate
from scheduler.digest import build_digests
from scheduler.jobstore import ResilientJobStore
from scheduler.lease import Lease
from schemas.envelope import utcnow
from schemas.outputs import TaskEvent

log = logging.getLogger(__name__)

#: Stored in a job's arguments where the context goes; the executor swaps in the real one.
CTX = "<job-context>"

#: Modules whose ``register_jobs(scheduler)`` adds jobs. Add one line per area.
JOB_MODULES: tuple[str, ...] = ("scheduler.service",)



@dataclass
class JobContext:
    """What a job needs, handed to it by the executor (never stored with the job)."""

    settings: Settings
    engine: Engine
    clock: Callable[[], datetime] = utcnow
    publisher: Publisher | None = None
    runs: dict[str, int] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.clock()

    def publish(self, events: Iterable[TaskEvent]) -> None:
        """Publish committed task events now (they are in the outbox if this fails)."""
        events = list(events)
        if events and self.publisher is not None:
            publish_now(self.engine, self.publisher, events, self.now())


class _Bound:
    """What ``apscheduler.executors.base.run_job`` reads from a job, with the context bound."""

    def __init__(self, job: Job, ctx: JobContext) -> None:
        self.id = job.id
        self.func = job.func
        self.args = (ctx, *job.args[1:]) if job.args[:1] == (CTX,) else (ctx, *job.args)
        self.kwargs = job.kwargs
        self.misfire_grace_time = job.misfire_grace_time
        self._name = job.name

    def __str__(self) -> str:
        return f"{self._name} (id {self.id})"


class LeaderExecutor(BasePoolExecutor):
    """Runs a job only while this process holds the lease, with the job context bound."""

    def __init__(self, ctx: JobContext, lease: Lease, max_workers: int = 4) -> None:
        super().__init__(_Pool(max_workers))
        self.ctx = ctx
        self.lease = lease

    def _guarded(self, job: Job, alias: str, run_times: list[datetime], logger: str) -> list:  # type: ignore[type-arg]
        if not self.lease.held(self.ctx.now()):
            log.info("not the leader; skipping job %s", job.id)
            return []
        self.ctx.runs[job.id] = self.ctx.runs.get(job.id, 0) + 1
        return run_job(_Bound(job, self.ctx), alias, run_times, logger)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        def done(f: Any) -> None:
            exc = f.exception()
            if exc:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, f.result())

        future = self._pool.submit(self._guarded, job, job._jobstore_alias, run_times,
                                   self._logger.name)
        future.add_done_callback(done)


class TaskScheduler:
    def __init__(
        self, settings: Settings, engine: Engine | None = None, *,
        clock: Callable[[], datetime] = utcnow, publisher: Publisher | None = None,
        holder: str | None = None, job_modules: tuple[str, ...] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or engine_for(settings)
        self.ctx = JobContext(settings, self.engine, clock, publisher)
        self.lease = Lease(self.engine, timedelta(seconds=settings.scheduler_lease_seconds),
                           holder=holder)
        self.aps = BackgroundScheduler(
            jobstores={"default": ResilientJobStore(engine=self.engine)},
            executors={"default": LeaderExecutor(self.ctx, self.lease)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            timezone=settings.timezone,
        )
        self.leading = False
        for name in JOB_MODULES if job_modules is None else job_modules:
            importlib.import_module(name).register_jobs(self)

    # --- the extension points other areas call
    def add_job(self, func: Callable[..., Any], trigger: BaseTrigger, job_id: str,
                **kwargs: Any) -> None:
        """Add (or replace) a recurring job: ``func(ctx, **kwargs)`` on ``trigger``."""
        self.aps.add_job(func, trigger, id=job_id, name=job_id, args=(CTX,), kwargs=kwargs,
                         replace_existing=True)

    def add_one_off(self, func: Callable[..., Any], run_at: datetime, job_id: str,
                    **kwargs: Any) -> None:
        """Add (or replace) a job that runs once at ``run_at`` (kept across restarts)."""
        self.aps.add_job(func, DateTrigger(run_date=run_at), id=job_id, name=job_id,
                         args=(CTX,), kwargs=kwargs, replace_existing=True)

    # --- leadership
    def tick(self) -> bool:
        """Take or renew the lease and resume or pause the scheduler to match."""
        try:
            got = self.lease.acquire(self.ctx.now())
        except Exception:  # noqa: BLE001 - a database blip must not kill the service
            log.exception("lease renewal failed; pausing")
            got = False
        if got and not self.leading:
            log.info("scheduler %s is now the leader", self.lease.holder)
            self.aps.resume()
        elif not got and self.leading:
            log.warning("scheduler %s lost the lease; pausing", self.lease.holder)
            self.aps.pause()
        self.leading = got
        return got

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set: renew the lease every third of its lifetime."""
        self.aps.start(paused=True)
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(self.settings.scheduler_lease_seconds / 3)
        finally:
            self.aps.shutdown(wait=True)
            if self.leading:
                self.lease.release()
            self.leading = False


# --- this area's own jobs
def escalation_job(ctx: JobContext) -> int:
    window = timedelta(minutes=ctx.settings.escalate_urgent_after_minutes)
    events = escalate_due(ctx.engine, ctx.now(), window)
    ctx.publish(events)
    if events:
        log.info("escalated %d task(s) to hub managers: %s", len(events),
                 ", ".join(e.task_id for e in events))
    return len(events)


def digest_job(ctx: JobContext) -> int:
    s = ctx.settings
    return len(build_digests(ctx.engine, ctx.now(), s.timezone, s.digest_horizon_hours))


def outbox_job(ctx: JobContext) -> int:
    """Send task events left unsent (by the CLI without a broker, or a failed publish)."""
    return flush(ctx.engine, ctx.publisher, ctx.now()) if ctx.publisher else 0


def register_jobs(scheduler: TaskScheduler) -> None:
    s = scheduler.settings
    every = IntervalTrigger(seconds=s.escalation_interval_seconds)
    scheduler.add_job(escalation_job, every, "tasks.escalation")
    scheduler.add_job(outbox_job, every, "tasks.outbox")
    hour, minute = (int(x) for x in s.digest_time.split(":"))
    scheduler.add_job(digest_job, CronTrigger(hour=hour, minute=minute, timezone=s.timezone),
                      "tasks.digest")


def serve(settings: Settings, stop: threading.Event,
          clock: Callable[[], datetime] = utcnow) -> None:
    """``ttg scheduler``: escalations, digests and the task-event outbox until ``stop`` is set;
    one leader at a time (the fault suites run this too, with their world's clock)."""
    publisher = Publisher(settings) if settings.resolved_bootstrap() else None
    service = TaskScheduler(settings, clock=clock, publisher=publisher)
    migrate(service.engine)
    log.info("scheduler %s starting", service.lease.holder)
    try:
        service.run(stop)
    finally:
        if publisher:
            publisher.close()
