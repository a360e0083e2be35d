"""OpenTelemetry metrics and structured logs for Azure Monitor: what operators see without reading the run's log.

Nothing is emitted unless ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (local and CLI runs stay silent). When it
is, :func:`from_environment` configures the Azure Monitor OpenTelemetry distro (``azure-monitor-opentelemetry``,
``configure_azure_monitor()``) once per process — unless the Functions Python worker already did, which it does
with the app setting ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`` ("Use OpenTelemetry with Azure
Functions", learn.microsoft.com/azure/azure-functions/opentelemetry-howto: host.json ``"telemetryMode":
"OpenTelemetry"`` for the host, that setting or ``configure_azure_monitor()`` for the worker). With Entra-only
ingestion the exporter reads ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` itself.

Per run (:meth:`Telemetry.observe_run`), with the attribute ``trigger`` (timer, queue, eventgrid, http, cli):

====================================  ===========  ===============================================================
metric                                kind         attributes
====================================  ===========  ===============================================================
``asr.runs``                          counter      trigger, outcome (completed | failed)
``asr.vms``                           counter      trigger, status (compliant | drift | unknown | skipped)
``asr.findings``                      counter      trigger, kind, side, destination (error findings only)
``asr.changes``                       counter      trigger, outcome (planned | applied | unchanged | skipped |
                                                   deferred | failed | reconciled)
``asr.run.duration``                  histogram s  trigger, outcome
``asr.resource_graph.pages``          counter      trigger
``asr.arm.calls``                     counter      trigger (other ARM requests: reads, writes, LRO polls, tags)
====================================  ===========  ===============================================================

Log records (logger ``asr_remediate.telemetry``; the attributes land in Application Insights' ``Properties`` /
``customDimensions``): one ``asr.run`` per run, one ``asr.finding`` per error finding (VM id, side, destination,
blocking resource and rule) and one ``asr.write`` per write and per reconciled intent (run id, resource, outcome).
:data:`LOG_ATTRIBUTES` lists every attribute of each; the workbook and alert queries in ``infra/monitoring.bicep``
use only these (``tests/test_monitoring.py`` checks it).

Azure Monitor's exporter sends counters and histograms with delta temporality, so ``AppMetrics.Sum`` per time bin
is what the runs of that bin counted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .audit import new_run_id

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from .runtime import RunResult

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
LOGGER_NAME = "asr_remediate.telemetry"
METER_NAME = "asr_remediate"

RUN_EVENT, FINDING_EVENT, WRITE_EVENT = "asr.run", "asr.finding", "asr.write"
COMPLETED, FAILED_RUN = "completed", "failed"
PLANNED, RECONCILED = "planned", "reconciled"

#: Every metric and its attributes (the KQL in infra/ may use only these).
METRICS: Mapping[str, tuple[str, ...]] = {
    "asr.runs": ("trigger", "outcome"),
    "asr.vms": ("trigger", "status"),
    "asr.findings": ("trigger", "kind", "side", "destination"),
    "asr.changes": ("trigger", "outcome"),
    "asr.run.duration": ("trigger", "outcome"),
    "asr.resource_graph.pages": ("trigger",),
    "asr.arm.calls": ("trigger",),
}
#: Every structured log record (``asrEvent``) and its attributes (none may be a ``logging.LogRecord`` attribute
#: such as ``name`` or ``message``: ``extra`` cannot overwrite those).
LOG_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    RUN_EVENT: ("asrEvent", "runId", "trigger", "outcome", "durationSeconds", "vms", "compliant", "drift",
                "unknown", "skipped", "planned", "applied", "failed", "reconciled", "deferred", "resourceGraphPages",
                "armCalls", "error"),
    FINDING_EVENT: ("asrEvent", "runId", "trigger", "vmId", "vmName", "side", "destination", "kind", "resourceId",
                    "ruleName", "fixable", "explanation"),
    WRITE_EVENT: ("asrEvent", "runId", "trigger", "resourceId", "action", "childName", "outcome", "detail"),
}

log = logging.getLogger(__name__)


@dataclass(eq=False)
class RequestCounts:
    """Requests one run sent through the SDK clients (each logical call once, whatever its retries)."""

    resource_graph_pages: int = 0
    arm_calls: int = 0


_COUNTS: ContextVar[RequestCounts | None] = ContextVar("asr_remediate_request_counts", default=None)
_ACTIVE: list[RequestCounts] = []  # the runs in progress in this process
_ACTIVE_LOCK = threading.Lock()


def _current() -> RequestCounts | None:
    """The run of this context; else (azure-core polls a long-running operation on a thread of its own, which does
    not inherit context variables) the only run in progress — with several at once such a request goes uncounted."""
    counts = _COUNTS.get()
    if counts is not None:
        return counts
    with _ACTIVE_LOCK:
        return _ACTIVE[0] if len(_ACTIVE) == 1 else None


def count_request(url: str) -> None:
    """Called by the SDK clients' retry policy once per call (whatever its retries): an ARM request other than
    Resource Graph's, whose pages :func:`count_page` counts."""
    counts = _current()
    if counts is not None and "/providers/microsoft.resourcegraph/" not in url.lower():
        with _ACTIVE_LOCK:
            counts.arm_calls += 1


