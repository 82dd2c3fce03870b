"""The timeline projection: every input event as one line of a person's history, and the state
the hub app shows (custody status, release date and its changes, pathways, appointments).

Written only by :mod:`consumers.timeline`; ``event_id`` is unique, so a replay adds nothing.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from infra.models.columns import ts as _ts


class TimelineEntry(SQLModel, table=True):
    __tablename__ = "timeline_entries"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=36)
    prison_number: str = Field(index=True, max_length=7)
    type: str = Field(max_length=64)
    occurred_at: datetime = Field(sa_column=_ts(nullable=False, index=True))
    source: str = Field(max_length=32)
    summary: str = Field(sa_column=Column(Text, nullable=False))
    pathway: str | None = Field(default=None, max_length=64)
    # "health", "police_intelligence" or "victim": who may not see this line (hub.visibility).
    sensitivity: str | None = Field(default=None, max_length=32)


class PersonSummary(SQLModel, table=True):
    __tablename__ = "person_summaries"

    prison_number: str = Field(primary_key=True, max_length=7)
    crn: str | None = Field(default=None, max_length=7)
    current_prison: str | None = Field(default=None, max_length=32)
    custody_status: str = Field(default="unknown", max_length=32)
    release_date: date | None = Field(default=None, index=True)
    release_type: str | None = Field(default=None, max_length=64)
    destination_local_authority: str | None = Field(default=None, max_length=200)
    # Case-folded like infra.directory.la_key, so a hub's areas join without string games.
    destination_la_key: str | None = Field(default=None, index=True, max_length=200)
    accommodation_status: str | None = Field(default=None, max_length=32)
    accommodation_confirmed_at: datetime | None = Field(default=None, sa_column=_ts())
    benefit_claim_at: datetime | None = Field(default=None, sa_column=_ts())
    released_at: datetime | None = Field(default=None, sa_column=_ts(index=True))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class ReleaseDateChange(SQLModel, table=True):
    __tablename__ = "release_date_changes"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=36)
    prison_number: str = Field(index=True, max_length=7)
    changed_at: datetime = Field(sa_column=_ts(nullable=False))
    new_date: date | None = None
    previous_date: date | None = None
    reason: str | None = Field(default=None, max_length=500)


class PathwayState(SQLModel, table=True):
    __tablename__ = "pathway_states"
    __table_args__ = (UniqueConstraint("prison_number", "pathway", name="uq_pathway_state"),)

    id: int | None = Field(default=None, primary_key=True)
    prison_number: str = Field(index=True, max_length=7)
    pathway: str = Field(max_length=64)
    status: str = Field(max_length=32)
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class AppointmentState(SQLModel, table=True):
    __tablename__ = "appointment_states"
    __table_args__ = (
        UniqueConstraint("prison_number", "appointment_id", name="uq_appointment_state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    prison_number: str = Field(index=True, max_length=7)
    appointment_id: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    status: str = Field(max_length=16)
    at: datetime | None = Field(default=None, sa_column=_ts())
    place: str | None = Field(default=None, max_length=500)
    with_whom: str | None = Field(default=None, max_length=500)
    updated_at: datetime = Field(sa_column=_ts(nullable=False))
