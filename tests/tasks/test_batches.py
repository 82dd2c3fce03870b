"""Many alert events applied together, in one transaction, come out exactly as if each had been
applied on its own: directly (``read_ahead``) and through the consumer over the real broker,
including when one message of a batch fails, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

import consumers.tasks as tasks_module
from consumers.alerts import MAX_BATCH, AlertsConsumer
from consumers.lifecycle import acknowledge, escalate_due, finish
from consumers.tasks import Applied, apply_alert_event, find_active, read_ahead
from infra import directory as hub_directory
from infra.config import Settings
from infra.database import session_scope
from infra.directory import Directory
from infra.models.columns import as_utc
from infra.models.tasks import (
    ProcessedEvent,
    Task,
    TaskAlert,
    TaskHistory,
    TaskOutbox,
    TaskStatus,
)
from infra.topics import Topics
from schemas.common import Pathway, Severity, StaffRole
from schemas.outputs import AlertEvent, DeadLetter
from tests.tasks.conftest import NOW, event, make_alert, publish, read_topic, task_events

LATER = NOW + timedelta(hours=2)

# need -> (rule, owner role, pathway)
NEEDS = {
    "accommodation": ("no-accommodation-28", StaffRole.HOUSING_OFFICER, Pathway.ACCOMMODATION),
    "benefits": ("no-benefits-claim", StaffRole.WORK_COACH, Pathway.ACCOMMODATION),
    "transfer": ("transfer-near-release", StaffRole.OMU, Pathway.ACCOMMODATION),
    "health": ("no-gp", StaffRole.MENTAL_HEALTH_LINK, Pathway.ACCOMMODATION),
}


def person(i: int) -> str:
    return f"{'ABCDEFGH'[i % 8]}{1000 + i:04d}{'KLMNPQRSTU'[i % 10]}Z"


def alert(pn: str, need: str = "accommodation", **kw: Any):  # type: ignore[no-untyped-def]
    rule, role, pathway = NEEDS[need]
    return make_alert(**{"prison_number": pn, "rule_id": rule, "need": need, "owner_role": role,
                         "pathway": pathway, **kw})


def scenario(people: int = 36) -> tuple[list[AlertEvent], list[AlertEvent]]:
    """(prelude, stream): the prelude is applied first, one event at a time, and some of its
    tasks are then acknowledged, finished or escalated; the stream is what is tested. Every
    branch of apply_alert_event happens in the stream, several times, often to tasks the same
    stream made a few events before."""
    prelude: list[AlertEvent] = []
    stream: list[AlertEvent] = []
    for i in range(people):
        pn = person(i)
        case = i % 9
        if case == 0:  # raise, link an urgent second rule, resolve both (done), raise again
            a = alert(pn)
            b = alert(pn, rule_id="friday-release", severity=Severity.URGENT,
                      due_at=NOW + timedelta(days=1), reason="Friday release")
            stream += [event(a), event(b), event(b, "alert.resolved", "moved to Thursday"),
                       event(a, "alert.resolved", "address confirmed"), event(a)]
        elif case == 1:  # unrouted, then routed by an update; one event delivered twice
            a = alert(pn, "benefits", local_authority="Cardiff")
            first = event(a)
            stream += [first, event(alert(pn, "benefits", local_authority="Cambridge"),
                                    "alert.updated"), first]
        elif case == 2:  # OMU task, due moves earlier; resolve of an alert that made no task
            a = alert(pn, "transfer", prison="PBI", local_authority="Norwich")
            stream += [event(a), event(alert(pn, "transfer", prison="PBI",
                                             local_authority="Norwich",
                                             due_at=NOW + timedelta(hours=5)), "alert.updated"),
                       event(alert(pn, "transfer", rule_id="transfer-other", prison="PBI"),
                             "alert.resolved", "never raised")]
        elif case == 3:  # historical alerts (new, then the same again, then resolved)
            h = alert(pn, "health", historical=True)
            stream += [event(h), event(h, "alert.updated"), event(h, "alert.resolved", "gone"),
                       event(alert(pn, "benefits"))]
        elif case == 4:  # three needs at once (one nobody covers), one updated twice
            stream += [event(alert(pn)), event(alert(pn, "benefits")),
                       event(alert(pn, "health", local_authority="Cardiff")),
                       event(alert(pn, reason="Still no address"), "alert.updated"),
                       event(alert(pn, severity=Severity.URGENT, reason="Two days left"),
                             "alert.updated")]
        elif case == 5:  # a task from the prelude: receiving hub, then moves to another hub
            a = alert(pn, local_authority="Norwich", prison="PBI")
            prelude.append(event(a))
            stream += [event(alert(pn, local_authority="Fenland", prison="PBI"), "alert.updated"),
                       event(alert(pn, "benefits", local_authority="Fenland"))]
        elif case == 6:  # prelude task acknowledged, then linked and resolved in the stream
            a = alert(pn)
            b = alert(pn, rule_id="no-address-7", severity=Severity.URGENT)
            prelude.append(event(a))
            stream += [event(b), event(a, "alert.resolved", "address found"),
                       event(b, "alert.resolved", "address confirmed")]
        elif case == 7:  # prelude task finished by a person; its alert then resolved and raised
            a = alert(pn, "benefits")
            prelude.append(event(a))
            stream += [event(a, "alert.resolved", "claim made"), event(alert(pn, "benefits"))]
        else:  # prelude urgent task escalated to the hub manager, then updated and resolved
            a = alert(pn, severity=Severity.URGENT)
            h = alert(pn, "health", historical=True)
            prelude += [event(a), event(h)]
            stream += [event(a, "alert.updated"), event(h, "alert.resolved", "old"),
                       event(alert(pn, local_authority="Norwich"), "alert.updated"),
                       event(a, "alert.resolved", "housed")]
    return prelude, stream


def apply_one(engine: Engine, ev: AlertEvent) -> Applied:
    with session_scope(engine) as s:
        return apply_alert_event(s, ev, hub_directory.read(s), NOW)


def apply_prelude(engine: Engine, prelude: list[AlertEvent]) -> None:
    for ev in prelude:
        apply_one(engine, ev)
    by_case: dict[int, list[str]] = defaultdict(list)
    with Session(engine) as s:
        for i in range(36):
            t = find_active(s, person(i), "benefits" if i % 9 == 7 else "accommodation")
            if t is not None:
                by_case[i % 9].append(t.id)
    for task_id in by_case[6]:
        acknowledge(engine, task_id, "cambs-ho-1", NOW)
    for task_id in by_case[7]:
        finish(engine, task_id, "cambs-wc-1", NOW, TaskStatus.DONE, "done by hand")
    assert escalate_due(engine, LATER, timedelta(minutes=60))


def wipe(engine: Engine) -> None:
    with engine.begin() as conn:
        for model in (TaskOutbox, TaskHistory, TaskAlert, ProcessedEvent, Task):
            conn.execute(delete(model))


def normalised(engine: Engine) -> dict[str, Any]:
    """Everything the task store holds, with each task named by the event that made it (task
    ids are random) and in the order things happened to it."""
    with Session(engine) as s:
        tasks = s.exec(select(Task)).all()
        history = s.exec(select(TaskHistory).order_by(TaskHistory.id)).all()  # type: ignore[arg-type]
        links = s.exec(select(TaskAlert)).all()
        outbox = s.exec(select(TaskOutbox).order_by(TaskOutbox.id)).all()  # type: ignore[arg-type]
        processed = s.exec(select(ProcessedEvent.event_id)).all()
    made_by = {h.task_id: h.event_id for h in history if h.action == "created"}
    assert len(made_by) == len(tasks)
    per_task: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for h in history:
        per_task[made_by[h.task_id]].append((h.action, h.actor, h.detail, h.event_id))
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in outbox:
        payload = json.loads(o.payload)
        payload.pop("event_id"), payload.pop("task_id")
        events[made_by[o.task_id]].append(payload)
    return {
        "tasks": sorted(
            (made_by[t.id], t.prison_number, t.need, t.status, t.priority, t.hub_code,
             t.owner_role, t.owner_staff_id, as_utc(t.due_at), t.reason, t.rule_id,
             t.historical, t.closed_reason, t.routing, t.active_key, as_utc(t.urgent_since),
             t.local_authority, t.acknowledged_by, as_utc(t.escalated_at))
            for t in tasks),
        "links": sorted(
            (made_by[x.task_id], x.alert_id, x.open, x.severity, x.rule_id, x.last_event_id,
             as_utc(x.due_at), x.reason) for x in links),
        "history": dict(per_task),
        "task_events": dict(events),
        "processed": sorted(processed),
    }


def reference(engine: Engine, prelude: list[AlertEvent], stream: list[AlertEvent],
              leave_out: frozenset[Any] | set[Any] = frozenset()) -> dict[str, Any]:
    """The store after applying ``stream`` one event per transaction (as before batching)."""
    apply_prelude(engine, prelude)
    for ev in stream:
        if ev.event_id not in leave_out:
            apply_one(engine, ev)
    out = normalised(engine)
    wipe(engine)
    return out


def test_scenario_reaches_every_branch(hubs_engine: Engine) -> None:
    prelude, stream = scenario()
    state = reference(hubs_engine, prelude, stream)
    actions = {a for rows in state["history"].values() for a, *_ in rows}
    assert actions >= {"created", "linked", "reprioritised", "updated", "reassigned",
                       "alert_resolved", "done", "cancelled", "acknowledged", "escalated"}
    statuses = {t[3] for t in state["tasks"]}
    assert statuses == {"open", "done", "cancelled"}
    assert any(t[5] is None for t in state["tasks"])  # unrouted
    assert len(state["processed"]) == len({e.event_id for e in prelude + stream})


def test_one_transaction_with_read_ahead_matches_one_at_a_time(
    hubs_engine: Engine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tasks_module, "_CHUNK", 7)  # the read-ahead queries in several parts
    prelude, stream = scenario()
    expected = reference(hubs_engine, prelude, stream)

    apply_prelude(hubs_engine, prelude)
    statements: list[str] = []
    with session_scope(hubs_engine) as s:
        directory = hub_directory.read(s)
        read_ahead(s, stream)
        conn = s.connection()

        def count(*args: Any) -> None:
            statements.append(args[2])

        sa_event.listen(conn, "before_cursor_execute", count)
        results = [apply_alert_event(s, ev, directory, NOW) for ev in stream]
        sa_event.remove(conn, "before_cursor_execute", count)
    # Applying issued no query and no flush: everything was written at the commit.
    assert statements == []
    assert [r.duplicate for r in results].count(True) == len(stream) - len(
        {e.event_id for e in stream})
    assert normalised(hubs_engine) == expected


def test_read_ahead_then_redelivery_is_a_no_op(hubs_engine: Engine) -> None:
    prelude, stream = scenario(18)
    apply_prelude(hubs_engine, prelude)
    with session_scope(hubs_engine) as s:
        d = hub_directory.read(s)
        read_ahead(s, stream)
        for ev in stream:
            apply_alert_event(s, ev, d, NOW)
    before = normalised(hubs_engine)
    with session_scope(hubs_engine) as s:
        d = hub_directory.read(s)
        read_ahead(s, stream)
        assert all(apply_alert_event(s, ev, d, NOW).duplicate for ev in stream)
    assert normalised(hubs_engine) == before


def test_read_ahead_ends_with_its_transaction(hubs_engine: Engine) -> None:
    first, second = event(alert("A1111AA")), event(alert("A1111AA", rule_id="no-address-7"))
    with Session(hubs_engine, expire_on_commit=False) as s:
        read_ahead(s, [first, second])  # "no task for A1111AA|accommodation", until the commit
        s.commit()
        apply_one(hubs_engine, first)  # meanwhile, elsewhere: the task is made
        out = apply_alert_event(s, second, hub_directory.read(s), NOW)
        s.commit()
    assert [e.type for e in out.events] == ["task.updated"]
    with Session(hubs_engine) as s:
        assert len(s.exec(select(Task)).all()) == 1


# ------------------------------------------------------------------ over the real broker


class Recording(AlertsConsumer):
    """Notes the size of every poll batch it handles."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.batches: list[int] = []

    def _process_batch(self, consumer, batch) -> None:  # type: ignore[no-untyped-def]
        self.batches.append(sum(len(v) for v in batch.values()))
        super()._process_batch(consumer, batch)


