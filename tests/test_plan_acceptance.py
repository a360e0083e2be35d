"""Plans a network team accepts: all or nothing per NSG / route table and side, true reasons with the real numbers,
rule sources scoped to the senders, prefix-style rules that allow only what is blocked, and plan entries that say
which findings they fix and which deny rule or route they work around.

Azure behaviour relied on, and where it is written down:

* limits: "Azure subscription and service limits", networking limits (Azure Resource Manager): "NSG rules per NSG:
  1,000"; "IP addresses and ranges specified for source or destination in a security group (The limit applies
  separately to source and destination): 4,000"; "User-defined routes per route table: 400"; and "You can currently
  create 25 or less routes with service tags in each route table" (virtual-networks-udr-overview, "Service Tags for
  user-defined routes");
* rule priorities 100-4096, first match wins (the SecurityRulePropertiesFormat.priority of the Network RP REST spec:
  "The value can be between 100 and 4096 ... The lower the priority number, the higher the priority of the rule");
* a rule's description: "A description for this rule. Restricted to 140 chars." (SecurityRulePropertiesFormat,
  Azure/azure-rest-api-specs specification/network/resource-manager/Microsoft.Network/Network/stable/2025-05-01/
  networkSecurityGroup.json);
* ``sourceAddressPrefixes`` holds CIDRs / IPs only, tags go in ``sourceAddressPrefix`` (same spec: "The CIDR or
  source IP ranges"; the emulator enforces it);
* the VirtualNetwork tag includes UDR and on-premises prefixes (service-tags-overview), which is why planned rules
  name the senders' subnets instead;
* a route table holds one route per address prefix (Network RP's RouteConflict; enforced by the emulator).
"""

from __future__ import annotations

from typing import Any

import pytest

from asr_remediate.config import Settings, SettingsError, load_settings
from asr_remediate.drift import COMPLIANT, DRIFT
from asr_remediate.engine import scan
from asr_remediate.estate import build_estate
from asr_remediate.ipset import IPSet
from asr_remediate.planner import (
    CREATE_ROUTE,
    CREATE_RULE,
    MAX_DESCRIPTION,
    UPDATE_RULE,
    Plan,
    apply_changes,
    rule_description,
)
from asr_remediate.report import render_markdown, render_table
from examples.estate_builder import nic, nsg, protected_item, rid, vm, vnet
from tests.scenario import DR_RG, RG, SUB, Scenario, allow, deny, full_tags, scan_resources

SOURCE_NEEDS = ("AzureActiveDirectory", "AzureSiteRecovery", "EventHub.CentralUS", "Storage.EastUS")


def errors(plan: Plan, side: str | None = None) -> list[Any]:
    return [f for r in plan.reports for f in r.findings if f.severity == "error" and (side is None or f.side == side)]


def rules_of(plan: Plan) -> dict[str, dict[str, Any]]:
    return {c.name: dict(c.properties) for c in plan.changes if c.action in (CREATE_RULE, UPDATE_RULE)}


def two_subnets(rules: list[dict[str, Any]], prefixes: tuple[str, str] = ("10.1.2.0/24", "10.1.1.0/24"),
                ips: tuple[str, str] = ("10.1.2.4", "10.1.1.4")) -> list[dict[str, Any]]:
    """Two VMs (vm-a, vm-b) in two subnets of one eastus VNet that share the NSG nsg-shared; both replicate to
    centralus (recovery subnet without an NSG)."""
    shared = nsg(SUB, RG, "nsg-shared", "eastus", rules)
    source = vnet(SUB, RG, "vnet-src", "eastus", ["10.1.0.0/16"],
                  [{"name": "snet-a", "prefix": prefixes[0], "nsg": shared["id"]},
                   {"name": "snet-b", "prefix": prefixes[1], "nsg": shared["id"]}])
    dr = vnet(SUB, DR_RG, "vnet-dr", "centralus", ["10.2.0.0/16"], [{"name": "snet-dr", "prefix": "10.2.1.0/24"}])
    out = [shared, source, dr]
    for name, subnet, ip in (("vm-a", "snet-a", ips[0]), ("vm-b", "snet-b", ips[1])):
        vm_id = rid(SUB, RG, "Microsoft.Compute", "virtualMachines", name)
        the_nic = nic(SUB, RG, f"{name}-nic", "eastus", f"{source['id']}/subnets/{subnet}", ip, vm_id)
        out += [the_nic, vm(SUB, RG, name, "eastus", [the_nic["id"]]),
                protected_item(SUB, "vault", vm_id, name, "eastus", "centralus", the_nic["id"], dr["id"], "snet-dr")]
    return out


