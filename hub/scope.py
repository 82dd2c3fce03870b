"""Which people a hub may see, and which parts of a record a role may see.

A person belongs to a hub when the hub covers their destination local authority, when the hub
holds a task for them, or when the hub is the OMU of the prison that holds them. Anything else
is "not found": the app never says that a person exists in another hub.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from infra.models.hubs import HubArea, PrisonOmu
from infra.models.tasks import Task
from infra.models.timeline import PersonSummary
from schemas.common import Pathway, StaffRole

#: Third-sector roles: they need not see police intelligence [NACRO].
THIRD_SECTOR = frozenset({StaffRole.PEER_MENTOR, StaffRole.MENTOR_COORDINATOR})
#: Roles that work with victim details; everyone else sees that a note exists, not its text.
VICTIM_ROLES = frozenset({
    StaffRole.VICTIM_LIAISON_OFFICER, StaffRole.PROBATION_PRACTITIONER, StaffRole.HUB_MANAGER,
    StaffRole.IOM_POLICE_OFFICER,
})
RESTRICTED = "Restricted: not shared with your role"


def hidden_sensitivities(role: StaffRole) -> frozenset[str]:
    hidden: set[str] = set()
    if role.is_police:
        hidden.add("health")  # "There are health issues that we can't share" [NACRO]
    if role in THIRD_SECTOR:
        hidden.add("police_intelligence")
    if role not in VICTIM_ROLES:
        hidden.add("victim")
    return frozenset(hidden)


def pathway_hidden(role: StaffRole, pathway: str | None) -> bool:
    return role.is_police and pathway == Pathway.HEALTH.value


def hub_prison_numbers(session: Session, hub_code: str) -> set[str]:
    """Everyone the hub may see (a county hub holds up to ~1,000, so a set is fine)."""
    areas = select(HubArea.local_authority_key).where(HubArea.hub_code == hub_code)
    prisons = select(PrisonOmu.prison).where(PrisonOmu.hub_code == hub_code)
    found = set(session.exec(select(PersonSummary.prison_number).where(
        col(PersonSummary.destination_la_key).in_(areas)
        | col(PersonSummary.current_prison).in_(prisons))).all())
    found.update(session.exec(
        select(Task.prison_number).where(Task.hub_code == hub_code).distinct()).all())
    return found


def person_in_hub(session: Session, hub_code: str, prison_number: str) -> bool:
    if session.exec(select(Task.id).where(Task.hub_code == hub_code,
                                          Task.prison_number == prison_number)).first():
        return True
    row = session.get(PersonSummary, prison_number)
    if row is None:
        return False
    if row.destination_la_key and session.exec(select(HubArea).where(
            HubArea.hub_code == hub_code,
            HubArea.local_authority_key == row.destination_la_key)).first():
        return True
    return bool(row.current_prison and session.exec(select(PrisonOmu).where(
        PrisonOmu.hub_code == hub_code, PrisonOmu.prison == row.current_prison)).first())
