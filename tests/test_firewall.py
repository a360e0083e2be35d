"""Azure Firewall as a stage of the path: golden tests on the real ARM examples, the documented rule order, names and
wildcards, what cannot be evaluated, and the findings a firewall-routed VM gets.

Sources (README, "Azure Firewall"): learn.microsoft.com/azure/firewall/rule-processing ("Azure Firewall denies all
traffic by default … The rules are terminating"; network rules before application rules; DNAT first),
firewall-manager/policy-overview ("Network rule collections inherited from a parent policy are always prioritized over
network rule collections defined as part of a new policy … network rule collections are always processed before
application rule collections regardless of inheritance"; "NAT rule collections aren't inherited"), firewall/
policy-rule-sets (groups by priority, then collections by priority, rules top-down), the Azure Firewall FAQ ("How do
wildcards work in target URLs and target FQDNs"), firewall/fqdn-filtering-network-rules ("You must enable DNS Proxy to
use FQDNs in your network rules"; "doesn't support wildcards"), firewall/fqdn-tags ("you can't specify which FQDNs are
included within a tag").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from asr_remediate.config import Settings
from asr_remediate.drift import DRIFT, UNKNOWN, VmReport
from asr_remediate.estate import build_estate
from asr_remediate.firewall import (
    DEFAULT_DENY,
    FULL,
    NONE,
    PARTIAL,
    FirewallStage,
    firewall_pieces,
    firewall_stage,
    name_level,
)
from asr_remediate.ipset import IPSet
from asr_remediate.model import key
from examples.estate_builder import (
    application_rule,
    azure_firewall,
    firewall_policy,
    ip_group,
    network_rule,
    rule_collection,
    rule_collection_group,
    vnet,
)
from tests.scenario import RG, SUB, Scenario, full_tags, scan_resources

ARM = Path(__file__).resolve().parent / "data" / "arm"
HUB_RG = "rg-hub"
FW_IP = "10.0.1.4"


def example(name: str, status: str = "200", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((ARM / name).read_text(encoding="utf-8"))["responses"][status]["body"]
    return {**body, **extra}


def stage_of(resources: list[dict[str, Any]], firewall_name: str = "") -> FirewallStage:
    estate = build_estate(resources)
    assert not estate.unreadable, estate.unreadable
    firewall = next(f for f in estate.firewalls.values() if not firewall_name or f.name == firewall_name)
    stage = firewall_stage(estate, firewall)
    assert isinstance(stage, FirewallStage), stage
    return stage


def verdicts(stage: FirewallStage, sender: str, destination: list[str], names: tuple[str, ...],
             required_tag: str = "") -> list[tuple[str, str, str]]:
    """(addresses, verdict, deciding rule or the note) per piece."""
    pieces = firewall_pieces(stage, IPSet.from_prefixes([sender]), IPSet.from_prefixes(destination), names,
                             full_tags(), required_tag=required_tag)
    return [(str(p.addresses), p.verdict, p.rule.rule if p.rule else p.note) for p in pieces]


# -- golden tests on the real examples -------------------------------------------------------------------------------

def test_azure_firewall_get_classic_rules_parse_as_arm_returns_them() -> None:
    """AzureFirewallGet.json (Azure/azure-rest-api-specs, Microsoft.Network stable 2025-05-01): classic NAT, network
    and application rule collections inline, the firewall's private IP in ipConfigurations[].privateIPAddress."""
    estate = build_estate([example("AzureFirewallGet.json")])
    firewall = estate.firewalls[key("/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/"
                                    "azureFirewalls/azurefirewall")]
    assert firewall.private_ips == ("10.0.0.0",) and not firewall.policy_id
    assert estate.firewall_ips == {"10.0.0.0": firewall.id}
    kinds = {(kind, c.name, c.priority, c.action) for kind, c in firewall.collections}
    assert kinds == {("nat", "natrulecoll", 112, "dnat"), ("network", "netrulecoll", 112, "deny"),
                     ("application", "apprulecoll", 110, "deny")}
    network = next(c for kind, c in firewall.collections if kind == "network")
    assert network.rules[0].source_addresses == ("192.168.1.1-192.168.1.12", "10.1.4.12-10.1.4.255")
    assert network.rules[0].destination_ports == ("443-444", "8443")
    assert network.rules[1].destination_fqdns == ("www.amazon.com",)
    application = next(c for kind, c in firewall.collections if kind == "application")
    assert application.rules[0].protocols == ("https:443",) and application.rules[0].target_fqdns == ("www.test.com",)


