"""Azure Virtual Network Manager security admin rules: the first stage of the path, before any NSG.

Azure evaluates a VNet's security admin rules before the NSGs of its subnets and NICs ("Security admin rules have a
higher priority than NSGs and are evaluated before NSG rules", learn.microsoft.com/azure/virtual-network-manager/
concept-security-admins). Per rule: ``Deny`` drops the traffic, whatever the NSGs say; ``AlwaysAllow`` lets it through
and "terminates further (and possibly conflicting) evaluation by NSG rules"; ``Allow`` lets the NSGs decide. Rules go
by priority, 1–4096, lower first (AdminPropertiesFormat.priority, networkManagerSecurityAdminConfiguration.json,
Azure/azure-rest-api-specs 2025-05-01); a flow no rule matches goes on to the NSGs.

The required destination set is partitioned like the NSG engine does it (``nsg.py``): each rule claims the part of
what is still undecided that its destinations cover. The pieces are ``allow`` (the NSGs decide: an Allow rule or no
rule), ``always-allow`` (allowed; the NSGs are skipped), ``deny`` and ``unknown``.

Where the sources are silent we take the conservative reading, as for NSGs:

- A rule matching part of the flows (a source prefix covering part of a recovery subnet, source ports covering part
  of the ephemeral range, a source that is a *network group* — its members' address spaces are not in the effective
  rules) counts when it denies and does not count when it allows or always-allows.
- Equal priorities (unique only within one rule collection): Deny first, then Allow, then AlwaysAllow, so a tie
  never hides a Deny nor skips the NSGs.
- Several network managers (a VNet may belong to more than one; "the configuration from the Virtual Network Manager
  that has the higher scope is the one applied", concept-network-manager-scope) — the effective rules do not say which
  scope is higher, so each manager's rules are evaluated on their own and combined in the order that hides nothing: a
  Deny of any manager denies, then unknown, then AlwaysAllow, else the NSGs decide. The deciding rule named is that of
  the first manager (by id) whose own verdict is the combined one.
- A destination that is a network group matches none of the public endpoints ASR needs (like a destination ASG in an
  NSG); for a private address (10/8, 172.16/12, 192.168/16, 100.64/10 — a private endpoint's) it is unknown.
- Absent ``sources`` / ``destinations`` / port lists mean any; protocol ``Any`` matches TCP.

Worked example — a platform team's Deny of Internet-bound 443 with an AlwaysAllow exception for half a tag:

>>> from asr_remediate.model import AdminAddress, AdminRule
>>> from asr_remediate.nsg import FlowSource
>>> from asr_remediate.servicetags import ServiceTags
>>> tags = ServiceTags.from_values("1", [{"name": "Storage.EastUS",
...     "properties": {"region": "eastus", "addressPrefixes": ["20.38.0.0/16"]}}])
>>> manager = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkManagers/nm"
>>> def rule(name, priority, access, destination):
...     return AdminRule(f"{manager}/securityAdminConfigurations/cfg/ruleCollections/c/rules/{name}", name, priority,
...                      "outbound", access, "tcp", destinations=(AdminAddress(destination, "ipprefix"),),
...                      destination_ports=("443",))
>>> rules = (rule("always-half", 10, "alwaysallow", "20.38.0.0/17"), rule("deny-all", 20, "deny", "*"))
>>> sender = FlowSource(IPSet.address("10.0.0.4"), IPSet.from_prefixes(["10.0.0.0/16"]))
>>> for piece in evaluate_admin_rules(rules, sender, tags.prefixes("Storage.EastUS") or IPSet(), tags):
...     print(piece.addresses, piece.verdict, piece.rule.name if piece.rule else None)
20.38.0.0/17 always-allow always-half
20.38.128.0/17 deny deny-all
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .ipset import EMPTY, IdentityCache, IPSet
from .model import ALWAYS_ALLOW, OUTBOUND, AdminAddress, AdminRule, key
from .nsg import EPHEMERAL_PORTS, FlowSource, Match, expand_prefixes, parse_port_ranges
from .servicetags import ServiceTags

ALLOW, ALWAYS, DENY, UNKNOWN = "allow", "always-allow", "deny", "unknown"
# Where a network group's member VNets can hold a private endpoint (RFC 1918 and the shared 100.64/10 space).
PRIVATE_RANGES = IPSet.from_prefixes(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"])
_ACCESS_RANK = {"deny": 0, "allow": 1, ALWAYS_ALLOW: 2}
_COMBINED_ORDER = (DENY, UNKNOWN, ALWAYS, ALLOW)


@dataclass(frozen=True)
class AdminPiece:
    addresses: IPSet
    verdict: str  # "allow" (the NSGs decide) | "always-allow" | "deny" | "unknown"
    rule: AdminRule | None  # the deciding rule; None: no rule matched (the NSGs decide)
    note: str = ""


def ordered(rules: Sequence[AdminRule]) -> list[AdminRule]:
    """One network manager's outbound rules in the order they decide (priority, then Deny / Allow / AlwaysAllow)."""
    return sorted((r for r in rules if r.direction == OUTBOUND),
                  key=lambda r: (r.priority, _ACCESS_RANK.get(r.access, 0), key(r.id)))


