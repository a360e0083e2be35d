"""The plan: placement, naming, limits, guards, and 'apply the plan, rescan, compliant' for every fixable VM."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr_remediate.config import Settings
from asr_remediate.drift import DRIFT
from asr_remediate.engine import scan
from asr_remediate.estate import build_estate, load_estate_file
from asr_remediate.model import key
from asr_remediate.planner import CREATE_ROUTE, CREATE_RULE, UPDATE_RULE, apply_changes
from tests.scenario import REPO, Scenario, allow, deny, full_tags, scan_resources


def rules_of(plan: Any) -> dict[str, dict[str, Any]]:
    return {c.name: dict(c.properties) for c in plan.changes if c.action in (CREATE_RULE, UPDATE_RULE)}


def test_rule_goes_at_largest_free_priority_below_first_deny() -> None:
    rules = [deny(4000), {"name": "taken", "priority": 3999, "access": "Allow", "destination": "10.0.0.0/8"}]
    plan = scan_resources(Scenario(subnet_rules=rules).resources())
    priorities = sorted(p["priority"] for p in rules_of(plan).values())
    assert priorities == [3995, 3996, 3997, 3998]  # 3999 is taken; four destinations
    for name, props in rules_of(plan).items():
        assert name.startswith("asr-remediate-")
        assert props["access"] == "Allow" and props["direction"] == "Outbound"
        assert props["protocol"] == "Tcp" and props["destinationPortRange"] == "443"
        assert props["sourceAddressPrefixes"] == ["10.1.1.0/24"]  # the VM's subnet, not VirtualNetwork
        assert props["destinationAddressPrefix"] == name.removeprefix("asr-remediate-")


def test_inbound_rules_do_not_take_outbound_priorities() -> None:
    rules = [deny(300), {"name": "in", "priority": 299, "access": "Allow", "destination": "*", "direction": "Inbound"}]
    plan = scan_resources(Scenario(subnet_rules=rules).resources())
    assert max(p["priority"] for p in rules_of(plan).values()) == 299


def test_first_deny_decides_even_when_a_later_deny_exists() -> None:
    rules = [deny(500, "Storage.EastUS"), deny(4000)]
    props = rules_of(scan_resources(Scenario(subnet_rules=rules).resources()))
    assert props["asr-remediate-Storage.EastUS"]["priority"] == 499
    assert props["asr-remediate-AzureSiteRecovery"]["priority"] < 4000


def test_deny_at_lowest_priority_is_not_fixable() -> None:
    plan = scan_resources(Scenario(subnet_rules=[deny(100, "*")]).resources())
    assert plan.changes == ()
    errors = [f for f in plan.reports[0].findings if f.severity == "error"]
    assert errors and all(not f.fixable and "not fixable" in f.message for f in errors)


def test_no_free_priority_is_not_fixable() -> None:
    rules = [{"name": f"r{p}", "priority": p, "access": "Allow", "destination": "10.0.0.0/8"} for p in range(100, 150)]
    plan = scan_resources(Scenario(subnet_rules=[*rules, deny(150)]).resources())
    assert plan.changes == ()
    assert all("but no outbound priority between 100 and 149 is free" in f.message
               for f in plan.reports[0].findings if f.severity == "error")


def test_opted_out_nsg_is_reported_but_not_planned() -> None:
    plan = scan_resources(Scenario(subnet_rules=[deny(4000)], nsg_tags={"asr-remediate-opt-out": "yes"}).resources())
    assert plan.reports[0].status == DRIFT and plan.changes == ()
    assert all("opted out" in f.message for f in plan.reports[0].findings if f.severity == "error")


def test_own_rule_pushed_behind_a_new_deny_is_updated_not_duplicated() -> None:
    stale = allow(900, "AzureSiteRecovery", source="VirtualNetwork") | {"name": "asr-remediate-AzureSiteRecovery"}
    rules = [deny(500, "AzureSiteRecovery"), stale]
    plan = scan_resources(Scenario(subnet_rules=rules).resources())
    (change,) = plan.changes
    assert change.action == UPDATE_RULE and change.name == "asr-remediate-AzureSiteRecovery"
    assert change.properties["priority"] == 499


def test_rules_of_others_are_never_changed() -> None:
    rules = [deny(4000), allow(300, "Storage.EastUS", port="80")]
    plan = scan_resources(Scenario(subnet_rules=rules).resources())
    assert all(c.name.startswith("asr-remediate-") for c in plan.changes)


def test_forced_tunnel_gets_service_tag_routes_to_internet() -> None:
    plan = scan_resources(Scenario(routes=[("default", "0.0.0.0/0", "VirtualNetworkGateway")]).resources())
    routes = {c.name: dict(c.properties) for c in plan.changes if c.action == CREATE_ROUTE}
    assert routes == {
        f"asr-remediate-{tag}": {"addressPrefix": tag, "nextHopType": "Internet"}
        for tag in ("Storage.EastUS", "AzureActiveDirectory", "EventHub.CentralUS", "AzureSiteRecovery")
    }


def test_more_specific_user_route_defeats_the_tag_route_so_it_is_not_fixable() -> None:
    # A /32 inside AzureSiteRecovery to the gateway: a service-tag route can't beat it (longest prefix wins).
    asr = full_tags().get("AzureSiteRecovery")
    assert asr is not None
    address = asr.cidrs[0].split("/")[0] + "/32"
    plan = scan_resources(Scenario(routes=[("pin", address, "VirtualNetworkGateway")]).resources())
    (finding,) = [f for f in plan.reports[0].findings if f.severity == "error"]
    assert finding.destination == "AzureSiteRecovery" and not finding.fixable
    assert plan.changes == ()


def test_route_fixes_can_be_turned_off() -> None:
    resources = Scenario(routes=[("default", "0.0.0.0/0", "None")]).resources()
    plan = scan_resources(resources, Settings(fix_routes=False))
    assert plan.changes == ()
    assert all("ASR_FIX_ROUTES" in f.message for f in plan.reports[0].findings if f.severity == "error")


def test_prefix_style_uses_collapsed_prefixes_exactly() -> None:
    plan = scan_resources(Scenario(subnet_rules=[deny(4000)]).resources(), Settings(rule_style="prefix"))
    props = rules_of(plan)["asr-remediate-Storage.EastUS"]
    storage = full_tags().prefixes("Storage.EastUS")
    assert storage is not None
    assert props["destinationAddressPrefixes"] == storage.to_cidrs()


def test_plan_is_idempotent_after_apply() -> None:
    estate = load_estate_file(REPO / "examples" / "estate.json")
    tags, cfg = full_tags(), Settings()
    first = scan(estate, tags, cfg)
    assert first.changes
    second = scan(apply_changes(estate, first.changes), tags, cfg)
    assert second.changes == ()


def test_example_estate_fixable_vms_become_compliant_and_nothing_is_lost() -> None:
    estate = load_estate_file(REPO / "examples" / "estate.json")
    tags, cfg = full_tags(), Settings()
    before = scan(estate, tags, cfg)
    after_estate = apply_changes(estate, before.changes)
    after = {r.id: r for r in scan(after_estate, tags, cfg).reports}
    fixed = 0
    for report in before.reports:
        errors = [f for f in report.findings if f.severity == "error"]
        if errors and all(f.fixable for f in errors):
            assert not [f for f in after[report.id].findings if f.severity == "error"], report.name
            fixed += 1
        elif errors:
            assert after[report.id].status == DRIFT
    assert fixed >= 4
    for nsg_key, nsg in estate.nsgs.items():
        assert set(nsg.rules) <= set(after_estate.nsgs[nsg_key].rules)
    for table_key, table in estate.route_tables.items():
        assert set(table.routes) <= set(after_estate.route_tables[table_key].routes)


SUBNETS = {"source": "10.1.1.0/24", "target": "10.2.1.0/24"}  # tests.scenario's subnet and recovery subnet
IPS = {"source": "10.1.1.4/32", "target": "10.2.1.0/24"}  # the NIC's IP; a recovery NIC's IP is known after failover
DESTINATIONS = ["Internet", "*", "Storage.EastUS", "Storage", "AzureSiteRecovery", "AzureActiveDirectory",
                "EventHub.CentralUS", "AzureCloud", "40.0.0.0/6", "20.0.0.0/8"]
HOPS = ["VirtualNetworkGateway", "None", "VirtualAppliance", "Internet"]
SOURCES = ["*", "*", "VirtualNetwork", "10.1.1.0/24", "10.1.1.4", "10.2.1.0/24", "10.2.1.0/25", "10.9.0.0/16"]


@st.composite
def nsg_rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    priorities = draw(st.lists(st.integers(100, 4096), max_size=6, unique=True))
    return [
        {"name": f"r{p}", "priority": p, "access": draw(st.sampled_from(["Allow", "Deny"])),
         "destination": draw(st.sampled_from(DESTINATIONS)), "protocol": draw(st.sampled_from(["*", "Tcp", "Udp"])),
         "port": draw(st.sampled_from(["*", "443", "80", "400-500"])), "source": draw(st.sampled_from(SOURCES))}
        for p in priorities
    ]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    routes = draw(st.none() | st.lists(
        st.tuples(st.sampled_from(["0.0.0.0/0", "20.0.0.0/8", "40.0.0.0/6", "13.64.0.0/11"]), st.sampled_from(HOPS)),
        max_size=3, unique_by=lambda r: r[0]))
    return Scenario(
        subnet_rules=draw(nsg_rules()),
        nic_rules=draw(st.none() | nsg_rules()),
        recovery_rules=draw(nsg_rules()),
        routes=None if routes is None else [(f"u{i}", p, h) for i, (p, h) in enumerate(routes)],
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sampled_from(["subnet", "subnet", "vm", "virtualnetwork"]))
def test_applying_the_plan_fixes_every_fixable_finding_and_only_adds_allows(scenario: Scenario, scope: str) -> None:
    """Apply the plan, rescan: every finding marked fixable is gone and a second plan is empty, with rule sources
    scoped to the subnets (the default), the NIC IPs or the VirtualNetwork tag; rules with source-restricted denies
    and allows exercise the partial-match reading (a Deny matching part of the senders counts, an Allow does not)."""
    estate = build_estate(scenario.resources())
    tags, cfg = full_tags(), Settings(source_scope=scope)
    plan = scan(estate, tags, cfg)
    patched = apply_changes(estate, plan.changes)
    after = scan(patched, tags, cfg)
    remaining = {(f.side, f.destination, key(f.resource_id), f.kind) for r in after.reports for f in r.findings}
    for report in plan.reports:
        for f in report.findings:
            ident = (f.side, f.destination, key(f.resource_id), f.kind)
            if f.fixable:
                assert ident not in remaining, f.message
    assert after.changes == ()
    for change in plan.changes:
        assert change.name.startswith("asr-remediate-")
        if change.action in (CREATE_RULE, UPDATE_RULE):
            assert change.properties["access"] == "Allow" and change.properties["destinationPortRange"] == "443"
            source = change.properties.get("sourceAddressPrefixes") or [change.properties.get("sourceAddressPrefix")]
            assert source == {"subnet": [SUBNETS[change.fixes[0].side]], "virtualnetwork": ["VirtualNetwork"],
                              "vm": [IPS[change.fixes[0].side]]}[scope]
            assert change.fixes and {f.side for f in change.fixes} == {change.fixes[0].side}
        else:
            assert change.properties["nextHopType"] == "Internet"
    for nsg_key, nsg in estate.nsgs.items():
        kept = {r for r in patched.nsgs[nsg_key].rules if not r.name.startswith("asr-remediate-")}
        assert kept == set(nsg.rules)
