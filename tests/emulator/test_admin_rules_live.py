"""AVNM security admin rules, the live shell: POST listNetworkManagerEffectiveSecurityAdminRules per VNet.

Sources of the contract:

* the NetworkManagerEffectiveSecurityAdminRulesList example of Azure/azure-rest-api-specs (Network 2025-05-01, copied
  to tests/data/arm): a POST on ``…/virtualNetworks/{vnet}/listNetworkManagerEffectiveSecurityAdminRules`` whose body
  is QueryRequestOptions (``{"skipToken": …}``) and whose 200 response is ``{"value": [...], "skipToken": …}``;
* azure-mgmt-network 33.1 (``NetworkManagementClient.list_network_manager_effective_security_admin_rules`` and its
  request builder): not long-running (200 only), an optional ``$top`` query parameter, the body required;
* the RBAC action ``Microsoft.Network/virtualNetworks/listNetworkManagerEffectiveSecurityAdminRules/action``
  ("Azure permissions for Networking", learn.microsoft.com/azure/role-based-access-control/permissions/networking).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from asr_remediate.azure.network import ArmError, NetworkWriter
from asr_remediate.engine import scan
from asr_remediate.estate import build_estate, parse_admin_rules
from asr_remediate.events import WRITE_SUCCESS
from asr_remediate.runtime import ADMIN_RULES_RESOURCE_TYPE
from examples.make_example_estate import SUB
from tests.emulator.arm_emulator import ArmEmulator, Fault
from tests.emulator.fixtures import FakeCredential, FakeSleep, load, rid
from tests.emulator.test_emulator import call
from tests.emulator.test_end_to_end import SCOPE, make_runtime

EXAMPLE = "NetworkManagerEffectiveSecurityAdminRulesList.json"
POST = r"/listNetworkManagerEffectiveSecurityAdminRules$"


def example_rule() -> dict[str, Any]:
    return copy.deepcopy(load(EXAMPLE)["responses"]["200"]["body"]["value"][0])


def writer(arm: ArmEmulator) -> NetworkWriter:
    return NetworkWriter(FakeCredential(), arm.base_url, ca_bundle=arm.ca_path, sleep=FakeSleep(), polling_interval=0,
                         retry_backoff_factor=0.01)


def numbered(count: int) -> list[dict[str, Any]]:
    """``count`` copies of the real example's entry, told apart by their rule name and priority."""
    rules = []
    for index in range(count):
        rule = example_rule()
        rule["id"] = rule["id"].rsplit("/", 1)[0] + f"/rule{index}"
        rule["properties"]["priority"] = index + 1
        rules.append(rule)
    return rules


def _vnet(arm: ArmEmulator, name: str) -> str:
    return next(doc["id"] for k, doc in arm.resources.items() if k.endswith(f"/virtualnetworks/{name}"))


def _report(result: Any, vm: str) -> Any:
    return next(r for r in result.plan.reports if r.name == vm)


def path_vnets(arm: ArmEmulator) -> set[str]:
    """The VNets that hold a replicated VM's NIC or recovery subnet in the example estate (from the resources
    themselves, not from the code under test)."""
    items = [d for d in arm.resources.values() if "replicationprotecteditems" in d["type"].lower()]
    nics = {d["id"].lower(): d for d in arm.resources.values() if d["type"].lower().endswith("/networkinterfaces")}
    found = set()
    for item in items:
        details = item["properties"]["providerSpecificDetails"]
        found.add(details["selectedRecoveryAzureNetworkId"].lower())
        for entry in details["vmNics"]:
            for config in nics[entry["sourceNicArmId"].lower()]["properties"]["ipConfigurations"]:
                found.add(config["properties"]["subnet"]["id"].lower().rsplit("/subnets/", 1)[0])
    return found


# -- the SDK call and the emulator's contract --------------------------------------------------------------------


