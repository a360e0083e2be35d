"""Service Tags data (the weekly ServiceTags_Public download or the Service Tag Discovery API).

Regional tags are found through each tag's ``properties.region`` — never by gluing a region name onto a tag
name — because the region codes in the file are not always ARM location names (``norwaye`` for ``norwayeast``).
The few ARM locations whose code differs are listed in ``LOCATION_TO_TAG_REGION`` (data, not string munging).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ipset import IPSet, PrefixError
from .jsonfile import read_json_file

# ARM location → the region code used in properties.region of the Service Tags file, where they differ.
# Read off ServiceTags_Public (changeNumber 375): every other region code equals the ARM location name.
LOCATION_TO_TAG_REGION: Mapping[str, str] = {
    "norwayeast": "norwaye",
    "norwaywest": "norwayw",
    "switzerlandnorth": "switzerlandn",
    "switzerlandwest": "switzerlandw",
    "germanynorth": "germanyn",
    "germanywestcentral": "germanywc",
    "brazilsoutheast": "brazilse",
    "brazilnortheast": "brazilne",
    "francecentral": "centralfrance",
    "francesouth": "southfrance",
    "chilecentral": "chilec",
}

# Names that are tags in NSG rules but are not in the Service Tags file: Azure computes them per VNet.
VIRTUAL_TAGS = frozenset({"virtualnetwork", "internet", "azureloadbalancer", "*", "any"})


class ServiceTagsError(ValueError):
    """The Service Tags data cannot be read."""


@dataclass(frozen=True)
class ServiceTag:
    name: str
    region: str  # "" for global tags
    system_service: str
    prefixes: IPSet
    cidrs: tuple[str, ...] = ()  # the IPv4 prefixes as published: route LPM needs their lengths, not the merge


@dataclass(frozen=True)
class ServiceTags:
    """All tags by lower-case name, plus a (base tag, region) index for regional lookups."""

    change_number: str
    tags: Mapping[str, ServiceTag]
    _regional: Mapping[tuple[str, str], str] = field(default_factory=dict, repr=False)

    @staticmethod
    def from_values(change_number: str, values: Iterable[Mapping[str, Any]]) -> ServiceTags:
        tags: dict[str, ServiceTag] = {}
        regional: dict[tuple[str, str], str] = {}
        for value in values:
            if not isinstance(value, Mapping):
                raise ServiceTagsError(f"service tag entry is not an object: {str(value)[:80]}")
            name = str(value.get("name") or value.get("id") or "")
            props = value.get("properties") or {}
            if not name or not isinstance(props, Mapping):
                raise ServiceTagsError(f"service tag entry without a name or properties: {str(value)[:80]}")
            listed = props.get("addressPrefixes") or []
            if not isinstance(listed, list):
                raise ServiceTagsError(f"service tag {name}: addressPrefixes is not a list")
            raw = [str(p) for p in listed]
            try:
                prefixes = IPSet.from_prefixes(raw)
            except PrefixError as error:
                raise ServiceTagsError(f"service tag {name}: {error}") from None
            region = str(props.get("region") or "").lower()
            cidrs = tuple(p for p in raw if ":" not in p)
            tag = ServiceTag(name, region, str(props.get("systemService") or ""), prefixes, cidrs)
            tags[name.lower()] = tag
            if region and "." in name:
                base, suffix = name.split(".", 1)
                index = (base.lower(), region)
                current = regional.get(index)
                # Two tags can share a base and region (Storage.EastUS2 and Storage.EastUS2Stage are both 'eastus2'):
                # the one whose own name spells its region wins; otherwise the first one listed stays.
                if current is None or (suffix.lower() == region and current.split(".", 1)[1].lower() != region):
                    regional[index] = name
        return ServiceTags(str(change_number), tags, regional)

    def get(self, name: str) -> ServiceTag | None:
        return self.tags.get(name.lower())

    def prefixes(self, name: str) -> IPSet | None:
        """The tag's IPv4 addresses, or None if the tag is unknown (the caller must report 'unknown')."""
        tag = self.get(name)
        return tag.prefixes if tag else None

    def regional_tag(self, base: str, location: str) -> str | None:
        """The regional tag of ``base`` for an ARM ``location`` (``Storage``, ``eastus`` → ``Storage.EastUS``)."""
        region = location.lower().replace(" ", "")
        region = LOCATION_TO_TAG_REGION.get(region, region)
        return self._regional.get((base.lower(), region))

    def canonical_name(self, name: str) -> str:
        tag = self.get(name)
        return tag.name if tag else name

    def is_service_tag(self, name: str) -> bool:
        return name.lower() in self.tags


def parse_service_tags(document: Any) -> ServiceTags:
    """Parse a ServiceTags_Public document or a Service Tag Discovery API response (same shape)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("values"), list):
        raise ServiceTagsError("not a Service Tags document: expected an object with a 'values' list")
    return ServiceTags.from_values(str(document.get("changeNumber", "")), document["values"])


def load_service_tags_file(path: str | Path) -> ServiceTags:
    document = read_json_file(path, "service tags file", ServiceTagsError)
    try:
        return parse_service_tags(document)
    except ServiceTagsError as error:
        raise ServiceTagsError(f"{path}: {error}") from None


EMPTY_TAGS = ServiceTags("", {}, {})
