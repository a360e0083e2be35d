"""Read the estate from Azure Resource Graph, and the Service Tags from the discovery API.

Resource Graph gives one consistent, paged read of every subscription in scope at a fraction of the ARM
calls a per-resource crawl would need (and it is the only practical way past a few hundred VMs). The
result is the plain list of ARM-shaped resources an estate file holds; ``estate.py`` parses it.

The queries are module constants because the test emulator recognises exactly these strings (it cannot
run KQL); change them and the emulator, together.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    map_error,
)
from azure.core.rest import HttpRequest
from azure.mgmt.core.exceptions import ARMErrorFormat

from ..jsonfile import read_json_file
from .credentials import DEFAULT_ARM_ENDPOINT, arm_client_kwargs
from .network import make_raw_arm_client, send_raw
from .quota import QuotaGate
from .retry import RetrySettings, Sleep, SleepingRetryPolicy, call_with_retries

_LOG = logging.getLogger(__name__)

#: Resource Graph API version the inventory speaks (request/response shape of the 2024-04-01 spec).
RESOURCE_GRAPH_API_VERSION = "2024-04-01"
#: ServiceTags_List (``GET …/providers/Microsoft.Network/locations/{location}/serviceTags``), read as raw JSON;
#: the response shape (changeNumber, cloud, values[].properties, nextLink) as in azure-rest-api-specs'
#: specification/network/resource-manager/Microsoft.Network/Network/stable/2025-05-01/examples/ServiceTagsList.json.
SERVICE_TAGS_API_VERSION = "2025-05-01"
#: Resource Graph pages hold at most 1000 rows.
MAX_PAGE_SIZE = 1000
#: Resource Graph accepts at most 1000 subscriptions in one request; larger scopes are chunked.
MAX_SUBSCRIPTIONS_PER_QUERY = 1000

PROTECTED_ITEM_TYPE = (
    "microsoft.recoveryservices/vaults/replicationfabrics/replicationprotectioncontainers/replicationprotecteditems"
)
#: Everything the evaluation needs besides the protected items: VMs, their NICs, VNets (subnets inline),
#: NSGs (rules inline), route tables (routes inline), and for Private Link the private endpoints (connections,
#: customDnsConfigs inline; their IPs also on their NICs), the private DNS zones' virtual network links (the zone is
#: the link's parent), the Recovery Services vaults (privateEndpointConnections inline) and the storage accounts (the
#: cache accounts' network rules) — all tracked resources of
#: the ``resources`` table (the ``recoveryservicesresources`` table holds the vaults' replication and backup items);
#: and for Azure Firewall the firewalls, Firewall Policies and IP groups (their rule collection groups are not in the
#: ``resources`` table: ``azure/firewalls.py`` lists them from ARM).
NETWORK_RESOURCE_TYPES: tuple[str, ...] = (
    "microsoft.compute/virtualmachines",
    "microsoft.network/networkinterfaces",
    "microsoft.network/virtualnetworks",
    "microsoft.network/networksecuritygroups",
    "microsoft.network/routetables",
    "microsoft.network/privateendpoints",
    "microsoft.network/privatednszones/virtualnetworklinks",
    "microsoft.recoveryservices/vaults",
    "microsoft.storage/storageaccounts",
    "microsoft.network/azurefirewalls",
    "microsoft.network/firewallpolicies",
    "microsoft.network/ipgroups",
    # Failover readiness (on-premises connectivity): gateways, their connections, ExpressRoute circuits (``sku`` is a
    # top-level column, projected below).
    "microsoft.network/virtualnetworkgateways",
    "microsoft.network/connections",
    "microsoft.network/expressroutecircuits",
)
#: The ARM envelope an estate file carries. ``id`` must be projected: Resource Graph pages stably only by id.
PROJECTION = "id, name, type, location, resourceGroup, subscriptionId, tags, properties"
#: Network resources also carry ``sku``: an ExpressRoute circuit's tier (Premium or not) is a top-level field.
NETWORK_PROJECTION = "id, name, type, location, resourceGroup, subscriptionId, tags, sku, properties"


def _kql_list(values: Iterable[str]) -> str:
    """``'a', 'b'``: the body of a KQL ``in~ (…)`` list of literals the module itself holds (types, checked GUIDs)."""
    return ", ".join(f"'{v}'" for v in values)


#: The A2A replicated items of the vaults: the start of every protected-items query.
_A2A_ITEMS = (
    "recoveryservicesresources"
    f" | where type =~ '{PROTECTED_ITEM_TYPE}'"
    " | where properties.providerSpecificDetails.instanceType =~ 'A2A'"
)
PROTECTED_ITEMS_QUERY = (
    _A2A_ITEMS
    + f" | project {PROJECTION}"
    " | order by id asc"
)
NETWORK_RESOURCES_QUERY = (
    "resources"
    f" | where type in~ ({_kql_list(NETWORK_RESOURCE_TYPES)})"
    f" | project {NETWORK_PROJECTION}"
    " | order by id asc"
)
#: A hub Azure Firewall in a connectivity subscription the protected items do not name: when a route on a replicated
#: VM's path has next hop VirtualAppliance at an IP no firewall of the network query holds, the runtime sends this query
#: once over the subscriptions of ASR_SUBSCRIPTIONS not read yet (firewall_search.py keeps what the paths need). The
#: VNets and route tables are the firewall's own network: its AzureFirewallSubnet's VNet and the route tables of the
#: subnets it names, on which a forced-tunnelling firewall's egress is evaluated (the rest of them is not kept).
FIREWALL_RESOURCE_TYPES: tuple[str, ...] = (
    "microsoft.network/azurefirewalls",
    "microsoft.network/firewallpolicies",
    "microsoft.network/ipgroups",
    "microsoft.network/virtualnetworks",
    "microsoft.network/routetables",
)
FIREWALL_RESOURCES_QUERY = (
    "resources"
    f" | where type in~ ({_kql_list(FIREWALL_RESOURCE_TYPES)})"
    f" | project {PROJECTION}"
    " | order by id asc"
)

# --- The event path's queries (issue 14: one event → at most 2 queries, whatever the estate's size) -----------------

#: Types the engine finds by a reverse lookup — a firewall by the next-hop IP of a route, a private endpoint by the
#: vault or storage account it connects to, a private DNS zone link by the VNet it names, a gateway by its VNet and a
#: connection by its gateway — so nothing on a VM's path names their subscription: an event reads them over the whole
#: scope (few resources however many VMs: hubs, firewalls, endpoints). Firewall Policies and IP groups go with the
#: firewalls (a policy's parent and its IP groups can be in any subscription).
SCOPE_WIDE_TYPES: tuple[str, ...] = (
    "microsoft.network/azurefirewalls",
    "microsoft.network/firewallpolicies",
    "microsoft.network/ipgroups",
    "microsoft.network/privateendpoints",
    "microsoft.network/privatednszones/virtualnetworklinks",
    "microsoft.network/virtualnetworkgateways",
    "microsoft.network/connections",
    "microsoft.network/expressroutecircuits",
)
#: The rest of the network types: found from a VM's path by id (VM → NIC → subnet → VNet, NSG, route table; the
#: item's vault, recovery VNet and NSG, cache storage account), so only the subscriptions those ids name are read.
SUBSCRIPTION_TYPES: tuple[str, ...] = tuple(t for t in NETWORK_RESOURCE_TYPES if t not in SCOPE_WIDE_TYPES)

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _subscription_literals(subscriptions: Iterable[str]) -> list[str]:
    """Lower-case subscription GUIDs, sorted; anything else is refused (it would be spliced into KQL)."""
    subs = sorted({s.strip().lower() for s in subscriptions})
    bad = [s for s in subs if not _GUID.match(s)]
    if bad or not subs:
        raise ValueError(f"not subscription ids: {bad or 'none given'}")
    return subs


def protected_items_mentioning(subscriptions: Iterable[str]) -> str:
    """The A2A protected items whose properties name a resource in one of ``subscriptions`` (VM, NICs, recovery VNet
    and NSG, cache storage): a superset of the items an NSG, route table, NIC or VNet of those subscriptions can
    affect; ``events.affected_items`` then finds the exact set on the parsed estate.

    KQL ``contains`` is case-insensitive and matches any substring ("contains operator", learn.microsoft.com/kusto/
    query/contains-operator); ``tostring()`` turns the ``properties`` dynamic column into its JSON text, where ARM ids
    appear as written (``/subscriptions/<id>/…``, any case)."""
    tests = " or ".join(f"tostring(properties) contains '/subscriptions/{s}/'"
                        for s in _subscription_literals(subscriptions))
    return (
        _A2A_ITEMS
        + f" | where {tests}"
        f" | project {PROJECTION}"
        " | order by id asc"
    )


def event_network_query(subscriptions: Iterable[str]) -> str:
    """The network an event needs: the :data:`SUBSCRIPTION_TYPES` of ``subscriptions`` (those the affected items'
    paths name) and the :data:`SCOPE_WIDE_TYPES` of every subscription the request names (the scope). Its pages are
    bounded by the size of those few subscriptions, not by the estate's."""
    subs = _kql_list(_subscription_literals(subscriptions))
    return (
        "resources"
        f" | where (type in~ ({_kql_list(SUBSCRIPTION_TYPES)}) and subscriptionId in~ ({subs}))"
        f" or type in~ ({_kql_list(SCOPE_WIDE_TYPES)})"
        f" | project {NETWORK_PROJECTION}"
        " | order by id asc"
    )


