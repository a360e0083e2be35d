"""Route evaluation for a subnet over address sets: which next hop each required address takes.

Azure picks the longest prefix match among the subnet's user routes and the system routes; at equal length a
user route beats BGP beats system. Service-tag routes take part with each of the tag's published prefixes, but at
equal length an explicit-prefix route beats them and a regional tag beats a top-level tag (then AzureCloud
regional, then AzureCloud). Service-endpoint routes cannot be overridden at all.
BGP routes are not in the route table: the caller warns about them instead (see ``bgp_may_override``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .ipset import EMPTY, IPSet, is_ipv4_prefix, parse_ipv4_prefix
from .model import Route, RouteTable, Subnet, VirtualNetwork
from .servicetags import ServiceTags

OK_NEXT_HOPS = frozenset({"internet", "virtualnetworkserviceendpoint"})
WARNING_NEXT_HOPS = frozenset({"virtualappliance"})

# Subnet service endpoint → the service tag family whose prefixes it routes directly.
SERVICE_ENDPOINT_TAGS: Mapping[str, str] = {
    "microsoft.storage": "Storage",
    "microsoft.storage.global": "Storage",
    "microsoft.eventhub": "EventHub",
    "microsoft.keyvault": "AzureKeyVault",
    # Not Microsoft.AzureActiveDirectory: that endpoint serves Data Lake Gen1 only, not login.microsoftonline.com.
}

# Tie-break order at equal prefix length (lower wins): user routes (explicit, then tags), BGP, system.
EXPLICIT, TAG_REGIONAL, TAG_TOP, CLOUD_REGIONAL, CLOUD_TOP, BGP, SYSTEM = range(7)

# Azure's default system routes besides the VNet's own and peered spaces.
SYSTEM_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/0", "Internet"),
    ("10.0.0.0/8", "None"),
    ("172.16.0.0/12", "None"),
    ("192.168.0.0/16", "None"),
    ("100.64.0.0/10", "None"),
)


@dataclass(frozen=True)
class Hop:
    addresses: IPSet
    next_hop_type: str  # ARM spelling
    route_name: str  # user route name, or a description of the system route
    origin: str  # "user" | "system" | "service-endpoint" | "unknown"
    next_hop_ip: str = ""
    prefix: str = ""  # the winning route's address prefix (or tag)

    @property
    def verdict(self) -> str:
        """ok / warning (appliance must allow the URLs) / error (traffic cannot reach Azure) / unknown."""
        hop = self.next_hop_type.lower()
        if self.origin == "unknown":
            return "unknown"
        if hop in OK_NEXT_HOPS:
            return "ok"
        if hop in WARNING_NEXT_HOPS:
            return "warning"
        return "error"


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    length: int
    tier: int
    next_hop_type: str
    route_name: str
    origin: str
    next_hop_ip: str
    prefix: str


def _tag_tier(tags: ServiceTags, name: str) -> int:
    tag = tags.get(name)
    cloud = name.split(".", 1)[0].lower() == "azurecloud"
    # Regional means the tag has a region (Storage.EastUS), not that its name has a dot: AzureFrontDoor.Frontend or
    # AzureActiveDirectory.ServiceEndpoint are region-less, i.e. top-level in Azure's tie order.
    regional = bool(tag and tag.region)
    if cloud:
        return CLOUD_REGIONAL if regional else CLOUD_TOP
    return TAG_REGIONAL if regional else TAG_TOP


def _cidr_candidates(
    cidrs: Iterable[str], tier: int, hop: str, name: str, origin: str, ip: str, prefix: str
) -> Iterable[_Candidate]:
    for cidr in cidrs:
        start, end = parse_ipv4_prefix(cidr)
        length = 32 - (end - start + 1).bit_length() + 1
        yield _Candidate(start, end, length, tier, hop, name, origin, ip, prefix)


def service_endpoint_addresses(subnet: Subnet | None, vnet_location: str, tags: ServiceTags) -> IPSet:
    """Addresses a subnet reaches through its service endpoints (those routes cannot be overridden)."""
    result = EMPTY
    if subnet is None:
        return result
    for endpoint in subnet.service_endpoints:
        base = SERVICE_ENDPOINT_TAGS.get(endpoint.service.lower())
        if base is None:
            continue
        locations = endpoint.locations or (vnet_location,)
        for location in locations:
            name = base if location == "*" else tags.regional_tag(base, location)
            prefixes = tags.prefixes(name) if name else None
            if prefixes is not None:
                result = result | prefixes
    return result


def evaluate_routes(
    table: RouteTable | None,
    vnet: VirtualNetwork,
    subnet: Subnet | None,
    destination: IPSet,
    tags: ServiceTags,
    bgp: Iterable[Route] = (),
) -> list[Hop]:
    """Partition ``destination`` by the route that carries each address out of the subnet.

    ``bgp``: routes learned from a gateway (read from a NIC's effective routes) — they lose ties to user routes.
    """
    hops: list[Hop] = []
    remaining = destination
    endpoint = service_endpoint_addresses(subnet, vnet.location, tags) & remaining
    if endpoint:
        hops.append(Hop(endpoint, "VirtualNetworkServiceEndpoint", "service endpoint", "service-endpoint"))
        remaining = remaining - endpoint
    candidates: list[_Candidate] = []
    for route in table.routes if table else ():
        prefix = route.address_prefix.strip()
        hop, ip = route.next_hop_type, route.next_hop_ip
        if is_ipv4_prefix(prefix):
            candidates.extend(_cidr_candidates([prefix], EXPLICIT, hop, route.name, "user", ip, prefix))
        elif ":" in prefix:
            continue
        else:
            tag = tags.get(prefix)
            if tag is None:
                # Cannot know which addresses this route takes: everything still undecided is unknown.
                if remaining:
                    hops.append(Hop(remaining, hop, route.name, "unknown", ip, prefix))
                return hops
            candidates.extend(_cidr_candidates(tag.cidrs, _tag_tier(tags, prefix), hop, route.name, "user", ip, prefix))
    for learned in bgp:
        if is_ipv4_prefix(learned.address_prefix):
            candidates.extend(_cidr_candidates([learned.address_prefix], BGP, learned.next_hop_type, learned.name,
                                               "bgp", learned.next_hop_ip, learned.address_prefix))
    for space, hop_type, label in (
        (vnet.address_prefixes, "VnetLocal", "system: virtual network"),
        (vnet.peered_address_prefixes, "VNetPeering", "system: peering"),
    ):
        candidates.extend(_cidr_candidates(space, SYSTEM, hop_type, label, "system", "", ""))
    for prefix, hop_type in SYSTEM_DEFAULTS:
        label = f"system: default {prefix}"
        candidates.extend(_cidr_candidates([prefix], SYSTEM, hop_type, label, "system", "", prefix))
    candidates.sort(key=lambda c: (-c.length, c.tier))
    for candidate in candidates:
        if not remaining:
            break
        if not _overlaps(remaining, candidate.start, candidate.end):
            continue
        hit = remaining & IPSet(((candidate.start, candidate.end),))
        hops.append(
            Hop(hit, candidate.next_hop_type, candidate.route_name, candidate.origin, candidate.next_hop_ip,
                candidate.prefix)
        )
        remaining = remaining - hit
    return _merge(hops)


def _overlaps(addresses: IPSet, start: int, end: int) -> bool:
    intervals = addresses.intervals
    index = bisect.bisect_right(intervals, (end, 2**33)) - 1
    return index >= 0 and intervals[index][1] >= start


def _merge(hops: list[Hop]) -> list[Hop]:
    """One piece per winning route (a tag route wins with many prefixes)."""
    merged: dict[tuple[str, str, str, str], Hop] = {}
    for hop in hops:
        ident = (hop.route_name, hop.next_hop_type, hop.origin, hop.prefix)
        if ident in merged:
            previous = merged[ident]
            merged[ident] = Hop(previous.addresses | hop.addresses, hop.next_hop_type, hop.route_name, hop.origin,
                                hop.next_hop_ip, hop.prefix)
        else:
            merged[ident] = hop
    return list(merged.values())


def bgp_may_override(vnet: VirtualNetwork, table: RouteTable | None) -> bool:
    """A gateway in the VNet can inject BGP routes (e.g. a 0.0.0.0/0 from on-premises) unless propagation is off."""
    return vnet.has_gateway_subnet and not (table is not None and table.disable_bgp_route_propagation)
