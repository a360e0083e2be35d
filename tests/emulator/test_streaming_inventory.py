"""A scan parses the inventory page by page (Runtime.collect_estate): the same Estate and the same requests as parsing
the rows ``collect`` returns (what ``export`` writes), and a read that fails mid-way drives no plan and no write.

Sources: the Resource Graph paging contract the emulator implements (``$top`` / ``$skipToken`` pages,
azure-rest-api-specs resourcegraph 2024-04-01, see test_inventory.py); the firewall, admin-rule and effective-route
reads as their own tests source them (test_firewall_inventory.py, test_admin_rules_live.py).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest

from asr_remediate import runtime as runtime_module
from asr_remediate.azure.inventory import InventoryError, fetch_resources
from asr_remediate.azure.retry import RetriesExhaustedError, RetrySettings
from asr_remediate.config import Settings
from asr_remediate.estate import build_estate
from asr_remediate.runtime import Runtime, Scope
from benchmarks.generate import generate, load_tags
from tests.emulator.arm_emulator import ArmEmulator, Fault
from tests.emulator.fixtures import SUB, FakeCredential, FakeSleep, nic
from tests.emulator.test_end_to_end import SCOPE, make_runtime
from tests.emulator.test_firewall_connectivity import CONNECTIVITY, connectivity_hub, seeded
from tests.emulator.test_firewall_connectivity import runtime as connectivity_runtime
from tests.scenario import SUB as SPOKE_SUB

ARG = r"/providers/Microsoft\.ResourceGraph/resources$"


def requests(arm: ArmEmulator) -> Counter[tuple[str, str]]:
    """The requests by method and path; a long-running read's polls by operation, not by its random id."""
    return Counter((r.method, re.sub(r"/(operationresults|operations)/[^/]+", r"/\1/*", r.path.lower()))
                   for r in arm.requests)


def both_ways(arm: ArmEmulator, make: Any, scope: Scope) -> None:
    """collect_estate against build_estate(collect(...)) on fresh runtimes (admin rules are read once per runtime)."""
    arm.clear_log()
    listed = build_estate(make().collect(scope))
    listed_requests = requests(arm)
    arm.clear_log()
    streamed = make().collect_estate(scope)
    assert requests(arm) == listed_requests
    assert streamed == listed and listed.protected_items


def test_example_estate_with_firewall_and_every_read(estate_arm, tmp_path):
    """The example estate (a firewall whose policy has a parent, admin rules, a hybrid VNet) with the opt-in reads on
    too: the rule collection group lists, the admin-rule POSTs and the per-NIC reads are the same, and so is the
    Estate they are parsed into, page by page (10 rows a page)."""
    def make() -> Runtime:
        runtime, _ = make_runtime(estate_arm, tmp_path, read_effective_routes=True, read_effective_nsgs=True)
        runtime._inventory_kwargs["page_size"] = 10
        return runtime

    both_ways(estate_arm, make, SCOPE)
    estate = make().collect_estate(SCOPE)
    assert estate.firewalls and estate.rule_collection_groups and estate.admin_rules and estate.protected_items
    assert estate_arm.count("GET", r"/ruleCollectionGroups$") >= 1


def test_generated_estate_read_in_parallel_batches(arm, monkeypatch):
    """300 generated VMs in several subscriptions, their network read in parallel subscription batches (pages of 50
    rows interleave): the same Estate as the rows' and the same requests."""
    synthetic = generate(300, seed=20251028, tags=load_tags(), vms_per_subscription=60)
    arm.add_all(synthetic.resources)
    monkeypatch.setattr(runtime_module, "PARALLEL_FROM_ITEMS", 100)
    settings = Settings(arm_endpoint=arm.base_url, arm_ca_bundle=arm.ca_path,
                        subscriptions=tuple(synthetic.subscriptions))

    def make() -> Runtime:
        return Runtime(settings, FakeCredential(), progress=lambda _m: None,
                       inventory_kwargs={"sleep": FakeSleep(), "page_size": 50})

    both_ways(arm, make, Scope(tuple(synthetic.subscriptions)))
    bodies = [r.body for r in arm.matching("POST", ARG) if "resources |" in r.body["query"].lower()]
    assert len({tuple(b["subscriptions"]) for b in bodies}) > 1, "the network query ran in several batches"


