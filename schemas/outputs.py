"""Output events: alerts, tasks, reminders, and dead letters.

Alerts are what the stream worker finds; tasks are owned work in a hub; reminders are texts
scheduled or sent. They share the envelope so every consumer can deduplicate on ``event_id``.
"""

from __future__ import annotations

import base64
import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, TypeAdapter, field_serializer, field_validator

from schemas.common import AgencyCode, Pathway, PrisonNumber, Severity, ShortText, StaffRole, Strict
from schemas.envelope import utcnow
from schemas.ids import uuid5

#: Namespace for deterministic alert ids: the same (person, rule, release date) gives the same id.
ALERT_NAMESPACE = uuid.UUID("6f0b7a52-6c2e-4f1e-9d55-3c1f1b2d7a10")


def alert_id_for(prison_number: str, rule_id: str, release_date: date | None) -> uuid.UUID:
    anchor = release_date.isoformat() if release_date else "no-date"
    return uuid5(ALERT_NAMESPACE, f"{prison_number}|{rule_id}|{anchor}")


class Alert(Strict):
    """The state of one alert at one moment."""

    alert_id: uuid.UUID
    prison_number: PrisonNumber
    rule_id: Annotated[str, Field(min_length=1, max_length=64)]
    need: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="What is needed (accommodation, benefits, ...): alerts for the same need of "
        "the same person collapse to one task."
    )
    pathway: Pathway
    severity: Severity
    owner_role: StaffRole
    also_notify: tuple[StaffRole, ...] = ()
    due_at: AwareDatetime
    reason: ShortText
    practice: ShortText = Field(description="The practice or report the rule encodes.")
    release_date: date | None = None
    pre_release: bool = True
    prison: AgencyCode | None = None
    local_authority: ShortText | None = None
    suggested_release_date: date | None = None
    historical: bool = Field(
        default=False, description="Raised during a replay after its moment had passed."
    )


class AlertEvent(Strict):
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: Literal["alert.raised", "alert.updated", "alert.resolved"]
    schema_version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    alert: Alert
    resolution: ShortText | None = None

    @property
    def key(self) -> bytes:
        return self.alert.prison_number.encode()


class TaskEvent(Strict):
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: Literal[
        "task.created", "task.updated", "task.acknowledged", "task.done", "task.cancelled"
    ]
    schema_version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    task_id: Annotated[str, Field(max_length=64)]
    prison_number: PrisonNumber
    hub: ShortText | None
    owner_role: StaffRole
    owner_staff_id: ShortText | None = None
    need: ShortText
    priority: Severity
    due_at: AwareDatetime
    reason: ShortText
    by: ShortText | None = None


class ReminderEvent(Strict):
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: Literal["reminder.scheduled", "reminder.sent", "reminder.cancelled", "reminder.failed"]
    schema_version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    reminder_key: ShortText
    prison_number: PrisonNumber
    kind: ShortText
    send_at: AwareDatetime | None = None
    detail: ShortText | None = None


class DeadLetter(Strict):
    """An input that could not be used, kept whole so nothing is lost."""

    type: Literal["dead_letter"] = "dead_letter"
    reason: Annotated[str, Field(max_length=4000)]
    original: bytes = Field(description="The original message bytes, base64 in JSON.")
    original_key: bytes | None = None
    topic: str
    partition: int | None = None
    offset: int | None = None
    stage: ShortText = "decode"
    at: datetime = Field(default_factory=utcnow)

    @field_serializer("original", "original_key", when_used="json")
    def _b64(self, v: bytes | None) -> str | None:
        return None if v is None else base64.b64encode(v).decode()

    @field_validator("original", "original_key", mode="before")
    @classmethod
    def _from_b64(cls, v: object) -> object:
        if isinstance(v, str):
            return base64.b64decode(v, validate=True)
        return v


OutputEvent = Annotated[AlertEvent | TaskEvent | ReminderEvent, Field(discriminator="type")]
ALERT_ADAPTER: TypeAdapter[AlertEvent] = TypeAdapter(AlertEvent)
DEAD_LETTER_ADAPTER: TypeAdapter[DeadLetter] = TypeAdapter(DeadLetter)
