"""ARM reads and writes of NSG rules and routes: the only place the bot changes anything in Azure.

Everything crosses this boundary as ARM REST JSON (camelCase, ``properties`` envelope) — the same shape
an estate file holds — so the planner and the audit log never see SDK model objects. azure-mgmt-network
33.x models are mappings over the REST JSON: ``model.as_dict()`` returns that JSON unchanged (unknown
fields included) and ``Model({"properties": ...})`` wraps it; the SDK drops read-only fields
(``etag``, ``provisioningState``) when it serialises a PUT body.

Retries: GET/PUT/DELETE are retried by azure-core's RetryPolicy after 408/429/5xx and connection errors.
That is safe for writes because a rule or route PUT is idempotent *by name*: repeating it after a
dropped response updates the same child resource instead of creating a second one. With ``if_match`` (an
update of an existing child, with that child's etag) the repeat may see 412 (the first attempt changed the
etag); :meth:`NetworkWriter.put_security_rule` then re-reads the child and accepts it when it already holds
the requested properties. Creates carry no If-Match: ARM answers 412 to If-Match on a resource that does not
exist (Azure/azure-resource-manager-rpc, "ETags for Resources").
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError

from .credentials import DEFAULT_ARM_ENDPOINT, arm_client_kwargs
from .retry import BoundedARMPolling, Sleep, SleepingRetryPolicy

_LOG = logging.getLogger(__name__)

NSG_TYPE = "microsoft.network/networksecuritygroups"
ROUTE_TABLE_TYPE = "microsoft.network/routetables"
VNET_TYPE = "microsoft.network/virtualnetworks"
NIC_TYPE = "microsoft.network/networkinterfaces"
FIREWALL_POLICY_TYPE = "microsoft.network/firewallpolicies"
FIREWALL_TYPE = "microsoft.network/azurefirewalls"
PROTECTED_ITEM_TYPE = ("microsoft.recoveryservices/vaults/replicationfabrics/replicationprotectioncontainers/"
                       "replicationprotecteditems")
#: ReplicationProtectedItems_Get: the newest stable Site Recovery API in Azure/azure-rest-api-specs
#: (specification/recoveryservicessiterecovery/resource-manager/Microsoft.RecoveryServices/stable/2025-01-01).
SITE_RECOVERY_API_VERSION = "2025-01-01"
#: ListNetworkManagerEffectiveSecurityAdminRules, sent raw (:meth:`NetworkWriter.list_effective_admin_rules`): the
#: api-version azure-mgmt-network 33.1's request builder sends
#: (``build_network_management_list_network_manager_effective_security_admin_rules_request``).
ADMIN_RULES_API_VERSION = "2026-03-01"
#: FirewallPolicyRuleCollectionGroups_List, sent raw (:meth:`NetworkWriter.list_rule_collection_groups`): the
#: api-version of azure-mgmt-network 33.1's request builder
#: (``build_firewall_policy_rule_collection_groups_list_request``).
RULE_COLLECTION_GROUPS_API_VERSION = "2026-03-01"
#: Pages of a raw list followed (``nextLink``) before the list is an error rather than a loop.
LIST_PAGE_LIMIT = 100
#: Most pages of one VNet's effective security admin rules (a network manager allows far fewer rules than this many
#: default-size pages; the bound only stops a misbehaving skipToken).
ADMIN_RULE_PAGE_LIMIT = 100


# --- resource ids ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceId:
    """A parsed ARM resource id. Values keep their casing; compare with :attr:`key` (ARM ids are
    case-insensitive and Resource Graph / Site Recovery return them in different cases)."""

    subscription_id: str
    resource_group: str
    namespace: str  # e.g. "Microsoft.Network"
    types: tuple[str, ...]  # e.g. ("networkSecurityGroups", "securityRules")
    names: tuple[str, ...]  # e.g. ("nsg1", "rule1")

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def full_type(self) -> str:
        """``Microsoft.Network/networkSecurityGroups/securityRules`` style."""
        return "/".join((self.namespace, *self.types))

    @property
    def parent(self) -> ResourceId | None:
        if len(self.types) < 2:
            return None
        return ResourceId(self.subscription_id, self.resource_group, self.namespace, self.types[:-1],
                          self.names[:-1])

    @property
    def key(self) -> str:
        return str(self).lower()

    def is_type(self, full_type: str) -> bool:
        return self.full_type.lower() == full_type.lower()

    def child(self, child_type: str, child_name: str) -> ResourceId:
        return ResourceId(self.subscription_id, self.resource_group, self.namespace, (*self.types, child_type),
                          (*self.names, child_name))

    def __str__(self) -> str:
        tail = "/".join(f"{t}/{n}" for t, n in zip(self.types, self.names, strict=True))
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/{self.namespace}/{tail}")


def parse_resource_id(resource_id: str) -> ResourceId:
    """Parse ``/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}[/{type}/{name}...]``.

    Keywords are matched case-insensitively; raises ``ValueError`` for anything else (a malformed id must
    never reach a write).
    """
    parts = [p for p in str(resource_id).strip().split("/") if p]
    if (
        len(parts) < 8
        or parts[0].lower() != "subscriptions"
        or parts[2].lower() != "resourcegroups"
        or parts[4].lower() != "providers"
        or len(parts[6:]) % 2
    ):
        raise ValueError(f"not an ARM resource id: {resource_id!r}")
    tail = parts[6:]
    return ResourceId(parts[1], parts[3], parts[5], tuple(tail[0::2]), tuple(tail[1::2]))


def _expect(resource_id: str, full_type: str) -> ResourceId:
    rid = parse_resource_id(resource_id)
    if not rid.is_type(full_type):
        raise ValueError(f"{resource_id!r} is a {rid.full_type}, not a {full_type}")
    return rid


# --- errors ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmErrorDetail:
    """ARM's ``error`` object (``code``, ``message``), as azure-core's ``HttpResponseError.error`` has it."""

    code: str | None
    message: str | None


class ArmError(RuntimeError):
    """An ARM call failed. ``code`` is ARM's error code (e.g. ``SecurityRuleConflict``,
    ``SecurityRuleInvalidPriority``, ``PreconditionFailed``, ``ResourceNotFound``) when ARM sent one;
    ``status_code`` is ``None`` when no HTTP response arrived (connection errors after retries).

    It also answers ``error.code`` like azure-core's ``HttpResponseError``, so callers written against SDK
    errors (``getattr(err, "error").code``, ``err.status_code``) read it unchanged.
    """

    def __init__(self, message: str, *, status_code: int | None, code: str | None, resource_id: str,
                 detail: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.resource_id = resource_id
        self.error = ArmErrorDetail(code, detail)

    @property
    def is_not_found(self) -> bool:
        return self.status_code == 404

    @property
    def is_precondition_failed(self) -> bool:
        return self.status_code == 412


def _error_from_body(text: str) -> tuple[str | None, str | None]:
    try:
        body = json.loads(text)
    except (ValueError, TypeError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    err = body.get("error") if isinstance(body.get("error"), dict) else body
    code = err.get("code") if isinstance(err, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    return (str(code) if code else None), (str(message) if message else None)


def to_arm_error(exc: AzureError, resource_id: str, action: str) -> ArmError:
    """Flatten an azure-core exception into :class:`ArmError`, keeping ARM's error code."""
    status: int | None = None
    code: str | None = None
    message: str | None = None
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        if exc.error is not None:
            code = exc.error.code
            message = exc.error.message
        if (code is None or message is None) and exc.response is not None:
            try:
                body_code, body_message = _error_from_body(exc.response.text())
            except Exception:  # body unreadable (stream consumed): the status still says enough
                body_code, body_message = None, None
            code = code or body_code
            message = message or body_message
    else:
        code = type(exc).__name__
    if not message:
        lines = str(exc).strip().splitlines()
        message = lines[0] if lines else type(exc).__name__
    where = f"HTTP {status}" if status is not None else "no response"
    return ArmError(f"{action} {resource_id} failed ({where}, {code}): {message}", status_code=status, code=code,
                    resource_id=resource_id, detail=message)