def test_a_read_failing_mid_way_drives_no_plan_and_no_write(estate_arm, tmp_path):
    """The network query's second page fails for good (500s past the retries): the scan raises, nothing is written
    and no audit record is made, although the first page was parsed."""
    runtime, sink = make_runtime(estate_arm, tmp_path)
    runtime._inventory_kwargs.update(page_size=10, retry=RetrySettings(max_attempts=2, base_delay=0.1, max_delay=0.1))

    def progress(message: str) -> None:
        if "network-resources page 1," in message:
            estate_arm.inject("POST", ARG, Fault.error(500), times=5)

    runtime.progress = progress
    with pytest.raises(RetriesExhaustedError):
        runtime.run(SCOPE, trigger="timer", actor="test", apply=True)
    answered = [r.status for r in estate_arm.matching("POST", ARG) if "resources |" in r.body["query"].lower()]
    assert answered[0] == 200 and answered[-1] == 500  # mid-way: a page was parsed before the failure
    assert not [r for r in estate_arm.requests if r.method in ("PUT", "DELETE", "PATCH")]
    assert sink.records(None) == []


class _Pages:
    """A Resource Graph client answering the given pages in turn (raw ``send_request`` path)."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.bodies: list[dict[str, Any]] = []

    def send_request(self, request: Any, *, stream: bool = False) -> Any:
        import json

        assert stream, "pages are read streamed: the pipeline must not decode them too"
        self.bodies.append(json.loads(request.content))
        page = self.pages[len(self.bodies) - 1]

        class Response:
            status_code = 200
            headers: Mapping[str, str] = MappingProxyType({})
            content = json.dumps(page).encode()

            def read(self) -> bytes:
                return self.content

        return Response()


def test_an_inventory_error_mid_way_drives_no_plan():
    """Resource Graph truncates the network query's second page (InventoryError): the scan raises it; the rows of the
    first page, already parsed, are not used."""
    item = generate(1, seed=1, tags=load_tags()).resources
    items = [r for r in item if "replicationprotecteditems" in r["type"].lower()]
    network = [r for r in item if r not in items]
    client = _Pages([{"data": items, "totalRecords": len(items)},
                     {"data": network[:2], "totalRecords": len(network), "$skipToken": "next"},
                     {"data": [], "resultTruncated": "true"}])
    sub = items[0]["id"].split("/")[2]
    runtime = Runtime(Settings(subscriptions=(sub,)), FakeCredential(), progress=lambda _m: None,
                      inventory_kwargs={"client": client, "sleep": FakeSleep()})
    with pytest.raises(InventoryError, match="truncated"):
        runtime.run(Scope((sub,)), trigger="timer", actor="test", apply=False)
    assert len(client.bodies) == 3 and client.bodies[2]["options"]["$skipToken"] == "next"


def test_on_rows_gets_every_page_as_it_arrives(arm, credential, sleep):
    """fetch_resources(on_rows=…): each page's rows handed over (at most a page at a time, none returned), together
    the sequential answer; read in parallel, the same rows."""
    subs = [f"00000000-0000-0000-0000-0000000000{i:02x}" for i in range(16, 20)]
    for sub in subs:
        arm.add_all(nic(i, sub=sub) for i in range(120))
    arm.add(nic(0, sub=SUB))

    def fetch(**kwargs: Any) -> list[dict[str, Any]]:
        return fetch_resources(credential, arm.base_url, [*subs, SUB], ca_bundle=arm.ca_path, sleep=sleep,
                               rng=random.Random(7), page_size=100, **kwargs)

    whole = fetch()
    pages: list[list[dict[str, Any]]] = []
    assert fetch(on_rows=pages.append) == []
    assert [r for p in pages for r in p] == whole and len(whole) == 481 and max(map(len, pages)) <= 100
    parallel: list[list[dict[str, Any]]] = []
    assert fetch(on_rows=parallel.append, concurrency=3) == []
    assert sorted(r["id"] for p in parallel for r in p) == sorted(r["id"] for r in whole)


@pytest.mark.parametrize("subscriptions", [(SPOKE_SUB, CONNECTIVITY), (SPOKE_SUB,)],
                         ids=["found-elsewhere", "not-looked-for"])
def test_a_hub_firewall_found_in_a_connectivity_subscription(arm, subscriptions):
    """The firewall at the spoke's next hop is in a subscription only ASR_SUBSCRIPTIONS names (one more query, its
    policy's groups listed, the IP groups its rules name kept), or not looked for: page by page as from the rows."""
    seeded(arm, connectivity_hub())
    both_ways(arm, lambda: connectivity_runtime(arm, subscriptions), Scope((SPOKE_SUB,)))
    estate = connectivity_runtime(arm, subscriptions).collect_estate(Scope((SPOKE_SUB,)))
    assert bool(estate.firewalls) == (CONNECTIVITY in subscriptions)
    assert bool(estate.ip_groups) == (CONNECTIVITY in subscriptions)
    assert estate.protected_items and estate.route_tables


