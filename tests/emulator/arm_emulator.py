"""A loopback HTTPS fake of the slice of Azure Resource Manager the bot uses.

Why: the Azure shell (``asr_remediate/azure``) uses the real SDK clients; the only honest test is to let
them speak real HTTP(S) — auth header, paging, LRO polling, retries, error bodies — to something that
answers like ARM. No Azure is reachable from CI, so this emulator answers instead.

Scope (what ARM does that the bot relies on):

* Resource Graph ``POST /providers/Microsoft.ResourceGraph/resources``: only the query *forms* the
  inventory sends (table, ``where type =~ / in~``, the A2A ``instanceType`` filter, ``project``,
  ``order by id asc``); anything else is a 400 so a changed query fails loudly. Paging with
  ``$top``/``$skip``/``$skipToken``, ``totalRecords``/``count``/``resultTruncated``, optional user quota
  headers (``x-ms-user-quota-remaining`` / ``-resets-after``).
* Network RP: NSGs (+ securityRules), route tables (+ routes) GET/PUT/DELETE, long-running writes
  (201/200/202 + ``Azure-AsyncOperation``; ``InProgress`` then ``Succeeded``; a DELETE also answers with a
  ``Location`` operation-result URL), validation with ARM's error codes; read-only virtual networks, subnets,
  NICs, Azure Firewalls, IP groups; POST ``effectiveRouteTable`` and ``effectiveNetworkSecurityGroups``; the Service
  Tag Discovery API.

Strict where ARM is strict (a lenient emulator hides production bugs); each point has a test in test_emulator.py:

* etags (Azure/azure-resource-manager-rpc, "ETags for Resources"): a child rule / route has an etag of its own,
  changed only when that child is written; ``If-Match`` on a resource that does not exist → 412; ``If-Match`` with
  another etag → 412 ``PreconditionFailed``; ``If-None-Match: *`` on an existing resource → 412. DELETE of an
  absent child → 204.
* rules: priority 100–4096 (``SecurityRuleInvalidPriority``), one priority per direction
  (``SecurityRuleConflict``), address prefixes that are CIDRs/IPs, ``*``/``Internet``/``VirtualNetwork``/
  ``AzureLoadBalancer`` or a known service tag, at most 4000 prefixes per side, 1000 rules per NSG.
* routes: one route per address prefix (``RouteConflict``), valid CIDRs (host bits zero) or known service tags,
  ``VirtualAppliance`` needs a next-hop IP, at most 400 routes and 25 service-tag routes per table ("Azure
  subscription and service limits", networking limits).
* Firewall Policy rule collection groups (PUT / DELETE long-running, GET, list; the policy GET): a group's own etag
  (If-Match as above); a name of at most 80 characters that starts with a letter or digit and ends with one or
  ``_`` (``InvalidResourceName``, synchronous); at most 90 groups per policy (``LimitExceeded``). What Network RP
  finds wrong in the content is accepted (201/200) and fails the **operation**, as Azure reports it ("The async
  operation failed … FirewallPolicyRuleConditionInvalidPortOrRangeFormat … User ports must be in [1, 64000]",
  Azure/azure-rest-api-specs#11831): priorities 100–65000 for groups and collections, unique collection names per
  group and rule names per collection, known collection types and actions, network rules' ``ipProtocols``
  TCP/UDP/ICMP/Any, ports 1–64000 or ``*``, addresses as IPs / CIDRs / ranges (or known service tags as
  destinations), a source and a destination. Only that one code is Azure's; the others are the emulator's names.
* Azure Firewalls and IP groups: GET only (their etag as stored); Firewall Policies carry an etag; rule collection
  groups are not rows of Resource Graph's ``resources`` table (``networkresources`` only, not served).
* ``effectiveRouteTable`` and ``effectiveNetworkSecurityGroups`` are long-running POSTs (202 + ``Location``) that
  fail for a NIC whose VM is not running (the NetworkInterfaceEffectiveRouteTableList / …EffectiveNSGList examples;
  Azure computes them on the VM's host).
* every request needs a bearer token and an ``api-version``; unknown Resource Graph query forms are a 400.
* Site Recovery: ``GET`` of a replication protected item (ReplicationProtectedItems_Get), read-only.
* AVNM: ``POST …/virtualNetworks/{vnet}/listNetworkManagerEffectiveSecurityAdminRules``
  (ListNetworkManagerEffectiveSecurityAdminRules; the NetworkManagerEffectiveSecurityAdminRulesList example) is a plain
  200, not long-running: ``{"value": [...], "skipToken": …}`` in pages of :attr:`ArmEmulator.admin_rules_page_size`
  (or ``$top``), the next page asked for by the same POST with ``{"skipToken": …}`` as its body. Strict: the body
  must be a JSON object (QueryRequestOptions, required by the spec) whose ``skipToken`` is absent or one this
  emulator issued for that VNet (else 400 ``InvalidSkipToken``); ``$top`` a positive integer; an api-version older
  than the first stable one with the operation (2022-01-01) is a 400 ``NoRegisteredProviderFound``; an unknown VNet
  is a 404 ``ResourceNotFound``; GET is a 405 (tested in test_admin_rules_live.py).
* Resource Graph lag: :attr:`ArmEmulator.arg_lag` makes Resource Graph answer an older copy of a resource (or
  none yet) while ARM reads see the current one — ARG "lags behind the source of truth by a brief period"
  (learn.microsoft.com/azure/governance/resource-graph/choose-query-strategy).
* Faults: queued per (method, path regex): any status with headers/body (429 + Retry-After, 500...),
  a dropped connection before or after the request is applied; hooks that mutate state just before a
  request is handled (a concurrent writer). Every request is recorded; a TLS handshake the client aborts
  (it does not trust the emulator's CA) records no request, it is counted in ``tls_handshake_failures``.

State is plain dicts keyed by lower-cased resource id; tests seed it with :meth:`ArmEmulator.add` and
inspect it with :meth:`ArmEmulator.resource`.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import hashlib
import ipaddress
import json
import re
import socket
import ssl
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trustme

Json = Any
Hook = Callable[["ArmEmulator", "RecordedRequest"], None]

# Canonical casing of the types ARM returns in GET responses (Resource Graph lower-cases them).
_CANONICAL_TYPES = {
    t.lower(): t
    for t in (
        "Microsoft.Network/networkSecurityGroups",
        "Microsoft.Network/routeTables",
        "Microsoft.Network/virtualNetworks",
        "Microsoft.Network/networkInterfaces",
        "Microsoft.Compute/virtualMachines",
        "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/"
        "replicationProtectedItems",
    )
}
_PROTECTED_ITEM_TYPE = ("microsoft.recoveryservices/vaults/replicationfabrics/replicationprotectioncontainers/"
                        "replicationprotecteditems")
_NETWORK_TYPES_WITH_ETAG = {
    "microsoft.network/networksecuritygroups",
    "microsoft.network/routetables",
    "microsoft.network/virtualnetworks",
    "microsoft.network/networkinterfaces",
}
_ARG_COLUMNS = ("id", "name", "type", "location", "resourceGroup", "subscriptionId", "tags", "properties",
                "kind", "tenantId", "managedBy", "sku", "plan", "identity", "zones", "extendedLocation")
_PROTOCOLS = {"tcp": "Tcp", "udp": "Udp", "icmp": "Icmp", "esp": "Esp", "ah": "Ah", "*": "*"}
_NEXT_HOPS = {h.lower(): h for h in ("VirtualNetworkGateway", "VnetLocal", "Internet", "VirtualAppliance", "None")}
MAX_RULES_PER_NSG = 1000
MAX_ROUTES_PER_TABLE = 400  # "Routes per route table: 400" (Azure networking limits)
MAX_TAG_ROUTES_PER_TABLE = 25  # service-tag routes per route table
MAX_PREFIXES_PER_RULE_SIDE = 4000
# "Number of Rule Collection Groups in a firewall policy: … 90 for Firewall policies created after July 2022" (Azure
# Firewall limits)
MAX_RULE_COLLECTION_GROUPS = 90
ADMIN_RULES_TYPE = "microsoft.network/virtualnetworks/networkmanagereffectivesecurityadminrules"
#: The first stable api-version of ListNetworkManagerEffectiveSecurityAdminRules (before it: 2021-02-01-preview,
#: 2021-05-01-preview, 2022-02-01-preview; azure-native's API version list).
ADMIN_RULES_MIN_API_VERSION = "2022-01-01"
# --- Azure Firewall reads (issue 10: the live inventory and events) -------------------------------------------------
# AzureFirewalls_Get and IpGroups_Get are read-only GETs here (the firewall and its IP groups come from Resource Graph;
# an event names a firewall); they, and the Firewall Policies, carry an etag like every Network RP resource (the
# AzureFirewallGet / FirewallPolicyGet / IpGroupsGet examples all have one). Rule collection groups are not in
# Resource Graph's ``resources`` table (see _table_of).
_FIREWALL_READ_TYPES = {
    "microsoft.network/azurefirewalls": "Microsoft.Network/azureFirewalls",
    "microsoft.network/ipgroups": "Microsoft.Network/ipGroups",
}
_FIREWALL_ETAG_TYPES = {*_FIREWALL_READ_TYPES, "microsoft.network/firewallpolicies"}
# --- end of the Azure Firewall reads --------------------------------------------------------------------------------
# Words an NSG rule's address prefix may be besides CIDRs and service tags (ARM accepts these in any case).
_RULE_WORDS = {"*", "any", "internet", "virtualnetwork", "azureloadbalancer"}


def default_security_rules(nsg_id: str) -> list[dict[str, Any]]:
    """The six rules ARM adds to every NSG (as in NetworkSecurityGroupGet.json)."""
    spec = [
        ("AllowVnetInBound", "Allow inbound traffic from all VMs in VNET", "VirtualNetwork", "VirtualNetwork",
         "Allow", 65000, "Inbound"),
        ("AllowAzureLoadBalancerInBound", "Allow inbound traffic from azure load balancer", "AzureLoadBalancer",
         "*", "Allow", 65001, "Inbound"),
        ("DenyAllInBound", "Deny all inbound traffic", "*", "*", "Deny", 65500, "Inbound"),
        ("AllowVnetOutBound", "Allow outbound traffic from all VMs to all VMs in VNET", "VirtualNetwork",
         "VirtualNetwork", "Allow", 65000, "Outbound"),
        ("AllowInternetOutBound", "Allow outbound traffic from all VMs to Internet", "*", "Internet", "Allow",
         65001, "Outbound"),
        ("DenyAllOutBound", "Deny all outbound traffic", "*", "*", "Deny", 65500, "Outbound"),
    ]
    return [
        {
            "name": name,
            "id": f"{nsg_id}/defaultSecurityRules/{name}",
            "properties": {
                "provisioningState": "Succeeded",
                "description": desc,
                "protocol": "*",
                "sourcePortRange": "*",
                "destinationPortRange": "*",
                "sourceAddressPrefix": src,
                "destinationAddressPrefix": dst,
                "access": access,
                "priority": prio,
                "direction": direction,
            },
        }
        for name, desc, src, dst, access, prio, direction in spec
    ]


def new_etag() -> str:
    return f'W/"{uuid.uuid4()}"'


@dataclass(frozen=True)
class _Id:
    subscription: str
    resource_group: str
    namespace: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def arg_type(self) -> str:
        return "/".join((self.namespace, *self.types)).lower()


def _parse_id(resource_id: str) -> _Id:
    parts = [p for p in resource_id.split("/") if p]
    if (len(parts) < 8 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups"
            or parts[4].lower() != "providers" or len(parts[6:]) % 2):
        raise ValueError(f"not an ARM resource id: {resource_id!r}")
    tail = parts[6:]
    return _Id(parts[1], parts[3], parts[5], tuple(tail[0::2]), tuple(tail[1::2]))


# --- requests, faults ------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the emulator received it (recorded before faults or auth are applied)."""

    method: str
    path: str
    query: dict[str, str]
    body: Json
    headers: dict[str, str]
    status: int | None = None  # None: connection dropped without a response
    fault: str | None = None  # the injected fault that answered, if any

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Fault:
    """An injected failure. Build with the class methods."""

    kind: str  # "status" | "drop" | "drop_after" | "cut_body"
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Json = None
    label: str = ""

    @classmethod
    def throttle(
        cls,
        retry_after: float | None = 1,
        *,
        quota_remaining: int | None = None,
        resets_after: str | None = None,
        ratelimit_remaining: int | None = None,
    ) -> Fault:
        """429 Too Many Requests, optionally with Retry-After and Resource Graph / ARM quota headers."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = _fmt_seconds(retry_after)
        if quota_remaining is not None:
            headers["x-ms-user-quota-remaining"] = str(quota_remaining)
        if resets_after is not None:
            headers["x-ms-user-quota-resets-after"] = resets_after
        if ratelimit_remaining is not None:
            headers["x-ms-ratelimit-remaining-subscription-reads"] = str(ratelimit_remaining)
            headers["x-ms-ratelimit-remaining-tenant-reads"] = str(ratelimit_remaining)
        body = {"error": {"code": "RateLimiting", "message": "Please provide below info when asking for support: "
                          "timestamp = ..., correlationId = ... Rate limit exceeded."}}
        return cls("status", 429, headers, body, "throttle")

    @classmethod
    def error(cls, status: int = 500, code: str = "InternalServerError", message: str = "Internal error",
              headers: Mapping[str, str] | None = None) -> Fault:
        """Any error status with an ARM error body."""
        return cls("status", status, dict(headers or {}), {"error": {"code": code, "message": message}},
                   f"http-{status}")

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without a response, before the request is applied."""
        return cls("drop", label="drop")

    @classmethod
    def drop_after_apply(cls) -> Fault:
        """Apply the request, then close the connection without a response (the lost-response case)."""
        return cls("drop_after", label="drop-after-apply")

    @classmethod
    def cut_body(cls) -> Fault:
        """Answer with the full Content-Length but close the connection half-way through the body (a connection
        lost while a large page downloads)."""
        return cls("cut_body", label="cut-body")


