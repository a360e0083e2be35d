"""Route evaluation for a subnet over address sets: which next hop each required address takes.

Azure picks the longest prefix match among the subnet's user routes and the system routes; at equal length a
user route beats BGP beats system. Service-tag routes take part with each of the tag's published prefixes, but at
equal length an explicit-prefix route beats them and a regional tag beats a top-level tag (then AzureCloud
regional, then AzureCloud). Service-endpoint routes cannot be overridden at all.
BGP routes are not in the route table: the caller passes them when a NIC's effective routes were read, and warns
about them otherwise (see ``bgp_may_override``).

Worked example — forced tunnelling with one "exception" route: the tag route wins for the regional Storage
prefixes (a longer match than 0.0.0.0/0), the rest of the destination follows the default route to the gateway:

>>> from asr_remediate.model import Route, RouteTable, Subnet, VirtualNetwork
>>> from asr_remediate.servicetags import ServiceTags
>>> tags = ServiceTags.from_values("1", [{"name": "Storage.EastUS",
...     "properties": {"region": "eastus", "addressPrefixes": ["20.38.0.0/16"]}}])
>>> table = RouteTable("/rt", "rt", "eastus", (Route("forced", "0.0.0.0/0", "VirtualNetworkGateway"),
...                                           Route("storage", "Storage.EastUS", "Internet")))
>>> subnet = Subnet("/vnet/subnets/s", "s", ("10.0.1.0/24",), route_table_id="/rt")
>>> vnet = VirtualNetwork("/vnet", "vnet", "eastus", ("10.0.0.0/16",), (subnet,))
>>> for hop in evaluate_routes(table, vnet, subnet, IPSet.from_prefixes(["20.38.0.0/16", "40.0.0.0/8"]), tags):
...     print(hop.addresses, hop.next_hop_type, hop.route_name, hop.verdict)
20.38.0.0/16 Internet storage ok
40.0.0.0/8 VirtualNetworkGateway forced error
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .ipset import EMPTY, IdentityCache, IPSet, is_ipv4_prefix, parse_ipv4_prefix
from .model import Route, RouteTable, Subnet, VirtualNetwork
from .servicetags import ServiceTag, ServiceTags

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


def _tag_tier(tags: ServiceTags, name: str) -> int:
    tag = tags.get(name)
    cloud = name.split(".", 1)[0].lower() == "azurecloud"
    # Regional means the tag has a region (Storage.EastUS), not that its name has a dot: AzureFrontDoor.Frontend or
    # AzureActiveDirectory.ServiceEndpoint are region-less, i.e. top-level in Azure's tie order.
    regional = bool(tag and tag.region)
    if cloud:
        return CLOUD_REGIONAL if regional else CLOUD_TOP
    return TAG_REGIONAL if regional else TAG_TOP


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
    return list(route_hops(table, vnet, subnet, destination, tags, bgp))


def route_hops(
    table: RouteTable | None,
    vnet: VirtualNetwork,
    subnet: Subnet | None,
    destination: IPSet,
    tags: ServiceTags,
    bgp: Iterable[Route] = (),
) -> tuple[Hop, ...]:
    """``evaluate_routes``, memoised per (route table, VNet address spaces, service endpoints, BGP routes,
    destination): the VMs of a subnet, and the subnets sharing a route table, all ask the same question."""
    learned = tuple(bgp)
    endpoints = subnet.service_endpoints if subnet is not None else ()
    compiled = _TABLES.get((table, tags), None, lambda: _compile(table, tags))
    # VNet and peered spaces that do not touch the destination never carry any of it: leave them out of the key.
    spaces = None if isinstance(compiled, Route) else _SPACES.get((vnet, destination), None,
                                                                   lambda: _touching_spaces(vnet, destination))
    extra = (vnet.location, spaces, endpoints, learned)
    return _RESULTS.get((table, tags, destination), extra,
                        lambda: _evaluate(compiled, vnet, spaces or ((), ()), subnet, destination, tags, learned))


def _touching_spaces(vnet: VirtualNetwork, destination: IPSet) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The VNet's address prefixes and peered prefixes that overlap ``destination`` (all are parsed, so a bad one
    raises as it would when the system routes are built)."""
    own = tuple(p for p in vnet.address_prefixes if _overlaps(destination, *parse_ipv4_prefix(p)))
    peered = tuple(p for p in vnet.peered_address_prefixes if _overlaps(destination, *parse_ipv4_prefix(p)))
    return own, peered