def test_every_page_is_read_with_the_skip_token_in_the_body(arm: ArmEmulator) -> None:
    vnet_id = rid("virtualNetworks", "vnet1")
    arm.add({"id": vnet_id, "location": "eastus", "properties": {}})
    arm.admin_rules[vnet_id.lower()] = numbered(5)
    arm.admin_rules_page_size = 2
    entries = writer(arm).list_effective_admin_rules(vnet_id)
    assert [e["id"].rsplit("/", 1)[-1] for e in entries] == [f"rule{i}" for i in range(5)]
    posts = arm.matching("POST", POST)
    assert len(posts) == 3
    assert posts[0].body == {} and all(set(p.body) == {"skipToken"} for p in posts[1:])
    assert all(p.status == 200 and p.query.get("api-version") for p in posts)
    # The real entry comes back as ARM sent it and parses (kind Default, address items, configuration text).
    (rule,) = parse_admin_rules({"value": entries[:1]})
    assert (rule.kind, rule.access, rule.direction, rule.network_manager, rule.configuration, rule.collection) == (
        "default", "deny", "inbound", "testNetworkManager", "myTestSecurityConfig", "testRuleCollection")


def test_the_emulator_is_strict_like_arm(arm: ArmEmulator) -> None:
    vnet_id = rid("virtualNetworks", "vnet1")
    arm.add({"id": vnet_id, "location": "eastus", "properties": {}})
    arm.admin_rules[vnet_id.lower()] = numbered(3)
    arm.admin_rules_page_size = 1
    action = vnet_id + "/listNetworkManagerEffectiveSecurityAdminRules"
    status, first = call(arm, "POST", action + "?api-version=2025-05-01", {})
    assert status == 200 and len(first["value"]) == 1 and first["skipToken"]
    status, second = call(arm, "POST", action + "?api-version=2025-05-01", {"skipToken": first["skipToken"]})
    assert status == 200 and second["value"][0]["id"].endswith("/rule1")
    status, top = call(arm, "POST", action + "?api-version=2025-05-01&$top=3", {})
    assert status == 200 and len(top["value"]) == 3 and "skipToken" not in top
    for query, body, code in (("api-version=2021-02-01-preview", {}, "NoRegisteredProviderFound"),
                              ("api-version=2025-05-01", ["not", "an", "object"], "InvalidRequestContent"),
                              ("api-version=2025-05-01", {"skipToken": "forged"}, "InvalidSkipToken"),
                              ("api-version=2025-05-01&$top=0", {}, "InvalidParameter")):
        status, error = call(arm, "POST", f"{action}?{query}", body)
        assert (status, error["error"]["code"]) == (400, code), query
    other = rid("virtualNetworks", "vnet2")
    arm.add({"id": other, "location": "eastus", "properties": {}})
    status, error = call(arm, "POST", other + "/listNetworkManagerEffectiveSecurityAdminRules?api-version=2025-05-01",
                         {"skipToken": first["skipToken"]})  # another VNet's token
    assert (status, error["error"]["code"]) == (400, "InvalidSkipToken")
    status, error = call(arm, "POST", rid("virtualNetworks", "gone") + "/listNetworkManagerEffectiveSecurityAdminRules"
                         "?api-version=2025-05-01", {})
    assert (status, error["error"]["code"]) == (404, "ResourceNotFound")
    assert call(arm, "GET", action + "?api-version=2025-05-01")[0] == 405


def test_a_skip_token_that_repeats_is_an_error_not_a_loop(arm: ArmEmulator) -> None:
    vnet_id = rid("virtualNetworks", "vnet1")
    arm.add({"id": vnet_id, "location": "eastus", "properties": {}})
    looping = {"value": [example_rule()], "skipToken": "same"}
    arm.inject("POST", POST, Fault(kind="status", status=200, body=looping), times=3)
    with pytest.raises(ArmError, match="skipToken repeats"):
        writer(arm).list_effective_admin_rules(vnet_id)
    assert arm.count("POST", POST) == 2


# -- the runtime: one POST per VNet, cached within a run, warnings instead of failures -----------------------------


