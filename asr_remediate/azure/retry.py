"""Retry and throttling helpers shared by the Azure clients.

Two mechanisms, on purpose:

* Resource Graph queries are POSTs. azure-core's ``RetryPolicy`` does not retry a POST after a dropped
  connection and ignores Resource Graph's own quota headers, so the inventory turns SDK retries off and
  drives :func:`call_with_retries` instead (a query is read-only, so repeating it is always safe).
* ARM network reads and writes (GET/PUT/DELETE) are idempotent, so azure-core's ``RetryPolicy`` handles
  them; :class:`SleepingRetryPolicy` only makes its sleeping injectable so tests do not wait.

Every sleep goes through a ``sleep`` callable so tests can record the delays instead of waiting them out.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.policies import RetryPolicy

_LOG = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], None]

#: Resource Graph reports the caller's remaining quota in the current window and when the window resets.
QUOTA_REMAINING_HEADER = "x-ms-user-quota-remaining"
QUOTA_RESETS_AFTER_HEADER = "x-ms-user-quota-resets-after"

_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_HMS = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


class RetriesExhaustedError(RuntimeError):
    """A call kept failing with retryable errors until the attempt budget ran out."""

    def __init__(self, attempts: int, last_error: BaseException) -> None:
        super().__init__(f"gave up after {attempts} attempts: {last_error}")
        self.attempts = attempts
        self.last_error = last_error


@dataclass(frozen=True)
class RetrySettings:
    """Bounds for :func:`call_with_retries`.

    ``max_attempts`` counts every try (the first one included); throttling counts too, so a scan that is
    throttled forever fails instead of hanging a Function invocation until its timeout.
    """

    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0
    #: A Retry-After / quota reset longer than this is capped: the scan would rather retry than stall.
    max_throttle_delay: float = 300.0


@dataclass
class ThrottleState:
    """Carries "wait before the next request" across calls (Resource Graph quota exhausted)."""

    pending_wait: float = 0.0
    waits: list[float] = field(default_factory=list)


def parse_duration(value: str | None) -> float | None:
    """Seconds from a Retry-After style value: ``"7"``, ``"1.5"`` or Resource Graph's ``"hh:mm:ss"``.

    HTTP-date Retry-After values are not used by ARM; they return ``None`` (the caller backs off instead).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        match = _HMS.match(text)
        if not match:
            return None
        days, hours, minutes, secs, frac = match.groups()
        seconds = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(secs)
        if frac:
            seconds += float("0." + frac)
    return max(seconds, 0.0)


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup that tolerates plain dicts and azure-core's header mappings."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None


def quota_wait(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait before the next Resource Graph call, or ``None`` when quota remains.

    Resource Graph answers every query with the caller's remaining quota; at 0 the next call would be
    throttled, so waiting for the window to reset is cheaper than collecting a 429.
    """
    remaining = header(headers, QUOTA_REMAINING_HEADER)
    if remaining is None:
        return None
    try:
        left = int(remaining.strip())
    except ValueError:
        return None
    if left > 0:
        return None
    reset = parse_duration(header(headers, QUOTA_RESETS_AFTER_HEADER))
    return reset if reset is not None else 1.0


def backoff_delay(attempt: int, settings: RetrySettings, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, so retries spread out."""
    ceiling = min(settings.max_delay, settings.base_delay * (2.0**attempt))
    return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


def _response_headers(error: HttpResponseError) -> Mapping[str, str] | None:
    response: Any = error.response
    if response is None:
        return None
    headers: Mapping[str, str] = response.headers
    return headers


def retry_delay(error: BaseException, attempt: int, settings: RetrySettings, rng: random.Random) -> float | None:
    """How long to wait before retrying after ``error``; ``None`` when the error is not retryable."""
    if isinstance(error, HttpResponseError):
        status = error.status_code
        if status not in _RETRYABLE_STATUS:
            return None
        headers = _response_headers(error)
        told = parse_duration(header(headers, "Retry-After"))
        if told is None and status == 429:
            told = quota_wait(headers)
        if told is not None:
            return min(told, settings.max_throttle_delay)
        return backoff_delay(attempt, settings, rng)
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        # Connection refused / reset / dropped before a response: transient until proven otherwise.
        return backoff_delay(attempt, settings, rng)
    return None


def call_with_retries(
    call: Callable[[], T],
    *,
    settings: RetrySettings | None = None,
    sleep: Sleep,
    rng: random.Random | None = None,
    throttle: ThrottleState | None = None,
    what: str = "request",
) -> T:
    """Run ``call`` until it succeeds, a non-retryable error occurs, or the attempt budget is spent.

    Only use this for calls that are safe to repeat (queries, idempotent PUTs by name).
    """
    settings = settings or RetrySettings()
    rng = rng or random.Random()
    attempt = 0
    while True:
        if throttle is not None and throttle.pending_wait > 0:
            wait, throttle.pending_wait = throttle.pending_wait, 0.0
            _LOG.info("%s: quota exhausted, waiting %.1fs for it to reset", what, wait)
            throttle.waits.append(wait)
            sleep(wait)
        try:
            return call()
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            delay = retry_delay(error, attempt, settings, rng)
            attempt += 1
            if delay is None:
                raise
            if attempt >= settings.max_attempts:
                raise RetriesExhaustedError(attempt, error) from error
            _LOG.warning("%s failed (%s); retry %d/%d in %.1fs", what, _describe(error), attempt,
                         settings.max_attempts - 1, delay)
            sleep(delay)


def _describe(error: BaseException) -> str:
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        return f"HTTP {error.status_code}"
    return type(error).__name__


class SleepingRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
    """azure-core's RetryPolicy with the sleep made injectable.

    Behaviour is otherwise unchanged: Retry-After is honoured, else exponential backoff; GET/PUT/DELETE are
    retried after 408/429/5xx and after connection errors (safe because those ARM calls are idempotent).
    """

    def __init__(self, *, sleep: Sleep | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sleep_fn = sleep

    def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
        if self._sleep_fn is None:
            super().sleep(settings, transport, response=response)
            return
        if response is not None:
            retry_after = self.get_retry_after(response)
            if retry_after:
                self._sleep_fn(float(retry_after))
                return
        backoff = self.get_backoff_time(settings)
        if backoff > 0:
            self._sleep_fn(float(backoff))