def consume(settings: Settings, engine: Engine, **kw: Any) -> Recording:
    c = Recording(settings, engine, clock=lambda: NOW, retry_backoff=0.1, **kw)
    try:
        c.run(idle_timeout=2.0)
    finally:
        c.publisher.close()
    return c


def check_published(settings: Settings, engine: Engine) -> None:
    """Every task event in the outbox was published, once, and marked sent."""
    published = [e.event_id for e in task_events(settings)]
    with Session(engine) as s:
        rows = s.exec(select(TaskOutbox)).all()
    assert sorted(str(e) for e in published) == sorted(r.event_id for r in rows)
    assert len(set(published)) == len(published)
    assert all(r.sent_at is not None for r in rows)


@pytest.mark.kafka
def test_one_poll_of_many_people_makes_exactly_the_right_tasks(
    kafka_settings: Settings, hubs_engine: Engine, caplog: pytest.LogCaptureFixture,
) -> None:
    prelude, stream = scenario()
    assert len(stream) <= MAX_BATCH
    expected = reference(hubs_engine, prelude, stream)
    apply_prelude(hubs_engine, prelude)
    publish(kafka_settings, *stream)
    with caplog.at_level(logging.WARNING, logger="consumers.alerts"):
        c = consume(kafka_settings, hubs_engine)
    assert sum(c.batches) == len(stream)
    assert max(c.batches) > len(stream) // 2, c.batches  # (3 partitions, fetched together)
    assert not [r for r in caplog.records if "one by one" in r.getMessage()]
    distinct = len({e.event_id for e in stream})
    assert (c.stats.consumed, c.stats.applied, c.stats.duplicates) == (
        len(stream), distinct, len(stream) - distinct)
    assert (c.stats.retried, c.stats.dead_lettered) == (0, 0)
    assert normalised(hubs_engine) == expected
    check_published(kafka_settings, hubs_engine)


