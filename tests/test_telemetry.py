"""Telemetry: the metrics and structured log records one run emits, read back with OpenTelemetry's in-memory
``InMemoryMetricReader`` and ``InMemoryLogExporter`` (opentelemetry-sdk; no exporter, no network).

Expected values are derived from the run's own plan (the example estate scanned offline), never hard-coded: every
VM counted once by status, every error finding once as a metric point and once as a log record naming VM, side,
destination, blocking resource and rule.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from typing import Any

import pytest

from asr_remediate import telemetry
from asr_remediate.config import Settings
from asr_remediate.engine import scan
from asr_remediate.estate import load_estate_file
from asr_remediate.planner import Plan
from asr_remediate.runtime import RunResult
from asr_remediate.service import APPLIED, FAILED, ApplyResult, ChangeOutcome
from asr_remediate.servicetags import load_service_tags_file
from tests.scenario import REPO
from tests.telemetry_capture import captured


@cache
def example_plan() -> Plan:
    estate = load_estate_file(str(REPO / "examples" / "estate.json"))
    tags = load_service_tags_file(str(REPO / "examples" / "ServiceTags_Public_20251028.json"))
    return scan(estate, tags, Settings())


def attrs(**values: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(values.items()))


def test_a_report_only_run_counts_vms_by_status_and_error_findings() -> None:
    plan = example_plan()
    errors = [(r, f) for r in plan.reports for f in r.findings if f.severity == "error"]
    assert errors and plan.changes  # the example estate drifts and has a plan
    with captured() as capture:
        with capture.telemetry.observe_run("timer") as observed:
            observed.result = RunResult("", plan, None, "report-only")
        metrics = capture.metrics()
        statuses = Counter(r.status for r in plan.reports)
        assert metrics["asr.vms"] == Counter({attrs(trigger="timer", status=s): n for s, n in statuses.items()})
        expected_findings = Counter(attrs(trigger="timer", kind=f.kind, side=f.side, destination=f.destination)
                                    for _, f in errors)
        assert metrics["asr.findings"] == expected_findings
        assert metrics["asr.changes"] == Counter({attrs(trigger="timer", outcome="planned"): len(plan.changes)})
        assert metrics["asr.runs"] == Counter({attrs(trigger="timer", outcome="completed"): 1})
        assert metrics["asr.run.duration"] == Counter({attrs(trigger="timer", outcome="completed"): 1})
        assert all(s >= 0 for s in capture.histogram_sums("asr.run.duration"))

        findings = capture.records(telemetry.FINDING_EVENT)
        assert len(findings) == len(errors)
        run_ids = {r["runId"] for r in findings}
        assert len(run_ids) == 1 and next(iter(run_ids))  # a report-only run still gets one id for its records
        logged = {(r["vmId"], r["side"], r["destination"], r["kind"], r["resourceId"], r["ruleName"])
                  for r in findings}
        assert logged == {(report.id, f.side, f.destination, f.kind, f.resource_id, f.rule_name)
                          for report, f in errors}
        assert all(r["_severity"] == "WARN" for r in findings)
        [summary] = capture.records(telemetry.RUN_EVENT)
        assert summary["runId"] in run_ids and summary["outcome"] == "completed"
        assert summary["vms"] == len(plan.reports) and summary["drift"] == statuses["drift"]
        assert summary["planned"] == len(plan.changes) and summary["applied"] == 0
        assert capture.records(telemetry.WRITE_EVENT) == []


def test_writes_and_reconciled_intents_are_counted_and_logged_per_write() -> None:
    plan = example_plan()
    first, second, third = plan.changes[:3]
    applied = ApplyResult("20261202T220000Z-abcdef", (ChangeOutcome(first, APPLIED),
                                                      ChangeOutcome(second, FAILED, "409 Conflict")))
    result = RunResult("20261202T220000Z-abcdef", plan, applied, "", reconciled=(ChangeOutcome(third, "landed"),))
    with captured() as capture:
        with capture.telemetry.observe_run("queue") as observed:
            observed.result = result
        changes = capture.metrics()["asr.changes"]
        assert changes == Counter({attrs(trigger="queue", outcome="planned"): len(plan.changes),
                                   attrs(trigger="queue", outcome=APPLIED): 1,
                                   attrs(trigger="queue", outcome=FAILED): 1,
                                   attrs(trigger="queue", outcome="reconciled"): 1})
        writes = capture.records(telemetry.WRITE_EVENT)
        assert [(w["runId"], w["resourceId"], w["childName"], w["outcome"]) for w in writes] == [
            (result.run_id, first.resource_id, first.name, APPLIED),
            (result.run_id, second.resource_id, second.name, FAILED),
            (result.run_id, third.resource_id, third.name, "reconciled:landed")]
        assert writes[1]["_severity"] == "ERROR" and writes[1]["detail"] == "409 Conflict"
        [summary] = capture.records(telemetry.RUN_EVENT)
        assert (summary["applied"], summary["failed"], summary["reconciled"]) == (1, 1, 1)


def test_a_run_that_raises_is_recorded_as_failed_and_the_error_propagates() -> None:
    with captured() as capture:
        with pytest.raises(RuntimeError), capture.telemetry.observe_run("timer"):
            raise RuntimeError("Resource Graph is down")
        metrics = capture.metrics()
        assert metrics["asr.runs"] == Counter({attrs(trigger="timer", outcome="failed"): 1})
        [summary] = capture.records(telemetry.RUN_EVENT)
        assert summary["outcome"] == "failed" and summary["error"] == "RuntimeError"
        assert "asr.vms" not in metrics


def test_requests_are_counted_only_inside_a_run() -> None:
    telemetry.count_request("https://management.azure.com/subscriptions/x/providers/Microsoft.Network/nsg")
    with captured() as capture:
        with capture.telemetry.observe_run("cli") as observed:
            telemetry.count_request("https://management.azure.com/providers/Microsoft.ResourceGraph/resources")
            telemetry.count_page()
            telemetry.count_page()
            telemetry.count_request("https://management.azure.com/subscriptions/x/providers/Microsoft.Network/a")
            observed.result = RunResult("", Plan((), ()))
        metrics = capture.metrics()
        assert metrics["asr.resource_graph.pages"] == Counter({attrs(trigger="cli"): 2})
        assert metrics["asr.arm.calls"] == Counter({attrs(trigger="cli"): 1})


def test_every_emitted_attribute_is_declared() -> None:
    """The workbook and alert queries are checked against METRICS / LOG_ATTRIBUTES: these must be complete."""
    plan = example_plan()
    applied = ApplyResult("r", (ChangeOutcome(plan.changes[0], APPLIED),))
    with captured() as capture:
        with capture.telemetry.observe_run("http") as observed:
            observed.result = RunResult("r", plan, applied, reconciled=(ChangeOutcome(plan.changes[1], "landed"),))
        for name, points in capture.metrics().items():
            assert name in telemetry.METRICS
            for point in points:
                assert {k for k, _ in point} <= set(telemetry.METRICS[name]), name
        records = capture.records()
        assert {r["asrEvent"] for r in records} == set(telemetry.LOG_ATTRIBUTES)
        for record in records:
            emitted = {k for k in record if not k.startswith("_") and not k.startswith("code.")}
            assert emitted <= set(telemetry.LOG_ATTRIBUTES[record["asrEvent"]]), record["asrEvent"]
            json.dumps({k: record[k] for k in emitted})  # plain values only


def test_nothing_is_configured_or_emitted_without_a_connection_string(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(**_: Any) -> None:
        raise AssertionError("configure_azure_monitor must not be called")

    monkeypatch.setattr("azure.monitor.opentelemetry.configure_azure_monitor", forbidden)
    monkeypatch.setattr(telemetry, "_configured", None)
    for env in ({}, {"APPLICATIONINSIGHTS_CONNECTION_STRING": "  "}):
        chosen = telemetry.from_environment(env)
        assert chosen is telemetry.DISABLED and not chosen.enabled
        with chosen.observe_run("cli") as observed:
            observed.result = RunResult("", example_plan())


def test_a_connection_string_configures_the_distro_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("azure.monitor.opentelemetry.configure_azure_monitor", lambda **kw: calls.append(kw))
    monkeypatch.setattr(telemetry, "_configured", None)
    env = {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000"}
    first = telemetry.from_environment(env)
    assert first.enabled and telemetry.from_environment(env) is first
    assert calls == [{"connection_string": env["APPLICATIONINSIGHTS_CONNECTION_STRING"]}]


def test_a_distro_that_cannot_start_leaves_telemetry_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: Any) -> None:
        raise ValueError("Invalid instrumentation key")

    monkeypatch.setattr("azure.monitor.opentelemetry.configure_azure_monitor", broken)
    monkeypatch.setattr(telemetry, "_configured", None)
    chosen = telemetry.from_environment({"APPLICATIONINSIGHTS_CONNECTION_STRING": "garbage"})
    assert chosen is telemetry.DISABLED
