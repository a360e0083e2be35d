"""Property tests: IPSet against Python sets, evaluate_nsg and evaluate_routes against the brute-force oracle, and
apply-the-plan-and-rescan with an NSG shared by two subnets and subnet-scoped rule sources.

Universes are kept small (a /24 of destinations) so the oracle can be asked about every single address.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr_remediate.config import Settings
from asr_remediate.engine import scan
from asr_remediate.estate import BUILTIN_DEFAULT_RULES, build_estate
from asr_remediate.ipset import MAX_IPV4, IPSet, _plain_prefix, parse_ipv4_prefix
from asr_remediate.model import (
    NetworkSecurityGroup,
    Route,
    RouteTable,
    SecurityRule,
    ServiceEndpoint,
    Subnet,
    VirtualNetwork,
)
from asr_remediate.nsg import FlowSource, evaluate_nsg
from asr_remediate.planner import apply_changes
from asr_remediate.routes import evaluate_routes
from asr_remediate.servicetags import ServiceTags
from tests.oracle import nsg_verdict, route_next_hop
from tests.scenario import full_tags
from tests.test_plan_acceptance import two_subnets

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def addresses_of(s: IPSet) -> set[int]:
    return {a for start, end in s.intervals for a in range(start, end + 1)}


# --- (a) IPSet algebra ------------------------------------------------------------------------------------------

LOW_UNIVERSE = int(ipaddress.IPv4Address("10.0.0.0"))


def to_address(offset: int, edges: bool) -> int:
    """Offsets 0..255 → a /24 (10.0.0.0/24), or with ``edges`` the first and last 128 addresses of IPv4."""
    if not edges:
        return LOW_UNIVERSE + offset
    return offset if offset < 128 else MAX_IPV4 - 255 + offset


@st.composite
def address_sets(draw: Any, edges: bool) -> tuple[IPSet, set[int]]:
    """An IPSet built either from single addresses or from random (overlapping, unsorted) intervals."""
    if draw(st.booleans()):
        offsets = draw(st.sets(st.integers(0, 255), max_size=60))
        values = {to_address(o, edges) for o in offsets}
        return IPSet.of((v, v) for v in values), values
    intervals = []
    values = set()
    for _ in range(draw(st.integers(0, 6))):
        a, b = sorted(draw(st.lists(st.integers(0, 255), min_size=2, max_size=2)))
        if edges and a < 128 <= b:
            b = 127  # keep intervals contiguous in the real address space
        start, end = to_address(a, edges), to_address(b, edges)
        intervals.append((start, end))
        values |= set(range(start, end + 1))
    return IPSet.of(intervals), values


def universe(edges: bool) -> set[int]:
    return {to_address(o, edges) for o in range(256)}


def check_normal_form(s: IPSet) -> None:
    for (_, end), (start, _) in zip(s.intervals, s.intervals[1:], strict=False):
        assert end + 1 < start, "sorted, disjoint and not adjacent"
    assert all(0 <= a <= b <= MAX_IPV4 for a, b in s.intervals)


@PROPERTY
@given(st.booleans().flatmap(lambda e: st.tuples(st.just(e), address_sets(e), address_sets(e))))
def test_ipset_algebra_matches_python_sets(case):
    edges, (a, sa), (b, sb) = case
    for result, expected in ((a | b, sa | sb), (a & b, sa & sb), (a - b, sa - sb), (b - a, sb - sa), (a, sa)):
        check_normal_form(result)
        assert addresses_of(result) == expected
        assert result.size == len(expected)
    u = universe(edges)
    u_set = IPSet.of((v, v) for v in u)
    assert addresses_of(a.complement() & u_set) == u - sa
    assert a.complement().size == 2**32 - len(sa)
    assert a.complement().complement() == a
    assert a.issubset(b) == (sa <= sb)
    assert a.overlaps(b) == bool(sa & sb)
    assert bool(a) == bool(sa)
    probes = u | {min(u) - 1, max(u) + 1} - {-1, MAX_IPV4 + 1}
    assert all(a.contains(p) == (p in sa) for p in probes)


@st.composite
def lopsided_sets(draw: Any) -> tuple[IPSet, set[int], IPSet, set[int]]:
    """A few wide intervals and many single addresses (over 8 times as many): what a rule's CIDRs meet in a service
    tag, where intersection binary-searches the larger set and copies the intervals inside a wide one as a slice."""
    wide: list[tuple[int, int]] = []
    for _ in range(draw(st.integers(1, 3))):
        a, b = sorted(draw(st.lists(st.integers(0, 255), min_size=2, max_size=2)))
        wide.append((LOW_UNIVERSE + a, LOW_UNIVERSE + b))
    offsets = draw(st.sets(st.integers(0, 255).filter(lambda o: o % 2 == 0), min_size=30, max_size=100))
    narrow = {LOW_UNIVERSE + o for o in offsets}  # even offsets: never adjacent, so each stays its own interval
    return (IPSet.of(wide), {v for start, end in wide for v in range(start, end + 1)},
            IPSet.of((v, v) for v in narrow), narrow)


@PROPERTY
@given(lopsided_sets())
def test_lopsided_and_equal_operands_match_python_sets(case):
    a, sa, b, sb = case
    for result, expected in ((a & b, sa & sb), (b & a, sa & sb), (a - b, sa - sb), (b - a, sb - sa),
                             (a & a, sa), (a - a, set()), (b & b, sb), (b - b, set()),
                             (a & IPSet(a.intervals), sa), (b - IPSet(b.intervals), set()),
                             (a | IPSet(a.intervals), sa), (b | b, sb)):
        check_normal_form(result)
        assert addresses_of(result) == expected


def ipaddress_interval(text: str) -> tuple[int, int] | None:
    try:
        network = ipaddress.IPv4Network(text.strip(), strict=False)
    except ValueError:
        return None
    return int(network.network_address), int(network.broadcast_address)


PREFIX_PIECES = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "007", "0x1", "1_0", "+1", " 1",
                                                                         "\u0661", "", "255", "256"]))


@PROPERTY
@given(st.one_of(
    st.tuples(st.lists(PREFIX_PIECES, min_size=3, max_size=5), st.one_of(st.none(), PREFIX_PIECES)).map(
        lambda parts: ".".join(parts[0]) + ("" if parts[1] is None else "/" + parts[1])),
    st.text(alphabet="0123456789./ x", max_size=22)))
def test_the_quick_prefix_parser_agrees_with_ipaddress(text):
    """parse_ipv4_prefix's quick path (_plain_prefix) answers only what ipaddress accepts, with its interval."""
    quick = _plain_prefix(text.strip())
    if quick is not None:
        assert quick == ipaddress_interval(text)


