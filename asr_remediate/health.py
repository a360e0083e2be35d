"""ASR's own verdict as a cross-check: the protected item's health errors next to the engine's findings.

Site Recovery already says when a VM cannot reach what replication needs: the protected item carries
``healthErrors[]`` with codes that Microsoft's troubleshooting pages map to network causes (shipped as data:
``data/asr_health_codes.json``, with its sources). Per VM, each connectivity error is compared with what the engine
found on the side where the VM runs (the source side):

- **confirmed**: the engine finds the blocking rule, route or firewall for a destination the code is about; the
  finding says "ASR reports error N since <time>" (``Finding.asr_note``, shown after its message) — the two
  independent verdicts agree.
- **unexplained**: the engine finds that path open; an ``asr-unexplained`` warning names the code and what the bot
  cannot see (in-guest firewall or proxy, DNS, an appliance that is not an Azure Firewall, a stale error). Never a
  write: the planner has already run, and it only ever plans for NSG denies and wrong next hops.
- **not yet reported**: an error finding for which ASR reports nothing (yet): a rule added minutes ago, or the
  recovery side, which ASR only exercises after a failover. The early warning this bot exists for.

Codes not in the table (161011: no test failover) are listed as ``other`` and compared with nothing. An item
without health data (a preflight, an estate file without it) gets no claim at all, nor does one whose health errors
are malformed (``ItemHealth.problem``).

Worked example — ASR reports 151196 (no connection to Microsoft Entra ID) and an NSG denies AzureActiveDirectory:

>>> from asr_remediate.drift import Finding, VmReport
>>> from asr_remediate.model import HealthError, ItemHealth, ProtectedItem
>>> item = ProtectedItem("pi", "vm1", "vm1", "eastus", "westus", health=ItemHealth("Critical", (
...     HealthError("151196", "Error", "Replication", created="2026-12-02T09:00:00.1234567Z"),)))
>>> deny = Finding("nsg-deny", "error", "source", "AzureActiveDirectory", "nsg1", "deny-all denies it")
>>> late = Finding("nsg-deny", "error", "source", "Storage.EastUS", "nsg1", "deny-all denies it")
>>> report = cross_check(item, VmReport("vm1", "vm1", "eastus", "westus", "drift", (deny, late), "pi"))
>>> [(f.destination, f.asr) for f in report.findings]
[('AzureActiveDirectory', 'confirmed'), ('Storage.EastUS', 'not-yet-reported')]
>>> report.findings[0].asr_note
'ASR reports error 151196 since 2026-12-02T09:00:00Z'
>>> check = report.asr_health
>>> (check.confirmed, check.unexplained, check.not_yet_reported)
(1, 0, 1)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from .drift import SKIPPED, Finding, VmReport
from .model import HealthError, ProtectedItem
from .requirements import SOURCE

CONFIRMED = "confirmed"
UNEXPLAINED = "unexplained"
NOT_YET_REPORTED = "not-yet-reported"
OTHER = "other"  # not a connectivity code: shown, compared with nothing
UNEXPLAINED_KIND = "asr-unexplained"

# What the bot cannot see on a path it finds open: said in every unexplained warning.
INVISIBLE = ("an in-guest firewall or proxy", "DNS", "an appliance that is not an Azure Firewall",
             "a stale error (ASR clears it after its next successful attempt)")


@dataclass(frozen=True)
class CodeMeaning:
    """What one Site Recovery error code says about the network: the destinations (service tag names of the
    requirements table) it cannot reach, or the cause off the network path."""

    code: str
    title: str
    destinations: tuple[str, ...]
    cause: str
    source: str  # the page it comes from (a URL with its repository path)


@cache
def code_table() -> Mapping[str, CodeMeaning]:
    """The shipped code → (destinations, cause) mapping, ``data/asr_health_codes.json``."""
    text = resources.files("asr_remediate").joinpath("data/asr_health_codes.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    sources: dict[str, str] = document["sources"]
    return MappingProxyType({
        code: CodeMeaning(code, row["title"], tuple(row["destinations"]), row["cause"], sources[row["source"]])
        for code, row in document["codes"].items()
    })


@dataclass(frozen=True)
class ReportedError:
    """One health error of the item (an inner one names its outer code) and how it compares with the engine."""

    error: HealthError
    verdict: str  # confirmed | unexplained | other
    meaning: CodeMeaning | None = None
    explained_by: tuple[str, ...] = ()  # the engine's blocking findings, "nsg-deny in nsg-app (deny-aad)"
    outer_code: str = ""

    @property
    def since(self) -> str:
        return shown_time(self.error.created)


@dataclass(frozen=True)
class HealthCheck:
    """The cross-check of one VM: ASR's replication health, its errors with their verdicts, and how many of the
    engine's error findings ASR has not reported."""

    replication_health: str
    errors: tuple[ReportedError, ...] = ()
    not_yet_reported: int = 0
    problem: str = ""  # the health errors could not be read: no claim is made

    @property
    def confirmed(self) -> int:
        return sum(1 for e in self.errors if e.verdict == CONFIRMED)

    @property
    def unexplained(self) -> int:
        return sum(1 for e in self.errors if e.verdict == UNEXPLAINED)


