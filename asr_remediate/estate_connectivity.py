"""ARM / Resource Graph JSON → the on-premises connectivity part of the model: virtual network gateways, gateway
connections and ExpressRoute circuits (failover readiness, issue 12).

Shapes: ``VirtualNetworkGatewayGet.json``, ``VirtualNetworkGatewayConnectionGet.json`` and
``ExpressRouteCircuitGet.json`` (Azure/azure-rest-api-specs, Microsoft.Network stable 2025-05-01; copies in
tests/data/arm/). A circuit's ``sku`` is a top-level field (not under ``properties``), which is why the inventory
projects Resource Graph's ``sku`` column. Used by ``estate.build_estate`` like the firewall and Private Link parts:
resources are collected, then parsed; one that cannot be parsed is marked unreadable and left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from .armjson import optional_text, properties_of
from .model import Connectivity, ExpressRouteCircuit, GatewayConnection, VirtualNetworkGateway, key, parent_id

GATEWAY_TYPE = "microsoft.network/virtualnetworkgateways"
CONNECTION_TYPE = "microsoft.network/connections"
CIRCUIT_TYPE = "microsoft.network/expressroutecircuits"
CONNECTIVITY_TYPES = frozenset({GATEWAY_TYPE, CONNECTION_TYPE, CIRCUIT_TYPE})

# The enums of the Network RP spec (virtualNetworkGateway.json, expressRouteCircuit.json, 2025-05-01).
GATEWAY_TYPES = frozenset({"vpn", "expressroute", "localgateway"})
CONNECTION_TYPES = frozenset({"ipsec", "vnet2vnet", "expressroute", "vpnclient"})
CONNECTION_STATUSES = frozenset({"unknown", "connecting", "connected", "notconnected", ""})
CIRCUIT_TIERS = frozenset({"standard", "premium", "basic", "local"})

Mark = Callable[[str, str, str], None]


class ConnectivityShapeError(ValueError):
    """A gateway, connection or circuit whose JSON is not ARM's shape (caught per resource by build_estate)."""


_props = properties_of


def _text(value: Any, what: str) -> str:
    return optional_text(value, what, ConnectivityShapeError).strip()


def _ref(value: Any, what: str) -> str:
    if value is None or value == {}:
        return ""
    if not isinstance(value, Mapping):
        raise ConnectivityShapeError(f"{what} is not a resource reference {{\"id\": ...}}")
    return _text(value.get("id"), f"{what}.id")


def _choice(value: Any, what: str, choices: frozenset[str]) -> str:
    text = _text(value, what).lower()
    if text not in choices:
        raise ConnectivityShapeError(f"{what} {text[:40]!r} is not one of {', '.join(sorted(c for c in choices if c))}")
    return text


def _header(resource: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(resource["id"]), _text(resource.get("name"), "name"),
            _text(resource.get("location"), "location").lower().replace(" ", ""))


def parse_gateway(resource: Mapping[str, Any]) -> VirtualNetworkGateway:
    props = _props(resource)
    configs = props.get("ipConfigurations") or []
    if not isinstance(configs, list):
        raise ConnectivityShapeError("ipConfigurations is not a list")
    subnets = [_ref(_props(c).get("subnet"), "ipConfigurations[].subnet") for c in configs if isinstance(c, Mapping)]
    subnet = next((s for s in subnets if s), "")
    rid, name, location = _header(resource)
    return VirtualNetworkGateway(rid, name, location, _choice(props.get("gatewayType"), "gatewayType", GATEWAY_TYPES),
                                 parent_id(subnet) if subnet else "")


def parse_connection(resource: Mapping[str, Any]) -> GatewayConnection:
    props = _props(resource)
    rid, name, location = _header(resource)
    return GatewayConnection(
        rid, name, location,
        connection_type=_choice(props.get("connectionType"), "connectionType", CONNECTION_TYPES),
        gateway_id=_ref(props.get("virtualNetworkGateway1"), "virtualNetworkGateway1"),
        circuit_id=_ref(props.get("peer"), "peer"),
        local_gateway_id=_ref(props.get("localNetworkGateway2"), "localNetworkGateway2"),
        status=_choice(props.get("connectionStatus"), "connectionStatus", CONNECTION_STATUSES),
    )


def parse_circuit(resource: Mapping[str, Any]) -> ExpressRouteCircuit:
    props = _props(resource)
    sku = resource.get("sku") or props.get("sku") or {}
    provider = props.get("serviceProviderProperties") or {}
    if not isinstance(sku, Mapping) or not isinstance(provider, Mapping):
        raise ConnectivityShapeError("sku and serviceProviderProperties must be objects")
    tier = _text(sku.get("tier"), "sku.tier").lower()
    if tier and tier not in CIRCUIT_TIERS:
        raise ConnectivityShapeError(f"sku.tier {tier[:40]!r} is not Standard, Premium, Basic or Local")
    rid, name, location = _header(resource)
    return ExpressRouteCircuit(rid, name, location, tier,
                               peering_location=_text(provider.get("peeringLocation"), "peeringLocation"),
                               provider=_text(provider.get("serviceProviderName"), "serviceProviderName"))


class ConnectivityParts:
    """Gateways, connections and circuits collected during build_estate."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[str, Mapping[str, Any]]] = {}

    def collect(self, rtype: str, rid: str, resource: Mapping[str, Any]) -> None:
        self.docs[key(rid)] = (rtype, resource)

    def build(self, mark: Mark, failures: tuple[type[Exception], ...]) -> Connectivity:
        parsed: dict[str, dict[str, Any]] = {t: {} for t in CONNECTIVITY_TYPES}
        parsers: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            GATEWAY_TYPE: parse_gateway, CONNECTION_TYPE: parse_connection, CIRCUIT_TYPE: parse_circuit}
        for k, (rtype, doc) in sorted(self.docs.items()):
            try:
                parsed[rtype][k] = parsers[rtype](doc)
            except failures as error:
                mark(str(doc["id"]), rtype, " ".join(str(error).split())[:300] or type(error).__name__)
        return Connectivity(MappingProxyType(parsed[GATEWAY_TYPE]), MappingProxyType(parsed[CONNECTION_TYPE]),
                            MappingProxyType(parsed[CIRCUIT_TYPE]))