@PROPERTY
@given(st.lists(st.integers(0, 255), min_size=4, max_size=4), st.one_of(st.none(), st.integers(0, 32)))
def test_the_quick_prefix_parser_takes_every_plain_address_and_cidr(octets, length):
    text = ".".join(map(str, octets)) + ("" if length is None else f"/{length}")
    assert _plain_prefix(text) == ipaddress_interval(text) is not None
    parse_ipv4_prefix.cache_clear()
    assert parse_ipv4_prefix(f" {text} ") == ipaddress_interval(text)


@PROPERTY
@given(st.booleans().flatmap(lambda e: address_sets(e)))
def test_to_cidrs_is_an_exact_minimal_cover(case):
    s, expected = case
    cidrs = s.to_cidrs()
    networks = [ipaddress.IPv4Network(c) for c in cidrs]
    covered: set[int] = set()
    for network in networks:
        block = set(range(int(network.network_address), int(network.broadcast_address) + 1))
        assert not covered & block, "disjoint"
        covered |= block
    assert covered == expected
    # minimal: no two blocks are the two halves of one bigger block
    present = set(networks)
    for network in networks:
        if network.prefixlen:
            parent = network.supernet()
            assert not all(half in present for half in parent.subnets()), parent
    assert IPSet.from_prefixes(cidrs) == s


# --- (b) NSG vs the oracle --------------------------------------------------------------------------------------

DEST_BASE = "20.9.0.0"
DEST_UNIVERSE = ipaddress.IPv4Network(f"{DEST_BASE}/24")
VNET = "10.0.0.0/16"
ASG_1 = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/one"
ASG_2 = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/Two"


