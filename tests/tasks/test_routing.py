"""Routing is a pure function of the alert and the directory."""

from __future__ import annotations

import pytest

from consumers.routing import route
from infra.directory import Directory, DirectoryError, parse_file
from schemas.common import StaffRole
from tests.tasks.conftest import EXAMPLE, make_alert


@pytest.fixture(scope="module")
def directory() -> Directory:
    return parse_file(EXAMPLE)


def test_pre_release_omu_task_goes_to_the_prisons_omu(directory: Directory) -> None:
    r = route(make_alert(owner_role=StaffRole.OMU, prison="PBI", local_authority="Norwich"),
              directory)
    assert (r.hub_code, r.owner_role, r.owner_staff_id) == ("OMU-PBI", StaffRole.OMU, "pbi-omu-1")
    assert "OMU of prison PBI" in r.why


def test_omu_without_a_lead_owns_by_role_queue(directory: Directory) -> None:
    r = route(make_alert(owner_role=StaffRole.OMU, prison="NWI"), directory)
    assert (r.hub_code, r.owner_staff_id) == ("OMU-NWI", None)


def test_community_task_goes_to_hub_covering_destination(directory: Directory) -> None:
    r = route(make_alert(local_authority="south  CAMBRIDGESHIRE", prison="LHI"), directory)
    assert (r.hub_code, r.owner_staff_id) == ("IOM-CAMBS", "cambs-ho-1")
    assert not r.why.startswith("receiving hub")  # Littlehey stands in Cambridgeshire


def test_release_to_another_area_goes_to_receiving_hub(directory: Directory) -> None:
    # Peterborough prison (Cambridgeshire hub's area) releasing to Norwich: Norfolk owns it.
    r = route(make_alert(prison="PBI", local_authority="Norwich"), directory)
    assert (r.hub_code, r.owner_staff_id) == ("IOM-NORFOLK", "norf-ho-1")
    assert r.why.startswith("receiving hub")


def test_post_release_omu_role_routes_by_destination(directory: Directory) -> None:
    r = route(make_alert(owner_role=StaffRole.OMU, pre_release=False, local_authority="Fenland"),
              directory)
    assert r.hub_code == "IOM-CAMBS" and r.owner_staff_id is None  # no OMU lead in a county hub


def test_role_without_lead_goes_to_role_queue(directory: Directory) -> None:
    r = route(make_alert(owner_role=StaffRole.WORK_COACH, local_authority="Cambridge"), directory)
    assert (r.hub_code, r.owner_role, r.owner_staff_id) == ("IOM-CAMBS", StaffRole.WORK_COACH, None)


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"local_authority": "Leeds"}, "no hub covers Leeds"),
    ({"local_authority": None}, "no destination local authority known"),
    ({"owner_role": StaffRole.OMU, "prison": "MDI"}, "no OMU listed for prison MDI"),
    ({"owner_role": StaffRole.OMU, "prison": None}, "names no prison"),
])
def test_unrouted_says_why(directory: Directory, kwargs: dict, why: str) -> None:
    r = route(make_alert(**kwargs), directory)
    assert r.hub_code is None and not r.routed and why in r.why


def test_directory_refuses_inconsistent_files(tmp_path) -> None:
    bad = tmp_path / "hubs.toml"
    bad.write_text('[[hubs]]\ncode="A1"\nname="a"\nlocal_authorities=["Leeds"]\n'
                   '[[hubs]]\ncode="B1"\nname="b"\nlocal_authorities=["leeds"]\n')
    with pytest.raises(DirectoryError, match="covered by both A1 and B1"):
        parse_file(bad)
    bad.write_text('[[hubs]]\ncode="A1"\nname="a"\n[[prisons]]\ncode="PBI"\nname="p"\nomu="X1"\n')
    with pytest.raises(DirectoryError, match="not a hub"):
        parse_file(bad)
    bad.write_text('[[hubs]]\ncode="A1"\nname="a"\n[[hubs.staff]]\nid="s"\nname="n"\n'
                   'role="wizard"\n')
    with pytest.raises(DirectoryError, match="role"):
        parse_file(bad)
