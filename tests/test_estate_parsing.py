"""ARM JSON → model, on the real reference payloads in tests/data/arm (spec examples and recorded A2A responses).

Spec example files wrap the resource in {"parameters", "responses": {"200": {"body": ...}}}; the tests take the
body out, the way ARM returns it.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr_remediate.config import Settings
from asr_remediate.engine import scan
from asr_remediate.estate import (
    BUILTIN_DEFAULT_RULES,
    REASON_LIMIT,
    EstateError,
    build_estate,
    load_estate_file,
    parse_nic,
    parse_nsg,
    parse_protected_item,
    parse_route_table,
    parse_vnet,
    unwrap,
)
from asr_remediate.model import key
from examples import estate_builder
from tests.scenario import Scenario, deny, full_tags

ARM = Path(__file__).resolve().parent / "data" / "arm"
FAILOVER_ITEM = "A2A_ReplicationProtectedItem_Get_FailoverCommitted_recorded_2024-10-01.json"
PROTECTED_LIST = "A2A_ReplicationProtectedItems_List_Protected_recorded_2026-02-01.json"
NSG_ID = "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/testnsg"


@cache
def _load(name: str) -> str:
    return (ARM / name).read_text(encoding="utf-8-sig")


def document(name: str) -> Any:
    """A fresh copy of a reference file (tests may mutate it)."""
    return json.loads(_load(name))


def body(name: str, status: str = "200") -> dict[str, Any]:
    """The response body out of a spec example envelope."""
    found: dict[str, Any] = document(name)["responses"][status]["body"]
    return found


def nsg_body() -> dict[str, Any]:
    return body("NetworkSecurityGroupGet.json")


def mixed_case(resource_id: str) -> str:
    return resource_id.upper() if resource_id.islower() else resource_id.swapcase()


# --- NSG -----------------------------------------------------------------------------------------------------------


def test_nsg_get_payload():
    group = parse_nsg(nsg_body())
    assert group.id == NSG_ID
    assert (group.name, group.location) == ("testnsg", "westus")
    [rule] = group.rules
    assert (rule.name, rule.priority, rule.direction, rule.access, rule.protocol) == ("rule1", 130, "inbound",
                                                                                       "allow", "*")
    assert rule.destination_ports == ("80",) and rule.source_prefixes == ("*",)
    assert rule.destination_prefixes == ("*",) and rule.source_ports == ("*",)
    assert rule.id.endswith("/securityRules/rule1") and not rule.is_default


def test_nsg_defaults_come_from_the_document_when_present():
    group = parse_nsg(nsg_body())
    outbound = {r.name: r for r in group.default_rules if r.direction == "outbound"}
    assert set(outbound) == {"AllowVnetOutBound", "AllowInternetOutBound", "DenyAllOutBound"}
    assert [outbound[n].priority for n in ("AllowVnetOutBound", "AllowInternetOutBound", "DenyAllOutBound")] == [
        65000, 65001, 65500]
    assert outbound["AllowInternetOutBound"].destination_prefixes == ("Internet",)
    assert outbound["DenyAllOutBound"].access == "deny"
    assert all(r.is_default for r in group.default_rules)
    assert all("/defaultSecurityRules/" in r.id for r in group.default_rules)  # the document's, not built-ins
    assert outbound["AllowVnetOutBound"].description == "Allow outbound traffic from all VMs to all VMs in VNET"


def test_nsg_without_defaults_gets_the_builtin_ones():
    resource = nsg_body()
    del resource["properties"]["defaultSecurityRules"]
    group = parse_nsg(resource)
    assert group.default_rules == BUILTIN_DEFAULT_RULES
    outbound = [(r.name, r.priority, r.access) for r in group.default_rules if r.direction == "outbound"]
    assert outbound == [("AllowVnetOutBound", 65000, "allow"), ("AllowInternetOutBound", 65001, "allow"),
                        ("DenyAllOutBound", 65500, "deny")]


def test_rule_fields_lists_asgs_and_case():
    resource = nsg_body()
    resource["properties"]["securityRules"].append({"name": "asr", "properties": {
        "priority": 4096, "direction": "OUTBOUND", "access": "DENY", "protocol": "Tcp",
        "sourceAddressPrefix": "", "sourceAddressPrefixes": [], "sourcePortRanges": ["1024-2000", "3000"],
        "destinationAddressPrefix": "", "destinationAddressPrefixes": ["20.0.0.0/8", "Storage.EastUS"],
        "destinationPortRange": "443",
        "sourceApplicationSecurityGroups": [{"id": "/subscriptions/s/resourceGroups/rg/providers/"
                                                   "Microsoft.Network/applicationSecurityGroups/web"}],
        "destinationApplicationSecurityGroups": [{"id": "/x/asg2"}, {}],
        "description": "why"}})
    rule = parse_nsg(resource).rules[-1]
    assert (rule.direction, rule.access, rule.protocol, rule.priority) == ("outbound", "deny", "tcp", 4096)
    assert rule.source_prefixes == () and rule.source_ports == ("1024-2000", "3000")
    assert rule.destination_prefixes == ("20.0.0.0/8", "Storage.EastUS") and rule.destination_ports == ("443",)
    assert rule.source_asgs == ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
                                "applicationSecurityGroups/web",)
    assert rule.destination_asgs == ("/x/asg2",) and rule.description == "why"


# --- route table, VNet, NIC ------------------------------------------------------------------------------------


def test_route_table_get_payload():
    table = parse_route_table(body("RouteTableGet.json"))
    assert (table.name, table.location, table.disable_bgp_route_propagation) == ("testrt", "westus", False)
    [route] = table.routes
    assert (route.name, route.address_prefix, route.next_hop_type, route.next_hop_ip) == (
        "route1", "10.0.3.0/24", "VirtualNetworkGateway", "")
    resource = body("RouteTableGet.json")
    resource["properties"]["disableBgpRoutePropagation"] = True
    resource["properties"]["routes"][0]["properties"].update(nextHopType="VirtualAppliance",
                                                              nextHopIpAddress="10.0.0.4")
    table = parse_route_table(resource)
    assert table.disable_bgp_route_propagation and table.routes[0].next_hop_ip == "10.0.0.4"


def test_vnet_get_payload():
    net = parse_vnet(body("VirtualNetworkGet.json"))
    assert (net.name, net.location, net.address_prefixes) == ("test-vnet", "westus", ("10.0.0.0/16",))
    [subnet] = net.subnets
    assert (subnet.name, subnet.address_prefixes, subnet.nsg_id, subnet.route_table_id) == (
        "subnet1", ("10.0.1.0/24",), "", "")
    assert net.peered_address_prefixes == () and not net.has_gateway_subnet


def test_vnet_peerings_endpoints_and_gateway_subnet():
    resource = body("VirtualNetworkGet.json")
    props = resource["properties"]
    props["subnets"][0]["properties"].update(
        networkSecurityGroup={"id": "/nsg/a"}, routeTable={"id": "/rt/b"},
        serviceEndpoints=[{"service": "Microsoft.Storage", "locations": ["EastUS", "westus"]},
                          {"service": "Microsoft.KeyVault"}])
    props["subnets"].append({"name": "GatewaySubnet", "id": resource["id"] + "/subnets/GatewaySubnet",
                             "properties": {"addressPrefixes": ["10.0.255.0/27", "10.0.254.0/27"]}})
    props["virtualNetworkPeerings"] = [
        {"name": "p1", "properties": {"peeringState": "Connected",
                                      "remoteAddressSpace": {"addressPrefixes": ["10.1.0.0/16"]}}},
        {"name": "p2", "properties": {"peeringState": "Disconnected",
                                      "remoteAddressSpace": {"addressPrefixes": ["10.2.0.0/16"]}}},
        {"name": "p3", "properties": {"peeringState": "Connected",
                                      "remoteVirtualNetworkAddressSpace": {"addressPrefixes": ["10.3.0.0/16"]},
                                      "remoteAddressSpace": {"addressPrefixes": ["10.99.0.0/16"]}}},
        {"name": "p4", "properties": {"peeringState": "Connected",
                                      "remoteVirtualNetworkAddressSpace": {"addressPrefixes": ["10.4.0.0/16"]}}},
    ]
    net = parse_vnet(resource)
    assert net.has_gateway_subnet
    # p3: the link's own (peered) space, not the remote VNet's current one, which reaches the link only once the
    # peering is synced (remoteAddressSpace vs remoteVirtualNetworkAddressSpace, VirtualNetworkPeeringPropertiesFormat
    # in azure-rest-api-specs; Sync-AzVirtualNetworkPeering).
    # p4: without the link's space, the current one stands in.
    assert net.peered_address_prefixes == ("10.1.0.0/16", "10.99.0.0/16", "10.4.0.0/16")
    subnet = net.subnets[0]
    assert (subnet.nsg_id, subnet.route_table_id) == ("/nsg/a", "/rt/b")
    assert [(e.service, e.locations) for e in subnet.service_endpoints] == [
        ("Microsoft.Storage", ("eastus", "westus")), ("Microsoft.KeyVault", ())]
    assert net.subnets[1].address_prefixes == ("10.0.255.0/27", "10.0.254.0/27")


def test_nic_get_payload():
    nic = parse_nic(body("NetworkInterfaceGet.json"))
    assert (nic.name, nic.location) == ("test-nic", "eastus")
    assert nic.nsg_id.endswith("/networkSecurityGroups/nsg")
    assert nic.vm_id == "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
    first, second = nic.ip_configurations
    assert (first.name, first.private_ip, first.primary) == ("ipconfig1", "172.20.2.4", True)
    assert (second.name, second.private_ip, second.primary) == ("ipconfig2", "172.20.2.16", False)  # '/28' dropped
    assert first.subnet_id.endswith("/virtualNetworks/rg1-vnet/subnets/default")


def test_nic_ipv6_configs_are_skipped_and_asgs_kept():
    resource = body("NetworkInterfaceGet.json")
    configs = resource["properties"]["ipConfigurations"]
    configs[1]["properties"]["privateIPAddressVersion"] = "IPv6"
    configs[0]["properties"]["applicationSecurityGroups"] = [{"id": "/asg/Web"}]
    nic = parse_nic(resource)
    assert [c.name for c in nic.ip_configurations] == ["ipconfig1"]
    assert nic.ip_configurations[0].asg_ids == ("/asg/Web",)


# --- A2A protected items -------------------------------------------------------------------------------------


def test_a2a_item_after_failover_commit():
    item = parse_protected_item(document(FAILOVER_ITEM))
    assert item is not None
    assert item.name == "reprotectvm"
    assert (item.source_region, item.target_region) == ("uksouth", "ukwest")
    assert (item.protection_state, item.active_location) == ("UnplannedFailoverCommitted", "Recovery")
    assert not item.encrypted
    assert item.vm_id == ("/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourcegroups/vijami-alertrg/"
                          "providers/microsoft.compute/virtualmachines/reprotectvm")
    assert item.recovery_vnet_id.endswith("/virtualnetworks/nzntestvm-vnet-asr")
    [nic] = item.recovery_nics
    assert nic.source_nic_id.endswith("/Microsoft.Network/networkInterfaces/reprotectvm693")  # original casing
    assert nic.recovery_vnet_id == item.recovery_vnet_id
    assert nic.recovery_subnet_names == ("default",)
    assert nic.recovery_nsg_id == ""  # null in the payload


def test_a2a_item_from_a_list_response_in_steady_state():
    resources = unwrap(document(PROTECTED_LIST))  # {"value": [...], "nextLink": null}
    [item] = [parse_protected_item(r) for r in resources]
    assert item is not None
    assert (item.name, item.source_region, item.target_region) == ("a2aVM1111", "westus2", "eastus2euap")
    assert (item.protection_state, item.active_location) == ("Protected", "Primary")
    [nic] = item.recovery_nics
    assert nic.recovery_subnet_names == ("frontendSubnet",) and nic.recovery_nsg_id == ""
    assert nic.recovery_vnet_id.endswith("/virtualNetworks/A2ARecoveryNetwork1111")


@pytest.mark.parametrize(("encryption", "encrypted"), [("NotEncrypted", False), ("OnePassEncrypted", True),
                                                       ("TwoPassEncrypted", True), (None, False)])
def test_ade_encryption_flag(encryption, encrypted):
    resource = document(FAILOVER_ITEM)
    resource["properties"]["providerSpecificDetails"]["vmEncryptionType"] = encryption
    item = parse_protected_item(resource)
    assert item is not None and item.encrypted is encrypted


def test_fabric_object_id_matches_the_vm_case_insensitively():
    resource = document(PROTECTED_LIST)["value"][0]
    vm_id = estate_builder.rid("1f0df0ca-7e02-407a-b85e-c1ebd1aa8f97", "priRG1111", "Microsoft.Compute",
                               "virtualMachines", "a2aVM1111")
    nic_id = resource["properties"]["providerSpecificDetails"]["vmNics"][0]["sourceNicArmId"]
    vm = estate_builder.vm("1f0df0ca-7e02-407a-b85e-c1ebd1aa8f97", "priRG1111", "a2aVM1111", "westus2",
                           [mixed_case(nic_id)])
    assert vm["id"] == vm_id and vm_id != resource["properties"]["providerSpecificDetails"]["fabricObjectId"]
    nic = body("NetworkInterfaceGet.json")
    nic["id"] = mixed_case(nic_id)
    estate = build_estate([resource, vm, nic])
    [item] = estate.protected_items
    assert estate.vms[key(item.vm_id)].name == "a2aVM1111"
    assert estate.nics[key(item.recovery_nics[0].source_nic_id)].id == mixed_case(nic_id)
    assert key(item.vm_id) == key(vm_id)


def test_non_a2a_items_are_ignored():
    hyperv = body("ReplicationProtectedItems_Get.json")
    assert hyperv["properties"]["providerSpecificDetails"]["instanceType"] == "HyperVReplicaAzure"
    assert parse_protected_item(hyperv) is None
    estate = build_estate([hyperv, document(FAILOVER_ITEM)])
    assert [i.name for i in estate.protected_items] == ["reprotectvm"]


# --- build_estate: envelopes, ids, child resources ---------------------------------------------------------------


def reference_resources() -> list[dict[str, Any]]:
    return [nsg_body(), body("RouteTableGet.json"), body("VirtualNetworkGet.json"), body("NetworkInterfaceGet.json"),
            document(FAILOVER_ITEM), *document(PROTECTED_LIST)["value"]]


def summary(estate: Any) -> tuple[Any, ...]:
    return (sorted(estate.nsgs), sorted(estate.route_tables), sorted(estate.vnets), sorted(estate.subnets),
            sorted(estate.nics), sorted(estate.vms), [i.id for i in estate.protected_items])


def test_envelopes_give_the_same_estate():
    resources = reference_resources()
    bare = build_estate(unwrap(resources))
    assert summary(build_estate(unwrap({"value": resources}))) == summary(bare)
    assert summary(build_estate(unwrap({"data": resources, "count": 6}))) == summary(bare)
    assert len(bare.nsgs) == len(bare.route_tables) == len(bare.vnets) == len(bare.nics) == 1
    assert len(bare.protected_items) == 2 and len(bare.subnets) == 1


def test_everything_is_indexed_by_lower_case_id():
    estate = build_estate(reference_resources())
    nsg_id = nsg_body()["id"]
    assert estate.nsgs[key(nsg_id.upper())].name == "testnsg"
    assert key(nsg_id) in estate.nsgs and nsg_id not in estate.nsgs
    subnet_id = body("VirtualNetworkGet.json")["properties"]["subnets"][0]["id"]
    net = estate.vnet_of_subnet(subnet_id.upper())
    assert net is not None and net.name == "test-vnet"
    assert estate.subnets[key(subnet_id)].name == "subnet1"


def test_resource_graph_lower_case_types_are_accepted():
    resources = reference_resources()
    for resource in resources:
        resource["type"] = resource["type"].lower()
    assert summary(build_estate(resources)) == summary(build_estate(reference_resources()))


def test_security_rules_given_separately_are_merged_and_win_by_name():
    parent = nsg_body()
    rule = body("NetworkSecurityGroupRuleGet.json")  # rule1, priority 130, as the child resource GET returns it
    rule["type"] = "Microsoft.Network/networkSecurityGroups/securityRules"
    rule["id"] = mixed_case(rule["id"])
    rule["properties"]["priority"] = 140
    extra = copy.deepcopy(rule)
    extra["name"] = "extra"
    extra["id"] = parent["id"] + "/securityRules/extra"
    extra["properties"].update(direction="Outbound", access="Deny", priority=150)
    estate = build_estate([rule, parent, extra])  # children before their parent, too
    group = estate.nsgs[key(parent["id"])]
    assert sorted((r.name, r.priority) for r in group.rules) == [("extra", 150), ("rule1", 140)]
    assert len(group.default_rules) == 6


def test_routes_given_separately_are_merged():
    parent = body("RouteTableGet.json")
    parent["properties"]["routes"] = []
    route = body("RouteTableRouteCreate.json", "201")
    route["type"] = "microsoft.network/routetables/routes"
    estate = build_estate([parent, route])
    [merged] = estate.route_tables[key(parent["id"])].routes
    assert (merged.name, merged.address_prefix, merged.next_hop_type) == ("route1", "10.0.3.0/24",
                                                                           "VirtualNetworkGateway")


def test_subnets_given_separately_are_merged():
    parent = body("VirtualNetworkGet.json")
    loose = body("SubnetGet.json")
    loose["type"] = "Microsoft.Network/virtualNetworks/subnets"
    loose["id"] = parent["id"].upper() + "/subnets/GatewaySubnet"
    loose["name"] = "GatewaySubnet"
    estate = build_estate([loose, parent])
    net = estate.vnets[key(parent["id"])]
    assert sorted(s.name for s in net.subnets) == ["GatewaySubnet", "subnet1"]
    assert net.has_gateway_subnet
    assert estate.subnets[key(loose["id"])].address_prefixes == ("10.0.0.0/16",)


def test_unknown_resource_types_are_ignored():
    estate = build_estate([{"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a",
                            "type": "Microsoft.Storage/storageAccounts"}])
    assert summary(estate) == ([], [], [], [], [], [], [])


# --- bad input -------------------------------------------------------------------------------------------------


def broken_nsg(mutate: Any) -> list[dict[str, Any]]:
    resource = nsg_body()
    mutate(resource["properties"])
    return [resource]


@pytest.mark.parametrize(("resources", "message"), [
    ([{"type": "Microsoft.Network/networkSecurityGroups"}], "resource 0 (microsoft.network/networksecuritygroups)"),
    ([nsg_body(), {"id": "  ", "type": "x"}], "resource 1 (x) has no id"),
    ([{"id": 7, "type": "x" * 100_000}], "resource 0 (xxx"),
])
def test_resources_without_an_id_are_estate_errors(resources, message):
    with pytest.raises(EstateError) as caught:
        build_estate(resources)
    text = str(caught.value)
    assert message in text and "has no id" in text and "\n" not in text and len(text) < 300


RT_ID = "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/routeTables/testrt"
VNET_ID = "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/test-vnet"
NIC_ID = "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/test-nic"


@pytest.mark.parametrize(("resources", "resource_id", "message"), [
    (broken_nsg(lambda p: p["securityRules"][0]["properties"].pop("priority")), NSG_ID,
     "security rule 'rule1' has no valid priority: missing"),
    (broken_nsg(lambda p: p["securityRules"][0]["properties"].update(priority="high")), NSG_ID, "no valid priority"),
    (broken_nsg(lambda p: p.update(securityRules="rule1")), NSG_ID, "securityRules is 'rule1', not a list"),
    (broken_nsg(lambda p: p["defaultSecurityRules"].append(7)), NSG_ID, "unexpected shape"),
    (broken_nsg(lambda p: p["securityRules"][0]["properties"].update(access="Maybe")), NSG_ID,
     "access is 'Maybe', not one of allow, deny"),
    (broken_nsg(lambda p: p["securityRules"][0]["properties"].update(direction=None)), NSG_ID, "direction is None"),
    (broken_nsg(lambda p: p["securityRules"][0]["properties"].update(protocol="Gre")), NSG_ID, "protocol is 'Gre'"),
    (broken_nsg(lambda p: p["securityRules"][0]["properties"].update(destinationAddressPrefix="10.0.0.0/33")),
     NSG_ID, "destination '10.0.0.0/33' is not an IP address or prefix"),
    (broken_nsg(lambda p: p["securityRules"][0]["properties"].update(sourceAddressPrefixes="10.0.0.0/8")),
     NSG_ID, "sourceAddressPrefixes is '10.0.0.0/8', not a list"),  # read loosely, the rule would match anyone
    (broken_nsg(lambda p: p["securityRules"][0]["properties"].update(
        sourceApplicationSecurityGroups=["/subscriptions/s/asg"])), NSG_ID, "is not a resource reference"),
    ([{**body("RouteTableGet.json"), "properties": {"routes": [1]}}], RT_ID, "unexpected shape"),
    ([{**body("RouteTableGet.json"), "properties": {"routes": [{"name": "r", "properties": {
        "addressPrefix": "10.0.0.0/33", "nextHopType": "None"}}]}}], RT_ID,
     "route 'r': address prefix '10.0.0.0/33' is not an IP address or prefix"),
    ([{**body("RouteTableGet.json"), "properties": {"routes": [{"name": "r", "properties": {
        "nextHopType": "Internet"}}]}}], RT_ID, "route 'r': no address prefix"),
    ([{**body("VirtualNetworkGet.json"), "properties": {"addressSpace": ["10.0.0.0/16"]}}], VNET_ID,
     "unexpected shape"),
    ([{**body("VirtualNetworkGet.json"), "properties": {"subnets": [{"properties": {"serviceEndpoints": [3]}}]}}],
     VNET_ID, "unexpected shape"),
    ([{**body("VirtualNetworkGet.json"), "properties": {"subnets": [{"properties": {
        "networkSecurityGroup": "/subscriptions/s/nsg"}}]}}], VNET_ID, "is not a resource reference"),
    ([{**body("NetworkInterfaceGet.json"), "properties": {"ipConfigurations": ["ipconfig1"]}}], NIC_ID,
     "unexpected shape"),
])
def test_a_malformed_resource_is_unreadable_with_the_reason_and_left_out(resources, resource_id, message):
    estate = build_estate(resources)
    unreadable = estate.unreadable[key(resource_id)]
    assert unreadable.id == resource_id and message in unreadable.reason, unreadable.reason
    assert "\n" not in unreadable.reason and len(unreadable.reason) <= REASON_LIMIT
    assert unreadable.message.endswith(f"{resource_id} is unreadable: {unreadable.reason}")
    indexes = (estate.nsgs, estate.route_tables, estate.vnets, estate.nics, estate.vms)
    assert all(key(resource_id) not in index for index in indexes)


def test_one_unreadable_resource_leaves_the_others_parsed():
    good = nsg_body()
    bad = nsg_body()
    bad["id"] = bad["id"] + "-2"
    bad["properties"]["securityRules"][0]["properties"]["priority"] = "abc"
    estate = build_estate([bad, good, body("RouteTableGet.json"), body("VirtualNetworkGet.json")])
    assert set(estate.nsgs) == {key(NSG_ID)} and set(estate.unreadable) == {key(bad["id"])}
    assert len(estate.route_tables) == len(estate.vnets) == 1


def test_an_unreadable_child_given_separately_makes_its_parent_unreadable():
    parent = nsg_body()
    rule = body("NetworkSecurityGroupRuleGet.json")
    rule["type"] = "Microsoft.Network/networkSecurityGroups/securityRules"
    rule["properties"]["priority"] = True
    table = body("RouteTableGet.json")
    route = {"id": table["id"] + "/routes/bad", "name": "bad", "type": "microsoft.network/routetables/routes",
             "properties": {"addressPrefix": "999.0.0.0/8", "nextHopType": "Internet"}}
    network = body("VirtualNetworkGet.json")
    subnet = {"id": network["id"] + "/subnets/odd", "name": "odd", "type": "Microsoft.Network/virtualNetworks/subnets",
              "properties": {"addressPrefix": "banana"}}
    estate = build_estate([parent, rule, table, route, subnet, network])
    assert "security rule 'rule1' has no valid priority: True is not a number" in \
        estate.unreadable[key(NSG_ID)].reason
    assert "route 'bad'" in estate.unreadable[key(table["id"])].reason
    assert estate.unreadable[key(network["id"])].reason.startswith("subnet 'odd': ")
    assert not estate.nsgs and not estate.route_tables and not estate.vnets and not estate.subnets


def test_an_unreadable_a2a_item_stays_as_a_stub_so_its_vm_is_reported():
    resource = document(FAILOVER_ITEM)
    resource["properties"]["providerSpecificDetails"]["vmNics"] = ["nic"]
    estate = build_estate([resource])
    [item] = estate.protected_items
    assert item.id == resource["id"] and item.name == "reprotectvm" and item.vm_id.endswith("/reprotectvm")
    assert (item.source_region, item.target_region) == ("uksouth", "ukwest")
    assert "unexpected shape" in estate.unreadable[key(item.id)].reason
    hyperv = body("ReplicationProtectedItems_Get.json")
    hyperv["properties"]["providerSpecificDetails"]["vmNics"] = ["nic"]
    assert build_estate([hyperv]).protected_items == ()  # readably not A2A: not ours, as before


def test_an_unreadable_effective_route_table_counts_as_not_read():
    nic_id = NIC_ID
    estate = build_estate([{"id": f"{nic_id}/effectiveRouteTable",
                            "type": "Microsoft.Network/networkInterfaces/effectiveRouteTable",
                            "properties": {"value": {"source": "VirtualNetworkGateway"}}}])
    assert estate.read_errors[key(nic_id) + "/effectiveroutetable"].startswith("unreadable: unexpected shape")
    assert key(nic_id) not in estate.bgp_routes


@pytest.mark.parametrize(("priority", "why"), [
    (float("inf"), "inf is not a whole number"),  # what JSON's 1e400 becomes
    (float("-inf"), "-inf is not a whole number"),
    (float("nan"), "nan is not a whole number"),
    (130.5, "130.5 is not a whole number"),
    (10**5000, "is outside 1–65535"),  # str() of it raises ValueError: never formatted
    (-(10**5000), "is outside 1–65535"),
    (True, "True is not a number"),
    (0, "0 is outside"),
    (65536, "65536 is outside"),
    ("-5", "'-5' is not a whole number"),
    ("1" * 100_000, "is not a whole number"),
    ([130], "a JSON array is not a number"),
    ({"value": 130}, "a JSON object is not a number"),
    (None, "missing"),
], ids=lambda value: type(value).__name__ if not isinstance(value, str) or len(value) > 10 else None)
def test_priorities_that_are_not_priorities(priority, why):
    estate = build_estate(broken_nsg(lambda p: p["securityRules"][0]["properties"].update(priority=priority)))
    reason = estate.unreadable[key(NSG_ID)].reason
    assert why in reason and "has no valid priority" in reason and len(reason) <= REASON_LIMIT


@pytest.mark.parametrize(("priority", "expected"), [(130, 130), (130.0, 130), (" 4096 ", 4096), (65500, 65500)])
def test_priorities_that_are(priority, expected):
    estate = build_estate(broken_nsg(lambda p: p["securityRules"][0]["properties"].update(priority=priority)))
    assert estate.nsgs[key(NSG_ID)].rules[0].priority == expected


def test_huge_values_are_never_echoed_back():
    huge = "9" * 100_000
    resources = broken_nsg(lambda p: p["securityRules"][0].update(name=huge))
    resources[0]["properties"]["securityRules"][0]["properties"]["priority"] = huge
    reason = build_estate(resources).unreadable[key(NSG_ID)].reason
    assert len(reason) <= REASON_LIMIT and "has no valid priority" in reason
    assert len(build_estate([{**nsg_body(), "properties": {"securityRules": 10**5000}}])
               .unreadable[key(NSG_ID)].reason) <= REASON_LIMIT


RULE_FIELDS = ("priority", "direction", "access", "protocol", "sourceAddressPrefix", "sourceAddressPrefixes",
               "sourcePortRange", "sourcePortRanges", "destinationAddressPrefix", "destinationAddressPrefixes",
               "destinationPortRange", "destinationPortRanges", "sourceApplicationSecurityGroups",
               "destinationApplicationSecurityGroups", "description")
AWKWARD = {"huge": 10**5000, "-huge": -(10**5000), "inf": float("inf"), "nan": float("nan")}


def awkward(name: str) -> Any:
    """Values whose repr Python refuses (so not in a strategy's repr)."""
    return AWKWARD.get(name, name)


JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
                | st.sampled_from([*AWKWARD, "10.0.0.0/33", "*", "Storage", "443", "1-65535", "Outbound", "Deny",
                                   "Tcp"]).map(awkward))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(["id", "name", "x"]), inner, max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(RULE_FIELDS), value=JSON_VALUES, where=st.sampled_from(["rule", "props", "both"]))