def assert_applied_plan_is_compliant_and_final(resources: list[dict[str, Any]], cfg: Settings | None = None) -> None:
    estate, tags, cfg = build_estate(resources), full_tags(), cfg or Settings()
    plan = scan(estate, tags, cfg)
    after = scan(apply_changes(estate, plan.changes), tags, cfg)
    assert all(r.status == COMPLIANT for r in after.reports), [f.message for f in errors(after)]
    assert after.changes == ()


# -- the source of a planned rule ----------------------------------------------------------------------------------

def test_a_rule_shared_by_two_subnets_allows_both_sorted_and_says_whom_it_fixes() -> None:
    """One rule per (NSG, destination) covers every subnet whose VMs need it: sorted, collapsed CIDRs in
    sourceAddressPrefixes (not VirtualNetwork, which also holds UDR and on-premises prefixes: service-tags-overview)."""
    resources = two_subnets([deny(4000)])
    plan = scan_resources(resources)
    rules = rules_of(plan)
    assert sorted(rules) == [f"asr-remediate-{d}" for d in SOURCE_NEEDS]
    for change in plan.changes:
        assert change.properties["sourceAddressPrefixes"] == ["10.1.1.0/24", "10.1.2.0/24"]
        assert "sourceAddressPrefix" not in change.properties
        assert [(f.vm_id.rsplit("/", 1)[-1], f.side, f.destination) for f in change.fixes] == [
            ("vm-a", "source", change.destination), ("vm-b", "source", change.destination)]
        assert change.to_json()["fixes"][0] == {"vmId": change.fixes[0].vm_id, "side": "source",
                                                "destination": change.destination}
    assert_applied_plan_is_compliant_and_final(resources)


def test_adjacent_subnets_are_collapsed() -> None:
    """Collapsed: 10.1.2.0/24 + 10.1.3.0/24 is the one prefix 10.1.2.0/23 (what a network team would write)."""
    plan = scan_resources(two_subnets([deny(4000)], prefixes=("10.1.3.0/24", "10.1.2.0/24"),
                                      ips=("10.1.3.4", "10.1.2.4")))
    assert {tuple(p["sourceAddressPrefixes"]) for p in rules_of(plan).values()} == {("10.1.2.0/23",)}


def test_vm_scope_allows_the_nic_ips_and_virtualnetwork_scope_the_tag() -> None:
    """``vm``: the private IPs of the NICs that need it; ``virtualnetwork``: the VirtualNetwork tag as before (a tag
    goes in the singular sourceAddressPrefix, the REST spec's sourceAddressPrefixes being "The CIDR or source IP
    ranges")."""
    resources = two_subnets([deny(4000)])
    by_vm = rules_of(scan_resources(resources, Settings(source_scope="vm")))
    assert {tuple(p["sourceAddressPrefixes"]) for p in by_vm.values()} == {("10.1.1.4/32", "10.1.2.4/32")}
    assert_applied_plan_is_compliant_and_final(resources, Settings(source_scope="vm"))
    by_tag = rules_of(scan_resources(resources, Settings(source_scope="virtualnetwork")))
    assert {p["sourceAddressPrefix"] for p in by_tag.values()} == {"VirtualNetwork"}
    assert all("sourceAddressPrefixes" not in p for p in by_tag.values())


@pytest.mark.parametrize("scope", ["subnet", "vm"])
def test_recovery_side_rules_allow_the_recovery_subnet(scope: str) -> None:
    """The recovery NIC's IP is assigned at failover, so recovery-side rules name the recovery subnet (A2A vmNics[]
    recoverySubnetName) in both scopes."""
    plan = scan_resources(Scenario(recovery_rules=[deny(4000)]).resources(), Settings(source_scope=scope))
    target = [c for c in plan.changes if c.fixes and c.fixes[0].side == "target"]
    assert len(target) == 4
    assert all(c.properties["sourceAddressPrefixes"] == ["10.2.1.0/24"] for c in target)


