"""NSG evaluation over address sets, with Azure's semantics.

Rules are taken in priority order (custom and default together) and the first rule that matches a packet
decides it. Instead of one packet we push the whole required destination set through the rules: each matching
rule claims the part of what is still undecided that its destination covers. The result partitions the set into
pieces allowed or denied by a named rule, or unknown (a tag the Service Tags data does not have).

Where a rule matches only some of the flows (a source CIDR covering part of a recovery subnet, source ports
that cover part of the ephemeral range), a Deny counts as denying (some connections fail, replication breaks)
and an Allow does not count as allowing (some connections fall through to later rules): the conservative reading.

Worked example — a NIC in 10.0.0.0/16, its NSG allowing one half of a tag and denying Internet; the required
destination is split into the piece each rule decides:

>>> from asr_remediate.model import NetworkSecurityGroup, SecurityRule
>>> from asr_remediate.servicetags import ServiceTags
>>> tags = ServiceTags.from_values("1", [{"name": "Storage.EastUS",
...     "properties": {"region": "eastus", "addressPrefixes": ["20.38.0.0/16"]}}])
>>> rules = (SecurityRule("allow-half", 100, "outbound", "allow", "tcp", destination_prefixes=("20.38.0.0/17",),
...                       destination_ports=("443",)),
...          SecurityRule("deny-internet", 4000, "outbound", "deny", "*", destination_prefixes=("Internet",)))
>>> nsg = NetworkSecurityGroup("/nsg", "nsg", "eastus", rules, ())
>>> sender = FlowSource(IPSet.address("10.0.0.4"), IPSet.from_prefixes(["10.0.0.0/16"]))
>>> for piece in evaluate_nsg(nsg, sender, tags.prefixes("Storage.EastUS") or IPSet(), tags):
...     print(piece.addresses, piece.verdict, piece.rule.name if piece.rule else None)
20.38.0.0/17 allow allow-half
20.38.128.0/17 deny deny-internet
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from .ipset import EMPTY, IdentityCache, IPSet, is_ipv4_prefix
from .model import OUTBOUND, NetworkSecurityGroup, SecurityRule, key
from .servicetags import ServiceTags

EPHEMERAL_PORTS = (1024, 65535)  # covers Windows (49152+) and Linux (32768–60999) ephemeral ranges
AZURE_LOAD_BALANCER = IPSet.address("168.63.129.16")


class Match(IntEnum):
    NONE = 0
    PARTIAL = 1
    FULL = 2


@dataclass(frozen=True)
class FlowSource:
    """Who sends: the NIC's IP (source side) or the recovery subnet (target side, IP not yet known)."""

    addresses: IPSet
    virtual_network: IPSet  # the VirtualNetwork tag as seen from this NIC: VNet + peered address spaces
    asg_ids: frozenset[str] = field(default_factory=frozenset)  # lower-case ids


@dataclass(frozen=True)
class Piece:
    addresses: IPSet
    verdict: str  # "allow" | "deny" | "unknown"
    rule: SecurityRule | None
    note: str = ""


def parse_port_ranges(ports: Sequence[str]) -> list[tuple[int, int]] | None:
    """'*', '443', '400-500' (or lists) → ranges; None when a value is not a port range."""
    ranges: list[tuple[int, int]] = []
    for raw in ports:
        text = raw.strip()
        if text in ("*", "any", "Any"):
            ranges.append((0, 65535))
            continue
        low, _, high = text.partition("-")
        try:
            start, end = int(low), int(high or low)
        except ValueError:
            return None
        if not 0 <= start <= end <= 65535:
            return None
        ranges.append((start, end))
    return ranges


def _port_match(ranges: list[tuple[int, int]], low: int, high: int) -> Match:
    covered = IPSet.of(ranges) & IPSet.of([(low, high)])
    if covered.size == high - low + 1:
        return Match.FULL
    return Match.PARTIAL if covered else Match.NONE


