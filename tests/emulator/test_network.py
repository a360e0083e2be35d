"""NetworkWriter (real azure-mgmt-network client) against the HTTPS emulator: REST shapes, LRO, ARM errors."""

from __future__ import annotations

import pytest

from asr_remediate.azure.network import ArmError, NetworkWriter, parse_resource_id, properties_match
from tests.emulator.arm_emulator import Fault
from tests.emulator.fixtures import SUB, example_body, nsg, rid, route_table, rule_props

NSG_ID = rid("networkSecurityGroups", "nsg1")
RT_ID = rid("routeTables", "rt1")
OPS = r"/providers/Microsoft\.Network/locations/[^/]+/operations/"
RULE = "asr-remediate-Storage.EastUS"


@pytest.fixture
def writer(arm, credential, sleep):
    with NetworkWriter(credential, arm.base_url, ca_bundle=arm.ca_path, sleep=sleep, polling_interval=0,
                       retry_total=3) as w:
        yield w


def seeded_nsg(arm, **rules):
    arm.add(nsg("nsg1", rules or {"deny-internet": rule_props(4000, access="Deny", dest="Internet", port="*")}))
    return arm.resource(NSG_ID)


# --- reads ------------------------------------------------------------------------------------------------


def test_get_nsg_returns_the_rest_shape(arm, writer):
    body = example_body("NetworkSecurityGroupGet.json")  # id under subscription "subid", as in the spec
    arm.add(body)
    got = writer.get_nsg(body["id"])

    assert got["id"] == body["id"] and got["type"] == "Microsoft.Network/networkSecurityGroups"
    assert got["etag"].startswith('W/"')
    assert got["properties"]["securityRules"][0]["name"] == "rule1"
    assert got["properties"]["securityRules"][0]["properties"]["destinationPortRange"] == "80"
    child_etag = got["properties"]["securityRules"][0]["etag"]
    assert child_etag.startswith('W/"') and child_etag != got["etag"], "a nested resource's etag is its own"
    assert [r["name"] for r in got["properties"]["defaultSecurityRules"]] == [
        r["name"] for r in body["properties"]["defaultSecurityRules"]]
    # Nothing lost or renamed by the SDK: the dict is exactly what the emulator served.
    assert got == arm.resource(body["id"])


def test_get_route_table_nic_and_vnet_from_reference_payloads(arm, writer):
    for name in ("RouteTableGet.json", "NetworkInterfaceGet.json", "VirtualNetworkGet.json"):
        arm.add(example_body(name))
    rt = writer.get_route_table(example_body("RouteTableGet.json")["id"])
    assert rt["properties"]["routes"][0]["properties"]["nextHopType"] == "VirtualNetworkGateway"
    assert rt["properties"]["disableBgpRoutePropagation"] is False
    nic = writer.get_network_interface(example_body("NetworkInterfaceGet.json")["id"])
    assert nic["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"]
    vnet = writer.get_virtual_network(example_body("VirtualNetworkGet.json")["id"])
    assert vnet["properties"]["addressSpace"]["addressPrefixes"]


def test_missing_resources(arm, writer):
    with pytest.raises(ArmError) as info:
        writer.get_nsg(NSG_ID)
    assert info.value.status_code == 404 and info.value.code == "ResourceNotFound"
    seeded_nsg(arm)
    assert writer.get_security_rule(NSG_ID, "nope") is None


def test_get_retries_throttling_with_retry_after(arm, writer, sleep):
    seeded_nsg(arm)
    arm.inject("GET", r"/networkSecurityGroups/nsg1$", Fault.throttle(retry_after=3, ratelimit_remaining=0))
    assert writer.get_nsg(NSG_ID)["name"] == "nsg1"
    assert sleep.calls == [3.0]
    assert arm.count("GET", r"/networkSecurityGroups/nsg1$") == 2


def test_wrong_resource_type_is_refused_before_any_call(arm, writer):
    with pytest.raises(ValueError):
        writer.get_nsg(RT_ID)
    assert arm.requests == []


# --- rule writes ------------------------------------------------------------------------------------------


def test_put_rule_polls_the_long_running_operation(arm, writer):
    before = seeded_nsg(arm)
    wanted = rule_props(3990, dest="Storage.EastUS", description="ASR A2A replication needs Storage.EastUS")

    result = writer.put_security_rule(NSG_ID, RULE, wanted)

    assert result["name"] == RULE and result["properties"]["provisioningState"] == "Succeeded"
    assert properties_match(wanted, result["properties"])
    put = arm.matching("PUT", "/securityRules/")
    assert len(put) == 1 and put[0].status == 201
    assert put[0].body == {"properties": wanted}, "read-only fields are not sent"
    polls = arm.matching("GET", OPS)
    assert len(polls) == 2, "InProgress, then Succeeded"
    assert arm.matching("GET", "/securityRules/")[-1].status == 200, "final GET of the rule"
    after = writer.get_nsg(NSG_ID)
    assert after["etag"] != before["etag"]
    assert {r["name"] for r in after["properties"]["securityRules"]} == {"deny-internet", RULE}


