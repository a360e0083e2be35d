"""Queue fan-out: batching, the message format, and the round trip through a real (Azurite) queue."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from azure.storage.queue import QueueClient, QueueServiceClient

from asr_remediate.fanout import (
    MAX_JSON_BYTES,
    ScanBatch,
    batch_subscriptions,
    decode_batch,
    encode_batch,
    enqueue_batches,
    queue_client_from_connection_string,
)
from tests.azurite import unique_name

RUN = "20261125T163000Z-1a2b3c"
SUBS = [f"00000000-0000-0000-0000-{i:012d}" for i in range(7)]


# ---------------------------------------------------------------------------------------------- batching


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (3, [SUBS[0:3], SUBS[3:6], SUBS[6:7]]),
        (7, [SUBS]),
        (100, [SUBS]),
        (1, [[s] for s in SUBS]),
    ],
)
def test_batches_keep_order_and_cover_everything_once(size: int, expected: list[list[str]]) -> None:
    assert batch_subscriptions(SUBS, size) == expected


def test_batches_drop_duplicates_and_blanks() -> None:
    subs = [SUBS[0], " ", SUBS[1].upper(), SUBS[1], f" {SUBS[0]} ", "", SUBS[2]]
    assert batch_subscriptions(subs, 2) == [[SUBS[0], SUBS[1].upper()], [SUBS[2]]]


def test_no_subscriptions_no_batches() -> None:
    assert batch_subscriptions([], 5) == []
    assert batch_subscriptions(["", "  "], 5) == []


@pytest.mark.parametrize("size", [0, -1, True, 2.5])
def test_batch_size_must_be_positive_int(size: object) -> None:
    with pytest.raises(ValueError, match="batch size"):
        batch_subscriptions(SUBS, size)  # type: ignore[arg-type]


def test_a_single_string_is_not_a_list_of_subscriptions() -> None:
    with pytest.raises(ValueError, match="not one string"):
        batch_subscriptions(SUBS[0], 2)


# ------------------------------------------------------------------------------------------------ messages


def test_encode_decode_round_trip() -> None:
    batch = ScanBatch(RUN, tuple(SUBS[:3]), "timer", "2026-11-25T16:30:00.000000Z", 1, 3)
    text = encode_batch(batch)
    assert json.loads(text) == {
        "runId": RUN,
        "subscriptions": SUBS[:3],
        "trigger": "timer",
        "enqueuedAt": "2026-11-25T16:30:00.000000Z",
        "batch": 1,
        "batchCount": 3,
    }
    assert decode_batch(text) == batch
    assert decode_batch(text.encode()) == batch  # func.QueueMessage.get_body() gives bytes
    assert decode_batch(base64.b64encode(text.encode()).decode()) == batch  # peeked raw from the queue
    assert batch.audit_run_id == f"{RUN}.b0001"


def test_decode_fills_defaults_for_the_minimal_message() -> None:
    batch = decode_batch(json.dumps({"runId": RUN, "subscriptions": [SUBS[0]]}))
    assert batch == ScanBatch(RUN, (SUBS[0],), "timer", "", 0, 1)


def good(**changes: object) -> str:
    message: dict[str, object] = {
        "runId": RUN,
        "subscriptions": SUBS[:2],
        "trigger": "timer",
        "enqueuedAt": "2026-11-25T16:30:00Z",
        "batch": 0,
        "batchCount": 1,
    }
    message.update(changes)
    return json.dumps(message)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("not json at all!", "neither JSON nor base64"),
        ("{not json", "not JSON"),
        (base64.b64encode(b"[1, 2]").decode(), "JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (json.dumps({"subscriptions": SUBS}), "lacks runId"),
        (json.dumps({"runId": RUN}), "lacks subscriptions"),
        (good(subscriptions=SUBS[0]), "list of subscription ids"),
        (good(subscriptions=[1, 2]), "list of subscription ids"),
        (good(subscriptions=[]), "no subscriptions"),
        (good(subscriptions=[" "]), "blank subscription"),
        (good(runId="run/1"), "invalid run id"),
        (good(runId=7), "'runId' must be text"),
        (good(trigger="cron"), "trigger must be one of"),
        (good(enqueuedAt="yesterday"), "not an ISO 8601 time"),
        (good(enqueuedAt="2026-11-25T16:30:00"), "time zone"),
        (good(batch=3, batchCount=3), "out of range"),
        (good(batch=-1), "out of range"),
        (good(batch=True), "'batch' must be a number"),
        (good(batchCount=0), "out of range"),
    ],
)
def test_decode_rejects_bad_messages_clearly(message: str | bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        decode_batch(message)


def test_encode_refuses_a_message_over_the_queue_limit() -> None:
    many = tuple(f"/subscriptions/{i:036d}" for i in range(2000))
    with pytest.raises(ValueError, match="smaller batch size"):
        encode_batch(ScanBatch(RUN, many))
    # The default-sized batch of GUIDs fits with a wide margin.
    assert len(encode_batch(ScanBatch(RUN, tuple(SUBS) * 1))) < MAX_JSON_BYTES


# ------------------------------------------------------------------------------------------ Azurite queue


def receive_all(azurite: str, queue: str) -> list[str]:
    """Raw message text as stored, read with a client that does no decoding (as the Functions host sees it)."""
    raw = QueueClient.from_connection_string(azurite, queue)
    return [m.content for m in raw.receive_messages(max_messages=32, visibility_timeout=60)]


def test_enqueue_sends_base64_batches_the_trigger_can_decode(azurite: str) -> None:
    queue = unique_name("q")
    client = queue_client_from_connection_string(azurite, queue)  # queue does not exist yet
    now = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)
    sent = enqueue_batches(client, RUN, [*SUBS, SUBS[0]], 3, now=now)

    assert [list(b.subscriptions) for b in sent] == [SUBS[0:3], SUBS[3:6], SUBS[6:7]]
    assert [(b.batch, b.batch_count) for b in sent] == [(0, 3), (1, 3), (2, 3)]
    assert {b.enqueued_at for b in sent} == {"2026-11-25T16:30:00.000000Z"}

    stored = receive_all(azurite, queue)
    assert len(stored) == 3
    assert all(not s.startswith("{") for s in stored)  # base64 on the wire, not plain JSON
    host_view = [base64.b64decode(s).decode("utf-8") for s in stored]  # what the host hands the function
    received = sorted((decode_batch(text) for text in host_view), key=lambda b: b.batch)
    assert received == sent


def test_enqueue_nothing_sends_nothing(azurite: str) -> None:
    queue = unique_name("q")
    assert enqueue_batches(queue_client_from_connection_string(azurite, queue), RUN, [], 10) == []
    names = [q.name for q in QueueServiceClient.from_connection_string(azurite).list_queues()]
    assert queue not in names


def test_enqueue_refuses_a_plain_text_client(azurite: str) -> None:
    queue = unique_name("q")
    plain = QueueClient.from_connection_string(azurite, queue)
    with pytest.raises(ValueError, match="TextBase64EncodePolicy"):
        enqueue_batches(plain, RUN, SUBS, 3)
    names = [q.name for q in QueueServiceClient.from_connection_string(azurite).list_queues()]
    assert queue not in names


def test_enqueue_validates_before_sending(azurite: str) -> None:
    queue = unique_name("q")
    client = queue_client_from_connection_string(azurite, queue)
    with pytest.raises(ValueError, match="batch size"):
        enqueue_batches(client, RUN, SUBS, 0)
    with pytest.raises(ValueError, match="invalid run id"):
        enqueue_batches(client, "bad run id", SUBS, 3)
    enqueue_batches(client, RUN, SUBS[:1], 1)  # the queue now exists and takes messages
    assert len(receive_all(azurite, queue)) == 1


def test_batch_sizing_is_for_the_instance_memory_the_bicep_deploys():
    """fanout.max_vms_per_batch sizes a queue batch for the Flex Consumption instance memory; the default must be the
    one infra/main.bicep deploys (instanceMemoryMB), and a bigger instance holds more VMs, a tiny one none."""
    import re
    from pathlib import Path

    from asr_remediate.fanout import BASE_MB, FLEX_INSTANCE_MB, MB_PER_VM, MEMORY_MARGIN, max_vms_per_batch

    bicep = (Path(__file__).resolve().parents[1] / "infra" / "main.bicep").read_text(encoding="utf-8")
    deployed = re.search(r"^param instanceMemoryMB int = (\d+)", bicep, re.MULTILINE)
    assert deployed is not None and int(deployed.group(1)) == FLEX_INSTANCE_MB
    default = max_vms_per_batch()
    assert default * MB_PER_VM + BASE_MB <= FLEX_INSTANCE_MB * MEMORY_MARGIN < (default + 1) * MB_PER_VM + BASE_MB
    assert max_vms_per_batch(4096) > default > max_vms_per_batch(512) > 0
    assert max_vms_per_batch(128) == 0
