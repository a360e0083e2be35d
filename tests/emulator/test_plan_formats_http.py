"""The HTTP dry run returns the verified plan as az CLI, Bicep or Terraform (``format=azcli|bicep|terraform``), or
the HTML report (``format=html``), naming every change of the dry run's own JSON plan, and still no write."""

from __future__ import annotations

import json

import pytest

import function_app
from asr_remediate.plan_formats import PLAN_RENDERERS
from examples.make_example_estate import DR_SUB, SUB
from tests.emulator.arm_emulator import ArmEmulator
from tests.emulator.test_function_app import app_env, http, user_function

__all__ = ["app_env"]  # the fixture, shared with the Function App tests


@pytest.mark.parametrize(("fmt", "mimetype", "marker"), [
    ("azcli", "text/x-shellscript", "az network nsg rule create"),
    ("bicep", "text/plain", "'Microsoft.Network/networkSecurityGroups/securityRules@"),
    ("terraform", "text/plain", 'resource "azurerm_network_security_rule"'),
    ("html", "text/html", "<!DOCTYPE html>"),
])
def test_dry_run_returns_the_plan_as_code(app_env: ArmEmulator, fmt: str, mimetype: str, marker: str) -> None:
    as_json = user_function(function_app.dry_run)(http("GET", {"subscription": f"{SUB},{DR_SUB}"}))
    names = [c["name"] for c in json.loads(as_json.get_body())["plan"]]
    response = user_function(function_app.dry_run)(http("GET", {"subscription": f"{SUB},{DR_SUB}", "format": fmt}))
    assert response.status_code == 200 and response.mimetype == mimetype
    text = response.get_body().decode()
    assert marker in text and names and all(name in text for name in names)
    assert (fmt in PLAN_RENDERERS or fmt == "html") and app_env.count("PUT") == 0
