"""What the worker keeps per person, and the two things that happen to it: an event arrives, or
the clock sweeps past. Pure apart from the injected clock; Faust stays in :mod:`streams.agents`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import Envelope, utcnow
from schemas.outputs import Alert, AlertEvent
from streams.alerts import diff
from streams.calendar import ReleaseCalendar
from streams.clock import Clock
from streams.rules import CATALOGUE, Rule, evaluate, resolution_reason
from streams.rules.base import change_days
from streams.state import PersonState, fold

NEVER = 10**7  # an ordinal after any real date


class PersonRecord(BaseModel):
    """The table value: state, open alerts (by rule id) and bookkeeping for the sweep."""

    model_config = ConfigDict(extra="ignore")

    state: PersonState
    alerts: dict[str, Alert] = Field(default_factory=dict)
    seq: int = 0  # alert events emitted so far; part of their deterministic ids
    partition: int | None = None  # the input partition, so a sweep writes the right changelog
    evaluated_on: int = 0  # local date (ordinal) of the last evaluation
    #: The next local date (ordinal) on which time alone may change this person's findings.
    next_change: int = NEVER

    def dump_json(self) -> bytes:
        return self.model_dump_json(exclude_defaults=True).encode()

    @classmethod
    def load_json(cls, raw: bytes) -> PersonRecord:
        return cls.model_validate_json(raw)


@dataclass
class Evaluator:
    calendar: ReleaseCalendar
    clock: Clock
    rules: tuple[Rule, ...] = CATALOGUE
    #: Names this evaluator's history of alert transitions in their event ids (see
    #: :func:`streams.alerts.diff`). The worker draws a new one each time it starts: a person's
    #: transitions are numbered from the table's changelog, and a worker that comes back from a
    #: changelog older than the alerts it had sent (or a fresh deployment replaying the input)
    #: numbers different transitions into ids the tasks consumer has already applied.
    namespace: str = ""

    def on_event(
        self, record: PersonRecord | None, event: Envelope, partition: int | None = None
    ) -> tuple[PersonRecord, list[AlertEvent]]:
        """Fold one event and re-evaluate. A duplicate returns the record untouched, no events."""
        return self.on_events(record, (event,), partition)

    def on_events(
        self, record: PersonRecord | None, events: Sequence[Envelope],
        partition: int | None = None,
    ) -> tuple[PersonRecord, list[AlertEvent]]:
        """Fold a person's events, then evaluate once: the findings depend only on the folded
        state, so one evaluation after several events ends where one per event would, minus
        alerts raised and resolved in between. Duplicates alone return the record untouched."""
        before = record.state if record is not None else None
        state = before
        for event in events:
            self.clock.observe(event.occurred_at)
            state = fold(state, event)
        if state is None or (record is not None and state is before):
            if record is None:
                raise ValueError("on_events needs at least one event")
            return record, []
        if record is None:
            record = PersonRecord(state=state, partition=partition)
        else:
            record = record.model_copy(update={"state": state})
            if partition is not None:
                record.partition = partition
        return self._evaluate(record)

    def on_sweep(self, record: PersonRecord) -> tuple[PersonRecord, list[AlertEvent]]:
        return self._evaluate(record)

    def today(self) -> int:
        return self.calendar.local_date(self.clock.now()).toordinal()

    def _evaluate(self, record: PersonRecord) -> tuple[PersonRecord, list[AlertEvent]]:
        now = self.clock.now()
        cal = self.calendar
        state = record.state
        findings = evaluate(state, now, cal, self.rules)
        result = diff(
            state, record.alerts, findings, now,
            lambda alert: resolution_reason(alert, state, now, cal),
            seq=record.seq,
            namespace=self.namespace,
            replay=self.clock.replay,
            wall=utcnow() if self.clock.replay else None,
        )
        today = cal.local_date(now).toordinal()
        upcoming = [d for d in change_days(state, cal) if d > today]
        bookkeeping = {"evaluated_on": today, "next_change": upcoming[0] if upcoming else NEVER}
        if not result.events:
            if record.evaluated_on != today or record.next_change != bookkeeping["next_change"]:
                record = record.model_copy(update=bookkeeping)
            return record, []
        record = record.model_copy(
            update={"alerts": result.open, "seq": result.seq, **bookkeeping}
        )
        return record, result.events



def sweep_records(
    evaluator: Evaluator,
    items: Iterable[tuple[str, Any]],
    partitions: set[int] | None = None,
    unpack: Callable[[Any], PersonRecord] | None = None,
) -> list[tuple[str, PersonRecord, list[AlertEvent]]]:
    """Re-evaluate the records the clock may have changed; returns those that changed.

    ``items`` are (key, value) pairs whose values have ``next_change`` and ``partition``: records,
    or packed records with ``unpack`` to open the few that are due. ``partitions`` limits the
    sweep to partitions this worker actively owns (standby copies are another worker's to sweep).
    """
    today = evaluator.today()
    changed: list[tuple[str, PersonRecord, list[AlertEvent]]] = []
    # With ~100,000 records alive, the allocations of a sweep trigger full cyclic collections
    # that cost more than the sweep itself; nothing here makes cycles, so pause the collector.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for key, value in items:
            if value.next_change > today:
                continue
            if partitions is not None and value.partition not in partitions:
                continue
            record = unpack(value) if unpack is not None else value
            new, events = evaluator.on_sweep(record)
            if new is not record:
                changed.append((key, new, events))
    finally:
        if was_enabled:
            gc.enable()
    return changed
