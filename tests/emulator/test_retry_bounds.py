"""Bounded time against the HTTPS emulator: capped Retry-After, a wait budget per call and per long-running
operation, and permanent failures (TLS, URL, 4xx) that fail at the first attempt with one line.

The real SDK clients run against the emulator; ``FakeSleep`` records the waits instead of sleeping, so a test asserts
the exact waits a real run would sleep. azure-core sources cited are those of azure-core 1.41 / azure-mgmt-core 1.6
in the venv's site-packages.
"""

from __future__ import annotations

import random
import socket
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import NetworkManagementClient

from asr_remediate.azure.credentials import arm_client_kwargs
from asr_remediate.azure.inventory import fetch_resources, fetch_service_tags
from asr_remediate.azure.network import ArmError, NetworkWriter
from asr_remediate.azure.retry import (
    LRO_BUDGET,
    MAX_WAIT,
    RETRY_BUDGET,
    ArmEndpointError,
    RetriesExhaustedError,
    SleepingRetryPolicy,
)
from asr_remediate.errors import one_line
from tests.emulator.arm_emulator import Fault
from tests.emulator.fixtures import SUB, FakeSleep, load, nic, nsg, rid, rule_props

NSG_ID = rid("networkSecurityGroups", "nsg1")
NSG_PATH = r"/networkSecurityGroups/nsg1$"
ARG = r"/providers/Microsoft\.ResourceGraph/resources$"
OPS = r"/providers/Microsoft\.Network/locations/[^/]+/operations/"
TAGS_PATH = r"/locations/[^/]+/serviceTags$"
RULE = "asr-remediate-Storage.EastUS"


@pytest.fixture
def writer(arm, credential, sleep):
    """The writer as the runtime builds it (default retries: retry_total 5), with the fake sleep."""
    arm.add(nsg("nsg1"))
    with NetworkWriter(credential, arm.base_url, ca_bundle=arm.ca_path, sleep=sleep, polling_interval=0) as w:
        yield w


def fetch(arm, credential, sleep, **kwargs):
    kwargs.setdefault("ca_bundle", arm.ca_path)
    return fetch_resources(credential, arm.base_url, [SUB], sleep=sleep, rng=random.Random(7), **kwargs)


def assert_one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and text == one_line(error, 10_000)
    return text


def wait_for_handshake_failures(arm, expected: int) -> int:
    """The emulator counts a refused handshake in its own thread, just after the client gave up on it."""
    deadline = time.monotonic() + 2.0
    while arm.tls_handshake_failures < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # let a (wrong) second attempt show up, if there were one
    return int(arm.tls_handshake_failures)


@pytest.fixture
def attempts(monkeypatch):
    """Counts the attempts the retry policy makes: each one passes the authentication policy that follows it in the
    pipeline, even when nothing reaches the network (a refused connection, an http:// URL)."""
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy

    seen: list[str] = []
    original = BearerTokenCredentialPolicy.send

    def counting(self, request):
        seen.append(request.http_request.url)
        return original(self, request)

    monkeypatch.setattr(BearerTokenCredentialPolicy, "send", counting)
    return seen


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- Retry-After capped, waits budgeted -----------------------------------------------------------------------


def test_network_429_with_retry_after_3600_waits_60s_at_most_then_fails(arm, writer, sleep):
    """azure-core ``RetryPolicy.sleep`` → ``_sleep_for_retry`` sleeps any Retry-After in full
    (azure/core/pipeline/policies/_retry.py); ARM's 429 carries one ("Request limits and throttling",
    learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling). Capped at 60 s per
    wait and 120 s per call, the third answer is the last: 60 + 60 and the next 60 would overrun the budget."""
    arm.inject("GET", NSG_PATH, Fault.throttle(retry_after=3600, ratelimit_remaining=0), times=10)

    with pytest.raises(ArmError) as info:
        writer.get_nsg(NSG_ID)

    assert sleep.calls == [MAX_WAIT, MAX_WAIT]
    assert sum(sleep.calls) <= RETRY_BUDGET
    assert arm.count("GET", NSG_PATH) == 3
    assert info.value.status_code == 429 and info.value.code == "RateLimiting"
    assert NSG_ID in assert_one_line(info.value)