def poison_of(stream: list[AlertEvent]) -> AlertEvent:
    """An event in the middle of a person's events, with more people's events after it."""
    pn = person(4)
    mine = [e for e in stream if e.alert.prison_number == pn]
    return mine[2]


@pytest.mark.kafka
def test_a_message_failing_inside_a_batch_loses_and_duplicates_nothing(
    kafka_settings: Settings, hubs_engine: Engine,
) -> None:
    prelude, stream = scenario()
    poison = poison_of(stream)
    expected = reference(hubs_engine, prelude, stream, leave_out={poison.event_id})
    apply_prelude(hubs_engine, prelude)
    publish(kafka_settings, *stream)
    s = kafka_settings.model_copy(update={"tasks_max_attempts": 2})
    calls = {"poison": 0}

    def broken(session: Session, ev: AlertEvent, directory: Directory, now) -> Applied:  # type: ignore[no-untyped-def]
        if ev.event_id == poison.event_id:
            calls["poison"] += 1
            raise RuntimeError("cannot apply")
        return apply_alert_event(session, ev, directory, now)

    c = consume(s, hubs_engine, apply=broken)
    # Tried once per delivery, exactly as when each message had its own transaction.
    assert calls["poison"] == 2
    assert (c.stats.retried, c.stats.dead_lettered) == (1, 1)
    assert normalised(hubs_engine) == expected
    check_published(s, hubs_engine)
    [letter] = [DeadLetter.model_validate_json(v)
                for v in read_topic(s, Topics.from_settings(s).dead_letter)]
    assert letter.stage == "apply" and "cannot apply" in letter.reason
    assert AlertEvent.model_validate_json(letter.original).event_id == poison.event_id


