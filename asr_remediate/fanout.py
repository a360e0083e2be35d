"""Storage-queue fan-out: the timer splits a large estate into subscription batches, one queue message each.

Why: one Function invocation has a time limit (5-10 min on Consumption) and Resource Graph throttles per caller;
batches let the queue trigger scan subscriptions in parallel invocations, each retried on its own by the host
(and moved to the poison queue after maxDequeueCount failures) instead of one failure stopping the whole estate.

Message (JSON, UTF-8)::

    {"runId": "20261125T163000Z-1a2b3c", "subscriptions": ["<id>", ...], "trigger": "timer",
     "enqueuedAt": "2026-11-25T16:30:00.000000Z", "batch": 0, "batchCount": 3}

``batch``/``batchCount`` say which slice of the run this is. Batches of one run are processed concurrently, so each
batch audits under its own run id (``ScanBatch.audit_run_id`` = ``<runId>.b0000``): the audit sink keys records by
run id + sequence, and two workers counting sequences from 0 under one run id would collide.

Encoding: the Functions queue trigger decodes message text as base64 by default (host.json
``extensions.queues.messageEncoding`` = ``base64``). A plain-text message fails that decode and, after retries,
lands in the poison queue without ever running. So the queue client must send with ``TextBase64EncodePolicy``;
``queue_client_from_connection_string`` / ``queue_client_from_endpoint`` build such a client.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from asr_remediate.audit import TRIGGERS, format_timestamp, validate_run_id

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.queue import QueueClient

MESSAGE_FIELDS = ("runId", "subscriptions", "trigger", "enqueuedAt", "batch", "batchCount")
# A queue message holds at most 64 KiB; base64 makes 3 bytes of JSON into 4 characters.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_JSON_BYTES = MAX_MESSAGE_BYTES // 4 * 3
DEFAULT_BATCH_SIZE = 50

#: Memory of one Flex Consumption instance at the default size ("instance memory ... 2,048 MB" is the default of
#: 512 / 2,048 / 4,096 MB, learn.microsoft.com/azure/azure-functions/flex-consumption-plan#instance-memory).
FLEX_INSTANCE_MB = 2048
#: Share of the instance one queue batch may use: the host, the worker's other allocations and fragmentation need
#: the rest.
MEMORY_MARGIN = 0.75
#: The scan's fixed cost (interpreter, SDKs, parsed Service Tags) and its cost per replicated VM. The benchmark
#: measures the live client's peak RSS per VM (``make bench``: 10,000 VMs, ~46 kB per VM incl. the fixed part) and
#: fails when it exceeds MB_PER_VM, so this sizing cannot silently go stale.
BASE_MB = 150
MB_PER_VM = 0.06


def max_vms_per_batch(instance_mb: int = FLEX_INSTANCE_MB, *, margin: float = MEMORY_MARGIN,
                      base_mb: float = BASE_MB, per_vm_mb: float = MB_PER_VM) -> int:
    """The most replicated VMs one queue batch should hold to stay within ``margin`` of an instance's memory.

    Batches are cut by subscriptions (``ASR_FANOUT_BATCH_SIZE``), so an operator sets that to about this figure
    divided by the replicated VMs of their largest subscriptions.

    >>> max_vms_per_batch()
    23100
    >>> max_vms_per_batch(512)  # the smallest instance size
    3900
    """
    budget = instance_mb * margin - base_mb
    if budget <= 0:
        return 0
    return int(budget / per_vm_mb + 1e-9)


@dataclass(frozen=True)
class ScanBatch:
    """One decoded fan-out message: the subscriptions one queue-triggered invocation scans."""

    run_id: str
    subscriptions: tuple[str, ...]
    trigger: str = "timer"
    enqueued_at: str = ""
    batch: int = 0
    batch_count: int = 1

    @property
    def audit_run_id(self) -> str:
        """Run id for this batch's audit records: unique per batch, sorts right after the parent run."""
        return f"{self.run_id}.b{self.batch:04d}"


