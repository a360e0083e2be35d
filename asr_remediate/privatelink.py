"""Private endpoints: when ASR traffic does not go to public service tags at all.

A Recovery Services vault can have private endpoints for Site Recovery (group id ``AzureSiteRecovery``): "the vault is
locked down and isn't accessible from networks other than those networks that have private endpoints", and "you'll need
two private endpoints for the vault. One … for the protection of machines in the source network and another for the
reprotection of failed over machines in the recovery network" ("Replicate machines with private endpoints",
learn.microsoft.com/azure/site-recovery/azure-to-azure-how-to-enable-replication-private-endpoints). Then, per side:

- the ``AzureSiteRecovery`` requirement (or the 2017 Site Recovery IPs) becomes the private IPs (TCP 443) of the vault's
  approved private endpoint in the side's VNet — or, in a hub and spoke, in a peered VNet ("If your environment has a
  hub and spoke model, you need only one private endpoint"): an endpoint is reachable when its IPs are in the VNet's
  own or peered address space; one in the VNet itself is preferred. No reachable endpoint is a ``private-endpoint``
  error, not fixable by the bot, and the public tag is **not** required (the vault would refuse it anyway);
- "Microsoft Entra ID currently doesn't support private endpoints": ``AzureActiveDirectory`` stays;
- ``EventHub`` (monitoring) stays: no source says the vault's private endpoint carries it (its five Site Recovery
  FQDNs are the service's microservices), so the conservative reading keeps it;
- on the source side, when every cache storage account of the VM (the protected item's
  ``primaryStagingAzureStorageAccountId``) has an approved ``blob`` private endpoint reachable from the VNet,
  ``Storage`` becomes those endpoints' IPs; a cache account without one keeps the ``Storage`` tag (the target
  side's reprotect cache account is created at reprotect, so the target keeps the tag);
- the VNet must be linked to the private DNS zone the endpoint needs (``privatelink.siterecovery.windowsazure.com``,
  or the ``{region}.privatelink.…`` spelling of the Private Endpoint DNS table; ``privatelink.blob.core.windows.net``
  for storage), else a ``private-dns`` warning: the VM resolves the public name (learn.microsoft.com/azure/
  private-link/private-endpoint-dns: "link the same private DNS zones to all spokes and hub virtual networks that
  contain clients that need DNS resolution from the zones"). A custom DNS server forwarding to Azure DNS may still
  resolve it: the warning says so.

Routes to a private endpoint: it propagates a /32 system route, so "the /32 default route sends traffic directly to the
private endpoint in accordance with the longest prefix match"; only with network policies for route tables on the
endpoint's subnet (``privateEndpointNetworkPolicies`` ``Enabled`` / ``RouteTableEnabled``) can a user-defined route
override it, and then only one whose prefix "is equal to or smaller than the virtual network address space where the
private endpoint is provisioned" (learn.microsoft.com/azure/private-link/disable-private-endpoint-network-policy).
A /32 UDR for the IP itself wins either way (equal length: user before system). ``endpoint_routes`` keeps exactly the
routes that can win.

>>> from asr_remediate.model import (PrivateEndpoint, PrivateLinkConnection, PrivateLinks, ProtectedItem, Subnet,
...                                  VirtualNetwork, Estate)
>>> from asr_remediate.requirements import Requirement
>>> vault = "/subscriptions/s/resourceGroups/dr/providers/Microsoft.RecoveryServices/vaults/v"
>>> item = ProtectedItem(vault + "/replicationFabrics/f/replicationProtectionContainers/c/replicationProtectedItems/i",
...                      "i", "/vm", "eastus", "westus")
>>> subnet = Subnet("/vnets/spoke/subnets/pe", "pe", ("10.1.9.0/24",))
>>> vnet = VirtualNetwork("/vnets/spoke", "spoke", "eastus", ("10.1.0.0/16",), (subnet,))
>>> pe = PrivateEndpoint("/pe/asr", "pe-asr", "eastus", subnet.id,
...                      (PrivateLinkConnection(vault, ("azuresiterecovery",), "approved"),), ("10.1.9.4", "10.1.9.5"))
>>> estate = Estate(vnets={"/vnets/spoke": vnet}, private_links=PrivateLinks(endpoints={"/pe/asr": pe}))
>>> needs = [Requirement("source", "AzureSiteRecovery", "AzureSiteRecovery", "talk to Site Recovery", None,
...                      tag="AzureSiteRecovery")]
>>> side = private_side(item, vnet, "source", needs, estate)
>>> [(r.destination, str(r.prefixes)) for r in side.requirements]
[('AzureSiteRecovery private endpoint pe-asr', '10.1.9.4/31')]
>>> [p.kind for p in side.problems]  # no private DNS zone linked to the VNet
['private-dns']
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .ipset import IdentityCache, IPSet, parse_ipv4_prefix
from .model import (
    Estate,
    PrivateEndpoint,
    ProtectedItem,
    Route,
    RouteTable,
    Subnet,
    VirtualNetwork,
    key,
    parent_id,
)
from .requirements import SOURCE, Requirement
from .routes import Hop

SITE_RECOVERY_GROUP = "azuresiterecovery"
BLOB_GROUP = "blob"
SITE_RECOVERY_ZONE = "privatelink.siterecovery.windowsazure.com"
BLOB_ZONE = "privatelink.blob.core.windows.net"
_ROUTE_POLICIES = frozenset({"enabled", "routetableenabled"})


@dataclass(frozen=True)
class Problem:
    """A finding of the private endpoint stage, in plain data (drift turns it into a Finding)."""

    kind: str  # "private-endpoint" | "cache-storage" (errors) | "private-dns" (warning) | "unknown"
    severity: str
    destination: str
    resource_id: str
    message: str


@dataclass(frozen=True)
class PrivateSide:
    requirements: tuple[Requirement, ...]
    problems: tuple[Problem, ...] = ()


def vault_id_of(item: ProtectedItem) -> str:
    """The vault of a protected item: its id is …/vaults/{v}/replicationFabrics/{f}/replicationProtectionContainers/
    {c}/replicationProtectedItems/{i}."""
    parts = item.id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "vaults" in lowered and lowered.index("vaults") + 1 < len(parts):
        return "/" + "/".join(parts[: lowered.index("vaults") + 2])
    return ""


def _targets(endpoint: PrivateEndpoint, target_key: str, group: str) -> list[str]:
    """The statuses of the endpoint's connections to ``target_key`` for ``group``."""
    return [c.status for c in endpoint.connections if key(c.target_id) == target_key and group in c.group_ids]


