"""Applying a plan safely: guards, re-read and re-plan right before each write, audit, verify after.

The pure engine plans against a snapshot (Resource Graph can lag ARM by minutes); a write is only made after the
NSG / route table has been read again from ARM and the plan for it recomputed. Every write has an intent record
before it and an outcome record after it. A priority conflict (someone else took the priority in between) is
re-planned once. Nothing here decides *what* to write: that is the planner's job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

from .audit import (
    RECONCILE_AFTER,
    Auditor,
    AuditRecord,
    AuditSink,
    dangling_intents,
    intent_states,
    reconcile_record,
)
from .azure.network import nested_properties_equal, parse_resource_id, properties_equal, properties_match
from .config import Settings
from .drift import VmReport, evaluate_item
from .errors import one_line
from .estate import EstateError, parse_firewall_policy, parse_nsg, parse_route_table, parse_rule_collection_group
from .firewall_planner import CREATE_GROUP, UPDATE_GROUP, is_firewall_group
from .model import Estate, key
from .planner import CREATE_ROUTE, CREATE_RULE, UPDATE_ROUTE, UPDATE_RULE, Change, Plan, is_managed, make_plan
from .servicetags import ServiceTags

log = logging.getLogger(__name__)

APPLIED, SKIPPED, FAILED, DEFERRED, UNCHANGED = "applied", "skipped", "failed", "deferred", "unchanged"
OUTSIDE_SCOPE = "outside the write scope (ASR_SCOPE_ALLOWLIST)"


class NetworkClient(Protocol):
    """ARM reads and writes the apply step needs (asr_remediate.azure.network implements it with the real SDK)."""

    def get_nsg(self, nsg_id: str) -> dict[str, Any]: ...
    def get_route_table(self, route_table_id: str) -> dict[str, Any]: ...
    def get_virtual_network(self, vnet_id: str) -> dict[str, Any]: ...
    def get_network_interface(self, nic_id: str) -> dict[str, Any]: ...
    def get_protected_item(self, item_id: str) -> dict[str, Any]: ...
    def get_effective_routes(self, nic_id: str) -> list[dict[str, Any]]: ...
    def get_effective_security_rules(self, nic_id: str) -> list[dict[str, Any]]: ...
    def list_effective_admin_rules(self, vnet_id: str) -> list[dict[str, Any]]: ...
    def put_security_rule(self, nsg_id: str, name: str, properties: Mapping[str, Any], *,
                          if_match: str | None = None) -> dict[str, Any]: ...
    def put_route(self, route_table_id: str, name: str, properties: Mapping[str, Any], *,
                  if_match: str | None = None) -> dict[str, Any]: ...
    def delete_security_rule(self, nsg_id: str, name: str, *, if_match: str | None = None) -> None: ...
    def delete_route(self, route_table_id: str, name: str, *, if_match: str | None = None) -> None: ...
    def get_firewall_policy(self, policy_id: str) -> dict[str, Any]: ...
    def get_azure_firewall(self, firewall_id: str) -> dict[str, Any]: ...
    def list_rule_collection_groups(self, policy_id: str) -> list[dict[str, Any]]: ...
    def put_rule_collection_group(self, policy_id: str, name: str, properties: Mapping[str, Any], *,
                                  if_match: str | None = None) -> dict[str, Any]: ...
    def delete_rule_collection_group(self, policy_id: str, name: str, *, if_match: str | None = None) -> None: ...


class ConflictError(Exception):
    """The write lost a race (priority taken, etag changed): re-read and re-plan."""


@dataclass(frozen=True)
class ChangeOutcome:
    change: Change
    result: str  # applied | skipped | failed | deferred | unchanged
    detail: str = ""


@dataclass(frozen=True)
class ApplyResult:
    run_id: str
    outcomes: tuple[ChangeOutcome, ...] = ()
    reports: tuple[VmReport, ...] = field(default=(), repr=False)

    def count(self, result: str) -> int:
        return sum(1 for o in self.outcomes if o.result == result)


#: Why a firewall change is not written: firewall writes have a switch of their own, off by default.
FIREWALL_REPORT_ONLY = ("report-only: writing the asr-remediate rule collection group of a firewall policy needs "
                        "ASR_APPLY_FIREWALL=true as well as ASR_APPLY")

#: Why a change waits when the invocation's time is up.
DEADLINE_NOTE = "the run's time limit was reached before this write; left for the next run"


@dataclass(frozen=True)
class Deadline:
    """When a run must stop starting writes (``at``, on ``clock``'s scale; None: never).

    A Function invocation is killed at host.json's functionTimeout; a kill mid-write leaves an intent without its
    outcome. Stopping *before* a write that could not finish in time keeps every started write whole; the rest is
    deferred to the next run (the plan is recomputed then anyway).
    """

    at: float | None = None
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def passed(self) -> bool:
        return self.at is not None and self.clock() >= self.at


def in_scope(resource_id: str, settings: Settings) -> bool:
    """Writes only under an ASR_SCOPE_ALLOWLIST prefix. Empty allowlist: no writes anywhere (the safe default the
    deployment guide, the Bicep parameter and config.py all describe)."""
    rid = key(resource_id)
    return any(rid == key(p) or rid.startswith(key(p) + "/") for p in settings.scope_allowlist)


CONFLICT_CODES = frozenset({"securityruleconflict", "preconditionfailed", "conflict", "anotheroperationinprogress"})


def _is_conflict(error: Exception) -> bool:
    """Lost a race (priority taken meanwhile, etag moved): worth one re-read and re-plan. Bad plans are not."""
    if isinstance(error, ConflictError):
        return True
    code = str(getattr(getattr(error, "error", None), "code", "") or "").lower()
    status = getattr(error, "status_code", None)
    return status in (409, 412) or code in CONFLICT_CODES


def child_of(document: Mapping[str, Any], child_type: str, name: str) -> Mapping[str, Any] | None:
    """The rule / route ``name`` inside an NSG / route table document as ARM returns it (case-insensitive)."""
    children = (document.get("properties") or {}).get(child_type) or []
    return next((c for c in children if isinstance(c, Mapping) and str(c.get("name", "")).lower() == name.lower()),
                None)


def _groups_in(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [g for g in (document.get("properties") or {}).get("ruleCollectionGroups") or []
            if isinstance(g, Mapping) and g.get("id")]


def read_policy_document(network: NetworkClient, policy_id: str) -> dict[str, Any]:
    """A Firewall Policy as ARM returns it, with ``properties.ruleCollectionGroups`` holding its groups in full (one
    GET of the policy, one list of its groups) instead of their ids."""
    document = dict(network.get_firewall_policy(policy_id))
    properties = dict(document.get("properties") or {})
    properties["ruleCollectionGroups"] = network.list_rule_collection_groups(policy_id)
    document["properties"] = properties
    return document


def _with_resource(estate: Estate, change: Change, document: Mapping[str, Any]) -> Estate:
    if change.child_type == "securityRules":
        nsgs = dict(estate.nsgs)
        nsgs[key(change.resource_id)] = parse_nsg(document)
        return replace(estate, nsgs=MappingProxyType(nsgs))
    tables = dict(estate.route_tables)
    tables[key(change.resource_id)] = parse_route_table(document)
    return replace(estate, route_tables=MappingProxyType(tables))


class Applier:
    """Applies one run's plan: ``apply(plan)``. Holds the estate snapshot it refreshes as it writes."""

    def __init__(self, estate: Estate, tags: ServiceTags, settings: Settings, network: NetworkClient,
                 auditor: Auditor, *, on_progress: Callable[[str], None] | None = None,
                 deadline: Deadline | None = None) -> None:
        self.estate = estate
        self.tags = tags
        self.settings = settings
        self.network = network
        self.auditor = auditor
        self.progress = on_progress or (lambda _message: None)
        self.deadline = deadline or Deadline()

    # -- reads -------------------------------------------------------------------------------------------
    def _read(self, change: Change) -> dict[str, Any]:
        if change.child_type == "securityRules":
            return self.network.get_nsg(change.resource_id)
        return self.network.get_route_table(change.resource_id)

    def _replan(self, change: Change, document: Mapping[str, Any]) -> tuple[Change | None, str]:
        """Refresh the resource from ``document`` and plan it again for the VMs the change was for."""
        self.estate = _with_resource(self.estate, change, document)
        tags = document.get("tags") or {}
        if self.settings.opt_out_tag.lower() in {str(t).lower() for t in tags}:
            return None, f"opted out with tag {self.settings.opt_out_tag}"
        return self._candidate(change)

    def _verify(self, change: Change) -> tuple[bool, str]:
        document = self._read(change)
        self.estate = _with_resource(self.estate, change, document)
        vm_keys = {key(v) for v in change.vm_ids}
        for item in self.estate.protected_items:
            if key(item.vm_id) not in vm_keys:
                continue
            report = evaluate_item(item, self.estate, self.tags, self.settings)
            for f in report.findings:
                if key(f.resource_id) == key(change.resource_id) and f.destination == change.destination \
                        and f.severity == "error":
                    return False, f"still drifting after the write: {f.message}"
        return True, str(document.get("etag") or "")

    # -- writes ------------------------------------------------------------------------------------------
    def _write(self, change: Change, if_match: str | None) -> dict[str, Any]:
        """PUT one child resource. ``if_match``: the child's own etag when it exists (ARM refuses the update with 412
        if it changed since the re-read); None for a create — If-Match on a resource that does not exist is a 412
        by ARM's contract, so creates rely on the re-read just before, deterministic names and Network RP's own
        conflict errors (SecurityRuleConflict for a taken priority)."""
        if not is_managed(change.name):
            raise ValueError(f"refusing to write {change.name}: not a rule or route the bot owns")
        if change.child_type == "securityRules":
            return self.network.put_security_rule(change.resource_id, change.name, change.properties, if_match=if_match)
        return self.network.put_route(change.resource_id, change.name, change.properties, if_match=if_match)

    def _attempt(self, change: Change, document: Mapping[str, Any]) -> tuple[AuditRecord, Exception | None]:
        existing = child_of(document, change.child_type, change.name)
        if_match = str(existing.get("etag") or "") if existing is not None else ""
        intent = self.auditor.intent(action=change.action, resource_id=change.resource_id, name=change.name,
                                     payload=dict(change.properties), reason=change.reason,
                                     before_etag=str(document.get("etag") or ""), vm_ids=change.vm_ids)
        try:
            self._write(change, if_match or None)
        except Exception as error:
            self.auditor.outcome(intent, "failed", error=one_line(error))
            return intent, error
        return intent, None

    # -- Firewall Policy: the bot's own rule collection group ---------------------------------------------------
    def _read_policy(self, policy_id: str) -> dict[str, Any]:
        """The policy and its groups as one document: ``properties.ruleCollectionGroups`` holds the groups themselves
        (from FirewallPolicyRuleCollectionGroups_List), so :func:`child_of` finds the bot's group in it."""
        return read_policy_document(self.network, policy_id)

    def _with_policy(self, document: Mapping[str, Any]) -> None:
        """Refresh the estate's copy of the policy and every group of it from a re-read (EstateError: unreadable)."""
        policy = parse_firewall_policy({k: v for k, v in document.items() if k != "properties"}
                                       | {"properties": {**(document.get("properties") or {}), "ruleCollectionGroups":
                                                         [{"id": g["id"]} for g in _groups_in(document)]}})
        prefix = key(policy.id) + "/rulecollectiongroups/"
        groups = {k: g for k, g in self.estate.rule_collection_groups.items() if not k.startswith(prefix)}
        for doc in _groups_in(document):
            groups[key(str(doc["id"]))] = parse_rule_collection_group(doc)
        policies = dict(self.estate.firewall_policies)
        policies[key(policy.id)] = policy
        self.estate = replace(self.estate, firewall_policies=MappingProxyType(policies),
                              rule_collection_groups=MappingProxyType(groups))

    def _candidate(self, change: Change) -> tuple[Change | None, str]:
        """The change as planned now, from the refreshed estate, for the VMs it was for."""
        vm_keys = {key(v) for v in change.vm_ids}
        items = [i for i in self.estate.protected_items if key(i.vm_id) in vm_keys]
        reports = [evaluate_item(i, self.estate, self.tags, self.settings) for i in items]
        plan = make_plan(self.estate, reports, self.tags, self.settings)
        for candidate in plan.changes:
            if key(candidate.resource_id) == key(change.resource_id) and candidate.name.lower() == change.name.lower():
                return candidate, ""
        return None, "no longer needed after re-reading the resource"

    def _verify_group(self, change: Change) -> tuple[bool, str]:
        document = self._read_policy(change.resource_id)
        self._with_policy(document)
        vm_keys = {key(v) for v in change.vm_ids}
        behind = {k for k, f in self.estate.firewalls.items() if key(f.policy_id) == key(change.resource_id)}
        for item in self.estate.protected_items:
            if key(item.vm_id) not in vm_keys:
                continue
            for f in evaluate_item(item, self.estate, self.tags, self.settings).findings:
                if f.kind == "firewall-deny" and key(f.resource_id) in behind:
                    return False, f"still drifting after the write: {f.message}"
        own = child_of(document, "ruleCollectionGroups", change.name)
        return True, str((own or {}).get("etag") or "")

    def _apply_group(self, change: Change) -> ChangeOutcome:
        """Re-read the policy and its groups, re-plan, write the bot's group (If-Match: its own etag, only when it
        exists), verify by re-reading and re-evaluating; one re-plan after a lost race."""
        if not is_firewall_group(change.name):
            return ChangeOutcome(change, FAILED, f"refusing to write {change.name}: not the bot's own rule collection "
                                                 "group")
        for attempt in (1, 2):
            try:
                document = self._read_policy(change.resource_id)
            except Exception as error:
                return ChangeOutcome(change, FAILED, f"cannot re-read {change.resource_id}: {one_line(error)}")
            if self.settings.opt_out_tag.lower() in {str(t).lower() for t in document.get("tags") or {}}:
                return ChangeOutcome(change, UNCHANGED, f"opted out with tag {self.settings.opt_out_tag}")
            try:
                self._with_policy(document)
                current, why = self._candidate(change)
            except EstateError as error:
                return ChangeOutcome(change, FAILED, f"cannot read the re-read {change.resource_id}: {one_line(error)}")
            if current is None:
                return ChangeOutcome(change, UNCHANGED, why)
            existing = child_of(document, "ruleCollectionGroups", current.name)
            if_match = str(existing.get("etag") or "") if existing is not None else ""
            intent = self.auditor.intent(action=current.action, resource_id=current.resource_id, name=current.name,
                                         payload=dict(current.properties), reason=current.reason,
                                         before_etag=str(document.get("etag") or ""), vm_ids=current.vm_ids)
            try:
                self.network.put_rule_collection_group(current.resource_id, current.name, current.properties,
                                                       if_match=if_match or None)
            except Exception as error:
                self.auditor.outcome(intent, "failed", error=one_line(error))
                if attempt == 1 and _is_conflict(error):
                    self.progress(f"conflict writing {change.name} on {change.resource_id}; re-planning once")
                    continue
                return ChangeOutcome(current, FAILED, one_line(error))
            try:
                ok, detail = self._verify_group(current)
            except Exception as verify_error:
                ok, detail = False, f"cannot re-read to verify: {one_line(verify_error)}"
            self.auditor.outcome(intent, "succeeded" if ok else "failed", after_etag=detail if ok else "",
                                 error="" if ok else detail)
            return ChangeOutcome(current, APPLIED if ok else FAILED, "" if ok else detail)
        return ChangeOutcome(change, FAILED, "conflict persisted after re-planning")

    def apply_change(self, change: Change) -> ChangeOutcome:
        if not in_scope(change.resource_id, self.settings):
            return ChangeOutcome(change, SKIPPED, OUTSIDE_SCOPE)
        if change.child_type == "ruleCollectionGroups":
            return self._apply_group(change)
        for attempt in (1, 2):
            try:
                document = self._read(change)
            except Exception as error:
                return ChangeOutcome(change, FAILED, f"cannot re-read {change.resource_id}: {one_line(error)}")
            try:
                current, why = self._replan(change, document)
            except EstateError as error:  # ARM returned something the engine cannot read: never write blind
                return ChangeOutcome(change, FAILED, f"cannot read the re-read {change.resource_id}: {one_line(error)}")
            if current is None:
                return ChangeOutcome(change, UNCHANGED, why)
            intent, write_error = self._attempt(current, document)
            if write_error is None:
                try:
                    ok, detail = self._verify(current)
                except Exception as verify_error:
                    ok, detail = False, f"cannot re-read to verify: {one_line(verify_error)}"
                self.auditor.outcome(intent, "succeeded" if ok else "failed",
                                     after_etag=detail if ok else "", error="" if ok else detail)
                return ChangeOutcome(current, APPLIED if ok else FAILED, "" if ok else detail)
            if attempt == 1 and _is_conflict(write_error):
                self.progress(f"conflict writing {change.name} on {change.resource_id}; re-planning once")
                continue
            return ChangeOutcome(current, FAILED, one_line(write_error))
        return ChangeOutcome(change, FAILED, "conflict persisted after re-planning")

    def apply(self, plan: Plan) -> ApplyResult:
        """Write the plan's changes, VM group by VM group (:func:`vm_groups`), within ASR_MAX_CHANGES.

        A group the remaining budget cannot hold is deferred whole, so the cap never leaves a VM with half of the
        rules it needs (its path stays as broken as before, and the next run writes the group together). A group
        larger than the cap itself could never be written whole: it is written in plan order up to the cap, as the
        cap's purpose (a bound on one run's writes) comes first. Outcomes are returned in plan order."""
        limit = self.settings.max_changes
        outcomes: dict[int, ChangeOutcome] = {}
        writes = 0
        for group in vm_groups(plan.changes):
            writable = [i for i in group if self._may_write(plan.changes[i])]
            if writable and len(writable) <= limit < writes + len(writable):
                waits = (f"ASR_MAX_CHANGES={limit} reached (the {len(writable)} change(s) its VMs need are left "
                         "together for the next run)")
                for index in group:
                    change = plan.changes[index]
                    if index in writable:
                        outcomes[index] = ChangeOutcome(change, DEFERRED, waits)
                    else:
                        outcomes[index] = self._skipped(change) or ChangeOutcome(change, SKIPPED, OUTSIDE_SCOPE)
                continue
            for index in group:
                change = plan.changes[index]
                if (skipped := self._skipped(change)) is not None:
                    outcomes[index] = skipped
                    continue
                if writes >= limit:
                    outcomes[index] = ChangeOutcome(change, DEFERRED, f"ASR_MAX_CHANGES={limit} reached")
                    continue
                if self.deadline.passed():
                    outcomes[index] = ChangeOutcome(change, DEFERRED, DEADLINE_NOTE)
                    continue
                self.progress(f"{change.action} {change.name} on {change.resource_id}")
                outcome = self.apply_change(change)
                writes += outcome.result in (APPLIED, FAILED)  # a failed write may still have landed: count it
                outcomes[index] = outcome
        return ApplyResult(self.auditor.run_id, tuple(outcomes[i] for i in range(len(plan.changes))), plan.reports)

    def _skipped(self, change: Change) -> ChangeOutcome | None:
        """The outcome of a change no switch allows to write now (firewall groups without ASR_APPLY_FIREWALL)."""
        if change.child_type == "ruleCollectionGroups" and not self.settings.apply_firewall:
            return ChangeOutcome(change, SKIPPED, FIREWALL_REPORT_ONLY)
        return None

    def _may_write(self, change: Change) -> bool:
        """Whether the change would count toward ASR_MAX_CHANGES: allowed by its switch and inside the allowlist
        (a change outside it is skipped by ``apply_change`` without a write)."""
        return self._skipped(change) is None and in_scope(change.resource_id, self.settings)


def vm_groups(changes: Iterable[Change]) -> list[tuple[int, ...]]:
    """Indexes of ``changes`` grouped so that every VM's changes are in one group (changes sharing a VM are
    joined, transitively: a subnet NSG rule that fixes two VMs ties their changes together), in plan order, the
    groups ordered by their first change. A change that names no VM is a group of its own.

    >>> from asr_remediate.planner import Change
    >>> plan = [Change("create-security-rule", "nsg1", "a", {}, vm_ids=("vm1",)),
    ...         Change("create-route", "rt1", "b", {}, vm_ids=("vm2",)),
    ...         Change("create-security-rule", "nsg2", "c", {}, vm_ids=("vm1", "vm3")),
    ...         Change("create-route", "rt2", "d", {}, vm_ids=("vm3",))]
    >>> vm_groups(plan)
    [(0, 2, 3), (1,)]
    """
    parent: dict[int, int] = {}

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_by_vm: dict[str, int] = {}
    for index, change in enumerate(changes):
        parent[index] = index
        for vm_id in change.vm_ids:
            other = first_by_vm.setdefault(key(vm_id), index)
            a, b = root(index), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for index in parent:
        groups.setdefault(root(index), []).append(index)
    return [tuple(members) for _, members in sorted(groups.items())]


# -- reconcile and rollback ---------------------------------------------------------------------------------------
PLANNED, LANDED, NOT_LANDED = "planned", "landed", "not-landed"
DELETE_GROUP = "delete-rule-collection-group"
_CHILD_OF_ACTION = {CREATE_RULE: "securityRules", UPDATE_RULE: "securityRules", "delete-security-rule": "securityRules",
                    CREATE_ROUTE: "routes", UPDATE_ROUTE: "routes", "delete-route": "routes",
                    CREATE_GROUP: "ruleCollectionGroups", UPDATE_GROUP: "ruleCollectionGroups",
                    DELETE_GROUP: "ruleCollectionGroups"}
_PARENT_TYPE = {"securityRules": "Microsoft.Network/networkSecurityGroups", "routes": "Microsoft.Network/routeTables",
                "ruleCollectionGroups": "Microsoft.Network/firewallPolicies"}
_DELETE_OF = {"securityRules": "delete-security-rule", "routes": "delete-route", "ruleCollectionGroups": DELETE_GROUP}


def _read_parent(network: NetworkClient, child_type: str, resource_id: str) -> dict[str, Any]:
    if child_type == "ruleCollectionGroups":
        return read_policy_document(network, resource_id)
    return network.get_nsg(resource_id) if child_type == "securityRules" else network.get_route_table(resource_id)


def _same_as_written(child_type: str, written: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """The child holds exactly what was written (a group compares at every depth: its collections and rules)."""
    if child_type == "ruleCollectionGroups":
        return nested_properties_equal(written, actual)
    return properties_equal(written, actual)


def _change_of(record: AuditRecord, action: str, reason: str) -> Change:
    return Change(action, record.resource_id, record.name, record.payload, reason, record.vm_ids)


def reconcile(records: Iterable[AuditRecord], network: NetworkClient, sink: AuditSink, *, trigger: str,
              actor: str, now: datetime, older_than: timedelta = RECONCILE_AFTER,
              deadline: Deadline | None = None) -> list[ChangeOutcome]:
    """Give every dangling intent (no outcome, or a failed one, not reconciled yet, older than ``older_than``) the
    outcome ARM shows now.

    A crash between the PUT and its outcome record, or a response lost after ARM applied it, leaves an intent whose
    write may well have landed. Reading the NSG / route table tells: the rule or route is there with the written
    properties (``landed``) or not (``not-landed``; for a delete, the other way round). The record goes into the
    intent's own run, after its last record, so rollback of that run sees reconciled creations. Unreadable
    resources stay dangling (the outcome says ``failed``), to be tried again next time.
    """
    records = list(records)
    next_sequence: dict[str, int] = {}
    for record in records:
        next_sequence[record.run_id] = max(next_sequence.get(record.run_id, 0), record.sequence + 1)
    outcomes: list[ChangeOutcome] = []
    for intent in dangling_intents(records, now, older_than):
        if deadline is not None and deadline.passed():
            break  # the rest stays dangling: the next run settles it
        child_type = _CHILD_OF_ACTION[intent.action]
        change = _change_of(intent, intent.action, f"reconcile intent {intent.sequence} of run {intent.run_id}")
        try:
            document = _read_parent(network, child_type, intent.resource_id)
        except Exception as error:
            if getattr(error, "status_code", None) != 404:
                outcomes.append(ChangeOutcome(change, FAILED, f"cannot read {intent.resource_id}: {one_line(error)}"))
                continue
            document = {}  # the NSG / route table is gone: so is the child
        child = child_of(document, child_type, intent.name)
        if intent.action.startswith("delete-"):
            landed = child is None
        else:
            landed = child is not None and (
                nested_properties_equal(intent.payload, child.get("properties") or {})
                if child_type == "ruleCollectionGroups" else properties_match(intent.payload,
                                                                              child.get("properties") or {}))
        what = "deletion" if intent.action.startswith("delete-") else "write"
        detail = f"reconciled: ARM shows the {what} {'took' if landed else 'did not take'} effect"
        sequence = next_sequence[intent.run_id]
        next_sequence[intent.run_id] = sequence + 1
        sink.write(reconcile_record(intent, sequence=sequence, landed=landed, detail=detail, trigger=trigger,
                                    actor=actor, after_etag=str(document.get("etag") or ""), clock=lambda: now))
        outcomes.append(ChangeOutcome(change, LANDED if landed else NOT_LANDED, detail))
    return outcomes


def rollback(run_records: Iterable[AuditRecord], network: NetworkClient, auditor: Auditor, settings: Settings, *,
             apply: bool) -> list[ChangeOutcome]:
    """Remove what a run created — only where every write guard allows it and the rule / route is still exactly as
    the run wrote it.

    Considered: creations of the run that landed (their outcome said so, or a later reconciliation found them).
    Guards, as for apply: the name must be one the bot owns (``asr-remediate-*``) under an NSG / route table id,
    inside ASR_SCOPE_ALLOWLIST, the parent not opted out, at most ASR_MAX_CHANGES deletions, an intent and an
    outcome around each, and nothing is deleted unless ``apply`` (report-only by default: ``planned``). The current
    properties must equal the recorded payload exactly, and the delete carries the rule's etag as If-Match — so an
    edited or forged audit record cannot make it delete a rule the bot does not own or that someone changed.
    """
    outcomes: list[ChangeOutcome] = []
    deletions = 0
    for state in intent_states(list(run_records)):
        record = state.intent
        if record.action not in (CREATE_RULE, CREATE_ROUTE, CREATE_GROUP) or not (state.landed or state.dangling):
            continue
        child_type = _CHILD_OF_ACTION[record.action]
        action = _DELETE_OF[child_type]
        change = _change_of(record, action, f"rollback of run {record.run_id}")
        if not state.landed:  # still dangling after reconciliation: too recent, or ARM could not be read
            outcomes.append(ChangeOutcome(change, SKIPPED, "whether this creation landed is not known yet (a run may "
                                          "still be writing it, or ARM could not be read): run rollback again later, "
                                          "or with --older-than 0 when no run is writing"))
            continue
        refusal = _rollback_refusal(record, child_type, settings)
        if refusal:
            outcomes.append(ChangeOutcome(change, SKIPPED, refusal))
            continue
        try:
            document = _read_parent(network, child_type, record.resource_id)
        except Exception as error:
            outcomes.append(ChangeOutcome(change, FAILED, f"cannot read {record.resource_id}: {one_line(error)}"))
            continue
        if settings.opt_out_tag.lower() in {str(t).lower() for t in document.get("tags") or {}}:
            outcomes.append(ChangeOutcome(change, SKIPPED, f"opted out with tag {settings.opt_out_tag}"))
            continue
        current = child_of(document, child_type, record.name)
        if current is None:
            outcomes.append(ChangeOutcome(change, UNCHANGED, "already gone"))
            continue
        if not _same_as_written(child_type, record.payload, current.get("properties") or {}):
            outcomes.append(ChangeOutcome(change, SKIPPED, "changed since the run wrote it; left in place"))
            continue
        if not apply:
            outcomes.append(ChangeOutcome(change, PLANNED, "report-only: pass --apply (or set ASR_APPLY) to delete"))
            continue
        if child_type == "ruleCollectionGroups" and not settings.apply_firewall:
            outcomes.append(ChangeOutcome(change, PLANNED, FIREWALL_REPORT_ONLY))
            continue
        if deletions >= settings.max_changes:
            outcomes.append(ChangeOutcome(change, DEFERRED, f"ASR_MAX_CHANGES={settings.max_changes} reached"))
            continue
        deletions += 1
        intent = auditor.intent(action=action, resource_id=record.resource_id, name=record.name,
                                payload=dict(record.payload), reason=change.reason,
                                before_etag=str(document.get("etag") or ""), vm_ids=record.vm_ids)
        if_match = str(current.get("etag") or "") or None
        try:
            if child_type == "securityRules":
                network.delete_security_rule(record.resource_id, record.name, if_match=if_match)
            elif child_type == "ruleCollectionGroups":
                network.delete_rule_collection_group(record.resource_id, record.name, if_match=if_match)
            else:
                network.delete_route(record.resource_id, record.name, if_match=if_match)
        except Exception as error:
            auditor.outcome(intent, "failed", error=one_line(error))
            outcomes.append(ChangeOutcome(change, FAILED, one_line(error)))
            continue
        auditor.outcome(intent, "succeeded")
        outcomes.append(ChangeOutcome(change, APPLIED))
    return outcomes


def _rollback_refusal(record: AuditRecord, child_type: str, settings: Settings) -> str:
    """Why a recorded creation must not be deleted whatever ARM shows, or '' (the record itself may be forged)."""
    if child_type == "ruleCollectionGroups":
        if not is_firewall_group(record.name):
            return f"{record.name} is not the bot's own rule collection group (asr-remediate)"
    elif not is_managed(record.name):
        return f"{record.name} is not a rule or route the bot owns (asr-remediate-*)"
    try:
        parent = parse_resource_id(record.resource_id)
    except ValueError:
        return f"{record.resource_id!r} is not an ARM resource id"
    if not parent.is_type(_PARENT_TYPE[child_type]):
        return f"{record.resource_id} is not a {_PARENT_TYPE[child_type]}"
    if not in_scope(record.resource_id, settings):
        return OUTSIDE_SCOPE
    return ""