def expand_prefixes(prefixes: Sequence[str], virtual_network: IPSet, tags: ServiceTags) -> tuple[IPSet | None, str]:
    """The set a rule's prefix list denotes for a NIC whose VirtualNetwork is ``virtual_network``, or (None, why)
    if it names a tag we cannot resolve."""
    result = EMPTY
    for prefix in prefixes:
        text = prefix.strip()
        lower = text.lower()
        if lower in ("*", "any", "0.0.0.0/0"):
            return IPSet.everything(), ""
        if lower == "virtualnetwork":
            result = result | virtual_network
        elif lower == "internet":
            result = result | virtual_network.complement()
        elif lower == "azureloadbalancer":
            result = result | AZURE_LOAD_BALANCER
        elif is_ipv4_prefix(text):
            result = result | IPSet.address(text)
        elif ":" in text:
            continue  # IPv6 prefix: never matches an IPv4 flow
        else:
            tag = tags.prefixes(text)
            if tag is None:
                return None, f"service tag {text!r} is not in the Service Tags data"
            result = result | tag
    return result, ""


class RuleView:
    """Resolves a rule's address fields against one NIC's view (VirtualNetwork, ASGs) and the tag data."""

    def __init__(self, tags: ServiceTags, source: FlowSource, required_tag: str = "") -> None:
        self.tags = tags
        self.source = source
        self.required_tag = required_tag.lower()

    def expand(self, prefixes: Sequence[str]) -> tuple[IPSet | None, str]:
        """The set a prefix list denotes, or (None, why) if it names a tag we cannot resolve."""
        return expand_prefixes(prefixes, self.source.virtual_network, self.tags)

    def symbolic_destination(self, prefixes: Sequence[str]) -> bool:
        """Rule tag == required tag, or the rule's top-level tag contains the required regional tag."""
        if not self.required_tag or len(prefixes) != 1:
            return False
        rule_tag = prefixes[0].strip().lower()
        return rule_tag == self.required_tag or self.required_tag.startswith(rule_tag + ".")

    def source_match(self, rule: SecurityRule) -> tuple[Match, str]:
        """How much of this flow's sources and source ports the rule covers (or NONE)."""
        ports = parse_port_ranges(rule.source_ports)
        if ports is None:
            return Match.NONE, f"unreadable source ports {rule.source_ports}"
        port_match = _port_match(ports, *EPHEMERAL_PORTS)
        if port_match == Match.NONE:
            return Match.NONE, ""
        if rule.source_asgs:
            in_asg = any(key(a) in self.source.asg_ids for a in rule.source_asgs)
            address_match = Match.FULL if in_asg else Match.NONE
        else:
            sources, why = self.expand(rule.source_prefixes or ("*",))
            if sources is None:
                return Match.NONE, why
            if self.source.addresses.issubset(sources):
                address_match = Match.FULL
            else:
                address_match = Match.PARTIAL if self.source.addresses.overlaps(sources) else Match.NONE
        return min(port_match, address_match), ""


def _applies_to_tcp_443(rule: SecurityRule, port: int, protocol: str) -> bool | None:
    if rule.direction != OUTBOUND or rule.protocol not in ("*", "any", protocol):
        return False
    ranges = parse_port_ranges(rule.destination_ports)
    if ranges is None:
        return None
    return any(start <= port <= end for start, end in ranges)


def ordered_rules(nsg: NetworkSecurityGroup, direction: str = OUTBOUND) -> list[SecurityRule]:
    return sorted((r for r in (*nsg.rules, *nsg.default_rules) if r.direction == direction), key=lambda r: r.priority)


def evaluate_nsg(
    nsg: NetworkSecurityGroup,
    source: FlowSource,
    destination: IPSet,
    tags: ServiceTags,
    *,
    required_tag: str = "",
    port: int = 443,
    protocol: str = "tcp",
) -> list[Piece]:
    """Partition ``destination`` by the outbound rule that decides each address (first match by priority)."""
    return list(nsg_pieces(nsg, source, destination, tags, required_tag=required_tag, port=port, protocol=protocol))