def vault_uses_private_endpoints(estate: Estate, vault_id: str) -> bool:
    """The vault has (or had asked for) private endpoints for Site Recovery: privateEndpointStateForSiteRecovery
    ``Enabled``, a Site Recovery connection on the vault, or an endpoint in the inventory connecting to it."""
    vault_key = key(vault_id)
    vault = estate.private_links.vaults.get(vault_key)
    if vault is not None and (vault.site_recovery_private_endpoints == "enabled"
                              or any(SITE_RECOVERY_GROUP in c.group_ids for c in vault.connections)):
        return True
    return any(_targets(e, vault_key, SITE_RECOVERY_GROUP) for e in estate.private_links.endpoints.values())


def _relevant(estate: Estate, endpoint: PrivateEndpoint, target_key: str, group: str) -> bool:
    """The endpoint connects to the target for ``group``: by its own connections when it has any to the target (an
    AzureBackup endpoint of the same vault is not one), else by the vault's list of connections."""
    own = [c for c in endpoint.connections if key(c.target_id) == target_key]
    if own:
        return any(group in c.group_ids for c in own)
    vault = estate.private_links.vaults.get(target_key)
    return vault is not None and any(key(c.target_id) == key(endpoint.id) and (group in c.group_ids or not c.group_ids)
                                     for c in vault.connections)


