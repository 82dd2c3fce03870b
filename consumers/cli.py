"""``ttg tasks``, ``ttg hubs``, ``ttg consume`` and ``ttg scheduler``."""

from __future__ import annotations

import getpass
import signal
import threading
from pathlib import Path

import typer

from infra.config import get_settings
from infra.models.columns import as_utc
from infra.models.tasks import UNROUTED, TaskStatus
from schemas.common import StaffRole
from schemas.outputs import TaskEvent


def _engine():  # type: ignore[no-untyped-def]
    from infra.database import engine_for

    return engine_for(get_settings())


def _publish(event: TaskEvent | None = None) -> None:
    """Send the outbox (this change's event and any left over) when a broker is configured;
    otherwise the scheduler sends it later. The database change stands either way."""
    settings = get_settings()
    if not settings.resolved_bootstrap():
        return
    try:
        from consumers.outbox import flush
        from consumers.publish import Publisher
        from schemas.envelope import utcnow

        pub = Publisher(settings)
        try:
            flush(_engine(), pub, utcnow())
        finally:
            pub.close()
    except Exception as exc:  # noqa: BLE001 - the change is committed; say the event waits
        typer.echo(f"warning: task event {event.event_id} not published yet "
                   f"({type(exc).__name__}); the scheduler will send it", err=True)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _fmt(dt) -> str:  # type: ignore[no-untyped-def]
    """Local time (TTG_TIMEZONE), as hub staff read it."""
    from zoneinfo import ZoneInfo

    value = as_utc(dt)
    if value is None:
        return "-"
    return value.astimezone(ZoneInfo(get_settings().timezone)).strftime("%Y-%m-%d %H:%M")