def test_put_rule_again_updates_in_place(arm, writer):
    seeded_nsg(arm)
    writer.put_security_rule(NSG_ID, RULE, rule_props(3990, dest="Storage.EastUS"))
    writer.put_security_rule(NSG_ID, RULE, rule_props(3980, dest="Storage.EastUS"))
    rules = writer.get_nsg(NSG_ID)["properties"]["securityRules"]
    assert [r["properties"]["priority"] for r in rules if r["name"] == RULE] == [3980]
    assert [p.status for p in arm.matching("PUT", "/securityRules/")] == [201, 200]


def test_same_priority_and_direction_is_a_security_rule_conflict(arm, writer):
    seeded_nsg(arm)
    with pytest.raises(ArmError) as info:
        writer.put_security_rule(NSG_ID, RULE, rule_props(4000))
    assert info.value.status_code == 400 and info.value.code == "SecurityRuleConflict"
    assert info.value.error.code == "SecurityRuleConflict", "readable like HttpResponseError.error.code"
    assert "cannot have the same Priority and Direction" in str(info.value)
    # Same priority, other direction: allowed.
    writer.put_security_rule(NSG_ID, "inbound-4000", rule_props(4000, direction="Inbound"))


@pytest.mark.parametrize("priority", [99, 4097, 65000])
def test_priority_out_of_range_is_rejected(arm, writer, priority):
    seeded_nsg(arm)
    with pytest.raises(ArmError) as info:
        writer.put_security_rule(NSG_ID, RULE, rule_props(priority))
    assert info.value.code == "SecurityRuleInvalidPriority"


def test_stale_if_match_is_412(arm, writer):
    """If-Match carries the rule's own etag: a change to the rule since it was read refuses the update."""
    seeded_nsg(arm)
    read = writer.put_security_rule(NSG_ID, RULE, rule_props(3990))
    arm.add_security_rule(NSG_ID, RULE, rule_props(3970))  # a concurrent writer edits the rule after our read

    with pytest.raises(ArmError) as info:
        writer.put_security_rule(NSG_ID, RULE, rule_props(3980), if_match=read["etag"])
    assert info.value.status_code == 412 and info.value.is_precondition_failed
    assert writer.get_security_rule(NSG_ID, RULE)["properties"]["priority"] == 3970

    fresh = writer.get_security_rule(NSG_ID, RULE)
    assert writer.put_security_rule(NSG_ID, RULE, rule_props(3980), if_match=fresh["etag"])["name"] == RULE


def test_if_match_on_a_create_is_refused_so_creates_send_none(arm, writer):
    """ARM RPC ("ETags for Resources"): If-Match on a resource that does not exist is 412 — the reason creates carry
    no If-Match (cloud-provider-azure likewise sends If-Match on a route only when it already has an etag)."""
    nsg_doc = seeded_nsg(arm)
    with pytest.raises(ArmError) as info:
        writer.put_security_rule(NSG_ID, RULE, rule_props(3990), if_match=nsg_doc["etag"])
    assert info.value.status_code == 412
    assert writer.get_security_rule(NSG_ID, RULE) is None


def test_concurrent_writer_taking_our_priority_surfaces_as_conflict(arm, writer):
    seeded_nsg(arm)
    arm.before("PUT", "/securityRules/", lambda em, _req: em.add_security_rule(NSG_ID, "other", rule_props(3990)))
    with pytest.raises(ArmError) as info:
        writer.put_security_rule(NSG_ID, RULE, rule_props(3990))
    assert info.value.code == "SecurityRuleConflict"
    assert "Security rule other conflicts with rule " + RULE in str(info.value)


def test_lost_response_on_put_is_retried_without_duplicating(arm, writer, sleep):
    seeded_nsg(arm)
    arm.inject("PUT", "/securityRules/", Fault.drop_after_apply())

    result = writer.put_security_rule(NSG_ID, RULE, rule_props(3990))

    assert result["properties"]["priority"] == 3990
    puts = arm.matching("PUT", "/securityRules/")
    assert [p.status for p in puts] == [None, 200], "second PUT updated the rule the first one created"
    names = [r["name"] for r in writer.get_nsg(NSG_ID)["properties"]["securityRules"]]
    assert names.count(RULE) == 1
    assert sleep.calls == [], "azure-core retries the first failure immediately"


def test_lost_response_with_if_match_is_recognised_as_applied(arm, writer):
    seeded_nsg(arm)
    etag = writer.put_security_rule(NSG_ID, RULE, rule_props(3990))["etag"]
    arm.inject("PUT", "/securityRules/", Fault.drop_after_apply())

    result = writer.put_security_rule(NSG_ID, RULE, rule_props(3980), if_match=etag)

    assert result["name"] == RULE and result["properties"]["priority"] == 3980
    assert [p.status for p in arm.matching("PUT", "/securityRules/")] == [201, None, 412]


