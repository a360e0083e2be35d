"""Brute-force, one-address-at-a-time oracle for NSG and route decisions.

Written independently of the engine: it answers for a single destination address with the stdlib ``ipaddress``
module and plain loops, and uses nothing from ``ipset``/``nsg``/``routes``: only the model dataclasses and the
Service Tags data as published (``ServiceTags.get(name).cidrs`` / ``.region``). Property tests compare the engine's
set partitions with it address by address; benchmarks use it as the slow reference.

API
---
``nsg_verdict(nsg, source_ip, nic_asgs, vnet_prefixes, address, tags, *, required_tag="", port=443,
protocol="tcp") -> (verdict, rule_name)``
    verdict is "allow", "deny" or "unknown"; rule_name is the deciding rule's name, or None when no rule
    matched (an NSG without default rules denies).
    ``source_ip``: the sending NIC's IP ("10.0.0.4"), or the block of possible senders on the target side
    ("10.0.1.0/28", or a sequence of prefixes); ``nic_asgs``: ASG ids the NIC's ip configuration belongs to;
    ``vnet_prefixes``: what the VirtualNetwork tag means for this NIC (``virtual_network_prefixes``);
    ``address``: an IPv4 address as text or int.

``virtual_network_prefixes(vnet, table, tags, learned=()) -> list[str]``
    the VirtualNetwork tag for a sender in ``vnet`` whose subnet uses ``table`` (Azure's service-tag reference:
    the VNet's address space, peered VNets, the prefixes used on user-defined routes, on-premises prefixes learned
    through a gateway): the VNet and peered prefixes, every route's prefix (a service-tag route: each published
    IPv4 prefix of the tag; an unknown tag: none; IPv6: none) and every learned route's prefix, as text.

``firewall_verdict(estate, firewall, source_ip, address, name, tags, *, required_tag="") -> (verdict, rule_name)``
    what an Azure Firewall does with one TCP 443 flow from ``source_ip`` to ``address`` carrying the TLS server name
    ``name`` (a concrete name, never a wildcard): "allow", "deny" or "unknown", and the deciding rule's name (None:
    the default deny).

``route_next_hop(table, vnet, subnet, address, tags) -> (next_hop_type, route_name)``
    next_hop_type in ARM spelling ("Internet", "VirtualAppliance", "VnetLocal", "VNetPeering", "None",
    "VirtualNetworkServiceEndpoint", ...) or "unknown" when a route names a tag the data does not have
    (route_name is then that route). System routes are named "system: virtual network", "system: peering",
    "system: default <prefix>"; a service endpoint is "service endpoint".

``admin_verdict(rules, source_ip, vnet_prefixes, address, tags, *, required_tag="", port=443, protocol="tcp")
-> (verdict, rule_name)``
    what a VNet's effective AVNM security admin rules do to one outbound packet: "deny", "unknown",
    "always-allow" (the NSGs are skipped) or "allow" (the NSGs decide); rule_name is the deciding rule's name, or
    None when no manager has a matching rule.

Semantics (the project's documented choices, restated here on purpose rather than imported):

NSG, per packet (TCP, source port anywhere in the ephemeral range 1024-65535, destination ``port``):
  rules (custom and default) by ascending priority, first match decides. A rule is skipped unless outbound and
  its protocol is '*'/'any'/the flow's. Unreadable destination ports → unknown. Destination ASGs never match.
  Source ports: unreadable → unknown; covering none of 1024-65535 → skip. Source: ASGs → full match iff the NIC
  is a member; otherwise every source address is tested against the prefixes ('*', CIDR/IP, VirtualNetwork,
  Internet = not VirtualNetwork, AzureLoadBalancer = 168.63.129.16, service tags, IPv6 never), an unknown tag →
  unknown. Ports and addresses each cover all / some / none of the flows; the rule covers all only if both do,
  none if either does not. Covering some: a Deny still decides (denies), an Allow is skipped. Destination:
  the same prefix forms; an unknown tag → unknown, except when it is the rule's only destination and equals the
  required tag or is its top-level tag (``Storage`` for ``Storage.EastUS``): then it covers the address.

Admin rules, per packet: each network manager (the rule id up to ``networkManagers/<name>``, any case) on its
  own: its outbound rules by priority, at equal priority Deny before Allow before AlwaysAllow (then by id), first
  match decides. Protocol 'Any'/'*'/the flow's; destination ports (none listed: any) unreadable → unknown; source
  ports as for NSGs. Sources (none: all): network-group entries match some of the senders; the other entries as NSG
  prefixes (an unknown tag → unknown); all / some / none of the senders, and covering some, a Deny decides, an
  Allow or AlwaysAllow is skipped. Destinations (none: all): network-group entries cover private addresses (10/8,
  172.16/12, 192.168/16, 100.64/10) as unknown, public ones not at all; the other entries as NSG prefixes, the
  symbolic tag shortcut included. Managers combined: a Deny anywhere denies (named by the first manager, by id,
  that denies), else unknown anywhere, else AlwaysAllow anywhere, else allow (named by the first manager with a
  matching Allow rule, or None).
Azure Firewall, per flow (one sender, one address, one name): rules in order — DNAT, then network, then application
  rules. Classic: the firewall's collections of each type by priority (a collection without one after those with
  one). Policy: the basePolicy chain root first, the attached policy last (DNAT from the attached policy only); per
  policy its groups by priority (then name), per group its collections by priority (none last), per collection the
  rules in order. Each test is true, false or "cannot tell": a rule applies when all its tests hold (false if any is
  false), its destination when any alternative holds (true if any is true). Network / DNAT rules: protocol TCP or
  Any, port 443 among the destination ports, the sender in the source addresses / ranges / IP groups (an absent IP
  group: cannot tell), the address in the destination addresses / ranges / service tags / IP groups (a tag missing
  from the data: cannot tell, unless it is the required tag or its top-level tag: true), or the name equal to a
  destination FQDN (cannot tell without DNS proxy). Application rules: Https:443 among the protocols, the sender as
  above, the name matched by a target FQDN ("*" all; "*X": ends with X; else equal, case-insensitive), FQDN tags / web
  categories / target URLs: cannot tell; destination addresses on an application rule: cannot tell. A rule that
  applies decides (Allow → allow, Deny and DNAT → deny; an Allow that terminates TLS → unknown); one that may apply
  decides if the rules after it decide the same way, else unknown. No rule: deny.

Routes, per address: a subnet service endpoint (Microsoft.Storage → Storage.<location> for each listed
  location, the VNet's location when none, '*' = all of Storage) wins outright. Otherwise a route naming an
  unknown tag makes the answer unknown (the first such route in table order). Otherwise longest prefix among the
  user routes (explicit prefixes; service-tag routes with each of the tag's published IPv4 prefixes) and the
  system routes (VNet space → VnetLocal, peered spaces → VNetPeering, 0.0.0.0/0 → Internet, 10/8, 172.16/12,
  192.168/16, 100.64/10 → None). Equal lengths: explicit > regional service tag (the tag has a region) >
  top-level service tag > AzureCloud regional > AzureCloud > system; still equal: the earlier in table order
  (user routes in table order, then VNet space, peered spaces, defaults).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from asr_remediate.model import (
    AzureFirewall,
    Estate,
    FirewallRule,
    NetworkSecurityGroup,
    RouteTable,
    SecurityRule,
    Subnet,
    VirtualNetwork,
)
from asr_remediate.servicetags import LOCATION_TO_TAG_REGION, ServiceTags

Address = int | str
ALL, SOME, NONE = "all", "some", "none"
LOAD_BALANCER = ipaddress.IPv4Address("168.63.129.16")
EPHEMERAL_LOW, EPHEMERAL_HIGH = 1024, 65535


class _Unknown(Exception):
    """A prefix names a service tag the data does not have."""


@lru_cache(maxsize=65536)
def _network(text: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(text.strip(), strict=False)
    except ValueError:
        return None


def _address(value: Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(value if isinstance(value, int) else value.strip())


def _in_any(address: ipaddress.IPv4Address, prefixes: Iterable[str]) -> bool:
    for prefix in prefixes:
        network = _network(prefix)
        if network is not None and address in network:
            return True
    return False


def virtual_network_prefixes(vnet: VirtualNetwork, table: RouteTable | None, tags: ServiceTags,
                             learned: Sequence[Any] = ()) -> list[str]:
    prefixes = [*vnet.address_prefixes, *vnet.peered_address_prefixes]
    for route in [*(table.routes if table else ()), *learned]:
        text = route.address_prefix.strip()
        if _network(text) is not None:
            prefixes.append(text)
        elif ":" not in text:
            tag = tags.get(text)
            prefixes += [c for c in (tag.cidrs if tag else ()) if ":" not in c]
    return prefixes


def _entry_contains(entry: str, address: ipaddress.IPv4Address, vnet_prefixes: Sequence[str], tags: ServiceTags
                    ) -> bool:
    """Does one NSG address-prefix entry contain ``address``? Raises _Unknown for a tag missing from the data."""
    text = entry.strip()
    lower = text.lower()
    if lower in ("*", "any"):
        return True
    if lower == "virtualnetwork":
        return _in_any(address, vnet_prefixes)
    if lower == "internet":
        return not _in_any(address, vnet_prefixes)
    if lower == "azureloadbalancer":
        return address == LOAD_BALANCER
    network = _network(text)
    if network is not None:
        return address in network
    if ":" in text:
        return False  # IPv6: never an IPv4 flow
    tag = tags.get(text)
    if tag is None:
        raise _Unknown(text)
    return _in_any(address, tag.cidrs)


def _list_contains(entries: Sequence[str], address: ipaddress.IPv4Address, vnet_prefixes: Sequence[str],
                   tags: ServiceTags) -> bool:
    """Any entry contains the address; an unknown tag anywhere in the list makes the whole list unknown."""
    found = False
    unknown = None
    for entry in entries:
        try:
            found = _entry_contains(entry, address, vnet_prefixes, tags) or found
        except _Unknown as error:
            unknown = error
    if unknown is not None:
        raise unknown
    return found


def _port_ranges(ports: Sequence[str]) -> list[tuple[int, int]] | None:
    ranges = []
    for raw in ports:
        text = raw.strip()
        if text.lower() in ("*", "any"):
            ranges.append((0, 65535))
            continue
        parts = text.split("-")
        if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
            return None
        low, high = int(parts[0]), int(parts[-1])
        if not 0 <= low <= high <= 65535:
            return None
        ranges.append((low, high))
    return ranges


@lru_cache(maxsize=4096)
def _ephemeral_coverage(ports: tuple[str, ...]) -> str | None:
    """How much of 1024-65535 the source ports cover (all/some/none), None if unreadable."""
    ranges = _port_ranges(ports)
    if ranges is None:
        return None
    covered = 0
    next_free = EPHEMERAL_LOW  # first port not yet counted
    for low, high in sorted(ranges):
        low, high = max(low, next_free), min(high, EPHEMERAL_HIGH)
        if low <= high:
            covered += high - low + 1
            next_free = high + 1
    if covered == 0:
        return NONE
    return ALL if covered == EPHEMERAL_HIGH - EPHEMERAL_LOW + 1 else SOME


def _source_addresses(source_ip: str | Sequence[str]) -> list[ipaddress.IPv4Address]:
    prefixes = [source_ip] if isinstance(source_ip, str) else list(source_ip)
    seen: set[ipaddress.IPv4Address] = set()
    result = []
    for prefix in prefixes:
        network = _network(prefix)
        if network is None:
            continue
        for address in network:
            if address not in seen:
                seen.add(address)
                result.append(address)
    return result


_SOURCE_CACHE: dict[tuple[Any, ...], tuple[str, ServiceTags]] = {}


def _source_coverage(rule: SecurityRule, sources: tuple[str, ...], vnet_prefixes: tuple[str, ...],
                     tags: ServiceTags) -> str:
    """all/some/none of the sending addresses are matched by the rule's source prefixes (raises _Unknown)."""
    cache_key = (rule.source_prefixes, sources, vnet_prefixes, id(tags))
    cached = _SOURCE_CACHE.get(cache_key)
    if cached is not None and cached[1] is tags:
        return cached[0]
    entries = rule.source_prefixes or ("*",)
    addresses = _source_addresses(sources)
    matched = sum(1 for a in addresses if _list_contains(entries, a, vnet_prefixes, tags))
    answer = NONE if matched == 0 else ALL if matched == len(addresses) else SOME
    if len(_SOURCE_CACHE) > 100_000:
        _SOURCE_CACHE.clear()
    _SOURCE_CACHE[cache_key] = (answer, tags)
    return answer


