"""Audit trail: an intent record before and an outcome record after every write the bot makes.

Why: the bot edits security rules and routes in production networks. Every change must be explainable afterwards
(who, when, why, exactly what was written, what the resource looked like before and after), and a crash between
"decided to write" and "wrote" must still leave a trace. So the intent is made durable *before* the ARM write, and
the outcome is recorded after it, paired by run id and sequence.

Sinks: a JSON Lines file (local default, one object per line, fsynced per record) and Azure Table Storage
(deployed; PartitionKey = run id, RowKey = ``{sequence:06d}-{phase}``). Azurite stands in for Table Storage in tests.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient

    from asr_remediate.config import Settings

log = logging.getLogger(__name__)

PHASES = ("intent", "outcome", "reconcile")
TRIGGERS = ("timer", "eventgrid", "http", "cli", "queue")
ACTIONS = (
    "create-security-rule",
    "update-security-rule",
    "create-route",
    "update-route",
    "delete-security-rule",
    "delete-route",
    "create-rule-collection-group",  # the bot's own group in a Firewall Policy (firewall_planner.py)
    "update-rule-collection-group",
    "delete-rule-collection-group",
)
RESULTS = ("pending", "succeeded", "failed", "skipped", "landed", "not-landed")
RECONCILE_RESULTS = ("landed", "not-landed")

# Sequence is zero-padded to 6 digits in the Table RowKey so that string order == numeric order.
MAX_SEQUENCE = 999_999
# Forbidden in Table PartitionKey/RowKey values (and control characters): / \ # ?
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
_TABLE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")


class AuditError(RuntimeError):
    """The audit trail cannot be written or read. One-line message; the bot must not write without an audit."""


def _one_line(text: object, limit: int = 300) -> str:
    """First line of an (often multi-line) SDK error message, cut to a readable length."""
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with a ``Z`` suffix and microseconds, so that string order is time order."""
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by start time: ``20261125T163000Z-1a2b3c`` (UTC second + 24 random bits)."""
    moment = (now or utc_now()).astimezone(UTC)
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def validate_run_id(run_id: str) -> str:
    """Run ids become Table PartitionKeys: letters, digits and ``. _ : -`` only, at most 200 characters."""
    if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id):
        raise ValueError(
            f"invalid run id {run_id!r}: use letters, digits and . _ : - (at most 200 characters), "
            "e.g. from new_run_id()"
        )
    return run_id


def cli_actor() -> str:
    """Actor for runs started from a terminal: ``cli:<login name>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return f"cli:{user}"


def _require_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"audit {name} must be one of {', '.join(choices)}, not {value!r}")