def _approved(estate: Estate, endpoint: PrivateEndpoint, target_key: str, group: str) -> bool:
    """Approved on the endpoint's side (its connection state), or on the vault's side when the endpoint says nothing."""
    statuses = _targets(endpoint, target_key, group)
    if statuses:
        return "approved" in statuses
    vault = estate.private_links.vaults.get(target_key)
    return vault is not None and any(key(c.target_id) == key(endpoint.id) and c.status == "approved"
                                     for c in vault.connections)


def _reach(endpoint: PrivateEndpoint, vnet: VirtualNetwork) -> int:
    """2: the endpoint is in the VNet; 1: in a peered address space; 0: not reachable from the VNet."""
    if key(parent_id(endpoint.subnet_id, 1)) == key(vnet.id):
        return 2
    try:
        ips = IPSet.from_prefixes(endpoint.private_ips)
        if ips and ips.issubset(IPSet.from_prefixes(vnet.address_prefixes)):
            return 2
        if ips and ips.issubset(IPSet.from_prefixes(vnet.peered_address_prefixes)):
            return 1
    except ValueError:
        return 0
    return 0


def _reachable(estate: Estate, vnet: VirtualNetwork, target_key: str, group: str,
               match: str = "") -> tuple[list[PrivateEndpoint], list[PrivateEndpoint]]:
    """(approved endpoints to use, the not approved ones seen) reachable from ``vnet``; own-VNet ones first."""
    usable: dict[int, list[PrivateEndpoint]] = {1: [], 2: []}
    waiting: list[PrivateEndpoint] = []
    for endpoint in sorted(estate.private_links.endpoints.values(), key=lambda e: key(e.id)):
        if match:
            hits = [c for c in endpoint.connections if group in c.group_ids
                    and "/microsoft.storage/storageaccounts/" in key(c.target_id)
                    and key(c.target_id).rsplit("/", 1)[-1] == match]
            if not hits:
                continue
            approved = any(c.status == "approved" for c in hits)
        else:
            if not _relevant(estate, endpoint, target_key, group):
                continue
            approved = _approved(estate, endpoint, target_key, group)
        reach = _reach(endpoint, vnet)
        if not reach:
            continue
        (usable[reach] if approved else waiting).append(endpoint)
    return usable[2] or usable[1], waiting


def _approved_elsewhere(estate: Estate, vault_key: str) -> list[str]:
    """The private endpoints the vault's own approved Site Recovery connections name that are not in the inventory
    (sorted ids): typically a hub's endpoint in a connectivity subscription not read (in a hub and spoke "only one
    private endpoint", Replicate machines with private endpoints), which only the vault's
    ``privateEndpointConnections[].properties.privateEndpoint.id`` (GETVault.json) says exists. Its IPs and VNet are
    not known, so whether it serves the VNet is unknown — not a missing endpoint (an error telling the operator to
    create one that exists)."""
    vault = estate.private_links.vaults.get(vault_key)
    return sorted({c.target_id for c in (vault.connections if vault else ())
                   if c.status == "approved" and (SITE_RECOVERY_GROUP in c.group_ids or not c.group_ids)
                   and c.target_id and key(c.target_id) not in estate.private_links.endpoints})


def _zone_linked(estate: Estate, vnet: VirtualNetwork, zone: str) -> bool:
    vnet_key = key(vnet.id)
    return any((z.name == zone or z.name.endswith("." + zone)) and vnet_key in z.linked_vnets
               for z in estate.private_links.dns_zones.values())


def _endpoint_requirement(side: str, endpoint: PrivateEndpoint, what: str, reason: str) -> Requirement:
    prefixes = IPSet.from_prefixes(endpoint.private_ips) if endpoint.private_ips else None
    shown = ", ".join(endpoint.private_ips) or "no private IP in the inventory"
    return Requirement(side, f"{what} private endpoint {endpoint.name}", f"pe-{endpoint.name}",
                       f"{reason} through private endpoint {endpoint.name} ({shown})", prefixes, tag="",
                       style="prefix", private_endpoint=endpoint.id)


