"""The workbook and alert queries (infra/modules/monitoring.bicep) read only what the telemetry really writes.

Every KQL string of the module (its ``var`` strings, ``${…}`` references expanded) may name only the tables
``AppTraces`` / ``AppMetrics`` — where the Azure Monitor exporter puts OpenTelemetry log records and metrics of a
workspace-based Application Insights resource — only their columns ``TimeGenerated``, ``Properties``, ``Name``,
``Sum``, and only the attributes (``Properties.x``), record kinds (``asrEvent``) and metric names that
``asr_remediate/telemetry.py`` declares (``LOG_ATTRIBUTES``, ``METRICS``; tests/test_telemetry.py checks those are
complete). The queries are also balanced and each alert counts rows of one of them.
"""

from __future__ import annotations

import re
from pathlib import Path

from asr_remediate.telemetry import LOG_ATTRIBUTES, METRICS
from tests.bicep import read_text, strip_comments

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "infra" / "modules" / "monitoring.bicep"
MAIN = ROOT / "infra" / "main.bicep"
TABLES = {"AppTraces", "AppMetrics"}
COLUMNS = {"AppTraces": {"TimeGenerated", "Properties"}, "AppMetrics": {"TimeGenerated", "Properties", "Name", "Sum"}}


def kql_vars() -> dict[str, str]:
    text = strip_comments(read_text(MONITORING))
    raw = dict(re.findall(r"^var (\w+) = '((?:[^'\\]|\\.)*)'$", text, re.MULTILINE))
    expanded: dict[str, str] = {}
    for name, value in raw.items():
        for _ in range(3):
            value = re.sub(r"\$\{(\w+)\}", lambda m: raw.get(m.group(1), m.group(0)), value)
        expanded[name] = value
    return expanded


def queries() -> dict[str, str]:
    return {name: q for name, q in kql_vars().items() if re.match(r"^(let |AppTraces|AppMetrics)", q)}


def test_the_module_has_the_workbook_queries_and_the_three_alerts() -> None:
    text = read_text(MONITORING)
    assert {"newDriftQuery", "failedWriteQuery", "completedScanQuery", "complianceOverTime", "currentDrift",
            "lastRunPerTrigger", "writeOutcomes"} <= set(queries())
    for alert in ("vm-newly-in-drift", "write-failed", "no-completed-scan"):
        assert f"name: '{alert}'" in text
    assert "Microsoft.Insights/workbooks@" in text and "Microsoft.Insights/actionGroups@" in text
    assert "Microsoft.Insights/scheduledQueryRules@" in text and "emailAddress: alertEmail" in text
    assert "module monitoring 'modules/monitoring.bicep'" in read_text(MAIN)


def test_queries_name_only_what_the_telemetry_writes() -> None:
    attributes = {a for names in LOG_ATTRIBUTES.values() for a in names} | {
        a for names in METRICS.values() for a in names}
    for name, query in queries().items():
        tables = set(re.findall(r"\b(App[A-Z]\w*)\b", query))
        assert tables and tables <= TABLES, (name, tables)
        used = set(re.findall(r"Properties\.(\w+)", query))
        assert used <= attributes, (name, used - attributes)
        for event in re.findall(r'asrEvent\) == "([^"]+)"', query):
            assert event in LOG_ATTRIBUTES, (name, event)
        for metric in re.findall(r'Name == "([^"]+)"', query):
            assert metric in METRICS, (name, metric)
            assert set(re.findall(r"Properties\.(\w+)", query)) <= set(METRICS[metric]), name
        columns = set(re.findall(r"\b(TimeGenerated|Properties|Name|Sum|Count|Min|Max|Message|SeverityLevel|"
                                 r"Timestamp|customDimensions|timestamp)\b", query))
        allowed = set().union(*(COLUMNS[t] for t in tables))
        assert columns <= allowed, (name, columns - allowed)
        assert query.count("(") == query.count(")"), name


def test_properties_of_each_record_kind_belong_to_it() -> None:
    """A query on asr.finding records reads finding attributes (not, say, a write's childName)."""
    for name, query in queries().items():
        events = set(re.findall(r'asrEvent\) == "([^"]+)"', query))
        if len(events) != 1 or "let " in query:
            continue
        [event] = events
        used = set(re.findall(r"Properties\.(\w+)", query))
        assert used <= set(LOG_ATTRIBUTES[event]), (name, used - set(LOG_ATTRIBUTES[event]))