def _combine(a: str, b: str) -> str:
    if NONE in (a, b):
        return NONE
    return ALL if a == b == ALL else SOME


def _symbolic(rule: SecurityRule, required_tag: str) -> bool:
    if not required_tag or len(rule.destination_prefixes) != 1:
        return False
    rule_tag = rule.destination_prefixes[0].strip().lower()
    wanted = required_tag.strip().lower()
    return rule_tag == wanted or wanted.startswith(rule_tag + ".")


def nsg_verdict(
    nsg: NetworkSecurityGroup,
    source_ip: str | Sequence[str],
    nic_asgs: Iterable[str],
    vnet_prefixes: Sequence[str],
    address: Address,
    tags: ServiceTags,
    *,
    required_tag: str = "",
    port: int = 443,
    protocol: str = "tcp",
) -> tuple[str, str | None]:
    """The verdict of ``nsg`` for one outbound packet to ``address`` and the name of the rule that decided it."""
    destination = _address(address)
    sources = (source_ip,) if isinstance(source_ip, str) else tuple(source_ip)
    vnet = tuple(vnet_prefixes)
    memberships = {asg.strip().rstrip("/").lower() for asg in nic_asgs}
    rules = sorted([*nsg.rules, *nsg.default_rules], key=lambda r: r.priority)
    for rule in rules:
        if rule.direction.lower() != "outbound":
            continue
        if rule.protocol.lower() not in ("*", "any", protocol.lower()):
            continue
        destination_ports = _port_ranges(rule.destination_ports)
        if destination_ports is None:
            return "unknown", rule.name
        if not any(low <= port <= high for low, high in destination_ports):
            continue
        if rule.destination_asgs:
            continue
        ports = _ephemeral_coverage(tuple(rule.source_ports))
        if ports is None:
            return "unknown", rule.name
        if ports == NONE:
            continue
        if rule.source_asgs:
            senders = ALL if any(a.strip().rstrip("/").lower() in memberships for a in rule.source_asgs) else NONE
        else:
            try:
                senders = _source_coverage(rule, sources, vnet, tags)
            except _Unknown:
                return "unknown", rule.name
        coverage = _combine(ports, senders)
        allow = rule.access.lower() == "allow"
        if coverage == NONE or (coverage == SOME and allow):
            continue
        try:
            hit = _list_contains(rule.destination_prefixes or ("*",), destination, vnet, tags)
        except _Unknown:
            if not _symbolic(rule, required_tag):
                return "unknown", rule.name
            hit = True
        if hit:
            return ("allow" if allow else "deny"), rule.name
    return "deny", None


