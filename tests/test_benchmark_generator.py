"""The benchmark estate generator: deterministic, parseable, and a scan of it shows every kind of status (and every
Azure Firewall outcome); the live benchmark's request accounting.

Small estates (50 to 1,000 VMs, seconds): the timed benchmarks are not part of the test suite (``make bench``).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from asr_remediate.config import Settings
from asr_remediate.drift import COMPLIANT, DRIFT, SKIPPED, UNKNOWN
from asr_remediate.engine import scan
from asr_remediate.estate import build_estate
from asr_remediate.firewall_paths import firewalls_on_paths, policy_chain
from asr_remediate.health import CONFIRMED, OTHER, UNEXPLAINED
from asr_remediate.model import key
from benchmarks.generate import generate, region_pairs
from benchmarks.live import path_firewall_policies, requests_summary
from tests import tagdata

N = 50


def test_generator_is_deterministic_per_seed() -> None:
    tags = tagdata.full()
    first = generate(N, seed=7, tags=tags)
    again = generate(N, seed=7, tags=tags)
    other = generate(N, seed=8, tags=tags)
    assert json.dumps(first.resources, sort_keys=True) == json.dumps(again.resources, sort_keys=True)
    assert first.subscriptions == again.subscriptions
    assert json.dumps(first.resources, sort_keys=True) != json.dumps(other.resources, sort_keys=True)


def test_generated_estate_parses_and_its_scan_mixes_statuses() -> None:
    tags = tagdata.full()
    synthetic = generate(N, tags=tags)
    estate = build_estate(synthetic.resources)
    assert len(estate.protected_items) == len(estate.vms) == N
    assert synthetic.counts["microsoft.compute/virtualmachines"] == N
    assert 0 < synthetic.max_rules_per_nsg <= 200
    pairs = set(region_pairs(tags))
    assert {(i.source_region, i.target_region) for i in estate.protected_items} <= pairs | {(b, a) for a, b in pairs}
    plan = scan(estate, tags, Settings())
    statuses = Counter(r.status for r in plan.reports)
    assert statuses[COMPLIANT] and statuses[DRIFT], statuses
    assert set(statuses) <= {COMPLIANT, DRIFT, UNKNOWN, SKIPPED}
    kinds = {f.kind for r in plan.reports for f in r.findings}
    assert {"nsg-deny", "route-appliance"} <= kinds, kinds
    assert plan.changes


def test_one_workload_subscription_per_200_vms_and_a_dr_subscription_per_region_pair() -> None:
    synthetic = generate(450, tags=tagdata.full())
    workload = {r["subscriptionId"] for r in synthetic.resources
                if r["type"] == "microsoft.compute/virtualmachines"}
    vaults = {r["subscriptionId"] for r in synthetic.resources if r["type"].startswith("microsoft.recoveryservices/")}
    assert len(workload) == 3
    assert vaults and not vaults & workload
    # The rule collection groups are ARM's list answer, not Resource Graph rows: no subscriptionId column.
    rows = [r for r in synthetic.resources if not r["type"].endswith("/ruleCollectionGroups")]
    assert set(synthetic.subscriptions) == {r["subscriptionId"] for r in rows}
    assert {r["id"].split("/")[2] for r in synthetic.resources} <= set(synthetic.subscriptions)


def test_the_synthetic_estate_carries_asr_health_errors_of_each_kind() -> None:
    """Issue 15: some VMs' connectivity errors are confirmed by the engine, some unexplained, some VMs have drift ASR
    has not reported, and some carry the 161011 warning; adding them changed nothing else of the estate."""
    tags = tagdata.full()
    synthetic = generate(400, tags=tags)
    plan = scan(build_estate(synthetic.resources), tags, Settings())
    checks = [r.asr_health for r in plan.reports if r.asr_health is not None]
    verdicts = Counter(e.verdict for c in checks for e in c.errors)
    assert verdicts[CONFIRMED] and verdicts[UNEXPLAINED] and verdicts[OTHER], verdicts
    assert sum(1 for c in checks if c.not_yet_reported) > verdicts[CONFIRMED]
    stripped = [r for r in synthetic.resources if not r["type"].endswith("/replicationprotecteditems")]
    assert all("healthErrors" not in r.get("properties", {}) for r in stripped)


def _firewall_ips(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["properties"]["privateIPAddress"]: r for r in resources
            if r["type"] == "microsoft.network/azurefirewalls" for c in r["properties"]["ipConfigurations"]}


def _firewall_routed_vms(resources: list[dict[str, Any]]) -> set[str]:
    """VMs a source NIC subnet or recovery subnet of which sends 0.0.0.0/0 to an Azure Firewall's private IP, read
    from the ARM JSON itself (not through the engine)."""
    by_id = {r["id"].lower(): r for r in resources}
    subnets = {s["id"].lower(): s for r in resources if r["type"] == "microsoft.network/virtualnetworks"
               for s in r["properties"]["subnets"]}
    firewall_ips = _firewall_ips(resources)

    def to_firewall(subnet_id: str) -> bool:
        table_id = ((subnets.get(subnet_id.lower()) or {}).get("properties", {}).get("routeTable") or {}).get("id")
        table = by_id.get(str(table_id).lower()) or {}
        return any(route["properties"]["addressPrefix"] == "0.0.0.0/0"
                   and route["properties"]["nextHopType"] == "VirtualAppliance"
                   and route["properties"].get("nextHopIpAddress") in firewall_ips
                   for route in table.get("properties", {}).get("routes", []))

    routed: set[str] = set()
    for item in resources:
        if not item["type"].endswith("/replicationprotecteditems"):
            continue
        details = item["properties"]["providerSpecificDetails"]
        for vm_nic in details["vmNics"]:
            nic = by_id.get(vm_nic["sourceNicArmId"].lower())
            source = [c["properties"]["subnet"]["id"] for c in (nic or {}).get("properties", {}).get(
                "ipConfigurations", [])]
            recovery = [f"{vm_nic['recoveryVMNetworkId']}/subnets/{c['recoverySubnetName']}"
                        for c in vm_nic["ipConfigs"]]
            if any(to_firewall(s) for s in source + recovery):
                routed.add(details["fabricObjectId"].lower())
    return routed


def test_about_a_fifth_of_the_vms_route_to_a_hub_azure_firewall_and_its_private_ip() -> None:
    """Issue 10: a seeded share of the subnets (source and recovery) sends 0.0.0.0/0 to its hub's Azure Firewall; every
    VirtualAppliance route goes to a firewall's private IP in the table's own region or to a hub's third-party
    appliance (snet-nva), so the engine still sees both kinds."""
    synthetic = generate(1000, tags=tagdata.full())
    resources = synthetic.resources
    share = len(_firewall_routed_vms(resources)) / synthetic.vm_count
    assert 0.12 <= share <= 0.35, share
    firewalls = _firewall_ips(resources)
    nva_ips = {s["properties"]["addressPrefix"].rsplit(".", 1)[0] + ".4" for r in resources
               if r["type"] == "microsoft.network/virtualnetworks" for s in r["properties"]["subnets"]
               if s["name"] == "snet-nva"}
    hops: Counter[str] = Counter()
    for table in (r for r in resources if r["type"] == "microsoft.network/routetables"):
        for route in table["properties"]["routes"]:
            if route["properties"]["nextHopType"] != "VirtualAppliance":
                continue
            ip = route["properties"]["nextHopIpAddress"]
            if ip in firewalls:
                assert firewalls[ip]["location"] == table["location"], (table["name"], ip)
                hops["firewall"] += 1
            else:
                assert ip in nva_ips, (table["name"], ip)
                hops["nva"] += 1
    assert hops["firewall"] and hops["nva"], hops
    for firewall in firewalls.values():
        [config] = firewall["properties"]["ipConfigurations"]
        assert config["properties"]["subnet"]["id"].endswith("/subnets/AzureFirewallSubnet")


def test_firewall_policies_some_with_a_parent_hold_their_rule_collection_groups_as_export_writes_them() -> None:
    """The groups are resources of their own (``<policy>/ruleCollectionGroups/<name>``, as ``export`` writes what ARM's
    list returned), each policy's references resolve to them, every basePolicy and IP group referenced is generated."""
    resources = generate(1000, tags=tagdata.full()).resources
    ids = {r["id"].lower() for r in resources}
    policies = [r for r in resources if r["type"] == "microsoft.network/firewallpolicies"]
    groups = [r for r in resources if r["type"] == "Microsoft.Network/firewallPolicies/ruleCollectionGroups"]
    parents = {p["properties"]["basePolicy"]["id"].lower() for p in policies if "basePolicy" in p["properties"]}
    assert parents and parents <= ids and len(parents) < len(policies)
    for policy in policies:
        refs = {g["id"].lower() for g in policy["properties"]["ruleCollectionGroups"]}
        assert refs and refs == {g["id"].lower() for g in groups if g["id"].lower().startswith(
            policy["id"].lower() + "/rulecollectiongroups/")}
    rules = [rule for g in groups for c in g["properties"]["ruleCollections"] for rule in c["rules"]]
    assert {r["ruleType"] for r in rules} == {"NetworkRule", "ApplicationRule", "NatRule"}
    assert {g.lower() for r in rules for g in r.get("sourceIpGroups", [])} <= ids
    assert any(r.get("webCategories") for r in rules)
    estate = build_estate(resources)
    assert not estate.unreadable and len(estate.rule_collection_groups) == len(groups)