def shown_time(created: str) -> str:
    """'2025-12-15T07:49:29.2320169Z' → '2025-12-15T07:49:29Z' (creationTimeUtc is UTC); anything else as given, or
    'an unknown time'."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(?:Z|[+-]00:00)?$", created.strip())
    return match.group(1) + "Z" if match else created.strip() or "an unknown time"


@lru_cache(maxsize=4096)
def destination_bases(destination: str) -> frozenset[str]:
    """The service tags (lower case, without region) a finding's destination stands for: 'Storage.EastUS' →
    {'storage'}; the seed-2017 Site Recovery IPs are the service and its monitoring endpoint."""
    lowered = destination.strip().lower()
    if lowered.startswith("siterecovery-ips-2017"):
        return frozenset({"azuresiterecovery", "eventhub"})
    return frozenset({re.split(r"[.\s(]", lowered, maxsplit=1)[0]})


def _flatten(errors: tuple[HealthError, ...]) -> Iterator[tuple[HealthError, str]]:
    for error in errors:
        yield error, ""
        for inner in error.inner:
            yield inner, error.code


def _about(meaning: CodeMeaning, finding: Finding) -> bool:
    """Does a reported code concern this finding: the side the VM runs on, and one of the code's destinations?"""
    return finding.side == SOURCE and not destination_bases(finding.destination).isdisjoint(_wanted(meaning))


@cache
def _wanted(meaning: CodeMeaning) -> frozenset[str]:
    """A code's destinations in lower case (a handful of codes, asked about for every error finding)."""
    return frozenset(d.lower() for d in meaning.destinations)


def _describe(finding: Finding) -> str:
    where = finding.resource_id.rstrip("/").rsplit("/", 1)[-1]
    return f"{finding.kind} in {where}" + (f" ({finding.rule_name})" if finding.rule_name else "")


def cross_check(item: ProtectedItem | None, report: VmReport) -> VmReport:
    """The report with ASR's verdict joined in: blocking findings marked confirmed / not yet reported, one
    ``asr-unexplained`` warning per connectivity error the engine cannot explain, and ``asr_health`` set. Pure."""
    if item is None or item.health is None or report.status == SKIPPED:
        return report
    health = item.health
    if health.problem:
        return replace(report, asr_health=HealthCheck(health.replication_health, problem=health.problem))
    table = code_table()
    blocking = [f for f in report.findings if f.severity == "error"]
    reported: list[ReportedError] = []
    warnings: list[Finding] = []
    for error, outer in _flatten(health.errors):
        meaning = table.get(error.code)
        if meaning is None:
            reported.append(ReportedError(error, OTHER, outer_code=outer))
            continue
        explained = tuple(dict.fromkeys(_describe(f) for f in blocking if _about(meaning, f)))
        if explained:
            reported.append(ReportedError(error, CONFIRMED, meaning, explained, outer))
        else:
            reported.append(ReportedError(error, UNEXPLAINED, meaning, (), outer))
            warnings.append(_unexplained(item, report, error, meaning))
    findings: list[Finding] = []
    late = 0
    for f in report.findings:
        if f.severity == "error":
            agreeing = [r for r in reported if r.meaning is not None and _about(r.meaning, f)]
            if agreeing:
                f = replace(f, asr=CONFIRMED, asr_note=_reports(agreeing))
            else:
                late += 1
                f = replace(f, asr=NOT_YET_REPORTED, asr_note=_not_reported(f, health.replication_health))
        findings.append(f)
    check = HealthCheck(health.replication_health, tuple(reported), late)
    return replace(report, findings=(*findings, *_unique(warnings)), asr_health=check)


def _reports(agreeing: list[ReportedError]) -> str:
    codes = list(dict.fromkeys(r.error.code for r in agreeing))
    times = sorted(r.error.created for r in agreeing if r.error.created)
    since = shown_time(times[0]) if times else "an unknown time"
    return f"ASR reports error{'s' if len(codes) > 1 else ''} {', '.join(codes)} since {since}"


def _not_reported(finding: Finding, replication_health: str) -> str:
    if finding.side != SOURCE:
        return ("ASR has not reported it: it concerns the recovery side, which ASR only uses after a failover "
                "(reprotect would fail)")
    health = f"replication health {replication_health}" if replication_health else "no health reported"
    return f"ASR has not reported it yet ({health}, no connectivity error for it): replication will break"


def _unexplained(item: ProtectedItem, report: VmReport, error: HealthError, meaning: CodeMeaning) -> Finding:
    destinations = ", ".join(meaning.destinations)
    said = f': "{error.message}"' if error.message else ""
    head = f"ASR reports error {error.code} ({meaning.title}) since {shown_time(error.created)}{said}; "
    if meaning.destinations:
        undecided = [f for f in report.findings if f.severity != "error" and f.side == SOURCE
                     and destination_bases(f.destination) & {d.lower() for d in meaning.destinations}]
        open_path = (f"the bot finds the path to {destinations} open on the source side (security admin rules, NSGs, "
                     "routes, Azure Firewall)")
        if undecided:
            open_path += " except what it could not decide: " + ", ".join(
                dict.fromkeys(_describe(f) for f in undecided))
        body = f"{open_path}. What the bot cannot see: {'; '.join(filter(None, (meaning.cause, *INVISIBLE)))}"
    else:
        body = (f"its cause is off the network path the bot evaluates: {meaning.cause}; or {INVISIBLE[-1]}")
    return Finding(UNEXPLAINED_KIND, "warning", SOURCE, destinations or "all", item.id or report.id,
                   f"{head}{body}. Nothing is changed for it (source: {meaning.source.split(' ', 1)[0]})",
                   rule_name=error.code)


def _unique(findings: list[Finding]) -> tuple[Finding, ...]:
    """One warning per code: ASR may repeat an error (outer and inner, several entities)."""
    seen: dict[str, Finding] = {}
    for f in findings:
        seen.setdefault(f.rule_name, f)
    return tuple(seen.values())


__all__ = ["CONFIRMED", "NOT_YET_REPORTED", "OTHER", "UNEXPLAINED", "UNEXPLAINED_KIND", "CodeMeaning", "HealthCheck",
           "ReportedError", "code_table", "cross_check", "destination_bases", "shown_time"]
