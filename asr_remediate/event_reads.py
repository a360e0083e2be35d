"""What an event must read, so it costs a few Resource Graph queries however large the estate (issue 14).

An NSG, route table, NIC or VNet can only be used from its own subscription: a NIC joins only a VNet "in the same
subscription and location as the network interface", an NSG is associated with subnets and NICs of its own
subscription and region, a route table with subnets of VNets "in the same Azure location and subscription as the
route table", and a VM's NICs are in the VM's subscription (learn.microsoft.com/azure/virtual-network/
virtual-network-network-interface, manage-network-security-group, manage-route-table). So every replicated VM an event
on such a resource can affect has a protected item that names a resource of that subscription — its VM, a source NIC,
its recovery VNet or NSG — and the event reads:

1. the A2A protected items whose properties mention the subscription (``inventory.protected_items_mentioning``, a
   superset: ``events.affected_items`` picks the exact set);
2. the network of the subscriptions those items name, plus over the whole scope the few types the engine finds by a
   reverse lookup — firewalls by a next-hop IP, private endpoints, DNS zone links, gateways and connections
   (``inventory.event_network_query``).

Correctness never depends on the shortcut: :func:`unread_subscriptions` lists the subscriptions that the affected
items' path resources name (a useRemoteGateways hub, a peered VNet, a policy…) and that were not read; the runtime
reads their network too (a third query), until none is left, so the estate the VMs are evaluated on holds everything
a full scan of the scope would use for them. Firewall and Firewall Policy events keep the full read: a firewall serves
spokes in any subscription, linked only by the IP their routes name; so does a route table on a firewall's subnet
(:func:`serves_other_subscriptions`). A firewall on an affected path counts as a path resource: its subnet's VNet and
route table (a forced-tunnelling firewall's egress) are read from the hub's subscription.

>>> sorted(mentioned_subscriptions({"id": "/subscriptions/AAAAAAAA-0000-0000-0000-000000000001/resourceGroups/x"}))
['aaaaaaaa-0000-0000-0000-000000000001']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .firewall_paths import firewalls_of_item
from .model import Estate, ProtectedItem, key, parent_id, subscription_of
from .privatelink import vault_id_of

#: Event kinds whose resource is used only from its own subscription (the kinds :mod:`events` watches, less the
#: firewall ones).
SUBSCRIPTION_LOCAL_KINDS = frozenset({"nsg", "route-table", "vnet", "nic", "protected-item"})

_MENTION = re.compile(r"/subscriptions/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?=/|\"|$)",
                      re.IGNORECASE)


def mentioned_subscriptions(document: Mapping[str, Any]) -> set[str]:
    """Every subscription an ARM document names in an id (lower case)."""
    return {m.lower() for m in _MENTION.findall(json.dumps(document))}


def item_filter_subscriptions(kind: str, resource_id: str, fresh: Mapping[str, Any] | None) -> set[str]:
    """The subscriptions whose mention in a protected item makes it a candidate for the event: the resource's own,
    and for a protected item every subscription its current ARM copy names (the item itself then matches: its
    properties name its VM)."""
    found = {subscription_of(resource_id)} - {""}
    if kind == "protected-item" and fresh is not None:
        found |= mentioned_subscriptions(fresh.get("properties") or {})
    return found


def path_ids(estate: Estate, items: Iterable[ProtectedItem]) -> set[str]:
    """key() of every resource on the items' paths that is found by id: the VM, its NICs and their NSGs, the subnets'
    VNets, NSGs and route tables, the recovery VNets, subnets and NSGs, the hubs whose gateways a VNet uses, and
    the vault."""
    found: set[str] = set()

    def vnet_and_subnet(vnet_id: str, subnet_names: set[str] | None, subnet_ids: set[str]) -> None:
        vnet = estate.vnets.get(key(vnet_id))
        found.add(key(vnet_id))
        if vnet is None:
            return
        found.update(key(h) for h in vnet.remote_gateway_vnet_ids)
        for subnet in vnet.subnets:
            if key(subnet.id) in subnet_ids or (subnet_names is not None and subnet.name.lower() in subnet_names):
                found.update(key(i) for i in (subnet.nsg_id, subnet.route_table_id) if i)

    for item in items:
        found.update(key(i) for i in (item.id, item.vm_id, vault_id_of(item)) if i)
        for nic_id in (*estate.source_nic_ids(item), *(n.source_nic_id for n in item.recovery_nics)):
            found.add(key(nic_id))
            nic = estate.nics.get(key(nic_id))
            for config in nic.ip_configurations if nic else ():
                vnet_and_subnet(parent_id(config.subnet_id), None, {key(config.subnet_id)})
            if nic is not None and nic.nsg_id:
                found.add(key(nic.nsg_id))
        for rnic in item.recovery_nics:
            if rnic.recovery_nsg_id:
                found.add(key(rnic.recovery_nsg_id))
            vnet_id = rnic.recovery_vnet_id or item.recovery_vnet_id
            if vnet_id:
                vnet_and_subnet(vnet_id, {n.lower() for n in rnic.recovery_subnet_names}, set())
        if item.recovery_vnet_id:
            vnet_and_subnet(item.recovery_vnet_id, None, set())
        # A firewall the item's subnets route to: its own subnet's routes carry a forced-tunnelling firewall's egress
        # (drift's firewall-egress), and that subnet's VNet is the hub's, often in a connectivity subscription.
        for firewall_key in firewalls_of_item(estate, item):
            found.add(firewall_key)
            firewall = estate.firewalls.get(firewall_key)
            if firewall is not None and firewall.subnet_id:
                vnet_and_subnet(parent_id(firewall.subnet_id), None, {key(firewall.subnet_id)})
    return found - {""}


def serves_other_subscriptions(estate: Estate, kind: str, resource_id: str) -> bool:
    """The changed resource may be on the path of VMs in other subscriptions, so the event reads the scope: a route
    table on a firewall's subnet (events.affected_items counts the VMs behind that firewall). Every firewall of the
    scope is in ``estate`` (a scope-wide type) and the table's VNets are in its own subscription (read), so Resource
    Graph's copy of them says whether it is one — a deleted table's too."""
    if kind != "route-table":
        return False
    for firewall in estate.firewalls.values():
        subnet = estate.subnets.get(key(firewall.subnet_id)) if firewall.subnet_id else None
        if subnet is not None and subnet.route_table_id and key(subnet.route_table_id) == key(resource_id):
            return True
    return False


def unread_subscriptions(estate: Estate, items: Iterable[ProtectedItem], rows: Iterable[Mapping[str, Any]],
                         read: set[str], scope: set[str]) -> set[str]:
    """Scope subscriptions the items' path resources are in, or name in their documents (``rows``: the raw rows
    read), that were not read yet: their network must be read before the items are evaluated."""
    ids = path_ids(estate, items)
    wanted = {subscription_of(i) for i in ids}
    for row in rows:
        if key(str(row.get("id", ""))) in ids:
            wanted |= mentioned_subscriptions(row)
    return (wanted & scope) - read - {""}
