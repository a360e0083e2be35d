"""Failover readiness: the seed's ExpressRoute / VPN guidance as warnings per VM.

Sources:
- The seed (Site Recovery "Networking guidance for replicating Azure virtual machines", 2017, "Guidelines for existing
  Azure to on-premises ExpressRoute/VPN configuration"): "ensure that you have at least a site-to-site connection
  between your target Azure region and the on-premises datacenter"; "create a connection between: The source Virtual
  Network and the ExpressRoute circuit. The target Virtual Network and the ExpressRoute circuit"; "The ExpressRoute
  circuit won't be able to connect with two Azure Virtual Networks of the same IP ranges at the same time"; "keep the
  target region's site-to-site/ExpressRoute connection in a disconnected state"; "To create ExpressRoute circuits in
  different geopolitical regions, Azure ExpressRoute Premium is required"; forced tunnelling: "add user-defined routes
  (UDRs) for these IP ranges so that the replication traffic doesn't go on-premises".
- Geopolitical regions: "Azure regions to ExpressRoute locations within a geopolitical region"
  (learn.microsoft.com/azure/expressroute/expressroute-locations-providers; include file
  includes/expressroute-azure-regions-geopolitical-region.md, MicrosoftDocs/azure-docs commit 0440832a), shipped as
  asr_remediate/data/expressroute_geopolitical_regions.json.
- Shapes: VirtualNetworkGatewayGet.json, VirtualNetworkGatewayConnectionGet.json, ExpressRouteCircuitGet.json
  (Azure/azure-rest-api-specs, Microsoft.Network stable 2025-05-01; copies in tests/data/arm).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from asr_remediate.drift import COMPLIANT
from asr_remediate.estate import build_estate
from asr_remediate.readiness import READINESS_KINDS, evaluate_readiness, geopolitics
from asr_remediate.report import render_json, render_markdown, render_table
from examples.estate_builder import (
    expressroute_circuit,
    gateway_connection,
    rid,
    use_remote_gateways,
    virtual_network_gateway,
    vnet,
)
from tests.scenario import DR_RG, RG, SUB, Scenario, scan_resources

ARM = Path(__file__).parent / "data" / "arm"
SRC_VNET = rid(SUB, RG, "Microsoft.Network", "virtualNetworks", "vnet-src")
DR_VNET = rid(SUB, DR_RG, "Microsoft.Network", "virtualNetworks", "vnet-dr")


def body(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ARM / name).read_text())["responses"]["200"]["body"]
    return document


# -- parsing the real shapes -------------------------------------------------------------------------------------

def test_golden_gateway_connection_and_circuit_parse() -> None:
    estate = build_estate([body("VirtualNetworkGatewayGet.json"), body("VirtualNetworkGatewayConnectionGet.json"),
                           body("ExpressRouteCircuitGet.json")])
    (gateway,) = estate.connectivity.gateways.values()
    assert (gateway.name, gateway.location, gateway.gateway_type) == ("vpngw", "centralus", "vpn")
    assert gateway.vnet_id == ("/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/"
                               "virtualNetworks/vnet1")
    (connection,) = estate.connectivity.connections.values()
    assert (connection.connection_type, connection.status) == ("ipsec", "connecting")
    assert connection.gateway_id == gateway.id and connection.local_gateway_id.endswith("/localNetworkGateways/localgw")
    (circuit,) = estate.connectivity.circuits.values()
    assert (circuit.sku_tier, circuit.peering_location, circuit.provider) == ("standard", "peeringLocation",
                                                                            "providerName")
    assert not estate.unreadable


def test_unreadable_connectivity_resources_are_recorded_not_fatal() -> None:
    gateway = body("VirtualNetworkGatewayGet.json")
    gateway["properties"]["gatewayType"] = "Teleport"
    circuit = body("ExpressRouteCircuitGet.json")
    circuit["sku"] = ["Premium"]
    estate = build_estate([gateway, circuit, body("VirtualNetworkGatewayConnectionGet.json")])
    assert not estate.connectivity.gateways and not estate.connectivity.circuits
    assert {u.type for u in estate.unreadable.values()} == {"microsoft.network/virtualnetworkgateways",
                                                             "microsoft.network/expressroutecircuits"}
    assert "gatewayType 'teleport'" in estate.unreadable[gateway["id"].lower()].message
    assert len(estate.connectivity.connections) == 1


# -- the rules, on the one-VM scenario (eastus → centralus) --------------------------------------------------------

def _er(resources: list[dict[str, Any]], vnet_id: str, location: str, suffix: str, circuit_id: str = "",
        status: str = "Connected", gateway_type: str = "ExpressRoute") -> dict[str, Any]:
    """A gateway in ``vnet_id`` and (with ``circuit_id`` or for VPN) a connection of it."""
    gateway = virtual_network_gateway(SUB, RG, f"gw-{suffix}", location, vnet_id, gateway_type)
    resources.append(gateway)
    if circuit_id or gateway_type == "Vpn":
        resources.append(gateway_connection(
            SUB, RG, f"conn-{suffix}", location, gateway["id"], circuit_id=circuit_id, status=status,
            local_gateway_id="" if circuit_id else rid(SUB, RG, "Microsoft.Network", "localNetworkGateways", "onprem")))
    return gateway


def _circuit(resources: list[dict[str, Any]], tier: str = "Standard", peering: str = "Washington DC") -> str:
    circuit = expressroute_circuit(SUB, RG, "er-circuit", "eastus", peering, tier=tier)
    resources.append(circuit)
    return str(circuit["id"])


def _readiness(resources: list[dict[str, Any]]) -> list[Any]:
    (report,) = scan_resources(resources).reports
    return [f for f in report.findings if f.kind in READINESS_KINDS]


def test_no_gateway_anywhere_no_readiness_findings() -> None:
    assert _readiness(Scenario().resources()) == []


def test_source_on_vpn_target_without_gateway_is_target_connectivity() -> None:
    resources = Scenario().resources()
    _er(resources, SRC_VNET, "eastus", "src", gateway_type="Vpn")
    (finding,) = _readiness(resources)
    assert (finding.kind, finding.side, finding.severity, finding.resource_id) == (
        "failover-connectivity", "target", "warning", DR_VNET)
    assert "connection conn-src (site-to-site VPN)" in finding.message
    assert "vnet-dr in centralus has no virtual network gateway" in finding.message
    assert "clients and on-premises dependencies cannot reach the application" in finding.message
    assert "at least a site-to-site VPN connection between centralus and the on-premises datacenter" in finding.message


def test_target_connected_too_is_ready() -> None:
    resources = Scenario().resources()
    _er(resources, SRC_VNET, "eastus", "src", gateway_type="Vpn")
    _er(resources, DR_VNET, "centralus", "dr", gateway_type="Vpn")
    assert _readiness(resources) == []


def test_target_gateway_without_connection_or_not_connected() -> None:
    resources = Scenario().resources()
    _er(resources, SRC_VNET, "eastus", "src", gateway_type="Vpn")
    _er(resources, DR_VNET, "centralus", "dr", gateway_type="ExpressRoute")  # no connection
    (finding,) = _readiness(resources)
    assert "has gateway gw-dr but no connection to on-premises" in finding.message
    resources = Scenario().resources()
    _er(resources, SRC_VNET, "eastus", "src", gateway_type="Vpn")
    _er(resources, DR_VNET, "centralus", "dr", gateway_type="Vpn", status="NotConnected")
    (finding,) = _readiness(resources)
    assert "has only connections that are not connected (conn-dr)" in finding.message


def test_a_not_connected_source_reaches_nothing() -> None:
    resources = Scenario().resources()
    _er(resources, SRC_VNET, "eastus", "src", gateway_type="Vpn", status="NotConnected")
    assert _readiness(resources) == []


def test_hub_gateways_through_use_remote_gateways_both_sides() -> None:
    """The spoke reaches on-premises through its hub's ExpressRoute gateway; a target hub in the source region (global
    peering) fails with the source region."""
    resources = Scenario().resources()
    hub = vnet(SUB, RG, "vnet-hub-eastus", "eastus", ["10.0.0.0/16"], [{"name": "GatewaySubnet",
                                                                          "prefix": "10.0.255.0/27"}])
    resources.append(hub)
    for r in resources:
        if r["id"] in (SRC_VNET, DR_VNET):
            use_remote_gateways(r, hub)
    circuit = _circuit(resources)
    _er(resources, hub["id"], "eastus", "hub", circuit)
    (finding,) = _readiness(resources)
    assert finding.kind == "failover-expressroute" and finding.side == "target"
    assert "source VNet vnet-src (hub vnet-hub-eastus)" in finding.message
    assert "connection conn-hub to ExpressRoute circuit er-circuit" in finding.message
    assert "has gateways only outside centralus (gw-hub in eastus), which fail with that region" in finding.message


def test_expressroute_both_sides_and_which_side_lacks_it() -> None:
    resources = Scenario().resources()
    circuit = _circuit(resources)
    _er(resources, SRC_VNET, "eastus", "src", circuit)
    _er(resources, DR_VNET, "centralus", "dr", gateway_type="Vpn")
    (finding,) = _readiness(resources)
    assert (finding.kind, finding.side) == ("failover-expressroute", "target")
    assert "connect the target VNet (through an ExpressRoute gateway in centralus) to ExpressRoute circuit " \
        "er-circuit as well" in finding.message
    assert "reaches it only through connection conn-dr (site-to-site VPN)" in finding.message
    # The other way round: the recovery VNet has the circuit connection, the source only a VPN.
    resources = Scenario().resources()
    circuit = _circuit(resources)
    _er(resources, SRC_VNET, "eastus", "src", gateway_type="Vpn")
    _er(resources, DR_VNET, "centralus", "dr", circuit)
    (finding,) = _readiness(resources)
    assert (finding.kind, finding.side, finding.resource_id) == ("failover-expressroute", "source", SRC_VNET)
    assert "source VNet vnet-src has no ExpressRoute connection" in finding.message
    # Both connected to the circuit: ready.
    resources = Scenario().resources()
    circuit = _circuit(resources)
    _er(resources, SRC_VNET, "eastus", "src", circuit)
    _er(resources, DR_VNET, "centralus", "dr", circuit)
    assert _readiness(resources) == []


def _clashing() -> list[dict[str, Any]]:
    resources = Scenario().resources()
    dr = next(r for r in resources if r["id"] == DR_VNET)
    dr["properties"]["addressSpace"]["addressPrefixes"] = ["10.2.0.0/16", "10.1.128.0/17"]
    return resources


def test_address_clash_with_a_disconnected_target_is_the_expected_state() -> None:
    resources = _clashing()
    circuit = _circuit(resources)
    _er(resources, SRC_VNET, "eastus", "src", circuit)
    _er(resources, DR_VNET, "centralus", "dr")  # ready, no connection until failover
    assert _readiness(resources) == []
    resources = _clashing()
    circuit = _circuit(resources)
    _er(resources, SRC_VNET, "eastus", "src", circuit)
    _er(resources, DR_VNET, "centralus", "dr", circuit, status="NotConnected")
    assert _readiness(resources) == []


def test_address_clash_both_connected_names_the_prefixes_and_the_circuit() -> None:
    resources = _clashing()
    circuit = _circuit(resources)
    _er(resources, SRC_VNET, "eastus", "src", circuit)
    _er(resources, DR_VNET, "centralus", "dr", circuit)
    (finding,) = _readiness(resources)
    assert (finding.kind, finding.side) == ("failover-address-clash", "target")
    assert "overlap in 10.1.128.0/17 and are both connected to ExpressRoute circuit er-circuit" in finding.message
    assert "use different address ranges in the two regions, or keep the target connection disconnected" \
        in finding.message


def test_address_clash_without_a_target_gateway_still_needs_one() -> None:
    resources = _clashing()
    circuit = _circuit(resources)
    _er(resources, SRC_VNET, "eastus", "src", circuit)
    (finding,) = _readiness(resources)
    assert finding.kind == "failover-expressroute"
    assert "overlaps the source's (10.1.128.0/17), so keep that connection disconnected until failover" \
        in finding.message


def test_a_hub_vnet_not_in_the_inventory_still_lends_its_gateway_and_its_peered_space() -> None:
    """The hub's gateway is found by the spoke's peering's remoteVirtualNetwork id and the hub's address space from the
    peering's remoteAddressSpace (VirtualNetworkPeeringGet.json, azure-rest-api-specs), so the clash of the recovery
    VNet with the hub's range is seen with or without the hub VNet document (a hub VNet in a subscription not read)."""
    def estate(with_hub: bool) -> list[dict[str, Any]]:
        resources = Scenario().resources()
        hub = vnet(SUB, RG, "vnet-hub-eastus", "eastus", ["10.0.0.0/16"],
                   [{"name": "GatewaySubnet", "prefix": "10.0.255.0/27"}])
        use_remote_gateways(next(r for r in resources if r["id"] == SRC_VNET), hub)
        dr = next(r for r in resources if r["id"] == DR_VNET)
        dr["properties"]["addressSpace"]["addressPrefixes"] = ["10.2.0.0/16", "10.0.8.0/24"]
        circuit = _circuit(resources)
        _er(resources, hub["id"], "eastus", "hub", circuit)
        _er(resources, DR_VNET, "centralus", "dr", circuit)
        return [*resources, hub] if with_hub else resources
    with_hub, without_hub = _readiness(estate(True)), _readiness(estate(False))
    assert [(f.kind, f.side, f.message) for f in without_hub] == [(f.kind, f.side, f.message) for f in with_hub]
    (finding,) = without_hub
    assert finding.kind == "failover-address-clash" and "overlap in 10.0.8.0/24" in finding.message
    assert "source VNet vnet-src (hub vnet-hub-eastus)" in finding.message


