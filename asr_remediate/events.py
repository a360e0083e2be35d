"""Event Grid resource events → what changed, whether it matters, and which replicated VMs it touches.

Accepts both the Event Grid schema (``eventType``, ``topic``) and CloudEvents 1.0 (``type``, ``source``). Handling
is idempotent by construction: the handler re-reads current state from ARM and plans deterministically, so a
duplicate or out-of-order delivery finds nothing left to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .firewall_paths import firewalls_of_item, policy_chain
from .model import Estate, ProtectedItem, key, parent_id, subscription_of

WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
DELETE_SUCCESS = "Microsoft.Resources.ResourceDeleteSuccess"
HANDLED_EVENT_TYPES = frozenset({WRITE_SUCCESS.lower(), DELETE_SUCCESS.lower()})

OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"

# Resource types whose changes can break (or fix) ASR's path, lower case, and how many '/type/name' levels up
# the resource to re-read sits (a security rule → its NSG).
WATCHED_TYPES: Mapping[str, tuple[str, int]] = {
    "microsoft.network/networksecuritygroups": ("nsg", 0),
    "microsoft.network/networksecuritygroups/securityrules": ("nsg", 1),
    "microsoft.network/routetables": ("route-table", 0),
    "microsoft.network/routetables/routes": ("route-table", 1),
    "microsoft.network/virtualnetworks": ("vnet", 0),
    "microsoft.network/virtualnetworks/subnets": ("vnet", 1),
    "microsoft.network/networkinterfaces": ("nic", 0),
    "microsoft.recoveryservices/vaults/replicationfabrics/replicationprotectioncontainers/replicationprotecteditems": (
        "protected-item", 0),
    # Azure Firewall: the firewall (its IPs, classic rules, attached policy), its policy or a parent policy, and a
    # policy's rule collection groups (→ the policy: the inventory lists its groups from ARM anyway).
    "microsoft.network/azurefirewalls": ("firewall", 0),
    "microsoft.network/firewallpolicies": ("firewall-policy", 0),
    "microsoft.network/firewallpolicies/rulecollectiongroups": ("firewall-policy", 1),
}


class EventError(ValueError):
    """The event is not a resource event the bot can read."""


@dataclass(frozen=True)
class ResourceEvent:
    event_id: str
    event_type: str
    resource_id: str  # data.resourceUri (what changed)
    operation: str  # data.operationName
    subscription: str
    object_id: str  # caller's objectidentifier claim ("" if absent)
    app_id: str  # caller's appid claim
    event_time: str

    @property
    def is_delete(self) -> bool:
        return self.event_type.lower() == DELETE_SUCCESS.lower()


def resource_type(resource_id: str) -> str:
    """ARM type of an id: provider namespace plus every type segment, lower case."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        return ""
    start = len(lowered) - 1 - lowered[::-1].index("providers")
    tail = parts[start + 1:]
    if len(tail) < 3:
        return ""
    return "/".join([tail[0], *tail[1::2]]).lower()


def parse_event(event: Mapping[str, Any]) -> ResourceEvent:
    """Read an Event Grid or CloudEvents resource event; EventError with a clear message otherwise."""
    if not isinstance(event, Mapping):
        raise EventError("event is not a JSON object")
    event_type = str(event.get("eventType") or event.get("type") or "")
    data = event.get("data")
    if not event_type:
        raise EventError("event has no eventType/type")
    if not isinstance(data, Mapping):
        raise EventError(f"{event_type} event has no data object")
    resource_id = str(data.get("resourceUri") or event.get("subject") or "")
    if not resource_id.lower().startswith("/subscriptions/"):
        raise EventError(f"{event_type} event has no resourceUri")
    check_resource_id(resource_id, event_type)
    claims = data.get("claims") if isinstance(data.get("claims"), Mapping) else {}
    assert isinstance(claims, Mapping)
    return ResourceEvent(
        event_id=str(event.get("id") or "")[:200],
        event_type=event_type[:200],
        resource_id=resource_id.strip().rstrip("/"),
        operation=str(data.get("operationName") or "")[:400],
        # The resource's own subscription decides the scope: data.subscriptionId is a separate claim of the event
        # and may name another subscription (or be forged); the id is what the handler reads and writes.
        subscription=subscription_of(resource_id),
        object_id=str(claims.get(OBJECT_ID_CLAIM) or claims.get("oid") or "").lower(),
        app_id=str(claims.get("appid") or claims.get("azp") or "").lower(),
        event_time=str(event.get("eventTime") or event.get("time") or ""),
    )


_SUBSCRIPTION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_SEGMENT = re.compile(r"^[^/?#\s]{1,260}$")
MAX_RESOURCE_ID = 2048


def check_resource_id(resource_id: str, what: str = "event") -> None:
    """An event's resource id must be a whole ARM id — /subscriptions/<guid>/resourceGroups/<rg>/providers/<ns>/
    <type>/<name>[/<type>/<name>…] — before anything is read for it: a malformed one is dropped with a one-line
    EventError (retrying it cannot help, and an exception would make Event Grid redeliver it again and again)."""
    shown = resource_id if len(resource_id) <= 120 else resource_id[:119] + "…"
    parts = resource_id.strip().rstrip("/").split("/")
    well_formed = (len(resource_id) <= MAX_RESOURCE_ID and len(parts) >= 9 and parts[0] == ""
                   and parts[1].lower() == "subscriptions" and bool(_SUBSCRIPTION_ID.match(parts[2]))
                   and parts[3].lower() == "resourcegroups" and parts[5].lower() == "providers"
                   and len(parts[7:]) % 2 == 0 and all(_SEGMENT.match(p) for p in parts[1:]))
    if not well_formed:
        raise EventError(f"{what} event names a malformed resource id {shown!r}")


