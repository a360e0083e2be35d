"""Findings per replicated VM: what on its network path (NSGs, routes) stops ASR's outbound TCP 443.

A finding is one (VM, side, destination, NSG or route table) that does not pass all of the destination. Messages
name the blocking rule or route in plain language; the planner later decides which findings it can fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .adminrules import ALLOW as ADMIN_ALLOW
from .adminrules import DENY as ADMIN_DENY
from .adminrules import UNKNOWN as ADMIN_UNKNOWN
from .adminrules import AdminPiece, evaluate_admin_rules, passing
from .adminrules import sender_view as admin_sender_view
from .config import Settings
from .firewall import DEFAULT_DENY, FirewallPiece, RuleRef, StageProblem, firewall_pieces, firewall_stage
from .ipset import EMPTY, IdentityCache, IPSet
from .model import (
    FORWARD,
    AdminRule,
    AzureFirewall,
    Estate,
    NetworkInterface,
    NetworkSecurityGroup,
    ProtectedItem,
    Route,
    RouteTable,
    Subnet,
    VirtualNetwork,
    key,
    parent_id,
)
from .nsg import FlowSource, Piece, nsg_pieces, sender_view
from .privatelink import endpoint_routes, endpoint_verdict, private_side
from .readiness import readiness_for_item
from .requirements import SOURCE, URLS, Requirement, required_fqdns, requirements_for, seed_2017_addresses
from .routes import Hop, bgp_may_override, route_hops
from .servicetags import ServiceTags
from .vnettag import virtual_network_tag

if TYPE_CHECKING:
    from .health import HealthCheck

COMPLIANT, DRIFT, UNKNOWN, SKIPPED = "compliant", "drift", "unknown", "skipped"


@dataclass(frozen=True)
class Finding:
    kind: str  # admin-deny | admin-rules | nsg-deny | route-next-hop | route-appliance | firewall-deny
    #            | firewall-egress | private-endpoint | private-dns | cache-storage | bgp-propagation | effective-nsg
    #            | legacy-ip-rule | asr-unexplained | failover-connectivity | failover-expressroute
    #            | failover-address-clash | failover-geopolitical | unknown | missing | skipped
    severity: str  # error | warning
    side: str
    destination: str
    resource_id: str
    message: str
    rule_name: str = ""
    fixable: bool = False
    # Planner inputs (not part of the report contract):
    requirement: Requirement | None = field(default=None, compare=False, repr=False)
    blocked: IPSet = field(default=EMPTY, compare=False, repr=False)
    blocker_priority: int = 0
    # firewall-deny: the first rule (in processing order) that denies; None for the firewall's default deny.
    firewall_rule: RuleRef | None = field(default=None, compare=False, repr=False)
    # ASR's own verdict on an error finding (health.py): "confirmed" | "not-yet-reported" | "" (not compared), and
    # the sentence that says it ("ASR reports error 151196 since …"), shown after the message.
    asr: str = ""
    asr_note: str = ""


@dataclass(frozen=True)
class VmReport:
    id: str
    name: str
    source_region: str
    target_region: str
    status: str
    findings: tuple[Finding, ...] = ()
    protected_item_id: str = ""
    direction: str = FORWARD  # "failback": a reprotected VM, evaluated from the recovery region back to the primary
    asr_health: HealthCheck | None = None  # the cross-check with the item's health errors (health.py)


@dataclass(frozen=True)
class PathPoint:
    """One place ASR traffic leaves from: a NIC IP (source) or a recovery subnet (target)."""

    side: str
    source: FlowSource
    vnet: VirtualNetwork
    subnet: Subnet
    nsg_ids: tuple[tuple[str, str], ...]  # (id, "NIC" | "subnet")
    bgp: tuple[Route, ...] | None = None  # BGP routes from the NIC's effective routes; None when not read
    bgp_error: str = ""  # why the NIC's effective routes could not be read (when they were asked for)
    admin: tuple[AdminRule, ...] | None = None  # the VNet's effective security admin rules; None when not read


def _share(part: IPSet, whole: IPSet) -> str:
    """'all of', '37% of', 'all but 3 addresses of' — never a rounded 100% that hides a gap."""
    # The whole is a requirement's tag (hundreds of intervals) shared by thousands of messages: sized once.
    total = _SIZES.get((whole,), None, lambda: whole.size)
    size = part.size
    if total and size == total:
        return "all of"
    percent = 100 * size / total if total else 0
    if percent >= 99.5:
        gap = total - size
        return f"all but {gap} address{'' if gap == 1 else 'es'} of"
    return f"{percent:.0f}% of" if percent >= 1 else f"{size} addresses of"


_SIZES: IdentityCache[int] = IdentityCache(8192)


def _recovery_source(subnet: Subnet, vnet: VirtualNetwork, table: RouteTable | None,
                     tags: ServiceTags) -> FlowSource:
    """The senders of a recovery subnet: one shared object per subnet, so its NSG evaluations are shared too. Their
    VirtualNetwork tag includes the UDR prefixes of the recovery subnet's own route table."""
    return _RECOVERY_SOURCES.get((subnet, vnet, table, tags), None,
                                 lambda: FlowSource(IPSet.from_prefixes(subnet.address_prefixes),
                                                    virtual_network_tag(vnet, table, tags)))


# Memos keyed by the identity of frozen inputs (the estate's objects, the engine's memoised results): the VMs of a
# subnet share NSG pieces and route hops, hence the findings derived from them.
_RECOVERY_SOURCES: IdentityCache[FlowSource] = IdentityCache(8192)
_EXACT_TAGS: IdentityCache[IPSet] = IdentityCache(8192)
_NSG_FINDINGS: IdentityCache[tuple[Finding, ...]] = IdentityCache()
_ROUTE_FINDINGS: IdentityCache[tuple[Finding, ...]] = IdentityCache()
_LEGACY_FINDINGS: IdentityCache[tuple[Finding, ...]] = IdentityCache(8192)
_POINT_FINDINGS: IdentityCache[tuple[Finding, ...]] = IdentityCache()
_UNIONS: IdentityCache[IPSet] = IdentityCache()


