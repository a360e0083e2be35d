"""Retry and throttling helpers shared by the Azure clients.

Two mechanisms, on purpose:

* Resource Graph queries are POSTs. azure-core's ``RetryPolicy`` does not retry a POST after a dropped
  connection and ignores Resource Graph's own quota headers, so the inventory turns SDK retries off and
  drives :func:`call_with_retries` instead (a query is read-only, so repeating it is always safe).
* ARM network reads and writes (GET/PUT/DELETE) are idempotent, so azure-core's ``RetryPolicy`` handles
  them; :class:`SleepingRetryPolicy` makes its sleeping injectable (tests do not wait) and bounded.

Bounded time (both mechanisms, and the long-running-operation pollers through :class:`BoundedARMPolling`):

* every single wait, a ``Retry-After`` included, is capped at :data:`MAX_WAIT` (60 s): ARM may ask for minutes
  (a throttled subscription), but a Function invocation would rather fail one call and let the next run retry;
* the waits of one call add up to at most :data:`RETRY_BUDGET` (120 s) over a bounded number of attempts;
  when the next wait would overrun it the call fails at once with the last error;
* the polling waits of one long-running operation add up to at most :data:`LRO_BUDGET` (300 s);
* permanent failures are never retried: TLS certificate verification, a DNS name that does not exist, an
  invalid or non-https URL, and HTTP 4xx other than 408/429 (and, on the SDK path, a 409 with Retry-After;
  azure-core would retry *any* status that carries a ``Retry-After``). Connection refused is retried a little
  (:data:`MAX_REFUSED_ATTEMPTS` attempts): a listener being restarted refuses too, but a wrong port keeps refusing.
  Such connection failures surface as :class:`ArmEndpointError`, one line naming the endpoint and the cause.

Every sleep goes through a ``sleep`` callable so tests can record the delays instead of waiting them out.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    IncompleteReadError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import RetryPolicy
from azure.mgmt.core.polling.arm_polling import ARMPolling

from ..telemetry import count_request

_LOG = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], None]

#: Resource Graph reports the caller's remaining quota in the current window and when the window resets.
QUOTA_REMAINING_HEADER = "x-ms-user-quota-remaining"
QUOTA_RESETS_AFTER_HEADER = "x-ms-user-quota-resets-after"

#: Longest single wait (seconds): a Retry-After, a quota reset, a backoff step or an LRO polling interval.
MAX_WAIT = 60.0
#: Longest total of the retry waits of one ARM / Resource Graph call (seconds).
RETRY_BUDGET = 120.0
#: Longest total of the polling waits of one long-running operation (seconds).
LRO_BUDGET = 300.0
#: Attempts of one call that keeps meeting "connection refused" (the first one included).
MAX_REFUSED_ATTEMPTS = 3
#: azure-core's wall-clock bound of one call through the SDK pipeline (attempts and sleeps, measured with
#: ``time.time()`` in ``RetryPolicy.send``); a backstop for real runs, a fake sleep does not consume it.
CALL_TIMEOUT = 300

_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: 4xx statuses the SDK path may retry: timeout and throttling always, 409 only when ARM sends Retry-After
#: (azure-core's own rule for a status outside its list).
_RETRYABLE_4XX = frozenset({408, 409, 429})
_HMS = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")
_DNS_NO_SUCH_NAME = frozenset(code for code in (getattr(socket, "EAI_NONAME", None),
                                                getattr(socket, "EAI_NODATA", None)) if code is not None)


class RetriesExhaustedError(RuntimeError):
    """A call kept failing with retryable errors until its attempts or its wait budget ran out."""

    def __init__(self, attempts: int, last_error: BaseException, *, what: str = "request", waited: float = 0.0,
                 reason: str = "") -> None:
        why = f" ({reason})" if reason else ""
        super().__init__(f"{what}: gave up after {attempts} attempts and {waited:.0f} s of waiting{why}: "
                         f"{describe_error(last_error)}")
        self.attempts = attempts
        self.last_error = last_error
        self.waited = waited


class ArmEndpointError(ServiceRequestError):
    """A request that could not reach ARM, explained on one line naming the endpoint and the cause.

    ``kind``: ``tls`` (certificate verification failed), ``dns`` (the name does not exist), ``url`` (invalid or
    not https), ``refused`` (nothing listens there). Only ``refused`` is ``retryable`` (a little).
    """

    def __init__(self, message: str, *, kind: str, endpoint: str, error: BaseException | None = None) -> None:
        super().__init__(message, error=error)
        self.kind = kind
        self.endpoint = endpoint

    @property
    def retryable(self) -> bool:
        return self.kind == "refused"


class OperationTimeoutError(AzureError):
    """A long-running operation was still running when its polling budget ran out (it may yet finish)."""


@dataclass(frozen=True)
class RetrySettings:
    """Bounds for :func:`call_with_retries`.

    ``max_attempts`` counts every try (the first one included); throttling counts too, so a scan that is
    throttled forever fails instead of hanging a Function invocation until its timeout. ``max_total_wait`` caps
    the sum of the waits of one call (a quota wait carried over from the previous page included).
    """

    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = MAX_WAIT
    #: A Retry-After / quota reset longer than this is capped: the scan would rather retry than stall.
    max_throttle_delay: float = MAX_WAIT
    max_total_wait: float = RETRY_BUDGET
    max_refused_attempts: int = MAX_REFUSED_ATTEMPTS


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
    if seconds != seconds:  # NaN
        return None
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
    ceiling = min(settings.max_delay, settings.base_delay * (2.0 ** min(attempt, 62)))
    return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


def _response_headers(error: HttpResponseError) -> Mapping[str, str] | None:
    response: Any = error.response
    if response is None:
        return None
    headers: Mapping[str, str] = response.headers
    return headers


def retry_delay(error: BaseException, attempt: int, settings: RetrySettings, rng: random.Random) -> float | None:
    """How long to wait before retrying after ``error`` (capped at ``max_throttle_delay`` when the server said);
    ``None`` when the error is not retryable."""
    if isinstance(error, IncompleteReadError):
        # The connection was lost while the body downloaded (a streamed Resource Graph page): no status to judge,
        # transient like a connection dropped before the answer.
        return backoff_delay(attempt, settings, rng)
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
        explained = explain_request_error(error)
        if explained is not None and not explained.retryable:
            return None
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
    """Run ``call`` until it succeeds, a non-retryable error occurs, or the attempt or wait budget is spent
    (:class:`RetriesExhaustedError`, one line). A permanent connection failure (TLS, DNS, URL) is raised at once
    as :class:`ArmEndpointError`.

    Only use this for calls that are safe to repeat (queries, idempotent PUTs by name).
    """
    settings = settings or RetrySettings()
    rng = rng or random.Random()
    attempt = 0
    refused = 0
    waited = 0.0
    while True:
        if throttle is not None and throttle.pending_wait > 0:
            wait, throttle.pending_wait = min(throttle.pending_wait, settings.max_throttle_delay), 0.0
            _LOG.info("%s: quota exhausted, waiting %.1fs for it to reset", what, wait)
            throttle.waits.append(wait)
            waited += wait
            sleep(wait)
        try:
            return call()
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            delay = retry_delay(error, attempt, settings, rng)
            attempt += 1
            explained = explain_request_error(error)
            if delay is None:
                if explained is not None and explained is not error:
                    raise explained from error
                raise
            if explained is not None and explained.kind == "refused":
                refused += 1
                if refused >= settings.max_refused_attempts:
                    raise RetriesExhaustedError(attempt, explained, what=what, waited=waited) from error
            if attempt >= settings.max_attempts:
                raise RetriesExhaustedError(attempt, error, what=what, waited=waited) from error
            if waited + delay > settings.max_total_wait:
                raise RetriesExhaustedError(
                    attempt, error, what=what, waited=waited,
                    reason=f"the next wait of {delay:.0f} s would overrun the {settings.max_total_wait:.0f} s budget",
                ) from error
            _LOG.warning("%s failed (%s); retry %d/%d in %.1fs", what, _describe(error), attempt,
                         settings.max_attempts - 1, delay)
            waited += delay
            sleep(delay)


def _describe(error: BaseException) -> str:
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        return f"HTTP {error.status_code}"
    return type(error).__name__


def describe_error(error: BaseException) -> str:
    """One line for an SDK error: ``HTTP 429 RateLimiting: Rate limit exceeded.`` rather than azure-core's
    three-line ``(code) message / Code: / Message:`` text."""
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        detail = getattr(error, "error", None)
        code = getattr(detail, "code", None)
        message = getattr(detail, "message", None) or _first_line(error)
        return f"HTTP {error.status_code}" + (f" {code}" if code else "") + f": {' '.join(str(message).split())}"
    if isinstance(error, ArmEndpointError):
        return str(error)
    return f"{type(error).__name__}: {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    lines = str(getattr(error, "message", "") or error).strip().splitlines()
    return lines[0].strip() if lines else type(error).__name__


# --- connection failures ---------------------------------------------------------------------------------


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and everything it wraps explicitly: ``__cause__``, azure-core's ``inner_exception``, urllib3's
    ``reason`` and exceptions passed as arguments (requests wraps urllib3's errors that way). Not ``__context__``:
    an exception merely raised while handling another says nothing about the connection."""
    stack: list[BaseException] = [error]
    seen: set[int] = set()
    while stack and len(seen) < 32:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for attr in ("__cause__", "inner_exception", "reason"):
            nested = getattr(current, attr, None)
            if isinstance(nested, BaseException):
                stack.append(nested)
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))


