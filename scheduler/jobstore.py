"""APScheduler's SQLAlchemy job store, made to outlast a database outage.

APScheduler 3 guards only ``get_due_jobs`` in its main loop: when the database fails there it
logs and retries ``jobstore_retry_interval`` later (we count those too). But right after it,
in the same loop and unguarded, it calls ``update_job`` (to store each run job's next run
time) and ``get_next_run_time``; if the database goes away between those calls the exception
ends the scheduler's thread, silently, and no job ever runs again while the process looks
healthy.

:class:`ResilientJobStore` catches database errors in those calls, logs them and counts them
(``failures``): a next run time not stored means the job is simply due again on the next
wake-up (our jobs are idempotent and coalesced), and an unknown next run time means "look again
in ``retry_seconds``".
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


class ResilientJobStore(SQLAlchemyJobStore):
    def __init__(self, *args: Any, retry_seconds: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_seconds = retry_seconds
        self.failures = 0

    def _failed(self, what: str, exc: SQLAlchemyError) -> None:
        self.failures += 1
        log.warning("job store: %s failed (%s: %s); the scheduler carries on and tries again",
                    what, type(exc).__name__, str(exc).splitlines()[0][:200])

    def get_due_jobs(self, now: datetime) -> list[Any]:
        try:
            return super().get_due_jobs(now)  # type: ignore[no-any-return]
        except SQLAlchemyError as exc:
            self._failed("reading the due jobs", exc)
            raise  # APScheduler logs it and looks again after its retry interval

    def update_job(self, job: Any) -> None:
        try:
            super().update_job(job)
        except SQLAlchemyError as exc:
            self._failed(f"storing the next run of job {job.id}", exc)

    def remove_job(self, job_id: str) -> None:
        try:
            super().remove_job(job_id)
        except SQLAlchemyError as exc:
            self._failed(f"removing job {job_id}", exc)

    def get_next_run_time(self) -> datetime | None:
        try:
            return super().get_next_run_time()
        except SQLAlchemyError as exc:
            self._failed("reading the next run time", exc)
            return datetime.now(UTC) + timedelta(seconds=self.retry_seconds)
