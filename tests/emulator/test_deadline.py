"""Bounded time for a whole invocation: writes start only before the run's deadline, the rest waits for the next run.

The Functions host ends an invocation at host.json's ``functionTimeout`` ("Function app timeout duration",
learn.microsoft.com/azure/azure-functions/functions-scale#timeout); a write cut off there leaves an intent without
its outcome. So timer, queue and Event Grid runs stop *starting* writes early enough for one to finish.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asr_remediate import triggers
from asr_remediate.azure.retry import RETRY_BUDGET
from asr_remediate.service import APPLIED, DEADLINE_NOTE, DEFERRED, Deadline
from tests.emulator.arm_emulator import ArmEmulator, RecordedRequest
from tests.emulator.test_end_to_end import SCOPE, make_runtime
from tests.scenario import REPO


def test_the_deadline_leaves_one_write_its_retry_budget_before_the_host_timeout() -> None:
    host = json.loads((REPO / "host.json").read_text())
    hours, minutes, seconds = (int(part) for part in host["functionTimeout"].split(":"))
    assert hours * 3600 + minutes * 60 + seconds == triggers.FUNCTION_TIMEOUT_SECONDS
    assert 0 < triggers.RUN_TIME_LIMIT_SECONDS <= triggers.FUNCTION_TIMEOUT_SECONDS - RETRY_BUDGET - 60


def test_writes_stop_at_the_deadline_and_the_rest_is_deferred_with_a_note(estate_arm: ArmEmulator,
                                                                          tmp_path: Path) -> None:
    now = [0.0]

    def slow_write(_arm: ArmEmulator, _request: RecordedRequest) -> None:
        now[0] += 100.0  # each write takes 100 s of the invocation

    estate_arm.before("PUT", r"/(securityRules|routes)/asr-remediate-", slow_write, times=100)
    runtime, sink = make_runtime(estate_arm, tmp_path)
    runtime.deadline = Deadline(250.0, clock=lambda: now[0])
    result = runtime.run(SCOPE, trigger="timer", actor="test")
    assert result.applied is not None
    assert [o.result for o in result.applied.outcomes[:4]] == [APPLIED, APPLIED, APPLIED, DEFERRED]
    deferred = [o for o in result.applied.outcomes if o.result == DEFERRED]
    assert len(deferred) == 13 - 3 and all(o.detail == DEADLINE_NOTE for o in deferred)
    assert result.note == "time limit reached: 10 change(s) left for the next run"
    records = sink.records(result.run_id)
    assert sum(r.phase == "intent" for r in records) == sum(r.phase == "outcome" for r in records) == 3

    following = make_runtime(estate_arm, tmp_path)[0].run(SCOPE, trigger="timer", actor="test")  # no deadline
    assert following.applied is not None and following.applied.count(APPLIED) == 10  # what was left


def test_a_timer_run_past_its_time_limit_writes_nothing_and_says_so(app_env: ArmEmulator,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASR_APPLY", "true")
    monkeypatch.setattr(triggers, "RUN_TIME_LIMIT_SECONDS", 0)
    summary = triggers.on_timer()
    # 14 planned: the hub firewall's group is skipped (it needs ASR_APPLY_FIREWALL), the other 13 are deferred.
    assert summary["applied"] == 0 and summary["deferred"] == 13 and summary["plannedChanges"] == 14
    assert summary["note"] == "time limit reached: 13 change(s) left for the next run"
    assert app_env.count("PUT") == 0