def test_the_scan_meets_every_firewall_outcome() -> None:
    """Behind the firewalls: VMs allowed, denied by a rule of the attached policy, by the parent policy, by default,
    and unknown (a web-category application rule may or may not match ASR's names)."""
    tags = tagdata.full()
    resources = generate(1000, tags=tags).resources
    estate = build_estate(resources)
    plan = scan(estate, tags, Settings())
    on_firewall = [f for r in plan.reports for f in r.findings if key(f.resource_id) in estate.firewalls]
    denials = [f.message for f in on_firewall if f.kind == "firewall-deny"]
    assert any("(parent policy)" in m for m in denials)
    assert any("rule collection group rcg-spoke-egress" in m and "deny-storage-egress" in m for m in denials)
    assert any("the firewall denies by default" in m for m in denials)
    assert any(f.kind == "unknown" and "allow-web-categories" in f.message for f in on_firewall)
    reports = {key(r.id): r for r in plan.reports}
    assert any(reports[vm].status == COMPLIANT for vm in _firewall_routed_vms(resources))


def test_the_live_benchmark_expects_one_group_list_per_policy_on_a_path_as_the_inventory_reads_them() -> None:
    """benchmarks.live.path_firewall_policies (from the ARM JSON) is what asr_remediate.azure.firewalls lists: the
    policies of the firewalls on a replicated VM's path and their parents."""
    resources = generate(1000, tags=tagdata.full()).resources
    estate = build_estate(resources)
    expected = {p for f in firewalls_on_paths(estate) for p in policy_chain(estate, estate.firewalls[key(f)])}
    assert expected and path_firewall_policies(resources) == expected