@dataclass
class _Rule:
    method: str
    pattern: re.Pattern[str]
    remaining: int
    fault: Fault | None = None
    hook: Hook | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and bool(self.pattern.search(path))


class ArmError(Exception):
    """Raised inside handlers to answer with an ARM error body."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class _Response:
    status: int
    body: Json = None
    headers: dict[str, str] = field(default_factory=dict)


# --- Resource Graph query understanding -------------------------------------------------------------------

_STAGE_TYPE_EQ = re.compile(r"^where\s+type\s*=~\s*'([^']*)'$", re.I)
_STAGE_TYPE_IN = re.compile(r"^where\s+type\s+in~\s*\(([^)]*)\)$", re.I)
_STAGE_INSTANCE_TYPE = re.compile(r"^where\s+properties\.providerSpecificDetails\.instanceType\s*=~\s*'([^']*)'$",
                                  re.I)
_STAGE_PROJECT = re.compile(r"^project\s+(.+)$", re.I)
# The event path's forms (azure/inventory.py protected_items_mentioning, event_network_query), exactly.
_MENTION_TEST = r"tostring\(properties\)\s+contains\s+'(/subscriptions/[0-9a-f-]{36}/)'"
_STAGE_MENTIONS = re.compile(rf"^where\s+{_MENTION_TEST}(\s+or\s+{_MENTION_TEST})*$", re.I)
_STAGE_SCOPED_TYPES = re.compile(r"^where\s+\(type\s+in~\s*\(([^)]*)\)\s+and\s+subscriptionId\s+in~\s*\(([^)]*)\)\)"
                                 r"\s+or\s+type\s+in~\s*\(([^)]*)\)$", re.I)
_STAGE_ORDER = re.compile(r"^order\s+by\s+id\s+asc$", re.I)
_TABLES = ("resources", "recoveryservicesresources")


@dataclass(frozen=True)
class ParsedQuery:
    """What the emulator understood of a Resource Graph query."""

    table: str
    types: frozenset[str] | None  # lower-cased; None = any
    instance_type: str | None  # providerSpecificDetails.instanceType filter (case-insensitive)
    columns: tuple[str, ...] | None  # None = all columns
    ordered: bool
    # ``tostring(properties) contains '…'`` (any of them, case-insensitive); None = no such filter
    mentions: frozenset[str] | None = None
    # ``(type in~ (…) and subscriptionId in~ (…)) or type in~ (types)``: these types only in these subscriptions
    scoped_types: frozenset[str] | None = None
    scoped_subscriptions: frozenset[str] | None = None


def parse_query(query: str) -> ParsedQuery:
    """Parse the query forms the inventory sends; ``ValueError`` for anything else."""
    stages = [s.strip() for s in query.split("|")]
    table = stages[0].lower()
    if table not in _TABLES:
        raise ValueError(f"unsupported table {stages[0]!r}")
    types: frozenset[str] | None = None
    instance_type = None
    columns = None
    ordered = False
    mentions: frozenset[str] | None = None
    scoped_types: frozenset[str] | None = None
    scoped_subscriptions: frozenset[str] | None = None
    for stage in stages[1:]:
        if _STAGE_MENTIONS.match(stage):
            if mentions is not None:
                raise ValueError(f"a second mention filter {stage!r}")
            mentions = frozenset(m.lower() for m in re.findall(_MENTION_TEST, stage, re.I))
        elif match := _STAGE_SCOPED_TYPES.match(stage):
            scoped_types, scoped_subscriptions, types = (_quoted_list(match.group(i), stage) for i in (1, 2, 3))
        elif match := _STAGE_TYPE_EQ.match(stage):
            types = frozenset({match.group(1).lower()})
        elif match := _STAGE_TYPE_IN.match(stage):
            types = _quoted_list(match.group(1), stage)
        elif match := _STAGE_INSTANCE_TYPE.match(stage):
            instance_type = match.group(1).lower()
        elif match := _STAGE_PROJECT.match(stage):
            columns = tuple(c.strip() for c in match.group(1).split(","))
            unknown = [c for c in columns if c not in _ARG_COLUMNS]
            if unknown:
                raise ValueError(f"unknown column(s) {unknown}")
        elif _STAGE_ORDER.match(stage):
            ordered = True
        else:
            raise ValueError(f"the emulator does not understand the stage {stage!r}")
    if (mentions is not None and table != "recoveryservicesresources") or (
            scoped_types is not None and table != "resources"):
        raise ValueError(f"the inventory sends no such filter on {table!r}")
    return ParsedQuery(table, types, instance_type, columns, ordered, mentions, scoped_types, scoped_subscriptions)


def _quoted_list(text: str, stage: str) -> frozenset[str]:
    """``'a', 'b'`` → {a, b} (lower case); ``ValueError`` for anything but single-quoted literals."""
    items = [i.strip() for i in text.split(",")]
    if not all(len(i) >= 2 and i[0] == i[-1] == "'" and "'" not in i[1:-1] for i in items):
        raise ValueError(f"cannot parse the list in {stage!r}")
    return frozenset(i[1:-1].lower() for i in items)


def _table_of(arg_type: str) -> str:
    """The vault itself is a tracked resource of ``resources``; its replication items are in
    ``recoveryservicesresources``."""
    if arg_type.startswith("microsoft.recoveryservices/") and arg_type != "microsoft.recoveryservices/vaults":
        return "recoveryservicesresources"
    if arg_type == "microsoft.network/firewallpolicies/rulecollectiongroups":
        # Not a tracked resource of ``resources``: listed under ``networkresources`` only (Resource Graph table and
        # resource type reference), which the emulator does not serve.
        return "networkresources"
    return "resources"


# --- the emulator -----------------------------------------------------------------------------------------


class ArmEmulator:
    """The fake ARM. Use as a context manager (or ``start()`` / ``stop()``)::

        with ArmEmulator() as arm:
            arm.add({...})                        # seed
            arm.base_url, arm.ca_path             # point the SDK here: base_url=..., connection_verify=...
            arm.inject("POST", "ResourceGraph", Fault.throttle(retry_after=2))
            arm.requests                          # what arrived
    """

    def __init__(self, *, ca: trustme.CA | None = None, lro_polls_in_progress: int = 1) -> None:
        self._lock = threading.RLock()
        self._ca = ca or trustme.CA()
        self._tmp = tempfile.TemporaryDirectory(prefix="arm-emulator-")
        self.ca_path = str(Path(self._tmp.name) / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_path)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

        #: resources by lower-cased id, ARM GET shape (NSG rules / routes / subnets inline)
        self.resources: dict[str, dict[str, Any]] = {}
        #: ServiceTags_Public-shaped dict served by the discovery API (None → 404)
        self.service_tags: dict[str, Any] | None = None
        #: serve the discovery API in pages of this many values (nextLink), None = one response
        self.service_tags_page_size: int | None = None
        #: Resource Graph: page size when the request gives no $top
        self.arg_default_top = 100
        #: Resource Graph user quota: None = no quota headers; else remaining requests in the window
        self.arg_quota: int | None = None
        self.arg_quota_limit = 15
        self.arg_quota_resets_after = "00:00:05"
        #: LRO: number of InProgress answers before Succeeded
        self.lro_polls_in_progress = lro_polls_in_progress
        #: LRO: Retry-After seconds sent with 201/202 and InProgress polls (None: no header)
        self.lro_retry_after: int | None = None
        #: effective route table entries per NIC id (lower case), served by POST …/effectiveRouteTable;
        #: a NIC not listed gets the system routes only (no BGP)
        self.effective_routes: dict[str, list[dict[str, Any]]] = {}
        #: effective security rules per NIC id (lower case), served by POST …/effectiveNetworkSecurityGroups (the
        #: NetworkInterfaceEffectiveNSGList shape: a list of {networkSecurityGroup, association,
        #: effectiveSecurityRules}); a NIC not listed gets an empty list
        self.effective_nsgs: dict[str, list[dict[str, Any]]] = {}
        #: effective security admin rules per VNet id (lower case), served by POST
        #: …/listNetworkManagerEffectiveSecurityAdminRules; a VNet not listed has none (an empty list)
        self.admin_rules: dict[str, list[dict[str, Any]]] = {}
        #: entries per page of those rules when the request gives no $top
        self.admin_rules_page_size = 50
        self._tag_names: tuple[dict[str, Any], set[str]] | None = None
        #: Resource Graph result sets by query digest, continued by $skipToken pages
        self._arg_results: dict[str, list[dict[str, Any]]] = {}
        #: Resource Graph lags ARM: per lower-cased id, the (older) document it still returns, or None while it
        #: has not indexed the resource at all; ARM reads always see :attr:`resources`
        self.arg_lag: dict[str, dict[str, Any] | None] = {}
        #: the log
        self.requests: list[RecordedRequest] = []
        #: connections whose TLS handshake failed (e.g. a client without the CA bundle): no request is recorded
        self.tls_handshake_failures = 0
        self.operations: dict[str, dict[str, Any]] = {}
        self._rules: list[_Rule] = []
        self._op_failures: list[tuple[str, str]] = []

    # -- lifecycle

    def start(self) -> ArmEmulator:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        server = _Server(("127.0.0.1", 0), _Handler, self, context)
        self._server = server
        self.base_url = f"https://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="arm-emulator")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._tmp.cleanup()

    def __enter__(self) -> ArmEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- seeding / inspection

    def add(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """Store a resource (ARM or Resource Graph shape); fills what ARM would: name, canonical type,
        etag, provisioningState, NSG default rules, child ids/etags. Returns the stored copy."""
        with self._lock:
            doc = copy.deepcopy(dict(resource))
            if str(doc.get("type") or "").lower() == ADMIN_RULES_TYPE:
                # An export's pseudo-resource: the VNet's effective security admin rules, served by the POST.
                vnet_id = str(doc["id"]).rstrip("/").rsplit("/", 1)[0]
                self.admin_rules[vnet_id.lower()] = list((doc.get("properties") or {}).get("value") or [])
                return doc
            rid = _parse_id(doc["id"])
            arg_type = rid.arg_type
            doc.setdefault("name", rid.names[-1])
            doc["type"] = _CANONICAL_TYPES.get(str(doc.get("type") or arg_type).lower(),
                                               doc.get("type") or "/".join((rid.namespace, *rid.types)))
            doc.setdefault("properties", {})
            # ARM GET bodies do not carry these Resource Graph columns.
            for column in ("resourceGroup", "subscriptionId"):
                doc.pop(column, None)
            if arg_type in _FIREWALL_ETAG_TYPES:
                doc["type"] = _FIREWALL_READ_TYPES.get(arg_type, "Microsoft.Network/firewallPolicies")
                doc["etag"] = doc.get("etag") or new_etag()
            if arg_type in _NETWORK_TYPES_WITH_ETAG:
                doc["properties"].setdefault("provisioningState", "Succeeded")
                if arg_type == "microsoft.network/networksecuritygroups":
                    doc["properties"].setdefault("securityRules", [])
                    doc["properties"].setdefault("defaultSecurityRules", default_security_rules(doc["id"]))
                if arg_type == "microsoft.network/routetables":
                    doc["properties"].setdefault("routes", [])
                self._stamp(doc, doc.get("etag") or new_etag())
            self.resources[doc["id"].lower()] = doc
            return copy.deepcopy(doc)

    def add_all(self, resources: Iterable[Mapping[str, Any]]) -> None:
        for resource in resources:
            self.add(resource)

    def resource(self, resource_id: str) -> dict[str, Any] | None:
        """A deep copy of the stored resource (or None)."""
        with self._lock:
            doc = self.resources.get(resource_id.lower())
            return copy.deepcopy(doc) if doc is not None else None

    def add_security_rule(self, nsg_id: str, name: str, properties: Mapping[str, Any]) -> None:
        """Change state directly, as another writer would (no validation); bumps the NSG etag."""
        with self._lock:
            nsg = self.resources[nsg_id.lower()]
            self._upsert_child(nsg, "securityRules", name, dict(properties), "Succeeded")
            self._stamp(nsg, new_etag())

    def add_route(self, route_table_id: str, name: str, properties: Mapping[str, Any]) -> None:
        with self._lock:
            table = self.resources[route_table_id.lower()]
            self._upsert_child(table, "routes", name, dict(properties), "Succeeded")
            self._stamp(table, new_etag())

    def reset_arg_quota(self, remaining: int | None = None) -> None:
        """Start a new Resource Graph quota window (tests call this from their fake ``sleep``)."""
        with self._lock:
            self.arg_quota = self.arg_quota_limit if remaining is None else remaining

    # -- faults and hooks

    def inject(self, method: str, path_regex: str, fault: Fault, *, times: int = 1) -> None:
        """Answer the next ``times`` requests matching (method, path regex, case-insensitive) with ``fault``."""
        with self._lock:
            self._rules.append(_Rule(method.upper(), re.compile(path_regex, re.I), times, fault=fault))

    def before(self, method: str, path_regex: str, hook: Hook, *, times: int = 1) -> None:
        """Run ``hook(emulator, request)`` just before the next ``times`` matching requests are handled."""
        with self._lock:
            self._rules.append(_Rule(method.upper(), re.compile(path_regex, re.I), times, hook=hook))

    def fail_next_operation(self, code: str = "InternalServerError", message: str = "Operation failed") -> None:
        """The next long-running write ends ``Failed`` with this error (after its InProgress polls)."""
        with self._lock:
            self._op_failures.append((code, message))

    # -- the log

    def matching(self, method: str | None = None, path_regex: str | None = None) -> list[RecordedRequest]:
        pattern = re.compile(path_regex, re.I) if path_regex else None
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method.upper()) and (pattern is None or pattern.search(r.path))]

    def count(self, method: str | None = None, path_regex: str | None = None) -> int:
        return len(self.matching(method, path_regex))

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- request processing (server threads)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _take(self, method: str, path: str, *, hooks: bool) -> list[_Rule]:
        with self._lock:
            taken = []
            for rule in self._rules:
                is_hook = rule.hook is not None
                if is_hook == hooks and rule.matches(method, path):
                    rule.remaining -= 1
                    taken.append(rule)
                    if not hooks:
                        break
            self._rules = [r for r in self._rules if r.remaining > 0]
            return taken

    def _dispatch(self, req: RecordedRequest) -> tuple[_Response | None, Fault | None]:
        """Returns (response, fault). A response of None means: drop the connection."""
        faults = self._take(req.method, req.path, hooks=False)
        fault = faults[0].fault if faults else None
        if fault is not None and fault.kind in ("status", "drop"):
            req.fault = fault.label
            if fault.kind == "drop":
                return None, fault
            return _Response(fault.status, fault.body, dict(fault.headers)), fault
        auth = req.header("Authorization") or ""
        if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
            return _Response(401, {"error": {"code": "AuthenticationFailed",
                                             "message": "Authentication failed. The 'Authorization' header is "
                                                        "missing."}}), None
        if "api-version" not in {k.lower() for k in req.query}:
            return _Response(400, {"error": {"code": "MissingApiVersionParameter",
                                             "message": "The api-version query parameter (?api-version=) is "
                                                        "required for all requests."}}), None
        for rule in self._take(req.method, req.path, hooks=True):
            assert rule.hook is not None
            rule.hook(self, req)
        try:
            with self._lock:
                response = self._route(req)
        except ArmError as err:
            error: dict[str, Any] = {"code": err.code, "message": err.message}
            if err.details:
                error["details"] = err.details
            response = _Response(err.status, {"error": error})
        if fault is not None and fault.kind == "drop_after":
            req.fault = fault.label
            return None, fault
        if fault is not None and fault.kind == "cut_body":
            req.fault = fault.label
            return response, fault
        return response, None

    def _route(self, req: RecordedRequest) -> _Response:
        path = req.path.rstrip("/")
        low = path.lower()
        if low == "/providers/microsoft.resourcegraph/resources":
            if req.method != "POST":
                raise ArmError(405, "MethodNotAllowed", "Use POST")
            return self._arg(req)
        match = re.fullmatch(r"/subscriptions/([^/]+)/providers/microsoft\.network/locations/([^/]+)/servicetags", low)
        if match:
            return self._service_tags(req, path.split("/")[2])
        match = re.fullmatch(r"/subscriptions/[^/]+/providers/microsoft\.network/locations/[^/]+/operations/([^/]+)",
                             low)
        if match:
            return self._operation_status(match.group(1))
        match = re.fullmatch(
            r"/subscriptions/[^/]+/providers/microsoft\.network/locations/[^/]+/operationresults/([^/]+)", low)
        if match:
            return self._operation_result(req, match.group(1))
        if low.endswith("/effectiveroutetable") and "/microsoft.network/networkinterfaces/" in low:
            return self._effective_routes(req, path.rsplit("/", 1)[0])
        if (low.endswith("/listnetworkmanagereffectivesecurityadminrules")
                and "/microsoft.network/virtualnetworks/" in low):
            return self._admin_rules(req, path.rsplit("/", 1)[0])
        if low.endswith("/effectivenetworksecuritygroups") and "/microsoft.network/networkinterfaces/" in low:
            nic_id = path.rsplit("/", 1)[0]
            return self._nic_post(req, nic_id, {"value": copy.deepcopy(self.effective_nsgs.get(nic_id.lower(), []))},
                                  "effective security rules")
        firewall = self._firewall_policy_route(req, path)
        if firewall is not None:
            return firewall
        try:
            rid = _parse_id(path)
        except ValueError:
            raise ArmError(404, "InvalidResourceType",
                           f"The resource path '{path}' is not served by the emulator") from None
        if rid.arg_type == _PROTECTED_ITEM_TYPE:
            return self._protected_item(req, path)
        return self._network(req, rid)

    def _protected_item(self, req: RecordedRequest, path: str) -> _Response:
        """ReplicationProtectedItems_Get (read-only here): the stored item, or Site Recovery's 404."""
        if req.method != "GET":
            raise ArmError(405, "MethodNotAllowed", f"{req.method} on a protected item is not emulated")
        doc = self.resources.get(path.lower())
        if doc is None:
            raise ArmError(404, "ProtectedItemNotFound",
                           f"The protected item '{path.rsplit('/', 1)[-1]}' was not found.")
        return _Response(200, copy.deepcopy(doc))

    def _effective_routes(self, req: RecordedRequest, nic_id: str) -> _Response:
        """POST …/networkInterfaces/{nic}/effectiveRouteTable: a long-running POST (202 + Location, as in the
        NetworkInterfaceEffectiveRouteTableList example); the Location URL answers 202 while running, then 200
        with ``{"value": [...]}``. It fails for a NIC that is not attached to a running VM (Azure computes
        effective routes from the NIC's host)."""
        default = [{"source": "Default", "state": "Active", "addressPrefix": ["0.0.0.0/0"],
                    "nextHopType": "Internet", "nextHopIpAddress": []}]
        body = {"value": copy.deepcopy(self.effective_routes.get(nic_id.lower(), default))}
        return self._nic_post(req, nic_id, body, "effective routes")

    def _nic_post(self, req: RecordedRequest, nic_id: str, body: dict[str, Any], what: str) -> _Response:
        """A long-running POST action on a NIC (effectiveRouteTable, effectiveNetworkSecurityGroups): 202 + Location,
        then the result; it fails for a NIC that is not attached to a running VM."""
        if req.method != "POST":
            raise ArmError(405, "MethodNotAllowed", f"Use POST for {what}")
        nic = self.resources.get(nic_id.lower())
        if nic is None:
            raise ArmError(404, "ResourceNotFound", f"The Resource '{nic_id}' was not found.")
        failure = None
        vm_id = str(((nic.get("properties") or {}).get("virtualMachine") or {}).get("id") or "")
        if not vm_id or not self.vm_running(vm_id):
            failure = (400, "NicNotAttachedToRunningVm",
                       f"Network interface {nic_id} is not attached to a running virtual machine: {what} are only "
                       "available while the VM runs.")
        op_id = str(uuid.uuid4())
        self.operations[op_id] = {"polls": 0, "status": "InProgress", "result": body, "result_failure": failure,
                                  "on_success": lambda: None, "failure": None}
        rid = _parse_id(nic_id)
        loc = str(nic.get("location") or "westeurope").lower()
        url = (f"{self.base_url}/subscriptions/{rid.subscription}/providers/Microsoft.Network/locations/{loc}"
               f"/operationResults/{op_id}?api-version={req.query.get('api-version', '')}")
        headers = {"Location": url}
        if self.lro_retry_after is not None:
            headers["Retry-After"] = str(self.lro_retry_after)
        return _Response(202, None, headers)

    def _admin_rules(self, req: RecordedRequest, vnet_id: str) -> _Response:
        """ListNetworkManagerEffectiveSecurityAdminRules: one page of the VNet's effective security admin rules."""
        if req.method != "POST":
            raise ArmError(405, "MethodNotAllowed", "Use POST for listNetworkManagerEffectiveSecurityAdminRules")
        version = req.query.get("api-version", "")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", version) or version[:10] < ADMIN_RULES_MIN_API_VERSION:
            raise ArmError(400, "NoRegisteredProviderFound",
                           f"No registered resource provider found for API version '{version}' and type "
                           "'virtualNetworks/listNetworkManagerEffectiveSecurityAdminRules'. The supported "
                           f"api-versions start at '{ADMIN_RULES_MIN_API_VERSION}'.")
        if self.resources.get(vnet_id.lower()) is None:
            raise ArmError(404, "ResourceNotFound", f"The Resource '{vnet_id}' was not found.")
        body = req.body
        if not isinstance(body, dict):
            raise ArmError(400, "InvalidRequestContent", "The request content was invalid and could not be "
                           "deserialized: the body must be a QueryRequestOptions object.")
        top_text = req.query.get("$top")
        size = self.admin_rules_page_size
        if top_text is not None:
            if not top_text.isdigit() or int(top_text) < 1:
                raise ArmError(400, "InvalidParameter", f"$top must be a positive integer, not '{top_text}'.")
            size = int(top_text)
        token = body.get("skipToken")
        start = 0
        if token not in (None, ""):
            try:
                decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()).decode())
                if not isinstance(decoded, dict) or str(decoded.get("vnet", "")).lower() != vnet_id.lower():
                    raise ValueError("another VNet's token")
                start = int(decoded["offset"])
            except (ValueError, KeyError, TypeError) as error:
                raise ArmError(400, "InvalidSkipToken", f"The skipToken '{token}' is not valid for this request."
                               ) from error
        rules = self.admin_rules.get(vnet_id.lower(), [])
        page: dict[str, Any] = {"value": copy.deepcopy(rules[start:start + size])}
        if start + size < len(rules):
            page["skipToken"] = base64.urlsafe_b64encode(
                json.dumps({"vnet": vnet_id.lower(), "offset": start + size}).encode()).decode()
        return _Response(200, page)

    def vm_running(self, vm_id: str) -> bool:
        """A VM counts as running unless its power state (Resource Graph's properties.extended.instanceView) says
        deallocated or stopped."""
        vm = self.resources.get(vm_id.lower())
        if vm is None:
            return False
        code = str(((((vm.get("properties") or {}).get("extended") or {}).get("instanceView") or {})
                    .get("powerState") or {}).get("code") or "")
        return code.lower() not in ("powerstate/deallocated", "powerstate/stopped", "powerstate/deallocating")

    def _operation_result(self, req: RecordedRequest, op_id: str) -> _Response:
        """The Location URL of a long-running POST: 202 while running, then the result (or the error)."""
        op = self.operations.get(op_id.lower()) or self.operations.get(op_id)
        if op is None or "result" not in op:
            raise ArmError(404, "OperationNotFound", f"Operation {op_id} not found")
        op["polls"] += 1
        if op["polls"] <= self.lro_polls_in_progress:
            headers = {"Location": f"{self.base_url}{req.path}?api-version={req.query.get('api-version', '')}"}
            if self.lro_retry_after is not None:
                headers["Retry-After"] = str(self.lro_retry_after)
            return _Response(202, None, headers)
        if op["result_failure"] is not None:
            status, code, message = op["result_failure"]
            raise ArmError(status, code, message)
        return _Response(200, copy.deepcopy(op["result"]))

    # -- Resource Graph

    def _arg(self, req: RecordedRequest) -> _Response:
        body = req.body if isinstance(req.body, dict) else {}
        subs = body.get("subscriptions")
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ArmError(400, "BadRequest", "Query is required")
        if not isinstance(subs, list) or not subs:
            raise ArmError(400, "BadRequest", "Please provide subscriptions or management groups")
        if len(subs) > 1000:
            raise ArmError(400, "BadRequest", "Too many subscriptions in the request (max 1000)")
        if self.arg_quota is not None and self.arg_quota <= 0:
            return _Response(429, {"error": {"code": "RateLimiting", "message": "Client application has been "
                                             "throttled and should not attempt to repeat the request until an "
                                             "amount of time has elapsed."}},
                             {"x-ms-user-quota-remaining": "0",
                              "x-ms-user-quota-resets-after": self.arg_quota_resets_after})
        options = body.get("options") or {}
        if options.get("resultFormat", "objectArray") != "objectArray":
            raise ArmError(400, "BadRequest", "the emulator only serves resultFormat objectArray")
        top = options.get("$top", self.arg_default_top)
        if not isinstance(top, int) or not 1 <= top <= 1000:
            raise ArmError(400, "BadRequest", "$top must be between 1 and 1000")
        try:
            parsed = parse_query(query)
        except ValueError as err:
            raise ArmError(400, "BadRequest", f"Query is invalid: {err}") from None
        wanted_subs = {str(s).lower() for s in subs}
        digest = hashlib.sha256(json.dumps([query, sorted(wanted_subs)]).encode()).hexdigest()[:16]
        offset = options.get("$skip", 0) or 0
        token = options.get("$skipToken")
        # A $skipToken continues the result set of the first page (computed once: large estates page 30+ times).
        cached = self._arg_results.get(digest) if token else None
        rows = cached if cached is not None else self._arg_rows(parsed, wanted_subs)
        self._arg_results[digest] = rows
        if token:
            try:
                decoded = json.loads(base64.b64decode(token))
                assert decoded["q"] == digest
                offset = int(decoded["o"])
            except Exception:
                raise ArmError(400, "BadRequest", "The $skipToken is invalid for this query") from None
        page = rows[offset : offset + top]
        result: dict[str, Any] = {"totalRecords": len(rows), "count": len(page), "facets": [], "data": page}
        has_id = parsed.columns is None or "id" in parsed.columns
        more = offset + len(page) < len(rows)
        if more and has_id:
            token_json = json.dumps({"q": digest, "o": offset + len(page)})
            result["$skipToken"] = base64.b64encode(token_json.encode()).decode()
        result["resultTruncated"] = "true" if more and not has_id else "false"
        headers = {}
        if self.arg_quota is not None:
            self.arg_quota -= 1
            headers = {"x-ms-user-quota-remaining": str(self.arg_quota),
                       "x-ms-user-quota-resets-after": self.arg_quota_resets_after}
        return _Response(200, result, headers)

    def _indexed(self) -> list[dict[str, Any]]:
        """What Resource Graph holds: ARM's state, except where :attr:`arg_lag` says it is behind."""
        docs = [self.arg_lag.get(k, doc) for k, doc in self.resources.items()]
        docs += [doc for k, doc in self.arg_lag.items() if k not in self.resources]  # deleted in ARM, still indexed
        return [d for d in docs if d is not None]

    def _arg_rows(self, parsed: ParsedQuery, wanted_subs: set[str]) -> list[dict[str, Any]]:
        rows = []
        for doc in self._indexed():
            rid = _parse_id(doc["id"])
            arg_type = rid.arg_type
            if rid.subscription.lower() not in wanted_subs or _table_of(arg_type) != parsed.table:
                continue
            in_scoped = (parsed.scoped_types is not None and parsed.scoped_subscriptions is not None
                         and arg_type in parsed.scoped_types
                         and rid.subscription.lower() in parsed.scoped_subscriptions)
            if parsed.types is not None and arg_type not in parsed.types and not in_scoped:
                continue
            if parsed.mentions is not None:
                # KQL tostring() of the dynamic column: its JSON text; contains is case-insensitive.
                text = json.dumps(doc.get("properties") or {}).lower()
                if not any(m in text for m in parsed.mentions):
                    continue
            if parsed.instance_type is not None:
                details = (doc.get("properties") or {}).get("providerSpecificDetails") or {}
                if str(details.get("instanceType", "")).lower() != parsed.instance_type:
                    continue
            rows.append(self._arg_row(doc, rid, parsed.columns))
        # Resource Graph pages stably by id; the emulator orders by id whether or not the query asks.
        rows.sort(key=lambda r: str(r.get("id", "")))
        return rows

    @staticmethod
    def _arg_row(doc: dict[str, Any], rid: _Id, columns: tuple[str, ...] | None) -> dict[str, Any]:
        full = {
            "id": doc["id"],
            "name": doc.get("name", rid.names[-1]),
            "type": rid.arg_type,
            "tenantId": "",
            "kind": doc.get("kind", ""),
            "location": str(doc.get("location", "")).lower(),
            "resourceGroup": rid.resource_group.lower(),
            "subscriptionId": rid.subscription,
            "managedBy": doc.get("managedBy", ""),
            "sku": doc.get("sku"),
            "plan": doc.get("plan"),
            "properties": copy.deepcopy(doc.get("properties") or {}),
            "tags": copy.deepcopy(doc.get("tags") or {}),
            "identity": doc.get("identity"),
            "zones": doc.get("zones"),
            "extendedLocation": doc.get("extendedLocation"),
        }
        if columns is None:
            return full
        return {c: full[c] for c in columns}

    # -- Service tags

    def _service_tags(self, req: RecordedRequest, subscription: str) -> _Response:
        if req.method != "GET":
            raise ArmError(405, "MethodNotAllowed", "Use GET")
        if self.service_tags is None:
            raise ArmError(404, "NotFound", "No service tags seeded in the emulator")
        tags = self.service_tags
        values = []
        for entry in tags.get("values", []):
            props = entry.get("properties", {})
            values.append({
                "name": entry["name"],
                "id": entry.get("id", entry["name"]),
                "properties": {
                    "changeNumber": str(props.get("changeNumber", "")),
                    "region": props.get("region", ""),
                    "systemService": props.get("systemService", ""),
                    "addressPrefixes": list(props.get("addressPrefixes", [])),
                },
            })
        offset = int(req.query.get("$skipToken", "0") or 0)
        body: dict[str, Any] = {
            "name": "public",
            "id": f"/subscriptions/{subscription}/providers/Microsoft.Network/serviceTags/public",
            "type": "Microsoft.Network/serviceTags",
            "changeNumber": str(tags.get("changeNumber", "")),
            "cloud": tags.get("cloud", "Public"),
        }
        size = self.service_tags_page_size
        if size:
            body["values"] = values[offset : offset + size]
            if offset + size < len(values):
                body["nextLink"] = (f"{self.base_url}{req.path}?api-version={req.query.get('api-version')}"
                                    f"&$skipToken={offset + size}")
        else:
            body["values"] = values
        return _Response(200, body)

    # -- long-running operations

    def _start_operation(self, subscription: str, location: str, on_success: Callable[[], None], *,
                         failure: tuple[str, str] | None = None) -> str:
        """``failure``: the operation ends Failed with this (code, message) — how Network RP reports a rule collection
        group it refuses (the PUT itself is accepted)."""
        op_id = str(uuid.uuid4())
        failure = failure or (self._op_failures.pop(0) if self._op_failures else None)
        self.operations[op_id] = {"polls": 0, "on_success": on_success, "failure": failure, "status": "InProgress"}
        loc = (location or "westeurope").replace(" ", "").lower()
        return (f"{self.base_url}/subscriptions/{subscription}/providers/Microsoft.Network/locations/{loc}"
                f"/operations/{op_id}")

    def _lro_headers(self, op_url: str, api_version: str) -> dict[str, str]:
        headers = {"Azure-AsyncOperation": f"{op_url}?api-version={api_version}"}
        if self.lro_retry_after is not None:
            headers["Retry-After"] = str(self.lro_retry_after)
        return headers

    def _operation_status(self, op_id: str) -> _Response:
        op = self.operations.get(op_id.lower())
        if op is None:
            raise ArmError(404, "OperationNotFound", f"Operation {op_id} not found")
        op["polls"] += 1
        if op["status"] == "InProgress" and op["polls"] > self.lro_polls_in_progress:
            if op["failure"]:
                op["status"] = "Failed"
            else:
                op["status"] = "Succeeded"
                op["on_success"]()
        body: dict[str, Any] = {"status": op["status"]}
        if op["status"] == "Failed":
            code, message = op["failure"]
            body["error"] = {"code": code, "message": message}
        headers = {}
        if op["status"] == "InProgress" and self.lro_retry_after is not None:
            headers["Retry-After"] = str(self.lro_retry_after)
        return _Response(200, body, headers)

    # -- Network RP

    @staticmethod
    def _stamp(doc: dict[str, Any], etag: str) -> None:
        """New etag on a resource. Children (rules, routes, subnets) carry etags of their own, given when they are
        first stored and changed only when that child is written (ARM RPC: a nested resource's etag is its own)."""
        doc["etag"] = etag
        props = doc.get("properties") or {}
        for key in ("securityRules", "defaultSecurityRules", "routes", "subnets"):
            for child in props.get(key) or []:
                child.setdefault("etag", new_etag())
                child.setdefault("id", f"{doc['id']}/{key}/{child.get('name')}")
                child.setdefault("properties", {}).setdefault("provisioningState", "Succeeded")

    @staticmethod
    def _find_child(doc: dict[str, Any], key: str, name: str) -> dict[str, Any] | None:
        for child in (doc.get("properties") or {}).get(key) or []:
            if str(child.get("name", "")).lower() == name.lower():
                return dict(child)
        return None

    @staticmethod
    def _upsert_child(doc: dict[str, Any], key: str, name: str, properties: dict[str, Any], state: str) -> bool:
        """Insert or replace a child by name (case-insensitive). Returns True when it was created."""
        children = doc.setdefault("properties", {}).setdefault(key, [])
        props = {k: v for k, v in properties.items() if k != "provisioningState"}
        props["provisioningState"] = state
        for index, child in enumerate(children):
            if str(child.get("name", "")).lower() == name.lower():
                children[index] = {"name": child["name"], "id": child["id"], "etag": new_etag(),
                                   "type": child.get("type", _child_type(key)), "properties": props}
                return False
        children.append({"name": name, "id": f"{doc['id']}/{key}/{name}", "etag": new_etag(),
                         "type": _child_type(key), "properties": props})
        return True

    def _check_if_match(self, req: RecordedRequest, current_etag: str | None, exists: bool) -> None:
        """ARM RPC "ETags for Resources": If-Match on a resource that does not exist, or with another etag, and
        If-None-Match: * on one that exists are answered 412 PreconditionFailed."""
        wanted = req.header("If-Match")
        none_match = req.header("If-None-Match")
        if none_match is not None and exists and (none_match.strip() == "*" or none_match.strip() == current_etag):
            raise ArmError(412, "PreconditionFailed",
                           "The condition specified using HTTP conditional header(s) is not met: the resource exists "
                           f"(If-None-Match was {none_match}).")
        if wanted is None:
            return
        if not exists:
            raise ArmError(412, "PreconditionFailed",
                           f"The condition specified using HTTP conditional header(s) is not met: If-Match {wanted} "
                           "on a resource that does not exist.")
        if wanted.strip() != "*" and wanted.strip() != (current_etag or ""):
            raise ArmError(412, "PreconditionFailed", "Precondition failed.", details=[{
                "code": "PreconditionFailedEtagMismatch",
                "message": f"Etag provided in if-match header {wanted} does not match etag {current_etag} of "
                           f"resource {req.path}."}])

    def _network(self, req: RecordedRequest, rid: _Id) -> _Response:
        depth = len(rid.types)
        parent_id = "/".join(
            ["", "subscriptions", rid.subscription, "resourceGroups", rid.resource_group, "providers", rid.namespace,
             rid.types[0], rid.names[0]])
        parent_type = f"{rid.namespace}/{rid.types[0]}".lower()
        parent = self.resources.get(parent_id.lower())
        api_version = req.query.get("api-version", "")
        known = {
            "microsoft.network/networksecuritygroups": ("GET", "PUT"),
            "microsoft.network/routetables": ("GET", "PUT"),
            "microsoft.network/virtualnetworks": ("GET",),
            "microsoft.network/networkinterfaces": ("GET",),
            **{t: ("GET",) for t in _FIREWALL_READ_TYPES},
        }
        children = {
            ("microsoft.network/networksecuritygroups", "securityrules"): "securityRules",
            ("microsoft.network/networksecuritygroups", "defaultsecurityrules"): "defaultSecurityRules",
            ("microsoft.network/routetables", "routes"): "routes",
            ("microsoft.network/virtualnetworks", "subnets"): "subnets",
        }
        not_found = ArmError(404, "ResourceNotFound",
                             f"The Resource '{rid.namespace}/{rid.types[0]}/{rid.names[0]}' under resource group "
                             f"'{rid.resource_group}' was not found. For more details please go to "
                             "https://aka.ms/ARMResourceNotFoundFix")
        if depth == 1:
            if parent_type not in known:
                raise ArmError(404, "InvalidResourceType", f"The emulator does not serve {parent_type}")
            if req.method not in known[parent_type]:
                raise ArmError(405, "MethodNotAllowed", f"{req.method} {parent_type} is not emulated")
            if req.method == "GET":
                if parent is None:
                    raise not_found
                return _Response(200, copy.deepcopy(parent))
            return self._put_parent(req, parent_id, parent_type, parent, api_version, rid)
        if depth != 2 or (parent_type, rid.types[1].lower()) not in children:
            raise ArmError(404, "InvalidResourceType", f"The emulator does not serve {req.path}")
        key = children[(parent_type, rid.types[1].lower())]
        name = rid.names[1]
        if parent is None:
            raise not_found
        if req.method == "GET":
            child = self._find_child(parent, key, name)
            if child is None:
                raise ArmError(404, "NotFound", f"Resource {parent_id}/{key}/{name} not found.")
            return _Response(200, copy.deepcopy(child))
        if key not in ("securityRules", "routes") or req.method not in ("PUT", "DELETE"):
            raise ArmError(405, "MethodNotAllowed", f"{req.method} on {key} is not emulated")
        existing = self._find_child(parent, key, name)
        if req.method == "DELETE" and existing is None:
            return _Response(204)  # ARM RPC: DELETE of an absent resource is 204, with or without If-Match
        self._check_if_match(req, existing.get("etag") if existing else None, existing is not None)
        if req.method == "DELETE":
            props = parent["properties"]
            props[key] = [c for c in props[key] if str(c.get("name", "")).lower() != name.lower()]
            self._stamp(parent, new_etag())
            op_url = self._start_operation(rid.subscription, parent.get("location", ""), lambda: None)
            headers = self._lro_headers(op_url, api_version)
            headers["Location"] = f"{op_url.replace('/operations/', '/operationResults/')}?api-version={api_version}"
            return _Response(202, None, headers)
        body = req.body if isinstance(req.body, dict) else {}
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request: 'properties' is required.")
        if key == "securityRules":
            properties = self._validate_rule(parent, name, properties)
            limit = MAX_RULES_PER_NSG
        else:
            properties = self._validate_route(parent, name, properties)
            limit = MAX_ROUTES_PER_TABLE
        if existing is None and len(parent["properties"].get(key) or []) >= limit:
            raise ArmError(400, "LimitExceeded", f"{key} limit of {limit} reached for {parent_id}")
        created = self._upsert_child(parent, key, name, properties, "Updating")
        self._stamp(parent, new_etag())

        def succeed(parent: dict[str, Any] = parent, key: str = key, name: str = name) -> None:
            for child in parent["properties"].get(key) or []:
                if str(child.get("name", "")).lower() == name.lower():
                    child["properties"]["provisioningState"] = "Succeeded"

        op_url = self._start_operation(rid.subscription, parent.get("location", ""), succeed)
        child = self._find_child(parent, key, name)
        return _Response(201 if created else 200, copy.deepcopy(child), self._lro_headers(op_url, api_version))

    def _put_parent(self, req: RecordedRequest, resource_id: str, resource_type: str, existing: dict[str, Any] | None,
                    api_version: str, rid: _Id) -> _Response:
        self._check_if_match(req, existing.get("etag") if existing else None, existing is not None)
        body = req.body if isinstance(req.body, dict) else None
        if body is None:
            raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request body.")
        properties = dict(body.get("properties") or {})
        key = "securityRules" if resource_type == "microsoft.network/networksecuritygroups" else "routes"
        children = properties.get(key) or []
        draft: dict[str, Any] = {"id": resource_id, "properties": {key: []}}
        for child in children:
            child_name = child.get("name")
            if not child_name:
                raise ArmError(400, "InvalidRequestFormat", f"Every item of {key} needs a name.")
            props = child.get("properties") or {}
            props = (self._validate_rule(draft, child_name, props) if key == "securityRules"
                     else self._validate_route(draft, child_name, props))
            self._upsert_child(draft, key, child_name, props, "Updating")
        limit = MAX_RULES_PER_NSG if key == "securityRules" else MAX_ROUTES_PER_TABLE
        if len(draft["properties"][key]) > limit:
            raise ArmError(400, "LimitExceeded", f"{key} limit of {limit} exceeded for {resource_id}")
        doc = {k: v for k, v in body.items() if k not in ("etag",)}
        doc["id"] = existing["id"] if existing else resource_id
        doc["name"] = rid.names[0]
        doc["type"] = _CANONICAL_TYPES.get(resource_type, resource_type)
        doc["location"] = body.get("location") or (existing or {}).get("location") or "westeurope"
        properties[key] = draft["properties"][key]
        properties["provisioningState"] = "Updating"
        if key == "securityRules":
            properties["defaultSecurityRules"] = ((existing or {}).get("properties", {}).get("defaultSecurityRules")
                                                  or default_security_rules(doc["id"]))
        doc["properties"] = properties
        self._stamp(doc, new_etag())
        self.resources[resource_id.lower()] = doc

        def succeed() -> None:
            doc["properties"]["provisioningState"] = "Succeeded"
            for child in doc["properties"].get(key) or []:
                child["properties"]["provisioningState"] = "Succeeded"

        op_url = self._start_operation(rid.subscription, doc["location"], succeed)
        return _Response(200 if existing else 201, copy.deepcopy(doc), self._lro_headers(op_url, api_version))

    # -- Firewall Policies and their rule collection groups (issue 10, the fix plan's writes) -------------------------
    # FirewallPolicies_Get; FirewallPolicyRuleCollectionGroups_Get / _List / _CreateOrUpdate / _Delete. The policy is
    # read-only here; its ``properties.ruleCollectionGroups`` references follow the groups written. Groups are stored
    # as resources of their own (``…/firewallPolicies/{p}/ruleCollectionGroups/{g}``), with an etag of their own.

    _FIREWALL_PATH = re.compile(r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.network/"
                                r"firewallpolicies/[^/]+(?P<list>/rulecollectiongroups(?P<group>/[^/]+)?)?$")

    def _firewall_policy_route(self, req: RecordedRequest, path: str) -> _Response | None:
        match = self._FIREWALL_PATH.match(path.lower())
        if match is None:
            return None
        parts = path.split("/")
        policy_id = "/".join(parts[:9])
        policy = self.resources.get(policy_id.lower())
        if policy is None:
            raise ArmError(404, "ResourceNotFound", f"The Resource 'Microsoft.Network/firewallPolicies/{parts[8]}' "
                                                   f"under resource group '{parts[4]}' was not found.")
        if not match.group("list"):
            if req.method != "GET":
                raise ArmError(405, "MethodNotAllowed", f"{req.method} of a firewall policy is not emulated")
            return _Response(200, copy.deepcopy(policy))
        if not match.group("group"):
            if req.method != "GET":
                raise ArmError(405, "MethodNotAllowed", f"{req.method} of the rule collection group list")
            return _Response(200, {"value": [copy.deepcopy(g) for g in self._groups_of(policy_id)]})
        name = parts[10]
        group_id = f"{policy['id']}/ruleCollectionGroups/{name}"
        existing = self.resources.get(group_id.lower())
        if existing is not None:
            existing.setdefault("etag", new_etag())
        if req.method == "GET":
            if existing is None:
                raise ArmError(404, "NotFound", f"Resource {group_id} not found.")
            return _Response(200, copy.deepcopy(existing))
        api_version = req.query.get("api-version", "")
        if req.method == "DELETE":
            if existing is None:
                return _Response(204)
            self._check_if_match(req, existing.get("etag"), True)
            del self.resources[group_id.lower()]
            self._relink_groups(policy)
            op_url = self._start_operation(parts[2], policy.get("location", ""), lambda: None)
            headers = self._lro_headers(op_url, api_version)
            headers["Location"] = f"{op_url.replace('/operations/', '/operationResults/')}?api-version={api_version}"
            return _Response(202, None, headers)
        if req.method != "PUT":
            raise ArmError(405, "MethodNotAllowed", f"{req.method} of a rule collection group is not emulated")
        self._check_if_match(req, existing.get("etag") if existing else None, existing is not None)
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?", name):
            raise ArmError(400, "InvalidResourceName", f"Resource name {name} is invalid. The name can be up to 80 "
                           "characters long. It must begin with a word character, and it must end with a word "
                           "character or with '_'. The name may contain word characters or '.', '-', '_'.")
        body = req.body if isinstance(req.body, dict) else {}
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request: 'properties' is required.")
        if existing is None and len(self._groups_of(policy_id)) >= MAX_RULE_COLLECTION_GROUPS:
            raise ArmError(400, "LimitExceeded", f"Firewall policy {parts[8]} would hold more than "
                                                 f"{MAX_RULE_COLLECTION_GROUPS} rule collection groups.")
        problem = self._rule_collection_group_problem(properties)
        status = 200 if existing is not None else 201
        echo = {"id": group_id, "name": name, "type": "Microsoft.Network/firewallPolicies/ruleCollectionGroups",
                "properties": {**properties, "provisioningState": "Updating"}}
        if problem is not None:  # accepted, then the operation fails: nothing changes
            op_url = self._start_operation(parts[2], policy.get("location", ""), lambda: None, failure=problem)
            return _Response(status, {**echo, "etag": new_etag()}, self._lro_headers(op_url, api_version))
        doc = {**echo, "etag": new_etag(),
               "properties": {k: copy.deepcopy(v) for k, v in properties.items()
                              if k not in ("provisioningState", "size")}}
        doc["properties"]["provisioningState"] = "Updating"
        self.resources[group_id.lower()] = doc
        self._relink_groups(policy)

        def succeed() -> None:
            doc["properties"]["provisioningState"] = "Succeeded"

        op_url = self._start_operation(parts[2], policy.get("location", ""), succeed)
        return _Response(status, copy.deepcopy(doc), self._lro_headers(op_url, api_version))

    def _groups_of(self, policy_id: str) -> list[dict[str, Any]]:
        prefix = policy_id.lower() + "/rulecollectiongroups/"
        return sorted((d for k, d in self.resources.items() if k.startswith(prefix) and "/" not in k[len(prefix):]),
                      key=lambda d: str(d.get("name", "")).lower())

    def _relink_groups(self, policy: dict[str, Any]) -> None:
        """The policy lists its groups' ids (as FirewallPolicies_Get does); a group write changes the policy's etag."""
        policy.setdefault("properties", {})["ruleCollectionGroups"] = [{"id": g["id"]}
                                                                       for g in self._groups_of(policy["id"])]
        policy["etag"] = new_etag()

    def _rule_collection_group_problem(self, props: Mapping[str, Any]) -> tuple[str, str] | None:
        """What Network RP refuses in a rule collection group, as (code, message) of the failed operation, or None."""
        def bad(message: str, code: str = "FirewallPolicyRuleCollectionGroupInvalid") -> tuple[str, str]:
            return code, message

        def priority_problem(value: Any, what: str) -> tuple[str, str] | None:
            if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 65000:
                return bad(f"{what} has priority {value!r}; it must be between 100 and 65000",
                           "FirewallPolicyRuleCollectionGroupInvalidPriority")
            return None

        problem = priority_problem(props.get("priority"), "The rule collection group")
        if problem:
            return problem
        collections = props.get("ruleCollections") or []
        if not isinstance(collections, list):
            return bad("ruleCollections must be a list")
        names: set[str] = set()
        for collection in collections:
            if not isinstance(collection, dict) or not collection.get("name"):
                return bad("every rule collection needs a name")
            cname = str(collection["name"])
            if cname.lower() in names:
                return bad(f"rule collection name {cname} is used twice in the group")
            names.add(cname.lower())
            kind = str(collection.get("ruleCollectionType") or "")
            if kind not in ("FirewallPolicyFilterRuleCollection", "FirewallPolicyNatRuleCollection"):
                return bad(f"rule collection {cname}: ruleCollectionType {kind!r} is not known")
            if collection.get("priority") is not None:
                problem = priority_problem(collection.get("priority"), f"Rule collection {cname}")
                if problem:
                    return problem
            action = str((collection.get("action") or {}).get("type") or "")
            wanted = ("Allow", "Deny") if kind == "FirewallPolicyFilterRuleCollection" else ("DNAT",)
            if action not in wanted:
                return bad(f"rule collection {cname}: action {action!r} must be one of {', '.join(wanted)}")
            rule_names: set[str] = set()
            for rule in collection.get("rules") or []:
                problem = self._firewall_rule_problem(rule, cname, rule_names)
                if problem:
                    return problem
        return None

    def _firewall_rule_problem(self, rule: Any, collection: str, seen: set[str]) -> tuple[str, str] | None:
        if not isinstance(rule, dict) or not rule.get("name"):
            return "FirewallPolicyRuleCollectionGroupInvalid", f"rule collection {collection}: a rule has no name"
        name = str(rule["name"])
        if name.lower() in seen:
            return "FirewallPolicyRuleCollectionGroupInvalid", f"rule name {name} is used twice in {collection}"
        seen.add(name.lower())
        if rule.get("ruleType") != "NetworkRule":
            return None  # application and NAT rules are not validated here (the bot writes network rules only)
        protocols = rule.get("ipProtocols") or []
        if not protocols or any(str(p) not in ("TCP", "UDP", "ICMP", "Any") for p in protocols):
            return "FirewallPolicyRuleConditionInvalidProtocol", f"Firewall Policy Rule {name}: invalid ipProtocols"
        for port in rule.get("destinationPorts") or []:
            low, _, high = str(port).partition("-")
            if str(port) == "*":
                continue
            if not (low.isdigit() and (high or low).isdigit() and 1 <= int(low) <= int(high or low) <= 64000):
                # The real message (azure-rest-api-specs#11831, terraform-provider-azurerm#9304).
                return ("FirewallPolicyRuleConditionInvalidPortOrRangeFormat",
                        f"Firewall Policy Rule Condition {name}: Invalid port value or range. User ports must be in "
                        "[1, 64000]")
        if not rule.get("destinationPorts"):
            return "FirewallPolicyRuleConditionInvalidPortOrRangeFormat", f"Firewall Policy Rule {name}: no ports"
        for side, tags_allowed in (("sourceAddresses", False), ("destinationAddresses", True)):
            for value in rule.get(side) or []:
                text = str(value).strip()
                if text == "*" or _is_firewall_address(text) or (tags_allowed and self._known_tag(text)):
                    continue
                return ("FirewallPolicyRuleConditionInvalidAddress",
                        f"Firewall Policy Rule {name}: {side} value {text!r} is not an IP address, range, CIDR"
                        + (" or service tag" if tags_allowed else ""))
        if not (rule.get("sourceAddresses") or rule.get("sourceIpGroups")):
            return "FirewallPolicyRuleConditionInvalidAddress", f"Firewall Policy Rule {name}: no source"
        if not (rule.get("destinationAddresses") or rule.get("destinationIpGroups") or rule.get("destinationFqdns")):
            return "FirewallPolicyRuleConditionInvalidAddress", f"Firewall Policy Rule {name}: no destination"
        return None

    # -- validation (what Network RP refuses with 400)

    def _known_tag(self, name: str) -> bool:
        """A service tag ARM would accept: one of the tags the emulator serves (its Service Tags data), or, when
        it serves none (the discovery API answering 404), one of the real public cloud's tags."""
        if self.service_tags is None:
            return name.lower() in _public_tag_names()
        if self._tag_names is None or self._tag_names[0] is not self.service_tags:
            names = {str(v.get("name", "")).lower() for v in self.service_tags.get("values", [])}
            self._tag_names = (self.service_tags, names)
        return name.lower() in self._tag_names[1]

    def _check_rule_prefixes(self, name: str, field: str, single: Any, many: Any) -> int:
        """Validate one side's address prefixes; returns how many prefixes it holds (for the 4000 limit)."""
        if single not in (None, "") and many:
            raise ArmError(400, "SecurityRuleInvalidAddressPrefix",
                           f"Security rule {name} has both {field}AddressPrefix and {field}AddressPrefixes.")
        if many:
            if not isinstance(many, list) or not all(isinstance(p, str) for p in many):
                raise ArmError(400, "InvalidRequestFormat", f"{field}AddressPrefixes of {name} must be strings.")
            for prefix in many:
                if not _is_ip_prefix(prefix):
                    # Tags and the words Internet / VirtualNetwork / * go in the singular field only.
                    raise ArmError(400, "SecurityRuleParameterContainsUnsupportedValue",
                                   f"Security rule parameter {field}AddressPrefixes for rule {name} cannot specify "
                                   f"{prefix!r}: only IP addresses and CIDRs are allowed in a list.")
            return len(many)
        if single in (None, ""):
            return 0
        text = str(single).strip()
        if _is_ip_prefix(text) or text.lower() in _RULE_WORDS or self._known_tag(text):
            return 1
        raise ArmError(400, "SecurityRuleInvalidAddressPrefix",
                       f"Security rule {name} has invalid Address prefix. Value provided: {text}")

    def _validate_rule(self, nsg: dict[str, Any], name: str, props: Mapping[str, Any]) -> dict[str, Any]:
        props = dict(props)
        priority = props.get("priority")
        if isinstance(priority, bool) or not isinstance(priority, int) or not 100 <= priority <= 4096:
            raise ArmError(400, "SecurityRuleInvalidPriority",
                           f"Security rule has invalid Priority. Value provided: {priority} Allowed range 100-4096.")
        direction = str(props.get("direction", ""))
        if direction.lower() not in ("inbound", "outbound"):
            raise ArmError(400, "InvalidRequestFormat", f"Security rule {name} has invalid direction {direction!r}.")
        props["direction"] = direction.capitalize()
        access = str(props.get("access", ""))
        if access.lower() not in ("allow", "deny"):
            raise ArmError(400, "InvalidRequestFormat", f"Security rule {name} has invalid access {access!r}.")
        props["access"] = access.capitalize()
        protocol = str(props.get("protocol", ""))
        if protocol.lower() not in _PROTOCOLS:
            raise ArmError(400, "InvalidRequestFormat", f"Security rule {name} has invalid protocol {protocol!r}.")
        props["protocol"] = _PROTOCOLS[protocol.lower()]
        description = props.get("description")
        if description is not None and len(str(description)) > 140:
            raise ArmError(400, "InvalidRequestFormat",
                           f"Security rule {name}: description is longer than 140 characters.")
        counts = {side: self._check_rule_prefixes(name, side, props.get(f"{side}AddressPrefix"),
                                                  props.get(f"{side}AddressPrefixes"))
                  for side in ("source", "destination")}
        for other in (nsg.get("properties") or {}).get("securityRules") or []:
            if str(other.get("name", "")).lower() == name.lower():
                continue
            other_props = other.get("properties") or {}
            if (other_props.get("priority") == priority
                    and str(other_props.get("direction", "")).lower() == direction.lower()):
                raise ArmError(400, "SecurityRuleConflict",
                               f"Security rule {other.get('name')} conflicts with rule {name}. Rules cannot have the "
                               "same Priority and Direction. To learn more, see aka.ms/nsgrules.")
            for side in counts:
                counts[side] += len(other_props.get(f"{side}AddressPrefixes") or []) or (
                    1 if other_props.get(f"{side}AddressPrefix") else 0)
        if max(counts.values()) > MAX_PREFIXES_PER_RULE_SIDE:
            raise ArmError(400, "LimitExceeded", f"NSG would hold more than {MAX_PREFIXES_PER_RULE_SIDE} address "
                           "prefixes on one side of its rules.")
        return props

    def _validate_route(self, table: dict[str, Any], name: str, props: Mapping[str, Any]) -> dict[str, Any]:
        props = dict(props)
        prefix = str(props.get("addressPrefix") or "").strip()
        if not prefix:
            raise ArmError(400, "InvalidRequestFormat", f"Route {name}: addressPrefix is required.")
        is_tag = not _is_ip_prefix(prefix)
        if is_tag and not self._known_tag(prefix):
            raise ArmError(400, "InvalidRouteAddressPrefix",
                           f"Route {name} has an invalid addressPrefix {prefix!r}: neither a CIDR nor a service tag.")
        if not is_tag and not _is_network_prefix(prefix):
            raise ArmError(400, "InvalidCIDRNotation",
                           f"Route {name}: {prefix} is not a valid CIDR (host bits must be zero).")
        hop = str(props.get("nextHopType", ""))
        if hop.lower() not in _NEXT_HOPS:
            raise ArmError(400, "InvalidRequestFormat", f"Route {name} has invalid nextHopType {hop!r}.")
        props["nextHopType"] = _NEXT_HOPS[hop.lower()]
        ip = props.get("nextHopIpAddress")
        if props["nextHopType"] == "VirtualAppliance" and not (ip and _is_ip_prefix(str(ip)) and "/" not in str(ip)):
            raise ArmError(400, "InvalidRequestFormat", f"Route {name}: VirtualAppliance needs a nextHopIpAddress.")
        others = [r for r in (table.get("properties") or {}).get("routes") or []
                  if str(r.get("name", "")).lower() != name.lower()]
        for other in others:
            other_prefix = str((other.get("properties") or {}).get("addressPrefix") or "")
            if _same_prefix(other_prefix, prefix):
                raise ArmError(400, "RouteConflict",
                               f"Route {name} has the same address prefix {prefix} as route {other.get('name')}; a "
                               "route table holds one route per address prefix.")
        tag_routes = sum(1 for r in others if not _is_ip_prefix(str((r.get("properties") or {}).get("addressPrefix"))))
        if is_tag and tag_routes + 1 > MAX_TAG_ROUTES_PER_TABLE:
            raise ArmError(400, "LimitExceeded", f"Route table would hold more than {MAX_TAG_ROUTES_PER_TABLE} "
                           "service-tag routes.")
        return props


