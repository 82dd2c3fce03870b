"""Text messages: what the notifications area knows about each person, their appointments, every
text (to people and staff) with its state and status history, inbound replies and problems.

Times are stored in UTC; SQLite hands them back naive, so read them through :func:`as_utc`.
Phone numbers are personal data: they live here and in Twilio only, never in logs.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from infra.models.columns import ts as _ts


class CustodyState(StrEnum):
    PRE_RELEASE = "pre_release"  # in prison, release ahead (or not yet known)
    RELEASED = "released"
    RETURNED = "returned"  # recall, remand or new sentence after a release
    UNLAWFULLY_AT_LARGE = "unlawfully_at_large"


class ReminderState(StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def final(self) -> bool:
        return self in (ReminderState.SENT, ReminderState.FAILED, ReminderState.CANCELLED,
                        ReminderState.SKIPPED)


class NotifyPerson(SQLModel, table=True):
    """One person's notification facts, kept from case notes and custody events."""

    __tablename__ = "notify_people"

    prison_number: str = Field(primary_key=True, max_length=7)
    mobile_e164: str | None = Field(default=None, index=True, max_length=20)
    mobile_invalid: bool = False
    sms_consent: bool | None = None
    opted_out: bool = False
    custody: str = Field(default=CustodyState.PRE_RELEASE.value, max_length=24)
    release_date: date | None = None
    released_at: datetime | None = Field(default=None, sa_column=_ts())
    # Where the person is or goes: routes "could not text" work to the right hub.
    prison: str | None = Field(default=None, max_length=32)
    local_authority: str | None = Field(default=None, max_length=200)
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class NotifyAppointment(SQLModel, table=True):
    """The notification view of one appointment (latest state wins)."""

    __tablename__ = "notify_appointments"

    prison_number: str = Field(primary_key=True, max_length=7)
    appointment_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=32)
    status: str = Field(max_length=16)  # booked / moved / cancelled / attended / missed
    at: datetime | None = Field(default=None, sa_column=_ts())
    place: str | None = Field(default=None, max_length=500)
    with_whom: str | None = Field(default=None, max_length=500)
    owner_role: str | None = Field(default=None, max_length=32)
    confirmed_at: datetime | None = Field(default=None, sa_column=_ts())
    # The appointment time the person was last told by text; a move after that means a
    # "changed" text, a cancellation a "cancelled" one.
    told_for: datetime | None = Field(default=None, sa_column=_ts())
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class Reminder(SQLModel, table=True):
    """One text, to a person or a member of staff, with its idempotency key and state.

    ``idempotency_key`` is unique: (person, appointment, kind) for people, (task, kind) or
    (hub, day) for staff. ``request_started_at`` is committed just before the HTTP call, so after
    a crash we know whether Twilio may have seen the request.
    """

    __tablename__ = "sms_reminders"

    id: str = Field(primary_key=True, max_length=36)
    idempotency_key: str = Field(unique=True, max_length=200)
    audience: str = Field(default="person", max_length=8)  # person / staff
    prison_number: str | None = Field(default=None, index=True, max_length=7)
    staff_id: str | None = Field(default=None, max_length=64)
    appointment_id: str | None = Field(default=None, max_length=64)
    kind: str = Field(max_length=32)
    state: str = Field(default=ReminderState.SCHEDULED.value, index=True, max_length=16)
    send_at: datetime = Field(sa_column=_ts(nullable=False, index=True))
    expires_at: datetime | None = Field(default=None, sa_column=_ts())
    next_attempt_at: datetime | None = Field(default=None, sa_column=_ts())
    attempts: int = 0
    body: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    to_e164: str | None = Field(default=None, max_length=20)
    twilio_sid: str | None = Field(default=None, unique=True, max_length=64)
    delivery_status: str | None = Field(default=None, max_length=16)
    claimed_at: datetime | None = Field(default=None, sa_column=_ts())
    request_started_at: datetime | None = Field(default=None, sa_column=_ts())
    sent_at: datetime | None = Field(default=None, sa_column=_ts())
    error_code: int | None = None
    detail: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class ReminderHistory(SQLModel, table=True):
    """Every state or delivery-status change of a text, and who made it."""

    __tablename__ = "sms_reminder_history"

    id: int | None = Field(default=None, primary_key=True)
    reminder_id: str = Field(foreign_key="sms_reminders.id", index=True, max_length=36)
    at: datetime = Field(sa_column=_ts(nullable=False))
    source: str = Field(max_length=16)  # planner / dispatch / reconcile / callback / inbound
    state: str = Field(max_length=16)
    delivery_status: str | None = Field(default=None, max_length=16)
    detail: str | None = Field(default=None, max_length=500)
    # Outbox for the reminders topic: set once the change was published (NULL = pending or not
    # published at all, see consumers.notifications.events).
    published_at: datetime | None = Field(default=None, sa_column=_ts(index=True))


class OutboxMessage(SQLModel, table=True):
    """What the outbox backend 'sent' when no Twilio account is configured."""

    __tablename__ = "sms_outbox"

    sid: str = Field(primary_key=True, max_length=64)
    reminder_id: str | None = Field(default=None, index=True, max_length=36)
    prison_number: str | None = Field(default=None, max_length=7)
    to_e164: str = Field(max_length=20)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class InboundMessage(SQLModel, table=True):
    """A reply from a person, and what we did with it."""

    __tablename__ = "sms_inbound"

    sid: str = Field(primary_key=True, max_length=64)
    prison_number: str | None = Field(default=None, index=True, max_length=7)
    body: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    action: str = Field(max_length=32)
    received_at: datetime = Field(sa_column=_ts(nullable=False))


class NotificationIssue(SQLModel, table=True):
    """Something a person must look at ("could not text …", an unexpected reply)."""

    __tablename__ = "notification_issues"

    id: int | None = Field(default=None, primary_key=True)
    issue_key: str = Field(unique=True, max_length=200)
    prison_number: str | None = Field(default=None, index=True, max_length=7)
    owner_role: str = Field(max_length=32)
    kind: str = Field(max_length=32)
    reason: str = Field(max_length=500)
    reminder_id: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    resolved_at: datetime | None = Field(default=None, sa_column=_ts())


class NotifyProcessedEvent(SQLModel, table=True):
    """Input event ids the notifications consumer has applied (same transaction as the change)."""

    __tablename__ = "notify_processed_events"

    event_id: str = Field(primary_key=True, max_length=36)
    processed_at: datetime = Field(sa_column=_ts(nullable=False))
