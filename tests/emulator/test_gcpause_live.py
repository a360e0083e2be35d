"""A live run pauses the cyclic collector from its first Resource Graph page to its plan (Runtime._run, gcpause.py).
Sound because what the run leaves for the collector does not grow with the estate: the SDK clients a run builds leave
a few hundred objects in reference cycles (msrest ``Serializer`` / ``Deserializer``, their model classes and closures
— per client, not per request), and the parser and pipeline none but the standard library's self-referencing
``ipaddress`` networks of single addresses (IPv4 /31-/32 and, checking an IPv6 prefix, IPv6 /127-/128; see
tests/test_gcpause.py), one per such prefix. So the pause defers a bounded amount of garbage, and spares
the parsed estate one traversal per full collection its growth would trigger."""

from __future__ import annotations

import gc
from collections import Counter
from typing import Any

from tests.emulator.test_end_to_end import SCOPE, make_runtime


def _garbage_of_a_run(runtime: Any, arm: Any) -> tuple[Counter[str], list[bool], int]:
    """The types of the objects a run leaves in reference cycles (no automatic collection runs meanwhile, so one
    collection after it sees them all), whether the collector was enabled at each progress message, and the Resource
    Graph pages the run read."""
    arm.clear_log()
    was, threshold = gc.isenabled(), gc.get_threshold()
    seen: list[bool] = []
    runtime.progress = lambda _message: seen.append(gc.isenabled())
    gc.collect()
    gc.enable()
    gc.set_threshold(10**9)
    try:
        result = runtime.run(SCOPE, trigger="timer", actor="test")
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        kinds = Counter(type(o).__name__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.set_threshold(*threshold)
        if not was:
            gc.disable()
    assert result.plan.reports
    return kinds, seen, arm.count("POST", r"/providers/Microsoft\.ResourceGraph/resources$")


def test_a_live_run_pauses_the_collector_and_leaves_garbage_that_does_not_grow_with_its_pages(estate_arm, tmp_path):
    one_page, _ = make_runtime(estate_arm, tmp_path, apply=False, read_admin_rules=True)
    many_pages, _ = make_runtime(estate_arm, tmp_path, apply=False, read_admin_rules=True)
    many_pages._inventory_kwargs["page_size"] = 5
    for runtime in (one_page, many_pages):
        runtime.run(SCOPE, trigger="timer", actor="warm-up")  # imports and first-use caches are not garbage

    few, seen_few, few_pages = _garbage_of_a_run(one_page, estate_arm)
    many, seen_many, many_pages_read = _garbage_of_a_run(many_pages, estate_arm)

    assert gc.isenabled()
    assert seen_few and seen_many and not any(seen_few + seen_many), "paused from the first page on"
    assert many_pages_read > 5 * few_pages, (few_pages, many_pages_read)
    assert sum(many.values()) == sum(few.values()), (few, many)  # per run, not per page or row
    assert sum(few.values()) < 2_000