def test_azure_firewall_get_a_sender_in_the_l4_deny_range_is_denied_by_that_rule() -> None:
    """Network rule collections go before application rule collections whatever their priorities (110 < 112 here):
    10.1.4.20 is in L4-traffic's source range 10.1.4.12-10.1.4.255 and port 443 in 443-444."""
    stage = stage_of([example("AzureFirewallGet.json")])
    assert verdicts(stage, "10.1.4.20", ["20.38.0.0/16"], ("login.microsoftonline.com",)) == [
        ("20.38.0.0/16", "deny", "L4-traffic")]
    ref = firewall_pieces(stage, IPSet.address("10.1.4.20"), IPSet.from_prefixes(["20.38.0.0/16"]),
                          ("login.microsoftonline.com",), full_tags())[0].rule
    assert ref is not None
    assert ref.describe() == ("firewall azurefirewall (classic rules): network rule collection netrulecoll "
                              "(priority 112), rule L4-traffic")


def test_azure_firewall_get_other_senders_fall_to_the_default_deny() -> None:
    """Outside the L4 ranges no network rule matches; the application rule denies only www.test.com; nothing allows:
    "Azure Firewall denies all traffic by default". The DNAT rule translates traffic addressed to 1.2.3.4:443 only."""
    stage = stage_of([example("AzureFirewallGet.json")])
    assert verdicts(stage, "10.0.0.9", ["20.38.0.0/16"], ("login.microsoftonline.com",)) == [
        ("20.38.0.0/16", "deny", DEFAULT_DENY)]
    assert verdicts(stage, "10.0.0.9", ["1.2.3.4/31"], ("login.microsoftonline.com",)) == [
        ("1.2.3.4/32", "deny", "DNAT-HTTPS-traffic"), ("1.2.3.5/32", "deny", DEFAULT_DENY)]


def test_rule_collection_group_get_network_deny_names_policy_group_collection_and_rule() -> None:
    """FirewallPolicyRuleCollectionGroupGet.json: a Deny filter collection with a NetworkRule from 10.1.25.0/24 to *
    on every port."""
    group = example("FirewallPolicyRuleCollectionGroupGet.json",
                    type="Microsoft.Network/firewallPolicies/ruleCollectionGroups")
    policy_id = group["id"].rsplit("/ruleCollectionGroups/", 1)[0]
    policy = {"id": policy_id, "name": "firewallPolicy", "type": "Microsoft.Network/firewallPolicies",
              "location": "westus", "properties": {"ruleCollectionGroups": [{"id": group["id"]}]}}
    firewall = azure_firewall(SUB, HUB_RG, "fw", "westus", "/s/AzureFirewallSubnet", FW_IP, policy_id=policy_id)
    stage = stage_of([group, policy, firewall])
    pieces = firewall_pieces(stage, IPSet.address("10.1.25.4"), IPSet.from_prefixes(["20.38.0.0/16"]),
                             ("login.microsoftonline.com",), full_tags())
    assert [(p.verdict, p.rule.rule if p.rule else "") for p in pieces] == [("deny", "network-rule1")]
    assert pieces[0].rule is not None and pieces[0].rule.describe() == (
        "policy firewallPolicy, rule collection group ruleCollectionGroup1 (priority 110), network rule collection "
        "Example-Filter-Rule-Collection (priority 200), rule network-rule1")
    assert verdicts(stage, "10.1.26.4", ["20.38.0.0/16"], ("login.microsoftonline.com",)) == [
        ("20.38.0.0/16", "deny", DEFAULT_DENY)]


