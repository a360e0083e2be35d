"""evaluate_nsg: one test per rule of the NSG semantics (outbound TCP 443 from a NIC or a recovery subnet)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import pytest

from asr_remediate.estate import BUILTIN_DEFAULT_RULES, parse_nsg, parse_security_rule
from asr_remediate.ipset import IPSet
from asr_remediate.model import NetworkSecurityGroup, SecurityRule
from asr_remediate.nsg import FlowSource, Piece, evaluate_nsg, ordered_rules, parse_port_ranges
from asr_remediate.servicetags import ServiceTags
from tests import tagdata

VNET = "10.0.0.0/16"
NIC_IP = "10.0.1.4"
PUBLIC = IPSet.from_prefixes(["20.60.0.0/24", "52.239.0.0/24"])  # stands in for a required tag's addresses
ASG_WEB = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/web"
ASG_DB = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/db"

FAKE_TAGS = ServiceTags.from_values("1", [
    {"name": "FakeSvc", "properties": {"region": "", "addressPrefixes": ["20.60.0.0/25", "2603:1000::/40"]}},
    {"name": "FakeSvc.RegionOne", "properties": {"region": "regionone", "addressPrefixes": ["20.60.0.0/26"]}},
    {"name": "Senders", "properties": {"region": "", "addressPrefixes": ["10.0.1.0/24"]}},
])


def flow(addresses: str | list[str] = NIC_IP, *, vnet: Iterable[str] = (VNET,), asgs: Iterable[str] = ()) -> FlowSource:
    prefixes = [addresses] if isinstance(addresses, str) else addresses
    return FlowSource(IPSet.from_prefixes(prefixes), IPSet.from_prefixes(list(vnet)),
                      frozenset(a.lower() for a in asgs))


def rule(name: str, priority: int, access: str, destination: str | tuple[str, ...] = "*", *,
         direction: str = "outbound", protocol: str = "*", ports: tuple[str, ...] = ("*",),
         source: tuple[str, ...] = ("*",), source_ports: tuple[str, ...] = ("*",),
         source_asgs: tuple[str, ...] = (), destination_asgs: tuple[str, ...] = ()) -> SecurityRule:
    destinations = (destination,) if isinstance(destination, str) else destination
    return SecurityRule(name=name, priority=priority, direction=direction, access=access, protocol=protocol,
                        source_prefixes=source, source_ports=source_ports, destination_prefixes=destinations,
                        destination_ports=ports, source_asgs=source_asgs, destination_asgs=destination_asgs)


def nsg(*rules: SecurityRule, defaults: tuple[SecurityRule, ...] = BUILTIN_DEFAULT_RULES) -> NetworkSecurityGroup:
    return NetworkSecurityGroup(id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
                                   "networkSecurityGroups/n", name="n", location="eastus",
                                rules=tuple(rules), default_rules=defaults)


def run(group: NetworkSecurityGroup, destination: IPSet = PUBLIC, source: FlowSource | None = None,
        tags: ServiceTags = FAKE_TAGS, required_tag: str = "") -> list[Piece]:
    pieces = evaluate_nsg(group, source or flow(), destination, tags, required_tag=required_tag)
    covered = IPSet()
    for piece in pieces:
        assert piece.addresses, "no empty pieces"
        assert not covered.overlaps(piece.addresses), "pieces are disjoint"
        covered = covered | piece.addresses
    assert covered == destination, "pieces partition the destination"
    return pieces


def outcome(pieces: list[Piece]) -> list[tuple[list[str], str, str | None]]:
    """(cidrs, verdict, rule name) per piece, in evaluation order."""
    return [(p.addresses.to_cidrs(), p.verdict, p.rule.name if p.rule else None) for p in pieces]


def single(pieces: list[Piece]) -> tuple[str, str | None]:
    assert len(pieces) == 1, outcome(pieces)
    return pieces[0].verdict, pieces[0].rule.name if pieces[0].rule else None


# --- ordering ------------------------------------------------------------------------------------------------


def test_rules_are_taken_by_priority_not_listing_order():
    group = nsg(rule("allow-late", 300, "allow"), rule("deny-early", 200, "deny"), rule("allow-first", 100, "allow",
                                                                                        "20.60.0.0/24"))
    assert outcome(run(group)) == [
        (["20.60.0.0/24"], "allow", "allow-first"),
        (["52.239.0.0/24"], "deny", "deny-early"),
    ]


def test_custom_rule_at_4096_still_precedes_the_defaults():
    group = nsg(rule("deny-last-custom", 4096, "deny", "Internet"))
    assert single(run(group)) == ("deny", "deny-last-custom")
    assert [r.priority for r in ordered_rules(group)] == [4096, 65000, 65001, 65500]


def test_first_match_wins_and_later_rules_only_see_the_rest():
    group = nsg(rule("deny-half", 100, "deny", "20.60.0.0/25"), rule("allow-all", 110, "allow", "*"),
                rule("deny-all", 120, "deny", "*"))
    assert outcome(run(group)) == [
        (["20.60.0.0/25"], "deny", "deny-half"),
        (["20.60.0.128/25", "52.239.0.0/24"], "allow", "allow-all"),
    ]


def test_inbound_rules_are_ignored():
    group = nsg(rule("deny-in", 100, "deny", direction="inbound"))
    assert single(run(group)) == ("allow", "AllowInternetOutBound")


# --- defaults ------------------------------------------------------------------------------------------------


def test_builtin_defaults_allow_vnet_and_internet():
    destination = IPSet.from_prefixes(["10.0.5.0/24", "20.60.0.0/24"])
    assert outcome(run(nsg(), destination)) == [
        (["10.0.5.0/24"], "allow", "AllowVnetOutBound"),
        (["20.60.0.0/24"], "allow", "AllowInternetOutBound"),
    ]


def test_builtin_defaults_deny_private_space_outside_the_vnet():
    # 192.168.0.0/24 is neither VirtualNetwork (not in this VNet's view) nor denied by AllowInternetOutBound:
    # 'Internet' is everything outside VirtualNetwork, so it is allowed there.
    destination = IPSet.from_prefixes(["192.168.0.0/24"])
    assert single(run(nsg(), destination)) == ("allow", "AllowInternetOutBound")
    # a custom default set without AllowInternetOutBound ends in DenyAllOutBound
    defaults = tuple(r for r in BUILTIN_DEFAULT_RULES if r.name != "AllowInternetOutBound")
    assert single(run(nsg(defaults=defaults), destination)) == ("deny", "DenyAllOutBound")


def test_defaults_from_the_document_are_used_when_present():
    document: dict[str, Any] = {
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/odd",
        "name": "odd",
        "properties": {
            "securityRules": [],
            "defaultSecurityRules": [{"name": "OnlyDenyOut", "properties": {
                "priority": 65500, "direction": "Outbound", "access": "Deny", "protocol": "*",
                "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "destinationPortRange": "*",
                "sourcePortRange": "*"}}],
        },
    }
    group = parse_nsg(document)
    assert [r.name for r in group.default_rules] == ["OnlyDenyOut"]
    assert single(run(group)) == ("deny", "OnlyDenyOut")
    document["properties"].pop("defaultSecurityRules")
    assert single(run(parse_nsg(document))) == ("allow", "AllowInternetOutBound")


def test_no_default_rules_and_no_match_is_a_deny_without_a_rule():
    pieces = run(nsg(rule("allow-one", 100, "allow", "20.60.0.0/24"), defaults=()))
    assert outcome(pieces) == [(["20.60.0.0/24"], "allow", "allow-one"), (["52.239.0.0/24"], "deny", None)]
    assert "no rule matched" in pieces[1].note


# --- protocol and ports ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("protocol", "applies"), [
    ("Tcp", True), ("TCP", True), ("tcp", True), ("*", True), ("Any", True),
    ("Udp", False), ("Icmp", False), ("Esp", False), ("Ah", False),
])
def test_protocol_matches_tcp_star_and_any_case_insensitively(protocol, applies):
    parsed = parse_security_rule({"name": "r", "properties": {
        "priority": 100, "direction": "Outbound", "access": "Deny", "protocol": protocol,
        "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "destinationPortRange": "*"}})
    expected = ("deny", "r") if applies else ("allow", "AllowInternetOutBound")
    assert single(run(nsg(parsed))) == expected


@pytest.mark.parametrize(("ports", "applies"), [
    (("*",), True), (("443",), True), (("400-500",), True), (("443-443",), True), (("80",), False),
    (("444-500",), False), (("1-442",), False), (("80", "443"), True), (("22", "8080-8090"), False),
    (("22", "440-450", "8080"), True),
])
def test_destination_port_forms(ports, applies):
    expected = ("deny", "r") if applies else ("allow", "AllowInternetOutBound")
    assert single(run(nsg(rule("r", 100, "deny", ports=ports)))) == expected


def test_destination_port_ranges_list_parsed_from_arm():
    parsed = parse_security_rule({"name": "r", "properties": {
        "priority": 100, "direction": "Outbound", "access": "Deny", "protocol": "Tcp", "sourceAddressPrefix": "*",
        "destinationAddressPrefix": "*", "destinationPortRange": "", "destinationPortRanges": ["80", "400-500"]}})
    assert parsed.destination_ports == ("80", "400-500")
    assert single(run(nsg(parsed))) == ("deny", "r")


def test_parse_port_ranges():
    assert parse_port_ranges(["*"]) == [(0, 65535)]
    assert parse_port_ranges(["443", " 400-500 "]) == [(443, 443), (400, 500)]
    assert parse_port_ranges(["500-400"]) is None
    assert parse_port_ranges(["70000"]) is None
    assert parse_port_ranges(["https"]) is None


def test_unreadable_destination_ports_make_the_rest_unknown():
    group = nsg(rule("allow-some", 100, "allow", "20.60.0.0/24"), rule("garbled", 110, "deny", ports=("https",)))
    pieces = run(group)
    assert outcome(pieces) == [(["20.60.0.0/24"], "allow", "allow-some"), (["52.239.0.0/24"], "unknown", "garbled")]
    assert "unreadable destination ports" in pieces[1].note


# --- source ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "matches"), [
    (("*",), True), (("10.0.0.0/16",), True), (("10.0.1.4",), True), (("10.0.1.4/32",), True),
    (("10.0.2.0/24",), False), (("10.0.2.0/24", "10.0.1.0/24"), True), (("VirtualNetwork",), True),
    (("Internet",), False), (("AzureLoadBalancer",), False), (("Senders",), True), (("FakeSvc",), False),
    (("2001:db8::/32",), False), (("::/0",), False),
])
def test_source_forms_for_a_nic(source, matches):
    expected = ("deny", "r") if matches else ("allow", "AllowInternetOutBound")
    assert single(run(nsg(rule("r", 100, "deny", source=source)))) == expected


def test_virtual_network_source_includes_peered_space():
    source = flow("172.16.0.4", vnet=("10.0.0.0/16", "172.16.0.0/24"))
    assert single(run(nsg(rule("r", 100, "deny", source=("VirtualNetwork",))), source=source)) == ("deny", "r")
    # an address outside every space is 'Internet' from the VirtualNetwork tag's point of view
    outside = flow("172.31.0.4", vnet=("10.0.0.0/16",))
    assert single(run(nsg(rule("r", 100, "deny", source=("Internet",))), source=outside)) == ("deny", "r")


def test_source_asg_matches_only_members_case_insensitively():
    group = nsg(rule("deny-web", 100, "deny", source=(), source_asgs=(ASG_WEB,)))
    member = flow(asgs=(ASG_WEB.upper(),))
    assert single(run(group, source=member)) == ("deny", "deny-web")
    assert single(run(group, source=flow(asgs=(ASG_DB,)))) == ("allow", "AllowInternetOutBound")
    assert single(run(group, source=flow())) == ("allow", "AllowInternetOutBound")


def test_source_asg_allow_overrides_a_later_deny():
    group = nsg(rule("allow-web", 100, "allow", source=(), source_asgs=(ASG_DB, ASG_WEB)),
                rule("deny-all", 200, "deny"))
    assert single(run(group, source=flow(asgs=(ASG_WEB,)))) == ("allow", "allow-web")
    assert single(run(group, source=flow())) == ("deny", "deny-all")


def test_unknown_source_tag_is_unknown():
    pieces = run(nsg(rule("r", 100, "allow", source=("NoSuchTag",))))
    assert single(pieces) == ("unknown", "r")
    assert "NoSuchTag" in pieces[0].note


# --- partial matches ---------------------------------------------------------------------------------------------


SUBNET = "10.0.1.0/28"  # target side: the recovery VM's address is not known yet


def test_partial_source_deny_counts_as_deny():
    pieces = run(nsg(rule("deny-half", 100, "deny", source=("10.0.1.0/29",))), source=flow(SUBNET))
    assert single(pieces) == ("deny", "deny-half")
    assert "some of this VM's source" in pieces[0].note


def test_partial_source_allow_falls_through():
    group = nsg(rule("allow-half", 100, "allow", source=("10.0.1.0/29",)), rule("deny-all", 200, "deny"))
    assert single(run(group, source=flow(SUBNET))) == ("deny", "deny-all")
    # the same rule covers a single NIC inside it fully
    assert single(run(group, source=flow("10.0.1.5"))) == ("allow", "allow-half")
    # and one outside it not at all
    assert single(run(group, source=flow("10.0.1.9"))) == ("deny", "deny-all")


def test_full_source_cover_of_a_subnet_allows():
    group = nsg(rule("allow-subnet", 100, "allow", source=("10.0.1.0/28",)), rule("deny-all", 200, "deny"))
    assert single(run(group, source=flow(SUBNET))) == ("allow", "allow-subnet")


@pytest.mark.parametrize(("ports", "deny_counts", "allow_counts"), [
    (("*",), True, True),
    (("1024-65535",), True, True),
    (("0-1023", "1024-65535"), True, True),
    (("0-2000", "1500-65535"), True, True),
    (("1024-2000",), True, False),
    (("49152-65535",), True, False),
    (("0-1023",), False, False),
    (("80",), False, False),
])
def test_source_port_coverage_of_the_ephemeral_range(ports, deny_counts, allow_counts):
    deny = nsg(rule("r", 100, "deny", source_ports=ports))
    assert single(run(deny)) == (("deny", "r") if deny_counts else ("allow", "AllowInternetOutBound"))
    allow = nsg(rule("r", 100, "allow", source_ports=ports), rule("deny-all", 200, "deny"))
    assert single(run(allow)) == (("allow", "r") if allow_counts else ("deny", "deny-all"))


def test_unreadable_source_ports_are_unknown():
    pieces = run(nsg(rule("r", 100, "deny", source_ports=("ephemeral",))))
    assert single(pieces) == ("unknown", "r")


# --- destination ------------------------------------------------------------------------------------------------


def test_destination_cidr_and_ip_lists():
    group = nsg(rule("deny-bits", 100, "deny", ("20.60.0.1", "52.239.0.128/25", "8.8.8.8")))
    assert outcome(run(group)) == [
        (["20.60.0.1/32", "52.239.0.128/25"], "deny", "deny-bits"),
        (["20.60.0.0/32", "20.60.0.2/31", "20.60.0.4/30", "20.60.0.8/29", "20.60.0.16/28", "20.60.0.32/27",
          "20.60.0.64/26", "20.60.0.128/25", "52.239.0.0/25"], "allow", "AllowInternetOutBound"),
    ]


def test_destination_service_tag_from_data_ignores_its_ipv6_prefixes():
    group = nsg(rule("deny-fake", 100, "deny", "FakeSvc"))
    assert outcome(run(group)) == [
        (["20.60.0.0/25"], "deny", "deny-fake"),
        (["20.60.0.128/25", "52.239.0.0/24"], "allow", "AllowInternetOutBound"),
    ]


def test_destination_tag_case_insensitive():
    assert outcome(run(nsg(rule("r", 100, "deny", "fakesvc.regionone"))))[0] == (["20.60.0.0/26"], "deny", "r")


def test_destination_internet_is_everything_outside_virtual_network():
    # a peered space counts as VirtualNetwork even when it is public address space
    source = flow(vnet=(VNET, "20.60.0.0/25"))
    group = nsg(rule("deny-internet", 100, "deny", "Internet"))
    assert outcome(run(group, source=source)) == [
        (["20.60.0.128/25", "52.239.0.0/24"], "deny", "deny-internet"),
        (["20.60.0.0/25"], "allow", "AllowVnetOutBound"),
    ]
    group = nsg(rule("deny-vnet", 100, "deny", "VirtualNetwork"))
    assert outcome(run(group, source=source)) == [
        (["20.60.0.0/25"], "deny", "deny-vnet"),
        (["20.60.0.128/25", "52.239.0.0/24"], "allow", "AllowInternetOutBound"),
    ]


def test_destination_asgs_never_match_public_endpoints():
    group = nsg(rule("deny-to-db", 100, "deny", (), destination_asgs=(ASG_DB,)))
    assert single(run(group)) == ("allow", "AllowInternetOutBound")


def test_ipv6_destinations_never_match():
    group = nsg(rule("deny-v6", 100, "deny", ("2001:db8::/32", "::/0")))
    assert single(run(group)) == ("allow", "AllowInternetOutBound")


def test_load_balancer_destination_is_one_address():
    destination = IPSet.from_prefixes(["168.63.129.0/24"])
    pieces = run(nsg(rule("deny-lb", 100, "deny", "AzureLoadBalancer")), destination)
    assert outcome(pieces)[0] == (["168.63.129.16/32"], "deny", "deny-lb")


def test_star_and_any_and_default_route_cover_everything():
    for destination in ("*", "Any", "0.0.0.0/0"):
        assert single(run(nsg(rule("r", 100, "deny", destination)))) == ("deny", "r")


# --- unknown tags and the symbolic shortcut ---------------------------------------------------------------------


def test_unknown_destination_tag_makes_everything_undecided_unknown():
    group = nsg(rule("allow-some", 100, "allow", "20.60.0.0/24"), rule("mystery", 200, "deny", "NotATag"),
                rule("deny-all", 300, "deny"))
    pieces = run(group)
    assert outcome(pieces) == [(["20.60.0.0/24"], "allow", "allow-some"), (["52.239.0.0/24"], "unknown", "mystery")]
    assert "NotATag" in pieces[1].note


def test_unknown_tag_on_a_rule_that_cannot_apply_is_harmless():
    group = nsg(rule("mystery-udp", 100, "deny", "NotATag", protocol="udp"),
                rule("mystery-80", 110, "deny", "NotATag", ports=("80",)))
    assert single(run(group)) == ("allow", "AllowInternetOutBound")


def test_symbolic_shortcut_top_level_tag_covers_the_regional_requirement():
    tags = tagdata.trimmed()  # has Storage.EastUS but no top-level Storage
    assert tags.get("Storage") is None
    required = tags.prefixes("Storage.EastUS")
    assert required
    for access, verdict in (("deny", "deny"), ("allow", "allow")):
        group = nsg(rule("storage", 100, access, "Storage"), rule("deny-all", 200, "deny"))
        pieces = run(group, required, tags=tags, required_tag="Storage.EastUS")
        assert single(pieces) == (verdict, "storage")
        assert pieces[0].addresses == required


def test_symbolic_shortcut_same_tag_when_the_data_lacks_it():
    required = IPSet.from_prefixes(["40.1.0.0/24"])  # what a caller resolved elsewhere
    group = nsg(rule("kv", 100, "deny", "AzureKeyVault.WestEurope"))
    assert single(run(group, required, required_tag="AzureKeyVault.WestEurope")) == ("deny", "kv")
    assert single(run(group, required, required_tag="azurekeyvault.westeurope")) == ("deny", "kv")


@pytest.mark.parametrize(("destination", "required_tag"), [
    ("Storage.WestUS", "Storage.EastUS"),  # a different region is not implied
    ("Stor", "Storage.EastUS"),  # a name prefix without the dot is not the top-level tag
    ("Storage.EastUS", "Storage"),  # the regional tag does not cover the top-level one
    (("Storage", "1.2.3.4"), "Storage.EastUS"),  # not a single-tag rule
    ("Storage", ""),  # no required tag
])
def test_symbolic_shortcut_does_not_guess(destination, required_tag):
    group = nsg(rule("r", 100, "deny", destination))
    assert single(run(group, required_tag=required_tag)) == ("unknown", "r")


def _stdlib_set(tags: ServiceTags, name: str) -> set[ipaddress.IPv4Network]:
    tag = tags.get(name)
    assert tag is not None
    return set(ipaddress.collapse_addresses(ipaddress.IPv4Network(c) for c in tag.cidrs))


@pytest.mark.parametrize("access", ["allow", "deny"])
def test_symbolic_and_numeric_answers_agree_on_the_full_file(access):
    full = tagdata.full()
    trimmed = tagdata.trimmed()
    required = full.prefixes("Storage.EastUS")
    assert required is not None
    # independently: every Storage.EastUS network lies inside some Storage network
    storage = _stdlib_set(full, "Storage")
    assert all(any(n.subnet_of(s) for s in storage) for n in _stdlib_set(full, "Storage.EastUS"))
    group = nsg(rule("storage", 100, access, "Storage"), rule("deny-all", 200, "deny"))
    numeric = run(group, required, tags=full)  # no required tag: pure set arithmetic
    with_tag = run(group, required, tags=full, required_tag="Storage.EastUS")
    symbolic = run(group, required, tags=trimmed, required_tag="Storage.EastUS")
    assert outcome(numeric) == outcome(with_tag) == outcome(symbolic)
    assert single(numeric) == (access, "storage")


def test_regional_rule_against_top_level_requirement_is_the_exact_intersection():
    full = tagdata.full()
    required = full.prefixes("Storage")
    assert required is not None
    group = nsg(rule("deny-eastus", 100, "deny", "Storage.EastUS"))
    pieces = run(group, required, tags=full, required_tag="Storage")
    denied = [p for p in pieces if p.verdict == "deny"]
    allowed = [p for p in pieces if p.verdict == "allow"]
    assert len(denied) == 1 and denied[0].rule is not None and denied[0].rule.name == "deny-eastus"
    eastus = _stdlib_set(full, "Storage.EastUS")
    storage = _stdlib_set(full, "Storage")
    expected = {n for s in storage for n in eastus if n.subnet_of(s)}
    assert denied[0].addresses.size == sum(n.num_addresses for n in ipaddress.collapse_addresses(expected))
    assert allowed and allowed[0].rule is not None and allowed[0].rule.name == "AllowInternetOutBound"
    assert denied[0].addresses.size + allowed[0].addresses.size == required.size