def endpoint_of(url: str | None) -> str:
    """``https://host[:port]`` of a request URL (the part worth naming in an error), or ``"the ARM endpoint"``."""
    if not url:
        return "the ARM endpoint"
    try:
        parts = urlsplit(url)
    except ValueError:
        return url[:200]
    if not parts.scheme or not parts.netloc:
        return url[:200]
    return f"{parts.scheme}://{parts.netloc}"


def explain_request_error(error: BaseException, url: str | None = None) -> ArmEndpointError | None:
    """The clear, one-line form of a connection failure whose cause is known, or ``None`` (not a connection
    failure, or its cause is not known: keep the SDK's error). Looks through the chain azure-core's requests
    transport builds (ServiceRequestError / ServiceResponseError → requests → urllib3 → ssl / socket), see
    ``azure/core/pipeline/transport/_requests_basic.py`` ``RequestsTransport.send``.
    """
    if isinstance(error, ArmEndpointError):
        return error
    if not isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return None
    endpoint = endpoint_of(url)
    for cause in _causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = getattr(cause, "verify_message", None) or _first_line(cause)
            return ArmEndpointError(
                f"TLS certificate verification failed for {endpoint}: {detail}; if a TLS-intercepting proxy sits in "
                "between, set ASR_ARM_CA_BUNDLE to its CA bundle (PEM)", kind="tls", endpoint=endpoint, error=error)
        if isinstance(cause, socket.gaierror) and cause.errno in _DNS_NO_SUCH_NAME:
            host = urlsplit(url).hostname if url else None
            return ArmEndpointError(
                f"DNS name {host or 'of ' + endpoint} does not resolve ({cause.strerror}); check ASR_ARM_ENDPOINT",
                kind="dns", endpoint=endpoint, error=error)
        if isinstance(cause, ConnectionRefusedError):
            return ArmEndpointError(f"connection refused by {endpoint}; check ASR_ARM_ENDPOINT", kind="refused",
                                    endpoint=endpoint, error=error)
        if isinstance(cause, ValueError) and not isinstance(cause, ssl.SSLError):
            # requests' InvalidURL / MissingSchema / InvalidSchema and urllib3's LocationParseError are ValueErrors.
            return ArmEndpointError(f"invalid URL {endpoint}: {_first_line(cause)}; check ASR_ARM_ENDPOINT",
                                    kind="url", endpoint=endpoint, error=error)
    if url and urlsplit(url).scheme.lower() != "https":
        # azure-core's BearerTokenCredentialPolicy refuses to send a token without TLS (a ServiceRequestError).
        return ArmEndpointError(f"{endpoint} is not an https URL (ARM calls carry a bearer token); check "
                                "ASR_ARM_ENDPOINT", kind="url", endpoint=endpoint, error=error)
    return None


