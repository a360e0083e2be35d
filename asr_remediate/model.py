"""Typed model of the parts of an Azure estate that decide whether ASR replication traffic gets out.

Everything here is plain, immutable data parsed once from ARM / Resource Graph JSON by ``estate.py``.
Resource ids are kept in their original spelling for display and for writes, and looked up through
``key()`` (lower case) because ARM, Resource Graph and Site Recovery disagree on casing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def key(resource_id: str) -> str:
    """Case-insensitive identity of an ARM resource id (also tolerates a trailing slash)."""
    return resource_id.strip().rstrip("/").lower()


def subscription_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        return parts[1].lower()
    return ""


def resource_group_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    if len(parts) >= 4 and parts[2].lower() == "resourcegroups":
        return parts[3].lower()
    return ""


def parent_id(resource_id: str, levels: int = 1) -> str:
    """Strip ``levels`` trailing '/type/name' pairs (rule → NSG, subnet → VNet)."""
    parts = resource_id.rstrip("/").split("/")
    return "/".join(parts[: len(parts) - 2 * levels])


OUTBOUND = "outbound"
INBOUND = "inbound"


@dataclass(frozen=True)
class SecurityRule:
    """One NSG rule; string fields keep ARM spelling, comparisons are case-insensitive where Azure's are."""

    name: str
    priority: int
    direction: str  # "inbound" | "outbound" (lower case)
    access: str  # "allow" | "deny" (lower case)
    protocol: str  # "tcp" | "udp" | "icmp" | "esp" | "ah" | "*" (lower case)
    source_prefixes: tuple[str, ...] = ("*",)
    source_ports: tuple[str, ...] = ("*",)
    destination_prefixes: tuple[str, ...] = ("*",)
    destination_ports: tuple[str, ...] = ("*",)
    source_asgs: tuple[str, ...] = ()  # ASG ids (original spelling)
    destination_asgs: tuple[str, ...] = ()
    description: str = ""
    id: str = ""
    is_default: bool = False


@dataclass(frozen=True)
class NetworkSecurityGroup:
    id: str
    name: str
    location: str
    rules: tuple[SecurityRule, ...]  # custom rules, any order
    default_rules: tuple[SecurityRule, ...]  # from defaultSecurityRules or Azure's built-in defaults
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    etag: str = ""


@dataclass(frozen=True)
class Route:
    name: str
    address_prefix: str  # CIDR or a service tag name
    next_hop_type: str  # ARM spelling: Internet, VirtualAppliance, VirtualNetworkGateway, VnetLocal, None
    next_hop_ip: str = ""
    id: str = ""


@dataclass(frozen=True)
class RouteTable:
    id: str
    name: str
    location: str
    routes: tuple[Route, ...]
    disable_bgp_route_propagation: bool = False
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    etag: str = ""


@dataclass(frozen=True)
class ServiceEndpoint:
    service: str  # e.g. Microsoft.Storage
    locations: tuple[str, ...] = ()  # ARM locations or "*"


@dataclass(frozen=True)
class Subnet:
    id: str
    name: str
    address_prefixes: tuple[str, ...]
    nsg_id: str = ""
    route_table_id: str = ""
    service_endpoints: tuple[ServiceEndpoint, ...] = ()
    # privateEndpointNetworkPolicies (lower case): "enabled" / "routetableenabled" let UDRs override the /32 routes of
    # this subnet's private endpoints; ARM's default is "disabled".
    private_endpoint_network_policies: str = "disabled"