# -- cross-geopolitical circuits ---------------------------------------------------------------------------------

def _geo_estate(tier: str, peering: str, target_location: str) -> tuple[Any, str]:
    resources = Scenario().resources()
    dr = next(r for r in resources if r["id"] == DR_VNET)
    dr["location"] = target_location
    circuit = _circuit(resources, tier, peering)
    _er(resources, SRC_VNET, "eastus", "src", circuit)
    _er(resources, DR_VNET, target_location, "dr")  # a gateway, no connection yet
    return build_estate(resources), circuit


def _geo(tier: str, peering: str, target: str) -> list[Any]:
    estate, _ = _geo_estate(tier, peering, target)
    return [r for r in evaluate_readiness(estate, "eastus", target, (SRC_VNET,), (DR_VNET,))
            if r.kind == "failover-geopolitical"]


def test_standard_circuit_across_geopolitical_regions_cannot_serve_the_target() -> None:
    (result,) = _geo("Standard", "Washington DC", "westeurope")
    assert result.side == "target" and result.resource_id.endswith("/expressRouteCircuits/er-circuit")
    assert "(standard tier, peering location Washington DC: North America)" in result.message
    assert "westeurope (Europe)" in result.message and "needs the ExpressRoute Premium add-on" in result.message


def test_premium_or_same_geopolitical_region_is_fine() -> None:
    assert _geo("Premium", "Washington DC", "westeurope") == []
    assert _geo("Standard", "Silicon Valley", "westus2") == []


