"""Missing or broken links between a protected item, its VM and its NICs are ``unknown``, never a write (issue 9).

The A2A shapes are the recorded protected items in tests/data/arm (A2AReprotectTest / A2AUpdateProtectionWithZone
session records of Azure/azure-powershell, see tests/data/arm/README.md): ``providerSpecificDetails.fabricObjectId`` is
the VM's id (lower case), ``vmNics[].sourceNicArmId`` its NICs, and a NIC names its VM in ``virtualMachine.id``
(NetworkInterfaceGet example). Without the VM its opt-out tag cannot be read, so nothing may be planned for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from asr_remediate.config import Settings
from asr_remediate.drift import UNKNOWN
from asr_remediate.engine import scan
from asr_remediate.estate import EstateError, build_estate, load_estate_file
from asr_remediate.model import key
from asr_remediate.report import render_json
from tests.scenario import Scenario, deny, full_tags, scan_resources


def _item(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in resources if r["type"].lower().endswith("replicationprotecteditems"))


def _without_vm(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in resources if not r["type"].lower().endswith("virtualmachines")]


def test_a_vm_not_in_the_inventory_is_unknown_with_a_missing_finding_and_no_plan() -> None:
    """Drift on its subnet NSG would be fixable if the VM were there; without it nothing is planned (its opt-out tag
    is unreadable), and the report says which VM is missing."""
    resources = Scenario(subnet_rules=[deny(4000)]).resources()
    vm_id = next(r["id"] for r in resources if r["type"].lower().endswith("virtualmachines"))
    assert scan_resources(resources).changes  # with the VM: the deny is fixed
    plan = scan_resources(_without_vm(resources))
    (report,) = plan.reports
    assert report.status == UNKNOWN and not plan.changes
    (finding,) = report.findings
    assert finding.kind == "missing" and finding.resource_id.lower() == vm_id.lower()
    assert f"VM {vm_id.lower()}" in finding.message and "opt-out tag" in finding.message
    assert not finding.fixable


def test_an_opted_out_vm_missing_from_the_inventory_gets_no_write_either() -> None:
    """The case the rule exists for: the tag says 'hands off', but the VM is not in the inventory to say it."""
    resources = Scenario(subnet_rules=[deny(4000)], vm_tags={"asr-remediate-opt-out": "true"}).resources()
    assert scan_resources(resources).reports[0].status == "skipped"
    plan = scan_resources(_without_vm(resources))
    assert plan.reports[0].status == UNKNOWN and not plan.changes


@pytest.mark.parametrize("fabric_object_id", ["", None, "absent"])
def test_an_empty_fabric_object_id_is_linked_through_the_nics_virtual_machine(fabric_object_id: str | None) -> None:
    resources = Scenario(subnet_rules=[deny(4000)]).resources()
    details = _item(resources)["properties"]["providerSpecificDetails"]
    vm_id = details["fabricObjectId"]
    if fabric_object_id == "absent":
        del details["fabricObjectId"]
    else:
        details["fabricObjectId"] = fabric_object_id
    estate = build_estate(resources)
    (item,) = estate.protected_items
    assert key(item.vm_id) == key(vm_id)
    plan = scan_resources(resources)
    (report,) = plan.reports
    assert key(report.id) == key(vm_id) and report.status == "drift" and plan.changes


def test_a_linked_vm_keeps_its_opt_out_tag() -> None:
    resources = Scenario(subnet_rules=[deny(4000)], vm_tags={"asr-remediate-opt-out": "yes"}).resources()
    _item(resources)["properties"]["providerSpecificDetails"]["fabricObjectId"] = ""
    plan = scan_resources(resources)
    assert plan.reports[0].status == "skipped" and not plan.changes


def test_no_fabric_object_id_and_no_nic_naming_a_vm_is_unknown_never_an_empty_id() -> None:
    resources = Scenario(subnet_rules=[deny(4000)]).resources()
    item = _item(resources)
    item["properties"]["providerSpecificDetails"]["fabricObjectId"] = ""
    nic = next(r for r in resources if r["type"].lower().endswith("networkinterfaces"))
    nic["properties"].pop("virtualMachine", None)
    plan = scan_resources(resources)
    (report,) = plan.reports
    assert report.status == UNKNOWN and not plan.changes
    assert report.id == item["id"]
    (finding,) = report.findings
    assert finding.kind == "missing" and "fabricObjectId is empty" in finding.message
    document = json.loads(render_json(plan.reports, plan.changes))
    assert document["vms"][0]["id"] == item["id"] and all(v["id"] for v in document["vms"])


def test_nics_naming_two_different_vms_link_to_none() -> None:
    """Ambiguous links are not guessed at."""
    resources = Scenario(subnet_rules=[deny(4000)]).resources()
    item = _item(resources)
    details = item["properties"]["providerSpecificDetails"]
    details["fabricObjectId"] = ""
    nic = next(r for r in resources if r["type"].lower().endswith("networkinterfaces"))
    other = json.loads(json.dumps(nic))
    other["id"] = nic["id"] + "-2"
    other["properties"]["virtualMachine"] = {"id": nic["properties"]["virtualMachine"]["id"] + "-other"}
    resources.append(other)
    details["vmNics"].append({**details["vmNics"][0], "sourceNicArmId": other["id"]})
    (found,) = build_estate(resources).protected_items
    assert found.vm_id == ""
    assert scan_resources(resources).reports[0].status == UNKNOWN


@pytest.mark.parametrize("priority", ["3999.5", '"3999.5"', '"abc"', "4e3.5"],
                         ids=["3999.5", "'3999.5'", "abc", "not JSON"])
def test_a_non_integer_priority_is_an_error_naming_the_nsg_not_a_truncation(tmp_path: Path, priority: str) -> None:
    """3999.5 is not priority 3999 (nor 4000): the NSG is unreadable with the reason, its VM unknown naming it, and
    nothing is planned there."""
    resources = Scenario(subnet_rules=[deny(4000)]).resources()
    nsg = next(r for r in resources if r["id"].endswith("/nsg-subnet"))
    text = json.dumps(resources).replace('"priority": 4000', f'"priority": {priority}')
    path = tmp_path / "estate.json"
    path.write_text(text, encoding="utf-8")
    if priority == "4e3.5":  # not JSON at all: the file is the error, one line
        with pytest.raises(EstateError):
            load_estate_file(path)
        return
    estate = load_estate_file(path)
    reason = estate.unreadable[key(nsg["id"])].reason
    assert "security rule 'deny-4000' has no valid priority" in reason and "not a whole number" in reason
    assert key(nsg["id"]) not in estate.nsgs
    plan = scan(estate, full_tags(), Settings())
    (report,) = plan.reports
    assert report.status == UNKNOWN and not plan.changes
    assert any(f.kind == "unknown" and f.resource_id == nsg["id"] and "no valid priority" in f.message
               for f in report.findings)