def batch_subscriptions(subscriptions: Iterable[str], batch_size: int) -> list[list[str]]:
    """Split subscriptions into batches of at most ``batch_size``, first-seen order, duplicates dropped
    (case-insensitively: ARM ids are), blanks ignored. No subscriptions: no batches."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be a positive whole number, not {batch_size!r}")
    if isinstance(subscriptions, str):
        raise ValueError("subscriptions must be a list of ids, not one string")
    seen: set[str] = set()
    unique: list[str] = []
    for raw in subscriptions:
        sub = raw.strip()
        if sub and sub.lower() not in seen:
            seen.add(sub.lower())
            unique.append(sub)
    return [unique[i : i + batch_size] for i in range(0, len(unique), batch_size)]


def encode_batch(batch: ScanBatch) -> str:
    """The message text (JSON) for one batch. Raises ``ValueError`` if it would not fit in a queue message."""
    _validate(batch)
    text = json.dumps(
        {
            "runId": batch.run_id,
            "subscriptions": list(batch.subscriptions),
            "trigger": batch.trigger,
            "enqueuedAt": batch.enqueued_at,
            "batch": batch.batch,
            "batchCount": batch.batch_count,
        },
        separators=(",", ":"),
    )
    if len(text.encode("utf-8")) > MAX_JSON_BYTES:
        raise ValueError(
            f"fan-out message for {len(batch.subscriptions)} subscriptions is {len(text)} bytes, over the "
            f"{MAX_JSON_BYTES}-byte limit of a base64 queue message; use a smaller batch size"
        )
    return text


def decode_batch(message: str | bytes) -> ScanBatch:
    """Parse a fan-out message as the queue trigger hands it over (already base64-decoded by the host).

    Base64 text is accepted too (a message peeked with a plain client). Anything else is a ``ValueError`` saying
    what is wrong, so the invocation fails loudly and the host moves the message to the poison queue.
    """
    return _batch_from(_message_json(message))


def decode_message(message: str | bytes) -> ScanBatch | EventRecheck:
    """A message of the fan-out queue: a scan batch, or (``"kind": "event-recheck"``) a delayed event re-check."""
    data = _message_json(message)
    if data.get("kind") == EVENT_RECHECK:
        return _recheck_from(data)
    return _batch_from(data)


def _message_json(message: str | bytes) -> dict[str, Any]:
    if isinstance(message, bytes | bytearray):
        try:
            text = bytes(message).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("fan-out message is not UTF-8 text") from None
    elif isinstance(message, str):
        text = message
    else:
        raise ValueError(f"fan-out message must be text, not {type(message).__name__}")
    text = text.strip()
    if not text:
        raise ValueError("fan-out message is empty")
    if not text.startswith("{"):
        text = _from_base64(text)
    if len(text) > MAX_MESSAGE_BYTES:
        raise ValueError(f"fan-out message is {len(text)} characters, over a queue message's {MAX_MESSAGE_BYTES}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"fan-out message is not JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise ValueError("fan-out message is nested too deeply to be a message of this app") from None
    if not isinstance(data, dict):
        raise ValueError(f"fan-out message must be a JSON object, not {type(data).__name__}")
    return data


def _batch_from(data: dict[str, Any]) -> ScanBatch:
    missing = [k for k in ("runId", "subscriptions") if k not in data]
    if missing:
        raise ValueError(f"fan-out message lacks {', '.join(missing)}")
    subscriptions = data["subscriptions"]
    if not isinstance(subscriptions, list) or not all(isinstance(s, str) for s in subscriptions):
        raise ValueError("fan-out message 'subscriptions' must be a list of subscription ids")
    batch = ScanBatch(
        run_id=_typed(data, "runId", str, ""),
        subscriptions=tuple(subscriptions),
        trigger=_typed(data, "trigger", str, "timer"),
        enqueued_at=_typed(data, "enqueuedAt", str, ""),
        batch=_typed(data, "batch", int, 0),
        batch_count=_typed(data, "batchCount", int, 1),
    )
    _validate(batch)
    return batch


def _from_base64(text: str) -> str:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ValueError("fan-out message is neither JSON nor base64-encoded JSON") from None


def _typed(data: dict[str, Any], key: str, kind: type[Any], default: Any) -> Any:
    value = data.get(key, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"fan-out message '{key}' must be {'a number' if kind is int else 'text'}, not {value!r}")
    return value


def _validate(batch: ScanBatch) -> None:
    try:
        validate_run_id(batch.run_id)
    except ValueError as exc:
        raise ValueError(f"fan-out message: {exc}") from None
    if not batch.subscriptions:
        raise ValueError("fan-out message has no subscriptions")
    if any(not s.strip() for s in batch.subscriptions):
        raise ValueError("fan-out message has a blank subscription id")
    if batch.trigger not in TRIGGERS:
        raise ValueError(f"fan-out message trigger must be one of {', '.join(TRIGGERS)}, not {batch.trigger!r}")
    if batch.enqueued_at:
        try:
            moment = datetime.fromisoformat(batch.enqueued_at)
        except ValueError:
            raise ValueError(f"fan-out message enqueuedAt is not an ISO 8601 time: {batch.enqueued_at!r}") from None
        if moment.tzinfo is None:
            raise ValueError(f"fan-out message enqueuedAt must carry a time zone (UTC): {batch.enqueued_at!r}")
    if batch.batch_count < 1 or not 0 <= batch.batch < batch.batch_count:
        raise ValueError(f"fan-out message batch {batch.batch} of {batch.batch_count} is out of range")


def queue_client_from_connection_string(connection_string: str, queue: str) -> QueueClient:
    """Local / Azurite client that encodes (and decodes) message text as base64, as the Functions host expects."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    return QueueClient.from_connection_string(
        connection_string,
        queue,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


