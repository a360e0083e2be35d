"""Telemetry of real runs: the Runtime against the HTTPS ARM emulator with the real SDK clients, captured with
OpenTelemetry's in-memory reader / exporter. Request counts are checked against what the emulator received."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from asr_remediate import telemetry
from asr_remediate.service import APPLIED
from tests.emulator.arm_emulator import ArmEmulator
from tests.emulator.test_end_to_end import SCOPE, make_runtime
from tests.telemetry_capture import captured


def test_a_live_scan_counts_its_resource_graph_pages_and_arm_calls(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    runtime, _ = make_runtime(estate_arm, tmp_path, apply=False)
    with captured() as capture:
        runtime.telemetry = capture.telemetry
        result = runtime.run(SCOPE, trigger="timer", actor="test")
        pages = sum(1 for r in estate_arm.requests if "resourcegraph" in r.path.lower())
        others = len(estate_arm.requests) - pages
        assert pages >= 2 and others >= 1  # protected items + network; the Service Tags call (and any other reads)
        metrics = capture.metrics()
        assert metrics["asr.resource_graph.pages"] == Counter({(("trigger", "timer"),): pages})
        assert metrics["asr.arm.calls"] == Counter({(("trigger", "timer"),): others})
        assert sum(metrics["asr.vms"].values()) == len(result.plan.reports)


def test_an_applying_run_logs_each_write_under_its_audit_run_id(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    runtime, sink = make_runtime(estate_arm, tmp_path)
    with captured() as capture:
        runtime.telemetry = capture.telemetry
        result = runtime.run(SCOPE, trigger="queue", actor="test")
        # All but the hub firewall's group, which waits for ASR_APPLY_FIREWALL (skipped).
        assert result.applied is not None and result.applied.count(APPLIED) == len(result.plan.changes) - 1
        writes = capture.records(telemetry.WRITE_EVENT)
        assert {(w["runId"], w["resourceId"], w["childName"], w["outcome"]) for w in writes} == {
            (result.run_id, o.change.resource_id, o.change.name, o.result) for o in result.applied.outcomes}
        audited = {(r.resource_id, r.name) for r in sink.records(result.run_id) if r.phase == "outcome"}
        # A skipped change (the firewall group without ASR_APPLY_FIREWALL) is logged but writes no audit record.
        assert {(w["resourceId"], w["childName"]) for w in writes if w["outcome"] != "skipped"} == audited
        # Each PUT, its LRO polls and the re-reads and verifications around it are ARM calls.
        others = sum(1 for r in estate_arm.requests if "resourcegraph" not in r.path.lower())
        assert capture.metrics()["asr.arm.calls"] == Counter({(("trigger", "queue"),): others})
