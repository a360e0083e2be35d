"""The event path reads a few subscriptions, not the scope (issue 14) — and evaluates exactly what a full scan would.

The example estate, with its platform hub (firewall under a parent policy, gateway, ExpressRoute circuit) moved to a
subscription of its own and the private DNS zones to another, so peered hubs, firewalls and zone links live where no
protected item names them. For every NSG, route table, VNet and NIC on a replicated VM's path, a write event's plan
and per-VM reports must equal the evaluation of the same VMs on the full scope's inventory (``Runtime.collect``).

Azure behaviour relied on: NSGs, route tables and NICs are used only from their own subscription (learn.microsoft.com
/azure/virtual-network: virtual-network-network-interface, manage-network-security-group, manage-route-table; see
asr_remediate/event_reads.py), KQL ``contains`` is case-insensitive (learn.microsoft.com/kusto/query/
contains-operator).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from asr_remediate.config import Settings
from asr_remediate.estate import build_estate
from asr_remediate.events import affected_items
from asr_remediate.model import key
from asr_remediate.runtime import Runtime, Scope
from examples.make_example_estate import DR_SUB, SUB
from tests.emulator.arm_emulator import ArmEmulator, parse_query
from tests.emulator.fixtures import FakeCredential, FakeSleep
from tests.emulator.test_events import event
from tests.emulator.test_firewall_connectivity import CONNECTIVITY, PLATFORM, connectivity_hub
from tests.emulator.test_firewall_inventory import seeded
from tests.scenario import REPO

HUB_SUB = "33333333-4444-5555-6666-777777777777"
DNS_SUB = "44444444-5555-6666-7777-888888888888"
SCOPE = (SUB, DR_SUB, HUB_SUB, DNS_SUB)
ARG = "/providers/microsoft.resourcegraph/resources"


def _moved_estate() -> list[dict[str, Any]]:
    text = (REPO / "examples" / "estate.json").read_text()
    text = re.sub(f"/subscriptions/{SUB}/resourceGroups/rg-platform-network/", f"/subscriptions/{HUB_SUB}/"
                  "resourceGroups/rg-platform-network/", text, flags=re.IGNORECASE)
    text = re.sub(f"/subscriptions/{DR_SUB}/resourceGroups/rg-dns/", f"/subscriptions/{DNS_SUB}/resourceGroups/rg-dns/",
                  text, flags=re.IGNORECASE)
    resources: list[dict[str, Any]] = json.loads(text)
    return resources


RESOURCES = _moved_estate()
WATCHED: dict[str, tuple[str, str]] = {
           "microsoft.network/networksecuritygroups": ("nsg", "Microsoft.Network/networkSecurityGroups/write"),
           "microsoft.network/routetables": ("route-table", "Microsoft.Network/routeTables/write"),
           "microsoft.network/virtualnetworks": ("vnet", "Microsoft.Network/virtualNetworks/write"),
           "microsoft.network/networkinterfaces": ("nic", "Microsoft.Network/networkInterfaces/write")}


@pytest.fixture
def moved_arm(arm: ArmEmulator) -> ArmEmulator:
    arm.add_all(RESOURCES)
    arm.service_tags = json.loads((REPO / "examples" / "ServiceTags_Public_20251028.json").read_text())
    return arm


def _runtime(arm: ArmEmulator, scope: tuple[str, ...] = SCOPE) -> Runtime:
    settings = Settings(arm_endpoint=arm.base_url, arm_ca_bundle=arm.ca_path, subscriptions=scope,
                        read_admin_rules=False)
    return Runtime(settings, FakeCredential(), progress=lambda _: None, inventory_kwargs={"sleep": FakeSleep()})


def test_the_moved_estate_has_its_hubs_outside_the_vms_subscriptions() -> None:
    """The premise: hub VNets, the firewall and the DNS zone links are in subscriptions no VM lives in."""
    subs = {(r["id"].split("/")[2], r["type"].lower().rsplit("/", 1)[-1]) for r in RESOURCES}
    assert {(HUB_SUB, "azurefirewalls"), (HUB_SUB, "virtualnetworks"), (DNS_SUB, "virtualnetworklinks")} <= subs
    assert not any(s in (HUB_SUB, DNS_SUB) for s, kind in subs if kind in ("virtualmachines", "networkinterfaces"))


def _events(resources: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((r["id"], *WATCHED[r["type"].lower()]) for r in resources if r["type"].lower() in WATCHED)


EVENTS = _events(RESOURCES)


def _event_equals_full_scope(arm: ArmEmulator, scope: tuple[str, ...], resource_id: str, kind: str,
                             operation: str) -> list[Any]:
    """Handle the event; assert its plan and reports are the full scope's for the same VMs; the parsed queries."""
    runtime = _runtime(arm, scope)
    full = build_estate(runtime.collect(Scope(scope), admin_rules=False))
    items = affected_items(full, kind, resource_id)
    expected = runtime.evaluate(full, runtime.service_tags(scope[0]), items)
    arm.clear_log()

    result = _runtime(arm, scope).handle_event(event(resource_id, operation), actor="test")

    if not items:
        assert result.note == f"no replicated VM uses {resource_id}"
    assert [key(r.id) for r in result.plan.reports] == [key(r.id) for r in expected.reports]
    assert result.plan == expected
    return [parse_query(r.body["query"]) for r in arm.requests
            if r.method == "POST" and r.path.lower() == ARG and isinstance(r.body, dict)]