@st.composite
def cidr_in(draw: Any, network: ipaddress.IPv4Network, min_length: int | None = None) -> str:
    """A random aligned block inside ``network`` (or ``network`` itself)."""
    length = draw(st.integers(min_length if min_length is not None else network.prefixlen, 32))
    blocks = 2 ** (length - network.prefixlen)
    index = draw(st.integers(0, blocks - 1))
    size = 2 ** (32 - length)
    return f"{ipaddress.IPv4Address(int(network.network_address) + index * size)}/{length}"


DEST_CIDR = cidr_in(DEST_UNIVERSE, 25)

def weighted(*choices: tuple[int, Any]) -> st.SearchStrategy[Any]:
    return st.sampled_from([value for weight, value in choices for _ in range(weight)])


SOURCE_PREFIXES = weighted(
    (6, ("*",)), (3, ("VirtualNetwork",)), (2, ("Internet",)), (1, ("AzureLoadBalancer",)), (3, ("10.0.1.0/29",)),
    (2, ("10.0.1.4",)), (2, ("10.0.1.8/29",)), (2, ("10.0.0.0/16",)), (2, ("SrcTag",)), (1, ("Nope",)),
    (1, ("2001:db8::/32",)), (2, ("10.0.1.0/30", "10.0.1.12/30")), (2, ("10.0.1.0/28",)), (1, ("any",)),
)
SOURCE_PORTS = weighted(
    (10, ("*",)), (2, ("1024-65535",)), (2, ("0-1023",)), (2, ("1024-2000",)), (2, ("49152-65535",)),
    (1, ("0-1023", "1024-65535")), (1, ("0-2000", "1500-65535")), (1, ("garbage",)),
)
DEST_PORTS = weighted(
    (10, ("*",)), (6, ("443",)), (2, ("400-500",)), (2, ("80",)), (2, ("80", "443")), (2, ("22", "8080-8090")),
    (1, ("444-65535",)), (1, ("https",)),
)
NAMED_DESTINATIONS = weighted(
    (3, ("*",)), (4, ("Internet",)), (4, ("VirtualNetwork",)), (4, ("FakeA",)), (4, ("FakeA.RegionOne",)),
    (3, ("FakeB",)), (1, ("Nope",)), (1, ("Nope.RegionOne",)), (1, ("AzureLoadBalancer",)), (1, ("0.0.0.0/0",)),
)


@st.composite
def security_rules(draw: Any, name: str, priority: int) -> SecurityRule:
    source_asgs: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    if draw(st.integers(0, 5)) == 0:
        source_asgs = tuple(draw(st.lists(st.sampled_from([ASG_1, ASG_2, ASG_2.upper()]), min_size=1, max_size=2,
                                          unique=True)))
    else:
        source = draw(SOURCE_PREFIXES)
    destination_asgs: tuple[str, ...] = ()
    kind = draw(st.integers(0, 19))
    if kind == 0:
        destination: tuple[str, ...] = ()
        destination_asgs = (ASG_1,)
    elif kind <= 11:
        destination = tuple(draw(st.lists(DEST_CIDR, min_size=1, max_size=3)))
        if draw(st.integers(0, 5)) == 0:
            destination += ("2001:db8::/32",)
    else:
        destination = draw(NAMED_DESTINATIONS)
    return SecurityRule(
        name=name,
        priority=priority,
        direction=draw(st.sampled_from(["outbound"] * 6 + ["inbound"])),
        access=draw(st.sampled_from(["allow", "deny"])),
        protocol=draw(st.sampled_from(["*", "tcp", "tcp", "udp", "icmp", "any"])),
        source_prefixes=source,
        source_ports=draw(SOURCE_PORTS),
        destination_prefixes=destination,
        destination_ports=draw(DEST_PORTS),
        source_asgs=source_asgs,
        destination_asgs=destination_asgs,
    )