def queue_client_from_endpoint(account_url: str, queue: str, credential: TokenCredential) -> QueueClient:
    """Deployed client (``https://<account>.queue.core.windows.net``, managed identity; the identity needs
    'Storage Queue Data Message Sender'), encoding message text as base64."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    return QueueClient(
        account_url,
        queue,
        credential=credential,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


def _check_base64_client(queue_client: QueueClient) -> None:
    """Refuse a client that would send plain text: the queue trigger would poison every message."""
    from azure.storage.queue import TextBase64EncodePolicy

    policy = getattr(queue_client, "_message_encode_policy", None)  # no public accessor in azure-storage-queue
    if policy is not None and not isinstance(policy, TextBase64EncodePolicy):
        raise ValueError(
            "the queue client must send with message_encode_policy=TextBase64EncodePolicy() (the Functions queue "
            "trigger decodes base64); build it with queue_client_from_connection_string/_from_endpoint"
        )


def enqueue_batches(
    queue_client: QueueClient,
    run_id: str,
    subscriptions: Sequence[str],
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    trigger: str = "timer",
    now: datetime | None = None,
) -> list[ScanBatch]:
    """Send one message per batch (creating the queue if missing); returns the batches sent, in order.

    All messages are encoded (and so validated) before the first is sent, so a bad batch size sends nothing. A
    send failure (after the SDK's retries) raises with the earlier batches already queued; they are scanned anyway.
    """
    from azure.core.exceptions import ResourceExistsError

    _check_base64_client(queue_client)
    validate_run_id(run_id)
    enqueued_at = format_timestamp(now or datetime.now(UTC))
    groups = batch_subscriptions(subscriptions, batch_size)
    batches = [
        ScanBatch(run_id, tuple(group), trigger, enqueued_at, index, len(groups)) for index, group in enumerate(groups)
    ]
    messages = [encode_batch(b) for b in batches]
    if not messages:
        return []
    with contextlib.suppress(ResourceExistsError):  # already there: the usual case
        queue_client.create_queue()
    for message in messages:
        queue_client.send_message(message)
    return batches


# -- delayed re-checks of events ----------------------------------------------------------------------------------
#: ``kind`` of a re-check message on the fan-out queue (scan batches carry no ``kind``).
EVENT_RECHECK = "event-recheck"
#: Visibility delays of the 1st, 2nd and 3rd re-check (seconds). Resource Graph is "an asynchronous index ... near
#: real-time, it follows an eventual consistent model ... It lags behind the source of truth by a brief period,
#: occasionally longer" (learn.microsoft.com/azure/governance/resource-graph/choose-query-strategy). Three tries over
#: ~14 minutes cover the brief lag; a change still not indexed then is left to the next timer scan.
RECHECK_DELAYS: tuple[int, ...] = (60, 180, 600)
#: The queue service caps a message's visibility timeout at 7 days (Put Message, ``visibilitytimeout``).
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class EventRecheck:
    """An Event Grid event to handle again later, because Resource Graph had not caught up with ARM yet.

    ``event`` is the event in the minimal Event Grid shape :func:`asr_remediate.events.event_document` writes;
    ``attempt`` counts re-checks (1 = the first)."""

    event: dict[str, Any]
    attempt: int
    reason: str = ""


def encode_recheck(recheck: EventRecheck) -> str:
    if not 1 <= recheck.attempt <= len(RECHECK_DELAYS):
        raise ValueError(f"re-check attempt {recheck.attempt} is outside 1..{len(RECHECK_DELAYS)}")
    text = json.dumps({"kind": EVENT_RECHECK, "attempt": recheck.attempt, "reason": recheck.reason[:500],
                       "event": recheck.event}, separators=(",", ":"))
    if len(text.encode("utf-8")) > MAX_JSON_BYTES:
        raise ValueError(f"re-check message is {len(text)} bytes, over the {MAX_JSON_BYTES}-byte queue message limit")
    return text


def _recheck_from(data: dict[str, Any]) -> EventRecheck:
    attempt = _typed(data, "attempt", int, 0)
    event = data.get("event")
    if not isinstance(event, dict):
        raise ValueError("re-check message has no event object")
    if not 1 <= attempt <= len(RECHECK_DELAYS):
        raise ValueError(f"re-check message attempt {attempt} is outside 1..{len(RECHECK_DELAYS)}")
    return EventRecheck(event, attempt, _typed(data, "reason", str, ""))


def send_recheck(queue_client: QueueClient, recheck: EventRecheck) -> int:
    """Queue the re-check, invisible for its attempt's delay; returns the delay in seconds."""
    from azure.core.exceptions import ResourceExistsError

    _check_base64_client(queue_client)
    text = encode_recheck(recheck)
    delay = min(RECHECK_DELAYS[recheck.attempt - 1], MAX_VISIBILITY_SECONDS)
    with contextlib.suppress(ResourceExistsError):
        queue_client.create_queue()
    queue_client.send_message(text, visibility_timeout=delay)
    return delay