def test_any_json_value_in_a_rule_field_is_parsed_or_unreadable_and_the_scan_goes_on(field, value, where):
    """Whatever JSON puts in a rule field (of the subnet NSG of a one-VM estate), parsing never raises and the
    evaluation gives a report: the NSG is either read, or unreadable and the VM unknown naming it."""
    resources = Scenario(subnet_rules=[deny(4000)]).resources()
    nsg_doc = next(r for r in resources if r["type"].endswith("networksecuritygroups"))
    rule = nsg_doc["properties"]["securityRules"][0]
    if where in ("props", "both"):
        rule["properties"][field] = value
    if where in ("rule", "both"):
        rule["name"] = value if not isinstance(value, str) else rule["name"]
    estate = build_estate(resources)
    (report,) = scan(estate, full_tags(), Settings()).reports
    if key(nsg_doc["id"]) in estate.unreadable:
        reason = estate.unreadable[key(nsg_doc["id"])].reason
        assert "\n" not in reason and len(reason) <= REASON_LIMIT
        assert report.status == "unknown"
        assert any(f.kind == "unknown" and f.resource_id == nsg_doc["id"] and reason in f.message
                   for f in report.findings)
    else:
        assert key(nsg_doc["id"]) in estate.nsgs and report.status in ("compliant", "drift", "unknown")