@dataclass(frozen=True)
class AuditRecord:
    """One audit line. An intent (result ``pending``) precedes each write; its outcome follows with the same
    action/resource/payload and the result, the etag after the write and any error."""

    run_id: str
    sequence: int  # order within the run; intents and outcomes share one counter
    phase: str  # intent | outcome
    timestamp: str  # ISO 8601 UTC
    trigger: str  # timer | eventgrid | http | cli | queue
    actor: str  # principal / app id, or cli:<user>
    action: str  # create-security-rule | update-security-rule | create-route | update-route | delete-*
    resource_id: str  # the NSG / route table written
    name: str  # the rule / route name
    payload: Mapping[str, Any] = field(default_factory=dict, hash=False)  # ARM properties written
    reason: str = ""  # plain text: why this write
    before_etag: str = ""
    after_etag: str = ""
    result: str = "pending"  # pending | succeeded | failed | skipped
    error: str = ""
    vm_ids: tuple[str, ...] = ()  # VMs whose replication this write is for
    # outcome / reconcile: the sequence of the intent it answers (-1: an older record, paired by position)
    intent_sequence: int = -1

    def __post_init__(self) -> None:
        validate_run_id(self.run_id)
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int) or self.sequence < 0:
            raise ValueError(f"audit sequence must be a non-negative integer, not {self.sequence!r}")
        _require_choice("phase", self.phase, PHASES)
        _require_choice("trigger", self.trigger, TRIGGERS)
        _require_choice("action", self.action, ACTIONS)
        _require_choice("result", self.result, RESULTS)
        if self.phase == "intent" and self.result != "pending":
            raise ValueError(f"an intent record has result 'pending', not {self.result!r}")
        if self.phase == "outcome" and self.result not in ("succeeded", "failed", "skipped"):
            raise ValueError(f"an outcome record needs a final result (succeeded, failed or skipped), not "
                             f"{self.result!r}")
        if self.phase == "reconcile" and (self.result not in RECONCILE_RESULTS or self.intent_sequence < 0):
            raise ValueError("a reconcile record says landed or not-landed for the intent it names")
        if isinstance(self.intent_sequence, bool) or not isinstance(self.intent_sequence, int):
            raise ValueError(f"audit intent_sequence must be an integer, not {self.intent_sequence!r}")
        for name in ("timestamp", "actor", "resource_id", "name"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"audit {name} must be a non-empty string, not {value!r}")
        for name in ("reason", "before_etag", "after_etag", "error"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"audit {name} must be a string, not {type(value).__name__}")
        if not isinstance(self.payload, Mapping):
            raise ValueError(f"audit payload must be a JSON object, not {type(self.payload).__name__}")
        if isinstance(self.vm_ids, str) or not all(isinstance(v, str) for v in self.vm_ids):
            raise ValueError("audit vm_ids must be a sequence of strings")
        # Freeze containers: a record must not change after it was written.
        object.__setattr__(self, "payload", json.loads(_dump_payload(self.payload)))
        object.__setattr__(self, "vm_ids", tuple(self.vm_ids))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with the field names as keys (payload stays an object, vm_ids a list)."""
        return {
            "run_id": self.run_id,
            "sequence": self.sequence,
            "phase": self.phase,
            "timestamp": self.timestamp,
            "trigger": self.trigger,
            "actor": self.actor,
            "action": self.action,
            "resource_id": self.resource_id,
            "name": self.name,
            "payload": dict(self.payload),
            "reason": self.reason,
            "before_etag": self.before_etag,
            "after_etag": self.after_etag,
            "result": self.result,
            "error": self.error,
            "vm_ids": list(self.vm_ids),
            "intent_sequence": self.intent_sequence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        """Inverse of ``to_dict``; unknown keys are ignored (newer writers), missing or mistyped ones are a
        ``ValueError`` naming the key."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an audit record is a JSON object, not {type(data).__name__}")
        missing = [
            k
            for k in ("run_id", "sequence", "phase", "timestamp", "trigger", "actor", "action", "resource_id", "name")
            if k not in data
        ]
        if missing:
            raise ValueError(f"audit record lacks {', '.join(missing)}")
        vm_ids = data.get("vm_ids", [])
        if not isinstance(vm_ids, list | tuple):
            raise ValueError(f"audit vm_ids must be a list, not {type(vm_ids).__name__}")
        return cls(
            run_id=data["run_id"],
            sequence=data["sequence"],
            phase=data["phase"],
            timestamp=data["timestamp"],
            trigger=data["trigger"],
            actor=data["actor"],
            action=data["action"],
            resource_id=data["resource_id"],
            name=data["name"],
            payload=data.get("payload", {}),
            reason=data.get("reason", ""),
            before_etag=data.get("before_etag", ""),
            after_etag=data.get("after_etag", ""),
            result=data.get("result", "pending"),
            error=data.get("error", ""),
            vm_ids=tuple(vm_ids),
            intent_sequence=data.get("intent_sequence", -1),
        )

    def sort_key(self) -> tuple[str, int, int]:
        return (self.run_id, self.sequence, PHASES.index(self.phase))


def _dump_payload(payload: Mapping[str, Any]) -> str:
    try:
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit payload is not JSON-serialisable: {exc}") from None


def _sorted(records: list[AuditRecord]) -> list[AuditRecord]:
    return sorted(records, key=AuditRecord.sort_key)


@runtime_checkable
class AuditSink(Protocol):
    """Where audit records go. ``write`` must be durable when it returns: the caller writes to ARM next."""

    def write(self, record: AuditRecord) -> None: ...

    def records(self, run_id: str | None = None) -> list[AuditRecord]:
        """Records of one run (or all), ordered by run id then sequence."""
        ...

    def runs(self) -> list[str]:
        """Run ids with at least one record, oldest first."""
        ...

    def records_since(self, timestamp: str) -> list[AuditRecord]:
        """Records written at or after ``timestamp`` (ISO 8601 UTC as :func:`format_timestamp` makes it), of any
        run: what an automatic reconciliation reads instead of the whole history."""
        ...

    def last_sequence(self, run_id: str) -> int:
        """The highest sequence run ``run_id`` holds (-1: none), so a resumed run continues after it."""
        ...


