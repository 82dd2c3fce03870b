"""Vocabulary shared by every contract: people, pathways, roles, severities."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

#: NOMIS prison number, e.g. A1234BC.
PrisonNumber = Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9]{4}[A-Z]{2}$")]
#: Probation case reference number (nDelius CRN), e.g. X123456.
Crn = Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9]{6}$")]
#: Prison or agency code: three-letter prison codes (MDI) and longer agency codes (IOM-CAMBS).
AgencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_-]{1,31}$")]
#: Free text is bounded so one hostile event cannot blow up a worker's memory.
ShortText = Annotated[str, StringConstraints(max_length=500)]
LongText = Annotated[str, StringConstraints(max_length=10_000)]


class Strict(BaseModel):
    """Base for contract models: unknown fields are refused, so payloads carry only ours."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Person(Strict):
    prison_number: PrisonNumber
    crn: Crn | None = None


class Pathway(StrEnum):
    """The seven resettlement pathways used by HMPPS."""

    ACCOMMODATION = "accommodation"
    ATTITUDES_THINKING_BEHAVIOUR = "attitudes_thinking_behaviour"
    CHILDREN_FAMILIES_COMMUNITIES = "children_families_communities"
    DRUGS_ALCOHOL = "drugs_alcohol"
    EDUCATION_SKILLS_WORK = "education_skills_work"
    FINANCE_ID = "finance_id"
    HEALTH = "health"

    @property
    def title(self) -> str:
        return PATHWAY_TITLES[self]


PATHWAY_TITLES: dict[Pathway, str] = {
    Pathway.ACCOMMODATION: "Accommodation",
    Pathway.ATTITUDES_THINKING_BEHAVIOUR: "Attitudes, thinking and behaviour",
    Pathway.CHILDREN_FAMILIES_COMMUNITIES: "Children, families and communities",
    Pathway.DRUGS_ALCOHOL: "Drugs and alcohol",
    Pathway.EDUCATION_SKILLS_WORK: "Education, skills and work",
    Pathway.FINANCE_ID: "Finance and ID",
    Pathway.HEALTH: "Health",
}


class PathwayStatus(StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    SUPPORT_REQUIRED = "support_required"
    SUPPORT_NOT_REQUIRED = "support_not_required"
    DECLINED = "declined"
    DONE = "done"


class StaffRole(StrEnum):
    """Roles in an IOM hub and the prison, as alerts and tasks name their owners."""

    IOM_POLICE_OFFICER = "iom_police_officer"
    PROBATION_PRACTITIONER = "probation_practitioner"
    HOUSING_OFFICER = "housing_officer"
    WORK_COACH = "work_coach"
    DRUG_ALCOHOL_WORKER = "drug_alcohol_worker"
    MENTAL_HEALTH_LINK = "mental_health_link"
    PEER_MENTOR = "peer_mentor"
    MENTOR_COORDINATOR = "mentor_coordinator"
    OMU = "omu"  # prison offender management unit / prison IOM officer
    VICTIM_LIAISON_OFFICER = "victim_liaison_officer"
    HUB_MANAGER = "hub_manager"

    @property
    def is_police(self) -> bool:
        return self is StaffRole.IOM_POLICE_OFFICER


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "urgent": 2}[self.value]
