"""The emulator's own contract: auth, api-version, request log, fault queue semantics."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest

from tests.emulator.arm_emulator import Fault, parse_query
from tests.emulator.fixtures import nsg, rid


def call(arm, method, path, body=None, token="Bearer t"):
    context = ssl.create_default_context(cafile=arm.ca_path)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(arm.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **({"Authorization": token}
                                                                                      if token else {})})
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_requires_a_bearer_token_and_an_api_version(arm):
    arm.add(nsg("nsg1"))
    path = rid("networkSecurityGroups", "nsg1")
    assert call(arm, "GET", path + "?api-version=2026-03-01", token=None)[0] == 401
    status, body = call(arm, "GET", path)
    assert status == 400 and body["error"]["code"] == "MissingApiVersionParameter"
    assert call(arm, "GET", path + "?api-version=2026-03-01")[0] == 200
    assert [r.status for r in arm.requests] == [401, 400, 200]


def test_faults_are_consumed_in_order_and_only_on_matching_requests(arm):
    arm.add(nsg("nsg1"))
    path = rid("networkSecurityGroups", "nsg1") + "?api-version=x"
    arm.inject("GET", "routeTables", Fault.error(500))
    arm.inject("GET", "networkSecurityGroups", Fault.error(502, "BadGateway"), times=2)
    assert [call(arm, "GET", path)[0] for _ in range(3)] == [502, 502, 200]
    assert [r.fault for r in arm.requests] == ["http-502", "http-502", None]


def test_unknown_query_forms_are_rejected():
    with pytest.raises(ValueError):
        parse_query("resources | where name contains 'x'")
    with pytest.raises(ValueError):
        parse_query("securityresources | project id")


def test_arg_pages_and_skip_token(arm):
    for i in range(5):
        arm.add(nsg(f"n{i}"))
    query = "resources | where type =~ 'microsoft.network/networksecuritygroups' | project id, name | order by id asc"
    body = {"subscriptions": [rid("x", "y").split("/")[2]], "query": query, "options": {"$top": 2}}
    status, first = call(arm, "POST", "/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01", body)
    assert status == 200 and first["totalRecords"] == 5 and first["count"] == 2 and first["resultTruncated"] == "false"
    assert set(first["data"][0]) == {"id", "name"}
    body["options"] = {"$top": 2, "$skipToken": first["$skipToken"]}
    _, second = call(arm, "POST", "/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01", body)
    assert second["data"][0]["name"] == "n2"
    body["options"] = {"$skipToken": "garbage"}
    assert call(arm, "POST", "/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01", body)[0] == 400


def test_nsg_put_validates_rules_and_keeps_default_rules(arm):
    from tests.emulator.fixtures import rule_props

    path = rid("networkSecurityGroups", "nsg9") + "?api-version=2026-03-01"
    dup = {"location": "eastus", "properties": {"securityRules": [
        {"name": "a", "properties": rule_props(300)}, {"name": "b", "properties": rule_props(300)}]}}
    status, body = call(arm, "PUT", path, dup)
    assert status == 400 and body["error"]["code"] == "SecurityRuleConflict"
    ok = {"location": "eastus", "properties": {"securityRules": [{"name": "a", "properties": rule_props(300)}]}}
    status, body = call(arm, "PUT", path, ok)
    assert status == 201 and body["properties"]["provisioningState"] == "Updating"
    assert len(body["properties"]["defaultSecurityRules"]) == 6
    assert arm.requests[-1].status == 201
    stored = arm.resource(rid("networkSecurityGroups", "nsg9"))
    assert stored is not None and stored["properties"]["securityRules"][0]["etag"] not in ("", None, stored["etag"])



# --- the ARM contract the emulator enforces as strictly as ARM (see the module docstring of arm_emulator) ---------

RULE_PATH = rid("networkSecurityGroups", "nsg1") + "/securityRules/r1?api-version=2025-05-01"


def _rule_body(priority=300, **extra):
    from tests.emulator.fixtures import rule_props

    return {"properties": rule_props(priority, **extra)}


def call_with(arm, method, path, body=None, **headers):
    context = ssl.create_default_context(cafile=arm.ca_path)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(arm.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer t",
                                              **headers})
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null"), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null"), dict(err.headers)


def test_if_match_on_a_child_that_does_not_exist_is_412(arm):
    """ARM RPC (Azure/azure-resource-manager-rpc, "ETags for Resources"): If-Match on a resource that does not
    exist fails the precondition. A create must therefore carry no If-Match at all."""
    arm.add(nsg("nsg1"))
    parent_etag = arm.resource(rid("networkSecurityGroups", "nsg1"))["etag"]
    status, body, _ = call_with(arm, "PUT", RULE_PATH, _rule_body(), **{"If-Match": parent_etag})
    assert status == 412 and body["error"]["code"] == "PreconditionFailed"
    assert call_with(arm, "PUT", RULE_PATH, _rule_body(), **{"If-Match": "*"})[0] == 412
    assert call_with(arm, "PUT", RULE_PATH, _rule_body())[0] == 201


def test_child_etags_are_their_own_and_if_match_compares_with_the_childs(arm):
    """A nested resource has its own etag: writing one rule changes that rule's etag (and the NSG's), not the
    etags of its siblings; If-Match on an update is compared with the child's etag, not the parent's."""
    arm.add(nsg("nsg1", {"other": {"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22",
                                   "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "access": "Deny",
                                   "priority": 200, "direction": "Inbound"}}))
    call_with(arm, "PUT", RULE_PATH, _rule_body())
    nsg_doc = arm.resource(rid("networkSecurityGroups", "nsg1"))
    children = {c["name"]: c["etag"] for c in nsg_doc["properties"]["securityRules"]}
    assert children["r1"] != children["other"] and nsg_doc["etag"] not in children.values()
    status, _, _ = call_with(arm, "PUT", RULE_PATH, _rule_body(310), **{"If-Match": nsg_doc["etag"]})
    assert status == 412
    status, rule, _ = call_with(arm, "PUT", RULE_PATH, _rule_body(310), **{"If-Match": children["r1"]})
    assert status == 200 and rule["etag"] != children["r1"]
    after = {c["name"]: c["etag"] for c in arm.resource(rid("networkSecurityGroups", "nsg1"))["properties"][
        "securityRules"]}
    assert after["other"] == children["other"]
    status, _, _ = call_with(arm, "DELETE", RULE_PATH, **{"If-Match": children["r1"]})
    assert status == 412
    assert call_with(arm, "DELETE", RULE_PATH, **{"If-Match": after["r1"]})[0] == 202


def test_if_none_match_star_on_an_existing_resource_is_412(arm):
    arm.add(nsg("nsg1"))
    assert call_with(arm, "PUT", RULE_PATH, _rule_body(), **{"If-None-Match": "*"})[0] == 201
    status, body, _ = call_with(arm, "PUT", RULE_PATH, _rule_body(), **{"If-None-Match": "*"})
    assert status == 412 and body["error"]["code"] == "PreconditionFailed"


def test_rule_prefixes_and_tags_are_validated(arm):
    arm.add(nsg("nsg1"))
    arm.service_tags = {"values": [{"name": "Storage.EastUS", "properties": {"addressPrefixes": ["20.38.98.0/24"]}}]}
    assert call_with(arm, "PUT", RULE_PATH, _rule_body(dest="Storage.EastUS"))[0] == 201
    status, body, _ = call_with(arm, "PUT", RULE_PATH, _rule_body(dest="Storage.Nowhere"))
    assert status == 400 and body["error"]["code"] == "SecurityRuleInvalidAddressPrefix"
    status, body, _ = call_with(arm, "PUT", RULE_PATH, _rule_body(dest="10.0.0.0/33"))
    assert status == 400 and body["error"]["code"] == "SecurityRuleInvalidAddressPrefix"
    listed = _rule_body(dest=None, destinationAddressPrefixes=["10.0.0.0/8", "Storage.EastUS"])
    del listed["properties"]["destinationAddressPrefix"]
    status, body, _ = call_with(arm, "PUT", RULE_PATH, listed)
    assert status == 400 and body["error"]["code"] == "SecurityRuleParameterContainsUnsupportedValue"
    status, body, _ = call_with(arm, "PUT", RULE_PATH, _rule_body(description="x" * 141))
    assert status == 400


ROUTES = rid("routeTables", "rt1")


def _route(arm, name, prefix, hop="Internet"):
    return call_with(arm, "PUT", f"{ROUTES}/routes/{name}?api-version=2025-05-01",
                     {"properties": {"addressPrefix": prefix, "nextHopType": hop}})


def test_routes_one_per_prefix_400_per_table_25_tag_routes_and_valid_prefixes(arm):
    """Azure networking limits: 400 routes per route table, 25 service-tag routes per table; a table holds one
    route per address prefix; a route prefix is a CIDR (network address) or a service tag."""
    from tests.emulator.fixtures import route_table

    arm.add(route_table("rt1"))
    arm.service_tags = {"values": [{"name": f"Tag{i}", "properties": {"addressPrefixes": []}} for i in range(30)]}
    assert _route(arm, "a", "10.1.0.0/16")[0] == 201
    status, body, _ = _route(arm, "b", "10.1.0.0/16")
    assert status == 400 and body["error"]["code"] == "RouteConflict"
    assert _route(arm, "a", "10.1.0.0/16", "None")[0] == 200  # the same route may keep its prefix
    assert _route(arm, "c", "10.1.0.1/16")[1]["error"]["code"] == "InvalidCIDRNotation"
    assert _route(arm, "c", "NoSuchTag")[1]["error"]["code"] == "InvalidRouteAddressPrefix"
    for i in range(25):
        assert _route(arm, f"t{i}", f"Tag{i}")[0] == 201
    status, body, _ = _route(arm, "t25", "Tag25")
    assert status == 400 and body["error"]["code"] == "LimitExceeded"
    for i in range(374):
        assert _route(arm, f"p{i}", f"10.{2 + i // 256}.{i % 256}.0/24")[0] == 201
    status, body, _ = _route(arm, "p-last", "10.200.0.0/24")
    assert status == 400 and body["error"]["code"] == "LimitExceeded"


def test_effective_route_table_is_a_long_running_post_that_fails_for_a_stopped_vm(arm):
    """NetworkInterfaces_GetEffectiveRouteTable is a long-running POST: 202 + Location, the Location answers 202
    until done (NetworkInterfaceEffectiveRouteTableList.json has the 202 with a Location header)."""
    vm_id = rid("virtualMachines", "vm1", provider="Microsoft.Compute")
    nic_id = rid("networkInterfaces", "nic1")
    arm.add({"id": vm_id, "location": "eastus", "properties": {}})
    arm.add({"id": nic_id, "location": "eastus", "properties": {"virtualMachine": {"id": vm_id}}})
    status, _, headers = call_with(arm, "POST", nic_id + "/effectiveRouteTable?api-version=2025-05-01")
    location = headers["Location"]
    assert status == 202 and "/operationResults/" in location
    path = location.replace(arm.base_url, "")
    assert call_with(arm, "GET", path)[0] == 202
    status, body, _ = call_with(arm, "GET", path)
    assert status == 200 and body["value"][0]["nextHopType"] == "Internet"
    arm.resources[vm_id.lower()]["properties"]["extended"] = {
        "instanceView": {"powerState": {"code": "PowerState/deallocated"}}}
    _, _, headers = call_with(arm, "POST", nic_id + "/effectiveRouteTable?api-version=2025-05-01")
    path = headers["Location"].replace(arm.base_url, "")
    call_with(arm, "GET", path)
    status, body, _ = call_with(arm, "GET", path)
    assert status == 400 and "running" in body["error"]["message"]
