"""AVNM security admin rules: the first stage of the path, before the NSGs.

Sources for each behaviour (also in asr_remediate/adminrules.py and the README):
- "Security admin rules have a higher priority than NSGs and are evaluated before NSG rules"; Allow: "evaluated first,
  followed by network security group rules"; AlwaysAllow / Deny: "traffic evaluation is terminated after the security
  admin rule is evaluated"; "With an Always Allow rule, the traffic goes directly to the resource and terminates further
  (and possibly conflicting) evaluation by NSG rules" — learn.microsoft.com/azure/virtual-network-manager/
  concept-security-admins (MicrosoftDocs/azure-docs articles/virtual-network-manager/concept-security-admins.md).
- Priority "between 1 and 4096 … The lower the priority number, the higher the priority of the rule"; "unique for each
  rule in the collection"; access Allow | Deny | AlwaysAllow; AddressPrefixItem types IPPrefix | ServiceTag |
  NetworkGroup; kind Custom | Default — networkManagerSecurityAdminConfiguration.json (Azure/azure-rest-api-specs,
  Microsoft.Network stable 2025-05-01).
- Several managers: "a virtual network can belong to more than one Azure Virtual Network Manager" (AVNM FAQ); "The
  configuration from the Virtual Network Manager that has the higher scope is the one applied" (concept-network-manager-
  scope) — not visible in the effective rules, hence the conservative combination.
- The response shape: NetworkManagerEffectiveSecurityAdminRulesList.json (tests/data/arm/).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr_remediate.adminrules import evaluate_admin_rules
from asr_remediate.config import Settings
from asr_remediate.drift import COMPLIANT, DRIFT, UNKNOWN
from asr_remediate.estate import build_estate, parse_admin_rules
from asr_remediate.ipset import IPSet
from asr_remediate.model import AdminAddress, AdminRule
from asr_remediate.nsg import FlowSource
from asr_remediate.servicetags import ServiceTags
from examples.estate_builder import admin_rule, admin_rules, network_manager_id
from tests.oracle import admin_verdict
from tests.scenario import SUB, Scenario, allow, deny, full_tags, scan_resources

ARM = Path(__file__).parent / "data" / "arm"
HUB = "00000000-0000-0000-0000-0000000000cc"
NM = network_manager_id(HUB, "rg-platform", "avnm-platform")
NM2 = network_manager_id(HUB, "rg-platform", "avnm-landing-zone")
SOURCE_NEEDS = {"Storage.EastUS", "AzureActiveDirectory", "EventHub.CentralUS", "AzureSiteRecovery"}


def kinds(plan: Any, side: str | None = None) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in plan.reports[0].findings:
        if side is None or f.side == side:
            out.setdefault(f.destination, set()).add(f.kind)
    return out


# --- parsing the real payload -----------------------------------------------------------------------------------

def test_the_real_example_parses_with_its_manager_configuration_collection_and_default_kind() -> None:
    """Golden: NetworkManagerEffectiveSecurityAdminRulesList (2025-05-01) — a Default rule, inbound Deny on port 22."""
    body = json.loads((ARM / "NetworkManagerEffectiveSecurityAdminRulesList.json").read_text())["responses"]["200"][
        "body"]
    (rule,) = parse_admin_rules(body)
    assert (rule.name, rule.network_manager, rule.configuration, rule.collection) == (
        "SampleAdminRule", "testNetworkManager", "myTestSecurityConfig", "testRuleCollection")
    assert rule.network_manager_id.endswith("/providers/Microsoft.Network/networkManagers/testNetworkManager")
    assert (rule.kind, rule.access, rule.direction, rule.protocol, rule.priority) == (
        "default", "deny", "inbound", "tcp", 1)
    assert rule.destination_ports == ("22",) and rule.source_ports == ("0-65535",)
    assert rule.destinations == (AdminAddress("*", "ipprefix"),)
    assert (rule.configuration_description, rule.collection_description) == (
        "SampleDescription", "SampleRuleCollectionDescription")
    # An inbound rule on port 22 does nothing to ASR's outbound 443.
    sender = FlowSource(IPSet.address("10.1.1.4"), IPSet.from_prefixes(["10.1.0.0/16"]))
    storage = full_tags().prefixes("Storage.EastUS")
    assert storage is not None
    assert [(p.verdict, p.rule) for p in evaluate_admin_rules((rule,), sender, storage, full_tags())] == [
        ("allow", None)]


def test_the_real_example_as_a_vnets_rules_leaves_the_vm_compliant() -> None:
    body = json.loads((ARM / "NetworkManagerEffectiveSecurityAdminRulesList.json").read_text())["responses"]["200"][
        "body"]
    plan = scan_resources(Scenario(admin_rules=body["value"]).resources())
    assert plan.reports[0].status == COMPLIANT and plan.changes == ()


def test_a_malformed_rule_makes_the_vm_unknown_naming_it_and_a_failed_read_is_a_warning() -> None:
    bad = admin_rule(NM, "deny-out", 10, "Deny", "*")
    bad["properties"]["priority"] = 5000
    report = scan_resources(Scenario(admin_rules=[bad]).resources()).reports[0]
    assert report.status == UNKNOWN
    (finding,) = [f for f in report.findings if f.kind == "unknown"]
    assert "security admin rule 'deny-out'" in finding.message and "outside 1–4096" in finding.message
    resources = Scenario().resources()
    vnet_id = next(r["id"] for r in resources if r["type"].endswith("virtualnetworks") and "vnet-src" in r["id"])
    resources.append(admin_rules(vnet_id, error="AuthorizationFailed: no listNetworkManagerEffectiveSecurityAdmin"))
    report = scan_resources(resources).reports[0]
    assert report.status == COMPLIANT  # a warning: the scan goes on
    (warning,) = [f for f in report.findings if f.kind == "admin-rules"]
    assert warning.severity == "warning" and "AuthorizationFailed" in warning.message
    assert "listNetworkManagerEffectiveSecurityAdminRules/action" in warning.message


# --- the stage in the path --------------------------------------------------------------------------------------

def test_a_deny_drops_asr_traffic_whatever_the_nsgs_say_and_names_who_to_ask() -> None:
    rules = [admin_rule(NM, "deny-internet-egress", 100, "Deny", "Internet", configuration="cfg-egress",
                        collection="rc-block-internet")]
    everything = [allow(100, "*")]
    plan = scan_resources(Scenario(subnet_rules=everything, admin_rules=rules).resources())
    report = plan.reports[0]
    assert report.status == DRIFT
    assert kinds(plan, "source") == {d: {"admin-deny"} for d in SOURCE_NEEDS}
    assert kinds(plan, "target") == {}
    for f in report.findings:
        assert (f.severity, f.fixable, f.resource_id, f.rule_name) == ("error", False, NM, "deny-internet-egress")
        for words in ("network manager avnm-platform", "configuration cfg-egress", "rule collection "
                      "rc-block-internet", "deny-internet-egress (priority 100", "platform team", NM,
                      "priority number below 100", "AlwaysAllow", "never changes a network manager"):
            assert words in f.message, (words, f.message)
    assert plan.changes == (), "nothing the bot may change would help"


def test_an_admin_deny_is_never_worked_around_with_an_nsg_rule() -> None:
    """The NSG denies everything too: only the addresses the admin rules let through get NSG findings and rules."""
    storage = full_tags().prefixes("Storage.EastUS")
    assert storage is not None
    half = storage.to_cidrs()[: len(storage.to_cidrs()) // 2]
    rules = [admin_rule(NM, "deny-some-storage", 200, "Deny", half)]
    for style in ("tag", "prefix"):
        plan = scan_resources(Scenario(subnet_rules=[deny(4000, "*")], admin_rules=rules).resources(),
                              Settings(rule_style=style))
        found = kinds(plan, "source")
        assert found["Storage.EastUS"] == {"admin-deny", "nsg-deny"}
        nsg_finding = next(f for f in plan.reports[0].findings if f.kind == "nsg-deny"
                           and f.destination == "Storage.EastUS")
        assert not nsg_finding.blocked.overlaps(IPSet.from_prefixes(half))
        storage_rules = [c for c in plan.changes if c.destination == "Storage.EastUS"]
        assert storage_rules
        if style == "prefix":
            for change in storage_rules:
                planned = IPSet.from_prefixes(change.properties.get("destinationAddressPrefixes")
                                              or [change.properties["destinationAddressPrefix"]])
                assert not planned.overlaps(IPSet.from_prefixes(half)), "no NSG rule for admin-denied addresses"
    everything = [admin_rule(NM, "deny-all-out", 200, "Deny", "*")]
    plan = scan_resources(Scenario(subnet_rules=[deny(4000, "*")], admin_rules=everything).resources())
    assert {k for ks in kinds(plan, "source").values() for k in ks} == {"admin-deny"}
    assert [c for c in plan.changes if "nsg-subnet" in c.resource_id] == []


def test_always_allow_is_allowed_even_where_an_nsg_denies_it() -> None:
    rules = [admin_rule(NM, f"always-{tag}", 10 + i, "AlwaysAllow", tag) for i, tag in enumerate(sorted(SOURCE_NEEDS))]
    plan = scan_resources(Scenario(subnet_rules=[deny(100, "*")], admin_rules=rules).resources())
    assert plan.reports[0].status == COMPLIANT
    assert plan.reports[0].findings == () and plan.changes == ()


def test_always_allow_of_part_of_a_tag_leaves_only_the_rest_to_the_nsgs() -> None:
    storage = full_tags().prefixes("Storage.EastUS")
    assert storage is not None
    half = storage.to_cidrs()[: len(storage.to_cidrs()) // 2]
    rules = [admin_rule(NM, "always-half-storage", 10, "AlwaysAllow", half)]
    plan = scan_resources(Scenario(subnet_rules=[deny(100, "Storage.EastUS")], admin_rules=rules).resources())
    (finding,) = [f for f in plan.reports[0].findings if f.kind == "nsg-deny"]
    assert finding.blocked == storage - IPSet.from_prefixes(half)
    assert "all of" not in finding.message


def test_allow_lets_the_nsgs_decide() -> None:
    rules = [admin_rule(NM, "allow-https", 10, "Allow", "*")]
    plan = scan_resources(Scenario(subnet_rules=[deny(4000)], admin_rules=rules).resources())
    assert kinds(plan, "source") == {d: {"nsg-deny"} for d in SOURCE_NEEDS}
    assert all(f.fixable for f in plan.reports[0].findings)


def test_lower_priority_number_first_and_a_tie_is_a_deny() -> None:
    before = [admin_rule(NM, "always", 10, "AlwaysAllow", "*"), admin_rule(NM, "deny", 20, "Deny", "*")]
    after = [admin_rule(NM, "always", 30, "AlwaysAllow", "*"), admin_rule(NM, "deny", 20, "Deny", "*")]
    tie = [admin_rule(NM, "always", 20, "AlwaysAllow", "*", collection="rc-a"),
           admin_rule(NM, "deny", 20, "Deny", "*", collection="rc-b")]
    assert scan_resources(Scenario(admin_rules=before).resources()).reports[0].status == COMPLIANT
    for rules in (after, tie):
        report = scan_resources(Scenario(admin_rules=rules).resources()).reports[0]
        assert {f.kind for f in report.findings} == {"admin-deny"}


def test_two_network_managers_a_deny_in_either_denies_whatever_the_other_always_allows() -> None:
    """The effective rules do not say which manager has the higher scope: the combination that hides no Deny."""
    rules = [admin_rule(NM, "always-all", 1, "AlwaysAllow", "*"),
             admin_rule(NM2, "deny-storage", 4096, "Deny", "Storage")]
    report = scan_resources(Scenario(subnet_rules=[deny(100, "*")], admin_rules=rules).resources()).reports[0]
    by_destination = {f.destination: (f.kind, f.resource_id) for f in report.findings}
    assert by_destination == {"Storage.EastUS": ("admin-deny", NM2)}, "the rest is always-allowed past the NSG deny"


def test_inbound_udp_and_other_ports_do_not_matter() -> None:
    rules = [admin_rule(NM, "in", 1, "Deny", "*", direction="Inbound"),
             admin_rule(NM, "udp", 2, "Deny", "*", protocol="Udp"),
             admin_rule(NM, "ssh", 3, "Deny", "*", ports=["22", "3389"]),
             admin_rule(NM, "any-proto", 4, "Deny", "192.0.2.0/24", protocol="Any", ports=["0-65535"])]
    assert scan_resources(Scenario(admin_rules=rules).resources()).reports[0].status == COMPLIANT


def test_a_deny_for_part_of_the_senders_counts_an_allow_for_part_does_not() -> None:
    target_subnet_half = "10.2.1.0/25"  # the recovery subnet is 10.2.1.0/24: the rule covers some senders
    deny_some = [admin_rule(NM, "deny-half", 10, "Deny", "*", sources=[target_subnet_half])]
    report = scan_resources(Scenario(recovery_admin_rules=deny_some).resources()).reports[0]
    assert {f.kind for f in report.findings if f.side == "target"} == {"admin-deny"}
    assert "for some of this VM's source addresses or ports" in report.findings[0].message
    always_some = [admin_rule(NM, "always-half", 10, "AlwaysAllow", "*", sources=[target_subnet_half])]
    report = scan_resources(Scenario(recovery_rules=[deny(100)],
                                     recovery_admin_rules=always_some).resources()).reports[0]
    assert {f.kind for f in report.findings if f.side == "target"} == {"nsg-deny"}


def test_network_groups_a_source_is_some_senders_a_destination_never_a_public_endpoint() -> None:
    group = f"{NM}/networkGroups/ng-spokes"
    as_source = [admin_rule(NM, "always-from-group", 10, "AlwaysAllow", "*", sources=[group])]
    report = scan_resources(Scenario(subnet_rules=[deny(100)], admin_rules=as_source).resources()).reports[0]
    assert {f.kind for f in report.findings} == {"nsg-deny"}, "an AlwaysAllow for some senders does not count"
    as_destination = [admin_rule(NM, "deny-to-group", 10, "Deny", group)]
    report = scan_resources(Scenario(admin_rules=as_destination).resources()).reports[0]
    assert report.status == COMPLIANT and report.findings == ()


def test_an_unknown_service_tag_is_unknown_not_a_guess() -> None:
    rules = [admin_rule(NM, "deny-mystery", 10, "Deny", "NoSuchTag")]
    report = scan_resources(Scenario(admin_rules=rules).resources()).reports[0]
    assert report.status == UNKNOWN
    assert {f.kind for f in report.findings} == {"unknown"}
    assert all("deny-mystery" in f.message and "NoSuchTag" in f.message for f in report.findings)


def test_the_recovery_vnets_admin_rules_decide_the_target_side() -> None:
    rules = [admin_rule(NM, "deny-dr-egress", 50, "Deny", "Internet")]
    plan = scan_resources(Scenario(recovery_admin_rules=rules).resources())
    assert kinds(plan, "source") == {}
    assert set(kinds(plan, "target")) == {"Storage.CentralUS", "AzureActiveDirectory", "EventHub.EastUS",
                                          "AzureSiteRecovery"}
    assert "VNet vnet-dr" in plan.reports[0].findings[0].message


def test_every_nic_of_a_vnet_shares_the_vnets_rules_across_vms() -> None:
    """One read per VNet: two VMs in one VNet see the same rules (the estate keys them by VNet)."""
    resources = Scenario(admin_rules=[admin_rule(NM, "deny", 10, "Deny", "*")]).resources()
    estate = build_estate(resources)
    assert list(estate.admin_rules) == [k for k in estate.vnets if k.endswith("vnet-src")]


# --- the engine against the brute-force oracle ------------------------------------------------------------------

BASES = [ipaddress.IPv4Network("20.9.0.0/24"), ipaddress.IPv4Network("10.9.0.0/24")]
MANAGERS = [f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkManagers/{n}"
            for n in ("nm-a", "NM-B", "nm-c")]
GROUP = f"{MANAGERS[0]}/networkGroups/g"


@st.composite
def block(draw: Any, network: ipaddress.IPv4Network) -> str:
    length = draw(st.integers(25, 32))
    index = draw(st.integers(0, 2 ** (length - 24) - 1))
    return f"{ipaddress.IPv4Address(int(network.network_address) + index * 2 ** (32 - length))}/{length}"


@st.composite
def address_items(draw: Any, base: ipaddress.IPv4Network, sources: bool) -> tuple[AdminAddress, ...]:
    count = draw(st.integers(0, 3))
    items = []
    for _ in range(count):
        kind = draw(st.integers(0, 9))
        if kind <= 4:
            network = ipaddress.IPv4Network("10.0.1.0/24") if sources else base
            items.append(AdminAddress(draw(block(network)), "ipprefix"))
        elif kind == 5:
            items.append(AdminAddress("*", "ipprefix"))
        elif kind <= 7:
            names = ["VirtualNetwork", "Internet", "SrcTag"] * 4 + ["Nope"] if sources else \
                ["FakeA", "FakeA.RegionOne", "Internet", "VirtualNetwork"] * 3 + ["Nope", "Nope.RegionOne"]
            items.append(AdminAddress(draw(st.sampled_from(names)), "servicetag"))
        else:
            items.append(AdminAddress(GROUP, "networkgroup"))
    return tuple(items)


@st.composite
def admin_cases(draw: Any) -> dict[str, Any]:
    base = draw(st.sampled_from(BASES))
    rules = []
    for index in range(draw(st.integers(0, 9))):
        manager = draw(st.sampled_from(MANAGERS))
        rules.append(AdminRule(
            id=f"{manager}/securityAdminConfigurations/cfg/ruleCollections/c{index % 3}/rules/r{index}",
            name=f"r{index}",
            priority=draw(st.integers(1, 5)),
            direction=draw(st.sampled_from(["outbound"] * 6 + ["inbound"])),
            access=draw(st.sampled_from(["allow", "deny", "alwaysallow"])),
            protocol=draw(st.sampled_from(["tcp", "tcp", "any", "udp"])),
            sources=draw(address_items(base, True)),
            destinations=draw(address_items(base, False)),
            source_ports=draw(st.sampled_from([("*",)] * 4 + [("0-65535",), ("1024-2000",), ("0-1023",)] * 2
                                              + [("x",)])),
            destination_ports=draw(st.sampled_from([("*",), ("443",), ("80", "443"), ("22",), ("400-500",)] * 3
                                                   + [("https",)])),
        ))

    def cidrs() -> list[str]:
        return [*draw(st.lists(block(base), min_size=1, max_size=3)), "2603:1000::/40"]

    tags = ServiceTags.from_values("1", [
        {"name": "FakeA", "properties": {"region": "", "addressPrefixes": cidrs()}},
        {"name": "FakeA.RegionOne", "properties": {"region": "regionone", "addressPrefixes": cidrs()}},
        {"name": "SrcTag", "properties": {"region": "",
                                          "addressPrefixes": [draw(block(ipaddress.IPv4Network("10.0.1.0/24")))]}},
    ])
    return {"rules": tuple(rules), "tags": tags, "source": draw(st.sampled_from(["10.0.1.4", "10.0.1.0/28"])),
            "vnet": ["10.0.0.0/16", *draw(st.lists(block(base), max_size=2))],
            "destination": IPSet.from_prefixes(draw(st.one_of(st.just([str(base)]),
                                                              st.lists(block(base), min_size=1, max_size=4)))),
            "required_tag": draw(st.sampled_from(["", "FakeA.RegionOne", "Nope.RegionOne"]))}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(admin_cases())
def test_admin_rules_agree_with_the_oracle_address_by_address(case: dict[str, Any]) -> None:
    flow = FlowSource(IPSet.from_prefixes([case["source"]]), IPSet.from_prefixes(case["vnet"]))
    pieces = evaluate_admin_rules(case["rules"], flow, case["destination"], case["tags"],
                                  required_tag=case["required_tag"])
    decided: dict[int, tuple[str, str | None]] = {}
    for piece in pieces:
        assert piece.addresses, "no empty pieces"
        for start, end in piece.addresses.intervals:
            for address in range(start, end + 1):
                assert address not in decided, "pieces are disjoint"
                decided[address] = (piece.verdict, piece.rule.name if piece.rule else None)
    expected_addresses = {a for s, e in case["destination"].intervals for a in range(s, e + 1)}
    assert set(decided) == expected_addresses, "pieces cover the destination exactly"
    for address, answer in decided.items():
        expected = admin_verdict(case["rules"], case["source"], case["vnet"], address, case["tags"],
                                 required_tag=case["required_tag"])
        assert answer == expected, (str(ipaddress.IPv4Address(address)), answer, expected)