def register(app: typer.Typer) -> None:
    tasks = typer.Typer(help="Tasks: owned work in the hubs.", no_args_is_help=True)
    hubs = typer.Typer(help="The hub directory: hubs, areas, prisons, staff.", no_args_is_help=True)
    app.add_typer(tasks, name="tasks")
    app.add_typer(hubs, name="hubs")

    @tasks.command("list")
    def tasks_list(
        hub: str | None = typer.Option(None, "--hub", help=f"Hub code, or {UNROUTED}."),
        role: StaffRole | None = typer.Option(None, "--role"),
        overdue: bool = typer.Option(False, "--overdue", help="Only tasks past their due time."),
        all_: bool = typer.Option(False, "--all", help="Include done and cancelled tasks."),
        prison_number: str | None = typer.Option(None, "--prison-number"),
    ) -> None:
        """List open and acknowledged tasks, most urgent and soonest due first."""
        from sqlmodel import Session

        from consumers.lifecycle import TaskFilter, list_tasks
        from schemas.envelope import utcnow

        f = TaskFilter(hub=hub, role=role, overdue=overdue, include_closed=all_,
                       prison_number=prison_number)
        with Session(_engine()) as session:
            rows = list_tasks(session, f, utcnow())
        now = utcnow()
        typer.echo("id\tprison_number\tneed\tpriority\tstatus\tdue_at\thub\towner")
        for t in rows:
            owner = t.owner_staff_id or f"{t.owner_role} queue"
            late = " OVERDUE" if t.status in ("open", "acknowledged") and (
                as_utc(t.due_at) or now) < now else ""
            typer.echo(f"{t.id}\t{t.prison_number}\t{t.need}\t{t.priority}\t{t.status}\t"
                       f"{_fmt(t.due_at)}{late}\t{t.hub_code or UNROUTED}\t{owner}")
        typer.echo(f"{len(rows)} task(s)", err=True)

    @tasks.command("show")
    def tasks_show(task_id: str) -> None:
        """One task with its alerts and full history."""
        from sqlmodel import Session, select

        from consumers.lifecycle import task_history
        from infra.models.tasks import Task, TaskAlert

        with Session(_engine()) as session:
            t = session.get(Task, task_id)
            if t is None:
                typer.echo(f"no task {task_id}", err=True)
                raise typer.Exit(1)
            links = session.exec(select(TaskAlert).where(TaskAlert.task_id == task_id)).all()
            hist = task_history(session, task_id)
        fields = {
            "id": t.id, "prison_number": t.prison_number, "need": t.need, "pathway": t.pathway,
            "rule": t.rule_id, "hub": t.hub_code or UNROUTED, "routing": t.routing,
            "owner": f"{t.owner_role} ({t.owner_staff_id})" if t.owner_staff_id
            else f"{t.owner_role} queue",
            "priority": t.priority, "status": t.status, "due": _fmt(t.due_at),
            "reason": t.reason, "historical": str(t.historical).lower(),
            "acknowledged": f"{_fmt(t.acknowledged_at)} by {t.acknowledged_by}"
            if t.acknowledged_at else "-",
            "closed": f"{_fmt(t.closed_at)}: {t.closed_reason}" if t.closed_at else "-",
            "escalated": _fmt(t.escalated_at),
        }
        for k, v in fields.items():
            typer.echo(f"{k}: {v}")
        typer.echo("alerts:")
        for link in links:
            typer.echo(f"  {link.alert_id} {link.rule_id} [{link.severity}] "
                       f"{'open' if link.open else 'resolved'}")
        typer.echo("history:")
        for h in hist:
            typer.echo(f"  {_fmt(h.at)} {h.action} by {h.actor}: {h.detail}".rstrip(": "))

    def _who(by: str | None) -> str:
        return by or getpass.getuser()

    @tasks.command("ack")
    def tasks_ack(task_id: str, by: str | None = typer.Option(None, "--by")) -> None:
        """Acknowledge a task: you have it (stops escalation)."""
        from consumers.lifecycle import TaskError, acknowledge
        from schemas.envelope import utcnow

        try:
            event = acknowledge(_engine(), task_id, _who(by), utcnow())
        except TaskError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        _publish(event)
        typer.echo(f"{task_id} acknowledged")

    def _finish(task_id: str, by: str | None, reason: str | None, status: TaskStatus) -> None:
        from consumers.lifecycle import TaskError, finish
        from schemas.envelope import utcnow

        try:
            event = finish(_engine(), task_id, _who(by), utcnow(), status, reason)
        except TaskError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        _publish(event)
        typer.echo(f"{task_id} {status.value}")

    @tasks.command("done")
    def tasks_done(
        task_id: str, by: str | None = typer.Option(None, "--by"),
        reason: str | None = typer.Option(None, "--reason"),
    ) -> None:
        """Mark a task done."""
        _finish(task_id, by, reason, TaskStatus.DONE)

    @tasks.command("cancel")
    def tasks_cancel(
        task_id: str, reason: str = typer.Option(..., "--reason", help="Why it is not needed."),
        by: str | None = typer.Option(None, "--by"),
    ) -> None:
        """Cancel a task, with the reason."""
        _finish(task_id, by, reason, TaskStatus.CANCELLED)

    @hubs.command("load")
    def hubs_load(file: Path | None = typer.Argument(None, help="TOML directory file.")) -> None:
        """Load (upsert) the hub directory from a TOML file (see examples/hubs.toml)."""
        from infra.database import migrate
        from infra.directory import DirectoryError, load_file

        path = file or get_settings().hub_directory_file
        if path is None:
            typer.echo("give a file, or set TTG_HUB_DIRECTORY_FILE", err=True)
            raise typer.Exit(2)
        engine = _engine()
        migrate(engine)
        try:
            counts = load_file(engine, path)
        except DirectoryError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        typer.echo(", ".join(f"{v} {k}" for k, v in counts.items()) + f" loaded from {path}")
        _reroute(engine)

    def _reroute(engine) -> None:  # type: ignore[no-untyped-def]
        from consumers.lifecycle import reroute_unrouted
        from schemas.envelope import utcnow

        events = reroute_unrouted(engine, utcnow())
        if events:
            typer.echo(f"{len(events)} unrouted task(s) now routed")
            _publish(events[-1])

    @tasks.command("reroute")
    def tasks_reroute() -> None:
        """Route open UNROUTED tasks again (after the hub directory changed)."""
        _reroute(_engine())

    @hubs.command("list")
    def hubs_list(
        phones: bool = typer.Option(False, "--phones", help="Show phone numbers."),
    ) -> None:
        """Hubs, the areas and prisons they serve, and their staff."""
        from sqlmodel import Session

        from infra.directory import read

        with Session(_engine()) as session:
            d = read(session)
        for h in d.hubs:
            typer.echo(f"{h.code}\t{h.kind}\t{h.name}")
            if h.local_authorities:
                typer.echo(f"  covers: {', '.join(sorted(h.local_authorities))}")
            prisons = [p.code for p in d.prisons if p.omu == h.code]
            if prisons:
                typer.echo(f"  OMU for: {', '.join(prisons)}")
            for s in sorted(h.staff, key=lambda s: (s.role.value, s.id)):
                phone = f"\t{s.phone or '-'}" if phones else ""
                typer.echo(f"  {s.id}\t{s.role.value}{' (lead)' if s.lead else ''}\t{s.name}"
                           f"{phone}")

    @hubs.command("add-staff")
    def hubs_add_staff(
        hub: str, staff_id: str, name: str = typer.Option(..., "--name"),
        role: StaffRole = typer.Option(..., "--role"),
        phone: str | None = typer.Option(None, "--phone"),
        lead: bool = typer.Option(False, "--lead", help="Owns the hub's tasks for this role."),
    ) -> None:
        """Add or replace a staff member in a hub."""
        from pydantic import ValidationError

        from infra.directory import DirectoryError, add_staff

        try:
            add_staff(_engine(), hub, staff_id, name, role, phone, lead)
        except (DirectoryError, ValidationError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        typer.echo(f"{staff_id} is {role.value}{' (lead)' if lead else ''} in {hub}")

    @app.command()
    def consume() -> None:
        """Run the alerts -> tasks consumer until stopped."""
        from consumers.alerts import serve
        from infra.kafka import ensure_topics

        settings = get_settings()
        ensure_topics(settings)
        serve(settings, _stop_on_signals())

    @app.command("scheduler")
    def run_scheduler() -> None:
        """Run the scheduler (escalations, digests, other areas' jobs); one leader at a time."""
        from scheduler.service import serve

        serve(get_settings(), _stop_on_signals())