def test_resource_graph_429_with_retry_after_3600_is_capped_and_budgeted(arm, credential, sleep):
    """The inventory's own retries (call_with_retries): Resource Graph answers 429 with Retry-After
    ("Guidance for throttled requests in Azure Resource Graph",
    learn.microsoft.com/azure/governance/resource-graph/concepts/guidance-for-throttled-requests)."""
    arm.inject("POST", ARG, Fault.throttle(retry_after=3600), times=20)

    with pytest.raises(RetriesExhaustedError) as info:
        fetch(arm, credential, sleep)

    assert sleep.calls == [MAX_WAIT, MAX_WAIT]
    assert arm.count("POST", ARG) == 3 and info.value.attempts == 3
    text = assert_one_line(info.value)
    assert text.startswith("Resource Graph protected-items: gave up after 3 attempts and 120 s of waiting")
    assert "120 s budget" in text and "HTTP 429 RateLimiting" in text


def test_resource_graph_quota_reset_of_an_hour_is_capped(arm, credential):
    """``x-ms-user-quota-resets-after`` is an ``hh:mm:ss`` duration (Resource Graph throttling guidance): an hour-long
    reset is waited 60 s, then the query goes on."""
    arm.add_all(nic(i) for i in range(3))
    arm.arg_quota = arm.arg_quota_limit = 1
    arm.arg_quota_resets_after = "01:00:00"
    sleep = FakeSleep(on_sleep=lambda _: arm.reset_arg_quota())

    rows = fetch(arm, credential, sleep, page_size=2)

    assert len(rows) == 3
    assert [p.status for p in arm.matching("POST", ARG)] == [200, 200, 200]  # protected items, 2 network pages
    assert sleep.calls == [MAX_WAIT, MAX_WAIT]  # before each call that follows a page leaving no quota


def test_service_tags_429_with_huge_retry_after_is_capped(arm, credential, sleep):
    """The Service Tag Discovery API goes through the network client's SleepingRetryPolicy."""
    arm.service_tags = load("ServiceTags_Public_cn376_trimmed.json")
    arm.inject("GET", TAGS_PATH, Fault.throttle(retry_after=3600), times=10)

    with pytest.raises(HttpResponseError) as info:
        fetch_service_tags(credential, arm.base_url, SUB, "eastus", ca_bundle=arm.ca_path, sleep=sleep)

    assert info.value.status_code == 429
    assert sleep.calls == [MAX_WAIT, MAX_WAIT] and arm.count("GET", TAGS_PATH) == 3


def test_azure_core_timeout_counts_wall_clock_not_the_injected_sleep(arm, credential, monkeypatch):
    """azure-core ``RetryPolicy.send`` decrements ``timeout`` by ``time.time()`` around each attempt *and* its sleep
    (azure/core/pipeline/policies/_retry.py), then ``_configure_timeout`` raises once it is spent. A fake sleep takes
    no wall time, so it never spends it — which is why the wait budget is counted separately."""
    arm.add(nsg("nsg1"))
    arm.inject("GET", NSG_PATH, Fault.throttle(retry_after=30), times=10)

    def client(sleep):
        policy = SleepingRetryPolicy(sleep=sleep, retry_total=5, retry_status=5, timeout=45)
        return NetworkManagementClient(credential, SUB, retry_policy=policy,
                                       **arm_client_kwargs(arm.base_url, arm.ca_path))

    # No wall time passes: only the 120 s wait budget stops it.
    with client(FakeSleep()) as fake_time, pytest.raises(HttpResponseError):
        fake_time.network_security_groups.get("rg-net", "nsg1")
    assert arm.count("GET", NSG_PATH) == 5  # 30 * 4 = 120 s of waits

    import azure.core.pipeline.policies._retry as core_retry

    offset = [0.0]

    class Clock:
        @staticmethod
        def time() -> float:
            return time.time() + offset[0]

    monkeypatch.setattr(core_retry, "time", Clock)
    arm.clear_log()
    arm.inject("GET", NSG_PATH, Fault.throttle(retry_after=30), times=10)
    advancing = FakeSleep(on_sleep=lambda s: offset.__setitem__(0, offset[0] + s))
    with client(advancing) as wall_time, pytest.raises(Exception, match="timeout"):
        wall_time.network_security_groups.get("rg-net", "nsg1")
    assert arm.count("GET", NSG_PATH) == 2  # 30 s, 60 s > 45 s: no third attempt


