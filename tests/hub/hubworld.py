"""Helpers for the hub tests: two hubs with people, tasks and users on a real database.

CAMBS covers Cambridge; NORF covers Norwich. A1234BC and B2345CD go to Cambridge (CAMBS's),
C3456DE goes to Norwich (NORF's). Events go through the real timeline projection.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from consumers.timeline import apply_event
from infra.config import Settings
from infra.database import session_scope
from infra.models.tasks import Task, TaskAlert
from schemas.codec import decode_input
from schemas.outputs import TaskEvent

#: Monday 12 January 2026, 09:00 UTC.
T0 = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"

DIRECTORY = {
    "hubs": [
        {"code": "CAMBS", "name": "Cambridgeshire IOM", "local_authorities": ["Cambridge"],
         "staff": [
             {"id": "cambs-housing", "name": "Hana Housing", "role": "housing_officer",
              "lead": True},
             {"id": "cambs-police", "name": "Pat Police", "role": "iom_police_officer",
              "lead": True},
             {"id": "cambs-housing-2", "name": "Harry Housing", "role": "housing_officer"},
         ]},
        {"code": "NORF", "name": "Norfolk IOM", "local_authorities": ["Norwich"],
         "staff": [{"id": "norf-housing", "name": "Nina Norfolk", "role": "housing_officer",
                    "lead": True}]},
    ],
    "prisons": [],
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def event(type_: str, pn: str, payload: dict, at: datetime, source: str = "MDI") -> dict:
    raw = {
        "event_id": str(uuid.uuid4()), "type": type_, "schema_version": 1,
        "occurred_at": at.isoformat(), "recorded_at": at.isoformat(), "source": source,
        "person": {"prison_number": pn}, "payload": payload,
    }
    return raw


def project(engine: Engine, raw: dict) -> bool:
    import json

    return apply_event(engine, decode_input(json.dumps(raw)))


def add_task(engine: Engine, pn: str, hub: str | None, *, need: str = "accommodation",
             pathway: str = "accommodation", role: str = "housing_officer",
             staff: str | None = "cambs-housing", priority: str = "urgent",
             due: datetime | None = None, reason: str = "No confirmed address",
             created: datetime | None = None) -> str:
    tid = f"t-{uuid.uuid4().hex[:12]}"
    created = created or T0 - timedelta(hours=2)
    with session_scope(engine) as s:
        s.add(Task(id=tid, prison_number=pn, need=need, pathway=pathway, rule_id=f"{need}-rule",
                   hub_code=hub, owner_role=role, owner_staff_id=staff, priority=priority,
                   due_at=due or T0 + timedelta(hours=4), reason=reason, status="open",
                   created_at=created, updated_at=created, active_key=f"{pn}|{need}",
                   release_date=date(2026, 1, 16)))
        s.flush()
        s.add(TaskAlert(task_id=tid, alert_id=str(uuid.uuid4()), rule_id=f"{need}-rule",
                        severity=priority, due_at=due or T0 + timedelta(hours=4), reason=reason,
                        open=True, last_event_id=str(uuid.uuid4()), updated_at=created))
    return tid


@dataclass
class World:
    engine: Engine
    clock: Clock
    client: TestClient
    settings: Settings
    tokens: dict[str, str]
    tasks: dict[str, str]
    published: list[TaskEvent] = field(default_factory=list)

    def api(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def sign_in(self, username: str, client: TestClient | None = None) -> TestClient:
        c = client or self.client
        page = c.get("/signin")
        token = csrf_of(page.text)
        r = c.post("/signin", data={"username": username, "password": PASSWORD,
                                    "csrf_token": token, "next": "/inbox"},
                   follow_redirects=False)
        assert r.status_code == 303, r.text
        return c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


