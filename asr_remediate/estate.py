"""ARM / Resource Graph JSON → the typed model. The only place that knows ARM's JSON shapes.

Accepts what ARM GETs and Resource Graph rows look like (``properties`` wrapped, ``type`` in any case), child
resources given separately (subnets, security rules, routes) and the three list envelopes (bare list,
``{"value": [...]}``, ``{"data": [...]}``). Ids are matched case-insensitively; Site Recovery lower-cases them.

A document that is not a list of objects with ids is an ``EstateError``. One malformed resource in it is not: it
is recorded in ``Estate.unreadable`` with the reason (the VMs whose path uses it are then ``unknown``) and the rest
is parsed, so one bad rule in one subscription never fails the scan of every other VM.

The parsed model keeps one copy of the strings that repeat across resources (``sys.intern``: locations, references,
rule names, prefixes, ports, descriptions, next hops): JSON decoding makes a new string for every value, and at
10,000 VMs the estate otherwise holds ~85 MB of them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from sys import intern
from types import MappingProxyType
from typing import Any

from .armjson import properties_of
from .estate_connectivity import CONNECTIVITY_TYPES, ConnectivityParts
from .estate_privatelink import PRIVATE_LINK_TYPES, PrivateLinkParts, without
from .ipset import PrefixError, is_ipv4_prefix, is_ipv6_prefix, parse_ipv4_range
from .jsonfile import read_json_file
from .model import (
    FAILBACK,
    FORWARD,
    AdminAddress,
    AdminRule,
    AzureFirewall,
    Estate,
    FirewallPolicy,
    FirewallRule,
    FirewallRuleCollection,
    HealthError,
    IpConfiguration,
    IpGroup,
    ItemHealth,
    NetworkInterface,
    NetworkSecurityGroup,
    ProtectedItem,
    RecoveryNic,
    Route,
    RouteTable,
    RuleCollectionGroup,
    SecurityRule,
    ServiceEndpoint,
    Subnet,
    UnreadableResource,
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
EFFECTIVE_NSGS_TYPE = "microsoft.network/networkinterfaces/effectivenetworksecuritygroups"
ADMIN_RULES_TYPE = "microsoft.network/virtualnetworks/networkmanagereffectivesecurityadminrules"
PROTECTED_ITEM_TYPE = (
    "microsoft.recoveryservices/vaults/replicationfabrics/replicationprotectioncontainers/replicationprotecteditems"
)


class EstateError(ValueError):
    """The estate JSON is not something the bot can read; the message says which resource and why."""


# What a malformed resource can raise while it is parsed (huge integers raise ValueError on str(), 1e400 is a float
# infinity, deep nesting a RecursionError): caught per resource, never a traceback.
PARSE_FAILURES: tuple[type[Exception], ...] = (
    EstateError, AttributeError, TypeError, ValueError, LookupError, ArithmeticError, RecursionError)
REASON_LIMIT = 300  # characters of an unreadable resource's reason


def _cut(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _shown(value: Any) -> str:
    """A JSON value for a message, bounded: strings quoted and cut, other values by kind (a 5,000-digit integer
    cannot even be turned into a string)."""
    if isinstance(value, str):
        return repr(_cut(value, 80))
    if value is None or isinstance(value, bool | float) or (isinstance(value, int) and abs(value) < 10**15):
        return repr(value)
    if isinstance(value, int):
        return f"a {value.bit_length()}-bit integer"
    return f"a JSON {'object' if isinstance(value, Mapping) else 'array' if isinstance(value, list) else 'value'}"


_props = properties_of


def _ref(value: Any) -> str:
    """The id of a reference ``{"id": ...}``; absent is "". Anything else is an error: read loosely, a subnet's NSG
    given as a bare string would silently become "no NSG", which allows everything."""
    if value is None or value == "" or value == {}:
        return ""
    if isinstance(value, Mapping) and isinstance(value.get("id"), str | None):
        return intern(str(value.get("id") or ""))  # one copy of an id many resources refer to
    raise EstateError(f"{_shown(value)} is not a resource reference {{\"id\": ...}}")


def _refs(value: Any, what: str) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(r for r in (_ref(v) for v in _list(value, what)) if r)


def _list(value: Any, what: str) -> list[Any]:
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise EstateError(f"{what} is {_shown(value)}, not a list")
    return value


def _scalar(value: Any, what: str) -> str:
    """A string field; numbers are tolerated (a hand-written port 443), other JSON values are errors."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**15:
        return str(value)
    raise EstateError(f"{what} is {_shown(value)}, not a string")


def _strings(single: Any, many: Any, what: str = "a field") -> tuple[str, ...]:
    """ARM's single / plural field pair (``destinationAddressPrefix`` / ``destinationAddressPrefixes``)."""
    if many:
        if isinstance(many, list) and all(isinstance(item, str) for item in many):
            return tuple(map(intern, many))
        return tuple(intern(_scalar(item, what)) for item in _list(many, what))
    if many is not None and many != "":
        _list(many, what)  # {} or 0 where a list belongs: an error, not "absent"
    if isinstance(single, str):
        return (intern(single),) if single else ()
    return () if single is None else (intern(_scalar(single, what)),)


_IP_LIKE = re.compile(r"^[0-9]|/")  # tag names start with a letter and have no '/'; '*' and tags pass through


def _check_ip_like(values: Iterable[str], what: str) -> None:
    """A value that looks like an IP prefix must be one: read as a tag name, '10.0.0.0/33' would pass as "unknown
    tag" and hide the typo."""
    for value in values:
        text = value.strip()
        if _IP_LIKE.search(text) and not is_ipv4_prefix(text) and not is_ipv6_prefix(text):
            raise EstateError(f"{what} {_shown(text)} is not an IP address or prefix")


def _ipv4_prefixes(values: Any, what: str) -> tuple[str, ...]:
    """IPv4 address-space prefixes, checked here once; IPv6 ones (dual-stack VNets) are dropped: ASR's flows are
    IPv4. A value that is neither is an EstateError naming ``what``."""
    if isinstance(values, str | tuple):
        values = list(values) if isinstance(values, tuple) else [values]
    result = []
    for value in _list(values, what):
        text = _scalar(value, what).strip()
        if is_ipv4_prefix(text):
            result.append(text)
        elif not is_ipv6_prefix(text):
            raise EstateError(f"{what} has an address prefix that is not an IP prefix: {_shown(text)}")
    return tuple(result)


def _tags(resource: Mapping[str, Any]) -> Mapping[str, str]:
    tags = resource.get("tags")
    if not isinstance(tags, Mapping):
        return MappingProxyType({})
    return MappingProxyType({str(k): str(v) for k, v in tags.items()})


_PRIORITY_TEXT = re.compile(r"^[0-9]{1,5}$")


def _priority(value: Any) -> int:
    """A rule priority: an integer 1–65535 (ARM sends numbers; numeric strings are tolerated). Booleans, NaN,
    infinities (1e400 in JSON), fractions and huge integers are not priorities."""
    number: int
    if isinstance(value, bool):
        raise EstateError(f"{_shown(value)} is not a number")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise EstateError(f"{_shown(value)} is not a whole number")
        number = int(value)
    elif isinstance(value, str):
        if not _PRIORITY_TEXT.match(value.strip()):
            raise EstateError(f"{_shown(value)} is not a whole number")
        number = int(value.strip())
    elif isinstance(value, int):
        number = value
    else:
        raise EstateError("missing" if value is None else f"{_shown(value)} is not a number")
    if not 1 <= number <= 65535:
        raise EstateError(f"{_shown(number)} is outside 1–65535")
    return number


DIRECTIONS = frozenset({"inbound", "outbound"})
ACCESSES = frozenset({"allow", "deny"})
PROTOCOLS = frozenset({"tcp", "udp", "icmp", "esp", "ah", "*", "any"})


