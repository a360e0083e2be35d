"""Service Tags data: regional lookup through properties.region, IPv4 sets, change numbers, bad files.

Expected address sets are computed from the raw JSON with the stdlib ``ipaddress`` module, not taken from the
engine.
"""

from __future__ import annotations

import ipaddress
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from asr_remediate.ipset import IPSet
from asr_remediate.servicetags import (
    LOCATION_TO_TAG_REGION,
    ServiceTags,
    ServiceTagsError,
    load_service_tags_file,
    parse_service_tags,
)
from tests import tagdata

ARM_DATA = Path(__file__).resolve().parent / "data" / "arm"


@cache
def raw(path: Path) -> dict[str, dict[str, Any]]:
    """name → the tag's raw JSON entry."""
    with open(path, encoding="utf-8-sig") as handle:
        return {v["name"]: v for v in json.load(handle)["values"]}


def stdlib_networks(path: Path, name: str) -> list[ipaddress.IPv4Network]:
    prefixes = raw(path)[name]["properties"]["addressPrefixes"]
    return list(ipaddress.collapse_addresses(ipaddress.IPv4Network(p) for p in prefixes if ":" not in p))


def as_ipset(networks: list[ipaddress.IPv4Network]) -> IPSet:
    return IPSet.of((int(n.network_address), int(n.broadcast_address)) for n in networks)


def covered_by(inner: list[ipaddress.IPv4Network], outer: list[ipaddress.IPv4Network]) -> bool:
    return all(any(n.subnet_of(o) for o in outer) for n in inner)


# --- golden tests on the full file -------------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "location", "expected"), [
    ("Storage", "eastus", "Storage.EastUS"),
    ("Storage", "centralus", "Storage.CentralUS"),
    ("EventHub", "centralus", "EventHub.CentralUS"),
    ("EventHub", "eastus", "EventHub.EastUS"),
    ("AzureKeyVault", "eastus", "AzureKeyVault.EastUS"),
    ("Storage", "westeurope", "Storage.WestEurope"),
    ("storage", "EastUS", "Storage.EastUS"),  # case and ARM display spelling
    ("Storage", "East US", "Storage.EastUS"),
    ("Storage", "norwayeast", "Storage.NorwayEast"),  # region code 'norwaye'
    ("EventHub", "francecentral", "EventHub.FranceCentral"),  # region code 'centralfrance'
    ("AzureKeyVault", "germanywestcentral", "AzureKeyVault.GermanyWestCentral"),  # 'germanywc'
    ("AzureCloud", "chilecentral", "AzureCloud.chilec"),
    ("Storage", "eastus2", "Storage.EastUS2"),  # not Storage.EastUS2Stage, which also says region 'eastus2'
    ("Storage", "northcentralus", "Storage.NorthCentralUS"),  # not Storage.NorthCentralUSStage
    ("Storage", "atlantis", None),
    ("AzureSiteRecovery", "eastus", None),
    ("AzureActiveDirectory", "eastus", None),
])
def test_regional_tag_on_the_full_file(base, location, expected):
    assert tagdata.full().regional_tag(base, location) == expected


def test_every_regional_tag_of_the_asr_families_is_found_by_its_location():
    """For each Storage/EventHub/AzureKeyVault regional tag whose name spells an ARM location, lookup finds it."""
    tags = tagdata.full()
    checked = 0
    for name, entry in raw(tagdata.FULL_FILE).items():
        base, dot, suffix = name.partition(".")
        region = entry["properties"]["region"]
        if base not in ("Storage", "EventHub", "AzureKeyVault") or not dot or not region:
            continue
        location = suffix.lower()
        if LOCATION_TO_TAG_REGION.get(location, location) != region:
            continue  # staging tags (EastUS2Stage, EastUSSTG): not an ARM location
        assert tags.regional_tag(base, location) == name
        checked += 1
    assert checked > 150


def test_location_aliases_point_at_region_codes_of_the_file():
    regions = {e["properties"]["region"] for e in raw(tagdata.FULL_FILE).values()}
    for location, code in LOCATION_TO_TAG_REGION.items():
        assert code in regions, (location, code)
        assert location not in regions  # the alias is needed: the plain location name is not a code


def test_regional_lookup_uses_properties_region_not_the_name():
    tags = ServiceTags.from_values("1", [
        {"name": "Storage.Oddly", "properties": {"region": "eastus", "addressPrefixes": ["1.0.0.0/24"]}},
        {"name": "Storage.WestUS", "properties": {"region": "", "addressPrefixes": ["2.0.0.0/24"]}},
    ])
    assert tags.regional_tag("Storage", "eastus") == "Storage.Oddly"
    assert tags.regional_tag("Storage", "westus") is None


