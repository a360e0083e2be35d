"""firewall-deny findings → one rule collection group ``asr-remediate`` per Firewall Policy that lets ASR through.

What Azure Firewall documents (README, "Azure Firewall" and "Fixes"): rule collection groups are processed by
priority (100–65,000), network rules before application rules whatever the group, and a parent (``basePolicy``)
policy's network rule collections before any of the child's. So:

* the fix is an **Allow network rule collection** (TCP 443 from the senders that need it — their subnets' address
  prefixes, or with ``ASR_SOURCE_SCOPE=vm`` the NICs' IPs — to the destination's service tag, or in prefix style the
  denied prefixes) in the group ``asr-remediate`` of the policy attached to the firewall;
* its group priority goes **ahead of the first group whose network rule denies** it (the largest free priority
  below it; with only the default deny or an application-rule deny to work around, the largest free priority);
* a deny by a **network rule of a parent policy** cannot be worked around from the child: nothing is planned and the
  finding says who can (the parent policy's owner). A parent's *application* rule deny can (network rules first);
* a firewall with **classic rules** (no policy) gets no plan: the bot writes only its own rule collection group;
* the policy must not carry the opt-out tag and must have room for one more group (Azure Firewall limits: "Number of
  Rule Collection Groups in a firewall policy: 50 for Firewall policies created before July 2022, 90 for Firewall
  policies created after July 2022" — the creation date is not in the resource, so 90 is the bound checked here and
  ARM refuses the write of an older policy at 50).

Equal group priorities are ordered by nothing Azure documents, so the planner never takes one another group of the
policy already has. Every plan is verified like the NSG plans: applied to a copy of the estate and rescanned; a
finding is fixable only if that rescan no longer shows it, and a policy whose plan leaves any of its findings in
place gets no plan at all (all or nothing per policy).

Worked example — the firewall denies Storage by default; the plan allows it from the VM's subnet:

>>> from asr_remediate.model import FirewallPolicy, RuleCollectionGroup
>>> policy = FirewallPolicy("/p", "policy", "eastus", rule_collection_group_ids=("/p/ruleCollectionGroups/a",))
>>> taken = {"/p/rulecollectiongroups/a": RuleCollectionGroup("/p/ruleCollectionGroups/a", "a", 65000, ())}
>>> group_priority(policy, taken, ceiling=65000, existing=None)
64999
>>> rule = network_rule_properties("asr-remediate-Storage.EastUS", ["10.1.1.0/24"], ["Storage.EastUS"], "why")
>>> rule["ipProtocols"], rule["destinationPorts"], rule["destinationAddresses"]
(['TCP'], ['443'], ['Storage.EastUS'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from .config import MANAGED_PREFIX, Settings
from .drift import FIREWALL_FIX_KINDS, SKIPPED, Finding, VmReport, firewall_senders, verification_findings
from .estate import EstateError, parse_rule_collection_group
from .ipset import EMPTY, IPSet, is_ipv4_prefix
from .model import Estate, FirewallPolicy, ProtectedItem, RuleCollectionGroup, key
from .servicetags import ServiceTags

FIREWALL_GROUP = "asr-remediate"  # the bot's own rule collection group (the brief's name; never another's)
FIREWALL_COLLECTION = "asr-remediate-allow"
CREATE_GROUP, UPDATE_GROUP = "create-rule-collection-group", "update-rule-collection-group"
MIN_GROUP_PRIORITY, MAX_GROUP_PRIORITY = 100, 65000  # "100 to 65,000" (Azure Firewall rule processing logic)
MAX_GROUPS_PER_POLICY = 90  # Azure Firewall limits (see the module docstring)
COLLECTION_PRIORITY = 100  # the only collection in the bot's group
MAX_RULE_DESCRIPTION = 140  # conservative: ARM's NSG rule limit; the firewall rule schema names none

Ident = tuple[str, str, str, str, str]  # (VM key, side, destination, firewall key, finding kind) as in planner.py


def is_firewall_group(name: str) -> bool:
    """The bot's own rule collection group: exactly ``asr-remediate`` (case-insensitive, as ARM names are)."""
    return name.strip().lower() == FIREWALL_GROUP