def fake_tags(draw: Any) -> ServiceTags:
    def cidrs() -> list[str]:
        drawn: list[str] = draw(st.lists(DEST_CIDR, min_size=1, max_size=3))
        return [*drawn, "2603:1000::/40"]

    return ServiceTags.from_values("1", [
        {"name": "FakeA", "properties": {"region": "", "addressPrefixes": cidrs()}},
        {"name": "FakeA.RegionOne", "properties": {"region": "regionone", "addressPrefixes": cidrs()}},
        {"name": "FakeB", "properties": {"region": "", "addressPrefixes": cidrs()}},
        {"name": "SrcTag", "properties": {"region": "",
                                          "addressPrefixes": [draw(cidr_in(ipaddress.IPv4Network("10.0.1.0/28")))]}},
    ])


@st.composite
def nsg_cases(draw: Any) -> dict[str, Any]:
    count = draw(st.integers(0, 10))
    priorities = draw(st.lists(st.integers(100, 4096), min_size=count, max_size=count, unique=True))
    rules = tuple(draw(security_rules(f"r{i}", p)) for i, p in enumerate(priorities))
    defaults = draw(st.sampled_from([
        BUILTIN_DEFAULT_RULES, (), tuple(r for r in BUILTIN_DEFAULT_RULES if r.name != "AllowInternetOutBound"),
    ]))
    group = NetworkSecurityGroup(id="/nsg", name="nsg", location="regionone", rules=rules, default_rules=defaults)
    peered = draw(st.lists(DEST_CIDR, max_size=3))
    source = draw(st.sampled_from(["10.0.1.4", "10.0.1.9", "10.0.1.0/28"]))
    asgs = draw(st.sampled_from([(), (ASG_1,), (ASG_2,)])) if "/" not in source else ()
    destination = draw(st.one_of(st.just([str(DEST_UNIVERSE)]), st.lists(DEST_CIDR, min_size=1, max_size=4)))
    return {
        "nsg": group, "source": source, "asgs": asgs, "vnet": [VNET, *peered], "tags": fake_tags(draw),
        "destination": IPSet.from_prefixes(destination),
        "required_tag": draw(st.sampled_from(["", "FakeA.RegionOne", "FakeA", "Nope.RegionOne", "Nope"])),
    }


@PROPERTY
@given(nsg_cases())
def test_evaluate_nsg_agrees_with_the_oracle_address_by_address(case):
    flow = FlowSource(IPSet.from_prefixes([case["source"]]), IPSet.from_prefixes(case["vnet"]),
                      frozenset(a.lower() for a in case["asgs"]))
    pieces = evaluate_nsg(case["nsg"], flow, case["destination"], case["tags"], required_tag=case["required_tag"])
    decided: dict[int, tuple[str, str | None]] = {}
    for piece in pieces:
        assert piece.addresses, "no empty pieces"
        for address in addresses_of(piece.addresses):
            assert address not in decided, "pieces are disjoint"
            decided[address] = (piece.verdict, piece.rule.name if piece.rule else None)
    assert set(decided) == addresses_of(case["destination"]), "pieces cover the destination exactly"
    for address, answer in decided.items():
        expected = nsg_verdict(case["nsg"], case["source"], case["asgs"], case["vnet"], address, case["tags"],
                               required_tag=case["required_tag"])
        assert answer == expected, (str(ipaddress.IPv4Address(address)), answer, expected)


# --- (c) routes vs the oracle -----------------------------------------------------------------------------------

ROUTE_BASES = ["20.9.0.0/24", "10.9.0.0/24", "172.16.9.0/24", "192.168.9.0/24", "100.64.9.0/24"]
HOPS = ["Internet", "VirtualAppliance", "VirtualNetworkGateway", "None", "VnetLocal"]
TAG_NAMES = ["Svc", "Svc.RegionOne", "Other.RegionOne", "AzureCloud", "AzureCloud.regionone", "Dotted.Name",
             "Storage", "Storage.RegionOne", "Storage.RegionTwo"]
REGIONS = {"Svc.RegionOne": "regionone", "Other.RegionOne": "regionone", "AzureCloud.regionone": "regionone",
           "Storage.RegionOne": "regionone", "Storage.RegionTwo": "regiontwo"}


@st.composite
def route_prefix(draw: Any, base: ipaddress.IPv4Network, wide: int = 4) -> str:
    """A block inside the universe, or (1 in ``wide``) one containing it: down to /0."""
    if draw(st.integers(1, wide)) == 1:
        return str(base.supernet(new_prefix=draw(st.integers(0, 23))))
    drawn: str = draw(cidr_in(base, 25))
    return drawn


