"""``ttg hub`` (the web app), ``ttg users add|token`` and ``ttg timeline`` (the projection)."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import typer

log = logging.getLogger(__name__)


def _publisher(settings):  # type: ignore[no-untyped-def]
    """Publish task events to the tasks topic when a broker is reachable; otherwise none."""
    if not settings.resolved_bootstrap():
        log.warning("no Kafka broker configured: task changes are stored but not published")
        return None
    from infra.kafka import make_producer
    from infra.topics import Topics
    from schemas.codec import encode
    from schemas.outputs import TaskEvent

    producer = make_producer(settings)
    topic = Topics.from_settings(settings).tasks

    def publish(event: TaskEvent) -> None:
        producer.send(topic, encode(event), key=event.prison_number.encode()).get(30)

    return publish


DEMO_HUB = "IOM-DEMO"


def _seed_demo(engine, public_url: str) -> None:  # type: ignore[no-untyped-def]
    import secrets

    from sqlmodel import select

    from hub.accounts import add_user
    from infra.database import session_scope
    from infra.directory import Directory, store
    from infra.models.access import HubUser
    from infra.models.hubs import Hub
    from schemas.common import StaffRole

    with session_scope(engine) as session:
        if session.exec(select(HubUser)).first() is not None:
            return
        hub = session.exec(select(Hub).where(Hub.kind == "community", Hub.active)).first()
        code = hub.code if hub else None
    if code is None:
        store(engine, Directory.model_validate({"hubs": [{
            "code": DEMO_HUB, "name": "Demo IOM hub", "local_authorities": ["Demoshire"]}]}))
        code = DEMO_HUB
    password = secrets.token_urlsafe(12)
    add_user(engine, username="demo", name="Demo hub manager", hub_code=code,
             role=StaffRole.HUB_MANAGER, password=password, staff_id=f"{code.lower()}-demo",
             now=datetime.now(UTC))
    # Printed (not logged through the logging config) so it lands once in the hub's own output.
    print(f"demo sign-in: {public_url}/signin  user: demo  password: {password}  hub: {code}",
          flush=True)


def register(app: typer.Typer) -> None:
    users = typer.Typer(help="Hub app users and API tokens.", no_args_is_help=True)
    app.add_typer(users, name="users")

    @app.command("hub")
    def hub(
        host: str | None = typer.Option(None, help="Default: settings.hub_host."),
        port: int | None = typer.Option(None, help="Default: settings.hub_port."),
        seed_demo: bool = typer.Option(
            False, "--seed-demo", help="Outside production, when no user exists yet: create a "
            "demo hub (if there is none) and a demo hub manager, and print the sign-in."),
    ) -> None:
        """Serve the IOM hub web app and its JSON API."""
        import uvicorn

        from hub.app import create_app
        from infra.config import get_settings
        from infra.database import engine_for, migrate

        settings = get_settings()
        engine = engine_for(settings)
        migrate(engine)
        if seed_demo and not settings.is_production:
            _seed_demo(engine, settings.hub_public_url)
        app_ = create_app(settings, engine, publish=_publisher(settings))
        uvicorn.run(app_, host=host or settings.hub_host, port=port or settings.hub_port,
                    log_level="info", proxy_headers=True)

    @app.command("timeline")
    def timeline() -> None:
        """Project input events into each person's timeline and summary (runs until stopped)."""
        import signal
        import threading

        from consumers.timeline import run
        from infra.config import get_settings
        from infra.database import engine_for, migrate

        settings = get_settings()
        engine = engine_for(settings)
        migrate(engine)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        run(settings, engine, stop)

    @users.command("add")
    def add(
        username: str = typer.Argument(..., help="Sign-in name."),
        hub: str = typer.Option(..., "--hub", help="Hub code, e.g. IOM-CAMBS."),
        role: str = typer.Option(..., "--role", help="A staff role, e.g. housing_officer."),
        name: str = typer.Option(..., "--name", help="Display name."),
        staff_id: str | None = typer.Option(
            None, "--staff-id", help="Directory staff id whose tasks are this user's (created "
            "in the hub if missing)."),
        password_stdin: bool = typer.Option(
            False, "--password-stdin", help="Read the password from standard input."),
    ) -> None:
        """Add a user to a hub with a role. Without --password-stdin: API tokens only."""
        from hub.accounts import AccountError, add_user
        from infra.config import get_settings
        from infra.database import engine_for, migrate
        from schemas.common import StaffRole

        try:
            staff_role = StaffRole(role)
        except ValueError:
            raise typer.BadParameter(
                f"unknown role; one of: {', '.join(r.value for r in StaffRole)}") from None
        password = sys.stdin.readline().rstrip("\n") if password_stdin else None
        engine = engine_for(get_settings())
        migrate(engine)
        try:
            user = add_user(engine, username=username, name=name, hub_code=hub, role=staff_role,
                            password=password, staff_id=staff_id, now=datetime.now(UTC))
        except AccountError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"added user {user.username} ({staff_role.value}) to {hub}")

    @users.command("token")
    def token(
        username: str = typer.Argument(...),
        label: str = typer.Option("", "--label", help="What the token is for."),
    ) -> None:
        """Issue an API token. It is printed once and stored only as a digest."""
        from hub.accounts import AccountError, issue_token
        from infra.config import get_settings
        from infra.database import engine_for, migrate

        engine = engine_for(get_settings())
        migrate(engine)
        try:
            typer.echo(issue_token(engine, username, label, datetime.now(UTC)))
        except AccountError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
