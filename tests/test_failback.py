"""Failback: a reprotected VM is evaluated in the reverse direction; the states in between are skipped (issue 9).

What the real A2A payloads say (Azure/azure-powershell session records, copied into tests/data/arm, see its README):

* ``A2AReprotectTest``'s GET of the item just before reprotect (A2A_ReplicationProtectedItem_Get_FailoverCommitted_…):
  ``activeLocation`` "Recovery", ``protectionState`` "UnplannedFailoverCommitted" ("Failover committed"),
  ``allowedOperations`` including "SwitchProtection" (= Re-protect), ``fabricObjectId`` the original VM in uksouth,
  ``recoveryFabricObjectId`` the VM now running in ukwest, ``primaryFabricLocation`` / ``recoveryFabricLocation`` and
  ``initialPrimaryFabricLocation`` / ``initialRecoveryFabricLocation`` uksouth / ukwest, ``vmNics[]`` with the
  primary network (``vMNetworkName``, ``ipConfigs[].subnetName``) and the recovery one (``recoveryVMNetworkId``,
  ``recoverySubnetName``).
* The same recording's reprotect job (scenarioName "SwitchReplicationGroupProtection", friendlyName "Reprotect")
  names ``customDetails.newReplicationProtectedItemId`` under the *ukwest* fabric and container: after reprotect the
  item replicates from the recovery region back to the primary ("Reprotect the virtual machines in the secondary
  region, so that they start to replicate to the primary region", learn.microsoft.com/azure/site-recovery/
  azure-to-azure-how-to-reprotect). The A2A model keeps ``initial*FabricLocation`` next to the current
  ``primary/recoveryFabricLocation`` (A2AReplicationDetails in specification/recoveryservicessiterecovery), so the
  direction is read from both.
* ``A2AUpdateProtectionWithZone``'s list: a replicating item is ``protectionState`` "Protected".

The reprotected shapes below are that recorded item with only the fields a reprotect changes edited, in the two
forms Site Recovery could report them (the item's own fields unchanged at activeLocation Recovery, or already
reversed in its new container); no recording of a completed reprotect GET was found (noted in tests/data/arm/README).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from asr_remediate.config import Settings
from asr_remediate.drift import DRIFT, SKIPPED, UNKNOWN
from asr_remediate.engine import scan
from asr_remediate.estate import build_estate, parse_protected_item
from asr_remediate.events import affected_items
from asr_remediate.model import FAILBACK, FORWARD, RecoveryNic, key
from asr_remediate.planner import apply_changes
from asr_remediate.report import render_json, render_markdown, render_table
from examples.estate_builder import nic, protected_item, rid, vm
from tests.scenario import DR_RG, SUB, Scenario, deny, full_tags, scan_resources

ARM = Path(__file__).resolve().parent / "data" / "arm"
RECORDED = json.loads((ARM / "A2A_ReplicationProtectedItem_Get_FailoverCommitted_recorded_2024-10-01.json")
                      .read_text(encoding="utf-8-sig"))
SOURCE_VNET = ("/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/vijami-alertrg/providers/"
               "Microsoft.Network/virtualNetworks/nzntestvm-vnet")
RUNNING_VM = ("/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourcegroups/vijami-alertrg-asr-1/providers/"
              "microsoft.compute/virtualmachines/reprotectvm")


def recorded() -> dict[str, Any]:
    return copy.deepcopy(RECORDED)


def reprotected(resource: dict[str, Any]) -> dict[str, Any]:
    """The recorded item after reprotect, fields as they were: replicating again, still at activeLocation Recovery."""
    props = resource["properties"]
    props.update(protectionState="Protected", protectionStateDescription="Protected",
                 allowedOperations=["PlannedFailover", "UnplannedFailover", "TestFailover", "DisableProtection"])
    props["providerSpecificDetails"].update(vmProtectionState="Protected", vmProtectionStateDescription="Protected")
    return resource


def test_the_recorded_committed_failover_is_skipped_naming_the_state() -> None:
    item = parse_protected_item(recorded())
    assert item is not None and not item.swapped and item.direction == FORWARD
    assert (item.source_region, item.target_region) == ("uksouth", "ukwest")
    estate = build_estate([recorded()])
    (report,) = scan(estate, full_tags(), Settings()).reports
    assert report.status == SKIPPED
    (finding,) = report.findings
    assert finding.kind == "skipped"
    assert "failed over to ukwest and the failover is committed" in finding.message
    assert "UnplannedFailoverCommitted" in finding.message and "back to uksouth" in finding.message


@pytest.mark.parametrize(("state", "operation", "why"), [
    ("UnplannedFailoverCommitted", "SwitchReplicationGroupProtection", "reprotect is in progress"),
    ("Protected", "SwitchReplicationGroupProtection", "reprotect is in progress"),  # not done until the job is
    ("UnplannedFailoverCompleted", "None", "the failover is not committed yet"),
    ("FailoverCommitInProgress", "None", "the failover is being committed"),
    ("", "None", "it is not replicating"),
])
def test_the_states_in_between_are_skipped_with_the_reason(state: str, operation: str, why: str) -> None:
    resource = recorded()
    resource["properties"]["protectionState"] = state
    resource["properties"]["currentScenario"]["scenarioName"] = operation
    (report,) = scan(build_estate([resource]), full_tags(), Settings()).reports
    assert report.status == SKIPPED and why in report.findings[0].message


def test_a_reprotected_item_is_turned_around() -> None:
    item = parse_protected_item(reprotected(recorded()))
    assert item is not None and item.swapped and item.direction == FAILBACK
    assert key(item.vm_id) == key(RUNNING_VM)  # recoveryFabricObjectId: the VM that runs
    assert (item.source_region, item.target_region) == ("ukwest", "uksouth")
    assert item.recovery_nics == (RecoveryNic("", SOURCE_VNET, ("default",)),)  # the primary network it names
    assert item.recovery_vnet_id == SOURCE_VNET
    assert item.cache_storage_accounts == ()  # the named cache account is the first direction's, in uksouth


def test_an_item_site_recovery_already_reports_reversed_is_failback_as_it_is() -> None:
    """The other form: the item in its new (ukwest) container with primary = ukwest, activeLocation Primary."""
    resource = reprotected(recorded())
    props, details = resource["properties"], resource["properties"]["providerSpecificDetails"]
    resource["id"] = resource["id"].replace("asr-a2a-default-uksouth", "asr-a2a-default-ukwest")
    props["activeLocation"] = "Primary"
    details.update(primaryFabricLocation="ukwest", recoveryFabricLocation="uksouth", fabricObjectId=RUNNING_VM,
                   recoveryFabricObjectId=details["fabricObjectId"])
    item = parse_protected_item(resource)
    assert item is not None and not item.swapped and item.direction == FAILBACK
    assert (item.source_region, item.target_region, key(item.vm_id)) == ("ukwest", "uksouth", key(RUNNING_VM))
    details.update(initialPrimaryFabricLocation="", initialRecoveryFabricLocation="")
    assert parse_protected_item(resource).direction == FORWARD  # type: ignore[union-attr]  # nothing says otherwise


def test_forward_items_are_forward() -> None:
    item = parse_protected_item(Scenario().resources()[-1])
    assert item is not None and item.direction == FORWARD and not item.swapped


# -- the engine on a reprotected VM: eastus (primary) → centralus (recovery), now running in centralus ---------------

RECOVERY_VM = rid(SUB, DR_RG, "Microsoft.Compute", "virtualMachines", "vm1")


def failback(scenario: Scenario, *, vm_tags: dict[str, str] | None = None,
             with_vm: bool = True) -> list[dict[str, Any]]:
    """The scenario's VM after failover to centralus and reprotect: the VM runs in the recovery subnet snet-dr, the
    item (fields as recorded: activeLocation Recovery, Protected) names the primary network vnet-src/snet."""
    resources = scenario.resources()
    dr_vnet = next(r for r in resources if r["id"].endswith("/vnet-dr"))
    src_vnet = next(r for r in resources if r["id"].endswith("/vnet-src"))
    running_nic = nic(SUB, DR_RG, "vm1-nic-dr", "centralus", f"{dr_vnet['id']}/subnets/snet-dr", "10.2.1.4",
                      RECOVERY_VM)
    resources.append(running_nic)
    if with_vm:
        resources.append(vm(SUB, DR_RG, "vm1", "centralus", [running_nic["id"]], vm_tags))
    item = next(r for r in resources if r["type"].lower().endswith("replicationprotecteditems"))
    props, details = item["properties"], item["properties"]["providerSpecificDetails"]
    props.update(activeLocation="Recovery", protectionState="Protected")
    details.update(recoveryFabricObjectId=RECOVERY_VM.lower(), initialPrimaryFabricLocation="eastus",
                   initialRecoveryFabricLocation="centralus")
    for entry in details["vmNics"]:
        entry["vMNetworkName"] = src_vnet["id"]
        for config in entry["ipConfigs"]:
            config["subnetName"] = "snet"
    return resources


def test_a_reprotected_vm_is_evaluated_from_the_recovery_region_with_swapped_requirements() -> None:
    """Source side: the running VM's NIC in snet-dr (centralus) needs Storage.CentralUS and EventHub.EastUS; target
    side: the primary subnet snet (eastus) needs Storage.EastUS. A deny of Storage.EastUS on the primary subnet is
    therefore *target* drift now (forward it is source drift)."""
    scenario = Scenario(subnet_rules=[deny(300, "Storage.EastUS")])
    forward = scan_resources(scenario.resources()).reports[0]
    assert {(f.side, f.destination) for f in forward.findings if f.severity == "error"} == {
        ("source", "Storage.EastUS")}
    plan = scan_resources(failback(scenario))
    (report,) = plan.reports
    assert report.direction == FAILBACK and report.status == DRIFT
    assert key(report.id) == key(RECOVERY_VM)
    assert (report.source_region, report.target_region) == ("centralus", "eastus")
    errors = [f for f in report.findings if f.severity == "error"]
    assert {(f.side, f.destination, f.resource_id.rsplit("/", 1)[-1]) for f in errors} == {
        ("target", "Storage.EastUS", "nsg-subnet")}
    (change,) = plan.changes
    assert change.resource_id.endswith("/nsg-subnet") and change.properties["destinationAddressPrefix"] == \
        "Storage.EastUS"
    assert change.properties["sourceAddressPrefixes"] == ["10.1.1.0/24"]  # the primary subnet it fails back into
    assert [(f.vm_id.lower(), f.side) for f in change.fixes] == [(RECOVERY_VM.lower(), "target")]


def test_the_running_vms_nsg_is_the_source_side_and_apply_then_rescan_is_compliant() -> None:
    scenario = Scenario(recovery_rules=[deny(4000)])  # the recovery subnet's NSG denies Internet
    resources = failback(scenario)
    estate = build_estate(resources)
    plan = scan(estate, full_tags(), Settings())
    (report,) = plan.reports
    sides = {f.side for f in report.findings if f.severity == "error"}
    assert sides == {"source"} and all(f.resource_id.endswith("/nsg-dr") for f in report.findings
                                       if f.severity == "error")
    needs = {f.destination for f in report.findings if f.severity == "error"}
    assert needs == {"Storage.CentralUS", "AzureActiveDirectory", "EventHub.EastUS", "AzureSiteRecovery"}
    assert plan.changes and all(c.resource_id.endswith("/nsg-dr") for c in plan.changes)
    assert all(c.properties["sourceAddressPrefixes"] == ["10.2.1.0/24"] for c in plan.changes)
    after = scan(apply_changes(estate, plan.changes), full_tags(), Settings())
    assert after.reports[0].status == "compliant" and after.changes == ()


def test_reports_say_failback() -> None:
    plan = scan_resources(failback(Scenario(subnet_rules=[deny(300, "Storage.EastUS")])))
    document = json.loads(render_json(plan.reports, plan.changes))
    assert document["vms"][0]["direction"] == "failback"
    assert "centralus -> eastus (failback)" in render_table(plan.reports, plan.changes)
    assert "centralus → eastus (failback)" in render_markdown(plan.reports, plan.changes)
    forward = scan_resources(Scenario().resources())
    assert json.loads(render_json(forward.reports, forward.changes))["vms"][0]["direction"] == "forward"


def test_the_running_vms_opt_out_tag_counts() -> None:
    plan = scan_resources(failback(Scenario(subnet_rules=[deny(300, "Storage.EastUS")]),
                                   vm_tags={"asr-remediate-opt-out": "true"}))
    assert plan.reports[0].status == SKIPPED and not plan.changes


def test_a_reprotected_item_whose_running_vm_is_not_in_the_inventory_is_unknown() -> None:
    plan = scan_resources(failback(Scenario(subnet_rules=[deny(300, "Storage.EastUS")]), with_vm=False))
    (report,) = plan.reports
    assert report.status == UNKNOWN and not plan.changes
    assert report.findings[0].kind == "missing" and key(report.findings[0].resource_id) == key(RECOVERY_VM)


def test_a_protected_item_event_finds_the_reversed_item_by_its_running_vm() -> None:
    """Events (a NIC, NSG or route table change) map to the VMs whose evaluated path uses them: for a failback the
    running VM's NIC and the primary subnet's NSG."""
    resources = failback(Scenario(subnet_rules=[deny(300, "Storage.EastUS")]))
    estate = build_estate(resources)
    running_nic = next(r["id"] for r in resources if r["id"].endswith("/vm1-nic-dr"))
    primary_nsg = next(r["id"] for r in resources if r["id"].endswith("/nsg-subnet"))
    assert [i.direction for i in affected_items(estate, "nic", running_nic)] == [FAILBACK]
    assert [i.direction for i in affected_items(estate, "nsg", primary_nsg)] == [FAILBACK]


def test_an_unreadable_reprotected_item_is_reported_under_the_vm_that_runs() -> None:
    resource = reprotected(recorded())
    resource["properties"]["providerSpecificDetails"]["vmNics"] = ["not an object"]
    (report,) = scan(build_estate([resource]), full_tags(), Settings()).reports
    assert report.status == UNKNOWN and key(report.id) == key(RUNNING_VM) and report.direction == FAILBACK
    assert (report.source_region, report.target_region) == ("ukwest", "uksouth")
    assert "is unreadable" in report.findings[0].message


@pytest.mark.parametrize("scenario", [
    Scenario(subnet_rules=[deny(300, "Storage.EastUS")]),
    Scenario(recovery_rules=[deny(4000)]),
    Scenario(subnet_rules=[deny(200, "*")], recovery_rules=[deny(250, "EventHub.EastUS"), deny(260, "Storage")]),
    Scenario(routes=[("default", "0.0.0.0/0", "VirtualNetworkGateway")], recovery_rules=[deny(4000)]),
], ids=["primary-denies-storage", "recovery-denies-internet", "both", "primary-forced-tunnel"])
def test_a_failback_is_evaluated_exactly_as_forward_protection_of_the_running_vm_into_the_primary_network(
        scenario: Scenario) -> None:
    """Metamorphic check of "source and target swap, and the requirements with them": the reprotected item gives the
    same findings and plan as a forward item protecting the running VM (centralus) into the primary subnet (eastus)."""
    resources = failback(scenario)
    back = scan_resources(resources)
    item = next(r for r in resources if r["type"].lower().endswith("replicationprotecteditems"))
    running_nic = next(r["id"] for r in resources if r["id"].endswith("/vm1-nic-dr"))
    src_vnet = next(r["id"] for r in resources if r["id"].endswith("/vnet-src"))
    mirrored = protected_item(SUB, "vault", RECOVERY_VM, "vm1", "centralus", "eastus", running_nic, src_vnet, "snet")
    mirrored["id"] = item["id"]
    forward = scan_resources([r for r in resources if r is not item] + [mirrored])
    (a,), (b,) = back.reports, forward.reports
    assert (a.direction, b.direction) == (FAILBACK, FORWARD)
    assert (a.id, a.status, a.source_region, a.target_region) == (b.id, b.status, b.source_region, b.target_region)
    assert a.findings == b.findings and a.findings
    assert [(c.resource_id, c.name, c.properties) for c in back.changes] == \
        [(c.resource_id, c.name, c.properties) for c in forward.changes]
