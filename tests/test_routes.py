"""evaluate_routes / Hop.verdict / bgp_may_override: longest prefix match, tie order, tag routes, endpoints."""

from __future__ import annotations

import itertools

import pytest

from asr_remediate.ipset import IPSet
from asr_remediate.model import Route, RouteTable, ServiceEndpoint, Subnet, VirtualNetwork
from asr_remediate.routes import Hop, bgp_may_override, evaluate_routes
from asr_remediate.servicetags import ServiceTags
from tests import tagdata

VNET_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"


def tags_of(*entries: tuple[str, str, list[str]]) -> ServiceTags:
    return ServiceTags.from_values("1", [{"name": n, "properties": {"region": r, "addressPrefixes": p}}
                                         for n, r, p in entries])


# Every tag below publishes 20.60.0.0/24 so that routes naming them tie at /24.
SHARED = "20.60.0.0/24"
TAGS = tags_of(
    ("Svc", "", [SHARED, "20.61.0.0/24"]),
    ("Svc.RegionOne", "regionone", [SHARED]),
    ("AzureCloud", "", [SHARED, "20.62.0.0/16"]),
    ("AzureCloud.regionone", "regionone", [SHARED]),
    ("Front.Door", "", [SHARED]),  # dotted name but no region: a top-level tag
    ("Storage", "", ["30.0.0.0/16", "30.1.0.0/16", "30.2.0.0/16"]),
    ("Storage.RegionOne", "regionone", ["30.0.0.0/16"]),
    ("Storage.RegionTwo", "regiontwo", ["30.1.0.0/16"]),
    ("EventHub.RegionOne", "regionone", ["31.0.0.0/24"]),
    ("AzureActiveDirectory", "", ["32.0.0.0/24"]),
)


def vnet(space: tuple[str, ...] = ("10.0.0.0/16",), peered: tuple[str, ...] = (), location: str = "regionone",
         gateway: bool = False, subnets: tuple[Subnet, ...] = ()) -> VirtualNetwork:
    return VirtualNetwork(VNET_ID, "v", location, space, subnets, peered, gateway)


def subnet(*endpoints: ServiceEndpoint) -> Subnet:
    return Subnet(f"{VNET_ID}/subnets/s", "s", ("10.0.1.0/24",), service_endpoints=endpoints)


def table(*routes: tuple[str, str, str] | tuple[str, str, str, str], disable_bgp: bool = False) -> RouteTable:
    built = tuple(Route(name=r[0], address_prefix=r[1], next_hop_type=r[2], next_hop_ip=r[3] if len(r) > 3 else "")
                  for r in routes)
    return RouteTable("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/routeTables/t", "t",
                      "regionone", built, disable_bgp)


def run(rt: RouteTable | None, destination: str | list[str], *, net: VirtualNetwork | None = None,
        sub: Subnet | None = None, tags: ServiceTags = TAGS) -> list[Hop]:
    wanted = IPSet.from_prefixes([destination] if isinstance(destination, str) else destination)
    hops = evaluate_routes(rt, net or vnet(), sub, wanted, tags)
    covered = IPSet()
    for hop in hops:
        assert hop.addresses and not covered.overlaps(hop.addresses)
        covered = covered | hop.addresses
    assert covered == wanted
    return hops


def by_route(hops: list[Hop]) -> dict[str, tuple[list[str], str]]:
    return {h.route_name: (h.addresses.to_cidrs(), h.next_hop_type) for h in hops}


def winner(hops: list[Hop]) -> tuple[str, str]:
    assert len(hops) == 1, by_route(hops)
    return hops[0].route_name, hops[0].next_hop_type