def _choice(props: Mapping[str, Any], field: str, choices: frozenset[str], default: str = "") -> str:
    raw = props.get(field)
    value = raw.lower() if isinstance(raw, str) else raw
    if value in choices:
        return intern(str(value))
    value = default if raw is None or raw == "" else _scalar(raw, field).strip().lower()
    if value not in choices:
        raise EstateError(f"{field} is {_shown(raw)}, not one of {', '.join(sorted(choices))}")
    return value


def parse_security_rule(rule: Mapping[str, Any], *, is_default: bool = False) -> SecurityRule:
    props = _props(rule)
    name = intern(_scalar(rule.get("name") or "", "the rule name"))
    try:
        priority = _priority(props.get("priority"))
    except EstateError as error:
        raise EstateError(f"security rule {_shown(name or rule.get('id'))} has no valid priority: {error}") from None
    try:
        source_prefixes = _strings(props.get("sourceAddressPrefix"), props.get("sourceAddressPrefixes"),
                                   "sourceAddressPrefixes")
        destination_prefixes = _strings(props.get("destinationAddressPrefix"),
                                        props.get("destinationAddressPrefixes"), "destinationAddressPrefixes")
        _check_ip_like(source_prefixes, "source")
        _check_ip_like(destination_prefixes, "destination")
        return SecurityRule(
            name=name,
            priority=priority,
            direction=_choice(props, "direction", DIRECTIONS),
            access=_choice(props, "access", ACCESSES),
            protocol=_choice(props, "protocol", PROTOCOLS, "*"),
            source_prefixes=source_prefixes,
            source_ports=_strings(props.get("sourcePortRange"), props.get("sourcePortRanges"),
                                  "sourcePortRanges") or ("*",),
            destination_prefixes=destination_prefixes,
            destination_ports=_strings(props.get("destinationPortRange"), props.get("destinationPortRanges"),
                                       "destinationPortRanges") or ("*",),
            source_asgs=_refs(props.get("sourceApplicationSecurityGroups"), "sourceApplicationSecurityGroups"),
            destination_asgs=_refs(props.get("destinationApplicationSecurityGroups"),
                                   "destinationApplicationSecurityGroups"),
            description=intern(_scalar(props.get("description") or "", "description")),
            id=_scalar(rule.get("id") or "", "the rule id"),
            is_default=is_default,
        )
    except EstateError as error:
        raise EstateError(f"security rule {_shown(name or rule.get('id'))}: {error}") from None


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
    rules = tuple(parse_security_rule(r) for r in _list(props.get("securityRules"), "securityRules"))
    defaults = tuple(parse_security_rule(r, is_default=True)
                     for r in _list(props.get("defaultSecurityRules"), "defaultSecurityRules"))
    return NetworkSecurityGroup(
        id=intern(str(resource["id"])),
        name=intern(str(resource.get("name") or "")),
        location=intern(str(resource.get("location") or "").lower()),
        rules=rules,
        default_rules=defaults or BUILTIN_DEFAULT_RULES,
        tags=_tags(resource),
        etag=str(resource.get("etag") or ""),
    )


def parse_route(route: Mapping[str, Any]) -> Route:
    props = _props(route)
    name = intern(_scalar(route.get("name") or "", "the route name"))
    try:
        prefix = _scalar(props.get("addressPrefix") or "", "addressPrefix")
        if not prefix.strip():
            raise EstateError("no address prefix")
        _check_ip_like((prefix,), "address prefix")
    except EstateError as error:
        raise EstateError(f"route {_shown(name)}: {error}") from None
    return Route(
        name=name,
        address_prefix=intern(prefix),
        next_hop_type=intern(str(props.get("nextHopType") or "")),
        next_hop_ip=intern(str(props.get("nextHopIpAddress") or "")),
        id=str(route.get("id") or ""),
    )