def test_unknown_peering_location_falls_back_to_the_source_region() -> None:
    """A Standard circuit serving the eastus VNet is in eastus's geopolitical region (ExpressRoute Direct circuits
    carry no serviceProviderProperties)."""
    (result,) = _geo("Standard", "", "japaneast")
    assert "source region eastus: North America" in result.message and "japaneast (Japan)" in result.message


def test_region_missing_from_the_table_is_said_not_guessed() -> None:
    (result,) = _geo("Standard", "Washington DC", "mexicocentral")
    assert "cannot tell" in result.message and "mexicocentral is not in the shipped" in result.message


def test_local_circuit_to_another_region() -> None:
    (result,) = _geo("Local", "Washington DC", "westus2")
    assert "Local circuit" in result.message and "westus2" in result.message


def test_circuit_not_in_the_inventory() -> None:
    resources = Scenario().resources()
    _er(resources, SRC_VNET, "eastus", "src", rid(SUB, "rg-hub", "Microsoft.Network", "expressRouteCircuits", "gone"))
    kinds = {f.kind: f for f in _readiness(resources)}
    assert "is not in the inventory" in kinds["failover-geopolitical"].message
    assert set(kinds) == {"failover-expressroute", "failover-geopolitical"}


def test_the_shipped_table_maps_regions_and_locations() -> None:
    table = geopolitics()
    assert table.of_region("centralindia") == "India" and table.of_region("westindia") == "India"
    assert table.of_region("uksouth") == table.of_location("Newport(Wales)") == "Europe"
    assert table.of_location("chicago") == "North America"  # commercial first, not US Government cloud
    assert table.of_region("usgovvirginia") == "US Government cloud"


