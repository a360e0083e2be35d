"""The Azure Firewall inventory, live: Resource Graph returns the firewalls, policies and IP groups (``resources``
table), the rule collection groups come from one ARM list per policy on a replicated VM's path (parents followed,
also across subscriptions), a failed read is a warning on the VMs behind that firewall, and ``export`` carries it all
so ``scan --estate`` gives the same answer. Real SDK clients against the HTTPS ARM emulator.

Sources: the list is FirewallPolicyRuleCollectionGroups_List (azure-rest-api-specs, Microsoft.Network
firewallPolicyRuleCollectionGroup.json); the type reference of Resource Graph lists
``microsoft.network/firewallpolicies/rulecollectiongroups`` only under ``networkresources``
(learn.microsoft.com/azure/governance/resource-graph/reference/supported-tables-resources), so the emulator's
``resources`` table does not return them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from asr_remediate import cli
from asr_remediate.azure.firewalls import firewalls_on_paths
from asr_remediate.azure.network import NetworkWriter
from asr_remediate.config import Settings
from asr_remediate.drift import DRIFT, UNKNOWN
from asr_remediate.estate import build_estate
from asr_remediate.runtime import Runtime, Scope
from examples.estate_builder import firewall_policy, network_rule, rule_collection, rule_collection_group
from tests.emulator.arm_emulator import ArmEmulator, Fault
from tests.emulator.fixtures import FakeCredential, FakeSleep
from tests.scenario import REPO, scan_resources
from tests.test_firewall import HUB_RG, group, hub, policy_estate

TAGS_FILE = REPO / "examples" / "ServiceTags_Public_20251028.json"
OTHER_SUB = "00000000-0000-0000-0000-0000000000ee"  # a platform subscription outside the scan
LIST = r"/firewallPolicies/[^/]+/ruleCollectionGroups$"


def deny_storage() -> list[dict[str, Any]]:
    return [group("platform", 200, rule_collection("egress-deny", 300, "Deny", [
        network_rule("no-storage", ["*"], ["Storage"])]))]


def subscriptions(resources: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(sorted({r["id"].split("/")[2].lower() for r in resources} - {OTHER_SUB}))


def runtime(arm: ArmEmulator, subs: tuple[str, ...]) -> Runtime:
    settings = Settings(arm_endpoint=arm.base_url, arm_ca_bundle=arm.ca_path, subscriptions=subs)
    sleep = FakeSleep()
    network = NetworkWriter(FakeCredential(), arm.base_url, ca_bundle=arm.ca_path, sleep=sleep, polling_interval=0,
                            retry_backoff_factor=0.01)
    return Runtime(settings, FakeCredential(), network=network, progress=lambda _m: None,
                   inventory_kwargs={"sleep": sleep})


def seeded(arm: ArmEmulator, resources: list[dict[str, Any]]) -> None:
    arm.add_all(resources)
    arm.service_tags = json.loads(TAGS_FILE.read_text())


def findings(result: Any) -> list[tuple[str, str, str]]:
    [report] = result.plan.reports
    return sorted((f.kind, f.side, f.destination) for f in report.findings)


def test_groups_come_from_one_arm_list_per_policy_and_the_live_scan_equals_the_offline_one(arm: ArmEmulator) -> None:
    resources = hub(*policy_estate(deny_storage(), [group("base", 100, rule_collection("allow-aad", 100, "Allow", [
        network_rule("aad", ["*"], ["AzureActiveDirectory"])]))]))
    seeded(arm, resources)
    subs = subscriptions(resources)
    collected = runtime(arm, subs).collect(Scope(subs))
    assert arm.count("GET", LIST) == 2  # the child policy and its parent, each listed once
    assert arm.count("GET", r"/firewallPolicies/[^/]+$") == 0  # both came from Resource Graph
    types = {str(r["type"]).lower() for r in collected}
    assert {"microsoft.network/azurefirewalls", "microsoft.network/firewallpolicies",
            "microsoft.network/firewallpolicies/rulecollectiongroups"} <= types
    result = runtime(arm, subs).run(Scope(subs), trigger="cli", actor="test")
    offline = scan_resources(resources)
    assert result.plan.reports[0].status == DRIFT
    assert ("firewall-deny", "source", "Storage.EastUS") in findings(result)
    assert findings(result) == sorted((f.kind, f.side, f.destination) for f in offline.reports[0].findings)


def test_a_firewall_off_every_path_costs_no_arm_call(arm: ArmEmulator) -> None:
    """The spoke's 0.0.0.0/0 goes to another appliance: the hub firewall is in the inventory but on no path."""
    resources = hub(*policy_estate(deny_storage()), routes=[("to-nva", "0.0.0.0/0", "VirtualAppliance", "10.0.9.4")])
    assert firewalls_on_paths(build_estate(resources)) == []
    seeded(arm, resources)
    subs = subscriptions(resources)
    runtime(arm, subs).collect(Scope(subs))
    assert arm.count("GET", r"/firewallPolicies/") == 0