# --- AVNM security admin rules ---------------------------------------------------------------------------------

_PRIVATE = tuple(ipaddress.IPv4Network(p) for p in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                     "100.64.0.0/10"))
_RANK = {"deny": 0, "allow": 1, "alwaysallow": 2}


def _manager_of(rule_id: str) -> str:
    parts = rule_id.strip("/").split("/")
    for index, part in enumerate(parts):
        if part.lower() == "networkmanagers" and index + 1 < len(parts):
            return "/".join(parts[: index + 2]).lower()
    return ""


def _one_manager(rules: list[Any], sources: tuple[str, ...], vnet: tuple[str, ...],
                 destination: ipaddress.IPv4Address, tags: ServiceTags, required_tag: str, port: int,
                 protocol: str) -> tuple[str, str | None]:
    """('deny' | 'allow' | 'alwaysallow' | 'unknown' | 'pass', rule name)."""
    for rule in sorted(rules, key=lambda r: (r.priority, _RANK[r.access.lower()], r.id.lower())):
        if rule.direction.lower() != "outbound":
            continue
        if rule.protocol.lower() not in ("any", "*", protocol.lower()):
            continue
        destination_ports = _port_ranges(rule.destination_ports or ("*",))
        if destination_ports is None:
            return "unknown", rule.name
        if not any(low <= port <= high for low, high in destination_ports):
            continue
        ports = _ephemeral_coverage(tuple(rule.source_ports or ("*",)))
        if ports is None:
            return "unknown", rule.name
        if ports == NONE:
            continue
        if not rule.sources:
            senders = ALL
        else:
            groups = any(a.type == "networkgroup" for a in rule.sources)
            entries = [a.prefix for a in rule.sources if a.type != "networkgroup"]
            addresses = _source_addresses(sources)
            try:
                matched = sum(1 for a in addresses if entries and _list_contains(entries, a, vnet, tags))
            except _Unknown:
                return "unknown", rule.name
            senders = ALL if matched == len(addresses) and entries else SOME if matched or groups else NONE
        coverage = _combine(ports, senders)
        access = rule.access.lower()
        if coverage == NONE or (coverage == SOME and access != "deny"):
            continue
        if not rule.destinations:
            return access, rule.name
        entries = [a.prefix for a in rule.destinations if a.type != "networkgroup"]
        groups = any(a.type == "networkgroup" for a in rule.destinations)
        try:
            hit = bool(entries) and _list_contains(entries, destination, vnet, tags)
        except _Unknown:
            wanted = required_tag.strip().lower()
            only = rule.destinations[0].prefix.strip().lower() if len(rule.destinations) == 1 else ""
            if not (wanted and only and (only == wanted or wanted.startswith(only + "."))):
                return "unknown", rule.name
            hit = True
        if hit:
            return access, rule.name
        if groups and any(destination in network for network in _PRIVATE):
            return "unknown", rule.name
    return "pass", None


