"""Which Azure Firewalls (and Firewall Policies) a replicated VM's traffic can reach: the link between a VM and a
firewall, for the inventory (whose policies to list) and for events (whose VMs a policy change touches).

A firewall is on a VM's path when a route of a subnet the VM sends from — a source NIC's subnet or a recovery subnet —
has next hop ``VirtualAppliance`` at one of the firewall's private IPs (a user-defined route, or a BGP-learned one when
effective routes were read). Every route counts, whatever its prefix: which required destination it carries is the
engine's business (drift.py); here a route that carries none costs only a needless list or re-evaluation.

>>> from asr_remediate.estate import build_estate
>>> firewalls_on_paths(build_estate([]))
[]
"""

from __future__ import annotations

from collections.abc import Iterator

from .firewall import MAX_POLICY_DEPTH
from .model import AzureFirewall, Estate, ProtectedItem, key


def _subnet_hops(estate: Estate, subnet_id: str) -> Iterator[tuple[str, str]]:
    subnet = estate.subnets.get(key(subnet_id))
    table = estate.route_tables.get(key(subnet.route_table_id)) if subnet and subnet.route_table_id else None
    for route in table.routes if table else ():
        yield route.next_hop_type, route.next_hop_ip


def _hops(estate: Estate, item: ProtectedItem) -> Iterator[tuple[str, str]]:
    for nic_id in estate.source_nic_ids(item):
        nic = estate.nics.get(key(nic_id))
        for config in nic.ip_configurations if nic else ():
            yield from _subnet_hops(estate, config.subnet_id)
        for route in estate.bgp_routes.get(key(nic_id), ()):
            yield route.next_hop_type, route.next_hop_ip
    for rnic in item.recovery_nics:
        vnet = estate.vnets.get(key(rnic.recovery_vnet_id or item.recovery_vnet_id))
        names = {n.lower() for n in rnic.recovery_subnet_names}
        for subnet in vnet.subnets if vnet else ():
            if subnet.name.lower() in names:
                yield from _subnet_hops(estate, subnet.id)


def firewalls_of_item(estate: Estate, item: ProtectedItem) -> dict[str, str]:
    """key(firewall id) → firewall id, for every firewall ``item``'s subnets route to."""
    found: dict[str, str] = {}
    for hop_type, ip in _hops(estate, item):
        firewall_id = estate.firewall_ips.get(ip.strip()) if hop_type.lower() == "virtualappliance" else None
        if firewall_id:
            found[key(firewall_id)] = firewall_id
    return found


def unmatched_next_hops(estate: Estate) -> tuple[str, ...]:
    """The next-hop IPs of ``VirtualAppliance`` routes on replicated VMs' paths that are no Azure Firewall's in
    ``estate`` (sorted, each once): where a firewall in a subscription not read yet may be (firewall_search.py).

    Every such route counts, whatever its prefix, as for :func:`firewalls_on_paths`: which routes carry a required
    destination is known only once the Service Tags are read, and a route that carries none costs at most the one
    extra query. Another appliance at such an IP stays another appliance (route-appliance warning).

    >>> from asr_remediate.estate import build_estate
    >>> unmatched_next_hops(build_estate([]))
    ()
    """
    found = {ip.strip() for item in estate.protected_items for hop_type, ip in _hops(estate, item)
             if hop_type.lower() == "virtualappliance" and ip.strip()}
    return tuple(sorted(found - set(estate.firewall_ips)))


def firewalls_on_paths(estate: Estate) -> list[str]:
    """Ids of the firewalls some replicated VM's subnet routes to (sorted, each once)."""
    found: dict[str, str] = {}
    for item in estate.protected_items:
        found.update(firewalls_of_item(estate, item))
    return [found[k] for k in sorted(found)]


def policy_chain(estate: Estate, firewall: AzureFirewall) -> list[str]:
    """key() of the firewall's policy and of each parent (``basePolicy``) the estate holds, attached policy first."""
    chain: list[str] = []
    policy_id = firewall.policy_id
    while policy_id and key(policy_id) not in chain and len(chain) < MAX_POLICY_DEPTH:
        chain.append(key(policy_id))
        policy = estate.firewall_policies.get(key(policy_id))
        policy_id = policy.base_policy_id if policy else ""
    return chain
