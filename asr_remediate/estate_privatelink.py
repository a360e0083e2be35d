"""ARM / Resource Graph JSON → the Private Link part of the model: private endpoints, private DNS zones (from their
virtual network links) and Recovery Services vaults.

Shapes: ``PrivateEndpointGet.json`` (Microsoft.Network 2025-05-01), ``VirtualNetworkLinkGet.json`` (Microsoft.Network
privatedns 2024-06-01) and ``GETVault.json`` (Microsoft.RecoveryServices 2025-02-01), all in Azure/azure-rest-api-specs;
copies in tests/data/arm/. Used by ``estate.build_estate``: like the firewall parts, resources are collected first
and parsed once all are in (a private endpoint's IPs are also read from its NICs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from .armjson import optional_text, properties_of
from .ipset import is_ipv4_prefix
from .model import (
    NetworkInterface,
    PrivateDnsZone,
    PrivateEndpoint,
    PrivateLinkConnection,
    PrivateLinks,
    RecoveryVault,
    StorageAccount,
    key,
    parent_id,
)

PRIVATE_ENDPOINT_TYPE = "microsoft.network/privateendpoints"
PRIVATE_DNS_ZONE_TYPE = "microsoft.network/privatednszones"
DNS_LINK_TYPE = "microsoft.network/privatednszones/virtualnetworklinks"
VAULT_TYPE = "microsoft.recoveryservices/vaults"
STORAGE_ACCOUNT_TYPE = "microsoft.storage/storageaccounts"
PRIVATE_LINK_TYPES = frozenset({PRIVATE_ENDPOINT_TYPE, PRIVATE_DNS_ZONE_TYPE, DNS_LINK_TYPE, VAULT_TYPE,
                                STORAGE_ACCOUNT_TYPE})

Mark = Callable[[str, str, str], None]


class PrivateLinkShapeError(ValueError):
    """A Private Link resource whose JSON is not ARM's shape (caught per resource by build_estate)."""


_props = properties_of


def _list(value: Any, what: str) -> list[Any]:
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise PrivateLinkShapeError(f"{what} is not a list")
    return value


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PrivateLinkShapeError(f"{what} is not an object")
    return value


def _text(value: Any, what: str) -> str:
    return optional_text(value, what, PrivateLinkShapeError)


def _ref(value: Any, what: str) -> str:
    return _text(_mapping(value, what).get("id"), f"{what}.id")


def _ip(value: Any, what: str) -> str:
    address = _text(value, what).strip()
    if address and (not is_ipv4_prefix(address) or "/" in address):
        if ":" in address:
            return ""  # IPv6: not evaluated, like IPv6 NIC configurations
        raise PrivateLinkShapeError(f"{what} {address[:60]!r} is not an IPv4 address")
    return address


def _connection(entry: Any, target_field: str, what: str) -> PrivateLinkConnection:
    props = _props(_mapping(entry, what))
    if target_field == "privateEndpoint":
        target = _ref(props.get("privateEndpoint"), f"{what}.privateEndpoint")
    else:
        target = _text(props.get(target_field), f"{what}.{target_field}")
    state = _mapping(props.get("privateLinkServiceConnectionState"), f"{what}.privateLinkServiceConnectionState")
    groups = tuple(_text(g, f"{what}.groupIds[]").lower() for g in _list(props.get("groupIds"), f"{what}.groupIds"))
    return PrivateLinkConnection(target, groups, _text(state.get("status"), f"{what} status").lower())


def parse_private_endpoint(resource: Mapping[str, Any]) -> PrivateEndpoint:
    """A private endpoint: its subnet, connections (automatic and manual), IPs and FQDNs."""
    props = _props(resource)
    connections = tuple(
        _connection(entry, "privateLinkServiceId", field)
        for field in ("privateLinkServiceConnections", "manualPrivateLinkServiceConnections")
        for entry in _list(props.get(field), field))
    ips: dict[str, None] = {}
    fqdns: dict[str, None] = {}
    for config in _list(props.get("customDnsConfigs"), "customDnsConfigs"):
        config = _mapping(config, "customDnsConfigs[]")
        fqdn = _text(config.get("fqdn"), "customDnsConfigs[].fqdn").strip().lower()
        if fqdn:
            fqdns[fqdn] = None
        for address in _list(config.get("ipAddresses"), "customDnsConfigs[].ipAddresses"):
            if ip := _ip(address, "customDnsConfigs[].ipAddresses[]"):
                ips[ip] = None
    for config in _list(props.get("ipConfigurations"), "ipConfigurations"):
        if ip := _ip(_props(_mapping(config, "ipConfigurations[]")).get("privateIPAddress"),
                     "ipConfigurations[].privateIPAddress"):
            ips[ip] = None
    nics = tuple(r for r in (_ref(n, "networkInterfaces[]") for n in _list(props.get("networkInterfaces"),
                                                                           "networkInterfaces")) if r)
    return PrivateEndpoint(
        id=str(resource["id"]),
        name=_text(resource.get("name"), "name"),
        location=_text(resource.get("location"), "location").lower(),
        subnet_id=_ref(props.get("subnet"), "subnet"),
        connections=connections,
        private_ips=tuple(ips),
        nic_ids=nics,
        fqdns=tuple(fqdns),
    )


def parse_vault(resource: Mapping[str, Any]) -> RecoveryVault:
    """A Recovery Services vault: its private endpoint connections and privateEndpointStateForSiteRecovery."""
    props = _props(resource)
    return RecoveryVault(
        id=str(resource["id"]),
        name=_text(resource.get("name"), "name"),
        location=_text(resource.get("location"), "location").lower(),
        connections=tuple(_connection(entry, "privateEndpoint", "privateEndpointConnections[]")
                          for entry in _list(props.get("privateEndpointConnections"), "privateEndpointConnections")),
        site_recovery_private_endpoints=_text(props.get("privateEndpointStateForSiteRecovery"),
                                              "privateEndpointStateForSiteRecovery").lower(),
    )


