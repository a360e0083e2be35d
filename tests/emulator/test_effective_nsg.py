"""Opt-in exactness (ASR_READ_EFFECTIVE_NSG): Azure's own expansion of VirtualNetwork per source NIC.

Source of the shape: the NetworkInterfaceEffectiveNSGList example of Azure/azure-rest-api-specs (Network
2025-05-01, copied to tests/data/arm): POST …/networkInterfaces/{nic}/effectiveNetworkSecurityGroups is a
long-running operation (202 + Location) whose result lists, per NSG association, the effective rules with
``expandedSourceAddressPrefix`` / ``expandedDestinationAddressPrefix`` — what the portal's "Effective security rules"
shows, VirtualNetwork included.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from asr_remediate.estate import build_estate, parse_effective_virtual_network
from examples.make_example_estate import SUB
from tests.emulator.arm_emulator import ArmEmulator
from tests.emulator.fixtures import load
from tests.emulator.test_end_to_end import SCOPE, make_runtime

EXAMPLE = "NetworkInterfaceEffectiveNSGList.json"


def example_value() -> list[dict[str, Any]]:
    return copy.deepcopy(load(EXAMPLE)["responses"]["200"]["body"]["value"])


def with_virtual_network(value: list[dict[str, Any]], expansion: list[str]) -> list[dict[str, Any]]:
    """The real example plus the AllowVnetOutBound default rule every NSG has, in the example's own shape (its
    AllowInternetOutBound entry), expanded to ``expansion``."""
    internet = next(r for r in value[0]["effectiveSecurityRules"] if r["name"].endswith("AllowInternetOutBound"))
    vnet_rule = {**internet, "name": "defaultSecurityRules/AllowVnetOutBound", "priority": 65000,
                 "sourceAddressPrefix": "VirtualNetwork", "destinationAddressPrefix": "VirtualNetwork",
                 "expandedSourceAddressPrefix": expansion, "expandedDestinationAddressPrefix": expansion}
    value[0]["effectiveSecurityRules"].append(vnet_rule)
    return value


def test_the_real_example_is_read_and_its_virtual_network_expansion_used() -> None:
    value = example_value()
    assert value[0]["association"]["networkManager"]  # the real shape, with an AVNM association
    # The example expands only Internet (AllowInternetOutBound): no VirtualNetwork expansion to use.
    assert parse_effective_virtual_network({"properties": {"value": value}}) is None
    expansion = ["10.0.0.0/16", "10.1.0.0/16", "0.0.0.0/0", "2603:1000::/40"]
    assert parse_effective_virtual_network({"properties": {"value": with_virtual_network(value, expansion)}}) == (
        "10.0.0.0/16", "10.1.0.0/16", "0.0.0.0/0")
    nic = "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/nic1"
    pseudo = {"id": f"{nic}/effectiveNetworkSecurityGroups",
              "type": "Microsoft.Network/networkInterfaces/effectiveNetworkSecurityGroups"}
    assert build_estate([{**pseudo, "properties": {"value": example_value()}}]).effective_virtual_networks == {}
    exact = build_estate([{**pseudo, "properties": {"value": with_virtual_network(example_value(), ["0.0.0.0/0"])}}])
    assert exact.effective_virtual_networks == {nic.lower(): ("0.0.0.0/0",)}
    broken = build_estate([{**pseudo, "properties": {"value": [{"effectiveSecurityRules": {"not": "a list"}}]}}])
    assert broken.read_errors[nic.lower() + "/effectivenetworksecuritygroups"].startswith("unreadable:")


def _nic(arm: ArmEmulator, name: str) -> str:
    return next(k for k in arm.resources if k.endswith(f"/{name}"))


def _source_denies(result: Any, vm: str) -> set[str]:
    report = next(r for r in result.plan.reports if r.name == vm)
    return {f.destination for f in report.findings if f.kind == "nsg-deny" and f.side == "source"}


def test_azures_expansion_decides_and_export_carries_it(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    """vm-app-01's subnet NSG denies Internet. If Azure says its VirtualNetwork is 0.0.0.0/0 (a default UDR, a
    learned default route), the deny matches nothing — the engine believes Azure's expansion over its own."""
    arm = estate_arm
    plain = make_runtime(arm, tmp_path, apply=False)[0].run(SCOPE, trigger="cli", actor="test")
    assert _source_denies(plain, "vm-app-01")  # the engine's own reading: the deny applies
    assert arm.count("POST", r"effectiveNetworkSecurityGroups") == 0  # opt-in only
    arm.effective_nsgs[_nic(arm, "vm-app-01-nic")] = with_virtual_network(example_value(), ["0.0.0.0/0"])
    runtime = make_runtime(arm, tmp_path, apply=False, read_effective_nsgs=True)[0]
    opted = runtime.run(SCOPE, trigger="cli", actor="test")
    assert _source_denies(opted, "vm-app-01") == set()
    source_nics = {key for key, doc in arm.resources.items() if key.endswith("-nic")}
    assert arm.count("POST", r"effectiveNetworkSecurityGroups") == len(source_nics)  # one per source NIC

    exported = runtime.collect(SCOPE)
    pseudo = [r for r in exported if r["type"].endswith("effectiveNetworkSecurityGroups")]
    assert len(pseudo) == len(source_nics)
    (tmp_path / "estate.json").write_text(json.dumps(exported))
    from asr_remediate.engine import scan

    offline = scan(build_estate(json.loads((tmp_path / "estate.json").read_text())), runtime.service_tags(SUB),
                   runtime.settings)
    assert [(r.name, r.status) for r in offline.reports] == [(r.name, r.status) for r in opted.plan.reports]


def test_a_nic_whose_rules_cannot_be_read_gets_a_warning_and_the_computed_tag(estate_arm: ArmEmulator,
                                                                             tmp_path: Path) -> None:
    """Like effective routes, effective security rules exist only for a NIC of a running VM."""
    arm = estate_arm
    vm = next(k for k in arm.resources if k.endswith("/virtualmachines/vm-app-01"))
    arm.resources[vm]["properties"]["extended"] = {"instanceView": {"powerState": {"code": "PowerState/deallocated"}}}
    result = make_runtime(arm, tmp_path, apply=False, read_effective_nsgs=True)[0].run(SCOPE, trigger="cli",
                                                                                         actor="test")
    report = next(r for r in result.plan.reports if r.name == "vm-app-01")
    (warning,) = [f for f in report.findings if f.kind == "effective-nsg"]
    assert "could not be read" in warning.message and "running" in warning.message
    assert _source_denies(result, "vm-app-01")  # evaluated with the engine's own VirtualNetwork
    others = [r for r in result.plan.reports if r.name != "vm-app-01"]
    assert not any(f.kind == "effective-nsg" for r in others for f in r.findings)  # read, nothing to warn about