# --------------------------------------------------------------------------------------------------- JSON Lines


@dataclass(frozen=True)
class CorruptLine:
    """A line of the audit file that is not a record. ``truncated`` marks a last line without newline: a crash
    mid-write, expected after a kill and not data loss of a completed record."""

    path: str
    line: int
    reason: str
    truncated: bool = False

    def __str__(self) -> str:
        kind = "truncated last line (interrupted write)" if self.truncated else "corrupt line"
        return f"{self.path}:{self.line}: {kind}: {self.reason}"


class JsonlAuditSink:
    """Append-only JSON Lines file. Each record is one ``os.write`` of a whole line with ``O_APPEND`` followed by
    fsync, so an intent is on disk before the ARM write it announces, and concurrent appenders don't interleave."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if str(path).strip() == "":
            raise AuditError("audit file path is empty (set ASR_AUDIT_PATH)")
        self.path = Path(path)
        if self.path.is_dir():
            raise AuditError(f"audit file {self.path} is a directory; set ASR_AUDIT_PATH to a file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditError(f"cannot create the folder for audit file {self.path}: {exc.strerror or exc}") from None

    def write(self, record: AuditRecord) -> None:
        line = json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        data = (line + "\n").encode("utf-8")
        try:
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if not created and self._ends_without_newline():
                    # A previous writer died mid-line: start on a fresh line so this record stays readable.
                    data = b"\n" + data
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                self._fsync_dir()
        except OSError as exc:
            raise AuditError(f"cannot write audit file {self.path}: {exc.strerror or exc}") from None

    def _ends_without_newline(self) -> bool:
        with self.path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"

    def _fsync_dir(self) -> None:
        """Make the new file's directory entry durable too (POSIX); best effort elsewhere."""
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def scan(self) -> tuple[list[AuditRecord], list[CorruptLine]]:
        """All readable records (ordered) and the lines that are not records, by 1-based line number."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            raise AuditError(f"cannot read audit file {self.path}: {exc.strerror or exc}") from None
        records: list[AuditRecord] = []
        problems: list[CorruptLine] = []
        lines = raw.split(b"\n")
        ends_cleanly = lines[-1] == b""
        if ends_cleanly:
            lines.pop()
        for number, chunk in enumerate(lines, start=1):
            if not chunk.strip():
                continue
            truncated = number == len(lines) and not ends_cleanly
            try:
                data = json.loads(chunk.decode("utf-8"))
                records.append(AuditRecord.from_dict(data))
            except UnicodeDecodeError:
                problems.append(CorruptLine(str(self.path), number, "not UTF-8 text", truncated))
            except json.JSONDecodeError as exc:
                problems.append(CorruptLine(str(self.path), number, f"not JSON ({exc.msg})", truncated))
            except ValueError as exc:
                problems.append(CorruptLine(str(self.path), number, f"not an audit record ({exc})", truncated))
        return _sorted(records), problems

    def records(self, run_id: str | None = None) -> list[AuditRecord]:
        records, problems = self.scan()
        for problem in problems:
            log.warning("%s", problem)
        return [r for r in records if run_id is None or r.run_id == run_id]

    def runs(self) -> list[str]:
        return sorted({r.run_id for r in self.records()})

    def records_since(self, timestamp: str) -> list[AuditRecord]:
        return [r for r in self.records() if r.timestamp >= timestamp]

    def last_sequence(self, run_id: str) -> int:
        return max((r.sequence for r in self.records(run_id)), default=-1)


# ------------------------------------------------------------------------------------------------ Table Storage

# A Table Storage string property holds at most 64 KiB (32K UTF-16 units); longer values (payloads with thousands
# of prefixes, long vm_ids lists) are split over ``<name>``, ``<name>_1``, ... with ``<name>_parts`` = count.
_CHUNK = 30_000
# "Timestamp" is the service's own property; keep ours apart.
_ENTITY_TIMESTAMP = "recordedAt"
_SPLIT_FIELDS = ("payload", "vm_ids", "reason", "error", "name", "resource_id", "actor")


def _record_to_entity(record: AuditRecord) -> dict[str, Any]:
    if record.sequence > MAX_SEQUENCE:
        raise AuditError(f"audit sequence {record.sequence} exceeds {MAX_SEQUENCE} (one run writes at most that many)")
    flat: dict[str, Any] = {
        "PartitionKey": record.run_id,
        "RowKey": f"{record.sequence:06d}-{record.phase}",
        "sequence": record.sequence,
        "phase": record.phase,
        _ENTITY_TIMESTAMP: record.timestamp,
        "trigger": record.trigger,
        "actor": record.actor,
        "action": record.action,
        "resource_id": record.resource_id,
        "name": record.name,
        "payload": _dump_payload(record.payload),
        "reason": record.reason,
        "before_etag": record.before_etag,
        "after_etag": record.after_etag,
        "result": record.result,
        "error": record.error,
        "vm_ids": json.dumps(list(record.vm_ids), separators=(",", ":")),
        "intent_sequence": record.intent_sequence,
    }
    for key in _SPLIT_FIELDS:
        text = flat[key]
        if len(text) > _CHUNK:
            parts = [text[i : i + _CHUNK] for i in range(0, len(text), _CHUNK)]
            flat[key] = parts[0]
            for index, part in enumerate(parts[1:], start=1):
                flat[f"{key}_{index}"] = part
            flat[f"{key}_parts"] = len(parts)
    return flat


def _joined(entity: Mapping[str, Any], key: str) -> str:
    parts = int(entity.get(f"{key}_parts", 1))
    return "".join(str(entity.get(key if i == 0 else f"{key}_{i}", "")) for i in range(parts))


def _entity_to_record(entity: Mapping[str, Any]) -> AuditRecord:
    try:
        payload = json.loads(_joined(entity, "payload") or "{}")
        vm_ids = json.loads(_joined(entity, "vm_ids") or "[]")
    except json.JSONDecodeError as exc:
        raise ValueError(f"payload or vm_ids is not JSON ({exc.msg})") from None
    return AuditRecord.from_dict(
        {
            "run_id": entity.get("PartitionKey"),
            "sequence": entity.get("sequence"),
            "phase": entity.get("phase"),
            "timestamp": entity.get(_ENTITY_TIMESTAMP),
            "trigger": entity.get("trigger"),
            "actor": _joined(entity, "actor"),
            "action": entity.get("action"),
            "resource_id": _joined(entity, "resource_id"),
            "name": _joined(entity, "name"),
            "payload": payload,
            "reason": _joined(entity, "reason"),
            "before_etag": entity.get("before_etag", ""),
            "after_etag": entity.get("after_etag", ""),
            "result": entity.get("result"),
            "error": _joined(entity, "error"),
            "vm_ids": vm_ids,
            "intent_sequence": entity.get("intent_sequence", -1),
        }
    )


# Transient failures (throttling 503, timeouts, connection resets) are retried by the SDK's retry policy; these
# settings keep a timer run from hanging for minutes on a dead endpoint.
_TABLE_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 5,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 20,
    "connection_timeout": 10,
    "read_timeout": 30,
}


class TableAuditSink:
    """Azure Table Storage sink: PartitionKey = run id, RowKey = ``{sequence:06d}-{phase}``.

    Records are inserted, never replaced: a retried insert whose first attempt did land finds an identical entity
    and is accepted; a *different* entity under the same key (two writers sharing a run id) is an ``AuditError``.
    """

    def __init__(self, table_client: TableClient) -> None:
        self._client = table_client
        self._table_ready = False
        self.table_name: str = table_client.table_name

    @classmethod
    def from_connection_string(cls, connection_string: str, table: str) -> TableAuditSink:
        """Local / Azurite: an account connection string (keep it out of source control)."""
        from azure.data.tables import TableClient

        _check_table_name(table)
        try:
            client = TableClient.from_connection_string(connection_string, table, **_TABLE_CLIENT_OPTIONS)
        except ValueError as exc:
            raise AuditError(f"audit table connection string is invalid: {_one_line(exc)}") from None
        return cls(client)

    @classmethod
    def from_endpoint(cls, endpoint: str, table: str, credential: TokenCredential) -> TableAuditSink:
        """Deployed: ``https://<account>.table.core.windows.net`` with a token credential (managed identity),
        so no storage key lives in app settings. The identity needs 'Storage Table Data Contributor'."""
        from azure.data.tables import TableClient

        _check_table_name(table)
        if not endpoint.startswith(("https://", "http://")):
            raise AuditError(
                f"audit table endpoint must be a URL like https://<account>.table.core.windows.net, not {endpoint!r}"
            )
        try:
            client = TableClient(endpoint, table, credential=credential, **_TABLE_CLIENT_OPTIONS)
        except ValueError as exc:
            raise AuditError(f"audit table endpoint {endpoint!r} is invalid: {_one_line(exc)}") from None
        return cls(client)

    def _fail(self, doing: str, exc: Exception) -> AuditError:
        code = getattr(exc, "error_code", None) or getattr(exc, "status_code", None)
        detail = f"{code}: " if code else ""
        message = _one_line(getattr(exc, "message", None) or exc)
        return AuditError(f"audit table {self.table_name}: cannot {doing}: {detail}{message}")

    def _ensure_table(self) -> None:
        if self._table_ready:
            return
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            self._client.create_table()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise self._fail("create the table", exc) from None
        self._table_ready = True

    def write(self, record: AuditRecord) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError

        entity = _record_to_entity(record)
        self._ensure_table()
        try:
            self._client.create_entity(entity)
        except ResourceExistsError:
            self._accept_existing(record, entity)
        except AzureError as exc:
            raise self._fail(f"write record {entity['RowKey']} of run {record.run_id}", exc) from None

    def _accept_existing(self, record: AuditRecord, entity: Mapping[str, Any]) -> None:
        from azure.core.exceptions import AzureError

        try:
            existing = self._client.get_entity(entity["PartitionKey"], entity["RowKey"])
            same = _entity_to_record(existing) == record
        except (AzureError, ValueError) as exc:
            raise self._fail(f"check existing record {entity['RowKey']} of run {record.run_id}", exc) from None
        if not same:
            raise AuditError(
                f"audit table {self.table_name}: record {entity['RowKey']} of run {record.run_id} already exists "
                "with different content (two writers share a run id?)"
            )

    def _query(self, run_id: str | None, select: list[str] | None = None, *,
               since: str | None = None) -> Iterator[Mapping[str, Any]]:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            if since is not None:
                # Our own timestamp property, not the service's Timestamp: the strings sort as time does.
                yield from self._client.query_entities(
                    f"{_ENTITY_TIMESTAMP} ge @since", parameters={"since": since}, select=select,
                    results_per_page=1000)
            elif run_id is None:
                yield from self._client.list_entities(select=select, results_per_page=1000)
            else:
                yield from self._client.query_entities(
                    "PartitionKey eq @run", parameters={"run": run_id}, select=select, results_per_page=1000
                )
        except ResourceNotFoundError:
            return  # no table yet: no records
        except AzureError as exc:
            raise self._fail("read records", exc) from None

    def records(self, run_id: str | None = None) -> list[AuditRecord]:
        return self._records(self._query(run_id))

    def records_since(self, timestamp: str) -> list[AuditRecord]:
        return self._records(self._query(None, since=timestamp))

    def last_sequence(self, run_id: str) -> int:
        rows = self._query(run_id, select=["sequence"])
        return max((int(e["sequence"]) for e in rows if isinstance(e.get("sequence"), int)), default=-1)

    def _records(self, entities: Iterator[Mapping[str, Any]]) -> list[AuditRecord]:
        out: list[AuditRecord] = []
        for entity in entities:
            try:
                out.append(_entity_to_record(entity))
            except ValueError as exc:
                log.warning(
                    "audit table %s: entity %s/%s is not an audit record: %s",
                    self.table_name,
                    entity.get("PartitionKey"),
                    entity.get("RowKey"),
                    exc,
                )
        return _sorted(out)

    def runs(self) -> list[str]:
        """Scans the keys of the whole table (select PartitionKey only); fine for an audit table's size."""
        return sorted({str(e["PartitionKey"]) for e in self._query(None, select=["PartitionKey"])})

    def close(self) -> None:
        self._client.close()


