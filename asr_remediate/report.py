"""Scan results as JSON (the stable contract), a terminal table, or Markdown (for tickets and the HTTP dry run)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .drift import Finding, VmReport
from .health import HealthCheck
from .html_report import render_html
from .model import FAILBACK
from .plan_formats import PLAN_RENDERERS
from .planner import Change
from .readiness import READINESS_KINDS

SCHEMA_VERSION = 1


def finding_json(f: Finding) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": f.kind,
        "severity": f.severity,
        "side": f.side,
        "destination": f.destination,
        "resourceId": f.resource_id,
    }
    if f.rule_name:
        data["ruleName"] = f.rule_name
    data["fixable"] = f.fixable
    if f.asr:
        data["asr"] = f.asr
        data["asrNote"] = f.asr_note
    data["message"] = f.message
    return data


def health_json(check: HealthCheck) -> dict[str, Any]:
    """ASR's verdict on the VM (additive, still schemaVersion 1): its replication health, each health error with
    the verdict of the cross-check, and the counts."""
    data: dict[str, Any] = {
        "replicationHealth": check.replication_health,
        "confirmed": check.confirmed,
        "unexplained": check.unexplained,
        "notYetReported": check.not_yet_reported,
        "errors": [],
    }
    if check.problem:
        data["problem"] = check.problem
    for reported in check.errors:
        error: dict[str, Any] = {
            "code": reported.error.code,
            "level": reported.error.level,
            "category": reported.error.category,
            "message": reported.error.message,
            "since": reported.error.created,
            "verdict": reported.verdict,
        }
        if reported.outer_code:
            error["innerOf"] = reported.outer_code
        if reported.meaning is not None:
            error["destinations"] = list(reported.meaning.destinations)
            error["cause"] = reported.meaning.cause
        if reported.explained_by:
            error["explainedBy"] = list(reported.explained_by)
        data["errors"].append(error)
    return data


def _vm_json(r: VmReport) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": r.id,
        "name": r.name,
        "sourceRegion": r.source_region,
        "targetRegion": r.target_region,
        "direction": r.direction,
        "status": r.status,
        "findings": [finding_json(f) for f in r.findings],
    }
    if r.asr_health is not None:
        data["asrHealth"] = health_json(r.asr_health)
    return data


def report_json(reports: Iterable[VmReport], changes: Iterable[Change]) -> dict[str, Any]:
    return {
        "schemaVersion": SCHEMA_VERSION,
        "vms": [_vm_json(r) for r in reports],
        "plan": [c.to_json() for c in changes],
    }


def render_json(reports: Iterable[VmReport], changes: Iterable[Change]) -> str:
    return json.dumps(report_json(reports, changes), indent=2)


def _said(f: Finding) -> str:
    """The message, then what ASR says about it (confirmed / not yet reported)."""
    return f"{f.message} — {f.asr_note}" if f.asr_note else f.message


def _short(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1] if resource_id else ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(reports: list[VmReport], changes: list[Change]) -> str:
    counts = Counter(r.status for r in reports)
    parts = [f"{counts[s]} {s}" for s in ("compliant", "drift", "unknown", "skipped") if counts[s]]
    return (f"{_plural(len(reports), 'replicated VM')}: {', '.join(parts) or 'none'}; "
            f"{_plural(len(changes), 'planned change')}")


def _asr_counts(check: HealthCheck | None) -> str:
    if check is None:
        return ""
    if check.problem:
        return "health errors unreadable"
    counts = [(check.confirmed, "confirmed"), (check.unexplained, "unexplained"),
              (check.not_yet_reported, "not yet reported")]
    return ", ".join(f"{n} {label}" for n, label in counts if n) or f"health {check.replication_health or '?'}"


def _asr_summary(reports: list[VmReport]) -> str:
    """'ASR (VMs): 2 confirmed, 1 unexplained, 3 not yet reported' (VMs with at least one of each), or ''."""
    checks = [r.asr_health for r in reports if r.asr_health is not None]
    counts = [(sum(1 for c in checks if c.confirmed), "confirmed"), (sum(1 for c in checks if c.unexplained),
              "unexplained"), (sum(1 for c in checks if c.not_yet_reported), "not yet reported")]
    shown = [f"{n} {label}" for n, label in counts if n]
    return f"ASR (VMs): {', '.join(shown)}" if shown else ""


def _fixes(change: Change) -> str:
    """'fixes source Storage.EastUS of vm-a, vm-b; target Storage.EastUS of vm-c' (VM names from their ids)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for fix in change.fixes:
        groups.setdefault((fix.side, fix.destination), []).append(_short(fix.vm_id))
    fixed = "; ".join(f"{side} {destination} of {', '.join(vms)}" for (side, destination), vms in groups.items())
    parts = [f"fixes {fixed}" if fixed else "", f"works around {change.works_around}" if change.works_around else ""]
    return "; ".join(p for p in parts if p)


