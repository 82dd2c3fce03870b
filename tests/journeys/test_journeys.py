"""End-to-end journeys: a person's events in, the alerts, tasks and texts the practice expects out.

Everything real: the embedded broker, the Faust stream worker (a subprocess whose clock starts
at ``START``), the alerts -> tasks consumer, the notifications consumer and the outbox dispatch,
one SQLite database with ``examples/hubs.toml`` loaded. Each journey has its own prison numbers.

Events are published one by one with a short pause, so the worker (which reads three topics)
folds them in the order the journey tells them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from infra.broker import EmbeddedBroker
from scheduler.service import JobContext, escalation_job
from tests.journeys.world import World, event, open_task

pytestmark = pytest.mark.kafka

#: Monday 23 November 2026, 10:00 (GMT = UTC): the world's "now" when the services start.
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


@pytest.fixture(scope="module")
def world(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World.start(broker.bootstrap, tmp_path_factory.mktemp("journeys"), START)
    try:
        yield w
    finally:
        w.close()


def plan(pn: str, release: date, recorded: datetime, previous: date | None = None):  # type: ignore[no-untyped-def]
    return event("release_date.changed", pn, recorded, new_date=release,
                 previous_date=previous, release_type="conditional_release")


def housing(pn: str, status: str, la: str, at: datetime):  # type: ignore[no-untyped-def]
    address = None if status == "none" else "1 Mill Road"
    return event("case_note.accommodation", pn, at, status=status, address=address,
                 local_authority=la)


def in_order(world: World, *events) -> None:  # type: ignore[no-untyped-def]
    """Publish one by one with a pause, so the worker folds them in this order."""
    for e in events:
        world.publish(e)
        time.sleep(1.0)


def raised(world: World, pn: str) -> dict[str, dict]:
    return {e["alert"]["rule_id"]: e for e in world.alerts(pn) if e["type"] == "alert.raised"}


def resolved(world: World, pn: str) -> dict[str, dict]:
    return {e["alert"]["rule_id"]: e for e in world.alerts(pn) if e["type"] == "alert.resolved"}


def test_friday_release_with_no_address(world: World) -> None:
    """
    | step                                   | expected                                            |
    |----------------------------------------|-----------------------------------------------------|
    | no address, area Peterborough          | -                                                   |
    | release date Fri 11 Dec (18 days away) | alert release.friday_or_pre_holiday, suggested      |
    |                                        | Wed 9 Dec; alert accommodation.none                 |
    | tasks                                  | ONE open accommodation task, housing officer,       |
    |                                        | IOM-CAMBS (lead cambs-ho-1), both alerts linked     |
    """
    pn = "J1000AA"
    in_order(world, housing(pn, "none", "Peterborough", START - DAY),
             plan(pn, date(2026, 12, 11), START - 30 * DAY))
    task = world.wait_for("accommodation task with both alerts, routed", lambda: (
        (t := open_task(world, pn, "accommodation")()) and len(world.links(t.id)) == 2
        and t.hub_code and t))
    alerts = raised(world, pn)
    friday = alerts["release.friday_or_pre_holiday"]["alert"]
    assert friday["suggested_release_date"] == "2026-12-09"
    assert friday["release_date"] == "2026-12-11"
    assert "accommodation.none" in alerts
    assert [t.need for t in world.tasks(pn)].count("accommodation") == 1
    assert (task.owner_role, task.hub_code, task.owner_staff_id) == (
        "housing_officer", "IOM-CAMBS", "cambs-ho-1")
    assert task.release_date == date(2026, 12, 11)
    assert {x.rule_id for x in world.links(task.id)} == {
        "release.friday_or_pre_holiday", "accommodation.none"}


def test_release_date_brought_forward_overnight(world: World) -> None:
    """
    | step                                         | expected                                      |
    |----------------------------------------------|-----------------------------------------------|
    | address confirmed, area Norwich              | -                                             |
    | release date Fri 18 Dec, set 40 days ago     | (no short-notice alert)                       |
    | today: release brought forward to tomorrow   | URGENT release_date.short_notice, "brought    |
    |                                              | forward ... notified the day before"          |
    | tasks                                        | urgent release_plan task, IOM police officer, |
    |                                              | IOM-NORFOLK                                   |
    | scheduler, 61 min later, not acknowledged    | escalated to the hub manager (norfolk lead)   |
    """
    pn = "J2000AA"
    in_order(world, housing(pn, "confirmed", "Norwich", START - 20 * DAY),
             plan(pn, date(2026, 12, 18), START - 40 * DAY),
             plan(pn, date(2026, 11, 24), START, previous=date(2026, 12, 18)))
    task = world.wait_for("release_plan task", open_task(world, pn, "release_plan"))
    alert = world.wait_for("short-notice alert", lambda: raised(world, pn).get(
        "release_date.short_notice"))["alert"]
    assert alert["severity"] == "urgent"
    assert "brought forward" in alert["reason"] and "the day before" in alert["reason"]
    assert (task.owner_role, task.hub_code, task.priority) == (
        "iom_police_officer", "IOM-NORFOLK", "urgent")
    assert task.rule_id == "release_date.short_notice"

    # The scheduler's escalation job, run as its clock would an hour and a minute later.
    later = JobContext(world.settings, world.engine, clock=lambda: world.clock() + 61 * MINUTE)
    assert escalation_job(later) >= 1
    escalated = next(t for t in world.tasks(pn) if t.id == task.id)
    assert escalated.owner_role == "hub_manager" and escalated.escalated_at is not None
    assert escalated.owner_staff_id == "norf-hm-1"
    assert "escalated" in [h.action for h in world.history(task.id)]


def test_short_sentence_release_with_no_benefit_claim(world: World) -> None:
    """
    | step                                          | expected                                     |
    |-----------------------------------------------|----------------------------------------------|
    | sentenced to 120 days, no statutory supervision| -                                           |
    | address confirmed, area Cambridge             | -                                            |
    | release date Thu 3 Dec (10 days away)         | benefits.no_claim, mentor.short_sentence     |
    | tasks                                         | benefits -> work coach, mentor -> mentor     |
    |                                               | coordinator, both IOM-CAMBS                  |
    """
    pn = "J3000AA"
    in_order(world,
             event("custody.reception", pn, START - 60 * DAY, prison="PBI", status="sentenced",
                   sentence_length_days=120, statutory_supervision=False),
             housing(pn, "confirmed", "Cambridge", START - 10 * DAY),
             plan(pn, date(2026, 12, 3), START - 20 * DAY))
    benefits = world.wait_for("benefits task", open_task(world, pn, "benefits"))
    mentor = world.wait_for("mentor task", open_task(world, pn, "mentor"))
    assert {"benefits.no_claim", "mentor.short_sentence"} <= set(raised(world, pn))
    assert (benefits.owner_role, benefits.hub_code) == ("work_coach", "IOM-CAMBS")
    assert (mentor.owner_role, mentor.hub_code) == ("mentor_coordinator", "IOM-CAMBS")
    # No supervising officer: the first-appointment rule stays quiet for short sentences.
    assert open_task(world, pn, "first_appointment")() is None


def test_missed_then_attended_appointment(world: World) -> None:
    """
    | step                                       | expected                                        |
    |--------------------------------------------|-------------------------------------------------|
    | released 3 days ago to Fenland, housed     | -                                               |
    | supervision yesterday: missed              | appointment.missed -> engagement task,          |
    |                                            | probation practitioner, IOM-CAMBS               |
    | supervision today: attended                | alert resolved -> task done, history kept       |
    """
    pn = "J4000AA"
    released = START - 3 * DAY
    in_order(world, housing(pn, "confirmed", "Fenland", released - 5 * DAY),
             plan(pn, released.date(), released - 30 * DAY),
             event("custody.release", pn, released, prison="PBI", local_authority="Fenland"),
             event("case_note.appointment", pn, START - DAY + timedelta(hours=2),
                   appointment_id="a1", action="missed", at=START - DAY))
    task = world.wait_for("engagement task", open_task(world, pn, "engagement"))
    assert (task.owner_role, task.hub_code, task.priority) == (
        "probation_practitioner", "IOM-CAMBS", "warning")
    world.publish(event("case_note.appointment", pn, START, appointment_id="a2",
                        action="attended", at=START - timedelta(hours=1)))
    done = world.wait_for("engagement task done", lambda: next(
        (t for t in world.tasks(pn) if t.id == task.id and t.status == "done"), None))
    assert done.active_key is None and done.closed_reason.startswith("resolved:")
    assert "appointment.missed" in resolved(world, pn)
    actions = [h.action for h in world.history(task.id)]
    assert actions[0] == "created" and actions[-2:] == ["alert_resolved", "done"]


def test_recall_cancels_everything(world: World) -> None:
    """
    | step                                            | expected                                   |
    |-------------------------------------------------|--------------------------------------------|
    | released 2 days ago to Huntingdonshire, housed, | welcome text sent (outbox); reminders for  |
    | mobile + consent, supervision booked in 2 days  | the booked appointment scheduled           |
    | supervision yesterday missed                    | engagement task open                       |
    | recalled today                                  | custody.back_in_custody -> hub manager     |
    |                                                 | task (hub told); engagement task closed;   |
    |                                                 | pending reminders cancelled; no new texts  |
    """
    pn = "J5000AA"
    released = START - 2 * DAY
    booked = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    in_order(world, housing(pn, "confirmed", "Huntingdonshire", released - 5 * DAY),
             plan(pn, released.date(), released - 30 * DAY),
             event("custody.release", pn, released, prison="PBI",
                   local_authority="Huntingdonshire"),
             event("case_note.contact", pn, released, mobile="07700 900999", sms_consent=True),
             event("case_note.appointment", pn, released, appointment_id="a1", action="booked",
                   at=booked, place="Probation office, 1 High St", with_whom="Sam"),
             event("case_note.appointment", pn, START - DAY + timedelta(hours=2),
                   appointment_id="a0", action="missed", at=START - DAY))
    engagement = world.wait_for("engagement task", open_task(world, pn, "engagement"))
    world.wait_for("appointment reminders", lambda: {"evening_before|a1", "hours_before|a1"}
                   <= set(world.reminders(pn)))
    world.wait_for("welcome text", lambda: world.dispatch() and world.texts(pn))
    texts_before = len(world.texts(pn))

    world.publish(event("custody.recall", pn, START, reason="licence breach", prison="PBI"))
    custody = world.wait_for("custody task", open_task(world, pn, "custody"))
    assert (custody.owner_role, custody.hub_code, custody.owner_staff_id) == (
        "hub_manager", "IOM-CAMBS", "cambs-hm-1")
    closed = world.wait_for("engagement task closed", lambda: next(
        (t for t in world.tasks(pn) if t.id == engagement.id and t.active_key is None), None))
    assert "back in custody" in (closed.closed_reason or "")
    states = world.wait_for("reminders cancelled", lambda: (
        r := world.reminders(pn)) and r.get("evening_before|a1") == "cancelled" and r)
    assert states["hours_before|a1"] == "cancelled"
    assert not [k for k, v in states.items() if v == "scheduled"]
    world.dispatch()
    assert len(world.texts(pn)) == texts_before
    assert "custody.back_in_custody" in raised(world, pn)
    assert not [t for t in world.tasks(pn) if t.active_key and t.need != "custody"]


def test_transfer_near_release(world: World) -> None:
    """
    | step                                         | expected                                      |
    |----------------------------------------------|-----------------------------------------------|
    | housed in Norwich, release Thu 10 Dec        | -                                             |
    | today: moved from PBI to NWI (17 days before)| custody.transfer_near_release -> OMU task at  |
    |                                              | the receiving prison, OMU-NWI                 |
    """
    pn = "J6000AA"
    in_order(world, housing(pn, "confirmed", "Norwich", START - 20 * DAY),
             plan(pn, date(2026, 12, 10), START - 40 * DAY),
             event("custody.transfer", pn, START, from_prison="PBI", to_prison="NWI"))
    task = world.wait_for("release_plan task", open_task(world, pn, "release_plan"))
    assert task.rule_id == "custody.transfer_near_release"
    assert (task.owner_role, task.hub_code, task.prison) == ("omu", "OMU-NWI", "NWI")
    alert = raised(world, pn)["custody.transfer_near_release"]["alert"]
    assert "from PBI to NWI" in alert["reason"]


def test_duplicate_housing_alerts_collapse_to_one_task(world: World) -> None:
    """
    | step                                   | expected                                            |
    |----------------------------------------|-----------------------------------------------------|
    | no address, area Norwich               | -                                                   |
    | release date Fri 11 Dec                | two accommodation alerts -> ONE task (created, then |
    |                                        | the second alert linked), IOM-NORFOLK housing       |
    | address confirmed                      | both alerts resolved -> the same task done; history |
    |                                        | created, linked, alert_resolved x2, done            |
    """
    pn = "J7000AA"
    in_order(world, housing(pn, "none", "Norwich", START - DAY),
             plan(pn, date(2026, 12, 11), START - 30 * DAY))
    task = world.wait_for("one task, two alerts", lambda: (
        (t := open_task(world, pn, "accommodation")()) and len(world.links(t.id)) == 2
        and t.hub_code and t))
    assert (task.owner_role, task.hub_code) == ("housing_officer", "IOM-NORFOLK")
    assert [h.action for h in world.history(task.id)][:2] == ["created", "linked"]

    world.publish(housing(pn, "confirmed", "Norwich", START))
    done = world.wait_for("task done", lambda: next(
        (t for t in world.tasks(pn) if t.id == task.id and t.status == "done"), None))
    assert done.active_key is None
    assert len([t for t in world.tasks(pn) if t.need == "accommodation"]) == 1
    actions = [h.action for h in world.history(task.id)]
    assert actions.count("alert_resolved") == 2 and actions[-1] == "done"
    assert not [link for link in world.links(task.id) if link.open]
    assert {"accommodation.none", "release.friday_or_pre_holiday"} <= set(resolved(world, pn))


def test_area_known_late_moves_the_task_to_its_hub(world: World) -> None:
    """
    | step                                   | expected                                            |
    |----------------------------------------|-----------------------------------------------------|
    | release date Wed 16 Dec, area unknown  | accommodation.none -> task UNROUTED (visible)       |
    | case note: no address, area Fenland    | alert updated with the area -> the same task moves  |
    |                                        | to IOM-CAMBS, lead housing officer; "reassigned"    |
    """
    pn = "J8000AA"
    world.publish(plan(pn, date(2026, 12, 16), START - 30 * DAY))
    task = world.wait_for("unrouted task", open_task(world, pn, "accommodation"))
    assert task.hub_code is None
    world.publish(housing(pn, "none", "Fenland", START))
    moved = world.wait_for("task routed", lambda: (
        (t := open_task(world, pn, "accommodation")()) and t.hub_code and t))
    assert (moved.id, moved.hub_code, moved.owner_staff_id) == (task.id, "IOM-CAMBS", "cambs-ho-1")
    assert moved.local_authority == "Fenland"
    assert "reassigned" in [h.action for h in world.history(task.id)]
    updated = [e for e in world.alerts(pn) if e["type"] == "alert.updated"
               and e["alert"]["rule_id"] == "accommodation.none"]
    assert updated and updated[-1]["alert"]["local_authority"] == "Fenland"