def _check_table_name(table: str) -> None:
    if not _TABLE_NAME_RE.match(table or ""):
        raise AuditError(
            f"audit table name {table!r} is invalid: 3-63 letters and digits, starting with a letter (ASR_AUDIT_TABLE)"
        )


def make_sink(settings: Settings) -> AuditSink:
    """The sink the settings ask for. For ``table``, a connection string (local / Azurite) wins over an endpoint;
    with an endpoint the credential is DefaultAzureCredential (the Function App's managed identity when deployed;
    AZURE_CLIENT_ID selects a user-assigned one)."""
    if settings.audit_sink == "jsonl":
        return JsonlAuditSink(settings.audit_path)
    if settings.audit_sink == "table":
        if settings.audit_connection_string:
            return TableAuditSink.from_connection_string(settings.audit_connection_string, settings.audit_table)
        if settings.audit_table_endpoint:
            from azure.identity import DefaultAzureCredential

            return TableAuditSink.from_endpoint(
                settings.audit_table_endpoint, settings.audit_table, DefaultAzureCredential()
            )
        raise AuditError(
            "ASR_AUDIT_SINK=table needs ASR_AUDIT_TABLE_ENDPOINT (managed identity) or ASR_AUDIT_CONNECTION_STRING"
        )
    raise AuditError(f"ASR_AUDIT_SINK must be jsonl or table, not {settings.audit_sink!r}")


