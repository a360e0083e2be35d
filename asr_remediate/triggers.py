"""What each Function App trigger does, in plain Python (function_app.py only adapts the Functions types).

Kept apart from function_app.py so the handlers take and return plain data: the HTTP dry run returns
(status, body, content type), the others return a summary dict that is also logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .audit import new_run_id
from .azure.retry import RETRY_BUDGET
from .config import Settings, SettingsError, load_settings
from .drift import DRIFT
from .engine import PreflightError, PreflightNames, check_preflight, check_region, preflight_item
from .errors import AZURE_FAILURES, one_line
from .estate import EstateError, build_estate, with_reads
from .events import EventError, event_document, parse_event
from .fanout import (
    RECHECK_DELAYS,
    EventRecheck,
    batch_subscriptions,
    decode_message,
    enqueue_batches,
    send_recheck,
)
from .html_report import render_html
from .jsonfile import parse_json
from .model import subscription_of
from .plan_formats import CONTENT_TYPES as PLAN_CONTENT_TYPES
from .plan_formats import PLAN_RENDERERS
from .report import render_json, render_markdown
from .runtime import RunResult, Runtime, RuntimeConfigError, Scope
from .service import APPLIED, DEFERRED, FAILED, Deadline
from .servicetags import ServiceTagsError

log = logging.getLogger("asr_remediate")

SUBSCRIPTION_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
NAME = re.compile(r"^[A-Za-z0-9_.()/-]{1,400}$")
RUN_FAILURES: tuple[type[Exception], ...] = (*AZURE_FAILURES, RuntimeConfigError)
# Queueing a re-check can fail (no queue configured, storage refused): the event's own handling stands.
RECHECK_FAILURES: tuple[type[Exception], ...] = (*AZURE_FAILURES, RuntimeConfigError, ValueError)


def default_runtime(settings: Settings) -> Runtime:
    return Runtime(settings, progress=lambda message: log.info("%s", message))


# Tests replace this to point the triggers at the local ARM emulator with a fake credential.
runtime_factory: Callable[[Settings], Runtime] = default_runtime

#: host.json's functionTimeout: the host kills an invocation still running then (a kill mid-write leaves an intent
#: without its outcome, for a later reconciliation).
FUNCTION_TIMEOUT_SECONDS = 600
#: Writes start only this long after the invocation began: the rest of the timeout leaves one write (its PUT, its
#: retries within azure.retry.RETRY_BUDGET, its polling — seconds, normally) and the audit records time to finish.
#: Later changes are deferred to the next run, and the summary says how many. A write that meets the worst case of
#: every budget at once can still be cut off; reconciliation then records what it did.
RUN_TIME_LIMIT_SECONDS = FUNCTION_TIMEOUT_SECONDS - RETRY_BUDGET - 60


def timed_runtime(settings: Settings, clock: Callable[[], float] = time.monotonic) -> Runtime:
    """A runtime for one timer / queue / Event Grid invocation, with its deadline for starting writes."""
    runtime = runtime_factory(settings)
    runtime.deadline = Deadline.after(RUN_TIME_LIMIT_SECONDS, clock)
    return runtime


def actor() -> str:
    """Who the audit says acted: the Function App's user-assigned identity when deployed."""
    return os.environ.get("AZURE_CLIENT_ID") or os.environ.get("WEBSITE_SITE_NAME") or "function-app"


def summarize(result: RunResult) -> dict[str, Any]:
    applied = result.applied
    return {
        "runId": result.run_id,
        "vms": len(result.plan.reports),
        "drift": sum(1 for r in result.plan.reports if r.status == DRIFT),
        # ASR's own verdict (health.py): VMs with a connectivity error the engine confirms / cannot explain, and
        # VMs with drift ASR has not reported yet.
        "asrConfirmed": sum(1 for r in result.plan.reports if r.asr_health and r.asr_health.confirmed),
        "asrUnexplained": sum(1 for r in result.plan.reports if r.asr_health and r.asr_health.unexplained),
        "asrNotYetReported": sum(1 for r in result.plan.reports if r.asr_health and r.asr_health.not_yet_reported),
        "plannedChanges": len(result.plan.changes),
        "applied": applied.count(APPLIED) if applied else 0,
        "failed": applied.count(FAILED) if applied else 0,
        "deferred": applied.count(DEFERRED) if applied else 0,
        "note": result.note,
    }