class _Collector:
    """Accumulates findings keyed by (side, destination, resource, kind) across NICs / IP configurations."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str, str], Finding] = {}

    def add(self, finding: Finding) -> None:
        ident = (finding.side, finding.destination, key(finding.resource_id), finding.kind)
        previous = self.items.get(ident)
        if previous is None:
            self.items[ident] = finding
            return
        blocked = _union(previous.blocked, finding.blocked)
        first = previous if previous.blocker_priority <= finding.blocker_priority else finding
        if first is not previous or blocked is not previous.blocked:
            self.items[ident] = replace(first, blocked=blocked)


def _union(a: IPSet, b: IPSet) -> IPSet:
    """a | b, shared between the VMs whose findings merge the same (memoised) sets."""
    return a if a is b else _UNIONS.get((a, b), None, lambda: a | b)


class _Recorder(_Collector):
    """Records findings in the order they are added (replayed into the VM's collector)."""

    def __init__(self) -> None:
        super().__init__()
        self.findings: list[Finding] = []

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)


def _absent(estate: Estate, resource_id: str, side: str, destination: str, message: str,
            requirement: Requirement | None = None, role: str = "") -> Finding:
    """A resource on the path that the estate does not hold: ``unknown``, naming the resource and the reason, when
    the inventory had it but it could not be read; ``missing`` when it was not there at all."""
    unreadable = estate.unreadable.get(key(resource_id)) if resource_id else None
    if unreadable is not None:
        return Finding("unknown", "warning", side, destination, unreadable.id,
                       f"{role} {unreadable.message}".strip(), requirement=requirement)
    return Finding("missing", "warning", side, destination, resource_id, message, requirement=requirement)


def _path_points(item: ProtectedItem, estate: Estate, tags: ServiceTags, out: _Collector) -> list[PathPoint]:
    points: list[PathPoint] = []
    for nic_id in estate.source_nic_ids(item):
        nic = estate.nics.get(key(nic_id))
        if nic is None:
            out.add(_absent(estate, nic_id, SOURCE, "all", f"NIC {nic_id} is not in the inventory"))
            continue
        for config in nic.ip_configurations:
            subnet = estate.subnets.get(key(config.subnet_id))
            vnet = estate.vnet_of_subnet(config.subnet_id)
            if subnet is None or vnet is None or not config.private_ip:
                vnet_id = parent_id(config.subnet_id) if config.subnet_id and config.private_ip else ""
                if vnet_id and key(vnet_id) in estate.unreadable:
                    out.add(_absent(estate, vnet_id, SOURCE, "all", ""))
                else:
                    out.add(Finding("missing", "warning", SOURCE, "all", config.subnet_id or nic.id,
                                    f"subnet of NIC {nic.name} ({config.name}) is not in the inventory"))
                continue
            table = estate.route_tables.get(key(subnet.route_table_id)) if subnet.route_table_id else None
            learned = estate.bgp_routes.get(key(nic.id))
            source = FlowSource(IPSet.address(config.private_ip),
                                _sender_virtual_network(estate, nic, vnet, table, tags, learned, out),
                                frozenset(key(a) for a in config.asg_ids))
            nsgs = tuple((i, k) for i, k in ((nic.nsg_id, "NIC"), (subnet.nsg_id, "subnet")) if i)
            points.append(PathPoint(SOURCE, source, vnet, subnet, nsgs, learned,
                                    estate.read_errors.get(key(nic.id) + "/effectiveroutetable", ""),
                                    estate.admin_rules.get(key(vnet.id))))
    for rnic in item.recovery_nics:
        vnet = estate.vnets.get(key(rnic.recovery_vnet_id or item.recovery_vnet_id))
        if vnet is None:
            out.add(_absent(estate, rnic.recovery_vnet_id or item.recovery_vnet_id, "target", "all",
                            f"recovery VNet {rnic.recovery_vnet_id or '(not set)'} is not in the inventory"))
            continue
        by_name = {s.name.lower(): s for s in vnet.subnets}
        for name in rnic.recovery_subnet_names or ():
            subnet = by_name.get(name.lower())
            if subnet is None:
                out.add(Finding("missing", "warning", "target", "all", vnet.id,
                                f"recovery subnet {name!r} does not exist in VNet {vnet.name}"))
                continue
            table = estate.route_tables.get(key(subnet.route_table_id)) if subnet.route_table_id else None
            source = _recovery_source(subnet, vnet, table, tags)
            nsgs = tuple((i, k) for i, k in ((rnic.recovery_nsg_id, "NIC"), (subnet.nsg_id, "subnet")) if i)
            points.append(PathPoint("target", source, vnet, subnet, nsgs,
                                    admin=estate.admin_rules.get(key(vnet.id))))
    return points


def _sender_virtual_network(estate: Estate, nic: NetworkInterface, vnet: VirtualNetwork, table: RouteTable | None,
                            tags: ServiceTags, learned: tuple[Route, ...] | None, out: _Collector) -> IPSet:
    """Azure's own expansion of VirtualNetwork for this NIC when its effective security rules were read (opt-in,
    ASR_READ_EFFECTIVE_NSG), else the engine's from the definition; a failed read says so (a warning)."""
    exact = estate.effective_virtual_networks.get(key(nic.id))
    if exact is not None:
        return _EXACT_TAGS.get((exact,), None, lambda: IPSet.from_prefixes(exact))
    failure = estate.read_errors.get(key(nic.id) + "/effectivenetworksecuritygroups")
    if failure:
        out.add(Finding("effective-nsg", "warning", SOURCE, "all", nic.id,
                        f"the effective security rules of NIC {nic.name} could not be read ({failure}): the "
                        "VirtualNetwork tag is computed from the VNet, its peerings and the subnet's routes instead"))
    return virtual_network_tag(vnet, table, tags, learned)