def test_own_rule_with_a_different_source_is_updated_not_duplicated() -> None:
    """vm-b's subnet is new behind an NSG whose bot rule allows only vm-a's subnet: the same rule (same name, same
    priority) is updated to allow both, nothing is dropped from it and no second rule appears."""
    own = allow(3990, "AzureSiteRecovery", source=["10.1.2.0/24"]) | {"name": "asr-remediate-AzureSiteRecovery"}
    rules = [deny(4000, "AzureSiteRecovery"), own]
    resources = two_subnets(rules)
    plan = scan_resources(resources)
    (change,) = plan.changes
    assert (change.action, change.name) == (UPDATE_RULE, "asr-remediate-AzureSiteRecovery")
    assert change.properties["priority"] == 3990
    assert change.properties["sourceAddressPrefixes"] == ["10.1.1.0/24", "10.1.2.0/24"]
    assert [f.vm_id.rsplit("/", 1)[-1] for f in change.fixes] == ["vm-b"]
    assert_applied_plan_is_compliant_and_final(resources)


def test_own_virtualnetwork_rule_is_narrowed_without_cutting_off_a_vm_that_relied_on_it() -> None:
    """An own rule from the virtualnetwork scope, pushed behind a deny that matches only vm-b's subnet: the update
    moves it and narrows its source to the subnets of every VM behind the NSG that needs the destination — vm-a,
    which still passes through it, keeps passing (first match wins, priorities 100-4096)."""
    own = allow(900, "AzureSiteRecovery", source="VirtualNetwork") | {"name": "asr-remediate-AzureSiteRecovery"}
    rules = [deny(500, "AzureSiteRecovery", source="10.1.1.0/24"), own, deny(1000, "AzureSiteRecovery")]
    resources = two_subnets(rules)
    plan = scan_resources(resources)
    (change,) = plan.changes
    assert change.action == UPDATE_RULE and change.properties["priority"] == 499
    assert change.properties["sourceAddressPrefixes"] == ["10.1.1.0/24", "10.1.2.0/24"]
    assert {v.rsplit("/", 1)[-1] for v in change.vm_ids} == {"vm-a", "vm-b"}
    assert_applied_plan_is_compliant_and_final(resources)


# -- prefix style: only what is blocked ----------------------------------------------------------------------------

def test_prefix_style_allows_only_the_blocked_prefixes_collapsed() -> None:
    """A deny covering three of Storage.EastUS's prefixes: the prefix-style rule allows those three (collapsed), not
    the tag's other prefixes; tag style still names the tag."""
    storage = full_tags().prefixes("Storage.EastUS")
    assert storage is not None
    blocked = storage.to_cidrs()[:3]
    resources = Scenario(subnet_rules=[deny(300, blocked)]).resources()
    prefix_plan = scan_resources(resources, Settings(rule_style="prefix"))
    (props,) = rules_of(prefix_plan).values()
    wanted = IPSet.from_prefixes(blocked).to_cidrs()
    assert props.get("destinationAddressPrefixes", [props.get("destinationAddressPrefix")]) == wanted
    assert props["priority"] == 299
    (tag_props,) = rules_of(scan_resources(resources)).values()
    assert tag_props["destinationAddressPrefix"] == "Storage.EastUS"
    assert_applied_plan_is_compliant_and_final(resources, Settings(rule_style="prefix"))


def test_prefix_style_routes_send_only_the_blocked_part_to_internet() -> None:
    """A UDR sending 4.0.0.0/8 to the gateway: prefix-style routes cover exactly the part of each destination inside
    it, which then wins by longest prefix match (virtual-networks-udr-overview, "How Azure selects a route")."""
    resources = Scenario(routes=[("onprem-4", "4.0.0.0/8", "VirtualNetworkGateway")]).resources()
    plan = scan_resources(resources, Settings(rule_style="prefix"))
    assert plan.changes and all(c.action == CREATE_ROUTE and c.works_around == "route onprem-4" for c in plan.changes)
    slash8 = IPSet.from_prefixes(["4.0.0.0/8"])
    for destination in {c.destination for c in plan.changes}:
        prefixes = full_tags().prefixes(destination)
        assert prefixes is not None and not prefixes.issubset(slash8)
        planned = [c.properties["addressPrefix"] for c in plan.changes if c.destination == destination]
        assert planned == (prefixes & slash8).to_cidrs()
    assert_applied_plan_is_compliant_and_final(resources, Settings(rule_style="prefix"))