def by_manager(rules: Sequence[AdminRule]) -> list[tuple[str, list[AdminRule]]]:
    """The rules grouped per network manager (lower-case id), managers in id order."""
    groups: dict[str, list[AdminRule]] = {}
    for rule in rules:
        groups.setdefault(key(rule.network_manager_id), []).append(rule)
    return [(manager, ordered(groups[manager])) for manager in sorted(groups)]


def _applies(rule: AdminRule, port: int, protocol: str) -> bool | None:
    if rule.protocol not in ("any", "*", protocol):
        return False
    ranges = parse_port_ranges(rule.destination_ports or ("*",))
    if ranges is None:
        return None
    return any(start <= port <= end for start, end in ranges)


def _source_match(rule: AdminRule, source: FlowSource, tags: ServiceTags) -> tuple[Match, str]:
    ports = parse_port_ranges(rule.source_ports or ("*",))
    if ports is None:
        return Match.NONE, f"unreadable source ports {rule.source_ports}"
    covered = IPSet.of(ports) & IPSet.of([EPHEMERAL_PORTS])
    port_match = (Match.FULL if covered.size == EPHEMERAL_PORTS[1] - EPHEMERAL_PORTS[0] + 1
                  else Match.PARTIAL if covered else Match.NONE)
    if port_match == Match.NONE or not rule.sources:
        return port_match, ""
    best = Match.NONE
    addresses = EMPTY
    for entry in rule.sources:
        if entry.type == "networkgroup":
            best = max(best, Match.PARTIAL)  # membership of the sender's VNet is not in the effective rules
            continue
        expanded, why = expand_prefixes((entry.prefix,), source.virtual_network, tags)
        if expanded is None:
            return Match.NONE, why
        addresses = addresses | expanded
    if addresses and source.addresses.issubset(addresses):
        best = Match.FULL
    elif source.addresses.overlaps(addresses):
        best = max(best, Match.PARTIAL)
    return min(port_match, best), ""


def _destination(rule: AdminRule, source: FlowSource, tags: ServiceTags,
                 required_tag: str) -> tuple[IPSet | None, IPSet, str]:
    """(covered, unknown, why): the addresses the rule's destinations cover, those it may or may not cover (network
    groups: private space), or (None, …, why) when a tag cannot be resolved."""
    if not rule.destinations:
        return IPSet.everything(), EMPTY, ""
    covered, unknown = EMPTY, EMPTY
    for entry in rule.destinations:
        if entry.type == "networkgroup":
            unknown = unknown | PRIVATE_RANGES
            continue
        expanded, why = expand_prefixes((entry.prefix,), source.virtual_network, tags)
        if expanded is None:
            rule_tag = entry.prefix.strip().lower()
            if required_tag and len(rule.destinations) == 1 and (
                    rule_tag == required_tag or required_tag.startswith(rule_tag + ".")):
                return IPSet.everything(), EMPTY, ""  # the symbolic shortcut, as for NSG rules
            return None, EMPTY, why
        covered = covered | expanded
    return covered, unknown - covered, ""


