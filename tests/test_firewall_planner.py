"""The firewall fix plan: the bot's rule collection group ``asr-remediate`` in the policy attached to the firewall.

Sources for the Azure behaviour relied on: rule collection groups by priority 100–65,000, network rules before
application rules whatever the group, a parent policy's network rule collections before the child's
(learn.microsoft.com/azure/firewall/rule-processing, /azure/firewall/policy-rule-sets,
/azure/firewall-manager/policy-overview); at most 90 rule collection groups per policy (Azure Firewall limits,
MicrosoftDocs/azure-docs includes/firewall-limits.md). The group body has the shape of the real
``FirewallPolicyRuleCollectionGroupGet.json`` example (Azure/azure-rest-api-specs, Microsoft.Network stable
2025-05-01, copied to tests/data/arm/).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from asr_remediate.config import Settings
from asr_remediate.engine import scan
from asr_remediate.estate import build_estate, parse_rule_collection_group
from asr_remediate.firewall_planner import CREATE_GROUP, FIREWALL_GROUP, MAX_GROUPS_PER_POLICY, UPDATE_GROUP
from asr_remediate.planner import Plan, apply_changes
from examples.estate_builder import (
    application_rule,
    azure_firewall,
    network_rule,
    rule_collection,
)
from tests.scenario import SUB, full_tags, scan_resources
from tests.test_firewall import FW_IP, HUB_RG, group, hub, policy_estate

ARM = Path(__file__).resolve().parent / "data" / "arm"
PROPERTY = hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NEEDED = {"Storage.EastUS", "AzureActiveDirectory", "EventHub.CentralUS", "AzureSiteRecovery"}


def firewall_changes(plan: Plan) -> list[Any]:
    return [c for c in plan.changes if c.child_type == "ruleCollectionGroups"]


def rescan(resources: list[dict[str, Any]], plan: Plan, settings: Settings | None = None) -> Plan:
    """Apply the plan to the estate and scan again (what apply → rescan does, without ARM)."""
    estate = apply_changes(build_estate(resources), plan.changes)
    return scan(estate, full_tags(), settings or Settings())


def firewall_denies(plan: Plan) -> dict[str, bool]:
    return {f.destination: f.fixable for r in plan.reports for f in r.findings if f.kind == "firewall-deny"}


def test_the_default_deny_gets_the_bots_group_and_the_rescan_is_compliant() -> None:
    resources = hub(*policy_estate([group("other", 65000, rule_collection("web", 100, "Allow", [
        application_rule("web", ["*"], ["www.contoso.com"])]))]))
    plan = scan_resources(resources)
    assert firewall_denies(plan) == dict.fromkeys(NEEDED, True)
    [change] = firewall_changes(plan)
    assert change.action == CREATE_GROUP and change.name == FIREWALL_GROUP
    assert change.resource_id.endswith("/firewallPolicies/child")
    # The default deny can be worked around at any priority: the largest free one (65000 is the other group's).
    assert change.properties["priority"] == 64999
    assert "default deny" in change.works_around
    [collection] = change.properties["ruleCollections"]
    assert collection["action"] == {"type": "Allow"}
    rules = {r["name"]: r for r in collection["rules"]}
    assert {r["destinationAddresses"][0] for r in rules.values()} == NEEDED
    assert all(r["sourceAddresses"] == ["10.1.1.0/24"] and r["ipProtocols"] == ["TCP"]
               and r["destinationPorts"] == ["443"] for r in rules.values())
    assert {(f.side, f.destination) for f in change.fixes} == {("source", d) for d in NEEDED}
    after = rescan(resources, plan)
    assert firewall_denies(after) == {}
    assert after.reports[0].status == "compliant"


def test_the_group_goes_ahead_of_the_first_group_whose_network_rule_denies() -> None:
    resources = hub(*policy_estate([
        group("taken", 199, rule_collection("x", 100, "Allow", [network_rule("x", ["10.9.0.0/16"], ["*"])])),
        group("platform", 200, rule_collection("egress-deny", 300, "Deny", [network_rule("no-storage", ["*"],
                                                                                         ["Storage"])]))]))
    plan = scan_resources(resources)
    [change] = firewall_changes(plan)
    assert change.properties["priority"] == 198  # below 200, and 199 is another group's (ties are undocumented)
    assert "platform (priority 200)" in change.works_around and "no-storage" in change.works_around
    assert firewall_denies(rescan(resources, plan)) == {}


def test_no_free_priority_ahead_of_the_deny_is_unfixable_with_the_numbers() -> None:
    resources = hub(*policy_estate([group("platform", 100, rule_collection("deny", 100, "Deny", [
        network_rule("no-storage", ["*"], ["Storage"])]))]))
    plan = scan_resources(resources)
    assert firewall_changes(plan) == []
    deny = next(f for r in plan.reports for f in r.findings if f.destination == "Storage.EastUS")
    assert not deny.fixable and "no free rule collection group priority between 100 and 99" in deny.message


def test_a_parent_policys_network_deny_is_not_fixable_from_the_child() -> None:
    resources = hub(*policy_estate([], [group("parent-deny", 64000, rule_collection("deny", 100, "Deny", [
        network_rule("parent-deny", ["*"], ["*"])]))]))
    plan = scan_resources(resources)
    assert firewall_changes(plan) == []
    for report in plan.reports:
        for f in report.findings:
            if f.kind == "firewall-deny":
                assert not f.fixable and "parent policy parent" in f.message
                assert "only the parent policy's owner can allow it" in f.message


def test_a_parent_policys_application_deny_is_fixable_with_a_network_rule_in_the_child() -> None:
    """"network rule collections are always processed before application rule collections regardless of
    inheritance" (Firewall Manager policy overview)."""
    resources = hub(*policy_estate([], [group("parent", 100, rule_collection("deny", 100, "Deny", [
        application_rule("no-login", ["*"], ["login.microsoftonline.com"])]))]))
    plan = scan_resources(resources)
    assert firewall_denies(plan) == dict.fromkeys(NEEDED, True)
    assert len(firewall_changes(plan)) == 1
    assert firewall_denies(rescan(resources, plan)) == {}


