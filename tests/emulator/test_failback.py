"""Failback end to end: a reprotected VM, read through Resource Graph and ARM by the real SDK clients, is evaluated
from the recovery region, fixed there, and a protected-item event re-evaluates it the same way.

The example estate's vm-old-01 has failed over to centralus and committed (skipped). Here it is reprotected as the
recorded A2A payloads describe it (tests/test_failback.py): activeLocation Recovery, protectionState Protected,
recoveryFabricObjectId the VM that runs in centralus, vmNics naming the primary network. Its running NIC sits in the
recovery subnet snet-app, whose NSG nsg-dr-app denies Storage.CentralUS at priority 300 — what the running VM needs
(the cache storage account is in its own region now).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asr_remediate import triggers
from asr_remediate.drift import COMPLIANT, DRIFT
from examples.estate_builder import nic, rid, vm
from examples.make_example_estate import DR_RG, DR_SUB, RG, SUB
from tests.emulator.arm_emulator import ArmEmulator
from tests.emulator.test_end_to_end import SCOPE, make_runtime
from tests.emulator.test_events import ITEM_WRITE, event

RUNNING_VM = rid(DR_SUB, DR_RG, "Microsoft.Compute", "virtualMachines", "vm-old-01")


def reprotect_vm_old(arm: ArmEmulator) -> str:
    """Turn the emulator's vm-old-01 into a reprotected item; returns the item id."""
    dr_vnet = next(doc for k, doc in arm.resources.items() if k.endswith("/virtualnetworks/vnet-dr-centralus"))
    running_nic = nic(DR_SUB, DR_RG, "vm-old-01-nic-dr", "centralus", f"{dr_vnet['id']}/subnets/snet-app",
                      "10.20.2.10", RUNNING_VM)
    arm.add_all([running_nic, vm(DR_SUB, DR_RG, "vm-old-01", "centralus", [running_nic["id"]])])
    item: dict[str, Any] = next(doc for k, doc in arm.resources.items()
                                if k.endswith("/replicationprotecteditems/vm-old-01-item"))
    props, details = item["properties"], item["properties"]["providerSpecificDetails"]
    assert props["activeLocation"] == "Recovery"
    props["protectionState"] = "Protected"
    details.update(recoveryFabricObjectId=RUNNING_VM.lower(), initialPrimaryFabricLocation="eastus",
                   initialRecoveryFabricLocation="centralus")
    prod_vnet = rid(SUB, RG, "Microsoft.Network", "virtualNetworks", "vnet-prod-eastus")
    for entry in details["vmNics"]:
        entry["vMNetworkName"] = prod_vnet
        for config in entry["ipConfigs"]:
            config["subnetName"] = "snet-web"
    arm.add(item)
    return str(item["id"])


def test_a_reprotected_vm_is_scanned_fixed_in_the_recovery_region_and_rescanned_compliant(
        estate_arm: ArmEmulator, tmp_path: Path) -> None:
    reprotect_vm_old(estate_arm)
    runtime, _ = make_runtime(estate_arm, tmp_path)
    first = runtime.run(SCOPE, trigger="cli", actor="test")
    report = next(r for r in first.plan.reports if r.name == "vm-old-01")
    assert report.direction == "failback" and report.status == DRIFT
    assert (report.source_region, report.target_region) == ("centralus", "eastus")
    denied = {(f.side, f.destination, f.resource_id.rsplit("/", 1)[-1]) for f in report.findings
              if f.severity == "error"}
    assert denied == {("source", "Storage.CentralUS", "nsg-dr-app")}
    mine = [c for c in first.plan.changes if any(f.vm_id.lower() == RUNNING_VM.lower() for f in c.fixes)]
    assert [c.resource_id.rsplit("/", 1)[-1] for c in mine] == ["nsg-dr-app"]
    assert "10.20.2.0/24" in mine[0].properties["sourceAddressPrefixes"]

    rescan = make_runtime(estate_arm, tmp_path, apply=False)[0].run(SCOPE, trigger="cli", actor="test")
    again = next(r for r in rescan.plan.reports if r.name == "vm-old-01")
    assert again.status == COMPLIANT and again.direction == "failback"


def test_a_protected_item_event_evaluates_the_reprotected_vm_in_reverse(app_env: ArmEmulator) -> None:
    item_id = reprotect_vm_old(app_env)
    summary = triggers.on_event(event(item_id, ITEM_WRITE))
    assert summary["vms"] == 1 and summary["drift"] == 1, summary
    assert app_env.count("GET", r"/replicationProtectedItems/vm-old-01-item$") == 1
