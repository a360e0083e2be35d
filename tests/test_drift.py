"""Findings per VM: each side, each destination, each NSG / route table on the path."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from asr_remediate.config import Settings
from asr_remediate.drift import COMPLIANT, DRIFT, SKIPPED, UNKNOWN, VmReport
from examples.estate_builder import nic, protected_item, rid, vm
from tests.scenario import RG, SUB, Scenario, allow, deny, full_tags, scan_resources

SOURCE_NEEDS = {"Storage.EastUS", "AzureActiveDirectory", "EventHub.CentralUS", "AzureSiteRecovery"}
TARGET_NEEDS = {"Storage.CentralUS", "AzureActiveDirectory", "EventHub.EastUS", "AzureSiteRecovery"}


def only(scenario: Scenario, settings: Settings | None = None) -> VmReport:
    plan = scan_resources(scenario.resources(), settings)
    assert len(plan.reports) == 1
    return plan.reports[0]


def errors(report: VmReport, side: str | None = None) -> dict[str, set[str]]:
    """destination → kinds of error findings."""
    out: dict[str, set[str]] = {}
    for f in report.findings:
        if f.severity == "error" and (side is None or f.side == side):
            out.setdefault(f.destination, set()).add(f.kind)
    return out


def test_default_rules_only_is_compliant_without_findings() -> None:
    report = only(Scenario())
    assert report.status == COMPLIANT
    assert report.findings == ()


def test_deny_internet_blocks_every_source_destination_and_names_the_rule() -> None:
    report = only(Scenario(subnet_rules=[deny(4000)]))
    assert report.status == DRIFT
    assert set(errors(report, "source")) == SOURCE_NEEDS
    assert errors(report, "target") == {}
    for f in report.findings:
        assert f.rule_name == "deny-4000"
        assert "nsg-subnet" in f.message and "priority 4000" in f.message


def test_target_side_uses_recovery_subnet_nsg_and_mirrored_regions() -> None:
    report = only(Scenario(recovery_rules=[deny(200, "*")]))
    assert set(errors(report, "target")) == TARGET_NEEDS
    assert errors(report, "source") == {}


def test_recovery_nic_nsg_is_evaluated_too() -> None:
    report = only(Scenario(recovery_nic_rules=[deny(300, "Storage.CentralUS")]))
    assert set(errors(report, "target")) == {"Storage.CentralUS"}
    assert [f.resource_id.rsplit("/", 1)[-1] for f in report.findings] == ["nsg-dr-nic"]


def test_nic_and_subnet_nsgs_must_both_allow() -> None:
    # NIC NSG allows everything ASR needs; the subnet NSG still denies Storage → drift on the subnet NSG only.
    nic_rules = [allow(100 + i, tag) for i, tag in enumerate(sorted(SOURCE_NEEDS))] + [deny(4000, "*")]
    report = only(Scenario(nic_rules=nic_rules, subnet_rules=[deny(500, "Storage.EastUS")]))
    assert errors(report, "source") == {"Storage.EastUS": {"nsg-deny"}}
    (finding,) = [f for f in report.findings if f.severity == "error"]
    assert finding.resource_id.endswith("nsg-subnet")


def test_allow_rules_before_a_deny_are_compliant() -> None:
    rules = [allow(100 + i, tag) for i, tag in enumerate(sorted(SOURCE_NEEDS))] + [deny(4000, "*")]
    assert only(Scenario(subnet_rules=rules)).status == COMPLIANT


def test_top_level_storage_allow_covers_regional_requirement() -> None:
    rules = [allow(100, "Storage"), deny(4000, "Storage.EastUS")]
    assert "Storage.EastUS" not in errors(only(Scenario(subnet_rules=rules)))


def test_partial_denial_is_reported_with_the_share() -> None:
    storage = full_tags().prefixes("Storage.EastUS")
    assert storage is not None
    first = storage.to_cidrs()[0]
    report = only(Scenario(subnet_rules=[deny(300, first)]))
    (finding,) = [f for f in report.findings if f.severity == "error"]
    assert finding.destination == "Storage.EastUS"
    assert "all of" not in finding.message
    assert "% of" in finding.message or "addresses of" in finding.message


def test_deny_on_other_port_or_udp_does_not_matter() -> None:
    rules = [deny(100, "*", port="80"), deny(110, "*", protocol="Udp"), deny(120, "*", direction="Inbound")]
    assert only(Scenario(subnet_rules=rules)).status == COMPLIANT


def test_unknown_tag_gives_unknown_not_a_guess() -> None:
    report = only(Scenario(subnet_rules=[deny(100, "NoSuchTag.EastUS")]))
    assert report.status == UNKNOWN
    assert {f.kind for f in report.findings} == {"unknown"}
    assert all("NoSuchTag.EastUS" in f.message for f in report.findings)


def test_forced_tunnel_route_is_route_drift_per_destination() -> None:
    report = only(Scenario(routes=[("default", "0.0.0.0/0", "VirtualNetworkGateway")]))
    assert errors(report, "source") == {d: {"route-next-hop"} for d in SOURCE_NEEDS}
    assert all("VirtualNetworkGateway" in f.message for f in report.findings if f.severity == "error")


def test_virtual_appliance_route_is_a_warning_naming_the_urls() -> None:
    report = only(Scenario(routes=[("fw", "0.0.0.0/0", "VirtualAppliance", "10.1.0.4")], disable_bgp=True))
    assert report.status == COMPLIANT
    warnings = [f for f in report.findings if f.kind == "route-appliance"]
    assert {f.destination for f in warnings} == SOURCE_NEEDS
    assert all("login.microsoftonline.com" in f.message and "10.1.0.4" in f.message for f in warnings)


def test_storage_service_endpoint_wins_over_forced_tunnel() -> None:
    report = only(Scenario(routes=[("default", "0.0.0.0/0", "VirtualNetworkGateway")],
                           service_endpoints=[("Microsoft.Storage", ["eastus", "westus"])]))
    assert set(errors(report, "source")) == SOURCE_NEEDS - {"Storage.EastUS"}


def test_gateway_with_propagation_warns_about_bgp_and_disabled_propagation_does_not() -> None:
    noisy = only(Scenario(gateway=True, routes=[]))
    assert [f.kind for f in noisy.findings] == ["bgp-propagation"]
    assert noisy.status == COMPLIANT
    quiet = only(Scenario(gateway=True, routes=[], disable_bgp=True))
    assert quiet.findings == ()


def effective_routes(resources: list[dict[str, Any]], *entries: tuple[str, str]) -> list[dict[str, Any]]:
    """Add the NIC's effective route table (as ASR_READ_EFFECTIVE_ROUTES / export write it) with BGP routes."""
    nic_id = next(r["id"] for r in resources if r["type"].endswith("networkinterfaces"))
    value = [{"source": "Default", "state": "Active", "addressPrefix": ["0.0.0.0/0"], "nextHopType": "Internet",
              "nextHopIpAddress": []}]
    value += [{"source": "VirtualNetworkGateway", "state": "Active", "addressPrefix": [prefix], "nextHopType": hop,
               "nextHopIpAddress": ["10.1.255.4"]} for prefix, hop in entries]
    return [*resources, {"id": f"{nic_id}/effectiveRouteTable",
                         "type": "Microsoft.Network/networkInterfaces/effectiveRouteTable",
                         "properties": {"value": value}}]


