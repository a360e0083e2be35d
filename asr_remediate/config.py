"""Settings, read once from the environment (Function App settings / local.settings.json / CLI flags).

Every setting has a safe default: report-only, no optional destinations, the current service-tag profile.
A malformed value is a ``SettingsError`` with a message naming the setting, never a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

PROFILES = ("service-tags", "seed-2017")
RULE_STYLES = ("tag", "prefix")
SOURCE_SCOPES = ("subnet", "vm", "virtualnetwork")
DEFAULT_OPT_OUT_TAG = "asr-remediate-opt-out"
MANAGED_PREFIX = "asr-remediate-"


SUBSCRIPTION_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# A write-scope entry: a subscription, optionally narrowed to a resource group or a resource (any depth).
_SCOPE_PREFIX = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}(/resourceGroups/[^/]+(/providers/[^/]+(/[^/]+/[^/]+)+)?)?/?$", re.IGNORECASE)


class SettingsError(ValueError):
    """A setting has a value the bot cannot use."""


def is_subscription_id(value: str) -> bool:
    return bool(SUBSCRIPTION_ID.match(value.strip()))


def check_scope_allowlist(entries: Iterable[str], name: str = "ASR_SCOPE_ALLOWLIST") -> tuple[str, ...]:
    """Write-scope entries must be ARM id prefixes (/subscriptions/<id>[/resourceGroups/<rg>[/providers/…]]): a bare
    name such as 'rg-prod' would otherwise match nothing — or, compared loosely, too much."""
    result = tuple(e.strip() for e in entries if e.strip())
    for entry in result:
        if not _SCOPE_PREFIX.match(entry) or not is_subscription_id(entry.split("/")[2]):
            shown = entry if len(entry) <= 80 else entry[:79] + "…"
            raise SettingsError(f"{name}: {shown!r} is not a resource id prefix such as /subscriptions/<id> or "
                                "/subscriptions/<id>/resourceGroups/<name>")
    return result


@dataclass(frozen=True)
class Settings:
    apply: bool = False  # ASR_APPLY: write fixes; report-only otherwise
    profile: str = "service-tags"  # ASR_PROFILE: service-tags | seed-2017
    rule_style: str = "tag"  # ASR_RULE_STYLE: tag (one service tag per rule) | prefix (explicit prefixes)
    source_scope: str = "subnet"  # ASR_SOURCE_SCOPE: a planned rule's source: subnet | vm (NIC IPs) | virtualnetwork
    include_key_vault: bool = False  # ASR_INCLUDE_KEYVAULT: AzureKeyVault.<S> for ADE-encrypted VMs
    include_guest_management: bool = False  # ASR_INCLUDE_GUEST_MANAGEMENT: mobility agent auto-update
    fix_routes: bool = True  # ASR_FIX_ROUTES: plan service-tag routes next hop Internet
    apply_firewall: bool = False  # ASR_APPLY_FIREWALL: also write the asr-remediate rule collection group (with apply)
    subscriptions: tuple[str, ...] = ()  # ASR_SUBSCRIPTIONS: scan scope
    scope_allowlist: tuple[str, ...] = ()  # ASR_SCOPE_ALLOWLIST: id prefixes the bot may write under (empty: none)
    opt_out_tag: str = DEFAULT_OPT_OUT_TAG  # ASR_OPT_OUT_TAG: tag on VM / NSG / route table that excludes it
    max_changes: int = 20  # ASR_MAX_CHANGES: per run
    read_effective_routes: bool = False  # ASR_READ_EFFECTIVE_ROUTES: opt-in, resolves BGP warnings
    read_effective_nsgs: bool = False  # ASR_READ_EFFECTIVE_NSG: opt-in, Azure's own VirtualNetwork per source NIC
    read_admin_rules: bool = True  # ASR_READ_ADMIN_RULES: AVNM security admin rules, one POST per VNet on a path
    service_tags_location: str = "westeurope"  # ASR_SERVICE_TAGS_LOCATION: any region; the list is global
    service_tags_file: str = ""  # ASR_SERVICE_TAGS_FILE: fallback when the discovery API is unavailable
    audit_sink: str = "jsonl"  # ASR_AUDIT_SINK: jsonl | table
    audit_path: str = "audit.jsonl"  # ASR_AUDIT_PATH
    audit_table: str = "asrremediateaudit"  # ASR_AUDIT_TABLE
    audit_table_endpoint: str = ""  # ASR_AUDIT_TABLE_ENDPOINT: https://<account>.table.core.windows.net (MI auth)
    audit_connection_string: str = field(default="", repr=False)  # ASR_AUDIT_CONNECTION_STRING (local / Azurite)
    bot_principal_ids: tuple[str, ...] = ()  # ASR_BOT_PRINCIPAL_IDS: object/app ids whose writes are ignored
    fanout_queue: str = "asr-scan-batches"  # ASR_FANOUT_QUEUE
    arm_endpoint: str = "https://management.azure.com"  # ASR_ARM_ENDPOINT (sovereign clouds, tests)
    arm_ca_bundle: str = ""  # ASR_ARM_CA_BUNDLE: extra CA bundle for a TLS-intercepting proxy (or the test emulator)
    arm_poll_interval: float = 5.0  # ASR_ARM_POLL_INTERVAL: seconds between LRO polls when ARM sends no Retry-After
    fanout_batch_size: int = 50  # ASR_FANOUT_BATCH_SIZE: subscriptions per queue message


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").replace(";", ",").split(",") if part.strip())


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not 0 <= value <= 300:
        raise SettingsError(f"{name} must be between 0 and 300 seconds, not {value}")
    return value


def _subscriptions(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    values = _list(env, name)
    for value in values:
        if not is_subscription_id(value):
            shown = value if len(value) <= 60 else value[:59] + "…"
            raise SettingsError(f"{name}: {shown!r} is not a subscription id (a GUID)")
    return values


def _existing_file(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    if raw and not os.path.isfile(raw):
        shown = raw if len(raw) <= 200 else raw[:199] + "…"
        raise SettingsError(f"{name}: no such file {shown!r}")
    return raw


def _arm_endpoint(env: Mapping[str, str], name: str) -> str:
    """An https URL with a host and nothing after it: ARM's base URL (sovereign clouds, the test emulator). Checked
    here so that a typo is one line naming the setting, not a ValueError from deep inside urllib at the first call."""
    raw = env.get(name, "").strip() or "https://management.azure.com"
    shown = raw if len(raw) <= 200 else raw[:199] + "…"
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError as error:
        raise SettingsError(f"{name}: {shown!r} is not a URL ({error})") from None
    if parts.scheme.lower() != "https":
        raise SettingsError(f"{name}: {shown!r} must be an https URL (ARM tokens are only sent over TLS)")
    if not parts.hostname or any(c.isspace() for c in raw):
        raise SettingsError(f"{name}: {shown!r} has no valid host name")
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password:
        raise SettingsError(f"{name}: {shown!r} must be a base URL like https://management.azure.com (no path, "
                            "query or credentials)")
    del port
    return raw.rstrip("/")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    return Settings(
        apply=_bool(env, "ASR_APPLY", False),
        profile=_choice(env, "ASR_PROFILE", PROFILES, "service-tags"),
        rule_style=_choice(env, "ASR_RULE_STYLE", RULE_STYLES, "tag"),
        source_scope=_choice(env, "ASR_SOURCE_SCOPE", SOURCE_SCOPES, "subnet"),
        include_key_vault=_bool(env, "ASR_INCLUDE_KEYVAULT", False),
        include_guest_management=_bool(env, "ASR_INCLUDE_GUEST_MANAGEMENT", False),
        fix_routes=_bool(env, "ASR_FIX_ROUTES", True),
        apply_firewall=_bool(env, "ASR_APPLY_FIREWALL", False),
        subscriptions=_subscriptions(env, "ASR_SUBSCRIPTIONS"),
        scope_allowlist=check_scope_allowlist(_list(env, "ASR_SCOPE_ALLOWLIST")),
        opt_out_tag=env.get("ASR_OPT_OUT_TAG", "").strip() or DEFAULT_OPT_OUT_TAG,
        max_changes=_int(env, "ASR_MAX_CHANGES", 20),
        read_effective_routes=_bool(env, "ASR_READ_EFFECTIVE_ROUTES", False),
        read_effective_nsgs=_bool(env, "ASR_READ_EFFECTIVE_NSG", False),
        read_admin_rules=_bool(env, "ASR_READ_ADMIN_RULES", True),
        service_tags_location=env.get("ASR_SERVICE_TAGS_LOCATION", "").strip() or "westeurope",
        service_tags_file=env.get("ASR_SERVICE_TAGS_FILE", "").strip(),
        audit_sink=_choice(env, "ASR_AUDIT_SINK", ("jsonl", "table"), "jsonl"),
        audit_path=env.get("ASR_AUDIT_PATH", "").strip() or "audit.jsonl",
        audit_table=env.get("ASR_AUDIT_TABLE", "").strip() or "asrremediateaudit",
        audit_table_endpoint=env.get("ASR_AUDIT_TABLE_ENDPOINT", "").strip(),
        audit_connection_string=env.get("ASR_AUDIT_CONNECTION_STRING", "").strip(),
        bot_principal_ids=tuple(p.lower() for p in _list(env, "ASR_BOT_PRINCIPAL_IDS")),
        fanout_queue=env.get("ASR_FANOUT_QUEUE", "").strip() or "asr-scan-batches",
        arm_endpoint=_arm_endpoint(env, "ASR_ARM_ENDPOINT"),
        arm_ca_bundle=_existing_file(env, "ASR_ARM_CA_BUNDLE"),
        arm_poll_interval=_float(env, "ASR_ARM_POLL_INTERVAL", 5.0),
        fanout_batch_size=_int(env, "ASR_FANOUT_BATCH_SIZE", 50, minimum=1),
    )
