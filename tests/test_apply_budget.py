"""ASR_MAX_CHANGES per VM group (service.Applier.apply, service.vm_groups): which changes are written, deferred or
skipped, decided before any ARM call. The writes themselves are stubbed here; tests/emulator/test_end_to_end.py
drives the same budget through the real SDK against the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from asr_remediate.audit import Auditor, JsonlAuditSink
from asr_remediate.config import Settings
from asr_remediate.model import Estate
from asr_remediate.planner import Change, Plan
from asr_remediate.service import (
    APPLIED,
    DEFERRED,
    FIREWALL_REPORT_ONLY,
    OUTSIDE_SCOPE,
    SKIPPED,
    Applier,
    ChangeOutcome,
)

IN = "/subscriptions/in/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg"
OUT = "/subscriptions/out/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg"
POLICY = "/subscriptions/in/resourceGroups/rg/providers/Microsoft.Network/firewallPolicies/policy"


class RecordingApplier(Applier):
    """Writes nothing: records which changes reached the write step (the allowlist check included)."""

    written: list[str]

    def apply_change(self, change: Change) -> ChangeOutcome:
        self.written.append(change.name)
        return ChangeOutcome(change, APPLIED)


def rule(name: str, vm: str, resource_id: str = IN) -> Change:
    return Change("create-security-rule", resource_id, name, {}, vm_ids=(vm,))


def test_a_group_that_does_not_fit_waits_whole_and_its_other_changes_keep_their_reason(tmp_path: Path) -> None:
    changes = (
        rule("a1", "vm1"), rule("b1", "vm2"), rule("a2", "vm1"), rule("b-out", "vm2", OUT), rule("a3", "vm1"),
        rule("b2", "vm2"), Change("create-rule-collection-group", POLICY, "asr-remediate", {}, vm_ids=("vm3",)),
        rule("c1", "vm4"),
    )
    settings = Settings(apply=True, max_changes=4, scope_allowlist=("/subscriptions/in",))
    with Auditor(JsonlAuditSink(tmp_path / "audit.jsonl"), trigger="cli", actor="test") as auditor:
        applier = RecordingApplier(Estate(), cast(Any, None), settings, cast(Any, None), auditor)
        applier.written = []
        result = applier.apply(Plan(changes, ()))
    outcomes = {o.change.name: (o.result, o.detail) for o in result.outcomes}
    # vm1's three rules fit; vm2's two writable ones do not fit in the one left: both wait, the one outside the
    # allowlist is skipped for that reason (it would never be written); vm4's single rule still fits.
    assert applier.written == ["a1", "a2", "a3", "c1"]
    assert [o.change.name for o in result.outcomes] == [c.name for c in changes]  # plan order
    assert outcomes["b1"][0] == outcomes["b2"][0] == DEFERRED
    assert "the 2 change(s) its VMs need are left together" in outcomes["b1"][1]
    assert outcomes["b-out"] == (SKIPPED, OUTSIDE_SCOPE)
    assert outcomes["asr-remediate"] == (SKIPPED, FIREWALL_REPORT_ONLY)


def test_a_group_larger_than_the_limit_is_cut_at_the_limit(tmp_path: Path) -> None:
    changes = tuple(rule(f"r{i}", "vm1") for i in range(5))
    settings = Settings(apply=True, max_changes=3, scope_allowlist=("/subscriptions/in",))
    with Auditor(JsonlAuditSink(tmp_path / "audit.jsonl"), trigger="cli", actor="test") as auditor:
        applier = RecordingApplier(Estate(), cast(Any, None), settings, cast(Any, None), auditor)
        applier.written = []
        result = applier.apply(Plan(changes, ()))
    assert applier.written == ["r0", "r1", "r2"]
    assert [o.result for o in result.outcomes] == [APPLIED] * 3 + [DEFERRED] * 2