# --- system routes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("destination", "hop", "name"), [
    ("10.0.3.0/24", "VnetLocal", "system: virtual network"),
    ("172.20.0.0/24", "VNetPeering", "system: peering"),
    ("20.60.0.0/24", "Internet", "system: default 0.0.0.0/0"),
    ("10.1.0.0/16", "None", "system: default 10.0.0.0/8"),
    ("172.16.0.0/16", "None", "system: default 172.16.0.0/12"),
    ("192.168.4.0/24", "None", "system: default 192.168.0.0/16"),
    ("100.64.0.0/24", "None", "system: default 100.64.0.0/10"),
    ("0.0.0.0/32", "Internet", "system: default 0.0.0.0/0"),
    ("255.255.255.255/32", "Internet", "system: default 0.0.0.0/0"),
])
def test_system_routes_without_a_route_table(destination, hop, name):
    hops = run(None, destination, net=vnet(peered=("172.20.0.0/16",)))
    assert winner(hops) == (name, hop)
    assert hops[0].origin == "system"


def test_vnet_space_inside_a_none_default_is_local():
    # 10.0.0.0/8 → None, but a VNet spanning all of it makes it local (equal length: the VNet route is listed first)
    assert winner(run(None, "10.9.0.0/16", net=vnet(space=("10.0.0.0/8",)))) == ("system: virtual network",
                                                                                 "VnetLocal")


# --- longest prefix match --------------------------------------------------------------------------------------


def test_longest_prefix_wins_regardless_of_table_order():
    rt = table(("specific", "20.60.1.0/24", "VirtualNetworkGateway"), ("default", "0.0.0.0/0", "VirtualAppliance",
                                                                       "10.0.0.4"), ("middle", "20.60.0.0/16",
                                                                                     "Internet"))
    hops = run(rt, ["20.60.0.0/23", "8.8.8.0/24"])
    assert by_route(hops) == {
        "specific": (["20.60.1.0/24"], "VirtualNetworkGateway"),
        "middle": (["20.60.0.0/24"], "Internet"),
        "default": (["8.8.8.0/24"], "VirtualAppliance"),
    }
    assert {h.route_name: h.next_hop_ip for h in hops}["default"] == "10.0.0.4"
    assert {h.route_name: h.prefix for h in hops}["specific"] == "20.60.1.0/24"


def test_longer_system_route_beats_shorter_user_route():
    rt = table(("force-tunnel", "0.0.0.0/0", "VirtualAppliance", "10.0.0.4"))
    assert by_route(run(rt, ["10.0.5.0/24", "20.60.0.0/24"])) == {
        "system: virtual network": (["10.0.5.0/24"], "VnetLocal"),
        "force-tunnel": (["20.60.0.0/24"], "VirtualAppliance"),
    }


@pytest.mark.parametrize(("prefix", "destination"), [("0.0.0.0/0", "20.60.0.0/24"), ("10.0.0.0/16", "10.0.5.0/24"),
                                                     ("10.0.0.0/8", "10.7.0.0/16")])
def test_user_route_beats_system_route_of_equal_length(prefix, destination):
    rt = table(("udr", prefix, "VirtualAppliance", "10.0.0.4"))
    hops = run(rt, destination)
    assert winner(hops) == ("udr", "VirtualAppliance")
    assert hops[0].origin == "user"


def test_host_bits_in_a_route_prefix_are_tolerated():
    assert winner(run(table(("udr", "20.60.0.77/24", "None")), "20.60.0.0/24")) == ("udr", "None")


def test_ipv6_routes_are_ignored():
    assert winner(run(table(("v6", "::/0", "None")), "20.60.0.0/24")) == ("system: default 0.0.0.0/0", "Internet")


# --- service-tag routes -----------------------------------------------------------------------------------------


def test_tag_route_takes_each_published_prefix():
    hops = run(table(("svc", "Svc", "VirtualAppliance", "10.0.0.4")), ["20.60.0.0/23", "20.61.0.0/24"])
    assert by_route(hops) == {
        "svc": (["20.60.0.0/24", "20.61.0.0/24"], "VirtualAppliance"),
        "system: default 0.0.0.0/0": (["20.60.1.0/24"], "Internet"),
    }


def test_explicit_prefix_beats_a_tag_route_of_equal_length_in_either_order():
    for routes in itertools.permutations([("svc", "Svc", "None"), ("explicit", SHARED, "Internet")]):
        assert winner(run(table(*routes), SHARED)) == ("explicit", "Internet")


