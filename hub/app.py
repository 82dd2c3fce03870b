"""The IOM hub web app: server-rendered pages for staff and a JSON API for integrations."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware

from hub.deps import Clock, HubContext, Publisher, SignInRequired
from infra.config import Settings
from schemas.envelope import utcnow

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: The module that holds the Twilio webhooks (status callbacks, inbound replies), when installed.
TWILIO_WEBHOOKS = "consumers.notifications.webhooks"


def _mount_twilio(app: FastAPI, settings: Settings, engine: Engine, clock: Clock) -> bool:
    """Mount the reminders area's Twilio webhooks (under /twilio) when that area is installed."""
    try:
        module = importlib.import_module(TWILIO_WEBHOOKS)
    except ImportError:
        log.warning("%s not importable: Twilio webhooks are not served", TWILIO_WEBHOOKS)
        return False
    app.include_router(module.make_router(settings, engine, clock))
    return True


def create_app(
    settings: Settings, engine: Engine, clock: Clock | None = None,
    publish: Publisher | None = None,
) -> FastAPI:
    from hub import api, pages

    app = FastAPI(
        title="Through the Gate: IOM hub",
        version="1",
        description="Tasks, release calendar, person records and reports for one IOM hub. "
        "Every call is scoped to the caller's hub; another hub's person is 'not found'.",
        docs_url="/api/docs", redoc_url=None, openapi_url="/openapi.json",
    )
    clock = clock or utcnow
    app.state.hub = HubContext(settings=settings, engine=engine, clock=clock, publish=publish)
    app.state.twilio_mounted = _mount_twilio(app, settings, engine, clock)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key.get_secret_value(),
        session_cookie="ttg_hub",
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.hub_public_url.startswith("https://"),
    )

    @app.middleware("http")
    async def _headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/static/"):
            # Person records must not linger in shared browser caches.
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        from urllib.parse import quote

        return RedirectResponse(f"/signin?next={quote(exc.next_path, safe='/')}", status_code=303)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith(("/api/", "/twilio")):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))
        return pages.error_page(request, exc.status_code, str(exc.detail))

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    return app