@st.composite
def route_cases(draw: Any) -> dict[str, Any]:
    base = ipaddress.IPv4Network(draw(st.sampled_from(ROUTE_BASES)))
    pool = draw(st.lists(route_prefix(base), min_size=1, max_size=4))
    shared = st.sampled_from(pool)
    tags = ServiceTags.from_values("1", [
        {"name": name, "properties": {"region": REGIONS.get(name, ""),
                                      "addressPrefixes": draw(st.lists(st.one_of(shared, route_prefix(base, 12)),
                                                                       min_size=1, max_size=3))}}
        for name in TAG_NAMES
    ])
    routes = []
    for index in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 19))
        if kind < 8:
            prefix = draw(shared)  # explicit, often duplicating another route or a tag prefix
        elif kind < 11:
            prefix = draw(route_prefix(base))
        elif kind < 18:
            prefix = draw(st.sampled_from(TAG_NAMES))
        elif kind == 18:
            prefix = "Nope"
        else:
            prefix = "2001:db8::/32"
        hop = draw(st.sampled_from(HOPS))
        routes.append(Route(name=f"r{index}", address_prefix=prefix, next_hop_type=hop,
                            next_hop_ip="10.0.0.4" if hop == "VirtualAppliance" else ""))
    table = None if draw(st.integers(0, 9)) == 0 else RouteTable("/rt", "rt", "regionone", tuple(routes))
    space = ("10.0.0.0/16", *draw(st.lists(route_prefix(base), max_size=1)))
    peered = tuple(draw(st.lists(route_prefix(base), max_size=1)))
    endpoints = draw(weighted(
        (5, ()), (1, (ServiceEndpoint("Microsoft.Storage"),)),
        (1, (ServiceEndpoint("Microsoft.Storage", ("regiontwo",)),)),
        (1, (ServiceEndpoint("Microsoft.Storage", ("*",)),)), (1, (ServiceEndpoint("Microsoft.Sql"),)),
    ))
    subnet = Subnet("/vnet/subnets/s", "s", ("10.0.1.0/24",), service_endpoints=endpoints)
    vnet = VirtualNetwork("/vnet", "vnet", "regionone", space, (subnet,), peered)
    destination = draw(st.one_of(st.just([str(base)]), st.lists(cidr_in(base), min_size=1, max_size=4)))
    return {"table": table, "vnet": vnet, "subnet": subnet, "tags": tags,
            "destination": IPSet.from_prefixes(destination)}


@PROPERTY
@given(route_cases())
def test_evaluate_routes_agrees_with_the_oracle_address_by_address(case):
    hops = evaluate_routes(case["table"], case["vnet"], case["subnet"], case["destination"], case["tags"])
    decided: dict[int, tuple[str, str]] = {}
    for hop in hops:
        assert hop.addresses, "no empty hops"
        answer = ("unknown" if hop.origin == "unknown" else hop.next_hop_type, hop.route_name)
        for address in addresses_of(hop.addresses):
            assert address not in decided, "hops are disjoint"
            decided[address] = answer
    assert set(decided) == addresses_of(case["destination"]), "hops cover the destination exactly"
    for address, answer in decided.items():
        expected = route_next_hop(case["table"], case["vnet"], case["subnet"], address, case["tags"])
        assert answer == expected, (str(ipaddress.IPv4Address(address)), answer, expected)


@PROPERTY
@given(st.data())
def test_tag_block_index_finds_exactly_the_blocks_a_brute_force_scan_finds(data):
    """The index a tag's blocks get (sorted by start, each with its enclosing block, ``routes._BlockIndex``) returns
    the blocks overlapping a set, each once with its first position — as testing every block does. Real tags list
    nested and repeated prefixes (AzureCloud holds Storage's); the drawn ones do too, and the sets cut across them."""
    from asr_remediate.routes import _touching

    base = ipaddress.IPv4Network("10.0.4.0/24")
    prefixes = data.draw(st.lists(st.one_of(route_prefix(base), cidr_in(base)), min_size=9, max_size=40))
    blocks = tuple(parse_ipv4_prefix(p) for p in prefixes)
    addresses = IPSet.from_prefixes(data.draw(st.lists(cidr_in(base), min_size=1, max_size=6)))
    found = _touching(blocks, addresses)
    first: dict[tuple[int, int], int] = {}
    for position, block in enumerate(blocks):
        first.setdefault(block, position)
    expected = {(position, block) for block, position in first.items() if any(
        start <= block[1] and block[0] <= end for start, end in addresses.intervals)}
    assert len(found) == len(set(found)), "each block once"
    assert set(found) == expected