@pytest.mark.kafka
def test_a_batch_that_fails_at_commit_is_applied_one_by_one(
    kafka_settings: Settings, hubs_engine: Engine, caplog: pytest.LogCaptureFixture,
) -> None:
    """A failure no message raised itself (here: a row that breaks a foreign key, found when
    the batch is written) makes the consumer apply that batch one message per transaction."""
    prelude, stream = scenario()
    poison = poison_of(stream)
    expected = reference(hubs_engine, prelude, stream, leave_out={poison.event_id})
    apply_prelude(hubs_engine, prelude)
    publish(kafka_settings, *stream)
    s = kafka_settings.model_copy(update={"tasks_max_attempts": 2})

    def bad_row(session: Session, ev: AlertEvent, directory: Directory, now) -> Applied:  # type: ignore[no-untyped-def]
        out = apply_alert_event(session, ev, directory, now)
        if ev.event_id == poison.event_id:
            session.add(TaskHistory(task_id="T-NO-SUCH-TASK", at=now, actor="x", action="x"))
        return out

    with caplog.at_level(logging.WARNING, logger="consumers.alerts"):
        c = consume(s, hubs_engine, apply=bad_row)
    assert [r for r in caplog.records if "one by one" in r.getMessage()]
    assert (c.stats.retried, c.stats.dead_lettered) == (1, 1)
    assert normalised(hubs_engine) == expected
    check_published(s, hubs_engine)
    [letter] = [DeadLetter.model_validate_json(v)
                for v in read_topic(s, Topics.from_settings(s).dead_letter)]
    assert AlertEvent.model_validate_json(letter.original).event_id == poison.event_id


