"""The verified plan as code, for estates where every change goes through a pipeline: az CLI, Bicep, Terraform.

The same changes as the JSON plan (``Change.properties`` are ARM's ``SecurityRulePropertiesFormat`` /
``RoutePropertiesFormat``), written as

* ``azcli``: ``az network nsg rule create|update`` and ``az network route-table route create|update`` (argument
  names of the az CLI's network module: ``--nsg-name``, ``--source-address-prefixes``, ``--destination-port-ranges``,
  ``--route-table-name``, ``--address-prefix``, ``--next-hop-type``, ``--next-hop-ip-address``; learn.microsoft.com/
  cli/azure/network/nsg/rule and …/network/route-table/route), one command per change, values shell-quoted;
* ``bicep``: per resource group one template (deployed with ``az deployment group create``) declaring each NSG /
  route table as an ``existing`` parent and each rule / route as a child resource (``parent:``) —
  Microsoft.Network/networkSecurityGroups/securityRules and routeTables/routes at API version 2024-05-01;
* ``terraform``: ``azurerm_network_security_rule`` / ``azurerm_route`` blocks (azurerm provider argument names),
  one aliased ``azurerm`` provider per subscription. An *update* of an existing rule needs it in the state first:
  the block carries the ``terraform import`` line as a comment.

Only what the plan holds is written; nothing is widened or added. A Firewall Policy rule collection group change
(firewall_planner.py) is not written as code yet: each format names it in a comment, with the ``az rest`` PUT that
makes it, and the JSON plan carries its properties.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from .drift import VmReport
from .planner import Change

NETWORK_API_VERSION = "2024-05-01"

# ARM property → az CLI argument (nsg rule create/update); lists take the plural argument with several values.
ArgumentMap = tuple[tuple[str, str], ...]
_AZ_RULE_ARGS: ArgumentMap = (
    ("priority", "--priority"), ("direction", "--direction"), ("access", "--access"), ("protocol", "--protocol"),
    ("sourceAddressPrefix", "--source-address-prefixes"), ("sourceAddressPrefixes", "--source-address-prefixes"),
    ("sourcePortRange", "--source-port-ranges"), ("sourcePortRanges", "--source-port-ranges"),
    ("destinationAddressPrefix", "--destination-address-prefixes"),
    ("destinationAddressPrefixes", "--destination-address-prefixes"),
    ("destinationPortRange", "--destination-port-ranges"), ("destinationPortRanges", "--destination-port-ranges"),
    ("description", "--description"),
)
_AZ_ROUTE_ARGS: ArgumentMap = (("addressPrefix", "--address-prefix"), ("nextHopType", "--next-hop-type"),
                  ("nextHopIpAddress", "--next-hop-ip-address"))
# ARM property → azurerm argument.
_TF_RULE_ARGS: ArgumentMap = (
    ("priority", "priority"), ("direction", "direction"), ("access", "access"), ("protocol", "protocol"),
    ("sourcePortRange", "source_port_range"), ("sourcePortRanges", "source_port_ranges"),
    ("destinationPortRange", "destination_port_range"), ("destinationPortRanges", "destination_port_ranges"),
    ("sourceAddressPrefix", "source_address_prefix"), ("sourceAddressPrefixes", "source_address_prefixes"),
    ("destinationAddressPrefix", "destination_address_prefix"),
    ("destinationAddressPrefixes", "destination_address_prefixes"), ("description", "description"),
)
_TF_ROUTE_ARGS: ArgumentMap = (("addressPrefix", "address_prefix"), ("nextHopType", "next_hop_type"),
                  ("nextHopIpAddress", "next_hop_in_ip_address"))


def _parts(resource_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, name) of an NSG / route table id."""
    segments = resource_id.strip("/").split("/")
    lower = [s.lower() for s in segments]
    subscription = segments[lower.index("subscriptions") + 1]
    group = segments[lower.index("resourcegroups") + 1]
    return subscription, group, segments[-1]


def _is_update(change: Change) -> bool:
    return change.action.startswith("update-")