@pytest.mark.parametrize(("resource_id", "kind", "operation"), EVENTS, ids=[e[0].rsplit("/", 1)[-1] for e in EVENTS])
def test_an_event_evaluates_its_vms_as_the_full_scope_does(moved_arm: ArmEmulator, resource_id: str, kind: str,
                                                           operation: str) -> None:
    queries = _event_equals_full_scope(moved_arm, SCOPE, resource_id, kind, operation)
    # Items that mention the subscription, then the few subscriptions they name (+ the scope-wide types), then —
    # only when an affected path names a subscription not read yet (a hub) — that subscription's network.
    assert queries[0].mentions == {f"/subscriptions/{resource_id.split('/')[2].lower()}/"}
    assert queries[1].scoped_subscriptions is not None and len(queries) <= 3
    assert all(q.types is not None and q.mentions is None and q.scoped_types is None for q in queries[2:])


def test_an_nsg_event_costs_two_queries_when_no_hub_is_missing(moved_arm: ArmEmulator) -> None:
    """vm-app-01's subnet NSG: the VMs behind it name the workload and DR subscriptions only; the hub firewall and
    its policies come with the scope-wide part of the second query. The hub and DNS subscriptions' VNets, NSGs and
    route tables are not read."""
    nsg = next(r["id"] for r in RESOURCES if r["id"].lower().endswith("/networksecuritygroups/nsg-app"))
    result = _runtime(moved_arm).handle_event(event(nsg, "Microsoft.Network/networkSecurityGroups/write"),
                                              actor="test")
    assert result.plan.reports
    bodies = [r.body for r in moved_arm.requests if r.method == "POST" and r.path.lower() == ARG]
    assert len(bodies) == 2
    network = parse_query(bodies[1]["query"])
    assert network.scoped_subscriptions == {SUB, DR_SUB}


def test_a_path_naming_an_unread_hub_reads_its_subscription(moved_arm: ArmEmulator) -> None:
    """A VNet that uses its hub's gateway (useRemoteGateways) names the hub's VNet in another subscription: the
    third query reads that subscription, so failover readiness sees the hub's gateway as a full scan does."""
    spokes = [r for r in RESOURCES if r["type"].lower() == "microsoft.network/virtualnetworks"
              and HUB_SUB in json.dumps(r.get("properties") or {}) and r["id"].split("/")[2] == SUB]
    assert spokes, "the example estate has a spoke peered to the platform hub"
    result = _runtime(moved_arm).handle_event(event(spokes[0]["id"], "Microsoft.Network/virtualNetworks/write"),
                                              actor="test")
    bodies = [r.body for r in moved_arm.requests if r.method == "POST" and r.path.lower() == ARG]
    assert result.plan.reports and len(bodies) == 3
    assert bodies[2]["subscriptions"] == [HUB_SUB]


#: Every subscription of the connectivity hub's estate but PLATFORM (outside ASR_SUBSCRIPTIONS there too).
HUB_SCOPE = tuple(sorted({r["id"].split("/")[2] for r in connectivity_hub()} - {PLATFORM}))
HUB_CASES = [(forced, *e) for forced in (False, True) for e in _events(connectivity_hub(forced_tunnelling=forced))
             if e[0].split("/")[2] in HUB_SCOPE]


@pytest.mark.parametrize(("forced", "resource_id", "kind", "operation"), HUB_CASES,
                         ids=[f"{'forced-' if c[0] else ''}{c[1].rsplit('/', 1)[-1]}" for c in HUB_CASES])
def test_an_event_behind_a_connectivity_firewall_evaluates_as_the_full_scope_does(
        arm: ArmEmulator, forced: bool, resource_id: str, kind: str, operation: str) -> None:
    """The connectivity hub (tests/emulator/test_firewall_connectivity.py): the spoke VM routes to a firewall in a
    subscription no protected item names, with and without forced tunnelling (its subnet's route table then carries
    the VM's egress). The firewall comes with the scope-wide part of query 2; a forced-tunnelling firewall's subnet
    route table, when it is the event's resource, makes the event read the scope."""
    seeded(arm, connectivity_hub(forced_tunnelling=forced))
    assert CONNECTIVITY in HUB_SCOPE and len(HUB_SCOPE) >= 2
    queries = _event_equals_full_scope(arm, HUB_SCOPE, resource_id, kind, operation)
    assert queries and len(queries) <= 5


def test_the_emulator_refuses_a_mention_filter_it_was_not_written_for() -> None:
    with pytest.raises(ValueError, match="does not understand"):
        parse_query("recoveryservicesresources | where tostring(properties) has '/subscriptions/x/'")
    with pytest.raises(ValueError, match="no such filter"):
        parse_query(f"resources | where tostring(properties) contains '/subscriptions/{SUB}/'")
