"""The Azure Firewall stage against the brute-force oracle (tests/oracle.py ``firewall_verdict``), flow by flow.

Random firewalls (a policy with a parent, or classic rules): network, application and DNAT rules with sources,
ranges, IP groups (some absent), service tags (some unknown), FQDNs with and without DNS proxy, wildcard target FQDNs,
FQDN tags and TLS termination. Destinations are a /24, so every address is asked.

* One sender and one concrete name: the engine's pieces must give every address the oracle's verdict and deciding
  rule.
* A recovery subnet (8 senders) or a wildcard name (``*.blob.core.windows.net``): the engine reads partial matches
  conservatively, so only "allowed" is checked: every flow of an allowed piece — each sender, each witness name the
  rules could tell apart — is allowed by the oracle (never a false "compliant").
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr_remediate.estate import build_estate
from asr_remediate.firewall import FirewallStage, firewall_pieces, firewall_stage
from asr_remediate.ipset import IPSet
from asr_remediate.servicetags import ServiceTags
from examples.estate_builder import azure_firewall, firewall_policy, ip_group, rule_collection, rule_collection_group
from tests.oracle import firewall_verdict

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUB = "00000000-0000-0000-0000-0000000000fa"
RG = "rg-hub"
BASE = int(ipaddress.IPv4Address("20.0.0.0"))
DESTINATION = IPSet.from_prefixes(["20.0.0.0/24"])
TAGS = ServiceTags.from_values("1", [
    {"name": "TagA", "properties": {"region": "", "addressPrefixes": ["20.0.0.0/26"]}},
    {"name": "TagB.EastUS", "properties": {"region": "eastus", "addressPrefixes": ["20.0.0.64/27", "20.0.0.200/30"]}},
])
GROUP_A = ip_group(SUB, RG, "ipg-a", "eastus", ["10.1.1.0/30", "20.0.0.96/28"])
MISSING_GROUP = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/ipGroups/ipg-missing"
NAMES = ["login.microsoftonline.com", "cache1.blob.core.windows.net", "x.blob.core.windows.net"]
PATTERNS = ["*", "*.blob.core.windows.net", "cache1.blob.core.windows.net", "*cache1.blob.core.windows.net",
            "login.microsoftonline.com", "*.microsoftonline.com", "www.test.com", "*.core.windows.net", "bad.*"]
SOURCES = ["*", "10.1.1.0/29", "10.1.1.4", "10.1.1.5-10.1.1.7", "10.9.0.0/16", "10.1.1.0/30"]
DESTINATIONS = ["*", "20.0.0.0/25", "20.0.0.10-20.0.0.40", "TagA", "TagB.EastUS", "TagUnknown", "20.0.0.128/26",
                "20.0.0.255"]


@st.composite
def network_rules(draw: Any, name: str) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "ruleType": "NetworkRule", "name": name,
        "sourceAddresses": draw(st.lists(st.sampled_from(SOURCES), min_size=0, max_size=2, unique=True)),
        "destinationAddresses": draw(st.lists(st.sampled_from(DESTINATIONS), min_size=0, max_size=2, unique=True)),
        "ipProtocols": draw(st.sampled_from([["TCP"], ["UDP"], ["Any"], ["UDP", "TCP"]])),
        "destinationPorts": draw(st.sampled_from([["443"], ["80"], ["400-500"], ["*"], ["8443", "443-444"]])),
    }
    if draw(st.integers(0, 3)) == 0:
        rule["sourceIpGroups"] = [draw(st.sampled_from([GROUP_A["id"], MISSING_GROUP]))]
    if draw(st.integers(0, 3)) == 0:
        rule["destinationIpGroups"] = [draw(st.sampled_from([GROUP_A["id"], MISSING_GROUP]))]
    if draw(st.integers(0, 3)) == 0:
        rule["destinationFqdns"] = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True))
    if not rule["sourceAddresses"] and "sourceIpGroups" not in rule:
        rule["sourceAddresses"] = ["*"]
    return rule


@st.composite
def application_rules(draw: Any, name: str) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "ruleType": "ApplicationRule", "name": name,
        "sourceAddresses": draw(st.lists(st.sampled_from(SOURCES), min_size=1, max_size=2, unique=True)),
        "protocols": draw(st.sampled_from([[{"protocolType": "Https", "port": 443}],
                                           [{"protocolType": "Http", "port": 80}],
                                           [{"protocolType": "Http", "port": 80}, {"protocolType": "Https"}]])),
        "targetFqdns": draw(st.lists(st.sampled_from(PATTERNS), min_size=0, max_size=2, unique=True)),
    }
    if draw(st.integers(0, 4)) == 0:
        rule["fqdnTags"] = ["WindowsUpdate"]
    if draw(st.integers(0, 6)) == 0:
        rule["terminateTLS"] = True
    if not rule["targetFqdns"] and "fqdnTags" not in rule:
        rule["targetFqdns"] = ["*"]
    return rule


@st.composite
def nat_rules(draw: Any, name: str) -> dict[str, Any]:
    return {"ruleType": "NatRule", "name": name, "sourceAddresses": ["*"],
            "destinationAddresses": [draw(st.sampled_from(["20.0.0.7", "20.0.0.250"]))], "destinationPorts": ["443"],
            "ipProtocols": ["TCP"], "translatedAddress": "10.0.0.9", "translatedPort": "443"}


@st.composite
def collections(draw: Any, prefix: str, pool: list[int]) -> list[dict[str, Any]]:
    result = []
    for index in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["network", "network", "application", "nat"]))
        count = draw(st.integers(1, 3))
        names = [f"{prefix}c{index}r{i}" for i in range(count)]
        if kind == "nat":
            result.append({"ruleCollectionType": "FirewallPolicyNatRuleCollection", "name": f"{prefix}c{index}",
                           "priority": pool.pop(), "action": {"type": "DNAT"},
                           "rules": [draw(nat_rules(n)) for n in names]})
            continue
        rules = [draw(network_rules(n) if kind == "network" else application_rules(n)) for n in names]
        result.append(rule_collection(f"{prefix}c{index}", pool.pop(), draw(st.sampled_from(["Allow", "Deny"])),
                                      rules))
    return result


@st.composite
def firewalls(draw: Any) -> list[dict[str, Any]]:
    pool = draw(st.lists(st.integers(100, 65000), min_size=40, max_size=40, unique=True))  # unique priorities
    out: list[dict[str, Any]] = [GROUP_A]
    subnet = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/hub/subnets/fw"
    dns_proxy = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:  # classic rules
        firewall = azure_firewall(SUB, RG, "fw", "eastus", subnet, "10.0.1.4")
        for kind, field in (("network", "networkRuleCollections"), ("application", "applicationRuleCollections")):
            for index in range(draw(st.integers(0, 2))):
                names = [f"{kind}{index}r{i}" for i in range(draw(st.integers(1, 3)))]
                rules = [draw(network_rules(n) if kind == "network" else application_rules(n)) for n in names]
                for rule in rules:
                    rule.pop("ruleType")
                    if kind == "network":
                        rule["protocols"] = rule.pop("ipProtocols")
                firewall["properties"][field].append({"name": f"{kind}{index}", "properties": {
                    "priority": pool.pop(), "action": {"type": draw(st.sampled_from(["Allow", "Deny"]))},
                    "rules": rules}})
        if dns_proxy:
            firewall["properties"]["additionalProperties"] = {"Network.DNS.EnableProxy": "true"}
        return [*out, firewall]
    parent_id = ""
    if draw(st.booleans()):
        groups = [(f"pg{i}", pool.pop(), draw(collections(f"p{i}", pool))) for i in range(draw(st.integers(1, 2)))]
        parent = firewall_policy(SUB, RG, "parent", "eastus", group_names=[g for g, _, _ in groups])
        parent_id = parent["id"]
        out += [parent, *(rule_collection_group(parent_id, g, p, c) for g, p, c in groups)]
    groups = [(f"g{i}", pool.pop(), draw(collections(f"g{i}", pool))) for i in range(draw(st.integers(1, 3)))]
    child = firewall_policy(SUB, RG, "child", "eastus", base_policy=parent_id, group_names=[g for g, _, _ in groups],
                            dns_proxy=dns_proxy)
    out += [child, *(rule_collection_group(child["id"], g, p, c) for g, p, c in groups)]
    return [*out, azure_firewall(SUB, RG, "fw", "eastus", subnet, "10.0.1.4", policy_id=child["id"])]


def stage_and_estate(resources: list[dict[str, Any]]) -> tuple[FirewallStage, Any]:
    estate = build_estate(resources)
    assert not estate.unreadable, estate.unreadable
    firewall = next(iter(estate.firewalls.values()))
    stage = firewall_stage(estate, firewall)
    assert isinstance(stage, FirewallStage)
    return stage, estate


@PROPERTY
@given(firewalls(), st.sampled_from(NAMES), st.sampled_from(["", "TagUnknown", "TagB.EastUS"]))
def test_one_sender_one_name_agrees_with_the_oracle_at_every_address(resources: list[dict[str, Any]], name: str,
                                                                      required_tag: str) -> None:
    stage, estate = stage_and_estate(resources)
    pieces = firewall_pieces(stage, IPSet.address("10.1.1.4"), DESTINATION, (name,), TAGS, required_tag=required_tag)
    covered = IPSet()
    for piece in pieces:
        assert not covered.overlaps(piece.addresses), "pieces are disjoint"
        covered = covered | piece.addresses
        for start, end in piece.addresses:
            for address in range(start, end + 1):
                expected = firewall_verdict(estate, stage.firewall, "10.1.1.4", address, name, TAGS,
                                            required_tag=required_tag)
                assert (piece.verdict, piece.rule.rule if piece.rule else None) == expected, (
                    str(ipaddress.IPv4Address(address)), piece)
    assert covered == DESTINATION, "pieces cover the destination exactly"


def witness_names(required: str, resources: list[dict[str, Any]]) -> list[str]:
    """Concrete names standing for ``required``: itself when concrete; for a wildcard, one name no rule singles out
    plus every name some rule pattern singles out inside it."""
    if not required.startswith("*"):
        return [required]
    suffix = required[1:]
    names = {"x" + suffix}
    for pattern in PATTERNS + NAMES:
        tail = pattern.lstrip("*")
        if tail.endswith(suffix) and len(tail) > len(suffix) and "*" not in tail:
            names |= {tail, "z" + tail}
    return sorted(names)


@PROPERTY
@given(firewalls(), st.sampled_from(["10.1.1.4", "10.1.1.0/29"]),
       st.sampled_from(["*.blob.core.windows.net", "login.microsoftonline.com", "cache1.blob.core.windows.net"]))
def test_senders_and_wildcard_names_an_allowed_piece_is_allowed_for_every_flow(
        resources: list[dict[str, Any]], sender: str, required: str) -> None:
    stage, estate = stage_and_estate(resources)
    pieces = firewall_pieces(stage, IPSet.from_prefixes([sender]), DESTINATION, (required,), TAGS)
    senders = [str(a) for a in ipaddress.IPv4Network(sender)]
    names = witness_names(required, resources)
    for piece in pieces:
        if piece.verdict != "allow":
            continue
        for start, end in piece.addresses:
            for address in range(start, end + 1, 7):
                for one in senders:
                    for name in names:
                        verdict, _ = firewall_verdict(estate, stage.firewall, one, address, name, TAGS)
                        assert verdict == "allow", (one, name, str(ipaddress.IPv4Address(address)), piece)