# ------------------------------------------------------------------------------------------------------ Auditor


class Auditor:
    """Writes paired records for one run: ``intent()`` before an ARM write, ``outcome()`` after it.

    Sequence numbers increase per record. Used as a context manager, any intent still open at exit gets a
    ``failed`` outcome saying the run ended before the result was known, so no intent is left dangling.
    """

    def __init__(
        self,
        sink: AuditSink,
        *,
        trigger: str,
        actor: str,
        run_id: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        start_sequence: int = 0,
    ) -> None:
        _require_choice("trigger", trigger, TRIGGERS)
        if not actor:
            raise ValueError("audit actor must be non-empty (principal id, app id or cli:<user>)")
        self.sink = sink
        self.run_id = validate_run_id(run_id) if run_id is not None else new_run_id(clock())
        self.trigger = trigger
        self.actor = actor
        self._clock = clock
        self._next = start_sequence
        self._open: dict[int, AuditRecord] = {}

    def _sequence(self) -> int:
        value = self._next
        self._next += 1
        return value

    def intent(
        self,
        *,
        action: str,
        resource_id: str,
        name: str,
        payload: Mapping[str, Any],
        reason: str,
        before_etag: str = "",
        vm_ids: Sequence[str] = (),
    ) -> AuditRecord:
        """Record (durably) that a write is about to happen. Raises ``AuditError`` if it can't: then don't write."""
        record = AuditRecord(
            run_id=self.run_id,
            sequence=self._sequence(),
            phase="intent",
            timestamp=format_timestamp(self._clock()),
            trigger=self.trigger,
            actor=self.actor,
            action=action,
            resource_id=resource_id,
            name=name,
            payload=payload,
            reason=reason,
            before_etag=before_etag,
            vm_ids=tuple(vm_ids),
        )
        self.sink.write(record)
        self._open[record.sequence] = record
        return record

    def outcome(self, intent: AuditRecord, result: str, after_etag: str = "", error: str = "") -> AuditRecord:
        """Record how the write announced by ``intent`` ended. Each intent gets exactly one outcome."""
        if intent.phase != "intent" or intent.run_id != self.run_id:
            raise ValueError("outcome() needs an intent record handed out by this auditor")
        if self._open.get(intent.sequence) != intent:
            raise ValueError(f"intent {intent.sequence} of run {self.run_id} already has an outcome (or is unknown)")
        record = replace(
            intent,
            sequence=self._sequence(),
            phase="outcome",
            timestamp=format_timestamp(self._clock()),
            result=result,
            after_etag=after_etag,
            error=error,
            intent_sequence=intent.sequence,
        )
        self.sink.write(record)
        del self._open[intent.sequence]
        return record

    @property
    def open_intents(self) -> list[AuditRecord]:
        """Intents without an outcome yet, oldest first."""
        return [self._open[k] for k in sorted(self._open)]

    def close(self, error: str = "") -> list[AuditRecord]:
        """Give every open intent a ``failed`` outcome (the write's real result is unknown); returns them."""
        reason = "run ended before the outcome was recorded; the write may or may not have happened"
        if error:
            reason = f"{reason}: {error}"
        return [self.outcome(intent, "failed", error=reason) for intent in self.open_intents]

    def __enter__(self) -> Auditor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close(_one_line(f"{exc_type.__name__}: {exc}"))
        except AuditError as audit_exc:  # don't hide the exception that ended the run
            log.error("could not close open audit intents of run %s: %s", self.run_id, audit_exc)


