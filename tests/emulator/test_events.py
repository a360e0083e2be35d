"""Events that do what they say: protected items, Resource Graph lag, malformed ids, the subscription in scope.

Azure behaviour relied on:
* Resource Graph is an eventually consistent index that "lags behind the source of truth by a brief period,
  occasionally longer"; the resource provider is the source of truth
  (learn.microsoft.com/azure/governance/resource-graph/choose-query-strategy) — so the handler reads the named
  resource from ARM and re-checks later when Resource Graph had not caught up.
* A protected item is read with ReplicationProtectedItems_Get (Azure/azure-rest-api-specs,
  specification/recoveryservicessiterecovery/…/stable/2025-01-01/examples/ReplicationProtectedItems_Get.json).
* Resource events carry the resource in ``data.resourceUri`` and the subscription separately in
  ``data.subscriptionId`` (Event Grid "Azure subscription as an Event Grid source" schema; the recorded samples in
  tests/data/eventgrid).
"""

from __future__ import annotations

import base64
import copy
import json
import time
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from asr_remediate import fanout, triggers
from asr_remediate.fanout import EventRecheck, encode_recheck
from examples.make_example_estate import DR_SUB, SUB
from tests.azurite import unique_name
from tests.emulator.arm_emulator import ArmEmulator
from tests.scenario import REPO

EVENTS = REPO / "tests" / "data" / "eventgrid"


def event(resource_id: str, operation: str, *, subscription: str | None = None, event_id: str = "e1",
          delete: bool = False) -> dict[str, Any]:
    """The recorded docs sample (Event Grid schema), pointed at ``resource_id``."""
    name = "ResourceDeleteSuccess" if delete else "ResourceWriteSuccess"
    sample = copy.deepcopy(json.loads((EVENTS / f"docs_resource-groups_{name}_eventgridschema.json").read_text())[0])
    sample["id"] = event_id
    sample["subject"] = resource_id
    sample["data"]["resourceUri"] = resource_id
    sample["data"]["operationName"] = operation
    sample["data"]["subscriptionId"] = subscription or resource_id.split("/")[2]
    return dict(sample)


def _id(arm: ArmEmulator, suffix: str) -> str:
    return next(doc["id"] for k, doc in arm.resources.items() if k.endswith(suffix))


ITEM_WRITE = ("Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/"
              "replicationProtectedItems/write")


def test_a_protected_item_event_evaluates_that_vm(app_env: ArmEmulator) -> None:
    item = _id(app_env, "/replicationprotecteditems/vm-app-01-item")
    summary = triggers.on_event(event(item, ITEM_WRITE))
    assert summary["vms"] == 1 and summary["drift"] == 1, summary
    assert app_env.count("GET", r"/replicationProtectedItems/vm-app-01-item$") == 1  # read through ARM
    assert "recheck" not in summary  # Resource Graph already had it


def test_a_just_enabled_replication_not_in_resource_graph_yet_is_evaluated_and_rechecked(
        app_env: ArmEmulator, azurite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = unique_name("rechecks")
    monkeypatch.setenv("AzureWebJobsStorage", azurite)
    monkeypatch.setenv("ASR_FANOUT_QUEUE", queue)
    monkeypatch.setattr(fanout, "RECHECK_DELAYS", (2, 2, 2))  # seconds, so the test can wait them out
    monkeypatch.setattr(triggers, "RECHECK_DELAYS", (2, 2, 2))
    item = _id(app_env, "/replicationprotecteditems/vm-app-01-item")
    app_env.arg_lag[item.lower()] = None  # ARM has it, Resource Graph does not yet
    summary = triggers.on_event(event(item, ITEM_WRITE, event_id="enable"))
    assert summary["vms"] == 1 and summary["drift"] == 1, summary
    assert summary["recheck"].startswith("re-check 1 of 3 in 2 s") and "not yet in Resource Graph" in summary["recheck"]

    client = QueueClient.from_connection_string(azurite, queue)
    assert list(client.receive_messages()) == []  # invisible for its delay
    time.sleep(2.5)
    (message,) = list(client.receive_messages(visibility_timeout=60))
    text = base64.b64decode(message.content).decode()  # what the Functions host hands the queue trigger
    assert json.loads(text)["kind"] == "event-recheck" and json.loads(text)["event"]["id"] == "enable"
    client.delete_message(message)

    del app_env.arg_lag[item.lower()]  # Resource Graph caught up
    again = triggers.on_queue(text.encode())
    assert again["vms"] == 1 and "recheck" not in again
    assert list(client.receive_messages()) == []


def test_a_stale_nsg_in_resource_graph_is_fixed_from_arm_and_rechecks_are_bounded(
        app_env: ArmEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASR_APPLY", "true")
    sent: list[tuple[str, int]] = []

    class Queue:
        """Records what would be queued (the Azurite test above covers the real queue)."""

        _message_encode_policy = None

        def create_queue(self) -> None:
            return None

        def send_message(self, content: str, visibility_timeout: int) -> None:
            sent.append((content, visibility_timeout))

    monkeypatch.setattr(triggers, "queue_client", lambda _settings: Queue())
    web = _id(app_env, "/nsg-web")
    app_env.arg_lag[web.lower()] = copy.deepcopy(app_env.resources[web.lower()])  # ARG's copy: before the change
    app_env.add_security_rule(web, "Deny-Internet-Out", {
        "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": "*",
        "destinationAddressPrefix": "Internet", "access": "Deny", "priority": 4000, "direction": "Outbound"})
    summary = triggers.on_event(event(f"{web}/securityRules/Deny-Internet-Out",
                                      "Microsoft.Network/networkSecurityGroups/securityRules/write"))
    assert summary["drift"] == 1 and summary["applied"] >= 1, summary  # ARM's copy decided, not Resource Graph's
    assert "older than ARM's" in summary["recheck"]
    assert [delay for _text, delay in sent] == [fanout.RECHECK_DELAYS[0]]

    # Resource Graph never catches up: attempts 1..3 queue again, the 4th stops and leaves it to the timer.
    for attempt in (1, 2, 3):
        summary = triggers.on_queue(encode_recheck(EventRecheck(json.loads(sent[-1][0])["event"], attempt)))
    assert [delay for _text, delay in sent] == list(fanout.RECHECK_DELAYS)
    assert summary["recheck"].startswith("not re-checked again after 3 re-checks")


@pytest.mark.parametrize("resource_id", [
    "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/a b",
    f"/subscriptions/{SUB}/resourceGroups//providers/Microsoft.Network/networkSecurityGroups/nsg",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/{'n' * 100_000}",
])
def test_a_malformed_resource_id_is_logged_and_dropped(app_env: ArmEmulator, resource_id: str) -> None:
    summary = triggers.on_event(event(resource_id, "Microsoft.Network/networkSecurityGroups/write",
                                      subscription=SUB))
    assert "malformed resource id" in summary["ignored"] and len(summary["ignored"]) <= 500
    assert app_env.requests == []


def test_scope_is_the_subscription_of_the_resource_not_the_events_claim(app_env: ArmEmulator,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASR_SUBSCRIPTIONS", SUB)
    monkeypatch.setenv("ASR_APPLY", "true")
    outside = _id(app_env, "/nsg-dr-app")  # lives in DR_SUB
    assert outside.split("/")[2] == DR_SUB
    summary = triggers.on_event(event(outside, "Microsoft.Network/networkSecurityGroups/write", subscription=SUB))
    assert summary["note"] == f"ignored: subscription {DR_SUB} is not in scope"
    assert app_env.requests == []