#: (label, query) in the order they run: protected items first, they say which VMs matter.
INVENTORY_QUERIES: tuple[tuple[str, str], ...] = (
    ("protected-items", PROTECTED_ITEMS_QUERY),
    ("network-resources", NETWORK_RESOURCES_QUERY),
)


class InventoryError(RuntimeError):
    """The inventory could not be read completely (a partial estate must never drive fixes)."""


@dataclass(frozen=True)
class InventoryProgress:
    """One page received: enough to log progress on a large tenant."""

    query: str  # label from INVENTORY_QUERIES
    chunk: int  # index of the subscription chunk
    page: int  # 1-based page number within the chunk
    rows: int  # rows received so far for this query and chunk
    total_records: int  # as reported by Resource Graph for this query and chunk


Progress = Callable[[InventoryProgress], None]
#: Takes one page's rows (``fetch_resources(on_rows=…)``).
Rows = Callable[[list[dict[str, Any]]], None]


def make_resource_graph_client(
    credential: TokenCredential, endpoint: str = DEFAULT_ARM_ENDPOINT, *, ca_bundle: str | None = None
) -> Any:
    """A ResourceGraphClient with SDK retries off: :func:`fetch_resources` retries (POSTs, quota headers). The
    policy still turns permanent connection failures (TLS, DNS, URL) into one-line ``ArmEndpointError``s."""
    from azure.mgmt.resourcegraph import ResourceGraphClient

    return ResourceGraphClient(
        credential,
        api_version=RESOURCE_GRAPH_API_VERSION,
        retry_policy=SleepingRetryPolicy(retry_total=0),
        **arm_client_kwargs(endpoint, ca_bundle),
    )


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _rows(data: Any) -> list[dict[str, Any]]:
    """Rows as dicts; tolerates the ``table`` result format (columns/rows) in case a proxy forces it."""
    if isinstance(data, list):
        return [row for row in data if isinstance(row, dict)]
    if isinstance(data, dict) and "columns" in data and "rows" in data:
        names = [col["name"] for col in data["columns"]]
        return [dict(zip(names, row, strict=False)) for row in data["rows"]]
    raise InventoryError(f"unexpected Resource Graph data shape: {type(data).__name__}")


