"""The pure parts of asr_remediate/azure/retry.py: durations, capped delays, the wait budget of call_with_retries,
the one-line explanation of connection failures, and the bounded LRO poller's delay (no network here)."""

from __future__ import annotations

import json
import random
import socket
import ssl
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.mgmt.core.exceptions import ARMErrorFormat

from asr_remediate.azure.retry import (
    LRO_BUDGET,
    MAX_WAIT,
    RETRY_BUDGET,
    ArmEndpointError,
    BoundedARMPolling,
    OperationTimeoutError,
    RetriesExhaustedError,
    RetrySettings,
    SleepingRetryPolicy,
    ThrottleState,
    call_with_retries,
    describe_error,
    endpoint_of,
    explain_request_error,
    parse_duration,
    retry_delay,
)

URL = "https://management.example.com/subscriptions/s/providers/x?api-version=1"


class _Response:
    """Just enough of an azure-core HttpResponse for HttpResponseError."""

    def __init__(self, status: int, headers: dict[str, str] | None = None, code: str = "RateLimiting",
                 message: str = "Rate limit exceeded.") -> None:
        self.status_code = status
        self.reason = "status"
        self.headers = headers or {}
        self.content_type = "application/json"
        self.request = None
        self._body = json.dumps({"error": {"code": code, "message": message}})

    def text(self, encoding: str | None = None) -> str:
        return self._body


def http_error(status: int, **headers: str) -> HttpResponseError:
    return HttpResponseError(response=_Response(status, {k.replace("_", "-"): v for k, v in headers.items()}),
                             error_format=ARMErrorFormat)


def wrapped(cause: BaseException,
            kind: type[ServiceRequestError] | type[ServiceResponseError] = ServiceRequestError) -> Exception:
    """A connection error as azure-core's requests transport builds it: the cause as ``error=`` and as ``__cause__``."""
    try:
        try:
            raise cause
        except BaseException as inner:
            raise kind(str(inner), error=inner) from inner
    except Exception as outer:
        return outer


# --- durations and single delays ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("7", 7.0), ("1.5", 1.5), ("00:00:05", 5.0), ("01:00:00", 3600.0), ("1.02:00:00", 93600.0), ("-3", 0.0),
    ("", None), (None, None), ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("nan", None),
])
def test_parse_duration(text, seconds):
    """Retry-After is delta-seconds (RFC 9110 §10.2.3); Resource Graph's x-ms-user-quota-resets-after is hh:mm:ss
    ("Guidance for throttled requests in Azure Resource Graph")."""
    assert parse_duration(text) == seconds


def test_a_retry_after_of_an_hour_is_capped_at_60s():
    assert retry_delay(http_error(429, Retry_After="3600"), 0, RetrySettings(), random.Random(1)) == MAX_WAIT
    assert retry_delay(http_error(503, Retry_After="5"), 0, RetrySettings(), random.Random(1)) == 5.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412])
def test_client_errors_are_not_retryable_even_with_retry_after(status):
    assert retry_delay(http_error(status, Retry_After="5"), 0, RetrySettings(), random.Random(1)) is None


def test_backoff_is_capped_and_survives_huge_attempt_numbers():
    settings = RetrySettings(base_delay=1.0, max_delay=8.0)
    delays = [retry_delay(http_error(500), n, settings, random.Random(n)) for n in (0, 3, 10, 5000)]
    assert all(d is not None and 0 < d <= 8.0 for d in delays)


# --- call_with_retries: attempts and the wait budget ---------------------------------------------------------------


def failing(*errors: BaseException) -> Any:
    """A call that raises ``errors`` in turn (the last one forever), counting its attempts."""
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        raise errors[min(len(calls), len(errors)) - 1]

    call.calls = calls  # type: ignore[attr-defined]
    return call


def test_throttling_forever_stops_at_the_wait_budget():
    call = failing(http_error(429, Retry_After="3600"))
    waits: list[float] = []

    with pytest.raises(RetriesExhaustedError) as info:
        call_with_retries(call, sleep=waits.append, what="Resource Graph q")

    assert waits == [MAX_WAIT, MAX_WAIT] and sum(waits) <= RETRY_BUDGET
    assert len(call.calls) == 3 and info.value.attempts == 3 and info.value.waited == 120.0
    text = str(info.value)
    assert text == ("Resource Graph q: gave up after 3 attempts and 120 s of waiting (the next wait of 60 s would "
                    "overrun the 120 s budget): HTTP 429 RateLimiting: Rate limit exceeded.")


def test_attempts_stay_bounded_when_the_waits_are_short():
    call = failing(http_error(500))
    waits: list[float] = []
    with pytest.raises(RetriesExhaustedError) as info:
        call_with_retries(call, sleep=waits.append, settings=RetrySettings(max_attempts=4, base_delay=0.01),
                          rng=random.Random(1))
    assert len(call.calls) == 4 and len(waits) == 3 and info.value.attempts == 4
    assert "\n" not in str(info.value)


def test_a_carried_quota_wait_is_capped_and_counts_towards_the_budget():
    throttle = ThrottleState(pending_wait=3600.0)
    call = failing(http_error(429, Retry_After="50"))
    waits: list[float] = []
    with pytest.raises(RetriesExhaustedError) as info:
        call_with_retries(call, sleep=waits.append, throttle=throttle)
    assert waits == [MAX_WAIT, 50.0]  # 60 + 50 = 110; another 50 would overrun 120
    assert throttle.waits == [MAX_WAIT] and info.value.waited == 110.0


def test_a_permanent_connection_failure_is_raised_at_once_and_explained():
    call = failing(wrapped(ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                                                          "failed: self-signed certificate")))
    waits: list[float] = []
    with pytest.raises(ArmEndpointError) as info:
        call_with_retries(call, sleep=waits.append)
    assert len(call.calls) == 1 and waits == []
    assert info.value.kind == "tls" and "ASR_ARM_CA_BUNDLE" in str(info.value)


