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
    assert stored is not None and stored["properties"]["securityRules"][0]["etag"] == stored["etag"]
