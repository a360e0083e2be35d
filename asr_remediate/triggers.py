"""What each Function App trigger does, in plain Python (function_app.py only adapts the Functions types).

Kept apart from function_app.py so the handlers take and return plain data: the HTTP dry run returns
(status, body, content type), the others return a summary dict that is also logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .audit import new_run_id
from .config import Settings, SettingsError, load_settings
from .drift import DRIFT
from .engine import preflight_item
from .errors import AZURE_FAILURES, one_line
from .estate import build_estate
from .events import EventError, event_document, parse_event
from .fanout import (
    RECHECK_DELAYS,
    EventRecheck,
    batch_subscriptions,
    decode_message,
    enqueue_batches,
    send_recheck,
)
from .report import render_json, render_markdown
from .runtime import RunResult, Runtime, RuntimeConfigError, Scope
from .service import APPLIED, FAILED

log = logging.getLogger("asr_remediate")

SUBSCRIPTION_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
NAME = re.compile(r"^[A-Za-z0-9_.()/-]{1,400}$")
REGION = re.compile(r"^[a-z0-9]{2,40}$")
RUN_FAILURES: tuple[type[Exception], ...] = (*AZURE_FAILURES, RuntimeConfigError)
# Queueing a re-check can fail (no queue configured, storage refused): the event's own handling stands.
RECHECK_FAILURES: tuple[type[Exception], ...] = (*AZURE_FAILURES, RuntimeConfigError, ValueError)


def default_runtime(settings: Settings) -> Runtime:
    return Runtime(settings, progress=lambda message: log.info("%s", message))


# Tests replace this to point the triggers at the local ARM emulator with a fake credential.
runtime_factory: Callable[[Settings], Runtime] = default_runtime


def actor() -> str:
    """Who the audit says acted: the Function App's user-assigned identity when deployed."""
    return os.environ.get("AZURE_CLIENT_ID") or os.environ.get("WEBSITE_SITE_NAME") or "function-app"


def summarize(result: RunResult) -> dict[str, Any]:
    applied = result.applied
    return {
        "runId": result.run_id,
        "vms": len(result.plan.reports),
        "drift": sum(1 for r in result.plan.reports if r.status == DRIFT),
        "plannedChanges": len(result.plan.changes),
        "applied": applied.count(APPLIED) if applied else 0,
        "failed": applied.count(FAILED) if applied else 0,
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
        result = runtime_factory(settings).run(Scope(tuple(batches[0])), trigger="timer", actor=actor())
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
    result = runtime_factory(settings).run(scope, trigger="queue", actor=actor(), run_id=batch.audit_run_id)
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
        result = runtime_factory(settings).handle_event(event, actor=actor())
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


def _error(status: int, message: str) -> HttpAnswer:
    return _json_answer(status, {"error": message})


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


def _body(raw: bytes | None) -> Mapping[str, Any]:
    if not raw or not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(f"request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _format(params: Mapping[str, str], body: Mapping[str, Any]) -> str:
    fmt = str(params.get("format") or body.get("format") or "json").lower()
    if fmt not in ("json", "markdown"):
        raise BadRequest(f"format must be json or markdown, not {fmt!r}")
    return fmt


def _scope(params: Mapping[str, str], body: Mapping[str, Any], settings: Settings) -> Scope:
    subscriptions = _values(params, body, "subscription", "subscriptions") or list(settings.subscriptions)
    if not subscriptions:
        raise BadRequest("give subscription=<id> (or set ASR_SUBSCRIPTIONS on the app)")
    for sub in subscriptions:
        if not SUBSCRIPTION_ID.match(sub):
            raise BadRequest(f"not a subscription id: {sub!r}")
    allowed = {s.lower() for s in settings.subscriptions}
    if allowed and any(s.lower() not in allowed for s in subscriptions):
        raise BadRequest("subscription is outside ASR_SUBSCRIPTIONS")
    groups = _values(params, body, "resourceGroup", "resourceGroups")
    vms = _values(params, body, "vm", "vms")
    for value in (*groups, *vms):
        if not NAME.match(value):
            raise BadRequest(f"not a resource group, VM name or id: {value!r}")
    return Scope(tuple(subscriptions), tuple(groups), tuple(vms))


def _render(fmt: str, plan_reports: Any, changes: Any) -> HttpAnswer:
    if fmt == "markdown":
        return HttpAnswer(200, render_markdown(plan_reports, changes), "text/markdown; charset=utf-8")
    return HttpAnswer(200, render_json(plan_reports, changes), "application/json")


def dry_run(method: str, params: Mapping[str, str], raw_body: bytes | None) -> HttpAnswer:
    """GET/POST /api/dry-run: the report and plan for a scope. Never writes, whatever ASR_APPLY says."""
    try:
        settings = load_settings()
        body = _body(raw_body) if method.upper() == "POST" else {}
        fmt = _format(params, body)
        scope = _scope(params, body, settings)
    except (BadRequest, SettingsError) as error:
        return _error(400, str(error))
    try:
        result = runtime_factory(settings).run(scope, trigger="http", actor=actor(), apply=False)
    except RUN_FAILURES as error:
        log.warning("dry run failed: %s", error)
        return _error(502, f"Azure request failed: {one_line(error)}")
    return _render(fmt, result.plan.reports, result.plan.changes)


def preflight(method: str, params: Mapping[str, str], raw_body: bytes | None) -> HttpAnswer:
    """GET/POST /api/preflight: would ASR replication of a not-yet-replicated VM to targetRegion get out?"""
    try:
        settings = load_settings()
        body = _body(raw_body) if method.upper() == "POST" else {}
        fmt = _format(params, body)
        vm_id = str(params.get("vm") or body.get("vm") or "").strip()
        target = str(params.get("targetRegion") or body.get("targetRegion") or "").strip().lower()
        recovery_vnet = str(params.get("recoveryVnet") or body.get("recoveryVnet") or "").strip()
        recovery_subnet = str(params.get("recoverySubnet") or body.get("recoverySubnet") or "").strip()
        if not vm_id.lower().startswith("/subscriptions/") or "/virtualmachines/" not in vm_id.lower():
            raise BadRequest("vm must be a VM resource id (/subscriptions/…/virtualMachines/NAME)")
        if not REGION.match(target):
            raise BadRequest("targetRegion must be an Azure region name such as centralus")
        if bool(recovery_vnet) != bool(recovery_subnet):
            raise BadRequest("give recoveryVnet and recoverySubnet together (or neither)")
        subscriptions = [vm_id.split("/")[2]] + ([recovery_vnet.split("/")[2]] if recovery_vnet else [])
        for sub in subscriptions:
            if not SUBSCRIPTION_ID.match(sub):
                raise BadRequest(f"not a subscription id: {sub!r}")
    except (BadRequest, SettingsError) as error:
        return _error(400, str(error))
    runtime = runtime_factory(settings)
    try:
        estate = build_estate(runtime.collect(Scope(tuple(sorted(set(subscriptions))))))
        try:
            item = preflight_item(estate, vm_id, target, recovery_vnet, recovery_subnet)
        except ValueError as error:
            return _error(404, str(error))
        tags = runtime.service_tags(subscriptions[0])
    except RUN_FAILURES as error:
        log.warning("preflight failed: %s", error)
        return _error(502, f"Azure request failed: {one_line(error)}")
    plan = runtime.evaluate(estate, tags, [item])
    return _render(fmt, plan.reports, plan.changes)