def _dns_problem(vnet: VirtualNetwork, side: str, destination: str, zone: str, endpoints: list[PrivateEndpoint],
                 public_name: str) -> Problem:
    names = ", ".join(e.name for e in endpoints)
    return Problem("private-dns", "warning", destination, vnet.id,
                   f"VNet {vnet.name} ({side} side) is not linked to a private DNS zone {zone}: the VMs resolve "
                   f"{public_name} to its public address instead of private endpoint {names}, which "
                   f"{'the vault refuses' if zone == SITE_RECOVERY_ZONE else 'bypasses the endpoint'}; add a virtual "
                   f"network link from the zone to VNet {vnet.name} (unless a custom DNS server forwards the zone)")


def _is_site_recovery(req: Requirement) -> bool:
    return req.tag.lower() == "azuresiterecovery" or req.slug.startswith("seed-siterecovery")


def _is_storage(req: Requirement) -> bool:
    return (req.tag or req.slug).split(".", 1)[0].lower() == "storage"


def private_side(item: ProtectedItem, vnet: VirtualNetwork, side: str, requirements: list[Requirement],
                 estate: Estate, subnet: Subnet | None = None) -> PrivateSide:
    """The requirements of one side as the vault's and cache accounts' private endpoints change them, and the
    stage's problems. Memoised: the VMs of a VNet share the Requirement objects (the engine memoises by identity)."""
    vault_id = vault_id_of(item)
    caches = item.cache_storage_accounts if side == SOURCE else ()
    links = estate.private_links
    if not links.endpoints and not links.vaults and not links.storage_accounts and not estate.unreadable:
        return PrivateSide(tuple(requirements))
    return _SIDES.get((links, vnet, subnet, *requirements), (key(vault_id), caches, side),
                      lambda: _private_side(vault_id, caches, vnet, side, requirements, estate, subnet))


_SIDES: IdentityCache[PrivateSide] = IdentityCache()


def _private_side(vault_id: str, caches: tuple[str, ...], vnet: VirtualNetwork, side: str,
                  requirements: list[Requirement], estate: Estate, subnet: Subnet | None) -> PrivateSide:
    result: list[Requirement] = []
    problems: list[Problem] = []
    vault_key = key(vault_id)
    locked = bool(vault_id) and vault_uses_private_endpoints(estate, vault_id)
    unreadable = estate.unreadable.get(vault_key) if vault_id else None
    if unreadable is not None and not locked:
        problems.append(Problem("unknown", "warning", "AzureSiteRecovery", unreadable.id,
                                f"{unreadable.message}: whether it uses private endpoints for Site Recovery (and so "
                                "whether AzureSiteRecovery goes to the public tag or to an endpoint) is not known"))
    site_recovery: list[Requirement] = []
    if locked:
        vault = estate.private_links.vaults.get(vault_key)
        vault_name = vault.name if vault else vault_id.rsplit("/", 1)[-1]
        usable, waiting = _reachable(estate, vnet, vault_key, SITE_RECOVERY_GROUP)
        if usable:
            site_recovery = [_endpoint_requirement(side, e, "AzureSiteRecovery", "talk to the Site Recovery service")
                             for e in usable]
            if not _zone_linked(estate, vnet, SITE_RECOVERY_ZONE):
                problems.append(_dns_problem(vnet, side, "AzureSiteRecovery", SITE_RECOVERY_ZONE, usable,
                                             "*.hypervrecoverymanager.windowsazure.com"))
        elif absent := _approved_elsewhere(estate, vault_key):
            problems.append(Problem(
                "unknown", "warning", "AzureSiteRecovery", vault_id,
                f"vault {vault_name} uses private endpoints for Site Recovery and VNet {vnet.name} ({side} side) has "
                f"none of them in the inventory, but the vault has an approved connection to private endpoint "
                f"{', '.join(absent)}, which is not in the inventory (its subscription was not read — a hub in a "
                "connectivity subscription: list it in ASR_SUBSCRIPTIONS): cannot tell whether the VMs reach it"))
        else:
            pending = (f"; private endpoint {', '.join(e.name for e in waiting)} is not approved: approve it in the "
                       f"vault's private endpoint connections") if waiting else ""
            where = "replicate" if side == SOURCE else "reprotect after failover"
            problems.append(Problem(
                "private-endpoint", "error", "AzureSiteRecovery", vault_id,
                f"vault {vault_name} uses private endpoints for Site Recovery, so it accepts no traffic from networks "
                f"without one, and VNet {vnet.name} ({side} side) has no approved private endpoint of it, in the VNet "
                f"or a peered VNet: the VMs cannot {where}{pending}. Create a private endpoint for the vault (target "
                f"sub-resource AzureSiteRecovery) in VNet {vnet.name} or its peered hub, with the private DNS zone "
                f"{SITE_RECOVERY_ZONE}; asr-remediate never opens the public AzureSiteRecovery tag for it"))
    storage: list[Requirement] = []
    storage_covered = False
    if caches:
        missing = []
        found: dict[str, PrivateEndpoint] = {}
        for name in caches:
            usable, _ = _reachable(estate, vnet, "", BLOB_GROUP, match=name)
            if usable:
                for e in usable:
                    found.setdefault(key(e.id), e)
            else:
                missing.append(name)
                problem = _storage_rules_problem(estate, name, vnet, subnet)
                if problem is not None:
                    problems.append(problem)
        storage = [_endpoint_requirement(side, e, "Storage (cache)", "write replication data to the cache storage "
                                                                      "account") for e in found.values()]
        storage_covered = bool(found) and not missing
        if found and not _zone_linked(estate, vnet, BLOB_ZONE):
            problems.append(_dns_problem(vnet, side, "Storage", BLOB_ZONE, list(found.values()),
                                         ", ".join(f"{n}.blob.core.windows.net" for n in caches)))
    for req in requirements:
        if locked and _is_site_recovery(req):
            result.extend(site_recovery)
            site_recovery = []
            continue
        if _is_storage(req) and side == SOURCE and storage:
            if not storage_covered:
                result.append(req)
            result.extend(storage)
            storage = []
            continue
        result.append(req)
    return PrivateSide(tuple(result), tuple(problems))