def test_rule_collection_group_with_http_headers_an_http_80_rule_never_allows_asr_https() -> None:
    """FirewallPolicyRuleCollectionGroupWithHttpHeadersToInsert.json (the 201 response): an Allow ApplicationRule on
    Http:80 with an FQDN tag. ASR speaks HTTPS on 443, so the rule does not apply at all (its FQDN tag does not make
    the answer unknown); its collection has no priority in ARM's own example."""
    group = example("FirewallPolicyRuleCollectionGroupWithHttpHeadersToInsert.json", "201",
                    type="Microsoft.Network/firewallPolicies/ruleCollectionGroups")
    estate = build_estate([group])
    parsed = estate.rule_collection_groups[key(group["id"])]
    assert parsed.priority == 110 and parsed.collections[0].priority is None
    assert parsed.collections[0].rules[0].protocols == ("http:80",)
    assert parsed.collections[0].rules[0].fqdn_tags == ("WindowsVirtualDesktop",)
    policy_id = group["id"].rsplit("/ruleCollectionGroups/", 1)[0]
    policy = {"id": policy_id, "name": "firewallPolicy", "type": "Microsoft.Network/firewallPolicies",
              "location": "westus", "properties": {"ruleCollectionGroups": [{"id": group["id"]}]}}
    stage = stage_of([group, policy, azure_firewall(SUB, HUB_RG, "fw", "westus", "/s/x", FW_IP, policy_id=policy_id)])
    assert verdicts(stage, "10.0.0.5", ["20.38.0.0/16"], ("*.blob.core.windows.net",)) == [
        ("20.38.0.0/16", "deny", DEFAULT_DENY)]


# -- order: types, parent policies, groups, collections ----------------------------------------------------------------

