"""The hub directory: which hub covers which local authority, which unit is each prison's OMU,
and who works where in which role.

It is kept in a TOML file (``examples/hubs.toml`` is a documented example) and loaded into the
database with ``ttg hubs load FILE``; routing works on a :class:`Directory` snapshot read back
from the database, so the consumer never depends on the file being present.

File format::

    [[hubs]]
    code = "IOM-CAMBS"                  # agency code, unique
    name = "Cambridgeshire IOM hub"
    kind = "community"                  # "community" (an IOM hub) or "omu" (a prison OMU)
    local_authorities = ["Cambridge", "Fenland"]   # community hubs: the areas they cover

      [[hubs.staff]]
      id = "cambs-hm-1"                 # unique across the directory; tasks name it
      name = "..."
      role = "hub_manager"              # a schemas.common.StaffRole value
      phone = "+447700900001"           # optional, E.164
      lead = true                       # this person owns the hub's tasks for this role

    [[prisons]]
    code = "PBI"                        # prison code as alerts carry it
    name = "HMP Peterborough"
    omu = "OMU-PBI"                     # the hub (kind "omu") that is this prison's OMU
    local_authority = "Peterborough"    # where the prison stands (optional)

Loading is an upsert: hubs, areas and prisons in the file replace what the database held for
them; staff are matched by id, and staff of a loaded hub who are missing from the file are
marked inactive rather than deleted, because tasks and their history still name them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from infra.database import session_scope
from infra.models.hubs import Hub, HubArea, PrisonOmu, Staff
from schemas.common import StaffRole


class DirectoryError(ValueError):
    """The directory file is not usable; the message says where and why."""


def la_key(local_authority: str) -> str:
    return " ".join(local_authority.split()).casefold()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class StaffEntry(_Model):
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    role: StaffRole
    phone: str | None = Field(default=None, max_length=32)
    lead: bool = False
    active: bool = True

    @field_validator("phone")
    @classmethod
    def _e164(cls, v: str | None) -> str | None:
        if v is None:
            return None
        import phonenumbers

        try:
            parsed = phonenumbers.parse(v, "GB")
        except phonenumbers.NumberParseException as exc:
            raise ValueError(f"not a phone number: {exc}") from None
        # "possible", not "valid": Ofcom's drama range (07700 900xxx) is how examples and tests
        # avoid real people's numbers, and libphonenumber calls it invalid.
        if not phonenumbers.is_possible_number(parsed):
            raise ValueError("not a possible phone number")
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class HubEntry(_Model):
    code: str = Field(pattern=r"^[A-Z0-9][A-Z0-9_-]{1,31}$")
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(default="community", pattern=r"^(community|omu)$")
    local_authorities: tuple[str, ...] = ()
    staff: tuple[StaffEntry, ...] = ()

    def lead_for(self, role: StaffRole) -> StaffEntry | None:
        for s in self.staff:
            if s.role is role and s.lead and s.active:
                return s
        return None


class PrisonEntry(_Model):
    code: str = Field(pattern=r"^[A-Z0-9][A-Z0-9_-]{1,31}$")
    name: str = Field(min_length=1, max_length=200)
    omu: str
    local_authority: str | None = None


class Directory(_Model):
    """A validated, self-consistent directory, from a file or read back from the database."""

    hubs: tuple[HubEntry, ...] = ()
    prisons: tuple[PrisonEntry, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Directory:
        codes = [h.code for h in self.hubs]
        if dup := {c for c in codes if codes.count(c) > 1}:
            raise ValueError(f"hub code(s) listed twice: {', '.join(sorted(dup))}")
        ids = [s.id for h in self.hubs for s in h.staff]
        if dup := {i for i in ids if ids.count(i) > 1}:
            raise ValueError(f"staff id(s) listed twice: {', '.join(sorted(dup))}")
        owner: dict[str, str] = {}
        for h in self.hubs:
            for la in h.local_authorities:
                if (other := owner.setdefault(la_key(la), h.code)) != h.code:
                    raise ValueError(
                        f"local authority {la!r} is covered by both {other} and {h.code}")
            leads = [s.role for s in h.staff if s.lead and s.active]
            if dup := {r.value for r in leads if leads.count(r) > 1}:
                raise ValueError(f"hub {h.code} names more than one lead for {', '.join(dup)}")
        known = set(codes)
        for p in self.prisons:
            if p.omu not in known:
                raise ValueError(f"prison {p.code}: OMU {p.omu!r} is not a hub in this directory")
        return self

    # --- lookups used by routing
    def hub(self, code: str | None) -> HubEntry | None:
        return next((h for h in self.hubs if h.code == code), None) if code else None

    def hub_covering(self, local_authority: str | None) -> HubEntry | None:
        if not local_authority:
            return None
        key = la_key(local_authority)
        return next(
            (h for h in self.hubs if any(la_key(la) == key for la in h.local_authorities)), None
        )

    def prison(self, code: str | None) -> PrisonEntry | None:
        return next((p for p in self.prisons if p.code == code), None) if code else None

    def omu_for(self, prison: str | None) -> HubEntry | None:
        entry = self.prison(prison)
        return self.hub(entry.omu) if entry else None


def parse_file(path: Path) -> Directory:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DirectoryError(f"{path}: {exc}") from None
    try:
        return Directory.model_validate(data)
    except ValueError as exc:
        raise DirectoryError(f"{path}: {exc}") from None


def store(engine: Engine, directory: Directory) -> dict[str, int]:
    """Upsert ``directory`` into the database; returns counts of what it now holds for it."""
    with session_scope(engine) as session:
        for h in directory.hubs:
            session.merge(Hub(code=h.code, name=h.name, kind=h.kind, active=True))
        session.flush()
        loaded = {h.code for h in directory.hubs}
        for area in session.exec(select(HubArea)).all():
            if area.hub_code in loaded:
                session.delete(area)
        session.flush()
        for h in directory.hubs:
            for la in h.local_authorities:
                session.merge(HubArea(local_authority_key=la_key(la), local_authority=la,
                                      hub_code=h.code))
        for p in directory.prisons:
            session.merge(PrisonOmu(prison=p.code, name=p.name, hub_code=p.omu,
                                    local_authority=p.local_authority))
        in_file = {s.id for h in directory.hubs for s in h.staff}
        for existing in session.exec(select(Staff).where(Staff.hub_code.in_(loaded))).all():
            if existing.staff_id not in in_file:
                existing.active = False
                existing.lead = False
                session.add(existing)
        for h in directory.hubs:
            for s in h.staff:
                session.merge(Staff(staff_id=s.id, hub_code=h.code, name=s.name, role=s.role.value,
                                    phone=s.phone, lead=s.lead, active=s.active))
    return {
        "hubs": len(directory.hubs),
        "local_authorities": sum(len(h.local_authorities) for h in directory.hubs),
        "prisons": len(directory.prisons),
        "staff": len(in_file),
    }


def load_file(engine: Engine, path: Path) -> dict[str, int]:
    return store(engine, parse_file(path))


def read(session: Session) -> Directory:
    """The directory as the database holds it now (active hubs and staff only)."""
    hubs = session.exec(select(Hub).where(Hub.active)).all()
    areas = session.exec(select(HubArea)).all()
    staff = session.exec(select(Staff).where(Staff.active)).all()
    prisons = session.exec(select(PrisonOmu)).all()
    active = {h.code for h in hubs}

    def hub_entry(h: Hub) -> HubEntry:
        return HubEntry.model_construct(
            code=h.code, name=h.name, kind=h.kind,
            local_authorities=tuple(a.local_authority for a in areas if a.hub_code == h.code),
            staff=tuple(
                StaffEntry.model_construct(id=s.staff_id, name=s.name, role=StaffRole(s.role),
                                           phone=s.phone, lead=s.lead, active=s.active)
                for s in staff if s.hub_code == h.code
            ),
        )

    # Built without re-validation: the database is already consistent and phone numbers were
    # checked on the way in.
    return Directory.model_construct(
        hubs=tuple(hub_entry(h) for h in hubs),
        prisons=tuple(
            PrisonEntry.model_construct(code=p.prison, name=p.name, omu=p.hub_code,
                                        local_authority=p.local_authority)
            for p in prisons if p.hub_code in active
        ),
    )


def add_staff(
    engine: Engine, hub_code: str, staff_id: str, name: str, role: StaffRole,
    phone: str | None = None, lead: bool = False,
) -> Staff:
    """Add or replace one staff member; a new lead for a role replaces the previous lead."""
    entry = StaffEntry(id=staff_id, name=name, role=role, phone=phone, lead=lead)
    with session_scope(engine) as session:
        if session.get(Hub, hub_code) is None:
            raise DirectoryError(f"no hub {hub_code!r}")
        if lead:
            for other in _staff_with_role(session, hub_code, role):
                if other.staff_id != staff_id and other.lead:
                    other.lead = False
                    session.add(other)
        row = Staff(staff_id=entry.id, hub_code=hub_code, name=entry.name, role=role.value,
                    phone=entry.phone, lead=lead, active=True)
        return session.merge(row)


def _staff_with_role(session: Session, hub_code: str, role: StaffRole) -> Iterable[Staff]:
    return session.exec(
        select(Staff).where(Staff.hub_code == hub_code, Staff.role == role.value)
    ).all()
