"""The firewall fix written through the real SDK (azure-mgmt-network FirewallPolicyRuleCollectionGroups) against the
HTTPS ARM emulator: plan → guarded apply → rescan from ARM compliant; report-only without ASR_APPLY_FIREWALL;
If-Match only on an update of the bot's own group; scope allowlist, opt-out tag and rollback; the emulator's
strictness on rule collection groups (long-running PUT whose content errors fail the operation, as Azure reports them:
Azure/azure-rest-api-specs#11831 "The async operation failed … FirewallPolicyRuleConditionInvalidPortOrRangeFormat").
"""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from asr_remediate.audit import Auditor, JsonlAuditSink, utc_now
from asr_remediate.azure.network import ArmError, NetworkWriter
from asr_remediate.config import Settings
from asr_remediate.engine import scan
from asr_remediate.estate import build_estate
from asr_remediate.firewall_planner import CREATE_GROUP, FIREWALL_GROUP, UPDATE_GROUP
from asr_remediate.planner import Plan
from asr_remediate.service import (
    APPLIED,
    DEFERRED,
    FAILED,
    LANDED,
    PLANNED,
    SKIPPED,
    UNCHANGED,
    Applier,
    read_policy_document,
    reconcile,
    rollback,
)
from examples.estate_builder import network_rule, rule_collection
from tests.emulator.arm_emulator import ArmEmulator, Fault
from tests.emulator.fixtures import FakeCredential, FakeSleep
from tests.scenario import SUB, full_tags
from tests.test_firewall import group, hub, policy_estate

POLICY = f"/subscriptions/{SUB}/resourceGroups/rg-hub/providers/Microsoft.Network/firewallPolicies/child"
GROUP_PATH = r"/firewallPolicies/child/ruleCollectionGroups/asr-remediate$"


def resources() -> list[dict[str, Any]]:
    """The spoke VM behind the hub firewall, whose policy denies Storage in group 200 and the rest by default."""
    return hub(*policy_estate([group("platform", 200, rule_collection("egress-deny", 300, "Deny", [
        network_rule("no-storage", ["*"], ["Storage"])]))]))


def writer(arm: ArmEmulator) -> NetworkWriter:
    return NetworkWriter(FakeCredential(), arm.base_url, ca_bundle=arm.ca_path, sleep=FakeSleep(), polling_interval=0,
                         retry_backoff_factor=0.01)


def settings(arm: ArmEmulator, **overrides: Any) -> Settings:
    options: dict[str, Any] = {"apply": True, "apply_firewall": True, "scope_allowlist": (f"/subscriptions/{SUB}",),
                               **overrides}
    return Settings(arm_endpoint=arm.base_url, arm_ca_bundle=arm.ca_path, **options)


