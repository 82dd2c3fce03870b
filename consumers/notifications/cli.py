"""``ttg notify`` (consumer + its own scheduler running the text jobs) and ``ttg outbox list``."""

from __future__ import annotations

import signal
import threading

import typer


def build_scheduler(settings, engine):  # type: ignore[no-untyped-def]
    """A BackgroundScheduler on the persistent job store of ``ttg notify`` (its own table)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine,
                                                 tablename=settings.notify_jobs_table)},
        timezone=settings.timezone,
    )


def register(app: typer.Typer) -> None:
    outbox = typer.Typer(help="Texts recorded by the outbox backend (no Twilio account).",
                         no_args_is_help=True)
    app.add_typer(outbox, name="outbox")

    @app.command()
    def notify() -> None:
        """Run the notifications consumer, the text jobs (dispatch, staff texts) and the
        publisher of reminder events."""
        import logging

        from consumers.notifications.consumer import NotificationConsumer
        from consumers.notifications.events import publish_pending
        from infra.config import get_settings
        from infra.database import engine_for
        from infra.topics import Topics
        from scheduler.reminders import add_reminder_jobs

        log = logging.getLogger("consumers.notifications")
        settings = get_settings()
        engine = engine_for(settings)
        scheduler = build_scheduler(settings, engine)
        runtime = add_reminder_jobs(scheduler, settings, engine)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        # Settle sends a previous run left half-done before anything new goes out.
        runtime.dispatcher.reconcile()
        scheduler.start()
        log.info("notify: texts via %s; consumer group %s", runtime.dispatcher.backend.name,
                 settings.notify_consumer_group)
        consumer = NotificationConsumer(settings, engine)
        topic = Topics.from_settings(settings).reminders
        try:
            while not stop.is_set():
                consumer.poll_once()
                # Reminder changes (from the consumer and the dispatch job) onto the topic.
                publish_pending(engine, consumer.producer, topic, runtime.clock())
        finally:
            consumer.close()
            scheduler.shutdown(wait=True)

    @outbox.command("list")
    def outbox_list(limit: int = typer.Option(20, help="How many of the newest to show.")) -> None:
        """The newest texts in the outbox (numbers masked)."""
        from sqlmodel import Session, select

        from infra.config import get_settings
        from infra.database import engine_for
        from infra.models.messages import OutboxMessage

        with Session(engine_for(get_settings())) as session:
            rows = session.exec(select(OutboxMessage).order_by(
                OutboxMessage.created_at.desc()).limit(limit)).all()  # type: ignore[attr-defined]
        for row in rows:
            masked = "*" * max(0, len(row.to_e164) - 3) + row.to_e164[-3:]
            typer.echo(f"{row.created_at:%Y-%m-%d %H:%M:%S}\t{row.sid}\t"
                       f"{row.prison_number or '(staff)'}\t{masked}\t{row.body}")