# ------------------------------------------------------------------------------------------- intents and outcomes


@dataclass(frozen=True)
class IntentState:
    """One intent and what is known of it: its outcome (if the run recorded one) and a later reconciliation."""

    intent: AuditRecord
    outcome: AuditRecord | None = None
    reconcile: AuditRecord | None = None

    @property
    def landed(self) -> bool:
        """The write is known to have taken effect (its own outcome said so, or ARM showed it later)."""
        if self.reconcile is not None:
            return self.reconcile.result == "landed"
        return self.outcome is not None and self.outcome.result == "succeeded"

    @property
    def dangling(self) -> bool:
        """Nobody knows whether the write landed: no outcome (a crash), or a failed one (a lost response, a
        failed verification) — and no reconciliation since. ARM must be read to know."""
        if self.reconcile is not None:
            return False
        return self.outcome is None or self.outcome.result == "failed"


#: An intent younger than this may belong to a run that is still writing (one write, its retries and its
#: long-running operation take minutes at most: the retry budget plus the polling bound). Reconciling it then would
#: race that run's own outcome record, so only older intents count as dangling.
RECONCILE_AFTER = timedelta(minutes=15)
#: How far back an automatic reconciliation (at the start of every writing run) looks; `audit --reconcile` looks at
#: the whole history.
RECONCILE_WINDOW = timedelta(days=7)


