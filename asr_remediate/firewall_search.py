"""The Azure Firewall behind a next hop the inventory does not explain: a hub firewall in a connectivity subscription.

In a Cloud Adoption Framework landing zone the hub (its VNet, Azure Firewall, Firewall Policy, IP groups) lives in a
connectivity subscription that the protected items do not name: the network query, which reads the scanned
subscriptions and those the items reference, does not return it, and the spokes' ``0.0.0.0/0 → VirtualAppliance``
route points at an IP no known firewall holds. When such next hops exist (``firewall_paths.unmatched_next_hops``), the
runtime asks Resource Graph once more, for firewalls, Firewall Policies and IP groups only, over the subscriptions of
ASR_SUBSCRIPTIONS it has not read yet (``azure/inventory.FIREWALL_RESOURCES_QUERY``). Of what that returns, this keeps
only what the VMs' paths need, from the raw rows (plain data in, plain data out):

* the firewalls holding one of those next-hop IPs (``ipConfigurations[].privateIPAddress``, a secured virtual hub's
  ``hubIPAddresses.privateIPAddress``) and the policy each uses, with its ``basePolicy`` parents among the rows (a
  parent elsewhere is read from ARM like any parent outside the scan: azure/firewalls.py);
* the firewall's own network (``firewall_networks``): the VNet holding its AzureFirewallSubnet (the parent of
  ``ipConfigurations[].subnet.id``) and the route tables of the subnets it names (``AzureFirewallSubnet``, and
  ``AzureFirewallManagementSubnet`` through ``managementIpConfiguration``), so a forced-tunnelling firewall's egress
  is evaluated as for a firewall in a subscription read. A secured virtual hub's firewall has no VNet (it names a
  ``virtualHub``; the hub's routing is not read): nothing is kept for it;
* once the rule collection groups are listed, the IP groups that those groups' rules or the firewalls' classic rules
  name (``sourceIpGroups`` / ``destinationIpGroups``). An IP group in no subscription read stays absent: the rules
  naming it are ``unknown`` with that reason (firewall.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .estate import (
    FIREWALL_POLICY_TYPE,
    FIREWALL_TYPE,
    IP_GROUP_TYPE,
    ROUTE_TABLE_TYPE,
    RULE_COLLECTION_GROUP_TYPE,
    VNET_TYPE,
    firewall_ips_of,
)
from .firewall import MAX_POLICY_DEPTH
from .model import key, parent_id

_IP_GROUP_FIELDS = ("sourceIpGroups", "destinationIpGroups")


def _type(row: Mapping[str, Any]) -> str:
    return str(row.get("type", "")).lower()


def _properties(row: Any) -> Mapping[str, Any]:
    properties = row.get("properties") if isinstance(row, Mapping) else None
    return properties if isinstance(properties, Mapping) else {}


def _ref(row: Mapping[str, Any], field: str) -> str:
    value = _properties(row).get(field)
    return str(value.get("id") or "") if isinstance(value, Mapping) else ""


def routes_to_an_appliance(rows: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any route table among ``rows`` has a ``VirtualAppliance`` route: a cheap test on the raw rows, so an
    estate without one is not parsed only to find that out.

    >>> routes_to_an_appliance([{"type": "Microsoft.Network/routeTables", "properties": {"routes": [
    ...     {"properties": {"nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.0.1.4"}}]}}])
    True
    >>> routes_to_an_appliance([{"type": "microsoft.network/routetables", "properties": {"routes": [
    ...     {"properties": {"nextHopType": "Internet"}}]}}])
    False
    """
    for row in rows:
        if _type(row) != ROUTE_TABLE_TYPE:
            continue
        routes = _properties(row).get("routes")
        for route in routes if isinstance(routes, list) else ():
            if str(_properties(route).get("nextHopType", "")).lower() == "virtualappliance":
                return True
    return False