def parse_storage_account(resource: Mapping[str, Any]) -> StorageAccount:
    """A storage account's network rules (StorageAccountGetProperties.json, Microsoft.Storage 2025-01-01)."""
    props = _props(resource)
    acls = _mapping(props.get("networkAcls"), "networkAcls")
    subnets = frozenset(
        key(_text(_mapping(rule, "virtualNetworkRules[]").get("id"), "virtualNetworkRules[].id"))
        for rule in _list(acls.get("virtualNetworkRules"), "virtualNetworkRules")
        if _text(_mapping(rule, "virtualNetworkRules[]").get("action") or "Allow", "action").lower() == "allow")
    ips = tuple(_text(_mapping(rule, "ipRules[]").get("value"), "ipRules[].value")
                for rule in _list(acls.get("ipRules"), "ipRules"))
    return StorageAccount(
        id=str(resource["id"]),
        name=(_text(resource.get("name"), "name") or str(resource["id"]).rstrip("/").rsplit("/", 1)[-1]).lower(),
        public_network_access=_text(props.get("publicNetworkAccess"), "publicNetworkAccess").lower(),
        default_action=(_text(acls.get("defaultAction"), "networkAcls.defaultAction") or "Allow").lower(),
        subnet_rules=frozenset(s for s in subnets if s),
        ip_rules=ips,
    )


def parse_dns_link(resource: Mapping[str, Any]) -> str:
    """The VNet a private DNS zone's virtual network link links (its id, original spelling; "" when none)."""
    return _ref(_props(resource).get("virtualNetwork"), "virtualNetwork")


class PrivateLinkParts:
    """Private Link resources collected during build_estate, parsed once all are in."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[str, Mapping[str, Any]]] = {}

    def collect(self, rtype: str, rid: str, resource: Mapping[str, Any]) -> None:
        self.docs[key(rid)] = (rtype, resource)

    def build(self, mark: Mark, nics: Mapping[str, NetworkInterface],
              failures: tuple[type[Exception], ...]) -> PrivateLinks:
        endpoints: dict[str, PrivateEndpoint] = {}
        vaults: dict[str, RecoveryVault] = {}
        accounts: dict[str, StorageAccount] = {}
        zone_names: dict[str, tuple[str, str]] = {}  # zone key → (id, name)
        links: dict[str, set[str]] = {}
        for k, (rtype, doc) in sorted(self.docs.items()):
            rid = str(doc["id"])
            try:
                if rtype == PRIVATE_ENDPOINT_TYPE:
                    endpoint = parse_private_endpoint(doc)
                    extra = [c.private_ip for n in endpoint.nic_ids if (nic := nics.get(key(n))) is not None
                             for c in nic.ip_configurations if c.private_ip]
                    if extra:
                        merged = tuple(dict.fromkeys((*endpoint.private_ips, *extra)))
                        endpoint = PrivateEndpoint(endpoint.id, endpoint.name, endpoint.location, endpoint.subnet_id,
                                                   endpoint.connections, merged, endpoint.nic_ids, endpoint.fqdns)
                    endpoints[k] = endpoint
                elif rtype == VAULT_TYPE:
                    vaults[k] = parse_vault(doc)
                elif rtype == STORAGE_ACCOUNT_TYPE:
                    accounts[k] = parse_storage_account(doc)
                elif rtype == PRIVATE_DNS_ZONE_TYPE:
                    zone_names.setdefault(k, (rid, _text(doc.get("name"), "name") or rid.rsplit("/", 1)[-1]))
                elif rtype == DNS_LINK_TYPE:
                    zone_id = parent_id(rid)
                    zone_names.setdefault(key(zone_id), (zone_id, zone_id.rstrip("/").rsplit("/", 1)[-1]))
                    vnet = parse_dns_link(doc)
                    if vnet:
                        links.setdefault(key(zone_id), set()).add(key(vnet))
            except failures as error:
                reason = str(error) if isinstance(error, PrivateLinkShapeError) else \
                    f"unexpected shape ({type(error).__name__}: {error})"
                if rtype == DNS_LINK_TYPE:
                    mark(parent_id(rid), PRIVATE_DNS_ZONE_TYPE, f"virtual network link: {reason}")
                else:
                    mark(rid, rtype, reason)
        zones = {k: PrivateDnsZone(zid, name.lower(), frozenset(links.get(k, ()))) for k, (zid, name) in
                 zone_names.items()}
        return PrivateLinks(MappingProxyType(endpoints), MappingProxyType(zones), MappingProxyType(vaults),
                            MappingProxyType(accounts))


def without(links: PrivateLinks, unreadable: Iterable[str]) -> PrivateLinks:
    """``links`` less the resources that could not be read (they are in ``Estate.unreadable`` instead)."""
    gone = set(unreadable)
    return PrivateLinks(MappingProxyType({k: v for k, v in links.endpoints.items() if k not in gone}),
                        MappingProxyType({k: v for k, v in links.dns_zones.items() if k not in gone}),
                        MappingProxyType({k: v for k, v in links.vaults.items() if k not in gone}),
                        MappingProxyType({k: v for k, v in links.storage_accounts.items() if k not in gone}))


__all__ = ["PRIVATE_LINK_TYPES", "PrivateLinkParts", "parse_dns_link", "parse_private_endpoint",
           "parse_storage_account", "parse_vault", "without"]