def policy_estate(child_groups: list[dict[str, Any]], parent_groups: list[dict[str, Any]] | None = None,
                  *, dns_proxy: bool = False, extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """A firewall whose policy 'child' (optionally under 'parent') holds the groups given as (name, priority,
    collections)."""
    out: list[dict[str, Any]] = []
    parent_id = ""
    if parent_groups is not None:
        parent = firewall_policy(SUB, HUB_RG, "parent", "eastus", group_names=[g["name"] for g in parent_groups])
        parent_id = parent["id"]
        out += [parent] + [rule_collection_group(parent_id, g["name"], g["priority"], g["collections"])
                           for g in parent_groups]
    child = firewall_policy(SUB, HUB_RG, "child", "eastus", base_policy=parent_id,
                            group_names=[g["name"] for g in child_groups], dns_proxy=dns_proxy)
    out += [child] + [rule_collection_group(child["id"], g["name"], g["priority"], g["collections"])
                      for g in child_groups]
    out.append(azure_firewall(SUB, HUB_RG, "fw-hub", "eastus",
                              f"/subscriptions/{SUB}/resourceGroups/{HUB_RG}/providers/Microsoft.Network/"
                              "virtualNetworks/vnet-hub/subnets/AzureFirewallSubnet", FW_IP, policy_id=child["id"]))
    return out + (extra or [])


def group(name: str, priority: int, *collections: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "priority": priority, "collections": list(collections)}


AAD = ("login.microsoftonline.com",)


def test_network_rules_go_before_application_rules_whatever_the_group_priorities() -> None:
    """An application Allow in group 100 does not win over a network Deny in group 500: all network rules first."""
    stage = stage_of(policy_estate([
        group("apps", 100, rule_collection("allow-aad", 100, "Allow", [application_rule("aad", ["*"], list(AAD))])),
        group("net", 500, rule_collection("deny-all", 100, "Deny", [network_rule("all", ["*"], ["*"])])),
    ]))
    assert verdicts(stage, "10.1.1.4", ["20.190.128.0/18"], AAD) == [("20.190.128.0/18", "deny", "all")]


def test_groups_by_priority_then_collections_by_priority_then_rules_in_order() -> None:
    stage = stage_of(policy_estate([
        group("late", 300, rule_collection("allow", 100, "Allow", [network_rule("late-allow", ["*"], ["*"])])),
        group("early", 200,
              rule_collection("second", 200, "Allow", [network_rule("allow-second", ["*"], ["*"])]),
              rule_collection("first", 150, "Deny", [network_rule("deny-half", ["*"], ["20.0.0.0/9"]),
                                                      network_rule("deny-all", ["*"], ["*"])])),
    ]))
    assert verdicts(stage, "10.1.1.4", ["20.0.0.0/8"], AAD) == [
        ("20.0.0.0/9", "deny", "deny-half"), ("20.128.0.0/9", "deny", "deny-all")]


def test_a_parent_policys_network_rules_go_before_the_childs_even_at_a_lower_priority() -> None:
    stage = stage_of(policy_estate(
        [group("child-allow", 100, rule_collection("allow", 100, "Allow",
                                                   [network_rule("child-allow", ["*"], ["*"])]))],
        [group("parent-deny", 64000, rule_collection("deny", 65000, "Deny",
                                                     [network_rule("parent-deny", ["*"], ["20.0.0.0/8"])]))]))
    assert verdicts(stage, "10.1.1.4", ["20.0.0.0/7"], AAD) == [
        ("20.0.0.0/8", "deny", "parent-deny"), ("21.0.0.0/8", "allow", "child-allow")]
    ref = firewall_pieces(stage, IPSet.address("10.1.1.4"), IPSet.from_prefixes(["20.0.0.0/8"]), AAD,
                          full_tags())[0].rule
    assert ref is not None and ref.inherited and "(parent policy)" in ref.describe()


def test_a_childs_network_allow_goes_before_a_parents_application_deny() -> None:
    """"network rule collections are always processed before application rule collections regardless of
    inheritance"."""
    stage = stage_of(policy_estate(
        [group("child", 500, rule_collection("allow", 100, "Allow", [network_rule("aad-tag", ["*"],
                                                                                 ["AzureActiveDirectory"])]))],
        [group("parent", 100, rule_collection("deny", 100, "Deny", [application_rule("no-login", ["*"], list(AAD))]))]))
    aad = full_tags().prefixes("AzureActiveDirectory")
    assert aad is not None
    pieces = firewall_pieces(stage, IPSet.address("10.1.1.4"), aad, AAD, full_tags(),
                             required_tag="AzureActiveDirectory")
    assert [(p.verdict, p.rule.rule if p.rule else "") for p in pieces] == [("allow", "aad-tag")]


def test_parent_dnat_collections_are_not_inherited() -> None:
    dnat = {"ruleCollectionType": "FirewallPolicyNatRuleCollection", "name": "dnat", "priority": 100,
            "action": {"type": "DNAT"}, "rules": [{"ruleType": "NatRule", "name": "parent-dnat",
                                                   "sourceAddresses": ["*"], "destinationAddresses": ["20.0.0.1"],
                                                   "destinationPorts": ["443"], "ipProtocols": ["TCP"],
                                                   "translatedAddress": "10.9.9.9", "translatedPort": "443"}]}
    allow_all = group("child", 100, rule_collection("allow", 100, "Allow", [network_rule("all", ["*"], ["*"])]))
    inherited = stage_of(policy_estate([allow_all], [group("parent", 100, dnat)]))
    assert verdicts(inherited, "10.1.1.4", ["20.0.0.1"], AAD) == [("20.0.0.1/32", "allow", "all")]
    own = stage_of(policy_estate([group("child-dnat", 100, dnat), {**allow_all, "name": "child", "priority": 200}]))
    assert verdicts(own, "10.1.1.4", ["20.0.0.1"], AAD) == [("20.0.0.1/32", "deny", "parent-dnat")]


# -- network rules: protocols, ports, sources, IP groups, tags, FQDNs -------------------------------------------------

@pytest.mark.parametrize(("rule", "expected"), [
    (network_rule("udp", ["*"], ["*"], protocols=["UDP"]), DEFAULT_DENY),
    (network_rule("any", ["*"], ["*"], protocols=["Any"]), "any"),
    (network_rule("port-80", ["*"], ["*"], ports=["80"]), DEFAULT_DENY),
    (network_rule("range", ["*"], ["*"], ports=["400-500"]), "range"),
    (network_rule("star", ["*"], ["*"], ports=["*"]), "star"),
    (network_rule("other-source", ["10.9.0.0/16"], ["*"]), DEFAULT_DENY),
    (network_rule("source-range", ["10.1.1.1-10.1.1.9"], ["*"]), "source-range"),
])
def test_network_rule_protocol_port_and_source(rule: dict[str, Any], expected: str) -> None:
    stage = stage_of(policy_estate([group("g", 100, rule_collection("allow", 100, "Allow", [rule]))]))
    assert verdicts(stage, "10.1.1.4", ["20.0.0.0/8"], AAD) == [("20.0.0.0/8", "allow" if expected != DEFAULT_DENY
                                                                  else "deny", expected)]


def test_ip_groups_in_sources_and_destinations_and_a_missing_one_is_unknown() -> None:
    senders = ip_group(SUB, HUB_RG, "ipg-spokes", "eastus", ["10.1.0.0/16"])
    targets = ip_group(SUB, HUB_RG, "ipg-targets", "eastus", ["20.0.0.0/9", "20.128.0.1-20.128.0.9"])
    rule = network_rule("via-groups", [], [], source_ip_groups=[senders["id"]], destination_ip_groups=[targets["id"]])
    stage = stage_of(policy_estate([group("g", 100, rule_collection("allow", 100, "Allow", [rule]))],
                                   extra=[senders, targets]))
    pieces = firewall_pieces(stage, IPSet.address("10.1.1.4"), IPSet.from_prefixes(["20.0.0.0/8"]), AAD, full_tags())
    assert [(p.verdict, p.addresses.size) for p in pieces] == [("allow", 2**23 + 9), ("deny", 2**24 - 2**23 - 9)]
    absent = stage_of(policy_estate([group("g", 100, rule_collection("allow", 100, "Allow", [rule]))],
                                    extra=[targets]))
    assert verdicts(absent, "10.1.1.4", ["20.0.0.0/9"], AAD) == [("20.0.0.0/9", "unknown", "via-groups")]
    note = firewall_pieces(absent, IPSet.address("10.1.1.4"), IPSet.from_prefixes(["20.0.0.0/9"]), AAD,
                           full_tags())[0].note
    assert "ipg-spokes is not in the inventory" in note


def test_a_service_tag_destination_and_an_unknown_tag_that_branches() -> None:
    aad = full_tags().prefixes("AzureActiveDirectory")
    assert aad is not None
    stage = stage_of(policy_estate([group("g", 100, rule_collection("allow", 100, "Allow", [
        network_rule("aad", ["*"], ["AzureActiveDirectory"])]))]))
    assert verdicts(stage, "10.1.1.4", aad.to_cidrs(), AAD) == [(str(aad), "allow", "aad")]
    # An Allow to a tag the data lacks, then the default deny: allow or deny depending on the tag → unknown.
    unknown = stage_of(policy_estate([group("g", 100, rule_collection("allow", 100, "Allow", [
        network_rule("future-tag", ["*"], ["NotYetPublished"])]))]))
    assert verdicts(unknown, "10.1.1.4", ["20.0.0.0/8"], AAD) == [("20.0.0.0/8", "unknown", "future-tag")]
    # A Deny to an unknown tag followed by a deny-all: denied either way, named after the first possible denier.
    both = stage_of(policy_estate([group("g", 100, rule_collection("deny", 100, "Deny", [
        network_rule("future-tag", ["*"], ["NotYetPublished"]), network_rule("all", ["*"], ["*"])]))]))
    assert verdicts(both, "10.1.1.4", ["20.0.0.0/8"], AAD)[0][:3] == ("20.0.0.0/8", "deny", "future-tag")


def test_network_rule_fqdns_need_dns_proxy_and_have_no_wildcards() -> None:
    rule = network_rule("login", ["*"], [], fqdns=["login.microsoftonline.com"])
    groups = [group("g", 100, rule_collection("allow", 100, "Allow", [rule]))]
    with_proxy = stage_of(policy_estate(groups, dns_proxy=True))
    assert verdicts(with_proxy, "10.1.1.4", ["20.190.128.0/18"], AAD) == [("20.190.128.0/18", "allow", "login")]
    without = stage_of(policy_estate(groups))
    pieces = firewall_pieces(without, IPSet.address("10.1.1.4"), IPSet.from_prefixes(["20.190.128.0/18"]), AAD,
                             full_tags())
    assert [p.verdict for p in pieces] == ["unknown"] and "DNS proxy" in pieces[0].note
    # An FQDN that is none of ASR's names never matches, DNS proxy or not.
    assert verdicts(without, "10.1.1.4", ["20.0.0.0/8"], ("*.servicebus.windows.net",)) == [
        ("20.0.0.0/8", "deny", DEFAULT_DENY)]


# -- application rules: Https:443, names, wildcards, FQDN tags, web categories, TLS ------------------------------------

@pytest.mark.parametrize(("required", "pattern", "level"), [
    # The FAQ's TargetFQDN table: "*.contoso.com" matches any.contoso.com, not contoso.com; "*contoso.com" both.
    ("any.contoso.com", "*.contoso.com", FULL),
    ("contoso.com", "*.contoso.com", NONE),
    ("contoso.com", "*contoso.com", FULL),
    ("example.anycontoso.com", "*contoso.com", FULL),
    ("www.contoso.com", "www.contoso.com", FULL),
    ("WWW.Contoso.com.", "www.contoso.com", FULL),
    ("www.contoso.com", "www.contoso.*", NONE),  # not supported by Azure Firewall
    # ASR's wildcard names against rule patterns:
    ("*.blob.core.windows.net", "*.blob.core.windows.net", FULL),
    ("*.blob.core.windows.net", "*.core.windows.net", FULL),
    ("*.blob.core.windows.net", "*", FULL),
    ("*.blob.core.windows.net", "cache1.blob.core.windows.net", PARTIAL),
    ("*.blob.core.windows.net", "*cache.blob.core.windows.net", PARTIAL),
    ("*.blob.core.windows.net", "blob.core.windows.net", NONE),
    ("*.blob.core.windows.net", "*.queue.core.windows.net", NONE),
    ("cache1.blob.core.windows.net", "*.blob.core.windows.net", FULL),
])
def test_target_fqdn_wildcards_as_the_faq_documents(required: str, pattern: str, level: int) -> None:
    assert name_level(required, pattern) == level


def app_stage(*rules: dict[str, Any], action: str = "Allow", then: list[dict[str, Any]] | None = None) -> FirewallStage:
    collections = [rule_collection("apps", 100, action, list(rules))]
    if then:
        collections.append(rule_collection("then", 200, "Allow" if action == "Deny" else "Deny", then))
    return stage_of(policy_estate([group("g", 100, *collections)]))


def test_application_rules_need_https_443_and_decide_every_undecided_address() -> None:
    blob = ("*.blob.core.windows.net",)
    assert verdicts(app_stage(application_rule("blob", ["*"], ["*.blob.core.windows.net"])), "10.1.1.4",
                    ["20.38.0.0/16", "52.0.0.0/8"], blob) == [("20.38.0.0/16, 52.0.0.0/8", "allow", "blob")]
    assert verdicts(app_stage(application_rule("http", ["*"], ["*"], protocols=[("Http", 80)])), "10.1.1.4",
                    ["20.38.0.0/16"], blob) == [("20.38.0.0/16", "deny", DEFAULT_DENY)]
    assert verdicts(app_stage(application_rule("https-8443", ["*"], ["*"], protocols=[("Https", 8443)])),
                    "10.1.1.4", ["20.38.0.0/16"], blob) == [("20.38.0.0/16", "deny", DEFAULT_DENY)]


def test_one_cache_account_allowed_is_not_all_of_blob_but_a_deny_of_one_counts() -> None:
    blob = ("*.blob.core.windows.net",)
    one = app_stage(application_rule("cache1", ["*"], ["cache1.blob.core.windows.net"]))
    assert verdicts(one, "10.1.1.4", ["20.38.0.0/16"], blob) == [("20.38.0.0/16", "deny", DEFAULT_DENY)]
    assert verdicts(one, "10.1.1.4", ["20.38.0.0/16"], ("cache1.blob.core.windows.net",)) == [
        ("20.38.0.0/16", "allow", "cache1")]
    deny_one = app_stage(application_rule("no-cache1", ["*"], ["cache1.blob.core.windows.net"]), action="Deny",
                         then=[application_rule("blob", ["*"], ["*.blob.core.windows.net"])])
    assert verdicts(deny_one, "10.1.1.4", ["20.38.0.0/16"], blob) == [("20.38.0.0/16", "deny", "no-cache1")]


def test_fqdn_tags_web_categories_and_tls_inspection_branch() -> None:
    """FQDN tags: "you can't … specify which FQDNs are included within a tag"; web categories and TLS inspection
    cannot be evaluated either. Where a later rule decides the same way either way, that holds."""
    names = ("*.hypervrecoverymanager.windowsazure.com",)
    tag = application_rule("wvd", ["*"], fqdn_tags=["WindowsVirtualDesktop"])
    assert verdicts(app_stage(tag), "10.1.1.4", ["52.0.0.0/8"], names) == [("52.0.0.0/8", "unknown", "wvd")]
    deny_after = app_stage(tag, then=[application_rule("asr", ["*"], list(names))])  # the next collection denies
    assert verdicts(deny_after, "10.1.1.4", ["52.0.0.0/8"], names) == [("52.0.0.0/8", "unknown", "wvd")]
    allow_after = stage_of(policy_estate([group("g", 100, rule_collection("tags", 100, "Allow", [tag]),
                                                rule_collection("asr", 200, "Allow",
                                                                [application_rule("asr", ["*"], list(names))]))]))
    assert verdicts(allow_after, "10.1.1.4", ["52.0.0.0/8"], names) == [("52.0.0.0/8", "allow", "asr")]
    web = {**application_rule("web", ["*"]), "webCategories": ["ComputersAndTechnology"]}
    assert verdicts(app_stage(web), "10.1.1.4", ["52.0.0.0/8"], names)[0][1] == "unknown"
    tls = {**application_rule("inspect", ["*"], list(names)), "terminateTLS": True}
    pieces = firewall_pieces(app_stage(tls), IPSet.address("10.1.1.4"), IPSet.from_prefixes(["52.0.0.0/8"]), names,
                             full_tags())
    assert [p.verdict for p in pieces] == ["unknown"] and "TLS" in pieces[0].note


def test_a_recovery_subnet_partly_covered_by_an_allow_falls_through_and_by_a_deny_is_denied() -> None:
    part = stage_of(policy_estate([group("g", 100, rule_collection("allow", 100, "Allow", [
        network_rule("half", ["10.2.1.0/25"], ["*"])]))]))
    assert verdicts(part, "10.2.1.0/24", ["20.0.0.0/8"], AAD) == [("20.0.0.0/8", "deny", DEFAULT_DENY)]
    deny_part = stage_of(policy_estate([group("g", 100, rule_collection("deny", 100, "Deny", [
        network_rule("half", ["10.2.1.0/25"], ["*"])]), rule_collection("allow", 200, "Allow", [
            network_rule("all", ["*"], ["*"])]))]))
    assert verdicts(deny_part, "10.2.1.0/24", ["20.0.0.0/8"], AAD) == [("20.0.0.0/8", "deny", "half")]


# -- the firewall on a VM's path -------------------------------------------------------------------------------------

def hub(*firewall_resources: dict[str, Any], routes: list[tuple[str, ...]] | None = None) -> list[dict[str, Any]]:
    """A spoke VM (Scenario) whose subnet sends 0.0.0.0/0 to the hub firewall at 10.0.1.4, and the hub."""
    spoke = Scenario(routes=routes if routes is not None else [("to-firewall", "0.0.0.0/0", "VirtualAppliance",
                                                                FW_IP)]).resources()
    hub_vnet = vnet(SUB, HUB_RG, "vnet-hub", "eastus", ["10.0.0.0/16"],
                    [{"name": "AzureFirewallSubnet", "prefix": "10.0.1.0/26"}])
    return [*spoke, hub_vnet, *firewall_resources]


def report_of(resources: list[dict[str, Any]], settings: Settings | None = None) -> VmReport:
    plan = scan_resources(resources, settings)
    assert len(plan.reports) == 1
    return plan.reports[0]


def kinds(report: VmReport, side: str = "source") -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in report.findings:
        if f.side == side:
            out.setdefault(f.kind, set()).add(f.destination)
    return out


def test_a_vm_routed_to_an_azure_firewall_gets_its_verdict_not_the_appliance_warning() -> None:
    allow_some = [group("asr", 100, rule_collection("asr", 100, "Allow", [
        network_rule("aad", ["10.1.0.0/16"], ["AzureActiveDirectory"]),
        network_rule("storage", ["10.1.0.0/16"], ["Storage.EastUS"])]), rule_collection("asr-apps", 200, "Allow", [
            application_rule("asr", ["10.1.0.0/16"], ["*.hypervrecoverymanager.windowsazure.com"])]))]
    report = report_of(hub(*policy_estate(allow_some)))
    assert report.status == DRIFT
    found = kinds(report)
    assert "route-appliance" not in found
    assert found["firewall-deny"] == {"EventHub.CentralUS"}
    deny = next(f for f in report.findings if f.kind == "firewall-deny")
    assert deny.resource_id.endswith("/azureFirewalls/fw-hub") and deny.severity == "error"
    assert "Azure Firewall fw-hub" in deny.message and DEFAULT_DENY in deny.message
    assert "*.servicebus.windows.net" in deny.message


def test_another_appliance_keeps_the_route_appliance_warning() -> None:
    report = report_of(hub(*policy_estate([]), routes=[("to-nva", "0.0.0.0/0", "VirtualAppliance", "10.0.2.4")]))
    assert kinds(report)["route-appliance"] and "firewall-deny" not in kinds(report)


def test_a_deny_names_policy_group_collection_and_rule() -> None:
    groups = [group("platform", 200, rule_collection("egress-deny", 300, "Deny", [
        network_rule("no-storage", ["*"], ["Storage"])])), group("allow", 300, rule_collection("all", 100, "Allow", [
            network_rule("all", ["*"], ["*"])]))]
    report = report_of(hub(*policy_estate(groups)))
    deny = next(f for f in report.findings if f.kind == "firewall-deny")
    assert deny.destination == "Storage.EastUS" and deny.rule_name == "no-storage"
    assert ("policy child, rule collection group platform (priority 200), network rule collection egress-deny "
            "(priority 300), rule no-storage denies it") in deny.message
    assert deny.firewall_rule is not None and deny.firewall_rule.group_priority == 200


def test_the_cache_storage_account_name_is_what_application_rules_see() -> None:
    rules = [group("g", 100, rule_collection("allow", 100, "Allow", [
        network_rule("aad", ["*"], ["AzureActiveDirectory"]), network_rule("eh", ["*"], ["EventHub"]),
        network_rule("asr", ["*"], ["AzureSiteRecovery"])]), rule_collection("apps", 200, "Allow", [
            application_rule("cache", ["*"], ["asrcache1.blob.core.windows.net"])]))]
    resources = hub(*policy_estate(rules))
    item = next(r for r in resources if r["type"].endswith("replicationprotecteditems"))
    assert "Storage.EastUS" in kinds(report_of(resources)).get("firewall-deny", set())
    item["properties"]["providerSpecificDetails"]["protectedManagedDisks"] = [{
        "primaryStagingAzureStorageAccountId": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
                                               "Microsoft.Storage/storageAccounts/asrcache1"}]
    assert "firewall-deny" not in kinds(report_of(resources))


def test_an_unreadable_rule_collection_group_makes_the_vm_unknown_naming_it() -> None:
    resources = hub(*policy_estate([group("bad", 100, rule_collection("c", 100, "Allow", []))]))
    bad = next(r for r in resources if r["type"].lower().endswith("rulecollectiongroups"))
    bad["properties"]["priority"] = "abc"
    report = report_of(resources)
    assert report.status == UNKNOWN
    unknown = [f for f in report.findings if f.kind == "unknown" and f.side == "source"]
    assert unknown and all("firewall policy" in f.message and "'bad'" in f.message for f in unknown)


def test_a_rule_collection_group_not_in_the_inventory_is_missing() -> None:
    resources = [r for r in hub(*policy_estate([group("gone", 100)]))
                 if not r["type"].lower().endswith("rulecollectiongroups")]
    report = report_of(resources)
    assert report.status == UNKNOWN
    assert any(f.kind == "missing" and "ruleCollectionGroups/gone" in f.message for f in report.findings)


def test_forced_tunnelling_firewall_egress_is_a_warning() -> None:
    allow_all = [group("g", 100, rule_collection("all", 100, "Allow", [network_rule("all", ["*"], ["*"])]))]
    resources = hub(*policy_estate(allow_all))
    firewall = next(r for r in resources if r["type"].endswith("azurefirewalls"))
    assert kinds(report_of(resources)) == {}
    firewall["properties"]["managementIpConfiguration"] = {"name": "mgmt", "properties": {}}
    report = report_of(resources)
    assert report.status == "compliant"
    egress = [f for f in report.findings if f.kind == "firewall-egress"]
    assert egress and all(f.severity == "warning" for f in egress)
    assert "forced-tunnelling" in egress[0].message and "route table is none" in egress[0].message
