"""Pausing Python's cyclic garbage collector while the pure pipeline runs.

A scan builds millions of small immutable objects (interval tuples, pieces, findings, memo entries) that stay alive
until it returns. The cyclic collector does not free any of them — they form no reference cycles, reference counting
frees what dies — but a generation-2 collection traverses all of them, and one runs each time the surviving objects
grow by a quarter: five full traversals in a 10,000-VM scan, a quarter of its time. Paused, they are traversed once,
by the first collection after the scan (``benchmarks/run.py`` reports that collection too). The only cyclic garbage
a scan can make is the standard library's ``ipaddress.IPv4Network`` of a /31 or /32 (it stores a bound method on
itself) where one is still built (most prefixes are parsed without it), a few bytes each, freed by that collection;
``tests/test_gcpause.py`` keeps it that way.

When the last concurrent block ends, the engine's memos (``ipset.IdentityCache``) are emptied as well: keyed by the
identity of the scan's estate objects, no later scan (a new estate each run and each event) can hit them, and kept
they would hold that estate alive and be traversed by that first collection (about half of it at 10,000 VMs).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .ipset import clear_memos

_lock = threading.Lock()
_depth = 0  # scans in progress (the Function App may run several in threads)
_restore = False  # whether the collector was enabled when the first of them began


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block; it is enabled again when the last concurrent block ends, if it
    was enabled when the first began (a caller that disabled it keeps it disabled), and the engine's memos are
    emptied then."""
    global _depth, _restore
    with _lock:
        if _depth == 0:
            _restore = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                clear_memos()
                if _restore:
                    gc.enable()
