"""Scan results as JSON (the stable contract), a terminal table, or Markdown (for tickets and the HTTP dry run)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .drift import Finding, VmReport
from .model import FAILBACK
from .planner import Change

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
    data["message"] = f.message
    return data


def report_json(reports: Iterable[VmReport], changes: Iterable[Change]) -> dict[str, Any]:
    return {
        "schemaVersion": SCHEMA_VERSION,
        "vms": [
            {
                "id": r.id,
                "name": r.name,
                "sourceRegion": r.source_region,
                "targetRegion": r.target_region,
                "direction": r.direction,
                "status": r.status,
                "findings": [finding_json(f) for f in r.findings],
            }
            for r in reports
        ],
        "plan": [c.to_json() for c in changes],
    }


def render_json(reports: Iterable[VmReport], changes: Iterable[Change]) -> str:
    return json.dumps(report_json(reports, changes), indent=2)


def _short(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1] if resource_id else ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(reports: list[VmReport], changes: list[Change]) -> str:
    counts = Counter(r.status for r in reports)
    parts = [f"{counts[s]} {s}" for s in ("compliant", "drift", "unknown", "skipped") if counts[s]]
    return (f"{_plural(len(reports), 'replicated VM')}: {', '.join(parts) or 'none'}; "
            f"{_plural(len(changes), 'planned change')}")


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
        lines.append(f"{r.name[:24]:<24} {route[:37]:<37} {r.status:<10} {errors} error(s), {warnings} warning(s)")
        for f in r.findings:
            mark = "x" if f.severity == "error" else "!"
            fix = " [fixable]" if f.fixable else ""
            lines.append(f"    {mark} {f.side:<6} {f.destination}: {f.message}{fix}")
    if changes:
        lines.append("")
        lines.append("PLAN")
        for c in changes:
            lines.append(f"  {c.action:<21} {_short(c.resource_id)}/{c.name}  {_describe(c)}")
            if c.fixes:
                lines.append(f"      {_fixes(c)}")
    lines.append("")
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
    out = ["# ASR network drift", "", _summary(reports, changes), "",
           "| VM | Source → target | Status | Findings |", "| --- | --- | --- | --- |"]
    for r in reports:
        out.append(f"| {_md(r.name)} | {r.source_region} → {r.target_region}{_failback(r)} | {r.status} | "
                   f"{len(r.findings)} |")
    for r in reports:
        if not r.findings:
            continue
        out += ["", f"## {_md(r.name)} ({r.status})", "",
                "| Severity | Side | Destination | Resource | Fixable | Detail |",
                "| --- | --- | --- | --- | --- | --- |"]
        for f in r.findings:
            out.append(f"| {f.severity} | {f.side} | {_md(f.destination)} | {_md(_short(f.resource_id))} | "
                       f"{'yes' if f.fixable else 'no'} | {_md(f.message)} |")
    if changes:
        out += ["", "## Plan", "", "| Action | Resource | Name | Change | Fixes |", "| --- | --- | --- | --- | --- |"]
        for c in changes:
            out.append(f"| {c.action} | {_md(_short(c.resource_id))} | {_md(c.name)} | {_md(_describe(c))} | "
                       f"{_md(_fixes(c).removeprefix('fixes '))} |")
    return "\n".join(out) + "\n"


RENDERERS = {"json": render_json, "table": render_table, "markdown": render_markdown}