def test_colliding_regional_tags_prefer_the_one_named_for_the_region_in_any_file_order():
    entries = [
        {"name": "Storage.EastUS2Stage", "properties": {"region": "eastus2", "addressPrefixes": ["1.0.0.0/24"]}},
        {"name": "Storage.EastUS2", "properties": {"region": "eastus2", "addressPrefixes": ["2.0.0.0/16"]}},
    ]
    assert ServiceTags.from_values("1", entries).regional_tag("Storage", "eastus2") == "Storage.EastUS2"
    assert ServiceTags.from_values("1", entries[::-1]).regional_tag("Storage", "eastus2") == "Storage.EastUS2"


@pytest.mark.parametrize(("regional", "top"), [
    ("Storage.EastUS", "Storage"), ("EventHub.CentralUS", "EventHub"), ("AzureKeyVault.EastUS", "AzureKeyVault"),
    ("Storage.EastUS", "AzureCloud"),
])
def test_top_level_tag_contains_the_regional_tag(regional, top):
    tags = tagdata.full()
    inner, outer = tags.prefixes(regional), tags.prefixes(top)
    assert inner is not None and outer is not None
    assert inner.issubset(outer) and inner.size < outer.size
    assert covered_by(stdlib_networks(tagdata.FULL_FILE, regional), stdlib_networks(tagdata.FULL_FILE, top))


def test_azure_site_recovery_has_no_regional_tags():
    names = raw(tagdata.FULL_FILE)
    assert "AzureSiteRecovery" in names
    assert not [n for n in names if n.lower().startswith("azuresiterecovery.")]
    assert names["AzureSiteRecovery"]["properties"]["region"] == ""
    tags = tagdata.full()
    assert all(tags.regional_tag("AzureSiteRecovery", loc) is None for loc in ("eastus", "westeurope", "uksouth"))


@pytest.mark.parametrize("name", ["Storage.EastUS", "AzureSiteRecovery", "AzureActiveDirectory",
                                  "GuestAndHybridManagement", "EventHub.CentralUS", "Storage"])
def test_prefix_sets_equal_stdlib_collapse_and_skip_ipv6(name):
    tag = tagdata.full().get(name)
    assert tag is not None
    networks = stdlib_networks(tagdata.FULL_FILE, name)
    assert tag.prefixes == as_ipset(networks)
    assert tag.prefixes.size == sum(n.num_addresses for n in networks)
    published = raw(tagdata.FULL_FILE)[name]["properties"]["addressPrefixes"]
    assert list(tag.cidrs) == [p for p in published if ipaddress.ip_network(p).version == 4]


def test_full_file_metadata():
    tags = tagdata.full()
    assert tags.change_number == "375"
    assert len(tags.tags) == len(raw(tagdata.FULL_FILE))
    tag = tags.get("storage.eastus")
    assert tag is not None and tag.name == "Storage.EastUS" and tag.region == "eastus"
    assert tag.system_service == "AzureStorage"
    assert tags.canonical_name("STORAGE.EASTUS") == "Storage.EastUS"
    assert tags.canonical_name("NoSuchTag") == "NoSuchTag"
    assert tags.is_service_tag("azuresiterecovery") and not tags.is_service_tag("VirtualNetwork")
    assert tags.prefixes("NoSuchTag") is None


# --- change 375 → 376 (trimmed files) ----------------------------------------------------------------------------


def test_trimmed_change_numbers_parse():
    assert tagdata.load(tagdata.TRIMMED_375).change_number == "375"
    assert tagdata.load(tagdata.TRIMMED_376).change_number == "376"


