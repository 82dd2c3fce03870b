"""Build input events for stream tests with little ceremony."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from schemas.common import Person
from schemas.envelope import Envelope
from schemas.events import INPUT_MODELS
from streams.state import PersonState, fold

PN = "A1234BC"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday


def ev(type_: str, occurred: datetime = T0, pn: str = PN, recorded: datetime | None = None,
       event_id: uuid.UUID | None = None, **payload: Any) -> Envelope:
    model = INPUT_MODELS[type_]
    return model(
        event_id=event_id or uuid.uuid4(), occurred_at=occurred, recorded_at=recorded or occurred,
        source="MDI", person=Person(prison_number=pn), payload=payload,
    )


def release_date(d: date | None, at: datetime = T0, **kw: Any) -> Envelope:
    return ev("release_date.changed", at, new_date=d, release_type="conditional_release", **kw)


def state_of(*events: Envelope) -> PersonState:
    s: PersonState | None = None
    for e in events:
        s = fold(s, e)
    assert s is not None
    return s


def days(n: float) -> timedelta:
    return timedelta(days=n)
