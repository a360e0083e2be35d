"""A hub Azure Firewall in a connectivity subscription that neither the scanned subscriptions nor the protected items
name (Cloud Adoption Framework hub and spoke): a spoke's VirtualAppliance next hop that no firewall read so far holds
costs one more Resource Graph query (firewalls, Firewall Policies, IP groups) over the rest of ASR_SUBSCRIPTIONS, and
the VM gets that firewall's verdict instead of the appliance warning. Real SDK clients against the HTTPS ARM emulator.

Sources: the firewall's private IP is ``ipConfigurations[].privateIPAddress`` (AzureFirewallGet.json, azure-rest-api-
specs Microsoft.Network 2025-05-01); the three types are tracked resources of Resource Graph's ``resources`` table, its
rule collection groups are not (learn.microsoft.com/azure/governance/resource-graph/reference/supported-tables-
resources; README, *Inventory decision*); rules name IP groups by id in ``sourceIpGroups`` / ``destinationIpGroups``
(FirewallPolicyRuleCollectionGroupWithIpGroupsPut.json, same spec).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from asr_remediate import cli
from asr_remediate.azure.inventory import FIREWALL_RESOURCE_TYPES, FIREWALL_RESOURCES_QUERY, NETWORK_RESOURCES_QUERY
from asr_remediate.azure.network import NetworkWriter
from asr_remediate.config import Settings
from asr_remediate.drift import DRIFT
from asr_remediate.runtime import Runtime, Scope
from examples.estate_builder import (
    azure_firewall,
    firewall_policy,
    ip_group,
    network_rule,
    route_table,
    rule_collection,
    rule_collection_group,
    vnet,
)
from tests.emulator.arm_emulator import ArmEmulator, parse_query
from tests.emulator.fixtures import FakeCredential, FakeSleep
from tests.emulator.test_firewall_inventory import TAGS_FILE, seeded
from tests.scenario import SUB, Scenario

CONNECTIVITY = "00000000-0000-0000-0000-0000000000cc"  # in ASR_SUBSCRIPTIONS, named by no protected item
PLATFORM = "00000000-0000-0000-0000-0000000000dd"  # outside ASR_SUBSCRIPTIONS
HUB_RG = "rg-connectivity"
FW_IP = "10.100.1.4"
ARG = r"/providers/Microsoft\.ResourceGraph/resources$"


def _id(sub: str, kind: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{HUB_RG}/providers/Microsoft.Network/{kind}/{name}"


def connectivity_hub(*, spoke_hop: str = FW_IP, forced_tunnelling: bool = False) -> list[dict[str, Any]]:
    """The spoke VM in SUB routes 0.0.0.0/0 to ``spoke_hop``; the hub in CONNECTIVITY: its VNet, a firewall at FW_IP
    whose policy allows AAD from an IP group of the spokes (in CONNECTIVITY), Storage from an IP group in PLATFORM
    (outside ASR_SUBSCRIPTIONS), denies the rest by default; an IP group no rule names; a second firewall elsewhere.
    The hub VNet's AzureFirewallSubnet routes 0.0.0.0/0 to the VPN gateway (on-premises), its
    AzureFirewallManagementSubnet to the Internet, another subnet of it has a route table of its own; another VNet.
    ``forced_tunnelling``: the firewall has a management IP configuration."""
    spokes = ip_group(CONNECTIVITY, HUB_RG, "ipg-spokes", "eastus", ["10.1.0.0/16"])
    unused = ip_group(CONNECTIVITY, HUB_RG, "ipg-unused", "eastus", ["192.168.0.0/16"])
    foreign = _id(PLATFORM, "ipGroups", "ipg-platform")
    policy = firewall_policy(CONNECTIVITY, HUB_RG, "hub-policy", "eastus", group_names=["spokes"])
    group = rule_collection_group(policy["id"], "spokes", 200, [rule_collection("egress", 300, "Allow", [
        network_rule("aad", [], ["AzureActiveDirectory"], source_ip_groups=[spokes["id"]]),
        network_rule("storage", [], ["Storage"], source_ip_groups=[foreign])])])
    fw_routes = route_table(CONNECTIVITY, HUB_RG, "rt-fw", "eastus",
                            [("to-onprem", "0.0.0.0/0", "VirtualNetworkGateway")])
    mgmt_routes = route_table(CONNECTIVITY, HUB_RG, "rt-fw-mgmt", "eastus", [("internet", "0.0.0.0/0", "Internet")],
                              disable_bgp=True)
    shared_routes = route_table(CONNECTIVITY, HUB_RG, "rt-shared", "eastus", [("to-fw", "0.0.0.0/0", "VirtualAppliance",
                                                                                FW_IP)])
    hub_vnet = vnet(CONNECTIVITY, HUB_RG, "vnet-hub", "eastus", ["10.100.0.0/16"], [
        {"name": "AzureFirewallSubnet", "prefix": "10.100.1.0/26", "route_table": fw_routes["id"]},
        {"name": "AzureFirewallManagementSubnet", "prefix": "10.100.1.64/26", "route_table": mgmt_routes["id"]},
        {"name": "shared", "prefix": "10.100.2.0/24", "route_table": shared_routes["id"]}])
    other_vnet = vnet(CONNECTIVITY, HUB_RG, "vnet-other", "westeurope", ["10.200.0.0/16"],
                      [{"name": "AzureFirewallSubnet", "prefix": "10.200.1.0/26"}])
    firewall = azure_firewall(CONNECTIVITY, HUB_RG, "fw-hub", "eastus", f"{hub_vnet['id']}/subnets/AzureFirewallSubnet",
                              FW_IP, policy_id=policy["id"], forced_tunnelling=forced_tunnelling)
    other_policy = firewall_policy(CONNECTIVITY, HUB_RG, "other-policy", "westeurope", group_names=[])
    other = azure_firewall(CONNECTIVITY, HUB_RG, "fw-other", "westeurope",
                           f"{other_vnet['id']}/subnets/AzureFirewallSubnet", "10.200.1.4",
                           policy_id=other_policy["id"])
    spoke = Scenario(routes=[("to-hub", "0.0.0.0/0", "VirtualAppliance", spoke_hop)]).resources()
    return [*spoke, hub_vnet, fw_routes, mgmt_routes, shared_routes, other_vnet, firewall, policy, group, spokes,
            unused, other, other_policy]


def runtime(arm: ArmEmulator, subscriptions: tuple[str, ...],
            progress: list[str] | None = None) -> Runtime:
    settings = Settings(arm_endpoint=arm.base_url, arm_ca_bundle=arm.ca_path, subscriptions=subscriptions)
    sleep = FakeSleep()
    network = NetworkWriter(FakeCredential(), arm.base_url, ca_bundle=arm.ca_path, sleep=sleep, polling_interval=0,
                            retry_backoff_factor=0.01)
    sink = progress if progress is not None else []
    return Runtime(settings, FakeCredential(), network=network, progress=sink.append,
                   inventory_kwargs={"sleep": sleep})


def queries(arm: ArmEmulator) -> list[tuple[str, tuple[str, ...]]]:
    return [(p.body["query"], tuple(p.body["subscriptions"])) for p in arm.matching("POST", ARG)]


def kinds(result: Any) -> set[tuple[str, str]]:
    [report] = result.plan.reports
    return {(f.kind, f.destination) for f in report.findings if f.side == "source"}


def test_the_firewall_query_is_a_form_the_emulator_understands() -> None:
    parsed = parse_query(FIREWALL_RESOURCES_QUERY)
    assert parsed.table == "resources" and parsed.types == frozenset(FIREWALL_RESOURCE_TYPES) and parsed.ordered
    assert parsed.columns is not None and "id" in parsed.columns and "properties" in parsed.columns


def test_a_hub_firewall_in_a_connectivity_subscription_gives_its_verdict_with_one_more_query(arm: ArmEmulator) -> None:
    seeded(arm, connectivity_hub())
    progress: list[str] = []
    result = runtime(arm, (SUB, CONNECTIVITY), progress).run(Scope((SUB,)), trigger="cli", actor="test")
    found = kinds(result)
    assert not any(kind == "route-appliance" for kind, _ in found)  # a verdict, not "the appliance must allow …"
    assert ("firewall-deny", "EventHub.CentralUS") in found and ("firewall-deny", "AzureSiteRecovery") in found
    assert not any(kind == "firewall-deny" and dest == "AzureActiveDirectory" for kind, dest in found)  # IP group
    [storage] = [f for f in result.plan.reports[0].findings if f.kind == "unknown" and f.destination.startswith("Stor")]
    assert "ipg-platform is not in the inventory (its subscription was not read" in storage.message
    assert result.plan.reports[0].status == DRIFT
    sent = queries(arm)
    assert [q for q, _ in sent].count(FIREWALL_RESOURCES_QUERY) == 1 and len(sent) == 3  # exactly one extra query
    assert (FIREWALL_RESOURCES_QUERY, (CONNECTIVITY,)) in sent  # over the subscriptions not read yet only
    assert (NETWORK_RESOURCES_QUERY, (SUB,)) in sent
    assert arm.count("GET", r"/firewallPolicies/hub-policy/ruleCollectionGroups$") == 1
    assert arm.count("GET", r"/firewallPolicies/other-policy") == 0  # a firewall at no next hop is not kept
    assert any("fw-hub found in subscription" in m and CONNECTIVITY in m for m in progress)


def test_only_the_firewall_at_the_next_hop_its_policy_network_and_the_ip_groups_its_rules_name_are_kept(
        arm: ArmEmulator) -> None:
    """Its VNet and the route tables of the two subnets it names (AzureFirewallSubnet, AzureFirewallManagementSubnet),
    not the hub's other subnet's route table, nor the other VNet and firewall."""
    seeded(arm, connectivity_hub(forced_tunnelling=True))
    collected = runtime(arm, (SUB, CONNECTIVITY)).collect(Scope((SUB,)))
    from_hub = sorted(r["id"].rsplit("/", 1)[-1] for r in collected if CONNECTIVITY in r["id"])
    assert from_hub == ["fw-hub", "hub-policy", "ipg-spokes", "rt-fw", "rt-fw-mgmt", "spokes", "vnet-hub"]


def findings_of(result: Any) -> list[tuple[str, str, str, str, str, str]]:
    [report] = result.plan.reports
    return sorted((f.kind, f.severity, f.side, f.destination, f.resource_id, f.message) for f in report.findings)


def test_a_forced_tunnelling_firewall_found_elsewhere_gets_the_egress_verdict_of_a_scanned_one(
        arm: ArmEmulator) -> None:
    """The extra query brings the firewall's VNet and its AzureFirewallSubnet's route table, so its egress (0.0.0.0/0
    to the VPN gateway: on-premises) is judged on them — the same findings as when the connectivity subscription is
    scanned directly, and not "its subnet … is not in the inventory". Source: a firewall with
    ``managementIpConfiguration`` runs in forced-tunnelling mode, its data traffic following AzureFirewallSubnet's
    routes ("Azure Firewall must have direct Internet connectivity", Azure Firewall FAQ; README, *Azure Firewall*);
    the firewall names its subnet in ``ipConfigurations[].properties.subnet.id`` (AzureFirewallGet.json,
    azure-rest-api-specs Microsoft.Network 2025-05-01)."""
    seeded(arm, connectivity_hub(forced_tunnelling=True))
    found = runtime(arm, (SUB, CONNECTIVITY)).run(Scope((SUB,)), trigger="cli", actor="test")
    assert [q for q, _ in queries(arm)].count(FIREWALL_RESOURCES_QUERY) == 1 and len(queries(arm)) == 3
    scanned = runtime(arm, (SUB, CONNECTIVITY)).run(Scope((SUB, CONNECTIVITY)), trigger="cli", actor="test")
    assert [q for q, _ in queries(arm)].count(FIREWALL_RESOURCES_QUERY) == 1  # the direct scan needs none
    assert findings_of(found) == findings_of(scanned)
    [egress] = [f for f in found.plan.reports[0].findings if f.kind == "firewall-egress"]
    assert egress.destination == "AzureActiveDirectory" and egress.severity == "warning"
    assert "next hop VirtualNetworkGateway via to-onprem in route table rt-fw" in egress.message
    assert not any("not in the inventory" in f.message and "subnet" in f.message
                   for f in found.plan.reports[0].findings)


def test_an_estate_whose_next_hops_are_known_firewalls_sends_no_extra_query(arm: ArmEmulator) -> None:
    """The hub firewall is in the scanned subscription: the network query finds it, nothing else is asked even though
    ASR_SUBSCRIPTIONS holds a subscription not read."""
    resources = [r for r in connectivity_hub() if CONNECTIVITY not in r["id"]]
    hub = [{**r, "id": r["id"].replace(CONNECTIVITY, SUB), "subscriptionId": SUB}
           for r in connectivity_hub() if CONNECTIVITY in r["id"]]
    for resource in hub:  # the references follow the move
        resource["properties"] = json.loads(json.dumps(resource["properties"]).replace(CONNECTIVITY, SUB))
    seeded(arm, resources + hub)
    result = runtime(arm, (SUB, CONNECTIVITY)).run(Scope((SUB,)), trigger="cli", actor="test")
    assert ("firewall-deny", "EventHub.CentralUS") in kinds(result)
    assert [q for q, _ in queries(arm)].count(FIREWALL_RESOURCES_QUERY) == 0 and len(queries(arm)) == 2


def test_an_estate_without_an_appliance_next_hop_sends_no_extra_query(arm: ArmEmulator) -> None:
    seeded(arm, [*Scenario(routes=[("direct", "0.0.0.0/0", "Internet")]).resources(),
                 *[r for r in connectivity_hub() if CONNECTIVITY in r["id"]]])
    runtime(arm, (SUB, CONNECTIVITY)).run(Scope((SUB,)), trigger="cli", actor="test")
    assert len(queries(arm)) == 2


def test_a_next_hop_no_firewall_anywhere_holds_keeps_the_appliance_warning_after_the_one_query(
        arm: ArmEmulator) -> None:
    seeded(arm, connectivity_hub(spoke_hop="10.100.9.9"))
    progress: list[str] = []
    result = runtime(arm, (SUB, CONNECTIVITY), progress).run(Scope((SUB,)), trigger="cli", actor="test")
    assert {k for k, _ in kinds(result)} == {"route-appliance"}
    assert [q for q, _ in queries(arm)].count(FIREWALL_RESOURCES_QUERY) == 1
    assert arm.count("GET", r"/firewallPolicies/") == 0
    assert any("10.100.9.9" in m and "no Azure Firewall in ASR_SUBSCRIPTIONS" in m for m in progress)


def test_without_asr_subscriptions_the_firewall_is_looked_for_only_where_allowed_and_the_warning_says_so(
        arm: ArmEmulator) -> None:
    seeded(arm, connectivity_hub())
    progress: list[str] = []
    result = runtime(arm, (), progress).run(Scope((SUB,)), trigger="cli", actor="test")
    assert {k for k, _ in kinds(result)} == {"route-appliance"}
    assert len(queries(arm)) == 2  # nothing outside what the CLI was given
    [warning] = [m for m in progress if m.startswith("warning:")]
    assert FW_IP in warning and "ASR_SUBSCRIPTIONS" in warning and "looked for only there" in warning


def test_export_carries_the_connectivity_firewall_so_an_offline_scan_gives_the_same_verdict(
        arm: ArmEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seeded(arm, connectivity_hub())
    monkeypatch.setattr(cli, "RUNTIME_CREDENTIAL", FakeCredential())
    monkeypatch.setenv("ASR_ARM_ENDPOINT", arm.base_url)
    monkeypatch.setenv("ASR_ARM_CA_BUNDLE", arm.ca_path)
    monkeypatch.setenv("ASR_SUBSCRIPTIONS", f"{SUB},{CONNECTIVITY}")
    assert cli.main(["scan", "--subscription", SUB, "--format", "json"]) == 2
    live = json.loads(capsys.readouterr().out)
    exported = tmp_path / "estate.json"
    assert cli.main(["export", "--subscription", SUB, "-o", str(exported)]) == 0
    capsys.readouterr()
    rows = json.loads(exported.read_text())
    assert {r["id"].rsplit("/", 1)[-1] for r in rows if CONNECTIVITY in r["id"]} == {
        "fw-hub", "hub-policy", "spokes", "ipg-spokes", "vnet-hub", "rt-fw"}
    assert cli.main(["scan", "--estate", str(exported), "--service-tags", str(TAGS_FILE), "--format", "json"]) == 2
    assert json.loads(capsys.readouterr().out) == live
    assert any(f["kind"] == "firewall-deny" for vm in live["vms"] for f in vm["findings"])
    assert not any(f["kind"] == "route-appliance" for vm in live["vms"] for f in vm["findings"])


def test_a_write_to_the_connectivity_policy_re_evaluates_the_spoke_vm(arm: ArmEmulator) -> None:
    """The connectivity subscription is in ASR_SUBSCRIPTIONS (its own Event Grid topic, docs/deployment.md): an event
    reads every subscription of ASR_SUBSCRIPTIONS, so the hub firewall is in its inventory and the spoke VM behind it is
    evaluated."""
    from tests.emulator.test_events import event

    seeded(arm, connectivity_hub())
    policy = _id(CONNECTIVITY, "firewallPolicies", "hub-policy")
    result = runtime(arm, (SUB, CONNECTIVITY)).handle_event(event(policy, "Microsoft.Network/firewallPolicies/write"),
                                                           actor="test")
    [report] = result.plan.reports
    assert report.status == DRIFT and any(f.kind == "firewall-deny" for f in report.findings)


def test_a_write_to_the_forced_tunnelling_firewalls_subnet_route_table_re_evaluates_the_spoke_vm(
        arm: ArmEmulator) -> None:
    """The route table of the AzureFirewallSubnet is on no VM's subnet, but what a forced-tunnelling firewall allows
    leaves through it: its write re-evaluates the VMs behind that firewall (the egress warning). Without forced
    tunnelling the same event affects no VM (those routes carry none of their traffic)."""
    from tests.emulator.test_events import event

    table = _id(CONNECTIVITY, "routeTables", "rt-fw")
    seeded(arm, connectivity_hub(forced_tunnelling=True))
    result = runtime(arm, (SUB, CONNECTIVITY)).handle_event(event(table, "Microsoft.Network/routeTables/write"),
                                                           actor="test")
    [report] = result.plan.reports
    assert any(f.kind == "firewall-egress" and "rt-fw" in f.message for f in report.findings)
    with ArmEmulator() as plain:
        seeded(plain, connectivity_hub())
        result = runtime(plain, (SUB, CONNECTIVITY)).handle_event(
            event(table, "Microsoft.Network/routeTables/write"), actor="test")
        assert result.plan.reports == ()