def test_read_effective_routes_replace_the_bgp_warning_with_a_verdict() -> None:
    clean = scan_resources(effective_routes(Scenario(gateway=True, routes=[]).resources())).reports[0]
    assert clean.findings == ()
    tunnelled = effective_routes(Scenario(gateway=True, routes=[]).resources(), ("0.0.0.0/0", "VirtualNetworkGateway"))
    plan = scan_resources(tunnelled)
    report = plan.reports[0]
    assert errors(report, "source") == {d: {"route-next-hop"} for d in SOURCE_NEEDS}
    assert all("BGP route 0.0.0.0/0" in f.message and f.fixable for f in report.findings if f.severity == "error")
    # Service-tag routes (user routes, longer prefixes) beat the learned default route: the plan fixes it.
    assert {c.properties["addressPrefix"] for c in plan.changes} == SOURCE_NEEDS


def test_bgp_route_without_a_route_table_is_not_fixable() -> None:
    resources = effective_routes(Scenario(gateway=True).resources(), ("0.0.0.0/0", "VirtualNetworkGateway"))
    plan = scan_resources(resources)
    assert plan.changes == ()
    assert all(not f.fixable and "no route table" in f.message for f in plan.reports[0].findings
               if f.severity == "error")


def test_opt_out_tag_and_failed_over_vms_are_skipped() -> None:
    assert only(Scenario(subnet_rules=[deny(100)], vm_tags={"asr-remediate-opt-out": "true"})).status == SKIPPED
    failed_over = only(Scenario(subnet_rules=[deny(100)], active_location="Recovery",
                                protection_state="UnplannedFailoverCommitted"))
    assert failed_over.status == SKIPPED
    assert "failed over" in failed_over.findings[0].message


