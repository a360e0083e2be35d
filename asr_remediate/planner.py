"""Findings → a plan of NSG rules and routes that fixes them without widening anything.

One rule per missing destination per NSG (``asr-remediate-<destination>``: deterministic, so re-planning is
idempotent): Allow Outbound Tcp 443 from the senders that need it (by default the address prefixes of their subnets;
``ASR_SOURCE_SCOPE``), to the destination's tag (or, in prefix style, only the prefixes that are blocked), at the
largest free outbound priority below the first rule that denies the destination. One service-tag route per
destination per route table, next hop Internet.

All or nothing per NSG / route table and side: when not every needed rule or route fits there (free priorities,
Azure's limits), or part of it would not take effect, nothing is planned there and every finding says why, with the
numbers. Every plan is checked by applying it to a copy of the estate and rescanning: a finding is fixable only if
that rescan no longer shows it, so "apply the plan, rescan, compliant" holds by construction.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from .config import MANAGED_PREFIX, Settings
from .drift import FIX_KINDS, SKIPPED, Finding, VmReport, status_of, verification_findings
from .estate import parse_route, parse_security_rule
from .firewall_planner import apply_group_change, plan_firewalls
from .health import cross_check
from .ipset import EMPTY, IPSet, is_ipv4_prefix
from .model import OUTBOUND, Estate, NetworkSecurityGroup, ProtectedItem, Route, RouteTable, SecurityRule, key
from .requirements import SOURCE, TARGET, Requirement, requirements_for
from .servicetags import ServiceTags

MIN_PRIORITY, MAX_PRIORITY = 100, 4096
# "Azure subscription and service limits", networking limits (Azure Resource Manager):
MAX_RULES_PER_NSG = 1000  # "NSG rules per NSG: 1,000"
# "IP addresses and ranges specified for source or destination in a security group (The limit applies separately to
# source and destination): 4,000"
MAX_PREFIXES_PER_NSG_SIDE = 4000
MAX_ROUTES_PER_TABLE = 400  # "User-defined routes per route table: 400"
# "You can currently create 25 or less routes with service tags in each route table" (virtual-networks-udr-overview,
# "Service Tags for user-defined routes")
MAX_TAG_ROUTES_PER_TABLE = 25
# Network RP's SecurityRulePropertiesFormat.description: "A description for this rule. Restricted to 140 chars."
# (Azure/azure-rest-api-specs, specification/network/.../stable/2025-05-01/networkSecurityGroup.json)
MAX_DESCRIPTION = 140

CREATE_RULE, UPDATE_RULE = "create-security-rule", "update-security-rule"
CREATE_ROUTE, UPDATE_ROUTE = "create-route", "update-route"

Ident = tuple[str, str, str, str, str]  # (VM key, side, destination, resource key, finding kind)


@dataclass(frozen=True)
class Fix:
    """One finding a change fixes: the VM, the side and the destination (on the change's NSG / route table)."""

    vm_id: str
    side: str
    destination: str

    def to_json(self) -> dict[str, str]:
        return {"vmId": self.vm_id, "side": self.side, "destination": self.destination}


@dataclass(frozen=True)
class Change:
    action: str
    resource_id: str  # the NSG or route table
    name: str  # rule / route name
    properties: Mapping[str, Any]  # ARM properties to PUT
    reason: str = ""
    vm_ids: tuple[str, ...] = ()
    destination: str = ""
    fixes: tuple[Fix, ...] = ()  # the findings the verified plan fixes with this change
    works_around: str = ""  # the deny rule it goes before, or the route it overrides

    @property
    def child_type(self) -> str:
        if self.action.endswith("rule-collection-group"):
            return "ruleCollectionGroups"  # of a Firewall Policy (firewall_planner.py)
        return "securityRules" if self.action.endswith("security-rule") else "routes"

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "resourceId": self.resource_id, "name": self.name,
                "properties": dict(self.properties), "fixes": [f.to_json() for f in self.fixes],
                "worksAround": self.works_around}


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    reports: tuple[VmReport, ...]  # the scan's reports with fixable flags and unfixable reasons filled in
    unfixable: Mapping[Ident, str] = field(default_factory=dict)


def rule_name(req: Requirement) -> str:
    return _safe_name(MANAGED_PREFIX + req.slug)


