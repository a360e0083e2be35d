"""What ASR needs outbound (TCP 443) per replicated VM and side.

Source side (the VM as it runs today) and target side (its recovery subnet, needed to reprotect after failover)
need mirror-image destinations. Two profiles: ``service-tags`` (today's guidance: one tag per destination) and
``seed-2017`` (the 2017 guidance: explicit Site Recovery IPs per region plus Storage/AAD prefixes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from .config import Settings
from .ipset import IdentityCache, IPSet
from .model import ProtectedItem
from .servicetags import ServiceTags

SOURCE = "source"
TARGET = "target"

URLS = (
    "*.blob.core.windows.net",
    "login.microsoftonline.com",
    "*.hypervrecoverymanager.windowsazure.com",
    "*.servicebus.windows.net",
)


# The name each destination is reached at: Site Recovery's "Outbound connectivity for URLs" table (learn.microsoft.com/
# azure/site-recovery/azure-to-azure-about-networking), by service tag. A firewall's application rules see these (the
# TLS server name), never the addresses. "If you know all the cache storage accounts for your VMs, you can allow access
# to the specific storage account URLs (Ex: cache1.blob.core.windows.net …)": see required_fqdns.
TAG_FQDNS = {
    "storage": "*.blob.core.windows.net",
    "azureactivedirectory": "login.microsoftonline.com",
    "azuresiterecovery": "*.hypervrecoverymanager.windowsazure.com",
    "eventhub": "*.servicebus.windows.net",
    "azurekeyvault": "*.vault.azure.net",
    "guestandhybridmanagement": "*.automation.ext.azure.com",
}


@dataclass(frozen=True)
class Requirement:
    """One destination the VM must reach on TCP 443 from one side."""

    side: str
    destination: str  # what reports show: a tag name or a seed-2017 label
    slug: str  # stable part of the rule/route name the bot would create
    reason: str
    prefixes: IPSet | None  # None when the data to resolve it is missing (→ "unknown", never a guess)
    tag: str = ""  # the service tag, when the destination is one (tag-style fixes)
    style: str = "tag"  # "tag" or "prefix": how a fix expresses the destination
    private_endpoint: str = ""  # the private endpoint's id, when the destination is one (privatelink.py)

    @property
    def known(self) -> bool:
        return self.prefixes is not None


@dataclass(frozen=True)
class SeedRegion:
    display_name: str
    service_ips: tuple[str, ...]
    monitoring_ip: str


@cache
def seed_2017_table() -> dict[str, SeedRegion]:
    """The seed document's per-region Site Recovery service and monitoring IPs, keyed by ARM location."""
    text = resources.files("asr_remediate").joinpath("data/seed_2017_site_recovery_ips.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return {
        location: SeedRegion(row["displayName"], tuple(row["siteRecoveryServiceIps"]), row["siteRecoveryMonitoringIp"])
        for location, row in document["regions"].items()
    }


@cache
def seed_2017_addresses() -> IPSet:
    """Every IP in the seed table: rules allowing only these are legacy (today's tag is far larger)."""
    return IPSet.from_prefixes(
        ip for row in seed_2017_table().values() for ip in (*row.service_ips, row.monitoring_ip)
    )


def _tag_requirement(tags: ServiceTags, side: str, tag: str, reason: str, style: str) -> Requirement:
    name = tags.canonical_name(tag)
    return Requirement(side, name, name, reason, tags.prefixes(name), tag=name, style=style)


def _regional(tags: ServiceTags, side: str, base: str, location: str, reason: str, style: str) -> Requirement:
    name = tags.regional_tag(base, location)
    if name is None:
        label = f"{base} ({location})"
        return Requirement(side, label, f"{base}.{location}", reason + f" — no {base} tag for region {location!r}"
                           " in the Service Tags data", None, tag="", style=style)
    return _tag_requirement(tags, side, name, reason, style)


def _seed_ips(side: str, location: str) -> Requirement:
    row = seed_2017_table().get(location)
    label = f"SiteRecovery-IPs-2017.{location}"
    reason = f"Site Recovery service and monitoring IPs for {location} (2017 guidance)"
    if row is None:
        return Requirement(side, label, f"seed-siterecovery-{location}", reason + " — region not in the 2017 table",
                           None, style="prefix")
    prefixes = IPSet.from_prefixes((*row.service_ips, row.monitoring_ip))
    return Requirement(side, label, f"seed-siterecovery-{location}", reason, prefixes, style="prefix")


def requirements_for(item: ProtectedItem, tags: ServiceTags, settings: Settings) -> list[Requirement]:
    """All destinations for both sides of one replicated VM, in a stable order.

    Memoised per (regions, encryption, the settings that matter, tag data): every VM of a region pair needs the
    same destinations, and sharing the Requirement objects lets the engine memoise findings by identity.
    """
    extra = (item.source_region, item.target_region, item.encrypted, settings.profile, settings.rule_style,
             settings.include_key_vault, settings.include_guest_management)
    return list(_REQUIREMENTS.get((tags,), extra, lambda: tuple(_requirements(item, tags, settings))))


_REQUIREMENTS: IdentityCache[tuple[Requirement, ...]] = IdentityCache(4096)


def _requirements(item: ProtectedItem, tags: ServiceTags, settings: Settings) -> list[Requirement]:
    s, t = item.source_region, item.target_region
    style = "prefix" if settings.profile == "seed-2017" or settings.rule_style == "prefix" else "tag"
    result: list[Requirement] = []
    for side, here, there in ((SOURCE, s, t), (TARGET, t, s)):
        cache_reason = f"write replication data to the cache storage account in {here}"
        result.append(_regional(tags, side, "Storage", here, cache_reason, style))
        result.append(_tag_requirement(tags, side, "AzureActiveDirectory", "authenticate to Site Recovery", style))
        if settings.profile == "seed-2017":
            result.append(_seed_ips(side, there))
            continue
        result.append(_regional(tags, side, "EventHub", there, f"send monitoring data to {there}", style))
        result.append(_tag_requirement(tags, side, "AzureSiteRecovery", "talk to the Site Recovery service", style))
        if side == SOURCE and settings.include_key_vault and item.encrypted:
            result.append(_regional(tags, side, "AzureKeyVault", here, "read ADE keys of the encrypted VM", style))
        if side == SOURCE and settings.include_guest_management:
            result.append(
                _tag_requirement(tags, side, "GuestAndHybridManagement", "auto-update the mobility agent", style)
            )
    return result


def required_fqdns(req: Requirement, cache_storage_accounts: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The names a requirement's traffic carries (TLS SNI): on the source side, Storage is the VM's own cache storage
    accounts when the protected item names them (<name>.blob.core.windows.net), else *.blob.core.windows.net.
    The 2017 Site Recovery IPs are the Site Recovery service. () when no name is known."""
    base = (req.tag or req.slug).split(".", 1)[0].lower()
    if req.slug.startswith("seed-siterecovery"):
        base = "azuresiterecovery"
    if base == "storage" and req.side == SOURCE and cache_storage_accounts:
        return tuple(f"{name}.blob.core.windows.net" for name in cache_storage_accounts)
    name = TAG_FQDNS.get(base)
    return (name,) if name else ()


__all__ = ["SOURCE", "TAG_FQDNS", "TARGET", "URLS", "Requirement", "required_fqdns", "requirements_for",
           "seed_2017_addresses"]