def ident_of(f: Finding, vm_id: str) -> Ident:
    return (key(vm_id), f.side, f.destination, key(f.resource_id), f.kind)


@dataclass(frozen=True)
class FirewallPlan:
    changes: tuple[Any, ...]  # planner.Change (imported lazily: planner imports this module)
    fixed: Mapping[Ident, tuple[str, str, str]]  # ident → (vm id, side, destination)
    unfixable: Mapping[Ident, str]


# -- the group the bot wants ---------------------------------------------------------------------------------------

def network_rule_properties(name: str, sources: Iterable[str], destinations: Iterable[str],
                            description: str) -> dict[str, Any]:
    """One NetworkRule as the FirewallPolicyRuleCollectionGroup examples spell it (ruleType, ipProtocols, …)."""
    return {"ruleType": "NetworkRule", "name": name, "description": description[:MAX_RULE_DESCRIPTION],
            "ipProtocols": ["TCP"], "sourceAddresses": sorted(sources, key=_address_order),
            "destinationAddresses": list(destinations), "destinationPorts": ["443"]}


def _address_order(text: str) -> tuple[int, Any]:
    try:
        return (0, IPSet.from_prefixes([text]).intervals[0])
    except ValueError:
        return (1, text.lower())


def group_properties(priority: int, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"priority": priority, "ruleCollections": [{
        "ruleCollectionType": "FirewallPolicyFilterRuleCollection", "name": FIREWALL_COLLECTION,
        "priority": COLLECTION_PRIORITY, "action": {"type": "Allow"},
        "rules": sorted(rules, key=lambda r: str(r["name"]).lower())}]}


def group_priority(policy: FirewallPolicy, groups: Mapping[str, RuleCollectionGroup], *, ceiling: int,
                   existing: RuleCollectionGroup | None) -> int | None:
    """The bot's group priority: its current one when that is still at or below ``ceiling``, else the largest
    priority at or below ``ceiling`` that no other group of the policy has (None: none is free)."""
    if existing is not None and MIN_GROUP_PRIORITY <= existing.priority <= ceiling:
        return existing.priority
    taken = {g.priority for gid in policy.rule_collection_group_ids
             if (g := groups.get(key(gid))) is not None and not is_firewall_group(g.name)}
    priority = min(ceiling, MAX_GROUP_PRIORITY)
    while priority >= MIN_GROUP_PRIORITY and priority in taken:
        priority -= 1
    return priority if priority >= MIN_GROUP_PRIORITY else None


def _own_group(policy: FirewallPolicy, groups: Mapping[str, RuleCollectionGroup]) -> RuleCollectionGroup | None:
    for gid in policy.rule_collection_group_ids:
        if gid.rstrip("/").rsplit("/", 1)[-1].lower() == FIREWALL_GROUP:
            return groups.get(key(gid))
    return None


@dataclass
class _Need:
    """What one policy must let through for one destination (a rule of the bot's group)."""

    destination: str
    tag: str
    style: str
    sources: IPSet = EMPTY
    blocked: IPSet = EMPTY
    idents: list[Ident] = field(default_factory=list)
    fixes: dict[Ident, tuple[str, str, str]] = field(default_factory=dict)
    reasons: dict[str, None] = field(default_factory=dict)


@dataclass
class _PolicyNeeds:
    policy: FirewallPolicy
    firewall_names: dict[str, None] = field(default_factory=dict)
    ceiling: int = MAX_GROUP_PRIORITY
    blocker: str = ""  # the first deny the group must go before ("" : the default deny / application rules)
    by_slug: dict[str, _Need] = field(default_factory=dict)
    unplaced: dict[str, None] = field(default_factory=dict)  # VMs whose senders cannot be told


def _sources(subnet_prefixes: tuple[str, ...], senders: IPSet, scope: str) -> IPSet:
    if scope == "vm":
        return senders
    try:
        return IPSet.from_prefixes(subnet_prefixes)
    except ValueError:
        return senders