def _storage_rules_problem(estate: Estate, name: str, vnet: VirtualNetwork, subnet: Subnet | None) -> Problem | None:
    """A cache storage account reached over its public endpoint (no private endpoint reachable from the VNet) whose
    network rules refuse the VM. ``publicNetworkAccess`` ``Disabled`` "disables access from any public address space
    … and denies all logins that match IP or virtual network-based firewall rules" (Azure Policy built-in
    StoragePublicNetworkAccess_AuditDeny, Azure/azure-policy); with ``networkAcls.defaultAction`` ``Deny`` only the
    listed networks get in, a subnet through a virtual network rule with a Microsoft.Storage service endpoint on it
    (learn.microsoft.com/azure/storage/common/storage-network-security). IP rules name public addresses, and the VM's
    public egress address is not in the inventory: unknown, not a guess."""
    account = next((a for a in estate.private_links.storage_accounts.values() if a.name == name), None)
    if account is None:
        return None
    what = f"cache storage account {account.name}"
    if account.public_network_access == "disabled":
        return Problem("cache-storage", "error", "Storage", account.id,
                       f"{what} disables public network access and VNet {vnet.name} has no approved blob private "
                       f"endpoint of it (in the VNet or a peered VNet): ASR cannot write the replication data; create "
                       f"one (target sub-resource blob, private DNS zone {BLOB_ZONE}) or allow public network access")
    if account.default_action != "deny":
        return None
    if subnet is not None and key(subnet.id) in account.subnet_rules and any(
            e.service.lower() == "microsoft.storage" for e in subnet.service_endpoints):
        return None
    where = f"subnet {subnet.name}" if subnet is not None else f"VNet {vnet.name}"
    if account.ip_rules:
        return Problem("unknown", "warning", "Storage", account.id,
                       f"cannot tell whether {what} lets {where} in: its firewall denies by default, no virtual "
                       f"network rule allows {where}, and its IP rules ({', '.join(account.ip_rules[:5])}) may or "
                       "may not hold the VM's public egress address")
    return Problem("cache-storage", "error", "Storage", account.id,
                   f"the firewall of {what} denies by default and no virtual network rule allows {where} (with a "
                   f"Microsoft.Storage service endpoint) nor a private endpoint serves VNet {vnet.name}: ASR cannot "
                   f"write the replication data; add a virtual network rule for {where} or a blob private endpoint")


