"""The Azurite fixture fails (never skips) when the emulator is not installed."""

from __future__ import annotations

import pytest

import tests.azurite as azurite_module


def test_missing_azurite_is_a_failure_that_says_how_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(azurite_module, "AZURITE_BIN", azurite_module.REPO_ROOT / "node_modules" / ".bin" / "nope")
    with pytest.raises(pytest.fail.Exception, match=r"npm ci"), azurite_module.run_azurite(tmp_path):
        pass


def test_connection_string_names_every_service(azurite) -> None:
    assert "AccountName=devstoreaccount1;" in azurite
    for service in ("Blob", "Queue", "Table"):
        assert f"{service}Endpoint=http://127.0.0.1:" in azurite