def count_page() -> None:
    """One Resource Graph page read (the inventory's progress callback)."""
    counts = _current()
    if counts is not None:
        with _ACTIVE_LOCK:
            counts.resource_graph_pages += 1


@dataclass
class RunObservation:
    """What the caller hands back for one run: its result (left None when the run raised)."""

    trigger: str
    counts: RequestCounts = field(default_factory=RequestCounts)
    result: RunResult | None = None


class Telemetry:
    """Emits through ``meter_provider`` and ``logger``; without them (the default) it records nothing."""

    def __init__(self, meter_provider: MeterProvider | None = None, logger: logging.Logger | None = None, *,
                 flush_after_run: bool = False) -> None:
        self.enabled = meter_provider is not None and logger is not None
        self._logger = logger or logging.getLogger(LOGGER_NAME)
        # A Flex Consumption instance may be frozen or removed soon after an invocation: the distro's own periodic
        # export (every 60 s) could then lose a run's telemetry, so the process's providers are flushed per run.
        self._flush_after_run = flush_after_run
        if meter_provider is None:
            return
        meter = meter_provider.get_meter(METER_NAME)
        self._runs = meter.create_counter("asr.runs", "{run}", "runs by trigger and outcome")
        self._vms = meter.create_counter("asr.vms", "{vm}", "replicated VMs evaluated, by status")
        self._findings = meter.create_counter("asr.findings", "{finding}", "error findings by kind, side, destination")
        self._changes = meter.create_counter("asr.changes", "{change}", "changes planned, applied, failed, reconciled")
        self._duration = meter.create_histogram("asr.run.duration", "s", "run duration")
        self._pages = meter.create_counter("asr.resource_graph.pages", "{page}", "Resource Graph pages read")
        self._arm = meter.create_counter("asr.arm.calls", "{call}", "other ARM requests")

    @contextmanager
    def observe_run(self, trigger: str, clock: Any = time.monotonic) -> Iterator[RunObservation]:
        """Counts the run's requests and, when it ends, records it (a run that raised as ``failed``)."""
        observation = RunObservation(trigger)
        token = _COUNTS.set(observation.counts)
        with _ACTIVE_LOCK:
            _ACTIVE.append(observation.counts)
        started = clock()
        error = ""
        try:
            yield observation
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            _COUNTS.reset(token)
            with _ACTIVE_LOCK:
                _ACTIVE[:] = [c for c in _ACTIVE if c is not observation.counts]  # by identity, not equality
            if self.enabled:
                self._record(observation, clock() - started, error)
                if self._flush_after_run:
                    flush()

    # -- emission ------------------------------------------------------------------------------------------
    def _record(self, observation: RunObservation, duration: float, error: str) -> None:
        result = observation.result
        outcome = FAILED_RUN if error or result is None else COMPLETED
        trigger = observation.trigger
        base = {"trigger": trigger}
        self._runs.add(1, {**base, "outcome": outcome})
        self._duration.record(duration, {**base, "outcome": outcome})
        self._pages.add(observation.counts.resource_graph_pages, base)
        self._arm.add(observation.counts.arm_calls, base)
        summary: dict[str, Any] = {"asrEvent": RUN_EVENT, "runId": "", "trigger": trigger, "outcome": outcome,
                                   "durationSeconds": round(duration, 3),
                                   "resourceGraphPages": observation.counts.resource_graph_pages,
                                   "armCalls": observation.counts.arm_calls, "error": error}
        if result is not None:
            summary.update(self._record_result(result, trigger))
        self._logger.info("asr.run %s %s: %s", trigger, outcome, summary.get("runId") or "-", extra=summary)

    def _record_result(self, result: RunResult, trigger: str) -> dict[str, Any]:
        run_id = result.run_id or new_run_id()  # report-only runs write no audit records, so have no audit run id
        base = {"trigger": trigger}
        statuses = {"compliant": 0, "drift": 0, "unknown": 0, "skipped": 0}
        for report in result.plan.reports:
            statuses[report.status] = statuses.get(report.status, 0) + 1
            for finding in report.findings:
                if finding.severity != "error":
                    continue
                self._findings.add(1, {**base, "kind": finding.kind, "side": finding.side,
                                       "destination": finding.destination})
                self._logger.warning(
                    "asr.finding %s %s %s: %s", report.name, finding.side, finding.destination, finding.kind,
                    extra={"asrEvent": FINDING_EVENT, "runId": run_id, "trigger": trigger, "vmId": report.id,
                           "vmName": report.name, "side": finding.side, "destination": finding.destination,
                           "kind": finding.kind, "resourceId": finding.resource_id, "ruleName": finding.rule_name,
                           "fixable": finding.fixable, "explanation": finding.message[:1000]})
        for status, count in statuses.items():
            if count:
                self._vms.add(count, {**base, "status": status})
        changes: dict[str, int] = {PLANNED: len(result.plan.changes)}
        outcomes = result.applied.outcomes if result.applied else ()
        for outcome in outcomes:
            changes[outcome.result] = changes.get(outcome.result, 0) + 1
            self._write(run_id, trigger, outcome.change.resource_id, outcome.change.action, outcome.change.name,
                        outcome.result, outcome.detail)
        for outcome in result.reconciled:
            changes[RECONCILED] = changes.get(RECONCILED, 0) + 1
            self._write(run_id, trigger, outcome.change.resource_id, outcome.change.action, outcome.change.name,
                        f"{RECONCILED}:{outcome.result}", outcome.detail)
        for name, count in changes.items():
            if count:
                self._changes.add(count, {**base, "outcome": name})
        return {"runId": run_id, "vms": len(result.plan.reports), **statuses, "planned": changes[PLANNED],
                "applied": changes.get("applied", 0), "failed": changes.get("failed", 0),
                "reconciled": changes.get(RECONCILED, 0), "deferred": changes.get("deferred", 0)}

    def _write(self, run_id: str, trigger: str, resource_id: str, action: str, name: str, outcome: str,
               detail: str) -> None:
        level = logging.ERROR if outcome.endswith("failed") else logging.INFO
        self._logger.log(level, "asr.write %s %s on %s: %s", action, name, resource_id, outcome,
                         extra={"asrEvent": WRITE_EVENT, "runId": run_id, "trigger": trigger, "resourceId": resource_id,
                                "action": action, "childName": name, "outcome": outcome, "detail": detail[:1000]})