# --- azure-core pipeline: the RetryPolicy of the ARM clients ---------------------------------------------


class SleepingRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
    """azure-core's RetryPolicy with the sleep made injectable, each wait capped and each call's waits budgeted.

    What azure-core 1.41 does (``azure/core/pipeline/policies/_retry.py``) and what changes here:

    * ``RetryPolicy.sleep`` honours any ``Retry-After`` in full (``_sleep_for_retry``), else backs off
      ``backoff_factor * 2 ** (n - 1)`` up to ``retry_backoff_max`` (the first retry is immediate). Here every wait
      is capped at ``max_wait`` and the waits of one call add up to at most ``max_total_wait``: :meth:`increment`
      refuses the retry whose wait would overrun it, so the pipeline returns the last response (the SDK raises
      its ``HttpResponseError``) or re-raises the last connection error.
    * ``RetryPolicyBase.is_retry`` retries *any* status >= 400 that carries a ``Retry-After``, for any method; here
      4xx other than 408/409/429 never retry (400/401/403/404 are answers, not hiccups).
    * Connection errors (``ServiceRequestError``) are retried ``retry_connect`` times whatever the cause; here TLS
      verification failures, DNS names that do not exist and invalid / non-https URLs are not retried, and
      "connection refused" is tried ``max_refused_attempts`` times. They are raised as :class:`ArmEndpointError`.
    * azure-core's ``timeout`` (default 604800 s; here :data:`CALL_TIMEOUT`, 300 s) is decremented by the
      *wall-clock* time of each pass of the attempt loop, its sleep included, and once spent the next attempt raises
      ``ServiceRequestTimeoutError`` / ``ServiceResponseTimeoutError``: it bounds real runs but not an injected fake
      sleep, so the wait budget above is counted separately and holds in both.
    """

    def __init__(self, *, sleep: Sleep | None = None, max_wait: float = MAX_WAIT,
                 max_total_wait: float = RETRY_BUDGET, max_refused_attempts: int = MAX_REFUSED_ATTEMPTS,
                 **kwargs: Any) -> None:
        kwargs.setdefault("timeout", CALL_TIMEOUT)
        super().__init__(**kwargs)
        self._sleep_fn = sleep
        self.max_wait = max_wait
        self.max_total_wait = max_total_wait
        self.max_refused_attempts = max_refused_attempts

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = super().configure_retries(options)
        settings["waited"] = 0.0
        settings["refused"] = 0
        settings["next_wait"] = None
        return settings

    def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
        status = response.http_response.status_code
        if 400 <= status < 500 and status not in _RETRYABLE_4XX:
            return False
        return bool(super().is_retry(settings, response))

    def increment(self, settings: dict[str, Any], response: Any = None, error: Exception | None = None) -> bool:
        url = getattr(getattr(response, "http_request", None), "url", None)
        if error is not None:
            explained = explain_request_error(error, url)
            if explained is not None and not explained.retryable:
                return False
            if explained is not None:
                settings["refused"] += 1
                if settings["refused"] >= self.max_refused_attempts:
                    return False
        if not super().increment(settings, response=response, error=error):
            return False
        told = self.get_retry_after(response) if isinstance(response, PipelineResponse) else None
        wait = min(float(told), self.max_wait) if told else min(float(self.get_backoff_time(settings)), self.max_wait)
        if settings["waited"] + wait > self.max_total_wait:
            _LOG.warning("%s: giving up after %d attempts, the next wait of %.0f s would overrun the %.0f s retry "
                         "budget (%.0f s waited)", endpoint_of(url), len(settings["history"]), wait,
                         self.max_total_wait, settings["waited"])
            return False
        settings["next_wait"] = wait
        return True

    def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
        wait = settings.get("next_wait")
        settings["next_wait"] = None
        if wait is None:  # called outside send(): azure-core's own rule, capped
            told = self.get_retry_after(response) if response is not None else None
            wait = min(float(told), self.max_wait) if told else min(float(self.get_backoff_time(settings)),
                                                                      self.max_wait)
        settings["waited"] = settings.get("waited", 0.0) + wait
        if wait <= 0:
            return
        if self._sleep_fn is None:
            transport.sleep(wait)
        else:
            self._sleep_fn(float(wait))

    def send(self, request: Any) -> Any:
        count_request(str(request.http_request.url))  # once per call, whatever its retries (asr.arm.calls)
        try:
            return super().send(request)
        except (ServiceRequestError, ServiceResponseError) as error:
            explained = explain_request_error(error, request.http_request.url)
            if explained is None or explained is error:
                raise
            raise explained from error


