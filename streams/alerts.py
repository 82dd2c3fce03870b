"""From findings to alert events: a pure diff against the alerts already open for a person.

An alert is identified by (person, rule, release date) (:func:`schemas.outputs.alert_id_for`):
raised once, updated only when its severity or due time changes, resolved with a reason when its
finding disappears. Evaluating the same state again emits nothing. Event ids are derived from the
alert id and the person's output sequence, so re-emitting after a crash repeats the same ids and
consumers can drop the copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from schemas.ids import uuid5
from schemas.outputs import Alert, AlertEvent, alert_id_for
from streams.rules.base import Finding
from streams.state import PersonState


@dataclass
class Diff:
    open: dict[str, Alert]
    events: list[AlertEvent] = field(default_factory=list)
    seq: int = 0


def alert_from(
    finding: Finding, state: PersonState, *, replay: bool = False, wall: datetime | None = None,
    alert_id: uuid.UUID | None = None,
) -> Alert:
    # ``alert_id``: an update keeps the id it was raised with; deriving it again costs a hash.
    if alert_id is None:
        alert_id = alert_id_for(state.prison_number, finding.rule_id, finding.release_date)
    return Alert(
        alert_id=alert_id,
        prison_number=state.prison_number,
        rule_id=finding.rule_id,
        need=finding.need,
        pathway=finding.pathway,
        severity=finding.severity,
        owner_role=finding.owner_role,
        also_notify=finding.also_notify,
        due_at=finding.due_at,
        reason=finding.reason,
        practice=finding.practice,
        release_date=finding.release_date,
        pre_release=finding.pre_release,
        prison=state.prison,
        local_authority=state.local_authority,
        suggested_release_date=finding.suggested_release_date,
        historical=replay and wall is not None and finding.due_at < wall,
    )


def _event(
    kind: str, alert: Alert, seq: int, now: datetime, resolution: str | None = None,
    namespace: str = "",
) -> AlertEvent:
    name = f"{namespace}|{seq}|{kind}" if namespace else f"{seq}|{kind}"
    return AlertEvent(
        event_id=uuid5(alert.alert_id, name),
        type=kind,  # type: ignore[arg-type]
        occurred_at=now,
        alert=alert,
        resolution=resolution,
    )


def diff(
    state: PersonState,
    previous: dict[str, Alert],
    findings: list[Finding],
    now: datetime,
    why_resolved: Callable[[Alert], str],
    *,
    seq: int = 0,
    replay: bool = False,
    wall: datetime | None = None,
    namespace: str = "",
) -> Diff:
    """The alerts open after ``findings``, and the events that get there from ``previous``.

    ``previous`` maps rule id to the open alert; ``seq`` counts events already emitted for this
    person (the returned :attr:`Diff.seq` continues it).

    ``namespace`` names the history the events belong to (e.g. the deployment). Event ids are
    (alert, sequence, kind): the same again when the same history is re-emitted, so consumers
    drop the copy. Another history of the same input (a fresh deployment replaying it) numbers
    its own transitions, and without a namespace of its own a transition there can carry the
    id of a different one here: the consumer then drops it as a copy (a resolution it never
    applies leaves a task open; tests/faults/test_order.py).
    """
    out = Diff(open={}, seq=seq)
    current: dict[str, Finding] = {f.rule_id: f for f in findings}
    for rule_id, old in previous.items():
        finding = current.get(rule_id)
        if finding is None or finding.release_date != old.release_date:
            out.seq += 1
            out.events.append(_event("alert.resolved", old, out.seq, now, why_resolved(old),
                                     namespace))
    for rule_id, finding in current.items():
        old = previous.get(rule_id)
        # Same rule and release date means the same alert id (the person is fixed).
        if old is not None and old.release_date == finding.release_date:
            # Where the person goes (or is held) decides who owns the task: a change must reach
            # the consumers, or a task raised before the area was known stays UNROUTED.
            if (old.severity == finding.severity and old.due_at == finding.due_at
                    and old.local_authority == state.local_authority
                    and old.prison == state.prison):
                out.open[rule_id] = old  # unchanged: keep what was sent, nothing drifts silently
                continue
            kind = "alert.updated"
        else:
            kind = "alert.raised"
        new = alert_from(finding, state, replay=replay, wall=wall,
                         alert_id=old.alert_id if kind == "alert.updated" else None)
        out.seq += 1
        out.events.append(_event(kind, new, out.seq, now, namespace=namespace))
        out.open[rule_id] = new
    return out
