"""The cyclic collector is paused while a scan runs (gcpause.py): restored as it was, also with nested and concurrent
scans; and it is sound because a scan makes no cyclic garbage of its own — only ``ipaddress`` networks of a /31 or
/32 are self-referencing (``IPv4Network.__init__`` stores ``self.hosts = self.__iter__`` or a lambda for them, CPython
3.11 Lib/ipaddress.py), and the first collection after the scan frees them."""

from __future__ import annotations

import gc
import ipaddress
import threading
from collections.abc import Iterator

import pytest

from asr_remediate import gcpause
from asr_remediate.config import Settings
from asr_remediate.engine import scan
from asr_remediate.estate import build_estate
from benchmarks.generate import generate
from benchmarks.run import clear_engine_memos
from tests import tagdata


@pytest.fixture
def collector_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_off_inside_and_back_on_after_even_on_error(collector_enabled: None) -> None:
    with gcpause.collector_paused():
        assert not gc.isenabled()
        with gcpause.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "the inner block ending does not enable it under the outer one"
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gcpause.collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_caller_that_disabled_the_collector_keeps_it_disabled(collector_enabled: None) -> None:
    gc.disable()
    with gcpause.collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_overlapping_scans_in_threads_enable_it_once_the_last_ends(collector_enabled: None) -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with gcpause.collector_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with gcpause.collector_paused():
            second_in.set()
            first_out.wait(5)
            seen.append(gc.isenabled())  # the first scan has ended, this one is still running

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [False]
    assert gc.isenabled()


def test_a_scan_makes_no_cyclic_garbage_but_ipaddress_networks_of_single_addresses(collector_enabled: None) -> None:
    tags = tagdata.full()
    estate = build_estate(generate(60, tags=tags).resources)
    clear_engine_memos()  # every prefix parsed afresh, as in a cold scan
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        plan = scan(estate, tags, Settings())
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert plan.reports
    # Plain prefixes are parsed without ipaddress (ipset._plain_prefix); what is left builds few networks, if any.
    networks = [o for o in garbage if isinstance(o, ipaddress.IPv4Network)]
    assert all(n.prefixlen >= 31 for n in networks)
    owned = {id(n) for n in networks} | {id(vars(n)) for n in networks}
    for thing in garbage:
        if isinstance(thing, ipaddress.IPv4Network | ipaddress.IPv4Address):
            continue
        # What a network holds: its __dict__, the bound method or lambda stored as ``hosts``, its cached values.
        referrers = [r for r in gc.get_referrers(thing) if id(r) in owned]
        assert referrers, f"cyclic garbage not from ipaddress: {type(thing).__name__} {thing!r:.200}"


def _memo_entries() -> int:
    from asr_remediate import ipset

    return sum(len(memo._entries) for memo in ipset._MEMOS)


def test_the_engines_memos_are_emptied_when_the_last_scan_ends_and_not_before() -> None:
    """Every module-level IdentityCache of the package is registered (so clear_memos reaches it); a scan fills
    them, a nested or still-running outer block keeps them, and the end of the last block empties them: the next
    scan reads a new estate and could hit none, so they would only keep this one's objects alive."""
    import importlib
    import pkgutil

    import asr_remediate
    from asr_remediate import ipset

    modules = [importlib.import_module(f"asr_remediate.{m.name}") for m in pkgutil.iter_modules(asr_remediate.__path__)
               if m.name != "__main__"]
    found = [v for module in modules for v in vars(module).values() if isinstance(v, ipset.IdentityCache)]
    assert found and all(any(v is memo for memo in ipset._MEMOS) for v in found)

    tags = tagdata.full()
    estate = build_estate(generate(40, tags=tags).resources)
    with gcpause.collector_paused():
        plan = scan(estate, tags, Settings())
        assert _memo_entries() > 0, "the nested scan's end is not the last: the memos stay for the outer block"
    assert plan.reports and _memo_entries() == 0
    again = scan(estate, tags, Settings())
    assert again == plan and _memo_entries() == 0  # memos only speed a scan up; emptied, the plan is the same