# --- real Service Tags data: the oracle at every piece boundary ----------------------------------------------------


def _edges(s: IPSet) -> list[int]:
    """First and last address of every interval: where a wrong split would show."""
    return sorted({a for start, end in s.intervals for a in (start, end)})


def test_evaluate_nsg_agrees_with_the_oracle_on_real_tags_at_every_edge():
    from tests import tagdata

    tags = tagdata.full()
    rules = (
        SecurityRule("allow-asr", 100, "outbound", "allow", "tcp", destination_prefixes=("AzureSiteRecovery",),
                     destination_ports=("443",)),
        SecurityRule("deny-kv", 110, "outbound", "deny", "*", destination_prefixes=("AzureKeyVault.EastUS",)),
        SecurityRule("allow-storage", 120, "outbound", "allow", "tcp", destination_prefixes=("Storage",),
                     source_prefixes=("10.0.1.0/29",)),  # partial for the subnet below: falls through
        SecurityRule("deny-eventhub", 130, "outbound", "deny", "*", destination_prefixes=("EventHub",),
                     source_ports=("1024-5000",)),  # partial, but a Deny counts
        SecurityRule("deny-internet", 4000, "outbound", "deny", "*", destination_prefixes=("Internet",)),
    )
    group = NetworkSecurityGroup("/nsg", "nsg", "eastus", rules, BUILTIN_DEFAULT_RULES)
    wanted = IPSet()
    for name in ("Storage.EastUS", "EventHub.EastUS", "AzureSiteRecovery", "AzureKeyVault.EastUS",
                 "AzureActiveDirectory"):
        prefixes = tags.prefixes(name)
        assert prefixes is not None
        wanted = wanted | prefixes
    for source in ("10.0.1.4", "10.0.1.0/28"):
        flow = FlowSource(IPSet.from_prefixes([source]), IPSet.from_prefixes([VNET]))
        pieces = evaluate_nsg(group, flow, wanted, tags, required_tag="Storage.EastUS")
        assert {p.rule.name for p in pieces if p.rule} >= {"allow-asr", "deny-kv", "deny-eventhub", "deny-internet"}
        total = IPSet()
        for piece in pieces:
            assert not total.overlaps(piece.addresses)
            total = total | piece.addresses
            answer = (piece.verdict, piece.rule.name if piece.rule else None)
            for address in _edges(piece.addresses):
                assert nsg_verdict(group, source, (), [VNET], address, tags,
                                   required_tag="Storage.EastUS") == answer, ipaddress.IPv4Address(address)
        assert total == wanted


def test_evaluate_routes_agrees_with_the_oracle_on_real_tags_at_every_edge():
    from tests import tagdata

    tags = tagdata.full()
    routes = (
        Route("storage-nva", "Storage", "VirtualAppliance", "10.0.0.4"),
        Route("storage-eastus", "Storage.EastUS", "Internet"),
        Route("cloud-eastus", "AzureCloud.eastus", "VirtualNetworkGateway"),
        Route("cloud", "AzureCloud", "None"),
        Route("explicit", "20.38.98.0/24", "Internet"),
    )
    table = RouteTable("/rt", "rt", "eastus", routes)
    subnet = Subnet("/vnet/subnets/s", "s", ("10.0.1.0/24",),
                    service_endpoints=(ServiceEndpoint("Microsoft.Storage", ("centralus",)),))
    vnet = VirtualNetwork("/vnet", "vnet", "eastus", ("10.0.0.0/16",), (subnet,))
    wanted = IPSet()
    for name in ("Storage.EastUS", "Storage.CentralUS", "EventHub.EastUS", "AzureSiteRecovery",
                 "AzureActiveDirectory"):
        prefixes = tags.prefixes(name)
        assert prefixes is not None
        wanted = wanted | prefixes
    hops = evaluate_routes(table, vnet, subnet, wanted, tags)
    assert {h.route_name for h in hops} >= {"service endpoint", "storage-eastus", "cloud-eastus"}
    total = IPSet()
    for hop in hops:
        assert not total.overlaps(hop.addresses)
        total = total | hop.addresses
        answer = ("unknown" if hop.origin == "unknown" else hop.next_hop_type, hop.route_name)
        for address in _edges(hop.addresses):
            assert route_next_hop(table, vnet, subnet, address, tags) == answer, ipaddress.IPv4Address(address)
    assert total == wanted