def _evaluate(compiled: tuple[_Group, ...] | Route, vnet: VirtualNetwork,
              spaces: tuple[tuple[str, ...], tuple[str, ...]], subnet: Subnet | None, destination: IPSet,
              tags: ServiceTags, bgp: tuple[Route, ...]) -> tuple[Hop, ...]:
    hops: list[Hop] = []
    remaining = destination
    endpoint = service_endpoint_addresses(subnet, vnet.location, tags) & remaining
    if endpoint:
        hops.append(Hop(endpoint, "VirtualNetworkServiceEndpoint", "service endpoint", "service-endpoint"))
        remaining = remaining - endpoint
    if isinstance(compiled, Route):
        # A route names a tag the data does not have: everything still undecided is unknown.
        route = compiled
        if remaining:
            hops.append(Hop(remaining, route.next_hop_type, route.name, "unknown", route.next_hop_ip,
                            route.address_prefix.strip()))
        return tuple(hops)
    groups: list[_Group] = list(compiled)
    for learned in bgp:
        if is_ipv4_prefix(learned.address_prefix):
            groups.append(_Group((parse_ipv4_prefix(learned.address_prefix),), BGP, learned.next_hop_type,
                                 learned.name, "bgp", learned.next_hop_ip, learned.address_prefix))
    for space, hop_type, label in (
        (spaces[0], "VnetLocal", "system: virtual network"),
        (spaces[1], "VNetPeering", "system: peering"),
    ):
        groups.append(_Group(tuple(parse_ipv4_prefix(p) for p in space), SYSTEM, hop_type, label, "system", "", ""))
    groups.extend(_DEFAULT_GROUPS)
    if not remaining:
        return tuple(hops)
    return tuple(hops) + _longest_prefix_match(groups, remaining, destination)


@dataclass(frozen=True)
class _Group:
    """The candidates one route contributes (a tag route: one per published prefix), in table order."""

    blocks: tuple[tuple[int, int], ...]
    tier: int
    next_hop_type: str
    route_name: str
    origin: str
    next_hop_ip: str
    prefix: str


_DEFAULT_GROUPS = tuple(
    _Group((parse_ipv4_prefix(prefix),), SYSTEM, hop_type, f"system: default {prefix}", "system", "", prefix)
    for prefix, hop_type in SYSTEM_DEFAULTS
)
_RESULTS: IdentityCache[tuple[Hop, ...]] = IdentityCache()
_TABLES: IdentityCache[tuple[_Group, ...] | Route] = IdentityCache(4096)
_SPACES: IdentityCache[tuple[tuple[str, ...], tuple[str, ...]]] = IdentityCache()
_TAG_BLOCKS: IdentityCache[tuple[tuple[int, int], ...]] = IdentityCache(8192)  # a tag's published prefixes
_TOUCHING: IdentityCache[tuple[tuple[int, tuple[int, int]], ...]] = IdentityCache()  # (position, block) in a set
_BLOCK_INDEXES: IdentityCache[_BlockIndex] = IdentityCache(8192)  # a tag's blocks sorted, as _tag_blocks


def _compile(table: RouteTable | None, tags: ServiceTags) -> tuple[_Group, ...] | Route:
    """The user routes of a table as candidate groups, or the first route naming an unknown tag."""
    groups = []
    for route in table.routes if table else ():
        prefix = route.address_prefix.strip()
        hop, ip = route.next_hop_type, route.next_hop_ip
        if is_ipv4_prefix(prefix):
            groups.append(_Group((parse_ipv4_prefix(prefix),), EXPLICIT, hop, route.name, "user", ip, prefix))
        elif ":" in prefix:
            continue
        else:
            tag = tags.get(prefix)
            if tag is None:
                return route
            blocks = _tag_blocks(tag)
            groups.append(_Group(blocks, _tag_tier(tags, prefix), hop, route.name, "user", ip, prefix))
    return tuple(groups)


