"""Plans as code: the example estate's verified plan as az CLI commands, Bicep and Terraform.

Golden files (tests/data/plan_formats/, regenerate with ``ASR_UPDATE_GOLDEN=1``) pin the text; each format is also
parsed back and compared with the plan itself, so a golden file cannot drift from what the plan means:

* az CLI: ``shlex`` splits each command; the command names and argument names must be those of the az CLI's network
  module (``az network nsg rule create|update``, ``az network route-table route create|update``, as documented at
  learn.microsoft.com/cli/azure/network/nsg/rule and learn.microsoft.com/cli/azure/network/route-table/route — the
  az CLI's own command table is not installable here without the whole azure-cli, so the documented argument names
  are written out below);
* Bicep: every per-resource-group template parses with pycep (checkov's Bicep parser), and its child resources
  carry exactly the plan's properties;
* Terraform: python-hcl2 parses it, and every ``azurerm_network_security_rule`` / ``azurerm_route`` block carries
  the plan's values under the azurerm argument names.
"""

from __future__ import annotations

import os
import shlex
from functools import cache
from typing import Any

import hcl2
import pytest
from pycep import BicepParser

from asr_remediate import cli
from asr_remediate.config import Settings
from asr_remediate.engine import scan
from asr_remediate.estate import load_estate_file
from asr_remediate.plan_formats import (
    PLAN_RENDERERS,
    bicep_files,
    is_coded,
    render_azcli,
    render_bicep,
    render_terraform,
)
from asr_remediate.planner import Change, Plan
from asr_remediate.servicetags import load_service_tags_file
from tests.scenario import REPO

GOLDEN = REPO / "tests" / "data" / "plan_formats"
ESTATE = REPO / "examples" / "estate.json"
TAGS = REPO / "examples" / "ServiceTags_Public_20251028.json"
SUFFIX = {"azcli": "sh", "bicep": "bicep", "terraform": "tf"}

# The documented arguments of the two az commands (learn.microsoft.com/cli/azure/network/...), global ones included.
AZ_ARGUMENTS = {
    ("network", "nsg", "rule"): {"--subscription", "--resource-group", "--nsg-name", "--name", "--priority",
                                 "--direction", "--access", "--protocol", "--source-address-prefixes",
                                 "--source-port-ranges", "--destination-address-prefixes", "--destination-port-ranges",
                                 "--description", "--source-asgs", "--destination-asgs"},
    ("network", "route-table", "route"): {"--subscription", "--resource-group", "--route-table-name", "--name",
                                          "--address-prefix", "--next-hop-type", "--next-hop-ip-address"},
}


@cache
def example_plan() -> Plan:
    return scan(load_estate_file(str(ESTATE)), load_service_tags_file(str(TAGS)), Settings())


def coded() -> list[Change]:
    """The NSG rule and route changes (a rule collection group change is a comment in every format)."""
    return [c for c in example_plan().changes if is_coded(c)]