def test_a_classic_rules_firewall_gets_no_plan_and_says_why() -> None:
    subnet = (f"/subscriptions/{SUB}/resourceGroups/{HUB_RG}/providers/Microsoft.Network/virtualNetworks/vnet-hub/"
              "subnets/AzureFirewallSubnet")
    plan = scan_resources(hub(azure_firewall(SUB, HUB_RG, "fw-hub", "eastus", subnet, FW_IP)))
    assert firewall_changes(plan) == []
    deny = next(f for r in plan.reports for f in r.findings if f.kind == "firewall-deny")
    assert not deny.fixable and "uses classic rules (no Firewall Policy)" in deny.message


def test_an_opted_out_policy_gets_no_plan() -> None:
    resources = hub(*policy_estate([]))
    policy = next(r for r in resources if r["type"] == "microsoft.network/firewallpolicies")
    policy["tags"] = {"asr-remediate-opt-out": "true"}
    plan = scan_resources(resources)
    assert firewall_changes(plan) == []
    assert all(not fixable for fixable in firewall_denies(plan).values())
    deny = next(f for r in plan.reports for f in r.findings if f.kind == "firewall-deny")
    assert "opted out" in deny.message


def test_a_policy_at_the_group_limit_gets_no_new_group() -> None:
    groups = [group(f"g{i}", 1000 + i, rule_collection("c", 100, "Allow", [
        network_rule("x", ["10.9.0.0/16"], ["*"])])) for i in range(MAX_GROUPS_PER_POLICY)]
    plan = scan_resources(hub(*policy_estate(groups)))
    assert firewall_changes(plan) == []
    deny = next(f for r in plan.reports for f in r.findings if f.kind == "firewall-deny")
    assert f"limit of {MAX_GROUPS_PER_POLICY}" in deny.message


def test_the_bots_existing_group_is_updated_keeping_its_senders_and_rules() -> None:
    own = rule_collection("asr-remediate-allow", 100, "Allow", [
        network_rule("asr-remediate-AzureActiveDirectory", ["10.7.0.0/24"], ["AzureActiveDirectory"]),
        network_rule("asr-remediate-Storage.WestUS", ["10.7.0.0/24"], ["Storage.WestUS"])])
    resources = hub(*policy_estate([group(FIREWALL_GROUP, 500, own)]))
    plan = scan_resources(resources)
    [change] = firewall_changes(plan)
    assert change.action == UPDATE_GROUP and change.properties["priority"] == 500  # its own priority is kept
    rules = {r["name"]: r for r in change.properties["ruleCollections"][0]["rules"]}
    assert rules["asr-remediate-AzureActiveDirectory"]["sourceAddresses"] == ["10.1.1.0/24", "10.7.0.0/24"]
    assert rules["asr-remediate-Storage.WestUS"]["sourceAddresses"] == ["10.7.0.0/24"]  # another VM's: kept
    assert firewall_denies(rescan(resources, plan)) == {}