def parse_route_table(resource: Mapping[str, Any]) -> RouteTable:
    props = _props(resource)
    return RouteTable(
        id=intern(str(resource["id"])),
        name=intern(str(resource.get("name") or "")),
        location=intern(str(resource.get("location") or "").lower()),
        routes=tuple(parse_route(r) for r in _list(props.get("routes"), "routes")),
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


def parse_effective_virtual_network(resource: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Azure's own expansion of the VirtualNetwork tag for one NIC, from its effective security rules (``POST
    …/effectiveNetworkSecurityGroups``, NetworkInterfaceEffectiveNSGList): the ``expandedDestinationAddressPrefix``
    of a rule whose destination is VirtualNetwork (AllowVnetOutBound is in every NSG), else the
    ``expandedSourceAddressPrefix`` of one whose source is. IPv4 prefixes only. None when no rule expands it (no NSG
    on the NIC's path: the tag then decides nothing)."""
    entries = _props(resource).get("value")
    if entries is None:
        entries = resource.get("value") or []
    for entry in _list(entries, "the effective security rules"):
        for rule in _list((entry or {}).get("effectiveSecurityRules") or [], "an NSG's effective rules"):
            for side in ("Destination", "Source"):
                prefix = str(rule.get(f"{side.lower()}AddressPrefix") or "")
                expanded = rule.get(f"expanded{side}AddressPrefix")
                if prefix.lower() == "virtualnetwork" and isinstance(expanded, list) and expanded:
                    return _ipv4_prefixes(expanded, "the VirtualNetwork expansion")
    return None


def parse_subnet(resource: Mapping[str, Any]) -> Subnet:
    props = _props(resource)
    endpoints = tuple(
        ServiceEndpoint(str(e.get("service") or ""), tuple(str(loc).lower() for loc in e.get("locations") or []))
        for e in (_props(x) for x in props.get("serviceEndpoints") or [])
    )
    return Subnet(
        id=intern(str(resource.get("id") or "")),
        name=intern(str(resource.get("name") or "")),
        address_prefixes=_ipv4_prefixes(_strings(props.get("addressPrefix"), props.get("addressPrefixes")),
                                        f"subnet {resource.get('name') or ''}".strip()),
        nsg_id=_ref(props.get("networkSecurityGroup")),
        route_table_id=_ref(props.get("routeTable")),
        service_endpoints=endpoints,
        private_endpoint_network_policies=_scalar(props.get("privateEndpointNetworkPolicies") or "Disabled",
                                                  "privateEndpointNetworkPolicies").lower(),
    )


def parse_vnet(resource: Mapping[str, Any], extra_subnets: Iterable[Subnet] = ()) -> VirtualNetwork:
    props = _props(resource)
    subnets = {key(s.id): s for s in (parse_subnet(x) for x in props.get("subnets") or [])}
    subnets.update({key(s.id): s for s in extra_subnets})
    peered: list[str] = []
    remote_gateways = False
    hubs: list[str] = []
    hub_prefixes: list[str] = []
    for peering in props.get("virtualNetworkPeerings") or []:
        peering_props = _props(peering)
        if str(peering_props.get("peeringState") or "Connected").lower() != "connected":
            continue
        # The space the peering link carries (remoteAddressSpace, "the address space peered with the remote virtual
        # network") is what Azure routes, not the remote VNet's current one (remoteVirtualNetworkAddressSpace): an
        # address-space change reaches the link only when the peering is synced (peeringSyncLevel LocalNotInSync until
        # then; Sync-AzVirtualNetworkPeering, syncRemoteAddressSpace), and a subnet peering's link carries only the
        # peered subnets. The current space stands in only when the link's is absent (API versions before 2019).
        space = peering_props.get("remoteAddressSpace") or peering_props.get("remoteVirtualNetworkAddressSpace") or {}
        remote = _ipv4_prefixes(space.get("addressPrefixes"), "a peering's remote address space")
        if peering_props.get("useRemoteGateways") is True:
            remote_gateways = True
            hubs.extend(h for h in (_ref(peering_props.get("remoteVirtualNetwork")),) if h)
            hub_prefixes.extend(remote)
        peered.extend(remote)
    space = props.get("addressSpace") or {}
    return VirtualNetwork(
        id=intern(str(resource["id"])),
        name=intern(str(resource.get("name") or "")),
        location=intern(str(resource.get("location") or "").lower()),
        address_prefixes=_ipv4_prefixes(space.get("addressPrefixes"), "the address space"),
        subnets=tuple(subnets.values()),
        peered_address_prefixes=tuple(peered),
        has_gateway_subnet=any(s.name.lower() == "gatewaysubnet" for s in subnets.values()),
        uses_remote_gateways=remote_gateways,
        remote_gateway_vnet_ids=tuple(hubs),
        remote_gateway_prefixes=tuple(hub_prefixes),
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
            raise EstateError(f"IP configuration {_shown(config.get('name') or '')} has an invalid private IP "
                              f"{_shown(address)}")
        configs.append(
            IpConfiguration(
                name=intern(str(config.get("name") or "")),
                private_ip=address,
                subnet_id=_ref(cprops.get("subnet")),
                primary=bool(cprops.get("primary") or False),
                asg_ids=_refs(cprops.get("applicationSecurityGroups"), "applicationSecurityGroups"),
            )
        )
    return NetworkInterface(
        id=intern(str(resource["id"])),
        name=intern(str(resource.get("name") or "")),
        location=intern(str(resource.get("location") or "").lower()),
        ip_configurations=tuple(configs),
        nsg_id=_ref(props.get("networkSecurityGroup")),
        vm_id=_ref(props.get("virtualMachine")),
    )


def parse_vm(resource: Mapping[str, Any]) -> VirtualMachine:
    props = _props(resource)
    profile = props.get("networkProfile") or {}
    return VirtualMachine(
        id=intern(str(resource["id"])),
        name=intern(str(resource.get("name") or "")),
        location=intern(str(resource.get("location") or "").lower()),
        nic_ids=_refs(profile.get("networkInterfaces"), "networkInterfaces"),
        tags=_tags(resource),
    )


# The protection state of an item that replicates (ReplicationProtectedItemProperties.protectionState; "Protected" in
# the recorded A2AUpdateProtectionWithZone list). After a failover the item stays at activeLocation "Recovery" in
# other states ("UnplannedFailoverCommitted", "Failover committed", in the recorded A2AReprotectTest GET) until a
# reprotect makes it replicate back: only then is it evaluated again, in the reverse direction.
REPLICATING_STATES = frozenset({"protected"})


def parse_protected_item(resource: Mapping[str, Any]) -> ProtectedItem | None:
    """An A2A protected item as the engine evaluates it, or None for other replication scenarios (Hyper-V, VMware).

    ``primaryFabricLocation`` / ``recoveryFabricLocation`` and ``fabricObjectId`` / ``recoveryFabricObjectId`` name the
    two regions and VMs; ``activeLocation`` says where the VM runs. An item at ``Recovery`` that replicates again
    (reprotected: ``protectionState`` Protected) is turned around: the VM that runs (``recoveryFabricObjectId``) is the
    source, in the recovery region, and the primary network the item names (``vmNics[].vMNetworkName`` and
    ``ipConfigs[].subnetName``) is the target. Its direction is ``failback`` when it replicates from the region it
    was first recovered to (``initialRecoveryFabricLocation``) back to the first primary — also when Site Recovery
    already reports the reversed regions itself. Anything else at ``Recovery`` keeps its fields (and is skipped)."""
    props = _props(resource)
    details = props.get("providerSpecificDetails") or {}
    if str(details.get("instanceType") or "").lower() != "a2a":
        return None
    primary = intern(str(details.get("primaryFabricLocation") or "").lower())
    recovery = intern(str(details.get("recoveryFabricLocation") or "").lower())
    state = intern(str(props.get("protectionState") or ""))
    active = intern(str(props.get("activeLocation") or "Primary"))
    scenario = props.get("currentScenario")
    operation = str(scenario.get("scenarioName") or "") if isinstance(scenario, Mapping) else ""
    running = operation.lower()
    reprotecting = "reprotect" in running or ("switch" in running and "protection" in running)
    swapped = active.lower() == "recovery" and state.lower() in REPLICATING_STATES and not reprotecting
    nics = []
    for nic in details.get("vmNics") or []:
        configs = nic.get("ipConfigs") or []
        if swapped:
            primary_vnet = str(nic.get("vMNetworkName") or nic.get("vmNetworkName") or "")
            nics.append(RecoveryNic("", primary_vnet,
                                    tuple(str(c.get("subnetName")) for c in configs if c.get("subnetName"))))
            continue
        nics.append(RecoveryNic(
            source_nic_id=intern(str(nic.get("sourceNicArmId") or "")),
            recovery_vnet_id=intern(str(nic.get("recoveryVMNetworkId") or "")),
            recovery_subnet_names=tuple(intern(str(c.get("recoverySubnetName"))) for c in configs
                                        if c.get("recoverySubnetName")),
            recovery_nsg_id=intern(str(nic.get("recoveryNetworkSecurityGroupId") or "")),
        ))
    encryption = str(details.get("vmEncryptionType") or "NotEncrypted")
    caches = {str(disk.get("primaryStagingAzureStorageAccountId") or "").rstrip("/").rsplit("/", 1)[-1].lower(): None
              for field_name in ("protectedManagedDisks", "protectedDisks")
              for disk in details.get(field_name) or [] if isinstance(disk, Mapping)}
    source, target = (recovery, primary) if swapped else (primary, recovery)
    first = (str(details.get("initialPrimaryFabricLocation") or "").lower(),
             str(details.get("initialRecoveryFabricLocation") or "").lower())
    if all(first) and first[0] != first[1]:
        direction = FAILBACK if (source, target) == (first[1], first[0]) else FORWARD
    else:
        direction = FAILBACK if swapped else FORWARD
    return ProtectedItem(
        id=intern(str(resource.get("id") or "")),
        name=str(props.get("friendlyName") or resource.get("name") or ""),
        vm_id=intern(str(details.get("recoveryFabricObjectId" if swapped else "fabricObjectId") or "")),
        source_region=source,
        target_region=target,
        protection_state=state,
        active_location=active,
        encrypted=encryption.lower() not in ("notencrypted", ""),
        recovery_nics=tuple(nics),
        # Failback: the primary VNet the item names; its own selectedRecoveryAzureNetworkId is where the VM runs now.
        recovery_vnet_id=next((n.recovery_vnet_id for n in nics if n.recovery_vnet_id), "") if swapped else
        intern(str(details.get("selectedRecoveryAzureNetworkId") or "")),
        # The cache accounts the item names are the first direction's (primaryStagingAzureStorageAccountId, in the
        # primary region): a failback's are not named, so its Storage is *.blob.core.windows.net.
        cache_storage_accounts=() if swapped else tuple(sorted(intern(c) for c in caches if c)),
        direction=direction,
        swapped=swapped,
        current_operation="" if operation.lower() in ("", "none") else operation,
        health=parse_item_health(props),
    )


# -- Site Recovery's own verdict: replicationHealth and healthErrors (issue 15) -------------------------------------

HEALTH_TEXT_LIMIT = 400  # characters kept of a health error's message, causes and action
HEALTH_ERRORS_LIMIT = 100  # entries kept per item (and per innerHealthErrors list)


def _health_text(value: Any, what: str) -> str:
    return "" if value is None else _cut(_scalar(value, what).strip(), HEALTH_TEXT_LIMIT)


def parse_health_error(entry: Any, *, nested: bool = False) -> HealthError:
    """One HealthError (or InnerHealthError, ``nested``): the fields the cross-check and the report use. A code may
    come as a number; anything else that is not a string is malformed (EstateError)."""
    if not isinstance(entry, Mapping):
        raise EstateError("a health error is not an object")
    inner = () if nested else tuple(
        parse_health_error(e, nested=True)
        for e in _list(entry.get("innerHealthErrors"), "innerHealthErrors")[:HEALTH_ERRORS_LIMIT])
    return HealthError(
        code=_health_text(entry.get("errorCode"), "errorCode"),
        level=_health_text(entry.get("errorLevel"), "errorLevel"),
        category=_health_text(entry.get("errorCategory"), "errorCategory"),
        message=(_health_text(entry.get("errorMessage"), "errorMessage")
                 or _health_text(entry.get("summaryMessage"), "summaryMessage")),
        created=_health_text(entry.get("creationTimeUtc"), "creationTimeUtc"),
        possible_causes=_health_text(entry.get("possibleCauses"), "possibleCauses"),
        recommended_action=_health_text(entry.get("recommendedAction"), "recommendedAction"),
        inner=inner,
    )


def parse_item_health(props: Mapping[str, Any]) -> ItemHealth | None:
    """``replicationHealth`` and ``healthErrors[]`` of a protected item; None when it carries neither (nothing is then
    known of ASR's verdict). Malformed health errors never make the item unreadable — its network path is evaluated
    as usual — but they are not guessed at either: ``problem`` says why and no claim is made about what ASR reports."""
    if "healthErrors" not in props and "replicationHealth" not in props:
        return None
    health = props.get("replicationHealth")
    replication_health = _cut(health, 40) if isinstance(health, str) else ""
    try:
        errors = tuple(parse_health_error(e) for e in _list(props.get("healthErrors"), "healthErrors")
                       [:HEALTH_ERRORS_LIMIT])
    except PARSE_FAILURES as error:
        return ItemHealth(replication_health, (), _reason(error, "healthErrors"))
    return ItemHealth(replication_health, errors)


# -- AVNM security admin rules (ListNetworkManagerEffectiveSecurityAdminRules) ---------------------------------

ADMIN_ACCESSES = frozenset({"allow", "deny", "alwaysallow"})
ADMIN_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "esp", "ah", "any"})
ADMIN_ADDRESS_TYPES = frozenset({"ipprefix", "servicetag", "networkgroup"})


def _admin_addresses(value: Any, what: str) -> tuple[AdminAddress, ...]:
    result = []
    for item in _list(value, what):
        if not isinstance(item, Mapping):
            raise EstateError(f"{what} has {_shown(item)}, not an address item")
        prefix = _scalar(item.get("addressPrefix") or "", f"{what} addressPrefix").strip()
        raw_type = item.get("addressPrefixType")
        kind = "ipprefix" if raw_type in (None, "") else _scalar(raw_type, f"{what} addressPrefixType").lower()
        if kind not in ADMIN_ADDRESS_TYPES:
            raise EstateError(f"{what} addressPrefixType is {_shown(raw_type)}, not IPPrefix, ServiceTag or "
                              "NetworkGroup")
        if not prefix:
            raise EstateError(f"{what} has an item without an addressPrefix")
        if kind != "networkgroup":
            _check_ip_like((prefix,), what)
        result.append(AdminAddress(prefix, kind))
    return tuple(result)


def parse_admin_rule(entry: Mapping[str, Any]) -> AdminRule:
    """One entry of a VNet's effective security admin rules (``kind`` Custom or Default; a Default rule carries its
    resolved, read-only properties the same way), as in the NetworkManagerEffectiveSecurityAdminRulesList example."""
    if not isinstance(entry, Mapping):
        raise EstateError(f"an effective security admin rule is {_shown(entry)}, not an object")
    rule_id = _scalar(entry.get("id") or "", "the admin rule id")
    name = rule_id.rstrip("/").rsplit("/", 1)[-1] if rule_id else ""
    props = _props(entry)
    try:
        if not rule_id:
            raise EstateError("no id")
        priority = _priority(props.get("priority"))
        if priority > 4096:
            raise EstateError(f"priority {priority} is outside 1–4096")
        return AdminRule(
            id=rule_id,
            name=name,
            priority=priority,
            direction=_choice(props, "direction", DIRECTIONS),
            access=_choice(props, "access", ADMIN_ACCESSES),
            protocol=_choice(props, "protocol", ADMIN_PROTOCOLS),
            sources=_admin_addresses(props.get("sources"), "sources"),
            destinations=_admin_addresses(props.get("destinations"), "destinations"),
            source_ports=tuple(_scalar(p, "sourcePortRanges") for p in _list(props.get("sourcePortRanges"),
                                                                            "sourcePortRanges")) or ("*",),
            destination_ports=tuple(_scalar(p, "destinationPortRanges")
                                    for p in _list(props.get("destinationPortRanges"),
                                                   "destinationPortRanges")) or ("*",),
            kind=_scalar(entry.get("kind") or "Custom", "kind").lower(),
            description=intern(_scalar(props.get("description") or "", "description")),
            configuration_description=_scalar(entry.get("configurationDescription") or "",
                                              "configurationDescription"),
            collection_description=_scalar(entry.get("ruleCollectionDescription") or "", "ruleCollectionDescription"),
        )
    except EstateError as error:
        raise EstateError(f"security admin rule {_shown(name or rule_id)}: {error}") from None


def parse_admin_rules(resource: Mapping[str, Any]) -> tuple[AdminRule, ...]:
    """The rules of a VNet's ``…/networkManagerEffectiveSecurityAdminRules`` pseudo-resource (``properties.value``:
    every page of the POST, concatenated), or of a bare ListNetworkManagerEffectiveSecurityAdminRules response."""
    entries = _props(resource).get("value")
    if entries is None:
        entries = resource.get("value") or []
    return tuple(parse_admin_rule(e) for e in _list(entries, "the effective security admin rules"))


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
    """Parse ARM resources (any order, any id casing) into an ``Estate``.

    A resource without an id is an EstateError (nothing could say which VMs it concerns). A resource that fails to
    parse goes to ``Estate.unreadable`` instead of the indexes; a child given separately (rule, route, subnet)
    takes its parent with it. An unreadable A2A protected item stays in ``protected_items`` as a stub (id, name, VM
    id when readable) so that its VM is reported ``unknown`` rather than silently not at all. A NIC's effective
    route table that cannot be parsed counts as not read (``read_errors``), like a failed read.
    """
    builder = EstateBuilder()
    builder.add_all(resources)
    return builder.build()


#: The pseudo-resources of the per-NIC / per-VNet ARM reads (effective routes, effective security rules, security
#: admin rules): what :func:`with_reads` adds to an estate already parsed.
READ_TYPES = frozenset({EFFECTIVE_ROUTES_TYPE, EFFECTIVE_NSGS_TYPE, ADMIN_RULES_TYPE})


class EstateBuilder:
    """``build_estate`` in steps: resources are added as they arrive (a Resource Graph page at a time, whose rows
    can then be dropped) and :meth:`build` gives the Estate of everything added so far — the one ``build_estate``
    gives for the same resources in the same order. Adding more after a build is allowed (the firewall reads need
    the estate to know which policies to read).

    Most resources are parsed when added and only the parsed form is kept. What needs the whole input to be parsed
    is kept as JSON until :meth:`build`: VNets (a subnet given separately may come later; ~1% of the rows), the
    firewall, Private Link and connectivity resources (a rule collection group belongs to its policy, an endpoint's
    IPs are on its NICs; few per estate), and the children given separately (rules, routes, subnets: never in a
    Resource Graph inventory, whose query reads only parents). NSGs and route tables are parsed when they come
    (``_Parents``).
    """

    def __init__(self) -> None:
        self._count = 0
        self._vms: dict[str, VirtualMachine] = {}
        self._nics: dict[str, NetworkInterface] = {}
        self._vnet_docs: dict[str, Mapping[str, Any]] = {}
        self._loose_subnets: dict[str, list[Subnet]] = {}
        self._nsgs = _Parents(NSG_TYPE, parse_nsg, parse_security_rule, "securityRules", "rules")
        self._tables = _Parents(ROUTE_TABLE_TYPE, parse_route_table, parse_route, "routes", "routes")
        self._items: dict[str, ProtectedItem] = {}
        self._bgp: dict[str, tuple[Route, ...]] = {}
        self._effective_vnets: dict[str, tuple[str, ...]] = {}
        self._admin_rules: dict[str, tuple[AdminRule, ...]] = {}
        self._read_errors: dict[str, str] = {}
        self._unreadable: dict[str, UnreadableResource] = {}
        self._firewall_parts = _FirewallParts()
        self._private_link_parts = PrivateLinkParts()
        self._connectivity_parts = ConnectivityParts()

    @property
    def firewall_documents(self) -> Mapping[str, Mapping[str, Any]]:
        """The firewall, Firewall Policy, rule collection group and IP group documents added, by key: what the
        firewall reads (``azure/firewalls.py``) look policies up in."""
        return MappingProxyType({k: doc for k, (_, doc) in self._firewall_parts.docs.items()})

    @property
    def has_firewalls(self) -> bool:
        """An Azure Firewall was added (readable or not): the firewall reads are due."""
        return any(rtype == FIREWALL_TYPE for rtype, _ in self._firewall_parts.docs.values())

    def add_all(self, resources: Iterable[Mapping[str, Any]]) -> None:
        for resource in resources:
            self.add(resource)

    def add(self, resource: Mapping[str, Any]) -> None:
        """Parse one resource (or keep it for :meth:`build`); an EstateError when it has no id."""
        index = self._count
        self._count += 1
        raw_type = resource.get("type")
        rtype = raw_type.lower() if isinstance(raw_type, str) else ""
        rid = resource.get("id")
        if not isinstance(rid, str) or not rid.strip():
            raise EstateError(f"resource {index} ({_cut(rtype, 120) or 'no type'}) has no id")
        try:
            self._parse(rtype, rid, resource)
        except PARSE_FAILURES as error:
            reason = _reason(error, rtype)
            if rtype == SUBNET_TYPE:
                self._mark(parent_id(rid), VNET_TYPE, f"subnet {_shown(rid.rstrip('/').rsplit('/', 1)[-1])}: {reason}")
            elif rtype in (EFFECTIVE_ROUTES_TYPE, EFFECTIVE_NSGS_TYPE):
                self._read_errors[key(rid)] = _cut(f"unreadable: {reason}", REASON_LIMIT)
            elif rtype == PROTECTED_ITEM_TYPE:
                stub = _unreadable_item(resource, rid)
                if stub is not None:
                    self._mark(rid, rtype, reason)
                    self._items[key(rid)] = stub
            else:
                self._mark(rid, rtype, reason)

    def _mark(self, resource_id: str, resource_type: str, reason: str) -> None:
        """The first reason wins: an unreadable resource stays unreadable, whatever copy of it comes later."""
        _mark_in(self._unreadable, resource_id, resource_type, reason)

    def _parse(self, rtype: str, rid: str, resource: Mapping[str, Any]) -> None:
        if rtype == VM_TYPE:
            self._vms[key(rid)] = parse_vm(resource)
        elif rtype == NIC_TYPE:
            self._nics[key(rid)] = parse_nic(resource)
        elif rtype == VNET_TYPE:
            self._vnet_docs[key(rid)] = resource
        elif rtype == SUBNET_TYPE:
            self._loose_subnets.setdefault(key(parent_id(rid)), []).append(parse_subnet(resource))
        elif rtype == NSG_TYPE:
            self._nsgs.add_parent(key(rid), resource)
        elif rtype == RULE_TYPE:
            self._nsgs.add_child(key(parent_id(rid)), resource)
        elif rtype == ROUTE_TABLE_TYPE:
            self._tables.add_parent(key(rid), resource)
        elif rtype == ROUTE_TYPE:
            self._tables.add_child(key(parent_id(rid)), resource)
        elif rtype == EFFECTIVE_ROUTES_TYPE:
            failure = _props(resource).get("error")
            if failure:
                self._read_errors[key(rid)] = _cut(str(failure), 1000)
            else:
                self._bgp[key(rid.rsplit("/", 1)[0])] = parse_bgp_routes(resource)
        elif rtype == EFFECTIVE_NSGS_TYPE:
            failure = _props(resource).get("error")
            if failure:
                self._read_errors[key(rid)] = _cut(str(failure), 1000)
            elif (expansion := parse_effective_virtual_network(resource)) is not None:
                self._effective_vnets[key(rid.rsplit("/", 1)[0])] = expansion
        elif rtype == ADMIN_RULES_TYPE:
            failure = _props(resource).get("error")
            if failure:
                self._read_errors[key(rid)] = _cut(str(failure), 1000)
            else:
                self._admin_rules[key(rid.rstrip("/").rsplit("/", 1)[0])] = parse_admin_rules(resource)
        elif rtype in FIREWALL_TYPES:
            self._firewall_parts.collect(rtype, rid, resource)
        elif rtype in PRIVATE_LINK_TYPES:
            self._private_link_parts.collect(rtype, rid, resource)
        elif rtype in CONNECTIVITY_TYPES:
            self._connectivity_parts.collect(rtype, rid, resource)
        elif rtype == PROTECTED_ITEM_TYPE:
            item = parse_protected_item(resource)
            if item is not None and key(item.id) not in self._unreadable:
                self._items[key(item.id)] = item

    def build(self) -> Estate:
        """The Estate of every resource added so far; the builder is left as it was."""
        unreadable = dict(self._unreadable)

        def mark(resource_id: str, resource_type: str, reason: str) -> None:
            _mark_in(unreadable, resource_id, resource_type, reason)

        # Parents are parsed once all their children are collected.
        nsgs = self._nsgs.build(mark)
        tables = self._tables.build(mark)
        vnets: dict[str, VirtualNetwork] = {}
        for k, vnet_doc in self._vnet_docs.items():
            try:
                vnets[k] = parse_vnet(vnet_doc, self._loose_subnets.get(k, []))
            except PARSE_FAILURES as error:
                mark(str(vnet_doc["id"]), VNET_TYPE, _reason(error, VNET_TYPE))
        vms, nics = dict(self._vms), dict(self._nics)
        firewall = self._firewall_parts.build(mark)
        links = self._private_link_parts.build(mark, nics, PARSE_FAILURES)
        parsed: tuple[dict[str, Any], ...] = (vms, nics, nsgs, tables, vnets, firewall["firewalls"],
                                              firewall["firewall_policies"], firewall["ip_groups"])
        for found in parsed:
            for k in unreadable.keys() & found.keys():
                del found[k]
        subnets = {key(s.id): s for v in vnets.values() for s in v.subnets}
        return Estate(
            protected_items=tuple(_link_vm(self._items[k], nics) for k in sorted(self._items)),
            vms=MappingProxyType(vms),
            nics=MappingProxyType(nics),
            vnets=MappingProxyType(vnets),
            subnets=MappingProxyType(subnets),
            nsgs=MappingProxyType(nsgs),
            route_tables=MappingProxyType(tables),
            bgp_routes=MappingProxyType(dict(self._bgp)),
            effective_virtual_networks=MappingProxyType(dict(self._effective_vnets)),
            admin_rules=MappingProxyType(dict(self._admin_rules)),
            read_errors=MappingProxyType(dict(self._read_errors)),
            unreadable=MappingProxyType(unreadable),
            **{name: MappingProxyType(value) for name, value in firewall.items()},
            private_links=without(links, unreadable.keys()),
            connectivity=self._connectivity_parts.build(mark, PARSE_FAILURES),
        )


def with_reads(estate: Estate, reads: Iterable[Mapping[str, Any]]) -> Estate:
    """``estate`` with the pseudo-resources of the per-NIC / per-VNet reads (``READ_TYPES``) parsed into it: the
    Estate ``build_estate`` gives for the estate's resources followed by ``reads``, without parsing the estate's
    resources again (what they parse into never depends on those reads, nor the reads on them)."""
    builder = EstateBuilder()
    for read in reads:
        raw_type = read.get("type")
        if not isinstance(raw_type, str) or raw_type.lower() not in READ_TYPES:
            raise ValueError(f"with_reads takes only {', '.join(sorted(READ_TYPES))}, not {_shown(raw_type)}")
        builder.add(read)
    part = builder.build()
    unreadable = dict(estate.unreadable)
    for k, entry in part.unreadable.items():
        unreadable.setdefault(k, entry)
    return replace(
        estate,
        bgp_routes=MappingProxyType({**estate.bgp_routes, **part.bgp_routes}),
        effective_virtual_networks=MappingProxyType({**estate.effective_virtual_networks,
                                                     **part.effective_virtual_networks}),
        admin_rules=MappingProxyType({**estate.admin_rules, **part.admin_rules}),
        read_errors=MappingProxyType({**estate.read_errors, **part.read_errors}),
        unreadable=MappingProxyType(unreadable),
    )


def _mark_in(unreadable: dict[str, UnreadableResource], resource_id: str, resource_type: str, reason: str) -> None:
    unreadable.setdefault(key(resource_id), UnreadableResource(resource_id, resource_type, _cut(reason, REASON_LIMIT)))


class _Parents:
    """The parents whose children may also come as resources of their own (NSG → security rules, route table →
    routes), parsed as they arrive so their JSON can be dropped: a large estate's NSG documents weigh more than the
    rest of the inventory together (~105 of 217 MB of rows at 10,000 VMs).

    The result is the one ``_merge_children`` gives on the whole input, whatever the order: a child that comes first
    waits for its parent; one that comes after a parent parsed well is parsed and folded into the parent's parsed
    children by name (the first failing child in the merged order makes the parent unreadable, with the reason its
    parse would give). Only a parent that failed to parse keeps its JSON: a later child could still replace the
    child that failed.
    """

    def __init__(self, rtype: str, parse: Callable[[Mapping[str, Any]], Any],
                 parse_child: Callable[[Mapping[str, Any]], Any], field: str, attribute: str) -> None:
        self.rtype, self.parse, self.parse_child = rtype, parse, parse_child
        self.field, self.attribute = field, attribute  # the children's JSON field, and the parsed parent's attribute
        self.parsed: dict[str, Any] = {}  # parent key → the parsed parent, or the JSON of one that failed
        self.failed: set[str] = set()  # keys of the parents that failed (parsed again with every child when built)
        self.merged: dict[str, dict[str, Any]] = {}  # parent key → its children by name (parsed, or a reason) once a
        # child came after it
        self.loose: dict[str, list[Mapping[str, Any]]] = {}  # parent key → its children given separately

    def add_parent(self, resource_key: str, resource: Mapping[str, Any]) -> None:
        self.failed.discard(resource_key)
        self.merged.pop(resource_key, None)
        try:
            self.parsed[resource_key] = _merge_children(self.parse, dict(resource), self.field,
                                                        self.loose.get(resource_key, []))
        except PARSE_FAILURES:
            self.parsed[resource_key] = dict(resource)
            self.failed.add(resource_key)

    def add_child(self, parent_key: str, child: Mapping[str, Any]) -> None:
        self.loose.setdefault(parent_key, []).append(child)
        if parent_key not in self.parsed:
            return
        if parent_key in self.failed:  # parsed again with all its children when built
            return
        children = self.merged.get(parent_key)
        if children is None:
            children = self.merged[parent_key] = {
                c.name.lower(): c for c in getattr(self.parsed[parent_key], self.attribute)}
        try:
            value: Any = self.parse_child(child)
        except PARSE_FAILURES as error:
            value = _reason(error, self.rtype)
        children[str(child.get("name") or "").lower()] = value

    def build(self, mark: Callable[[str, str, str], None]) -> dict[str, Any]:
        """The parents that parse, in the order they first came; the others are marked unreadable."""
        built: dict[str, Any] = {}
        for k, parent in self.parsed.items():
            if k in self.failed:
                try:
                    built[k] = _merge_children(self.parse, parent, self.field, self.loose.get(k, []))
                except PARSE_FAILURES as error:
                    mark(str(parent["id"]), self.rtype, _reason(error, self.rtype))
                continue
            children = self.merged.get(k)
            if children is None:
                built[k] = parent
                continue
            reason = next((v for v in children.values() if isinstance(v, str)), None)
            if reason is not None:
                mark(parent.id, self.rtype, reason)
            else:
                built[k] = replace(parent, **{self.attribute: tuple(children.values())})
        return built


def _link_vm(item: ProtectedItem, nics: Mapping[str, NetworkInterface]) -> ProtectedItem:
    """An item whose ``fabricObjectId`` is empty or absent is linked to its VM through its NICs' ``virtualMachine.id``
    (vmNics[].sourceNicArmId → NIC → VM) when they agree on one VM; otherwise it stays without one (``unknown``)."""
    if item.vm_id.strip():
        return item
    vms = {key(nic.vm_id): nic.vm_id for r in item.recovery_nics
           if (nic := nics.get(key(r.source_nic_id))) is not None and nic.vm_id.strip()}
    return replace(item, vm_id=next(iter(vms.values()))) if len(vms) == 1 else item


def _reason(error: BaseException, rtype: str) -> str:
    """Why a resource could not be parsed, in one bounded line."""
    if isinstance(error, EstateError):
        return _cut(str(error), REASON_LIMIT)
    if isinstance(error, RecursionError):
        return "it is nested too deeply"
    return _cut(f"unexpected shape for {rtype or 'resource'} ({type(error).__name__}: {error})", REASON_LIMIT)


def _text_at(document: Any, *path: str) -> str:
    """A string found by ``path`` in possibly malformed JSON, or ""."""
    for step in path:
        document = document.get(step) if isinstance(document, Mapping) else None
    return document if isinstance(document, str) else ""


def protected_item_or_stub(resource: Mapping[str, Any]) -> ProtectedItem | None:
    """:func:`parse_protected_item`, or for an item that does not parse the stub ``build_estate`` keeps of it (its VM
    id when readable): what the inventory's subscription scoping reads, so a malformed item is reported, not a
    traceback. None for an item that is readably not A2A."""
    try:
        return parse_protected_item(resource)
    except PARSE_FAILURES:
        return _unreadable_item(resource, str(resource.get("id") or ""))


def _unreadable_item(resource: Mapping[str, Any], rid: str) -> ProtectedItem | None:
    """What can still be read of a protected item that does not parse, so its VM is reported; None when it is
    readably not A2A (Hyper-V, VMware: not ours)."""
    kind = _props(resource).get("providerSpecificDetails")
    instance = kind.get("instanceType") if isinstance(kind, Mapping) else None
    if isinstance(instance, str) and instance and instance.lower() != "a2a":
        return None

    def text(*path: str) -> str:
        return _cut(_text_at(resource, *path), 400)

    # A reprotected item is reported under the VM that runs, in the direction it replicates (as parse_protected_item).
    swapped = (text("properties", "activeLocation").lower() == "recovery"
               and text("properties", "protectionState").lower() in REPLICATING_STATES)
    regions = (text("properties", "providerSpecificDetails", "primaryFabricLocation").lower(),
               text("properties", "providerSpecificDetails", "recoveryFabricLocation").lower())
    return ProtectedItem(
        id=rid,
        name=text("properties", "friendlyName") or text("name") or rid.rstrip("/").rsplit("/", 1)[-1][:400],
        vm_id=text("properties", "providerSpecificDetails", "recoveryFabricObjectId" if swapped else "fabricObjectId"),
        source_region=regions[1] if swapped else regions[0],
        target_region=regions[0] if swapped else regions[1],
        direction=FAILBACK if swapped else FORWARD,
        swapped=swapped,
    )


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


# -- Azure Firewall: firewalls (classic rules inline), Firewall Policies, rule collection groups, IP groups ----------
# Shapes: AzureFirewallGet.json, FirewallPolicyRuleCollectionGroupGet.json and
# FirewallPolicyRuleCollectionGroupWithHttpHeadersToInsert.json (Azure/azure-rest-api-specs, Microsoft.Network stable
# 2025-05-01; copies in tests/data/arm/).

FIREWALL_TYPE = "microsoft.network/azurefirewalls"
FIREWALL_POLICY_TYPE = "microsoft.network/firewallpolicies"
RULE_COLLECTION_GROUP_TYPE = "microsoft.network/firewallpolicies/rulecollectiongroups"
IP_GROUP_TYPE = "microsoft.network/ipgroups"
FIREWALL_TYPES = frozenset({FIREWALL_TYPE, FIREWALL_POLICY_TYPE, RULE_COLLECTION_GROUP_TYPE, IP_GROUP_TYPE})
# Rule collection and rule collection group priorities: "100 to 65,000" (Azure Firewall rule processing logic).
MIN_FIREWALL_PRIORITY, MAX_FIREWALL_PRIORITY = 100, 65000
_RULE_TYPES = {"networkrule": "network", "applicationrule": "application", "natrule": "nat"}
_FIREWALL_ACTIONS = frozenset({"allow", "deny", "dnat", "snat"})
_IP_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "any"})
_APP_PROTOCOLS = frozenset({"http", "https", "mssql"})


