"""Failover readiness: the seed's ExpressRoute / VPN guidance ("Guidelines for existing Azure to on-premises
ExpressRoute/VPN configuration", networking guidance for replicating Azure VMs, 2017) as warnings per VM.

Replication itself does not need on-premises connectivity; the application does after failover. For each side —
the VM's own VNets (source) and its recovery VNets (target) — the VNet's gateway, or its hub's through a connected
peering with ``useRemoteGateways``, and that gateway's connections to on-premises (``IPsec`` through a local network
gateway, ``ExpressRoute`` through a circuit; ``Vnet2Vnet`` and ``VPNClient`` do not reach on-premises) decide:

- ``failover-connectivity``: the source reaches on-premises, the target side does not (no gateway in the target
  region, or no connection): "ensure that you have at least a site-to-site connection between your target Azure
  region and the on-premises datacenter".
- ``failover-expressroute``: one side has an ExpressRoute connection and the other none: "create a connection
  between the source Virtual Network and the ExpressRoute circuit [and] the target Virtual Network and the
  ExpressRoute circuit" — the finding says which side lacks it.
- ``failover-address-clash``: the two sides' address spaces (VNets and hubs) overlap and both are connected to
  on-premises: "The ExpressRoute circuit won't be able to connect with two Azure Virtual Networks of the same IP
  ranges at the same time". With overlapping spaces the seed's other option is "keep the target region's
  site-to-site/ExpressRoute connection in a disconnected state": a target gateway without a connected connection is
  then the expected state and no connectivity / ExpressRoute finding is made.
- ``failover-geopolitical``: a source circuit the target side is not connected to, in another geopolitical region
  than the target region, whose SKU tier is not Premium: "To create ExpressRoute circuits in different geopolitical
  regions, Azure ExpressRoute Premium is required". The mapping is data (``data/expressroute_geopolitical_regions
  .json``, from the ExpressRoute locations article); a circuit's region is its peering location's, else the source
  region's (a Standard circuit serving the source VNet is in the source's geopolitical region). Local circuits reach
  only the Azure regions local to their peering location: a target region other than the source region is a
  warning.

Readiness results are warnings: they never change a VM's status and the planner never plans a write for them.

Worked example: a spoke in eastus uses its hub's ExpressRoute gateway; its recovery VNet in westeurope has none.

>>> from types import MappingProxyType as M
>>> from asr_remediate.model import (Connectivity, Estate, ExpressRouteCircuit, GatewayConnection,
...     VirtualNetwork, VirtualNetworkGateway)
>>> hub = VirtualNetwork("/s/1/vnets/hub", "hub", "eastus", ("10.0.0.0/16",), ())
>>> spoke = VirtualNetwork("/s/1/vnets/spoke", "spoke", "eastus", ("10.1.0.0/16",), (),
...     uses_remote_gateways=True, remote_gateway_vnet_ids=(hub.id,))
>>> dr = VirtualNetwork("/s/2/vnets/dr", "dr", "westeurope", ("10.1.0.0/16",), ())
>>> gateway = VirtualNetworkGateway("/s/1/gw/ergw", "ergw", "eastus", "expressroute", hub.id)
>>> circuit = ExpressRouteCircuit("/s/1/circuits/er", "er", "eastus", "standard", "Washington DC")
>>> connection = GatewayConnection("/s/1/connections/c1", "c1", "eastus", "expressroute", gateway.id, circuit.id,
...     status="connected")
>>> estate = Estate(vnets=M({v.id: v for v in (hub, spoke, dr)}), connectivity=Connectivity(
...     M({gateway.id: gateway}), M({connection.id: connection}), M({circuit.id: circuit})))
>>> for r in evaluate_readiness(estate, "eastus", "westeurope", (spoke.id,), (dr.id,)):
...     print(r.kind, r.side, r.resource_id)
failover-expressroute target /s/2/vnets/dr
failover-geopolitical target /s/1/circuits/er

The spaces clash (10.1.0.0/16 on both sides), so an unconnected target would be expected — but the target has no
gateway at all, and a Standard circuit at Washington DC (North America) cannot serve westeurope (Europe).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .ipset import IPSet
from .model import (
    Connectivity,
    Estate,
    ExpressRouteCircuit,
    GatewayConnection,
    ProtectedItem,
    VirtualNetwork,
    VirtualNetworkGateway,
    key,
    parent_id,
)

SOURCE, TARGET = "source", "target"
ON_PREMISES_TYPES = frozenset({"ipsec", "expressroute"})
READINESS_KINDS = ("failover-connectivity", "failover-expressroute", "failover-address-clash",
                   "failover-geopolitical")
_SEED = "the seed's guidance (Site Recovery networking guidance, ExpressRoute/VPN configuration)"


@dataclass(frozen=True)
class Readiness:
    """One readiness warning: plain data, turned into a finding by drift.py."""

    kind: str
    side: str
    resource_id: str
    message: str


@dataclass(frozen=True)
class Geopolitics:
    """ARM location / ExpressRoute peering location (normalised) → geopolitical region name."""

    regions: Mapping[str, str]
    locations: Mapping[str, str]

    def of_region(self, region: str) -> str:
        return self.regions.get(_norm(region), "")

    def of_location(self, location: str) -> str:
        return self.locations.get(_norm(location), "")


def _norm(text: str) -> str:
    return "".join(text.lower().split())


@cache
def geopolitics() -> Geopolitics:
    """The shipped table (``data/expressroute_geopolitical_regions.json``; its ``source`` field names the article)."""
    text = resources.files("asr_remediate").joinpath("data/expressroute_geopolitical_regions.json").read_text("utf-8")
    regions: dict[str, str] = {}
    locations: dict[str, str] = {}
    for entry in json.loads(text)["geopoliticalRegions"]:
        for region in entry["azureRegions"]:
            regions[_norm(region)] = entry["name"]
        for location in entry["expressRouteLocations"]:
            # A location listed for a national cloud too (Chicago: North America and US Government cloud) is taken
            # as commercial: the table lists commercial geographies first.
            locations.setdefault(_norm(location), entry["name"])
    return Geopolitics(regions, locations)


@dataclass(frozen=True)
class _Index:
    gateways_by_vnet: Mapping[str, tuple[VirtualNetworkGateway, ...]]
    connections_by_gateway: Mapping[str, tuple[GatewayConnection, ...]]


_INDEX: dict[int, tuple[Connectivity, _Index]] = {}


def _index(connectivity: Connectivity) -> _Index:
    cached = _INDEX.get(id(connectivity))
    if cached is not None and cached[0] is connectivity:
        return cached[1]
    by_vnet: dict[str, list[VirtualNetworkGateway]] = {}
    for gateway in connectivity.gateways.values():
        if gateway.vnet_id:
            by_vnet.setdefault(key(gateway.vnet_id), []).append(gateway)
    by_gateway: dict[str, list[GatewayConnection]] = {}
    for connection in connectivity.connections.values():
        if connection.connection_type in ON_PREMISES_TYPES and connection.gateway_id:
            by_gateway.setdefault(key(connection.gateway_id), []).append(connection)
    index = _Index({k: tuple(sorted(v, key=lambda g: key(g.id))) for k, v in by_vnet.items()},
                   {k: tuple(sorted(v, key=lambda c: key(c.id))) for k, v in by_gateway.items()})
    _INDEX.clear()
    _INDEX[id(connectivity)] = (connectivity, index)
    return index


@dataclass(frozen=True)
class _Side:
    label: str
    region: str
    vnets: tuple[VirtualNetwork, ...]
    # The gateway VNets through useRemoteGateways peerings, by name, and their address spaces — both from the
    # spoke's own peerings (remoteVirtualNetwork, remote address space), so a hub VNet in a subscription not read
    # changes nothing here; its gateway is found by its VNet's id (only the gateway itself must be in the inventory).
    hubs: tuple[str, ...]
    hub_prefixes: tuple[str, ...]
    gateways: tuple[VirtualNetworkGateway, ...]  # every gateway of the VNets and hubs, any region
    connections: tuple[GatewayConnection, ...]  # their on-premises connections, any status

    @property
    def live(self) -> tuple[GatewayConnection, ...]:
        """Connections that may carry traffic (NotConnected ones do not; a missing status is given the benefit)."""
        return tuple(c for c in self.connections if c.status != "notconnected")

    @property
    def regional_gateways(self) -> tuple[VirtualNetworkGateway, ...]:
        return tuple(g for g in self.gateways if not g.location or not self.region or g.location == self.region)

    def expressroute(self) -> tuple[GatewayConnection, ...]:
        return tuple(c for c in self.live if c.connection_type == "expressroute")

    def space(self) -> IPSet:
        return IPSet.from_prefixes((*(p for v in self.vnets for p in v.address_prefixes), *self.hub_prefixes))

    def names(self) -> str:
        hubs = f" (hub {', '.join(self.hubs)})" if self.hubs else ""
        return f"{', '.join(v.name for v in self.vnets)}{hubs}"


def _side(label: str, region: str, vnet_ids: Iterable[str], estate: Estate, index: _Index) -> _Side:
    vnets: dict[str, VirtualNetwork] = {}
    hubs: dict[str, str] = {}
    hub_prefixes: list[str] = []
    for vnet_id in vnet_ids:
        vnet = estate.vnets.get(key(vnet_id))
        if vnet is None:
            continue  # the path stages report a VNet that is not in the inventory
        vnets.setdefault(key(vnet.id), vnet)
        for hub_id in vnet.remote_gateway_vnet_ids:
            hubs.setdefault(key(hub_id), hub_id.rstrip("/").rsplit("/", 1)[-1])
        hub_prefixes.extend(vnet.remote_gateway_prefixes)
    hubs = {k: name for k, name in hubs.items() if k not in vnets}
    gateways = tuple(g for k in (*vnets, *hubs) for g in index.gateways_by_vnet.get(k, ()))
    connections = tuple(c for g in gateways for c in index.connections_by_gateway.get(key(g.id), ()))
    return _Side(label, region, tuple(vnets.values()), tuple(hubs.values()), tuple(dict.fromkeys(hub_prefixes)),
                 gateways, connections)


def _describe(connections: Iterable[GatewayConnection], circuits: Mapping[str, ExpressRouteCircuit]) -> str:
    parts = []
    for c in connections:
        circuit = circuits.get(key(c.circuit_id)) if c.circuit_id else None
        via = (f" to ExpressRoute circuit {circuit.name if circuit else _short(c.circuit_id)}"
               if c.connection_type == "expressroute" else " (site-to-site VPN)")
        parts.append(f"connection {c.name}{via}")
    return ", ".join(parts)


def _circuit_names(connections: Iterable[GatewayConnection], circuits: Mapping[str, ExpressRouteCircuit]) -> str:
    names = (getattr(circuits.get(key(c.circuit_id)), "name", "") or _short(c.circuit_id) for c in connections)
    return ", ".join(dict.fromkeys(n for n in names if n)) or "(not named)"


def _short(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def _state(side: _Side) -> str:
    """Why a side has no working path to on-premises, in words."""
    if not side.gateways:
        return "has no virtual network gateway (none in the VNet, none in a hub it uses through useRemoteGateways)"
    regional = side.regional_gateways
    if not regional:
        where = ", ".join(f"{g.name} in {g.location}" for g in side.gateways)
        return f"has gateways only outside {side.region} ({where}), which fail with that region"
    if not side.connections:
        return f"has gateway {', '.join(g.name for g in regional)} but no connection to on-premises"
    return f"has only connections that are not connected ({', '.join(c.name for c in side.connections)})"


def evaluate_readiness(estate: Estate, source_region: str, target_region: str, source_vnet_ids: Iterable[str],
                       target_vnet_ids: Iterable[str], table: Geopolitics | None = None) -> tuple[Readiness, ...]:
    """The readiness warnings of one VM: its source VNets and its recovery VNets, with their regions."""
    connectivity = estate.connectivity
    if not connectivity.gateways:
        return ()
    index = _index(connectivity)
    source = _side(SOURCE, source_region, source_vnet_ids, estate, index)
    target = _side(TARGET, target_region, target_vnet_ids, estate, index)
    if not source.vnets or not target.vnets:
        return ()
    circuits = connectivity.circuits
    out: list[Readiness] = []
    clash = source.space() & target.space()
    target_live = bool(target.live) and bool(target.regional_gateways)
    # Overlapping spaces: a target gateway kept disconnected until failover is the seed's expected state.
    expected_disconnected = bool(clash) and bool(target.regional_gateways) and not target_live
    target_resource = target.vnets[0].id
    source_er, target_er = source.expressroute(), target.expressroute() if target.regional_gateways else ()
    reported_target = False
    if source_er and not target_er and not expected_disconnected:
        reported_target = True
        out.append(Readiness(
            "failover-expressroute", TARGET, target_resource,
            f"source VNet {source.names()} reaches on-premises through {_describe(source_er, circuits)}, but "
            f"recovery VNet {target.names()} in {target_region} "
            + (f"reaches it only through {_describe(target.live, circuits)}: after failover, the application's "
               "on-premises traffic goes over the VPN, not ExpressRoute" if target_live else
               f"{_state(target)}: after failover, clients and on-premises dependencies cannot reach the application")
            + f". Following {_SEED}: connect the target VNet "
            f"(through an ExpressRoute gateway in {target_region}) to ExpressRoute circuit "
            f"{_circuit_names(source_er, circuits)} as well"
            + (f"; its address space overlaps the source's ({', '.join(clash.to_cidrs())}), so keep that connection "
               "disconnected until failover" if clash else "")))
    if target_er and not source_er and source.regional_gateways:
        out.append(Readiness(
            "failover-expressroute", SOURCE, source.vnets[0].id,
            f"recovery VNet {target.names()} is connected to on-premises through {_describe(target_er, circuits)}, "
            f"but source VNet {source.names()} has no ExpressRoute connection: following {_SEED}, the source and "
            "the target VNet each have a connection to the ExpressRoute circuit"))
    if source.live and source.regional_gateways and not target_live and not reported_target \
            and not expected_disconnected:
        out.append(Readiness(
            "failover-connectivity", TARGET, target_resource,
            f"source VNet {source.names()} reaches on-premises through {_describe(source.live, circuits)}, but "
            f"recovery VNet {target.names()} in {target_region} {_state(target)}: after failover, clients and "
            f"on-premises dependencies cannot reach the application. Following {_SEED}: ensure at least a "
            f"site-to-site VPN connection between {target_region} and the on-premises datacenter (an ExpressRoute "
            "connection if much traffic flows)"
            + (f"; the address spaces overlap ({', '.join(clash.to_cidrs())}), so keep it disconnected until "
               "failover" if clash else "")))
    if clash and source.live and target_live:
        shared = {key(c.circuit_id) for c in source_er} & {key(c.circuit_id) for c in target.expressroute()}
        path = (f"both connected to ExpressRoute circuit {', '.join(_short(c) for c in sorted(shared))}" if shared
                else "both connected to on-premises")
        out.append(Readiness(
            "failover-address-clash", TARGET, target_resource,
            f"source VNet {source.names()} and recovery VNet {target.names()} overlap in "
            f"{', '.join(clash.to_cidrs())} and are {path} ({_describe(source.live, circuits)}; "
            f"{_describe(target.live, circuits)}): on-premises cannot reach both ranges at once. Following {_SEED}: "
            "use different address ranges in the two regions, or keep the target connection disconnected until "
            "failover (then disconnect the source; if the source region is down, that disconnect can fail)"))
    out.extend(_geopolitical(source, target, circuits, table or geopolitics()))
    return tuple(out)


def _geopolitical(source: _Side, target: _Side, circuits: Mapping[str, ExpressRouteCircuit],
                  table: Geopolitics) -> list[Readiness]:
    out: list[Readiness] = []
    on_target = {key(c.circuit_id) for c in target.expressroute()}
    for circuit_id in dict.fromkeys(key(c.circuit_id) for c in source.expressroute() if c.circuit_id):
        if circuit_id in on_target:
            continue  # Azure already accepted the target's connection to it
        circuit = circuits.get(circuit_id)
        if circuit is None:
            out.append(Readiness(
                "failover-geopolitical", TARGET, circuit_id,
                f"ExpressRoute circuit {_short(circuit_id)} of source VNet {source.names()} is not in the inventory: "
                f"cannot tell whether its SKU lets recovery VNet {target.names()} in {target.region} connect to it"))
            continue
        if circuit.sku_tier == "premium":
            continue
        if circuit.sku_tier == "local":
            if target.region != source.region:
                out.append(Readiness(
                    "failover-geopolitical", TARGET, circuit.id,
                    f"ExpressRoute circuit {circuit.name} is a Local circuit (peering location "
                    f"{circuit.peering_location or 'unknown'}): Local circuits reach only the one or two Azure regions "
                    f"local to their peering location, so recovery VNet {target.names()} in {target.region} most "
                    "likely cannot connect to it; upgrade it to Standard or Premium, or use a circuit near "
                    f"{target.region}"))
            continue
        where = table.of_location(circuit.peering_location) if circuit.peering_location else ""
        basis = f"peering location {circuit.peering_location}" if where else f"source region {source.region}"
        where = where or table.of_region(source.region)
        there = table.of_region(target.region)
        if not where or not there:
            unknown = ", ".join(x for x, g in ((basis, where), (target.region, there)) if not g)
            out.append(Readiness(
                "failover-geopolitical", TARGET, circuit.id,
                f"cannot tell whether {circuit.sku_tier or 'non-Premium'} ExpressRoute circuit {circuit.name} can "
                f"serve recovery VNet {target.names()} in {target.region}: {unknown} is not in the shipped "
                "ExpressRoute geopolitical table"))
        elif where != there:
            out.append(Readiness(
                "failover-geopolitical", TARGET, circuit.id,
                f"ExpressRoute circuit {circuit.name} ({circuit.sku_tier or 'no'} tier, {basis}: {where}) serves "
                f"source VNet {source.names()}, but recovery VNet {target.names()} is in {target.region} ({there}): "
                "connectivity across geopolitical regions needs the ExpressRoute Premium add-on, so the target "
                f"connection cannot be made. Following {_SEED}: enable Premium on {circuit.name}, or create a circuit "
                f"in {there}"))
    return out


def readiness_for_item(item: ProtectedItem, estate: Estate) -> tuple[Readiness, ...]:
    """The readiness warnings of a protected item: its VM's NIC VNets (source) and its recovery VNets (target)."""
    if not estate.connectivity.gateways:
        return ()
    source_vnets = [parent_id(config.subnet_id) for nic_id in estate.source_nic_ids(item)
                    for config in getattr(estate.nics.get(key(nic_id)), "ip_configurations", ())
                    if config.subnet_id]
    target_vnets = [n.recovery_vnet_id or item.recovery_vnet_id for n in item.recovery_nics] or [item.recovery_vnet_id]
    return evaluate_readiness(estate, item.source_region, item.target_region, source_vnets,
                              [v for v in target_vnets if v])