def admin_verdict(rules: Sequence[Any], source_ip: str | Sequence[str], vnet_prefixes: Sequence[str],
                  address: Address, tags: ServiceTags, *, required_tag: str = "", port: int = 443,
                  protocol: str = "tcp") -> tuple[str, str | None]:
    """The combined verdict of every network manager's admin rules for one outbound packet to ``address``."""
    destination = _address(address)
    sources = (source_ip,) if isinstance(source_ip, str) else tuple(source_ip)
    managers: dict[str, list[Any]] = {}
    for rule in rules:
        managers.setdefault(_manager_of(rule.id), []).append(rule)
    answers = [_one_manager(managers[m], sources, tuple(vnet_prefixes), destination, tags, required_tag, port,
                            protocol) for m in sorted(managers)]
    for verdict, label in (("deny", "deny"), ("unknown", "unknown"), ("alwaysallow", "always-allow")):
        for answer, name in answers:
            if answer == verdict:
                return label, name
    for answer, name in answers:
        if answer == "allow":
            return "allow", name
    return "allow", None


# --- routes -------------------------------------------------------------------------------------------------

_ENDPOINT_FAMILY = {
    "microsoft.storage": "Storage",
    "microsoft.storage.global": "Storage",
    "microsoft.eventhub": "EventHub",
    "microsoft.keyvault": "AzureKeyVault",
    # Microsoft.AzureActiveDirectory endpoints serve Data Lake Gen1 only: they do not route AAD login traffic.
}
_SYSTEM_DEFAULTS = (
    ("0.0.0.0/0", "Internet"),
    ("10.0.0.0/8", "None"),
    ("172.16.0.0/12", "None"),
    ("192.168.0.0/16", "None"),
    ("100.64.0.0/10", "None"),
)
_EXPLICIT, _TAG_REGIONAL, _TAG_TOP, _CLOUD_REGIONAL, _CLOUD_TOP, _SYSTEM = range(6)