def _firewall_priority(value: Any, what: str) -> int:
    try:
        number = _priority(value)
    except EstateError as error:
        raise EstateError(f"{what} has no valid priority: {error}") from None
    if not MIN_FIREWALL_PRIORITY <= number <= MAX_FIREWALL_PRIORITY:
        raise EstateError(f"{what} has priority {number}, outside {MIN_FIREWALL_PRIORITY}–{MAX_FIREWALL_PRIORITY}")
    return number


def _firewall_addresses(values: Any, what: str, *, tags_allowed: bool) -> tuple[str, ...]:
    """Rule / IP group addresses: '*', IPv4 addresses, CIDRs and ranges ('10.0.0.1-10.0.0.9'); IPv6 is kept (it never
    matches an IPv4 flow); service tags only where ARM takes them (destinations of network and NAT rules)."""
    result = []
    for raw in _list(values, what):
        text = _scalar(raw, what).strip()
        if not text:
            continue
        if text != "*" and not is_ipv6_prefix(text):
            try:
                parse_ipv4_range(text)
            except PrefixError:
                if _IP_LIKE.search(text) or not tags_allowed:
                    raise EstateError(f"{what} {_shown(text)} is not an IP address, prefix or range") from None
        result.append(text)
    return tuple(result)


def _firewall_ports(values: Any, what: str) -> tuple[str, ...]:
    result = []
    for raw in _list(values, what):
        text = _scalar(raw, what).strip()
        low, _, high = text.partition("-")
        if text != "*" and not (low.isdigit() and (not high or high.isdigit())
                                and 0 <= int(low) <= int(high or low) <= 65535):
            raise EstateError(f"{what} {_shown(text)} is not a port or port range")
        result.append(text)
    return tuple(result)