def stdlib_minus(left: list[ipaddress.IPv4Network], right: list[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
    """Addresses of ``left`` not in ``right``, with address_exclude (CIDRs are either nested or disjoint)."""
    pieces = list(left)
    for cut in right:
        kept: list[ipaddress.IPv4Network] = []
        for piece in pieces:
            if piece.subnet_of(cut):
                continue
            kept.extend(piece.address_exclude(cut) if cut.subnet_of(piece) else [piece])
        pieces = kept
    return list(ipaddress.collapse_addresses(pieces))


@pytest.mark.parametrize("name", sorted(raw(tagdata.TRIMMED_375)))
def test_trimmed_files_differ_exactly_as_the_stdlib_says(name):
    before = stdlib_networks(tagdata.TRIMMED_375, name)
    after = stdlib_networks(tagdata.TRIMMED_376, name)
    old = tagdata.load(tagdata.TRIMMED_375).prefixes(name)
    new = tagdata.load(tagdata.TRIMMED_376).prefixes(name)
    assert old is not None and new is not None
    assert old == as_ipset(before) and new == as_ipset(after)
    assert new - old == as_ipset(stdlib_minus(after, before))
    assert old - new == as_ipset(stdlib_minus(before, after))
    assert (old == new) == (before == after)


def test_azure_site_recovery_unchanged_between_375_and_376_but_storage_north_europe_grew():
    before = {str(n) for n in stdlib_networks(tagdata.TRIMMED_375, "AzureSiteRecovery")}
    after = {str(n) for n in stdlib_networks(tagdata.TRIMMED_376, "AzureSiteRecovery")}
    assert before == after
    old = tagdata.load(tagdata.TRIMMED_375)
    new = tagdata.load(tagdata.TRIMMED_376)
    assert old.prefixes("AzureSiteRecovery") == new.prefixes("AzureSiteRecovery")
    raw_before = set(raw(tagdata.TRIMMED_375)["Storage.NorthEurope"]["properties"]["addressPrefixes"])
    raw_after = set(raw(tagdata.TRIMMED_376)["Storage.NorthEurope"]["properties"]["addressPrefixes"])
    grown = IPSet.from_prefixes(sorted(raw_after - raw_before))
    assert grown and raw_before <= raw_after
    new_ne, old_ne = new.prefixes("Storage.NorthEurope"), old.prefixes("Storage.NorthEurope")
    assert new_ne is not None and old_ne is not None
    assert new_ne - old_ne == grown - old_ne and old_ne - new_ne == IPSet()


def test_trimmed_376_has_regional_tags_but_no_top_level_storage():
    tags = tagdata.trimmed()
    assert tags.get("Storage") is None
    assert tags.regional_tag("Storage", "northeurope") == "Storage.NorthEurope"
    assert tags.regional_tag("AzureKeyVault", "westeurope") is None  # not in the trimmed file


def test_service_tag_discovery_api_response_parses():
    with open(ARM_DATA / "ServiceTagsList.json", encoding="utf-8") as handle:
        body = json.load(handle)["responses"]["200"]["body"]
    tags = parse_service_tags(body)
    assert tags.change_number == "63"
    assert tags.regional_tag("ServiceBus", "eastus2") == "ServiceBus.EastUS2"
    assert tags.regional_tag("ApiManagement", "australiacentral") == "ApiManagement.AustraliaCentral"
    service_bus = tags.prefixes("ServiceBus")
    assert service_bus == IPSet.from_prefixes(["23.98.82.96/29", "40.68.127.68/32", "40.70.146.64/29"])


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("document", "message"), [
    ([], "expected an object with a 'values' list"),
    ({"changeNumber": "1"}, "expected an object with a 'values' list"),
    ({"values": {"a": 1}}, "expected an object with a 'values' list"),
    ({"values": [1]}, "not an object"),
    ({"values": ["Storage"]}, "not an object"),
    ({"values": [{"properties": {}}]}, "without a name"),
    ({"values": [{"name": "X", "properties": ["10.0.0.0/8"]}]}, "without a name or properties"),
    ({"values": [{"name": "X", "properties": {"addressPrefixes": ["10.0.0.0/33"]}}]}, "service tag X"),
    ({"values": [{"name": "X", "properties": {"addressPrefixes": ["Storage"]}}]}, "service tag X"),
    ({"values": [{"name": "X", "properties": {"addressPrefixes": 5}}]}, "not a list"),
    ({"values": [{"name": "X", "properties": {"addressPrefixes": "10.0.0.0/8"}}]}, "not a list"),
])
def test_bad_documents_raise_service_tags_error(document, message):
    with pytest.raises(ServiceTagsError, match=message) as caught:
        parse_service_tags(document)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("content", "message"), [
    (b"{not json", "is not valid JSON"),
    (b"\xff\xfe\x00\x80garbage", "is not UTF-8 text"),
    (b'{"values": 3}', "expected an object with a 'values' list"),
    (b"", "is not valid JSON"),
])
def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "tags.json"
    path.write_bytes(content)
    with pytest.raises(ServiceTagsError, match=message) as caught:
        load_service_tags_file(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ServiceTagsError, match="not found"):
        load_service_tags_file(tmp_path / "absent.json")
    with pytest.raises(ServiceTagsError, match="cannot read"):
        load_service_tags_file(tmp_path)


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"changeNumber": 9, "values": [
        {"name": "A", "properties": {"addressPrefixes": ["1.2.3.0/24"]}}]}).encode())
    tags = load_service_tags_file(path)
    assert tags.change_number == "9" and tags.prefixes("a") == IPSet.from_prefixes(["1.2.3.0/24"])