# -- timer and queue ---------------------------------------------------------------------------------------------
def queue_client(settings: Settings) -> Any:
    """The fan-out queue on the Functions storage account: connection string locally, managed identity deployed."""
    from .fanout import queue_client_from_connection_string, queue_client_from_endpoint

    connection = os.environ.get("AzureWebJobsStorage", "")
    if connection:
        return queue_client_from_connection_string(connection, settings.fanout_queue)
    endpoint = os.environ.get("AzureWebJobsStorage__queueServiceUri", "")
    if not endpoint:
        raise RuntimeConfigError("set AzureWebJobsStorage or AzureWebJobsStorage__queueServiceUri (fan-out queue)")
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential(managed_identity_client_id=os.environ.get("AzureWebJobsStorage__clientId"))
    return queue_client_from_endpoint(endpoint, settings.fanout_queue, credential)


def on_timer() -> dict[str, Any]:
    """Scan every subscription in scope: inline when it fits one batch, otherwise one queue message per batch."""
    settings = load_settings()
    if not settings.subscriptions:
        raise RuntimeConfigError("ASR_SUBSCRIPTIONS is empty: nothing to scan")
    batches = batch_subscriptions(settings.subscriptions, settings.fanout_batch_size)
    if len(batches) == 1:
        result = timed_runtime(settings).run(Scope(tuple(batches[0])), trigger="timer", actor=actor())
        return summarize(result)
    run_id = new_run_id()
    sent = enqueue_batches(queue_client(settings), run_id, settings.subscriptions, settings.fanout_batch_size)
    return {"runId": run_id, "enqueuedBatches": len(sent), "subscriptions": len(settings.subscriptions)}


def on_queue(message: str | bytes) -> dict[str, Any]:
    """One fan-out batch: scan (and fix, if allowed) its subscriptions under the batch's own audit run id. Or a
    delayed re-check of an event that arrived before Resource Graph had caught up with ARM."""
    batch = decode_message(message)
    if isinstance(batch, EventRecheck):
        return on_event(batch.event, attempt=batch.attempt)
    settings = load_settings()
    scope = Scope(batch.subscriptions, by_vm_subscription=True)
    result = timed_runtime(settings).run(scope, trigger="queue", actor=actor(), run_id=batch.audit_run_id)
    return summarize(result)


# -- Event Grid --------------------------------------------------------------------------------------------------
def on_event(event: Mapping[str, Any], *, attempt: int = 0) -> dict[str, Any]:
    """A resource write/delete: re-read it, evaluate only the VMs whose path includes it, fix if allowed.

    A malformed event (a bad resource id included) is logged and dropped: retrying it cannot help. Azure failures
    raise so Event Grid retries the delivery — safe, because handling is idempotent. When Resource Graph had not
    caught up with ARM for the named resource, the event is handled now with ARM's copy *and* queued again for a
    re-check (``attempt`` counts them; fanout.RECHECK_DELAYS), because the rest of its path may lag too.
    """
    settings = load_settings()
    try:
        result = timed_runtime(settings).handle_event(event, actor=actor())
    except EventError as error:
        log.warning("dropped event %s: %s", one_line(str(event.get("id", "?")) if isinstance(event, Mapping) else "?",
                                                      100), error)
        return {"ignored": one_line(error)}
    summary = summarize(result)
    if result.recheck:
        summary["recheck"] = _schedule_recheck(settings, event, attempt + 1, result.recheck)
    return summary


def _schedule_recheck(settings: Settings, event: Mapping[str, Any], attempt: int, reason: str) -> str:
    if attempt > len(RECHECK_DELAYS):
        return f"not re-checked again after {attempt - 1} re-checks ({reason}): the next timer scan covers it"
    recheck = EventRecheck(event_document(parse_event(event)), attempt, reason)
    try:
        delay = send_recheck(queue_client(settings), recheck)
    except RECHECK_FAILURES as error:
        log.warning("could not queue a re-check of event %s: %s", recheck.event.get("id", "?"), one_line(error))
        return f"not re-checked ({one_line(error, 200)}): the next timer scan covers it"
    log.info("event %s: %s; re-check %d in %d s", recheck.event.get("id", "?"), reason, attempt, delay)
    return f"re-check {attempt} of {len(RECHECK_DELAYS)} in {delay} s: {reason}"