@dataclass(frozen=True)
class VirtualNetwork:
    id: str
    name: str
    location: str
    address_prefixes: tuple[str, ...]
    subnets: tuple[Subnet, ...]
    peered_address_prefixes: tuple[str, ...] = ()  # remote spaces of connected peerings: part of VirtualNetwork
    has_gateway_subnet: bool = False  # a GatewaySubnet means a VPN/ExpressRoute gateway may inject BGP routes
    # A connected peering with useRemoteGateways: the hub's gateway injects its learned routes here too.
    uses_remote_gateways: bool = False
    # The remote VNets of those peerings (the hubs whose gateway this VNet uses): failover readiness (issue 12).
    remote_gateway_vnet_ids: tuple[str, ...] = ()
    # Their remote address spaces, as the peerings give them: the hub's space even when the hub VNet is not read.
    remote_gateway_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class IpConfiguration:
    name: str
    private_ip: str
    subnet_id: str
    primary: bool = False
    asg_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkInterface:
    id: str
    name: str
    location: str
    ip_configurations: tuple[IpConfiguration, ...]
    nsg_id: str = ""
    vm_id: str = ""


@dataclass(frozen=True)
class VirtualMachine:
    id: str
    name: str
    location: str
    nic_ids: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class RecoveryNic:
    """Where one source NIC lands after failover (A2A vmNics[])."""

    source_nic_id: str
    recovery_vnet_id: str
    recovery_subnet_names: tuple[str, ...]
    recovery_nsg_id: str = ""


FORWARD = "forward"  # replicating the way it was first enabled (initialPrimaryFabricLocation → initialRecovery…)
FAILBACK = "failback"  # reprotected after a failover: replicating from the first recovery region back to the primary


@dataclass(frozen=True)
class HealthError:
    """One entry of a protected item's ``healthErrors[]`` (or of its ``innerHealthErrors[]``): Site Recovery's own
    complaint about the replication, as ARM returns it (HealthError / InnerHealthError of Microsoft.RecoveryServices).
    Strings keep ARM's spelling and are bounded; ``inner`` is empty for an inner error."""

    code: str  # errorCode, e.g. "151196"
    level: str = ""  # errorLevel: Error | Warning | …
    category: str = ""  # errorCategory, e.g. "Replication", "TestFailover"
    message: str = ""  # errorMessage
    created: str = ""  # creationTimeUtc, ISO 8601 as given
    possible_causes: str = ""
    recommended_action: str = ""
    inner: tuple[HealthError, ...] = ()


@dataclass(frozen=True)
class ItemHealth:
    """What Site Recovery says about one protected item: ``replicationHealth`` and its health errors. ``problem`` is
    why the errors could not be read (a malformed ``healthErrors``): then nothing is claimed about what ASR reports."""

    replication_health: str  # Normal | Warning | Critical | "" (as given)
    errors: tuple[HealthError, ...] = ()
    problem: str = ""


@dataclass(frozen=True)
class ProtectedItem:
    """An A2A replication protected item: the VM it protects and where it replicates to, **as evaluated**: for a
    reprotected item (``direction`` failback) the VM running in the recovery region is the source, and the primary
    network the item names is the target (see ``estate.parse_protected_item``)."""

    id: str
    name: str
    vm_id: str  # providerSpecificDetails.fabricObjectId (failback: recoveryFabricObjectId, the VM that runs)
    source_region: str  # primaryFabricLocation (failback: recoveryFabricLocation)
    target_region: str  # recoveryFabricLocation (failback: primaryFabricLocation)
    protection_state: str = ""
    active_location: str = "Primary"
    encrypted: bool = False  # vmEncryptionType != NotEncrypted (ADE)
    recovery_nics: tuple[RecoveryNic, ...] = ()
    recovery_vnet_id: str = ""  # selectedRecoveryAzureNetworkId
    # Names of the source-side cache storage accounts (protected[Managed]Disks[].primaryStagingAzureStorageAccountId):
    # a firewall's application rules may allow exactly <name>.blob.core.windows.net.
    cache_storage_accounts: tuple[str, ...] = ()
    direction: str = FORWARD
    # The item's primary / recovery fields were swapped to evaluate it from where its VM runs (activeLocation Recovery,
    # replicating again after reprotect). False for an item that has failed over and is not replicating: skipped.
    swapped: bool = False
    current_operation: str = ""  # currentScenario.scenarioName when not "None" (e.g. a reprotect job running)
    # Site Recovery's own verdict (replicationHealth, healthErrors); None when the item did not carry it (a preflight,
    # an estate file without it): then the report makes no claim about what ASR reports.
    health: ItemHealth | None = None


