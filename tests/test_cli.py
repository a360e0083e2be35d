"""The CLI contract: formats, exit codes 0/2/3/1, one-line errors without tracebacks."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asr_remediate.cli import main
from tests.scenario import REPO, Scenario, deny

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
    # The estate file carries the VNets' effective security admin rules as export writes them: an AlwaysAllow wins
    # over the spoke NSG's deny, a network manager's Deny is an error the bot cannot fix.
    by_name = {vm["name"]: vm for vm in doc["vms"]}
    assert statuses["vm-api-01"] == "compliant" and not by_name["vm-api-01"]["findings"]
    (deny,) = by_name["vm-data-01"]["findings"]
    assert (deny["kind"], deny["fixable"], deny["ruleName"]) == ("admin-deny", False, "Deny-Storage-Exfiltration")
    for vm in doc["vms"]:
        # asrHealth is additive (issue 15): present when the protected item carries Site Recovery's health.
        assert {"id", "name", "sourceRegion", "targetRegion", "direction", "status", "findings"} <= set(vm)
        assert set(vm) <= {"id", "name", "sourceRegion", "targetRegion", "direction", "status", "findings",
                           "asrHealth"}
        for f in vm["findings"]:
            assert {"kind", "severity", "side", "destination", "resourceId", "fixable", "message"} <= set(f)
            assert f["severity"] in ("error", "warning") and f["side"] in ("source", "target")
    actions = {c["action"] for c in doc["plan"]}
    assert actions == {"create-security-rule", "create-route", "create-rule-collection-group"}
    vm_ids = {vm["id"] for vm in doc["vms"]}
    for change in doc["plan"]:
        assert set(change) == {"action", "resourceId", "name", "properties", "fixes", "worksAround"}
        assert change["fixes"] and change["worksAround"]
        for fix in change["fixes"]:
            assert set(fix) == {"vmId", "side", "destination"} and fix["vmId"] in vm_ids
            if change["action"] != "create-rule-collection-group":  # the firewall's group is asr-remediate itself
                assert fix["destination"] == change["name"].removeprefix("asr-remediate-")


def test_table_and_markdown_formats(tmp_path: Path) -> None:
    code, out, _ = run("scan", "--estate", ESTATE, "--service-tags", TAGS)
    assert code == 2 and "PLAN" in out and "vm-app-01" in out
    assert "fixes source Storage.EastUS of vm-app-01, vm-app-02; works around deny rule Deny-Internet-Out (priority " \
           "4000)" in out
    assert re.fullmatch(r"\d+ replicated VMs: .+; \d+ planned changes", out.rstrip().splitlines()[-1])
    code, out, _ = run("scan", "--estate", ESTATE, "--service-tags", TAGS, "--format", "markdown")
    assert code == 2 and out.startswith("# ASR network drift") and "| vm-db-01 |" in out


@pytest.mark.parametrize(("args", "env", "source"), [
    ([], {}, {"sourceAddressPrefixes": ["10.1.1.0/24"]}),
    (["--source-scope", "vm"], {}, {"sourceAddressPrefixes": ["10.1.1.4/32"]}),
    ([], {"ASR_SOURCE_SCOPE": "virtualnetwork"}, {"sourceAddressPrefix": "VirtualNetwork"}),
    (["--source-scope", "subnet"], {"ASR_SOURCE_SCOPE": "vm"}, {"sourceAddressPrefixes": ["10.1.1.0/24"]}),
])
def test_source_scope_option_and_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str],
                                         source: dict[str, object]) -> None:
    """--source-scope overrides ASR_SOURCE_SCOPE; a tag goes in sourceAddressPrefix, CIDRs in sourceAddressPrefixes
    (Network RP REST spec, SecurityRulePropertiesFormat)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    estate = tmp_path / "estate.json"
    estate.write_text(json.dumps(Scenario(subnet_rules=[deny(4000)], recovery_rules=None).resources()))
    assert main(["scan", "--estate", str(estate), "--service-tags", TAGS, "--format", "json", *args]) == 2
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert len(plan) == 4
    for change in plan:
        props = change["properties"]
        assert {k: v for k, v in props.items() if k.startswith("sourceAddress")} == source


