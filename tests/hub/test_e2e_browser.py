"""End to end in headless Chromium: sign in, acknowledge a task, check the calendar and a person.

Drives Debian's /usr/bin/chromium through Playwright (no downloaded browser). Screenshots go to
``$TTG_E2E_SCREENSHOTS`` when set, else the test's tmp_path.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hubworld import PASSWORD, World

from infra.database import session_scope
from infra.models.tasks import Task

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="headless e2e needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install -y chromium)"),
    # One backend is enough for a browser test; the API tests cover both.
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(world: World) -> Iterator[str]:
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(world.client.app, host="127.0.0.1", port=port,
                                        log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("TTG_E2E_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


def test_sign_in_acknowledge_and_calendar(world: World, server: str, shots: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    tid = world.tasks["cambs_mine"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server}/inbox")
            assert "/signin" in page.url
            page.fill("#username", "hana")
            page.fill("#password", PASSWORD)
            page.screenshot(path=str(shots / "01-signin.png"), full_page=True)
            page.click("button:has-text('Sign in')")
            page.wait_for_url(f"{server}/inbox")
            row = page.locator(f"#task-{tid}")
            assert row.get_attribute("data-status") == "open"
            page.screenshot(path=str(shots / "02-inbox.png"), full_page=True)

            row.locator("[data-action=ack]").click()
            page.wait_for_load_state()
            assert page.locator(f"#task-{tid}").get_attribute("data-status") == "acknowledged"
            page.screenshot(path=str(shots / "03-acknowledged.png"), full_page=True)

            page.click("a:has-text('Release calendar')")
            page.wait_for_url(f"{server}/calendar")
            day = page.locator("#day-2026-01-16")
            assert "A1234BC" in day.inner_text() and "Friday" in day.inner_text()
            assert "C3456DE" not in page.content()
            page.screenshot(path=str(shots / "04-calendar.png"), full_page=True)

            page.click("#day-2026-01-16 a:has-text('A1234BC')")
            page.wait_for_url(f"{server}/persons/A1234BC")
            assert "Probation office" in page.content()
            page.screenshot(path=str(shots / "05-person.png"), full_page=True)

            # The GOV.UK stylesheet really applied (not just linked).
            colour = page.eval_on_selector("header.govuk-header",
                                           "e => getComputedStyle(e).backgroundColor")
            assert colour not in ("rgba(0, 0, 0, 0)", "transparent")
        finally:
            browser.close()
    with session_scope(world.engine) as s:
        task = s.get(Task, tid)
        assert task is not None and task.acknowledged_by == "user:hana"
    assert all((shots / f).stat().st_size > 1000 for f in (
        "01-signin.png", "02-inbox.png", "03-acknowledged.png", "04-calendar.png",
        "05-person.png"))