#: The SDK operation's own error map (``ResourceGraphClientOperationsMixin.resources``), so callers see the same
#: exception types whether the page came through the SDK's model layer or not.
_ERROR_MAP: dict[int, type[HttpResponseError]] = {
    401: ClientAuthenticationError, 404: ResourceNotFoundError, 409: ResourceExistsError,
    304: ResourceNotModifiedError,
}


def _answer(send: Callable[[HttpRequest], Any], request: HttpRequest) -> tuple[bytes, Mapping[str, str]]:
    """Send ``request`` through a client's pipeline (auth, retry policy, endpoint checks): the body's bytes; a non-200
    answer raises what the generated SDK operation raises (its error map, ARM's error body)."""
    response = send(request)
    if response.status_code != 200:
        map_error(status_code=response.status_code, response=response, error_map=_ERROR_MAP)
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)
    return response.content, response.headers


def _json_document(content: bytes, what: str) -> dict[str, Any]:
    """A body read as a JSON object. From the bytes, not ``response.json()``: that keeps the decoded text (and the
    document) on the response, a second copy of a multi-megabyte page while it is parsed."""
    try:
        document = json.loads(content)
    except ValueError as error:
        raise InventoryError(f"{what} answered with a body that is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise InventoryError(f"unexpected {what} response shape: {type(document).__name__}")
    return document


def _json_response(send: Callable[[HttpRequest], Any], request: HttpRequest, what: str) -> tuple[dict[str, Any],
                                                                                                 Mapping[str, str]]:
    """:func:`_answer` read as a JSON object."""
    content, headers = _answer(send, request)
    return _json_document(content, what), headers


def _post_query(client: Any, body: dict[str, Any]) -> tuple[bytes, Mapping[str, str]]:
    """One ``Resources`` POST: the raw JSON body (decoded by the caller, one page at a time).

    Why not ``client.resources``: its msrest deserialiser walks every value of every row into a ``QueryResponse``
    model (``data`` is typed ``object``, so the rows come out as the same plain dicts) — for a 10,000-VM estate
    that was most of the client's time outside the engine. The request is the one the SDK builds
    (``POST /providers/Microsoft.ResourceGraph/resources?api-version=…``, body ``QueryRequest`` with
    ``options.$top`` / ``$skipToken`` / ``resultFormat``; azure-rest-api-specs,
    specification/resourcegraph/resource-manager/Microsoft.ResourceGraph/stable/2024-04-01/resourcegraph.json) and
    errors map to the same exception types with ARM's error body.
    """
    request = HttpRequest("POST", "/providers/Microsoft.ResourceGraph/resources",
                          params={"api-version": RESOURCE_GRAPH_API_VERSION}, json=body)
    # The generated client's documented raw-request entry point (aka.ms/azsdk/dpcodegen/python/send_request):
    # ``_send_request`` in azure-mgmt-resourcegraph 8.x, ``send_request`` in newer generators.
    send = getattr(client, "send_request", None) or client._send_request
    return _answer(lambda r: _read(send(r, stream=True)), request)


def _read(response: Any) -> Any:
    """A streamed response with its body read. Streamed because otherwise the pipeline's ContentDecodePolicy decodes
    every JSON body into the response's context (azure-core, pipeline/policies/_universal.py: its ``on_response``
    returns at once only for a streamed response) — a second decode of each multi-megabyte page, ~2.5 s of a
    10,000-VM live scan. Read here, inside :func:`call_with_retries` as before (this client's pipeline retries
    nothing): a connection lost mid-body raises the same ``ServiceResponseError`` / ``IncompleteReadError``."""
    response.read()
    return response


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _query_chunk(
    client: Any,
    label: str,
    query: str,
    subscriptions: list[str],
    chunk_index: int,
    *,
    page_size: int,
    retry: RetrySettings,
    sleep: Sleep,
    rng: random.Random,
    gate: QuotaGate,
    progress: Progress | None,
    deliver: Rows,
    serial: threading.Lock,
) -> None:
    """One subscription batch of one query, page after page (each page needs the previous page's $skipToken), each
    page's rows handed to ``deliver`` as it arrives."""
    received = 0
    skip_token: str | None = None
    seen_tokens: set[str] = set()
    page = 0
    while True:
        options: dict[str, Any] = {"$top": page_size, "resultFormat": "objectArray"}
        if skip_token:
            options["$skipToken"] = skip_token
        body = {"subscriptions": subscriptions, "query": query, "options": options}

        throttled = [False]  # the previous attempt of this page got a 429 (whose retry delay covered the reset)

        def call(body: dict[str, Any] = body, throttled: list[bool] = throttled) -> tuple[bytes, Mapping[str, str]]:
            wait = gate.acquire(already_waited=throttled[0])
            answered: Mapping[str, str] | None = None
            try:
                if wait > 0:
                    _LOG.info("Resource Graph %s: quota exhausted, waiting %.1fs for it to reset", label, wait)
                    sleep(wait)
                content, answered = _post_query(client, body)
                return content, answered
            except HttpResponseError as error:
                answered = getattr(error.response, "headers", None)
                throttled[0] = error.status_code == 429
                raise
            finally:
                gate.release(answered)

        content, _ = call_with_retries(call, settings=retry, sleep=sleep, rng=rng, what=f"Resource Graph {label}")
        page += 1
        # Decoded and handed over one page at a time (``serial``): the batches read in parallel wait with their bytes,
        # not with a decoded page each (~2.5 times the bytes as Python objects).
        with serial:
            response = _json_document(content, "Resource Graph")
            del content
            if str(response.get("resultTruncated", "")).lower() == "true":
                raise InventoryError(f"Resource Graph truncated the {label} result; the estate would be incomplete")
            rows = _rows(response.get("data"))
            received += len(rows)
            token = response.get("$skipToken")
            total = _int(response.get("totalRecords"))
            del response  # the page's rows are the caller's now: nothing here keeps them alive
            deliver(rows)
            del rows
        if progress is not None:
            progress(InventoryProgress(label, chunk_index, page, received, total))
        skip_token = token if isinstance(token, str) and token else None
        if not skip_token:
            return
        if skip_token in seen_tokens:
            raise InventoryError(f"Resource Graph repeated a $skipToken for {label}; refusing to loop")
        seen_tokens.add(skip_token)


def fetch_resources(
    credential: TokenCredential | None,
    endpoint: str = DEFAULT_ARM_ENDPOINT,
    subscriptions: Sequence[str] = (),
    *,
    progress: Progress | None = None,
    ca_bundle: str | None = None,
    client: Any = None,
    sleep: Sleep = time.sleep,
    retry: RetrySettings | None = None,
    rng: random.Random | None = None,
    queries: Sequence[tuple[str, str]] = INVENTORY_QUERIES,
    subscription_chunk: int = MAX_SUBSCRIPTIONS_PER_QUERY,
    page_size: int = MAX_PAGE_SIZE,
    concurrency: int = 1,
    on_rows: Rows | None = None,
) -> list[dict[str, Any]]:
    """Every A2A protected item and every VM / NIC / VNet / NSG / route table in ``subscriptions``.

    Returns ARM-shaped dicts (``id, name, type, location, resourceGroup, subscriptionId, tags,
    properties``; ``type`` lower-cased as Resource Graph returns it): protected items first, then network
    resources, each in Resource Graph's id order per subscription chunk; duplicates (same id, any case)
    are dropped. Throttling (429 + Retry-After, quota headers), 5xx and dropped connections are retried
    with bounded, jittered backoff through ``sleep`` (injectable so tests do not wait): each wait at most 60 s, at
    most 120 s of waits per page (``retry``: :class:`RetrySettings`); TLS / DNS / URL failures are not retried.

    ``concurrency`` > 1 splits the subscriptions into up to that many batches whose pages are read in parallel
    (the pages of one batch stay chained by $skipToken), never with more requests in flight than the quota the
    latest answer reported (:class:`QuotaGate`); rows come back in the same order as sequential reading: batches
    are ranges of the sorted subscriptions, and ids sort by subscription first. Each batch's last page is partial,
    so splitting costs up to ``concurrency - 1`` extra pages: worth it only for large scopes (the runtime decides).

    ``on_rows``: each page's rows (duplicates dropped) are handed to it as they arrive instead of being returned (the
    result is then empty), so the caller can parse a page and let it go — a 10,000-VM estate's rows weigh ~220 MB
    as Python objects. Pages of one batch come in order; batches read in parallel interleave (their rows are of
    different subscriptions), and ``on_rows`` is never called by two threads at once. An error mid-way raises as
    without it: the caller must then drop what it was given (a partial inventory must never drive fixes).

    Pass ``client`` to reuse a ResourceGraphClient (then ``credential`` may be ``None``); otherwise one is
    built for ``endpoint`` (``ca_bundle``: PEM file to trust, tests only) and closed afterwards.
    """
    subs = sorted({s.strip().lower() for s in subscriptions if s and s.strip()})
    if not subs:
        raise InventoryError("no subscriptions to scan (set ASR_SUBSCRIPTIONS)")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}")
    if not 1 <= subscription_chunk <= MAX_SUBSCRIPTIONS_PER_QUERY:
        raise ValueError(f"subscription_chunk must be 1..{MAX_SUBSCRIPTIONS_PER_QUERY}")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    owned = client is None
    if client is None:
        if credential is None:
            raise ValueError("a credential or a client is required")
        client = make_resource_graph_client(credential, endpoint, ca_bundle=ca_bundle)
    retry = retry or RetrySettings()
    rng = rng or random.Random()
    gate = QuotaGate(concurrency, max_wait=retry.max_throttle_delay)
    reported = threading.Lock()

    def report(p: InventoryProgress) -> None:
        if progress is not None:
            with reported:
                progress(p)

    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    delivered = threading.Lock()
    kept = [0]

    def fresh(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows whose id was not seen before (any case); rows without an id are dropped."""
        new = []
        for row in rows:
            row_key = str(row.get("id", "")).lower()
            if row_key and row_key not in seen:
                seen.add(row_key)
                new.append(row)
        kept[0] += len(new)
        return new

    def hand_over(rows: list[dict[str, Any]], sink: Rows = on_rows or result.extend) -> None:
        sink(fresh(rows))  # under ``delivered`` (_query_chunk): never two threads at once

    try:
        for label, query in queries:
            batches = _batches(subs, subscription_chunk, concurrency)
            # Without on_rows each batch's rows are kept apart, so that they come back in sequential reading's order.
            per_batch: list[list[dict[str, Any]]] = [[] for _ in batches]

            def read(index: int, batch: list[str], label: str = label, query: str = query,
                     per_batch: list[list[dict[str, Any]]] = per_batch) -> None:
                _query_chunk(client, label, query, batch, index, page_size=page_size, retry=retry, sleep=sleep,
                             rng=rng, gate=gate, progress=report,
                             deliver=per_batch[index].extend if on_rows is None else hand_over, serial=delivered)

            if len(batches) == 1:
                read(0, batches[0])
            else:
                with ThreadPoolExecutor(max_workers=min(concurrency, len(batches)),
                                        thread_name_prefix="resource-graph") as pool:
                    futures = [pool.submit(read, i, b) for i, b in enumerate(batches)]
                    try:
                        for future in futures:
                            future.result()
                    except BaseException:
                        for future in futures:
                            future.cancel()
                        raise
            for rows in per_batch:
                result += fresh(rows)
            _LOG.info("Resource Graph %s: %d rows so far from %d subscriptions", label, kept[0], len(subs))
    finally:
        if owned:
            client.close()
    return result


def _batches(subscriptions: list[str], chunk: int, concurrency: int) -> list[list[str]]:
    """Ranges of the sorted subscriptions: at most ``chunk`` per request, and (when reading in parallel) split
    into up to ``concurrency`` batches."""
    size = min(chunk, max(1, -(-len(subscriptions) // concurrency)))
    return list(_chunks(subscriptions, size))


# --- Service Tags ---------------------------------------------------------------------------------------


def _int_or_str(value: Any) -> Any:
    """The discovery API sends change numbers as strings, the download file as integers; use the file's."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def service_tags_to_public_shape(api: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a ServiceTags_List response to the ``ServiceTags_Public_*.json`` download shape.

    Raises ``ValueError`` when the response carries no usable tags, so callers can fall back to a file.
    """
    raw_values = api.get("values")
    if not isinstance(raw_values, list) or not raw_values:
        raise ValueError("service tags response has no values")
    values: list[dict[str, Any]] = []
    for entry in raw_values:
        if not isinstance(entry, Mapping) or not entry.get("name"):
            raise ValueError("service tags response has an entry without a name")
        props = entry.get("properties") or {}
        prefixes = props.get("addressPrefixes")
        if not isinstance(prefixes, list):
            raise ValueError(f"service tag {entry['name']} has no addressPrefixes list")
        values.append(
            {
                "name": entry["name"],
                "id": entry.get("id") or entry["name"],
                "properties": {
                    "changeNumber": _int_or_str(props.get("changeNumber")),
                    "region": props.get("region") or "",
                    "systemService": props.get("systemService") or "",
                    "addressPrefixes": list(prefixes),
                },
            }
        )
    return {"changeNumber": _int_or_str(api.get("changeNumber")), "cloud": api.get("cloud") or "Public",
            "values": values}


def fetch_service_tags(
    credential: TokenCredential | None,
    endpoint: str = DEFAULT_ARM_ENDPOINT,
    subscription: str = "",
    location: str = "westeurope",
    *,
    ca_bundle: str | None = None,
    client: Any = None,
    sleep: Sleep | None = None,
    retry_total: int = 3,
    retry_backoff_factor: float = 0.8,
) -> dict[str, Any]:
    """Service Tags from the discovery API (``ServiceTags_List``), in the ServiceTags_Public JSON shape.

    The list is global whatever ``location`` is asked; any region the subscription can see works. A
    ``nextLink``, if ARM ever sends one, is followed.
    """
    owned = client is None
    if client is None:
        if credential is None or not subscription:
            raise ValueError("a credential and a subscription (or a client) are required")
        # A raw ARM client, not a NetworkManagementClient: the list is read as raw JSON anyway (make_raw_arm_client).
        client = make_raw_arm_client(
            credential, endpoint, ca_bundle=ca_bundle, sleep=sleep, retry_total=retry_total,
            retry_backoff_factor=retry_backoff_factor,
        )
    try:
        # Raw JSON rather than ``client.service_tags.list(location).as_dict()``: the model round trip of ~3,000
        # tags cost ten times the request itself (0.6 s against 0.06 s, measured against the emulator).
        on = subscription or client._config.subscription_id
        path = f"/subscriptions/{on}/providers/Microsoft.Network/locations/{location}/serviceTags"
        request = HttpRequest("GET", path,
                              params={"api-version": SERVICE_TAGS_API_VERSION})
        first, _ = _json_response(lambda r: send_raw(client, r), request, "Service Tag Discovery API")
        values = list(first.get("values") or [])
        next_link = first.get("nextLink")
        pages = 1
        while next_link:
            pages += 1
            if pages > 100:
                raise ValueError("service tags nextLink chain longer than 100 pages")
            response = send_raw(client, HttpRequest("GET", next_link))
            response.raise_for_status()
            page = response.json()
            values.extend(page.get("values") or [])
            next_link = page.get("nextLink")
        first["values"] = values
        return service_tags_to_public_shape(first)
    finally:
        if owned:
            client.close()


def read_service_tags_file(path: str | Path) -> dict[str, Any]:
    """A ServiceTags_Public JSON file (the weekly download), checked for the minimal shape."""
    data = read_json_file(path, "service tags file", ValueError)
    if not isinstance(data, dict) or not isinstance(data.get("values"), list):
        raise ValueError(f"{path}: not a ServiceTags_Public file (no 'values' list)")
    return data


def load_service_tags(
    credential: TokenCredential | None,
    endpoint: str = DEFAULT_ARM_ENDPOINT,
    subscription: str = "",
    location: str = "westeurope",
    *,
    fallback_file: str | Path | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Service Tags from the API, else from ``fallback_file`` (with a warning).

    Why a fallback: a scan that cannot read tags cannot evaluate anything, and the weekly download is an
    acceptable, slightly older substitute. Without a fallback the API error propagates. ``kwargs`` go to
    :func:`fetch_service_tags` (``ca_bundle``, ``client``, ``sleep``, ``retry_total``...).
    """
    if credential is None and kwargs.get("client") is None:
        error: Exception = ValueError("no credential to call the Service Tag Discovery API")
    elif not subscription and kwargs.get("client") is None:
        error = ValueError("no subscription to call the Service Tag Discovery API from")
    else:
        try:
            return fetch_service_tags(credential, endpoint, subscription, location, **kwargs)
        except (AzureError, ValueError, KeyError) as exc:
            error = exc
    if not fallback_file:
        raise error
    _LOG.warning("Service Tag Discovery API unavailable (%s); using %s", _one_line(error), fallback_file)
    try:
        return read_service_tags_file(fallback_file)
    except (OSError, ValueError) as file_error:
        raise InventoryError(
            f"service tags unavailable: API failed ({_one_line(error)}) and {fallback_file} failed ({file_error})"
        ) from file_error


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