def _tag_blocks(tag: ServiceTag) -> tuple[tuple[int, int], ...]:
    """A tag's published prefixes as blocks, parsed once and shared by every table routing the tag."""
    return _TAG_BLOCKS.get((tag,), None, lambda: tuple(parse_ipv4_prefix(c) for c in tag.cidrs))


def _touching(blocks: tuple[tuple[int, int], ...], addresses: IPSet) -> tuple[tuple[int, tuple[int, int]], ...]:
    """The blocks that overlap ``addresses``, with their positions (memoised per tag and destination: shared by
    every table that routes the tag; found through the tag's index, not by testing each of its blocks)."""
    def build() -> tuple[tuple[int, tuple[int, int]], ...]:
        index = _BLOCK_INDEXES.get((blocks,), None, lambda: _BlockIndex.of(blocks))
        return tuple((index.positions[b], b) for b in index.touching(addresses))

    return _TOUCHING.get((blocks, addresses), None, build)


@dataclass(frozen=True)
class _BlockIndex:
    """A tag's blocks, built once per tag: each distinct block with its first position, sorted by (start, -end) —
    outer first at equal start — with the position in that order of its innermost enclosing block.

    The blocks are CIDR blocks (nested or disjoint), so those touching an address set are, per interval of the set,
    the enclosing blocks of its first address (a walk up ``parents``, at most 33 deep) and the blocks starting inside
    it (a bisect on ``starts``): the cost follows the set's intervals, not the tag's thousands of blocks.
    """

    blocks: tuple[tuple[int, int], ...]
    starts: tuple[int, ...]
    parents: tuple[int, ...]  # position in ``blocks`` of the innermost block containing this one, or -1
    positions: Mapping[tuple[int, int], int]  # first position in the tag's list

    @classmethod
    def of(cls, blocks: tuple[tuple[int, int], ...]) -> _BlockIndex:
        positions: dict[tuple[int, int], int] = {}
        for position, block in enumerate(blocks):
            positions.setdefault(block, position)
        ordered = sorted(positions, key=_outer_first)
        parents: list[int] = []
        stack: list[int] = []  # positions of the open blocks, innermost last
        for start, _ in ordered:
            while stack and ordered[stack[-1]][1] < start:
                stack.pop()
            parents.append(stack[-1] if stack else -1)
            stack.append(len(parents) - 1)
        return cls(tuple(ordered), tuple(b[0] for b in ordered), tuple(parents), positions)

    def touching(self, addresses: IPSet) -> list[tuple[int, int]]:
        """The blocks that overlap ``addresses``, each once, in (start, -end) order."""
        blocks, starts, parents = self.blocks, self.starts, self.parents
        found: list[tuple[int, int]] = []
        previous_end = -1  # blocks starting at or before it were found for an earlier interval
        for start, end in addresses.intervals:
            first = bisect.bisect_left(starts, start)
            enclosing: list[tuple[int, int]] = []
            position = first - 1  # the last block starting before the interval: it or an ancestor may enclose it
            while position >= 0 and starts[position] > previous_end:
                block = blocks[position]
                if block[1] >= start:
                    enclosing.append(block)
                position = parents[position]
            found.extend(reversed(enclosing))
            found.extend(blocks[first:bisect.bisect_right(starts, end, first)])
            previous_end = end
        return found


def _outer_first(block: tuple[int, int]) -> tuple[int, int]:
    return block[0], -block[1]


