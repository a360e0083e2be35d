"""The CLI contract: formats, exit codes 0/2/1, one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asr_remediate.cli import main
from tests.scenario import REPO, Scenario

ESTATE = str(REPO / "examples" / "estate.json")
TAGS = str(REPO / "examples" / "ServiceTags_Public_20251028.json")
SMALL_TAGS = str(REPO / "tests" / "data" / "ServiceTags_Public_cn376_trimmed.json")


def run(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "asr_remediate", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_json_output_follows_the_contract() -> None:
    code, out, err = run("scan", "--estate", ESTATE, "--service-tags", TAGS, "--format", "json")
    assert code == 2, err
    doc = json.loads(out)
    assert doc["schemaVersion"] == 1
    statuses = {vm["name"]: vm["status"] for vm in doc["vms"]}
    assert statuses["vm-web-01"] == "compliant" and statuses["vm-app-01"] == "drift"
    assert statuses["vm-batch-01"] == "skipped" and statuses["vm-erp-01"] == "unknown"
    for vm in doc["vms"]:
        assert set(vm) == {"id", "name", "sourceRegion", "targetRegion", "status", "findings"}
        for f in vm["findings"]:
            assert {"kind", "severity", "side", "destination", "resourceId", "fixable", "message"} <= set(f)
            assert f["severity"] in ("error", "warning") and f["side"] in ("source", "target")
    actions = {c["action"] for c in doc["plan"]}
    assert actions == {"create-security-rule", "create-route"}
    for change in doc["plan"]:
        assert set(change) == {"action", "resourceId", "name", "properties"}


def test_table_and_markdown_formats(tmp_path: Path) -> None:
    code, out, _ = run("scan", "--estate", ESTATE, "--service-tags", TAGS)
    assert code == 2 and "PLAN" in out and "vm-app-01" in out
    code, out, _ = run("scan", "--estate", ESTATE, "--service-tags", TAGS, "--format", "markdown")
    assert code == 2 and out.startswith("# ASR network drift") and "| vm-db-01 |" in out


def test_no_drift_exits_zero(tmp_path: Path) -> None:
    estate = tmp_path / "ok.json"
    estate.write_text(json.dumps({"value": Scenario().resources()}))
    assert main(["scan", "--estate", str(estate), "--service-tags", SMALL_TAGS]) == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "not found"),
        ("{not json", "not valid JSON"),
        ('{"something": 1}', "expected a JSON list"),
        ('[{"type": "Microsoft.Network/networkSecurityGroups"}]', "has no id"),
        ('[{"id": "/x", "type": "Microsoft.Network/networkSecurityGroups", "properties": {"securityRules": '
         '[{"name": "r", "properties": {"priority": "high"}}]}}]', "no valid priority"),
    ],
)
def test_bad_estate_is_one_line_error_exit_1(tmp_path: Path, content: str | None, expected: str) -> None:
    estate = tmp_path / "estate.json"
    if content is not None:
        estate.write_text(content)
    code, out, err = run("scan", "--estate", str(estate), "--service-tags", SMALL_TAGS)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err


def test_bad_service_tags_and_usage_errors_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "tags.json"
    bad.write_text('{"values": [{"name": "X", "properties": {"addressPrefixes": ["300.1.1.1/8"]}}]}')
    code, _, err = run("scan", "--estate", ESTATE, "--service-tags", str(bad))
    assert code == 1 and "300.1.1.1" in err and "Traceback" not in err
    code, _, err = run("scan", "--estate", ESTATE)
    assert code == 1 and "--service-tags" in err
    code, _, err = run("scan", "--estate", ESTATE, "--service-tags", TAGS, "--format", "xml")
    assert code == 1 and "invalid choice" in err and err.count("\n") == 1
    code, _, err = run("frobnicate")
    assert code == 1 and "Traceback" not in err


def test_bad_setting_in_environment_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASR_PROFILE", "newest")
    assert main(["scan", "--estate", ESTATE, "--service-tags", TAGS]) == 1


def test_preflight_for_a_vm_not_yet_replicated() -> None:
    vm_id = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-prod-eastus/providers/"
             "Microsoft.Compute/virtualMachines/vm-vendor-01")
    dr_vnet = ("/subscriptions/66666666-7777-8888-9999-000000000000/resourceGroups/rg-dr-centralus/providers/"
               "Microsoft.Network/virtualNetworks/vnet-dr-centralus")
    code, out, err = run("preflight", "--estate", ESTATE, "--service-tags", TAGS, "--vm", vm_id, "--target-region",
                         "centralus", "--recovery-vnet", dr_vnet, "--recovery-subnet", "snet-app", "--format", "json")
    assert code == 2, err
    (vm,) = json.loads(out)["vms"]
    assert (vm["sourceRegion"], vm["targetRegion"], vm["status"]) == ("eastus", "centralus", "drift")
    destinations = {(f["side"], f["destination"]) for f in vm["findings"] if f["severity"] == "error"}
    assert ("source", "EventHub.CentralUS") in destinations and ("target", "Storage.CentralUS") in destinations
    assert all(f["fixable"] is False for f in vm["findings"] if f["side"] == "source")  # deny at priority 100
    code, _, err = run("preflight", "--estate", ESTATE, "--service-tags", TAGS, "--vm", vm_id + "-nope",
                       "--target-region", "westus2")
    assert code == 1 and "not in the inventory" in err and err.count("\n") == 1
