"""Alerts applied to the task store on SQLite and PostgreSQL: one task per need, history kept,
updates reprioritise, resolutions close, replays change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from consumers.lifecycle import TaskError, TaskFilter, acknowledge, finish, list_tasks, task_history
from consumers.tasks import HISTORICAL_REASON, Applied, apply_alert_event
from infra import directory as hub_directory
from infra.database import session_scope
from infra.directory import add_staff
from infra.models.columns import as_utc
from infra.models.hubs import Staff
from infra.models.tasks import UNROUTED, ProcessedEvent, Task, TaskAlert, TaskStatus
from schemas.common import Severity, StaffRole
from schemas.outputs import AlertEvent
from tests.tasks.conftest import NOW, event, make_alert


def apply(engine: Engine, ev: AlertEvent, at=NOW) -> Applied:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return apply_alert_event(s, ev, hub_directory.read(s), at)


def tasks(engine: Engine) -> list[Task]:
    with Session(engine) as s:
        return list(s.exec(select(Task).order_by(Task.created_at)).all())


def actions(engine: Engine, task_id: str) -> list[str]:
    with Session(engine) as s:
        return [h.action for h in task_history(s, task_id)]


def test_alert_creates_one_owned_task(hubs_engine: Engine) -> None:
    out = apply(hubs_engine, event(make_alert()))
    [t] = tasks(hubs_engine)
    assert (t.hub_code, t.owner_role, t.owner_staff_id) == ("IOM-CAMBS", "housing_officer",
                                                            "cambs-ho-1")
    assert (t.priority, t.status, t.need, t.pathway) == ("warning", "open", "accommodation",
                                                         "accommodation")
    assert as_utc(t.due_at) == NOW + timedelta(days=3)
    assert t.reason == "Release in 25 days and no confirmed address"
    assert [e.type for e in out.events] == ["task.created"]
    assert out.events[0].task_id == t.id and out.events[0].owner_staff_id == "cambs-ho-1"
    assert actions(hubs_engine, t.id) == ["created"]


def test_second_alert_same_need_updates_the_one_task(hubs_engine: Engine) -> None:
    first = make_alert(rule_id="no-accommodation-28", severity=Severity.WARNING)
    second = make_alert(rule_id="friday-release", severity=Severity.URGENT,
                        due_at=NOW + timedelta(days=1), reason="Friday release, no address")
    apply(hubs_engine, event(first))
    out = apply(hubs_engine, event(second))
    [t] = tasks(hubs_engine)
    assert (t.priority, t.reason, t.rule_id) == ("urgent", "Friday release, no address",
                                                 "friday-release")
    assert as_utc(t.due_at) == NOW + timedelta(days=1)
    assert [e.type for e in out.events] == ["task.updated"]
    assert actions(hubs_engine, t.id) == ["created", "linked", "reprioritised"]
    with Session(hubs_engine) as s:
        links = s.exec(select(TaskAlert).where(TaskAlert.task_id == t.id)).all()
    assert {link.alert_id for link in links} == {str(first.alert_id), str(second.alert_id)}


def test_also_notify_roles_are_recorded(hubs_engine: Engine) -> None:
    late = make_alert(rule_id="late-date-change", need="release_plan",
                      owner_role=StaffRole.IOM_POLICE_OFFICER,
                      also_notify=(StaffRole.HOUSING_OFFICER, StaffRole.WORK_COACH))
    apply(hubs_engine, event(late))
    [t] = tasks(hubs_engine)
    assert t.owner_staff_id == "cambs-pol-1"
    with Session(hubs_engine) as s:
        [created] = task_history(s, t.id)
    assert created.detail.endswith("also notify: housing_officer, work_coach")


def test_other_need_is_another_task(hubs_engine: Engine) -> None:
    apply(hubs_engine, event(make_alert()))
    apply(hubs_engine, event(make_alert(rule_id="benefits-gap", need="benefits",
                                        owner_role=StaffRole.WORK_COACH)))
    assert sorted(t.need for t in tasks(hubs_engine)) == ["accommodation", "benefits"]


def test_update_reprioritises_and_moves_due_time(hubs_engine: Engine) -> None:
    a = make_alert()
    apply(hubs_engine, event(a))
    later = make_alert(severity=Severity.URGENT, due_at=NOW + timedelta(hours=6))
    out = apply(hubs_engine, event(later, "alert.updated"))
    [t] = tasks(hubs_engine)
    assert t.priority == "urgent" and as_utc(t.due_at) == NOW + timedelta(hours=6)
    assert as_utc(t.urgent_since) == NOW
    assert out.events[0].type == "task.updated" and out.events[0].priority is Severity.URGENT
    assert actions(hubs_engine, t.id) == ["created", "reprioritised"]
    # The same alert updated with nothing new changes nothing and says nothing.
    assert apply(hubs_engine, event(later, "alert.updated")).events == []


def test_resolve_closes_only_when_no_alert_for_the_need_is_open(hubs_engine: Engine) -> None:
    a = make_alert(rule_id="no-accommodation-28")
    b = make_alert(rule_id="friday-release", severity=Severity.URGENT)
    apply(hubs_engine, event(a))
    apply(hubs_engine, event(b))
    out = apply(hubs_engine, event(b, "alert.resolved", resolution="release moved to Thursday"))
    [t] = tasks(hubs_engine)
    assert t.status == "open" and t.priority == "warning"  # a still open; priority falls back
    assert out.events[0].type == "task.updated"
    out = apply(hubs_engine, event(a, "alert.resolved", resolution="address confirmed"))
    [t] = tasks(hubs_engine)
    assert (t.status, t.closed_reason, t.active_key) == ("done", "resolved: address confirmed",
                                                         None)
    assert out.events[0].type == "task.done"
    assert actions(hubs_engine, t.id)[-2:] == ["alert_resolved", "done"]
    # A new alert for the need afterwards is new work: a new task.
    apply(hubs_engine, event(make_alert(rule_id="no-accommodation-7")))
    assert [x.status for x in tasks(hubs_engine)] == ["done", "open"]


def test_replayed_event_changes_nothing(hubs_engine: Engine) -> None:
    ev = event(make_alert())
    apply(hubs_engine, ev)
    again = apply(hubs_engine, ev)
    assert again.duplicate and again.events == []
    assert len(tasks(hubs_engine)) == 1
    with Session(hubs_engine) as s:
        assert len(s.exec(select(ProcessedEvent)).all()) == 1


def test_unrouted_task_is_visible(hubs_engine: Engine) -> None:
    out = apply(hubs_engine, event(make_alert(local_authority="Leeds")))
    assert out.unrouted
    with Session(hubs_engine) as s:
        [t] = list_tasks(s, TaskFilter(hub=UNROUTED), NOW)
        assert list_tasks(s, TaskFilter(hub="IOM-CAMBS"), NOW) == []
    assert t.hub_code is None and "no hub covers Leeds" in t.routing
    # Once the destination is one a hub covers, the task moves there.
    apply(hubs_engine, event(make_alert(local_authority="Norwich"), "alert.updated"))
    [t] = tasks(hubs_engine)
    assert (t.hub_code, t.owner_staff_id) == ("IOM-NORFOLK", "norf-ho-1")
    assert actions(hubs_engine, t.id)[-1] == "reassigned"


def test_destination_change_moves_task_to_the_new_hub(hubs_engine: Engine) -> None:
    apply(hubs_engine, event(make_alert(local_authority="Cambridge")))
    apply(hubs_engine, event(make_alert(local_authority="Great Yarmouth"), "alert.updated"))
    [t] = tasks(hubs_engine)
    assert t.hub_code == "IOM-NORFOLK"
    assert actions(hubs_engine, t.id) == ["created", "reassigned"]


def test_historical_alerts_are_kept_closed(hubs_engine: Engine) -> None:
    out = apply(hubs_engine, event(make_alert(historical=True)))
    assert out.events == []
    [t] = tasks(hubs_engine)
    assert (t.status, t.historical, t.closed_reason, t.active_key) == (
        "cancelled", True, HISTORICAL_REASON, None)
    with Session(hubs_engine) as s:
        assert list_tasks(s, TaskFilter(), NOW) == []  # never in anyone's queue
    # A live alert for the same need still makes a live task.
    apply(hubs_engine, event(make_alert()))
    assert sorted(x.status for x in tasks(hubs_engine)) == ["cancelled", "open"]


def test_lifecycle_records_who_and_when(hubs_engine: Engine) -> None:
    apply(hubs_engine, event(make_alert()))
    [t] = tasks(hubs_engine)
    ev = acknowledge(hubs_engine, t.id, "Housing Officer One", NOW + timedelta(minutes=5))
    assert ev.type == "task.acknowledged" and ev.by == "Housing Officer One"
    with pytest.raises(TaskError, match="only open"):
        acknowledge(hubs_engine, t.id, "x", NOW)
    ev = finish(hubs_engine, t.id, "Housing Officer One", NOW + timedelta(hours=1),
                TaskStatus.DONE, "placed at approved premises")
    assert ev.type == "task.done"
    with pytest.raises(TaskError, match="already done"):
        finish(hubs_engine, t.id, "x", NOW, TaskStatus.CANCELLED, "no")
    with pytest.raises(TaskError, match="no task"):
        acknowledge(hubs_engine, "T-NOPE", "x", NOW)
    with Session(hubs_engine) as s:
        hist = task_history(s, t.id)
    assert [(h.action, h.actor) for h in hist] == [
        ("created", "alerts"), ("acknowledged", "Housing Officer One"),
        ("done", "Housing Officer One")]
    assert hist[-1].detail == "placed at approved premises"


def test_cancel_frees_the_need(hubs_engine: Engine) -> None:
    apply(hubs_engine, event(make_alert()))
    [t] = tasks(hubs_engine)
    finish(hubs_engine, t.id, "hub", NOW, TaskStatus.CANCELLED, "back in custody")
    [t] = tasks(hubs_engine)
    assert (t.status, t.closed_reason) == ("cancelled", "back in custody")


def test_directory_reload_and_add_staff(hubs_engine: Engine) -> None:
    add_staff(hubs_engine, "IOM-CAMBS", "cambs-wc-2", "New Work Coach", StaffRole.WORK_COACH,
              "07700 900199", lead=True)
    apply(hubs_engine, event(make_alert(need="benefits", owner_role=StaffRole.WORK_COACH)))
    [t] = tasks(hubs_engine)
    assert t.owner_staff_id == "cambs-wc-2"
    with Session(hubs_engine) as s:
        assert s.get(Staff, "cambs-wc-2").phone == "+447700900199"  # type: ignore[union-attr]
    # Reloading the file drops staff it does not list to inactive (tasks still name them).
    from tests.tasks.conftest import EXAMPLE

    hub_directory.load_file(hubs_engine, EXAMPLE)
    with Session(hubs_engine) as s:
        row = s.get(Staff, "cambs-wc-2")
        assert row is not None and not row.active
        assert hub_directory.read(s).hub("IOM-CAMBS").lead_for(StaffRole.WORK_COACH) is None  # type: ignore[union-attr]
