"""Order, batching and restarts without Kafka: is what the pipeline ends with a function of the
set of events, or of the order and moments in which they were read?

A person's events arrive on three topics, and the stream worker reads them in whatever order
the fetches come back, in batches of any size, restarting now and then. These tests drive the
real stream code (``Evaluator``: fold, rules, alert diff, the table's packing) and the real task
store (``apply_alert_event`` on SQLite) over a simulated cohort, in seeded random histories:

1. alerts: any order, any batching, duplicates, packing, sweeps in between -> the same open
   alerts, and the alert events emitted (read last-per-alert, as the alerts topic is) agree;
2. tasks: each history's alert events, applied to a task store, leave the same open tasks
   (need, rule, priority, owner, hub, due time, reason);
3. a fresh deployment replaying the same events into the same task store leaves it as it was:
   no task left open for an alert both histories end with resolved (each history names its
   alert event ids: ``Evaluator.namespace``).
"""

from __future__ import annotations

import functools
import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from consumers.tasks import apply_alert_event
from infra.database import make_engine, migrate
from infra.directory import load_file, read
from infra.models.tasks import Task
from schemas.codec import decode_input
from schemas.envelope import Envelope
from schemas.events import input_family
from schemas.outputs import AlertEvent
from streams.calendar import ReleaseCalendar
from streams.clock import FixedClock
from streams.packed import Packed
from streams.person import Evaluator, PersonRecord
from tests.faults.cluster import EXAMPLE_HUBS, cohort
from tests.faults.conftest import START

PEOPLE, SEED = 120, 11


@functools.cache
def people(include_future: bool = True) -> dict[str, list[Envelope]]:
    by: dict[str, list[Envelope]] = defaultdict(list)
    for raw in cohort(PEOPLE, SEED, START, include_future=include_future):
        e = decode_input(raw)
        by[e.person.prison_number].append(e)
    return by


def interleave(events: list[Envelope], rng: random.Random) -> list[Envelope]:
    """One order the worker may read them in: each topic in order, the topics interleaved."""
    topics: dict[str, list[Envelope]] = defaultdict(list)
    for e in events:
        topics[input_family(e.type)].append(e)
    out: list[Envelope] = []
    while any(topics.values()):
        name = rng.choice([k for k, v in topics.items() if v])
        out.append(topics[name].pop(0))
    return out


class History:
    """One worker's processing of one person: batches, the table's packing, sweeps."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.evaluator = Evaluator(ReleaseCalendar(), clock)
        self.record: PersonRecord | None = None
        self.emitted: list[AlertEvent] = []
        self.written: list[PersonRecord | None] = [None]  # the changelog, newest last

    def feed(self, batch: list[Envelope], rng: random.Random | None = None) -> None:
        record, out = self.evaluator.on_events(self.record, batch)
        self.emitted += out
        self.record = Packed.of(record).unpack()  # what the table and its changelog keep
        self.written.append(self.record)
        if rng is not None and rng.random() < 0.2:  # the sweep, some minutes later
            self.clock.advance(timedelta(minutes=rng.randrange(1, 40)))
            record, out = self.evaluator.on_sweep(self.record)
            self.emitted += out
            self.record = Packed.of(record).unpack()

    def run(self, events: list[Envelope], rng: random.Random | None) -> History:
        i = 0
        while i < len(events):
            n = rng.randrange(1, 5) if rng else 1
            self.feed(events[i:i + n], rng)
            i += n
        return self


def alerts_topic_view(emitted: list[AlertEvent]) -> set[str]:
    """Open alert ids as a reader of the alerts topic sees them: each alert's last event."""
    last: dict[str, bool] = {}
    for e in emitted:
        last[str(e.alert.alert_id)] = e.type != "alert.resolved"
    return {k for k, is_open in last.items() if is_open}


def final_open(record: PersonRecord) -> set[str]:
    return {str(a.alert_id) for a in record.alerts.values()}


@pytest.mark.parametrize("include_future", [True, False], ids=["whole-stories", "up-to-now"])
def test_alerts_depend_only_on_the_set_of_events(include_future: bool) -> None:
    for pn, events in people(include_future).items():
        reference = History(FixedClock(START)).run(events, None)
        want = final_open(reference.record)  # type: ignore[arg-type]
        assert alerts_topic_view(reference.emitted) == want
        for trial in range(6):
            rng = random.Random(f"{pn}/{trial}")
            order = interleave(events, rng) if trial % 2 else rng.sample(events, len(events))
            order += rng.sample(events, rng.randrange(0, len(events)))  # redelivered copies
            got = History(FixedClock(START)).run(order, rng)
            assert final_open(got.record) == want, (pn, trial)  # type: ignore[arg-type]
            assert alerts_topic_view(got.emitted) == want, (pn, trial)


