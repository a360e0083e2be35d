"""Applying a plan safely: guards, re-read and re-plan right before each write, audit, verify after.

The pure engine plans against a snapshot (Resource Graph can lag ARM by minutes); a write is only made after the
NSG / route table has been read again from ARM and the plan for it recomputed. Every write has an intent record
before it and an outcome record after it. A priority conflict (someone else took the priority in between) is
re-planned once. Nothing here decides *what* to write: that is the planner's job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

from .audit import Auditor, AuditRecord
from .azure.network import properties_match
from .config import Settings
from .drift import VmReport, evaluate_item
from .errors import one_line
from .estate import parse_nsg, parse_route_table
from .model import Estate, key, subscription_of
from .planner import CREATE_ROUTE, CREATE_RULE, Change, Plan, is_managed, make_plan
from .servicetags import ServiceTags

log = logging.getLogger(__name__)

APPLIED, SKIPPED, FAILED, DEFERRED, UNCHANGED = "applied", "skipped", "failed", "deferred", "unchanged"


class NetworkClient(Protocol):
    """ARM reads and writes the apply step needs (asr_remediate.azure.network implements it with the real SDK)."""

    def get_nsg(self, nsg_id: str) -> dict[str, Any]: ...
    def get_route_table(self, route_table_id: str) -> dict[str, Any]: ...
    def get_virtual_network(self, vnet_id: str) -> dict[str, Any]: ...
    def get_network_interface(self, nic_id: str) -> dict[str, Any]: ...
    def get_effective_routes(self, nic_id: str) -> list[dict[str, Any]]: ...
    def put_security_rule(self, nsg_id: str, name: str, properties: Mapping[str, Any], *,
                          if_match: str | None = None) -> dict[str, Any]: ...
    def put_route(self, route_table_id: str, name: str, properties: Mapping[str, Any], *,
                  if_match: str | None = None) -> dict[str, Any]: ...
    def delete_security_rule(self, nsg_id: str, name: str, *, if_match: str | None = None) -> None: ...
    def delete_route(self, route_table_id: str, name: str, *, if_match: str | None = None) -> None: ...


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


def in_scope(resource_id: str, settings: Settings) -> bool:
    """Writes only under ASR_SCOPE_ALLOWLIST prefixes, or (when it is empty) the scanned subscriptions."""
    rid = key(resource_id)
    if settings.scope_allowlist:
        return any(rid == key(p) or rid.startswith(key(p) + "/") for p in settings.scope_allowlist)
    return subscription_of(resource_id) in {s.lower() for s in settings.subscriptions}


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
                 auditor: Auditor, *, on_progress: Callable[[str], None] | None = None) -> None:
        self.estate = estate
        self.tags = tags
        self.settings = settings
        self.network = network
        self.auditor = auditor
        self.progress = on_progress or (lambda _message: None)

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
        vm_keys = {key(v) for v in change.vm_ids}
        items = [i for i in self.estate.protected_items if key(i.vm_id) in vm_keys]
        reports = [evaluate_item(i, self.estate, self.tags, self.settings) for i in items]
        plan = make_plan(self.estate, reports, self.tags, self.settings)
        for candidate in plan.changes:
            if key(candidate.resource_id) == key(change.resource_id) and candidate.name.lower() == change.name.lower():
                return candidate, ""
        return None, "no longer needed after re-reading the resource"

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

    def apply_change(self, change: Change) -> ChangeOutcome:
        if not in_scope(change.resource_id, self.settings):
            return ChangeOutcome(change, SKIPPED, "outside the write scope (ASR_SCOPE_ALLOWLIST / subscriptions)")
        for attempt in (1, 2):
            try:
                document = self._read(change)
            except Exception as error:
                return ChangeOutcome(change, FAILED, f"cannot re-read {change.resource_id}: {one_line(error)}")
            current, why = self._replan(change, document)
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
        outcomes: list[ChangeOutcome] = []
        writes = 0
        for change in plan.changes:
            if writes >= self.settings.max_changes:
                outcomes.append(ChangeOutcome(change, DEFERRED, f"ASR_MAX_CHANGES={self.settings.max_changes} reached"))
                continue
            self.progress(f"{change.action} {change.name} on {change.resource_id}")
            outcome = self.apply_change(change)
            writes += outcome.result in (APPLIED, FAILED)  # a failed write may still have landed: count it
            outcomes.append(outcome)
        return ApplyResult(self.auditor.run_id, tuple(outcomes), plan.reports)


# -- rollback ------------------------------------------------------------------------------------------------
def rollback(run_records: Iterable[AuditRecord], network: NetworkClient, auditor: Auditor) -> list[ChangeOutcome]:
    """Remove what a run created, where the rule/route is still exactly as the run wrote it."""
    outcomes: list[ChangeOutcome] = []
    created = [r for r in run_records if r.phase == "outcome" and r.result == "succeeded"
               and r.action in (CREATE_RULE, CREATE_ROUTE)]
    for record in created:
        is_rule = record.action == CREATE_RULE
        change = Change("delete-security-rule" if is_rule else "delete-route", record.resource_id, record.name,
                        record.payload, f"rollback of run {record.run_id}", record.vm_ids)
        try:
            document = network.get_nsg(record.resource_id) if is_rule else network.get_route_table(record.resource_id)
        except Exception as error:
            outcomes.append(ChangeOutcome(change, FAILED, f"cannot read {record.resource_id}: {one_line(error)}"))
            continue
        children = (document.get("properties") or {}).get("securityRules" if is_rule else "routes") or []
        current = next((c for c in children if str(c.get("name", "")).lower() == record.name.lower()), None)
        if current is None:
            outcomes.append(ChangeOutcome(change, UNCHANGED, "already gone"))
            continue
        if not properties_match(record.payload, current.get("properties") or {}):
            outcomes.append(ChangeOutcome(change, SKIPPED, "changed since the run wrote it; left in place"))
            continue
        intent = auditor.intent(action=change.action, resource_id=change.resource_id, name=change.name,
                                payload=dict(record.payload), reason=change.reason,
                                before_etag=str(document.get("etag") or ""), vm_ids=change.vm_ids)
        try:
            if is_rule:
                network.delete_security_rule(record.resource_id, record.name)
            else:
                network.delete_route(record.resource_id, record.name)
        except Exception as error:
            auditor.outcome(intent, "failed", error=one_line(error))
            outcomes.append(ChangeOutcome(change, FAILED, one_line(error)))
            continue
        auditor.outcome(intent, "succeeded")
        outcomes.append(ChangeOutcome(change, APPLIED))
    return outcomes

