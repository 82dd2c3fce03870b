"""The envelope every event travels in.

``event_id`` is the idempotency key: a consumer that has seen it once must not act on it again.
``occurred_at`` is when it happened in the world, ``recorded_at`` when a system wrote it down;
both must carry a timezone, because a release "tomorrow morning" means nothing without one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, Field, ValidationInfo, model_validator

from schemas.common import AgencyCode, Person, Strict

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(Strict):
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime = Field(default_factory=utcnow)
    source: AgencyCode
    person: Person

    @model_validator(mode="before")
    @classmethod
    def _wire_needs_identity(cls, data: Any, info: ValidationInfo) -> Any:
        # Python callers may let ids default; on the wire a missing id would make every replay
        # a "new" event, so publishers must send event_id and recorded_at themselves.
        if info.context and info.context.get("wire") and isinstance(data, dict):
            missing = [f for f in ("event_id", "recorded_at") if f not in data]
            if missing:
                raise ValueError(f"missing required envelope field(s): {', '.join(missing)}")
        return data

    @model_validator(mode="after")
    def _recorded_not_before_occurred_by_much(self) -> Envelope:
        # Clocks drift between prison systems; a record a day before the event is a bug upstream.
        if (self.occurred_at - self.recorded_at).total_seconds() > 86_400:
            raise ValueError("recorded_at is more than a day before occurred_at")
        return self

    @property
    def prison_number(self) -> str:
        return self.person.prison_number

    @property
    def key(self) -> bytes:
        """Kafka key: the prison number, so one person's events stay in order on one partition."""
        return self.person.prison_number.encode()
