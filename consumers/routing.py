"""Who owns an alert's task: a pure function of the alert and the hub directory.

* Pre-release work that belongs to the prison (owner role OMU) goes to the prison's OMU.
* Everything else goes to the hub covering the person's destination local authority, which for
  a release to another area is the receiving hub, not the one near the prison.
* Nobody covers it: the task is still made, unrouted (hub ``None``), with the reason why.

Within the hub, the staff member marked lead for the role owns the task; else the role queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.directory import Directory, HubEntry
from schemas.common import StaffRole
from schemas.outputs import Alert


@dataclass(frozen=True)
class Route:
    hub_code: str | None  # None: unrouted
    owner_role: StaffRole
    owner_staff_id: str | None  # None: the role queue
    why: str

    @property
    def routed(self) -> bool:
        return self.hub_code is not None


def owner_in(hub: HubEntry | None, role: StaffRole) -> str | None:
    lead = hub.lead_for(role) if hub else None
    return lead.id if lead else None


def route(alert: Alert, directory: Directory, role: StaffRole | None = None) -> Route:
    """Route ``alert`` (as ``role`` when the task already has an owner role, e.g. escalated)."""
    return route_for(role or alert.owner_role, alert.pre_release, alert.prison,
                     alert.local_authority, directory)


def route_for(
    role: StaffRole, pre_release: bool, prison_code: str | None, local_authority: str | None,
    directory: Directory,
) -> Route:
    if pre_release and role is StaffRole.OMU:
        if not prison_code:
            return Route(None, role, None, "pre-release OMU task but the alert names no prison")
        omu = directory.omu_for(prison_code)
        if omu is None:
            return Route(None, role, None, f"no OMU listed for prison {prison_code}")
        return Route(omu.code, role, owner_in(omu, role), f"OMU of prison {prison_code}")

    if not local_authority:
        return Route(None, role, None, "no destination local authority known")
    hub = directory.hub_covering(local_authority)
    if hub is None:
        return Route(None, role, None, f"no hub covers {local_authority}")
    why = f"hub covering {local_authority}"
    prison = directory.prison(prison_code)
    home = directory.hub_covering(prison.local_authority) if prison else None
    if home is not None and home.code != hub.code:
        why = f"receiving hub: release from {prison_code} ({home.code}) to {local_authority}"
    return Route(hub.code, role, owner_in(hub, role), why)