def test_one_post_per_vnet_cached_within_the_run_and_export_carries_them(estate_arm: ArmEmulator,
                                                                        tmp_path: Path) -> None:
    """The example estate's replicated VMs share a few VNets: each VNet on a path (source NIC or recovery subnet) is
    read once, and reading the estate again in the same invocation (export after a scan) reuses what was read."""
    arm = estate_arm
    runtime = make_runtime(arm, tmp_path, apply=False)[0]
    result = runtime.run(SCOPE, trigger="cli", actor="test")
    vnets = path_vnets(arm)
    posts = arm.matching("POST", POST)
    assert sorted(p.path.lower().rsplit("/", 1)[0] for p in posts) == sorted(vnets)  # one per VNet, not per VM
    assert len(result.plan.reports) > len(vnets)

    deny = [f for f in _report(result, "vm-data-01").findings if f.kind == "admin-deny"]
    assert deny and not any(f.fixable for f in deny)
    assert "avnm-platform" in deny[0].message and "Deny-Storage-Exfiltration" in deny[0].message
    api = _report(result, "vm-api-01")  # AlwaysAllow over the spoke NSG's Deny-Internet-Out
    assert api.status == "compliant" and not [f for f in api.findings if f.kind == "nsg-deny"]

    exported = runtime.collect(SCOPE)  # the same invocation: the rules are not read again
    assert arm.count("POST", POST) == len(vnets)
    pseudo = [r for r in exported if r["type"] == ADMIN_RULES_RESOURCE_TYPE]
    assert {r["id"].lower().rsplit("/", 1)[0] for r in pseudo} == vnets
    (tmp_path / "estate.json").write_text(json.dumps(exported))
    offline = scan(build_estate(json.loads((tmp_path / "estate.json").read_text())), runtime.service_tags(SUB),
                   runtime.settings)
    assert [(r.name, r.status, sorted(f.kind for f in r.findings)) for r in offline.reports] == [
        (r.name, r.status, sorted(f.kind for f in r.findings)) for r in result.plan.reports]


def test_forbidden_or_absent_reads_are_warnings_on_the_affected_vms_only(estate_arm: ArmEmulator,
                                                                        tmp_path: Path) -> None:
    """A role that predates the action answers 403 AuthorizationFailed. That does not fail the scan: the VMs on that
    VNet get an admin-rules warning naming ARM's reason, every other VNet is read and evaluated."""
    arm = estate_arm
    data = _vnet(arm, "vnet-spoke-data")
    arm.inject("POST", "vnet-spoke-data" + POST, Fault.error(403, "AuthorizationFailed",
                                                             "The client does not have authorization to perform "
                                                             "action 'Microsoft.Network/virtualNetworks/"
                                                             "listNetworkManagerEffectiveSecurityAdminRules/action'"))
    result = make_runtime(arm, tmp_path, apply=False)[0].run(SCOPE, trigger="cli", actor="test")
    (warning,) = [f for f in _report(result, "vm-data-01").findings if f.kind == "admin-rules"]
    assert "AuthorizationFailed" in warning.message and warning.severity == "warning"
    assert warning.resource_id.lower() == data.lower()
    assert not any(f.kind == "admin-deny" for f in _report(result, "vm-data-01").findings)  # not read, not guessed
    others = [r for r in result.plan.reports if r.name != "vm-data-01"]
    assert others and not any(f.kind == "admin-rules" for r in others for f in r.findings)
    assert arm.count("POST", POST) == len(path_vnets(arm))