def test_rule_collection_groups_are_listed_raw_following_next_links():
    """FirewallPolicyRuleCollectionGroups_List read raw: ``{"value": [...], "nextLink": …}`` pages (the
    FirewallPolicyRuleCollectionGroupList example's shape in azure-rest-api-specs) followed to the last, the request
    the SDK builds (GET …/ruleCollectionGroups with its api-version), ARM's error object on a failure."""
    from azure.core.rest import HttpRequest

    from asr_remediate.azure.network import RULE_COLLECTION_GROUPS_API_VERSION, ArmError, NetworkWriter

    policy = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/firewallPolicies/p"
    answers = [(200, {"value": [{"id": f"{policy}/ruleCollectionGroups/a"}], "nextLink": "https://arm/next?page=2"}),
               (200, {"value": [{"id": f"{policy}/ruleCollectionGroups/b"}]}),
               (403, {"error": {"code": "AuthorizationFailed", "message": "no read"}})]
    sent: list[HttpRequest] = []

    class Raw:
        def send_request(self, request: HttpRequest) -> Any:
            sent.append(request)
            status, body = answers[len(sent) - 1]

            class Response:
                status_code = status
                headers: Mapping[str, str] = MappingProxyType({"content-type": "application/json"})
                content = json.dumps(body).encode()
                reason = "Forbidden"

                def text(self) -> str:
                    return self.content.decode()

            return Response()

    writer = NetworkWriter(FakeCredential(), "https://arm")
    writer._raw = Raw()
    groups = writer.list_rule_collection_groups(policy)
    assert [g["id"].rsplit("/", 1)[-1] for g in groups] == ["a", "b"]
    assert sent[0].method == "GET" and sent[0].url.startswith(f"{policy}/ruleCollectionGroups?")
    assert f"api-version={RULE_COLLECTION_GROUPS_API_VERSION}" in sent[0].url and sent[1].url == "https://arm/next?page=2"
    with pytest.raises(ArmError) as failed:
        writer.list_rule_collection_groups(policy)
    assert failed.value.status_code == 403


def test_a_malformed_protected_item_is_reported_not_a_traceback(estate_arm, tmp_path):
    """An A2A item whose vmNics entry is not an object: the inventory's subscription scoping reads what it can of it
    (as build_estate does: a stub with its VM), the scan completes and that VM is unknown with the reason."""
    item_key = next(k for k, d in estate_arm.resources.items() if "replicationprotecteditems" in d["type"].lower())
    item = estate_arm.resources[item_key]
    item["properties"]["providerSpecificDetails"]["vmNics"] = ["not an object"]
    runtime, _ = make_runtime(estate_arm, tmp_path, apply=False)
    result = runtime.run(SCOPE, trigger="cli", actor="test")
    [report] = [r for r in result.plan.reports if r.protected_item_id.lower() == item["id"].lower()]
    assert report.status == "unknown"
    assert build_estate(runtime.collect(SCOPE)).unreadable
