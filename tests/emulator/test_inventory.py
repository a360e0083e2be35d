"""Resource Graph inventory through the real SDK client against the HTTPS emulator."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from asr_remediate.azure.inventory import (
    NETWORK_RESOURCE_TYPES,
    NETWORK_RESOURCES_QUERY,
    PROTECTED_ITEM_TYPE,
    PROTECTED_ITEMS_QUERY,
    RESOURCE_GRAPH_API_VERSION,
    fetch_resources,
)
from asr_remediate.azure.retry import RetriesExhaustedError, RetrySettings
from tests.emulator.arm_emulator import Fault, parse_query
from tests.emulator.fixtures import SUB, SUB2, FakeSleep, load, nic, nsg, rid, route_table

ARG = r"/providers/Microsoft\.ResourceGraph/resources$"
FAST = RetrySettings(max_attempts=4, base_delay=1.0, max_delay=4.0)


def protected_items() -> list[dict[str, Any]]:
    """The recorded A2A item (real shape), plus a Hyper-V item the A2A filter must drop."""
    a2a = load("A2A_ReplicationProtectedItems_List_Protected_recorded_2026-02-01.json")["value"][0]
    hyperv = copy.deepcopy(a2a)
    hyperv["id"] = a2a["id"].rsplit("/", 1)[0] + "/hypervvm"
    hyperv["name"] = "hypervvm"
    hyperv["properties"]["providerSpecificDetails"] = {"instanceType": "HyperVReplicaAzure"}
    return [a2a, hyperv]


def fetch(arm, credential, sleep, subscriptions=(SUB,), **kwargs):
    kwargs.setdefault("retry", FAST)
    return fetch_resources(credential, arm.base_url, list(subscriptions), ca_bundle=arm.ca_path, sleep=sleep,
                           rng=random.Random(7), **kwargs)


def test_queries_are_the_forms_the_emulator_understands():
    items = parse_query(PROTECTED_ITEMS_QUERY)
    assert items.table == "recoveryservicesresources"
    assert items.types == frozenset({PROTECTED_ITEM_TYPE})
    assert items.instance_type == "a2a"
    assert items.ordered and items.columns is not None and "id" in items.columns
    network = parse_query(NETWORK_RESOURCES_QUERY)
    assert network.table == "resources"
    assert network.types == frozenset(NETWORK_RESOURCE_TYPES)
    assert network.instance_type is None and network.ordered


def test_paging_2500_rows_takes_three_pages(arm, credential, sleep):
    arm.add_all(nic(i) for i in range(2500))
    rows = fetch(arm, credential, sleep)

    assert len(rows) == 2500
    posts = arm.matching("POST", ARG)
    # 1 request for protected items (none) + 3 pages of 1000/1000/500 network resources.
    assert len(posts) == 4
    network = [p for p in posts if p.body["query"] == NETWORK_RESOURCES_QUERY]
    assert [p.body["options"].get("$skipToken") is None for p in network] == [True, False, False]
    assert all(p.body["options"]["$top"] == 1000 for p in posts)
    assert all(p.body["options"]["resultFormat"] == "objectArray" for p in posts)
    assert all(p.query["api-version"] == RESOURCE_GRAPH_API_VERSION for p in posts)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert len({r["id"] for r in rows}) == 2500
    assert sleep.calls == []


def test_rows_have_the_resource_graph_shape_and_protected_items_come_first(arm, credential, sleep):
    arm.add_all(protected_items())
    arm.add(nsg("nsg1"))
    arm.add(route_table("rt1"))
    arm.add({"id": rid("vaults", "kv1", provider="Microsoft.KeyVault"), "location": "eastus"})
    a2a_sub = protected_items()[0]["id"].split("/")[2]

    rows = fetch(arm, credential, sleep, subscriptions=(SUB, a2a_sub))

    assert [r["type"] for r in rows] == [PROTECTED_ITEM_TYPE, "microsoft.network/networksecuritygroups",
                                         "microsoft.network/routetables"]
    item = rows[0]
    assert set(item) == {"id", "name", "type", "location", "resourceGroup", "subscriptionId", "tags", "properties"}
    assert item["name"] == "a2aVM1111"
    assert item["resourceGroup"] == "recrg1111" and item["location"] == ""
    assert item["properties"]["providerSpecificDetails"]["instanceType"] == "A2A"
    assert item["properties"]["providerSpecificDetails"]["vmNics"], "nested properties survive the round trip"
    assert rows[1]["properties"]["defaultSecurityRules"], "NSG rows carry their rules inline"


def test_multiple_subscriptions_are_chunked_and_scoped(arm, credential, sleep):
    sub3 = "00000000-0000-0000-0000-000000000003"
    outside = "00000000-0000-0000-0000-00000000000f"
    for sub in (SUB, SUB2, sub3, outside):
        arm.add(nsg("nsg-a", sub=sub))
        arm.add(nsg("nsg-b", sub=sub))

    rows = fetch(arm, credential, sleep, subscriptions=(SUB2.upper(), SUB, sub3, SUB), subscription_chunk=2)

    assert {r["subscriptionId"] for r in rows} == {SUB, SUB2, sub3}
    assert len(rows) == 6
    posts = arm.matching("POST", ARG)
    assert len(posts) == 4  # 2 queries x 2 chunks
    assert all(len(p.body["subscriptions"]) <= 2 for p in posts)
    assert sorted({s for p in posts for s in p.body["subscriptions"]}) == sorted([SUB, SUB2, sub3])


def test_order_is_stable_whatever_the_seeding_order(arm, credential, sleep):
    docs = [nsg(f"nsg-{i:03d}") for i in range(40)] + [route_table(f"rt-{i:03d}") for i in range(40)]
    random.Random(1).shuffle(docs)
    arm.add_all(docs)
    first = fetch(arm, credential, sleep, page_size=7)
    second = fetch(arm, credential, sleep, page_size=13)
    assert [r["id"] for r in first] == [r["id"] for r in second] == sorted(d["id"] for d in docs)


def test_throttled_429_honours_retry_after(arm, credential, sleep):
    arm.add_all(nic(i) for i in range(10))
    arm.inject("POST", ARG, Fault.throttle(retry_after=7, quota_remaining=0, resets_after="00:00:07"))

    rows = fetch(arm, credential, sleep)

    assert len(rows) == 10
    assert sleep.calls == [7.0]
    assert [r.status for r in arm.matching("POST", ARG)] == [429, 200, 200]


def test_throttled_429_without_retry_after_uses_quota_reset(arm, credential, sleep):
    arm.inject("POST", ARG, Fault.throttle(retry_after=None, quota_remaining=0, resets_after="00:00:04"))
    fetch(arm, credential, sleep)
    assert sleep.calls == [4.0]


def test_exhausted_quota_header_waits_for_the_reset_before_the_next_call(arm, credential):
    arm.add_all(nic(i) for i in range(2500))
    arm.arg_quota = arm.arg_quota_limit = 2
    arm.arg_quota_resets_after = "00:00:03"
    sleep = FakeSleep(on_sleep=lambda _: arm.reset_arg_quota())  # time passes, the window resets

    rows = fetch(arm, credential, sleep)

    assert len(rows) == 2500
    posts = arm.matching("POST", ARG)
    assert [p.status for p in posts] == [200, 200, 200, 200], "the client waited instead of being throttled"
    assert sleep.calls == [3.0]  # after the 2nd call (remaining 0); not after the last one


def test_server_errors_back_off_exponentially_with_jitter(arm, credential, sleep):
    arm.inject("POST", ARG, Fault.error(500), times=1)
    arm.inject("POST", ARG, Fault.error(503, "ServiceUnavailable"), times=1)

    fetch(arm, credential, sleep)

    assert len(sleep.calls) == 2
    assert 0.5 <= sleep.calls[0] <= 1.0  # attempt 0: base 1s, equal jitter
    assert 1.0 <= sleep.calls[1] <= 2.0  # attempt 1: 2s ceiling
    assert [p.status for p in arm.matching("POST", ARG)][:3] == [500, 503, 200]


def test_dropped_connection_is_retried(arm, credential, sleep):
    arm.add_all(nic(i) for i in range(3))
    arm.inject("POST", ARG, Fault.drop())

    rows = fetch(arm, credential, sleep)

    assert len(rows) == 3
    posts = arm.matching("POST", ARG)
    assert posts[0].status is None and posts[0].fault == "drop"
    assert len(posts) == 3 and len(sleep.calls) == 1


def test_a_page_cut_off_mid_body_is_read_again(arm, credential, sleep):
    """The connection is lost while a page's body downloads (full Content-Length, half the bytes). Pages are read
    streamed (``inventory._read``: the body is read after the pipeline, so its ContentDecodePolicy does not decode it
    a second time); the cut surfaces inside the retried call as azure-core's ``IncompleteReadError`` (raised for
    requests' "IncompleteRead" ChunkedEncodingError, azure-core pipeline/transport/_requests_basic.py), and a query
    is safe to repeat: the page is asked for again and the rows are complete."""
    arm.add_all(nic(i) for i in range(3))
    arm.inject("POST", ARG, Fault.cut_body())

    rows = fetch(arm, credential, sleep)

    assert sorted(r["id"] for r in rows if r["type"].lower().endswith("networkinterfaces")) == sorted(
        nic(i)["id"] for i in range(3))
    posts = arm.matching("POST", ARG)
    assert posts[0].fault == "cut-body" and len(sleep.calls) == 1
    assert posts[1].body == posts[0].body  # the same page again


def test_retries_are_bounded(arm, credential, sleep):
    arm.inject("POST", ARG, Fault.error(500), times=10)
    with pytest.raises(RetriesExhaustedError) as info:
        fetch(arm, credential, sleep)
    assert info.value.attempts == FAST.max_attempts
    assert arm.count("POST", ARG) == FAST.max_attempts
    assert len(sleep.calls) == FAST.max_attempts - 1


def test_client_errors_are_not_retried(arm, credential, sleep):
    with pytest.raises(HttpResponseError) as info:
        fetch(arm, credential, sleep, queries=[("bad", "resources | summarize count() by type")])
    assert info.value.status_code == 400
    assert sleep.calls == [] and arm.count("POST", ARG) == 1


def test_progress_reports_each_page(arm, credential, sleep):
    arm.add_all(nic(i) for i in range(2500))
    seen: list[Any] = []
    fetch(arm, credential, sleep, progress=seen.append)
    network = [p for p in seen if p.query == "network-resources"]
    assert [(p.page, p.rows, p.total_records) for p in network] == [(1, 1000, 2500), (2, 2000, 2500),
                                                                     (3, 2500, 2500)]


def test_token_is_requested_for_the_endpoint_audience(arm, credential, sleep):
    fetch(arm, credential, sleep)
    assert credential.scopes and all(s == (arm.base_url + "/.default",) for s in credential.scopes)
    assert all(r.header("Authorization") == "Bearer emulator-token" for r in arm.requests)


def test_raw_pages_equal_what_the_sdk_model_path_returns(arm, credential, sleep):
    """The inventory reads Resource Graph pages as raw JSON (the SDK's msrest model round trip was most of the live
    path's client time); the rows must be exactly what ``ResourceGraphClient.resources`` deserialises."""
    from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

    from asr_remediate.azure.inventory import make_resource_graph_client

    items = protected_items()
    subscriptions = sorted({SUB, items[0]["id"].split("/")[2].lower()})
    arm.add_all(items)
    arm.add_all(nic(i) for i in range(1200))
    arm.add(nsg("nsg-a", {"deny-all": {"priority": 4000, "access": "Deny", "direction": "Outbound"}}))
    arm.add(route_table("rt-a", {"r1": {"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance",
                                        "nextHopIpAddress": "10.0.0.4"}}))
    raw = fetch(arm, credential, sleep, subscriptions)

    client = make_resource_graph_client(credential, arm.base_url, ca_bundle=arm.ca_path)
    via_sdk: list[dict[str, Any]] = []
    try:
        for query in (PROTECTED_ITEMS_QUERY, NETWORK_RESOURCES_QUERY):
            token = None
            while True:
                options = QueryRequestOptions(top=1000, result_format="objectArray", skip_token=token)
                page = client.resources(QueryRequest(subscriptions=subscriptions, query=query, options=options))
                via_sdk += page.data
                token = page.skip_token
                if not token:
                    break
    finally:
        client.close()
    assert raw == via_sdk
    assert len(raw) == 1 + 1200 + 2  # the Hyper-V item is filtered by the query


def test_raw_request_body_has_the_rest_spec_shape(arm, credential, sleep):
    """The POST body is the REST spec's QueryRequest (azure-rest-api-specs ResourcesNextPageQuery.json, copied to
    tests/data/arm): subscriptions, query, options with ``$top``, ``$skipToken`` and ``resultFormat``."""
    example = load("ResourcesNextPageQuery.json")["parameters"]["query"]
    arm.add_all(nic(i) for i in range(1500))
    fetch(arm, credential, sleep)

    posts = [r for r in arm.requests if r.method == "POST"]
    assert len(posts) == 3  # protected items (1 page), network resources (2 pages)
    for body in (p.body for p in posts):
        assert set(body) == set(example)
        assert body["subscriptions"] == [SUB]
        assert body["options"]["$top"] == 1000 and body["options"]["resultFormat"] == "objectArray"
    assert ["$skipToken" in p.body["options"] for p in posts] == [False, False, True]
    assert set(example["options"]) <= set(posts[2].body["options"])
    assert all(p.query.get("api-version") == RESOURCE_GRAPH_API_VERSION for p in posts)


def test_an_arm_error_body_is_kept_on_the_raw_path(arm, credential, sleep):
    """A 400 from Resource Graph still raises the SDK's HttpResponseError with ARM's error code and message."""
    arm.inject("POST", ARG, Fault.error(400, "BadRequest", "Query is invalid"))
    with pytest.raises(HttpResponseError) as raised:
        fetch(arm, credential, sleep)
    assert raised.value.status_code == 400
    assert raised.value.error is not None and raised.value.error.code == "BadRequest"


def _overlap_probe(arm, delay: float = 0.05):
    """A hook that holds each Resource Graph request for ``delay`` s and records how many were held at once."""
    import threading
    import time

    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def hold(_arm, _req):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(delay)
        with lock:
            state["now"] -= 1

    arm.before("POST", ARG, hold, times=10_000)
    return state


SUBS_8 = [f"00000000-0000-0000-0000-0000000000{i:02x}" for i in range(16, 24)]


def test_parallel_batches_return_the_same_rows_in_the_same_order(arm, credential, sleep):
    """Subscription batches read in parallel give exactly the sequential answer (same rows, same order): batches are
    ranges of the sorted subscriptions and Resource Graph orders by id, which starts with the subscription."""
    for sub in SUBS_8:
        arm.add_all(nic(i, sub=sub) for i in range(300))
    sequential = fetch(arm, credential, sleep, subscriptions=SUBS_8, page_size=200)
    arm.clear_log()
    probe = _overlap_probe(arm)

    parallel = fetch(arm, credential, sleep, subscriptions=SUBS_8, page_size=200, concurrency=4)

    assert [r["id"] for r in parallel] == [r["id"] for r in sequential] and len(parallel) == 2400
    assert parallel == sequential
    network = [p for p in arm.matching("POST", ARG) if "resources |" in p.body["query"].lower()]
    assert sorted({len(p.body["subscriptions"]) for p in network}) == [2]  # 8 subscriptions in 4 batches
    assert 2 <= probe["peak"] <= 4, probe


def test_parallel_reading_never_runs_more_requests_than_the_quota_left(arm, credential):
    """With 3 requests per window, 8 batches and concurrency 8: the emulator never answers 429 (our own requests
    never overrun the reported x-ms-user-quota-remaining) and never holds more requests at once than the quota."""
    for sub in SUBS_8:
        arm.add_all(nic(i, sub=sub) for i in range(250))
    arm.arg_quota = arm.arg_quota_limit = 3
    arm.arg_quota_resets_after = "00:00:02"
    sleep = FakeSleep(on_sleep=lambda _: arm.reset_arg_quota())  # the window resets while the client waits
    probe = _overlap_probe(arm)

    rows = fetch(arm, credential, sleep, subscriptions=SUBS_8, page_size=100, concurrency=8)

    assert len(rows) == 2000
    statuses = [p.status for p in arm.matching("POST", ARG)]
    assert statuses and set(statuses) == {200}, "a request overran the quota"
    assert probe["peak"] <= 2  # the first answer reports 2 left: never more than 2 in flight after it
    assert sleep.calls and set(sleep.calls) == {2.0}  # each exhausted window waited for its reset


def test_small_scopes_keep_one_query_per_chunk(arm, credential, sleep):
    """concurrency=1 (the default) keeps one paged query per 1000-subscription chunk: no extra pages."""
    for sub in SUBS_8:
        arm.add(nsg("nsg-a", sub=sub))
    fetch(arm, credential, sleep, subscriptions=SUBS_8)
    assert [len(p.body["subscriptions"]) for p in arm.matching("POST", ARG)] == [8, 8]
