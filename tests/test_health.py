"""ASR's own verdict as a cross-check (issue 15): health errors parsed from the real recorded A2A item, and each
outcome of the comparison with the engine's findings.

Sources:
- The recorded item: ``tests/data/arm/A2A_ReplicationProtectedItems_List_Protected_recorded_2026-02-01.json``
  (Azure/azure-powershell, Az.RecoveryServices test session A2AUpdateProtectionWithZone.json, commit 1c2af68c; see
  tests/data/arm/README.md): ``replicationHealth`` Normal, one ``healthErrors[]`` entry, code 161011 (no test
  failover), with ``innerHealthErrors: []``.
- HealthError / InnerHealthError: "We are exposing the related health errors as inner health errors … in the same
  fashion as Exception -> InnerException" (Microsoft.RecoveryServices REST model, as the SDKs generate it): inner
  errors carry the same fields and no further nesting.
- The codes: ``asr_remediate/data/asr_health_codes.json`` (Microsoft's "Troubleshoot Azure-to-Azure VM network
  connectivity issues", "… replication issues and errors" and "Troubleshoot replication" pages).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr_remediate.drift import Finding, VmReport
from asr_remediate.estate import build_estate, parse_item_health, parse_protected_item, unwrap
from asr_remediate.health import (
    CONFIRMED,
    NOT_YET_REPORTED,
    OTHER,
    UNEXPLAINED,
    UNEXPLAINED_KIND,
    code_table,
    cross_check,
    destination_bases,
    shown_time,
)
from asr_remediate.model import HealthError, ItemHealth, ProtectedItem
from asr_remediate.planner import Plan
from asr_remediate.report import render_json, render_markdown, render_table
from asr_remediate.requirements import TAG_FQDNS
from asr_remediate.runtime import RunResult
from asr_remediate.triggers import summarize
from examples.estate_builder import health_error
from tests.scenario import Scenario, deny, scan_resources

ARM = Path(__file__).resolve().parent / "data" / "arm"
RECORDED = "A2A_ReplicationProtectedItems_List_Protected_recorded_2026-02-01.json"
SINCE = "2026-12-02T08:15:42.1234567Z"


def recorded_item() -> dict[str, Any]:
    [resource] = unwrap(json.loads((ARM / RECORDED).read_text(encoding="utf-8")))
    return copy.deepcopy(dict(resource))


def only(plan: Plan) -> Any:
    [report] = plan.reports
    return report


# --- parsing, on the real recorded item ----------------------------------------------------------------------------


def test_the_recorded_items_health_error_161011_is_parsed_field_by_field():
    item = parse_protected_item(recorded_item())
    assert item is not None and item.health is not None
    assert item.health.replication_health == "Normal" and item.health.problem == ""
    [error] = item.health.errors
    assert (error.code, error.level, error.category) == ("161011", "Warning", "TestFailover")
    assert error.message == "No successful test failover has been done on the virtual machine 'a2aVM1111'."
    assert error.created == "2025-12-15T07:49:29.2320169Z"
    assert error.possible_causes.startswith("No successful test failover")
    assert error.recommended_action == "Do a test failover on the virtual machine."
    assert error.inner == ()


def test_inner_health_errors_are_parsed_with_the_same_fields():
    resource = recorded_item()
    outer = resource["properties"]["healthErrors"][0]
    inner = copy.deepcopy(outer)
    inner.pop("innerHealthErrors")
    inner.update(errorCode=151196, errorMessage="Site Recovery configuration failed.")  # a code given as a number
    outer["innerHealthErrors"] = [inner]
    item = parse_protected_item(resource)
    assert item is not None and item.health is not None
    [error] = item.health.errors
    [nested] = error.inner
    assert (nested.code, nested.message, nested.created) == ("151196", "Site Recovery configuration failed.",
                                                             "2025-12-15T07:49:29.2320169Z")


def test_an_item_without_health_fields_claims_nothing_and_an_empty_list_is_read():
    assert parse_item_health({"protectionState": "Protected"}) is None
    health = parse_item_health({"replicationHealth": "Normal", "healthErrors": []})
    assert health is not None and health.errors == () and health.problem == ""


@pytest.mark.parametrize("errors", ["oops", [1], [{"errorCode": {"a": 1}}], [{"errorCode": "1", "errorMessage": []}],
                                    [{"errorCode": "1", "innerHealthErrors": "x"}]])
def test_malformed_health_errors_are_a_problem_not_a_guess_and_the_vm_is_still_evaluated(errors):
    resources = Scenario(subnet_rules=[deny(4000)]).resources()
    resources[-1]["properties"]["healthErrors"] = errors
    report = only(scan_resources(resources))
    assert report.status == "drift"  # the network path is evaluated as usual
    assert report.asr_health is not None and report.asr_health.problem
    assert report.asr_health.errors == () and report.asr_health.not_yet_reported == 0
    assert all(f.asr == "" for f in report.findings)
    doc = json.loads(render_json([report], []))
    assert doc["vms"][0]["asrHealth"]["problem"] == report.asr_health.problem


def test_health_strings_are_bounded():
    resources = Scenario().resources()
    resources[-1]["properties"]["healthErrors"] = [health_error("151196", SINCE, "x" * 10_000)]
    [item] = build_estate(resources).protected_items
    assert item.health is not None and len(item.health.errors[0].message) <= 400


# --- the mapping ---------------------------------------------------------------------------------------------------


def test_the_code_table_is_microsofts_list_and_names_only_destinations_the_engine_checks():
    table = code_table()
    assert table["151195"].destinations == () and "DNS" in table["151195"].cause
    assert table["151196"].destinations == ("AzureActiveDirectory",)
    assert table["151197"].destinations == ("AzureSiteRecovery",)
    assert "proxy" in table["151072"].cause
    assert set(table["151037"].destinations) == {"Storage", "AzureActiveDirectory", "AzureSiteRecovery", "EventHub"}
    assert table["153007"].destinations == ("Storage",)  # the cache storage path
    assert "161011" not in table  # no test failover: not a network error
    for meaning in table.values():
        assert {d.lower() for d in meaning.destinations} <= set(TAG_FQDNS)
        assert meaning.source.startswith("https://learn.microsoft.com/azure/site-recovery/")
        assert meaning.destinations or meaning.cause


def test_destination_bases_and_times():
    assert destination_bases("Storage.EastUS") == {"storage"}
    assert destination_bases("Storage (eastus)") == {"storage"}
    assert destination_bases("SiteRecovery-IPs-2017.centralus") == {"azuresiterecovery", "eventhub"}
    # Through a private endpoint (privatelink.py names the requirement after the destination it replaces):
    assert destination_bases("AzureSiteRecovery private endpoint pe-asr") == {"azuresiterecovery"}
    assert destination_bases("Storage (cache) private endpoint pe-cache") == {"storage"}
    assert shown_time("2025-12-15T07:49:29.2320169Z") == "2025-12-15T07:49:29Z"
    assert shown_time("") == "an unknown time" and shown_time("yesterday") == "yesterday"


# --- the three outcomes --------------------------------------------------------------------------------------------


def test_confirmed_asr_and_the_engine_agree_on_entra_id():
    plan = scan_resources(Scenario(subnet_rules=[deny(4000)], replication_health="Critical",
                                   health_errors=[health_error("151196", SINCE, "Site Recovery configuration "
                                                               "failed.")]).resources())
    report = only(plan)
    aad = [f for f in report.findings if f.destination == "AzureActiveDirectory" and f.side == "source"]
    assert [f.asr for f in aad] == [CONFIRMED]
    assert aad[0].asr_note == "ASR reports error 151196 since 2026-12-02T08:15:42Z"
    others = [f for f in report.findings if f.severity == "error" and f.destination != "AzureActiveDirectory"]
    assert others and {f.asr for f in others} == {NOT_YET_REPORTED}
    check = report.asr_health
    assert check is not None and (check.confirmed, check.unexplained) == (1, 0)
    assert check.not_yet_reported == len(others)
    [reported] = check.errors
    assert reported.verdict == CONFIRMED and reported.explained_by == ("nsg-deny in nsg-subnet (deny-4000)",)
    assert not [f for f in report.findings if f.kind == UNEXPLAINED_KIND]
    assert plan.changes  # the cross-check never changes the plan
    assert "ASR reports error 151196 since 2026-12-02T08:15:42Z" in render_table(plan.reports, plan.changes)


def test_confirmed_by_a_route_on_the_cache_storage_path():
    plan = scan_resources(Scenario(routes=[("to-storage", "Storage.EastUS", "None")],
                                   health_errors=[health_error("153007", SINCE, "No crash consistent recovery point "
                                                               "available for the VM in the last 60 minutes.")])
                          .resources())
    report = only(plan)
    [route] = [f for f in report.findings if f.kind == "route-next-hop"]
    assert route.destination == "Storage.EastUS" and route.asr == CONFIRMED
    assert report.asr_health is not None and report.asr_health.confirmed == 1


def test_unexplained_asr_complains_about_a_path_the_engine_finds_open():
    plan = scan_resources(Scenario(health_errors=[health_error("151196", SINCE, "Site Recovery configuration "
                                                               "failed.")]).resources())
    report = only(plan)
    assert report.status == "compliant" and plan.changes == ()  # a warning, never a write
    [warning] = [f for f in report.findings if f.kind == UNEXPLAINED_KIND]
    assert (warning.severity, warning.side, warning.destination, warning.rule_name) == (
        "warning", "source", "AzureActiveDirectory", "151196")
    assert warning.resource_id == report.protected_item_id
    for words in ("ASR reports error 151196", "since 2026-12-02T08:15:42Z", "Site Recovery configuration failed.",
                  "open", "in-guest firewall or proxy", "DNS", "an appliance that is not an Azure Firewall",
                  "stale error", "NAT gateway", "Nothing is changed"):
        assert words in warning.message, words
    check = report.asr_health
    assert check is not None and (check.confirmed, check.unexplained, check.not_yet_reported) == (1 - 1, 1, 0)
    assert check.errors[0].verdict == UNEXPLAINED


def test_unexplained_names_what_the_engine_could_not_decide_an_appliance():
    plan = scan_resources(Scenario(routes=[("default", "0.0.0.0/0", "VirtualAppliance", "10.9.9.9")],
                                   health_errors=[health_error("151037", SINCE, "")]).resources())
    report = only(plan)
    assert any(f.kind == "route-appliance" for f in report.findings)
    [warning] = [f for f in report.findings if f.kind == UNEXPLAINED_KIND]
    assert warning.destination == "Storage, AzureActiveDirectory, AzureSiteRecovery, EventHub"
    assert "except what it could not decide: route-appliance in rt" in warning.message


def test_a_dns_error_is_unexplained_even_with_drift_it_is_off_the_path():
    report = only(scan_resources(Scenario(subnet_rules=[deny(4000)],
                                          health_errors=[health_error("151195", SINCE, "")]).resources()))
    [warning] = [f for f in report.findings if f.kind == UNEXPLAINED_KIND]
    assert warning.destination == "all" and "off the network path" in warning.message and "DNS" in warning.message
    assert {f.asr for f in report.findings if f.severity == "error"} == {NOT_YET_REPORTED}


def test_not_yet_reported_drift_while_asr_is_healthy_both_sides():
    plan = scan_resources(Scenario(subnet_rules=[deny(4000)], recovery_rules=[deny(4000)]).resources())
    report = only(plan)
    errors = [f for f in report.findings if f.severity == "error"]
    assert {f.side for f in errors} == {"source", "target"} and {f.asr for f in errors} == {NOT_YET_REPORTED}
    source = next(f for f in errors if f.side == "source")
    target = next(f for f in errors if f.side == "target")
    assert source.asr_note.startswith("ASR has not reported it yet (replication health Normal")
    assert "only uses after a failover" in target.asr_note
    assert report.asr_health is not None and report.asr_health.not_yet_reported == len(errors)
    markdown = render_markdown(plan.reports, plan.changes)
    assert f"{len(errors)} not yet reported" in markdown and "ASR has not reported it yet" in markdown


def test_other_codes_are_listed_and_compared_with_nothing():
    report = only(scan_resources(Scenario(health_errors=[health_error("161011", SINCE, "No successful test "
                                                                      "failover", level="Warning")]).resources()))
    check = report.asr_health
    assert check is not None and [e.verdict for e in check.errors] == [OTHER]
    assert (check.confirmed, check.unexplained, check.not_yet_reported) == (0, 0, 0)
    assert not [f for f in report.findings if f.kind == UNEXPLAINED_KIND]


def test_an_inner_connectivity_error_is_compared_too():
    inner = health_error("151197", SINCE, "Site Recovery configuration failed.")
    outer = health_error("153007", "2026-12-02T09:00:00Z", "No crash consistent recovery point", inner=[inner])
    report = only(scan_resources(Scenario(subnet_rules=[deny(4000, "AzureSiteRecovery")],
                                          health_errors=[outer]).resources()))
    check = report.asr_health
    assert check is not None
    assert [(e.error.code, e.outer_code, e.verdict) for e in check.errors] == [
        ("153007", "", UNEXPLAINED), ("151197", "153007", CONFIRMED)]
    [asr] = [f for f in report.findings if f.severity == "error"]
    assert asr.asr_note == "ASR reports error 151197 since 2026-12-02T08:15:42Z"


def test_no_health_no_claim_and_failed_over_vms_are_not_compared():
    resources = Scenario(subnet_rules=[deny(4000)]).resources()
    del resources[-1]["properties"]["replicationHealth"], resources[-1]["properties"]["healthErrors"]
    report = only(scan_resources(resources))
    assert report.asr_health is None and all(f.asr == "" for f in report.findings)
    assert "asrHealth" not in json.loads(render_json([report], []))["vms"][0]
    skipped = only(scan_resources(Scenario(active_location="Recovery", protection_state="UnplannedFailoverCommitted",
                                           health_errors=[health_error("151196", SINCE, "")]).resources()))
    assert skipped.status == "skipped" and skipped.asr_health is None


# --- the contract: JSON, and the Function App's summary ------------------------------------------------------------


def test_json_carries_the_verdicts_additively_and_the_summary_counts_them():
    plan = scan_resources(Scenario(subnet_rules=[deny(4000, "AzureActiveDirectory")],
                                   health_errors=[health_error("151196", SINCE, "Site Recovery configuration failed."),
                                                  health_error("151197", SINCE, "")]).resources())
    doc = json.loads(render_json(plan.reports, plan.changes))
    assert doc["schemaVersion"] == 1
    [vm] = doc["vms"]
    [aad] = [f for f in vm["findings"] if f["kind"] == "nsg-deny"]
    assert aad["asr"] == "confirmed" and aad["asrNote"].startswith("ASR reports error 151196 since")
    assert "ASR reports" not in aad["message"]  # the message stays the engine's
    health = vm["asrHealth"]
    assert (health["replicationHealth"], health["confirmed"], health["unexplained"], health["notYetReported"]) == (
        "Normal", 1, 1, 0)
    assert [(e["code"], e["verdict"], e["since"]) for e in health["errors"]] == [
        ("151196", "confirmed", SINCE), ("151197", "unexplained", SINCE)]
    assert health["errors"][0]["destinations"] == ["AzureActiveDirectory"]
    assert health["errors"][0]["explainedBy"] == ["nsg-deny in nsg-subnet (deny-4000)"]
    assert [f["kind"] for f in vm["findings"]].count("asr-unexplained") == 1
    summary = summarize(RunResult("run-1", plan))
    assert (summary["asrConfirmed"], summary["asrUnexplained"], summary["asrNotYetReported"]) == (1, 1, 0)


# --- property: the verdicts against a brute-force definition ------------------------------------------------------

DESTINATIONS = ("Storage.EastUS", "AzureActiveDirectory", "EventHub.CentralUS", "AzureSiteRecovery",
                "SiteRecovery-IPs-2017.centralus", "Storage (cache) private endpoint pe-c", "all")
CODES = ("151037", "151072", "151195", "151196", "151197", "151066", "153007", "161011", "999999")


@st.composite
def case(draw: Any) -> tuple[ProtectedItem, VmReport]:
    findings = tuple(
        Finding(draw(st.sampled_from(("nsg-deny", "route-next-hop", "route-appliance", "unknown", "firewall-deny"))),
                draw(st.sampled_from(("error", "warning"))), draw(st.sampled_from(("source", "target"))),
                draw(st.sampled_from(DESTINATIONS)), f"/r/{i}", f"m{i}")
        for i in range(draw(st.integers(0, 6))))
    errors = tuple(
        HealthError(draw(st.sampled_from(CODES)), created=draw(st.sampled_from(("", SINCE, "2026-01-01T00:00:00Z"))),
                    inner=tuple(HealthError(c) for c in draw(st.lists(st.sampled_from(CODES), max_size=2))))
        for _ in range(draw(st.integers(0, 3))))
    item = ProtectedItem("/pi", "vm", "/vm", "eastus", "centralus", health=ItemHealth("Normal", errors))
    status = "drift" if any(f.severity == "error" for f in findings) else "compliant"
    return item, VmReport("/vm", "vm", "eastus", "centralus", status, findings, "/pi")


def oracle_confirms(code: str, findings: tuple[Finding, ...]) -> bool:
    """By definition: an error finding on the source side whose destination is one the code names."""
    wanted = {d.lower() for d in code_table()[code].destinations}
    for f in findings:
        name = f.destination.lower()
        bases = ({"azuresiterecovery", "eventhub"} if name.startswith("siterecovery-ips-2017")
                 else {name.replace("(", " ").replace(".", " ").split()[0]})
        if f.severity == "error" and f.side == "source" and bases & wanted:
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(case())
def test_cross_check_agrees_with_the_definition_and_changes_nothing_else(data: tuple[ProtectedItem, VmReport]):
    item, report = data
    checked = cross_check(item, report)
    assert checked.status == report.status  # a warning at most: the VM's status never moves
    kept, added = checked.findings[:len(report.findings)], checked.findings[len(report.findings):]
    for before, after in zip(report.findings, kept, strict=True):
        assert replace(after, asr="", asr_note="") == before
        assert after.asr == ("" if before.severity != "error" else after.asr)
    check = checked.asr_health
    assert check is not None and item.health is not None
    flat = [pair for e in item.health.errors for pair in [(e, ""), *((i, e.code) for i in e.inner)]]
    assert [(r.error, r.outer_code) for r in check.errors] == flat
    for r in check.errors:
        if r.error.code not in code_table():
            assert r.verdict == OTHER
        else:
            assert r.verdict == (CONFIRMED if oracle_confirms(r.error.code, report.findings) else UNEXPLAINED)
    assert {f.rule_name for f in added} == {r.error.code for r in check.errors if r.verdict == UNEXPLAINED}
    assert all(f.kind == UNEXPLAINED_KIND and f.severity == "warning" for f in added)
    for f in kept:
        if f.severity == "error":
            covered = any(r.meaning is not None and f.side == "source" and oracle_confirms(r.error.code, (f,))
                          for r in check.errors)
            assert f.asr == (CONFIRMED if covered else NOT_YET_REPORTED)
    assert check.not_yet_reported == sum(1 for f in kept if f.asr == NOT_YET_REPORTED)
