"""ARM / Resource Graph JSON → the typed model. The only place that knows ARM's JSON shapes.

Accepts what ARM GETs and Resource Graph rows look like (``properties`` wrapped, ``type`` in any case), child
resources given separately (subnets, security rules, routes) and the three list envelopes (bare list,
``{"value": [...]}``, ``{"data": [...]}``). Ids are matched case-insensitively; Site Recovery lower-cases them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .ipset import is_ipv4_prefix, is_ipv6_prefix
from .jsonfile import read_json_file
from .model import (
    Estate,
    IpConfiguration,
    NetworkInterface,
    NetworkSecurityGroup,
    ProtectedItem,
    RecoveryNic,
    Route,
    RouteTable,
    SecurityRule,
    ServiceEndpoint,
    Subnet,
    VirtualMachine,
    VirtualNetwork,
    key,
    parent_id,
)

VM_TYPE = "microsoft.compute/virtualmachines"
NIC_TYPE = "microsoft.network/networkinterfaces"
VNET_TYPE = "microsoft.network/virtualnetworks"
SUBNET_TYPE = "microsoft.network/virtualnetworks/subnets"
NSG_TYPE = "microsoft.network/networksecuritygroups"
RULE_TYPE = "microsoft.network/networksecuritygroups/securityrules"
ROUTE_TABLE_TYPE = "microsoft.network/routetables"
ROUTE_TYPE = "microsoft.network/routetables/routes"
EFFECTIVE_ROUTES_TYPE = "microsoft.network/networkinterfaces/effectiveroutetable"
PROTECTED_ITEM_TYPE = (
    "microsoft.recoveryservices/vaults/replicationfabrics/replicationprotectioncontainers/replicationprotecteditems"
)


class EstateError(ValueError):
    """The estate JSON is not something the bot can read; the message says which resource and why."""


def _props(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    props = resource.get("properties")
    return props if isinstance(props, Mapping) else resource


def _ref(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return ""


def _strings(single: Any, many: Any) -> tuple[str, ...]:
    if isinstance(many, list) and many:
        return tuple(str(item) for item in many)
    if single not in (None, ""):
        return (str(single),)
    return ()


def _ipv4_prefixes(values: Any, what: str) -> tuple[str, ...]:
    """IPv4 address-space prefixes, checked here once; IPv6 ones (dual-stack VNets) are dropped: ASR's flows are
    IPv4. A value that is neither is an EstateError naming ``what``."""
    if isinstance(values, str):
        values = [values]
    result = []
    for value in values or []:
        text = str(value).strip()
        if is_ipv4_prefix(text):
            result.append(text)
        elif not is_ipv6_prefix(text):
            raise EstateError(f"{what} has an address prefix that is not an IP prefix: {text!r}")
    return tuple(result)


def _tags(resource: Mapping[str, Any]) -> Mapping[str, str]:
    tags = resource.get("tags")
    if not isinstance(tags, Mapping):
        return MappingProxyType({})
    return MappingProxyType({str(k): str(v) for k, v in tags.items()})


def parse_security_rule(rule: Mapping[str, Any], *, is_default: bool = False) -> SecurityRule:
    props = _props(rule)
    name = str(rule.get("name") or "")
    try:
        priority = int(props["priority"])
    except (KeyError, TypeError, ValueError):
        raise EstateError(f"security rule {name or rule.get('id')!r} has no valid priority") from None
    return SecurityRule(
        name=name,
        priority=priority,
        direction=str(props.get("direction") or "").lower(),
        access=str(props.get("access") or "").lower(),
        protocol=str(props.get("protocol") or "*").lower(),
        source_prefixes=_strings(props.get("sourceAddressPrefix"), props.get("sourceAddressPrefixes")),
        source_ports=_strings(props.get("sourcePortRange"), props.get("sourcePortRanges")) or ("*",),
        destination_prefixes=_strings(props.get("destinationAddressPrefix"), props.get("destinationAddressPrefixes")),
        destination_ports=_strings(props.get("destinationPortRange"), props.get("destinationPortRanges")) or ("*",),
        source_asgs=tuple(_ref(a) for a in props.get("sourceApplicationSecurityGroups") or [] if _ref(a)),
        destination_asgs=tuple(_ref(a) for a in props.get("destinationApplicationSecurityGroups") or [] if _ref(a)),
        description=str(props.get("description") or ""),
        id=str(rule.get("id") or ""),
        is_default=is_default,
    )


def _default(name: str, priority: int, direction: str, access: str, source: str, destination: str) -> SecurityRule:
    return SecurityRule(
        name=name,
        priority=priority,
        direction=direction,
        access=access,
        protocol="*",
        source_prefixes=(source,),
        destination_prefixes=(destination,),
        is_default=True,
    )


# Azure's built-in defaults, used when an NSG document omits defaultSecurityRules (Resource Graph often does).
BUILTIN_DEFAULT_RULES: tuple[SecurityRule, ...] = (
    _default("AllowVnetInBound", 65000, "inbound", "allow", "VirtualNetwork", "VirtualNetwork"),
    _default("AllowAzureLoadBalancerInBound", 65001, "inbound", "allow", "AzureLoadBalancer", "*"),
    _default("DenyAllInBound", 65500, "inbound", "deny", "*", "*"),
    _default("AllowVnetOutBound", 65000, "outbound", "allow", "VirtualNetwork", "VirtualNetwork"),
    _default("AllowInternetOutBound", 65001, "outbound", "allow", "*", "Internet"),
    _default("DenyAllOutBound", 65500, "outbound", "deny", "*", "*"),
)


def parse_nsg(resource: Mapping[str, Any]) -> NetworkSecurityGroup:
    props = _props(resource)
    rules = tuple(parse_security_rule(r) for r in props.get("securityRules") or [])
    defaults = tuple(parse_security_rule(r, is_default=True) for r in props.get("defaultSecurityRules") or [])
    return NetworkSecurityGroup(
        id=str(resource["id"]),
        name=str(resource.get("name") or ""),
        location=str(resource.get("location") or "").lower(),
        rules=rules,
        default_rules=defaults or BUILTIN_DEFAULT_RULES,
        tags=_tags(resource),
        etag=str(resource.get("etag") or ""),
    )


def parse_route(route: Mapping[str, Any]) -> Route:
    props = _props(route)
    return Route(
        name=str(route.get("name") or ""),
        address_prefix=str(props.get("addressPrefix") or ""),
        next_hop_type=str(props.get("nextHopType") or ""),
        next_hop_ip=str(props.get("nextHopIpAddress") or ""),
        id=str(route.get("id") or ""),
    )


def parse_route_table(resource: Mapping[str, Any]) -> RouteTable:
    props = _props(resource)
    return RouteTable(
        id=str(resource["id"]),
        name=str(resource.get("name") or ""),
        location=str(resource.get("location") or "").lower(),
        routes=tuple(parse_route(r) for r in props.get("routes") or []),
        disable_bgp_route_propagation=bool(props.get("disableBgpRoutePropagation") or False),
        tags=_tags(resource),
        etag=str(resource.get("etag") or ""),
    )


def parse_bgp_routes(resource: Mapping[str, Any]) -> tuple[Route, ...]:
    """BGP-learned entries of a NIC's effective route table (``POST …/effectiveRouteTable``, ``value``).

    Default and User entries are left out: the engine computes system routes and reads the route table itself,
    so a planned user route can be checked against the BGP routes it must beat.
    """
    entries = _props(resource).get("value")
    if entries is None:
        entries = resource.get("value") or []
    routes = []
    for entry in entries:
        if str(entry.get("source") or "").lower() != "virtualnetworkgateway":
            continue
        ips = entry.get("nextHopIpAddress") or []
        for prefix in entry.get("addressPrefix") or []:
            routes.append(Route(name=f"BGP {prefix}", address_prefix=str(prefix),
                                next_hop_type=str(entry.get("nextHopType") or ""),
                                next_hop_ip=str(ips[0]) if ips else ""))
    return tuple(routes)


def parse_subnet(resource: Mapping[str, Any]) -> Subnet:
    props = _props(resource)
    endpoints = tuple(
        ServiceEndpoint(str(e.get("service") or ""), tuple(str(loc).lower() for loc in e.get("locations") or []))
        for e in (_props(x) for x in props.get("serviceEndpoints") or [])
    )
    return Subnet(
        id=str(resource.get("id") or ""),
        name=str(resource.get("name") or ""),
        address_prefixes=_ipv4_prefixes(_strings(props.get("addressPrefix"), props.get("addressPrefixes")),
                                        f"subnet {resource.get('name') or ''}".strip()),
        nsg_id=_ref(props.get("networkSecurityGroup")),
        route_table_id=_ref(props.get("routeTable")),
        service_endpoints=endpoints,
    )


def parse_vnet(resource: Mapping[str, Any], extra_subnets: Iterable[Subnet] = ()) -> VirtualNetwork:
    props = _props(resource)
    subnets = {key(s.id): s for s in (parse_subnet(x) for x in props.get("subnets") or [])}
    subnets.update({key(s.id): s for s in extra_subnets})
    peered: list[str] = []
    for peering in props.get("virtualNetworkPeerings") or []:
        peering_props = _props(peering)
        if str(peering_props.get("peeringState") or "Connected").lower() != "connected":
            continue
        space = peering_props.get("remoteVirtualNetworkAddressSpace") or peering_props.get("remoteAddressSpace") or {}
        peered.extend(_ipv4_prefixes(space.get("addressPrefixes"), "a peering's remote address space"))
    space = props.get("addressSpace") or {}
    return VirtualNetwork(
        id=str(resource["id"]),
        name=str(resource.get("name") or ""),
        location=str(resource.get("location") or "").lower(),
        address_prefixes=_ipv4_prefixes(space.get("addressPrefixes"), "the address space"),
        subnets=tuple(subnets.values()),
        peered_address_prefixes=tuple(peered),
        has_gateway_subnet=any(s.name.lower() == "gatewaysubnet" for s in subnets.values()),
    )


def parse_nic(resource: Mapping[str, Any]) -> NetworkInterface:
    props = _props(resource)
    configs = []
    for config in props.get("ipConfigurations") or []:
        cprops = _props(config)
        if str(cprops.get("privateIPAddressVersion") or "IPv4").lower() != "ipv4":
            continue
        address = str(cprops.get("privateIPAddress") or "").split("/")[0].strip()
        if address and not is_ipv4_prefix(address):
            raise EstateError(f"IP configuration {config.get('name') or ''} has an invalid private IP {address!r}")
        configs.append(
            IpConfiguration(
                name=str(config.get("name") or ""),
                private_ip=address,
                subnet_id=_ref(cprops.get("subnet")),
                primary=bool(cprops.get("primary") or False),
                asg_ids=tuple(_ref(a) for a in cprops.get("applicationSecurityGroups") or [] if _ref(a)),
            )
        )
    return NetworkInterface(
        id=str(resource["id"]),
        name=str(resource.get("name") or ""),
        location=str(resource.get("location") or "").lower(),
        ip_configurations=tuple(configs),
        nsg_id=_ref(props.get("networkSecurityGroup")),
        vm_id=_ref(props.get("virtualMachine")),
    )


def parse_vm(resource: Mapping[str, Any]) -> VirtualMachine:
    props = _props(resource)
    profile = props.get("networkProfile") or {}
    return VirtualMachine(
        id=str(resource["id"]),
        name=str(resource.get("name") or ""),
        location=str(resource.get("location") or "").lower(),
        nic_ids=tuple(_ref(n) for n in profile.get("networkInterfaces") or [] if _ref(n)),
        tags=_tags(resource),
    )


def parse_protected_item(resource: Mapping[str, Any]) -> ProtectedItem | None:
    """An A2A protected item, or None for other replication scenarios (Hyper-V, VMware)."""
    props = _props(resource)
    details = props.get("providerSpecificDetails") or {}
    if str(details.get("instanceType") or "").lower() != "a2a":
        return None
    nics = []
    for nic in details.get("vmNics") or []:
        subnets = tuple(
            str(c.get("recoverySubnetName")) for c in nic.get("ipConfigs") or [] if c.get("recoverySubnetName")
        )
        nics.append(
            RecoveryNic(
                source_nic_id=str(nic.get("sourceNicArmId") or ""),
                recovery_vnet_id=str(nic.get("recoveryVMNetworkId") or ""),
                recovery_subnet_names=subnets,
                recovery_nsg_id=str(nic.get("recoveryNetworkSecurityGroupId") or ""),
            )
        )
    encryption = str(details.get("vmEncryptionType") or "NotEncrypted")
    return ProtectedItem(
        id=str(resource.get("id") or ""),
        name=str(props.get("friendlyName") or resource.get("name") or ""),
        vm_id=str(details.get("fabricObjectId") or ""),
        source_region=str(details.get("primaryFabricLocation") or "").lower(),
        target_region=str(details.get("recoveryFabricLocation") or "").lower(),
        protection_state=str(props.get("protectionState") or ""),
        active_location=str(props.get("activeLocation") or "Primary"),
        encrypted=encryption.lower() not in ("notencrypted", ""),
        recovery_nics=tuple(nics),
        recovery_vnet_id=str(details.get("selectedRecoveryAzureNetworkId") or ""),
    )


def unwrap(document: Any) -> list[Mapping[str, Any]]:
    """The list of resources from a bare list or a ``value``/``data`` envelope."""
    if isinstance(document, Mapping):
        for envelope in ("value", "data"):
            if isinstance(document.get(envelope), list):
                document = document[envelope]
                break
        else:
            raise EstateError("expected a JSON list of ARM resources, or an object with a 'value' or 'data' list")
    if not isinstance(document, list):
        raise EstateError("expected a JSON list of ARM resources")
    for index, item in enumerate(document):
        if not isinstance(item, Mapping):
            raise EstateError(f"item {index} is not a JSON object")
    return document


def build_estate(resources: Iterable[Mapping[str, Any]]) -> Estate:
    """Parse ARM resources (any order, any id casing) into an ``Estate``."""
    vms: dict[str, VirtualMachine] = {}
    nics: dict[str, NetworkInterface] = {}
    vnet_docs: dict[str, Mapping[str, Any]] = {}
    loose_subnets: dict[str, list[Subnet]] = {}
    nsg_docs: dict[str, dict[str, Any]] = {}
    loose_rules: dict[str, list[Mapping[str, Any]]] = {}
    rt_docs: dict[str, dict[str, Any]] = {}
    loose_routes: dict[str, list[Mapping[str, Any]]] = {}
    items: dict[str, ProtectedItem] = {}
    bgp: dict[str, tuple[Route, ...]] = {}
    read_errors: dict[str, str] = {}
    for index, resource in enumerate(resources):
        rtype = str(resource.get("type") or "").lower()
        rid = resource.get("id")
        if not isinstance(rid, str) or not rid.strip():
            raise EstateError(f"resource {index} ({rtype or 'no type'}) has no id")
        try:
            if rtype == VM_TYPE:
                vms[key(rid)] = parse_vm(resource)
            elif rtype == NIC_TYPE:
                nics[key(rid)] = parse_nic(resource)
            elif rtype == VNET_TYPE:
                vnet_docs[key(rid)] = resource
            elif rtype == SUBNET_TYPE:
                loose_subnets.setdefault(key(parent_id(rid)), []).append(parse_subnet(resource))
            elif rtype == NSG_TYPE:
                nsg_docs[key(rid)] = dict(resource)
            elif rtype == RULE_TYPE:
                loose_rules.setdefault(key(parent_id(rid)), []).append(resource)
            elif rtype == ROUTE_TABLE_TYPE:
                rt_docs[key(rid)] = dict(resource)
            elif rtype == ROUTE_TYPE:
                loose_routes.setdefault(key(parent_id(rid)), []).append(resource)
            elif rtype == EFFECTIVE_ROUTES_TYPE:
                failure = _props(resource).get("error")
                if failure:
                    read_errors[key(rid)] = str(failure)
                else:
                    bgp[key(rid.rsplit("/", 1)[0])] = parse_bgp_routes(resource)
            elif rtype == PROTECTED_ITEM_TYPE:
                item = parse_protected_item(resource)
                if item is not None:
                    items[key(item.id)] = item
        except EstateError as error:
            raise EstateError(f"{rid}: {error}") from None
        except (AttributeError, TypeError, ValueError) as error:
            raise EstateError(f"{rid}: unexpected shape for {rtype or 'resource'} ({error})") from None
    # Parents are parsed once all their children are collected: errors must still name the resource.
    nsgs: dict[str, NetworkSecurityGroup] = {}
    for k, doc in nsg_docs.items():
        with _naming(doc):
            nsgs[k] = _merge_children(parse_nsg, doc, "securityRules", loose_rules.get(k, []))
    tables: dict[str, RouteTable] = {}
    for k, doc in rt_docs.items():
        with _naming(doc):
            tables[k] = _merge_children(parse_route_table, doc, "routes", loose_routes.get(k, []))
    vnets: dict[str, VirtualNetwork] = {}
    for k, vnet_doc in vnet_docs.items():
        with _naming(vnet_doc):
            vnets[k] = parse_vnet(vnet_doc, loose_subnets.get(k, []))
    subnets = {key(s.id): s for v in vnets.values() for s in v.subnets}
    return Estate(
        protected_items=tuple(items[k] for k in sorted(items)),
        vms=MappingProxyType(vms),
        nics=MappingProxyType(nics),
        vnets=MappingProxyType(vnets),
        subnets=MappingProxyType(subnets),
        nsgs=MappingProxyType(nsgs),
        route_tables=MappingProxyType(tables),
        bgp_routes=MappingProxyType(bgp),
        read_errors=MappingProxyType(read_errors),
    )


@contextmanager
def _naming(doc: Mapping[str, Any]) -> Iterator[None]:
    """Turn a parse failure of ``doc`` into an EstateError that names it, as the collecting loop does."""
    rid = doc.get("id")
    try:
        yield
    except EstateError as error:
        raise EstateError(f"{rid}: {error}") from None
    except (AttributeError, TypeError, ValueError) as error:
        rtype = str(doc.get("type") or "").lower() or "resource"
        raise EstateError(f"{rid}: unexpected shape for {rtype} ({error})") from None


def _merge_children(parse: Any, doc: dict[str, Any], field: str, children: list[Mapping[str, Any]]) -> Any:
    """Fold child resources given separately (rules, routes) into their parent, children winning by name."""
    if not children:
        return parse(doc)
    props = dict(_props(doc))
    by_name = {str(c.get("name") or "").lower(): c for c in props.get(field) or []}
    by_name.update({str(c.get("name") or "").lower(): c for c in children})
    props[field] = list(by_name.values())
    return parse({**doc, "properties": props})


def load_estate_file(path: str | Path) -> Estate:
    document = read_json_file(path, "estate file", EstateError)
    try:
        return build_estate(unwrap(document))
    except EstateError as error:
        raise EstateError(f"{path}: {error}") from None