def test_bad_source_scope_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ASR_SOURCE_SCOPE", "anything")
    assert main(["scan", "--estate", ESTATE, "--service-tags", TAGS]) == 1
    assert capsys.readouterr().err == ("error: ASR_SOURCE_SCOPE must be one of subnet, vm, virtualnetwork, not "
                                       "'anything'\n")
    assert main(["scan", "--estate", ESTATE, "--service-tags", TAGS, "--source-scope", "anything"]) == 1
    assert "invalid choice: 'anything'" in capsys.readouterr().err


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
        ("[" * 100_000, "nested too deeply"),  # json.loads raises RecursionError
        ('[{"type": "' + "x" * 100_000 + '"}]', "has no id"),
    ],
)
def test_bad_estate_is_one_line_error_exit_1(tmp_path: Path, content: str | None, expected: str) -> None:
    estate = tmp_path / "estate.json"
    if content is not None:
        estate.write_text(content)
    code, out, err = run("scan", "--estate", str(estate), "--service-tags", SMALL_TAGS)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err and len(err) < 1100


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


def bad_priority_estate(tmp_path: Path, priority: str, *, used: bool = True) -> Path:
    """The one-VM scenario plus a second, unused NSG; the priority of the first rule of the used (or unused) NSG
    is written into the JSON text as given (1e400, -Infinity, NaN, a 5,000-digit integer: what json reads into
    inf, -inf, nan and an int too long for str())."""
    resources = Scenario(subnet_rules=[deny(4000)], recovery_rules=None).resources()
    spare = copy.deepcopy(next(r for r in resources if r["id"].endswith("/nsg-subnet")))
    spare["id"] += "-spare"
    spare["properties"]["securityRules"][0]["properties"]["priority"] = 4001
    resources.append(spare)
    text = json.dumps(resources).replace('"priority": 4000' if used else '"priority": 4001', f'"priority": {priority}')
    path = tmp_path / "estate.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize("priority", ["1e400", "-Infinity", "NaN", "9" * 5000, "true", '"abc"'],
                         ids=["1e400", "-Infinity", "NaN", "5000 digits", "true", "abc"])
def test_a_malformed_resource_makes_its_vms_unknown_exit_3(tmp_path: Path, priority: str) -> None:
    """Offline as live: the NSG is unreadable, the VM behind it unknown (exit 3: no drift, some VM unknown)."""
    code, out, err = run("scan", "--estate", str(bad_priority_estate(tmp_path, priority)), "--service-tags",
                         SMALL_TAGS, "--format", "json")
    assert code == 3, err
    (vm,) = json.loads(out)["vms"]
    assert vm["status"] == "unknown"
    (finding,) = vm["findings"]
    assert finding["kind"] == "unknown" and finding["resourceId"].endswith("/nsg-subnet")
    assert "is unreadable: security rule 'deny-4000' has no valid priority" in finding["message"]
    assert err.count("\n") == 1 and err.startswith("warning: 1 resource(s) in ") and "Traceback" not in err


def test_a_malformed_resource_no_vm_uses_is_only_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = bad_priority_estate(tmp_path, "1e400", used=False)
    assert main(["scan", "--estate", str(path), "--service-tags", SMALL_TAGS]) == 2  # the deny at 4000 still counts
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nsg-subnet-spare: security rule 'deny-4000' has no valid priority" in err


def test_service_tags_nested_too_deeply_is_one_line(tmp_path: Path) -> None:
    tags = tmp_path / "tags.json"
    tags.write_text('{"values": ' + "[" * 100_000)
    code, out, err = run("scan", "--estate", ESTATE, "--service-tags", str(tags))
    assert code == 1 and out == "" and err.count("\n") == 1 and "nested too deeply" in err
    assert "Traceback" not in err


