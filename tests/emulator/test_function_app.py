"""The v2 functions called directly with real azure.functions request types, against the ARM emulator + Azurite."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ServiceRequestError
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from asr_remediate import triggers
from asr_remediate.audit import JsonlAuditSink
from asr_remediate.azure.network import NetworkWriter
from asr_remediate.config import Settings
from asr_remediate.runtime import Runtime, RuntimeConfigError
from examples.estate_builder import nic, rid, vm
from examples.make_example_estate import DR_SUB, RG, SUB
from tests.azurite import unique_name
from tests.emulator.arm_emulator import ArmEmulator
from tests.emulator.fixtures import FakeCredential, FakeSleep
from tests.scenario import REPO

ESTATE = json.loads((REPO / "examples" / "estate.json").read_text())
TAGS = json.loads((REPO / "examples" / "ServiceTags_Public_20251028.json").read_text())
EVENTS = REPO / "tests" / "data" / "eventgrid"
BOT_OBJECT_ID = "9a2b3c4d-0000-4000-8000-00000000b07a"


def user_function(builder: Any) -> Any:
    return builder.build().get_user_function()


@pytest.fixture
def app_env(arm: ArmEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArmEmulator]:
    arm.add_all(copy.deepcopy(ESTATE))
    arm.service_tags = TAGS
    env = {
        "ASR_SUBSCRIPTIONS": f"{SUB},{DR_SUB}",
        "ASR_ARM_ENDPOINT": arm.base_url,
        "ASR_ARM_CA_BUNDLE": arm.ca_path,
        "ASR_AUDIT_SINK": "jsonl",
        "ASR_AUDIT_PATH": str(tmp_path / "audit.jsonl"),
        "ASR_BOT_PRINCIPAL_IDS": BOT_OBJECT_ID,
        "ASR_MAX_CHANGES": "100",
        "ASR_SCOPE_ALLOWLIST": f"/subscriptions/{SUB},/subscriptions/{DR_SUB}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def factory(settings: Settings) -> Runtime:
        credential, sleep = FakeCredential(), FakeSleep()
        network = NetworkWriter(credential, settings.arm_endpoint, ca_bundle=settings.arm_ca_bundle, sleep=sleep,
                                polling_interval=0)
        return Runtime(settings, credential, network=network, progress=lambda _m: None,
                       inventory_kwargs={"sleep": sleep})

    monkeypatch.setattr(triggers, "runtime_factory", factory)
    yield arm


def http(method: str, params: dict[str, str] | None = None, body: bytes = b"", route: str = "dry-run"
         ) -> func.HttpRequest:
    return func.HttpRequest(method, f"https://app.example/api/{route}", params=params or {}, body=body,
                            headers={"x-functions-key": "k"})


# -- HTTP dry run ------------------------------------------------------------------------------------------------
def test_dry_run_get_returns_the_report_and_never_writes(app_env: ArmEmulator,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASR_APPLY", "true")
    response = user_function(function_app.dry_run)(http("GET", {"subscription": f"{SUB},{DR_SUB}"}))
    assert response.status_code == 200 and response.mimetype == "application/json"
    doc = json.loads(response.get_body())
    assert doc["schemaVersion"] == 1 and len(doc["plan"]) == 14
    assert app_env.count("PUT") == 0


def test_dry_run_post_scoped_to_a_vm_in_markdown(app_env: ArmEmulator) -> None:
    body = json.dumps({"subscriptions": [SUB, DR_SUB], "vms": ["vm-db-01"], "format": "markdown"}).encode()
    response = user_function(function_app.dry_run)(http("POST", body=body))
    assert response.status_code == 200 and response.mimetype == "text/markdown"
    text = response.get_body().decode()
    assert "| vm-db-01 |" in text and "vm-app-01" not in text and "rt-forced-tunnel" in text


@pytest.mark.parametrize(
    ("method", "params", "body", "message"),
    [
        ("GET", {"subscription": "not-a-guid"}, b"", "not a subscription id"),
        ("GET", {"subscription": SUB, "format": "xml"}, b"", "format must be one of json, markdown"),
        ("POST", {}, b"{broken", "not valid JSON"),
        ("POST", {}, b"[1, 2]", "must be a JSON object"),
        ("POST", {}, json.dumps({"subscriptions": 5}).encode(), "subscriptions must be"),
        ("GET", {"subscription": "11111111-1111-1111-1111-111111111111"}, b"", "outside ASR_SUBSCRIPTIONS"),
        ("GET", {"subscription": SUB, "vm": "bad name!"}, b"", "not a resource group, VM name or id"),
    ],
)
def test_dry_run_bad_input_is_400_with_a_clear_message(app_env: ArmEmulator, method: str, params: dict[str, str],
                                                       body: bytes, message: str) -> None:
    response = user_function(function_app.dry_run)(http(method, params, body))
    assert response.status_code == 400
    assert message in json.loads(response.get_body())["error"]
    assert app_env.requests == []


def test_preflight_checks_a_vm_that_is_not_replicated_yet(app_env: ArmEmulator) -> None:
    app_nsg = next(k for k in app_env.resources if k.lower().endswith("/nsg-app"))
    vnet_id = next(k for k in app_env.resources if k.lower().endswith("/vnet-prod-eastus"))
    vm_id = rid(SUB, RG, "Microsoft.Compute", "virtualMachines", "vm-new-01")
    new_nic = nic(SUB, RG, "vm-new-01-nic", "eastus", f"{vnet_id}/subnets/snet-app", "10.10.2.40", vm_id)
    app_env.add_all([new_nic, vm(SUB, RG, "vm-new-01", "eastus", [new_nic["id"]])])
    dr_vnet = next(k for k in app_env.resources if k.lower().endswith("/vnet-dr-centralus"))
    params = {"vm": vm_id, "targetRegion": "centralus", "recoveryVnet": dr_vnet, "recoverySubnet": "snet-app"}
    response = user_function(function_app.preflight)(http("GET", params, route="preflight"))
    assert response.status_code == 200
    (report,) = json.loads(response.get_body())["vms"]
    assert report["name"] == "vm-new-01" and report["status"] == "drift"
    sides = {(f["side"], f["resourceId"].lower()) for f in report["findings"] if f["severity"] == "error"}
    assert ("source", app_nsg.lower()) in sides and any(side == "target" for side, _ in sides)
    # The plan fixes the recovery side too: the preflight's item is not in the estate, the planner is given it.
    plan = json.loads(response.get_body())["plan"]
    assert {fix["side"] for change in plan for fix in change["fixes"]} == {"source", "target"}
    missing = user_function(function_app.preflight)(http("GET", {**params, "vm": vm_id + "x"}, route="preflight"))
    assert missing.status_code == 404
    bad = user_function(function_app.preflight)(http("GET", {"vm": vm_id, "targetRegion": "Central US!"},
                                                     route="preflight"))
    assert bad.status_code == 400 and "targetRegion" in json.loads(bad.get_body())["error"]


# -- Event Grid --------------------------------------------------------------------------------------------------
def grid_event(resource_id: str, operation: str, *, delete: bool = False, caller: str = "user-object-id",
               event_id: str = "4db48cba-50a2-455a-93b4-de41a3b5b7f6") -> func.EventGridEvent:
    """The real docs sample (Event Grid schema), pointed at one of our resources."""
    name = "ResourceDeleteSuccess" if delete else "ResourceWriteSuccess"
    sample = json.loads((EVENTS / f"docs_resource-groups_{name}_eventgridschema.json").read_text())[0]
    data = copy.deepcopy(sample["data"])
    data["resourceUri"] = resource_id
    data["operationName"] = operation
    data["subscriptionId"] = resource_id.split("/")[2]
    data["claims"]["http://schemas.microsoft.com/identity/claims/objectidentifier"] = caller
    return func.EventGridEvent(id=event_id, data=data, topic=sample["topic"], subject=resource_id,
                               event_type=sample["eventType"], event_time=None, data_version=sample["dataVersion"])


def _id(arm: ArmEmulator, suffix: str) -> str:
    return next(k for k in arm.resources if k.lower().endswith(suffix))


def test_event_on_an_nsg_rule_fixes_only_the_vms_behind_it_and_is_idempotent(app_env: ArmEmulator,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASR_APPLY", "true")
    app_nsg = _id(app_env, "/nsg-app")
    handler = user_function(function_app.on_resource_event)
    handler(grid_event(f"{app_nsg}/securityRules/Deny-Internet-Out",
                       "Microsoft.Network/networkSecurityGroups/securityRules/write"))
    puts = {r.path.split("/providers/")[1].split("/")[1:3][1] for r in app_env.matching("PUT")}
    assert puts == {"nsg-app", "nsg-dr-app"}  # vm-app-01/02's source NSG and vm-app-01's recovery NSG only
    assert app_env.count("GET", r"networkSecurityGroups/nsg-app$") >= 1  # re-read from ARM, not from ARG
    app_env.clear_log()
    handler(grid_event(f"{app_nsg}/securityRules/Deny-Internet-Out",
                       "Microsoft.Network/networkSecurityGroups/securityRules/write"))
    assert app_env.count("PUT") == 0  # duplicate delivery: nothing left to do


def test_deleted_bot_route_is_recreated_from_a_delete_event(app_env: ArmEmulator,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASR_APPLY", "true")
    table_id = _id(app_env, "/rt-forced-tunnel")
    handler = user_function(function_app.on_resource_event)
    handler(grid_event(table_id, "Microsoft.Network/routeTables/write"))
    assert app_env.count("PUT", r"/routes/asr-remediate-") == 4
    doc = app_env.resource(table_id)
    assert doc is not None
    routes = doc["properties"]["routes"]
    doc["properties"]["routes"] = [r for r in routes if r["name"] != "asr-remediate-AzureSiteRecovery"]
    app_env.resources[table_id] = doc
    app_env.clear_log()
    handler(grid_event(f"{table_id}/routes/asr-remediate-AzureSiteRecovery",
                       "Microsoft.Network/routeTables/routes/delete", delete=True, event_id="e2"))
    assert [r.path.rsplit("/", 1)[-1] for r in app_env.matching("PUT")] == ["asr-remediate-AzureSiteRecovery"]


def test_own_writes_unwatched_types_and_bad_events_are_ignored(app_env: ArmEmulator,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASR_APPLY", "true")
    handler = user_function(function_app.on_resource_event)
    app_nsg = _id(app_env, "/nsg-app")
    handler(grid_event(f"{app_nsg}/securityRules/asr-remediate-Storage.EastUS",
                       "Microsoft.Network/networkSecurityGroups/securityRules/write", caller=BOT_OBJECT_ID))
    sample = json.loads((EVENTS / "docs_resource-groups_ResourceWriteSuccess_eventgridschema.json").read_text())[0]
    handler(func.EventGridEvent(id="x", data=sample["data"], topic=sample["topic"], subject=sample["subject"],
                                event_type=sample["eventType"], event_time=None, data_version="2"))
    handler(func.EventGridEvent(id="y", data={"nothing": 1}, topic="t", subject="s",
                                event_type="Microsoft.Resources.ResourceWriteSuccess", event_time=None,
                                data_version="2"))
    assert app_env.requests == []
    assert triggers.on_event({"type": "Microsoft.Resources.ResourceWriteSuccess"}) == {
        "ignored": "Microsoft.Resources.ResourceWriteSuccess event has no data object"}


def test_cloudevents_schema_sample_is_understood(app_env: ArmEmulator) -> None:
    event = json.loads((EVENTS / "resource_write_success.json").read_text())
    event.pop("operationId", None)
    event.pop("title", None)
    app_nsg = _id(app_env, "/nsg-legacy")
    event["data"]["resourceUri"] = app_nsg
    event["data"]["operationName"] = "Microsoft.Network/networkSecurityGroups/write"
    event["data"]["subscriptionId"] = SUB
    summary = triggers.on_event(event)
    assert summary["vms"] == 1 and summary["drift"] == 1 and summary["applied"] == 0  # report-only by default
    assert app_env.count("PUT") == 0


# -- timer and queue fan-out -------------------------------------------------------------------------------------
def test_timer_scans_inline_when_one_batch(app_env: ArmEmulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="asr_remediate")
    user_function(function_app.scheduled_scan)(TimerRequest(past_due=True))
    summary = json.loads(next(r.getMessage() for r in caplog.records if "scheduled scan" in r.getMessage())
                         .split(": ", 1)[1])
    assert summary["vms"] == 18 and summary["drift"] == 8 and summary["applied"] == 0  # vm-data-01: admin-deny


def test_timer_fans_out_batches_on_a_queue_consumed_by_the_queue_trigger(
        app_env: ArmEmulator, azurite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = unique_name("scans")
    monkeypatch.setenv("AzureWebJobsStorage", azurite)
    monkeypatch.setenv("ASR_FANOUT_QUEUE", queue)
    monkeypatch.setenv("ASR_FANOUT_BATCH_SIZE", "1")
    monkeypatch.setenv("ASR_APPLY", "true")
    user_function(function_app.scheduled_scan)(TimerRequest())
    assert app_env.requests == []  # the timer only enqueues
    client = QueueClient.from_connection_string(azurite, queue)
    messages = list(client.receive_messages(messages_per_page=32, visibility_timeout=60))
    assert len(messages) == 2
    batch_handler = user_function(function_app.scan_batch)
    subscriptions = set()
    for message in messages:
        text = base64.b64decode(message.content).decode()  # what the Functions host hands the trigger
        subscriptions.update(json.loads(text)["subscriptions"])
        batch_handler(func.QueueMessage(id=message.id, body=text.encode()))
    assert subscriptions == {SUB, DR_SUB}
    assert app_env.count("PUT") == 13  # each batch fixed what lives in its subscription
    # Every replicated VM lives in SUB (DR_SUB holds only vaults and recovery networks), so one batch wrote all 13,
    # under its own run id <run>.bNNNN; the other batch had no VM and wrote nothing.
    sink = JsonlAuditSink(os.environ["ASR_AUDIT_PATH"])
    (run,) = sink.runs()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}\.b000[01]", run)
    assert sum(r.phase == "outcome" and r.result == "succeeded" for r in sink.records(run)) == 13


def test_out_of_order_delivery_converges_on_current_state(app_env: ArmEmulator,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASR_APPLY", "true")
    handler = user_function(function_app.on_resource_event)
    legacy = _id(app_env, "/nsg-legacy")
    # Newer event first: someone deleted the bot's rule (after an earlier write we have not seen yet).
    handler(grid_event(legacy, "Microsoft.Network/networkSecurityGroups/write", event_id="newer"))
    first_puts = app_env.count("PUT")
    assert first_puts == 4
    app_env.clear_log()
    # The older event arrives late: current state is read again, nothing is left to do, nothing is duplicated.
    handler(grid_event(f"{legacy}/securityRules/Deny-All-Out",
                       "Microsoft.Network/networkSecurityGroups/securityRules/write", event_id="older"))
    assert app_env.count("PUT") == 0
    doc = app_env.resource(legacy)
    assert doc is not None
    names = [r["name"] for r in doc["properties"]["securityRules"]]
    assert len(names) == len(set(names)) and sum(n.startswith("asr-remediate-") for n in names) == 4


def test_dry_run_reports_azure_failures_as_502(app_env: ArmEmulator) -> None:
    from tests.emulator.arm_emulator import Fault

    app_env.inject("POST", r"ResourceGraph", Fault.error(403, "AuthorizationFailed", "no access to sub"), times=20)
    response = user_function(function_app.dry_run)(http("GET", {"subscription": SUB}))
    assert response.status_code == 502
    assert "AuthorizationFailed" in json.loads(response.get_body())["error"] or "no access" in json.loads(
        response.get_body())["error"]


def test_dry_run_reports_the_apps_own_misconfiguration_as_500(app_env: ArmEmulator,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A RuntimeConfigError (e.g. no storage for the fan-out queue) is the app's setup, not Azure failing: 500."""

    class Misconfigured:
        def run(self, *_args: object, **_kwargs: object) -> None:
            raise RuntimeConfigError("set AzureWebJobsStorage or AzureWebJobsStorage__queueServiceUri")

    monkeypatch.setattr(triggers, "runtime_factory", lambda _settings: Misconfigured())
    response = user_function(function_app.dry_run)(http("GET", {"subscription": SUB}))
    assert response.status_code == 500
    assert json.loads(response.get_body())["error"] == (
        "server misconfiguration: set AzureWebJobsStorage or AzureWebJobsStorage__queueServiceUri")