def test_a_parent_policy_in_another_subscription_is_read_from_arm(arm: ArmEmulator) -> None:
    """Platform teams keep the parent (basePolicy) in their own subscription, outside ASR_SUBSCRIPTIONS: one GET of it
    and one list of its groups; its deny is found and named as the parent's."""
    parent = firewall_policy(OTHER_SUB, HUB_RG, "platform-base", "eastus", group_names=["base"])
    parent_group = rule_collection_group(parent["id"], "base", 100, [rule_collection("deny-storage", 100, "Deny", [
        network_rule("no-storage", ["*"], ["Storage"])])])
    resources = hub(*policy_estate([]))
    for resource in resources:
        if resource["id"].lower().endswith("/firewallpolicies/child"):
            resource["properties"]["basePolicy"] = {"id": parent["id"]}
    seeded(arm, [*resources, parent, parent_group])
    subs = subscriptions(resources)
    result = runtime(arm, subs).run(Scope(subs), trigger="cli", actor="test")
    assert arm.count("GET", r"/firewallPolicies/platform-base$") == 1
    assert arm.count("GET", LIST) == 2
    denied = [f for f in result.plan.reports[0].findings
              if f.kind == "firewall-deny" and f.destination.startswith("Storage")]
    assert denied and all("platform-base" in f.message and "no-storage" in f.message for f in denied)


@pytest.mark.parametrize("status, code", [(403, "AuthorizationFailed"), (404, "ResourceNotFound")])
def test_a_failed_list_is_a_warning_on_the_vms_behind_that_firewall_not_a_failed_scan(
        arm: ArmEmulator, status: int, code: str) -> None:
    resources = hub(*policy_estate(deny_storage()))
    seeded(arm, resources)
    arm.inject("GET", LIST, Fault.error(status, code, "The client does not have authorization to perform action "
                                                      "'Microsoft.Network/firewallPolicies/ruleCollectionGroups/read'"),
               times=10)
    subs = subscriptions(resources)
    result = runtime(arm, subs).run(Scope(subs), trigger="cli", actor="test")
    [report] = result.plan.reports
    assert report.status == UNKNOWN
    unknown = [f for f in report.findings if f.kind == "unknown" and "firewallPolicies/child" in f.resource_id]
    assert unknown and all(f.severity == "warning" and code in f.message and "rule collection groups" in f.message
                           for f in unknown)
    assert not [f for f in report.findings if f.kind == "firewall-deny"]  # nothing claimed about unread rules