def test_huge_arguments_are_not_echoed_back(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--estate", ESTATE, "--service-tags", TAGS, "--vm", "v" * 100_000]) == 1
    assert main(["apply", "--subscription", "s" * 100_000]) == 1
    assert main(["apply", "--max-changes", "9" * 5000]) == 1
    for line in capsys.readouterr().err.splitlines():
        assert line.startswith("error: ") and len(line) <= len("error: ") + 1000


def test_live_preflight_keeps_to_asr_subscriptions(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Like the HTTP preflight: a VM outside ASR_SUBSCRIPTIONS is not read unless --subscription asks for it."""
    monkeypatch.setenv("ASR_SUBSCRIPTIONS", "00000000-0000-0000-0000-000000000001")
    vm_id = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/"
             "Microsoft.Compute/virtualMachines/vm1")
    assert main(["preflight", "--vm", vm_id, "--target-region", "centralus"]) == 1
    err = capsys.readouterr().err
    assert "11111111-2222-3333-4444-555555555555 is outside ASR_SUBSCRIPTIONS" in err and err.count("\n") == 1


def test_empty_service_tags_make_the_vms_unknown_and_exit_3(tmp_path: Path) -> None:
    """Exit 0 only when every VM is compliant or skipped: with no Service Tags nothing can be evaluated."""
    tags = tmp_path / "tags.json"
    tags.write_text(json.dumps({"changeNumber": 1, "cloud": "Public", "values": []}))
    code, out, err = run("scan", "--estate", ESTATE, "--service-tags", str(tags))
    assert code == 3, err
    assert "16 unknown, 2 skipped" in out


VM_ID = "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/Microsoft.Compute/" \
        "virtualMachines/vm1"


@pytest.mark.parametrize(("args", "message"), [
    (["scan", "--estate", ESTATE, "--service-tags", TAGS, "--vm", "vm-nope"], "no replicated VM matches --vm vm-nope"),
    (["scan", "--estate", ESTATE, "--service-tags", TAGS, "--resource-group", "rg-nope"],
     "no replicated VM matches --resource-group rg-nope"),
    (["scan", "--subscription", "prod"], "--subscription 'prod' is not a subscription id"),
    (["preflight", "--estate", ESTATE, "--service-tags", TAGS, "--vm", VM_ID, "--target-region", "mars base"],
     "target region must be an Azure region name"),
    (["preflight", "--estate", ESTATE, "--service-tags", TAGS, "--vm", VM_ID, "--target-region", "atlantis"],
     "target region 'atlantis' is not an Azure region in the Service Tags data"),
    (["preflight", "--estate", ESTATE, "--service-tags", TAGS, "--vm", "vm1", "--target-region", "centralus"],
     "vm must be a VM resource id"),
    (["rollback", "--run", "20261202T000000Z-abcdef", "--older-than", "soon"], "is not a number of minutes"),
])
def test_user_mistakes_exit_1_with_one_line(args: list[str], message: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ASR_AUDIT_PATH", str(tmp_path / "audit.jsonl"))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_apply_firewall_flag_turns_on_firewall_writes_for_apply_and_rollback_only() -> None:
    """Firewall fixes are report-only even with --apply; --apply-firewall (ASR_APPLY_FIREWALL) adds them."""
    from asr_remediate.cli import build_parser, settings_from_args

    parser = build_parser()
    for argv, expected in ((["apply", "--apply"], False), (["apply", "--apply", "--apply-firewall"], True),
                           (["rollback", "--run", "r1", "--apply", "--apply-firewall"], True)):
        assert settings_from_args(parser.parse_args(argv), {}).apply_firewall is expected
    assert settings_from_args(parser.parse_args(["apply"]), {"ASR_APPLY_FIREWALL": "true"}).apply_firewall