class _JsonDocument(dict[str, Any]):
    """A JSON body that answers ``as_dict()`` like the SDK models :meth:`NetworkWriter._read` expects."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self)


# --- clients ---------------------------------------------------------------------------------------------


def _retry_policy(sleep: Sleep | None, retry_total: int, backoff_factor: float,
                  backoff_max: int) -> SleepingRetryPolicy:
    """The one retry policy of the ARM clients: ``retry_total`` for every kind of retry, bounded backoff."""
    return SleepingRetryPolicy(sleep=sleep, retry_total=retry_total, retry_connect=retry_total, retry_read=retry_total,
                               retry_status=retry_total, retry_backoff_factor=backoff_factor,
                               retry_backoff_max=backoff_max)


def make_raw_arm_client(
    credential: TokenCredential,
    endpoint: str = DEFAULT_ARM_ENDPOINT,
    *,
    ca_bundle: str | None = None,
    sleep: Sleep | None = None,
    retry_total: int = 5,
    retry_backoff_factor: float = 0.8,
    retry_backoff_max: int = 60,
) -> Any:
    """A client for raw ARM requests (``send_request``) of any subscription, with the retries of
    :func:`make_network_client`: the ARM pipeline (bearer token for the endpoint's audience, ARM challenge handling,
    TLS, retries) of the Resource Graph client the inventory already loads. Why not a NetworkManagementClient: a scan
    reads only raw JSON (Service Tags, security admin rules), and importing azure-mgmt-network costs ~25 MB of memory
    and each of its clients (one per subscription) ~0.15 MB more — measured at 10,000 VMs and 71 subscriptions."""
    from azure.mgmt.resourcegraph import ResourceGraphClient

    policy = _retry_policy(sleep, retry_total, retry_backoff_factor, retry_backoff_max)
    return ResourceGraphClient(credential, retry_policy=policy, **arm_client_kwargs(endpoint, ca_bundle))


def send_raw(client: Any, request: Any) -> Any:
    """``request`` through ``client``'s pipeline: the generated clients' documented raw-request entry point
    (aka.ms/azsdk/dpcodegen/python/send_request), ``send_request`` — ``_send_request`` in azure-mgmt-resourcegraph
    8.x."""
    send = getattr(client, "send_request", None) or client._send_request
    return send(request)


def raw_json(client: Any, request: Any) -> dict[str, Any]:
    """Send a raw request; a 200's JSON object, else what the generated operations raise (ARM's error object parsed
    into an ``HttpResponseError``)."""
    from azure.mgmt.core.exceptions import ARMErrorFormat

    response = send_raw(client, request)
    if response.status_code != 200:
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)
    try:
        body = json.loads(response.content)
    except ValueError as error:
        raise HttpResponseError(response=response, message=f"the body is not JSON: {error}") from error
    if not isinstance(body, dict):
        raise HttpResponseError(response=response, message="the body is not a JSON object")
    return body


def make_network_client(
    credential: TokenCredential,
    subscription: str,
    endpoint: str = DEFAULT_ARM_ENDPOINT,
    *,
    ca_bundle: str | None = None,
    sleep: Sleep | None = None,
    retry_total: int = 5,
    retry_backoff_factor: float = 0.8,
    retry_backoff_max: int = 60,
) -> Any:
    """A NetworkManagementClient for one subscription with bounded, injectable-sleep retries: each wait at most
    60 s, at most 120 s of waits per call, permanent failures (TLS, DNS, URL, 4xx) at once (see ``retry.py``)."""
    from azure.mgmt.network import NetworkManagementClient

    policy = _retry_policy(sleep, retry_total, retry_backoff_factor, retry_backoff_max)
    return NetworkManagementClient(credential, subscription, retry_policy=policy,
                                   **arm_client_kwargs(endpoint, ca_bundle))


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, list):
        return sorted((_norm(v) for v in value), key=repr)
    if isinstance(value, Mapping):
        return {str(k): _norm(v) for k, v in value.items()}
    return value


def properties_match(wanted: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """True when every wanted property is present in ``actual`` with the same value.

    Case-insensitive for strings and order-insensitive for lists, because ARM normalises both
    (``Tcp``/``tcp``, prefix lists); read-only fields ARM adds are ignored.
    """
    return all(_norm(actual.get(key)) == _norm(value) for key, value in wanted.items()
               if key != "provisioningState")


def _significant(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The properties a writer sets: read-only state and the empty values ARM fills in (``[]``, ``""``) dropped."""
    return {k: v for k, v in properties.items()
            if k != "provisioningState" and v not in (None, "", [], {})}