def endpoint_routes(table: RouteTable | None, bgp: tuple[Route, ...], req: Requirement,
                    estate: Estate) -> tuple[RouteTable | None, tuple[Route, ...]]:
    """The routes that can carry traffic to a private endpoint's IPs instead of its /32 system route. With route-table
    network policies on the endpoint's subnet, a route as wide as the endpoint VNet's address space or wider
    invalidates the /32 route: then every route competes as usual (longest prefix match). Otherwise only a /32 for
    the IP beats it (equal length, user before system): the other routes are left out."""
    endpoint = estate.private_links.endpoints.get(key(req.private_endpoint)) if req.private_endpoint else None
    if endpoint is None or (table is None and not bgp):
        return table, bgp
    return _ROUTES.get((table, endpoint, estate.subnets, estate.vnets), bgp,
                       lambda: _endpoint_routes(table, bgp, endpoint, estate))


_ROUTES: IdentityCache[tuple[RouteTable | None, tuple[Route, ...]]] = IdentityCache(4096)


def _endpoint_routes(table: RouteTable | None, bgp: tuple[Route, ...], endpoint: PrivateEndpoint,
                     estate: Estate) -> tuple[RouteTable | None, tuple[Route, ...]]:
    subnet = estate.subnets.get(key(endpoint.subnet_id))
    policies = subnet.private_endpoint_network_policies if subnet is not None else "disabled"
    vnet = estate.vnet_of_subnet(endpoint.subnet_id)
    ips = IPSet.from_prefixes(endpoint.private_ips) if endpoint.private_ips else IPSet.of(())
    widest = -1  # without route-table policies only a /32 for the IP itself can win
    if policies in _ROUTE_POLICIES and vnet is not None:
        lengths = [int(p.split("/")[1]) if "/" in p else 32 for p in vnet.address_prefixes
                   if IPSet.from_prefixes((p,)).overlaps(ips)]
        widest = min(lengths, default=-1)

    def covers(route: Route, exact: bool) -> bool:
        try:
            start, end = parse_ipv4_prefix(route.address_prefix.strip())
        except ValueError:
            return False  # a service-tag route: tags hold public addresses, never a private endpoint's
        if not IPSet.of(((start, end),)).overlaps(ips):
            return False
        length = 32 - (end - start + 1).bit_length() + 1
        return length == 32 if exact else length <= widest

    routes = (*(table.routes if table is not None else ()), *bgp)
    if any(covers(r, exact=False) for r in routes):
        return table, bgp  # the /32 route is invalidated: plain longest prefix match over every route
    # Only a /32 for the IP beats the endpoint's own /32 route.
    kept_table = replace(table, routes=tuple(r for r in table.routes if covers(r, exact=True))) \
        if table is not None else None
    return kept_table, tuple(r for r in bgp if covers(r, exact=True))


def endpoint_verdict(hop: Hop) -> str:
    """A route's verdict for traffic to a private endpoint: it must stay in the VNet or its peerings (the endpoint's
    own /32 system route has next hop InterfaceEndpoint); an appliance is a warning; anything else, the Internet
    included, never reaches the endpoint."""
    if hop.origin == "unknown":
        return "unknown"
    kind = hop.next_hop_type.lower()
    if kind in _ENDPOINT_HOPS:
        return "ok"
    return "warning" if kind == "virtualappliance" else "error"


_ENDPOINT_HOPS = frozenset({"vnetlocal", "vnetpeering", "interfaceendpoint"})


__all__ = ["BLOB_ZONE", "SITE_RECOVERY_ZONE", "PrivateSide", "Problem", "endpoint_routes", "endpoint_verdict",
           "private_side",
           "vault_id_of", "vault_uses_private_endpoints"]