# -- HTTP: errors are the caller's (400) or the server's (500), in one bounded line, never a traceback -------------
def answer(response: func.HttpResponse) -> tuple[int, str]:
    error = json.loads(response.get_body())["error"]
    assert isinstance(error, str) and "\n" not in error and len(error) <= 500
    return response.status_code, error


def preflight_params(_app_env: ArmEmulator) -> dict[str, str]:
    return {"vm": rid(SUB, RG, "Microsoft.Compute", "virtualMachines", "vm-web-01"), "targetRegion": "centralus"}


@pytest.mark.parametrize("route", ["dry-run", "preflight"])
def test_a_bad_app_setting_is_a_500_naming_it_not_a_400(app_env: ArmEmulator, monkeypatch: pytest.MonkeyPatch,
                                                        route: str) -> None:
    monkeypatch.setenv("ASR_APPLY", "maybe")
    function = function_app.dry_run if route == "dry-run" else function_app.preflight
    params = {"subscription": SUB} if route == "dry-run" else preflight_params(app_env)
    status, error = answer(user_function(function)(http("GET", params, route=route)))
    assert status == 500 and "ASR_APPLY" in error and error.startswith("server misconfiguration: ")
    assert app_env.requests == []


@pytest.mark.parametrize(("params", "message"), [
    ({"recoveryVnet": "x", "recoverySubnet": "snet-app"}, "recoveryVnet must be a virtual network resource id"),
    ({"recoveryVnet": "/subscriptions/x"}, "give the recoveryVnet and the recoverySubnet together"),
    ({"vm": "/subscriptions/" + "x" * 100_000}, "vm must be a VM resource id"),
    ({"targetRegion": "Central US!"}, "targetRegion must be an Azure region name"),
    ({"recoveryVnet": rid(SUB, RG, "Microsoft.Network", "virtualNetworks", "v"), "recoverySubnet": "bad name!"},
     "recoverySubnet must be a subnet name"),
    ({"vm": rid("11111111-1111-1111-1111-111111111111", RG, "Microsoft.Compute", "virtualMachines", "vm")},
     "outside ASR_SUBSCRIPTIONS"),
    ({"recoveryVnet": rid("11111111-1111-1111-1111-111111111111", RG, "Microsoft.Network", "virtualNetworks", "v"),
      "recoverySubnet": "snet"}, "outside ASR_SUBSCRIPTIONS"),
])
def test_preflight_arguments_are_checked_before_anything_is_read(app_env: ArmEmulator, params: dict[str, str],
                                                                 message: str) -> None:
    request = http("GET", {**preflight_params(app_env), **params}, route="preflight")
    status, error = answer(user_function(function_app.preflight)(request))
    assert status == 400 and message in error
    assert app_env.requests == []


