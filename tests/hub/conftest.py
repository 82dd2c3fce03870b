"""The ``world`` fixture: see :mod:`hubworld`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from hubworld import (
    DIRECTORY,
    PASSWORD,
    T0,
    Clock,
    World,
    add_task,
    event,
    project,
)
from sqlalchemy.engine import Engine

from hub.accounts import add_user, issue_token
from hub.app import create_app
from infra.config import Settings
from infra.directory import Directory, store
from schemas.outputs import TaskEvent


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2's production cost (~0.5 s a hash here) would dominate the suite; the tests check
    behaviour, not cost, so they use the same algorithm with the smallest parameters."""
    from argon2 import PasswordHasher

    import hub.accounts

    monkeypatch.setattr(hub.accounts, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def world(engine: Engine, tmp_path) -> Iterator[World]:
    settings = Settings(_env_file=None, environment="test", database_url="sqlite://",
                        secret_key="test-secret-key-please", session_max_age_seconds=3600)
    store(engine, Directory.model_validate(DIRECTORY))
    users = [
        ("hana", "CAMBS", "housing_officer", "cambs-housing"),
        ("pat", "CAMBS", "iom_police_officer", "cambs-police"),
        ("nina", "NORF", "housing_officer", "norf-housing"),
    ]
    from schemas.common import StaffRole

    tokens = {}
    for username, hub, role, staff in users:
        add_user(engine, username=username, name=username.title(), hub_code=hub,
                 role=StaffRole(role), password=PASSWORD, staff_id=staff, now=T0)
        tokens[username] = issue_token(engine, username, "tests", T0)

    base = T0 - timedelta(days=20)
    for raw in [
        event("custody.reception", "A1234BC", {"prison": "MDI", "status": "sentenced"}, base),
        event("release_date.changed", "A1234BC",
              {"new_date": "2026-01-23", "release_type": "conditional_release"},
              base + timedelta(days=1)),
        event("release_date.changed", "A1234BC",
              {"new_date": "2026-01-16", "previous_date": "2026-01-23",
               "release_type": "conditional_release", "reason": "recalculated"},
              base + timedelta(days=2)),
        event("case_note.accommodation", "A1234BC",
              {"status": "none", "local_authority": "Cambridge"}, base + timedelta(days=3)),
        event("case_note.health", "A1234BC",
              {"opiate_substitution_in_custody": True, "text": "methadone 40ml daily"},
              base + timedelta(days=4)),
        event("case_note.general", "A1234BC",
              {"subtype": "mh", "text": "anxiety referral", "sensitivity": "health"},
              base + timedelta(days=4, hours=1)),
        event("case_note.general", "A1234BC",
              {"subtype": "intel", "text": "associates with X", "sensitivity":
               "police_intelligence"}, base + timedelta(days=4, hours=2)),
        event("case_note.pathway_status", "A1234BC",
              {"pathway": "health", "status": "support_required"}, base + timedelta(days=5)),
        event("case_note.pathway_status", "A1234BC",
              {"pathway": "accommodation", "status": "in_progress"}, base + timedelta(days=5)),
        event("case_note.appointment", "A1234BC",
              {"appointment_id": "ap-1", "action": "booked", "kind": "supervision",
               "at": "2026-01-16T14:00:00+00:00", "place": "Probation office"},
              base + timedelta(days=6)),
        event("case_note.accommodation", "B2345CD",
              {"status": "confirmed", "local_authority": "Cambridge"}, base),
        event("release_date.changed", "B2345CD",
              {"new_date": "2026-02-06", "release_type": "conditional_release"}, base),
        event("case_note.accommodation", "C3456DE",
              {"status": "none", "local_authority": "Norwich"}, base),
        event("release_date.changed", "C3456DE",
              {"new_date": "2026-01-30", "release_type": "conditional_release"}, base),
    ]:
        assert project(engine, raw)

    tasks = {
        "cambs_mine": add_task(engine, "A1234BC", "CAMBS"),
        "cambs_queue": add_task(engine, "B2345CD", "CAMBS", staff=None, priority="warning",
                                need="benefits", pathway="finance_id",
                                due=T0 - timedelta(hours=1)),
        "cambs_health": add_task(engine, "A1234BC", "CAMBS", need="prescriber",
                                 pathway="health", role="drug_alcohol_worker", staff=None,
                                 reason="Methadone: no community prescriber"),
        "norf": add_task(engine, "C3456DE", "NORF", staff="norf-housing"),
    }
    clock = Clock(T0)
    published: list[TaskEvent] = []
    app = create_app(settings, engine, clock=clock, publish=published.append)
    with TestClient(app) as client:
        yield World(engine, clock, client, settings, tokens, tasks, published)