def _app_protocols(values: Any, what: str) -> tuple[str, ...]:
    """Application rule protocols [{protocolType: Https, port: 443}] → ("https:443", …)."""
    result = []
    for entry in _list(values, what):
        if not isinstance(entry, Mapping):
            raise EstateError(f"{what} has {_shown(entry)}, not a {{protocolType, port}} object")
        kind = _scalar(entry.get("protocolType") or "", "protocolType").strip().lower()
        if kind not in _APP_PROTOCOLS:
            raise EstateError(f"{what} has protocol type {_shown(entry.get('protocolType'))}")
        port = entry.get("port")
        default = {"http": 80, "https": 443, "mssql": 1433}[kind]
        number = default if port in (None, "") else int(_scalar(port, "port"))
        if not 0 <= number <= 65535:
            raise EstateError(f"{what} has port {number}")
        result.append(f"{kind}:{number}")
    return tuple(result)


def _ip_protocols(values: Any, what: str) -> tuple[str, ...]:
    result = tuple(_scalar(v, what).strip().lower() for v in _list(values, what))
    for protocol in result:
        if protocol not in _IP_PROTOCOLS:
            raise EstateError(f"{what} has protocol {_shown(protocol)}, not one of TCP, UDP, ICMP, Any")
    return result


def _names(values: Any, what: str) -> tuple[str, ...]:
    return tuple(t for t in (_scalar(v, what).strip() for v in _list(values, what)) if t)