def from_arm(arm: ArmEmulator, network: NetworkWriter, seed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The estate's resources with the policy and its groups as ARM has them now (read through the SDK)."""
    document = read_policy_document(network, POLICY)
    groups = document["properties"].pop("ruleCollectionGroups")
    document["properties"]["ruleCollectionGroups"] = [{"id": g["id"]} for g in groups]
    kept = [r for r in seed if "/firewallpolicies/child" not in r["id"].lower()]
    return [*kept, document, *groups]


def apply_plan(arm: ArmEmulator, tmp_path: Path, seed: list[dict[str, Any]], config: Settings,
               network: NetworkWriter) -> tuple[Plan, Any, JsonlAuditSink]:
    estate = build_estate(seed)
    plan = scan(estate, full_tags(), config)
    sink = JsonlAuditSink(tmp_path / "audit.jsonl")
    auditor = Auditor(sink, trigger="cli", actor="test")
    result = Applier(estate, full_tags(), config, network, auditor).apply(plan)
    return plan, result, sink


def firewall_denies(seed: list[dict[str, Any]], config: Settings) -> list[str]:
    plan = scan(build_estate(seed), full_tags(), config)
    return [f.destination for r in plan.reports for f in r.findings if f.kind == "firewall-deny"]


@pytest.fixture
def fw_arm(arm: ArmEmulator) -> ArmEmulator:
    arm.add_all(resources())
    return arm


def test_apply_then_rescan_from_arm_is_compliant(fw_arm: ArmEmulator, tmp_path: Path) -> None:
    arm, seed = fw_arm, resources()
    with writer(arm) as network:
        config = settings(arm)
        plan, result, sink = apply_plan(arm, tmp_path, seed, config, network)
        [change] = [c for c in plan.changes if c.child_type == "ruleCollectionGroups"]
        assert change.action == CREATE_GROUP and change.properties["priority"] == 199
        assert [o.result for o in result.outcomes] == [APPLIED]
        [put] = arm.matching("PUT", GROUP_PATH)
        assert put.header("If-Match") is None  # a create carries none (ARM: 412 on a resource that does not exist)
        assert put.body == {"properties": dict(change.properties)}  # the SDK sent exactly the planned group
        assert arm.count("GET", r"/operations/") >= 1  # long-running: polled to the end
        stored = arm.resource(f"{POLICY}/ruleCollectionGroups/{FIREWALL_GROUP}")
        assert stored is not None and stored["properties"]["provisioningState"] == "Succeeded"
        policy = arm.resource(POLICY)
        assert policy is not None and any(g["id"].endswith("/asr-remediate")
                                          for g in policy["properties"]["ruleCollectionGroups"])
        after = from_arm(arm, network, seed)
    assert firewall_denies(seed, config) and firewall_denies(after, config) == []
    assert scan(build_estate(after), full_tags(), config).reports[0].status == "compliant"
    records = sink.records(result.run_id)
    assert [(r.phase, r.action, r.result) for r in records] == [
        ("intent", CREATE_GROUP, "pending"), ("outcome", CREATE_GROUP, "succeeded")]
    assert records[1].after_etag == stored["etag"]


def test_without_asr_apply_firewall_nothing_is_written(fw_arm: ArmEmulator, tmp_path: Path) -> None:
    with writer(fw_arm) as network:
        plan, result, _ = apply_plan(fw_arm, tmp_path, resources(), settings(fw_arm, apply_firewall=False), network)
    assert any(c.child_type == "ruleCollectionGroups" for c in plan.changes)  # planned, and shown …
    assert [o.result for o in result.outcomes] == [SKIPPED]  # … but report-only
    assert "ASR_APPLY_FIREWALL" in result.outcomes[0].detail
    assert fw_arm.count("PUT") == 0


def test_outside_the_allowlist_or_opted_out_nothing_is_written(fw_arm: ArmEmulator, tmp_path: Path) -> None:
    with writer(fw_arm) as network:
        other = settings(fw_arm, scope_allowlist=(f"/subscriptions/{SUB}/resourceGroups/rg-src",))
        _, result, _ = apply_plan(fw_arm, tmp_path, resources(), other, network)
        assert [o.result for o in result.outcomes] == [SKIPPED]
        # Opted out in ARM after the snapshot: the re-read right before the write sees it.
        fw_arm.resources[POLICY.lower()]["tags"] = {"asr-remediate-opt-out": "true"}
        _, result, _ = apply_plan(fw_arm, tmp_path, resources(), settings(fw_arm), network)
    assert [o.result for o in result.outcomes] == [UNCHANGED] and "opted out" in result.outcomes[0].detail
    assert fw_arm.count("PUT") == 0


def test_an_update_of_the_bots_group_carries_its_etag_and_keeps_what_it_allowed(fw_arm: ArmEmulator,
                                                                                  tmp_path: Path) -> None:
    arm, seed = fw_arm, resources()
    with writer(arm) as network:
        config = settings(arm)
        apply_plan(arm, tmp_path, seed, config, network)
        # Someone drops one of the bot's rules and adds a sender of their own to another.
        stored = arm.resources[f"{POLICY}/ruleCollectionGroups/{FIREWALL_GROUP}".lower()]
        rules = stored["properties"]["ruleCollections"][0]["rules"]
        rules[:] = [r for r in rules if r["name"] != "asr-remediate-AzureSiteRecovery"]
        rules[0]["sourceAddresses"].append("10.9.9.0/24")
        etag = stored["etag"]
        current = from_arm(arm, network, seed)
        arm.clear_log()
        plan, result, _ = apply_plan(arm, tmp_path, current, config, network)
        [change] = [c for c in plan.changes if c.child_type == "ruleCollectionGroups"]
        assert change.action == UPDATE_GROUP and [o.result for o in result.outcomes] == [APPLIED]
        [put] = arm.matching("PUT", GROUP_PATH)
        assert put.header("If-Match") == etag
        written = put.body["properties"]["ruleCollections"][0]["rules"]
        assert "10.9.9.0/24" in written[0]["sourceAddresses"]  # never drops a sender it already allows
        assert firewall_denies(from_arm(arm, network, seed), config) == []


def test_a_lost_race_on_the_etag_is_re_planned_once(fw_arm: ArmEmulator, tmp_path: Path) -> None:
    arm, seed = fw_arm, resources()
    with writer(arm) as network:
        config = settings(arm)
        apply_plan(arm, tmp_path, seed, config, network)
        stored = arm.resources[f"{POLICY}/ruleCollectionGroups/{FIREWALL_GROUP}".lower()]
        stored["properties"]["ruleCollections"][0]["rules"].pop()
        current = from_arm(arm, network, seed)
        arm.clear_log()
        arm.inject("PUT", GROUP_PATH, Fault.error(412, "PreconditionFailed", "etag moved"))
        _, result, sink = apply_plan(arm, tmp_path, current, config, network)
    assert [o.result for o in result.outcomes] == [APPLIED]
    assert arm.count("PUT", GROUP_PATH) == 2
    results = [r.result for r in sink.records(result.run_id) if r.phase == "outcome"]
    assert results == ["failed", "succeeded"]  # the lost race is audited too


def test_rollback_deletes_only_the_bots_group_and_only_when_unchanged(fw_arm: ArmEmulator, tmp_path: Path) -> None:
    arm, seed = fw_arm, resources()
    with writer(arm) as network:
        config = settings(arm)
        _, result, sink = apply_plan(arm, tmp_path, seed, config, network)
        records = sink.records(result.run_id)
        auditor = Auditor(sink, trigger="cli", actor="test")
        report_only = rollback(records, network, auditor, settings(arm, apply_firewall=False), apply=True)
        assert [o.result for o in report_only] == [PLANNED] and arm.count("DELETE") == 0
        group_id = f"{POLICY}/ruleCollectionGroups/{FIREWALL_GROUP}".lower()
        original = copy.deepcopy(arm.resources[group_id])
        arm.resources[group_id]["properties"]["priority"] = 150  # changed since the run wrote it
        changed = rollback(records, network, auditor, config, apply=True)
        assert [o.result for o in changed] == [SKIPPED] and "changed since" in changed[0].detail
        arm.resources[group_id] = original
        done = rollback(records, network, auditor, config, apply=True)
    assert [o.result for o in done] == [APPLIED]
    [delete] = arm.matching("DELETE", GROUP_PATH)
    assert delete.header("If-Match") == original["etag"]
    assert arm.resource(group_id) is None
    policy = arm.resource(POLICY)
    assert policy is not None and all(not g["id"].endswith("/asr-remediate")
                                      for g in policy["properties"]["ruleCollectionGroups"])
    assert firewall_denies(resources(), config)  # back to the original verdict


def test_rollback_refuses_a_record_naming_another_group(fw_arm: ArmEmulator, tmp_path: Path) -> None:
    arm = fw_arm
    with writer(arm) as network:
        _, result, sink = apply_plan(arm, tmp_path, resources(), settings(arm), network)
        records = list(sink.records(result.run_id))
        forged = [type(r)(**{**r.__dict__, "name": "platform"}) for r in records]
        outcomes = rollback(forged, network, Auditor(sink, trigger="cli", actor="test"), settings(arm), apply=True)
    assert [o.result for o in outcomes] == [SKIPPED] and "not the bot's own rule collection group" in outcomes[0].detail
    assert arm.count("DELETE") == 0 and arm.resource(f"{POLICY}/ruleCollectionGroups/platform") is not None


def test_the_firewall_write_counts_toward_asr_max_changes(fw_arm: ArmEmulator, tmp_path: Path) -> None:
    with writer(fw_arm) as network:
        _, result, _ = apply_plan(fw_arm, tmp_path, resources(), settings(fw_arm, max_changes=0), network)
    assert [o.result for o in result.outcomes] == [DEFERRED] and fw_arm.count("PUT") == 0


def test_a_write_whose_response_is_lost_is_reconciled_as_landed_and_rolled_back(fw_arm: ArmEmulator,
                                                                                tmp_path: Path) -> None:
    """ARM applied the PUT, every response was lost: the intent is failed; reconcile reads the group back and records
    ``landed``, so rollback of that run can remove it."""
    arm = fw_arm
    arm.inject("PUT", GROUP_PATH, Fault.drop_after_apply(), times=10)
    with writer(arm) as network:
        config = settings(arm)
        _, result, sink = apply_plan(arm, tmp_path, resources(), config, network)
        assert [o.result for o in result.outcomes] == [FAILED]
        assert arm.resource(f"{POLICY}/ruleCollectionGroups/{FIREWALL_GROUP}") is not None  # it landed
        later = utc_now() + timedelta(minutes=30)
        outcomes = reconcile(sink.records(), network, sink, trigger="cli", actor="test", now=later)
        assert [o.result for o in outcomes] == [LANDED]
        undone = rollback(sink.records(result.run_id), network, Auditor(sink, trigger="cli", actor="test"), config,
                          apply=True)
    assert [o.result for o in undone] == [APPLIED]
    assert arm.resource(f"{POLICY}/ruleCollectionGroups/{FIREWALL_GROUP}") is None


# -- the emulator is as strict as Network RP on rule collection groups ------------------------------------------------

def _valid() -> dict[str, Any]:
    return {"priority": 300, "ruleCollections": [rule_collection("c", 100, "Allow", [
        network_rule("r", ["10.1.1.0/24"], ["Storage.EastUS"])])]}


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda p: p.update(priority=99), "FirewallPolicyRuleCollectionGroupInvalidPriority"),
    (lambda p: p.update(priority=65001), "FirewallPolicyRuleCollectionGroupInvalidPriority"),
    (lambda p: p["ruleCollections"][0].update(priority=70000), "FirewallPolicyRuleCollectionGroupInvalidPriority"),
    (lambda p: p["ruleCollections"][0]["rules"][0].update(destinationPorts=["65000"]),
     "FirewallPolicyRuleConditionInvalidPortOrRangeFormat"),
    (lambda p: p["ruleCollections"][0]["rules"][0].update(destinationAddresses=["NoSuchTag"]),
     "FirewallPolicyRuleConditionInvalidAddress"),
    (lambda p: p["ruleCollections"][0]["rules"].append(dict(p["ruleCollections"][0]["rules"][0])),
     "FirewallPolicyRuleCollectionGroupInvalid"),
])
def test_content_errors_fail_the_long_running_operation_and_change_nothing(fw_arm: ArmEmulator, mutate: Any,
                                                                           code: str) -> None:
    properties = _valid()
    mutate(properties)
    with writer(fw_arm) as network, pytest.raises(ArmError) as caught:
        network.put_rule_collection_group(POLICY, "mine", properties)
    assert caught.value.code == code
    [put] = fw_arm.matching("PUT", "ruleCollectionGroups/mine")
    assert put.status == 201  # accepted; the operation failed
    assert fw_arm.resource(f"{POLICY}/ruleCollectionGroups/mine") is None