def nsg_pieces(
    nsg: NetworkSecurityGroup,
    source: FlowSource,
    destination: IPSet,
    tags: ServiceTags,
    *,
    required_tag: str = "",
    port: int = 443,
    protocol: str = "tcp",
) -> tuple[Piece, ...]:
    """``evaluate_nsg``, memoised: the same tuple object for every sender with the same view of the rules.

    The sender matters only through how much of it each rule's source covers (``_source_levels``), so the VMs
    of a subnet — which share NSGs, VirtualNetwork space and usually those levels — share one evaluation per
    destination (and callers can memoise what they derive from it by identity).
    """
    compiled = _COMPILED.get((nsg,), (port, protocol), lambda: _compile(nsg, port, protocol))
    levels = _LEVELS.get((compiled, source, tags), None, lambda: _source_levels(compiled, source, tags))
    # VirtualNetwork / Internet destinations matter only where the VNet space meets the destination.
    network = source.virtual_network
    extra = (levels, _VNET_PARTS.get((network, destination), None, lambda: network & destination),
             required_tag.lower())
    return _PIECES.get((compiled, destination, tags), extra,
                       lambda: _evaluate(compiled, levels, source.virtual_network, destination, tags,
                                         required_tag.lower()))


def sender_view(nsg: NetworkSecurityGroup, source: FlowSource, tags: ServiceTags, *, port: int = 443,
                protocol: str = "tcp") -> tuple[tuple[Match, str], ...]:
    """All ``nsg_pieces`` needs to know of the sender besides its VirtualNetwork space (memoised): two senders
    with equal views and the same VirtualNetwork get the same pieces for every destination."""
    compiled = _COMPILED.get((nsg,), (port, protocol), lambda: _compile(nsg, port, protocol))
    return _LEVELS.get((compiled, source, tags), None, lambda: _source_levels(compiled, source, tags))


@dataclass(frozen=True)
class _Step:
    """An outbound rule that can decide the flow, in priority order, with what is known without the sender."""

    rule: SecurityRule
    stop: str  # non-empty: evaluation ends here with an "unknown" piece (unreadable ports)
    port_match: Match  # how much of the ephemeral source port range the rule covers
    source: int  # index of the rule's source in _Compiled.sources


@dataclass(frozen=True)
class _Compiled:
    steps: tuple[_Step, ...]
    sources: tuple[tuple[str, tuple[str, ...]], ...]  # distinct ("asg", lower-case ids) / ("prefixes", prefixes)


_COMPILED: IdentityCache[_Compiled] = IdentityCache(8192)
_LEVELS: IdentityCache[tuple[tuple[Match, str], ...]] = IdentityCache()
_SOURCE_SETS: IdentityCache[tuple[tuple[IPSet | None, str], ...]] = IdentityCache(8192)
_PIECES: IdentityCache[tuple[Piece, ...]] = IdentityCache()
_VNET_PARTS: IdentityCache[IPSet] = IdentityCache()
_EXPANDED: IdentityCache[tuple[IPSet | None, str]] = IdentityCache()
_CLIPPED: IdentityCache[IPSet] = IdentityCache()


def _compile(nsg: NetworkSecurityGroup, port: int, protocol: str) -> _Compiled:
    """The rules that can decide (port, protocol) outbound, up to the first that makes the answer unknown."""
    steps: list[_Step] = []
    sources: dict[tuple[str, tuple[str, ...]], int] = {}
    for rule in ordered_rules(nsg):
        applies = _applies_to_tcp_443(rule, port, protocol)
        if applies is False:
            continue
        if applies is None:
            steps.append(_Step(rule, f"unreadable destination ports {rule.destination_ports}", Match.NONE, -1))
            break
        if rule.destination_asgs:
            continue  # ASG members are NICs in the VNet: never the public endpoints ASR needs
        ports = parse_port_ranges(rule.source_ports)
        if ports is None:
            steps.append(_Step(rule, f"unreadable source ports {rule.source_ports}", Match.NONE, -1))
            break
        port_match = _port_match(ports, *EPHEMERAL_PORTS)
        if port_match == Match.NONE:
            continue
        spec = (("asg", tuple(key(a) for a in rule.source_asgs)) if rule.source_asgs
                else ("prefixes", tuple(rule.source_prefixes or ("*",))))
        steps.append(_Step(rule, "", port_match, sources.setdefault(spec, len(sources))))
    return _Compiled(tuple(steps), tuple(sources))