# -- Azure Firewall -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FirewallRule:
    """One rule of a firewall (classic) or of a Firewall Policy rule collection; string fields keep ARM spelling."""

    name: str
    rule_type: str  # "network" | "application" | "nat" (lower case)
    source_addresses: tuple[str, ...] = ()
    source_ip_groups: tuple[str, ...] = ()  # IP group ids
    protocols: tuple[str, ...] = ()  # network / NAT: "tcp", "udp", "icmp", "any"; application: "https:443", …
    destination_addresses: tuple[str, ...] = ()  # IPs, CIDRs, ranges, "*", service tags
    destination_ip_groups: tuple[str, ...] = ()
    destination_fqdns: tuple[str, ...] = ()  # network rules: resolved by the firewall (needs DNS proxy)
    destination_ports: tuple[str, ...] = ()
    target_fqdns: tuple[str, ...] = ()  # application rules; a leading '*' is a wildcard
    target_urls: tuple[str, ...] = ()  # application rules, TLS inspection (Premium)
    fqdn_tags: tuple[str, ...] = ()
    web_categories: tuple[str, ...] = ()
    terminate_tls: bool = False


@dataclass(frozen=True)
class FirewallRuleCollection:
    name: str
    priority: int | None  # None: none given (ordered after the collections of its group that have one)
    action: str  # "allow" | "deny" | "dnat" | "snat" (lower case)
    rules: tuple[FirewallRule, ...]


@dataclass(frozen=True)
class RuleCollectionGroup:
    """A Firewall Policy rule collection group (firewallPolicies/{p}/ruleCollectionGroups/{g})."""

    id: str
    name: str
    priority: int
    collections: tuple[FirewallRuleCollection, ...]
    etag: str = ""


@dataclass(frozen=True)
class FirewallPolicy:
    id: str
    name: str
    location: str
    base_policy_id: str = ""  # the parent policy, whose rules go first
    rule_collection_group_ids: tuple[str, ...] = ()
    dns_proxy: bool = False  # dnsSettings.enableProxy
    tls_inspection: bool = False  # transportSecurity.certificateAuthority set (Premium)
    tier: str = ""  # sku.tier, lower case
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    etag: str = ""


@dataclass(frozen=True)
class AzureFirewall:
    id: str
    name: str
    location: str
    private_ips: tuple[str, ...]  # ipConfigurations[].privateIPAddress, or a secured hub's hubIPAddresses
    policy_id: str = ""  # firewallPolicy: when set, the policy's rules apply (classic rules are not used)
    collections: tuple[tuple[str, FirewallRuleCollection], ...] = ()  # classic rules: (rule type, collection)
    dns_proxy: bool = False  # classic: additionalProperties "Network.DNS.EnableProxy"
    forced_tunnelling: bool = False  # managementIpConfiguration set: data traffic follows AzureFirewallSubnet's routes
    subnet_id: str = ""  # the AzureFirewallSubnet (VNet firewalls)
    virtual_hub_id: str = ""  # a Virtual WAN secured hub
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class IpGroup:
    id: str
    name: str
    addresses: tuple[str, ...]


# -- Azure Virtual Network Manager: effective security admin rules (per VNet) -----------------------------------

ALWAYS_ALLOW = "alwaysallow"


@dataclass(frozen=True)
class AdminAddress:
    """One entry of an admin rule's ``sources`` / ``destinations`` (AddressPrefixItem)."""

    prefix: str  # a CIDR / IP, '*', a service tag, or a network group id
    type: str  # "ipprefix" | "servicetag" | "networkgroup" (lower case)


