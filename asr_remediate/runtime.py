"""The imperative shell: live inventory, service tags, the engine, guarded apply and audit, wired from settings.

Used by the CLI's live commands and by every Function App trigger, so both behave the same. A scan costs the
Resource Graph pages plus one Service Tags call plus one security admin rules POST per VNet on a replicated VM's
path (ASR_READ_ADMIN_RULES), and one more query when a route hands traffic to an IP no firewall read so far holds
(a hub firewall in a connectivity subscription of ASR_SUBSCRIPTIONS): no per-VM ARM reads. ARM is read per resource
only right before a write (and for the one resource an Event Grid event names, because Resource Graph lags ARM).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from .audit import (
    RECONCILE_AFTER,
    RECONCILE_WINDOW,
    AuditError,
    Auditor,
    AuditSink,
    format_timestamp,
    make_sink,
    utc_now,
)
from .config import Settings
from .drift import evaluate_item
from .errors import AZURE_FAILURES, one_line
from .estate import EstateBuilder, build_estate, firewall_ips_of, protected_item_or_stub, with_reads
from .event_reads import (
    SUBSCRIPTION_LOCAL_KINDS,
    item_filter_subscriptions,
    mentioned_subscriptions,
    serves_other_subscriptions,
    unread_subscriptions,
)
from .events import EventError, affected_items, is_own_write, parse_event, watched
from .firewall_paths import unmatched_next_hops
from .firewall_search import firewall_networks, firewalls_at, ip_groups_named, routes_to_an_appliance
from .gcpause import collector_paused
from .model import Estate, ProtectedItem, key, resource_group_of, subscription_of
from .planner import Plan, make_plan
from .routes import bgp_may_override
from .service import (
    DEADLINE_NOTE,
    Applier,
    ApplyResult,
    ChangeOutcome,
    Deadline,
    NetworkClient,
    reconcile,
    rollback,
)
from .servicetags import ServiceTags, load_service_tags_file, parse_service_tags
from .telemetry import Telemetry, count_page
from .telemetry import from_environment as telemetry_from_environment

log = logging.getLogger(__name__)

EFFECTIVE_ROUTES_RESOURCE_TYPE = "Microsoft.Network/networkInterfaces/effectiveRouteTable"
EFFECTIVE_NSGS_RESOURCE_TYPE = "Microsoft.Network/networkInterfaces/effectiveNetworkSecurityGroups"
#: Subscription batches of the network query read in parallel once the scope has this many protected items (a
#: VM brings ~5 network rows, so such a query runs to several pages); fewer keep one paged query: each batch's
#: last page is partial, and an event's re-check must stay at its two queries. 4 in flight stays well inside
#: Resource Graph's documented example quota of 15 queries per 5 s, and the gate keeps to what it reports.
PARALLEL_FROM_ITEMS = 1000
PARALLEL_BATCHES = 4
ADMIN_RULES_RESOURCE_TYPE = "Microsoft.Network/virtualNetworks/networkManagerEffectiveSecurityAdminRules"
#: Security admin rules POSTs in flight at once (one per VNet): like the Resource Graph batches, a handful — far
#: inside ARM's per-subscription budget (a token bucket of 200-250 requests, refilled at 10-25 a second, "Request
#: limits and throttling"), and the retry policy still honours a 429's Retry-After.
ADMIN_RULE_READERS = 4

Progress = Callable[[str], None]
RECONCILE_FAILURES: tuple[type[Exception], ...] = (AuditError, *AZURE_FAILURES)


class RuntimeConfigError(ValueError):
    """The run cannot start: missing scope, unreadable settings. One line for the operator."""


@dataclass(frozen=True)
class Scope:
    """Which replicated VMs a run looks at (empty filters: all in the subscriptions)."""

    subscriptions: tuple[str, ...]
    resource_groups: tuple[str, ...] = ()
    vms: tuple[str, ...] = ()  # VM ids or names
    # Fan-out batches own the VMs that *live* in their subscriptions, wherever the vault is: protected items
    # are then read from every subscription in ASR_SUBSCRIPTIONS and kept by their VM's subscription.
    by_vm_subscription: bool = False


@dataclass(frozen=True)
class RunResult:
    run_id: str
    plan: Plan
    applied: ApplyResult | None = None
    note: str = ""
    reconciled: tuple[ChangeOutcome, ...] = ()  # dangling intents of earlier runs closed by this one
    recheck: str = ""  # events: why this event should be handled again later (Resource Graph lags ARM), or ""


def filter_items(items: Iterable[ProtectedItem], estate: Estate, scope: Scope) -> list[ProtectedItem]:
    groups = {g.lower() for g in scope.resource_groups}
    wanted = {v.lower() for v in scope.vms}
    result = []
    for item in items:
        vm = estate.vms.get(key(item.vm_id))
        if groups and resource_group_of(item.vm_id) not in groups:
            continue
        names = {key(item.vm_id), item.name.lower(), (vm.name.lower() if vm else "")}
        if wanted and not names & wanted:
            continue
        result.append(item)
    return result


def restrict(estate: Estate, scope: Scope) -> Estate:
    return replace(estate, protected_items=tuple(filter_items(estate.protected_items, estate, scope)))


class Runtime:
    """Holds the clients for one invocation. Everything Azure-facing is injectable for tests."""

    def __init__(self, settings: Settings, credential: Any = None, *, sink: AuditSink | None = None,
                 network: NetworkClient | None = None, progress: Progress | None = None,
                 inventory_kwargs: Mapping[str, Any] | None = None,
                 clock: Callable[[], datetime] = utc_now, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        #: Metrics and structured logs per run; off unless APPLICATIONINSIGHTS_CONNECTION_STRING is set.
        self.telemetry = telemetry if telemetry is not None else telemetry_from_environment()
        self.clock = clock
        #: When to stop starting writes (the triggers set it below the Function timeout); none for the CLI.
        self.deadline = Deadline()
        self._credential = credential
        self._sink = sink
        self._network = network
        self.progress = progress or (lambda message: log.info("%s", message))
        self._inventory_kwargs = dict(inventory_kwargs or {})
        #: Effective security admin rules read in this invocation, by VNet key: each VNet is read once per run.
        self._admin_rules: dict[str, dict[str, Any]] = {}

    # -- clients -------------------------------------------------------------------------------------------
    @property
    def credential(self) -> Any:
        if self._credential is None:
            from .azure.credentials import default_credential

            self._credential = default_credential()
        return self._credential

    @property
    def ca_bundle(self) -> str | None:
        return self.settings.arm_ca_bundle or None

    @property
    def network(self) -> NetworkClient:
        if self._network is None:
            from .azure.network import NetworkWriter

            self._network = NetworkWriter(self.credential, self.settings.arm_endpoint, ca_bundle=self.ca_bundle,
                                          polling_interval=self.settings.arm_poll_interval)
        return self._network

    @property
    def sink(self) -> AuditSink:
        if self._sink is None:
            self._sink = make_sink(self.settings)
        return self._sink

    # -- reads ---------------------------------------------------------------------------------------------
    def collect(self, scope: Scope, *, admin_rules: bool = True) -> list[dict[str, Any]]:
        """Protected items first, then the network of every subscription they reference (VM, NIC, recovery VNet).

        A VM, its vault and its recovery VNet are often in three subscriptions; reading only the scope's would
        leave half of each path 'missing'. A next hop no firewall read so far holds costs one more query over the rest
        of ASR_SUBSCRIPTIONS (a hub firewall in a connectivity subscription). ``admin_rules=False`` leaves the
        security admin rules to the caller (an event reads them only for the VMs it affects). The raw rows (``export``
        writes them, events replace the one they name); a scan takes :meth:`collect_estate`, which parses them as
        they arrive.
        """
        items: list[dict[str, Any]] = []
        network: list[dict[str, Any]] = []
        read, allowed = self._read_inventory(scope, items.extend, network.extend)
        # ``estate``: the resources parsed, once for every step below that needs it; None whenever a step adds some.
        resources, estate, ip_groups = self._firewalls_elsewhere(items + network, network, read, allowed)
        return self._complete(resources, estate, ip_groups, admin_rules=admin_rules)

    def _complete(self, resources: list[dict[str, Any]], estate: Estate | None, ip_groups: list[dict[str, Any]], *,
                  admin_rules: bool) -> list[dict[str, Any]]:
        """What the Resource Graph rows leave out, read from ARM (collect and the event path alike): the rule
        collection groups of the firewalls on a replicated VM's path, the IP groups their rules name among
        ``ip_groups`` (found with an elsewhere firewall), and the opt-in per-NIC / per-VNet reads. ``estate``:
        ``resources`` parsed, or None."""
        if any(str(r.get("type", "")).lower() == "microsoft.network/azurefirewalls" for r in resources):
            from .azure.firewalls import read_firewall_policies

            # The rule collection groups of the firewalls on a replicated VM's path: one ARM list per policy.
            listed = read_firewall_policies(resources, self.network, self.progress, estate=estate)
            if listed is not resources:
                resources, estate = listed, None
        named = ip_groups_named(resources, ip_groups) if ip_groups else []
        if named:  # the IP groups the elsewhere-found firewalls' rules name (known once their groups are listed)
            resources, estate = resources + named, None
        if not self._reads_wanted(admin_rules):
            return resources
        parsed = estate if estate is not None else build_estate(resources)  # once, for every read below
        return resources + self._reads(parsed, admin_rules)

    def collect_estate(self, scope: Scope) -> Estate:
        """What :meth:`collect` reads, parsed page by page as Resource Graph answers (each page's rows are dropped
        once parsed: a large estate's rows weigh more than the parsed model) — the Estate ``build_estate`` gives for
        ``collect``'s resources, with the same requests. A failed read raises: nothing parsed so far is used."""
        builder = EstateBuilder()
        read, allowed = self._read_inventory(scope, builder.add_all, builder.add_all)
        estate = builder.build()
        found, ip_groups = self._firewall_rows_elsewhere(estate, read, allowed)
        if found:
            builder.add_all(found)
            estate = builder.build()
        if builder.has_firewalls:
            from .azure.firewalls import firewall_reads

            replaced, added = firewall_reads(estate, builder.firewall_documents, self.network, self.progress)
            if replaced or added:
                builder.add_all([*replaced.values(), *added])
                estate = builder.build()
        named = ip_groups_named(builder.firewall_documents.values(), ip_groups) if ip_groups else []
        if named:
            builder.add_all(named)
            estate = builder.build()
        return with_reads(estate, self._reads(estate, True)) if self._reads_wanted(True) else estate

    def _read_inventory(self, scope: Scope, add_items: Callable[[list[dict[str, Any]]], None],
                        add_network: Callable[[list[dict[str, Any]]], None]) -> tuple[set[str], set[str]]:
        """The two Resource Graph queries of :meth:`collect`: the protected items handed to ``add_items``, then the
        network's rows to ``add_network`` page by page. Returns (the subscriptions read, ASR_SUBSCRIPTIONS)."""
        from .azure.inventory import NETWORK_RESOURCES_QUERY, PROTECTED_ITEMS_QUERY

        scoped = {s.lower() for s in scope.subscriptions}
        allowed = {s.lower() for s in self.settings.subscriptions}
        item_subs = sorted(scoped | allowed) if scope.by_vm_subscription else sorted(scoped)
        if not item_subs:
            raise RuntimeConfigError("no subscriptions to scan: pass --subscription or set ASR_SUBSCRIPTIONS")
        items = self._fetch(item_subs, ("protected-items", PROTECTED_ITEMS_QUERY))
        if scope.by_vm_subscription:
            items = [i for i in items if _vm_subscription(i) in scoped]
        referenced = {s for i in items for s in _referenced_subscriptions(i)}
        if allowed:
            referenced &= allowed | scoped
        # A large estate's network query runs to dozens of pages: read its subscription batches in parallel (within
        # the quota Resource Graph reports); a small one stays one paged query per chunk, with no extra pages.
        parallel = PARALLEL_BATCHES if len(items) >= PARALLEL_FROM_ITEMS else 1
        add_items(items)
        del items
        self._fetch(sorted(scoped | referenced), ("network-resources", NETWORK_RESOURCES_QUERY),
                    concurrency=parallel, on_rows=add_network)
        return scoped | referenced, allowed

    def _reads_wanted(self, admin_rules: bool) -> bool:
        return any((self.settings.read_effective_routes, self.settings.read_effective_nsgs,
                    admin_rules and self.settings.read_admin_rules))

    def _reads(self, parsed: Estate, admin_rules: bool) -> list[dict[str, Any]]:
        """The per-NIC / per-VNet reads the settings ask for, as pseudo-resources (``estate.READ_TYPES``)."""
        extra: list[dict[str, Any]] = []
        if self.settings.read_effective_routes:
            extra += self.effective_routes(parsed)
        if self.settings.read_effective_nsgs:
            extra += self.effective_security_rules(parsed)
        if admin_rules:
            extra += self.admin_rules(parsed)
        return extra

    def _firewalls_elsewhere(self, resources: list[dict[str, Any]], network: list[dict[str, Any]], read: set[str],
                             allowed: set[str]) -> tuple[list[dict[str, Any]], Estate | None, list[dict[str, Any]]]:
        """:meth:`_firewall_rows_elsewhere` for the raw rows: (resources and the rows found, their parsed estate if it
        was parsed and is still current, the IP groups found). An estate without a ``VirtualAppliance`` route, or
        with nothing more to read, is not parsed for it (a cheap test on the raw rows)."""
        if (allowed and not allowed - read) or not routes_to_an_appliance(network):
            return resources, None, []  # nothing more to read, or no appliance route: not worth a parse
        estate = build_estate(resources)
        found, ip_groups = self._firewall_rows_elsewhere(estate, read, allowed)
        return (resources + found, None, ip_groups) if found else (resources, estate, [])

    def _firewall_rows_elsewhere(self, estate: Estate, read: set[str], allowed: set[str]
                                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A hub firewall in a connectivity subscription no protected item names (firewall_search.py): when a route on
        a replicated VM's path has next hop VirtualAppliance at an IP no firewall in ``estate`` holds, ONE Resource
        Graph query for firewalls, Firewall Policies, IP groups, VNets and route tables over the subscriptions of
        ASR_SUBSCRIPTIONS not ``read`` yet (none: no query).

        Returns (the firewalls at those IPs, their policies, their VNets and their subnets' route tables; the IP groups
        found: kept by the caller once the policies' groups are listed and say which are named), ([], []) when none is
        found. Without ASR_SUBSCRIPTIONS (the CLI with --subscription only) nothing more is read and the progress says
        where the firewall was looked for."""
        unread = sorted(allowed - read)
        if allowed and not unread:
            return [], []
        hops = unmatched_next_hops(estate)  # no appliance route, no hop (the raw rows' pre-check is for the list path)
        if not hops:
            return [], []
        if not unread:
            self.progress(f"warning: next hop(s) {_few(hops)} of routes on replicated VMs' paths belong to no "
                          f"Azure Firewall in the subscriptions read ({_few(sorted(read))}); without "
                          "ASR_SUBSCRIPTIONS a firewall was looked for only there (a hub firewall in a connectivity "
                          "subscription is found when ASR_SUBSCRIPTIONS lists that subscription)")
            return [], []
        from .azure.inventory import FIREWALL_RESOURCES_QUERY

        self.progress(f"next hop(s) {_few(hops)} belong to no Azure Firewall read so far: looking in "
                      f"{len(unread)} more subscription(s) of ASR_SUBSCRIPTIONS")
        rows = self._fetch(unread, ("firewall-resources", FIREWALL_RESOURCES_QUERY))
        found = firewalls_at(rows, hops)
        firewalls = [r for r in found if str(r.get("type", "")).lower() == "microsoft.network/azurefirewalls"]
        for firewall in firewalls:
            self.progress(f"Azure Firewall {firewall.get('id')} found in subscription "
                          f"{subscription_of(str(firewall.get('id', '')))}")
        found += firewall_networks(rows, firewalls)  # its VNet and subnet route tables: its own egress
        held = {ip for f in firewalls for ip in firewall_ips_of(f)}
        rest = [ip for ip in hops if ip not in held]
        if rest:
            self.progress(f"next hop(s) {_few(rest)}: no Azure Firewall in ASR_SUBSCRIPTIONS holds them (other "
                          "appliances)")
        ip_groups = [r for r in rows if str(r.get("type", "")).lower() == "microsoft.network/ipgroups"]
        return (found, ip_groups) if found else ([], [])

    def admin_rules(self, estate: Estate, items: Iterable[ProtectedItem] | None = None) -> list[dict[str, Any]]:
        """ASR_READ_ADMIN_RULES (default on): the AVNM security admin rules in effect on every VNet that holds a
        source NIC or a recovery subnet of ``items`` (default: every protected item in ``resources``) — one POST per
        VNet, not per VM, and each VNet once per invocation (a Runtime is one invocation). ``estate``: the parsed
        inventory the caller already holds.

        Pseudo-resources of type …/virtualNetworks/networkManagerEffectiveSecurityAdminRules with every page's
        entries, read by ``build_estate`` and written by ``export``. A VNet whose rules cannot be read (403 without
        the role's action, 404) gets ``{"error": …}``: a warning on the VMs that use it, not a failed scan."""
        if not self.settings.read_admin_rules:
            return []
        from .azure.network import ArmError

        vnet_ids: dict[str, str] = {}
        for item in estate.protected_items if items is None else items:
            for nic_id in estate.source_nic_ids(item):
                nic = estate.nics.get(key(nic_id))
                for config in nic.ip_configurations if nic else ():
                    vnet = estate.vnet_of_subnet(config.subnet_id)
                    if vnet is not None:
                        vnet_ids.setdefault(key(vnet.id), vnet.id)
            for rnic in item.recovery_nics:
                recovery = estate.vnets.get(key(rnic.recovery_vnet_id or item.recovery_vnet_id))
                if recovery is not None:
                    vnet_ids.setdefault(key(recovery.id), recovery.id)
        def read(vnet_id: str) -> dict[str, Any]:
            self.progress(f"security admin rules of {vnet_id}")
            try:
                properties: dict[str, Any] = {"value": self.network.list_effective_admin_rules(vnet_id)}
            except ArmError as error:
                # No permission (the role predates the action) or a VNet just deleted: the VMs using it get an
                # admin-rules warning; every other VNet is still evaluated.
                self.progress(f"security admin rules of {vnet_id} not read: {one_line(error)}")
                properties = {"error": _arm_reason(error)}
            return {"id": f"{vnet_id}/networkManagerEffectiveSecurityAdminRules", "type": ADMIN_RULES_RESOURCE_TYPE,
                    "properties": properties}

        missing = [(k, v) for k, v in sorted(vnet_ids.items()) if k not in self._admin_rules]
        if len(missing) > 1 and ADMIN_RULE_READERS > 1:
            # One round trip per VNet: a few in flight, so 250 VNets do not cost 250 sequential latencies.
            with ThreadPoolExecutor(max_workers=min(ADMIN_RULE_READERS, len(missing)),
                                    thread_name_prefix="admin-rules") as pool:
                results = list(pool.map(read, [v for _, v in missing]))
        else:
            results = [read(v) for _, v in missing]
        for (vnet_key, _), pseudo in zip(missing, results, strict=True):
            self._admin_rules[vnet_key] = pseudo
        return [self._admin_rules[k] for k in sorted(vnet_ids)]

    def effective_routes(self, estate: Estate) -> list[dict[str, Any]]:
        """Opt-in (ASR_READ_EFFECTIVE_ROUTES): one ARM call per source NIC whose VNet can learn BGP routes.

        Returned as pseudo-resources of type …/networkInterfaces/effectiveRouteTable, which ``build_estate``
        reads (and ``export`` writes), so an offline scan of an export sees the same BGP routes.
        """
        nic_ids: dict[str, str] = {}
        for item in estate.protected_items:
            for nic_id in estate.source_nic_ids(item):
                nic = estate.nics.get(key(nic_id))
                for config in nic.ip_configurations if nic else ():
                    vnet = estate.vnet_of_subnet(config.subnet_id)
                    subnet = estate.subnets.get(key(config.subnet_id))
                    table = estate.route_tables.get(key(subnet.route_table_id)) if subnet else None
                    if nic is not None and vnet is not None and bgp_may_override(vnet, table):
                        nic_ids[key(nic.id)] = nic.id
        return self._per_nic(nic_ids.values(), "effective routes", self.network.get_effective_routes,
                             "effectiveRouteTable", EFFECTIVE_ROUTES_RESOURCE_TYPE)

    def effective_security_rules(self, estate: Estate) -> list[dict[str, Any]]:
        """Opt-in (ASR_READ_EFFECTIVE_NSG): one ARM call per source NIC of a replicated VM, for Azure's own expansion
        of the VirtualNetwork tag. Pseudo-resources of type …/networkInterfaces/effectiveNetworkSecurityGroups, read
        by ``build_estate`` and written by ``export``."""
        nic_ids = {key(n): n for item in estate.protected_items for n in estate.source_nic_ids(item)
                   if key(n) in estate.nics}
        return self._per_nic(nic_ids.values(), "effective security rules", self.network.get_effective_security_rules,
                             "effectiveNetworkSecurityGroups", EFFECTIVE_NSGS_RESOURCE_TYPE)

    def _per_nic(self, nic_ids: Iterable[str], what: str, read: Callable[[str], list[dict[str, Any]]],
                 suffix: str, resource_type: str) -> list[dict[str, Any]]:
        from .azure.network import ArmError

        found = []
        for nic_id in sorted(nic_ids, key=str.lower):
            self.progress(f"{what} of {nic_id}")
            try:
                properties: dict[str, Any] = {"value": read(nic_id)}
            except ArmError as error:
                # Azure computes these only for a NIC of a running VM: one stopped VM must not fail the scan of
                # every other one. Its path keeps the warning it would have without them, with the reason.
                self.progress(f"{what} of {nic_id} not read: {one_line(error)}")
                properties = {"error": _arm_reason(error)}
            found.append({"id": f"{nic_id}/{suffix}", "type": resource_type, "properties": properties})
        return found

    def _fetch(self, subscriptions: list[str], query: tuple[str, str], *, concurrency: int = 1,
               on_rows: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
        from .azure.inventory import InventoryProgress, fetch_resources

        def report(p: InventoryProgress) -> None:
            count_page()
            self.progress(f"resource graph: {p.query} page {p.page}, {p.rows} rows of {p.total_records}")

        return fetch_resources(self.credential, self.settings.arm_endpoint, subscriptions, progress=report,
                               ca_bundle=self.ca_bundle, queries=(query,), concurrency=concurrency, on_rows=on_rows,
                               **self._inventory_kwargs)

    def service_tags(self, subscription: str) -> ServiceTags:
        from .azure.inventory import load_service_tags

        if not subscription and self.settings.service_tags_file:
            return load_service_tags_file(self.settings.service_tags_file)
        document = load_service_tags(self.credential, self.settings.arm_endpoint, subscription,
                                     self.settings.service_tags_location, ca_bundle=self.ca_bundle,
                                     fallback_file=self.settings.service_tags_file or None)
        return parse_service_tags(document)

    # -- runs ----------------------------------------------------------------------------------------------
    def auditor(self, trigger: str, actor: str, run_id: str | None = None) -> Auditor:
        """A new run, or (a redelivered queue batch) the continuation of ``run_id`` after its last record: starting
        again at 0 would collide with the records the first delivery wrote."""
        start = self.sink.last_sequence(run_id) + 1 if run_id is not None else 0
        return Auditor(self.sink, trigger=trigger, actor=actor, run_id=run_id, start_sequence=start)

    def evaluate(self, estate: Estate, tags: ServiceTags, items: Iterable[ProtectedItem]) -> Plan:
        items = list(items)
        with collector_paused():  # the pure pipeline makes no reference cycles to collect (gcpause.py)
            reports = [evaluate_item(i, estate, tags, self.settings) for i in items]
            # A preflight's item is not in the estate: without it the planner cannot find the recovery side's senders.
            return make_plan(estate, reports, tags, self.settings, items=items)

    def run(self, scope: Scope, *, trigger: str, actor: str, apply: bool | None = None,
            run_id: str | None = None, resources: list[dict[str, Any]] | None = None) -> RunResult:
        """Scan the scope; apply the plan when asked (and allowed by ASR_APPLY or an explicit --apply)."""
        with self.telemetry.observe_run(trigger) as observed:
            observed.result = self._run(scope, trigger=trigger, actor=actor, apply=apply, run_id=run_id,
                                        resources=resources)
        return observed.result

    def _run(self, scope: Scope, *, trigger: str, actor: str, apply: bool | None, run_id: str | None,
             resources: list[dict[str, Any]] | None) -> RunResult:
        # Paused from the first page: the parsed estate is not traversed by every full collection its growth would
        # trigger (~1 s of a 10,000-VM run's client CPU), but once, after the scan. Reading the inventory leaves only a
        # few hundred objects in cycles, per SDK client, not per page (tests/emulator/test_gcpause_live.py).
        with collector_paused():
            estate = build_estate(resources) if resources is not None else self.collect_estate(scope)
            tags = self.service_tags(scope.subscriptions[0] if scope.subscriptions else "")
            items = filter_items(estate.protected_items, estate, scope)
            plan = self.evaluate(estate, tags, items)
        return self._maybe_apply(estate, tags, plan, scope, trigger, actor, apply, run_id)

    def _maybe_apply(self, estate: Estate, tags: ServiceTags, plan: Plan, scope: Scope, trigger: str, actor: str,
                     apply: bool | None, run_id: str | None) -> RunResult:
        do_apply = self.settings.apply if apply is None else apply
        # A run allowed to write first settles what earlier writing runs left unknown (a crash, a lost response);
        # report-only runs (scan, dry run) write no audit records at all.
        reconciled = self._reconcile_quietly(trigger, actor) if do_apply and trigger != "http" else ()
        if not do_apply or not plan.changes:
            note = "report-only (ASR_APPLY is off)" if not do_apply else "nothing to change"
            return RunResult(run_id or "", plan, None, note, reconciled)
        if not self.settings.scope_allowlist:
            return RunResult(run_id or "", plan, None, "nothing written: ASR_SCOPE_ALLOWLIST is empty, so no resource "
                             "is in the write scope", reconciled)
        with self.auditor(trigger, actor, run_id) as auditor:
            applier = Applier(estate, tags, self.settings, self.network, auditor, on_progress=self.progress,
                              deadline=self.deadline)
            result = applier.apply(plan)
        left = sum(1 for o in result.outcomes if o.detail == DEADLINE_NOTE)
        note = f"time limit reached: {left} change(s) left for the next run" if left else ""
        return RunResult(auditor.run_id, plan, result, note, reconciled)

    # -- events --------------------------------------------------------------------------------------------
    def handle_event(self, event: Mapping[str, Any], *, actor: str, apply: bool | None = None) -> RunResult:
        """Re-read what the event names, evaluate only the VMs whose path includes it, and fix if allowed.

        ``RunResult.recheck`` says why the event should be handled again later: Resource Graph did not hold ARM's
        current state of the named resource yet (it lags ARM), so the rest of the path it returned may lag too.
        """
        with self.telemetry.observe_run("eventgrid") as observed:
            observed.result = self._handle_event(event, actor=actor, apply=apply)
        return observed.result

    def _handle_event(self, event: Mapping[str, Any], *, actor: str, apply: bool | None) -> RunResult:
        parsed = parse_event(event)
        target = watched(parsed)
        empty = Plan((), ())
        if target is None:
            return RunResult("", empty, None, f"ignored: {parsed.event_type} on an unwatched resource type")
        if is_own_write(parsed, self.settings.bot_principal_ids):
            return RunResult("", empty, None, "ignored: the bot's own write")
        if self.settings.subscriptions and parsed.subscription not in {s.lower() for s in self.settings.subscriptions}:
            return RunResult("", empty, None, f"ignored: subscription {parsed.subscription} is not in scope")
        kind, resource_id = target
        subscriptions = self.settings.subscriptions or (parsed.subscription,)
        # The fresh ARM read first: it is needed anyway, and for a protected item it names the subscriptions to read.
        fresh = self._reread(kind, resource_id)
        raw = self._event_inventory(kind, resource_id, fresh, subscriptions)
        indexed = next((r for r in raw if key(str(r.get("id", ""))) == key(resource_id)), None)
        lag = index_lag(kind, resource_id, indexed, fresh)
        indexed_raw = raw
        raw = [r for r in raw if key(str(r.get("id", ""))) != key(resource_id)]
        if fresh is not None:
            raw.append(fresh)
        deleted_firewall = fresh is None and kind == "firewall" and indexed is not None

        def affected(estate: Estate) -> list[ProtectedItem]:
            if not deleted_firewall:
                return affected_items(estate, kind, resource_id)
            # A deleted firewall: its VMs are those whose routes named its IPs in Resource Graph's last copy of it.
            before = {key(i.id) for i in affected_items(build_estate(indexed_raw), kind, resource_id)}
            return [i for i in estate.protected_items if key(i.id) in before]

        estate = build_estate(raw)
        items = affected(estate)
        if not items:
            return RunResult("", empty, None, f"no replicated VM uses {resource_id}", recheck=lag)
        # Only the affected VMs' VNets: an event must not cost one POST per VNet of the whole estate.
        if self.settings.read_admin_rules:  # merged into the parsed estate: the rules change no VM's path membership
            estate = with_reads(estate, self.admin_rules(estate, items))
        tags = self.service_tags(subscriptions[0])
        plan = self.evaluate(estate, tags, items)
        scope = Scope(tuple(subscriptions))
        return replace(self._maybe_apply(estate, tags, plan, scope, "eventgrid", actor, apply, None), recheck=lag)

    def _event_inventory(self, kind: str, resource_id: str, fresh: Mapping[str, Any] | None,
                         subscriptions: Iterable[str]) -> list[dict[str, Any]]:
        """The inventory an event needs (event_reads.py): the protected items that mention the resource's
        subscription, then the network of the subscriptions they name plus the scope-wide reverse-lookup types — two
        Resource Graph queries whatever the estate's size — and the network of any scope subscription the affected
        paths name that was not read yet (a third query, rarely needed). Firewall and Firewall Policy events, a route
        table on a firewall's subnet (found after query 2), and a scope that is only the event's subscription (no
        ASR_SUBSCRIPTIONS) read the scope as a scan does."""
        from .azure.inventory import NETWORK_RESOURCES_QUERY, event_network_query, protected_items_mentioning

        scope = {s.lower() for s in subscriptions}
        if kind not in SUBSCRIPTION_LOCAL_KINDS or not self.settings.subscriptions:
            return self.collect(Scope(tuple(subscriptions)), admin_rules=False)
        ordered = sorted(scope)
        concerned = item_filter_subscriptions(kind, resource_id, fresh)
        items = self._fetch(ordered, ("protected-items-event", protected_items_mentioning(concerned)))
        candidates = [*items, *([fresh] if kind == "protected-item" and fresh is not None else [])]
        read = ({s for r in candidates for s in mentioned_subscriptions(r)} | concerned) & scope
        network = self._fetch(ordered, ("network-resources-event", event_network_query(read)))
        seen = {key(str(r.get("id", ""))) for r in network}
        for _ in range(len(scope)):
            current = [r for r in items + network if key(str(r.get("id", ""))) != key(resource_id)]
            current += [dict(fresh)] if fresh is not None else []
            estate = build_estate(current)
            if serves_other_subscriptions(estate, kind, resource_id):
                self.progress(f"event: {resource_id} is a firewall subnet's route table: reading the scope")
                return self.collect(Scope(tuple(subscriptions)), admin_rules=False)
            missing = unread_subscriptions(estate, affected_items(estate, kind, resource_id), current, read, scope)
            if not missing:
                break
            self.progress(f"event: the affected paths name {len(missing)} subscription(s) not read yet")
            read |= missing
            more = self._fetch(sorted(missing), ("network-resources", NETWORK_RESOURCES_QUERY))
            network += [r for r in more if key(str(r.get("id", ""))) not in seen]
            seen |= {key(str(r.get("id", ""))) for r in more}
        # Resource Graph's id order, as a scan reads them (the parsed estate does not depend on it; reports do not).
        network.sort(key=lambda r: key(str(r.get("id", ""))))
        return self._complete(items + network, None, [], admin_rules=False)

    def _reread(self, kind: str, resource_id: str) -> dict[str, Any] | None:
        """Current ARM state of the changed resource (None once deleted); Resource Graph may still be stale."""
        from .azure.network import ArmError

        readers: dict[str, Callable[[str], dict[str, Any]]] = {
            "nsg": self.network.get_nsg,
            "route-table": self.network.get_route_table,
            "vnet": self.network.get_virtual_network,
            "nic": self.network.get_network_interface,
            "protected-item": self.network.get_protected_item,
            "firewall": self.network.get_azure_firewall,
            "firewall-policy": self.network.get_firewall_policy,
        }
        reader = readers.get(kind)
        if reader is None:
            return None
        try:
            document = reader(resource_id)
        except ArmError as error:
            if error.is_not_found:
                return None
            raise
        document.setdefault("type", _type_for(kind))
        return document

    # -- rollback ------------------------------------------------------------------------------------------
    def rollback(self, run_id: str, *, actor: str, apply: bool,
                 older_than: timedelta = RECONCILE_AFTER) -> tuple[str, list[ChangeOutcome]]:
        """Remove what run ``run_id`` created (report-only unless ``apply``). Its dangling intents are reconciled
        first, so a creation that landed although its outcome was never recorded is rolled back too."""
        if not self.sink.records(run_id):
            raise RuntimeConfigError(f"no audit records for run {run_id}")
        self.reconcile("cli", actor, run_id, older_than=older_than)
        with self.auditor("cli", actor) as auditor:
            outcomes = rollback(self.sink.records(run_id), self.network, auditor, self.settings, apply=apply)
        return auditor.run_id, outcomes

    def reconcile(self, trigger: str, actor: str, run_id: str | None = None, *,
                  older_than: timedelta = RECONCILE_AFTER) -> tuple[ChangeOutcome, ...]:
        """Record what ARM shows for every dangling intent (of one run, or of all) in the audit trail."""
        return tuple(reconcile(self.sink.records(run_id), self.network, self.sink, trigger=trigger, actor=actor,
                               now=self.clock(), older_than=older_than))

    def _reconcile_quietly(self, trigger: str, actor: str) -> tuple[ChangeOutcome, ...]:
        """Reconcile the recent dangling intents (RECONCILE_WINDOW) before a writing run; a failure to do so is
        reported, never the end of the scan."""
        now = self.clock()
        try:
            records = self.sink.records_since(format_timestamp(now - RECONCILE_WINDOW))
            outcomes = tuple(reconcile(records, self.network, self.sink, trigger=trigger, actor=actor, now=now,
                                       deadline=self.deadline))
        except RECONCILE_FAILURES as error:
            self.progress(f"could not reconcile earlier writes: {one_line(error)}")
            return ()
        for outcome in outcomes:
            self.progress(f"reconciled {outcome.change.action} {outcome.change.name} on "
                          f"{outcome.change.resource_id}: {outcome.result}")
        return outcomes


def _few(values: Iterable[str], shown: int = 5) -> str:
    """At most ``shown`` values for a progress line, and how many there are when that is more.

    >>> _few(["a", "b"]), _few([str(i) for i in range(7)], 3)
    ('a, b', '0, 1, 2, … (7 in all)')
    """
    values = list(values)
    head = ", ".join(values[:shown])
    return head if len(values) <= shown else f"{head}, … ({len(values)} in all)"


def _arm_reason(error: Exception) -> str:
    """ARM's own code and message, without the request line (the finding already names the resource)."""
    code = getattr(error, "code", "") or ""
    detail = getattr(getattr(error, "error", None), "message", "") or str(error)
    return one_line(f"{code}: {detail}" if code else detail, 300)


def _vm_subscription(resource: Mapping[str, Any]) -> str:
    item = protected_item_or_stub(resource)
    return subscription_of(item.vm_id) if item else ""


def _referenced_subscriptions(resource: Mapping[str, Any]) -> set[str]:
    item = protected_item_or_stub(resource)
    if item is None:
        return set()
    ids = [item.vm_id, item.recovery_vnet_id]
    for nic in item.recovery_nics:
        ids += [nic.source_nic_id, nic.recovery_vnet_id, nic.recovery_nsg_id]
    return {subscription_of(i) for i in ids if i} - {""}


def _type_for(kind: str) -> str:
    return {
        "nsg": "Microsoft.Network/networkSecurityGroups",
        "route-table": "Microsoft.Network/routeTables",
        "vnet": "Microsoft.Network/virtualNetworks",
        "nic": "Microsoft.Network/networkInterfaces",
        "protected-item": "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/"
                          "replicationProtectedItems",
        "firewall": "Microsoft.Network/azureFirewalls",
        "firewall-policy": "Microsoft.Network/firewallPolicies",
    }[kind]


def index_lag(kind: str, resource_id: str, indexed: Mapping[str, Any] | None,
              fresh: Mapping[str, Any] | None) -> str:
    """Why Resource Graph's copy of the resource an event names is behind ARM's, or "" when it is not.

    Compared as the engine reads them (parsed), so fields the engine ignores (a heartbeat, a provisioning state, the
    way ARG spells a field) never count. A deletion is not lag worth waiting for: the handler already dropped the
    resource, and Resource Graph's stale copy of it is not used.
    """
    if fresh is None:
        return ""
    if indexed is None:
        return f"{resource_id} is in ARM but not yet in Resource Graph"
    return "" if _parsed(kind, resource_id, indexed) == _parsed(kind, resource_id, fresh) else \
        f"Resource Graph's copy of {resource_id} is older than ARM's"


def _parsed(kind: str, resource_id: str, document: Mapping[str, Any]) -> object:
    document = {**document, "type": document.get("type") or _type_for(kind)}
    estate = build_estate([document])
    found: Mapping[str, object] = {
        "nsg": estate.nsgs, "route-table": estate.route_tables, "vnet": estate.vnets, "nic": estate.nics,
        "protected-item": {key(i.id): i for i in estate.protected_items},
        "firewall": estate.firewalls,
        # The groups are listed from ARM whatever Resource Graph holds (azure/firewalls.py): only the policy's own
        # settings can lag, not its references nor the etag a group write changes.
        "firewall-policy": {k: replace(p, etag="", rule_collection_group_ids=())
                            for k, p in estate.firewall_policies.items()},
    }[kind]
    return found.get(key(resource_id))


__all__ = ["EventError", "RunResult", "Runtime", "RuntimeConfigError", "Scope", "filter_items", "restrict"]