def test_the_request_summary_counts_group_lists_and_policy_gets_apart_from_other_requests() -> None:
    """What the live verdict adds up: a list of a policy's groups and a policy GET have their own counts; a GET of
    one group (not made by a scan) stays an "other" request, so the verdict would fail on it."""
    policy = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/firewallPolicies/afwp-hub-eastus"
    summary = requests_summary([
        ("POST", "/providers/Microsoft.ResourceGraph/resources", 200, True),
        ("POST", "/providers/Microsoft.ResourceGraph/resources", 200, False),  # the same query's second page
        ("GET", "/subscriptions/s/providers/Microsoft.Network/locations/eastus/serviceTags", 200, True),
        ("GET", f"{policy}/ruleCollectionGroups", 200, True),
        ("GET", f"{policy}/ruleCollectionGroups", 200, True),
        ("GET", policy, 200, True),
        ("GET", f"{policy}/ruleCollectionGroups/rcg-platform", 200, True),
    ])
    assert (summary["arg_queries"], summary["arg_requests"], summary["service_tag_calls"], summary["rule_group_lists"],
            summary["rule_group_policies"], summary["policy_gets"], summary["other_requests"]) == (1, 2, 1, 2, 1, 1, 1)
    assert summary["other_paths"] == [f"GET {policy}/ruleCollectionGroups/rcg-platform"]
