"""Scan → apply → rescan against the HTTPS ARM emulator with the real SDK clients, with and without faults."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from asr_remediate import cli
from asr_remediate.audit import JsonlAuditSink, TableAuditSink
from asr_remediate.azure.network import NetworkWriter
from asr_remediate.config import Settings
from asr_remediate.drift import COMPLIANT, DRIFT
from asr_remediate.runtime import Runtime, Scope
from asr_remediate.service import APPLIED, DEFERRED
from examples.make_example_estate import DR_SUB, SUB
from tests.azurite import unique_name
from tests.emulator.arm_emulator import ArmEmulator, Fault
from tests.emulator.fixtures import FakeCredential, FakeSleep
from tests.scenario import REPO

TAGS_FILE = REPO / "examples" / "ServiceTags_Public_20251028.json"
SCOPE = Scope((SUB, DR_SUB))
FIXABLE_VMS = {"vm-app-01", "vm-app-02", "vm-db-01", "vm-legacy-01"}


def make_runtime(arm: ArmEmulator, tmp_path: Path, **overrides: Any) -> tuple[Runtime, JsonlAuditSink]:
    options: dict[str, Any] = {"apply": True, "max_changes": 100,
                               "scope_allowlist": (f"/subscriptions/{SUB}", f"/subscriptions/{DR_SUB}"), **overrides}
    settings = Settings(arm_endpoint=arm.base_url, arm_ca_bundle=arm.ca_path, subscriptions=(SUB, DR_SUB), **options)
    credential = FakeCredential()
    sleep = FakeSleep()
    network = NetworkWriter(credential, arm.base_url, ca_bundle=arm.ca_path, sleep=sleep, polling_interval=0,
                            retry_backoff_factor=0.01)
    sink = JsonlAuditSink(tmp_path / "audit.jsonl")
    runtime = Runtime(settings, credential, sink=sink, network=network, progress=lambda _m: None,
                      inventory_kwargs={"sleep": sleep})
    return runtime, sink


def statuses(result: Any) -> dict[str, str]:
    return {r.name: r.status for r in result.plan.reports}


def managed_children(arm: ArmEmulator) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for rid, doc in arm.resources.items():
        props = doc.get("properties") or {}
        for child in (props.get("securityRules") or []) + (props.get("routes") or []):
            if str(child.get("name", "")).startswith("asr-remediate-"):
                found[(rid.lower(), child["name"].lower())] += 1
    return found


def assert_every_write_audited(sink: JsonlAuditSink, run_id: str) -> None:
    records = sink.records(run_id)
    intents = [r for r in records if r.phase == "intent"]
    outcomes = [r for r in records if r.phase == "outcome"]
    assert intents and len(intents) == len(outcomes)
    assert {(r.resource_id, r.name, r.sequence) for r in intents} == {
        (r.resource_id, r.name, r.sequence - 1) for r in outcomes
    } or all(o.result in ("succeeded", "failed") for o in outcomes)
    assert all(o.result in ("succeeded", "failed") for o in outcomes)


def test_scan_costs_only_resource_graph_pages_and_one_service_tag_call(estate_arm: ArmEmulator,
                                                                        tmp_path: Path) -> None:
    runtime, _ = make_runtime(estate_arm, tmp_path, apply=False)
    result = runtime.run(SCOPE, trigger="cli", actor="test")
    assert statuses(result)["vm-app-01"] == DRIFT and statuses(result)["vm-web-01"] == COMPLIANT
    methods = Counter((r.method, "resources" in r.path.lower() and "resourcegraph" in r.path.lower())
                      for r in estate_arm.requests)
    assert methods[("POST", True)] == 2  # protected items + network resources, one page each
    assert estate_arm.count("GET", r"serviceTags") == 1
    assert estate_arm.count("GET", r"networkSecurityGroups|routeTables|virtualNetworks|networkInterfaces") == 0
    assert estate_arm.count("PUT") == 0 and result.applied is None


def test_apply_then_rescan_is_compliant_idempotent_and_audited(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    runtime, sink = make_runtime(estate_arm, tmp_path)
    first = runtime.run(SCOPE, trigger="cli", actor="test")
    assert first.applied is not None
    # The hub firewall's rule collection group (vm-fw-denied-01) waits for ASR_APPLY_FIREWALL: skipped, not written.
    assert first.applied.count(APPLIED) == len(first.plan.changes) - 1 == 13
    [firewall_change] = [o for o in first.applied.outcomes if o.change.child_type == "ruleCollectionGroups"]
    assert firewall_change.result == "skipped" and "ASR_APPLY_FIREWALL" in firewall_change.detail
    assert_every_write_audited(sink, first.run_id)
    assert all(n == 1 for n in managed_children(estate_arm).values())
    # The emulator (as strict as Network RP: CIDRs only in sourceAddressPrefixes) took the subnet-scoped sources.
    for change in first.plan.changes:
        if change.child_type == "securityRules":
            doc = estate_arm.resource(change.resource_id)
            assert doc is not None
            written = next(r for r in doc["properties"]["securityRules"] if r["name"] == change.name)["properties"]
            assert written["sourceAddressPrefixes"] == change.properties["sourceAddressPrefixes"]
            assert all("/" in p for p in written["sourceAddressPrefixes"])

    rescan = make_runtime(estate_arm, tmp_path, apply=False)[0].run(SCOPE, trigger="cli", actor="test")
    for name in FIXABLE_VMS:
        assert statuses(rescan)[name] == COMPLIANT, name
    assert statuses(rescan)["vm-vendor-01"] == DRIFT  # not fixable, still reported
    estate_arm.clear_log()
    second = runtime.run(SCOPE, trigger="cli", actor="test")
    # Only the hub firewall's group is left: it waits for ASR_APPLY_FIREWALL (skipped again, nothing written).
    assert [c.child_type for c in second.plan.changes] == ["ruleCollectionGroups"]
    assert second.applied is not None and second.applied.count(APPLIED) == 0
    assert estate_arm.count("PUT") == 0


def test_faults_lose_nothing_duplicate_nothing_and_every_write_is_audited(estate_arm: ArmEmulator,
                                                                          tmp_path: Path) -> None:
    arm = estate_arm
    arm.inject("PUT", r"/securityRules/asr-remediate-AzureActiveDirectory", Fault.throttle(retry_after=1))
    arm.inject("PUT", r"/routes/asr-remediate-AzureSiteRecovery", Fault.error(500))
    arm.inject("PUT", r"/securityRules/asr-remediate-EventHub\.CentralUS", Fault.drop_after_apply())
    arm.inject("GET", r"/routeTables/rt-forced-tunnel$", Fault.drop())

    def squat(emulator: ArmEmulator, _request: Any) -> None:
        # Another writer takes the priority the bot planned for Storage.CentralUS on nsg-dr-app (299).
        nsg_id = next(k for k in emulator.resources if k.lower().endswith("/nsg-dr-app"))
        emulator.add_security_rule(nsg_id, "someone-else", {
            "protocol": "Udp", "sourcePortRange": "*", "destinationPortRange": "53", "sourceAddressPrefix": "*",
            "destinationAddressPrefix": "*", "access": "Allow", "priority": 299, "direction": "Outbound"})

    arm.before("PUT", r"/securityRules/asr-remediate-Storage\.CentralUS", squat)
    runtime, sink = make_runtime(arm, tmp_path)
    result = runtime.run(SCOPE, trigger="cli", actor="test")
    assert result.applied is not None
    assert result.applied.count(APPLIED) == 13, [(o.change.name, o.result, o.detail) for o in result.applied.outcomes]
    assert all(n == 1 for n in managed_children(arm).values())
    assert len(managed_children(arm)) == 13
    assert_every_write_audited(sink, result.run_id)
    failed = [r for r in sink.records(result.run_id) if r.phase == "outcome" and r.result == "failed"]
    # The squatter changed the NSG between our re-read and our PUT: ARM refuses the stale If-Match (or, without
    # it, the duplicate priority); either way the loss is audited and the rule is re-planned once.
    assert [r.name for r in failed] == ["asr-remediate-Storage.CentralUS"]
    assert "If-Match" in failed[0].error or "SecurityRuleConflict" in failed[0].error
    storage_rule = next(c for c in result.applied.outcomes if c.change.name == "asr-remediate-Storage.CentralUS")
    assert storage_rule.change.properties["priority"] == 298  # re-planned below the squatter
    rescan = make_runtime(arm, tmp_path, apply=False)[0].run(SCOPE, trigger="cli", actor="test")
    assert all(statuses(rescan)[n] == COMPLIANT for n in FIXABLE_VMS)


def test_max_changes_defers_the_rest(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    runtime, _ = make_runtime(estate_arm, tmp_path, max_changes=3)
    result = runtime.run(SCOPE, trigger="cli", actor="test")
    assert result.applied is not None
    assert result.applied.count(APPLIED) == 3 and result.applied.count(DEFERRED) == 10
    assert estate_arm.count("PUT") == 3


def test_max_changes_never_leaves_a_vm_half_fixed(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    """The example plan's VM groups (service.vm_groups) are 5 changes (vm-app-01/-02 share their subnet NSG), 4
    (vm-legacy-01) and 4 (vm-db-01): with ASR_MAX_CHANGES=6 the first run writes the first group only — the old
    cut after 6 writes left vm-legacy-01 with one of its four rules — and each later run writes the next group
    whole. A VM is fixed completely or not touched: its error findings before and after are all or none."""
    def errors(result: Any) -> dict[str, int]:
        return {r.name: sum(f.severity == "error" for f in r.findings) for r in result.plan.reports}

    before = errors(make_runtime(estate_arm, tmp_path, apply=False)[0].run(SCOPE, trigger="cli", actor="test"))
    assert all(before[vm] > 0 for vm in FIXABLE_VMS)
    writes = []
    for _ in range(3):
        puts = estate_arm.count("PUT")
        result = make_runtime(estate_arm, tmp_path, max_changes=6)[0].run(SCOPE, trigger="cli", actor="test")
        assert result.applied is not None
        writes.append(estate_arm.count("PUT") - puts)
        deferred = [o for o in result.applied.outcomes if o.result == DEFERRED]
        assert all("left together for the next run" in o.detail for o in deferred)
        rescan = errors(make_runtime(estate_arm, tmp_path, apply=False)[0].run(SCOPE, trigger="cli", actor="test"))
        for vm in FIXABLE_VMS:
            assert rescan[vm] in (0, before[vm]), (vm, rescan[vm], before[vm])
    assert writes == [5, 4, 4]
    assert all(rescan[vm] == 0 for vm in FIXABLE_VMS)


def test_scope_allowlist_blocks_writes_elsewhere(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    runtime, _ = make_runtime(estate_arm, tmp_path, scope_allowlist=(f"/subscriptions/{DR_SUB}",))
    result = runtime.run(SCOPE, trigger="cli", actor="test")
    assert result.applied is not None
    applied = [o for o in result.applied.outcomes if o.result == APPLIED]
    assert [o.change.name for o in applied] == ["asr-remediate-Storage.CentralUS"]
    assert estate_arm.count("PUT") == 1


def test_rollback_removes_only_unchanged_creations(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    runtime, sink = make_runtime(estate_arm, tmp_path)
    applied = runtime.run(SCOPE, trigger="cli", actor="test")
    # Someone edits one of the bot's rules after the run: rollback must leave it alone.
    nsg_id = next(k for k in estate_arm.resources if k.lower().endswith("/nsg-app"))
    doc = estate_arm.resource(nsg_id)
    assert doc is not None
    rule = next(r for r in doc["properties"]["securityRules"] if r["name"] == "asr-remediate-AzureSiteRecovery")
    estate_arm.add_security_rule(nsg_id, rule["name"], {**rule["properties"], "destinationPortRange": "443-444"})
    rollback_id, outcomes = runtime.rollback(applied.run_id, actor="test", apply=True)
    results = Counter(o.result for o in outcomes)
    assert results == Counter({"applied": 12, "skipped": 1})
    assert set(managed_children(estate_arm)) == {(nsg_id.lower(), "asr-remediate-azuresiterecovery")}
    assert_every_write_audited(sink, rollback_id)


def test_cli_live_scan_export_and_offline_scan_agree(estate_arm: ArmEmulator, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "RUNTIME_CREDENTIAL", FakeCredential())
    monkeypatch.setenv("ASR_ARM_ENDPOINT", estate_arm.base_url)
    monkeypatch.setenv("ASR_ARM_CA_BUNDLE", estate_arm.ca_path)
    assert cli.main(["scan", "--subscription", SUB, DR_SUB, "--format", "json"]) == 2
    live = json.loads(capsys.readouterr().out)
    exported = tmp_path / "estate.json"
    assert cli.main(["export", "--subscription", SUB, DR_SUB, "-o", str(exported)]) == 0
    capsys.readouterr()
    assert cli.main(["scan", "--estate", str(exported), "--service-tags", str(TAGS_FILE), "--format", "json"]) == 2
    offline = json.loads(capsys.readouterr().out)
    assert live == offline
    assert cli.main(["apply", "--subscription", SUB, DR_SUB]) == 2  # report-only without --apply
    assert estate_arm.count("PUT") == 0
    err = capsys.readouterr().err
    assert "pass --apply" in err and "resource graph" in err


def test_cli_reports_azure_failures_in_one_line(estate_arm: ArmEmulator, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "RUNTIME_CREDENTIAL", FakeCredential())
    monkeypatch.setenv("ASR_ARM_ENDPOINT", estate_arm.base_url)
    monkeypatch.setenv("ASR_ARM_CA_BUNDLE", estate_arm.ca_path)
    estate_arm.inject("POST", r"ResourceGraph", Fault.error(403, "AuthorizationFailed", "no access"), times=50)
    assert cli.main(["scan", "--subscription", SUB]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err


def test_apply_audits_to_table_storage_and_cli_lists_and_rolls_back(
        estate_arm: ArmEmulator, tmp_path: Path, azurite: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    table = unique_name("audit")
    for name, value in {"ASR_ARM_ENDPOINT": estate_arm.base_url, "ASR_ARM_CA_BUNDLE": estate_arm.ca_path,
                        "ASR_AUDIT_SINK": "table", "ASR_AUDIT_CONNECTION_STRING": azurite, "ASR_AUDIT_TABLE": table,
                        "ASR_SUBSCRIPTIONS": f"{SUB},{DR_SUB}", "ASR_ARM_POLL_INTERVAL": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli, "RUNTIME_CREDENTIAL", FakeCredential())
    assert cli.main(["apply", "--apply", "--vm", "vm-db-01"]) == 2  # nothing written: the allowlist is empty
    assert "ASR_SCOPE_ALLOWLIST is empty" in capsys.readouterr().err and estate_arm.count("PUT") == 0
    scope = ["--scope-allowlist", f"/subscriptions/{SUB}", f"/subscriptions/{DR_SUB}"]
    assert cli.main(["apply", "--apply", "--vm", "vm-db-01", *scope]) == 2  # drift was found (and fixed)
    out = capsys.readouterr().out
    run_id = out.strip().splitlines()[-1].split()[1].rstrip(":")
    assert "4 applied" in out and estate_arm.count("PUT") == 4

    records = TableAuditSink.from_connection_string(azurite, table).records(run_id)
    assert [(r.phase, r.result) for r in records] == [("intent", "pending"), ("outcome", "succeeded")] * 4
    assert {r.name for r in records} == {"asr-remediate-Storage.EastUS", "asr-remediate-AzureActiveDirectory",
                                         "asr-remediate-EventHub.CentralUS", "asr-remediate-AzureSiteRecovery"}
    assert all(r.trigger == "cli" and r.actor.startswith("cli:") for r in records)

    assert cli.main(["audit"]) == 0
    assert run_id in capsys.readouterr().out.split()
    assert cli.main(["audit", "--run", run_id, "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 8
    assert cli.main(["audit", "--run", "20990101T000000Z-000000"]) == 1
    assert "no records" in capsys.readouterr().err

    assert cli.main(["rollback", "--run", run_id, *scope]) == 0  # report-only without --apply
    out = capsys.readouterr().out
    assert "4 created item(s)" in out and out.count("planned") == 4 and "pass --apply" in out
    assert estate_arm.count("DELETE") == 0
    assert cli.main(["rollback", "--run", run_id, "--apply"]) == 0  # the allowlist is empty: nothing deleted
    assert capsys.readouterr().out.count("outside the write scope") == 4 and estate_arm.count("DELETE") == 0
    assert cli.main(["rollback", "--run", run_id, "--apply", *scope]) == 0
    assert "4 created item(s)" in capsys.readouterr().out
    assert managed_children(estate_arm) == Counter()
    assert estate_arm.count("DELETE") == 4


def test_effective_routes_are_read_only_when_opted_in(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    web_nic = next(k for k in estate_arm.resources if k.lower().endswith("/vm-web-01-nic"))
    estate_arm.effective_routes[web_nic] = [
        {"source": "Default", "state": "Invalid", "addressPrefix": ["0.0.0.0/0"], "nextHopType": "Internet",
         "nextHopIpAddress": []},
        {"source": "VirtualNetworkGateway", "state": "Active", "addressPrefix": ["0.0.0.0/0"],
         "nextHopType": "VirtualNetworkGateway", "nextHopIpAddress": ["10.10.254.4"]},
    ]
    plain = make_runtime(estate_arm, tmp_path, apply=False)[0].run(SCOPE, trigger="cli", actor="test")
    assert estate_arm.count("POST", r"effectiveRouteTable") == 0
    assert statuses(plain)["vm-web-01"] == COMPLIANT  # only a BGP warning without the opt-in
    estate_arm.clear_log()
    runtime = make_runtime(estate_arm, tmp_path, apply=False, read_effective_routes=True)[0]
    opted = runtime.run(SCOPE, trigger="cli", actor="test")
    # One read per source NIC in a VNet that can learn BGP routes (vnet-prod-eastus has a gateway;
    # vm-nva-01's route table disables propagation, vm-erp-01's VNet has no gateway; vm-hybrid-01 / -02's spoke uses its
    # hub's gateway through useRemoteGateways).
    assert estate_arm.count("POST", r"effectiveRouteTable") == 10
    assert statuses(opted)["vm-web-01"] == DRIFT
    web = next(r for r in opted.plan.reports if r.name == "vm-web-01")
    assert all("BGP route 0.0.0.0/0" in f.message for f in web.findings if f.severity == "error")
    # Recovery subnets have no NIC whose effective routes could be read: vm-hybrid-02's recovery VNet has a gateway.
    assert not any(f.kind == "bgp-propagation" for r in opted.plan.reports for f in r.findings
                   if r.name != "vm-old-01" and f.side == "source")


def test_a_stopped_vm_gets_a_warning_instead_of_failing_the_effective_routes_scan(estate_arm: ArmEmulator,
                                                                                 tmp_path: Path) -> None:
    """Azure returns effective routes only for a NIC of a running VM ("Output is only returned if the VM is in the
    running state", diagnose-network-routing-problem.md): the POST's operation fails for the others."""
    web_vm = next(k for k in estate_arm.resources if k.lower().endswith("/virtualmachines/vm-web-01"))
    estate_arm.resources[web_vm]["properties"]["extended"] = {
        "instanceView": {"powerState": {"code": "PowerState/deallocated"}}}
    runtime = make_runtime(estate_arm, tmp_path, apply=False, read_effective_routes=True)[0]
    result = runtime.run(SCOPE, trigger="cli", actor="test")
    assert estate_arm.count("POST", r"effectiveRouteTable") == 10  # as above
    web = next(r for r in result.plan.reports if r.name == "vm-web-01")
    (warning,) = [f for f in web.findings if f.kind == "bgp-propagation"]
    assert "could not be read" in warning.message and "running" in warning.message
    others = [r for r in result.plan.reports if r.name not in ("vm-web-01", "vm-old-01")]
    assert others and not any(f.kind == "bgp-propagation" for r in others for f in r.findings
                              if f.side == "source")  # recovery subnets: no NIC to read


def test_priority_conflict_on_a_create_is_replanned_once(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    """A create carries no If-Match (ARM answers 412 to If-Match on an absent resource), so a priority taken
    between the re-read and the PUT surfaces as Network RP's SecurityRuleConflict, and is re-planned once."""
    def squat(emulator: ArmEmulator, _request: Any) -> None:
        nsg_id = next(k for k in emulator.resources if k.lower().endswith("/nsg-dr-app"))
        emulator.add_security_rule(nsg_id, "someone-else", {
            "protocol": "Udp", "sourcePortRange": "*", "destinationPortRange": "53", "sourceAddressPrefix": "*",
            "destinationAddressPrefix": "*", "access": "Allow", "priority": 299, "direction": "Outbound"})

    estate_arm.before("PUT", r"/securityRules/asr-remediate-Storage\.CentralUS", squat)
    runtime, sink = make_runtime(estate_arm, tmp_path)
    result = runtime.run(Scope((SUB, DR_SUB), vms=("vm-app-01",)), trigger="cli", actor="test")
    assert result.applied is not None
    outcome = next(o for o in result.applied.outcomes if o.change.name == "asr-remediate-Storage.CentralUS")
    assert outcome.result == APPLIED and outcome.change.properties["priority"] == 298
    failed = [r for r in sink.records(result.run_id) if r.phase == "outcome" and r.result == "failed"]
    assert len(failed) == 1 and "SecurityRuleConflict" in failed[0].error
    assert estate_arm.count("PUT", r"asr-remediate-Storage\.CentralUS") == 2


def test_a_reread_the_engine_cannot_parse_fails_that_change_not_the_run(estate_arm: ArmEmulator,
                                                                         tmp_path: Path) -> None:
    """ARM validates what it stores, so this only guards against a surprise: never write on a document the engine
    could not read (it would plan blind), and let every other change go on."""
    nsg_id = next(k for k in estate_arm.resources if k.endswith("/nsg-app"))

    def corrupt(arm: ArmEmulator, _request: Any) -> None:
        arm.resources[nsg_id]["properties"]["securityRules"][0]["properties"]["priority"] = "high"

    estate_arm.before("GET", r"/networkSecurityGroups/nsg-app$", corrupt)
    runtime, _ = make_runtime(estate_arm, tmp_path)
    result = runtime.run(SCOPE, trigger="cli", actor="test")
    assert result.applied is not None
    failed = [o for o in result.applied.outcomes if o.result == "failed"]
    assert failed and all(o.change.resource_id.lower() == nsg_id for o in failed)
    assert all("cannot read the re-read" in o.detail for o in failed)
    assert result.applied.count(APPLIED) == 13 - len(failed)
    assert not any(r.path.lower().startswith(nsg_id) for r in estate_arm.matching("PUT"))