def _nsg_findings(point: PathPoint, nsg: NetworkSecurityGroup, where: str, req: Requirement,
                  tags: ServiceTags, out: _Collector, destination: IPSet | None = None) -> None:
    """``destination``: what reaches the NSGs (the admin rules' ``allow`` pieces); default all of the requirement."""
    assert req.prefixes is not None
    pieces = nsg_pieces(nsg, point.source, req.prefixes if destination is None else destination, tags,
                        required_tag=req.tag)
    for finding in _NSG_FINDINGS.get((pieces, nsg, req), (point.side, where),
                                     lambda: _nsg_findings_of(pieces, point.side, nsg, where, req)):
        out.add(finding)


def _nsg_findings_of(pieces: tuple[Piece, ...], side: str, nsg: NetworkSecurityGroup, where: str,
                     req: Requirement) -> tuple[Finding, ...]:
    findings = []
    denied = [p for p in pieces if p.verdict == "deny"]
    unknown = [p for p in pieces if p.verdict == "unknown"]
    if denied:
        blocked = IPSet.of(iv for p in denied for iv in p.addresses)
        first = min(denied, key=lambda p: p.rule.priority if p.rule else 70000)
        findings.append(Finding(
            "nsg-deny", "error", side, req.destination, nsg.id,
            _deny_message(nsg, where, req, denied, blocked),
            rule_name=first.rule.name if first.rule else "",
            requirement=req, blocked=blocked, blocker_priority=first.rule.priority if first.rule else 65500,
        ))
    for piece in unknown:
        findings.append(Finding("unknown", "warning", side, req.destination, nsg.id,
                                f"cannot tell whether {where} NSG {nsg.name} allows {req.destination}: rule "
                                f"{piece.rule.name if piece.rule else '?'} — {piece.note}",
                                rule_name=piece.rule.name if piece.rule else "", requirement=req))
    return tuple(findings)


def _deny_message(nsg: NetworkSecurityGroup, where: str, req: Requirement, denied: list[Piece],
                  blocked: IPSet) -> str:
    assert req.prefixes is not None
    rules = ", ".join(
        f"{p.rule.name} (priority {p.rule.priority}{', default rule' if p.rule.is_default else ''})" if p.rule
        else "no matching rule" for p in sorted(denied, key=lambda p: p.rule.priority if p.rule else 70000)
    )
    notes = {p.note for p in denied if p.note}
    extra = f" ({'; '.join(sorted(notes))})" if notes else ""
    return (f"{where} NSG {nsg.name}: {rules} denies outbound TCP 443 to {_share(blocked, req.prefixes)} "
            f"{req.destination}{extra}; ASR needs it to {req.reason}")


# -- AVNM security admin rules: the first stage ------------------------------------------------------------------

_ADMIN_FINDINGS: IdentityCache[tuple[Finding, ...]] = IdentityCache()
_PASSING: IdentityCache[IPSet] = IdentityCache()


def _admin_stage(point: PathPoint, req: Requirement, tags: ServiceTags, out: _Collector) -> IPSet:
    """The admin rules' findings for one requirement; returns what goes on to the NSGs (the ``allow`` pieces:
    ``always-allow`` skips the NSGs, ``deny`` and ``unknown`` never reach them)."""
    assert req.prefixes is not None
    if not point.admin:
        return req.prefixes
    pieces = evaluate_admin_rules(point.admin, point.source, req.prefixes, tags, required_tag=req.tag)
    for finding in _ADMIN_FINDINGS.get((pieces, req, point.vnet, point.subnet), point.side,
                                       lambda: _admin_findings_of(pieces, point, req)):
        out.add(finding)
    if all(p.verdict == ADMIN_ALLOW for p in pieces):
        return req.prefixes
    return _PASSING.get((pieces,), None, lambda: passing(pieces))


def _admin_findings_of(pieces: tuple[AdminPiece, ...], point: PathPoint, req: Requirement) -> tuple[Finding, ...]:
    findings = []
    denied: dict[str, list[AdminPiece]] = {}
    for piece in pieces:
        if piece.verdict == ADMIN_DENY and piece.rule is not None:
            denied.setdefault(key(piece.rule.network_manager_id), []).append(piece)
    for manager_pieces in denied.values():
        blocked = IPSet.of(iv for p in manager_pieces for iv in p.addresses)
        ordered = sorted(manager_pieces, key=lambda p: p.rule.priority if p.rule else 0)
        first = ordered[0].rule
        assert first is not None
        findings.append(Finding("admin-deny", "error", point.side, req.destination, first.network_manager_id,
                                _admin_deny_message(point, req, ordered, blocked), rule_name=first.name,
                                requirement=req, blocked=blocked, blocker_priority=first.priority))
    for piece in pieces:
        if piece.verdict != ADMIN_UNKNOWN:
            continue
        rule = piece.rule
        findings.append(Finding("unknown", "warning", point.side, req.destination,
                                rule.network_manager_id if rule else point.vnet.id,
                                f"cannot tell whether the security admin rules of VNet {point.vnet.name} allow "
                                f"{req.destination}: rule {rule.name if rule else '?'}"
                                f"{_admin_where(rule) if rule else ''} — {piece.note}",
                                rule_name=rule.name if rule else "", requirement=req))
    return tuple(findings)


def _admin_where(rule: AdminRule) -> str:
    return (f" in rule collection {rule.collection or '?'} of configuration {rule.configuration or '?'}, network "
            f"manager {rule.network_manager or '?'}")