# -- never a write, every format, forced tunnelling ----------------------------------------------------------------

def test_readiness_is_warnings_only_never_planned_and_in_every_format() -> None:
    resources = Scenario().resources()
    circuit = _circuit(resources, "Standard", "Washington DC")
    _er(resources, SRC_VNET, "eastus", "src", circuit)
    plan = scan_resources(resources)
    (report,) = plan.reports
    assert report.status == COMPLIANT
    assert [f.kind for f in report.findings if f.kind in READINESS_KINDS] == ["failover-expressroute"]
    assert plan.changes == ()
    assert all(not f.fixable for f in report.findings)
    data = json.loads(render_json(plan.reports, plan.changes))
    assert [f["kind"] for f in data["vms"][0]["findings"]] == ["failover-expressroute"]
    assert data["vms"][0]["findings"][0]["destination"] == "on-premises"
    assert "connect the target VNet" in render_table(plan.reports, plan.changes)
    markdown = render_markdown(plan.reports, plan.changes)
    section = markdown.split("## Failover readiness", 1)[1]
    assert "| vm1 | failover-expressroute | target | vnet-dr |" in section


def test_forced_tunnelling_to_the_gateway_carries_the_seed_remedy() -> None:
    plan = scan_resources(Scenario(routes=[("default", "0.0.0.0/0", "VirtualNetworkGateway")]).resources())
    (report,) = plan.reports
    tunnelled = [f for f in report.findings if f.kind == "route-next-hop"]
    assert tunnelled and all("forced tunnelling to on-premises" in f.message for f in tunnelled)
    storage = next(f for f in tunnelled if f.destination == "Storage.EastUS")
    assert "Microsoft.Storage service endpoint on subnet snet" in storage.message
    assert all("service endpoint" not in f.message for f in tunnelled if not f.destination.startswith("Storage"))
    # A 0.0.0.0/0 route to None is no tunnel: no remedy text.
    plan = scan_resources(Scenario(routes=[("default", "0.0.0.0/0", "None")]).resources())
    (report,) = plan.reports
    dropped = [f for f in report.findings if f.kind == "route-next-hop"]
    assert dropped and all("forced tunnelling" not in f.message for f in dropped)