def test_a_not_found_vnet_gives_the_warning_too(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    arm = estate_arm
    arm.inject("POST", "vnet-spoke-api" + POST, Fault.error(404, "ResourceNotFound", "The Resource was not found."))
    result = make_runtime(arm, tmp_path, apply=False)[0].run(SCOPE, trigger="cli", actor="test")
    (warning,) = [f for f in _report(result, "vm-api-01").findings if f.kind == "admin-rules"]
    assert "ResourceNotFound" in warning.message
    # Without the AlwaysAllow the spoke NSG's Deny-Internet-Out decides again.
    assert any(f.kind == "nsg-deny" for f in _report(result, "vm-api-01").findings)


def test_the_setting_turns_the_reads_off(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    arm = estate_arm
    result = make_runtime(arm, tmp_path, apply=False, read_admin_rules=False)[0].run(SCOPE, trigger="cli",
                                                                                      actor="test")
    assert arm.count("POST", POST) == 0
    assert not any(f.kind in ("admin-deny", "admin-rules") for r in result.plan.reports for f in r.findings)


def test_an_event_reads_only_the_affected_vms_vnets(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    """An NSG change re-evaluates the VMs behind it: their VNets' admin rules are read, not the whole estate's."""
    arm = estate_arm
    spoke_nsg = next(doc["id"] for k, doc in arm.resources.items() if k.endswith("/nsg-spoke-api"))
    event = {"id": "e1", "eventType": WRITE_SUCCESS, "subject": spoke_nsg, "eventTime": "2026-12-02T22:00:00Z",
             "topic": f"/subscriptions/{SUB}", "dataVersion": "", "metadataVersion": "1",
             "data": {"resourceUri": spoke_nsg, "operationName": "Microsoft.Network/networkSecurityGroups/write",
                      "subscriptionId": SUB, "claims": {}}}
    result = make_runtime(arm, tmp_path, apply=False)[0].handle_event(event, actor="test")
    assert [r.name for r in result.plan.reports] == ["vm-api-01"]
    assert _report(result, "vm-api-01").status == "compliant"  # the AlwaysAllow was read for the event too
    read = sorted(p.path.lower().rsplit("/", 1)[0] for p in arm.matching("POST", POST))
    assert read == sorted({_vnet(arm, "vnet-spoke-api").lower(), _vnet(arm, "vnet-dr-centralus").lower()})


def test_a_preflight_reads_the_admin_rules_of_the_vm_it_checks(app_env: ArmEmulator) -> None:
    """A VM not replicated yet is not among the protected items: the preflight reads its own VNets' admin rules (and
    only those), so a network manager's Deny is reported before replication is enabled."""
    import function_app
    from examples.estate_builder import nic, vm
    from examples.estate_builder import rid as arm_id
    from examples.make_example_estate import RG
    from tests.emulator.test_function_app import http, user_function

    data = _vnet(app_env, "vnet-spoke-data")
    dr_vnet = _vnet(app_env, "vnet-dr-centralus")
    vm_id = arm_id(SUB, RG, "Microsoft.Compute", "virtualMachines", "vm-new-data")
    new_nic = nic(SUB, RG, "vm-new-data-nic", "eastus", f"{data}/subnets/snet-data", "10.60.1.40", vm_id)
    app_env.add_all([new_nic, vm(SUB, RG, "vm-new-data", "eastus", [new_nic["id"]])])
    params = {"vm": vm_id, "targetRegion": "centralus", "recoveryVnet": dr_vnet, "recoverySubnet": "snet-web"}
    response = user_function(function_app.preflight)(http("GET", params, route="preflight"))
    assert response.status_code == 200
    (report,) = json.loads(response.get_body())["vms"]
    deny = [f for f in report["findings"] if f["kind"] == "admin-deny"]
    assert deny and not any(f["fixable"] for f in deny) and "Deny-Storage-Exfiltration" in deny[0]["message"]
    read = sorted(p.path.lower().rsplit("/", 1)[0] for p in app_env.matching("POST", POST))
    assert read == sorted({data.lower(), dr_vnet.lower()})


def test_reads_in_parallel_still_honour_throttling_and_keep_their_order(estate_arm: ArmEmulator,
                                                                       tmp_path: Path) -> None:
    """A few VNets are read at a time: a 429 with Retry-After on one of them is retried by the SDK's policy (the
    wait recorded, not slept), and the pseudo-resources come back in VNet order whatever finished first."""
    arm = estate_arm
    arm.inject("POST", "vnet-spoke-data" + POST, Fault.throttle(retry_after=2))
    runtime = make_runtime(arm, tmp_path, apply=False)[0]
    resources = runtime.collect(SCOPE)
    pseudo = [r["id"].lower() for r in resources if r["type"] == ADMIN_RULES_RESOURCE_TYPE]
    assert pseudo == sorted(pseudo) and {p.rsplit("/", 1)[0] for p in pseudo} == path_vnets(arm)
    assert all("value" in r["properties"] for r in resources if r["type"] == ADMIN_RULES_RESOURCE_TYPE)
    throttled = arm.matching("POST", "vnet-spoke-data" + POST)
    assert [r.status for r in throttled] == [429, 200]
