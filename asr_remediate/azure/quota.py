"""Admission of concurrent Resource Graph requests within the quota the service reports.

Resource Graph throttles per user: every answer carries ``x-ms-user-quota-remaining`` (requests left in the
current window) and ``x-ms-user-quota-resets-after`` (``hh:mm:ss`` until the window resets); the default quota is
15 requests per 5-second window ("Guidance for throttled requests in Azure Resource Graph",
https://learn.microsoft.com/azure/governance/resource-graph/concepts/guidance-for-throttled-requests). Pages of one
query are chained by ``$skipToken`` and cannot overlap, but the queries of different subscription batches can. The
gate lets a request start only while fewer requests are in flight than both the concurrency limit and the
remaining quota the answers reported (the lowest since the window began: answers can arrive out of order) — every
request in flight is counted as if it will use one unit that no
answer has reflected yet, so the quota is never overrun by our own requests. Before any answer (quota unknown) and
once the quota is spent, one request at a time goes: the first request after an exhausted window first waits for
the reset the answer announced.

>>> gate = QuotaGate(max_in_flight=4)
>>> gate.try_acquire()                     # quota unknown: one probe request may start
0.0
>>> gate.try_acquire() is None             # ... and only one
True
>>> gate.release({"x-ms-user-quota-remaining": "2", "x-ms-user-quota-resets-after": "00:00:04"})
>>> [gate.try_acquire(), gate.try_acquire(), gate.try_acquire()]   # 2 left: two may run at once
[0.0, 0.0, None]
>>> gate.release({"x-ms-user-quota-remaining": "0", "x-ms-user-quota-resets-after": "00:00:04"})
>>> gate.try_acquire() is None             # spent, and one request is still in flight
True
>>> gate.release({"x-ms-user-quota-remaining": "0", "x-ms-user-quota-resets-after": "00:00:03"})
>>> gate.try_acquire()                     # nothing in flight: the next one first waits for the later reset
4.0
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping

from .retry import QUOTA_REMAINING_HEADER, header, quota_wait


class QuotaGate:
    """Thread-safe admission: ``acquire()`` blocks until a request may start and returns how long to wait before
    sending it (the announced reset of an exhausted window, at most ``max_wait``); ``release(headers)`` records the
    answer (or ``None`` when the request got no answer)."""

    def __init__(self, max_in_flight: int, *, max_wait: float = 60.0) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self.max_wait = max_wait
        self._cond = threading.Condition()
        self._in_flight = 0
        self._remaining: int | None = None  # the lowest remaining quota reported in this window; None = not known
        self._reset_wait = 0.0  # owed before the next request once the quota is spent
        self._answered = False  # an answer came in this window
        #: the most requests that were ever in flight at once (for tests and the benchmark)
        self.peak_in_flight = 0
        #: waits handed out for exhausted windows
        self.waits: list[float] = []

    def _admissible(self) -> bool:
        if self._in_flight >= self.max_in_flight:
            return False
        if self._remaining is None:
            # Before the first answer of a window one probe goes alone; an answer without the quota header (a proxy
            # stripped it) leaves only the concurrency limit, and 429s are still retried.
            return self._in_flight == 0 if not self._answered else True
        if self._remaining <= 0:
            return self._in_flight == 0
        return self._in_flight < self._remaining

    def _admit(self, already_waited: bool) -> float:
        self._in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        wait, self._reset_wait = self._reset_wait, 0.0
        if wait > 0:
            self._remaining, self._answered = None, False  # a new window: learn its quota from the next answer
            if already_waited:
                return 0.0
            self.waits.append(wait)
        return wait

    def try_acquire(self, *, already_waited: bool = False) -> float | None:
        """Like :meth:`acquire` without blocking: ``None`` when no request may start now."""
        with self._cond:
            return self._admit(already_waited) if self._admissible() else None

    def acquire(self, *, already_waited: bool = False) -> float:
        """``already_waited``: the caller has just slept a throttled (429) answer's delay, which covered the reset;
        it then starts at once and the owed wait is settled."""
        with self._cond:
            self._cond.wait_for(self._admissible)
            return self._admit(already_waited)

    def release(self, headers: Mapping[str, str] | None) -> None:
        with self._cond:
            self._in_flight -= 1
            self._answered = self._answered or headers is not None
            remaining = header(headers, QUOTA_REMAINING_HEADER) if headers is not None else None
            if remaining is not None:
                with contextlib.suppress(ValueError):
                    reported = int(remaining.strip())
                    # Answers can arrive out of order; within a window the quota only goes down, so the lowest
                    # report is the true bound (a window reset is learnt afresh, see _admit).
                    self._remaining = reported if self._remaining is None else min(self._remaining, reported)
            wait = quota_wait(headers) if headers is not None else None
            if wait is not None:
                self._reset_wait = float(max(self._reset_wait, min(wait, self.max_wait)))
            self._cond.notify_all()