def event_document(event: ResourceEvent) -> dict[str, Any]:
    """The event again, in the minimal Event Grid shape :func:`parse_event` reads (what a delayed re-check carries:
    the caller's full claims, often kilobytes, are cut to the two the handler uses)."""
    return {"id": event.event_id, "eventType": event.event_type, "subject": event.resource_id,
            "eventTime": event.event_time,
            "data": {"resourceUri": event.resource_id, "operationName": event.operation,
                     "subscriptionId": event.subscription, "claims": {"oid": event.object_id, "appid": event.app_id}}}


def watched(event: ResourceEvent) -> tuple[str, str] | None:
    """(kind, id of the resource to re-read) when the change can affect ASR's path; None otherwise."""
    if event.event_type.lower() not in HANDLED_EVENT_TYPES:
        return None
    found = WATCHED_TYPES.get(resource_type(event.resource_id))
    if found is None:
        return None
    kind, levels = found
    return kind, parent_id(event.resource_id, levels) if levels else event.resource_id


def is_own_write(event: ResourceEvent, bot_principal_ids: tuple[str, ...]) -> bool:
    """The bot's own writes come back as events: ignoring them avoids loops (and their audit noise)."""
    ids = {p.lower() for p in bot_principal_ids}
    return bool(ids) and (event.object_id in ids or event.app_id in ids)


def affected_items(estate: Estate, kind: str, resource_id: str) -> list[ProtectedItem]:
    """Replicated VMs whose source or target path includes the resource."""
    target = key(resource_id)
    result = []
    for item in estate.protected_items:
        if (kind == "protected-item" and key(item.id) == target) or _touches(estate, item, kind, target):
            result.append(item)
    return result


def _touches(estate: Estate, item: ProtectedItem, kind: str, target: str) -> bool:
    vm = estate.vms.get(key(item.vm_id))
    if kind == "protected-item":
        return False
    if kind in ("firewall", "firewall-policy"):
        return _behind_firewall(estate, item, kind, target)
    if kind == "route-table" and _egress_of_firewall(estate, item, target):
        return True
    nic_ids = list(vm.nic_ids) if vm else []
    nic_ids += [n.source_nic_id for n in item.recovery_nics]
    subnet_ids: list[str] = []
    nsg_ids: list[str] = [n.recovery_nsg_id for n in item.recovery_nics if n.recovery_nsg_id]
    vnet_ids: list[str] = [n.recovery_vnet_id for n in item.recovery_nics if n.recovery_vnet_id]
    for nic_id in nic_ids:
        if kind == "nic" and key(nic_id) == target:
            return True
        nic = estate.nics.get(key(nic_id))
        if nic is not None:
            nsg_ids.append(nic.nsg_id)
            subnet_ids += [c.subnet_id for c in nic.ip_configurations]
    vnet_ids += [parent_id(s) for s in subnet_ids]
    if kind == "vnet":
        return target in {key(v) for v in vnet_ids if v}
    source_subnets = {key(s) for s in subnet_ids}
    recovery_subnets = {
        (key(r.recovery_vnet_id), name.lower()) for r in item.recovery_nics for name in r.recovery_subnet_names
    }
    for vnet_id in vnet_ids:
        vnet = estate.vnets.get(key(vnet_id))
        if vnet is None:
            continue
        for subnet in vnet.subnets:
            if key(subnet.id) in source_subnets or (key(vnet.id), subnet.name.lower()) in recovery_subnets:
                nsg_ids.append(subnet.nsg_id)
                if kind == "route-table" and subnet.route_table_id and key(subnet.route_table_id) == target:
                    return True
    return kind == "nsg" and target in {key(n) for n in nsg_ids if n}


def _egress_of_firewall(estate: Estate, item: ProtectedItem, target: str) -> bool:
    """``target`` is the route table of the AzureFirewallSubnet of a forced-tunnelling firewall the item's subnets
    route to: what that firewall allows leaves through those routes (drift._firewall_egress, ``firewall-egress``)."""
    for firewall_key in firewalls_of_item(estate, item):
        firewall = estate.firewalls.get(firewall_key)
        subnet = estate.subnets.get(key(firewall.subnet_id)) if firewall and firewall.forced_tunnelling else None
        if subnet is not None and subnet.route_table_id and key(subnet.route_table_id) == target:
            return True
    return False


def _behind_firewall(estate: Estate, item: ProtectedItem, kind: str, target: str) -> bool:
    """The item's subnets route to the firewall ``target``, or to a firewall whose policy (or a parent of it) is
    ``target`` (a deleted firewall: the runtime looks in Resource Graph's last copy of it)."""
    firewalls = firewalls_of_item(estate, item)
    if kind == "firewall":
        return target in firewalls
    return any(target in policy_chain(estate, firewall) for k in firewalls
               if (firewall := estate.firewalls.get(k)) is not None)