def firewalls_at(rows: Iterable[Mapping[str, Any]], next_hops: Iterable[str]) -> list[dict[str, Any]]:
    """The firewalls among ``rows`` at one of ``next_hops``, each followed by its policy and that policy's parents
    (those among ``rows``), each once, in that order.

    >>> fw = {"id": "/s/x/fw", "type": "microsoft.network/azurefirewalls", "properties": {
    ...     "ipConfigurations": [{"properties": {"privateIPAddress": "10.0.1.4"}}], "firewallPolicy": {"id": "/s/x/p"}}}
    >>> policy = {"id": "/s/x/p", "type": "microsoft.network/firewallpolicies", "properties": {}}
    >>> [r["id"] for r in firewalls_at([fw, policy], ["10.0.1.4"])], firewalls_at([fw, policy], ["10.9.9.9"])
    (['/s/x/fw', '/s/x/p'], [])
    >>> hub = {"id": "/s/x/vwan-fw", "type": "Microsoft.Network/azureFirewalls", "properties": {
    ...     "hubIPAddresses": {"privateIPAddress": "10.64.0.132"}, "virtualHub": {"id": "/s/x/hub"}}}
    >>> [r["id"] for r in firewalls_at([hub], ["10.64.0.132"])]  # a secured virtual hub's firewall
    ['/s/x/vwan-fw']
    """
    wanted = {ip.strip() for ip in next_hops}
    rows = list(rows)
    policies = {key(str(r.get("id", ""))): r for r in rows if _type(r) == FIREWALL_POLICY_TYPE}
    kept: dict[str, dict[str, Any]] = {}
    for row in rows:
        if _type(row) != FIREWALL_TYPE or not wanted & set(firewall_ips_of(row)):
            continue
        kept.setdefault(key(str(row.get("id", ""))), dict(row))
        policy_id, depth = _ref(row, "firewallPolicy"), 0
        while policy_id and key(policy_id) in policies and depth < MAX_POLICY_DEPTH:
            policy = policies[key(policy_id)]
            kept.setdefault(key(policy_id), dict(policy))
            policy_id, depth = _ref(policy, "basePolicy"), depth + 1
    return list(kept.values())


def _firewall_subnets(firewall: Mapping[str, Any]) -> list[str]:
    """The subnets a VNet firewall names: its data subnet(s) and its management subnet (forced tunnelling)."""
    properties = _properties(firewall)
    configs = properties.get("ipConfigurations")
    named = [_ref(c, "subnet") for c in configs if isinstance(c, Mapping)] if isinstance(configs, list) else []
    management = properties.get("managementIpConfiguration")
    if isinstance(management, Mapping):
        named.append(_ref(management, "subnet"))
    return [s for s in named if s]


