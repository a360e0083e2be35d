"""End to end (issue 15): an NSG change produces drift ASR has not reported yet; a later health error on the protected
item turns it into "confirmed" — through the Function App's functions, the ARM emulator and the real SDK clients.

Azure behaviour relied on:
* The protected item carries ``replicationHealth`` and ``healthErrors[]`` with ``errorCode`` / ``creationTimeUtc``
  (the recorded A2A item in tests/data/arm, error 161011). ASR updates them itself; when that reaches the bot as a
  ``replicationProtectedItems/write`` event the item is read again with ReplicationProtectedItems_Get, and the
  timer's scan (Resource Graph) sees it in any case — the docs do not say a health change raises an event.
* 151196 is "Site Recovery configuration failed": no connection to Microsoft Entra ID
  (learn.microsoft.com/azure/site-recovery/azure-to-azure-troubleshoot-network-connectivity, Issue 2).
"""

from __future__ import annotations

import json
from typing import Any

import function_app
from asr_remediate import triggers
from examples.estate_builder import health_error
from examples.make_example_estate import DR_SUB, SUB
from tests.emulator.arm_emulator import ArmEmulator
from tests.emulator.test_events import ITEM_WRITE, _id, event
from tests.emulator.test_function_app import http, user_function

SINCE = "2026-12-02T09:41:17.5550000Z"


def web_report() -> dict[str, Any]:
    """vm-web-01 as the HTTP dry run reports it (JSON contract)."""
    body = json.dumps({"subscriptions": [SUB, DR_SUB], "vms": ["vm-web-01"], "format": "json"}).encode()
    response = user_function(function_app.dry_run)(http("POST", body=body))
    assert response.status_code == 200, response.get_body()
    [vm] = json.loads(response.get_body())["vms"]
    return dict(vm)


def test_drift_not_yet_reported_then_confirmed_by_asrs_health_error(app_env: ArmEmulator) -> None:
    before = web_report()
    assert before["status"] == "compliant"
    assert [e["verdict"] for e in before["asrHealth"]["errors"]] == ["other"]  # 161011: no test failover

    # Someone denies Internet outbound on vm-web-01's subnet NSG: drift, and ASR is still healthy.
    web = _id(app_env, "/nsg-web")
    app_env.add_security_rule(web, "Deny-Internet-Out", {
        "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": "*",
        "destinationAddressPrefix": "Internet", "access": "Deny", "priority": 4000, "direction": "Outbound"})
    summary = triggers.on_event(event(f"{web}/securityRules/Deny-Internet-Out",
                                      "Microsoft.Network/networkSecurityGroups/securityRules/write"))
    assert summary["drift"] == 1 and summary["asrNotYetReported"] == 1, summary
    assert (summary["asrConfirmed"], summary["asrUnexplained"]) == (0, 0)
    early = web_report()
    denied = [f for f in early["findings"] if f["kind"] == "nsg-deny" and f["side"] == "source"]
    assert {f["destination"] for f in denied} >= {"AzureActiveDirectory", "Storage.EastUS"}
    assert {f["asr"] for f in denied} == {"not-yet-reported"}
    assert all(f["asrNote"].startswith("ASR has not reported it yet (replication health Normal") for f in denied)

    # Minutes later ASR notices: the item gets 151196 (Entra ID unreachable) and its event arrives.
    item = _id(app_env, "/replicationprotecteditems/vm-web-01-item")
    props = app_env.resources[item.lower()]["properties"]
    props["replicationHealth"] = "Critical"
    props["healthErrors"].append(health_error("151196", SINCE, "Site Recovery configuration failed."))
    summary = triggers.on_event(event(item, ITEM_WRITE, event_id="asr-health"))
    assert app_env.count("GET", r"/replicationProtectedItems/vm-web-01-item$") == 1  # read through ARM
    assert (summary["vms"], summary["drift"], summary["asrConfirmed"], summary["asrUnexplained"]) == (1, 1, 1, 0)
    late = web_report()
    by_destination = {f["destination"]: f for f in late["findings"] if f["kind"] == "nsg-deny" and
                      f["side"] == "source"}
    assert by_destination["AzureActiveDirectory"]["asr"] == "confirmed"
    assert by_destination["AzureActiveDirectory"]["asrNote"] == "ASR reports error 151196 since 2026-12-02T09:41:17Z"
    assert by_destination["Storage.EastUS"]["asr"] == "not-yet-reported"  # 151196 says nothing about the cache
    health = late["asrHealth"]
    assert health["replicationHealth"] == "Critical" and health["confirmed"] == 1
    assert [(e["code"], e["verdict"]) for e in health["errors"]] == [("161011", "other"), ("151196", "confirmed")]
    assert health["errors"][1]["explainedBy"] == ["nsg-deny in nsg-web (Deny-Internet-Out)"]
    assert app_env.count("PUT") == 0  # report-only: the cross-check never writes

    # A health change is Site Recovery's own, not necessarily an ARM write with an event: the timer's scan of the
    # whole estate sees it too (vm-app-01 and vm-vendor-01 confirmed already, vm-nva-01 unexplained).
    timer = triggers.on_timer()
    assert (timer["asrConfirmed"], timer["asrUnexplained"]) == (3, 1), timer