def _manager_pieces(rules: list[AdminRule], source: FlowSource, destination: IPSet, tags: ServiceTags,
                    required_tag: str, port: int, protocol: str) -> list[AdminPiece]:
    """One network manager's first-match partition of ``destination`` (the rest: no rule matched)."""
    remaining = destination
    pieces: list[AdminPiece] = []
    for rule in rules:
        if not remaining:
            break
        applies = _applies(rule, port, protocol)
        if applies is False:
            continue
        if applies is None:
            pieces.append(AdminPiece(remaining, UNKNOWN, rule, f"unreadable destination ports "
                                                              f"{rule.destination_ports}"))
            return pieces
        match, why = _source_match(rule, source, tags)
        if why:
            pieces.append(AdminPiece(remaining, UNKNOWN, rule, why))
            return pieces
        if match == Match.NONE or (match == Match.PARTIAL and rule.access != "deny"):
            continue
        covered, unsure, why = _destination(rule, source, tags, required_tag)
        if covered is None:
            pieces.append(AdminPiece(remaining, UNKNOWN, rule, why))
            return pieces
        hit = remaining & covered
        doubt = remaining & unsure
        note = "for some of this VM's source addresses or ports" if match == Match.PARTIAL else ""
        if hit:
            verdict = DENY if rule.access == "deny" else ALWAYS if rule.access == ALWAYS_ALLOW else ALLOW
            pieces.append(AdminPiece(hit, verdict, rule, note))
        if doubt:
            pieces.append(AdminPiece(doubt, UNKNOWN, rule, "its destination is a network group, whose address "
                                                           "spaces the effective rules do not list"))
        remaining = remaining - hit - doubt
    if remaining:
        pieces.append(AdminPiece(remaining, ALLOW, None))
    return pieces


def evaluate_admin_rules(rules: Sequence[AdminRule], source: FlowSource, destination: IPSet, tags: ServiceTags, *,
                         required_tag: str = "", port: int = 443, protocol: str = "tcp") -> tuple[AdminPiece, ...]:
    """Partition ``destination`` by what the VNet's security admin rules do to outbound ``protocol``/``port`` from
    ``source``: the combined verdict of every network manager (see the module docstring). Memoised per (rules,
    sender, destination, tags)."""
    rules = tuple(rules)
    if not rules or not destination:
        return (AdminPiece(destination, ALLOW, None),) if destination else ()
    extra = (source, required_tag.lower(), port, protocol)
    return _PIECES.get((rules, destination, tags), extra,
                       lambda: _evaluate(rules, source, destination, tags, required_tag.lower(), port, protocol))


_PIECES: IdentityCache[tuple[AdminPiece, ...]] = IdentityCache()


def _evaluate(rules: tuple[AdminRule, ...], source: FlowSource, destination: IPSet, tags: ServiceTags,
              required_tag: str, port: int, protocol: str) -> tuple[AdminPiece, ...]:
    per_manager = [_manager_pieces(group, source, destination, tags, required_tag, port, protocol)
                   for _, group in by_manager(rules)]
    result: list[AdminPiece] = []
    decided = EMPTY
    for verdict in _COMBINED_ORDER:
        for pieces in per_manager:
            for piece in pieces:
                if piece.verdict != verdict or (verdict == ALLOW and piece.rule is None):
                    continue
                part = piece.addresses - decided
                if part:
                    result.append(AdminPiece(part, verdict, piece.rule, piece.note))
                    decided = decided | part
    rest = destination - decided
    if rest:
        result.append(AdminPiece(rest, ALLOW, None))
    return tuple(sorted(result, key=lambda p: p.addresses.intervals[0]))


def passing(pieces: Sequence[AdminPiece]) -> IPSet:
    """What goes on to the NSGs: the ``allow`` pieces."""
    return IPSet.of(interval for p in pieces if p.verdict == ALLOW for interval in p.addresses)


def network_group_sources(rule: AdminRule) -> tuple[AdminAddress, ...]:
    return tuple(a for a in rule.sources if a.type == "networkgroup")


def sender_view(rules: Sequence[AdminRule], source: FlowSource, tags: ServiceTags) -> tuple[tuple[Match, str], ...]:
    """All the admin evaluation needs to know of the sender besides its VirtualNetwork space: how much of it each
    rule's sources cover. Two senders with equal views and the same VirtualNetwork get the same pieces."""
    return tuple(_source_match(rule, source, tags) for rule in rules)