def dangling_intents(records: Sequence[AuditRecord], now: datetime,
                     older_than: timedelta = RECONCILE_AFTER) -> list[AuditRecord]:
    """Intents nobody knows the result of (see :attr:`IntentState.dangling`) written at least ``older_than`` ago."""
    cutoff = format_timestamp(now - older_than)
    return [s.intent for s in intent_states(records) if s.dangling and s.intent.timestamp <= cutoff]


def intent_states(records: Sequence[AuditRecord]) -> list[IntentState]:
    """Pair each intent with its outcome and reconciliation (records of any runs, in any order).

    Newer records name their intent (``intent_sequence``); older outcomes answer the earliest unanswered intent of
    the same run for the same action, resource and rule/route, as the Auditor wrote them.
    """
    ordered = _sorted(list(records))
    states: dict[tuple[str, int], IntentState] = {}
    for record in ordered:
        if record.phase == "intent":
            states[(record.run_id, record.sequence)] = IntentState(record)
    for record in ordered:
        if record.phase == "intent":
            continue
        target: tuple[str, int] | None = None
        if record.intent_sequence >= 0:
            target = (record.run_id, record.intent_sequence)
        else:
            target = next((k for k, st in states.items() if k[0] == record.run_id and k[1] < record.sequence
                           and st.outcome is None and (st.intent.action, st.intent.resource_id, st.intent.name)
                           == (record.action, record.resource_id, record.name)), None)
        state = states.get(target) if target is not None else None
        if target is None or state is None:
            log.warning("audit record %s/%d (%s) answers no known intent", record.run_id, record.sequence,
                        record.phase)
            continue
        if record.phase == "outcome" and state.outcome is None:
            states[target] = replace(state, outcome=record)
        elif record.phase == "reconcile":
            states[target] = replace(state, reconcile=record)
    return list(states.values())


def reconcile_record(intent: AuditRecord, *, sequence: int, landed: bool, detail: str, trigger: str, actor: str,
                     after_etag: str = "", clock: Callable[[], datetime] = utc_now) -> AuditRecord:
    """The record that closes a dangling intent once ARM has been read: it lives in the intent's own run (so
    rollback of that run sees it) at ``sequence`` (the next free one there), written by today's trigger/actor."""
    return replace(intent, sequence=sequence, phase="reconcile", timestamp=format_timestamp(clock()), trigger=trigger,
                   actor=actor, result="landed" if landed else "not-landed", error="", reason=detail,
                   after_etag=after_etag, intent_sequence=intent.sequence)
