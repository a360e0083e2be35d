"""Deployment artefacts: infra/*.bicep, host.json, local.settings.sample.json, docs/deployment.md.

No Bicep compiler is obtainable here (the Bicep CLI ships as a binary from GitHub/NuGet, neither reachable),
so the templates are checked three ways instead:

* checkov's own Bicep parser (pycep) must parse every ``.bicep`` file, and checkov ``--framework bicep`` must
  report no failed check (suppressions are inline ``checkov:skip=ID:reason`` comments, each with a reason);
* the text of the templates pins what matters to the app: the custom role's exact actions, the Event Grid
  filter, the Flex Consumption runtime, Entra-only storage, the app settings;
* the settings lists (config.py, function_app.py binding expressions, main.bicep, the local sample, the docs
  table) must name the same ``ASR_*`` settings, so adding a setting in code without documenting it fails here.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.bicep import (
    balanced,
    bicep_param_default,
    bicep_resource,
    bicep_var_array,
    read_text,
    strip_comments,
)

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
ROLE = INFRA / "role.bicep"
SUBSCRIPTION = INFRA / "subscription.bicep"
EVENTS = INFRA / "modules" / "events.bicep"
HOST_JSON = ROOT / "host.json"
LOCAL_SETTINGS = ROOT / "local.settings.sample.json"
DOCS = ROOT / "docs" / "deployment.md"
CONFIG = ROOT / "asr_remediate" / "config.py"
FUNCTION_APP = ROOT / "function_app.py"

CHECKOV_TIMEOUT = 120  # seconds; a run takes ~3 s (checkov 3.1) to ~12 s (checkov 3.3) on the dev machine

# --- what the app needs, written out once -------------------------------------------------------------------

WATCHED_OPERATIONS = {
    "Microsoft.Network/networkSecurityGroups/write",
    "Microsoft.Network/networkSecurityGroups/delete",
    "Microsoft.Network/networkSecurityGroups/securityRules/write",
    "Microsoft.Network/networkSecurityGroups/securityRules/delete",
    "Microsoft.Network/routeTables/write",
    "Microsoft.Network/routeTables/delete",
    "Microsoft.Network/routeTables/routes/write",
    "Microsoft.Network/routeTables/routes/delete",
    "Microsoft.Network/virtualNetworks/write",
    "Microsoft.Network/virtualNetworks/subnets/write",
    "Microsoft.Network/networkInterfaces/write",
    "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems/write",
    # Azure Firewall (issue 10): the firewall, its policy (or a parent) and the policy's rule collection groups.
    "Microsoft.Network/azureFirewalls/write",
    "Microsoft.Network/azureFirewalls/delete",
    "Microsoft.Network/firewallPolicies/write",
    "Microsoft.Network/firewallPolicies/ruleCollectionGroups/write",
    "Microsoft.Network/firewallPolicies/ruleCollectionGroups/delete",
}
EVENT_GRID_MAX_FILTER_VALUES = 25  # across all advanced filters of one event subscription

# Settings read by binding expressions (%NAME%) in function_app.py rather than by config.load_settings.
BINDING_SETTINGS = {"ASR_SCAN_SCHEDULE", "ASR_FANOUT_QUEUE"}
# Settings that only make sense on a developer machine; main.bicep must not set them.
LOCAL_ONLY_SETTINGS = {"ASR_AUDIT_PATH", "ASR_AUDIT_CONNECTION_STRING", "ASR_ARM_CA_BUNDLE", "ASR_ARM_POLL_INTERVAL"}
# Deprecated (or meaningless) on Flex Consumption; main.bicep must not set them.
FLEX_FORBIDDEN_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "AzureWebJobsStorage",  # a connection string: the account has shared keys disabled
}

SETTING_NAME = re.compile(r"^ASR_[A-Z_]+$")
SKIP_COMMENT = re.compile(r"checkov:skip=(CKV2?_[A-Z]+_\d+)(?::(.*))?")


def main_app_setting_names() -> list[str]:
    """Every app setting name main.bicep can set (host, App Insights auth, ASR_*), in order."""
    clean = strip_comments(read_text(MAIN))
    names: list[str] = []
    for var in ("hostSettings", "appInsightsAuthSettings", "asrSettings"):
        match = re.search(rf"^var {var} = [^\[]*\[", clean, re.MULTILINE)
        assert match, f"var {var} not found in main.bicep"
        body = balanced(clean, match.end() - 1, "[", "]")
        names += re.findall(r"name: '([^']+)'", body)
    return names


def config_setting_names() -> set[str]:
    """The ASR_* names load_settings reads, from the source (so a new setting is noticed here)."""
    tree = ast.parse(read_text(CONFIG))
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "load_settings"]
    assert functions, "load_settings not found in asr_remediate/config.py"
    names = {
        node.value
        for node in ast.walk(functions[0])
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SETTING_NAME.match(node.value)
    }
    assert names, "load_settings reads no ASR_* setting?"
    return names


def binding_setting_names() -> set[str]:
    """ASR_* settings resolved by binding expressions: the known ones, plus any %ASR_...% in function_app.py."""
    names = set(BINDING_SETTINGS)
    if FUNCTION_APP.exists():
        names |= set(re.findall(r"%(ASR_[A-Z_]+)%", read_text(FUNCTION_APP)))
    return names


def all_setting_names() -> set[str]:
    return config_setting_names() | binding_setting_names()


def docs_table_settings() -> dict[str, str]:
    """First-column setting names of the Markdown tables in docs/deployment.md -> their row."""
    rows: dict[str, str] = {}
    for line in read_text(DOCS).splitlines():
        match = re.match(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)`\s*\|", line)
        if match:
            rows[match.group(1)] = line
    return rows


# --- checkov ------------------------------------------------------------------------------------------------


def _checkov_command() -> list[str]:
    import checkov  # noqa: F401  - a missing install must fail the suite, not skip it
    script = Path(sys.executable).parent / "checkov"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "checkov.main"]


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    command = [
        *_checkov_command(),
        "--directory",
        str(INFRA),
        "--framework",
        "bicep",
        "--output",
        "json",
        "--skip-download",  # no Prisma Cloud guidelines download (no network to it here, nor needed)
        "--compact",
    ]
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", LOG_LEVEL="WARNING")
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHECKOV_TIMEOUT, env=env, cwd=ROOT)
    elapsed = time.monotonic() - started
    assert done.stdout.strip(), f"checkov printed nothing (exit {done.returncode}): {done.stderr[-2000:]}"
    report: Any = json.loads(done.stdout)
    if isinstance(report, list):  # one entry per framework; only bicep was asked for
        (report,) = [r for r in report if r.get("check_type") == "bicep"]
    report["elapsed"] = elapsed
    report["returncode"] = done.returncode
    assert isinstance(report, dict)
    return report


def _describe(checks: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  {c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range'][0]}): {c['check_name']}"
        for c in checks
    )


def test_every_bicep_file_parses_with_checkovs_parser():
    # checkov counts an unparsable file as a "parsing error" and still exits 0; parse each file here to fail
    # loudly, with the parser's message. (pycep 0.4 lacks multi-line ternaries and join(): keep to the subset.)
    import checkov  # noqa: F401  - a missing install must fail the suite, not skip it
    from pycep import BicepParser

    parser = BicepParser()
    files = sorted(INFRA.rglob("*.bicep"))
    assert {MAIN, ROLE, SUBSCRIPTION, EVENTS} <= set(files)
    for path in files:
        try:
            parser.parse(text=read_text(path))
        except Exception as exc:
            pytest.fail(f"{path.relative_to(ROOT)} does not parse: {str(exc)[:800]}")


def test_checkov_finds_no_failed_check(checkov_report):
    summary = checkov_report["summary"]
    results = checkov_report["results"]
    assert results.get("parsing_errors", []) == [], f"checkov could not parse: {results['parsing_errors']}"
    assert summary["failed"] == 0, "checkov failed checks:\n" + _describe(results["failed_checks"])
    assert checkov_report["returncode"] == 0


def test_checkov_checks_actually_ran(checkov_report):
    summary = checkov_report["summary"]
    assert summary["passed"] > 0, summary
    assert summary["resource_count"] >= 20, summary  # main.bicep alone declares more than 20 resources
    checked = {c["resource"] for c in checkov_report["results"]["passed_checks"]}
    assert "Microsoft.Storage/storageAccounts.storage" in checked
    assert "Microsoft.Web/sites.functionApp" in checked
    assert checkov_report["elapsed"] < 60, f"checkov took {checkov_report['elapsed']:.1f} s"


def test_every_checkov_suppression_has_a_reason(checkov_report):
    for path in sorted(INFRA.rglob("*.bicep")):
        for number, line in enumerate(read_text(path).splitlines(), 1):
            for check_id, reason in SKIP_COMMENT.findall(line):
                assert reason and len(reason.strip()) >= 30, (
                    f"{path.relative_to(ROOT)}:{number}: checkov:skip={check_id} needs a real reason"
                )
    for check in checkov_report["results"]["skipped_checks"]:
        assert (check.get("check_result") or {}).get("suppress_comment"), check["check_id"]


# --- role -----------------------------------------------------------------------------------------------------


def test_custom_role_is_read_plus_switched_write_and_effective_route_actions():
    text = read_text(ROLE)
    read = bicep_var_array(text, "readActions")
    write = bicep_var_array(text, "writeActions") + bicep_var_array(text, "firewallWriteActions")
    effective = (bicep_var_array(text, "effectiveRouteActions") + bicep_var_array(text, "effectiveNsgActions")
                 + bicep_var_array(text, "adminRuleActions"))
    for name, actions in (("readActions", read), ("writeActions", write), ("effective*Actions", effective)):
        assert len(actions) == len(set(actions)), f"duplicate action in {name}"
        assert not any("*" in action for action in actions), f"wildcard in {name}"
    # Which actions: derived from the requests the code sends, in tests/emulator/test_rbac.py.
    assert all(a.endswith(("/write", "/delete")) for a in write), "writeActions only write and delete"
    assert all(a.endswith("/action") for a in effective)
    assert not any(a.endswith(("/write", "/delete", "/action")) for a in read), "readActions must only read"

    clean = strip_comments(text)
    assert re.search(
        r"^var actions = concat\(readActions, allowWrites \? writeActions : \[\], "
        r"allowFirewallWrites \? firewallWriteActions : \[\], "
        r"allowEffectiveRoutes \? effectiveRouteActions : \[\], allowEffectiveNsgs \? effectiveNsgActions : \[\], "
        r"allowAdminRules \? adminRuleActions : \[\]\)$",
        clean,
        re.MULTILINE,
    ), "the role's actions must be read + (writes if allowWrites) + each opt-in read's action if switched on"
    role = bicep_resource(text, "operatorRole")
    assert "'Microsoft.Authorization/roleDefinitions@" in clean
    assert re.search(r"actions: actions\s", role)
    assert re.search(r"notActions: \[\]", role) and re.search(r"dataActions: \[\]", role)
    assert "assignableScopes: assignableScopes" in role
    # Safe defaults: report-only role, no effective routes.
    assert bicep_param_default(text, "allowWrites") == "false"
    assert bicep_param_default(text, "allowEffectiveRoutes") == "false"
    assert bicep_param_default(text, "allowEffectiveNsgs") == "false"
    # The admin rules' POST changes nothing and without it a network manager's Deny goes unseen: on by default.
    assert bicep_param_default(text, "allowAdminRules") == "true"
    assert bicep_param_default(text, "roleName") == "'ASR Remediate Operator'"


def test_role_is_assigned_per_monitored_subscription():
    text = read_text(SUBSCRIPTION)
    assert re.search(r"^targetScope = 'subscription'$", text, re.MULTILINE)
    assignment = bicep_resource(text, "operatorAssignment")
    assert "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)" in assignment
    assert "principalType: 'ServicePrincipal'" in assignment
    assert re.search(r"^module events 'modules/events.bicep' = if \(deployEvents\)", text, re.MULTILINE)


# --- Event Grid -----------------------------------------------------------------------------------------------


def test_event_grid_filter_covers_every_operation_that_can_break_replication():
    text = read_text(EVENTS)
    operations = bicep_var_array(text, "watchedOperations")
    assert len(operations) == len(set(operations))
    missing = WATCHED_OPERATIONS - set(operations)
    assert not missing, f"Event Grid filter misses {sorted(missing)}"
    subscription = bicep_resource(text, "eventSubscription")
    filters = re.findall(r"values: (\w+)", subscription)
    assert filters == ["watchedOperations"], "one StringIn filter on data.operationName is expected"
    assert len(operations) <= EVENT_GRID_MAX_FILTER_VALUES
    assert "operatorType: 'StringIn'" in subscription
    assert "key: 'data.operationName'" in subscription
    included = re.search(r"includedEventTypes: \[([^\]]*)\]", subscription)
    assert included
    assert set(re.findall(r"'([^']+)'", included.group(1))) == {
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.Resources.ResourceDeleteSuccess",
    }


def test_event_grid_delivers_to_the_function_with_retries_and_a_dead_letter():
    text = read_text(EVENTS)
    topic = bicep_resource(text, "systemTopic")
    assert "topicType: 'Microsoft.Resources.Subscriptions'" in topic
    assert "location: 'global'" in topic
    assert "source: subscription().id" in topic
    assert "'${identityResourceId}': {}" in topic  # the topic carries the identity it dead-letters with
    subscription = bicep_resource(text, "eventSubscription")
    assert "endpointType: 'AzureFunction'" in subscription
    assert "resourceId: '${functionAppResourceId}/functions/${functionName}'" in subscription
    assert bicep_param_default(text, "functionName") == "'on_resource_event'"
    assert re.search(r"retryPolicy: \{\s*maxDeliveryAttempts: \w+\s*eventTimeToLiveInMinutes: \w+", subscription)
    dead_letter = re.search(r"deadLetterWithResourceIdentity: \{(.*)", subscription, re.DOTALL)
    assert dead_letter
    assert "userAssignedIdentity: identityResourceId" in dead_letter.group(1)
    assert "endpointType: 'StorageBlob'" in dead_letter.group(1)
    assert "blobContainerName: deadLetterContainerName" in dead_letter.group(1)


def test_event_grid_function_name_matches_function_app():
    source = read_text(FUNCTION_APP)
    name = (bicep_param_default(read_text(EVENTS), "functionName") or "").strip("'")
    assert re.search(rf"def {name}\(|['\"]{name}['\"]", source), (
        f"Event Grid is wired to a function named {name!r}; function_app.py has none"
    )


# --- Function App -----------------------------------------------------------------------------------------------


def test_function_app_is_python_311_on_flex_consumption():
    text = read_text(MAIN)
    plan = bicep_resource(text, "plan")
    assert re.search(r"sku: \{\s*name: 'FC1'\s*tier: 'FlexConsumption'\s*\}", plan)
    assert "reserved: true" in plan
    site = bicep_resource(text, "functionApp")
    assert "kind: 'functionapp,linux'" in site
    assert "serverFarmId: plan.id" in site
    assert re.search(r"runtime: \{\s*name: 'python'\s*version: '3.11'\s*\}", site)
    assert re.search(r"scaleAndConcurrency: \{\s*maximumInstanceCount: \w+\s*instanceMemoryMB: \w+\s*\}", site)
    assert "type: 'blobContainer'" in site
    assert re.search(
        r"authentication: \{\s*type: 'UserAssignedIdentity'\s*userAssignedIdentityResourceId: identity.id\s*\}", site
    )
    assert "httpsOnly: true" in site
    assert "minTlsVersion: '1.2'" in site
    assert re.search(r"type: 'UserAssigned'\s*userAssignedIdentities: \{\s*'\$\{identity.id\}': \{\}", site)


def test_storage_is_entra_only_with_the_three_data_roles():
    text = read_text(MAIN)
    storage = bicep_resource(text, "storage")
    for setting in (
        "allowSharedKeyAccess: false",
        "allowBlobPublicAccess: false",
        "minimumTlsVersion: 'TLS1_2'",
        "supportsHttpsTrafficOnly: true",
    ):
        assert setting in storage, setting
    roles = {
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    }
    for role_id in roles:
        assert f"= '{role_id}'" in text
    for symbol, var in (
        ("blobOwnerAssignment", "storageBlobDataOwner"),
        ("queueContributorAssignment", "storageQueueDataContributor"),
        ("tableContributorAssignment", "storageTableDataContributor"),
    ):
        body = bicep_resource(text, symbol)
        assert "scope: storage" in body, symbol
        assert f"'Microsoft.Authorization/roleDefinitions', {var})" in body
        assert "principalId: identity.properties.principalId" in body
    for child in ("auditTable", "fanoutQueue", "deploymentContainer", "deadLetterContainer"):
        bicep_resource(text, child)


def test_app_settings_use_the_identity_and_avoid_flex_deprecated_settings():
    names = main_app_setting_names()
    assert len(names) == len(set(names)), "an app setting is set twice"
    assert not FLEX_FORBIDDEN_SETTINGS & set(names), FLEX_FORBIDDEN_SETTINGS & set(names)
    for required in (
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "AZURE_CLIENT_ID",
    ):
        assert required in names, required
    clean = strip_comments(read_text(MAIN))
    assert re.search(r"name: 'AzureWebJobsStorage__credential'\s*value: 'managedidentity'", clean)
    assert re.search(
        r"name: 'ASR_BOT_PRINCIPAL_IDS'\s*value: '\$\{identity.properties.principalId\},"
        r"\$\{identity.properties.clientId\}'",
        clean,
    )
    assert re.search(r"name: 'ASR_AUDIT_SINK'\s*value: 'table'", clean)
    assert re.search(r"name: 'ASR_AUDIT_TABLE_ENDPOINT'\s*value: storage.properties.primaryEndpoints.table", clean)
    assert re.search(r"name: 'ASR_APPLY'\s*value: apply \? 'true' : 'false'", clean)
    assert bicep_param_default(read_text(MAIN), "apply") == "false"


def test_scan_schedule_follows_the_alert_interval():
    """The no-completed-scan alert waits twice ``scanIntervalMinutes``; the timer's schedule defaults to every
    ``scanIntervalMinutes`` (a parameter default may reference another parameter: Bicep diagnostic BCP072), and the
    parameters file sets only the interval, so the two cannot drift apart unless an operator sets a custom schedule.
    At the default of 30 the expression gives the documented '0 */30 * * * *' (docs/deployment.md's table)."""
    main = read_text(MAIN)
    assert bicep_param_default(main, "scanIntervalMinutes") == "30"
    assert bicep_param_default(main, "scanSchedule") == (
        "scanIntervalMinutes < 60 ? '0 */${scanIntervalMinutes} * * * *' : '0 0 */${scanIntervalMinutes / 60} * * *'"
    )
    params = read_text(MAIN.with_suffix(".bicepparam"))
    assert re.search(r"^param scanIntervalMinutes = 30\b", params, re.MULTILINE)
    assert not re.search(r"^param scanSchedule\b", params, re.MULTILINE)
    assert "| `ASR_SCAN_SCHEDULE` | `0 */30 * * * *` |" in read_text(DOCS)


def test_main_outputs_what_the_other_deployments_need():
    outputs = set(re.findall(r"^output (\w+) ", read_text(MAIN), re.MULTILINE))
    assert {
        "functionAppName",
        "functionAppResourceId",
        "identityPrincipalId",
        "identityClientId",
        "identityResourceId",
        "storageAccountName",
        "storageAccountResourceId",
        "deadLetterContainerName",
    } <= outputs


# --- host.json ------------------------------------------------------------------------------------------------


def test_host_json():
    host = json.loads(read_text(HOST_JSON))
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    timeout = re.fullmatch(r"(\d\d):(\d\d):(\d\d)", host["functionTimeout"])
    assert timeout, host["functionTimeout"]
    hours, minutes, seconds = (int(part) for part in timeout.groups())
    assert 0 < hours * 3600 + minutes * 60 + seconds <= 3600
    queues = host["extensions"]["queues"]
    assert queues["messageEncoding"] == "base64"  # asr_remediate/fanout.py sends base64
    assert queues["maxDequeueCount"] == 5
    assert "retry" not in host, "no global retry policy: each trigger retries its own way"
    assert host["logging"]["logLevel"]["default"] == "Information"
    assert "Request" in host["logging"]["applicationInsights"]["samplingSettings"]["excludedTypes"]


# --- settings lists in sync -----------------------------------------------------------------------------------


def test_local_settings_sample_has_every_setting():
    sample = json.loads(read_text(LOCAL_SETTINGS))
    assert sample["IsEncrypted"] is False
    values = sample["Values"]
    assert all(isinstance(v, str) for v in values.values()), "local.settings values must be strings"
    names = {name for name in values if SETTING_NAME.match(name)}
    expected = all_setting_names()
    assert not expected - names, f"missing from local.settings.sample.json: {sorted(expected - names)}"
    assert not names - expected, f"not read by the app: {sorted(names - expected)}"
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert values["ASR_APPLY"] == "false"
    assert values["ASR_AUDIT_SINK"] == "jsonl"


def test_docs_settings_table_matches_the_code():
    rows = docs_table_settings()
    documented = {name for name in rows if SETTING_NAME.match(name)}
    expected = all_setting_names()
    assert not expected - documented, f"missing from docs/deployment.md: {sorted(expected - documented)}"
    assert not documented - expected, f"documented but not read by the app: {sorted(documented - expected)}"
    for name in main_app_setting_names():
        assert name in rows, f"main.bicep sets {name}; document it in docs/deployment.md"


def test_main_bicep_sets_every_setting_the_app_reads_in_azure():
    names = {name for name in main_app_setting_names() if SETTING_NAME.match(name)}
    expected = all_setting_names() - LOCAL_ONLY_SETTINGS
    assert not expected - names, f"main.bicep does not set {sorted(expected - names)}"
    assert not names - expected, f"main.bicep sets settings the app does not read: {sorted(names - expected)}"
    assert not LOCAL_ONLY_SETTINGS & names


# --- what a Bicep compiler would catch first: parameter names across files --------------------------------------


def _declared_params(text: str) -> dict[str, bool]:
    """param name -> has a default."""
    return {
        m.group(1): m.group(2) is not None for m in re.finditer(r"^param (\w+) [\w.]+( = .+)?$", text, re.MULTILINE)
    }


@pytest.mark.parametrize("paramfile", sorted(p.name for p in INFRA.glob("*.bicepparam")))
def test_bicepparam_files_set_only_declared_params(paramfile):
    text = read_text(INFRA / paramfile)
    using = re.search(r"^using '([^']+)'$", text, re.MULTILINE)
    assert using, f"{paramfile}: no using line"
    template = INFRA / using.group(1)
    assert template.exists(), f"{paramfile} uses a missing template {template.name}"
    declared = _declared_params(read_text(template))
    given = set(re.findall(r"^param (\w+) =", text, re.MULTILINE))
    assert given <= set(declared), f"{paramfile} sets undeclared {sorted(given - set(declared))}"
    required = {name for name, has_default in declared.items() if not has_default}
    assert required <= given, f"{paramfile} leaves required {sorted(required - given)} unset"


def test_subscription_passes_only_declared_params_to_the_events_module():
    text = strip_comments(read_text(SUBSCRIPTION))
    match = re.search(r"^module events 'modules/events.bicep' = [^{]*\{", text, re.MULTILINE)
    assert match
    module = balanced(text, match.end() - 1, "{", "}")
    params_at = module.index("params: {")
    params = balanced(module, params_at + len("params: "), "{", "}")
    given = set(re.findall(r"^\s+(\w+): ", params, re.MULTILINE))
    declared = _declared_params(read_text(EVENTS))
    assert given <= set(declared), f"events.bicep has no param {sorted(given - set(declared))}"
    required = {name for name, has_default in declared.items() if not has_default}
    assert required <= given, f"subscription.bicep does not pass {sorted(required - given)}"
