"""The ``ttg notify`` service: the notifications consumer, its own APScheduler running the text
jobs (dispatch, staff texts), and the reminder-event publisher, in one loop.

Built to ride out outages of what it depends on, without a restart:
- the broker: the consumer waits for it (see :mod:`infra.kafka`) and, like the publisher, only
  moves on once things are stored; a publish the broker does not take is retried next loop;
- the database: the consumer holds back the record it cannot apply (see
  :mod:`consumers.notifications.consumer`), a dispatch run stops early and the next carries on,
  the job store survives the database going away mid-cycle (:mod:`scheduler.jobstore`);
- Twilio: timeouts, 429 and 5xx are retried with backoff, never sent blind twice
  (:mod:`consumers.notifications.dispatch`).

:class:`ServiceStats` (``service.stats``) and the consumer's and dispatcher's counters are its
metrics; failures are logged as warnings.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from kafka.errors import KafkaError
from sqlalchemy.engine import Engine

from consumers.notifications.consumer import NotificationConsumer
from consumers.notifications.dispatch import Clock
from consumers.notifications.events import publish_pending
from consumers.notifications.sender import SmsBackend
from infra.config import Settings
from infra.database import database_unavailable
from infra.topics import Topics
from scheduler.jobstore import ResilientJobStore
from scheduler.reminders import Runtime, add_reminder_jobs
from schemas.envelope import utcnow

log = logging.getLogger("consumers.notifications")

#: Least time between two tries of publishing reminder events after a failure.
PUBLISH_RETRY_S = 2.0
#: How long one publish waits for the broker (the loop must keep polling in an outage).
PUBLISH_TIMEOUT_S = 5.0


def build_scheduler(settings: Settings, engine: Engine,
                    jobstore: ResilientJobStore | None = None) -> Any:
    """A BackgroundScheduler on the persistent job store of ``ttg notify`` (its own table)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    store = jobstore or ResilientJobStore(engine=engine, tablename=settings.notify_jobs_table)
    return BackgroundScheduler(jobstores={"default": store}, timezone=settings.timezone)


@dataclass
class ServiceStats:
    loops: int = 0
    reminder_events: int = 0
    #: Publishing reminder events failed (broker or database unavailable); retried later.
    publish_failures: int = 0


class NotifyService:
    def __init__(self, settings: Settings, engine: Engine, *, clock: Clock | None = None,
                 backend: SmsBackend | None = None, runtime_name: str = "notifications",
                 poll_timeout_ms: int = 500) -> None:
        self.settings, self.engine = settings, engine
        self.clock = clock or utcnow
        self.backend = backend
        self.runtime_name = runtime_name
        self.poll_timeout_ms = poll_timeout_ms
        self.stats = ServiceStats()
        self.consumer: NotificationConsumer | None = None
        self.runtime: Runtime | None = None
        self.scheduler: Any = None
        self.jobstore = ResilientJobStore(engine=engine, tablename=settings.notify_jobs_table)
        self._publish_after = 0.0

    def run(self, stop: threading.Event) -> None:
        settings, engine = self.settings, self.engine
        self.scheduler = build_scheduler(settings, engine, self.jobstore)
        self.runtime = add_reminder_jobs(self.scheduler, settings, engine, backend=self.backend,
                                         clock=self.clock, runtime=self.runtime_name)
        # Settle sends a previous run left half-done before anything new goes out.
        self.runtime.dispatcher.reconcile()
        self.scheduler.start()
        log.info("notify: texts via %s; consumer group %s",
                 self.runtime.dispatcher.backend.name, settings.notify_consumer_group)
        self.consumer = NotificationConsumer(settings, engine, self.clock)
        topic = Topics.from_settings(settings).reminders
        try:
            while not stop.is_set():
                self.consumer.poll_once(timeout_ms=self.poll_timeout_ms)
                # Reminder changes (from the consumer and the dispatch job) onto the topic.
                self._publish(topic)
                self.stats.loops += 1
        finally:
            self.consumer.close()
            self.scheduler.shutdown(wait=True)

    def _publish(self, topic: str) -> None:
        if time.monotonic() < self._publish_after:
            return
        assert self.consumer is not None
        try:
            self.stats.reminder_events += publish_pending(
                self.engine, self.consumer.producer, topic, self.clock(),
                timeout=PUBLISH_TIMEOUT_S)
        except Exception as exc:
            if not (isinstance(exc, KafkaError) or database_unavailable(exc)):
                raise
            self.stats.publish_failures += 1
            self._publish_after = time.monotonic() + PUBLISH_RETRY_S
            log.warning("notify: reminder events not published yet (%s); retrying",
                        type(exc).__name__)