def firewall_networks(rows: Iterable[Mapping[str, Any]], firewalls: Iterable[Mapping[str, Any]]
                      ) -> list[dict[str, Any]]:
    """The VNets among ``rows`` that hold a subnet one of ``firewalls`` names, then the route tables among ``rows``
    of those subnets (each once, VNets first): what the firewall's own egress is evaluated on (drift._firewall_egress:
    in forced-tunnelling mode what it allows leaves through its subnet's routes). Other VNets and route tables of the
    rows are not kept; a secured virtual hub's firewall names no subnet and brings nothing.

    >>> hub = "/s/c/virtualNetworks/vnet-hub"
    >>> fw = {"id": "/s/c/azureFirewalls/fw", "type": "microsoft.network/azurefirewalls", "properties": {
    ...     "ipConfigurations": [{"properties": {"subnet": {"id": f"{hub}/subnets/AzureFirewallSubnet"}}}],
    ...     "managementIpConfiguration": {"properties": {"subnet": {
    ...         "id": f"{hub}/subnets/AzureFirewallManagementSubnet"}}}}}
    >>> def table(name): return {"routeTable": {"id": f"/s/c/routeTables/{name}"}}
    >>> vnets = [{"id": hub, "type": "Microsoft.Network/virtualNetworks", "properties": {"subnets": [
    ...     {"id": f"{hub}/subnets/AzureFirewallSubnet", "properties": table("rt-fw")},
    ...     {"id": f"{hub}/subnets/AzureFirewallManagementSubnet", "properties": {}},
    ...     {"id": f"{hub}/subnets/shared", "properties": table("rt-shared")}]}},
    ...     {"id": "/s/c/virtualNetworks/other", "type": "microsoft.network/virtualnetworks", "properties": {}}]
    >>> tables = [{"id": f"/s/c/routeTables/{n}", "type": "microsoft.network/routetables"}
    ...           for n in ("rt-fw", "rt-shared")]
    >>> [r["id"].rsplit("/", 1)[-1] for r in firewall_networks([*vnets, *tables], [fw])]
    ['vnet-hub', 'rt-fw']
    >>> vwan = {"id": "/s/c/azureFirewalls/vwan-fw", "type": "microsoft.network/azurefirewalls", "properties": {
    ...     "hubIPAddresses": {"privateIPAddress": "10.64.0.132"}, "virtualHub": {"id": "/s/c/virtualHubs/hub"}}}
    >>> firewall_networks([*vnets, *tables], [vwan])  # a secured virtual hub: no VNet
    []
    """
    subnets = {key(s) for f in firewalls for s in _firewall_subnets(f)}
    if not subnets:
        return []
    rows = list(rows)
    vnets = {key(parent_id(s)) for s in subnets}
    kept = {key(str(r.get("id", ""))): dict(r) for r in rows if _type(r) == VNET_TYPE and
            key(str(r.get("id", ""))) in vnets}
    tables: set[str] = set()
    for vnet in kept.values():
        listed = _properties(vnet).get("subnets")
        for subnet in listed if isinstance(listed, list) else ():
            if isinstance(subnet, Mapping) and key(str(subnet.get("id", ""))) in subnets:
                table = _ref(subnet, "routeTable")
                tables.update({key(table)} if table else set())
    routes = [dict(r) for r in rows if _type(r) == ROUTE_TABLE_TYPE and key(str(r.get("id", ""))) in tables]
    return [*kept.values(), *routes]


def _named_ip_groups(value: Any) -> Iterator[str]:
    """Every id under a ``sourceIpGroups`` / ``destinationIpGroups`` field anywhere in ``value`` (rule collections
    nest the rules one level down in a policy's groups, two in a classic firewall's collections)."""
    if isinstance(value, Mapping):
        for name, inner in value.items():
            if name in _IP_GROUP_FIELDS and isinstance(inner, list):
                yield from (str(i) for i in inner if isinstance(i, str))
            else:
                yield from _named_ip_groups(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _named_ip_groups(inner)


def ip_groups_named(resources: Iterable[Mapping[str, Any]], candidates: Iterable[Mapping[str, Any]]
                    ) -> list[dict[str, Any]]:
    """The IP groups among ``candidates`` that a firewall's classic rules or a rule collection group's rules in
    ``resources`` name (and that ``resources`` does not hold already).

    >>> group = {"id": "/s/x/p/ruleCollectionGroups/g", "type": RULE_COLLECTION_GROUP_TYPE,
    ...          "properties": {"ruleCollections": [{"rules": [{"sourceIpGroups": ["/s/x/ipGroups/spokes"]}]}]}}
    >>> candidates = [{"id": "/s/x/ipGroups/spokes", "type": "microsoft.network/ipgroups"},
    ...               {"id": "/s/x/ipGroups/other", "type": "microsoft.network/ipgroups"}]
    >>> [r["id"] for r in ip_groups_named([group], candidates)]
    ['/s/x/ipGroups/spokes']
    """
    resources = list(resources)
    held = {key(str(r.get("id", ""))) for r in resources}
    named = {key(i) for r in resources if _type(r) in (FIREWALL_TYPE, RULE_COLLECTION_GROUP_TYPE)
             for i in _named_ip_groups(_properties(r))}
    return [dict(c) for c in candidates if _type(c) == IP_GROUP_TYPE and key(str(c.get("id", ""))) in named - held]


__all__ = ["firewall_networks", "firewalls_at", "ip_groups_named", "routes_to_an_appliance"]