def render_table(reports: Iterable[VmReport], changes: Iterable[Change]) -> str:
    reports, changes = list(reports), list(changes)
    lines = [f"{'VM':<24} {'ROUTE':<37} {'STATUS':<10} FINDINGS"]
    for r in reports:
        errors = sum(1 for f in r.findings if f.severity == "error")
        warnings = len(r.findings) - errors
        route = f"{r.source_region} -> {r.target_region}{_failback(r)}"
        asr = _asr_counts(r.asr_health)
        lines.append(f"{r.name[:24]:<24} {route[:37]:<37} {r.status:<10} {errors} error(s), {warnings} warning(s)"
                     + (f"; ASR: {asr}" if asr else ""))
        for f in r.findings:
            mark = "x" if f.severity == "error" else "!"
            fix = " [fixable]" if f.fixable else ""
            lines.append(f"    {mark} {f.side:<6} {f.destination}: {_said(f)}{fix}")
        if r.asr_health is not None:
            for reported in r.asr_health.errors:
                error = reported.error
                lines.append(f"    ASR {reported.verdict:<11} error {error.code} ({error.level or '?'}) "
                             f"since {reported.since}: {error.message}")
    if changes:
        lines.append("")
        lines.append("PLAN")
        for c in changes:
            lines.append(f"  {c.action:<21} {_short(c.resource_id)}/{c.name}  {_describe(c)}")
            if c.fixes:
                lines.append(f"      {_fixes(c)}")
    lines.append("")
    if asr := _asr_summary(reports):
        lines.append(asr)
    lines.append(_summary(reports, changes))
    return "\n".join(lines)


def _describe(change: Change) -> str:
    p = change.properties
    if change.child_type == "routes":
        return f"{p.get('addressPrefix')} -> {p.get('nextHopType')}"
    if change.child_type == "ruleCollectionGroups":
        rules = [r for c in p.get("ruleCollections") or [] for r in c.get("rules") or []]
        targets = ", ".join(d for r in rules for d in r.get("destinationAddresses") or [])
        return f"group priority {p.get('priority')}: allow TCP/443 to {targets} ({len(rules)} network rules)"
    return f"priority {p.get('priority')} {p.get('access')} {p.get('protocol')}/{p.get('destinationPortRange')} " \
           f"from {_prefixes(p, 'source')} to {_prefixes(p, 'destination')}"


def _prefixes(properties: Mapping[str, Any], side: str) -> str:
    many = properties.get(f"{side}AddressPrefixes") or []
    if not many:
        return str(properties.get(f"{side}AddressPrefix") or "")
    return ", ".join(many) if len(many) <= 3 else f"{len(many)} prefixes"


def _failback(report: VmReport) -> str:
    return " (failback)" if report.direction == FAILBACK else ""


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(reports: Iterable[VmReport], changes: Iterable[Change]) -> str:
    reports, changes = list(reports), list(changes)
    asr = _asr_summary(reports)
    out = ["# ASR network drift", "", _summary(reports, changes), *(["", asr] if asr else []), "",
           "| VM | Source → target | Status | Findings | ASR |", "| --- | --- | --- | --- | --- |"]
    for r in reports:
        out.append(f"| {_md(r.name)} | {r.source_region} → {r.target_region}{_failback(r)} | {r.status} | "
                   f"{len(r.findings)} | {_md(_asr_counts(r.asr_health)) or '—'} |")
    for r in reports:
        if not r.findings:
            continue
        out += ["", f"## {_md(r.name)} ({r.status})", "",
                "| Severity | Side | Destination | Resource | Fixable | Detail |",
                "| --- | --- | --- | --- | --- | --- |"]
        for f in r.findings:
            out.append(f"| {f.severity} | {f.side} | {_md(f.destination)} | {_md(_short(f.resource_id))} | "
                       f"{'yes' if f.fixable else 'no'} | {_md(_said(f))} |")
        if r.asr_health is not None and r.asr_health.errors:
            out += ["", "| ASR error | Level | Since | Verdict | Message |", "| --- | --- | --- | --- | --- |"]
            for reported in r.asr_health.errors:
                out.append(f"| {_md(reported.error.code)} | {_md(reported.error.level)} | {_md(reported.since)} | "
                           f"{reported.verdict} | {_md(reported.error.message)} |")
    out += _readiness_section(reports)
    if changes:
        out += ["", "## Plan", "", "| Action | Resource | Name | Change | Fixes |", "| --- | --- | --- | --- | --- |"]
        for c in changes:
            out.append(f"| {c.action} | {_md(_short(c.resource_id))} | {_md(c.name)} | {_md(_describe(c))} | "
                       f"{_md(_fixes(c).removeprefix('fixes '))} |")
    return "\n".join(out) + "\n"


def _readiness_section(reports: list[VmReport]) -> list[str]:
    """Failover readiness (on-premises connectivity after failover) on its own: warnings that no plan fixes."""
    rows = [(r, f) for r in reports for f in r.findings if f.kind in READINESS_KINDS]
    if not rows:
        return []
    out = ["", "## Failover readiness", "",
           "On-premises connectivity after failover (warnings; asr-remediate never changes gateways, connections or "
           "circuits).", "", "| VM | Check | Side | Resource | Detail |", "| --- | --- | --- | --- | --- |"]
    for r, f in rows:
        out.append(f"| {_md(r.name)} | {f.kind} | {f.side} | {_md(_short(f.resource_id))} | {_md(f.message)} |")
    return out


RENDERERS = {"json": render_json, "table": render_table, "markdown": render_markdown, **PLAN_RENDERERS,
             "html": render_html}
