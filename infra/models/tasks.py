"""Tasks: owned work in a hub, the alerts behind each, its history, and the consumer's and
scheduler's bookkeeping (processed events, digests, the scheduler lease).

Times are stored in UTC; SQLite hands them back naive, so read them through :func:`as_utc`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from infra.models.columns import ts as _ts

#: What ``--hub`` accepts for tasks no hub covers; stored as ``hub_code IS NULL``.
UNROUTED = "UNROUTED"




class TaskStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (TaskStatus.OPEN, TaskStatus.ACKNOWLEDGED)


ACTIVE_STATUSES = (TaskStatus.OPEN.value, TaskStatus.ACKNOWLEDGED.value)


class Task(SQLModel, table=True):
    __tablename__ = "tasks"

    id: str = Field(primary_key=True, max_length=64)
    prison_number: str = Field(index=True, max_length=7)
    need: str = Field(max_length=64)
    pathway: str = Field(max_length=64)
    rule_id: str = Field(max_length=64)
    hub_code: str | None = Field(default=None, foreign_key="hubs.code", index=True, max_length=32)
    owner_role: str = Field(max_length=32)
    owner_staff_id: str | None = Field(default=None, foreign_key="staff.staff_id", max_length=64)
    priority: str = Field(max_length=16)
    due_at: datetime = Field(sa_column=_ts(nullable=False, index=True))
    reason: str = Field(max_length=500)
    status: str = Field(default=TaskStatus.OPEN.value, index=True, max_length=16)
    historical: bool = False
    routing: str = Field(default="", max_length=500)
    release_date: date | None = None
    pre_release: bool = True
    prison: str | None = Field(default=None, max_length=32)
    local_authority: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))
    acknowledged_at: datetime | None = Field(default=None, sa_column=_ts())
    acknowledged_by: str | None = Field(default=None, max_length=200)
    closed_at: datetime | None = Field(default=None, sa_column=_ts())
    closed_reason: str | None = Field(default=None, max_length=500)
    # When the task last became urgent: the escalation window runs from here.
    urgent_since: datetime | None = Field(default=None, sa_column=_ts())
    escalated_at: datetime | None = Field(default=None, sa_column=_ts())
    # "prison_number|need" while the task is open or acknowledged, NULL once closed: the unique
    # constraint is what keeps one owner per need even if two consumers race.
    active_key: str | None = Field(default=None, unique=True, max_length=80)


class TaskAlert(SQLModel, table=True):
    """An alert linked to a task; a task closes when none of its alerts is still open."""

    __tablename__ = "task_alerts"

    task_id: str = Field(foreign_key="tasks.id", primary_key=True, max_length=64)
    alert_id: str = Field(primary_key=True, index=True, max_length=36)
    rule_id: str = Field(max_length=64)
    severity: str = Field(max_length=16)
    due_at: datetime = Field(sa_column=_ts(nullable=False))
    reason: str = Field(max_length=500)
    open: bool = True
    last_event_id: str = Field(max_length=36)
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class TaskHistory(SQLModel, table=True):
    """Every change to a task: who, when, what."""

    __tablename__ = "task_history"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(foreign_key="tasks.id", index=True, max_length=64)
    at: datetime = Field(sa_column=_ts(nullable=False))
    actor: str = Field(max_length=200)
    action: str = Field(max_length=32)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    event_id: str | None = Field(default=None, max_length=36)


class ProcessedEvent(SQLModel, table=True):
    """Event ids already applied, written in the same transaction as the change they made."""

    __tablename__ = "processed_events"

    event_id: str = Field(primary_key=True, max_length=36)
    consumer: str = Field(max_length=64)
    processed_at: datetime = Field(sa_column=_ts(nullable=False))


class TaskOutbox(SQLModel, table=True):
    """Task events written in the same transaction as the change they announce, published after
    the commit and marked sent; anything left unsent (broker down, crash) is sent later."""

    __tablename__ = "task_outbox"

    id: int | None = Field(default=None, primary_key=True)  # publication order
    event_id: str = Field(unique=True, max_length=36)
    task_id: str = Field(max_length=64)
    key: str = Field(max_length=32)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_ts(nullable=False, index=True))
    sent_at: datetime | None = Field(default=None, sa_column=_ts(index=True))


class TaskDigest(SQLModel, table=True):
    """The daily digest of one hub's due and overdue tasks (one per hub per day)."""

    __tablename__ = "task_digests"
    __table_args__ = (UniqueConstraint("hub_key", "digest_date", name="uq_task_digest_hub_day"),)

    id: int | None = Field(default=None, primary_key=True)
    hub_key: str = Field(max_length=32)
    digest_date: date
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    due_count: int = 0
    overdue_count: int = 0
    body: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    sent_at: datetime | None = Field(default=None, sa_column=_ts())


class SchedulerLease(SQLModel, table=True):
    """Who may run scheduled jobs now: one row per lease, taken over only once it expires."""

    __tablename__ = "scheduler_leases"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=200)
    acquired_at: datetime = Field(sa_column=_ts(nullable=False))
    expires_at: datetime = Field(sa_column=_ts(nullable=False))
