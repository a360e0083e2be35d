"""Service Tags from the discovery API (real SDK client, HTTPS emulator), and the file fallback."""

from __future__ import annotations

import logging

import pytest
from azure.core.exceptions import HttpResponseError

from asr_remediate.azure.inventory import (
    InventoryError,
    fetch_service_tags,
    load_service_tags,
    service_tags_to_public_shape,
)
from tests.emulator.arm_emulator import Fault
from tests.emulator.fixtures import DATA, SUB, example_body, load

TAGS_FILE = DATA / "ServiceTags_Public_cn376_trimmed.json"
TAGS_PATH = r"/locations/[^/]+/serviceTags$"


def test_api_result_is_converted_to_the_download_shape(arm, credential, sleep):
    public = load(TAGS_FILE.name)
    arm.service_tags = public

    tags = fetch_service_tags(credential, arm.base_url, SUB, "eastus", ca_bundle=arm.ca_path, sleep=sleep)

    assert tags["changeNumber"] == 376 and tags["cloud"] == "Public"
    assert [v["name"] for v in tags["values"]] == [v["name"] for v in public["values"]]
    for got, want in zip(tags["values"], public["values"], strict=True):
        assert got["id"] == want["id"]
        assert got["properties"]["region"] == want["properties"]["region"]
        assert got["properties"]["systemService"] == want["properties"]["systemService"]
        assert got["properties"]["addressPrefixes"] == want["properties"]["addressPrefixes"]
        assert got["properties"]["changeNumber"] == want["properties"]["changeNumber"]
    request = arm.matching("GET", TAGS_PATH)[0]
    assert request.path == f"/subscriptions/{SUB}/providers/Microsoft.Network/locations/eastus/serviceTags"


def test_next_links_are_followed(arm, credential, sleep):
    arm.service_tags = load(TAGS_FILE.name)
    arm.service_tags_page_size = 5  # 13 values → 3 responses
    tags = fetch_service_tags(credential, arm.base_url, SUB, "eastus", ca_bundle=arm.ca_path, sleep=sleep)
    assert len(tags["values"]) == 13
    assert arm.count("GET", TAGS_PATH) == 3


def test_spec_example_converts():
    tags = service_tags_to_public_shape(example_body("ServiceTagsList.json"))
    assert tags["changeNumber"] == 63
    assert tags["values"][1] == {"name": "ApiManagement.AustraliaCentral", "id": "ApiManagement.AustraliaCentral",
                                 "properties": {"changeNumber": 2, "region": "australiacentral",
                                                "systemService": "AzureApiManagement",
                                                "addressPrefixes": ["20.36.106.68/31", "20.36.107.176/28"]}}


def test_throttled_api_is_retried(arm, credential, sleep):
    arm.service_tags = load(TAGS_FILE.name)
    arm.inject("GET", TAGS_PATH, Fault.throttle(retry_after=2))
    tags = fetch_service_tags(credential, arm.base_url, SUB, "eastus", ca_bundle=arm.ca_path, sleep=sleep)
    assert tags["changeNumber"] == 376 and sleep.calls == [2.0]


def test_falls_back_to_the_file_when_the_api_fails(arm, credential, sleep, caplog):
    arm.service_tags = load(TAGS_FILE.name)
    arm.inject("GET", TAGS_PATH, Fault.error(503, "ServiceUnavailable"), times=10)

    with caplog.at_level(logging.WARNING):
        tags = load_service_tags(credential, arm.base_url, SUB, "eastus", fallback_file=TAGS_FILE,
                                 ca_bundle=arm.ca_path, sleep=sleep, retry_total=1)

    assert tags == load(TAGS_FILE.name)
    assert arm.count("GET", TAGS_PATH) == 2  # one try + one retry
    assert any("Service Tag Discovery API unavailable" in r.getMessage() for r in caplog.records)


def test_falls_back_when_the_api_has_no_tags(arm, credential, sleep):
    arm.service_tags = None  # 404
    tags = load_service_tags(credential, arm.base_url, SUB, "eastus", fallback_file=TAGS_FILE,
                             ca_bundle=arm.ca_path, sleep=sleep)
    assert tags["changeNumber"] == 376


def test_without_fallback_the_error_propagates(arm, credential, sleep):
    arm.inject("GET", TAGS_PATH, Fault.error(403, "AuthorizationFailed", "no access"), times=5)
    with pytest.raises(HttpResponseError):
        load_service_tags(credential, arm.base_url, SUB, "eastus", ca_bundle=arm.ca_path, sleep=sleep)


def test_api_and_file_both_failing_is_one_clear_error(arm, credential, sleep, tmp_path):
    broken = tmp_path / "tags.json"
    broken.write_text("{}", encoding="utf-8")
    with pytest.raises(InventoryError, match="service tags unavailable"):
        load_service_tags(credential, arm.base_url, SUB, "eastus", fallback_file=broken, ca_bundle=arm.ca_path,
                          sleep=sleep)


def test_no_subscription_goes_straight_to_the_file(credential):
    assert load_service_tags(credential, "https://127.0.0.1:9", "", fallback_file=TAGS_FILE)["changeNumber"] == 376
