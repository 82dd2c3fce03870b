"""Every API route, enumerated from the OpenAPI document: refuses anonymous callers, answers its
own hub, and treats another hub's person or task exactly like one that does not exist."""

from __future__ import annotations

import re

import pytest
from hubworld import World
from sqlmodel import select

from infra.database import session_scope
from infra.models.access import AuditView
from infra.models.tasks import Task

BODIES = {"reassign": {"role": "housing_officer"}}


def api_routes(world: World) -> list[tuple[str, str]]:
    spec = world.client.app.openapi()  # type: ignore[attr-defined]
    out = []
    for path, ops in spec["paths"].items():
        for method in ops:
            out.append((method.upper(), path))
    return out


def fill(path: str, ids: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        assert name in ids, f"route {path} has a parameter {name} this test does not know"
        return ids[name]

    return re.sub(r"\{(\w+)\}", sub, path)


def call(world: World, method: str, path: str, headers: dict[str, str] | None = None):  # noqa: ANN201
    body = next((b for k, b in BODIES.items() if path.endswith(k)), None)
    return world.client.request(method, path, headers=headers or {},
                                json=body if method == "POST" else None)


def test_openapi_lists_every_api_route(world: World) -> None:
    paths = {p for _, p in api_routes(world)}
    for expected in ("/api/v1/tasks", "/api/v1/tasks/{task_id}/ack", "/api/v1/tasks/{task_id}/done",
                     "/api/v1/tasks/{task_id}/reassign", "/api/v1/persons/{prison_number}",
                     "/api/v1/persons/{prison_number}/timeline", "/api/v1/calendar",
                     "/api/v1/reports", "/api/v1/reports.csv"):
        assert expected in paths
    # Pages are not part of the API document.
    assert not any(p.startswith(("/inbox", "/persons/", "/signin")) for p in paths)


def test_every_route_refuses_unauthenticated_calls(world: World) -> None:
    ids = {"prison_number": "A1234BC", "task_id": world.tasks["cambs_mine"]}
    checked = 0
    for method, path in api_routes(world):
        url = fill(path, ids)
        for headers in ({}, {"Authorization": "Bearer ttg_not-a-token"},
                        {"Authorization": f"Basic {world.tokens['hana']}"}):
            r = call(world, method, url, headers)
            expected = 403 if path.startswith("/twilio") else 401
            assert r.status_code == expected, (method, url, headers, r.status_code, r.text)
        checked += 1
    assert checked >= 15
    with session_scope(world.engine) as s:
        assert s.get(Task, world.tasks["cambs_mine"]).status == "open"  # type: ignore[union-attr]
        assert s.exec(select(AuditView)).all() == []


def test_every_route_with_an_id_hides_other_hubs(world: World) -> None:
    """NORF's user asks for CAMBS's person and task: the answer is the same 404 as for an id
    that does not exist, and nothing changes or is logged as viewed."""
    theirs = {"prison_number": "A1234BC", "task_id": world.tasks["cambs_mine"]}
    missing = {"prison_number": "Z9999ZZ", "task_id": "t-does-not-exist"}
    checked = 0
    for method, path in api_routes(world):
        if "{" not in path or path.startswith("/twilio"):
            continue
        a = call(world, method, fill(path, theirs), world.api("nina"))
        b = call(world, method, fill(path, missing), world.api("nina"))
        assert a.status_code == 404, (method, path, a.status_code, a.text)
        assert (a.status_code, a.json()) == (b.status_code, b.json()) == (404, {
            "detail": "not found"})
        checked += 1
    assert checked >= 11
    with session_scope(world.engine) as s:
        task = s.get(Task, world.tasks["cambs_mine"])
        assert task is not None and task.status == "open" and task.owner_staff_id == "cambs-housing"
        assert s.exec(select(AuditView)).all() == []
    assert world.published == []


def test_every_route_answers_its_own_hub(world: World) -> None:
    ids = {"prison_number": "A1234BC", "task_id": world.tasks["cambs_queue"]}
    for method, path in api_routes(world):
        if path.startswith("/twilio") or method != "GET":
            continue
        r = call(world, method, fill(path, ids), world.api("hana"))
        assert r.status_code == 200, (method, path, r.text)


@pytest.mark.parametrize("path", ["/api/v1/tasks?scope=hub", "/api/v1/calendar", "/api/v1/persons",
                                  "/api/v1/tasks?scope=hub&include_closed=true"])
def test_lists_hold_only_the_callers_hub(world: World, path: str) -> None:
    cambs = world.client.get(path, headers=world.api("hana")).text
    norf = world.client.get(path, headers=world.api("nina")).text
    assert "A1234BC" in cambs and "C3456DE" not in cambs
    assert "C3456DE" in norf and "A1234BC" not in norf and "B2345CD" not in norf


def test_reports_count_only_the_callers_hub(world: World) -> None:
    cambs = world.client.get("/api/v1/reports?period=all", headers=world.api("hana")).json()
    norf = world.client.get("/api/v1/reports?period=all", headers=world.api("nina")).json()
    # CAMBS holds two urgent tasks created in the period, NORF one.
    assert cambs["rows"][0]["urgent_tasks"] == 2
    assert norf["rows"][0]["urgent_tasks"] == 1


def test_reassign_cannot_reach_into_another_hub(world: World) -> None:
    r = world.client.post(f"/api/v1/tasks/{world.tasks['cambs_mine']}/reassign",
                          json={"staff_id": "norf-housing"}, headers=world.api("hana"))
    assert r.status_code == 404 and r.json() == {"detail": "not found"}
    with session_scope(world.engine) as s:
        assert s.get(Task, world.tasks["cambs_mine"]).owner_staff_id == "cambs-housing"  # type: ignore[union-attr]


def test_revoked_or_unknown_token_is_refused(world: World) -> None:
    from infra.models.access import ApiToken

    with session_scope(world.engine) as s:
        for row in s.exec(select(ApiToken)).all():
            row.revoked = True
            s.add(row)
    assert world.client.get("/api/v1/me", headers=world.api("hana")).status_code == 401