@functools.cache
def _public_tag_names() -> frozenset[str]:
    """Tag names of the real ServiceTags_Public download shipped in examples/ (read once per test session)."""
    path = Path(__file__).resolve().parents[2] / "examples" / "ServiceTags_Public_20251028.json"
    return frozenset(str(v["name"]).lower() for v in json.loads(path.read_text(encoding="utf-8"))["values"])


def _is_firewall_address(text: str) -> bool:
    """An IPv4 address, CIDR or range ``a-b`` as Azure Firewall rules take them."""
    low, dash, high = text.partition("-")
    try:
        if dash:
            return ipaddress.IPv4Address(low.strip()) <= ipaddress.IPv4Address(high.strip())
        ipaddress.IPv4Network(text, strict=False)
        return True
    except ValueError:
        return False


def _is_ip_prefix(text: str) -> bool:
    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return False
    return True


def _is_network_prefix(text: str) -> bool:
    try:
        ipaddress.ip_network(text.strip(), strict=True)
    except ValueError:
        return False
    return True


def _same_prefix(a: str, b: str) -> bool:
    if _is_ip_prefix(a) and _is_ip_prefix(b):
        return ipaddress.ip_network(a.strip(), strict=False) == ipaddress.ip_network(b.strip(), strict=False)
    return a.strip().lower() == b.strip().lower()


