"""Settings: safe defaults, every form operators write, and one-line errors naming the setting."""

from __future__ import annotations

import pytest

from asr_remediate.config import Settings, SettingsError, load_settings

A, B, C = ("00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b",
           "00000000-0000-0000-0000-00000000000c")


def test_defaults_are_report_only_and_safe() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.apply is False and settings.max_changes == 20 and settings.scope_allowlist == ()
    # Reading the AVNM security admin rules changes nothing and without it a network manager's Deny goes unseen.
    assert settings.read_admin_rules is True
    assert load_settings({"ASR_READ_ADMIN_RULES": "off"}).read_admin_rules is False


def test_values_are_parsed() -> None:
    settings = load_settings({
        "ASR_APPLY": "Yes", "ASR_PROFILE": "SEED-2017", "ASR_MAX_CHANGES": "5",
        "ASR_SUBSCRIPTIONS": f" {A} , {B};{C} ,", "ASR_BOT_PRINCIPAL_IDS": "ABC", "ASR_ARM_ENDPOINT": "https://x/",
        "ASR_ARM_POLL_INTERVAL": "0.5", "ASR_FANOUT_BATCH_SIZE": "3",
        "ASR_SCOPE_ALLOWLIST": f"/subscriptions/{A}, /subscriptions/{B}/resourceGroups/rg-net/",
    })
    assert settings.apply is True and settings.profile == "seed-2017" and settings.max_changes == 5
    assert settings.subscriptions == (A, B, C) and settings.bot_principal_ids == ("abc",)
    assert settings.scope_allowlist == (f"/subscriptions/{A}", f"/subscriptions/{B}/resourceGroups/rg-net/")
    assert settings.arm_endpoint == "https://x" and settings.arm_poll_interval == 0.5
    assert settings.fanout_batch_size == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ASR_APPLY": "maybe"}, "ASR_APPLY must be true or false"),
        ({"ASR_PROFILE": "2030"}, "ASR_PROFILE must be one of"),
        ({"ASR_MAX_CHANGES": "ten"}, "ASR_MAX_CHANGES must be a whole number"),
        ({"ASR_MAX_CHANGES": "-1"}, "ASR_MAX_CHANGES must be at least 0"),
        ({"ASR_FANOUT_BATCH_SIZE": "0"}, "ASR_FANOUT_BATCH_SIZE must be at least 1"),
        ({"ASR_ARM_POLL_INTERVAL": "soon"}, "ASR_ARM_POLL_INTERVAL must be a number"),
        ({"ASR_ARM_POLL_INTERVAL": "1000"}, "between 0 and 300"),
        ({"ASR_AUDIT_SINK": "s3"}, "ASR_AUDIT_SINK must be one of"),
        ({"ASR_SUBSCRIPTIONS": "prod"}, "ASR_SUBSCRIPTIONS: 'prod' is not a subscription id"),
        ({"ASR_SCOPE_ALLOWLIST": "rg-prod"}, "ASR_SCOPE_ALLOWLIST: 'rg-prod' is not a resource id prefix"),
        ({"ASR_SCOPE_ALLOWLIST": "/subscriptions/x"}, "is not a resource id prefix"),
        ({"ASR_ARM_CA_BUNDLE": "/nowhere/ca.pem"}, "ASR_ARM_CA_BUNDLE: no such file '/nowhere/ca.pem'"),
        ({"ASR_SUBSCRIPTIONS": "x" * 100_000}, r"'x{59}…' is not a subscription id"),
        # ASR_ARM_ENDPOINT: urllib's own ValueErrors (bad IPv6 literal, port) become one line naming the setting.
        ({"ASR_ARM_ENDPOINT": "https://[::1"}, r"ASR_ARM_ENDPOINT: 'https://\[::1' is not a URL"),
        ({"ASR_ARM_ENDPOINT": "https://arm.example:port"}, "is not a URL"),
        ({"ASR_ARM_ENDPOINT": "https://arm.example:99999"}, "is not a URL"),
        ({"ASR_ARM_ENDPOINT": "http://127.0.0.1:8443"}, "must be an https URL"),
        ({"ASR_ARM_ENDPOINT": "management.azure.com"}, "must be an https URL"),
        ({"ASR_ARM_ENDPOINT": "https://"}, "has no valid host name"),
        ({"ASR_ARM_ENDPOINT": "https://exa mple.com"}, "has no valid host name"),
        ({"ASR_ARM_ENDPOINT": "https://management.azure.com/subscriptions"}, "must be a base URL"),
        ({"ASR_ARM_ENDPOINT": "https://user:pw@management.azure.com"}, "must be a base URL"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)