def _regional_tag_name(tags: ServiceTags, base: str, location: str) -> str | None:
    """Find ``base``'s tag for an ARM location by scanning properties.region (prefer the name spelling it)."""
    region = location.lower().replace(" ", "")
    region = LOCATION_TO_TAG_REGION.get(region, region)
    found = None
    for tag in tags.tags.values():
        head, dot, tail = tag.name.partition(".")
        if not dot or head.lower() != base.lower() or tag.region.lower() != region:
            continue
        if tail.lower() == region:
            return tag.name
        if found is None:
            found = tag.name
    return found


def _service_endpoint_hit(subnet: Subnet | None, vnet: VirtualNetwork, address: ipaddress.IPv4Address,
                          tags: ServiceTags) -> bool:
    if subnet is None:
        return False
    for endpoint in subnet.service_endpoints:
        family = _ENDPOINT_FAMILY.get(endpoint.service.strip().lower())
        if family is None:
            continue
        for location in endpoint.locations or (vnet.location,):
            if location.strip() == "*":
                name: str | None = family
            else:
                name = _regional_tag_name(tags, family, location)
            tag = tags.get(name) if name else None
            if tag is not None and _in_any(address, tag.cidrs):
                return True
    return False


def route_next_hop(
    table: RouteTable | None,
    vnet: VirtualNetwork,
    subnet: Subnet | None,
    address: Address,
    tags: ServiceTags,
) -> tuple[str, str]:
    """The next hop type and the name of the route that carries one packet to ``address`` out of ``subnet``."""
    destination = _address(address)
    if _service_endpoint_hit(subnet, vnet, destination, tags):
        return "VirtualNetworkServiceEndpoint", "service endpoint"
    best: tuple[int, int, int] | None = None  # (-length, tier, order): smallest wins
    answer = ("", "")
    order = 0

    def consider(prefix: str, tier: int, hop: str, name: str) -> None:
        nonlocal best, answer
        network = _network(prefix)
        if network is None or destination not in network:
            return
        rank = (-network.prefixlen, tier, order)
        if best is None or rank < best:
            best, answer = rank, (hop, name)

    for route in table.routes if table is not None else ():
        order += 1
        prefix = route.address_prefix.strip()
        if _network(prefix) is not None:
            consider(prefix, _EXPLICIT, route.next_hop_type, route.name)
            continue
        if ":" in prefix:
            continue
        tag = tags.get(prefix)
        if tag is None:
            return "unknown", route.name
        cloud = tag.name.partition(".")[0].lower() == "azurecloud"
        regional = bool(tag.region)
        tier = (_CLOUD_REGIONAL if regional else _CLOUD_TOP) if cloud else (_TAG_REGIONAL if regional else _TAG_TOP)
        for cidr in tag.cidrs:
            consider(cidr, tier, route.next_hop_type, route.name)
    for prefix in vnet.address_prefixes:
        order += 1
        consider(prefix, _SYSTEM, "VnetLocal", "system: virtual network")
    for prefix in vnet.peered_address_prefixes:
        order += 1
        consider(prefix, _SYSTEM, "VNetPeering", "system: peering")
    for prefix, hop in _SYSTEM_DEFAULTS:
        order += 1
        consider(prefix, _SYSTEM, hop, f"system: default {prefix}")
    return answer