def _admin_deny_message(point: PathPoint, req: Requirement, denied: list[AdminPiece], blocked: IPSet) -> str:
    assert req.prefixes is not None
    first = denied[0].rule
    assert first is not None
    rules = ", ".join(dict.fromkeys(
        f"{p.rule.name} (priority {p.rule.priority}, rule collection {p.rule.collection or '?'}, configuration "
        f"{p.rule.configuration or '?'}{', default rule' if p.rule.kind == 'default' else ''})"
        for p in denied if p.rule))
    notes = {p.note for p in denied if p.note}
    extra = f" ({'; '.join(sorted(notes))})" if notes else ""
    senders = f"subnet {point.subnet.name} ({', '.join(point.subnet.address_prefixes)}) of VNet {point.vnet.name}"
    return (f"VNet {point.vnet.name}: security admin rule {rules} of network manager {first.network_manager or '?'} "
            f"denies outbound TCP 443 to {_share(blocked, req.prefixes)} {req.destination}{extra}; admin rules are "
            f"evaluated before NSGs, so no NSG rule can let it through, and asr-remediate never changes a network "
            f"manager's configuration; ASR needs it to {req.reason}. Ask the platform team that owns network manager "
            f"{first.network_manager_id} for an Allow (the NSGs then decide) or AlwaysAllow security admin rule for "
            f"outbound TCP 443 from {senders} to {req.destination}, with a priority number below {first.priority}, "
            f"or to take VNet {point.vnet.name} out of the network groups rule collection {first.collection or '?'} "
            "applies to")


def _route_findings(point: PathPoint, estate: Estate, req: Requirement, tags: ServiceTags, out: _Collector) -> None:
    assert req.prefixes is not None
    table = estate.route_tables.get(key(point.subnet.route_table_id)) if point.subnet.route_table_id else None
    if point.subnet.route_table_id and table is None:
        out.add(_absent(estate, point.subnet.route_table_id, point.side, req.destination,
                        f"route table {point.subnet.route_table_id} of subnet {point.subnet.name} is not in the "
                        "inventory", req))
        return
    routing, learned = endpoint_routes(table, point.bgp or (), req, estate)
    hops = route_hops(routing, point.vnet, point.subnet, req.prefixes, tags, learned)
    subnet = point.subnet
    firewalls = estate.firewall_ips
    for finding in _ROUTE_FINDINGS.get((hops, req, subnet, table, firewalls), point.side,
                                       lambda: _route_findings_of(hops, point.side, subnet, table, req, firewalls)):
        out.add(finding)


def _route_findings_of(hops: tuple[Hop, ...], side: str, subnet: Subnet, table: RouteTable | None,
                       req: Requirement, firewalls: Mapping[str, str]) -> tuple[Finding, ...]:
    findings = []
    resource = table.id if table else subnet.id
    for hop in hops:
        verdict = endpoint_verdict(hop) if req.private_endpoint else hop.verdict
        if verdict == "ok" or (verdict == "warning" and hop.next_hop_ip.strip() in firewalls):
            continue  # an Azure Firewall: the firewall stage says what it does
        if verdict == "unknown":
            findings.append(Finding("unknown", "warning", side, req.destination, resource,
                                    f"route {hop.route_name} uses service tag {hop.prefix!r}, which is not in the "
                                    f"Service Tags data: cannot tell where {req.destination} traffic goes",
                                    rule_name=hop.route_name, requirement=req))
        elif verdict == "warning":
            findings.append(Finding("route-appliance", "warning", side, req.destination, resource,
                                    _hop_message(subnet, req, hop) + f"; the appliance must allow {', '.join(URLS)}",
                                    rule_name=hop.route_name, requirement=req, blocked=hop.addresses))
        else:
            findings.append(Finding("route-next-hop", "error", side, req.destination, resource,
                                    _hop_message(subnet, req, hop) + f"; ASR needs it to {req.reason}"
                                    + (" (asr-remediate plans no route to a private endpoint: remove or narrow that "
                                       "route)" if req.private_endpoint else _forced_tunnel_remedy(hop, req, subnet)),
                                    rule_name=hop.route_name, requirement=req, blocked=hop.addresses))
    return tuple(findings)


def _forced_tunnel_remedy(hop: Hop, req: Requirement, subnet: Subnet) -> str:
    """The seed's remedy for forced tunnelling (a 0.0.0.0/0 route to the VPN / ExpressRoute gateway): "The replication
    traffic and Site Recovery service communication should not leave the Azure boundary … add user-defined routes
    (UDRs) for these IP ranges"; for the cache storage traffic a Microsoft.Storage service endpoint on the subnet keeps
    it on the Azure backbone (its system route wins for the region's Storage prefixes)."""
    if hop.prefix.strip() != "0.0.0.0/0" or hop.next_hop_type.lower() != "virtualnetworkgateway":
        return ""
    storage = req.destination.lower().startswith("storage")
    return (f"; this is forced tunnelling to on-premises, which the Site Recovery networking guidance does not "
            f"recommend: add user-defined routes for {req.destination} with next hop Internet (service-tag routes, "
            "which asr-remediate plans where it can)"
            + (f", or enable a Microsoft.Storage service endpoint on subnet {subnet.name} for the cache storage "
               "traffic" if storage else "")
            + ", so that replication traffic does not leave Azure")


def _hop_message(subnet: Subnet, req: Requirement, hop: Hop) -> str:
    assert req.prefixes is not None
    target = f" {hop.next_hop_ip}" if hop.next_hop_ip else ""
    via = {"user": f"route {hop.route_name} ({hop.prefix})",
           "bgp": f"BGP route {hop.prefix} learned from the VNet gateway"}.get(hop.origin, hop.route_name)
    return (f"subnet {subnet.name}: {via} sends {_share(hop.addresses, req.prefixes)} {req.destination} "
            f"to next hop {hop.next_hop_type}{target}")