def test_export_carries_the_firewall_so_an_offline_scan_agrees(arm: ArmEmulator, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    resources = hub(*policy_estate(deny_storage()))
    seeded(arm, resources)
    subs = subscriptions(resources)
    monkeypatch.setattr(cli, "RUNTIME_CREDENTIAL", FakeCredential())
    monkeypatch.setenv("ASR_ARM_ENDPOINT", arm.base_url)
    monkeypatch.setenv("ASR_ARM_CA_BUNDLE", arm.ca_path)
    assert cli.main(["scan", "--subscription", *subs, "--format", "json"]) == 2
    live = json.loads(capsys.readouterr().out)
    exported = tmp_path / "estate.json"
    assert cli.main(["export", "--subscription", *subs, "-o", str(exported)]) == 0
    capsys.readouterr()
    rows = json.loads(exported.read_text())
    assert any(str(r["type"]).lower() == "microsoft.network/firewallpolicies/rulecollectiongroups" for r in rows)
    assert cli.main(["scan", "--estate", str(exported), "--service-tags", str(TAGS_FILE), "--format", "json"]) == 2
    assert json.loads(capsys.readouterr().out) == live
    assert any(f["kind"] == "firewall-deny" for vm in live["vms"] for f in vm["findings"])


# -- events: writes to a firewall, its policy or a rule collection group re-evaluate the VMs behind it -----------------

def write_event(resource_id: str, operation: str, *, delete: bool = False) -> dict[str, Any]:
    from tests.emulator.test_events import event

    return event(resource_id, operation, delete=delete)


def policy_id(resources: list[dict[str, Any]], name: str) -> str:
    return next(r["id"] for r in resources if r["id"].lower().endswith(f"/firewallpolicies/{name}"))


@pytest.mark.parametrize("target, operation", [
    ("child/ruleCollectionGroups/platform", "Microsoft.Network/firewallPolicies/ruleCollectionGroups/write"),
    ("child", "Microsoft.Network/firewallPolicies/write"),
    ("parent", "Microsoft.Network/firewallPolicies/write"),
    ("fw-hub", "Microsoft.Network/azureFirewalls/write"),
])
def test_a_firewall_policy_or_group_write_re_evaluates_the_vms_behind_the_firewall(
        arm: ArmEmulator, target: str, operation: str) -> None:
    resources = hub(*policy_estate(deny_storage(), [group("base", 100, rule_collection("allow-aad", 100, "Allow", [
        network_rule("aad", ["*"], ["AzureActiveDirectory"])]))]))
    seeded(arm, resources)
    subs = subscriptions(resources)
    if target == "fw-hub":
        resource_id = next(r["id"] for r in resources if r["id"].lower().endswith("/azurefirewalls/fw-hub"))
    else:
        name, _, rest = target.partition("/")
        resource_id = policy_id(resources, name) + (f"/{rest}" if rest else "")
    result = runtime(arm, subs).handle_event(write_event(resource_id, operation), actor="test")
    [report] = result.plan.reports
    assert report.status == DRIFT and any(f.kind == "firewall-deny" for f in report.findings)
    assert result.recheck == ""  # Resource Graph already holds ARM's copy
    if target == "fw-hub":
        assert arm.count("GET", r"/azureFirewalls/fw-hub$") == 1  # re-read from ARM
    elif "/" not in target:
        assert arm.count("GET", rf"/firewallPolicies/{target}$") == 1


def test_a_rule_collection_group_fix_by_someone_else_is_seen_by_its_event(arm: ArmEmulator) -> None:
    """Someone adds an Allow group ahead of the deny: the event's evaluation reads the groups from ARM, not Resource
    Graph, and finds the VM compliant on that firewall."""
    resources = hub(*policy_estate(deny_storage()))
    seeded(arm, resources)
    subs = subscriptions(resources)
    child = policy_id(resources, "child")
    allow = rule_collection_group(child, "asr-by-hand", 150, [rule_collection("asr", 100, "Allow", [
        network_rule("asr", ["*"], ["AzureActiveDirectory", "Storage", "EventHub", "AzureSiteRecovery"])])])
    indexed = arm.resource(child)
    with NetworkWriter(FakeCredential(), arm.base_url, ca_bundle=arm.ca_path, sleep=FakeSleep(), polling_interval=0,
                       retry_backoff_factor=0.01) as other_writer:
        other_writer.put_rule_collection_group(child, "asr-by-hand", allow["properties"])
    arm.arg_lag[child.lower()] = indexed  # Resource Graph's policy does not list the new group yet
    result = runtime(arm, subs).handle_event(write_event(allow["id"], "Microsoft.Network/firewallPolicies/"
                                                                      "ruleCollectionGroups/write"), actor="test")
    [report] = result.plan.reports
    assert not [f for f in report.findings if f.kind == "firewall-deny"]


def test_an_event_on_a_firewall_no_replicated_vm_uses_evaluates_nothing(arm: ArmEmulator) -> None:
    resources = hub(*policy_estate(deny_storage()), routes=[("to-nva", "0.0.0.0/0", "VirtualAppliance", "10.0.9.4")])
    seeded(arm, resources)
    subs = subscriptions(resources)
    result = runtime(arm, subs).handle_event(write_event(policy_id(resources, "child"),
                                                         "Microsoft.Network/firewallPolicies/write"), actor="test")
    assert result.plan.reports == () and "no replicated VM uses" in result.note


def test_a_deleted_firewall_re_evaluates_the_vms_that_routed_to_it(arm: ArmEmulator) -> None:
    resources = hub(*policy_estate(deny_storage()))
    seeded(arm, resources)
    subs = subscriptions(resources)
    firewall = next(r["id"] for r in resources if r["id"].lower().endswith("/azurefirewalls/fw-hub"))
    arm.arg_lag[firewall.lower()] = arm.resource(firewall)
    del arm.resources[firewall.lower()]  # gone from ARM, still in Resource Graph
    result = runtime(arm, subs).handle_event(write_event(firewall, "Microsoft.Network/azureFirewalls/delete",
                                                         delete=True), actor="test")
    assert len(result.plan.reports) == 1, result.note
    [report] = result.plan.reports
    assert any(f.kind == "route-appliance" for f in report.findings)  # the route now goes to an unknown appliance


def test_the_benchmark_estate_lists_each_firewall_policy_on_a_path_once_and_scans_as_offline(arm: ArmEmulator) -> None:
    """The live benchmark's estate (benchmarks.generate, 200 VMs): the groups are served under their policies, the
    scan lists exactly the policies benchmarks.live.path_firewall_policies counts from the ARM JSON, reads no policy
    (Resource Graph has them all), and its firewall findings are the offline scan's of the same resources."""
    from benchmarks.generate import generate
    from benchmarks.live import path_firewall_policies

    synthetic = generate(200)
    seeded(arm, synthetic.resources)
    subs = tuple(synthetic.subscriptions)
    result = runtime(arm, subs).run(Scope(subs), trigger="cli", actor="test")
    listed = {r.path.lower().rsplit("/rulecollectiongroups", 1)[0] for r in arm.requests
              if r.method == "GET" and r.path.lower().endswith("/rulecollectiongroups")}
    expected = path_firewall_policies(synthetic.resources)
    assert expected and {p.split("/subscriptions/", 1)[1] for p in listed} == {
        p.split("/subscriptions/", 1)[1] for p in expected}
    assert arm.count("GET", LIST) == len(expected)
    assert arm.count("GET", r"/firewallPolicies/[^/]+$") == 0
    offline = scan_resources(synthetic.resources)

    def on_firewalls(plan: Any) -> list[tuple[str, str, str, str]]:
        return sorted((r.id.lower(), f.kind, f.side, f.destination) for r in plan.reports for f in r.findings
                      if "/azurefirewalls/" in f.resource_id.lower())

    assert on_firewalls(result.plan) and on_firewalls(result.plan) == on_firewalls(offline)