@dataclass(frozen=True)
class AdminRule:
    """An effective security admin rule on a VNet (ListNetworkManagerEffectiveSecurityAdminRules), custom or default.

    Its id names where it lives: ``…/networkManagers/{manager}/securityAdminConfigurations/{configuration}/
    ruleCollections/{collection}/rules/{rule}``; the platform team changes it there, never the bot."""

    id: str
    name: str
    priority: int  # 1–4096, lower first
    direction: str  # "inbound" | "outbound"
    access: str  # "allow" | "deny" | "alwaysallow"
    protocol: str  # "tcp" | "udp" | "icmp" | "esp" | "ah" | "any"
    sources: tuple[AdminAddress, ...] = ()  # empty: any
    destinations: tuple[AdminAddress, ...] = ()  # empty: any
    source_ports: tuple[str, ...] = ("*",)
    destination_ports: tuple[str, ...] = ("*",)
    kind: str = "custom"  # "custom" | "default"
    description: str = ""
    configuration_description: str = ""
    collection_description: str = ""

    def _part(self, child: str) -> str:
        parts = self.id.strip("/").split("/")
        lowered = [p.lower() for p in parts]
        if child in lowered:
            index = lowered.index(child)
            return parts[index + 1] if index + 1 < len(parts) else ""
        return ""

    @property
    def network_manager_id(self) -> str:
        parts = self.id.strip("/").split("/")
        lowered = [p.lower() for p in parts]
        if "networkmanagers" in lowered:
            return "/" + "/".join(parts[: lowered.index("networkmanagers") + 2])
        return ""

    @property
    def network_manager(self) -> str:
        return self._part("networkmanagers")

    @property
    def configuration(self) -> str:
        return self._part("securityadminconfigurations")

    @property
    def collection(self) -> str:
        return self._part("rulecollections")


# -- Private Link: private endpoints, private DNS zones, Recovery Services vaults (issue 11) ------------------------

@dataclass(frozen=True)
class PrivateLinkConnection:
    """One connection of a private endpoint (privateLinkServiceConnections / manualPrivateLinkServiceConnections) or
    of a vault (privateEndpointConnections); ids in original spelling, the rest lower case."""

    target_id: str  # the resource it connects to (privateLinkServiceId); on a vault: the private endpoint's id
    group_ids: tuple[str, ...]  # "azuresiterecovery", "blob", …
    status: str  # privateLinkServiceConnectionState.status: "approved" | "pending" | "rejected" | "disconnected"


@dataclass(frozen=True)
class PrivateEndpoint:
    id: str
    name: str
    location: str
    subnet_id: str
    connections: tuple[PrivateLinkConnection, ...]
    private_ips: tuple[str, ...]  # customDnsConfigs[].ipAddresses and static ipConfigurations (the NIC's are added)
    nic_ids: tuple[str, ...] = ()
    fqdns: tuple[str, ...] = ()  # customDnsConfigs[].fqdn


@dataclass(frozen=True)
class PrivateDnsZone:
    id: str
    name: str  # lower case, e.g. privatelink.siterecovery.windowsazure.com
    linked_vnets: frozenset[str] = frozenset()  # key() of every VNet with a virtualNetworkLink to the zone


@dataclass(frozen=True)
class RecoveryVault:
    id: str
    name: str
    location: str
    connections: tuple[PrivateLinkConnection, ...] = ()  # privateEndpointConnections (target_id = the endpoint)
    site_recovery_private_endpoints: str = ""  # privateEndpointStateForSiteRecovery, lower case ("enabled", "none")


@dataclass(frozen=True)
class StorageAccount:
    """A (cache) storage account's network rules: publicNetworkAccess and networkAcls."""

    id: str
    name: str  # lower case; storage account names are globally unique
    public_network_access: str = ""  # "enabled" | "disabled" | "securedbyperimeter" | "" (not set: enabled)
    default_action: str = "allow"  # networkAcls.defaultAction, lower case
    subnet_rules: frozenset[str] = frozenset()  # key() of the subnets of Allow virtualNetworkRules
    ip_rules: tuple[str, ...] = ()  # networkAcls.ipRules[].value (public addresses or ranges)