# -- the Azure Firewall stage: what the firewall a route hands the traffic to does with it -------------------------

def _firewall_findings(point: PathPoint, estate: Estate, item: ProtectedItem, req: Requirement, tags: ServiceTags,
                       out: _Collector) -> None:
    """For every part of ``req`` the subnet's routes send to an Azure Firewall (next hop VirtualAppliance at one of
    its private IPs): the firewall's verdict, as findings. Other appliances keep the route-appliance warning."""
    if req.prefixes is None:
        return
    table_id = point.subnet.route_table_id
    table = estate.route_tables.get(key(table_id)) if table_id else None
    if table_id and table is None:
        return  # the route stage reports the absent table
    if not _may_reach_a_firewall(table, point.bgp, estate.firewall_ips):
        return
    routing, learned = endpoint_routes(table, point.bgp or (), req, estate)
    hops = route_hops(routing, point.vnet, point.subnet, req.prefixes, tags, learned)
    routed: dict[str, IPSet] = {}
    for hop in hops:
        firewall_id = estate.firewall_ips.get(hop.next_hop_ip.strip()) if hop.verdict == "warning" else None
        if firewall_id:
            routed[firewall_id] = _union(routed.get(firewall_id, EMPTY), hop.addresses)
    names = required_fqdns(req, item.cache_storage_accounts if point.side == SOURCE else ())
    for firewall_id, addresses in routed.items():
        firewall = estate.firewalls.get(key(firewall_id))
        if firewall is None:
            out.add(_absent(estate, firewall_id, point.side, req.destination,
                            f"Azure Firewall {firewall_id} is not in the inventory", req))
            continue
        stage = firewall_stage(estate, firewall)
        if isinstance(stage, StageProblem):
            kind = "unknown" if key(stage.resource_id) in estate.unreadable else "missing"
            out.add(Finding(kind, "warning", point.side, req.destination, stage.resource_id, stage.message,
                            requirement=req))
            continue
        pieces = firewall_pieces(stage, point.source.addresses, addresses, names, tags, required_tag=req.tag)
        for finding in _shared_firewall_findings(pieces, point.side, firewall, req, names, estate, tags,
                                                 len(stage.steps)):
            out.add(finding)


def _may_reach_a_firewall(table: RouteTable | None, bgp: tuple[Route, ...] | None,
                          firewall_ips: Mapping[str, str]) -> bool:
    """Whether any route of the subnet (its table's, the NIC's BGP routes) has a firewall's IP as next hop: only such a
    route makes a hop to a firewall (system routes have no next hop IP, and endpoint_routes only leaves routes out),
    so without one the stage has nothing to evaluate. Per table, once (most subnets route to no firewall)."""
    if bgp and any(r.next_hop_ip.strip() in firewall_ips for r in bgp):
        return True
    if table is None:
        return False
    return _TO_FIREWALL.get((table, firewall_ips), None,
                            lambda: any(r.next_hop_ip.strip() in firewall_ips for r in table.routes))


_TO_FIREWALL: IdentityCache[bool] = IdentityCache(8192)


def firewall_senders(item: ProtectedItem, estate: Estate, tags: ServiceTags, side: str, firewall_id: str,
                     req: Requirement) -> tuple[tuple[Subnet, IPSet], ...]:
    """The path points of ``item`` on ``side`` whose routes hand part of ``req`` to the firewall ``firewall_id``: (their
    subnet, the senders' own addresses: a NIC IP, or a whole recovery subnet). The firewall fix plan allows exactly
    these senders (firewall_planner.py)."""
    found: list[tuple[Subnet, IPSet]] = []
    if req.prefixes is None:
        return ()
    for point in _path_points(item, estate, tags, _Collector()):
        if point.side != side:
            continue
        table = estate.route_tables.get(key(point.subnet.route_table_id)) if point.subnet.route_table_id else None
        if point.subnet.route_table_id and table is None:
            continue
        for hop in route_hops(table, point.vnet, point.subnet, req.prefixes, tags, point.bgp or ()):
            target = estate.firewall_ips.get(hop.next_hop_ip.strip()) if hop.verdict == "warning" else None
            if target and key(target) == key(firewall_id) and hop.addresses:
                found.append((point.subnet, point.source.addresses))
                break
    return tuple(found)


def _shared_firewall_findings(pieces: tuple[FirewallPiece, ...], side: str, firewall: AzureFirewall,
                              req: Requirement, names: tuple[str, ...], estate: Estate, tags: ServiceTags,
                              steps: int) -> tuple[Finding, ...]:
    """The findings of equal pieces are the same objects (the VMs behind one firewall share them)."""
    return _FIREWALL_FINDINGS.get((pieces, req, firewall, estate.route_tables, estate.subnets, tags),
                                  (side, names, steps),
                                  lambda: _firewall_findings_of(pieces, side, firewall, req, names, estate, tags,
                                                                steps))


_FIREWALL_FINDINGS: IdentityCache[tuple[Finding, ...]] = IdentityCache()
DEFAULT_DENY_ORDER = 10**6  # after every rule