def test_dropped_connection_before_apply_and_server_errors_are_retried(arm, writer, sleep):
    seeded_nsg(arm)
    arm.inject("PUT", "/securityRules/", Fault.drop())
    arm.inject("PUT", "/securityRules/", Fault.error(500))
    writer.put_security_rule(NSG_ID, RULE, rule_props(3990))
    assert [p.status for p in arm.matching("PUT", "/securityRules/")] == [None, 500, 201]
    assert sleep.calls == [1.6], "first retry immediate, then backoff 0.8 * 2"


def test_failed_operation_carries_the_operation_error_code(arm, writer):
    seeded_nsg(arm)
    arm.fail_next_operation("InternalServerError", "NRP could not program the rule")
    with pytest.raises(ArmError) as info:
        writer.put_security_rule(NSG_ID, RULE, rule_props(3990))
    assert info.value.code == "InternalServerError"


def test_delete_security_rule(arm, writer):
    seeded_nsg(arm)
    writer.put_security_rule(NSG_ID, RULE, rule_props(3990))
    writer.delete_security_rule(NSG_ID, RULE)
    assert writer.get_security_rule(NSG_ID, RULE) is None
    writer.delete_security_rule(NSG_ID, RULE)  # already gone: 204, no error
    assert [p.status for p in arm.matching("DELETE", "/securityRules/")] == [202, 204]


def test_reference_rule_create_payload_round_trips(arm, writer):
    example = example_body("NetworkSecurityGroupRuleCreate.json", "201")
    seeded_nsg(arm, other=rule_props(200))
    result = writer.put_security_rule(NSG_ID, "rule1", example["properties"])
    assert result["properties"] == example["properties"]


# --- routes -----------------------------------------------------------------------------------------------


def test_route_put_and_delete(arm, writer):
    arm.add(route_table("rt1", {"to-fw": {"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance",
                                          "nextHopIpAddress": "10.0.0.4"}}))
    props = {"addressPrefix": "Storage.EastUS", "nextHopType": "Internet"}

    route = writer.put_route(RT_ID, RULE, props)

    assert route["properties"] == {**props, "provisioningState": "Succeeded"}
    assert len(arm.matching("GET", OPS)) == 2
    table = writer.get_route_table(RT_ID)
    assert {r["name"] for r in table["properties"]["routes"]} == {"to-fw", RULE}
    assert writer.get_route(RT_ID, RULE)["properties"]["addressPrefix"] == "Storage.EastUS"

    writer.delete_route(RT_ID, RULE)
    assert writer.get_route(RT_ID, RULE) is None
    assert [r["name"] for r in writer.get_route_table(RT_ID)["properties"]["routes"]] == ["to-fw"]


def test_route_validation_and_if_match(arm, writer):
    arm.add(example_body("RouteTableGet.json"))
    rt_id = example_body("RouteTableGet.json")["id"]
    with pytest.raises(ArmError) as info:
        writer.put_route(rt_id, "bad", {"addressPrefix": "10.0.0.0/8", "nextHopType": "VirtualAppliance"})
    assert info.value.status_code == 400
    with pytest.raises(ArmError) as info:
        writer.put_route(rt_id, "route1", {"addressPrefix": "10.0.3.0/24", "nextHopType": "Internet"},
                         if_match='W/"old"')
    assert info.value.status_code == 412
    example = example_body("RouteTableRouteCreate.json", "201")
    with pytest.raises(ArmError) as info:  # route1 of the table already has the example's prefix
        writer.put_route(rt_id, "route2", example["properties"])
    assert info.value.status_code == 400 and info.value.code == "RouteConflict"
    arm.add(route_table("rt1"))
    assert writer.put_route(RT_ID, "route2", example["properties"])["properties"]["nextHopType"] == (
        "VirtualNetworkGateway")


# --- ids --------------------------------------------------------------------------------------------------


def test_parse_resource_id_is_case_insensitive_and_strict():
    parsed = parse_resource_id(
        f"/SUBSCRIPTIONS/{SUB}/resourcegroups/RG-Net/PROVIDERS/microsoft.network/NetworkSecurityGroups/nsg1"
        "/securityRules/r1")
    assert parsed.subscription_id == SUB and parsed.resource_group == "RG-Net" and parsed.name == "r1"
    assert parsed.is_type("Microsoft.Network/networkSecurityGroups/securityRules")
    assert parsed.parent is not None and parsed.parent.is_type("microsoft.network/networksecuritygroups")
    assert parsed.parent.key == NSG_ID.lower()
    assert str(parse_resource_id(NSG_ID)) == NSG_ID
    for bad in ("", "/subscriptions/x", f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/nsg",
                f"/subs/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n"):
        with pytest.raises(ValueError):
            parse_resource_id(bad)


def test_writer_requests_tokens_for_the_endpoint_audience(arm, writer, credential):
    seeded_nsg(arm)
    writer.get_nsg(NSG_ID)
    assert credential.scopes == [(arm.base_url + "/.default",)]