def _child_type(key: str) -> str:
    return {
        "securityRules": "Microsoft.Network/networkSecurityGroups/securityRules",
        "defaultSecurityRules": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
        "routes": "Microsoft.Network/routeTables/routes",
        "subnets": "Microsoft.Network/virtualNetworks/subnets",
    }[key]


# --- HTTP plumbing ----------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], emulator: ArmEmulator,
                 context: ssl.SSLContext) -> None:
        super().__init__(address, handler)
        self.emulator = emulator
        self.ssl_context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake per connection, in the connection's own thread (not in the accept loop). NODELAY: the
        # handler writes headers and body separately; with Nagle + delayed ACK each response would take 40 ms.
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            with self.emulator._lock:
                self.emulator.tls_handshake_failures += 1
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        except (ssl.SSLError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                tls.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
        pass

    def _handle(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Json = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        req = RecordedRequest(self.command, split.path, dict(parse_qsl(split.query, keep_blank_values=True)), body,
                              dict(self.headers.items()))
        emulator = self.server.emulator
        emulator._record(req)
        response, fault = emulator._dispatch(req)
        if response is None:
            req.status = None
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        req.status = response.status
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status)
        if payload:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if fault is not None and fault.kind == "cut_body":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if payload:
            self.wfile.write(payload)

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()