def _firewall_findings_of(pieces: tuple[FirewallPiece, ...], side: str, firewall: AzureFirewall, req: Requirement,
                          names: tuple[str, ...], estate: Estate, tags: ServiceTags,
                          steps: int) -> tuple[Finding, ...]:
    assert req.prefixes is not None
    findings = []
    shown = f"{req.destination} ({', '.join(names)})" if names else req.destination
    denied = [p for p in pieces if p.verdict == "deny"]
    if denied:
        blocked = IPSet.of(iv for p in denied for iv in p.addresses)
        first = min(denied, key=lambda p: p.rule.order if p.rule else DEFAULT_DENY_ORDER + steps)
        causes = "; ".join(dict.fromkeys(
            (f"{p.rule.describe()} denies it" + (f" ({p.note})" if p.note else "")) if p.rule else DEFAULT_DENY
            for p in sorted(denied, key=lambda p: p.rule.order if p.rule else DEFAULT_DENY_ORDER)))
        findings.append(Finding(
            "firewall-deny", "error", side, req.destination, firewall.id,
            f"Azure Firewall {firewall.name} blocks outbound TCP 443 to {_share(blocked, req.prefixes)} {shown}: "
            f"{causes}; ASR needs it to {req.reason}",
            rule_name=first.rule.rule if first.rule else "", requirement=req, blocked=blocked,
            blocker_priority=first.rule.order if first.rule else DEFAULT_DENY_ORDER, firewall_rule=first.rule))
    for piece in pieces:
        if piece.verdict == "unknown":
            where = f"{piece.rule.describe()} — " if piece.rule else ""
            findings.append(Finding("unknown", "warning", side, req.destination, firewall.id,
                                    f"cannot tell whether Azure Firewall {firewall.name} allows "
                                    f"{_share(piece.addresses, req.prefixes)} {shown}: {where}{piece.note}",
                                    rule_name=piece.rule.rule if piece.rule else "", requirement=req))
    allowed = IPSet.of(iv for p in pieces if p.verdict == "allow" for iv in p.addresses)
    if allowed and firewall.forced_tunnelling:
        egress = _firewall_egress(firewall, allowed, estate, tags)
        if egress:
            findings.append(Finding(
                "firewall-egress", "warning", side, req.destination, firewall.id,
                f"Azure Firewall {firewall.name} allows {shown} but runs in forced-tunnelling mode (it has a "
                f"management IP configuration): what it allows leaves through the routes of its subnet, {egress}; "
                f"they must send {req.destination} to the Internet, not on-premises", requirement=req,
                blocked=allowed))
    return tuple(findings)


def _firewall_egress(firewall: AzureFirewall, allowed: IPSet, estate: Estate, tags: ServiceTags) -> str:
    """Where the AzureFirewallSubnet's routes send what the firewall allows, when that is not all the Internet ("" when
    it is). Azure Firewall "must have direct Internet connectivity" (Azure Firewall FAQ); in forced-tunnelling mode
    its subnet may route 0.0.0.0/0 to on-premises instead."""
    subnet = estate.subnets.get(key(firewall.subnet_id)) if firewall.subnet_id else None
    vnet = estate.vnet_of_subnet(firewall.subnet_id) if firewall.subnet_id else None
    if subnet is None or vnet is None:
        return f"whose subnet {firewall.subnet_id or '(none given)'} is not in the inventory"
    table = estate.route_tables.get(key(subnet.route_table_id)) if subnet.route_table_id else None
    if table is None:
        what = "not in the inventory" if subnet.route_table_id else "none: a default route learned from on-premises " \
                                                                    "(BGP) would win"
        return f"whose route table is {what}"
    wrong = [h for h in route_hops(table, vnet, subnet, allowed, tags) if h.verdict != "ok"]
    if not wrong:
        return ""
    return "; ".join(f"{_share(h.addresses, allowed)} it allows goes to next hop {h.next_hop_type} via "
                     f"{h.route_name} in route table {table.name}" for h in wrong)


def _legacy_rule_findings(point: PathPoint, nsg: NetworkSecurityGroup, where: str, tags: ServiceTags,
                          out: _Collector) -> None:
    """Rules from the 2017 guidance (explicit Site Recovery IPs) cover only part of today's tag."""
    for finding in _LEGACY_FINDINGS.get((nsg, tags), (point.side, where),
                                        lambda: _legacy_findings_of(point.side, nsg, where, tags)):
        out.add(finding)


def _legacy_findings_of(side: str, nsg: NetworkSecurityGroup, where: str, tags: ServiceTags) -> tuple[Finding, ...]:
    findings = []
    seed = seed_2017_addresses()
    today = tags.prefixes("AzureSiteRecovery")
    for rule in nsg.rules:
        if rule.direction != "outbound" or rule.access != "allow" or not rule.destination_prefixes:
            continue
        try:
            allowed = IPSet.from_prefixes(rule.destination_prefixes)
        except ValueError:
            continue
        if not allowed or not allowed.issubset(seed):
            continue
        covered = f"{_share(allowed & today, today)} today's AzureSiteRecovery tag" if today else "an unknown part"
        findings.append(Finding("legacy-ip-rule", "warning", side, "AzureSiteRecovery", nsg.id,
                                f"{where} NSG {nsg.name}: rule {rule.name} allows only 2017 Site Recovery IPs "
                                f"({', '.join(rule.destination_prefixes)}), which cover {covered}; use the "
                                "AzureSiteRecovery service tag", rule_name=rule.name))
    return tuple(findings)


def _skip_reason(item: ProtectedItem, estate: Estate, settings: Settings) -> str:
    vm = estate.vms.get(key(item.vm_id))
    if vm is not None and settings.opt_out_tag.lower() in {t.lower() for t in vm.tags}:
        return f"VM opted out with tag {settings.opt_out_tag}"
    if item.active_location.lower() == "recovery" and not item.swapped:
        return _failed_over(item)
    return ""


def _failed_over(item: ProtectedItem) -> str:
    """Why an item that has failed over is not evaluated: between a failover and the end of its reprotect nothing
    replicates, so there is no path to check; once reprotected it is evaluated in the reverse direction."""
    state = item.protection_state or "not given"
    text = f"{state} {item.current_operation}".lower()
    if "reprotect" in text or ("switch" in text and "protection" in text):
        what = "reprotect is in progress"
    elif "commit" in text and "progress" in text:
        what = "the failover is being committed"
    elif "commit" in text:
        what = "the failover is committed; Site Recovery replicates again only after reprotect"
    elif "failover" in text:
        what = "the failover is not committed yet"
    else:
        what = "it is not replicating"
    operation = f", operation {item.current_operation}" if item.current_operation else ""
    return (f"VM has failed over to {item.target_region} and {what} (protectionState {state}{operation}); it is "
            f"evaluated again once reprotected, replicating from {item.target_region} back to {item.source_region}")