# --- estate files: JSON that Python's json module reads into awkward values --------------------------------------


@pytest.mark.parametrize("priority", ["1e400", "-Infinity", "NaN", "9" * 5000, "true"],
                         ids=["1e400", "-Infinity", "NaN", "5000 digits", "true"])
def test_estate_file_with_a_number_that_is_no_priority_is_read_and_the_nsg_unreadable(tmp_path, priority):
    text = json.dumps([nsg_body()]).replace('"priority": 130', f'"priority": {priority}')
    assert priority in text
    path = tmp_path / "estate.json"
    path.write_text(text, encoding="utf-8")
    estate = load_estate_file(path)
    assert "has no valid priority" in estate.unreadable[key(NSG_ID)].reason


def test_estate_file_nested_too_deeply_is_one_line(tmp_path):
    path = tmp_path / "estate.json"
    path.write_text("[" * 100_000, encoding="utf-8")
    with pytest.raises(EstateError, match="nested too deeply") as caught:
        load_estate_file(path)
    assert str(path) in str(caught.value) and len(str(caught.value)) < 300


@pytest.mark.parametrize(("document_", "message"), [
    ({"values": []}, "'value' or 'data' list"),
    ({"value": {"a": 1}}, "'value' or 'data' list"),
    ("resources", "expected a JSON list"),
    ([{"id": "a"}, 3], "item 1 is not a JSON object"),
])
def test_bad_envelopes(document_, message):
    with pytest.raises(EstateError, match=message):
        unwrap(document_)


@pytest.mark.parametrize(("content", "message"), [
    (b"[", "is not valid JSON"),
    (b"\x80\x81", "is not UTF-8 text"),
    (b'{"rows": []}', "'value' or 'data' list"),
    (b'[{"type": "microsoft.network/networksecuritygroups"}]', "has no id"),
])
def test_bad_estate_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "estate.json"
    path.write_bytes(content)
    with pytest.raises(EstateError, match=message) as caught:
        load_estate_file(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(EstateError, match="not found"):
        load_estate_file(tmp_path / "absent.json")


def test_estate_file_round_trip(tmp_path):
    path = tmp_path / "estate.json"
    path.write_text(json.dumps({"value": reference_resources()}), encoding="utf-8")
    assert summary(load_estate_file(path)) == summary(build_estate(reference_resources()))