@dataclass(frozen=True)
class PrivateLinks:
    """Everything Private Link in the inventory, by key(id)."""

    endpoints: Mapping[str, PrivateEndpoint] = field(default_factory=lambda: MappingProxyType({}))
    dns_zones: Mapping[str, PrivateDnsZone] = field(default_factory=lambda: MappingProxyType({}))
    vaults: Mapping[str, RecoveryVault] = field(default_factory=lambda: MappingProxyType({}))
    storage_accounts: Mapping[str, StorageAccount] = field(default_factory=lambda: MappingProxyType({}))


# -- On-premises connectivity: gateways, connections, ExpressRoute circuits (failover readiness, issue 12) ---------

@dataclass(frozen=True)
class VirtualNetworkGateway:
    """A VPN or ExpressRoute gateway (Microsoft.Network/virtualNetworkGateways); its VNet is the parent of the
    GatewaySubnet its ipConfigurations name."""

    id: str
    name: str
    location: str
    gateway_type: str  # gatewayType, lower case: "vpn" | "expressroute" | "localgateway"
    vnet_id: str  # "" when no ipConfiguration names a subnet


@dataclass(frozen=True)
class GatewayConnection:
    """A gateway connection (Microsoft.Network/connections): to on-premises (IPsec through a local network gateway,
    ExpressRoute through a circuit), to another VNet's gateway (Vnet2Vnet) or for VPN clients."""

    id: str
    name: str
    location: str
    connection_type: str  # connectionType, lower case: "ipsec" | "expressroute" | "vnet2vnet" | "vpnclient"
    gateway_id: str  # virtualNetworkGateway1
    circuit_id: str = ""  # peer (ExpressRoute: the circuit)
    local_gateway_id: str = ""  # localNetworkGateway2 (IPsec)
    status: str = ""  # connectionStatus, lower case: "connected" | "connecting" | "notconnected" | "unknown" | ""


@dataclass(frozen=True)
class ExpressRouteCircuit:
    id: str
    name: str
    location: str
    sku_tier: str  # sku.tier, lower case: "standard" | "premium" | "basic" | "local"
    peering_location: str = ""  # serviceProviderProperties.peeringLocation (absent for ExpressRoute Direct)
    provider: str = ""  # serviceProviderProperties.serviceProviderName


@dataclass(frozen=True)
class Connectivity:
    """Everything on-premises connectivity in the inventory, by key(id)."""

    gateways: Mapping[str, VirtualNetworkGateway] = field(default_factory=lambda: MappingProxyType({}))
    connections: Mapping[str, GatewayConnection] = field(default_factory=lambda: MappingProxyType({}))
    circuits: Mapping[str, ExpressRouteCircuit] = field(default_factory=lambda: MappingProxyType({}))


# How findings name a resource of each ARM type (lower case) that could not be read.
RESOURCE_LABELS: Mapping[str, str] = MappingProxyType({
    "microsoft.compute/virtualmachines": "VM",
    "microsoft.network/networkinterfaces": "NIC",
    "microsoft.network/virtualnetworks": "VNet",
    "microsoft.network/networksecuritygroups": "NSG",
    "microsoft.network/routetables": "route table",
    "microsoft.network/virtualnetworks/networkmanagereffectivesecurityadminrules": "the security admin rules",
    "microsoft.recoveryservices/vaults/replicationfabrics/replicationprotectioncontainers/replicationprotecteditems":
        "protected item",
    "microsoft.network/azurefirewalls": "Azure Firewall",
    "microsoft.network/firewallpolicies": "firewall policy",
    "microsoft.network/ipgroups": "IP group",
    "microsoft.network/privateendpoints": "private endpoint",
    "microsoft.recoveryservices/vaults": "Recovery Services vault",
    "microsoft.network/privatednszones": "private DNS zone",
    "microsoft.network/virtualnetworkgateways": "virtual network gateway",
    "microsoft.network/connections": "gateway connection",
    "microsoft.network/expressroutecircuits": "ExpressRoute circuit",
    "microsoft.storage/storageaccounts": "storage account",
})