# --- Azure Firewall -----------------------------------------------------------------------------------------

Tri = bool | None  # true / false / cannot tell


def _all(*values: Tri) -> Tri:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _any(*values: Tri) -> Tri:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def _fw_entry_contains(entry: str, address: ipaddress.IPv4Address) -> bool | str:
    """True / False for an address, IP, CIDR or 'a-b' range; the entry itself when it is a name (a service tag)."""
    text = entry.strip()
    if text == "*":
        return True
    if ":" in text:
        return False
    first, dash, last = text.partition("-")
    if dash:
        return int(ipaddress.IPv4Address(first.strip())) <= int(address) <= int(ipaddress.IPv4Address(last.strip()))
    network = _network(text)
    return text if network is None else address in network


def _fw_addresses(entries: Sequence[str], groups: Sequence[str], estate: Estate, address: ipaddress.IPv4Address,
                  tags: ServiceTags | None, required_tag: str) -> Tri:
    found: Tri = False
    for entry in entries:
        hit = _fw_entry_contains(entry, address)
        if isinstance(hit, str):
            tag = tags.get(hit) if tags is not None else None
            wanted = required_tag.lower()
            if tag is not None:
                hit = _in_any(address, tag.cidrs)
            elif wanted and (hit.lower() == wanted or wanted.startswith(hit.lower() + ".")):
                hit = True
            else:
                found = _any(found, None)
                continue
        found = _any(found, hit)
    for group_id in groups:
        group = estate.ip_groups.get(group_id.strip().rstrip("/").lower())
        if group is None:
            found = _any(found, None)
            continue
        found = _any(found, any(_fw_entry_contains(e, address) is True for e in group.addresses))
    return found