def test_optional_destinations_follow_settings_and_encryption() -> None:
    rules = [deny(4000, "*")]
    plain = errors(only(Scenario(subnet_rules=rules, encryption="OneStepADE")), "source")
    assert set(plain) == SOURCE_NEEDS
    settings = Settings(include_key_vault=True, include_guest_management=True)
    encrypted = errors(only(Scenario(subnet_rules=rules, encryption="OneStepADE"), settings), "source")
    assert set(encrypted) == SOURCE_NEEDS | {"AzureKeyVault.EastUS", "GuestAndHybridManagement"}
    unencrypted = errors(only(Scenario(subnet_rules=rules), settings), "source")
    assert set(unencrypted) == SOURCE_NEEDS | {"GuestAndHybridManagement"}


def test_seed_2017_profile_requires_the_seed_ips_of_the_other_region() -> None:
    report = only(Scenario(subnet_rules=[deny(4000, "*")]), Settings(profile="seed-2017"))
    source = set(errors(report, "source"))
    assert source == {"Storage.EastUS", "AzureActiveDirectory", "SiteRecovery-IPs-2017.centralus"}


def test_legacy_seed_ip_rules_are_recognised() -> None:
    rules = [allow(110, ["40.69.144.231", "40.69.167.116", "52.165.34.144"]), deny(120, "*")]
    report = only(Scenario(subnet_rules=rules))
    legacy = [f for f in report.findings if f.kind == "legacy-ip-rule"]
    assert len(legacy) == 1 and legacy[0].rule_name == "allow-110"
    assert "AzureSiteRecovery service tag" in legacy[0].message


def test_missing_resources_make_the_vm_unknown() -> None:
    resources = [r for r in Scenario().resources() if not r["type"].endswith("networkinterfaces")]
    report = scan_resources(resources).reports[0]
    assert report.status == UNKNOWN
    assert any(f.kind == "missing" and "NIC" in f.message for f in report.findings)


def test_region_without_tags_is_unknown() -> None:
    resources = Scenario().resources()
    item = resources[-1]
    item["properties"]["providerSpecificDetails"]["recoveryFabricLocation"] = "marsnorth"
    report = scan_resources(resources).reports[0]
    assert report.status == UNKNOWN
    assert any("marsnorth" in f.message for f in report.findings)


def test_fabric_object_id_casing_does_not_matter() -> None:
    resources = Scenario(subnet_rules=[deny(4000)]).resources()
    item = resources[-1]
    item["properties"]["providerSpecificDetails"]["fabricObjectId"] = item["properties"]["providerSpecificDetails"][
        "fabricObjectId"].upper()
    report = scan_resources(resources).reports[0]
    assert report.name == "vm1" and report.status == DRIFT


def test_report_is_stable_across_runs() -> None:
    resources = Scenario(subnet_rules=[deny(4000)], routes=[("d", "0.0.0.0/0", "None")]).resources()
    first, second = scan_resources(resources), scan_resources(list(reversed(resources)))
    assert [replace(r) for r in first.reports] == [replace(r) for r in second.reports]
    assert first.changes == second.changes