DISABLED = Telemetry()
_configured: Telemetry | None = None


def from_environment(env: Mapping[str, str] | None = None) -> Telemetry:
    """The process's telemetry: :data:`DISABLED` without ``APPLICATIONINSIGHTS_CONNECTION_STRING``, else the
    Azure Monitor distro's providers (configured once). A distro that cannot start (a malformed connection string)
    is logged and telemetry stays off: monitoring must never stop a scan."""
    global _configured
    env = os.environ if env is None else env
    connection = env.get(CONNECTION_SETTING, "").strip()
    if not connection:
        return DISABLED
    if _configured is not None:
        return _configured
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider

    if not isinstance(metrics.get_meter_provider(), SdkMeterProvider):  # else the Functions worker configured it
        try:
            from azure.monitor.opentelemetry import configure_azure_monitor

            configure_azure_monitor(connection_string=connection)
        except Exception as error:  # any failure of the exporter's set-up leaves telemetry off
            log.warning("telemetry is off: Azure Monitor could not be configured (%s)", type(error).__name__)
            return DISABLED
    _configured = Telemetry(metrics.get_meter_provider(), logging.getLogger(LOGGER_NAME), flush_after_run=True)
    return _configured


def flush() -> None:
    """Export what the process's providers buffer (after each run of the configured telemetry)."""
    from opentelemetry import _logs, metrics

    for provider in (metrics.get_meter_provider(), _logs.get_logger_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if callable(force_flush):
            force_flush()
