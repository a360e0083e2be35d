"""The firewall fix along the whole path, as the timer and the CLI run it: ``Runtime.run`` reads the estate from
Resource Graph and ARM through the real SDK clients, plans the ``asr-remediate`` rule collection group, writes it under
ASR_APPLY + ASR_APPLY_FIREWALL (and the allowlist) as a long-running PUT, audits intent and outcome; a fresh
report-only run then reads everything again and finds the VM compliant with nothing left to plan. Without
ASR_APPLY_FIREWALL the same run writes nothing. HTTPS ARM emulator.

Sources: the PUT is FirewallPolicyRuleCollectionGroups_CreateOrUpdate, long-running (``x-ms-long-running-operation``
with ``azure-async-operation`` final state in azure-rest-api-specs, Microsoft.Network
firewallPolicyRuleCollectionGroup.json); the groups are read back with FirewallPolicyRuleCollectionGroups_List (the
same file); Resource Graph does not hold them (README, *Inventory decision*).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asr_remediate.audit import JsonlAuditSink
from asr_remediate.azure.network import NetworkWriter
from asr_remediate.config import Settings
from asr_remediate.drift import COMPLIANT, DRIFT
from asr_remediate.firewall_planner import CREATE_GROUP, FIREWALL_GROUP
from asr_remediate.runtime import Runtime, Scope
from asr_remediate.service import APPLIED, SKIPPED
from examples.estate_builder import network_rule, rule_collection
from tests.emulator.arm_emulator import ArmEmulator
from tests.emulator.fixtures import FakeCredential, FakeSleep
from tests.emulator.test_firewall_inventory import seeded, subscriptions
from tests.scenario import SUB
from tests.test_firewall import group, hub, policy_estate

POLICY = f"/subscriptions/{SUB}/resourceGroups/rg-hub/providers/Microsoft.Network/firewallPolicies/child"
GROUP_PATH = r"/firewallPolicies/child/ruleCollectionGroups/asr-remediate$"


def denying_estate() -> list[dict[str, Any]]:
    """A spoke whose 0.0.0.0/0 goes to the hub Azure Firewall; its policy denies Storage in group 200 and lets the
    rest of ASR's traffic fall to the default deny."""
    return hub(*policy_estate([group("platform", 200, rule_collection("egress-deny", 300, "Deny", [
        network_rule("no-storage", ["*"], ["Storage"])]))]))


def runtime(arm: ArmEmulator, sink: JsonlAuditSink, **options: Any) -> Runtime:
    subs = subscriptions(denying_estate())
    settings = Settings(arm_endpoint=arm.base_url, arm_ca_bundle=arm.ca_path, subscriptions=subs,
                        scope_allowlist=(f"/subscriptions/{SUB}",), **options)
    sleep = FakeSleep()
    network = NetworkWriter(FakeCredential(), arm.base_url, ca_bundle=arm.ca_path, sleep=sleep, polling_interval=0,
                            retry_backoff_factor=0.01)
    return Runtime(settings, FakeCredential(), sink=sink, network=network, progress=lambda _m: None,
                   inventory_kwargs={"sleep": sleep})


def firewall_findings(result: Any) -> list[str]:
    return sorted(f.destination for r in result.plan.reports for f in r.findings if f.kind == "firewall-deny")


def test_run_apply_writes_the_group_and_a_fresh_report_only_run_finds_the_vm_compliant(arm: ArmEmulator,
                                                                                       tmp_path: Path) -> None:
    seeded(arm, denying_estate())
    scope = Scope(subscriptions(denying_estate()))
    sink = JsonlAuditSink(tmp_path / "audit.jsonl")
    applied = runtime(arm, sink, apply=True, apply_firewall=True).run(scope, trigger="cli", actor="test", apply=True)
    [report] = applied.plan.reports
    assert report.status == DRIFT and {"Storage.EastUS", "AzureSiteRecovery"} <= set(firewall_findings(applied))
    [change] = applied.plan.changes  # the firewall is the only thing in the way
    assert (change.action, change.name, change.resource_id) == (CREATE_GROUP, FIREWALL_GROUP, POLICY)
    assert applied.applied is not None and [o.result for o in applied.applied.outcomes] == [APPLIED]

    # The write: one PUT of the bot's group, answered 201 with an operation that was polled until it succeeded.
    [put] = arm.matching("PUT")
    assert put.path.endswith("/firewallPolicies/child/ruleCollectionGroups/asr-remediate") and put.status == 201
    assert put.body == {"properties": dict(change.properties)}
    polls = arm.matching("GET", r"/providers/Microsoft\.Network/locations/[^/]+/operations/[^/]+$")
    assert len(polls) >= 2 and [op["status"] for op in arm.operations.values()] == ["Succeeded"]
    stored = arm.resource(f"{POLICY}/ruleCollectionGroups/{FIREWALL_GROUP}")
    assert stored is not None and stored["properties"]["provisioningState"] == "Succeeded"

    # The audit trail of that run: intent before the write, outcome after it with the etag ARM gave the group.
    records = sink.records(applied.run_id)
    assert [(r.phase, r.action, r.name, r.result) for r in records] == [
        ("intent", CREATE_GROUP, FIREWALL_GROUP, "pending"), ("outcome", CREATE_GROUP, FIREWALL_GROUP, "succeeded")]
    assert records[0].resource_id == POLICY and records[0].payload == dict(change.properties)
    assert records[1].after_etag == stored["etag"]

    # A fresh run reads it all again (Resource Graph, the group list from ARM): compliant, nothing to change.
    arm.clear_log()
    rescan = runtime(arm, sink).run(scope, trigger="cli", actor="test")
    [again] = rescan.plan.reports
    assert again.status == COMPLIANT and firewall_findings(rescan) == [] and rescan.plan.changes == ()
    assert arm.count("GET", r"/firewallPolicies/child/ruleCollectionGroups$") == 1 and arm.count("PUT") == 0
    assert rescan.applied is None and sink.records(applied.run_id) == records  # report-only: no new records


def test_run_with_asr_apply_but_without_asr_apply_firewall_writes_nothing(arm: ArmEmulator, tmp_path: Path) -> None:
    seeded(arm, denying_estate())
    scope = Scope(subscriptions(denying_estate()))
    sink = JsonlAuditSink(tmp_path / "audit.jsonl")
    result = runtime(arm, sink, apply=True).run(scope, trigger="cli", actor="test", apply=True)
    [change] = result.plan.changes
    assert change.name == FIREWALL_GROUP  # planned and shown …
    assert result.applied is not None and [o.result for o in result.applied.outcomes] == [SKIPPED]
    assert "ASR_APPLY_FIREWALL" in result.applied.outcomes[0].detail  # … but not written, and says why
    assert arm.count("PUT") == 0 and arm.count("DELETE") == 0
    assert arm.resource(f"{POLICY}/ruleCollectionGroups/{FIREWALL_GROUP}") is None
    assert runtime(arm, sink).run(scope, trigger="cli", actor="test").plan.reports[0].status == DRIFT
