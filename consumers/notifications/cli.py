"""``ttg notify`` (consumer + its own scheduler running the text jobs) and ``ttg outbox list``."""

from __future__ import annotations

import signal
import threading

import typer


def build_scheduler(settings, engine):  # type: ignore[no-untyped-def]
    """A BackgroundScheduler on the persistent job store of ``ttg notify`` (its own table)."""
    from consumers.notifications.service import build_scheduler as build

    return build(settings, engine)


def register(app: typer.Typer) -> None:
    outbox = typer.Typer(help="Texts recorded by the outbox backend (no Twilio account).",
                         no_args_is_help=True)
    app.add_typer(outbox, name="outbox")

    @app.command()
    def notify() -> None:
        """Run the notifications consumer, the text jobs (dispatch, staff texts) and the
        publisher of reminder events."""
        from consumers.notifications.service import NotifyService
        from infra.config import get_settings
        from infra.database import engine_for

        settings = get_settings()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        NotifyService(settings, engine_for(settings)).run(stop)

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