def _safe_name(text: str) -> str:
    """ARM child names: letters, digits, '_', '.', '-'; at most 80 characters; not ending with '.'."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:80]
    return cleaned.rstrip(".")


def is_managed(name: str) -> bool:
    return name.lower().startswith(MANAGED_PREFIX)


def rule_description(destination: str, blocker: str, blocker_priority: int) -> str:
    """What the rule is for and which deny rule it goes before, within ARM's 140 characters (the rule name is
    shortened if need be)."""
    def text(name: str) -> str:
        return (f"Lets Azure Site Recovery reach {destination} ahead of deny rule {name} (priority "
                f"{blocker_priority}); managed by asr-remediate")
    if not blocker_priority:
        return f"Lets Azure Site Recovery reach {destination}; managed by asr-remediate"[:MAX_DESCRIPTION]
    name = blocker or "DenyAllOutBound"
    full = text(name)
    if len(full) <= MAX_DESCRIPTION:
        return full
    room = len(name) - (len(full) - MAX_DESCRIPTION) - 3
    return text(name[:room] + "...") if room > 0 else full[:MAX_DESCRIPTION]


def _prefix_list(prefixes: IPSet) -> list[str]:
    return prefixes.to_cidrs()


def desired_rule_properties(req: Requirement, priority: int, *, source: IPSet | None = None,
                            blocked: IPSet | None = None, blocker: str = "", blocker_priority: int = 0
                            ) -> dict[str, Any]:
    """The rule the bot wants. ``source`` None: the VirtualNetwork tag (``ASR_SOURCE_SCOPE=virtualnetwork``),
    otherwise the collapsed, sorted prefixes. ``blocked``: in prefix style, the only destination prefixes allowed
    (default: all of the requirement's)."""
    assert req.prefixes is not None
    props: dict[str, Any] = {
        "description": rule_description(req.destination, blocker, blocker_priority),
        "protocol": "Tcp",
        "sourcePortRange": "*",
        "destinationPortRange": "443",
        "access": "Allow",
        "priority": priority,
        "direction": "Outbound",
    }
    if source is None:
        props["sourceAddressPrefix"] = "VirtualNetwork"
    else:
        props["sourceAddressPrefixes"] = _prefix_list(source)
    if req.style == "tag" and req.tag:
        props["destinationAddressPrefix"] = req.tag
    else:
        cidrs = _prefix_list(req.prefixes if blocked is None else blocked)
        if len(cidrs) == 1:
            props["destinationAddressPrefix"] = cidrs[0]
        else:
            props["destinationAddressPrefixes"] = cidrs
    return props


def _same_rule(rule: SecurityRule, props: Mapping[str, Any]) -> bool:
    wanted = parse_security_rule({"name": rule.name, "properties": props})
    return replace(wanted, id=rule.id, description=rule.description) == rule


def _explicit(prefixes: Iterable[str]) -> IPSet | None:
    """The addresses of a prefix list made only of IPv4 CIDRs / addresses; None when it holds a tag, '*' or the like."""
    prefixes = tuple(prefixes)
    if not prefixes or not all(is_ipv4_prefix(p) for p in prefixes):
        return None
    return IPSet.from_prefixes(prefixes)


def _owner_ident(f: Finding, vm_id: str) -> Ident:
    return (key(vm_id), f.side, f.destination, key(f.resource_id), f.kind)


def _plural(count: int, word: str, plural: str = "") -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


# -- who sends: the source of a planned rule ---------------------------------------------------------------------

class _Senders:
    """The senders that cross an NSG on one side, for one protected item: the address prefixes of the source subnets
    (scope ``subnet``) or the NICs' private IPs (scope ``vm``) whose NIC or subnet NSG it is; on the target side the
    recovery subnets (whose NSG, or the recovery NIC's NSG, it is) in both scopes, as the recovery NIC's address is
    known only after failover."""

    def __init__(self, estate: Estate, scope: str) -> None:
        self.estate = estate
        self.scope = scope
        self._subnet_sets: dict[str, IPSet] = {}
        self._memo: dict[tuple[str, str, str], IPSet] = {}

    def _subnet_set(self, subnet_id: str, prefixes: tuple[str, ...]) -> IPSet:
        found = self._subnet_sets.get(key(subnet_id))
        if found is None:
            try:
                found = IPSet.from_prefixes(prefixes)
            except ValueError:
                found = EMPTY
            self._subnet_sets[key(subnet_id)] = found
        return found

    def _source_side(self, item: ProtectedItem, nsg_key: str) -> IPSet:
        result = EMPTY
        for nic_id in self.estate.source_nic_ids(item):
            nic = self.estate.nics.get(key(nic_id))
            if nic is None:
                continue
            for config in nic.ip_configurations:
                subnet = self.estate.subnets.get(key(config.subnet_id))
                if subnet is None or not config.private_ip:
                    continue
                if nsg_key not in {key(i) for i in (nic.nsg_id, subnet.nsg_id) if i}:
                    continue
                if self.scope == "vm":
                    try:
                        result = result | IPSet.address(config.private_ip)
                    except ValueError:  # an IPv6 configuration: ASR's flows here are IPv4
                        continue
                else:
                    result = result | self._subnet_set(subnet.id, subnet.address_prefixes)
        return result

    def _target_side(self, item: ProtectedItem, nsg_key: str) -> IPSet:
        result = EMPTY
        for rnic in item.recovery_nics:
            vnet = self.estate.vnets.get(key(rnic.recovery_vnet_id or item.recovery_vnet_id))
            if vnet is None:
                continue
            names = {n.lower() for n in rnic.recovery_subnet_names}
            for subnet in vnet.subnets:
                if subnet.name.lower() in names and nsg_key in {key(i) for i in (rnic.recovery_nsg_id, subnet.nsg_id)
                                                                if i}:
                    result = result | self._subnet_set(subnet.id, subnet.address_prefixes)
        return result

    def of(self, item: ProtectedItem, side: str, nsg_key: str) -> IPSet:
        memo_key = (key(item.id), side, nsg_key)
        found = self._memo.get(memo_key)
        if found is None:
            ways = (self._source_side, self._target_side) if side == SOURCE else (self._target_side, self._source_side)
            # The other side's path is the fallback for an item whose roles are reversed (failback after reprotect).
            found = ways[0](item, nsg_key) or ways[1](item, nsg_key)
            self._memo[memo_key] = found
        return found


# -- needs: what one resource must let through, per side and destination ---------------------------------------

def _union(parts: Mapping[int, IPSet]) -> IPSet:
    """The union of many sets in one pass (the findings of the VMs of a subnet share their set objects)."""
    if len(parts) == 1:
        return next(iter(parts.values()))
    return IPSet.of(interval for part in parts.values() for interval in part.intervals)


@dataclass
class _Need:
    requirement: Requirement
    blocker_priority: int
    blocker_rule: str  # the first denying rule (NSGs) or the winning route (route tables)
    vm_ids: dict[str, None] = field(default_factory=dict)  # ordered, without repeats
    idents: list[Ident] = field(default_factory=list)
    blocked_parts: dict[int, IPSet] = field(default_factory=dict)  # by id(): what the findings say is blocked
    sender_parts: dict[int, IPSet] = field(default_factory=dict)  # by id(): who sends through the NSG
    unplaced: dict[str, None] = field(default_factory=dict)  # VMs whose senders through the NSG cannot be told

    @property
    def blocked(self) -> IPSet:
        return _union(self.blocked_parts)

    @property
    def senders(self) -> IPSet:
        return _union(self.sender_parts)


def _merge(needs: Iterable[_Need]) -> _Need:
    """One need per destination across sides (a rule or route serves both)."""
    merged: _Need | None = None
    for need in needs:
        if merged is None:
            merged = _Need(need.requirement, need.blocker_priority, need.blocker_rule)
        elif need.blocker_priority < merged.blocker_priority:
            merged.blocker_priority, merged.blocker_rule = need.blocker_priority, need.blocker_rule
        merged.vm_ids.update(need.vm_ids)
        merged.idents += need.idents
        merged.blocked_parts.update(need.blocked_parts)
        merged.sender_parts.update(need.sender_parts)
        merged.unplaced.update(need.unplaced)
    assert merged is not None
    return merged


Needs = dict[str, dict[str, dict[str, _Need]]]  # resource key → side → requirement slug → need


def _group(reports: Iterable[VmReport], kind: str, items: Mapping[str, ProtectedItem],
           senders: _Senders | None) -> Needs:
    """What each resource must let through, per side and destination, and for whom (with the senders, for NSGs)."""
    grouped: Needs = defaultdict(lambda: defaultdict(dict))
    for report in reports:
        item = items.get(key(report.protected_item_id)) or _bare_item(report)
        for f in report.findings:
            if f.kind != kind or f.requirement is None or f.requirement.prefixes is None:
                continue
            if kind == "route-next-hop" and f.requirement.private_endpoint:
                continue  # the fix would be a route to the Internet for a private IP: none is planned
            needs = grouped[key(f.resource_id)][f.side]
            need = needs.get(f.requirement.slug)
            if need is None:
                need = needs[f.requirement.slug] = _Need(f.requirement, f.blocker_priority, f.rule_name)
            if (f.blocker_priority, f.rule_name) < (need.blocker_priority, need.blocker_rule):
                need.blocker_priority, need.blocker_rule = f.blocker_priority, f.rule_name
            need.vm_ids[report.id] = None
            need.idents.append(_owner_ident(f, report.id))
            need.blocked_parts[id(f.blocked)] = f.blocked
            if senders is not None:
                found = senders.of(item, f.side, key(f.resource_id))
                if found:
                    need.sender_parts[id(found)] = found
                else:
                    need.unplaced[report.name] = None
    return grouped


def _bare_item(report: VmReport) -> ProtectedItem:
    """A report whose protected item the planner was not given (an HTTP preflight's): its VM's own NICs only."""
    return ProtectedItem(report.protected_item_id or f"report:{report.id}", report.name, report.id,
                         report.source_region, report.target_region)


def _opted_out(tags: Mapping[str, str], settings: Settings) -> bool:
    return settings.opt_out_tag.lower() in {t.lower() for t in tags}


def _sides(by_side: Mapping[str, Mapping[str, _Need]]) -> list[str]:
    return sorted(by_side, key=lambda s: (s != SOURCE, s != TARGET, s))


Attempt = Callable[[Mapping[str, _Need]], tuple[list[Change], str]]


def _plan_resource(by_side: Mapping[str, dict[str, _Need]], attempt: Attempt, label: str,
                   unfixable: dict[Ident, str], excluded: Mapping[str, str]) -> list[Change]:
    """All or nothing per side: a side's needs are planned only if all of them fit together with the sides already
    planned on this resource; otherwise none are, and each of its findings gets the reason."""
    committed: list[str] = []
    changes: list[Change] = []
    for side in _sides(by_side):
        if side in excluded:
            why = excluded[side]
        else:
            merged = _merged(by_side, [*committed, side])
            planned, why = attempt(merged)
            if not why:
                committed.append(side)
                changes = planned
                continue
            why = f"{why}; nothing is planned in {label} for the {side} side"
        for need in by_side[side].values():
            for ident in need.idents:
                unfixable[ident] = why
    return changes


def _merged(by_side: Mapping[str, dict[str, _Need]], sides: list[str]) -> dict[str, _Need]:
    slugs = sorted({slug for side in sides for slug in by_side[side]})
    return {slug: _merge(by_side[side][slug] for side in sides if slug in by_side[side]) for slug in slugs}


# -- NSGs ------------------------------------------------------------------------------------------------------

class _NsgPlanner:
    def __init__(self, nsg: NetworkSecurityGroup, settings: Settings, consumers: _Consumers) -> None:
        self.nsg = nsg
        self.settings = settings
        self.consumers = consumers  # (nsg key, requirement slug) → (senders, VM ids) of every evaluated VM behind it
        self.rules = {r.name.lower(): r for r in nsg.rules}
        self.used = {r.priority for r in nsg.rules if r.direction == OUTBOUND}

    def _source(self, need: _Need, existing: SecurityRule | None) -> tuple[IPSet | None, tuple[str, ...]]:
        """The rule's source and the extra VMs it is for. Never drops an address the bot's own rule already allows
        from; an own rule whose source is a tag (VirtualNetwork, from the virtualnetwork scope) is narrowed to the
        senders of every evaluated VM behind the NSG that needs the destination, so none is cut off."""
        if self.settings.source_scope == "virtualnetwork":
            return None, ()
        source = need.senders
        extra: tuple[str, ...] = ()
        if existing is not None:
            kept = _explicit(existing.source_prefixes)
            if kept is not None:
                source = source | kept
            elif existing.source_prefixes or existing.source_asgs:
                wider, extra = self.consumers(key(self.nsg.id), need.requirement.slug)
                source = source | wider
        return source, extra

    def _destination(self, need: _Need, existing: SecurityRule | None) -> IPSet | None:
        """Prefix style: the blocked prefixes only (and those the bot's own rule already allows that the destination
        still has); tag style: None (the tag)."""
        req = need.requirement
        if req.style == "tag" and req.tag:
            return None
        assert req.prefixes is not None
        allowed = need.blocked or req.prefixes
        kept = _explicit(existing.destination_prefixes) if existing is not None else None
        if kept is not None:
            allowed = allowed | (kept & req.prefixes)
        return allowed

    def attempt(self, needs: Mapping[str, _Need]) -> tuple[list[Change], str]:
        nsg = self.nsg
        order = sorted(needs, key=lambda s: (needs[s].blocker_priority, s))
        kept: dict[str, int] = {}
        to_place: list[tuple[int, str]] = []
        for slug in order:
            need = needs[slug]
            blocker = _blocker_text(need)
            if need.unplaced and self.settings.source_scope != "virtualnetwork":
                return [], (f"cannot tell which subnet {', '.join(sorted(need.unplaced))} sends "
                            f"{need.requirement.destination} from through NSG {nsg.name}")
            ceiling = min(need.blocker_priority - 1, MAX_PRIORITY)
            if ceiling < MIN_PRIORITY:
                return [], (f"the first rule in NSG {nsg.name} that denies {need.requirement.destination}, {blocker}, "
                            f"has priority {need.blocker_priority}, so no rule can go before it (priorities start at "
                            f"{MIN_PRIORITY})")
            existing = self.rules.get(rule_name(need.requirement).lower())
            if existing is not None and MIN_PRIORITY <= existing.priority <= ceiling:
                kept[slug] = existing.priority
            else:
                to_place.append((ceiling, slug))
        priorities = dict(kept)
        taken = set(self.used)
        for ceiling, slug in sorted(to_place):
            priority = ceiling
            while priority >= MIN_PRIORITY and priority in taken:
                priority -= 1
            if priority < MIN_PRIORITY:
                return [], self._no_priority(needs[slug], ceiling, to_place)
            taken.add(priority)
            priorities[slug] = priority
        changes: list[Change] = []
        new_rules = 0
        counts = {"source": 0, "destination": 0}
        for slug in order:
            need = needs[slug]
            req = need.requirement
            name = rule_name(req)
            existing = self.rules.get(name.lower())
            source, extra_vms = self._source(need, existing)
            props = desired_rule_properties(req, priorities[slug], source=source,
                                            blocked=self._destination(need, existing), blocker=need.blocker_rule,
                                            blocker_priority=need.blocker_priority)
            if existing is not None and _same_rule(existing, props):
                return [], f"rule {name} in NSG {nsg.name} already exists as planned but does not take effect"
            new_rules += existing is None
            for side in counts:
                counts[side] += _count(props, side) - (_rule_count(existing, side) if existing else 0)
            vm_ids = tuple(dict.fromkeys((*need.vm_ids, *extra_vms)))
            changes.append(Change(UPDATE_RULE if existing else CREATE_RULE, nsg.id, name, props,
                                  f"ASR needs outbound TCP 443 to {req.destination}: {req.reason}; goes before "
                                  f"{_blocker_text(need)} in NSG {nsg.name}", vm_ids, req.destination,
                                  works_around=f"deny rule {_blocker_text(need)}"))
        rule_count = len(nsg.rules)
        if new_rules and rule_count + new_rules > MAX_RULES_PER_NSG:
            return [], (f"NSG {nsg.name} has {_plural(rule_count, 'rule')} and the fix needs {new_rules} more, over "
                        f"Azure's limit of {MAX_RULES_PER_NSG} rules per NSG")
        for side, added in counts.items():
            now = sum(_rule_count(r, side) for r in nsg.rules)
            if added > 0 and now + added > MAX_PREFIXES_PER_NSG_SIDE:
                return [], (f"NSG {nsg.name} holds {now} {side} address prefixes and the fix adds {added}, over "
                            f"Azure's limit of {MAX_PREFIXES_PER_NSG_SIDE} {side} prefixes per NSG")
        return changes, ""

    def _no_priority(self, need: _Need, ceiling: int, to_place: list[tuple[int, str]]) -> str:
        """Why the rules do not fit below ``ceiling``: how many must go there and how many priorities are free."""
        demand = sum(1 for c, _ in to_place if c <= ceiling)
        free = [p for p in range(MIN_PRIORITY, ceiling + 1) if p not in self.used]
        shown = f" ({', '.join(map(str, free))})" if 0 < len(free) <= 5 else ""
        if free:
            room = (f"only {_plural(len(free), 'outbound priority', 'outbound priorities')} between {MIN_PRIORITY} and "
                    f"{ceiling} {'is' if len(free) == 1 else 'are'} free{shown}")
        else:
            room = f"no outbound priority between {MIN_PRIORITY} and {ceiling} is free"
        return (f"NSG {self.nsg.name} needs {_plural(demand, 'new outbound rule')} at priority {ceiling} or lower, to "
                f"go before {_blocker_text(need)}, but {room}")


def _blocker_text(need: _Need) -> str:
    return f"{need.blocker_rule or 'DenyAllOutBound'} (priority {need.blocker_priority})"


def _count(props: Mapping[str, Any], side: str) -> int:
    """How many address prefixes a rule holds on one side, as Network RP counts them toward the 4,000."""
    many = props.get(f"{side}AddressPrefixes")
    return len(many) if many else (1 if props.get(f"{side}AddressPrefix") else 0)


def _rule_count(rule: SecurityRule, side: str) -> int:
    return len(rule.source_prefixes if side == "source" else rule.destination_prefixes)


# -- route tables ------------------------------------------------------------------------------------------------

def desired_routes(req: Requirement, blocked: IPSet | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Tag style: one route to the tag. Prefix style: one route per collapsed prefix of ``blocked`` (the part sent to
    a wrong next hop; default all of the requirement's)."""
    assert req.prefixes is not None
    if req.style == "tag" and req.tag:
        return [(_safe_name(MANAGED_PREFIX + req.slug), {"addressPrefix": req.tag, "nextHopType": "Internet"})]
    return [
        (_safe_name(f"{MANAGED_PREFIX}{req.slug}-{cidr.replace('/', '_')}"),
         {"addressPrefix": cidr, "nextHopType": "Internet"})
        for cidr in (req.prefixes if blocked is None else blocked).to_cidrs()
    ]


def _prefix_key(prefix: str) -> str:
    """Route prefixes compare as networks (10.0.0.0/8 = 10.0.0.0/08) or, for tags, case-insensitively."""
    try:
        return str(ipaddress.IPv4Network(prefix.strip(), strict=False))
    except ValueError:
        return prefix.strip().lower()


class _RoutePlanner:
    def __init__(self, table: RouteTable) -> None:
        self.table = table
        self.routes = {r.name.lower(): r for r in table.routes}
        self.by_prefix = {_prefix_key(r.address_prefix): r for r in table.routes}

    def attempt(self, needs: Mapping[str, _Need]) -> tuple[list[Change], str]:
        table = self.table
        changes: list[Change] = []
        new_routes = new_tag_routes = 0
        planned: set[str] = set()
        for slug in sorted(needs):
            need = needs[slug]
            req = need.requirement
            for name, props in desired_routes(req, None if req.style == "tag" and req.tag else need.blocked):
                existing = self.routes.get(name.lower())
                prefix = _prefix_key(props["addressPrefix"])
                if prefix in planned:  # another destination's route already sends exactly this prefix to Internet
                    continue
                planned.add(prefix)
                clash = self.by_prefix.get(prefix)
                if clash is not None and clash.name.lower() != name.lower():
                    return [], (f"route table {table.name} already has route {clash.name} for "
                                f"{props['addressPrefix']}, and a route table holds one route per address prefix")
                if existing is not None and parse_route({"name": existing.name, "properties": props}) == replace(
                        existing, id=""):
                    continue
                if existing is None:
                    new_routes += 1
                    new_tag_routes += not is_ipv4_prefix(props["addressPrefix"])
                changes.append(Change(UPDATE_ROUTE if existing else CREATE_ROUTE, table.id, name, props,
                                      f"ASR traffic to {req.destination} must go to the Internet next hop: "
                                      f"{req.reason}; overrides {_route_text(need)} in route table {table.name}",
                                      tuple(need.vm_ids), req.destination, works_around=_route_text(need)))
        count = len(table.routes)
        if new_routes and count + new_routes > MAX_ROUTES_PER_TABLE:
            return [], (f"route table {table.name} has {_plural(count, 'route')} and the fix needs {new_routes} more, "
                        f"over Azure's limit of {MAX_ROUTES_PER_TABLE} routes per route table")
        tag_routes = sum(1 for r in table.routes if not is_ipv4_prefix(r.address_prefix))
        if new_tag_routes and tag_routes + new_tag_routes > MAX_TAG_ROUTES_PER_TABLE:
            return [], (f"route table {table.name} has {_plural(tag_routes, 'service-tag route')} and the fix needs "
                        f"{new_tag_routes} more, over Azure's limit of {MAX_TAG_ROUTES_PER_TABLE} service-tag routes "
                        "per route table")
        return changes, ""


def _route_text(need: _Need) -> str:
    return f"route {need.blocker_rule}" if need.blocker_rule else "the route that wins"


# -- the plan ----------------------------------------------------------------------------------------------------

def apply_changes(estate: Estate, changes: Iterable[Change]) -> Estate:
    """What the estate would look like after the changes: used to verify plans and in tests."""
    nsgs = dict(estate.nsgs)
    tables = dict(estate.route_tables)
    groups: list[Change] = []
    for change in changes:
        if change.child_type == "ruleCollectionGroups":
            groups.append(change)
            continue
        k = key(change.resource_id)
        child = {"name": change.name, "id": f"{change.resource_id}/{change.child_type}/{change.name}",
                 "properties": dict(change.properties)}
        if change.child_type == "securityRules":
            nsg = nsgs[k]
            rules = [r for r in nsg.rules if r.name.lower() != change.name.lower()]
            nsgs[k] = replace(nsg, rules=(*rules, parse_security_rule(child)))
        else:
            table = tables[k]
            kept: list[Route] = [r for r in table.routes if r.name.lower() != change.name.lower()]
            tables[k] = replace(table, routes=(*kept, parse_route(child)))
    patched = replace(estate, nsgs=MappingProxyType(nsgs), route_tables=MappingProxyType(tables))
    for change in groups:
        patched = apply_group_change(patched, change.resource_id, change.name, change.properties)
    return patched


class _Consumers:
    """(NSG key, requirement slug) → the senders and VM ids of every evaluated VM whose path crosses that NSG and that
    needs the destination: built on first use (only when an own rule with a tag as source is narrowed)."""

    def __init__(self, reports: list[VmReport], items: Mapping[str, ProtectedItem], senders: _Senders,
                 tags: ServiceTags, settings: Settings) -> None:
        self.reports, self.items, self.senders, self.tags, self.settings = reports, items, senders, tags, settings

    def __call__(self, nsg_key: str, slug: str) -> tuple[IPSet, tuple[str, ...]]:
        result, vm_ids = EMPTY, []
        for report in self.reports:
            item = self.items.get(key(report.protected_item_id))
            if item is None or report.status == SKIPPED:
                continue
            for req in requirements_for(item, self.tags, self.settings):
                if req.slug != slug:
                    continue
                found = self.senders.of(item, req.side, nsg_key)
                if found:
                    result = result | found
                    vm_ids.append(report.id)
        return result, tuple(dict.fromkeys(vm_ids))


def make_plan(estate: Estate, reports: Iterable[VmReport], tags: ServiceTags, settings: Settings,
              items: Iterable[ProtectedItem] = ()) -> Plan:
    """Plan fixes for the reports, verify them by rescanning the patched estate, and mark findings fixable.

    ``items``: protected items the reports were made from that the estate does not hold (a preflight's)."""
    reports = list(reports)
    item_index = {key(i.id): i for i in (*estate.protected_items, *items)}
    senders = _Senders(estate, settings.source_scope)
    consumers = _Consumers(reports, item_index, senders, tags, settings)
    nsg_needs = _group(reports, "nsg-deny", item_index, senders)
    route_needs = _group(reports, "route-next-hop", item_index, None)
    excluded: dict[tuple[str, str], str] = {}  # (resource key, side) → why: part of its fix would not take effect
    by_ident = {_owner_ident(f, r.id): f for r in reports for f in r.findings}
    while True:
        unfixable: dict[Ident, str] = {}
        changes = _plan_all(estate, nsg_needs, route_needs, settings, consumers, unfixable, excluded)
        intended = {ident for needs in (nsg_needs, route_needs) for by_side in needs.values()
                    for side_needs in by_side.values() for need in side_needs.values() for ident in need.idents
                    if ident not in unfixable}
        if changes:
            # Only findings the plan means to fix are looked up in the rescan: rescan only the VMs that have them.
            wanted = {ident[0] for ident in intended}
            rescan = [item_index[key(r.protected_item_id)] for r in reports
                      if key(r.id) in wanted and key(r.protected_item_id) in item_index]
            still = _remaining(apply_changes(estate, changes), rescan, tags, settings)
        else:
            still = {ident: by_ident[ident] for ident in intended}  # nothing changes, so every finding stays
        failing: dict[tuple[str, str], list[Finding]] = defaultdict(list)
        for ident in sorted(intended & still.keys()):
            failing[(ident[3], ident[1])].append(still[ident])
        if not failing:
            break
        for (resource_key, side), findings in failing.items():
            excluded[(resource_key, side)] = _still_reason(findings[0], estate, resource_key, side)
    firewall = plan_firewalls(estate, reports, item_index, tags, settings, changes)
    unfixable.update(firewall.unfixable)
    fixed: dict[Ident, Fix] = {}
    final_reports = []
    for report in reports:
        findings = []
        for f in report.findings:
            ident = _owner_ident(f, report.id)
            if f.kind in ("nsg-deny", "route-next-hop") and ident in intended:
                fixed[ident] = Fix(report.id, f.side, f.destination)
                f = replace(f, fixable=True)
            elif f.kind == "firewall-deny" and ident in firewall.fixed:
                f = replace(f, fixable=True)
            elif ident in unfixable and f.severity == "error":
                f = replace(f, fixable=False, message=f"{f.message} — not fixable: {unfixable[ident]}")
            findings.append(f)
        status = report.status if report.status == SKIPPED else status_of(tuple(findings))
        # ASR's own verdict joined in last, so it never feeds the plan (health.py).
        final_reports.append(cross_check(item_index.get(key(report.protected_item_id)),
                                         replace(report, findings=tuple(findings), status=status)))
    # A change is useful if it fixes a finding of one of its VMs on its resource for its destination.
    fixes: dict[tuple[str, str], list[Fix]] = defaultdict(list)
    for ident, fix in sorted(fixed.items(), key=lambda kv: (kv[1].vm_id.lower(), kv[1].side, kv[1].destination)):
        fixes[(ident[3], ident[2])].append(fix)
    useful = []
    for c in changes:
        mine = fixes.get((key(c.resource_id), c.destination), [])
        vm_keys = {key(v) for v in c.vm_ids}
        if any(key(f.vm_id) in vm_keys for f in mine):
            useful.append(replace(c, fixes=tuple(mine)))
    return Plan((*useful, *firewall.changes), tuple(final_reports), unfixable)


def _plan_all(estate: Estate, nsg_needs: Needs, route_needs: Needs, settings: Settings, consumers: _Consumers,
              unfixable: dict[Ident, str], excluded: Mapping[tuple[str, str], str]) -> list[Change]:
    changes: list[Change] = []
    for nsg_key, by_side in sorted(nsg_needs.items()):
        nsg = estate.nsgs.get(nsg_key)
        if nsg is None:
            continue
        if _opted_out(nsg.tags, settings):
            _refuse(by_side, f"NSG {nsg.name} is opted out (tag {settings.opt_out_tag})", unfixable)
            continue
        planner = _NsgPlanner(nsg, settings, consumers)
        changes += _plan_resource(by_side, planner.attempt, f"NSG {nsg.name}", unfixable,
                                  {side: why for (k, side), why in excluded.items() if k == nsg_key})
    for table_key, by_side in sorted(route_needs.items()):
        table = estate.route_tables.get(table_key)
        if table is None:
            _refuse(by_side, "the subnet has no route table to add a route to (the bot never creates or associates "
                             "one)", unfixable)
            continue
        if not settings.fix_routes or _opted_out(table.tags, settings):
            _refuse(by_side, "route fixes are off (ASR_FIX_ROUTES=false)" if not settings.fix_routes
                    else f"route table {table.name} is opted out (tag {settings.opt_out_tag})", unfixable)
            continue
        changes += _plan_resource(by_side, _RoutePlanner(table).attempt, f"route table {table.name}", unfixable,
                                  {side: why for (k, side), why in excluded.items() if k == table_key})
    return changes


def _refuse(by_side: Mapping[str, Mapping[str, _Need]], why: str, unfixable: dict[Ident, str]) -> None:
    for side_needs in by_side.values():
        for need in side_needs.values():
            for ident in need.idents:
                unfixable[ident] = why


def _still_reason(f: Finding, estate: Estate, resource_key: str, side: str) -> str:
    """Why a side of a resource gets no plan: part of its fix would not take effect (seen in the rescan)."""
    if f.kind == "route-next-hop":
        table = estate.route_tables.get(resource_key)
        where = f"route table {table.name}" if table else "the subnet"
        return (f"route {f.rule_name or '?'} would still send {f.destination} to a wrong next hop with the "
                f"asr-remediate routes in place (it is as specific as them or more); nothing is planned in {where} "
                f"for the {side} side")
    nsg = estate.nsgs.get(resource_key)
    where = f"NSG {nsg.name}" if nsg else "the NSG"
    return (f"{f.rule_name or 'a rule'} (priority {f.blocker_priority}) would still deny {f.destination} with the "
            f"asr-remediate rule in place; nothing is planned in {where} for the {side} side")


def _remaining(estate: Estate, items: Iterable[ProtectedItem], tags: ServiceTags,
               settings: Settings) -> dict[Ident, Finding]:
    """The NSG and route findings left in the (patched) estate for ``items`` (the only kinds a plan fixes)."""
    remaining: dict[Ident, Finding] = {}
    for item in items:
        findings = verification_findings(item, estate, tags, settings, FIX_KINDS)
        if findings:  # an item with findings was evaluated, so its VM is in the inventory
            vm_id = estate.vms[key(item.vm_id)].id
            remaining.update((_owner_ident(f, vm_id), f) for f in findings)
    return remaining