def test_a_planned_route_for_a_prefix_someone_routes_already_is_a_conflict() -> None:
    """Prefix style, a UDR for exactly one of AzureSiteRecovery's prefixes: the bot's route for that prefix would be
    a second route for the same prefix, which Network RP refuses (RouteConflict), so none is planned and the reason
    names the route."""
    asr = full_tags().prefixes("AzureSiteRecovery")
    assert asr is not None
    first = asr.to_cidrs()[0]
    plan = scan_resources(Scenario(routes=[("pin", first, "VirtualNetworkGateway")]).resources(),
                          Settings(rule_style="prefix"))
    assert plan.changes == ()
    (finding,) = errors(plan)
    assert finding.message.endswith(f"not fixable: route table rt already has route pin for {first}, and a route "
                                    "table holds one route per address prefix; nothing is planned in route table rt "
                                    "for the source side")


# -- descriptions and plan entries ---------------------------------------------------------------------------------

def test_description_names_the_deny_rule_within_140_characters() -> None:
    """SecurityRulePropertiesFormat.description: "Restricted to 140 chars." (Network RP REST spec). Rule names are up
    to 80 characters, so a long deny rule name is shortened, never the limit exceeded."""
    plan = scan_resources(Scenario(subnet_rules=[deny(4000)]).resources())
    for props in rules_of(plan).values():
        assert "deny rule deny-4000 (priority 4000)" in props["description"]
        assert len(props["description"]) <= MAX_DESCRIPTION
    long_name = "Deny-" + "x" * 75
    text = rule_description("GuestAndHybridManagement", long_name, 4000)
    assert len(text) == MAX_DESCRIPTION and long_name[:15] in text and "..." in text and "(priority 4000)" in text
    rules = [{"name": long_name, "priority": 4000, "access": "Deny", "destination": "Internet"}]
    for props in rules_of(scan_resources(Scenario(subnet_rules=rules).resources())).values():
        assert len(props["description"]) <= MAX_DESCRIPTION


def test_table_and_markdown_list_what_each_change_fixes_and_one_vm_is_singular() -> None:
    """The summary counts one VM as "1 replicated VM"; each plan entry lists the findings it fixes."""
    plan = scan_resources(Scenario(subnet_rules=[deny(4000)]).resources())
    table = render_table(plan.reports, plan.changes)
    assert table.splitlines()[-1] == "1 replicated VM: 1 drift; 4 planned changes"
    assert "fixes source Storage.EastUS of vm1; works around deny rule deny-4000 (priority 4000)" in table
    assert "from 10.1.1.0/24 to Storage.EastUS" in table
    markdown = render_markdown(plan.reports, plan.changes)
    assert "| Action | Resource | Name | Change | Fixes |" in markdown
    assert "source Storage.EastUS of vm1; works around deny rule deny-4000 (priority 4000) |" in markdown
    one = scan_resources(Scenario(subnet_rules=[deny(4000, "AzureSiteRecovery")]).resources())
    assert render_table(one.reports, one.changes).endswith("1 replicated VM: 1 drift; 1 planned change")


# -- all or nothing, with the real numbers --------------------------------------------------------------------------

def filler(priorities: range, direction: str = "Outbound") -> list[dict[str, Any]]:
    return [{"name": f"f{p}-{direction[0]}", "priority": p, "access": "Allow", "destination": "10.0.0.0/8",
             "direction": direction} for p in priorities]


def test_one_free_priority_for_four_rules_plans_none_and_says_so() -> None:
    """The issue's case: 550 is the only free outbound priority below a deny at 1000. Before, one rule took 550 and
    the others were 'not fixable: no free outbound priority between 100 and 999' — false while 550 was free."""
    rules = [*filler(range(100, 550)), *filler(range(551, 1000)), deny(1000)]
    plan = scan_resources(Scenario(subnet_rules=rules).resources())
    assert plan.changes == ()
    expected = ("NSG nsg-subnet needs 4 new outbound rules at priority 999 or lower, to go before deny-1000 (priority "
                "1000), but only 1 outbound priority between 100 and 999 is free (550); nothing is planned in NSG "
                "nsg-subnet for the source side")
    assert [f.message.split(" — not fixable: ")[1] for f in errors(plan)] == [expected] * 4