def test_longer_tag_prefix_beats_shorter_explicit_prefix():
    rt = table(("explicit", "20.60.0.0/16", "Internet"), ("svc", "Svc", "None"))
    assert by_route(run(rt, "20.60.0.0/23")) == {
        "svc": (["20.60.0.0/24"], "None"),
        "explicit": (["20.60.1.0/24"], "Internet"),
    }


@pytest.mark.parametrize(("better", "worse"), [
    ("Svc.RegionOne", "Svc"),  # regional tag > top-level tag
    ("Svc", "AzureCloud.regionone"),  # top-level tag > AzureCloud regional
    ("AzureCloud.regionone", "AzureCloud"),  # AzureCloud regional > AzureCloud
    ("Svc.RegionOne", "AzureCloud"),
    ("Svc.RegionOne", "Front.Door"),  # a dotted name without a region is not a regional tag
])
def test_tag_tie_order_at_equal_prefix_length(better, worse):
    for first, second in ((better, worse), (worse, better)):
        rt = table((first, first, "VirtualAppliance", "10.0.0.4"), (second, second, "VirtualNetworkGateway"))
        assert run(rt, SHARED)[0].route_name == better, (first, second)


def test_same_tier_tie_goes_to_the_earlier_route():
    for first, second in (("Svc", "Front.Door"), ("Front.Door", "Svc")):
        rt = table((first, first, "Internet"), (second, second, "None"))
        assert winner(run(rt, SHARED)) == (first, "Internet")


def test_unknown_tag_route_makes_the_undecided_rest_unknown():
    rt = table(("explicit", "20.60.0.0/25", "Internet"), ("mystery", "NotATag", "VirtualAppliance", "10.0.0.4"))
    hops = run(rt, "20.60.0.0/24")
    assert winner(hops) == ("mystery", "VirtualAppliance")
    assert hops[0].origin == "unknown" and hops[0].verdict == "unknown"


# --- service endpoints ------------------------------------------------------------------------------------------


def test_storage_endpoint_defaults_to_the_vnet_location_and_beats_everything():
    rt = table(("host", "30.0.0.1/32", "VirtualNetworkGateway"), ("all", "0.0.0.0/0", "None"))
    sub = subnet(ServiceEndpoint("Microsoft.Storage"))
    hops = run(rt, ["30.0.0.0/16", "30.1.0.0/16"], sub=sub)
    assert by_route(hops) == {
        "service endpoint": (["30.0.0.0/16"], "VirtualNetworkServiceEndpoint"),
        "all": (["30.1.0.0/16"], "None"),
    }
    assert hops[0].origin == "service-endpoint" and hops[0].verdict == "ok"


def test_storage_endpoint_with_locations_covers_only_those_regions():
    sub = subnet(ServiceEndpoint("Microsoft.Storage", ("regiontwo",)))
    assert by_route(run(table(("all", "0.0.0.0/0", "None")), ["30.0.0.0/16", "30.1.0.0/16"], sub=sub)) == {
        "service endpoint": (["30.1.0.0/16"], "VirtualNetworkServiceEndpoint"),
        "all": (["30.0.0.0/16"], "None"),
    }


def test_storage_endpoint_star_covers_all_of_storage():
    sub = subnet(ServiceEndpoint("Microsoft.Storage", ("*",)))
    assert winner(run(table(("all", "0.0.0.0/0", "None")), "30.2.0.0/16", sub=sub)) == (
        "service endpoint", "VirtualNetworkServiceEndpoint")


def test_endpoint_wins_over_an_unknown_tag_route():
    sub = subnet(ServiceEndpoint("microsoft.storage"))
    hops = run(table(("mystery", "NotATag", "None")), ["30.0.0.0/16", "30.1.0.0/16"], sub=sub)
    assert [(h.addresses.to_cidrs(), h.origin) for h in hops] == [(["30.0.0.0/16"], "service-endpoint"),
                                                                   (["30.1.0.0/16"], "unknown")]


