"""Audit records and sinks: JSON Lines file and Azure Table Storage (against Azurite)."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from azure.data.tables import TableClient

from asr_remediate.audit import (
    RECONCILE_AFTER,
    AuditError,
    Auditor,
    AuditRecord,
    AuditSink,
    JsonlAuditSink,
    TableAuditSink,
    dangling_intents,
    intent_states,
    make_sink,
    new_run_id,
)
from asr_remediate.config import Settings
from tests.azurite import unique_name

RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers"
NSG = f"{RG}/Microsoft.Network/networkSecurityGroups/nsg1"
RT = f"{RG}/Microsoft.Network/routeTables/rt1"
VM = f"{RG}/Microsoft.Compute/virtualMachines/vm1"
RULE = {
    "access": "Allow",
    "direction": "Outbound",
    "protocol": "Tcp",
    "priority": 3000,
    "sourceAddressPrefix": "VirtualNetwork",
    "sourcePortRange": "*",
    "destinationPortRange": "443",
    "destinationAddressPrefix": "EventHub.WestUS",
}


def fixed_clock(start: datetime = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)):
    """Each call one second later: deterministic, increasing timestamps."""
    ticks = count()
    return lambda: start + timedelta(seconds=next(ticks))


def make_record(run_id: str = "20261125T163000Z-aaaaaa", sequence: int = 0, **changes) -> AuditRecord:
    fields: dict[str, Any] = {
        "run_id": run_id,
        "sequence": sequence,
        "phase": "intent",
        "timestamp": "2026-11-25T16:30:00.000000Z",
        "trigger": "timer",
        "actor": "11111111-2222-3333-4444-555555555555",
        "action": "create-security-rule",
        "resource_id": NSG,
        "name": "asr-remediate-EventHub.WestUS",
        "payload": RULE,
        "reason": "vm1 replicates to westus; nsg1 denies EventHub.WestUS via DenyAll 4000",
        "before_etag": 'W/"etag-1"',
        "vm_ids": (VM,),
    }
    fields.update(changes)
    return AuditRecord(**fields)


def write_pair(auditor: Auditor, name: str = "asr-remediate-EventHub.WestUS") -> tuple[AuditRecord, AuditRecord]:
    intent = auditor.intent(
        action="create-security-rule",
        resource_id=NSG,
        name=name,
        payload=RULE,
        reason="vm1 needs EventHub.WestUS on 443",
        before_etag='W/"1"',
        vm_ids=[VM],
    )
    outcome = auditor.outcome(intent, "succeeded", after_etag='W/"2"')
    return intent, outcome


# ------------------------------------------------------------------------------------------------- records


def test_run_id_is_sortable_and_unique() -> None:
    early = new_run_id(datetime(2026, 11, 25, 16, 30, 0, tzinfo=UTC))
    late = new_run_id(datetime(2026, 11, 25, 16, 30, 1, tzinfo=UTC))
    assert re.fullmatch(r"20261125T163000Z-[0-9a-f]{6}", early)
    assert early < late
    assert len({new_run_id() for _ in range(50)}) == 50


def test_record_dict_round_trip_is_json_safe() -> None:
    record = make_record(phase="outcome", result="failed", error="409 Conflict", after_etag="", vm_ids=(VM, "x"))
    data = json.loads(json.dumps(record.to_dict()))
    assert data["payload"] == RULE
    assert data["vm_ids"] == [VM, "x"]
    assert AuditRecord.from_dict(data) == record


def test_record_is_immune_to_later_changes_of_the_callers_payload() -> None:
    payload = dict(RULE)
    record = make_record(payload=payload)
    payload["priority"] = 1
    assert record.payload["priority"] == 3000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"phase": "before"}, "phase"),
        ({"trigger": "cron"}, "trigger"),
        ({"action": "delete-nsg"}, "action"),
        ({"result": "succeeded"}, "intent record has result 'pending'"),
        ({"phase": "outcome", "result": "pending"}, "needs a final result"),
        ({"sequence": -1}, "sequence"),
        ({"run_id": "a/b"}, "invalid run id"),
        ({"resource_id": ""}, "resource_id"),
        ({"payload": {"when": datetime(2026, 1, 1)}}, "not JSON-serialisable"),
        ({"vm_ids": "vm1"}, "vm_ids"),
    ],
)
def test_record_rejects_invalid_values(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_record(**changes)


def test_from_dict_names_missing_keys() -> None:
    data = make_record().to_dict()
    del data["action"], data["actor"]
    with pytest.raises(ValueError, match="lacks actor, action"):
        AuditRecord.from_dict(data)


# ------------------------------------------------------------------------------------------------- Auditor


def test_auditor_pairs_intent_and_outcome_with_increasing_sequence(tmp_path) -> None:
    sink = JsonlAuditSink(tmp_path / "audit.jsonl")
    auditor = Auditor(sink, trigger="cli", actor="cli:alice", clock=fixed_clock())
    first_intent, first_outcome = write_pair(auditor)
    second_intent = auditor.intent(
        action="create-route", resource_id=RT, name="asr-remediate-Storage.EastUS", payload={}, reason="udr"
    )

    assert [r.sequence for r in (first_intent, first_outcome, second_intent)] == [0, 1, 2]
    assert first_intent.result == "pending" and first_intent.after_etag == ""
    assert first_outcome.phase == "outcome" and first_outcome.result == "succeeded"
    # The outcome repeats what was written and why, so it can be read on its own.
    for name in ("run_id", "trigger", "actor", "action", "resource_id", "name", "payload", "reason", "before_etag"):
        assert getattr(first_outcome, name) == getattr(first_intent, name)
    assert first_outcome.after_etag == 'W/"2"'
    assert first_outcome.timestamp > first_intent.timestamp
    assert auditor.open_intents == [second_intent]
    assert sink.records(auditor.run_id) == [first_intent, first_outcome, second_intent]


def test_intent_is_on_disk_before_the_caller_writes(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    auditor = Auditor(JsonlAuditSink(path), trigger="timer", actor="app-1")
    intent = auditor.intent(
        action="create-route", resource_id=RT, name="r", payload={"nextHopType": "Internet"}, reason="why"
    )
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == intent.to_dict()


def test_auditor_refuses_double_or_foreign_outcomes(tmp_path) -> None:
    sink = JsonlAuditSink(tmp_path / "audit.jsonl")
    auditor = Auditor(sink, trigger="http", actor="app-1")
    intent, outcome = write_pair(auditor)
    with pytest.raises(ValueError, match="already has an outcome"):
        auditor.outcome(intent, "failed")
    with pytest.raises(ValueError, match="needs an intent"):
        auditor.outcome(outcome, "failed")
    other = Auditor(sink, trigger="http", actor="app-1")
    with pytest.raises(ValueError, match="needs an intent"):
        other.outcome(intent, "succeeded")
    open_intent = auditor.intent(action="create-route", resource_id=RT, name="r", payload={}, reason="why")
    with pytest.raises(ValueError, match="final result"):
        auditor.outcome(open_intent, "pending")
    assert len(sink.records()) == 3  # the refused outcomes wrote nothing


def test_auditor_context_closes_dangling_intents_as_failed(tmp_path) -> None:
    sink = JsonlAuditSink(tmp_path / "audit.jsonl")
    with pytest.raises(TimeoutError), Auditor(sink, trigger="eventgrid", actor="app-1") as auditor:
        write_pair(auditor)
        auditor.intent(action="update-security-rule", resource_id=NSG, name="n", payload=RULE, reason="why")
        raise TimeoutError("ARM PUT timed out")
    records = sink.records(auditor.run_id)
    assert [(r.phase, r.result) for r in records] == [
        ("intent", "pending"),
        ("outcome", "succeeded"),
        ("intent", "pending"),
        ("outcome", "failed"),
    ]
    assert "may or may not have happened" in records[-1].error
    assert "TimeoutError: ARM PUT timed out" in records[-1].error
    assert auditor.open_intents == []


def test_auditor_validates_its_inputs(tmp_path) -> None:
    sink = JsonlAuditSink(tmp_path / "audit.jsonl")
    with pytest.raises(ValueError, match="trigger"):
        Auditor(sink, trigger="manual", actor="x")
    with pytest.raises(ValueError, match="actor"):
        Auditor(sink, trigger="cli", actor="")
    with pytest.raises(ValueError, match="invalid run id"):
        Auditor(sink, trigger="cli", actor="x", run_id="has space")
    assert isinstance(sink, AuditSink)


# --------------------------------------------------------------------------------------------- JSON Lines


def test_jsonl_orders_by_run_then_sequence_and_filters(tmp_path) -> None:
    sink = JsonlAuditSink(tmp_path / "deep" / "er" / "audit.jsonl")  # parent folders are created
    run_a, run_b = "20261125T163000Z-aaaaaa", "20261125T170000Z-bbbbbb"
    written = [make_record(run_b, 1), make_record(run_a, 2), make_record(run_b, 0), make_record(run_a, 10),
               make_record(run_a, 9)]  # fmt: skip
    for record in written:
        sink.write(record)
    assert [(r.run_id, r.sequence) for r in sink.records()] == [
        (run_a, 2), (run_a, 9), (run_a, 10), (run_b, 0), (run_b, 1)
    ]  # fmt: skip
    assert [r.sequence for r in sink.records(run_b)] == [0, 1]
    assert sink.records("20990101T000000Z-000000") == []
    assert sink.runs() == [run_a, run_b]


def test_jsonl_missing_file_is_an_empty_log(tmp_path) -> None:
    sink = JsonlAuditSink(tmp_path / "audit.jsonl")
    assert sink.records() == [] and sink.runs() == []


def test_jsonl_tolerates_a_truncated_last_line(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    auditor = Auditor(sink, trigger="timer", actor="app-1")
    intent, outcome = write_pair(auditor)
    with path.open("a") as handle:  # a crash halfway through writing the next record
        handle.write(json.dumps(make_record(auditor.run_id, 2).to_dict())[:57])

    records, problems = sink.scan()
    assert records == [intent, outcome]
    assert len(problems) == 1 and problems[0].line == 3 and problems[0].truncated
    assert sink.records() == [intent, outcome]

    # The next record starts on a fresh line instead of gluing itself to the fragment.
    later = auditor.intent(action="create-route", resource_id=RT, name="r", payload={}, reason="why")
    records, problems = sink.scan()
    assert records == [intent, outcome, later]
    assert [(p.line, p.truncated) for p in problems] == [(3, False)]


def test_jsonl_reports_corrupt_lines_by_number(tmp_path, caplog) -> None:
    path = tmp_path / "audit.jsonl"
    good = [make_record(sequence=i) for i in range(3)]
    lines = [json.dumps(r.to_dict()) for r in good]
    lines.insert(1, "{not json")
    lines.insert(3, json.dumps({**good[0].to_dict(), "phase": "halfway"}))  # JSON, but not a record
    path.write_text("\n".join(lines) + "\n\n")

    sink = JsonlAuditSink(path)
    with caplog.at_level(logging.WARNING, logger="asr_remediate.audit"):
        assert sink.records() == good
    _, problems = sink.scan()
    assert [(p.line, p.truncated) for p in problems] == [(2, False), (4, False)]
    assert "not JSON" in problems[0].reason and "phase" in problems[1].reason
    assert str(problems[0]).startswith(f"{path}:2: corrupt line")
    assert f"{path}:2:" in caplog.text and f"{path}:4:" in caplog.text


def test_jsonl_bad_paths_give_audit_errors(tmp_path) -> None:
    with pytest.raises(AuditError, match="is a directory"):
        JsonlAuditSink(tmp_path)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(AuditError, match="cannot create the folder"):
        JsonlAuditSink(blocker / "sub" / "audit.jsonl")
    with pytest.raises(AuditError, match="empty"):
        JsonlAuditSink("")
    # The path turns bad after construction: the write fails with an AuditError, not an OSError.
    path = tmp_path / "later" / "audit.jsonl"
    sink = JsonlAuditSink(path)
    path.mkdir()
    with pytest.raises(AuditError, match="cannot write audit file"):
        sink.write(make_record())


def test_make_sink_jsonl(tmp_path) -> None:
    sink = make_sink(Settings(audit_sink="jsonl", audit_path=str(tmp_path / "a.jsonl")))
    assert isinstance(sink, JsonlAuditSink) and sink.path == tmp_path / "a.jsonl"


def test_make_sink_table_needs_a_target() -> None:
    with pytest.raises(AuditError, match="ASR_AUDIT_TABLE_ENDPOINT"):
        make_sink(Settings(audit_sink="table"))
    with pytest.raises(AuditError, match="invalid"):
        make_sink(Settings(audit_sink="table", audit_table="no-dashes", audit_connection_string="x"))
    with pytest.raises(AuditError, match="must be a URL"):
        make_sink(Settings(audit_sink="table", audit_table_endpoint="myaccount"))


def test_make_sink_table_with_endpoint_uses_a_token_credential() -> None:
    sink = make_sink(Settings(audit_sink="table", audit_table_endpoint="https://acct.table.core.windows.net"))
    assert isinstance(sink, TableAuditSink)
    assert sink.table_name == "asrremediateaudit"
    assert type(sink._client.credential).__name__ == "DefaultAzureCredential"


# ---------------------------------------------------------------------------------------- Table (Azurite)


@pytest.fixture
def table_sink(azurite: str) -> TableAuditSink:
    sink = make_sink(Settings(audit_sink="table", audit_table=unique_name("audit"), audit_connection_string=azurite))
    assert isinstance(sink, TableAuditSink)
    return sink


def test_table_write_and_read_back(table_sink: TableAuditSink, azurite: str) -> None:
    assert table_sink.records() == [] and table_sink.runs() == []  # table not created yet: empty, not an error
    auditor = Auditor(table_sink, trigger="timer", actor="app-1", clock=fixed_clock())
    intent, outcome = write_pair(auditor)
    assert table_sink.records() == [intent, outcome]

    raw = TableClient.from_connection_string(azurite, table_sink.table_name)
    entities = sorted(raw.list_entities(), key=lambda e: e["RowKey"])
    assert [(e["PartitionKey"], e["RowKey"]) for e in entities] == [
        (auditor.run_id, "000000-intent"),
        (auditor.run_id, "000001-outcome"),
    ]
    assert json.loads(entities[0]["payload"]) == RULE  # flat entity: payload as a JSON string


def test_table_pages_filters_and_lists_runs(table_sink: TableAuditSink) -> None:
    big = Auditor(table_sink, trigger="timer", actor="app-1", run_id="20261125T163000Z-aaaaaa")
    for i in range(550):  # 1100 records: more than one 1000-entity page
        write_pair(big, name=f"asr-remediate-{i}")
    small = Auditor(table_sink, trigger="cli", actor="cli:bob", run_id="20261125T170000Z-bbbbbb")
    write_pair(small)
    later = Auditor(table_sink, trigger="queue", actor="app-1", run_id="20261125T163000Z-aaaaaa.b0001")
    write_pair(later)

    big_records = table_sink.records(big.run_id)
    assert len(big_records) == 1100
    assert [r.sequence for r in big_records] == list(range(1100))
    assert big_records[-1].name == "asr-remediate-549" and big_records[-1].phase == "outcome"
    assert [r.actor for r in table_sink.records(small.run_id)] == ["cli:bob", "cli:bob"]
    assert len(table_sink.records()) == 1104
    assert table_sink.runs() == [big.run_id, later.run_id, small.run_id]


def test_table_splits_values_over_the_property_size_limit(table_sink: TableAuditSink) -> None:
    prefixes = [f"20.{i // 250}.{i % 250}.0/24" for i in range(4000)]  # a prefix-style rule at the 4000 limit
    vms = tuple(f"{VM}-{i}" for i in range(400))
    record = make_record(payload={**RULE, "destinationAddressPrefixes": prefixes}, vm_ids=vms)
    assert len(json.dumps(record.to_dict()["payload"])) > 64 * 1024
    table_sink.write(record)
    assert table_sink.records() == [record]


def test_table_retried_insert_is_accepted_but_a_conflicting_one_is_not(table_sink: TableAuditSink) -> None:
    record = make_record()
    table_sink.write(record)
    table_sink.write(record)  # as if the first response was lost and the write retried
    with pytest.raises(AuditError, match="already exists with different content"):
        table_sink.write(make_record(reason="another writer"))
    assert table_sink.records() == [record]


def test_table_errors_are_one_line_audit_errors() -> None:
    # Nothing listens on port 9 (discard); no retries so the test stays fast.
    client = TableClient.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;",
        "audit",
        retry_total=0,
    )
    sink = TableAuditSink(client)
    with pytest.raises(AuditError) as caught:
        sink.write(make_record())
    message = str(caught.value)
    assert message.startswith("audit table audit: cannot create the table")
    assert "\n" not in message
    with pytest.raises(AuditError, match="cannot read records"):
        sink.records()


# -- intents, outcomes and reconciliation ---------------------------------------------------------------------------


def test_intent_states_pair_by_intent_sequence_and_legacy_records_by_position() -> None:
    run = "20261125T163000Z-aaaaaa"
    first = make_record(run, 0)
    second = make_record(run, 1, name="asr-remediate-Storage.WestUS")
    # An older outcome without intent_sequence answers the earliest unanswered intent with the same target.
    legacy = make_record(run, 2, phase="outcome", result="failed", name="asr-remediate-Storage.WestUS")
    named = make_record(run, 3, phase="outcome", result="succeeded", intent_sequence=0)
    states = {s.intent.sequence: s for s in intent_states([named, legacy, second, first])}
    assert states[0].outcome == named and states[0].landed and not states[0].dangling
    assert states[1].outcome == legacy and not states[1].landed and states[1].dangling
    settled = make_record(run, 4, phase="reconcile", result="landed", intent_sequence=1)
    state = next(s for s in intent_states([first, second, legacy, named, settled]) if s.intent.sequence == 1)
    assert state.landed and not state.dangling and state.reconcile == settled


def test_dangling_intents_wait_until_no_run_can_still_be_writing() -> None:
    run = "20261125T163000Z-aaaaaa"
    pending = make_record(run, 0, timestamp="2026-11-25T16:30:00.000000Z")
    written = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)
    assert dangling_intents([pending], written + RECONCILE_AFTER - timedelta(seconds=1)) == []
    assert dangling_intents([pending], written + RECONCILE_AFTER) == [pending]
    assert dangling_intents([pending], written, older_than=timedelta(0)) == [pending]


def test_reconcile_records_are_validated() -> None:
    with pytest.raises(ValueError, match="landed or not-landed"):
        make_record(phase="reconcile", result="succeeded", intent_sequence=0)
    with pytest.raises(ValueError, match="landed or not-landed"):
        make_record(phase="reconcile", result="landed")  # names no intent
    with pytest.raises(ValueError, match="final result"):
        make_record(phase="outcome", result="landed")


def _sink_contract(sink: AuditSink) -> None:
    early = Auditor(sink, trigger="timer", actor="app-1", run_id="20261125T163000Z-aaaaaa",
                    clock=fixed_clock(datetime(2026, 11, 1, tzinfo=UTC)))
    write_pair(early)
    late = Auditor(sink, trigger="timer", actor="app-1", run_id="20261125T170000Z-bbbbbb",
                   clock=fixed_clock(datetime(2026, 11, 25, tzinfo=UTC)))
    write_pair(late)
    write_pair(late)
    assert [r.run_id for r in sink.records_since("2026-11-20T00:00:00.000000Z")] == [late.run_id] * 4
    assert len(sink.records_since("2026-10-01T00:00:00.000000Z")) == 6
    assert sink.last_sequence(late.run_id) == 3 and sink.last_sequence("20261125T180000Z-cccccc") == -1


def test_jsonl_records_since_and_last_sequence(tmp_path) -> None:
    _sink_contract(JsonlAuditSink(tmp_path / "a.jsonl"))


def test_table_records_since_and_last_sequence(table_sink: TableAuditSink) -> None:
    """The Table query filters on our own ISO timestamp property (string comparison = time order), not on the
    service's Timestamp; checked against Azurite."""
    _sink_contract(table_sink)