def is_coded(change: Change) -> bool:
    """NSG rules and routes are written as code; other changes (rule collection groups) as a comment."""
    return change.child_type in ("securityRules", "routes")


def _uncoded(change: Change, mark: str) -> list[str]:
    url = f"https://management.azure.com{change.resource_id}/{change.child_type}/{change.name}?api-version=" \
          f"{NETWORK_API_VERSION}"
    return [f"{mark} not written in this format: {change.action} {change.name} on {change.resource_id}",
            f"{mark} (its properties are in the JSON plan: az rest --method put --url '{url}' --body @<properties>)",
            ""]


# -- az CLI --------------------------------------------------------------------------------------------------

def render_azcli(reports: Iterable[VmReport], changes: Iterable[Change]) -> str:
    changes = list(changes)
    lines = ["#!/usr/bin/env bash", "# asr-remediate plan as az CLI commands: review, then run (each is idempotent by "
             "name).", "set -euo pipefail", ""]
    if not changes:
        lines.append("# nothing to change")
    for change in changes:
        if not is_coded(change):
            lines += _uncoded(change, "#")
            continue
        subscription, group, parent = _parts(change.resource_id)
        verb = "update" if _is_update(change) else "create"
        if change.child_type == "securityRules":
            words = ["az", "network", "nsg", "rule", verb, "--subscription", subscription, "--resource-group", group,
                     "--nsg-name", parent, "--name", change.name]
            mapping = _AZ_RULE_ARGS
        else:
            words = ["az", "network", "route-table", "route", verb, "--subscription", subscription,
                     "--resource-group", group, "--route-table-name", parent, "--name", change.name]
            mapping = _AZ_ROUTE_ARGS
        for prop, argument in mapping:
            value = change.properties.get(prop)
            if value is None or value == [] or value == "":
                continue
            words.append(argument)
            words += [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if change.reason:
            lines.append(f"# {_comment(change.reason)}")
        lines.append(" \\\n    ".join(_join_pairs(words)))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _join_pairs(words: list[str]) -> list[str]:
    """Keep the command on the first line and each --argument with its values on one continuation line."""
    out: list[str] = []
    for word in words:
        quoted = shlex.quote(word)
        if word.startswith("--") or not out:
            out.append(quoted)
        else:
            out[-1] += " " + quoted
    return out


def _comment(text: str) -> str:
    return " ".join(text.split())[:300]


# -- Bicep ---------------------------------------------------------------------------------------------------

def _bicep_value(value: Any, indent: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        inner = indent + "  "
        return "[\n" + "".join(f"{inner}{_bicep_value(v, inner)}\n" for v in value) + f"{indent}]"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("${", "\\${")
    return f"'{text}'"


def _symbol(*texts: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(texts))
    return name if name[:1].isalpha() else f"r_{name}"


def render_bicep(reports: Iterable[VmReport], changes: Iterable[Change]) -> str:
    groups: dict[tuple[str, str], list[Change]] = {}
    uncoded: list[str] = []
    for change in changes:
        if not is_coded(change):
            uncoded += _uncoded(change, "//")
            continue
        subscription, group, _ = _parts(change.resource_id)
        groups.setdefault((subscription, group), []).append(change)
    if not groups and not uncoded:
        return "// asr-remediate plan: nothing to change\n"
    out: list[str] = list(uncoded)
    for (subscription, group), members in groups.items():
        out += [f"// ---- {subscription}/{group}.bicep: az deployment group create --subscription {subscription} "
                f"--resource-group {group} --template-file {group}.bicep",
                "// asr-remediate plan: the NSGs and route tables exist; only the rules and routes below are deployed.",
                ""]
        parents: dict[str, str] = {}
        for change in members:
            _, _, parent = _parts(change.resource_id)
            if change.resource_id.lower() in parents:
                continue
            symbol = _symbol(parent)
            parents[change.resource_id.lower()] = symbol
            kind = "networkSecurityGroups" if change.child_type == "securityRules" else "routeTables"
            out += [f"resource {symbol} 'Microsoft.Network/{kind}@{NETWORK_API_VERSION}' existing = {{",
                    f"  name: {_bicep_value(parent, '  ')}", "}", ""]
        for change in members:
            parent_symbol = parents[change.resource_id.lower()]
            kind = "networkSecurityGroups/securityRules" if change.child_type == "securityRules" else \
                "routeTables/routes"
            if change.reason:
                out.append(f"// {_comment(change.reason)}")
            out += [f"resource {_symbol(parent_symbol, change.name)} 'Microsoft.Network/{kind}@{NETWORK_API_VERSION}' "
                    "= {", f"  parent: {parent_symbol}", f"  name: {_bicep_value(change.name, '  ')}",
                    "  properties: {"]
            for prop, value in change.properties.items():
                out.append(f"    {prop}: {_bicep_value(value, '    ')}")
            out += ["  }", "}", ""]
    return "\n".join(out).rstrip() + "\n"


def bicep_files(text: str) -> dict[str, str]:
    """Split :func:`render_bicep`'s output into its per-resource-group templates (name → text)."""
    files: dict[str, str] = {}
    current = ""
    for line in text.splitlines(keepends=True):
        match = re.match(r"^// ---- (\S+\.bicep):", line)
        if match:
            current = match.group(1)
            files[current] = ""
        if current:
            files[current] += line
    return files


# -- Terraform -----------------------------------------------------------------------------------------------

def _hcl_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_hcl_value(v) for v in value) + "]"
    return json.dumps(str(value)).replace("${", "$${").replace("%{", "%%{")


def render_terraform(reports: Iterable[VmReport], changes: Iterable[Change]) -> str:
    changes = list(changes)
    uncoded = [line for c in changes if not is_coded(c) for line in _uncoded(c, "#")]
    changes = [c for c in changes if is_coded(c)]
    out = ["# asr-remediate plan as Terraform (azurerm): the NSGs and route tables exist; only the rules and routes "
           "below are managed.", ""]
    subscriptions = list(dict.fromkeys(_parts(c.resource_id)[0] for c in changes))
    aliases = {s: _symbol("sub", s) for s in subscriptions}
    for subscription in subscriptions:
        out += ['provider "azurerm" {', f"  alias           = {_hcl_value(aliases[subscription])}",
                f"  subscription_id = {_hcl_value(subscription)}", "  features {}", "}", ""]
    out += uncoded
    if not changes and not uncoded:
        out.append("# nothing to change")
    for change in changes:
        subscription, group, parent = _parts(change.resource_id)
        if change.child_type == "securityRules":
            kind, parent_argument, mapping = "azurerm_network_security_rule", "network_security_group_name", \
                _TF_RULE_ARGS
            child_id = f"{change.resource_id}/securityRules/{change.name}"
        else:
            kind, parent_argument, mapping = "azurerm_route", "route_table_name", _TF_ROUTE_ARGS
            child_id = f"{change.resource_id}/routes/{change.name}"
        label = _symbol(parent, change.name)
        if change.reason:
            out.append(f"# {_comment(change.reason)}")
        if _is_update(change):
            out.append(f"# updates an existing rule: terraform import {kind}.{label} {child_id}")
        arguments = [("provider", f"azurerm.{aliases[subscription]}"), ("name", _hcl_value(change.name)),
                     ("resource_group_name", _hcl_value(group)), (parent_argument, _hcl_value(parent))]
        arguments += [(argument, _hcl_value(change.properties[prop])) for prop, argument in mapping
                      if change.properties.get(prop) not in (None, "", [])]
        width = max(len(a) for a, _ in arguments)
        out.append(f'resource "{kind}" "{label}" {{')
        out += [f"  {argument.ljust(width)} = {value}" for argument, value in arguments]
        out += ["}", ""]
    return "\n".join(out).rstrip() + "\n"


PLAN_RENDERERS: Mapping[str, Any] = {"azcli": render_azcli, "bicep": render_bicep, "terraform": render_terraform}
CONTENT_TYPES = {"azcli": "text/x-shellscript; charset=utf-8", "bicep": "text/plain; charset=utf-8",
                 "terraform": "text/plain; charset=utf-8"}