def parse_firewall_rule(rule: Mapping[str, Any], rule_type: str = "") -> FirewallRule:
    """A rule of a policy rule collection (``ruleType`` NetworkRule / ApplicationRule / NatRule) or a classic rule
    (``rule_type`` given by the collection list it is in; classic rules keep their fields under ``properties`` in
    some payloads)."""
    if not isinstance(rule, Mapping):
        raise EstateError(f"{_shown(rule)} is not a rule object")
    props = _props(rule) if "properties" in rule and "ruleType" not in rule else rule
    name = intern(_scalar(rule.get("name") or "", "the rule name"))
    try:
        kind = rule_type or _RULE_TYPES.get(str(props.get("ruleType") or "").lower(), "")
        if not kind:
            raise EstateError(f"ruleType {_shown(props.get('ruleType'))} is not NetworkRule, ApplicationRule or "
                              "NatRule")
        application = kind == "application"
        protocols = (_app_protocols(props.get("protocols"), "protocols") if application else
                     _ip_protocols(props.get("ipProtocols") if "ipProtocols" in props else props.get("protocols"),
                                   "protocols"))
        return FirewallRule(
            name=name,
            rule_type=kind,
            source_addresses=_firewall_addresses(props.get("sourceAddresses"), "source", tags_allowed=False),
            source_ip_groups=_strings(None, props.get("sourceIpGroups"), "sourceIpGroups"),
            protocols=protocols,
            destination_addresses=_firewall_addresses(props.get("destinationAddresses"), "destination",
                                                      tags_allowed=True),
            destination_ip_groups=_strings(None, props.get("destinationIpGroups"), "destinationIpGroups"),
            destination_fqdns=_names(props.get("destinationFqdns"), "destinationFqdns"),
            destination_ports=_firewall_ports(props.get("destinationPorts"), "destination port"),
            target_fqdns=_names(props.get("targetFqdns"), "targetFqdns"),
            target_urls=_names(props.get("targetUrls"), "targetUrls"),
            fqdn_tags=_names(props.get("fqdnTags"), "fqdnTags"),
            web_categories=_names(props.get("webCategories"), "webCategories"),
            terminate_tls=props.get("terminateTLS") is True,
        )
    except EstateError as error:
        raise EstateError(f"rule {_shown(name)}: {error}") from None


