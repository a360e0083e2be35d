"""Every intent gets an outcome: a write whose result the run never learned (a killed process, a response lost after
ARM applied the PUT) is settled later by reading ARM, and rollback then includes what really landed.

ARM behaviour relied on: a PUT that ARM accepted is carried out whether or not the caller is still there to read
the response or poll the operation (Azure/azure-resource-manager-rpc, "Asynchronous Operations": the operation runs
server-side and the Azure-AsyncOperation URL only reports it) — the emulator stores the child on the PUT itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asr_remediate import cli
from asr_remediate.audit import RECONCILE_AFTER, JsonlAuditSink, intent_states
from asr_remediate.runtime import Scope
from asr_remediate.service import APPLIED, FAILED, SKIPPED
from examples.make_example_estate import DR_SUB, SUB
from tests.emulator.arm_emulator import ArmEmulator, Fault, RecordedRequest
from tests.emulator.fixtures import FakeCredential
from tests.emulator.test_end_to_end import make_runtime, managed_children
from tests.scenario import REPO

DB_SCOPE = Scope((SUB, DR_SUB), vms=("vm-db-01",))
ROUTE_TABLE = "rt-forced-tunnel"
LATER = timedelta(minutes=20)  # past RECONCILE_AFTER: the run that wrote is certainly gone
assert LATER > RECONCILE_AFTER


def _clock(offset: timedelta) -> Any:
    return lambda: datetime.now(UTC) + offset


def _routes(arm: ArmEmulator) -> set[str]:
    return {name for (rid, name) in managed_children(arm) if rid.endswith(f"/{ROUTE_TABLE}")}


def test_a_response_lost_after_arm_applied_the_put_is_reconciled_as_landed_and_rolled_back(
        estate_arm: ArmEmulator, tmp_path: Path) -> None:
    arm = estate_arm
    # Every attempt of this PUT reaches ARM and is applied, and every response is lost (retries included).
    arm.inject("PUT", r"/routes/asr-remediate-AzureSiteRecovery", Fault.drop_after_apply(), times=20)
    runtime, sink = make_runtime(arm, tmp_path)
    first = runtime.run(DB_SCOPE, trigger="cli", actor="test")
    assert first.applied is not None
    lost = next(o for o in first.applied.outcomes if o.change.name == "asr-remediate-AzureSiteRecovery")
    assert lost.result == FAILED
    assert "asr-remediate-azuresiterecovery" in _routes(arm)  # ...but it landed
    state = next(s for s in intent_states(sink.records(first.run_id)) if s.intent.name == lost.change.name)
    assert state.dangling and state.outcome is not None and state.outcome.result == "failed"

    # A run right after does not touch it: the writer could still be at work.
    soon, _ = make_runtime(arm, tmp_path)
    assert soon.run(DB_SCOPE, trigger="cli", actor="test").reconciled == ()

    later, _ = make_runtime(arm, tmp_path)
    later.clock = _clock(LATER)
    second = later.run(DB_SCOPE, trigger="cli", actor="test")
    assert [(o.change.name, o.result) for o in second.reconciled] == [("asr-remediate-AzureSiteRecovery", "landed")]
    records = sink.records(first.run_id)
    reconciled = [r for r in records if r.phase == "reconcile"]
    assert len(reconciled) == 1 and reconciled[0].result == "landed"
    assert reconciled[0].sequence == max(r.sequence for r in records)  # after the run's own records
    assert not any(s.dangling for s in intent_states(records))
    assert later.run(DB_SCOPE, trigger="cli", actor="test").reconciled == ()  # settled once

    _, outcomes = later.rollback(first.run_id, actor="test", apply=True)
    assert Counter(o.result for o in outcomes) == Counter({APPLIED: 4})
    assert _routes(arm) == set()


def test_a_write_arm_refused_is_reconciled_as_not_landed_and_not_rolled_back(estate_arm: ArmEmulator,
                                                                             tmp_path: Path) -> None:
    arm = estate_arm
    arm.inject("PUT", r"/routes/asr-remediate-Storage\.EastUS", Fault.error(400, "InvalidRequestFormat", "no"))
    runtime, _ = make_runtime(arm, tmp_path)
    first = runtime.run(DB_SCOPE, trigger="cli", actor="test")
    assert first.applied is not None and first.applied.count(FAILED) == 1
    runtime.clock = _clock(LATER)
    assert [o.result for o in runtime.reconcile("cli", "test")] == ["not-landed"]
    _, outcomes = runtime.rollback(first.run_id, actor="test", apply=False)
    assert sorted(o.change.name for o in outcomes) == ["asr-remediate-AzureActiveDirectory",
                                                       "asr-remediate-AzureSiteRecovery",
                                                       "asr-remediate-EventHub.CentralUS"]
    assert {o.result for o in outcomes} == {"planned"}


def test_rollback_of_a_fresh_crash_says_the_outcome_is_unknown_instead_of_skipping_it_silently(
        estate_arm: ArmEmulator, tmp_path: Path) -> None:
    arm = estate_arm
    arm.inject("PUT", r"/routes/asr-remediate-AzureSiteRecovery", Fault.drop_after_apply(), times=20)
    runtime, _ = make_runtime(arm, tmp_path)
    first = runtime.run(DB_SCOPE, trigger="cli", actor="test")
    _, outcomes = runtime.rollback(first.run_id, actor="test", apply=False)
    unknown = [o for o in outcomes if o.result == SKIPPED]
    assert [o.change.name for o in unknown] == ["asr-remediate-AzureSiteRecovery"]
    assert "not known yet" in unknown[0].detail and "--older-than 0" in unknown[0].detail
    _, outcomes = runtime.rollback(first.run_id, actor="test", apply=False, older_than=timedelta(0))
    assert Counter(o.result for o in outcomes) == Counter({"planned": 4})


def _cli_env(arm: ArmEmulator, audit: Path) -> dict[str, str]:
    return {**os.environ, "ASR_ARM_ENDPOINT": arm.base_url, "ASR_ARM_CA_BUNDLE": arm.ca_path,
            "ASR_AUDIT_SINK": "jsonl", "ASR_AUDIT_PATH": str(audit), "ASR_SUBSCRIPTIONS": f"{SUB},{DR_SUB}",
            "ASR_ARM_POLL_INTERVAL": "0", "ASR_SCOPE_ALLOWLIST": f"/subscriptions/{SUB},/subscriptions/{DR_SUB}",
            "PYTHONPATH": str(REPO)}


# The CLI as an operator runs it, with only the credential replaced (no Entra ID here).
_CLI = ("import sys; from asr_remediate import cli; from tests.emulator.fixtures import FakeCredential; "
        "cli.RUNTIME_CREDENTIAL = FakeCredential(); sys.exit(cli.main(sys.argv[1:]))")


def test_a_process_killed_mid_apply_leaves_an_intent_the_next_reconcile_settles(
        estate_arm: ArmEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    arm = estate_arm
    audit = tmp_path / "audit.jsonl"
    victim: dict[str, subprocess.Popen[bytes]] = {}

    def kill(_arm: ArmEmulator, _request: RecordedRequest) -> None:
        # The PUT was accepted and applied; SIGKILL the CLI while it polls the operation, before its outcome record.
        process = victim["process"]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    arm.before("GET", r"/operations/", kill)
    process = subprocess.Popen([sys.executable, "-c", _CLI, "apply", "--apply", "--vm", "vm-db-01"], cwd=REPO,
                               env=_cli_env(arm, audit), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victim["process"] = process
    assert process.wait(timeout=120) == -signal.SIGKILL
    sink = JsonlAuditSink(audit)
    (run_id,) = sink.runs()
    records = sink.records(run_id)
    assert [(r.phase, r.result) for r in records] == [("intent", "pending")]  # no outcome: the process died
    landed = records[0].name.lower()
    assert _routes(arm) == {landed}

    for name, value in _cli_env(arm, audit).items():
        if name.startswith("ASR_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli, "RUNTIME_CREDENTIAL", FakeCredential())
    assert cli.main(["audit", "--reconcile"]) == 0  # too recent: a run could still be writing
    assert "reconciled 0 intent(s)" in capsys.readouterr().out
    assert cli.main(["audit", "--reconcile", "--older-than", "0"]) == 0
    out = capsys.readouterr().out
    assert "landed" in out and "reconciled 1 intent(s)" in out
    assert [r.phase for r in JsonlAuditSink(audit).records(run_id)] == ["intent", "reconcile"]
    assert cli.main(["audit", "--run", run_id]) == 0
    assert "reconcile landed" in " ".join(capsys.readouterr().out.split())

    assert cli.main(["rollback", "--run", run_id, "--apply"]) == 0
    assert "1 created item(s)" in capsys.readouterr().out
    assert _routes(arm) == set()


def test_a_redelivered_batch_continues_its_run_after_the_records_of_the_first_delivery(
        estate_arm: ArmEmulator, tmp_path: Path) -> None:
    runtime, sink = make_runtime(estate_arm, tmp_path)
    run_id = "20261202T000000Z-abcdef.b0000"
    estate_arm.inject("PUT", r"/routes/asr-remediate-AzureSiteRecovery", Fault.error(500), times=20)
    runtime.run(DB_SCOPE, trigger="queue", actor="test", run_id=run_id)
    first = sink.records(run_id)
    runtime.run(DB_SCOPE, trigger="queue", actor="test", run_id=run_id)  # the queue delivers the batch again
    records = sink.records(run_id)
    sequences = [r.sequence for r in records]
    assert len(sequences) == len(set(sequences)), "a redelivery reused sequence numbers"
    assert min(r.sequence for r in records if r not in first) > max(r.sequence for r in first)