def test_dual_stack_vnets_are_evaluated_on_their_ipv4_space() -> None:
    # (A 0.0.0.0/0 UDR would make VirtualNetwork everything and the 'deny Internet' match nothing: see the tests of
    # the VirtualNetwork tag; an on-premises UDR keeps the deny in force.)
    resources = Scenario(subnet_rules=[deny(4000)], routes=[("d", "192.168.0.0/16", "VirtualAppliance", "10.1.0.4")],
                         disable_bgp=True).resources()
    for resource in resources:
        if resource["type"].endswith("virtualnetworks"):
            resource["properties"]["addressSpace"]["addressPrefixes"].append("fd00:db8:deca::/48")
            subnet = resource["properties"]["subnets"][0]["properties"]
            subnet["addressPrefixes"] = [subnet.pop("addressPrefix"), "fd00:db8:deca::/64"]
    report = scan_resources(resources).reports[0]
    assert report.status == DRIFT
    assert set(errors(report, "source")) == SOURCE_NEEDS


def test_garbage_address_space_makes_the_vm_unknown_naming_the_vnet_and_the_reason() -> None:
    resources = Scenario().resources()
    vnet = next(r for r in resources if r["type"].endswith("virtualnetworks"))
    vnet["properties"]["addressSpace"]["addressPrefixes"] = ["10.0.0.0/33"]
    report = scan_resources(resources).reports[0]
    assert report.status == UNKNOWN
    (finding,) = [f for f in report.findings if f.kind == "unknown"]
    assert finding.resource_id == vnet["id"] and finding.side == "source"
    assert finding.message == (f"VNet {vnet['id']} is unreadable: the address space has an address prefix that is "
                               "not an IP prefix: '10.0.0.0/33'")


# --- resources the inventory holds but that do not parse -----------------------------------------------------------