def _longest_prefix_match(groups: list[_Group], remaining: IPSet, destination: IPSet) -> tuple[Hop, ...]:
    """Each address of ``remaining`` goes to the best candidate containing it: longest prefix, then lowest tier,
    then first in table order (the order Azure — and a sort by (-length, tier) — applies).

    Candidates are CIDR blocks, so any two are nested or disjoint: the winners form a partition found in one sweep
    over the blocks that touch ``destination`` (⊇ ``remaining``; instead of one set subtraction per candidate).
    Hops come out as the candidate-by-candidate walk would list them: by the rank of their first winning
    candidate, one per route.
    """
    intervals = remaining.intervals
    best: dict[tuple[int, int], tuple[int, int, int]] = {}  # block → (tier, order, group index)
    base = 0  # position of the group's first candidate in the walk's order
    for index, group in enumerate(groups):
        tier = group.tier
        blocks = group.blocks
        touching = (_touching(blocks, destination) if len(blocks) > 8 else
                    [(i, b) for i, b in enumerate(blocks) if _overlaps(destination, b[0], b[1])])
        for position, block in touching:
            order = base + position
            current = best.get(block)
            if current is None or (tier, order) < current[:2]:
                best[block] = (tier, order, index)
        base += len(blocks)
    # Sweep the nested/disjoint blocks (outer first at equal start): the innermost open block owns each address.
    owner: list[tuple[int, int, tuple[int, int]]] = []  # (start, end, block) segments, ascending
    stack: list[tuple[int, int]] = []
    cursor = 0
    for start, end in sorted(best, key=lambda b: (b[0], -b[1])):
        while stack and stack[-1][1] < start:
            top = stack.pop()
            if cursor <= top[1]:
                owner.append((cursor, top[1], top))
                cursor = top[1] + 1
        if stack and cursor < start:
            owner.append((cursor, start - 1, stack[-1]))
        cursor = start
        stack.append((start, end))
    while stack:
        top = stack.pop()
        if cursor <= top[1]:
            owner.append((cursor, top[1], top))
            cursor = top[1] + 1
    # Intersect the segments with what is still undecided.
    won: dict[tuple[int, int], list[tuple[int, int]]] = {}
    i = j = 0
    while i < len(owner) and j < len(intervals):
        seg_start, seg_end, block = owner[i]
        start, end = intervals[j]
        lo, hi = max(seg_start, start), min(seg_end, end)
        if lo <= hi:
            won.setdefault(block, []).append((lo, hi))
        if seg_end < end:
            i += 1
        else:
            j += 1
    # One hop per route, ordered by the rank of its first winning candidate; fields of the last one (as _merge).
    ranked = sorted(won, key=lambda b: (-_length(b), best[b][0], best[b][1]))
    merged: dict[tuple[str, str, str, str], tuple[list[tuple[int, int]], str]] = {}
    for block in ranked:
        group = groups[best[block][2]]
        ident = (group.route_name, group.next_hop_type, group.origin, group.prefix)
        entry = merged.get(ident)
        if entry is None:
            merged[ident] = (list(won[block]), group.next_hop_ip)
        else:
            entry[0].extend(won[block])
            merged[ident] = (entry[0], group.next_hop_ip)
    return tuple(Hop(IPSet.of(addresses), hop_type, name, origin, ip, prefix)
                 for (name, hop_type, origin, prefix), (addresses, ip) in merged.items())


def _length(block: tuple[int, int]) -> int:
    return 32 - (block[1] - block[0] + 1).bit_length() + 1


def _overlaps(addresses: IPSet, start: int, end: int) -> bool:
    intervals = addresses.intervals
    index = bisect.bisect_right(intervals, (end, 2**33)) - 1
    return index >= 0 and intervals[index][1] >= start


def bgp_may_override(vnet: VirtualNetwork, table: RouteTable | None) -> bool:
    """A gateway in the VNet — or a peered hub's, through a peering with useRemoteGateways ("Configure VPN gateway
    transit for virtual network peering": the spoke learns the gateway's routes) — can inject BGP routes (e.g. a
    0.0.0.0/0 from on-premises) unless the subnet's route table turns gateway route propagation off."""
    return ((vnet.has_gateway_subnet or vnet.uses_remote_gateways)
            and not (table is not None and table.disable_bgp_route_propagation))