def test_exactly_enough_free_priorities_plans_every_rule() -> None:
    """Boundary: four free priorities (550-553) for four rules: all four are planned, highest first."""
    rules = [*filler(range(100, 550)), *filler(range(554, 1000)), deny(1000)]
    plan = scan_resources(Scenario(subnet_rules=rules).resources())
    assert sorted(p["priority"] for p in rules_of(plan).values()) == [550, 551, 552, 553]
    assert all(f.fixable for f in errors(plan))


def test_three_free_priorities_for_four_rules_counts_them() -> None:
    rules = [*filler(range(100, 997)), deny(1000)]
    plan = scan_resources(Scenario(subnet_rules=rules).resources())
    assert plan.changes == ()
    assert all("but only 3 outbound priorities between 100 and 999 are free (997, 998, 999)" in f.message
               for f in errors(plan))


def test_no_free_priority_and_a_deny_at_100() -> None:
    rules = [*filler(range(100, 150)), deny(150)]
    plan = scan_resources(Scenario(subnet_rules=rules).resources())
    assert plan.changes == ()
    assert all("needs 4 new outbound rules at priority 149 or lower, to go before deny-150 (priority 150), but no "
               "outbound priority between 100 and 149 is free" in f.message for f in errors(plan))
    at_100 = scan_resources(Scenario(subnet_rules=[deny(100, "*")]).resources())
    assert all("deny-100 (priority 100), has priority 100, so no rule can go before it (priorities start at 100)"
               in f.message for f in errors(at_100))


def test_one_unplaceable_destination_means_none_for_that_side() -> None:
    """Storage.EastUS is denied at priority 100 (nothing can go before it); the other three would fit, but a partial
    fix leaves replication broken, so none is planned, and their findings say why."""
    plan = scan_resources(Scenario(subnet_rules=[deny(100, "Storage.EastUS"), deny(4000)]).resources())
    assert plan.changes == ()
    reasons = {f.destination: f.message.split(" — not fixable: ")[1] for f in errors(plan)}
    assert set(reasons) == set(SOURCE_NEEDS)
    assert len(set(reasons.values())) == 1
    assert reasons["AzureSiteRecovery"] == (
        "the first rule in NSG nsg-subnet that denies Storage.EastUS, deny-100 (priority 100), has priority 100, so "
        "no rule can go before it (priorities start at 100); nothing is planned in NSG nsg-subnet for the source side")


@pytest.mark.parametrize(("existing", "planned"), [(996, True), (997, False)])
def test_rule_count_limit_at_the_boundary(existing: int, planned: bool) -> None:
    """"NSG rules per NSG: 1,000" (Azure networking limits), inbound and outbound together: 996 + 4 fits, 997 + 4
    does not, and the reason gives the real count (the old text said "already has 1000 rules" at 998)."""
    rules = [*filler(range(100, 100 + existing - 1), "Inbound"), deny(4000)]
    assert len(rules) == existing
    plan = scan_resources(Scenario(subnet_rules=rules).resources())
    if planned:
        assert len(plan.changes) == 4 and all(f.fixable for f in errors(plan))
        return
    assert plan.changes == ()
    assert all(f"NSG nsg-subnet has {existing} rules and the fix needs 4 more, over Azure's limit of 1000 rules per "
               "NSG" in f.message for f in errors(plan))


def test_998_rules_is_not_called_1000() -> None:
    rules = [*filler(range(100, 1097), "Inbound"), deny(4000)]
    assert len(rules) == 998
    plan = scan_resources(Scenario(subnet_rules=rules).resources())
    assert plan.changes == ()
    assert all("has 998 rules and the fix needs 4 more" in f.message for f in errors(plan))


def prefix_filler(count: int, side: str) -> dict[str, Any]:
    """An inbound rule holding ``count`` address prefixes on one side (it does not touch outbound flows)."""
    prefixes = [f"192.0.{i // 256}.{i % 256}/32" for i in range(count)]
    return {"name": "filler", "priority": 200, "access": "Allow", "direction": "Inbound",
            "destination": prefixes if side == "destination" else "*",
            "source": prefixes if side == "source" else "*"}


