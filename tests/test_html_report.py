"""``--format html``: one self-contained page — checked with the standard library's HTML parser — and rendered once
in headless Chromium (Debian's ``chromium`` package) when it is installed.

The structure is derived from the plan of the example estate: one section per VM with its status, one path per
(side, destination) with findings, the hop that breaks it marked at the stage its finding names, and the plan table
with one row per change. Nothing is loaded from elsewhere: no ``src``/``href`` to a URL, no script.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import pytest

from asr_remediate import cli
from asr_remediate.config import Settings
from asr_remediate.drift import Finding, VmReport
from asr_remediate.engine import scan
from asr_remediate.estate import load_estate_file
from asr_remediate.html_report import STAGES, render_html, stage_of
from asr_remediate.planner import Plan
from asr_remediate.servicetags import load_service_tags_file
from tests.scenario import REPO

ESTATE = REPO / "examples" / "estate.json"
TAGS = REPO / "examples" / "ServiceTags_Public_20251028.json"


@cache
def example_plan() -> Plan:
    return scan(load_estate_file(str(ESTATE)), load_service_tags_file(str(TAGS)), Settings())


class Page(HTMLParser):
    """Elements with their attributes, the text, and every external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        for name in ("src", "href"):
            if name in values:
                self.external.append(values[name])

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def with_attr(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if name in a]


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def test_structure_follows_the_plan() -> None:
    plan = example_plan()
    page = parse(render_html(plan.reports, plan.changes))
    assert page.external == [] and all(tag != "script" for tag, _ in page.elements)
    sections = [a for a in page.with_attr("data-vm") if "data-status" in a]
    assert [(a["data-vm"], a["data-status"]) for a in sections] == [(r.name, r.status) for r in plan.reports]
    paths = page.with_attr("data-destination")
    expected = {(r.name, f.side, f.destination) for r in plan.reports for f in r.findings if f.destination != "all"}
    assert len(paths) == len(expected)  # one chain per (VM, side, destination) with findings
    broken = {(a["data-side"], a["data-destination"]) for a in paths if a["data-broken"] == "true"}
    assert broken == {(f.side, f.destination) for r in plan.reports for f in r.findings
                      if f.severity == "error" and f.destination != "all"}
    hops = page.with_attr("data-stage")
    assert len(hops) == len(paths) * len(STAGES)
    marked = [h for h in hops if h.get("class") == "hop broken"]
    errors = {(stage_of(f), f.message) for r in plan.reports for f in r.findings
              if f.severity == "error" and f.destination != "all"}
    assert {(h["data-stage"], h["title"]) for h in marked} <= errors and marked
    rows = [tag for tag, _ in page.elements if tag == "tr"]
    assert len(rows) == len(plan.changes) + 1
    cards = {a["data-status"] for a in page.with_attr("data-status") if "card" in a.get("class", "")}
    assert cards == {"compliant", "drift", "unknown", "skipped"}


def test_stage_of_each_finding_kind() -> None:
    nsg = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n"
    table = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/routeTables/t"
    cases = [
        (Finding("nsg-deny", "error", "source", "Storage.EastUS", nsg, "NIC NSG n: x"), "nic"),
        (Finding("nsg-deny", "error", "source", "Storage.EastUS", nsg, "subnet NSG n: x"), "subnet"),
        (Finding("unknown", "warning", "source", "Storage.EastUS", nsg, "cannot tell whether NIC NSG n allows"), "nic"),
        (Finding("unknown", "warning", "source", "Storage.EastUS", nsg, "cannot tell whether subnet NSG n"), "subnet"),
        (Finding("route-next-hop", "error", "source", "Storage.EastUS", table, "m"), "route"),
        (Finding("route-appliance", "warning", "source", "Storage.EastUS", table, "m"), "appliance"),
        (Finding("firewall-deny", "error", "source", "Storage.EastUS", "/x/azureFirewalls/f", "m"), "appliance"),
        (Finding("admin-deny", "error", "source", "Storage.EastUS", "/x/networkManagers/m", "m"), "admin"),
    ]
    for finding, stage in cases:
        assert stage_of(finding) == stage, finding.kind


def test_user_text_is_escaped() -> None:
    finding = Finding("nsg-deny", "error", "source", "Storage.EastUS",
                      "/s/networkSecurityGroups/<script>", "subnet NSG <script>alert(1)</script>",
                      rule_name="<b>x</b>")
    report = VmReport("/vm/<i>", "<img src=x>", "eastus", "centralus", "drift", (finding,))
    page = parse(render_html([report], []))
    assert page.external == [] and {t for t, _ in page.elements} & {"script", "img", "i"} == set()
    assert "<b>x</b>" in "".join(page.text)  # the rule name as text, not markup


def test_cli_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    plan = example_plan()
    assert cli.main(["scan", "--estate", str(ESTATE), "--service-tags", str(TAGS), "--format", "html"]) == \
        cli.EXIT_DRIFT
    assert capsys.readouterr().out.rstrip("\n") == render_html(plan.reports, plan.changes).rstrip("\n")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium (Debian package 'chromium') is not installed")
def test_renders_in_headless_chromium(tmp_path: Path) -> None:
    plan = example_plan()
    page = tmp_path / "report.html"
    page.write_text(render_html(plan.reports, plan.changes), encoding="utf-8")
    shot = tmp_path / "report.png"
    assert CHROMIUM is not None
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--screenshot={shot}", "--window-size=1400,2000", page.as_uri()],
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
