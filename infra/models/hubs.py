"""The hub directory: hubs, the local authorities they cover, prison OMUs and staff.

Loaded from a config file (see :mod:`infra.directory`); routing reads a snapshot of it.
"""

from __future__ import annotations

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class Hub(SQLModel, table=True):
    """An IOM hub (kind ``community``) or a prison offender management unit (kind ``omu``)."""

    __tablename__ = "hubs"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    kind: str = Field(default="community", max_length=16)
    active: bool = True


class HubArea(SQLModel, table=True):
    """One local authority and the hub that covers it (each authority has one covering hub)."""

    __tablename__ = "hub_areas"

    # Case-folded so "South Cambridgeshire" and "south cambridgeshire" are one authority.
    local_authority_key: str = Field(primary_key=True, max_length=200)
    local_authority: str = Field(max_length=200)
    hub_code: str = Field(foreign_key="hubs.code", index=True, max_length=32)


class PrisonOmu(SQLModel, table=True):
    """A prison, the unit (hub) that is its OMU, and the local authority it stands in."""

    __tablename__ = "prison_omus"

    prison: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    hub_code: str = Field(foreign_key="hubs.code", index=True, max_length=32)
    local_authority: str | None = Field(default=None, max_length=200)


class Staff(SQLModel, table=True):
    """A member of a hub. ``lead`` names the owner of that role's tasks in that hub."""

    __tablename__ = "staff"
    __table_args__ = (Index("ix_staff_hub_role", "hub_code", "role"),)

    staff_id: str = Field(primary_key=True, max_length=64)
    hub_code: str = Field(foreign_key="hubs.code", max_length=32)
    name: str = Field(max_length=200)
    role: str = Field(max_length=32)
    phone: str | None = Field(default=None, max_length=32)
    lead: bool = False
    active: bool = True
