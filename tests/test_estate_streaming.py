"""EstateBuilder (the inventory parsed page by page) against the whole-input definition of build_estate.

The definition (the module docstring of estate.py, and what build_estate did on the whole list before it was made
incremental): children given separately (security rules, routes, subnets) are folded into their parent by name (by
id for subnets), children winning, whatever their order; the parent is then parsed once. The reference below
implements that directly on the JSON — fold every loose child into its parent document, then parse documents that
have no loose children left — so the builder's parsed-level merging (a child arriving after its parent was parsed
and its JSON dropped) is checked against the JSON-level fold, on the example estate and on a generated one, with
children before and after their parents, unreadable children and parents, and ids and types in other cases.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Mapping
from functools import cache
from typing import Any

import pytest

from asr_remediate.estate import EstateBuilder, build_estate, with_reads
from asr_remediate.model import Estate, key, parent_id
from benchmarks.generate import generate, load_tags
from tests.scenario import REPO

CHILDREN = {  # parent type → (the children's JSON field, the child type, the field children are matched by)
    "microsoft.network/networksecuritygroups": ("securityRules",
                                                "Microsoft.Network/networkSecurityGroups/securityRules", "name"),
    "microsoft.network/routetables": ("routes", "Microsoft.Network/routeTables/routes", "name"),
    "microsoft.network/virtualnetworks": ("subnets", "Microsoft.Network/virtualNetworks/subnets", "id"),
}
CHILD_TYPES = {child.lower(): parent for parent, (_, child, _) in CHILDREN.items()}


def reference(resources: list[Mapping[str, Any]]) -> Estate:
    """build_estate's definition on the whole input: every loose child folded into its parent's JSON (in input order,
    children winning by name, or id for subnets), then the parents parsed with no loose child left."""
    loose: dict[str, list[Mapping[str, Any]]] = {}
    for resource in resources:
        if str(resource.get("type", "")).lower() in CHILD_TYPES:
            loose.setdefault(key(parent_id(str(resource["id"]))), []).append(resource)
    folded = []
    for resource in resources:
        rtype = str(resource.get("type", "")).lower()
        if rtype in CHILD_TYPES:
            continue
        children = loose.get(key(str(resource.get("id", ""))), [])
        if rtype in CHILDREN and children:
            field, _, match = CHILDREN[rtype]
            props = dict(resource["properties"])
            by = {(key if match == "id" else str.lower)(str(c.get(match) or "")): c for c in props.get(field) or []}
            by.update({(key if match == "id" else str.lower)(str(c.get(match) or "")): c for c in children})
            resource = {**resource, "properties": {**props, field: list(by.values())}}
        folded.append(resource)
    return build_estate(folded)


def streamed(resources: list[Mapping[str, Any]], page: int) -> Estate:
    """The builder fed ``page`` resources at a time, built (and the build thrown away) after every page."""
    builder = EstateBuilder()
    for start in range(0, len(resources), page):
        builder.add_all(resources[start:start + page])
        builder.build()
    return builder.build()


def loosened(resources: list[Mapping[str, Any]], seed: int) -> list[dict[str, Any]]:
    """``resources`` with some children of some parents taken out as resources of their own, placed before or after
    their parent (ids and types sometimes in upper case), and a few variants: a changed copy of a child that stays
    inline too (the loose one wins), an unreadable loose rule after a readable parent, a parent with an unreadable
    inline rule that a later loose rule of the same name replaces."""
    rng = random.Random(seed)
    result: list[dict[str, Any]] = [copy.deepcopy(dict(r)) for r in resources]
    moves: list[tuple[int, dict[str, Any]]] = []  # (index of the parent, loose child)
    for index, resource in enumerate(result):
        rtype = str(resource.get("type", "")).lower()
        if rtype not in CHILDREN or rng.random() < 0.5:
            continue
        field, child_type, _ = CHILDREN[rtype]
        inline = resource["properties"].get(field) or []
        taken = [c for c in inline if rng.random() < 0.5]
        kept = [c for c in inline if all(c is not t for t in taken)]
        if taken and kept and rng.random() < 0.3 and field != "subnets":
            taken.append({**copy.deepcopy(kept[0]), "properties": {**kept[0]["properties"], "description": "loose"}})
        resource["properties"] = {**resource["properties"], field: kept}
        for child in taken:
            name = str(child.get("name") or "")
            child_id = str(child.get("id") or f"{resource['id']}/{field}/{name}")
            loose = {**copy.deepcopy(child), "id": child_id.upper() if rng.random() < 0.3 else child_id,
                     "type": child_type.upper() if rng.random() < 0.3 else child_type}
            moves.append((index, loose))
    nsgs = [i for i, r in enumerate(result) if str(r["type"]).lower() == "microsoft.network/networksecuritygroups"
            and r["properties"].get("securityRules")]
    if len(nsgs) >= 2:
        bad = result[nsgs[0]]
        moves.append((nsgs[0] + 1, {"id": f"{bad['id']}/securityRules/broken", "name": "broken",
                                    "type": "Microsoft.Network/networkSecurityGroups/securityRules",
                                    "properties": {"priority": "high", "direction": "Outbound", "access": "Deny"}}))
        fixed = result[nsgs[1]]
        rule = copy.deepcopy(fixed["properties"]["securityRules"][0])
        broken = {**copy.deepcopy(rule), "properties": {**rule["properties"], "priority": "not a number"}}
        rest = fixed["properties"]["securityRules"][1:]
        fixed["properties"] = {**fixed["properties"], "securityRules": [broken, *rest]}
        moves.append((nsgs[1] + 1, {**rule, "id": str(rule.get("id") or f"{fixed['id']}/securityRules/{rule['name']}"),
                                    "type": "Microsoft.Network/networkSecurityGroups/securityRules"}))
    placed: list[dict[str, Any]] = []
    before: dict[int, list[dict[str, Any]]] = {}
    after: list[dict[str, Any]] = []
    for index, child in moves:
        if child.get("name") == "broken" or rng.random() < 0.5:
            after.append(child)
        else:
            before.setdefault(index, []).append(child)
    for index, resource in enumerate(result):
        placed += before.get(index, [])
        placed.append(resource)
    return placed + after


@cache
def example() -> list[dict[str, Any]]:
    return json.loads((REPO / "examples" / "estate.json").read_text())


@cache
def generated() -> list[dict[str, Any]]:
    return generate(300, seed=20251028, tags=load_tags()).resources


@pytest.mark.parametrize("source", [example, generated], ids=["example", "generated-300"])
def test_page_by_page_is_the_whole_input_estate(source):
    resources = source()
    whole = build_estate(resources)
    assert whole.protected_items and whole.nsgs and whole.route_tables
    for page in (1, 7, 1000):
        assert streamed(resources, page) == whole


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("source", [example, generated], ids=["example", "generated-300"])
def test_loose_children_before_and_after_their_parents(source, seed):
    resources = loosened(source(), seed)
    expected = reference(resources)
    loose = [r for r in resources if str(r["type"]).lower() in CHILD_TYPES]
    assert loose, "the variant has children given separately"
    assert streamed(resources, 13) == expected
    assert build_estate(resources) == expected
    # The planted cases: an unreadable loose rule after a readable parent; a parent whose unreadable inline rule a
    # later loose rule of the same name replaces.
    broken = [r for r in loose if r.get("name") == "broken"]
    if broken:
        assert key(parent_id(broken[0]["id"])) in expected.unreadable


def test_a_late_child_fixes_or_breaks_a_parent_as_the_whole_input_would():
    nsg_id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg"

    def rule(name, priority):
        return {"name": name, "id": f"{nsg_id}/securityRules/{name}",
                "properties": {"priority": priority, "direction": "Outbound", "access": "Allow", "protocol": "Tcp",
                               "sourceAddressPrefix": "*", "destinationAddressPrefix": "Storage",
                               "sourcePortRange": "*", "destinationPortRange": "443"}}

    def loose(name, priority):
        return {**rule(name, priority), "type": "Microsoft.Network/networkSecurityGroups/securityRules"}

    parent = {"id": nsg_id, "name": "nsg", "type": "Microsoft.Network/networkSecurityGroups", "location": "eastus",
              "properties": {"securityRules": [rule("a", 100), rule("b", "x"), rule("a", 110)]}}
    cases = [
        [parent, loose("b", 200)],  # the unreadable inline rule replaced: readable
        [loose("b", 200), parent],
        [parent, loose("c", "y"), loose("c", 300)],  # a late unreadable child replaced by a later one
        [parent, loose("b", 200), loose("d", "z")],  # a late unreadable child: unreadable
        [{**parent, "properties": {"securityRules": [rule("a", 100), rule("a", 120)]}}, loose("e", 130)],  # names
    ]
    for resources in cases:
        expected = reference(resources)
        assert streamed(resources, 1) == expected == build_estate(resources)
    assert key(nsg_id) in build_estate(cases[3]).unreadable
    rules = build_estate(cases[4]).nsgs[key(nsg_id)].rules
    assert [(r.name, r.priority) for r in rules] == [("a", 120), ("e", 130)]


def test_reads_merged_into_a_parsed_estate_equal_parsing_them_with_it():
    resources = example()
    reads = [r for r in resources if r["type"].lower().endswith("/networkmanagereffectivesecurityadminrules")]
    others = [r for r in resources if r not in reads]
    vnet = next(r["id"] for r in others if r["type"].lower() == "microsoft.network/virtualnetworks")
    reads = [*reads,
             {"id": f"{vnet}/networkManagerEffectiveSecurityAdminRules",
              "type": "Microsoft.Network/virtualNetworks/networkManagerEffectiveSecurityAdminRules",
              "properties": {"error": "AuthorizationFailed: no access"}},
             {"id": f"{vnet}/x/networkManagerEffectiveSecurityAdminRules",
              "type": "Microsoft.Network/virtualNetworks/networkManagerEffectiveSecurityAdminRules",
              "properties": {"value": [{"properties": {"priority": "not a number"}}]}}]
    merged = with_reads(build_estate(others), reads)
    assert merged == build_estate(others + reads)
    assert merged.admin_rules and merged.read_errors and merged.unreadable
    with pytest.raises(ValueError, match="with_reads takes only"):
        with_reads(build_estate(others), others[:1])
