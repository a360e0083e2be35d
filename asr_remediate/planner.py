"""Findings → a plan of NSG rules and routes that fixes them without widening anything.

One rule per missing destination per NSG (``asr-remediate-<destination>``: deterministic, so re-planning is
idempotent), Allow Outbound Tcp 443 from VirtualNetwork, at the largest free outbound priority below the first
rule that denies the destination. One service-tag route per destination per route table, next hop Internet.
Every plan is checked by applying it to a copy of the estate and rescanning: a finding is fixable only if that
rescan no longer shows it, so "apply the plan, rescan, compliant" holds by construction.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from .config import MANAGED_PREFIX, Settings
from .drift import SKIPPED, Finding, VmReport, evaluate_item, status_of
from .estate import parse_route, parse_security_rule
from .ipset import is_ipv4_prefix
from .model import OUTBOUND, Estate, NetworkSecurityGroup, Route, RouteTable, SecurityRule, key
from .requirements import Requirement
from .servicetags import ServiceTags

MIN_PRIORITY, MAX_PRIORITY = 100, 4096
MAX_RULES_PER_NSG = 1000
MAX_PREFIXES_PER_NSG_SIDE = 4000
MAX_ROUTES_PER_TABLE = 400  # "User-defined routes per route table: 400" (Azure networking limits)
MAX_TAG_ROUTES_PER_TABLE = 25

CREATE_RULE, UPDATE_RULE = "create-security-rule", "update-security-rule"
CREATE_ROUTE, UPDATE_ROUTE = "create-route", "update-route"


@dataclass(frozen=True)
class Change:
    action: str
    resource_id: str  # the NSG or route table
    name: str  # rule / route name
    properties: Mapping[str, Any]  # ARM properties to PUT
    reason: str = ""
    vm_ids: tuple[str, ...] = ()
    destination: str = ""

    @property
    def child_type(self) -> str:
        return "securityRules" if self.action.endswith("security-rule") else "routes"

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "resourceId": self.resource_id, "name": self.name,
                "properties": dict(self.properties)}


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    reports: tuple[VmReport, ...]  # the scan's reports with fixable flags and unfixable reasons filled in
    unfixable: Mapping[tuple[str, str, str, str, str], str] = field(default_factory=dict)


def rule_name(req: Requirement) -> str:
    return _safe_name(MANAGED_PREFIX + req.slug)


def _safe_name(text: str) -> str:
    """ARM child names: letters, digits, '_', '.', '-'; at most 80 characters; not ending with '.'."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:80]
    return cleaned.rstrip(".")


def is_managed(name: str) -> bool:
    return name.lower().startswith(MANAGED_PREFIX)


def desired_rule_properties(req: Requirement, priority: int) -> dict[str, Any]:
    assert req.prefixes is not None
    props: dict[str, Any] = {
        "description": f"Allow Azure Site Recovery outbound to {req.destination} (managed by asr-remediate)",
        "protocol": "Tcp",
        "sourcePortRange": "*",
        "destinationPortRange": "443",
        "sourceAddressPrefix": "VirtualNetwork",
        "access": "Allow",
        "priority": priority,
        "direction": "Outbound",
    }
    if req.style == "tag" and req.tag:
        props["destinationAddressPrefix"] = req.tag
    else:
        cidrs = req.prefixes.to_cidrs()
        if len(cidrs) == 1:
            props["destinationAddressPrefix"] = cidrs[0]
        else:
            props["destinationAddressPrefixes"] = cidrs
    return props


def _same_rule(rule: SecurityRule, props: Mapping[str, Any]) -> bool:
    wanted = parse_security_rule({"name": rule.name, "properties": props})
    return replace(wanted, id=rule.id, description=rule.description) == rule


def _prefix_count(rules: Iterable[SecurityRule]) -> int:
    return sum(len(r.destination_prefixes) for r in rules if r.direction == OUTBOUND)


def _owner_ident(f: Finding, vm_id: str) -> tuple[str, str, str, str, str]:
    return (key(vm_id), f.side, f.destination, key(f.resource_id), f.kind)


@dataclass
class _Need:
    requirement: Requirement
    blocker_priority: int
    vm_ids: list[str]
    idents: list[tuple[str, str, str, str, str]]


def _group(reports: Iterable[VmReport], kind: str) -> dict[str, dict[str, _Need]]:
    """resource id key → destination → what that resource must let through and for whom."""
    grouped: dict[str, dict[str, _Need]] = defaultdict(dict)
    for report in reports:
        for f in report.findings:
            if f.kind != kind or f.requirement is None or f.requirement.prefixes is None:
                continue
            needs = grouped[key(f.resource_id)]
            need = needs.get(f.requirement.slug)
            if need is None:
                need = needs[f.requirement.slug] = _Need(f.requirement, f.blocker_priority, [], [])
            need.blocker_priority = min(need.blocker_priority, f.blocker_priority)
            if report.id not in need.vm_ids:
                need.vm_ids.append(report.id)
            need.idents.append(_owner_ident(f, report.id))
    return grouped