def test_preflight_of_a_region_the_service_tags_do_not_know_is_a_400(app_env: ArmEmulator) -> None:
    request = http("GET", {**preflight_params(app_env), "targetRegion": "marsnorth"}, route="preflight")
    status, error = answer(user_function(function_app.preflight)(request))
    assert status == 400 and "targetRegion 'marsnorth' is not an Azure region" in error


HUGE = b"9" * 5000


@pytest.mark.parametrize(("body", "message"), [
    (b"[" * 100_000, "request body is nested too deeply"),
    (b'{"format": ' + b"[" * 100_000, "request body is nested too deeply"),
    (b'{"subscriptions": [' + HUGE + b"]}", "subscriptions must be a list of strings"),
    (b'{"subscriptions": 1e400}', "subscriptions must be a string or a list of strings"),
    (b'{"format": ' + HUGE + b"}", "format must be a string"),
    (b'{"format": NaN}', "format must be a string"),
    (b'{"format": "' + b"x" * 100_000 + b'"}', "format must be one of json, markdown"),
    (b'{"subscriptions": ["' + b"x" * 100_000 + b'"]}', "not a subscription id"),
])
def test_dry_run_awkward_bodies_are_400(app_env: ArmEmulator, body: bytes, message: str) -> None:
    status, error = answer(user_function(function_app.dry_run)(http("POST", {"subscription": SUB}, body)))
    assert status == 400 and message in error
    assert app_env.requests == []