@pytest.mark.parametrize(("filler_count", "planned"), [(3995, True), (3996, False)])
def test_source_prefix_limit_at_the_boundary(filler_count: int, planned: bool) -> None:
    """4,000 source prefixes per NSG, counted apart from destinations (Azure networking limits). The NSG holds the
    filler's prefixes + 1 (the '*' of deny-4000); four subnet-scoped rules add one source prefix each: 3,996 + 4 is
    exactly 4,000 and fits, 3,997 + 4 does not."""
    rules = [prefix_filler(filler_count, "source"), deny(4000)]
    plan = scan_resources(Scenario(subnet_rules=rules).resources())
    now = filler_count + 1
    if planned:
        assert now + 4 == 4000 and len(plan.changes) == 4
        return
    assert plan.changes == ()
    assert all(f"NSG nsg-subnet holds {now} source address prefixes and the fix adds 4, over Azure's limit of 4000 "
               "source prefixes per NSG" in f.message for f in errors(plan))


def test_destination_prefix_limit_in_prefix_style() -> None:
    """Prefix style: the four rules carry every blocked prefix (deny-4000 blocks all of each destination); the NSG
    can take them up to exactly 4,000 destination prefixes and not one more."""
    tags = full_tags()
    needed = 0
    for name in SOURCE_NEEDS:
        prefixes = tags.prefixes(name)
        assert prefixes is not None
        needed += len(prefixes.to_cidrs())
    cfg = Settings(rule_style="prefix")
    fits = [prefix_filler(4000 - needed - 1, "destination"), deny(4000)]  # deny-4000's 'Internet' is one more
    assert len(scan_resources(Scenario(subnet_rules=fits).resources(), cfg).changes) == 4
    over = [prefix_filler(4000 - needed, "destination"), deny(4000)]
    plan = scan_resources(Scenario(subnet_rules=over).resources(), cfg)
    assert plan.changes == ()
    assert all(f"holds {4000 - needed + 1} destination address prefixes and the fix adds {needed}, over Azure's "
               "limit of 4000 destination prefixes per NSG" in f.message for f in errors(plan))


@pytest.mark.parametrize(("count", "planned"), [(396, True), (397, False)])
def test_route_count_limit_at_the_boundary(count: int, planned: bool) -> None:
    """"User-defined routes per route table: 400" (Azure networking limits): 396 + 4 fits, 397 + 4 does not."""
    routes = [("default", "0.0.0.0/0", "VirtualNetworkGateway"),
              *((f"r{i}", f"10.{i // 256}.{i % 256}.0/24", "VnetLocal") for i in range(count - 1))]
    plan = scan_resources(Scenario(routes=routes).resources())
    if planned:
        assert len(plan.changes) == 4
        return
    assert plan.changes == ()
    assert all(f"route table rt has {count} routes and the fix needs 4 more, over Azure's limit of 400 routes per "
               "route table; nothing is planned in route table rt for the source side" in f.message
               for f in errors(plan))


@pytest.mark.parametrize(("count", "planned"), [(21, True), (22, False)])
def test_service_tag_route_limit_at_the_boundary(count: int, planned: bool) -> None:
    """"You can currently create 25 or less routes with service tags in each route table"
    (virtual-networks-udr-overview): 21 + 4 fits, 22 + 4 does not — before, the first three were planned."""
    sql = sorted(tags for tags in (full_tags().canonical_name(n) for n in full_tags().tags) if tags.startswith("Sql."))
    routes = [("default", "0.0.0.0/0", "VirtualNetworkGateway"),
              *((f"t{i}", sql[i], "Internet") for i in range(count))]
    plan = scan_resources(Scenario(routes=routes).resources())
    if planned:
        assert len(plan.changes) == 4
        return
    assert plan.changes == ()
    assert all(f"route table rt has {count} service-tag routes and the fix needs 4 more, over Azure's limit of 25 "
               "service-tag routes per route table" in f.message for f in errors(plan))


def test_a_route_that_would_still_win_means_no_routes_in_that_table() -> None:
    """A /32 inside AzureSiteRecovery to the gateway beats any tag route (longest prefix match), so the three other
    tag routes would leave replication broken: none is planned, and each finding names the route."""
    asr = full_tags().prefixes("AzureSiteRecovery")
    assert asr is not None
    pin = asr.to_cidrs()[0].split("/")[0] + "/32"
    routes = [("default", "0.0.0.0/0", "VirtualNetworkGateway"), ("pin", pin, "VirtualNetworkGateway")]
    plan = scan_resources(Scenario(routes=routes).resources())
    assert plan.changes == ()
    found = errors(plan)
    assert len(found) == 4 and not any(f.fixable for f in found)
    assert all("route pin would still send AzureSiteRecovery to a wrong next hop with the asr-remediate routes in "
               "place (it is as specific as them or more); nothing is planned in route table rt for the source side"
               in f.message for f in found)