def _opted_out(tags: Mapping[str, str], settings: Settings) -> bool:
    return settings.opt_out_tag.lower() in {t.lower() for t in tags}


def _plan_nsg(nsg: NetworkSecurityGroup, needs: dict[str, _Need], settings: Settings,
              unfixable: dict[tuple[str, str, str, str, str], str]) -> list[Change]:
    def refuse(need: _Need, why: str) -> None:
        for ident in need.idents:
            unfixable[ident] = why

    if _opted_out(nsg.tags, settings):
        for need in needs.values():
            refuse(need, f"NSG {nsg.name} is opted out (tag {settings.opt_out_tag})")
        return []
    changes: list[Change] = []
    rules = {r.name.lower(): r for r in nsg.rules}
    used = {r.priority for r in nsg.rules if r.direction == OUTBOUND}
    rule_count = len(nsg.rules)
    prefix_count = _prefix_count(nsg.rules)
    for slug in sorted(needs, key=lambda s: (needs[s].blocker_priority, s)):
        need = needs[slug]
        name = rule_name(need.requirement)
        existing = rules.get(name.lower())
        ceiling = min(need.blocker_priority - 1, MAX_PRIORITY)
        taken = used - ({existing.priority} if existing else set())
        if existing and MIN_PRIORITY <= existing.priority <= ceiling:
            priority: int | None = existing.priority
        else:
            priority = next((p for p in range(ceiling, MIN_PRIORITY - 1, -1) if p not in taken), None)
        if priority is None:
            if ceiling < MIN_PRIORITY:
                refuse(need, f"the first denying rule in NSG {nsg.name} has priority {need.blocker_priority}, "
                             "so no rule can be placed before it")
            else:
                refuse(need, f"no free outbound priority between {MIN_PRIORITY} and {ceiling} in NSG {nsg.name} "
                             f"(below the first denying rule at {need.blocker_priority})")
            continue
        props = desired_rule_properties(need.requirement, priority)
        added_prefixes = len(props.get("destinationAddressPrefixes") or [1])
        if existing is None and rule_count + 1 > MAX_RULES_PER_NSG:
            refuse(need, f"NSG {nsg.name} already has {rule_count} rules (limit {MAX_RULES_PER_NSG})")
            continue
        if prefix_count + added_prefixes > MAX_PREFIXES_PER_NSG_SIDE:
            refuse(need, f"NSG {nsg.name} would exceed {MAX_PREFIXES_PER_NSG_SIDE} destination prefixes")
            continue
        if existing is not None and _same_rule(existing, props):
            refuse(need, f"rule {name} already exists as planned but does not take effect")
            continue
        used.discard(existing.priority if existing else -1)
        used.add(priority)
        rule_count += existing is None
        prefix_count += added_prefixes
        changes.append(Change(UPDATE_RULE if existing else CREATE_RULE, nsg.id, name, props,
                              f"ASR needs outbound TCP 443 to {need.requirement.destination}: "
                              f"{need.requirement.reason}", tuple(need.vm_ids), need.requirement.destination))
    return changes


def desired_routes(req: Requirement) -> list[tuple[str, dict[str, Any]]]:
    assert req.prefixes is not None
    if req.style == "tag" and req.tag:
        return [(_safe_name(MANAGED_PREFIX + req.slug), {"addressPrefix": req.tag, "nextHopType": "Internet"})]
    return [
        (_safe_name(f"{MANAGED_PREFIX}{req.slug}-{cidr.replace('/', '_')}"),
         {"addressPrefix": cidr, "nextHopType": "Internet"})
        for cidr in req.prefixes.to_cidrs()
    ]