def plan_firewalls(estate: Estate, reports: Iterable[VmReport], items: Mapping[str, ProtectedItem],
                   tags: ServiceTags, settings: Settings, base_changes: Iterable[Any] = ()) -> FirewallPlan:
    """Plan the bot's rule collection group in each policy behind a firewall-deny finding, verified by a rescan of
    the estate with ``base_changes`` (the NSG / route plan) and the groups applied."""
    from .planner import Change, Fix, apply_changes  # planner imports this module

    reports = [r for r in reports if r.status != SKIPPED]
    base_changes = tuple(base_changes)
    unfixable: dict[Ident, str] = {}
    needs: dict[str, _PolicyNeeds] = {}
    for report in reports:
        item = items.get(key(report.protected_item_id))
        for f in report.findings:
            if f.kind != "firewall-deny" or f.requirement is None or f.requirement.prefixes is None:
                continue
            ident = ident_of(f, report.id)
            why = _refusal(estate, f, settings)
            if why:
                unfixable[ident] = why
                continue
            firewall = estate.firewalls[key(f.resource_id)]
            policy = estate.firewall_policies[key(firewall.policy_id)]
            pneeds = needs.setdefault(key(policy.id), _PolicyNeeds(policy))
            pneeds.firewall_names[firewall.name] = None
            ref = f.firewall_rule
            if (ref is not None and ref.rule_type in ("network", "nat") and not ref.inherited
                    and ref.group_priority - 1 < pneeds.ceiling):
                    pneeds.ceiling = ref.group_priority - 1
                    pneeds.blocker = (f"rule collection group {ref.group} (priority {ref.group_priority}), whose "
                                      f"rule {ref.rule} denies {f.destination}")
            req = f.requirement
            need = pneeds.by_slug.setdefault(req.slug, _Need(req.destination, req.tag, req.style))
            need.idents.append(ident)
            need.fixes[ident] = (report.id, f.side, f.destination)
            need.blocked = need.blocked | f.blocked
            need.reasons[req.reason] = None
            found = firewall_senders(item, estate, tags, f.side, firewall.id, req) if item is not None else ()
            if not found:
                pneeds.unplaced[report.name] = None
            for subnet, senders in found:
                need.sources = need.sources | _sources(subnet.address_prefixes, senders, settings.source_scope)
    excluded: dict[str, str] = {}
    while True:
        changes: list[Any] = []
        planned: dict[str, _PolicyNeeds] = {}
        for policy_key, pneeds in sorted(needs.items()):
            why = excluded.get(policy_key) or _attempt(estate, pneeds, changes, Change)
            if why:
                for need in pneeds.by_slug.values():
                    for ident in need.idents:
                        unfixable[ident] = why
            else:
                planned[policy_key] = pneeds
        if not changes:
            return FirewallPlan((), {}, unfixable)
        patched = apply_changes(estate, (*base_changes, *changes))
        wanted = {ident[0] for p in planned.values() for n in p.by_slug.values() for ident in n.idents}
        still: set[Ident] = set()
        for report in reports:
            item = items.get(key(report.protected_item_id))
            if key(report.id) in wanted and item is not None:
                still |= {ident_of(f, report.id)
                          for f in verification_findings(item, patched, tags, settings, FIREWALL_FIX_KINDS)}
        failing = [k for k, p in planned.items() if any(i in still for n in p.by_slug.values() for i in n.idents)]
        if not failing:
            break
        for policy_key in failing:
            left = next(i for n in planned[policy_key].by_slug.values() for i in n.idents if i in still)
            name = planned[policy_key].policy.name
            excluded[policy_key] = (f"{left[2]} would still be denied with the asr-remediate rule collection group "
                                    f"in place; nothing is planned in firewall policy {name}")
    fixed: dict[Ident, tuple[str, str, str]] = {}
    final = []
    for change in changes:
        pneeds = planned[key(change.resource_id)]
        mine = {i: v for n in pneeds.by_slug.values() for i, v in n.fixes.items()}
        fixed.update(mine)
        fixes = tuple(Fix(*v) for _, v in sorted(mine.items(), key=lambda kv: (kv[1][0].lower(), kv[1][1],
                                                                                  kv[1][2])))
        final.append(replace(change, fixes=fixes))
    return FirewallPlan(tuple(final), fixed, unfixable)