def test_prefix_style_allows_only_the_denied_prefixes() -> None:
    settings = Settings(rule_style="prefix")
    deny_half = group("platform", 300, rule_collection("deny", 100, "Deny", [
        network_rule("deny-some", ["*"], ["20.0.0.0/8"])]), rule_collection("allow", 200, "Allow", [
            network_rule("allow-rest", ["*"], ["*"])]))
    resources = hub(*policy_estate([deny_half]))
    plan = scan_resources(resources, settings)
    [change] = firewall_changes(plan)
    rules = change.properties["ruleCollections"][0]["rules"]
    denied = {f.destination for r in plan.reports for f in r.findings if f.kind == "firewall-deny"}
    assert denied and {r["name"].removeprefix("asr-remediate-") for r in rules} == denied
    for rule in rules:
        assert all(d.startswith("20.") for d in rule["destinationAddresses"]), rule
    assert firewall_denies(rescan(resources, plan, settings)) == {}


def test_vm_scope_allows_the_nics_ip_only() -> None:
    settings = Settings(source_scope="vm")
    plan = scan_resources(hub(*policy_estate([])), settings)
    [change] = firewall_changes(plan)
    assert {tuple(r["sourceAddresses"]) for r in change.properties["ruleCollections"][0]["rules"]} == {
        ("10.1.1.4/32",)}


def test_the_put_body_has_the_shape_of_the_real_rule_collection_group_example() -> None:
    """Golden test: every key the bot writes at group, collection and rule level is one the real
    FirewallPolicyRuleCollectionGroupGet.json example carries (plus the optional ``description``), with the same
    spelling and value types, and the body parses back as the engine parses ARM's."""
    example = json.loads((ARM / "FirewallPolicyRuleCollectionGroupGet.json").read_text(encoding="utf-8"))
    real = example["responses"]["200"]["body"]["properties"]
    real_collection = real["ruleCollections"][0]
    real_rule = real_collection["rules"][0]
    plan = scan_resources(hub(*policy_estate([])))
    [change] = firewall_changes(plan)
    body = dict(change.properties)
    assert set(body) <= set(real) - {"size", "provisioningState"}
    [collection] = body["ruleCollections"]
    assert set(collection) == set(real_collection)
    assert collection["ruleCollectionType"] == real_collection["ruleCollectionType"]
    assert set(collection["action"]) == set(real_collection["action"])
    for rule in collection["rules"]:
        assert set(rule) - {"description"} == set(real_rule)
        assert rule["ruleType"] == real_rule["ruleType"] and rule["ipProtocols"] == real_rule["ipProtocols"]
        for field in ("sourceAddresses", "destinationAddresses", "ipProtocols", "destinationPorts"):
            assert isinstance(rule[field], list) and all(isinstance(v, str) for v in rule[field])
    parsed = parse_rule_collection_group({"id": f"{change.resource_id}/ruleCollectionGroups/{change.name}",
                                          "name": change.name, "properties": body})
    assert parsed.priority == body["priority"] and parsed.collections[0].action == "allow"
    assert all(r.rule_type == "network" for r in parsed.collections[0].rules)


def test_the_plan_is_json_with_the_fixes_it_makes() -> None:
    plan = scan_resources(hub(*policy_estate([])))
    [change] = firewall_changes(plan)
    entry = change.to_json()
    assert entry["action"] == CREATE_GROUP and entry["name"] == FIREWALL_GROUP
    assert {f["destination"] for f in entry["fixes"]} == NEEDED
    json.dumps(entry)


