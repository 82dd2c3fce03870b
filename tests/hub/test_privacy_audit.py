"""Health notes stay away from police; police intelligence away from third-sector roles; every
view of a person's record is in the audit log."""

from __future__ import annotations

from datetime import timedelta

from hubworld import PASSWORD, T0, World, add_task
from sqlmodel import col, select

from hub.accounts import add_user, issue_token
from infra.database import session_scope
from infra.models.access import AuditView
from schemas.common import StaffRole

HEALTH_WORDS = ("methadone", "anxiety", "opiate", "support required", "prescriber",
                "Methadone")


def test_health_notes_hidden_from_police_api(world: World) -> None:
    h = world.api("hana")
    p = world.api("pat")
    housing = world.client.get("/api/v1/persons/A1234BC/timeline", headers=h).json()
    police = world.client.get("/api/v1/persons/A1234BC/timeline", headers=p).json()
    housing_text = " ".join(e["summary"] for e in housing)
    police_text = " ".join(e["summary"] for e in police)
    assert "methadone" in housing_text and "anxiety referral" in housing_text
    for word in HEALTH_WORDS:
        assert word not in police_text
    assert len(police) == len(housing) - 3  # health note, health general note, health pathway
    # Police intelligence is for police (and the housing officer here is not third sector).
    assert "associates with X" in police_text

    pathways = {x["pathway"]: x for x in world.client.get(
        "/api/v1/persons/A1234BC/pathways", headers=p).json()}
    assert pathways["health"]["status"] == "restricted" and pathways["health"]["restricted"]
    assert pathways["accommodation"]["status"] == "in_progress"
    assert world.client.get("/api/v1/persons/A1234BC/pathways", headers=h).json()[-1][
        "status"] == "support_required"

    health_task = f"/api/v1/tasks/{world.tasks['cambs_health']}"
    for path in ("/api/v1/persons/A1234BC/tasks", "/api/v1/persons/A1234BC/alerts",
                 "/api/v1/tasks?scope=hub", "/api/v1/calendar", health_task):
        body = world.client.get(path, headers=p).text
        for word in HEALTH_WORDS:
            assert word not in body, (path, word)
        assert "prescriber" in world.client.get(path, headers=h).text, path
    # A health task is "not found" for police, and they cannot act on it either.
    assert world.client.get(health_task, headers=p).status_code == 404
    assert world.client.post(health_task + "/ack", headers=p).status_code == 404


def test_health_notes_hidden_from_police_page(world: World) -> None:
    c = world.sign_in("pat")
    page = c.get("/persons/A1234BC")
    assert page.status_code == 200
    for word in HEALTH_WORDS:
        assert word not in page.text
    assert "restricted" in page.text


def test_police_intelligence_hidden_from_third_sector(world: World) -> None:
    add_user(world.engine, username="mo", name="Mo Mentor", hub_code="CAMBS",
             role=StaffRole.PEER_MENTOR, password=PASSWORD, staff_id=None, now=T0)
    token = issue_token(world.engine, "mo", "t", T0)
    body = world.client.get("/api/v1/persons/A1234BC/timeline",
                            headers={"Authorization": f"Bearer {token}"}).json()
    text = " ".join(e["summary"] for e in body)
    assert "associates with X" not in text
    assert any(e["restricted"] for e in body)


def test_every_view_is_audited(world: World) -> None:
    h = world.api("hana")
    world.clock.advance(minutes=5)
    for part in ("", "/timeline", "/pathways", "/alerts", "/tasks", "/appointments", "/texts"):
        assert world.client.get(f"/api/v1/persons/A1234BC{part}", headers=h).status_code == 200
    c = world.sign_in("pat")
    assert c.get("/persons/B2345CD").status_code == 200
    assert c.get("/persons/C3456DE").status_code == 404  # NORF's: not a view, not logged
    with session_scope(world.engine) as s:
        rows = s.exec(select(AuditView).order_by(col(AuditView.id))).all()
    api_rows = [r for r in rows if r.channel == "api"]
    assert [r.resource for r in api_rows] == [
        "api:person", "api:timeline", "api:pathways", "api:alerts", "api:tasks",
        "api:appointments", "api:texts"]
    assert {(r.username, r.hub_code, r.prison_number, r.role) for r in api_rows} == {
        ("hana", "CAMBS", "A1234BC", "housing_officer")}
    assert all(r.at.replace(tzinfo=None) == (T0 + timedelta(minutes=5)).replace(tzinfo=None)
               for r in api_rows)
    page_rows = [r for r in rows if r.channel == "page"]
    assert [(r.username, r.prison_number, r.resource) for r in page_rows] == [
        ("pat", "B2345CD", "page:person")]


def test_lists_do_not_count_as_record_views(world: World) -> None:
    add_task(world.engine, "A1234BC", "CAMBS", need="id")
    world.client.get("/api/v1/tasks", headers=world.api("hana"))
    world.client.get("/api/v1/calendar", headers=world.api("hana"))
    with session_scope(world.engine) as s:
        assert s.exec(select(AuditView)).all() == []
