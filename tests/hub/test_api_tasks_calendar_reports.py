"""Task actions, the release calendar and the reports through the API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hubworld import T0, World, add_task, event, project
from sqlmodel import select

from hub.releases import bank_holiday, holiday_after
from infra.database import session_scope
from infra.models.tasks import Task, TaskHistory


def test_task_list_filters_and_order(world: World) -> None:
    h = world.api("hana")
    tasks = world.client.get("/api/v1/tasks", headers=h).json()
    assert [t["id"] for t in tasks] == [world.tasks["cambs_mine"], world.tasks["cambs_queue"]]
    assert [t["mine"] for t in tasks] == [True, False]
    assert [t["overdue"] for t in tasks] == [False, True]
    mine = world.client.get("/api/v1/tasks?scope=mine", headers=h).json()
    assert [t["id"] for t in mine] == [world.tasks["cambs_mine"]]
    queue = world.client.get("/api/v1/tasks?scope=queue&due=overdue", headers=h).json()
    assert [t["id"] for t in queue] == [world.tasks["cambs_queue"]]
    hub = world.client.get("/api/v1/tasks?scope=hub&pathway=health", headers=h).json()
    assert [t["id"] for t in hub] == [world.tasks["cambs_health"]]
    assert world.client.get("/api/v1/tasks?pathway=nonsense", headers=h).status_code == 422
    # More overdue first within a priority.
    older = add_task(world.engine, "B2345CD", "CAMBS", staff=None, priority="warning",
                     need="id", pathway="finance_id", due=T0 - timedelta(days=2))
    queue = world.client.get("/api/v1/tasks?scope=queue", headers=h).json()
    assert [t["id"] for t in queue] == [older, world.tasks["cambs_queue"]]


def test_acknowledge_done_reassign(world: World) -> None:
    h = world.api("hana")
    tid = world.tasks["cambs_mine"]
    world.clock.advance(minutes=30)
    r = world.client.post(f"/api/v1/tasks/{tid}/ack", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["task"]["status"] == "acknowledged"
    assert r.json()["task"]["acknowledged_by"] == "user:hana"
    assert world.client.post(f"/api/v1/tasks/{tid}/ack", headers=h).status_code == 409
    r = world.client.post(f"/api/v1/tasks/{tid}/reassign", headers=h,
                          json={"staff_id": "cambs-housing-2"})
    assert r.status_code == 200 and r.json()["task"]["owner_staff_id"] == "cambs-housing-2"
    r = world.client.post(f"/api/v1/tasks/{tid}/reassign", headers=h,
                          json={"role": "iom_police_officer"})
    assert r.json()["task"]["owner_role"] == "iom_police_officer"
    assert r.json()["task"]["owner_staff_id"] == "cambs-police"  # the role's lead
    assert world.client.post(f"/api/v1/tasks/{tid}/reassign", headers=h,
                             json={}).status_code == 409
    r = world.client.post(f"/api/v1/tasks/{tid}/done", headers=h, json={"reason": "housed"})
    assert r.status_code == 200 and r.json()["task"]["status"] == "done"
    assert world.client.post(f"/api/v1/tasks/{tid}/done", headers=h).status_code == 409
    assert [e.type for e in world.published] == [
        "task.acknowledged", "task.updated", "task.updated", "task.done"]
    assert len({e.event_id for e in world.published}) == 4
    with session_scope(world.engine) as s:
        actions = [x.action for x in s.exec(select(TaskHistory).where(
            TaskHistory.task_id == tid)).all()]
    assert actions[0] == "acknowledged" and actions.count("reassigned") == 2
    detail = world.client.get(f"/api/v1/tasks/{tid}", headers=h).json()
    assert [x["action"] for x in detail["history"]][:3] == ["acknowledged", "reassigned",
                                                             "reassigned"]


def test_median_time_to_acknowledge_urgent(world: World) -> None:
    h = world.api("hana")
    # cambs_mine was created at T0-2h; acknowledge at T0+1h -> 180 minutes. The health task
    # stays unacknowledged.
    world.clock.advance(hours=1)
    world.client.post(f"/api/v1/tasks/{world.tasks['cambs_mine']}/ack", headers=h)
    t2 = add_task(world.engine, "B2345CD", "CAMBS", need="mentor",
                  pathway="attitudes_thinking_behaviour", created=T0 - timedelta(minutes=20))
    world.client.post(f"/api/v1/tasks/{t2}/ack", headers=h)  # 80 minutes
    rep = world.client.get("/api/v1/reports?start=2026-01-01&end=2026-01-31&period=all",
                           headers=h).json()
    row = rep["rows"][0]
    assert (row["urgent_tasks"], row["urgent_acknowledged"]) == (3, 2)
    assert row["median_minutes_to_acknowledge_urgent"] == 130.0


def test_release_outcome_shares(world: World) -> None:
    """Two releases into Cambridge in January: one housed by release day with a benefit claim
    and an attended first appointment, one with nothing."""
    e = world.engine
    day = datetime(2026, 1, 16, 8, 0, tzinfo=UTC)
    assert project(e, event("case_note.finance_id", "A1234BC", {"benefit_claim_made": True},
                            day - timedelta(days=3)))
    assert project(e, event("case_note.accommodation", "A1234BC",
                            {"status": "confirmed", "local_authority": "Cambridge"},
                            day - timedelta(hours=1)))
    assert project(e, event("custody.release", "A1234BC",
                            {"prison": "MDI", "local_authority": "Cambridge"}, day))
    assert project(e, event("case_note.appointment", "A1234BC",
                            {"appointment_id": "ap-1", "action": "attended", "kind": "supervision"},
                            day + timedelta(hours=7)))
    assert project(e, event("custody.release", "B2345CD",
                            {"prison": "MDI", "local_authority": "Cambridge"},
                            day + timedelta(days=1)))
    # B2345CD's accommodation was confirmed in the fixture before release: also counts.
    world.clock.now = datetime(2026, 2, 1, 12, tzinfo=UTC)
    rep = world.client.get("/api/v1/reports?start=2026-01-01&end=2026-01-31&period=month",
                           headers=world.api("hana")).json()
    row = rep["rows"][0]
    assert row["releases"] == 2
    assert row["accommodation_confirmed_by_release"] == {"numerator": 2, "denominator": 2,
                                                         "percent": 100.0}
    assert row["benefit_claim_before_release"]["numerator"] == 1
    assert row["first_appointment_attended"]["numerator"] == 1
    assert row["first_appointment_attended"]["percent"] == 50.0
    norf = world.client.get("/api/v1/reports?start=2026-01-01&end=2026-01-31&period=month",
                            headers=world.api("nina")).json()
    assert norf["rows"][0]["releases"] == 0
    csv_ = world.client.get("/api/v1/reports.csv?start=2026-01-01&end=2026-01-31&period=month",
                            headers=world.api("hana")).text
    assert csv_.splitlines()[1].startswith("CAMBS,2026-01-01,2026-01-31,2,2,100.0,1,50.0,1,50.0")
    # Released people leave the calendar.
    cal = world.client.get("/api/v1/calendar", headers=world.api("hana")).json()
    assert not any(r["prison_number"] == "A1234BC" for d in cal["days"] for r in d["releases"])


def test_calendar_days_and_history(world: World) -> None:
    cal = world.client.get("/api/v1/calendar", headers=world.api("hana")).json()
    assert cal["start"] == "2026-01-12" and cal["end"] == "2026-04-05"
    assert len(cal["days"]) == 84
    days = {d["date"]: d for d in cal["days"]}
    assert days["2026-01-16"]["friday"] and not days["2026-01-15"]["friday"]
    # Easter 2026: Good Friday 3 April, so Thursday 2 April is the last working day before it.
    assert days["2026-04-02"]["before_bank_holiday"] == "Good Friday"
    assert days["2026-04-03"]["bank_holiday"] == "Good Friday"
    a = days["2026-01-16"]["releases"][0]
    assert a["prison_number"] == "A1234BC" and a["moved"]
    assert [h["new_date"] for h in a["history"]] == ["2026-01-23", "2026-01-16"]
    assert {b["need"] for b in a["badges"]} == {"accommodation", "prescriber"}
    b = days["2026-02-06"]["releases"][0]
    assert b["prison_number"] == "B2345CD" and not b["moved"]
    assert world.client.get("/api/v1/calendar?weeks=0",
                            headers=world.api("hana")).status_code == 422


@pytest.mark.parametrize(("day", "expected"), [
    (date(2026, 4, 2), "Good Friday"),       # Thursday before Good Friday
    (date(2026, 5, 22), "Spring Bank Holiday"),  # Friday before the bank holiday Monday
    (date(2026, 5, 15), None),               # an ordinary Friday
    (date(2026, 12, 24), "Christmas Day"),
    (date(2026, 12, 27), None),              # a Sunday is not a working day
])
def test_last_working_day_before_a_bank_holiday(day: date, expected: str | None) -> None:
    assert holiday_after(day) == expected


def test_bank_holidays_are_england_and_wales() -> None:
    assert bank_holiday(date(2026, 8, 31)) == "Late Summer Bank Holiday"
    assert bank_holiday(date(2026, 8, 3)) is None  # Scotland's summer holiday, not E&W's


def test_task_rows_untouched_by_reads(world: World) -> None:
    before = _snapshot(world)
    for path in ("/api/v1/tasks", "/api/v1/calendar", "/api/v1/reports"):
        world.client.get(path, headers=world.api("hana"))
    assert _snapshot(world) == before


def _snapshot(world: World) -> list[tuple[str, str, str | None]]:
    with session_scope(world.engine) as s:
        return sorted((t.id, t.status, t.owner_staff_id) for t in s.exec(select(Task)).all())