def properties_equal(written: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """True when ``actual`` holds exactly what was ``written`` — no property missing, none added or changed
    (case- and order-insensitive like :func:`properties_match`). An empty ``written`` equals nothing: a record
    without a payload can never vouch for a rule."""
    wanted, have = _significant(written), _significant(actual)
    return bool(wanted) and _norm(wanted) == _norm(have)


def _deep_significant(value: Any) -> Any:
    """``value`` without read-only state (``provisioningState``, ``size``) and empty values, at every depth."""
    if isinstance(value, Mapping):
        return {str(k): _deep_significant(v) for k, v in value.items()
                if k not in ("provisioningState", "size") and v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_deep_significant(v) for v in value]
    return value


def nested_properties_equal(written: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """:func:`properties_equal` for nested documents (a rule collection group's collections and rules): ARM may add
    empty lists (``sourceIpGroups: []``) and read-only state at any depth, never a value the writer did not set."""
    wanted = _deep_significant(written)
    return bool(wanted) and _norm(wanted) == _norm(_deep_significant(actual))


# child kind → (parent type, SDK operations attribute, SDK model class name)
_CHILD_KINDS: dict[str, tuple[str, str, str]] = {
    "securityRules": (NSG_TYPE, "security_rules", "SecurityRule"),
    "routes": (ROUTE_TABLE_TYPE, "routes", "Route"),
    # A Firewall Policy's rule collection groups: long-running PUT / DELETE with an etag of their own, like the others.
    "ruleCollectionGroups": (FIREWALL_POLICY_TYPE, "firewall_policy_rule_collection_groups",
                             "FirewallPolicyRuleCollectionGroup"),
}


class NetworkWriter:
    """Reads NSGs / route tables and writes single rules / routes, as ARM REST JSON dicts.

    One SDK client per subscription (ARM clients are bound to one). ``if_match`` arguments take the
    etag of the *child* rule or route as last read, and only when it exists: ARM's RPC answers 412 to
    If-Match on a resource that does not exist, and a nested resource's etag is its own, not its parent's.
    """

    def __init__(
        self,
        credential: TokenCredential,
        endpoint: str = DEFAULT_ARM_ENDPOINT,
        *,
        ca_bundle: str | None = None,
        sleep: Sleep | None = None,
        retry_total: int = 5,
        retry_backoff_factor: float = 0.8,
        retry_backoff_max: int = 60,
        polling_interval: float = 5.0,
    ) -> None:
        self._credential = credential
        self._endpoint = endpoint.rstrip("/")
        self._ca_bundle = ca_bundle
        self._sleep = sleep
        self._retry_total = retry_total
        self._retry_backoff_factor = retry_backoff_factor
        self._retry_backoff_max = retry_backoff_max
        # Used only when ARM's responses carry no Retry-After; Network RP usually sends one.
        self._polling_interval = polling_interval
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._raw: Any = None

    # -- lifecycle

    def client(self, subscription_id: str) -> Any:
        """The subscription's client, made once even when several threads ask at the same time (the security admin
        rules are read a few VNets at a time; SDK clients themselves are safe to share between threads)."""
        key = subscription_id.lower()
        with self._clients_lock:
            return self._client_locked(key, subscription_id)

    def raw_client(self) -> Any:
        """One client for the raw reads of every subscription (:func:`make_raw_arm_client`), made once."""
        with self._clients_lock:
            if self._raw is None:
                self._raw = make_raw_arm_client(
                    self._credential, self._endpoint, ca_bundle=self._ca_bundle, sleep=self._sleep,
                    retry_total=self._retry_total, retry_backoff_factor=self._retry_backoff_factor,
                    retry_backoff_max=self._retry_backoff_max)
            return self._raw

    def _client_locked(self, key: str, subscription_id: str) -> Any:
        if key not in self._clients:
            self._clients[key] = make_network_client(
                self._credential, subscription_id, self._endpoint, ca_bundle=self._ca_bundle, sleep=self._sleep,
                retry_total=self._retry_total, retry_backoff_factor=self._retry_backoff_factor,
                retry_backoff_max=self._retry_backoff_max,
            )
        return self._clients[key]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def __enter__(self) -> NetworkWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads

    def _read(self, resource_id: str, action: str, call: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = call().as_dict()
        except AzureError as exc:
            raise to_arm_error(exc, resource_id, action) from exc
        return result

    def _get(self, resource_id: str, resource_type: str, operations: str) -> dict[str, Any]:
        rid = _expect(resource_id, resource_type)
        ops = getattr(self.client(rid.subscription_id), operations)
        return self._read(resource_id, "GET", lambda: ops.get(rid.resource_group, rid.name))

    def get_nsg(self, nsg_id: str) -> dict[str, Any]:
        """The NSG as ARM returns it: ``etag``, ``properties.securityRules`` / ``defaultSecurityRules``."""
        return self._get(nsg_id, NSG_TYPE, "network_security_groups")

    def get_route_table(self, route_table_id: str) -> dict[str, Any]:
        """The route table as ARM returns it (``etag``, ``properties.routes``, ``disableBgpRoutePropagation``)."""
        return self._get(route_table_id, ROUTE_TABLE_TYPE, "route_tables")

    def get_virtual_network(self, vnet_id: str) -> dict[str, Any]:
        return self._get(vnet_id, VNET_TYPE, "virtual_networks")

    def get_network_interface(self, nic_id: str) -> dict[str, Any]:
        return self._get(nic_id, NIC_TYPE, "network_interfaces")

    def get_protected_item(self, item_id: str) -> dict[str, Any]:
        """A Site Recovery replication protected item as ARM returns it (``ReplicationProtectedItems_Get``), read
        when an event names one: Resource Graph may not show a just-enabled replication yet.

        Sent through the subscription's network client pipeline (same credential, endpoint, TLS and retries) as a
        plain GET: the project needs no Site Recovery SDK for one read.
        """
        from azure.core.rest import HttpRequest

        rid = _expect(item_id, PROTECTED_ITEM_TYPE)
        client = self.client(rid.subscription_id)
        url = f"{rid}?api-version={SITE_RECOVERY_API_VERSION}"

        def call() -> Any:
            from azure.mgmt.core.exceptions import ARMErrorFormat

            response = client.send_request(HttpRequest("GET", url))
            if response.status_code != 200:  # as the generated operations do: ARM's error object, parsed
                raise HttpResponseError(response=response, error_format=ARMErrorFormat)
            body = response.json()
            if not isinstance(body, dict):
                raise HttpResponseError(response=response, message="the protected item is not a JSON object")
            return _JsonDocument(body)

        return self._read(item_id, "GET", call)

    def get_effective_routes(self, nic_id: str) -> list[dict[str, Any]]:
        """The NIC's effective route table (a long-running POST): the only place BGP-learned routes show."""
        rid = _expect(nic_id, NIC_TYPE)
        ops = self.client(rid.subscription_id).network_interfaces

        def call() -> Any:
            return ops.begin_get_effective_route_table(rid.resource_group, rid.name, polling=self._polling()).result()

        return list(self._read(nic_id, "POST effectiveRouteTable", call).get("value") or [])

    def get_effective_security_rules(self, nic_id: str) -> list[dict[str, Any]]:
        """The NIC's effective security rules (the long-running POST effectiveNetworkSecurityGroups): per NSG
        association, the rules with Azure's own expansion of tags (``expandedDestinationAddressPrefix`` …) — the
        only place the VirtualNetwork tag shows as Azure computes it for this NIC."""
        rid = _expect(nic_id, NIC_TYPE)
        ops = self.client(rid.subscription_id).network_interfaces

        def call() -> Any:
            return ops.begin_list_effective_network_security_groups(rid.resource_group, rid.name,
                                                                    polling=self._polling()).result()

        return list(self._read(nic_id, "POST effectiveNetworkSecurityGroups", call).get("value") or [])

    def list_effective_admin_rules(self, vnet_id: str) -> list[dict[str, Any]]:
        """The AVNM security admin rules in effect on a VNet: POST …/virtualNetworks/{vnet}/
        listNetworkManagerEffectiveSecurityAdminRules (ListNetworkManagerEffectiveSecurityAdminRules), every page.

        Not a long-running operation: each POST answers 200 with ``{"value": [...], "skipToken": …}``; the next page
        is asked for with the same POST and ``{"skipToken": <token>}`` as the body (QueryRequestOptions) — the
        request and response of the NetworkManagerEffectiveSecurityAdminRulesList example in
        Azure/azure-rest-api-specs, and azure-mgmt-network's ``list_network_manager_effective_security_admin_rules``
        (an operation of the client itself, not of ``virtual_networks``). The first request sends ``{}``. A token
        seen twice, or more than :data:`ADMIN_RULE_PAGE_LIMIT` pages, is an error rather than a loop."""
        from azure.core.rest import HttpRequest

        rid = _expect(vnet_id, VNET_TYPE)
        client = self.raw_client()  # the request the SDK operation builds, read as raw JSON (make_raw_arm_client)
        entries: list[dict[str, Any]] = []
        token: str | None = None
        seen: set[str] = set()
        for _page in range(ADMIN_RULE_PAGE_LIMIT):
            body: dict[str, Any] = {"skipToken": token} if token else {}

            def call(body: dict[str, Any] = body) -> Any:
                return _JsonDocument(raw_json(client, HttpRequest(
                    "POST", f"{rid}/listNetworkManagerEffectiveSecurityAdminRules",
                    params={"api-version": ADMIN_RULES_API_VERSION}, json=body)))

            page = self._read(vnet_id, "POST listNetworkManagerEffectiveSecurityAdminRules", call)
            entries += [e for e in page.get("value") or [] if isinstance(e, dict)]
            token = page.get("skipToken") or None
            if not token:
                return entries
            if token in seen:
                raise ArmError(f"POST listNetworkManagerEffectiveSecurityAdminRules {vnet_id}: the skipToken repeats",
                               status_code=None, code="SkipTokenRepeated", resource_id=vnet_id,
                               detail="the skipToken repeats")
            seen.add(token)
        raise ArmError(f"POST listNetworkManagerEffectiveSecurityAdminRules {vnet_id}: more than "
                       f"{ADMIN_RULE_PAGE_LIMIT} pages", status_code=None, code="TooManyPages", resource_id=vnet_id,
                       detail=f"more than {ADMIN_RULE_PAGE_LIMIT} pages")

    # -- child resources (security rules, routes): one implementation, two kinds

    def _child(self, parent_id: str, child: str) -> tuple[ResourceId, Any]:
        parent_type, operations, _model = _CHILD_KINDS[child]
        rid = _expect(parent_id, parent_type)
        return rid, getattr(self.client(rid.subscription_id), operations)

    def _get_child(self, parent_id: str, child: str, name: str) -> dict[str, Any] | None:
        rid, ops = self._child(parent_id, child)
        try:
            return self._read(str(rid.child(child, name)), "GET", lambda: ops.get(rid.resource_group, rid.name, name))
        except ArmError as err:
            if err.is_not_found:
                return None
            raise

    def _put_child(self, parent_id: str, child: str, name: str, properties: Mapping[str, Any],
                   if_match: str | None) -> dict[str, Any]:
        import azure.mgmt.network.models as models

        rid, ops = self._child(parent_id, child)
        child_id = str(rid.child(child, name))
        body = getattr(models, _CHILD_KINDS[child][2])({"properties": dict(properties)})
        try:
            poller = ops.begin_create_or_update(rid.resource_group, rid.name, name, body,
                                                headers=self._headers(if_match), polling=self._polling())
            result: dict[str, Any] = poller.result().as_dict()
            return result
        except AzureError as exc:
            err = to_arm_error(exc, child_id, "PUT")
            if err.is_precondition_failed and if_match:
                current = self._get_child(parent_id, child, name)
                if current is not None and properties_match(properties, current.get("properties") or {}):
                    _LOG.info("PUT %s answered 412 but it already holds the requested properties "
                              "(an earlier attempt whose response was lost applied it)", child_id)
                    return current
            raise err from exc

    def _delete_child(self, parent_id: str, child: str, name: str, if_match: str | None) -> None:
        rid, ops = self._child(parent_id, child)
        try:
            ops.begin_delete(rid.resource_group, rid.name, name, headers=self._headers(if_match),
                             polling=self._polling()).result()
        except AzureError as exc:
            raise to_arm_error(exc, str(rid.child(child, name)), "DELETE") from exc

    def _polling(self) -> BoundedARMPolling:
        """A fresh poller for one long-running operation: the interval when ARM sends no Retry-After, each wait at
        most 60 s, at most 300 s of waits (then ``OperationTimeoutError``); built as the generated operations
        build their ARMPolling (``path_format_arguments={"endpoint": base_url}``)."""
        return BoundedARMPolling(self._polling_interval, sleep=self._sleep,
                                 path_format_arguments={"endpoint": self._endpoint})

    def _headers(self, if_match: str | None) -> dict[str, str]:
        return {"If-Match": if_match} if if_match else {}

    def get_security_rule(self, nsg_id: str, name: str) -> dict[str, Any] | None:
        """One rule, or ``None`` when it does not exist."""
        return self._get_child(nsg_id, "securityRules", name)

    def get_route(self, route_table_id: str, name: str) -> dict[str, Any] | None:
        """One route, or ``None`` when it does not exist."""
        return self._get_child(route_table_id, "routes", name)

    # -- writes

    def put_security_rule(
        self, nsg_id: str, name: str, properties: Mapping[str, Any], *, if_match: str | None = None
    ) -> dict[str, Any]:
        """Create or update rule ``name`` in the NSG and wait for ARM to finish; returns the rule as ARM
        reports it afterwards (the final GET of the long-running operation).

        ``properties`` is the ARM ``properties`` object (``priority``, ``direction``, ``access``...). ARM
        validates it: duplicate priority/direction → :class:`ArmError` code ``SecurityRuleConflict``;
        priority outside 100–4096 → ``SecurityRuleInvalidPriority``; stale ``if_match`` (the rule's own etag;
        give it only when the rule exists) → status 412 (unless the rule already holds exactly these properties:
        a retried PUT whose first response was lost).
        """
        return self._put_child(nsg_id, "securityRules", name, properties, if_match)

    def delete_security_rule(self, nsg_id: str, name: str, *, if_match: str | None = None) -> None:
        """Delete rule ``name`` (absent already: no error, ARM answers 204); ``if_match``: the rule's own etag, so
        a rule changed since it was read is not deleted (412). Callers only delete rules the bot owns; this method
        does not check ownership."""
        self._delete_child(nsg_id, "securityRules", name, if_match)

    def put_route(
        self, route_table_id: str, name: str, properties: Mapping[str, Any], *, if_match: str | None = None
    ) -> dict[str, Any]:
        """Create or update route ``name`` (``addressPrefix`` may be a service tag, ``nextHopType``...)."""
        return self._put_child(route_table_id, "routes", name, properties, if_match)

    def delete_route(self, route_table_id: str, name: str, *, if_match: str | None = None) -> None:
        """Delete route ``name`` (absent already: no error); ``if_match`` as for :meth:`delete_security_rule`."""
        self._delete_child(route_table_id, "routes", name, if_match)

    # -- Firewall Policies: the policy (read) and its rule collection groups (the bot writes only its own)

    def get_azure_firewall(self, firewall_id: str) -> dict[str, Any]:
        """The firewall as ARM returns it (AzureFirewalls_Get), read when an event names it."""
        return self._get(firewall_id, FIREWALL_TYPE, "azure_firewalls")

    def get_firewall_policy(self, policy_id: str) -> dict[str, Any]:
        """The policy as ARM returns it (``etag``, ``tags``, ``properties.basePolicy``, ``ruleCollectionGroups``)."""
        return self._get(policy_id, FIREWALL_POLICY_TYPE, "firewall_policies")

    def list_rule_collection_groups(self, policy_id: str) -> list[dict[str, Any]]:
        """Every rule collection group of the policy (FirewallPolicyRuleCollectionGroups_List, all pages): the GET the
        SDK operation builds, read as raw JSON (``{"value": [...], "nextLink": …}``, the
        FirewallPolicyRuleCollectionGroupList example of azure-rest-api-specs) through :meth:`raw_client` — a scan
        needs no azure-mgmt-network import (:func:`make_raw_arm_client`)."""
        from azure.core.rest import HttpRequest

        rid = _expect(policy_id, FIREWALL_POLICY_TYPE)
        client = self.raw_client()

        def call() -> Any:
            groups: list[Any] = []
            request = HttpRequest("GET", f"{rid}/ruleCollectionGroups",
                                  params={"api-version": RULE_COLLECTION_GROUPS_API_VERSION})
            for _page in range(LIST_PAGE_LIMIT):
                page = raw_json(client, request)
                groups += [g for g in page.get("value") or [] if isinstance(g, dict)]
                next_link = page.get("nextLink")
                if not next_link:
                    return _JsonDocument(value=groups)
                request = HttpRequest("GET", str(next_link))
            raise HttpResponseError(message=f"more than {LIST_PAGE_LIMIT} pages of rule collection groups")

        return list(self._read(policy_id + "/ruleCollectionGroups", "GET", call).get("value") or [])

    def get_rule_collection_group(self, policy_id: str, name: str) -> dict[str, Any] | None:
        """One group, or ``None`` when it does not exist."""
        return self._get_child(policy_id, "ruleCollectionGroups", name)

    def put_rule_collection_group(self, policy_id: str, name: str, properties: Mapping[str, Any], *,
                                  if_match: str | None = None) -> dict[str, Any]:
        """Create or update group ``name`` (``priority``, ``ruleCollections``) and wait for the long-running
        operation; Network RP reports what it refuses in the content as a failed operation (:class:`ArmError`).
        ``if_match``: the group's own etag, only when it exists."""
        return self._put_child(policy_id, "ruleCollectionGroups", name, properties, if_match)

    def delete_rule_collection_group(self, policy_id: str, name: str, *, if_match: str | None = None) -> None:
        """Delete group ``name`` (absent already: no error); callers delete only the bot's own group."""
        self._delete_child(policy_id, "ruleCollectionGroups", name, if_match)