def test_an_existing_route_for_the_same_prefix_is_a_conflict_not_a_plan() -> None:
    """A route table holds one route per address prefix (RouteConflict): someone's Storage.EastUS route to the
    gateway cannot get a second, bot-owned route beside it."""
    routes = [("default", "0.0.0.0/0", "VirtualNetworkGateway"), ("theirs", "Storage.EastUS", "VirtualNetworkGateway")]
    plan = scan_resources(Scenario(routes=routes).resources())
    assert plan.changes == ()
    assert all("route table rt already has route theirs for Storage.EastUS, and a route table holds one route per "
               "address prefix" in f.message for f in errors(plan))


def both_sides_on_one_nsg(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """nsg-central guards a centralus subnet that is vm-east's recovery subnet (target side) and vm-central's own
    subnet (source side, vm-central replicating centralus → eastus)."""
    central = nsg(SUB, DR_RG, "nsg-central", "centralus", rules)
    east_vnet = vnet(SUB, RG, "vnet-east", "eastus", ["10.1.0.0/16"], [{"name": "snet-e", "prefix": "10.1.1.0/24"}])
    central_vnet = vnet(SUB, DR_RG, "vnet-central", "centralus", ["10.2.0.0/16"],
                        [{"name": "snet-c", "prefix": "10.2.1.0/24", "nsg": central["id"]},
                         {"name": "snet-dr", "prefix": "10.2.2.0/24", "nsg": central["id"]}])
    out = [central, east_vnet, central_vnet]
    for name, rg, region, target, vnet_id, subnet, ip, dr_vnet, dr_subnet in (
            ("vm-east", RG, "eastus", "centralus", east_vnet["id"], "snet-e", "10.1.1.4", central_vnet["id"],
             "snet-dr"),
            ("vm-central", DR_RG, "centralus", "eastus", central_vnet["id"], "snet-c", "10.2.1.4", east_vnet["id"],
             "snet-e")):
        vm_id = rid(SUB, rg, "Microsoft.Compute", "virtualMachines", name)
        the_nic = nic(SUB, rg, f"{name}-nic", region, f"{vnet_id}/subnets/{subnet}", ip, vm_id)
        out += [the_nic, vm(SUB, rg, name, region, [the_nic["id"]]),
                protected_item(SUB, "vault", vm_id, name, region, target, the_nic["id"], dr_vnet, dr_subnet)]
    return out


def test_all_or_nothing_is_per_side_of_an_nsg() -> None:
    """vm-central's own subnet is denied Storage.CentralUS at priority 100 (source side: nothing can be placed);
    vm-east's recovery subnet, behind the same NSG, is only behind deny-4000 (target side): its four rules are
    planned, allowing only the recovery subnet."""
    rules = [deny(100, "Storage.CentralUS", source="10.2.1.0/24"), deny(4000)]
    resources = both_sides_on_one_nsg(rules)
    plan = scan_resources(resources)
    by_vm = {r.name: r for r in plan.reports}
    source = [f for f in by_vm["vm-central"].findings if f.severity == "error"]
    assert source and not any(f.fixable for f in source)
    assert all("nothing is planned in NSG nsg-central for the source side" in f.message for f in source)
    target = [f for f in by_vm["vm-east"].findings if f.severity == "error"]
    assert len(target) == 4 and all(f.fixable and f.side == "target" for f in target)
    assert len(plan.changes) == 4
    assert all(c.properties["sourceAddressPrefixes"] == ["10.2.2.0/24"] for c in plan.changes)
    after = scan(apply_changes(build_estate(resources), plan.changes), full_tags(), Settings())
    assert {r.name: r.status for r in after.reports} == {"vm-east": COMPLIANT, "vm-central": DRIFT}


# -- the setting and the option ------------------------------------------------------------------------------------

def test_source_scope_setting() -> None:
    assert load_settings({}).source_scope == "subnet"
    assert load_settings({"ASR_SOURCE_SCOPE": "VM"}).source_scope == "vm"
    with pytest.raises(SettingsError, match="ASR_SOURCE_SCOPE must be one of subnet, vm, virtualnetwork"):
        load_settings({"ASR_SOURCE_SCOPE": "everything"})