def test_names_etags_and_delete_of_a_group_follow_arm(fw_arm: ArmEmulator) -> None:
    with writer(fw_arm) as network:
        with pytest.raises(ArmError) as caught:
            network.put_rule_collection_group(POLICY, "-bad-", _valid())
        assert caught.value.status_code == 400 and caught.value.code == "InvalidResourceName"
        with pytest.raises(ArmError) as caught:
            network.put_rule_collection_group(POLICY, "mine", _valid(), if_match='W/"nope"')
        assert caught.value.status_code == 412  # If-Match on a group that does not exist
        created = network.put_rule_collection_group(POLICY, "mine", _valid())
        assert created["etag"] and created["properties"]["provisioningState"] == "Succeeded"
        with pytest.raises(ArmError) as caught:  # a stale etag and other content: 412 (same content: accepted,
            network.put_rule_collection_group(POLICY, "mine", {**_valid(), "priority": 301},  # a lost retry's)
                                              if_match='W/"stale"')
        assert caught.value.status_code == 412
        names = {g["name"] for g in network.list_rule_collection_groups(POLICY)}
        assert names == {"platform", "mine"}
        network.delete_rule_collection_group(POLICY, "mine", if_match=created["etag"])
        network.delete_rule_collection_group(POLICY, "mine")  # absent: 204, no error
        assert network.get_rule_collection_group(POLICY, "mine") is None