def test_no_empty_unknown_hop_when_the_endpoint_already_covers_everything():
    sub = subnet(ServiceEndpoint("Microsoft.Storage"))
    hops = run(table(("mystery", "NotATag", "None")), "30.0.0.0/16", sub=sub)
    assert [(h.route_name, h.verdict) for h in hops] == [("service endpoint", "ok")]
    assert evaluate_routes(table(("mystery", "NotATag", "None")), vnet(), None, IPSet(), TAGS) == []


def test_unrelated_endpoint_does_nothing():
    sub = subnet(ServiceEndpoint("Microsoft.Sql"))
    assert winner(run(None, "30.0.0.0/16", sub=sub)) == ("system: default 0.0.0.0/0", "Internet")


def test_storage_endpoint_on_real_data_uses_the_regional_tag():
    tags = tagdata.trimmed()
    eastus = tags.prefixes("Storage.EastUS")
    westeurope = tags.prefixes("Storage.WestEurope")
    assert eastus and westeurope
    sub = subnet(ServiceEndpoint("Microsoft.Storage"))
    net = vnet(location="eastus")
    rt = table(("all", "0.0.0.0/0", "VirtualNetworkGateway"))
    hops = evaluate_routes(rt, net, sub, eastus | westeurope, tags)
    assert {h.route_name: h.addresses for h in hops} == {"service endpoint": eastus, "all": westeurope}


# --- verdicts and BGP -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hop", "verdict"), [
    ("Internet", "ok"), ("VirtualNetworkServiceEndpoint", "ok"), ("VirtualAppliance", "warning"),
    ("VirtualNetworkGateway", "error"), ("None", "error"), ("VnetLocal", "error"), ("VNetPeering", "error"),
    ("internet", "ok"), ("virtualappliance", "warning"),
])
def test_hop_verdicts(hop, verdict):
    assert Hop(IPSet.address("1.2.3.4"), hop, "r", "user").verdict == verdict
    assert Hop(IPSet.address("1.2.3.4"), hop, "r", "unknown").verdict == "unknown"


def test_route_verdicts_end_to_end():
    rt = table(("nva", "20.60.0.0/24", "VirtualAppliance", "10.0.0.4"), ("gw", "20.61.0.0/24", "VirtualNetworkGateway"),
               ("drop", "20.62.0.0/24", "None"))
    hops = run(rt, ["20.60.0.0/24", "20.61.0.0/24", "20.62.0.0/24", "20.63.0.0/24"])
    assert {h.route_name: h.verdict for h in hops} == {"nva": "warning", "gw": "error", "drop": "error",
                                                       "system: default 0.0.0.0/0": "ok"}


@pytest.mark.parametrize(("gateway", "rt", "expected"), [
    (False, None, False),
    (False, table(), False),
    (True, None, True),
    (True, table(), True),
    (True, table(disable_bgp=True), False),
    (False, table(disable_bgp=True), False),
])
def test_bgp_may_override(gateway, rt, expected):
    assert bgp_may_override(vnet(gateway=gateway), rt) is expected


def test_azure_active_directory_service_endpoint_does_not_route_login_traffic():
    # Microsoft.AzureActiveDirectory endpoints are for Data Lake Gen1: AAD login still follows the routes.
    from asr_remediate.model import ServiceEndpoint, Subnet, VirtualNetwork
    from asr_remediate.routes import evaluate_routes
    from asr_remediate.servicetags import load_service_tags_file
    from tests.scenario import REPO

    tags = load_service_tags_file(REPO / "tests" / "data" / "ServiceTags_Public_cn376_trimmed.json")
    subnet = Subnet("/s/snet", "snet", ("10.0.0.0/24",), service_endpoints=(
        ServiceEndpoint("Microsoft.AzureActiveDirectory", ("eastus",)),))
    vnet = VirtualNetwork("/s/vnet", "vnet", "eastus", ("10.0.0.0/16",), (subnet,))
    aad = tags.prefixes("AzureActiveDirectory")
    assert aad
    hops = evaluate_routes(None, vnet, subnet, aad, tags)
    assert {h.next_hop_type for h in hops} == {"Internet"}