def _plan_routes(table: RouteTable, needs: dict[str, _Need], settings: Settings,
                 unfixable: dict[tuple[str, str, str, str, str], str]) -> list[Change]:
    def refuse(need: _Need, why: str) -> None:
        for ident in need.idents:
            unfixable[ident] = why

    if not settings.fix_routes or _opted_out(table.tags, settings):
        why = ("route fixes are off (ASR_FIX_ROUTES=false)" if not settings.fix_routes
               else f"route table {table.name} is opted out (tag {settings.opt_out_tag})")
        for need in needs.values():
            refuse(need, why)
        return []
    changes: list[Change] = []
    routes = {r.name.lower(): r for r in table.routes}
    route_count = len(table.routes)
    tag_routes = sum(1 for r in table.routes if not is_ipv4_prefix(r.address_prefix))
    for slug in sorted(needs):
        need = needs[slug]
        wanted = desired_routes(need.requirement)
        new = [(n, p) for n, p in wanted if n.lower() not in routes]
        new_tag_routes = sum(1 for _, p in new if not is_ipv4_prefix(p["addressPrefix"]))
        if route_count + len(new) > MAX_ROUTES_PER_TABLE:
            refuse(need, f"route table {table.name} would exceed {MAX_ROUTES_PER_TABLE} routes")
            continue
        if tag_routes + new_tag_routes > MAX_TAG_ROUTES_PER_TABLE:
            refuse(need, f"route table {table.name} would exceed {MAX_TAG_ROUTES_PER_TABLE} service-tag routes")
            continue
        route_count += len(new)
        tag_routes += new_tag_routes
        for name, props in wanted:
            existing = routes.get(name.lower())
            if existing is not None and parse_route({"name": existing.name, "properties": props}) == replace(
                existing, id=""
            ):
                continue
            changes.append(Change(UPDATE_ROUTE if existing else CREATE_ROUTE, table.id, name, props,
                                  f"ASR traffic to {need.requirement.destination} must go to the Internet next hop: "
                                  f"{need.requirement.reason}", tuple(need.vm_ids), need.requirement.destination))
    return changes


def apply_changes(estate: Estate, changes: Iterable[Change]) -> Estate:
    """What the estate would look like after the changes: used to verify plans and in tests."""
    nsgs = dict(estate.nsgs)
    tables = dict(estate.route_tables)
    for change in changes:
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
    return replace(estate, nsgs=MappingProxyType(nsgs), route_tables=MappingProxyType(tables))


def make_plan(estate: Estate, reports: Iterable[VmReport], tags: ServiceTags, settings: Settings) -> Plan:
    """Plan fixes for the reports, verify them by rescanning the patched estate, and mark findings fixable."""
    reports = list(reports)
    unfixable: dict[tuple[str, str, str, str, str], str] = {}
    changes: list[Change] = []
    for nsg_key, needs in sorted(_group(reports, "nsg-deny").items()):
        nsg = estate.nsgs.get(nsg_key)
        if nsg is not None:
            changes.extend(_plan_nsg(nsg, needs, settings, unfixable))
    for table_key, needs in sorted(_group(reports, "route-next-hop").items()):
        table = estate.route_tables.get(table_key)
        if table is None:
            for need in needs.values():
                for ident in need.idents:
                    unfixable[ident] = "the subnet has no route table to add a route to"
            continue
        changes.extend(_plan_routes(table, needs, settings, unfixable))
    still: set[tuple[str, str, str, str, str]] = set()
    if changes:
        # Only findings the plan means to fix are looked up in the rescan: rescan only the VMs that have them.
        wanted = {key(r.id) for r in reports for f in r.findings
                  if f.kind in ("nsg-deny", "route-next-hop") and _owner_ident(f, r.id) not in unfixable}
        still = _remaining_idents(apply_changes(estate, changes), tags, settings, wanted)
    fixed: set[tuple[str, str, str, str, str]] = set()
    final_reports = []
    for report in reports:
        findings = []
        for f in report.findings:
            ident = _owner_ident(f, report.id)
            if f.kind in ("nsg-deny", "route-next-hop") and ident not in unfixable:
                if ident in still:
                    unfixable[ident] = _still_reason(f)
                else:
                    fixed.add(ident)
                    f = replace(f, fixable=True)
            if ident in unfixable and f.severity == "error":
                f = replace(f, fixable=False, message=f"{f.message} — not fixable: {unfixable[ident]}")
            findings.append(f)
        status = report.status if report.status == SKIPPED else status_of(tuple(findings))
        final_reports.append(replace(report, findings=tuple(findings), status=status))
    # A change is useful if it fixes a finding of one of its VMs on its resource for its destination.
    helped: dict[tuple[str, str], set[str]] = defaultdict(set)
    for ident in fixed:
        helped[(ident[3], ident[2])].add(key(ident[0]))
    useful = [c for c in changes
              if not helped.get((key(c.resource_id), c.destination), set()).isdisjoint(key(v) for v in c.vm_ids)]
    return Plan(tuple(useful), tuple(final_reports), unfixable)


def _still_reason(f: Finding) -> str:
    if f.kind == "route-next-hop":
        return "a route more specific than (or as specific as) the service-tag route still wins"
    return "the planned rule would not take effect"


def _remaining_idents(estate: Estate, tags: ServiceTags, settings: Settings,
                      vm_keys: set[str]) -> set[tuple[str, str, str, str, str]]:
    """The findings left in the (patched) estate for the VMs in ``vm_keys``."""
    reports = (evaluate_item(i, estate, tags, settings) for i in estate.protected_items if key(i.vm_id) in vm_keys)
    return {_owner_ident(f, r.id) for r in reports for f in r.findings}