# --- (d) apply the plan and rescan, with one NSG shared by two subnets and subnet-scoped rule sources ------------

SHARED_SOURCES = ["*", "VirtualNetwork", "10.1.1.0/24", "10.1.2.0/24", "10.1.2.4", "10.1.0.0/16", "10.7.0.0/16"]
SHARED_DESTINATIONS = ["Internet", "*", "Storage.EastUS", "AzureSiteRecovery", "AzureActiveDirectory",
                       "EventHub.CentralUS", "AzureCloud", "20.0.0.0/8"]


@st.composite
def shared_nsg_rules(draw: Any) -> list[dict[str, Any]]:
    priorities = draw(st.lists(st.integers(100, 4096), max_size=7, unique=True))
    return [{"name": f"r{p}", "priority": p, "access": draw(st.sampled_from(["Allow", "Deny"])),
             "destination": draw(st.sampled_from(SHARED_DESTINATIONS)), "protocol": draw(st.sampled_from(["*", "Tcp"])),
             "port": draw(st.sampled_from(["*", "443"])), "source": draw(st.sampled_from(SHARED_SOURCES))}
            for p in priorities]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shared_nsg_rules(), st.sampled_from(["subnet", "vm"]), st.sampled_from(["tag", "prefix"]))
def test_applying_a_shared_nsg_plan_fixes_what_it_says_and_replanning_is_empty(rules, scope, style):
    """Two VMs in two subnets behind one NSG, denies and allows that match one subnet, one NIC or both (a Deny matching
    part of the senders counts, an Allow does not): after applying the plan every finding it marked fixable is gone,
    nothing the plan did not mean to fix appears, a second plan is empty, and every planned rule allows only the
    senders it fixes (the subnets, or the NIC IPs) and, in prefix style, only prefixes of its destination."""
    estate = build_estate(two_subnets(rules, prefixes=("10.1.2.0/24", "10.1.1.0/24")))
    tags, cfg = full_tags(), Settings(source_scope=scope, rule_style=style)
    plan = scan(estate, tags, cfg)
    after = scan(apply_changes(estate, plan.changes), tags, cfg)
    before = {(r.name, f.side, f.destination, f.kind) for r in plan.reports for f in r.findings
              if f.severity == "error"}
    remaining = {(r.name, f.side, f.destination, f.kind) for r in after.reports for f in r.findings
                 if f.severity == "error"}
    fixable = {(r.name, f.side, f.destination, f.kind) for r in plan.reports for f in r.findings if f.fixable}
    assert not fixable & remaining
    assert remaining <= before
    assert after.changes == ()
    senders = {"vm-a": ("10.1.2.0/24", "10.1.2.4/32"), "vm-b": ("10.1.1.0/24", "10.1.1.4/32")}
    for change in plan.changes:
        wanted = IPSet.from_prefixes(senders[f.vm_id.rsplit("/", 1)[-1]][scope == "vm"] for f in change.fixes)
        assert IPSet.from_prefixes(change.properties["sourceAddressPrefixes"]) == wanted
        destination = tags.prefixes(change.destination)
        assert destination is not None
        planned = change.properties.get("destinationAddressPrefixes") or [change.properties["destinationAddressPrefix"]]
        if style == "prefix":
            assert IPSet.from_prefixes(planned).issubset(destination)
        else:
            assert planned == [change.destination]