def _action(value: Any, what: str) -> str:
    kind = value.get("type") if isinstance(value, Mapping) else value
    text = _scalar(kind or "", "action").strip().lower()
    if text not in _FIREWALL_ACTIONS:
        raise EstateError(f"{what} has action {_shown(kind)}, not Allow, Deny or Dnat")
    return text


def parse_policy_rule_collection(collection: Mapping[str, Any]) -> FirewallRuleCollection:
    """FirewallPolicyFilterRuleCollection (Allow / Deny) or FirewallPolicyNatRuleCollection (DNAT)."""
    if not isinstance(collection, Mapping):
        raise EstateError(f"{_shown(collection)} is not a rule collection object")
    props = _props(collection) if "properties" in collection else collection
    name = _scalar(collection.get("name") or "", "the rule collection name")
    what = f"rule collection {_shown(name)}"
    kind = str(props.get("ruleCollectionType") or "").lower()
    if kind not in ("firewallpolicyfilterrulecollection", "firewallpolicynatrulecollection"):
        raise EstateError(f"{what}: ruleCollectionType {_shown(props.get('ruleCollectionType'))} is not a filter or "
                          "NAT rule collection")
    # ARM's own example (FirewallPolicyRuleCollectionGroupWithHttpHeadersToInsert.json) returns a collection without a
    # priority: kept as None, ordered after the collections of its group that have one (documented in the README).
    priority = None if props.get("priority") is None else _firewall_priority(props.get("priority"), what)
    action = _action(props.get("action"), what)
    try:
        rules = tuple(parse_firewall_rule(r) for r in _list(props.get("rules"), "rules"))
    except EstateError as error:
        raise EstateError(f"{what}: {error}") from None
    return FirewallRuleCollection(name, priority, action, rules)