@dataclass(frozen=True)
class UnreadableResource:
    """A resource the inventory (or an estate file) holds but that could not be parsed: a rule whose priority is
    "abc", a route whose prefix is not one. It is left out of the estate's indexes; the VMs whose path uses it are
    ``unknown`` with ``reason``, and the rest of the estate is evaluated as usual."""

    id: str  # original spelling
    type: str  # ARM type, lower case
    reason: str  # one line, bounded: never the offending value in full

    @property
    def message(self) -> str:
        return f"{RESOURCE_LABELS.get(self.type, 'resource')} {self.id} is unreadable: {self.reason}"


@dataclass(frozen=True)
class Estate:
    """Everything the engine needs, indexed by ``key(id)``."""

    protected_items: tuple[ProtectedItem, ...] = ()
    vms: Mapping[str, VirtualMachine] = field(default_factory=lambda: MappingProxyType({}))
    nics: Mapping[str, NetworkInterface] = field(default_factory=lambda: MappingProxyType({}))
    vnets: Mapping[str, VirtualNetwork] = field(default_factory=lambda: MappingProxyType({}))
    subnets: Mapping[str, Subnet] = field(default_factory=lambda: MappingProxyType({}))
    nsgs: Mapping[str, NetworkSecurityGroup] = field(default_factory=lambda: MappingProxyType({}))
    route_tables: Mapping[str, RouteTable] = field(default_factory=lambda: MappingProxyType({}))
    # BGP routes learned from a gateway, per NIC (from its effective route table; opt-in, so usually absent).
    # A key with an empty tuple means "read, and none learned".
    bgp_routes: Mapping[str, tuple[Route, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # Azure's own expansion of the VirtualNetwork tag per NIC, from its effective security rules (opt-in).
    effective_virtual_networks: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # Opt-in per-NIC reads that failed (a NIC of a stopped VM has no effective routes), keyed by the lower-case id
    # of the pseudo-resource (``<nic id>/effectiveroutetable``) → why.
    read_errors: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # AVNM security admin rules in effect per VNet (``key(vnet id)``), from ListNetworkManagerEffectiveSecurityAdmin-
    # Rules. A VNet absent here was not read (an estate file without them): the stage is skipped for it. A failed read
    # is in ``read_errors`` under ``<vnet id>/networkmanagereffectivesecurityadminrules``.
    admin_rules: Mapping[str, tuple[AdminRule, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # Resources that were there but could not be parsed, by ``key(id)``. A child given separately (a security rule,
    # route or subnet) makes its parent unreadable: the parent's content is not known. Never also in the indexes.
    unreadable: Mapping[str, UnreadableResource] = field(default_factory=lambda: MappingProxyType({}))
    # Azure Firewall (issue 10): firewalls, policies, their rule collection groups and IP groups, by key(id).
    firewalls: Mapping[str, AzureFirewall] = field(default_factory=lambda: MappingProxyType({}))
    firewall_policies: Mapping[str, FirewallPolicy] = field(default_factory=lambda: MappingProxyType({}))
    rule_collection_groups: Mapping[str, RuleCollectionGroup] = field(default_factory=lambda: MappingProxyType({}))
    ip_groups: Mapping[str, IpGroup] = field(default_factory=lambda: MappingProxyType({}))
    # Private IP → firewall id, for every firewall in the inventory (readable or not): a route to one of these IPs
    # is a route to an Azure Firewall.
    firewall_ips: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Private endpoints, private DNS zones and Recovery Services vaults (issue 11).
    private_links: PrivateLinks = field(default_factory=PrivateLinks)

    # Gateways, connections and ExpressRoute circuits (failover readiness, issue 12).
    connectivity: Connectivity = field(default_factory=Connectivity)

    def source_nic_ids(self, item: ProtectedItem) -> tuple[str, ...]:
        """The VM's NICs; from the protected item's vmNics when the VM itself is not in the inventory."""
        vm = self.vms.get(key(item.vm_id))
        if vm is not None and vm.nic_ids:
            return vm.nic_ids
        return tuple(n.source_nic_id for n in item.recovery_nics if n.source_nic_id)

    def vnet_of_subnet(self, subnet_id: str) -> VirtualNetwork | None:
        return self.vnets.get(key(parent_id(subnet_id)))