@pytest.mark.parametrize(("body", "message"), [
    (b"[" * 100_000, "request body is nested too deeply"),
    (b'{"vm": 1e400, "targetRegion": "centralus"}', "vm must be a string"),
    (b'{"vm": ' + HUGE + b', "targetRegion": "centralus"}', "vm must be a string"),
    (b'{"vm": {"id": "/subscriptions/x"}, "targetRegion": "centralus"}', "vm must be a string"),
    (b'{"targetRegion": -Infinity}', "targetRegion must be a string"),
    (b'{"recoveryVnet": true}', "recoveryVnet must be a string"),
])
def test_preflight_awkward_bodies_are_400(app_env: ArmEmulator, body: bytes, message: str) -> None:
    status, error = answer(user_function(function_app.preflight)(http("POST", body=body, route="preflight")))
    assert status == 400 and message in error
    assert app_env.requests == []


def test_dry_run_with_one_malformed_nsg_reports_its_vms_unknown_and_the_rest(app_env: ArmEmulator) -> None:
    """Live data with one rule whose priority is "abc": the VMs behind that NSG are unknown, naming it and why;
    every other VM is evaluated as before (one bad resource no longer fails the whole scan)."""
    app_nsg = _id(app_env, "/nsg-app")
    app_env.add_security_rule(app_nsg, "Typo", {"priority": "abc", "direction": "Outbound", "access": "Deny",
                                                "protocol": "*", "destinationAddressPrefix": "*"})
    response = user_function(function_app.dry_run)(http("GET", {"subscription": f"{SUB},{DR_SUB}"}))
    assert response.status_code == 200
    reports = {vm["name"]: vm for vm in json.loads(response.get_body())["vms"]}
    assert len(reports) == 18
    for name in ("vm-app-01", "vm-app-02"):
        unknown = [f for f in reports[name]["findings"]
                   if f["kind"] == "unknown" and f["resourceId"].lower() == app_nsg]
        assert unknown and all("is unreadable: security rule 'Typo' has no valid priority: 'abc' is not a whole "
                               "number" in f["message"] for f in unknown)
    assert reports["vm-app-02"]["status"] == "unknown"
    assert reports["vm-web-01"]["status"] == "compliant" and reports["vm-erp-01"]["status"] == "unknown"