def _name_matches(name: str, pattern: str) -> bool:
    wanted, rule = name.strip().lower().rstrip("."), pattern.strip().lower().rstrip(".")
    if rule == "*":
        return True
    if rule.startswith("*"):
        return "*" not in rule[1:] and wanted.endswith(rule[1:])
    return "*" not in rule and wanted == rule


def _fw_rule_applies(rule: FirewallRule, estate: Estate, sender: ipaddress.IPv4Address,
                     address: ipaddress.IPv4Address, name: str, tags: ServiceTags, required_tag: str,
                     dns_proxy: bool) -> Tri:
    source = _fw_addresses(rule.source_addresses, rule.source_ip_groups, estate, sender, None, "")
    if rule.rule_type == "application":
        destination = _any(any(_name_matches(name, p) for p in rule.target_fqdns),
                           None if rule.fqdn_tags else False, None if rule.web_categories else False,
                           None if rule.target_urls else False)
        if rule.destination_addresses:
            destination = _all(destination, None)
        return _all("https:443" in rule.protocols, source, destination)
    ports = _port_ranges(rule.destination_ports) or []
    protocol = any(p in ("tcp", "any") for p in rule.protocols)
    fqdn: Tri = any(name.strip().lower() == f.strip().lower() for f in rule.destination_fqdns)
    if fqdn and not dns_proxy:
        fqdn = None
    destination = _any(_fw_addresses(rule.destination_addresses, rule.destination_ip_groups, estate, address, tags,
                                     required_tag), fqdn)
    return _all(protocol, any(low <= 443 <= high for low, high in ports), source, destination)