# -- HTTP --------------------------------------------------------------------------------------------------------
class BadRequest(ValueError):
    """A caller mistake in the HTTP request: 400 with this message."""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: str
    content_type: str


def _json_answer(status: int, payload: Any) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(payload, indent=2), "application/json")


def _error(status: int, message: str | BaseException) -> HttpAnswer:
    """``{"error": …}`` in one bounded line: a 100 KB parameter is never echoed back."""
    return _json_answer(status, {"error": one_line(message)})


def _misconfigured(error: SettingsError) -> HttpAnswer:
    """A bad app setting is the server's fault, not the caller's: 500, naming the setting."""
    log.error("misconfigured: %s", one_line(error))
    return _error(500, f"server misconfiguration: {one_line(error)}")


# Reading the estate can fail on Azure's side (502), or on data that cannot be read at all: a Resource Graph answer
# that is not a list of resources with ids (502), Service Tags data that cannot be parsed (500: the API's answer
# or the ASR_SERVICE_TAGS_FILE fallback). Never the caller's fault, never a traceback.
READ_FAILURES: tuple[type[Exception], ...] = (*RUN_FAILURES, EstateError, ServiceTagsError)


def _read_failure(what: str, error: Exception) -> HttpAnswer:
    log.warning("%s failed: %s", what, one_line(error))
    if isinstance(error, ServiceTagsError):
        return _error(500, f"cannot read the Service Tags data: {one_line(error)}")
    if isinstance(error, RuntimeConfigError):  # the app's setup (settings, storage), not Azure's answer
        return _error(500, f"server misconfiguration: {one_line(error)}")
    if isinstance(error, EstateError):
        return _error(502, f"Azure returned resources that cannot be read: {one_line(error)}")
    return _error(502, f"Azure request failed: {one_line(error)}")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 100 else value[:99] + "…")


def _values(params: Mapping[str, str], body: Mapping[str, Any], query_name: str, body_name: str) -> list[str]:
    raw: list[str] = []
    if params.get(query_name):
        raw += params[query_name].split(",")
    value = body.get(body_name, body.get(query_name))
    if isinstance(value, str):
        raw += value.split(",")
    elif isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise BadRequest(f"{body_name} must be a list of strings")
        raw += value
    elif value is not None:
        raise BadRequest(f"{body_name} must be a string or a list of strings")
    return [v.strip() for v in raw if v.strip()]


def _text(params: Mapping[str, str], body: Mapping[str, Any], name: str) -> str:
    """One string parameter, from the query or the JSON body (where it must be a string)."""
    if params.get(name):
        return params[name].strip()
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value.strip()


def _body(raw: bytes | None) -> Mapping[str, Any]:
    if not raw or not raw.strip():
        return {}
    body = parse_json(raw, "request body", BadRequest)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


HTTP_FORMATS = ("json", "markdown", *PLAN_RENDERERS, "html")


def _format(params: Mapping[str, str], body: Mapping[str, Any]) -> str:
    fmt = (_text(params, body, "format") or "json").lower()
    if fmt not in HTTP_FORMATS:
        raise BadRequest(f"format must be one of {', '.join(HTTP_FORMATS)}, not {_shown(fmt)}")
    return fmt


def _in_scope(subscriptions: Iterable[str], settings: Settings) -> None:
    allowed = {s.lower() for s in settings.subscriptions}
    if allowed and any(s.lower() not in allowed for s in subscriptions):
        raise BadRequest("subscription is outside ASR_SUBSCRIPTIONS")