def test_connection_refused_gets_three_attempts():
    call = failing(wrapped(ConnectionRefusedError(111, "Connection refused")))
    waits: list[float] = []
    with pytest.raises(RetriesExhaustedError) as info:
        call_with_retries(call, sleep=waits.append, rng=random.Random(1))
    assert len(call.calls) == 3 and len(waits) == 2
    assert "connection refused by the ARM endpoint" in str(info.value)


def test_a_transient_error_then_success():
    results: list[Any] = [http_error(503), "ok"]

    def call() -> str:
        item = results.pop(0)
        if isinstance(item, BaseException):
            raise item
        return str(item)

    assert call_with_retries(call, sleep=lambda _: None, rng=random.Random(1)) == "ok"


# --- explaining connection failures ---------------------------------------------------------------------------------


def test_tls_verification_failure_is_permanent_and_names_the_endpoint():
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    explained = explain_request_error(wrapped(cause), URL)
    assert explained is not None and explained.kind == "tls" and not explained.retryable
    assert str(explained).startswith("TLS certificate verification failed for https://management.example.com: ")
    assert str(explained).endswith("set ASR_ARM_CA_BUNDLE to its CA bundle (PEM)")


def test_a_name_that_does_not_exist_is_permanent_but_a_temporary_dns_failure_is_not_explained():
    missing = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    explained = explain_request_error(wrapped(missing), URL)
    assert explained is not None and explained.kind == "dns" and not explained.retryable
    assert str(explained) == ("DNS name management.example.com does not resolve (Name or service not known); check "
                              "ASR_ARM_ENDPOINT")
    # EAI_AGAIN ("Temporary failure in name resolution") is a resolver hiccup: left to the usual retries.
    assert explain_request_error(wrapped(socket.gaierror(socket.EAI_AGAIN, "Temporary failure")), URL) is None


def test_connection_refused_is_retryable():
    explained = explain_request_error(wrapped(ConnectionRefusedError(111, "Connection refused")), URL)
    assert explained is not None and explained.kind == "refused" and explained.retryable


def test_invalid_and_non_https_urls_are_permanent():
    bad = explain_request_error(wrapped(ValueError("Failed to parse: Host 'a b'"), ServiceResponseError), "https://a b")
    assert bad is not None and bad.kind == "url" and str(bad).startswith("invalid URL https://a b: Failed to parse")
    plain = explain_request_error(ServiceRequestError("Bearer token authentication is not permitted"), "http://h:1/x")
    assert plain is not None and plain.kind == "url" and str(plain).startswith("http://h:1 is not an https URL")


def test_other_connection_errors_are_left_alone():
    assert explain_request_error(wrapped(ConnectionResetError(104, "reset")), URL) is None
    assert explain_request_error(ServiceResponseError("Connection aborted"), URL) is None
    assert explain_request_error(http_error(500), URL) is None
    try:  # a ValueError only in __context__ (raised while handling it) says nothing about the URL
        try:
            raise ValueError("unrelated")
        except ValueError:
            raise ServiceResponseError("Connection aborted") from None
    except ServiceResponseError as error:
        assert explain_request_error(error, URL) is None


def test_endpoint_of():
    assert endpoint_of(URL) == "https://management.example.com"
    assert endpoint_of(None) == "the ARM endpoint"
    assert endpoint_of("management.azure.com") == "management.azure.com"


def test_describe_error_is_one_line():
    assert describe_error(http_error(403)) == "HTTP 403 RateLimiting: Rate limit exceeded."
    assert describe_error(ServiceResponseError("line one\nline two")) == "ServiceResponseError: line one"


# --- the SDK retry policy's defaults and the LRO poller's delay ---------------------------------------------------


def test_sleeping_retry_policy_defaults():
    """azure-core's RetryPolicy ``timeout`` defaults to 604800 s (7 days, RetryPolicyBase.__init__); ours is 300."""
    policy = SleepingRetryPolicy()
    assert policy.timeout == 300 and policy.max_wait == MAX_WAIT and policy.max_total_wait == RETRY_BUDGET
    assert SleepingRetryPolicy(timeout=10).timeout == 10


def test_bounded_poller_caps_each_wait_and_the_total():
    """``LROBasePolling._delay`` sleeps ``_extract_delay()`` — Retry-After of the latest status-monitor response,
    else the polling interval (azure/core/polling/base_polling.py)."""
    waits: list[float] = []
    poller = BoundedARMPolling(5, sleep=waits.append)
    poller._pipeline_response = SimpleNamespace(  # type: ignore[assignment]
        http_response=SimpleNamespace(headers={"Retry-After": "3600"}),
        http_request=SimpleNamespace(url="https://arm.example/operations/op1?api-version=1"))
    poller._operation = SimpleNamespace()  # type: ignore[assignment]
    poller._status = "InProgress"

    for _ in range(int(LRO_BUDGET // MAX_WAIT)):
        poller._delay()
    with pytest.raises(OperationTimeoutError, match=r"operation https://arm\.example/operations/op1 still InProgress"):
        poller._delay()
    assert waits == [MAX_WAIT] * 5 and poller.waited == LRO_BUDGET


def test_bounded_poller_uses_the_interval_without_retry_after():
    waits: list[float] = []
    poller = BoundedARMPolling(5, sleep=waits.append)
    poller._pipeline_response = SimpleNamespace(  # type: ignore[assignment]
        http_response=SimpleNamespace(headers={}), http_request=SimpleNamespace(url="https://arm.example/op"))
    poller._status = "InProgress"
    poller._delay()
    assert waits == [5.0]