def as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@pytest.mark.parametrize("fmt", sorted(PLAN_RENDERERS))
def test_golden(fmt: str) -> None:
    plan = example_plan()
    text = PLAN_RENDERERS[fmt](plan.reports, plan.changes)
    golden = GOLDEN / f"example.{SUFFIX[fmt]}"
    if os.environ.get("ASR_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def parse_az(text: str) -> list[list[str]]:
    commands = []
    for chunk in text.replace("\\\n", " ").splitlines():
        if chunk.strip().startswith("az "):
            commands.append(shlex.split(chunk))
    return commands


def az_arguments(words: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current = ""
    for word in words[5:]:
        if word.startswith("--"):
            current = word
            found[current] = []
        else:
            found[current].append(word)
    return found


def test_azcli_commands_use_the_documented_arguments_and_carry_the_plan() -> None:
    plan = example_plan()
    commands = parse_az(render_azcli(plan.reports, coded()))
    assert len(commands) == len(coded())
    for words, change in zip(commands, coded(), strict=True):
        group = tuple(words[1:4])
        assert words[0] == "az" and group in AZ_ARGUMENTS and words[4] in ("create", "update")
        arguments = az_arguments(words)
        assert set(arguments) <= AZ_ARGUMENTS[group], set(arguments) - AZ_ARGUMENTS[group]
        assert arguments["--name"] == [change.name]
        parent = change.resource_id.rsplit("/", 1)[-1]
        assert arguments["--nsg-name" if change.child_type == "securityRules" else "--route-table-name"] == [parent]
        p = change.properties
        if change.child_type == "securityRules":
            assert arguments["--priority"] == [str(p["priority"])]
            prefixes = p.get("sourceAddressPrefixes") or [p["sourceAddressPrefix"]]
            assert arguments["--source-address-prefixes"] == as_list(prefixes)
            destination = p.get("destinationAddressPrefixes") or [p["destinationAddressPrefix"]]
            assert arguments["--destination-address-prefixes"] == as_list(destination)
            assert arguments["--description"] == [p["description"]]
        else:
            assert arguments["--address-prefix"] == [p["addressPrefix"]]
            assert arguments["--next-hop-type"] == [p["nextHopType"]]


def test_a_value_with_shell_characters_is_quoted() -> None:
    change = Change("create-security-rule", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
                    "networkSecurityGroups/nsg", "asr-remediate-x", {"priority": 100,
                                                                      "description": "it's $(rm -rf /); `x`"})
    [words] = parse_az(render_azcli([], [change]))
    assert az_arguments(words)["--description"] == ["it's $(rm -rf /); `x`"]


def test_bicep_templates_parse_and_carry_the_plan() -> None:
    plan = example_plan()
    files = bicep_files(render_bicep(plan.reports, coded()))
    groups = {tuple(c.resource_id.split("/")[i] for i in (2, 4)) for c in coded()}
    assert set(files) == {f"{sub}/{rg}.bicep" for sub, rg in groups}
    parser = BicepParser()
    seen = 0
    for name, text in files.items():
        tree = parser.parse(text=text)
        resources = tree["resources"]
        for resource in resources.values():
            config = resource["config"]
            if resource.get("existing"):
                continue
            change = next(c for c in coded() if c.name == config["name"] and
                          f"{c.resource_id.split('/')[2]}/{c.resource_id.split('/')[4]}.bicep" == name and
                          c.resource_id.rsplit("/", 1)[-1].replace("-", "_") == config["parent"].replace("-", "_"))
            assert config["properties"] == dict(change.properties)
            seen += 1
    assert seen == len(coded())


def value(parsed: Any) -> Any:
    """bc-python-hcl2 (checkov's fork, 0.4) wraps each attribute's value in a list."""
    return parsed[0] if isinstance(parsed, list) and len(parsed) == 1 else parsed


def test_terraform_parses_and_carries_the_plan() -> None:
    plan = example_plan()
    document = hcl2.loads(render_terraform(plan.reports, coded()))
    blocks = [(kind, label, body) for resource in document["resource"] for kind, labelled in resource.items()
              for label, body in labelled.items()]
    assert len(blocks) == len(coded())
    providers = {value(p["azurerm"]["alias"]): value(p["azurerm"]["subscription_id"]) for p in document["provider"]}
    for (kind, _label, body), change in zip(blocks, coded(), strict=True):
        text = {k: value(v) for k, v in body.items() if not k.startswith("__")}
        subscription, group, parent = (change.resource_id.split("/")[i] for i in (2, 4, 8))
        assert providers[text["provider"].removeprefix("${").removesuffix("}").split(".", 1)[1]] == subscription
        assert (text["name"], text["resource_group_name"]) == (change.name, group)
        p = change.properties
        if change.child_type == "securityRules":
            assert kind == "azurerm_network_security_rule" and text["network_security_group_name"] == parent
            assert int(text["priority"]) == p["priority"] and text["access"] == p["access"]
            assert text["source_address_prefixes"] == p["sourceAddressPrefixes"]
            assert text["destination_address_prefix"] == p["destinationAddressPrefix"]
        else:
            assert kind == "azurerm_route" and text["route_table_name"] == parent
            assert (text["address_prefix"], text["next_hop_type"]) == (p["addressPrefix"], p["nextHopType"])


def test_cli_scan_writes_each_format(capsys: pytest.CaptureFixture[str]) -> None:
    plan = example_plan()
    for fmt in PLAN_RENDERERS:
        code = cli.main(["scan", "--estate", str(ESTATE), "--service-tags", str(TAGS), "--format", fmt])
        assert code == cli.EXIT_DRIFT
        assert capsys.readouterr().out.rstrip("\n") == PLAN_RENDERERS[fmt](plan.reports, plan.changes).rstrip("\n")


def test_an_empty_plan_says_so() -> None:
    for fmt, render in PLAN_RENDERERS.items():
        assert "nothing to change" in render([], []), fmt
    assert hcl2.loads(render_terraform([], [])) is not None
    BicepParser().parse(text=render_bicep([], []) + "\n")