def _scope(params: Mapping[str, str], body: Mapping[str, Any], settings: Settings) -> Scope:
    subscriptions = _values(params, body, "subscription", "subscriptions") or list(settings.subscriptions)
    if not subscriptions:
        raise BadRequest("give subscription=<id> (or set ASR_SUBSCRIPTIONS on the app)")
    for sub in subscriptions:
        if not SUBSCRIPTION_ID.match(sub):
            raise BadRequest(f"not a subscription id: {_shown(sub)}")
    _in_scope(subscriptions, settings)
    groups = _values(params, body, "resourceGroup", "resourceGroups")
    vms = _values(params, body, "vm", "vms")
    for value in (*groups, *vms):
        if not NAME.match(value):
            raise BadRequest(f"not a resource group, VM name or id: {_shown(value)}")
    return Scope(tuple(subscriptions), tuple(groups), tuple(vms))


def _render(fmt: str, plan_reports: Any, changes: Any) -> HttpAnswer:
    if fmt in PLAN_RENDERERS:
        return HttpAnswer(200, PLAN_RENDERERS[fmt](plan_reports, changes), PLAN_CONTENT_TYPES[fmt])
    if fmt == "html":
        return HttpAnswer(200, render_html(plan_reports, changes), "text/html; charset=utf-8")
    if fmt == "markdown":
        return HttpAnswer(200, render_markdown(plan_reports, changes), "text/markdown; charset=utf-8")
    return HttpAnswer(200, render_json(plan_reports, changes), "application/json")


def dry_run(method: str, params: Mapping[str, str], raw_body: bytes | None) -> HttpAnswer:
    """GET/POST /api/dry-run: the report and plan for a scope. Never writes, whatever ASR_APPLY says."""
    try:
        settings = load_settings()
    except SettingsError as error:
        return _misconfigured(error)
    try:
        body = _body(raw_body) if method.upper() == "POST" else {}
        fmt = _format(params, body)
        scope = _scope(params, body, settings)
    except BadRequest as error:
        return _error(400, error)
    try:
        result = runtime_factory(settings).run(scope, trigger="http", actor=actor(), apply=False)
    except READ_FAILURES as error:
        return _read_failure("dry run", error)
    return _render(fmt, result.plan.reports, result.plan.changes)


# What check_preflight calls the arguments, as this endpoint's parameters are named.
HTTP_PREFLIGHT_NAMES = PreflightNames("vm", "targetRegion", "recoveryVnet", "recoverySubnet")


def preflight(method: str, params: Mapping[str, str], raw_body: bytes | None) -> HttpAnswer:
    """GET/POST /api/preflight: would ASR replication of a not-yet-replicated VM to targetRegion get out?

    The arguments are checked as the CLI checks them (``engine.check_preflight``) and, like the dry run's, must lie
    in ASR_SUBSCRIPTIONS when that is set — before anything is read.
    """
    try:
        settings = load_settings()
    except SettingsError as error:
        return _misconfigured(error)
    try:
        body = _body(raw_body) if method.upper() == "POST" else {}
        fmt = _format(params, body)
        vm_id = _text(params, body, "vm")
        target = _text(params, body, "targetRegion").lower()
        recovery_vnet = _text(params, body, "recoveryVnet")
        recovery_subnet = _text(params, body, "recoverySubnet")
        subscriptions = check_preflight(vm_id, target, recovery_vnet, recovery_subnet, names=HTTP_PREFLIGHT_NAMES)
        _in_scope(subscriptions, settings)
    except (BadRequest, PreflightError) as error:
        return _error(400, error)
    runtime = runtime_factory(settings)
    try:
        raw = runtime.collect(Scope(subscriptions), admin_rules=False)
        estate = build_estate(raw)
        try:
            item = preflight_item(estate, vm_id, target, recovery_vnet, recovery_subnet)
        except ValueError as error:  # the VM is not in the inventory
            return _error(404, error)
        # The VM is not replicated yet: its VNets' security admin rules are read for it, not the estate's.
        estate = with_reads(estate, runtime.admin_rules(estate, [item]))
        tags = runtime.service_tags(subscription_of(vm_id))
    except READ_FAILURES as error:
        return _read_failure("preflight", error)
    try:
        check_region(tags, target, names=HTTP_PREFLIGHT_NAMES)
    except PreflightError as error:
        return _error(400, error)
    plan = runtime.evaluate(estate, tags, [item])
    return _render(fmt, plan.reports, plan.changes)