class _NoAzure:
    """A runtime for requests that get past validation: reading Azure fails, as it may."""

    def run(self, *_args: Any, **_kwargs: Any) -> Any:
        raise ServiceRequestError("no Azure here")

    def collect(self, *_args: Any, **_kwargs: Any) -> Any:
        raise ServiceRequestError("no Azure here")


BODY_KEYS = ("subscriptions", "subscription", "resourceGroups", "vms", "vm", "format", "targetRegion", "recoveryVnet",
             "recoverySubnet")
JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.sampled_from(
    [SUB, "json", "markdown", "centralus", rid(SUB, RG, "Microsoft.Compute", "virtualMachines", "vm")])
JSON_ANY = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(["dry-run", "preflight"]),
       body=st.dictionaries(st.sampled_from(BODY_KEYS), JSON_ANY, max_size=5).map(lambda d: json.dumps(d).encode())
       | st.binary(max_size=40) | JSON_ANY.map(lambda v: json.dumps(v).encode()))
def test_any_body_gets_an_answer_never_an_exception(route: str, body: bytes) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ASR_SUBSCRIPTIONS", SUB)
        patch.setattr(triggers, "runtime_factory", lambda _settings: _NoAzure())
        function = triggers.dry_run if route == "dry-run" else triggers.preflight
        result = function("POST", {}, body)
    assert result.status in (400, 502)
    error = json.loads(result.body)["error"]
    assert isinstance(error, str) and "\n" not in error and len(error) <= 500
