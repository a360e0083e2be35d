"""Azure Functions entry point (Python v2 programming model): triggers only, wired to asr_remediate.triggers.

- timer        scan on %ASR_SCAN_SCHEDULE% (fans out per-subscription batches on a queue for large estates)
- queue        one fan-out batch from %ASR_FANOUT_QUEUE%
- Event Grid   on_resource_event: NSG / rule / route table / route / VNet / subnet / NIC / protected item changes
- HTTP         GET|POST /api/dry-run and /api/preflight (function key), never write
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from asr_remediate import triggers

app = func.FunctionApp()
log = logging.getLogger("asr_remediate")


@app.timer_trigger(schedule="%ASR_SCAN_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def scheduled_scan(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("timer is past due; scanning now")
    log.info("scheduled scan: %s", json.dumps(triggers.on_timer()))


@app.queue_trigger(arg_name="message", queue_name="%ASR_FANOUT_QUEUE%", connection="AzureWebJobsStorage")
def scan_batch(message: func.QueueMessage) -> None:
    log.info("batch scan: %s", json.dumps(triggers.on_queue(message.get_body())))


@app.event_grid_trigger(arg_name="event")
def on_resource_event(event: func.EventGridEvent) -> None:
    payload = {
        "id": event.id,
        "eventType": event.event_type,
        "subject": event.subject,
        "topic": event.topic,
        "eventTime": event.event_time.isoformat() if event.event_time else "",
        "dataVersion": event.data_version,
        "data": event.get_json(),
    }
    log.info("resource event %s: %s", event.id, json.dumps(triggers.on_event(payload)))


def _respond(answer: triggers.HttpAnswer) -> func.HttpResponse:
    return func.HttpResponse(answer.body, status_code=answer.status, mimetype=answer.content_type.split(";")[0],
                             charset="utf-8")


@app.route(route="dry-run", methods=["GET", "POST"], auth_level=func.AuthLevel.FUNCTION)
def dry_run(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(triggers.dry_run(req.method, dict(req.params), req.get_body()))


@app.route(route="preflight", methods=["GET", "POST"], auth_level=func.AuthLevel.FUNCTION)
def preflight(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(triggers.preflight(req.method, dict(req.params), req.get_body()))