def _firewall_rules(estate: Estate, firewall: AzureFirewall) -> list[tuple[FirewallRule, str]]:
    """(rule, action) in processing order."""
    def order(priority: int | None) -> tuple[bool, int]:
        return priority is None, priority or 0

    result: list[tuple[FirewallRule, str]] = []
    if not firewall.policy_id:
        for rule_type in ("nat", "network", "application"):
            for _, collection in sorted(((i, c) for i, (t, c) in enumerate(firewall.collections) if t == rule_type),
                                        key=lambda ic: (order(ic[1].priority), ic[0])):
                result += [(r, collection.action) for r in collection.rules]
        return result
    chain = []
    policy_id = firewall.policy_id
    while policy_id:
        policy = estate.firewall_policies[policy_id.strip().rstrip("/").lower()]
        chain.insert(0, policy)
        policy_id = policy.base_policy_id
    for rule_type in ("nat", "network", "application"):
        for level, policy in enumerate(chain):
            if rule_type == "nat" and level != len(chain) - 1:
                continue
            groups = [estate.rule_collection_groups[g.strip().rstrip("/").lower()]
                      for g in policy.rule_collection_group_ids]
            for group in sorted(groups, key=lambda g: (g.priority, g.name.lower())):
                collections = sorted(enumerate(group.collections), key=lambda ic: (order(ic[1].priority), ic[0]))
                for _, collection in collections:
                    result += [(r, collection.action) for r in collection.rules if r.rule_type == rule_type]
    return result


def firewall_verdict(estate: Estate, firewall: AzureFirewall, source_ip: str, address: Address, name: str,
                     tags: ServiceTags, *, required_tag: str = "") -> tuple[str, str | None]:
    if firewall.policy_id:
        policy = estate.firewall_policies[firewall.policy_id.strip().rstrip("/").lower()]
        dns_proxy = policy.dns_proxy
    else:
        dns_proxy = firewall.dns_proxy
    rules = _firewall_rules(estate, firewall)
    sender, destination = _address(source_ip), _address(address)

    def decide(start: int) -> tuple[str, str | None]:
        for index in range(start, len(rules)):
            rule, action = rules[index]
            applies = _fw_rule_applies(rule, estate, sender, destination, name, tags, required_tag, dns_proxy)
            if applies is False:
                continue
            verdict = "allow" if action == "allow" else "deny"
            if verdict == "allow" and rule.terminate_tls:
                return "unknown", rule.name
            if applies:
                return verdict, rule.name
            rest = decide(index + 1)
            if rest[0] == verdict:
                return verdict, (rule.name if verdict == "deny" else rest[1])
            return "unknown", (rest[1] if rest[0] == "unknown" else rule.name)
        return "deny", None

    return decide(0)


# --- Private endpoints --------------------------------------------------------------------------------------

def endpoint_next_hop(table: RouteTable | None, vnet: VirtualNetwork, subnet: Subnet | None, address: Address,
                      tags: ServiceTags, endpoint_space: Sequence[str], route_policies: bool) -> tuple[str, str]:
    """The next hop of one packet to a private endpoint's IP, from the docs' wording, address by address: the endpoint
    propagates a /32 route (next hop InterfaceEndpoint); with network policies for route tables on its subnet, a user
    route whose prefix is as wide as the endpoint VNet's address space (``endpoint_space``) or wider invalidates it,
    and the usual longest prefix match decides (learn.microsoft.com/azure/private-link/disable-private-endpoint-
    network-policy). Otherwise only a user /32 for the address wins (equal length: user before system)."""
    destination = _address(address)
    spaces = [n for n in (_network(p) for p in endpoint_space) if n is not None and destination in n]
    space_length = min((n.prefixlen for n in spaces), default=-1)
    user = [(r, n) for r in (table.routes if table is not None else ()) if (n := _network(r.address_prefix.strip()))
            is not None and destination in n]
    if route_policies and any(n.prefixlen <= space_length for _, n in user):
        return route_next_hop(table, vnet, subnet, address, tags)
    for route, network in user:
        if network.prefixlen == 32:
            return route.next_hop_type, route.name
    return "InterfaceEndpoint", "system: private endpoint"
