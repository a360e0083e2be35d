"""``--format html``: one self-contained page (inline CSS, no script, no CDN) people would rather look at than read.

A summary, then per VM its path per side and required destination drawn as a chain — admin rules → NIC NSG →
subnet NSG → route → appliance / firewall → destination — with the hop that breaks it marked and named (the
finding's resource and rule, and its message), then the plan. The chain is drawn from the findings: a hop without a
finding is shown as passing ("no finding"); warnings (an appliance that must allow ASR's names, unknowns) are marked
as such. Everything user-controlled is HTML-escaped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from html import escape

from .drift import Finding, VmReport
from .planner import Change

# (stage, label) in path order; which finding kinds belong to each.
STAGES = (("admin", "Admin rules"), ("nic", "NIC NSG"), ("subnet", "Subnet NSG"), ("route", "Route"),
          ("appliance", "Appliance / firewall"), ("destination", "Destination"))
_KIND_STAGE = {"admin-deny": "admin", "admin-rules": "admin", "route-next-hop": "route", "bgp-propagation": "route",
               "route-appliance": "appliance", "firewall-deny": "appliance", "firewall-egress": "appliance"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1b1b1f;background:#fafafa}
h1{margin:0 0 .5rem}h2{margin:2rem 0 .5rem;font-size:1.2rem}
.summary{display:flex;gap:1rem;margin:1rem 0}.card{padding:.6rem 1rem;border-radius:.5rem;background:#fff;
box-shadow:0 1px 3px #0002}.card b{display:block;font-size:1.6rem}
.compliant{color:#1a7f37}.drift{color:#cf222e}.unknown{color:#9a6700}.skipped{color:#57606a}
.vm{background:#fff;border-radius:.5rem;box-shadow:0 1px 3px #0002;padding:1rem;margin:1rem 0}
.chain{display:flex;flex-wrap:wrap;align-items:stretch;gap:.3rem;margin:.6rem 0}
.hop{border:2px solid #1a7f37;border-radius:.4rem;padding:.3rem .6rem;min-width:8rem;font-size:.85rem;
background:#f0fff4}
.hop.broken{border-color:#cf222e;background:#fff0f0;font-weight:600}.hop.warn{border-color:#bf8700;background:#fffbe6}
.hop small{display:block;font-weight:400;color:#57606a}.arrow{align-self:center;color:#57606a}
.msg{font-size:.85rem;color:#57606a;margin:.2rem 0 .8rem}
table{border-collapse:collapse;background:#fff;font-size:.85rem}td,th{border:1px solid #d0d7de;padding:.3rem .5rem;
text-align:left;vertical-align:top}
"""


def _short(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1] if resource_id else ""


def stage_of(finding: Finding) -> str:
    """Where on the path a finding is: NSG findings say which NSG ("NIC NSG x" / "subnet NSG x")."""
    if finding.kind in _KIND_STAGE:
        return _KIND_STAGE[finding.kind]
    if "/networksecuritygroups/" in finding.resource_id.lower():
        return "nic" if finding.message.removeprefix("cannot tell whether ").startswith("NIC ") else "subnet"
    if "/routetables/" in finding.resource_id.lower():
        return "route"
    if "/azurefirewalls/" in finding.resource_id.lower() or "/firewallpolicies/" in finding.resource_id.lower():
        return "appliance"
    if "/networkmanagers/" in finding.resource_id.lower():
        return "admin"
    return "destination"


def _hop(stage: str, label: str, findings: list[Finding], destination: str) -> str:
    if stage == "destination" and not findings:
        return f'<div class="hop" data-stage="{stage}">{escape(destination)}<small>TCP 443</small></div>'
    if not findings:
        return f'<div class="hop" data-stage="{stage}">{escape(label)}<small>no finding</small></div>'
    errors = [f for f in findings if f.severity == "error"]
    shown = errors[0] if errors else findings[0]
    css = "hop broken" if errors else "hop warn"
    rule = f" · {escape(shown.rule_name)}" if shown.rule_name else ""
    mark = "✗ breaks here" if errors else "! check"
    title = escape(shown.message, quote=True)
    return (f'<div class="{css}" data-stage="{stage}" title="{title}">{escape(label)}: '
            f'{escape(_short(shown.resource_id))}{rule}<small>{mark} ({escape(shown.kind)})</small></div>')


def _chains(report: VmReport) -> list[str]:
    by_path: dict[tuple[str, str], list[Finding]] = {}
    general: list[Finding] = []
    for finding in report.findings:
        if finding.destination == "all":
            general.append(finding)
        else:
            by_path.setdefault((finding.side, finding.destination), []).append(finding)
    out = []
    for f in general:
        out.append(f'<p class="msg">{escape(f.side)}: {escape(f.message)}</p>')
    for (side, destination), findings in sorted(by_path.items()):
        hops = []
        for stage, label in STAGES:
            here = [f for f in findings if stage_of(f) == stage]
            hops.append(_hop(stage, label, here, destination))
        broken = any(f.severity == "error" for f in findings)
        out.append(f'<div class="path" data-side="{escape(side)}" data-destination="{escape(destination)}" '
                   f'data-broken="{str(broken).lower()}"><strong>{escape(side)} → {escape(destination)}</strong>'
                   f'<div class="chain">{"<span class=arrow>→</span>".join(hops)}</div>'
                   + "".join(f'<p class="msg">{escape(f.message)}{" [fixable]" if f.fixable else ""}</p>'
                             for f in findings) + "</div>")
    return out


def render_html(reports: Iterable[VmReport], changes: Iterable[Change]) -> str:
    reports, changes = list(reports), list(changes)
    counts = Counter(r.status for r in reports)
    cards = "".join(f'<div class="card {s}" data-status="{s}"><b>{counts[s]}</b>{s}</div>'
                    for s in ("compliant", "drift", "unknown", "skipped"))
    body = [f"<h1>ASR network drift</h1><p>{len(reports)} replicated VM(s), {len(changes)} planned change(s)</p>",
            f'<div class="summary">{cards}</div>']
    for report in reports:
        chains = _chains(report)
        body.append(f'<section class="vm" data-vm="{escape(report.name)}" data-status="{escape(report.status)}">'
                    f'<h2>{escape(report.name)} <span class="{escape(report.status)}">{escape(report.status)}</span>'
                    f'</h2><p class="msg">{escape(report.source_region)} → {escape(report.target_region)} · '
                    f'{escape(report.id)}</p>'
                    + ("".join(chains) if chains else '<p class="msg">Every required path is clear.</p>')
                    + "</section>")
    if changes:
        rows = "".join(
            f"<tr><td>{escape(c.action)}</td><td>{escape(_short(c.resource_id))}</td><td>{escape(c.name)}</td>"
            f"<td>{escape(c.works_around)}</td><td>{len(c.fixes)}</td></tr>" for c in changes)
        body.append('<h2>Plan</h2><table id="plan"><tr><th>Action</th><th>NSG / route table</th><th>Name</th>'
                    f"<th>Works around</th><th>Fixes</th></tr>{rows}</table>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ASR network drift</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