def _vm_not_in_inventory(item: ProtectedItem, name: str) -> VmReport:
    """A protected item whose VM the inventory does not hold is ``unknown`` and gets no plan: its opt-out tag cannot
    be read, and its NICs (vmNics) may no longer be the VM's. Never a report with an empty id: without a VM id the
    protected item's id stands in."""
    if item.vm_id.strip():
        resource_id = item.vm_id
        message = (f"VM {item.vm_id} of protected item {item.name} is not in the inventory: its opt-out tag and NICs "
                   "cannot be read, so nothing is evaluated or planned for it")
    else:
        resource_id = item.id
        message = (f"protected item {item.name} names no VM (providerSpecificDetails.fabricObjectId is empty) and "
                   "none of its NICs (vmNics) in the inventory names one (virtualMachine.id): its opt-out tag and "
                   "NICs cannot be read, so nothing is evaluated or planned for it")
    finding = Finding("missing", "warning", SOURCE, "all", resource_id, message)
    return VmReport(resource_id, name, item.source_region, item.target_region, UNKNOWN, (finding,), item.id,
                    item.direction)


def _not_evaluated(item: ProtectedItem, estate: Estate, settings: Settings) -> VmReport | None:
    """The report of an item whose path is not evaluated (opted out, failed over, unreadable, its VM not in the
    inventory), else None."""
    vm = estate.vms.get(key(item.vm_id)) if item.vm_id.strip() else None
    name = vm.name if vm else item.name
    vm_id = vm.id if vm else item.vm_id
    skip = _skip_reason(item, estate, settings)
    if skip:
        finding = Finding("skipped", "warning", SOURCE, "all", vm_id or item.id, skip)
        return VmReport(vm_id or item.id, name, item.source_region, item.target_region, SKIPPED, (finding,),
                        item.id, item.direction)
    # The protected item or the VM itself could not be read: not even its opt-out tag or its NICs are known.
    unreadable = estate.unreadable.get(key(item.id)) or (
        estate.unreadable.get(key(vm_id)) if vm is None and vm_id else None)
    if unreadable is not None:
        finding = Finding("unknown", "warning", SOURCE, "all", unreadable.id, unreadable.message)
        return VmReport(vm_id or item.id, name, item.source_region, item.target_region, UNKNOWN, (finding,),
                        item.id, item.direction)
    if vm is None:
        return _vm_not_in_inventory(item, name)
    return None


def evaluate_item(item: ProtectedItem, estate: Estate, tags: ServiceTags, settings: Settings) -> VmReport:
    early = _not_evaluated(item, estate, settings)
    if early is not None:
        return early
    vm = estate.vms[key(item.vm_id)]
    name, vm_id = vm.name, vm.id
    out = _Collector()
    points = _path_points(item, estate, tags, out)
    requirements = requirements_for(item, tags, settings)
    for point in points:
        bgp_resource = point.subnet.route_table_id or point.vnet.id
        table = estate.route_tables.get(key(point.subnet.route_table_id))
        if point.bgp is None and bgp_may_override(point.vnet, table):
            remedy = (f"its effective routes could not be read ({point.bgp_error}); disable gateway route propagation "
                      "or check again while the VM runs" if point.bgp_error else
                      "enable ASR_READ_EFFECTIVE_ROUTES or disable gateway route propagation")
            out.add(Finding("bgp-propagation", "warning", point.side, "all", bgp_resource,
                            f"VNet {point.vnet.name} {_gateway_phrase(point.vnet)} and subnet {point.subnet.name} "
                            "accepts BGP routes: a route learned from on-premises (e.g. 0.0.0.0/0) would send ASR "
                            "traffic away, and its prefixes join the VirtualNetwork tag (so AllowVnetOutBound may "
                            f"allow, and an 'Internet' rule miss, more than the NSG shows); {remedy}"))
        _admin_read_findings(point, estate, out)
        nsgs = []
        for nsg_id, where in point.nsg_ids:
            nsg = estate.nsgs.get(key(nsg_id))
            if nsg is None:
                out.add(_absent(estate, nsg_id, point.side, "all", f"{where} NSG {nsg_id} is not in the inventory",
                                role=where))
            else:
                nsgs.append((nsg, where))
                if settings.profile == "service-tags":
                    _legacy_rule_findings(point, nsg, where, tags, out)
        sided = _private_stage(item, point, estate, [r for r in requirements if r.side == point.side], out)
        for finding in _requirement_findings(point, estate, nsgs, sided, tags):
            out.add(finding)
        if estate.firewall_ips:
            for req in sided:
                _firewall_findings(point, estate, item, req, tags, out)
    findings = tuple(out.items.values()) + tuple(
        Finding(r.kind, "warning", r.side, "on-premises", r.resource_id, r.message)
        for r in readiness_for_item(item, estate))
    return VmReport(vm_id, name, item.source_region, item.target_region, status_of(findings), findings, item.id,
                    item.direction)


FIX_KINDS = ("nsg-deny", "route-next-hop")
FIREWALL_FIX_KINDS = ("firewall-deny",)