# --- azure-core polling: long-running operations -----------------------------------------------------------


class BoundedARMPolling(ARMPolling):
    """azure-mgmt-core's ARMPolling with each polling wait capped and the waits of one operation budgeted.

    ``LROBasePolling._delay`` (``azure/core/polling/base_polling.py``) sleeps ``_extract_delay()``: the
    ``Retry-After`` of the latest status-monitor response (``Azure-AsyncOperation`` / ``Location`` poll), in full,
    else the polling interval; ``_sleep`` goes to ``transport.sleep``. Nothing bounds the total: an operation that
    stays ``InProgress`` is polled forever. Here each wait is at most ``max_wait``, waits go through ``sleep`` when
    given, and once they would overrun ``max_total_wait`` the poller raises :class:`OperationTimeoutError` (the
    operation may still finish in ARM; callers re-read the resource).

    One instance per operation (it keeps the waited total): pass ``polling=BoundedARMPolling(...)`` to a
    ``begin_*`` call. Its ``path_format_arguments`` must be the ``{"endpoint": base_url}`` the generated
    azure-mgmt-network operations give ARMPolling themselves.
    """

    def __init__(self, timeout: float = 30, *, sleep: Sleep | None = None, max_wait: float = MAX_WAIT,
                 max_total_wait: float = LRO_BUDGET, **kwargs: Any) -> None:
        super().__init__(timeout, **kwargs)
        self._sleep_fn = sleep
        self.max_wait = max_wait
        self.max_total_wait = max_total_wait
        self.waited = 0.0
        self.waits: list[float] = []

    def _delay(self) -> None:
        wait = min(float(self._extract_delay()), self.max_wait)
        if self.waited + wait > self.max_total_wait:
            url = str(getattr(self._pipeline_response.http_request, "url", "") or "")
            where = url.split("?", 1)[0] or "the ARM endpoint"
            raise OperationTimeoutError(
                f"long-running operation {where} still {self.status()} after {self.waited:.0f} s of polling (budget "
                f"{self.max_total_wait:.0f} s); it may still finish in ARM")
        self.waited += wait
        self.waits.append(wait)
        if wait <= 0:
            return
        if self._sleep_fn is None:
            self._sleep(wait)
        else:
            self._sleep_fn(wait)
