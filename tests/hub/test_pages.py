"""Sign-in, sessions that expire, CSRF on every form, and the pages' content."""

from __future__ import annotations

from fastapi.testclient import TestClient
from hubworld import PASSWORD, World, csrf_of
from sqlmodel import select

from infra.database import session_scope
from infra.models.access import HubSession, HubUser
from infra.models.tasks import Task, TaskHistory


def test_pages_need_sign_in(world: World) -> None:
    for path in ("/inbox", "/calendar", "/persons/A1234BC", "/reports", "/reports.csv"):
        r = world.client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/signin?next=/"), path


def test_sign_in_with_the_wrong_password_fails(world: World) -> None:
    token = csrf_of(world.client.get("/signin").text)
    r = world.client.post("/signin", data={"username": "hana", "password": "nope-nope-nope",
                                           "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 401 and "not right" in r.text
    assert world.client.get("/inbox", follow_redirects=False).status_code == 303


def test_passwords_are_argon2_hashes(world: World) -> None:
    with session_scope(world.engine) as s:
        user = s.exec(select(HubUser).where(HubUser.username == "hana")).one()
    assert user.password_hash and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_sign_in_then_inbox(world: World) -> None:
    c = world.sign_in("hana")
    r = c.get("/inbox")
    assert r.status_code == 200 and "govuk-frontend.min.css" in r.text
    assert r.headers["cache-control"] == "no-store"
    # Urgent first, then the overdue warning; the NORF task never appears.
    order = [world.tasks["cambs_mine"], world.tasks["cambs_queue"]]
    positions = [r.text.index(f'id="task-{t}"') for t in order]
    assert positions == sorted(positions)
    assert world.tasks["norf"] not in r.text
    assert world.tasks["cambs_health"] not in r.text  # another role's queue
    assert "overdue" in r.text
    filtered = c.get("/inbox?pathway=finance_id")
    assert world.tasks["cambs_queue"] in filtered.text
    assert world.tasks["cambs_mine"] not in filtered.text
    overdue = c.get("/inbox?due=overdue")
    assert world.tasks["cambs_queue"] in overdue.text
    assert world.tasks["cambs_mine"] not in overdue.text


def test_forms_refuse_a_missing_or_wrong_csrf_token(world: World) -> None:
    c = world.sign_in("hana")
    tid = world.tasks["cambs_mine"]
    for data in ({}, {"csrf_token": "forged"}):
        for action in ("ack", "done", "reassign"):
            r = c.post(f"/tasks/{tid}/{action}", data={**data, "target": "role:omu"},
                       follow_redirects=False)
            assert r.status_code == 403, (action, data)
    r = c.post("/signout", data={}, follow_redirects=False)
    assert r.status_code == 403
    # A token from another browser's session does not work either.
    other = TestClient(world.client.app)
    foreign = csrf_of(other.get("/signin").text)
    assert c.post(f"/tasks/{tid}/ack", data={"csrf_token": foreign},
                  follow_redirects=False).status_code == 403
    # Sign-in itself is protected against login CSRF.
    fresh = TestClient(world.client.app)
    assert fresh.post("/signin", data={"username": "hana", "password": PASSWORD},
                      follow_redirects=False).status_code == 403
    with session_scope(world.engine) as s:
        task = s.get(Task, tid)
        assert task is not None and task.status == "open" and task.owner_staff_id == "cambs-housing"
        assert s.exec(select(TaskHistory).where(TaskHistory.task_id == tid)).all() == []
    assert world.published == []


def test_acknowledge_complete_and_reassign_from_the_inbox(world: World) -> None:
    c = world.sign_in("hana")
    page = c.get("/inbox")
    token = csrf_of(page.text)
    tid = world.tasks["cambs_mine"]
    r = c.post(f"/tasks/{tid}/ack", data={"csrf_token": token, "back": "/inbox?due=any"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/inbox?due=any"
    assert 'data-status="acknowledged"' in c.get("/inbox").text
    r = c.post(f"/tasks/{world.tasks['cambs_queue']}/reassign",
               data={"csrf_token": token, "target": "staff:cambs-housing-2"},
               follow_redirects=False)
    assert r.status_code == 303
    r = c.post(f"/tasks/{tid}/done", data={"csrf_token": token, "reason": "address confirmed"},
               follow_redirects=False)
    assert r.status_code == 303
    with session_scope(world.engine) as s:
        done = s.get(Task, tid)
        moved = s.get(Task, world.tasks["cambs_queue"])
        assert done is not None and done.status == "done" and done.acknowledged_by == "user:hana"
        assert moved is not None and moved.owner_staff_id == "cambs-housing-2"
    assert [e.type for e in world.published] == ["task.acknowledged", "task.updated", "task.done"]
    # Another hub's task through the page: not found, nothing changes.
    r = c.post(f"/tasks/{world.tasks['norf']}/ack", data={"csrf_token": token},
               follow_redirects=False)
    assert r.status_code == 404 and "not found" in r.text


def test_sessions_expire(world: World) -> None:
    c = world.sign_in("hana")
    assert c.get("/inbox", follow_redirects=False).status_code == 200
    world.clock.advance(seconds=world.settings.session_max_age_seconds - 60)
    assert c.get("/inbox", follow_redirects=False).status_code == 200
    world.clock.advance(seconds=61)
    r = c.get("/inbox", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")


def test_sign_out_ends_the_session_server_side(world: World) -> None:
    c = world.sign_in("hana")
    cookie = c.cookies.get("ttg_hub")
    token = csrf_of(c.get("/inbox").text)
    assert c.post("/signout", data={"csrf_token": token},
                  follow_redirects=False).status_code == 303
    # Replaying the old cookie does not bring the session back.
    replay = TestClient(world.client.app, cookies={"ttg_hub": cookie})
    assert replay.get("/inbox", follow_redirects=False).status_code == 303
    with session_scope(world.engine) as s:
        assert all(row.revoked for row in s.exec(select(HubSession)).all())


def test_person_page_shows_the_record(world: World) -> None:
    c = world.sign_in("hana")
    r = c.get("/persons/A1234BC")
    assert r.status_code == 200
    for text in ("Accommodation", "in progress", "Probation office", "No confirmed address",
                 "Release date 2026-01-16 (was 2026-01-23)", "Health", "methadone"):
        assert text in r.text, text
    assert c.get("/persons/C3456DE").status_code == 404
    assert c.get("/persons/Z9999ZZ").status_code == 404
    assert c.get("/persons/C3456DE").text.count("not found") == c.get(
        "/persons/Z9999ZZ").text.count("not found")


def test_calendar_page_marks_fridays_and_moves(world: World) -> None:
    c = world.sign_in("hana")
    r = c.get("/calendar")
    assert r.status_code == 200
    assert 'id="day-2026-01-16"' in r.text and "ttg-friday" in r.text
    assert "Date moved" in r.text and "C3456DE" not in r.text


def test_reports_page_and_csv(world: World) -> None:
    c = world.sign_in("hana")
    r = c.get("/reports?period=week&start=2026-01-01&end=2026-01-12")
    assert r.status_code == 200 and "<svg" in r.text
    csv_ = c.get("/reports.csv?period=all&start=2026-01-01&end=2026-01-12")
    assert csv_.headers["content-type"].startswith("text/csv")
    assert csv_.text.splitlines()[0].startswith("hub,period_start,period_end,releases")
    assert csv_.text.splitlines()[1].startswith("CAMBS,2026-01-01,2026-01-12,0")
    assert c.get("/reports?start=2026-02-01&end=2026-01-01").status_code == 422


def test_session_cookie_is_http_only_and_bounded(world: World) -> None:
    token = csrf_of(world.client.get("/signin").text)
    r = world.client.post("/signin", data={"username": "hana", "password": PASSWORD,
                                           "csrf_token": token}, follow_redirects=False)
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("ttg_hub="))
    assert f"Max-Age={world.settings.session_max_age_seconds}" in cookie
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    # The cookie is signed: tampering with it signs the browser out.
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    forged = TestClient(world.client.app, cookies={"ttg_hub": value[:-4] + "AAAA"})
    assert forged.get("/inbox", follow_redirects=False).status_code == 303
    genuine = TestClient(world.client.app, cookies={"ttg_hub": value})
    assert genuine.get("/inbox", follow_redirects=False).status_code == 200