# --- long-running operations ----------------------------------------------------------------------------------


def test_lro_polling_with_retry_after_3600_waits_60s_per_poll(arm, writer, sleep):
    """``LROBasePolling._delay`` sleeps ``_extract_delay()``, the Retry-After of the latest status-monitor response
    in full, else the polling interval (azure/core/polling/base_polling.py); ARM says to wait Retry-After between
    polls ("Track asynchronous Azure operations", learn.microsoft.com/azure/azure-resource-manager/management/
    async-operations). BoundedARMPolling caps each wait at 60 s."""
    arm.lro_retry_after = 3600
    arm.lro_polls_in_progress = 2

    result = writer.put_security_rule(NSG_ID, RULE, rule_props(3990, dest="Storage.EastUS"))

    assert result["properties"]["provisioningState"] == "Succeeded"
    assert sleep.calls == [MAX_WAIT, MAX_WAIT]
    assert arm.count("GET", OPS) == 3


def test_lro_that_never_finishes_fails_after_its_polling_budget(arm, writer, sleep):
    """``LROBasePolling._poll`` loops ``while not self.finished()`` with no bound of its own; after 300 s of waits
    the bounded poller gives up with one line (the operation may still finish in ARM)."""
    arm.lro_retry_after = 3600
    arm.lro_polls_in_progress = 100

    with pytest.raises(ArmError) as info:
        writer.put_security_rule(NSG_ID, RULE, rule_props(3990, dest="Storage.EastUS"))

    assert sleep.calls == [MAX_WAIT] * int(LRO_BUDGET // MAX_WAIT)
    assert arm.count("GET", OPS) == int(LRO_BUDGET // MAX_WAIT) + 1
    text = assert_one_line(info.value)
    assert info.value.code == "OperationTimeoutError"
    assert "still InProgress after 300 s of polling" in text and RULE in text


# --- permanent failures: at once, one line --------------------------------------------------------------------


def test_tls_verification_failure_fails_at_the_first_attempt(arm, credential, sleep):
    """requests raises SSLError(SSLCertVerificationError), azure-core's RequestsTransport.send wraps it in a
    ServiceRequestError (azure/core/pipeline/transport/_requests_basic.py), which RetryPolicy retries as a connection
    error (``_is_connection_error``). A certificate does not become trusted on retry: one handshake, no wait."""
    arm.add(nsg("nsg1"))
    untrusting = NetworkWriter(credential, arm.base_url, sleep=sleep, polling_interval=0)  # no CA bundle
    with untrusting, pytest.raises(ArmError) as info:
        untrusting.get_nsg(NSG_ID)

    assert wait_for_handshake_failures(arm, 1) == 1
    assert arm.requests == [] and sleep.calls == []
    text = assert_one_line(info.value)
    assert f"TLS certificate verification failed for {arm.base_url}: " in text
    assert "set ASR_ARM_CA_BUNDLE" in text and info.value.status_code is None


def test_tls_verification_failure_in_resource_graph_fails_at_the_first_attempt(arm, credential, sleep):
    """The inventory's retries (call_with_retries) would retry a ServiceRequestError up to 8 times."""
    with pytest.raises(ArmEndpointError) as info:
        fetch(arm, credential, sleep, ca_bundle=None)

    assert wait_for_handshake_failures(arm, 1) == 1
    assert arm.requests == [] and sleep.calls == []
    assert info.value.kind == "tls"
    assert assert_one_line(info.value).startswith(f"TLS certificate verification failed for {arm.base_url}: ")


@pytest.mark.parametrize(("status", "code"), [(400, "InvalidRequestFormat"), (401, "InvalidAuthenticationToken"),
                                              (403, "AuthorizationFailed"), (404, "ResourceNotFound")])
def test_client_errors_on_a_get_fail_at_once_even_with_retry_after(arm, writer, sleep, status, code):
    """``RetryPolicyBase.is_retry`` (azure/core/pipeline/policies/_retry.py) retries *any* status >= 400 that carries
    a Retry-After, before looking at the status list; without one, 4xx other than 408/429 are not retried. Here they
    are never retried: a 403 is an answer (ARM's error codes: learn.microsoft.com/azure/azure-resource-manager/
    troubleshooting/common-deployment-errors)."""
    arm.inject("GET", NSG_PATH, Fault.error(status, code, "refused", headers={"Retry-After": "5"}), times=10)

    with pytest.raises(ArmError) as info:
        writer.get_nsg(NSG_ID)

    assert info.value.status_code == status and info.value.code == code
    assert arm.count("GET", NSG_PATH) == 1 and sleep.calls == []
    assert_one_line(info.value)


def test_resource_graph_403_fails_at_once(arm, credential, sleep):
    """call_with_retries retries 408/429/5xx only; the SDK pipeline under it has retry_total=0."""
    arm.inject("POST", ARG, Fault.error(403, "AuthorizationFailed", "no access", headers={"Retry-After": "5"}),
               times=10)

    with pytest.raises(HttpResponseError) as info:
        fetch(arm, credential, sleep)

    assert info.value.status_code == 403
    assert arm.count("POST", ARG) == 1 and sleep.calls == []


def test_connection_refused_is_retried_a_little(credential, sleep, attempts):
    """Connection refused (nothing listens: a wrong port in ASR_ARM_ENDPOINT) gets 3 attempts, not retry_total + 1:
    azure-core's first retry is immediate (``get_backoff_time`` is 0 for one error), the next waits 0.8 * 2 s."""
    endpoint = f"https://127.0.0.1:{closed_port()}"
    writer = NetworkWriter(credential, endpoint, sleep=sleep, polling_interval=0)
    with writer, pytest.raises(ArmError) as info:
        writer.get_nsg(NSG_ID)

    assert len(attempts) == 3 and sleep.calls == [1.6]
    assert assert_one_line(info.value).endswith(f"connection refused by {endpoint}; check ASR_ARM_ENDPOINT")


def test_connection_refused_in_resource_graph_is_retried_a_little(credential, sleep):
    endpoint = f"https://127.0.0.1:{closed_port()}"
    with pytest.raises(RetriesExhaustedError) as info:
        fetch_resources(credential, endpoint, [SUB], sleep=sleep, rng=random.Random(7))

    assert info.value.attempts == 3 and len(sleep.calls) == 2
    assert f"connection refused by {endpoint}" in assert_one_line(info.value)


@pytest.mark.parametrize(("endpoint", "expected"), [
    ("http://127.0.0.1:9", "http://127.0.0.1:9 is not an https URL"),
    ("https://exa mple.com", "invalid URL https://exa mple.com: "),
])
def test_invalid_endpoints_fail_at_once(credential, sleep, attempts, endpoint, expected):
    """azure-core's BearerTokenCredentialPolicy refuses a token over http (a ServiceRequestError, retried as a
    connection error); requests' InvalidURL becomes a ServiceResponseError (``RequestsTransport.send``), retried as a
    read error. Neither can succeed on retry."""
    writer = NetworkWriter(credential, endpoint, sleep=sleep, polling_interval=0)
    with writer, pytest.raises(ArmError) as info:
        writer.get_nsg(NSG_ID)

    assert len(attempts) == 1 and sleep.calls == []
    text = assert_one_line(info.value)
    assert expected in text and "check ASR_ARM_ENDPOINT" in text