def verification_findings(item: ProtectedItem, estate: Estate, tags: ServiceTags, settings: Settings,
                          kinds: tuple[str, ...]) -> tuple[Finding, ...]:
    """Only the findings of ``kinds`` that evaluate_item gives ``item`` — what a fix plan's verification rescan of the
    patched estate looks up: FIX_KINDS (the NSG and route stages, planner.py) or FIREWALL_FIX_KINDS (the firewall
    stage, firewall_planner.py). Findings merge per (side, destination, resource, kind), so leaving the other kinds
    out changes none of these; the stages that only make other kinds (BGP, admin-read and 2017-IP warnings,
    readiness) are not run, nor the firewall stage for FIX_KINDS or the NSG and route stages for FIREWALL_FIX_KINDS.
    At 100,000 VMs the rescans were a third of the plan's time, much of it in those stages."""
    if not set(kinds) <= {*FIX_KINDS, *FIREWALL_FIX_KINDS}:
        raise ValueError(f"verification_findings runs only the stages of {FIX_KINDS + FIREWALL_FIX_KINDS}: {kinds}")
    if _not_evaluated(item, estate, settings) is not None:
        return ()
    out, scratch = _Collector(), _Collector()  # scratch: findings of stages run only for what they pass on
    points = _path_points(item, estate, tags, scratch)
    requirements = requirements_for(item, tags, settings)
    firewall = any(k in FIREWALL_FIX_KINDS for k in kinds) and bool(estate.firewall_ips)
    nsg_or_route = any(k in FIX_KINDS for k in kinds)
    for point in points:
        sided = _private_stage(item, point, estate, [r for r in requirements if r.side == point.side], scratch)
        if nsg_or_route:
            nsgs = [(estate.nsgs[key(i)], where) for i, where in point.nsg_ids if key(i) in estate.nsgs]
            for finding in _requirement_findings(point, estate, nsgs, sided, tags):
                out.add(finding)
        if firewall:
            for req in sided:
                _firewall_findings(point, estate, item, req, tags, out)
    return tuple(f for f in out.items.values() if f.kind in kinds)


def _private_stage(item: ProtectedItem, point: PathPoint, estate: Estate, sided: list[Requirement],
                   out: _Collector) -> list[Requirement]:
    """Private endpoints of the vault and the cache storage accounts replace the public tags they make unnecessary
    (privatelink.py); a vault the side's VNet has no endpoint of, and a VNet not linked to the endpoint's private DNS
    zone, are findings."""
    side = private_side(item, point.vnet, point.side, sided, estate, point.subnet)
    for problem in side.problems:
        out.add(Finding(problem.kind, problem.severity, point.side, problem.destination, problem.resource_id,
                        problem.message))
    return list(side.requirements)


def _admin_read_findings(point: PathPoint, estate: Estate, out: _Collector) -> None:
    """A VNet whose security admin rules could not be read (403 without the permission, 404) is a warning: the bot
    cannot see whether a network manager denies ASR there. Read but unparseable: unknown, naming the reason."""
    pseudo = key(point.vnet.id) + "/networkmanagereffectivesecurityadminrules"
    if pseudo in estate.unreadable:
        out.add(_absent(estate, pseudo, point.side, "all", ""))
        return
    failure = estate.read_errors.get(pseudo)
    if failure and point.admin is None:
        out.add(Finding("admin-rules", "warning", point.side, "all", point.vnet.id,
                        f"the security admin rules (Azure Virtual Network Manager) in effect on VNet {point.vnet.name} "
                        f"could not be read ({failure}): a network manager's Deny would drop ASR traffic whatever the "
                        "NSGs say, and is not evaluated; grant Microsoft.Network/virtualNetworks/"
                        "listNetworkManagerEffectiveSecurityAdminRules/action to check it"))


def _gateway_phrase(vnet: VirtualNetwork) -> str:
    if vnet.has_gateway_subnet:
        return "has a gateway"
    return "uses a peered VNet's gateway (useRemoteGateways)"


def _requirement_findings(point: PathPoint, estate: Estate, nsgs: list[tuple[NetworkSecurityGroup, str]],
                          requirements: list[Requirement], tags: ServiceTags) -> tuple[Finding, ...]:
    """What the NSGs and the route table on one path point do to each requirement, in evaluation order.

    Memoised per equivalent point: the same NSGs seeing the sender the same way, the same VirtualNetwork space,
    subnet, route table and requirements — the VMs of a subnet, typically.
    """
    table_id = point.subnet.route_table_id
    table = estate.route_tables.get(key(table_id)) if table_id else None
    views = tuple(sender_view(nsg, point.source, tags) for nsg, _ in nsgs)
    admin_view = admin_sender_view(point.admin, point.source, tags) if point.admin else None
    objects = (tags, point.vnet, point.subnet, table, point.source.virtual_network, point.admin,
               *(n for n, _ in nsgs), *requirements)
    absent_table = (bool(table_id) and table is None, estate.unreadable.get(key(table_id)) if table_id else None)
    extra = (point.side, len(nsgs), tuple(w for _, w in nsgs), views, absent_table, point.bgp, admin_view)

    def build() -> tuple[Finding, ...]:
        recorder = _Recorder()
        for req in requirements:
            if req.prefixes is None:
                recorder.add(Finding("unknown", "warning", point.side, req.destination, point.subnet.id,
                                     f"cannot evaluate {req.destination}: {req.reason}", requirement=req))
                continue
            reaching = _admin_stage(point, req, tags, recorder)
            for nsg, where in nsgs:
                _nsg_findings(point, nsg, where, req, tags, recorder, reaching)
            _route_findings(point, estate, req, tags, recorder)
        return tuple(recorder.findings)

    return _POINT_FINDINGS.get(objects, extra, build)


def status_of(findings: tuple[Finding, ...]) -> str:
    if any(f.severity == "error" for f in findings):
        return DRIFT
    if any(f.kind in ("unknown", "missing") for f in findings):
        return UNKNOWN
    return COMPLIANT


def evaluate_estate(estate: Estate, tags: ServiceTags, settings: Settings) -> list[VmReport]:
    return [evaluate_item(item, estate, tags, settings) for item in estate.protected_items]