def _source_levels(compiled: _Compiled, source: FlowSource, tags: ServiceTags) -> tuple[tuple[Match, str], ...]:
    """How much of the sender each distinct rule source covers (ASG membership, or the addresses), or why unknown."""
    levels: list[tuple[Match, str]] = []
    sets = _SOURCE_SETS.get((compiled, source.virtual_network, tags), None,
                            lambda: _source_sets(compiled, source.virtual_network, tags))
    for (kind, values), (sources, why) in zip(compiled.sources, sets, strict=True):
        if kind == "asg":
            levels.append((Match.FULL if any(a in source.asg_ids for a in values) else Match.NONE, ""))
        elif sources is None:
            levels.append((Match.NONE, why))
        elif source.addresses.issubset(sources):
            levels.append((Match.FULL, ""))
        else:
            levels.append((Match.PARTIAL if source.addresses.overlaps(sources) else Match.NONE, ""))
    return tuple(levels)


def _source_sets(compiled: _Compiled, virtual_network: IPSet,
                 tags: ServiceTags) -> tuple[tuple[IPSet | None, str], ...]:
    """The address sets of the distinct rule sources as seen from one VirtualNetwork (ASG sources: unused)."""
    return tuple((EMPTY, "") if kind == "asg" else _expand(values, virtual_network, tags)
                 for kind, values in compiled.sources)


def _expand(prefixes: tuple[str, ...], virtual_network: IPSet, tags: ServiceTags) -> tuple[IPSet | None, str]:
    return _EXPANDED.get((tags,), (prefixes, virtual_network),
                         lambda: expand_prefixes(prefixes, virtual_network, tags))


def _evaluate(compiled: _Compiled, levels: tuple[tuple[Match, str], ...], virtual_network: IPSet,
              destination: IPSet, tags: ServiceTags, required_tag: str) -> tuple[Piece, ...]:
    remaining = destination
    pieces: list[Piece] = []
    for step in compiled.steps:
        if not remaining:
            break
        rule = step.rule
        if step.stop:
            pieces.append(Piece(remaining, "unknown", rule, step.stop))
            return tuple(pieces)
        level, why = levels[step.source]
        if why:
            pieces.append(Piece(remaining, "unknown", rule, why))
            return tuple(pieces)
        match = min(step.port_match, level)
        if match == Match.NONE or (match == Match.PARTIAL and rule.access == "allow"):
            continue
        covered, why = _expand(tuple(rule.destination_prefixes or ("*",)), virtual_network, tags)
        if covered is None:
            if not _symbolic(required_tag, rule.destination_prefixes):
                pieces.append(Piece(remaining, "unknown", rule, why))
                return tuple(pieces)
            hit = remaining
        else:
            # What the rule covers of the whole destination, once per (destination, rule set); then of what is left.
            clipped = _clip(destination, covered)
            hit = clipped if remaining is destination else remaining & clipped
        if not hit:
            continue
        note = "for some of this VM's source addresses or ports" if match == Match.PARTIAL else ""
        pieces.append(Piece(hit, "allow" if rule.access == "allow" else "deny", rule, note))
        remaining = remaining - hit
    if remaining:
        pieces.append(Piece(remaining, "deny", None, "no rule matched (the NSG has no default rules)"))
    return tuple(pieces)


def _clip(destination: IPSet, covered: IPSet) -> IPSet:
    return _CLIPPED.get((destination, covered), None, lambda: destination & covered)


def _symbolic(required_tag: str, prefixes: Sequence[str]) -> bool:
    """Rule tag == required tag, or the rule's top-level tag contains the required regional tag."""
    if not required_tag or len(prefixes) != 1:
        return False
    rule_tag = prefixes[0].strip().lower()
    return rule_tag == required_tag or required_tag.startswith(rule_tag + ".")