def _refusal(estate: Estate, f: Finding, settings: Settings) -> str:
    """Why no group of the bot's can fix this finding, or ''."""
    firewall = estate.firewalls.get(key(f.resource_id))
    if firewall is None:
        return "the firewall is not in the inventory"
    if not firewall.policy_id:
        return (f"Azure Firewall {firewall.name} uses classic rules (no Firewall Policy): the bot writes only its own "
                "rule collection group in a Firewall Policy, so allow it in the firewall's network rule collections "
                "or attach a policy")
    policy = estate.firewall_policies.get(key(firewall.policy_id))
    if policy is None:
        return f"firewall policy {firewall.policy_id} is not in the inventory"
    if settings.opt_out_tag.lower() in {t.lower() for t in policy.tags}:
        return f"firewall policy {policy.name} is opted out (tag {settings.opt_out_tag})"
    ref = f.firewall_rule
    if ref is not None and ref.inherited and ref.rule_type == "network":
        return (f"the deny is in parent policy {ref.policy} ({ref.describe()}): a parent policy's network rules are "
                f"processed before any rule of firewall policy {policy.name}, so only the parent policy's owner can "
                "allow it there")
    return ""


def _attempt(estate: Estate, pneeds: _PolicyNeeds, changes: list[Any], change_type: Any) -> str:
    """Append the policy's group change to ``changes``, or say why there is none."""
    policy = pneeds.policy
    if pneeds.unplaced:
        return (f"cannot tell which subnet {', '.join(sorted(pneeds.unplaced))} sends through Azure Firewall "
                f"{', '.join(pneeds.firewall_names)}")
    groups = estate.rule_collection_groups
    existing = _own_group(policy, groups)
    if existing is None and any(g.rstrip("/").rsplit("/", 1)[-1].lower() == FIREWALL_GROUP
                                for g in policy.rule_collection_group_ids):
        return f"the rule collection group {FIREWALL_GROUP} of firewall policy {policy.name} is not in the inventory"
    foreign = _foreign_content(existing) if existing is not None else ""
    if foreign:
        return (f"the rule collection group {FIREWALL_GROUP} of firewall policy {policy.name} holds {foreign}, which "
                "the bot did not write; it rewrites its group only when every rule in it has the bot's shape, so "
                "nothing someone added is lost")
    before = f" ahead of {pneeds.blocker}" if pneeds.blocker else ""
    priority = group_priority(policy, groups, ceiling=pneeds.ceiling, existing=existing)
    if priority is None:
        return (f"firewall policy {policy.name} has no free rule collection group priority between "
                f"{MIN_GROUP_PRIORITY} and {pneeds.ceiling} for the {FIREWALL_GROUP} group{before}")
    if existing is None and len(policy.rule_collection_group_ids) + 1 > MAX_GROUPS_PER_POLICY:
        return (f"firewall policy {policy.name} has {len(policy.rule_collection_group_ids)} rule collection groups; "
                f"one more would exceed Azure Firewall's limit of {MAX_GROUPS_PER_POLICY}")
    rules: dict[str, dict[str, Any]] = {}
    kept_sources: dict[str, list[str]] = {}
    if existing is not None:  # never drop a rule or a sender the bot's group already allows
        for collection in existing.collections:
            for rule in collection.rules:
                if collection.name.lower() == FIREWALL_COLLECTION and rule.rule_type == "network":
                    kept_sources[rule.name.lower()] = list(rule.source_addresses)
                    rules[rule.name.lower()] = network_rule_properties(
                        rule.name, rule.source_addresses, rule.destination_addresses, "managed by asr-remediate")
    destinations = []
    for slug in sorted(pneeds.by_slug):
        need = pneeds.by_slug[slug]
        name = _rule_name(slug)
        target = [need.tag] if need.style == "tag" and need.tag else need.blocked.to_cidrs()
        sources = set(need.sources.to_cidrs())
        previous = rules.get(name.lower())
        if previous is not None:
            sources |= set(kept_sources.get(name.lower(), []))
            if need.style != "tag" or not need.tag:
                target = sorted({*target, *(d for d in previous["destinationAddresses"] if is_ipv4_prefix(d))},
                                key=_address_order)
        description = (f"Lets Azure Site Recovery reach {need.destination} ({'; '.join(need.reasons)}); managed by "
                       "asr-remediate")
        rules[name.lower()] = network_rule_properties(name, sources, target, description)
        destinations.append(need.destination)
    props = group_properties(priority, list(rules.values()))
    if existing is not None and _same_group(existing, props):
        return (f"the rule collection group {FIREWALL_GROUP} of firewall policy {policy.name} already holds the "
                "planned rules but they do not take effect")
    firewalls = ", ".join(pneeds.firewall_names)
    works_around = pneeds.blocker or "the firewall's default deny (no rule allows it)"
    changes.append(change_type(
        UPDATE_GROUP if existing is not None else CREATE_GROUP, policy.id, FIREWALL_GROUP, props,
        f"ASR needs outbound TCP 443 through Azure Firewall {firewalls} to {', '.join(destinations)}; rule "
        f"collection group {FIREWALL_GROUP} (priority {priority}) in firewall policy {policy.name}{before}",
        tuple(dict.fromkeys(i[0] for n in pneeds.by_slug.values() for i in n.idents)), ", ".join(destinations),
        works_around=works_around))
    return ""