@pytest.fixture
def task_store(tmp_path: Path) -> Iterator[Engine]:
    def make(name: str) -> Engine:
        engine = make_engine(f"sqlite:///{tmp_path / name}.db")
        migrate(engine)
        load_file(engine, EXAMPLE_HUBS)
        engines.append(engine)
        return engine

    engines: list[Engine] = []
    yield make  # type: ignore[misc]
    for engine in engines:
        engine.dispose()


def apply_all(engine: Engine, events: list[AlertEvent]) -> None:
    with Session(engine) as session:
        directory = read(session)
        for e in events:
            apply_alert_event(session, e, directory, START)
        session.commit()


def open_tasks(engine: Engine) -> list[tuple[object, ...]]:
    with Session(engine) as session:
        return sorted(
            (t.prison_number, t.need, t.rule_id, t.priority, t.owner_role, t.hub_code,
             t.due_at, t.reason)
            for t in session.exec(select(Task)).all() if t.status in ("open", "acknowledged"))


def test_tasks_depend_only_on_the_final_alerts(task_store) -> None:  # type: ignore[no-untyped-def]
    in_order: list[AlertEvent] = []
    shuffled: list[AlertEvent] = []
    for pn, events in people().items():
        rng = random.Random(pn)
        in_order += History(FixedClock(START)).run(events, None).emitted
        shuffled += History(FixedClock(START)).run(interleave(events, rng), rng).emitted
    a, b = task_store("in_order"), task_store("shuffled")
    apply_all(a, in_order)
    apply_all(b, shuffled)
    assert open_tasks(a) == open_tasks(b)
    assert len(open_tasks(a)) > PEOPLE  # the cohort has work to compare


def stale_tasks(engine: Engine, finals: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(person, need) with an open task but no open alert at the end, or the other way round."""
    with Session(engine) as session:
        got = {(t.prison_number, t.need) for t in session.exec(select(Task)).all()
               if t.status in ("open", "acknowledged")}
    want = {(pn, need) for pn, needs in finals.items() for need in needs}
    return sorted(got ^ want)


def deployment(name: str) -> History:
    """A history run by one deployment: its evaluator names its history ``name``
    (``Evaluator.namespace``, passed to :func:`streams.alerts.diff`), as each worker start does."""
    history = History(FixedClock(START))
    history.evaluator.namespace = name
    return history


def test_a_fresh_deployment_replaying_everything_leaves_the_tasks_as_they_were(
    task_store,  # type: ignore[no-untyped-def]
) -> None:
    store = task_store("replayed")
    finals: dict[str, set[str]] = {}
    first_all: list[AlertEvent] = []
    second_all: list[AlertEvent] = []
    for pn, events in people().items():
        rng = random.Random(f"replay/{pn}")
        first = deployment("first").run(interleave(events, rng), rng)
        finals[pn] = {a.need for a in first.record.alerts.values()}  # type: ignore[union-attr]
        first_all += first.emitted
        second_all += deployment("second").run(interleave(events, rng), rng).emitted
    apply_all(store, first_all)
    before = open_tasks(store)
    apply_all(store, second_all)
    assert stale_tasks(store, finals) == []
    assert open_tasks(store) == before


def test_a_namespace_gives_a_history_ids_of_its_own() -> None:
    """streams.alerts.diff: the same transitions, the same ids within a history (a re-emission
    is a copy consumers drop); ids of their own in another (named) history."""
    from streams.alerts import diff
    from streams.rules import evaluate, resolution_reason

    events = next(iter(people().values()))
    record = History(FixedClock(START)).run(events, None).record
    assert record is not None and record.alerts
    cal = ReleaseCalendar()
    findings = evaluate(record.state, START, cal)

    def ids(namespace: str) -> list[str]:
        out = diff(record.state, {}, findings, START,  # type: ignore[union-attr]
                   lambda a: resolution_reason(a, record.state, START, cal),  # type: ignore[union-attr]
                   namespace=namespace)
        return [str(e.event_id) for e in out.events]

    assert ids("") == ids("") and ids("a") == ids("a")
    assert not set(ids("")) & set(ids("a")) and not set(ids("a")) & set(ids("b"))
    # No namespace: the ids as they have always been, (alert, sequence, kind).
    out = diff(record.state, {}, findings, START, lambda a: "", seq=7)
    assert [e.event_id for e in out.events] == [
        uuid.uuid5(e.alert.alert_id, f"{n}|{e.type}") for n, e in enumerate(out.events, 8)]
