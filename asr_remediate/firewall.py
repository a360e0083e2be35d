"""Azure Firewall as a stage of the path: what the firewall a route sends ASR's traffic to does with it.

A required destination reaches this stage as (the addresses the route hands to the firewall, the names the traffic
carries: ``login.microsoftonline.com``, ``*.blob.core.windows.net`` …) and leaves it partitioned into pieces allowed
by a named rule, denied by a named rule or by the firewall's default deny, or unknown with the reason.

Order, as Azure Firewall documents it (README, "Azure Firewall"): DNAT rules, then network rules, then application
rules — each type across everything before the next type. Classic rules: the firewall's collections of that type by
priority. Firewall Policy: the parent (``basePolicy``) chain's rules before the policy's own, root first; within a
policy the rule collection groups by priority, within a group the collections by priority, within a collection the
rules in order; parents' DNAT collections are not inherited. The first matching rule decides (rules are terminating);
no match → deny (the built-in infrastructure collection holds platform FQDNs only, none of ASR's).

* Network rules match the flow's protocol (TCP / Any), destination port 443, source (addresses, ranges, IP groups:
  the sender's own IP — no SNAT between a spoke and its hub), destination addresses (IPs, CIDRs, ranges, service
  tags, IP groups) **or** destination FQDNs (resolved by the firewall: only with DNS proxy, else unknown; no
  wildcards). They decide per address, as the NSG engine does: sets, not samples.
* Application rules match ``Https:443``, the source, and the names: ``targetFqdns`` with a leading ``*`` ("anything
  to the left": ``*.contoso.com`` is not ``contoso.com``, ``*contoso.com`` is). They decide all addresses still
  undecided at once. FQDN tags (Microsoft does not publish their FQDNs), web categories, target URLs and TLS
  termination (TLS inspection) cannot be evaluated.
* What cannot be evaluated is a *branch*, not a guess: the rule may or may not match, so the flow is decided both
  ways; where both ways agree that is the answer, elsewhere it is ``unknown`` with the reason.
* Several senders (a recovery subnet) or several names (``*.blob.core.windows.net``): a rule matching only some of
  them counts when it denies and not when it allows (the NSG engine's conservative reading).

Worked example — a policy whose network rule allows Storage over TCP 443 and whose application rule allows the
Site Recovery service's names; Event Hubs is allowed by nothing:

>>> from asr_remediate.model import (AzureFirewall, Estate, FirewallPolicy, FirewallRule, FirewallRuleCollection,
...                                  RuleCollectionGroup)
>>> from asr_remediate.servicetags import ServiceTags
>>> tags = ServiceTags.from_values("1", [{"name": "Storage.EastUS",
...     "properties": {"region": "eastus", "addressPrefixes": ["20.38.0.0/16"]}}])
>>> net = FirewallRule("storage", "network", source_addresses=("10.1.0.0/16",), protocols=("tcp",),
...                    destination_addresses=("Storage.EastUS",), destination_ports=("443",))
>>> app = FirewallRule("asr", "application", source_addresses=("*",), protocols=("https:443",),
...                    target_fqdns=("*.hypervrecoverymanager.windowsazure.com",))
>>> group = RuleCollectionGroup("/p/ruleCollectionGroups/g", "g", 200, (
...     FirewallRuleCollection("net", 100, "allow", (net,)), FirewallRuleCollection("app", 200, "allow", (app,))))
>>> policy = FirewallPolicy("/p", "policy", "eastus", rule_collection_group_ids=(group.id,))
>>> fw = AzureFirewall("/fw", "fw", "eastus", ("10.0.0.4",), policy_id="/p")
>>> estate = Estate(firewalls={"/fw": fw}, firewall_policies={"/p": policy},
...                 rule_collection_groups={"/p/rulecollectiongroups/g": group})
>>> stage = firewall_stage(estate, fw)
>>> sender = IPSet.address("10.1.2.4")
>>> for piece in firewall_pieces(stage, sender, IPSet.from_prefixes(["20.38.0.0/16", "40.0.0.0/8"]),
...                              ("*.blob.core.windows.net",), tags):
...     print(piece.addresses, piece.verdict, piece.rule.rule if piece.rule else piece.note)
20.38.0.0/16 allow storage
40.0.0.0/8 deny no rule allows it (the firewall denies by default)
>>> for piece in firewall_pieces(stage, sender, IPSet.from_prefixes(["52.0.0.0/8"]),
...                              ("*.hypervrecoverymanager.windowsazure.com",), tags):
...     print(piece.addresses, piece.verdict, piece.rule.rule if piece.rule else piece.note)
52.0.0.0/8 allow asr
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .ipset import EMPTY, IdentityCache, IPSet, PrefixError, parse_ipv4_range
from .model import AzureFirewall, Estate, FirewallPolicy, FirewallRule, FirewallRuleCollection, IpGroup, key
from .servicetags import ServiceTags

NONE, PARTIAL, FULL = 0, 1, 2
DEFAULT_DENY = "no rule allows it (the firewall denies by default)"
TYPE_ORDER = ("nat", "network", "application")  # DNAT, then network, then application rules
MAX_POLICY_DEPTH = 10  # a basePolicy chain longer than this (or a cycle) cannot be read


@dataclass(frozen=True)
class RuleRef:
    """Where a rule sits: the firewall (classic rules) or policy, group, collection, rule."""

    firewall: str  # firewall name
    policy: str  # policy name; "" for classic rules
    policy_id: str
    inherited: bool  # from a parent (base) policy of the firewall's policy
    group: str  # rule collection group name; "" for classic rules
    group_priority: int
    collection: str
    collection_priority: int | None
    rule: str
    rule_type: str  # nat | network | application
    action: str  # allow | deny | dnat | snat
    order: int  # position in the processing order (0 first)

    def describe(self) -> str:
        kind = {"nat": "DNAT", "network": "network", "application": "application"}[self.rule_type]
        priority = f" (priority {self.collection_priority})" if self.collection_priority is not None else ""
        where = f"{kind} rule collection {self.collection}{priority}, rule {self.rule}"
        if not self.policy:
            return f"firewall {self.firewall} (classic rules): {where}"
        parent = " (parent policy)" if self.inherited else ""
        return (f"policy {self.policy}{parent}, rule collection group {self.group} (priority {self.group_priority}), "
                f"{where}")


@dataclass(frozen=True)
class FirewallPiece:
    addresses: IPSet
    verdict: str  # allow | deny | unknown
    rule: RuleRef | None  # the deciding rule; None: the default deny (or unknown without a rule)
    note: str = ""


@dataclass(frozen=True)
class _Step:
    ref: RuleRef
    rule: FirewallRule


@dataclass(frozen=True)
class FirewallStage:
    """A firewall with its rules in processing order (classic, or its policy's chain resolved)."""

    firewall: AzureFirewall
    policy: FirewallPolicy | None  # the policy attached to the firewall (None: classic rules)
    chain: tuple[FirewallPolicy, ...]  # root parent first, the attached policy last
    steps: tuple[_Step, ...]
    dns_proxy: bool
    ip_groups: Mapping[str, IpGroup] = field(default_factory=dict)  # every IP group the estate holds, by key(id)
    unreadable_ip_groups: Mapping[str, str] = field(default_factory=dict)  # key(id) → why


@dataclass(frozen=True)
class StageProblem:
    """Why a firewall cannot be evaluated at all: a resource its rules live in is absent or unreadable."""

    resource_id: str
    message: str


# -- the rules in processing order --------------------------------------------------------------------------------

def _collection_order(collection: FirewallRuleCollection) -> tuple[int, int]:
    return (collection.priority is None, collection.priority or 0)


def firewall_stage(estate: Estate, firewall: AzureFirewall) -> FirewallStage | StageProblem:
    """The firewall's rules in the order Azure Firewall applies them, or why they cannot be known (memoised per
    firewall and estate contents)."""
    objects = (firewall, estate.firewall_policies, estate.rule_collection_groups, estate.ip_groups, estate.unreadable)
    return _STAGES.get(objects, None, lambda: _stage(estate, firewall))


def _stage(estate: Estate, firewall: AzureFirewall) -> FirewallStage | StageProblem:
    unreadable_groups = {k: u.message for k, u in estate.unreadable.items() if u.type == "microsoft.network/ipgroups"}
    if not firewall.policy_id:
        steps: list[_Step] = []
        for rule_type in TYPE_ORDER:
            collections = sorted((c for t, c in firewall.collections if t == rule_type), key=_collection_order)
            for collection in collections:
                for rule in collection.rules:
                    steps.append(_Step(RuleRef(firewall.name, "", "", False, "", 0, collection.name,
                                               collection.priority, rule.name, rule_type, collection.action,
                                               len(steps)), rule))
        return FirewallStage(firewall, None, (), tuple(steps), firewall.dns_proxy, estate.ip_groups, unreadable_groups)
    chain: list[FirewallPolicy] = []
    policy_id = firewall.policy_id
    while policy_id:
        if len(chain) >= MAX_POLICY_DEPTH or any(key(p.id) == key(policy_id) for p in chain):
            return StageProblem(policy_id, f"the parent chain of firewall policy {policy_id} loops or is longer than "
                                           f"{MAX_POLICY_DEPTH} policies")
        policy = estate.firewall_policies.get(key(policy_id))
        if policy is None:
            role = "firewall policy" if not chain else f"parent policy (basePolicy of {chain[-1].name})"
            unreadable = estate.unreadable.get(key(policy_id))
            if unreadable is not None:
                return StageProblem(unreadable.id, f"{role} of firewall {firewall.name}: {unreadable.message}")
            return StageProblem(policy_id, f"{role} {policy_id} of firewall {firewall.name} is not in the inventory")
        chain.append(policy)
        policy_id = policy.base_policy_id
    chain.reverse()  # root first
    groups = []
    for level, policy in enumerate(chain):
        for group_id in policy.rule_collection_group_ids:
            group = estate.rule_collection_groups.get(key(group_id))
            if group is None:
                return StageProblem(group_id, f"rule collection group {group_id} of firewall policy {policy.name} is "
                                              "not in the inventory")
            groups.append((level, policy, group))
    steps = []
    attached = len(chain) - 1
    for rule_type in TYPE_ORDER:
        for level, policy in enumerate(chain):
            if rule_type == "nat" and level != attached:
                continue  # "NAT rule collections aren't inherited because they're specific to a given firewall"
            mine = sorted((g for lvl, _, g in groups if lvl == level), key=lambda g: (g.priority, g.name.lower()))
            for group in mine:
                for collection in sorted(group.collections, key=_collection_order):
                    for rule in collection.rules:
                        if rule.rule_type != rule_type:
                            continue
                        ref = RuleRef(firewall.name, policy.name, policy.id, level != attached, group.name,
                                      group.priority, collection.name, collection.priority, rule.name, rule_type,
                                      collection.action, len(steps))
                        steps.append(_Step(ref, rule))
    return FirewallStage(firewall, chain[-1], tuple(chain), tuple(steps), chain[-1].dns_proxy, estate.ip_groups,
                         unreadable_groups)


def firewall_of_ip(estate: Estate, ip: str) -> str:
    """The id of the Azure Firewall whose private IP is ``ip`` (a route's next hop), or ""."""
    return estate.firewall_ips.get(ip.strip(), "")


# -- names: the FQDN dimension ------------------------------------------------------------------------------------

def _norm(name: str) -> str:
    return name.strip().lower().rstrip(".")


def name_level(required: str, pattern: str) -> int:
    """How much of the names ``required`` stands for (an exact name, or ``*.suffix``: any name ending with
    ``.suffix``) a rule's FQDN ``pattern`` matches: FULL, PARTIAL or NONE. A rule pattern ``*X`` matches every name
    ending with X ("asterisks on the left-most side mean literally anything to the left"), ``*`` all names; a pattern
    with an asterisk anywhere else is not supported by Azure Firewall and matches nothing here (never an allow)."""
    wanted, rule = _norm(required), _norm(pattern)
    if rule == "*":
        return FULL
    wild = wanted.startswith("*")
    suffix = wanted[1:] if wild else wanted
    if rule.startswith("*"):
        tail = rule[1:]
        if "*" in tail:
            return NONE
        if not wild:
            return FULL if wanted.endswith(tail) else NONE
        if suffix.endswith(tail):
            return FULL
        return PARTIAL if tail.endswith(suffix) and len(tail) > len(suffix) else NONE
    if "*" in rule:
        return NONE
    if not wild:
        return FULL if wanted == rule else NONE
    return PARTIAL if rule.endswith(suffix) and len(rule) > len(suffix) else NONE


def names_level(names: Sequence[str], patterns: Sequence[str]) -> int:
    """All of ``names`` (the requirement's) matched by some pattern: FULL; none at all: NONE; else PARTIAL."""
    if not names or not patterns:
        return NONE
    levels = [max(name_level(n, p) for p in patterns) for n in names]
    if all(level == FULL for level in levels):
        return FULL
    return NONE if all(level == NONE for level in levels) else PARTIAL


# -- matching one rule ----------------------------------------------------------------------------------------------
# A match is an interval of levels (lo, hi) and the reason for any gap: (FULL, FULL) matches, (NONE, NONE) does not,
# (NONE, FULL) may or may not ("why" says why it cannot be told).

Match = tuple[int, int, str]
NO_MATCH: Match = (NONE, NONE, "")
MATCH: Match = (FULL, FULL, "")


def _both(a: Match, b: Match) -> Match:
    """Both conditions hold."""
    lo, hi = min(a[0], b[0]), min(a[1], b[1])
    return lo, hi, (a[2] or b[2]) if hi > lo else ""


def _either(a: Match, b: Match) -> Match:
    """One of the alternatives holds (destination addresses or FQDNs; FQDNs, FQDN tags or web categories)."""
    lo, hi = max(a[0], b[0]), max(a[1], b[1])
    return lo, hi, (a[2] or b[2]) if hi > lo else ""


def _ip_set(values: Sequence[str]) -> IPSet:
    intervals = []
    for value in values:
        text = value.strip()
        if text == "*":
            return IPSet.everything()
        if ":" in text:
            continue  # IPv6 never matches an IPv4 flow
        try:
            intervals.append(parse_ipv4_range(text))
        except PrefixError:
            continue  # a tag: resolved by the caller
    return IPSet.of(intervals)


def _groups(stage: FirewallStage, ids: Sequence[str]) -> tuple[IPSet, str]:
    """The addresses of IP groups, and why some cannot be known (absent or unreadable) or ""."""
    result, why = EMPTY, ""
    for group_id in ids:
        group = stage.ip_groups.get(key(group_id))
        if group is None:
            absent = f"IP group {group_id} is not in the inventory (its subscription was not read, or it was deleted)"
            why = why or stage.unreadable_ip_groups.get(key(group_id), absent)
            continue
        result = result | _ip_set(group.addresses)
    return result, why


def _set_level(sender: IPSet, covered: IPSet) -> int:
    if sender.issubset(covered):
        return FULL
    return PARTIAL if sender.overlaps(covered) else NONE


def _source_match(stage: FirewallStage, rule: FirewallRule, sender: IPSet) -> Match:
    known, why = _groups(stage, rule.source_ip_groups)
    known = known | _ip_set(rule.source_addresses)
    level = _set_level(sender, known)
    if why and level < FULL:
        return level, FULL, why
    return level, level, ""


def _ports_443(ports: Sequence[str]) -> bool:
    for text in ports:
        low, _, high = text.strip().partition("-")
        if text.strip() == "*" or (low.isdigit() and int(low) <= 443 <= int(high or low)):
            return True
    return False


@dataclass(frozen=True)
class _Destination:
    """A network or NAT rule's destination addresses as one set, and why part of it cannot be known."""

    addresses: IPSet
    why: str  # an unknown service tag or IP group


def _destination(stage: FirewallStage, rule: FirewallRule, tags: ServiceTags, required_tag: str) -> _Destination:
    known, why = _groups(stage, rule.destination_ip_groups)
    known = known | _ip_set(rule.destination_addresses)
    for value in rule.destination_addresses:
        text = value.strip()
        if text == "*" or ":" in text:
            continue
        try:
            parse_ipv4_range(text)
            continue
        except PrefixError:
            pass
        prefixes = tags.prefixes(text)
        if prefixes is not None:
            known = known | prefixes
        elif required_tag and (text.lower() == required_tag or required_tag.startswith(text.lower() + ".")):
            known = IPSet.everything()  # the required tag itself, or its top-level tag: covers the destination
        else:
            why = why or f"service tag {text!r} is not in the Service Tags data"
    return _Destination(known, why)


# -- evaluation -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Context:
    stage: FirewallStage
    view: tuple[Match, ...]  # how much of the sender each rule's source covers, by step
    names: tuple[str, ...]
    tags: ServiceTags
    required_tag: str


def sender_view(stage: FirewallStage, sender: IPSet) -> tuple[Match, ...]:
    """All the evaluation needs to know of the sender: how much of it each rule's source covers (memoised). Senders
    with the same view (the VMs of a subnet, typically) share every evaluation."""
    return _VIEWS.get((stage,), sender, lambda: tuple(_source_match(stage, s.rule, sender) for s in stage.steps))


def firewall_pieces(stage: FirewallStage, sender: IPSet, destination: IPSet, names: Sequence[str],
                    tags: ServiceTags, *, required_tag: str = "") -> tuple[FirewallPiece, ...]:
    """Partition ``destination`` (the addresses a route hands to the firewall) by what the firewall does with TCP 443
    from ``sender`` (one NIC IP, or a recovery subnet) carrying ``names``: allowed / denied by a named rule or by
    default / unknown. Memoised per (stage, sender's view, destination, names)."""
    ctx = _Context(stage, sender_view(stage, sender), tuple(names), tags, required_tag.lower())
    return _PIECES.get((stage, destination, tags), (ctx.view, ctx.names, ctx.required_tag),
                       lambda: tuple(_merge(_evaluate(ctx, 0, destination))))


def _merge(pieces: list[FirewallPiece]) -> list[FirewallPiece]:
    """One piece per (verdict, rule, note), in the order they first appear."""
    merged: dict[tuple[str, RuleRef | None, str], list[IPSet]] = {}
    for piece in pieces:
        if piece.addresses:
            merged.setdefault((piece.verdict, piece.rule, piece.note), []).append(piece.addresses)
    return [FirewallPiece(IPSet.of(iv for part in parts for iv in part.intervals), verdict, rule, note)
            for (verdict, rule, note), parts in merged.items()]


def _evaluate(ctx: _Context, start: int, remaining: IPSet) -> list[FirewallPiece]:
    pieces: list[FirewallPiece] = []
    steps = ctx.stage.steps
    index = start
    while remaining and index < len(steps):
        step = steps[index]
        index += 1
        for subset, match in _step_matches(ctx, step, remaining):
            if not subset:
                continue
            decided = _decide(ctx, step, index, subset, match)
            if decided is None:
                continue
            pieces += decided
            remaining = remaining - subset
    if remaining:
        pieces.append(FirewallPiece(remaining, "deny", None, DEFAULT_DENY))
    return pieces


def _verdict(step: _Step) -> str:
    return "allow" if step.ref.action == "allow" else "deny"


def _decide(ctx: _Context, step: _Step, after: int, subset: IPSet, match: Match) -> list[FirewallPiece] | None:
    """What the rule does to ``subset`` (None: it does not match, evaluation goes on)."""
    lo, hi, why = match
    allow = step.ref.action == "allow"
    tls = allow and step.rule.terminate_tls
    # A rule matching some of the flows counts when it denies (or makes them unknown: TLS inspection), not when it
    # allows.
    needed = FULL if allow and not tls else PARTIAL
    if hi < needed:
        return None
    if tls:
        # It may allow, but through TLS inspection: whether the connection survives is not known.
        return [FirewallPiece(subset, "unknown", step.ref,
                              "it terminates TLS (TLS inspection): the mobility agent's connection depends on "
                              "trusting the firewall's certificate")]
    if lo >= needed:
        note = "" if lo == FULL else "for some of the senders or names"
        if step.ref.rule_type == "nat":
            note = "the DNAT rule translates the destination"
        return [FirewallPiece(subset, _verdict(step), step.ref, note)]
    # Cannot tell whether the rule matches: decide both ways.
    either_way = _evaluate(ctx, after, subset)
    result = []
    for piece in either_way:
        if piece.verdict == _verdict(step):
            if piece.verdict == "deny":
                result.append(FirewallPiece(piece.addresses, "deny", step.ref,
                                            f"denied whether or not this rule matches ({why})"))
            else:
                result.append(piece)
        elif piece.verdict == "unknown":
            result.append(piece)
        else:
            result.append(FirewallPiece(piece.addresses, "unknown", step.ref, why))
    return result


def _step_matches(ctx: _Context, step: _Step, remaining: IPSet) -> list[tuple[IPSet, Match]]:
    """``remaining`` split into the parts the rule matches the same way, with how."""
    rule = step.rule
    stage = ctx.stage
    if rule.rule_type == "application":
        if "https:443" not in rule.protocols:
            return []
        source = _levels(ctx, step)
        if source[1] == NONE:
            return []
        level = names_level(ctx.names, rule.target_fqdns)
        other: Match = NO_MATCH
        if rule.fqdn_tags:
            other = _either(other, (NONE, FULL, f"FQDN tag {', '.join(rule.fqdn_tags)}: Microsoft does not publish "
                                                "the FQDNs a tag holds"))
        if rule.web_categories:
            other = _either(other, (NONE, FULL, f"web categories {', '.join(rule.web_categories)}: which category "
                                                "Azure puts ASR's names in is not published"))
        if rule.target_urls:
            other = _either(other, (NONE, FULL, "target URLs (TLS inspection): the URL paths ASR uses are not "
                                                "published"))
        if not ctx.names and (rule.target_fqdns or other != NO_MATCH):
            other = _either(other, (NONE, FULL, "no name is known for this destination"))
        destination = _either((level, level, ""), other)
        if rule.destination_addresses:
            destination = _both(destination, (NONE, FULL, "application rules with destination addresses are not "
                                                          "evaluated"))
        return [(remaining, _both(source, destination))]
    if not any(p in ("tcp", "any") for p in rule.protocols) or not _ports_443(rule.destination_ports):
        return []
    source = _levels(ctx, step)
    if source[1] == NONE:
        return []
    dest = _DESTINATIONS.get((stage, ctx.tags), (step.ref.order, ctx.required_tag),
                             lambda: _destination(stage, rule, ctx.tags, ctx.required_tag))
    fqdn: Match = NO_MATCH
    if rule.destination_fqdns:
        level = names_level(ctx.names, rule.destination_fqdns)
        if level and not stage.dns_proxy:
            fqdn = (NONE, FULL, "the rule's destination FQDNs are resolved by the firewall only with DNS proxy, "
                                "which is off")
        elif level:
            fqdn = (level, level, "")
        elif not ctx.names:
            fqdn = (NONE, FULL, "no name is known for this destination")
    inside = remaining & dest.addresses
    outside = remaining - inside  # = remaining - dest.addresses; immediate when the rule takes none or all of it
    unknown_part: Match = (NONE, FULL, dest.why) if dest.why else NO_MATCH
    return [(inside, _both(source, MATCH)), (outside, _both(source, _either(fqdn, unknown_part)))]


def _levels(ctx: _Context, step: _Step) -> Match:
    return ctx.view[step.ref.order]


_STAGES: IdentityCache[FirewallStage | StageProblem] = IdentityCache(4096)
_PIECES: IdentityCache[tuple[FirewallPiece, ...]] = IdentityCache()
_DESTINATIONS: IdentityCache[_Destination] = IdentityCache()
_VIEWS: IdentityCache[tuple[Match, ...]] = IdentityCache()


__all__ = ["DEFAULT_DENY", "FirewallPiece", "FirewallStage", "RuleRef", "StageProblem", "firewall_of_ip",
           "firewall_pieces", "firewall_stage", "name_level", "names_level", "sender_view"]