def with_second_vm(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """vm2 in the same source subnet as vm1 but without vm1's NIC NSG, replicating to the same recovery subnet."""
    subnet_id = next(r for r in resources if r["id"].endswith("/vnet-src"))["id"] + "/subnets/snet"
    dr_vnet = next(r for r in resources if r["id"].endswith("/vnet-dr"))["id"]
    vm_id = rid(SUB, RG, "Microsoft.Compute", "virtualMachines", "vm2")
    the_nic = nic(SUB, RG, "vm2-nic", "eastus", subnet_id, "10.1.1.5", vm_id)
    return [*resources, the_nic, vm(SUB, RG, "vm2", "eastus", [the_nic["id"]]),
            protected_item(SUB, "vault", vm_id, "vm2", "eastus", "centralus", the_nic["id"], dr_vnet, "snet-dr")]


def by_name(plan: Any) -> dict[str, VmReport]:
    return {r.name: r for r in plan.reports}


def test_an_unreadable_nsg_makes_the_vms_behind_it_unknown_and_the_others_are_evaluated() -> None:
    resources = with_second_vm(Scenario(nic_rules=[deny(200, "Storage.EastUS")]).resources())
    nic_nsg = next(r for r in resources if r["id"].endswith("/nsg-nic"))
    nic_nsg["properties"]["securityRules"][0]["properties"]["priority"] = "abc"
    reports = by_name(scan_resources(resources))
    assert reports["vm2"].status == COMPLIANT and reports["vm2"].findings == ()
    assert reports["vm1"].status == UNKNOWN
    (finding,) = reports["vm1"].findings
    assert (finding.kind, finding.severity, finding.side, finding.resource_id) == ("unknown", "warning", "source",
                                                                                 nic_nsg["id"])
    assert finding.message == (f"NIC NSG {nic_nsg['id']} is unreadable: security rule 'deny-200' has no valid "
                               "priority: 'abc' is not a whole number")
    assert not finding.fixable


def test_an_unreadable_nsg_next_to_a_deny_leaves_the_drift_and_its_fix() -> None:
    """As with a missing NSG: what can be read is evaluated; the VM is drift (an error wins over unknown)."""
    resources = Scenario(nic_rules=[deny(200)], subnet_rules=[deny(4000)]).resources()
    nic_nsg = next(r for r in resources if r["id"].endswith("/nsg-nic"))
    nic_nsg["properties"]["securityRules"][0]["properties"]["priority"] = float("inf")
    plan = scan_resources(resources)
    (report,) = plan.reports
    assert report.status == DRIFT and set(errors(report, "source")) == SOURCE_NEEDS
    assert [f.resource_id for f in report.findings if f.kind == "unknown"] == [nic_nsg["id"]]
    assert plan.changes and all(c.resource_id.endswith("/nsg-subnet") for c in plan.changes)


def test_an_unreadable_route_table_is_unknown_per_destination() -> None:
    resources = Scenario(routes=[("typo", "10.0.0.0/33", "None")]).resources()
    table = next(r for r in resources if r["type"].endswith("routetables"))
    report = scan_resources(resources).reports[0]
    assert report.status == UNKNOWN
    unknown = [f for f in report.findings if f.kind == "unknown"]
    assert {f.destination for f in unknown} == SOURCE_NEEDS
    assert all(f.resource_id == table["id"] and "route 'typo': address prefix '10.0.0.0/33' is not an IP" in f.message
               and f.message.startswith(f"route table {table['id']} is unreadable: ") for f in unknown)


def test_an_unreadable_recovery_vnet_or_recovery_nsg_is_unknown_on_the_target_side() -> None:
    resources = Scenario(recovery_nic_rules=[deny(300, "*")]).resources()
    recovery_nsg = next(r for r in resources if r["id"].endswith("/nsg-dr-nic"))
    recovery_nsg["properties"]["securityRules"] = "deny-300"
    (finding,) = scan_resources(resources).reports[0].findings
    assert (finding.side, finding.kind, finding.resource_id) == ("target", "unknown", recovery_nsg["id"])
    assert "securityRules is 'deny-300', not a list" in finding.message
    resources = Scenario().resources()
    dr_vnet = next(r for r in resources if r["id"].endswith("/vnet-dr"))
    dr_vnet["properties"]["subnets"][0]["properties"]["networkSecurityGroup"] = "nsg-dr"  # a bare name, not {"id"}
    report = scan_resources(resources).reports[0]
    (finding,) = report.findings
    assert report.status == UNKNOWN
    assert (finding.side, finding.kind, finding.resource_id) == ("target", "unknown", dr_vnet["id"])
    assert "'nsg-dr' is not a resource reference" in finding.message


def test_an_unreadable_vm_or_protected_item_is_unknown_without_guessing_the_rest() -> None:
    resources = with_second_vm(Scenario(subnet_rules=[deny(4000)]).resources())
    vm1 = next(r for r in resources if r["id"].endswith("/virtualMachines/vm1"))
    vm1["properties"]["networkProfile"]["networkInterfaces"] = [7]  # its opt-out tag cannot be trusted either
    reports = by_name(scan_resources(resources))
    assert reports["vm2"].status == DRIFT
    (finding,) = reports["vm1"].findings
    assert reports["vm1"].status == UNKNOWN and finding.resource_id == vm1["id"]
    assert finding.message.startswith(f"VM {vm1['id']} is unreadable: ")

    resources = with_second_vm(Scenario(subnet_rules=[deny(4000)]).resources())
    item = next(r for r in resources if r["type"].endswith("replicationprotecteditems")
                and r["properties"]["friendlyName"] == "vm1")
    item["properties"]["providerSpecificDetails"]["vmNics"] = {"not": "a list"}
    reports = by_name(scan_resources(resources))
    assert reports["vm2"].status == DRIFT and reports["vm1"].status == UNKNOWN
    (finding,) = reports["vm1"].findings
    assert finding.resource_id == item["id"] and finding.message.startswith(f"protected item {item['id']} is "
                                                                            "unreadable: ")
    assert reports["vm1"].id.endswith("/virtualMachines/vm1")


def test_a_resource_that_is_simply_absent_is_still_missing() -> None:
    resources = [r for r in Scenario(nic_rules=[]).resources() if not r["id"].endswith("/nsg-nic")]
    (finding,) = scan_resources(resources).reports[0].findings
    assert finding.kind == "missing" and "is not in the inventory" in finding.message