def parse_rule_collection_group(resource: Mapping[str, Any]) -> RuleCollectionGroup:
    props = _props(resource)
    name = str(resource.get("name") or str(resource["id"]).rstrip("/").rsplit("/", 1)[-1])
    return RuleCollectionGroup(
        id=str(resource["id"]),
        name=name,
        priority=_firewall_priority(props.get("priority"), f"rule collection group {_shown(name)}"),
        collections=tuple(parse_policy_rule_collection(c) for c in _list(props.get("ruleCollections"),
                                                                           "ruleCollections")),
        etag=str(resource.get("etag") or ""),
    )


def parse_firewall_policy(resource: Mapping[str, Any]) -> FirewallPolicy:
    props = _props(resource)
    dns = props.get("dnsSettings") or {}
    transport = props.get("transportSecurity") or {}
    sku = props.get("sku") or {}
    if not isinstance(dns, Mapping) or not isinstance(transport, Mapping) or not isinstance(sku, Mapping):
        raise EstateError("dnsSettings, transportSecurity and sku must be objects")
    return FirewallPolicy(
        id=str(resource["id"]),
        name=str(resource.get("name") or ""),
        location=str(resource.get("location") or "").lower().replace(" ", ""),
        base_policy_id=_ref(props.get("basePolicy")),
        rule_collection_group_ids=_refs(props.get("ruleCollectionGroups"), "ruleCollectionGroups"),
        dns_proxy=dns.get("enableProxy") is True,
        tls_inspection=bool(_ref(transport.get("certificateAuthority")) or transport.get("certificateAuthority")),
        tier=str(sku.get("tier") or "").lower(),
        tags=_tags(resource),
        etag=str(resource.get("etag") or ""),
    )


def _firewall_private_ips(resource: Mapping[str, Any]) -> tuple[str, ...]:
    """ipConfigurations[].privateIPAddress (VNet firewalls), hubIPAddresses.privateIPAddress (secured hubs)."""
    props = _props(resource)
    ips = []
    for config in _list(props.get("ipConfigurations"), "ipConfigurations"):
        address = _scalar(_props(config).get("privateIPAddress") or "", "privateIPAddress").strip()
        if address:
            ips.append(address)
    hub = props.get("hubIPAddresses") or {}
    if not isinstance(hub, Mapping):
        raise EstateError("hubIPAddresses is not an object")
    address = _scalar(hub.get("privateIPAddress") or "", "hubIPAddresses.privateIPAddress").strip()
    if address:
        ips.append(address)
    for ip in ips:
        if not is_ipv4_prefix(ip) or "/" in ip:
            raise EstateError(f"private IP {_shown(ip)} is not an IPv4 address")
    return tuple(dict.fromkeys(ips))


_CLASSIC_COLLECTIONS = (("natRuleCollections", "nat"), ("networkRuleCollections", "network"),
                        ("applicationRuleCollections", "application"))


def parse_azure_firewall(resource: Mapping[str, Any]) -> AzureFirewall:
    props = _props(resource)
    collections: list[tuple[str, FirewallRuleCollection]] = []
    for field_name, kind in _CLASSIC_COLLECTIONS:
        for raw in _list(props.get(field_name), field_name):
            cprops = _props(raw)
            name = _scalar(raw.get("name") or "", "the rule collection name")
            what = f"{kind} rule collection {_shown(name)}"
            try:
                rules = tuple(parse_firewall_rule(r, kind) for r in _list(cprops.get("rules"), "rules"))
            except EstateError as error:
                raise EstateError(f"{what}: {error}") from None
            collections.append((kind, FirewallRuleCollection(name, _firewall_priority(cprops.get("priority"), what),
                                                             _action(cprops.get("action"), what), rules)))
    extra = props.get("additionalProperties") or {}
    if not isinstance(extra, Mapping):
        raise EstateError("additionalProperties is not an object")
    configs = _list(props.get("ipConfigurations"), "ipConfigurations")
    subnet = _ref(_props(configs[0]).get("subnet")) if configs else ""
    return AzureFirewall(
        id=str(resource["id"]),
        name=str(resource.get("name") or ""),
        location=str(resource.get("location") or "").lower().replace(" ", ""),
        private_ips=_firewall_private_ips(resource),
        policy_id=_ref(props.get("firewallPolicy")),
        collections=tuple(collections),
        dns_proxy=str(extra.get("Network.DNS.EnableProxy") or "").strip().lower() == "true",
        forced_tunnelling=bool(props.get("managementIpConfiguration")),
        subnet_id=subnet,
        virtual_hub_id=_ref(props.get("virtualHub")),
        tags=_tags(resource),
    )


def parse_ip_group(resource: Mapping[str, Any]) -> IpGroup:
    props = _props(resource)
    return IpGroup(str(resource["id"]), str(resource.get("name") or ""),
                   _firewall_addresses(props.get("ipAddresses"), "IP group address", tags_allowed=False))


def firewall_ips_of(resource: Mapping[str, Any]) -> tuple[str, ...]:
    """A firewall's private IPs even when the rest of it cannot be read (so its VMs are reported unknown, not
    routed to "an appliance"); () when they cannot be read either."""
    try:
        return _firewall_private_ips(resource)
    except PARSE_FAILURES:
        return ()


class _FirewallParts:
    """Firewall resources collected during build_estate, parsed once all are in (a rule collection group given
    separately belongs to its policy: when it cannot be read, neither can the policy)."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[str, Mapping[str, Any]]] = {}

    def collect(self, rtype: str, rid: str, resource: Mapping[str, Any]) -> None:
        self.docs[key(rid)] = (rtype, resource)

    def build(self, mark: Any) -> dict[str, Any]:
        parsed: dict[str, dict[str, Any]] = {t: {} for t in FIREWALL_TYPES}
        ips: dict[str, str] = {}
        parsers: dict[str, Any] = {FIREWALL_TYPE: parse_azure_firewall, FIREWALL_POLICY_TYPE: parse_firewall_policy,
                                   RULE_COLLECTION_GROUP_TYPE: parse_rule_collection_group,
                                   IP_GROUP_TYPE: parse_ip_group}
        for k, (rtype, doc) in sorted(self.docs.items()):
            failure = _props(doc).get("error") if isinstance(doc.get("properties"), Mapping) else None
            if failure and rtype in (FIREWALL_POLICY_TYPE, RULE_COLLECTION_GROUP_TYPE):
                # An ARM read that failed (azure/firewalls.py): the policy, or ``<policy>/ruleCollectionGroups``.
                listed = rtype == RULE_COLLECTION_GROUP_TYPE
                mark(str(doc["id"]).rstrip("/").rsplit("/", 1)[0] if listed else str(doc["id"]), FIREWALL_POLICY_TYPE,
                     f"{'its rule collection groups' if listed else 'it'} could not be read: {_cut(str(failure), 300)}")
                continue
            if rtype == FIREWALL_TYPE:
                for ip in firewall_ips_of(doc):
                    ips.setdefault(ip, str(doc["id"]))
            try:
                parsed[rtype][k] = parsers[rtype](doc)
            except PARSE_FAILURES as error:
                reason = _reason(error, rtype)
                if rtype == RULE_COLLECTION_GROUP_TYPE:
                    group = str(doc["id"]).rstrip("/").rsplit("/", 1)[-1]
                    mark(parent_id(str(doc["id"])), FIREWALL_POLICY_TYPE,
                         f"rule collection group {_shown(group)}: {reason}")
                else:
                    mark(str(doc["id"]), rtype, reason)
        return {"firewalls": parsed[FIREWALL_TYPE], "firewall_policies": parsed[FIREWALL_POLICY_TYPE],
                "rule_collection_groups": parsed[RULE_COLLECTION_GROUP_TYPE], "ip_groups": parsed[IP_GROUP_TYPE],
                "firewall_ips": ips}
