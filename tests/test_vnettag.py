"""The VirtualNetwork tag (and so Internet) as Azure expands it for each sender.

Sources: Azure's service-tag reference defines VirtualNetwork as "the virtual network address space ..., all
connected on-premises address spaces, peered virtual networks, virtual networks connected to a virtual network
gateway, the virtual IP address of the host, and address prefixes used on user-defined routes. This tag might also
contain default routes" (learn.microsoft.com/azure/virtual-network/service-tags-overview); operators report the
effective security rules of a NIC whose subnet has a 0.0.0.0/0 UDR expanding VirtualNetwork to 0.0.0.0/0
(codewithme.cloud/posts/2019/01/azure-nsg-virtualnetwork-tag; journeyofthegeek.com 2022/06/22). Gateway transit
("Configure VPN gateway transit for virtual network peering"): a spoke with useRemoteGateways learns the hub
gateway's routes.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from asr_remediate.config import Settings
from asr_remediate.drift import COMPLIANT, DRIFT, VmReport
from asr_remediate.estate import parse_vnet
from asr_remediate.ipset import IPSet
from asr_remediate.model import Route, RouteTable, VirtualNetwork
from asr_remediate.servicetags import ServiceTags
from asr_remediate.vnettag import virtual_network_tag
from examples.estate_builder import route_table
from tests.oracle import virtual_network_prefixes
from tests.scenario import DR_RG, SUB, Scenario, allow, deny, full_tags, scan_resources

SOURCE_TAG_ROUTES = [(f"r{i}", tag, "Internet") for i, tag in enumerate(
    ("Storage.EastUS", "AzureActiveDirectory", "EventHub.CentralUS", "AzureSiteRecovery"))]


def only(resources: list[dict[str, Any]], **settings: Any) -> VmReport:
    (report,) = scan_resources(resources, Settings(**settings)).reports
    return report


def nsg_errors(report: VmReport, side: str = "source") -> set[str]:
    return {f.destination for f in report.findings if f.kind == "nsg-deny" and f.side == side}


def test_allow_internet_then_deny_all_with_tag_routes_to_internet_is_drift() -> None:
    """The engine used to say compliant here: the UDRs put the required tags' prefixes into VirtualNetwork, so they
    are not 'Internet' for this NIC; the allow-Internet rule misses them and deny * drops them, as Azure does."""
    scenario = Scenario(subnet_rules=[allow(100, "Internet"), deny(4000, "*")], routes=SOURCE_TAG_ROUTES,
                        disable_bgp=True)
    report = only(scenario.resources())
    assert report.status == DRIFT
    assert nsg_errors(report) == {"Storage.EastUS", "AzureActiveDirectory", "EventHub.CentralUS",
                                  "AzureSiteRecovery"}
    assert {f.rule_name for f in report.findings if f.kind == "nsg-deny"} == {"deny-4000"}
    without_routes = only(Scenario(subnet_rules=[allow(100, "Internet"), deny(4000, "*")]).resources())
    assert without_routes.status == COMPLIANT  # the same NSG without the UDRs: Internet covers the tags


def test_deny_internet_matches_nothing_behind_a_default_route_to_an_appliance() -> None:
    """A 0.0.0.0/0 UDR makes VirtualNetwork everything: 'deny Internet' matches nothing and AllowVnetOutBound
    (65000) allows — the engine used to report drift that Azure does not enforce. The appliance stays a warning."""
    scenario = Scenario(subnet_rules=[deny(4000)], routes=[("nva", "0.0.0.0/0", "VirtualAppliance", "10.1.0.4")],
                        disable_bgp=True)
    report = only(scenario.resources())
    assert nsg_errors(report) == set()
    assert report.status == COMPLIANT
    assert {f.kind for f in report.findings} == {"route-appliance"}


def test_an_explicit_route_prefix_joins_virtual_network_whatever_its_next_hop() -> None:
    """The definition says 'address prefixes used on user-defined routes': a /32 route with next hop None still
    moves that address out of Internet, so a deny-Internet rule no longer blocks it (the route itself does)."""
    storage = full_tags().prefixes("Storage.EastUS")
    assert storage is not None
    first = ipaddress.IPv4Address(storage.intervals[0][0])
    scenario = Scenario(subnet_rules=[deny(4000)], routes=[("blackhole", f"{first}/32", "None")], disable_bgp=True)
    report = only(scenario.resources())
    deny_finding = next(f for f in report.findings if f.kind == "nsg-deny" and f.destination == "Storage.EastUS")
    assert not deny_finding.blocked.contains(int(first))
    route_finding = next(f for f in report.findings if f.kind == "route-next-hop")
    assert route_finding.blocked == IPSet.address(f"{first}/32")


def test_the_recovery_subnets_own_route_table_counts_on_the_target_side() -> None:
    resources = Scenario(recovery_rules=[allow(100, "Internet"), deny(4000, "*")]).resources()
    table = route_table(SUB, DR_RG, "rt-dr", "centralus", [("st", "Storage.CentralUS", "Internet")],
                        disable_bgp=True)
    dr_vnet = next(r for r in resources if r["id"].endswith("/vnet-dr"))
    dr_vnet["properties"]["subnets"][0]["properties"]["routeTable"] = {"id": table["id"]}
    report = only([*resources, table])
    assert nsg_errors(report, "target") == {"Storage.CentralUS"}
    assert nsg_errors(report, "source") == set()


def test_learned_routes_join_virtual_network_when_effective_routes_are_read() -> None:
    """With the NIC's effective routes (ASR_READ_EFFECTIVE_ROUTES), the on-premises prefixes a gateway learned are
    part of VirtualNetwork: here a learned 0.0.0.0/0 (forced tunnelling from on-premises)."""
    resources = Scenario(subnet_rules=[deny(4000)], gateway=True).resources()
    nic_id = next(r["id"] for r in resources if r["id"].endswith("/vm1-nic"))
    learned = {"source": "VirtualNetworkGateway", "state": "Active", "addressPrefix": ["0.0.0.0/0"],
               "nextHopType": "VirtualNetworkGateway", "nextHopIpAddress": ["10.1.255.4"]}
    resources.append({"id": f"{nic_id}/effectiveRouteTable",
                      "type": "Microsoft.Network/networkInterfaces/effectiveRouteTable",
                      "properties": {"value": [learned]}})
    report = only(resources)
    assert nsg_errors(report) == set()  # deny Internet matches nothing now
    assert {f.kind for f in report.findings if f.severity == "error"} == {"route-next-hop"}  # the gateway route


def test_a_spoke_using_the_hubs_gateway_gets_the_bgp_warning() -> None:
    resources = Scenario().resources()
    vnet = next(r for r in resources if r["id"].endswith("/vnet-src"))
    vnet["properties"]["virtualNetworkPeerings"] = [{"name": "to-hub", "properties": {
        "peeringState": "Connected", "useRemoteGateways": True,
        "remoteAddressSpace": {"addressPrefixes": ["10.100.0.0/16"]}}}]
    assert parse_vnet(vnet).uses_remote_gateways
    report = only(resources)
    (warning,) = [f for f in report.findings if f.kind == "bgp-propagation"]
    assert "useRemoteGateways" in warning.message and "VirtualNetwork tag" in warning.message


# --- the engine's set against the oracle's definition ---------------------------------------------------------

CIDRS = st.builds(lambda a, b, n: str(ipaddress.IPv4Network(f"{ipaddress.IPv4Address((a << 24) | (b << 16))}/{n}",
                                                             strict=False)),
                  st.sampled_from([10, 20, 52, 172, 192]), st.integers(0, 255), st.sampled_from([8, 12, 16, 24]))
TAGS = ServiceTags.from_values("1", [
    {"name": "Tag.One", "properties": {"region": "one", "addressPrefixes": ["20.1.0.0/16", "2603:1::/48"]}},
    {"name": "Tag", "properties": {"region": "", "addressPrefixes": ["20.0.0.0/12", "52.9.0.0/24"]}},
])


@st.composite
def senders(draw: Any) -> tuple[VirtualNetwork, RouteTable | None, tuple[Route, ...]]:
    vnet = VirtualNetwork("/vnet", "vnet", "one", tuple(draw(st.lists(CIDRS, min_size=1, max_size=2))), (),
                          peered_address_prefixes=tuple(draw(st.lists(CIDRS, max_size=2))))
    prefix = st.one_of(CIDRS, st.sampled_from(["Tag", "Tag.One", "Nope", "0.0.0.0/0", "2001:db8::/32"]))
    hop = st.sampled_from(["Internet", "VirtualAppliance", "None", "VnetLocal", "VirtualNetworkGateway"])
    routes = tuple(Route(f"r{i}", p, h, "10.0.0.4" if h == "VirtualAppliance" else "")
                   for i, (p, h) in enumerate(draw(st.lists(st.tuples(prefix, hop), max_size=5))))
    table = draw(st.sampled_from([None, RouteTable("/rt", "rt", "one", routes)]))
    learned = tuple(Route(f"bgp{i}", p, "VirtualNetworkGateway") for i, p in enumerate(draw(st.lists(CIDRS,
                                                                                                    max_size=2))))
    return vnet, table, learned


@settings(max_examples=150, deadline=None)
@given(senders(), st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=30))
def test_virtual_network_tag_agrees_with_the_oracle(sender: Any, probes: list[int]) -> None:
    vnet, table, learned = sender
    engine = virtual_network_tag(vnet, table, TAGS, learned)
    reference = [ipaddress.IPv4Network(p) for p in virtual_network_prefixes(vnet, table, TAGS, learned)]
    edges = {a for start, end in engine.intervals for a in (start, end, start - 1, end + 1) if 0 <= a < 2**32}
    for address in {*probes, *edges}:
        expected = any(ipaddress.IPv4Address(address) in n for n in reference)
        assert engine.contains(address) == expected, ipaddress.IPv4Address(address)


def test_equal_senders_share_one_set() -> None:
    """The NSG engine's memos key on the set's identity: the NICs of a subnet must share it."""
    vnet = VirtualNetwork("/vnet", "vnet", "one", ("10.0.0.0/16",), ())
    table = RouteTable("/rt", "rt", "one", (Route("t", "Tag", "Internet"),))
    assert virtual_network_tag(vnet, table, TAGS) is virtual_network_tag(vnet, table, TAGS)