def test_other_groups_are_untouched_by_the_plan() -> None:
    """The bot never rewrites another group: the plan holds only its own, and the others stay as they were."""
    resources = hub(*policy_estate([group("platform", 300, rule_collection("deny", 100, "Deny", [
        network_rule("no-storage", ["*"], ["Storage"])]))]))
    before = build_estate(resources)
    plan = scan_resources(resources)
    after = apply_changes(before, plan.changes)
    for gid, grp in before.rule_collection_groups.items():
        assert after.rule_collection_groups[gid] == grp
    assert {g.name for g in after.rule_collection_groups.values()} == {"platform", FIREWALL_GROUP}


def test_the_bots_group_holding_what_it_did_not_write_is_not_rewritten() -> None:
    """An update rewrites the whole group: a collection or a rule someone added there (or a port they widened) would be
    lost, so the bot refuses and says what it found."""
    for extra, found in (
            (rule_collection("theirs", 200, "Allow", [network_rule("dns", ["*"], ["*"], ports=["53"])]),
             "rule collection theirs"),
            (rule_collection("asr-remediate-allow", 100, "Allow", [
                network_rule("asr-remediate-AzureActiveDirectory", ["10.7.0.0/24"], ["AzureActiveDirectory"],
                             ports=["443", "80"])]), "rule asr-remediate-AzureActiveDirectory")):
        plan = scan_resources(hub(*policy_estate([group(FIREWALL_GROUP, 500, extra)])))
        assert firewall_changes(plan) == []
        deny = next(f for r in plan.reports for f in r.findings if f.kind == "firewall-deny")
        assert not deny.fixable and f"holds {found}, which the bot did not write" in deny.message


# -- property: any plan, applied, leaves no fixable firewall finding, and never touches another group ----------------

_TAG_DESTINATIONS = ["*", "Storage", "Storage.EastUS", "AzureActiveDirectory", "EventHub", "AzureSiteRecovery",
                     "AzureCloud", "20.0.0.0/8"]


@st.composite
def _groups(draw: Any, prefix: str) -> list[dict[str, Any]]:
    out = []
    priorities = draw(st.lists(st.sampled_from([100, 101, 200, 300, 64999, 65000]), min_size=0, max_size=3,
                               unique=True))
    for index, priority in enumerate(priorities):
        rules = [network_rule(f"{prefix}{index}r{n}", [draw(st.sampled_from(["*", "10.1.1.0/24", "10.9.0.0/16"]))],
                              [draw(st.sampled_from(_TAG_DESTINATIONS))],
                              ports=[draw(st.sampled_from(["443", "80", "*"]))])
                 for n in range(draw(st.integers(1, 2)))]
        action = draw(st.sampled_from(["Allow", "Deny"]))
        out.append(group(f"{prefix}{index}", priority, rule_collection(f"{prefix}{index}c", 100, action, rules)))
    return out


@PROPERTY
@given(_groups("child"), st.one_of(st.none(), _groups("parent")), st.sampled_from(["tag", "prefix"]))
def test_any_firewall_plan_applied_leaves_no_fixable_finding(child: list[dict[str, Any]],
                                                             parent: list[dict[str, Any]] | None, style: str) -> None:
    settings = Settings(rule_style=style)
    resources = hub(*policy_estate(child, parent))
    before = build_estate(resources)
    plan = scan_resources(resources, settings)
    fixable = {(f.side, f.destination) for r in plan.reports for f in r.findings
               if f.kind == "firewall-deny" and f.fixable}
    for f in (f for r in plan.reports for f in r.findings if f.kind == "firewall-deny"):
        ref = f.firewall_rule
        if ref is not None and ref.inherited and ref.rule_type == "network":
            assert not f.fixable  # a parent's network deny is never worked around from the child
    changes = firewall_changes(plan)
    assert bool(changes) == bool(fixable)
    after_estate = apply_changes(before, plan.changes)
    for gid, grp in before.rule_collection_groups.items():
        assert after_estate.rule_collection_groups[gid] == grp
    for change in changes:
        others = {g["priority"] for g in child}
        assert 100 <= change.properties["priority"] <= 65000 and change.properties["priority"] not in others
        for rule in change.properties["ruleCollections"][0]["rules"]:
            assert rule["ipProtocols"] == ["TCP"] and rule["destinationPorts"] == ["443"]
            assert rule["sourceAddresses"] == ["10.1.1.0/24"]
    after = scan(after_estate, full_tags(), settings)
    left = {(f.side, f.destination) for r in after.reports for f in r.findings if f.kind == "firewall-deny"}
    assert not fixable & left