def _foreign_content(group: RuleCollectionGroup) -> str:
    """What in the bot's own group is not of its making (so an update would lose it), or ''. The bot writes one Allow
    collection of network rules, TCP 443, from addresses to addresses."""
    for collection in group.collections:
        if collection.name.lower() != FIREWALL_COLLECTION or collection.action != "allow":
            return f"rule collection {collection.name}"
        for rule in collection.rules:
            if (rule.rule_type != "network" or rule.protocols != ("tcp",) or rule.destination_ports != ("443",)
                    or rule.source_ip_groups or rule.destination_ip_groups or rule.destination_fqdns
                    or not rule.name.lower().startswith(MANAGED_PREFIX)):
                return f"rule {rule.name}"
    return ""


def _rule_name(slug: str) -> str:
    text = "".join(c if c.isalnum() or c in "_.-" else "-" for c in MANAGED_PREFIX + slug)[:80]
    return text.rstrip(".")


def _same_group(group: RuleCollectionGroup, props: Mapping[str, Any]) -> bool:
    wanted = parse_rule_collection_group({"id": group.id, "name": group.name, "properties": props})
    return replace(wanted, etag=group.etag) == group


def apply_group_change(estate: Estate, policy_id: str, name: str, properties: Mapping[str, Any]) -> Estate:
    """The estate with the policy's group ``name`` replaced by (or created as) ``properties``."""
    policy = estate.firewall_policies[key(policy_id)]
    group_id = f"{policy.id}/ruleCollectionGroups/{name}"
    try:
        group = parse_rule_collection_group({"id": group_id, "name": name, "properties": dict(properties)})
    except EstateError as error:  # the planner's own output always parses; a caller's may not
        raise ValueError(f"rule collection group {name}: {error}") from None
    groups = dict(estate.rule_collection_groups)
    groups[key(group_id)] = group
    policies = dict(estate.firewall_policies)
    if key(group_id) not in {key(g) for g in policy.rule_collection_group_ids}:
        policies[key(policy.id)] = replace(policy, rule_collection_group_ids=(*policy.rule_collection_group_ids,
                                                                              group_id))
    return replace(estate, rule_collection_groups=MappingProxyType(groups),
                   firewall_policies=MappingProxyType(policies))
