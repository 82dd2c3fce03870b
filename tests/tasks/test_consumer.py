"""The alerts -> tasks consumer over the real broker, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime

import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from consumers.alerts import AlertsConsumer
from consumers.outbox import unsent
from consumers.publish import Publisher
from consumers.tasks import Applied, apply_alert_event
from infra.config import Settings
from infra.directory import Directory
from infra.models.tasks import Task, TaskHistory
from infra.topics import Topics
from schemas.common import Severity, StaffRole
from schemas.outputs import DeadLetter
from tests.tasks.conftest import (
    NOW,
    committed,
    event,
    make_alert,
    publish,
    read_topic,
    task_events,
)

pytestmark = pytest.mark.kafka


def run(settings: Settings, engine: Engine, **kw) -> AlertsConsumer:  # type: ignore[no-untyped-def]
    c = AlertsConsumer(settings, engine, clock=lambda: NOW, retry_backoff=0.1, **kw)
    try:
        c.run(idle_timeout=2.0)
    finally:
        c.publisher.close()
    return c


def all_tasks(engine: Engine) -> list[Task]:
    with Session(engine) as s:
        return list(s.exec(select(Task)).all())


def test_alerts_become_routed_tasks_and_task_events(kafka_settings: Settings,
                                                    hubs_engine: Engine) -> None:
    omu = make_alert(prison_number="A1111AA", rule_id="transfer-near-release", need="transfer",
                     owner_role=StaffRole.OMU, prison="PBI", local_authority="Norwich")
    community = make_alert(prison_number="B2222BB", local_authority="Fenland", prison="LHI")
    other_area = make_alert(prison_number="C3333CC", local_authority="Norwich", prison="PBI")
    nowhere = make_alert(prison_number="D4444DD", local_authority="Cardiff")
    publish(kafka_settings, *(event(a) for a in (omu, community, other_area, nowhere)))
    c = run(kafka_settings, hubs_engine)
    assert (c.stats.applied, c.stats.unrouted, c.stats.task_events) == (4, 1, 4)
    hubs = {t.prison_number: t.hub_code for t in all_tasks(hubs_engine)}
    assert hubs == {"A1111AA": "OMU-PBI", "B2222BB": "IOM-CAMBS", "C3333CC": "IOM-NORFOLK",
                    "D4444DD": None}
    events = task_events(kafka_settings)
    assert sorted((e.prison_number, e.type, e.hub) for e in events) == [
        ("A1111AA", "task.created", "OMU-PBI"), ("B2222BB", "task.created", "IOM-CAMBS"),
        ("C3333CC", "task.created", "IOM-NORFOLK"), ("D4444DD", "task.created", None)]


def test_lifecycle_over_kafka_and_redelivery_never_duplicates(
    kafka_settings: Settings, hubs_engine: Engine,
) -> None:
    a = make_alert(rule_id="no-accommodation-28")
    b = make_alert(rule_id="friday-release", severity=Severity.URGENT)
    stream = [event(a), event(b), event(b, "alert.resolved", "moved to Thursday"),
              event(a, "alert.updated"), event(a, "alert.resolved", "address confirmed")]
    publish(kafka_settings, *stream)
    run(kafka_settings, hubs_engine)
    [t] = all_tasks(hubs_engine)
    assert (t.status, t.closed_reason) == ("done", "resolved: address confirmed")
    with Session(hubs_engine) as s:
        history_rows = len(s.exec(select(TaskHistory)).all())
    events_before = task_events(kafka_settings)
    assert [e.type for e in events_before] == [
        "task.created", "task.updated", "task.updated", "task.done"]

    # The same events published again (a replay upstream) and a fresh consumer group reading
    # the whole topic from the start: nothing new happens.
    publish(kafka_settings, *stream)
    replay = kafka_settings.model_copy(update={"tasks_consumer_group": "replay-group"})
    c = run(replay, hubs_engine)
    assert (c.stats.consumed, c.stats.duplicates, c.stats.applied) == (10, 10, 0)
    assert len(all_tasks(hubs_engine)) == 1
    with Session(hubs_engine) as s:
        assert len(s.exec(select(TaskHistory)).all()) == history_rows
    assert len(task_events(kafka_settings)) == len(events_before)


class Crash(Exception):
    pass


class CrashBeforeOffsetCommit(AlertsConsumer):
    """Dies after the database commit but before committing the Kafka offset."""

    def commit(self, consumer, offsets) -> None:  # type: ignore[no-untyped-def]
        raise Crash()


def test_crash_before_offset_commit_redelivers_without_duplicates(
    kafka_settings: Settings, hubs_engine: Engine,
) -> None:
    publish(kafka_settings, event(make_alert()))
    crashing = CrashBeforeOffsetCommit(kafka_settings, hubs_engine, clock=lambda: NOW)
    with pytest.raises(Crash):
        crashing.run(idle_timeout=2.0)
    crashing.publisher.close()
    assert len(all_tasks(hubs_engine)) == 1  # the database work was committed...
    group = kafka_settings.tasks_consumer_group
    alerts = Topics.from_settings(kafka_settings).alerts
    # ...the offsets were not.
    assert all(o is None for o in committed(kafka_settings, group, alerts).values())

    c = run(kafka_settings, hubs_engine)  # restart: same group, message comes again
    assert (c.stats.consumed, c.stats.duplicates) == (1, 1)
    assert len(all_tasks(hubs_engine)) == 1
    assert sum(o or 0 for o in committed(kafka_settings, group, alerts).values()) == 1


class BrokerGoneAtFirstCommit(AlertsConsumer):
    """The broker stops answering during the first offset commit (an outage mid-run)."""

    failed = False

    def commit(self, consumer, offsets) -> None:  # type: ignore[no-untyped-def]
        if not self.failed:
            self.failed = True
            raise KafkaConnectionError("111 ECONNREFUSED")
        super().commit(consumer, offsets)


def test_an_unconfirmed_offset_commit_does_not_stop_the_consumer(
    kafka_settings: Settings, hubs_engine: Engine,
) -> None:
    group = kafka_settings.tasks_consumer_group
    alerts = Topics.from_settings(kafka_settings).alerts
    c = BrokerGoneAtFirstCommit(kafka_settings, hubs_engine, clock=lambda: NOW)
    try:
        publish(kafka_settings, event(make_alert(prison_number="A1111AA")))
        stop = threading.Event()
        worker = threading.Thread(target=c.run, args=(stop,), daemon=True)
        worker.start()
        deadline = time.monotonic() + 30
        while not c.failed and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.failed and worker.is_alive()  # the failed commit did not end it
        publish(kafka_settings, event(make_alert(prison_number="B2222BB")))
        while c.stats.applied < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        worker.join(15)
    finally:
        c.publisher.close()
    assert (c.stats.applied, c.stats.commit_failures) == (2, 1)
    assert {t.prison_number for t in all_tasks(hubs_engine)} == {"A1111AA", "B2222BB"}
    # The second batch's commit carried the first's offsets: nothing is left to read again.
    assert sum(o or 0 for o in committed(kafka_settings, group, alerts).values()) == 2


def test_database_failure_is_retried_not_skipped(kafka_settings: Settings,
                                                 hubs_engine: Engine) -> None:
    # Same person, so one partition: the second waits behind the first, in order.
    first = event(make_alert())
    second = event(make_alert(need="benefits", owner_role=StaffRole.WORK_COACH))
    publish(kafka_settings, first, second)
    failures = {"left": 2}
    offsets_seen: list[dict] = []

    def flaky(session: Session, ev, directory: Directory, now: datetime) -> Applied:  # type: ignore[no-untyped-def]
        if ev.event_id == first.event_id and failures["left"]:
            failures["left"] -= 1
            offsets_seen.append(committed(kafka_settings, kafka_settings.tasks_consumer_group,
                                          Topics.from_settings(kafka_settings).alerts))
            raise OperationalError("insert", {}, Exception("database went away"))
        return apply_alert_event(session, ev, directory, now)

    # Five attempts are allowed a message; an outage is not the message's fault and uses none.
    s = kafka_settings.model_copy(update={"tasks_max_attempts": 2})
    c = run(s, hubs_engine, apply=flaky)
    assert failures["left"] == 0 and (c.stats.database_waits, c.stats.retried) == (2, 0)
    assert c.stats.dead_lettered == 0
    assert sorted(t.need for t in all_tasks(hubs_engine)) == ["accommodation", "benefits"]
    # While the first alert kept failing, its offset was never committed past it.
    assert all(o is None for snap in offsets_seen for o in snap.values())


def test_undecodable_alert_goes_to_dead_letter_and_consumer_continues(
    kafka_settings: Settings, hubs_engine: Engine,
) -> None:
    bad_json = b"{not json"
    bad_alert = json.dumps({"type": "alert.raised", "alert": {"prison_number": "nope"}}).encode()
    good = event(make_alert())
    publish(kafka_settings, bad_json, bad_alert, good)
    c = run(kafka_settings, hubs_engine)
    assert (c.stats.dead_lettered, c.stats.applied) == (2, 1)
    assert len(all_tasks(hubs_engine)) == 1
    letters = [DeadLetter.model_validate_json(v) for v in
               read_topic(kafka_settings, Topics.from_settings(kafka_settings).dead_letter)]
    assert sorted(x.original for x in letters) == sorted([bad_json, bad_alert])
    assert all(x.stage == "decode" and "undecodable alert event" in x.reason for x in letters)


def test_alert_that_always_fails_is_dead_lettered_after_max_attempts(
    kafka_settings: Settings, hubs_engine: Engine,
) -> None:
    poison, good = event(make_alert()), event(make_alert(prison_number="F6666FF"))
    publish(kafka_settings, poison, good)
    s = kafka_settings.model_copy(update={"tasks_max_attempts": 3})

    def broken(session: Session, ev, directory: Directory, now: datetime) -> Applied:  # type: ignore[no-untyped-def]
        if ev.event_id == poison.event_id:
            raise RuntimeError("cannot apply")
        return apply_alert_event(session, ev, directory, now)

    c = run(s, hubs_engine, apply=broken)
    assert (c.stats.dead_lettered, c.stats.retried) == (1, 2)
    assert [t.prison_number for t in all_tasks(hubs_engine)] == ["F6666FF"]
    [letter] = [DeadLetter.model_validate_json(v) for v in
                read_topic(s, Topics.from_settings(s).dead_letter)]
    assert letter.stage == "apply" and "cannot apply" in letter.reason


class DeadLettersRefused(Publisher):
    """The broker does not take the first ``refuse`` dead letters."""

    refuse = 2

    def dead_letter(self, *args, **kw) -> None:  # type: ignore[no-untyped-def]
        if self.refuse:
            self.refuse -= 1
            raise KafkaTimeoutError("broker unreachable")
        super().dead_letter(*args, **kw)


def test_a_dead_letter_the_broker_refuses_holds_its_message_back(
    kafka_settings: Settings, hubs_engine: Engine,
) -> None:
    bad, good = b"{not json", event(make_alert())
    publish(kafka_settings, bad, good)
    c = run(kafka_settings, hubs_engine, publisher=DeadLettersRefused(kafka_settings))
    assert (c.stats.dead_letter_waits, c.stats.dead_lettered, c.stats.applied) == (2, 1, 1)
    [letter] = [DeadLetter.model_validate_json(v) for v in
                read_topic(kafka_settings, Topics.from_settings(kafka_settings).dead_letter)]
    assert letter.original == bad
    assert len(all_tasks(hubs_engine)) == 1


class BrokerDown(Publisher):
    def task_events(self, events) -> int:  # type: ignore[no-untyped-def]
        if list(events):
            raise KafkaTimeoutError("broker unreachable")
        return 0


def test_task_events_survive_a_failed_publish_in_the_outbox(
    kafka_settings: Settings, hubs_engine: Engine,
) -> None:
    publish(kafka_settings, event(make_alert()), event(make_alert(prison_number="B2222BB")))
    down = BrokerDown(kafka_settings)
    c = run(kafka_settings, hubs_engine, publisher=down)
    assert (c.stats.applied, c.stats.task_events) == (2, 0)
    assert task_events(kafka_settings) == []
    assert len(unsent(hubs_engine)) == 2
    # The next consumer run (or the scheduler's outbox job) sends them, once.
    again = kafka_settings.model_copy(update={"tasks_consumer_group": "second"})
    c = run(again, hubs_engine)
    assert (c.stats.duplicates, c.stats.task_events) == (2, 2)
    assert sorted(e.prison_number for e in task_events(kafka_settings)) == ["A1234BC", "B2222BB"]
    assert unsent(hubs_engine) == []
