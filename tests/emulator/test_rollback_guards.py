"""Rollback honours every write guard, and a forged or edited audit record cannot turn it against the estate.

The audit trail is data anyone with write access to the table (or the JSONL file) can change, so rollback trusts
it only as a list of *candidates*: the name must be one the bot owns, the parent an NSG / route table inside
ASR_SCOPE_ALLOWLIST and not opted out, the current properties exactly the recorded payload, and the DELETE carries
the rule's own etag as If-Match so a rule changed since it was read is not deleted (ARM RPC, "ETags for Resources":
412 on a mismatched If-Match).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from asr_remediate.audit import AuditRecord, JsonlAuditSink, format_timestamp, utc_now
from asr_remediate.service import APPLIED, DEFERRED, FAILED, SKIPPED
from examples.make_example_estate import DR_SUB, SUB
from tests.emulator.arm_emulator import ArmEmulator, RecordedRequest
from tests.emulator.test_end_to_end import SCOPE, make_runtime, managed_children

PROD = f"/subscriptions/{SUB}/resourceGroups/rg-prod-eastus/providers/Microsoft.Network"
NSG_APP = f"{PROD}/networkSecurityGroups/nsg-app"
VNET = f"{PROD}/virtualNetworks/vnet-prod-eastus"
FORGED_RUN = "20261202T010000Z-f0f0f0"


def _forge(sink: JsonlAuditSink, creations: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Intent + succeeded outcome records, as if run FORGED_RUN had created these rules."""
    now = format_timestamp(utc_now())
    for index, (resource_id, name, payload) in enumerate(creations):
        intent = AuditRecord(run_id=FORGED_RUN, sequence=2 * index, phase="intent", timestamp=now, trigger="cli",
                             actor="mallory", action="create-security-rule", resource_id=resource_id, name=name,
                             payload=payload, reason="forged")
        sink.write(intent)
        sink.write(AuditRecord(**{**intent.__dict__, "sequence": 2 * index + 1, "phase": "outcome",
                                  "result": "succeeded", "intent_sequence": 2 * index}))


def _rule(arm: ArmEmulator, nsg_id: str, name: str) -> dict[str, Any] | None:
    doc = arm.resource(nsg_id) or {}
    return next((r for r in doc["properties"]["securityRules"] if r["name"].lower() == name.lower()), None)


def test_forged_records_never_delete_what_the_bot_does_not_own(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    arm = estate_arm
    runtime, sink = make_runtime(arm, tmp_path)
    applied = runtime.run(SCOPE, trigger="cli", actor="test")
    assert applied.applied is not None and applied.applied.count(APPLIED) == 13
    own = _rule(arm, NSG_APP, "asr-remediate-AzureSiteRecovery")
    assert own is not None
    theirs = _rule(arm, NSG_APP, "Deny-Internet-Out")
    assert theirs is not None
    _forge(sink, [
        (NSG_APP, "Deny-Internet-Out", dict(theirs["properties"])),  # a rule the bot does not own
        (VNET, "asr-remediate-AzureSiteRecovery", dict(own["properties"])),  # not an NSG
        (NSG_APP, "asr-remediate-AzureSiteRecovery", {"priority": own["properties"]["priority"]}),  # partial payload
        ("not-an-id", "asr-remediate-x", {"priority": 100}),
    ])
    _, outcomes = runtime.rollback(FORGED_RUN, actor="test", apply=True)
    reasons = [(o.change.name, o.result, o.detail) for o in outcomes]
    assert [r[1] for r in reasons] == [SKIPPED] * 4, reasons
    assert "not a rule or route the bot owns" in reasons[0][2]
    assert "is not a Microsoft.Network/networkSecurityGroups" in reasons[1][2]
    assert "changed since the run wrote it" in reasons[2][2]
    assert "not an ARM resource id" in reasons[3][2]
    assert arm.count("DELETE") == 0
    assert _rule(arm, NSG_APP, "Deny-Internet-Out") is not None
    assert _rule(arm, NSG_APP, "asr-remediate-AzureSiteRecovery") is not None


def test_rollback_is_report_only_by_default_and_honours_scope_opt_out_and_max_changes(estate_arm: ArmEmulator,
                                                                                     tmp_path: Path) -> None:
    arm = estate_arm
    runtime, _ = make_runtime(arm, tmp_path)
    run_id = runtime.run(SCOPE, trigger="cli", actor="test").run_id
    before = Counter(managed_children(arm))

    _, outcomes = runtime.rollback(run_id, actor="test", apply=False)
    assert Counter(o.result for o in outcomes) == Counter({"planned": 13}) and arm.count("DELETE") == 0

    scoped, _ = make_runtime(arm, tmp_path, scope_allowlist=(f"/subscriptions/{DR_SUB}",))
    _, outcomes = scoped.rollback(run_id, actor="test", apply=False)
    outside = [o for o in outcomes if o.result == SKIPPED]
    assert len(outside) == 12 and all("outside the write scope" in o.detail for o in outside)

    arm.resources[NSG_APP.lower()]["tags"] = {"ASR-Remediate-Opt-Out": "true"}  # case-insensitive, as in apply
    limited, _ = make_runtime(arm, tmp_path, max_changes=2)
    _, outcomes = limited.rollback(run_id, actor="test", apply=True)
    results = Counter(o.result for o in outcomes)
    opted = [o for o in outcomes if o.result == SKIPPED]
    assert opted and all(o.change.resource_id.lower() == NSG_APP.lower() for o in opted)
    assert all("opted out" in o.detail for o in opted)
    assert results[APPLIED] == 2 and results[DEFERRED] == 13 - 2 - len(opted)
    assert arm.count("DELETE") == 2
    assert sum(before.values()) - sum(managed_children(arm).values()) == 2


def test_rollback_deletes_with_the_rules_own_etag_and_a_concurrent_edit_wins(estate_arm: ArmEmulator,
                                                                             tmp_path: Path) -> None:
    arm = estate_arm
    runtime, sink = make_runtime(arm, tmp_path)
    run_id = runtime.run(SCOPE, trigger="cli", actor="test").run_id
    name = "asr-remediate-AzureSiteRecovery"

    def edit(emulator: ArmEmulator, _request: RecordedRequest) -> None:
        rule = _rule(emulator, NSG_APP, name)
        assert rule is not None
        emulator.add_security_rule(NSG_APP, name, {**rule["properties"], "description": "kept by the app team"})

    arm.before("DELETE", rf"/networkSecurityGroups/nsg-app/securityRules/{name}", edit)
    rollback_id, outcomes = runtime.rollback(run_id, actor="test", apply=True)
    edited = next(o for o in outcomes if o.change.name == name)
    assert edited.result == FAILED and "412" in edited.detail
    deletes = arm.matching("DELETE")
    assert deletes and all(r.header("If-Match") for r in deletes)
    assert _rule(arm, NSG_APP, name) is not None  # the edit survived
    outcome = next(r for r in sink.records(rollback_id) if r.phase == "outcome" and r.name == name)
    assert outcome.result == "failed"