@pytest.mark.kafka
@pytest.mark.parametrize("how", ["raises", "at_commit"])
def test_a_message_retried_inside_a_batch_keeps_its_partition_in_order(
    kafka_settings: Settings, hubs_engine: Engine, how: str,
) -> None:
    """The events after a message that must be retried, in its partition, wait for it: here
    its failure is brief, and applying the events after it first would give another result."""
    prelude, stream = scenario()
    mine = [e for e in stream if e.alert.prison_number == person(0)]
    flaky = mine[1]  # the urgent second alert, resolved by the next event
    expected = reference(hubs_engine, prelude, stream)
    apply_prelude(hubs_engine, prelude)
    publish(kafka_settings, *stream)
    calls = {"flaky": 0}
    # Raising, it fails its first try; breaking the batch's commit, it fails the batch's try
    # (no message is blamed: the batch is then applied one by one) and its own first try.
    failing = {"raises": {1}, "at_commit": {1, 2}}[how]

    def brief(session: Session, ev: AlertEvent, directory: Directory, now) -> Applied:  # type: ignore[no-untyped-def]
        fail = False
        if ev.event_id == flaky.event_id:
            calls["flaky"] += 1
            fail = calls["flaky"] in failing
        if fail and how == "raises":
            raise RuntimeError("briefly unavailable")
        out = apply_alert_event(session, ev, directory, now)
        if fail:
            session.add(TaskHistory(task_id="T-NO-SUCH-TASK", at=now, actor="x", action="x"))
        return out

    c = consume(kafka_settings, hubs_engine, apply=brief)
    assert calls["flaky"] == max(failing) + 1
    assert (c.stats.retried, c.stats.dead_lettered) == (1, 0)
    assert normalised(hubs_engine) == expected
    check_published(kafka_settings, hubs_engine)
