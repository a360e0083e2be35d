"""Private endpoints: the vault's (Site Recovery) and the cache storage accounts' (blob) replace the public tags.

Sources for each behaviour (also in asr_remediate/privatelink.py and the README):
- "When a private endpoint is created for a vault, the vault is locked down and isn't accessible from networks other
  than those networks that have private endpoints"; "Microsoft Entra ID currently doesn't support private endpoints …
  use network security group tag 'Azure Active Directory'"; "you'll need two private endpoints for the vault. One … in
  the source network and another for the reprotection of failed over machines in the recovery network"; "If your
  environment has a hub and spoke model, you need only one private endpoint and only one private DNS zone"; the zone
  `privatelink.siterecovery.windowsazure.com`; a cache storage account private endpoint is optional —
  learn.microsoft.com/azure/site-recovery/azure-to-azure-how-to-enable-replication-private-endpoints
  (MicrosoftDocs/azure-docs articles/site-recovery/azure-to-azure-how-to-enable-replication-private-endpoints.md).
- Zones: "Azure Site Recovery (Microsoft.RecoveryServices/vaults) / AzureSiteRecovery | {region}.privatelink.
  siterecovery.windowsazure.com"; storage blob `privatelink.blob.core.windows.net`; "link the same private DNS zones to
  all spokes and hub virtual networks that contain clients" —
  learn.microsoft.com/azure/private-link/private-endpoint-dns.
- Routes: "the /32 default route sends traffic directly to the private endpoint in accordance with the longest prefix
  match"; with network policies for user-defined routes, "user-defined routes must have a prefix size that is equal to
  or smaller than the virtual network address space where the private endpoint is provisioned" —
  learn.microsoft.com/azure/private-link/disable-private-endpoint-network-policy.
- Shapes: PrivateEndpointGet.json (Microsoft.Network 2025-05-01), GETVault.json (Microsoft.RecoveryServices
  2025-02-01), VirtualNetworkLinkGet.json (privatedns 2024-06-01), Azure/azure-rest-api-specs; copies in tests/data/arm.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr_remediate.config import Settings
from asr_remediate.drift import COMPLIANT, DRIFT
from asr_remediate.estate import build_estate
from asr_remediate.ipset import IPSet, address_to_int
from asr_remediate.model import (
    Estate,
    PrivateEndpoint,
    PrivateLinkConnection,
    PrivateLinks,
    Route,
    RouteTable,
    Subnet,
    VirtualNetwork,
    key,
)
from asr_remediate.privatelink import endpoint_routes, endpoint_verdict, vault_uses_private_endpoints
from asr_remediate.requirements import Requirement
from asr_remediate.routes import Hop, route_hops
from examples.estate_builder import dns_zone_link, private_endpoint, recovery_vault, rid, vault_id
from tests.oracle import endpoint_next_hop
from tests.scenario import DR_RG, RG, SUB, Scenario, allow, deny, full_tags, scan_resources

ARM = Path(__file__).parent / "data" / "arm"
VAULT = vault_id(SUB, "vault")
ASR_ZONE = "privatelink.siterecovery.windowsazure.com"
BLOB_ZONE = "privatelink.blob.core.windows.net"
SRC_VNET = rid(SUB, RG, "Microsoft.Network", "virtualNetworks", "vnet-src")
DR_VNET = rid(SUB, DR_RG, "Microsoft.Network", "virtualNetworks", "vnet-dr")
CACHE = rid(SUB, RG, "Microsoft.Storage", "storageAccounts", "cacheeastus01")

# A locked-down spoke: only what ASR needs besides the Site Recovery service, then deny the Internet.
SOURCE_LOCKED = [allow(100, "AzureActiveDirectory"), allow(110, "EventHub.CentralUS"), allow(120, "Storage.EastUS"),
                 deny(4000, "Internet")]
TARGET_LOCKED = [allow(100, "AzureActiveDirectory"), allow(110, "EventHub.EastUS"), allow(120, "Storage.CentralUS"),
                 deny(4000, "Internet")]


def body(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ARM / name).read_text())["responses"]["200"]["body"]
    return document


def add_subnet(resources: list[dict[str, Any]], vnet_id: str, name: str, prefix: str, policies: str = "") -> str:
    vnet = next(r for r in resources if r["id"] == vnet_id)
    props: dict[str, Any] = {"addressPrefix": prefix}
    if policies:
        props["privateEndpointNetworkPolicies"] = policies
    vnet["properties"]["subnets"].append({"name": name, "id": f"{vnet_id}/subnets/{name}", "properties": props})
    return f"{vnet_id}/subnets/{name}"


def locked_down(scenario: Scenario | None = None, *, source_pe: bool = True, target_pe: bool = True,
                dns: bool = True, status: str = "Approved", policies: str = "") -> list[dict[str, Any]]:
    """The scenario with a vault that has Site Recovery private endpoints in the source and the recovery VNet."""
    resources = (scenario or Scenario(subnet_rules=SOURCE_LOCKED, recovery_rules=TARGET_LOCKED)).resources()
    endpoints = []
    if source_pe:
        subnet = add_subnet(resources, SRC_VNET, "snet-pe", "10.1.9.0/24", policies)
        endpoints.append(private_endpoint(SUB, RG, "pe-asr-src", "eastus", subnet, VAULT, "AzureSiteRecovery",
                                          ["10.1.9.4", "10.1.9.5", "10.1.9.6", "10.1.9.7", "10.1.9.8"], status))
    if target_pe:
        subnet = add_subnet(resources, DR_VNET, "snet-pe", "10.2.9.0/24", policies)
        endpoints.append(private_endpoint(SUB, DR_RG, "pe-asr-dr", "centralus", subnet, VAULT, "AzureSiteRecovery",
                                          ["10.2.9.4", "10.2.9.5", "10.2.9.6", "10.2.9.7", "10.2.9.8"], status))
    resources += endpoints
    resources.append(recovery_vault(SUB, "vault", "centralus", [(e["id"], status) for e in endpoints]))
    if dns:
        resources += [dns_zone_link(SUB, DR_RG, ASR_ZONE, "link-src", SRC_VNET),
                      dns_zone_link(SUB, DR_RG, ASR_ZONE, "link-dr", DR_VNET)]
    return resources


def by_side(plan: Any, side: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in plan.reports[0].findings:
        if f.side == side:
            out.setdefault(f.destination, set()).add(f.kind)
    return out


def planned_destinations(plan: Any) -> list[str]:
    return [str(p) for c in plan.changes for key in ("destinationAddressPrefix", "destinationAddressPrefixes",
                                                     "addressPrefix") if (p := c.properties.get(key))]


# --- parsing the real payloads ------------------------------------------------------------------------------------

def test_the_real_private_endpoint_vault_and_dns_link_examples_parse() -> None:
    """Golden: PrivateEndpointGet (IPs from customDnsConfigs and static ipConfigurations, an Approved connection),
    GETVault (an AzureBackup connection only, privateEndpointStateForSiteRecovery None) and VirtualNetworkLinkGet."""
    estate = build_estate([body("PrivateEndpointGet.json"), body("GETVault.json"), body("VirtualNetworkLinkGet.json")])
    assert estate.unreadable == {}
    (endpoint,) = estate.private_links.endpoints.values()
    assert endpoint.name == "testPe" and endpoint.subnet_id.endswith("/virtualNetworks/myVnet/subnets/mySubnet")
    assert endpoint.private_ips == ("192.168.0.4", "192.168.0.5", "192.168.0.6", "192.168.0.7")
    assert endpoint.fqdns == ("abc.cosmos.com", "abc2.cosmos.com")
    (connection,) = endpoint.connections
    assert (connection.group_ids, connection.status) == (("groupidfromresource",), "approved")
    assert connection.target_id.endswith("/privateLinkServices/testPls")
    (vault,) = estate.private_links.vaults.values()
    assert vault.name == "swaggerExample" and vault.site_recovery_private_endpoints == "none"
    assert [(c.group_ids, c.status) for c in vault.connections] == [(("azurebackup",), "approved")]
    assert not vault_uses_private_endpoints(estate, vault.id), "a Backup endpoint does not lock Site Recovery"
    (zone,) = estate.private_links.dns_zones.values()
    assert zone.name == "privatezone1.com"
    assert zone.linked_vnets == {"/subscriptions/virtualnetworksubscriptionid/resourcegroups/"
                                 "virtualnetworkresourcegroup/providers/microsoft.network/virtualnetworks/"
                                 "virtualnetworkname"}


def test_a_malformed_private_endpoint_is_unreadable_not_a_failed_scan() -> None:
    bad = body("PrivateEndpointGet.json")
    bad["properties"]["customDnsConfigs"][0]["ipAddresses"] = ["10.0.0.300"]
    estate = build_estate([bad])
    assert estate.private_links.endpoints == {}
    (why,) = estate.unreadable.values()
    assert why.type == "microsoft.network/privateendpoints" and "not an IPv4 address" in why.reason


# --- the locked-down spoke ----------------------------------------------------------------------------------------

def test_a_locked_down_spoke_with_the_vaults_private_endpoints_is_compliant_with_an_empty_plan() -> None:
    plan = scan_resources(locked_down())
    report = plan.reports[0]
    assert report.status == COMPLIANT, [f.message for f in report.findings]
    assert report.findings == () and plan.changes == ()


def test_without_the_private_endpoints_the_same_spoke_would_need_the_public_tag() -> None:
    """Control: the same NSGs without a vault locked to private endpoints deny AzureSiteRecovery."""
    plan = scan_resources(Scenario(subnet_rules=SOURCE_LOCKED, recovery_rules=TARGET_LOCKED).resources())
    assert by_side(plan, "source") == {"AzureSiteRecovery": {"nsg-deny"}}
    assert "AzureSiteRecovery" in planned_destinations(plan)


def test_no_private_endpoint_in_the_recovery_vnet_is_an_error_and_no_public_tag_is_planned() -> None:
    plan = scan_resources(locked_down(target_pe=False))
    report = plan.reports[0]
    assert report.status == DRIFT
    assert by_side(plan, "source") == {}
    assert by_side(plan, "target") == {"AzureSiteRecovery": {"private-endpoint"}}
    (finding,) = [f for f in report.findings if f.kind == "private-endpoint"]
    assert (finding.severity, finding.fixable, finding.resource_id) == ("error", False, VAULT)
    for words in ("vault vault uses private endpoints", "VNet vnet-dr (target side)", "reprotect after failover",
                  "AzureSiteRecovery", ASR_ZONE, "never opens the public AzureSiteRecovery tag"):
        assert words in finding.message, (words, finding.message)
    assert plan.changes == (), "never a rule to the public tag the private endpoint makes unnecessary"


def test_a_pending_private_endpoint_is_not_used_and_says_to_approve_it() -> None:
    plan = scan_resources(locked_down(status="Pending"))
    findings = [f for f in plan.reports[0].findings if f.kind == "private-endpoint"]
    assert {f.side for f in findings} == {"source", "target"}
    assert all("pe-asr-" in f.message and "not approved" in f.message for f in findings)
    assert plan.changes == ()


def test_the_vnet_not_linked_to_the_private_dns_zone_is_a_warning() -> None:
    plan = scan_resources(locked_down(dns=False))
    report = plan.reports[0]
    assert report.status == COMPLIANT
    warnings = [f for f in report.findings if f.kind == "private-dns"]
    assert {(f.side, f.resource_id) for f in warnings} == {("source", SRC_VNET), ("target", DR_VNET)}
    assert all(f.severity == "warning" and ASR_ZONE in f.message and "public address" in f.message for f in warnings)


def test_a_zone_in_the_region_spelling_counts_as_linked() -> None:
    resources = locked_down(dns=False)
    resources += [dns_zone_link(SUB, DR_RG, "eus." + ASR_ZONE, "l1", SRC_VNET),
                  dns_zone_link(SUB, DR_RG, "cus." + ASR_ZONE, "l2", DR_VNET)]
    assert scan_resources(resources).reports[0].findings == ()


def test_an_azure_backup_endpoint_of_the_same_vault_is_not_a_site_recovery_endpoint() -> None:
    resources = Scenario(subnet_rules=SOURCE_LOCKED, recovery_rules=TARGET_LOCKED).resources()
    subnet = add_subnet(resources, SRC_VNET, "snet-pe", "10.1.9.0/24")
    backup = private_endpoint(SUB, RG, "pe-backup", "eastus", subnet, VAULT, "AzureBackup", ["10.1.9.4"])
    resources += [backup, recovery_vault(SUB, "vault", "centralus", site_recovery="None")]
    plan = scan_resources(resources)
    assert by_side(plan, "source") == {"AzureSiteRecovery": {"nsg-deny"}}, "the public path is still the one used"


def test_an_nsg_denying_the_private_endpoint_gets_a_rule_to_its_ips_never_to_the_tag() -> None:
    source = [*SOURCE_LOCKED[:3], deny(4000, "*")]  # deny everything else, VirtualNetwork included
    plan = scan_resources(locked_down(Scenario(subnet_rules=source, recovery_rules=TARGET_LOCKED)))
    assert by_side(plan, "source") == {"AzureSiteRecovery private endpoint pe-asr-src": {"nsg-deny"}}
    (change,) = plan.changes
    assert change.properties["destinationAddressPrefixes"] == ["10.1.9.4/30", "10.1.9.8/32"]
    assert change.name == "asr-remediate-pe-pe-asr-src"
    assert "AzureSiteRecovery" not in planned_destinations(plan)
    assert plan.reports[0].findings[0].fixable


def test_a_hub_private_endpoint_serves_a_peered_spoke() -> None:
    """Hub and spoke: one endpoint in the hub, reached over the peering (its IPs are in the peered address space)."""
    resources = locked_down(source_pe=False)
    hub_subnet = "/subscriptions/" + SUB + "/resourceGroups/rg-hub/providers/Microsoft.Network/virtualNetworks/" \
                                           "vnet-hub/subnets/snet-pe"
    resources.append(private_endpoint(SUB, "rg-hub", "pe-asr-hub", "eastus", hub_subnet, VAULT, "AzureSiteRecovery",
                                      ["10.0.9.4"]))
    spoke = next(r for r in resources if r["id"] == SRC_VNET)
    spoke["properties"]["virtualNetworkPeerings"] = [
        {"name": "to-hub", "properties": {"peeringState": "Connected",
                                          "remoteAddressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}]
    plan = scan_resources(resources)
    assert plan.reports[0].status == COMPLIANT and plan.changes == ()
    (vault,) = [r for r in resources if r["type"] == "microsoft.recoveryservices/vaults"]
    assert len(vault["properties"]["privateEndpointConnections"]) == 1  # the hub's is known from its own side only


# --- routes to a private endpoint ---------------------------------------------------------------------------------

def test_the_endpoints_32_route_beats_a_default_route_to_an_appliance() -> None:
    plan = scan_resources(locked_down(Scenario(subnet_rules=SOURCE_LOCKED, recovery_rules=TARGET_LOCKED,
                                               routes=[("default", "0.0.0.0/0", "VirtualAppliance", "10.0.0.4"),
                                                       ("spoke", "10.1.0.0/16", "None")])))
    source = by_side(plan, "source")
    assert "AzureSiteRecovery private endpoint pe-asr-src" not in source, source
    assert source["Storage.EastUS"] == {"route-appliance"}, "the other destinations still follow the UDR"


def test_with_route_table_policies_a_route_as_wide_as_the_vnet_overrides_the_32_and_is_not_planned_around() -> None:
    routes = [("spoke", "10.1.0.0/16", "None")]
    plan = scan_resources(locked_down(Scenario(subnet_rules=SOURCE_LOCKED, recovery_rules=TARGET_LOCKED,
                                               routes=routes), policies="RouteTableEnabled"))
    source = by_side(plan, "source")
    assert source == {"AzureSiteRecovery private endpoint pe-asr-src": {"route-next-hop"}}
    (finding,) = plan.reports[0].findings
    assert not finding.fixable and "plans no route to a private endpoint" in finding.message
    assert plan.changes == ()


def test_with_route_table_policies_a_route_narrower_than_the_vnet_does_not_override() -> None:
    routes = [("pe-subnet", "10.1.9.0/24", "None")]
    plan = scan_resources(locked_down(Scenario(subnet_rules=SOURCE_LOCKED, recovery_rules=TARGET_LOCKED,
                                               routes=routes), policies="Enabled"))
    assert plan.reports[0].findings == ()


def test_a_32_route_for_the_endpoint_wins_even_without_policies() -> None:
    routes = [("blackhole", "10.1.9.5/32", "None")]
    plan = scan_resources(locked_down(Scenario(subnet_rules=SOURCE_LOCKED, recovery_rules=TARGET_LOCKED,
                                               routes=routes)))
    (finding,) = plan.reports[0].findings
    assert finding.kind == "route-next-hop" and "route blackhole (10.1.9.5/32)" in finding.message
    assert not finding.fixable and plan.changes == ()


# --- the cache storage account's blob private endpoint --------------------------------------------------------------

def with_cache(resources: list[dict[str, Any]], *accounts: str) -> list[dict[str, Any]]:
    item = next(r for r in resources if r["type"].endswith("replicationprotecteditems"))
    item["properties"]["providerSpecificDetails"]["protectedManagedDisks"] = [
        {"diskName": f"disk{i}", "primaryStagingAzureStorageAccountId": a} for i, a in enumerate(accounts)]
    return resources


def test_a_cache_account_private_endpoint_replaces_the_storage_tag_on_the_source_side() -> None:
    source = [allow(100, "AzureActiveDirectory"), allow(110, "EventHub.CentralUS"), deny(4000, "Internet")]
    resources = with_cache(locked_down(Scenario(subnet_rules=source, recovery_rules=TARGET_LOCKED)), CACHE)
    subnet = f"{SRC_VNET}/subnets/snet-pe"
    resources += [private_endpoint(SUB, RG, "pe-cache", "eastus", subnet, CACHE, "blob", ["10.1.9.20"]),
                  dns_zone_link(SUB, RG, BLOB_ZONE, "link-src", SRC_VNET)]
    plan = scan_resources(resources)
    assert plan.reports[0].findings == () and plan.changes == ()
    # Without the blob zone link: a warning naming the account's public name.
    plan = scan_resources([r for r in resources if BLOB_ZONE not in r["id"]])
    (warning,) = plan.reports[0].findings
    assert warning.kind == "private-dns" and "cacheeastus01.blob.core.windows.net" in warning.message


def test_a_second_cache_account_without_an_endpoint_keeps_the_storage_tag() -> None:
    source = [allow(100, "AzureActiveDirectory"), allow(110, "EventHub.CentralUS"), deny(4000, "Internet")]
    other = rid(SUB, RG, "Microsoft.Storage", "storageAccounts", "cacheeastus02")
    resources = with_cache(locked_down(Scenario(subnet_rules=source, recovery_rules=TARGET_LOCKED)), CACHE, other)
    resources += [private_endpoint(SUB, RG, "pe-cache", "eastus", f"{SRC_VNET}/subnets/snet-pe", CACHE, "blob",
                                   ["10.1.9.20"]), dns_zone_link(SUB, RG, BLOB_ZONE, "link-src", SRC_VNET)]
    plan = scan_resources(resources, Settings())
    assert by_side(plan, "source") == {"Storage.EastUS": {"nsg-deny"}}
    assert "Storage.EastUS" in planned_destinations(plan)


# --- the cache storage account's network rules (no private endpoint serves the VNet) -------------------------------

def storage_account(name: str, *, public: str = "", default: str = "Allow", subnets: tuple[str, ...] = (),
                    ips: tuple[str, ...] = ()) -> dict[str, Any]:
    """The StorageAccountGetProperties example, renamed, with its network rules set."""
    account = body("StorageAccountGetProperties.json")
    account["id"] = rid(SUB, RG, "Microsoft.Storage", "storageAccounts", name)
    account["name"] = name
    if public:
        account["properties"]["publicNetworkAccess"] = public
    account["properties"]["networkAcls"].update({
        "defaultAction": default,
        "virtualNetworkRules": [{"id": s, "action": "Allow", "state": "Succeeded"} for s in subnets],
        "ipRules": [{"value": ip, "action": "Allow"} for ip in ips]})
    return account


def test_the_real_storage_account_example_parses_its_network_rules() -> None:
    """Golden: StorageAccountGetProperties (Microsoft.Storage 2025-01-01): networkAcls defaultAction Allow."""
    (account,) = build_estate([body("StorageAccountGetProperties.json")]).private_links.storage_accounts.values()
    assert (account.name, account.public_network_access, account.default_action) == ("sto8596", "", "allow")
    assert account.subnet_rules == frozenset() and account.ip_rules == ()


def storage_case(account: dict[str, Any], *, endpoint: bool = False,
                 service_endpoint: bool = False) -> list[dict[str, Any]]:
    resources = with_cache(Scenario(service_endpoints=[("Microsoft.Storage", ["eastus"])] if service_endpoint
                                    else None).resources(), account["id"])
    resources.append(account)
    if endpoint:
        subnet = add_subnet(resources, SRC_VNET, "snet-pe", "10.1.9.0/24")
        resources += [private_endpoint(SUB, RG, "pe-cache", "eastus", subnet, account["id"], "blob", ["10.1.9.20"]),
                      dns_zone_link(SUB, RG, BLOB_ZONE, "link-src", SRC_VNET)]
    return resources


def test_a_cache_account_without_public_access_and_without_an_endpoint_is_an_error() -> None:
    plan = scan_resources(storage_case(storage_account("cacheeastus01", public="Disabled")))
    (finding,) = plan.reports[0].findings
    assert (finding.kind, finding.severity, finding.side, finding.fixable) == ("cache-storage", "error", "source",
                                                                               False)
    assert "disables public network access" in finding.message and BLOB_ZONE in finding.message
    assert plan.changes == ()
    # Its blob private endpoint in the VNet is the way in: no finding.
    assert scan_resources(storage_case(storage_account("cacheeastus01", public="Disabled"),
                                       endpoint=True)).reports[0].findings == ()


def test_a_cache_account_firewall_lets_in_only_a_subnet_with_a_rule_and_a_storage_service_endpoint() -> None:
    subnet = f"{SRC_VNET}/subnets/snet"
    denied = scan_resources(storage_case(storage_account("cacheeastus01", default="Deny")))
    (finding,) = denied.reports[0].findings
    assert finding.kind == "cache-storage" and "virtual network rule" in finding.message
    ruled = storage_account("cacheeastus01", default="Deny", subnets=(subnet,))
    assert [f.kind for f in scan_resources(storage_case(ruled)).reports[0].findings] == ["cache-storage"], \
        "a virtual network rule needs the subnet's Microsoft.Storage service endpoint"
    assert scan_resources(storage_case(ruled, service_endpoint=True)).reports[0].findings == ()
    guessed = scan_resources(storage_case(storage_account("cacheeastus01", default="Deny", ips=("20.1.2.3",))))
    (unknown,) = guessed.reports[0].findings
    assert unknown.kind == "unknown" and "20.1.2.3" in unknown.message
    assert scan_resources(storage_case(storage_account("cacheeastus01"))).reports[0].findings == ()


# --- the route rule against the per-address oracle ------------------------------------------------------------------

_PREFIXES = ("0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.0.0/17", "10.1.8.0/21", "10.1.9.0/24", "10.1.9.0/28",
             "10.1.9.4/32", "10.1.9.5/32", "10.1.9.16/32")
_HOPS = ("None", "VirtualAppliance", "Internet", "VnetLocal", "VirtualNetworkGateway")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routes=st.dictionaries(st.sampled_from(_PREFIXES), st.sampled_from(_HOPS), max_size=6),
       policies=st.sampled_from(("Disabled", "Enabled", "RouteTableEnabled", "NetworkSecurityGroupEnabled")),
       ips=st.sets(st.sampled_from(("10.1.9.4", "10.1.9.5", "10.1.9.6", "10.1.9.16", "10.1.9.200")), min_size=1,
                   max_size=4))
def test_routes_to_an_endpoint_agree_with_the_per_address_oracle(routes: dict[str, str], policies: str,
                                                                  ips: set[str]) -> None:
    pe_subnet = Subnet(f"{SRC_VNET}/subnets/snet-pe", "snet-pe", ("10.1.9.0/24",),
                       private_endpoint_network_policies=policies.lower())
    app = Subnet(f"{SRC_VNET}/subnets/snet", "snet", ("10.1.1.0/24",), route_table_id="/rt")
    vnet = VirtualNetwork(SRC_VNET, "vnet-src", "eastus", ("10.1.0.0/16",), (app, pe_subnet))
    table = RouteTable("/rt", "rt", "eastus", tuple(
        Route(f"r{i}", prefix, hop, "10.0.0.4" if hop == "VirtualAppliance" else "")
        for i, (prefix, hop) in enumerate(sorted(routes.items()))))
    endpoint = PrivateEndpoint("/pe", "pe", "eastus", pe_subnet.id,
                               (PrivateLinkConnection(VAULT, ("azuresiterecovery",), "approved"),), tuple(sorted(ips)))
    estate = Estate(vnets={key(vnet.id): vnet}, subnets={key(s.id): s for s in vnet.subnets},
                    route_tables={"/rt": table}, private_links=PrivateLinks(endpoints={"/pe": endpoint}))
    req = Requirement("source", "pe", "pe-pe", "reach the vault", IPSet.from_prefixes(ips), style="prefix",
                      private_endpoint="/pe")
    assert req.prefixes is not None
    kept, learned = endpoint_routes(table, (), req, estate)
    hops = route_hops(kept, vnet, app, req.prefixes, full_tags(), learned)
    covered = IPSet.of(())
    for hop in hops:
        covered = covered | hop.addresses
        for ip in ips:
            if not hop.addresses.contains(address_to_int(ip)):
                continue
            kind, name = endpoint_next_hop(table, vnet, app, ip, full_tags(), vnet.address_prefixes,
                                           policies.lower() in ("enabled", "routetableenabled"))
            expected = endpoint_verdict(Hop(IPSet.address(ip), kind, name, "user" if name.startswith("r") else
                                            "system"))
            assert endpoint_verdict(hop) == expected, (ip, hop, kind, name)
            if name.startswith("r"):
                assert hop.route_name == name, (ip, hop, name)
    assert covered == req.prefixes


def test_an_unreadable_vault_makes_the_site_recovery_path_unknown_not_a_guess() -> None:
    resources = Scenario(subnet_rules=[allow(100, "*")], recovery_rules=[allow(100, "*")]).resources()
    vault = recovery_vault(SUB, "vault", "centralus")
    vault["properties"]["privateEndpointConnections"] = {"not": "a list"}
    plan = scan_resources([*resources, vault])
    report = plan.reports[0]
    assert report.status == "unknown"
    unknown = [f for f in report.findings if f.kind == "unknown"]
    assert {f.side for f in unknown} == {"source", "target"}
    assert all("Recovery Services vault" in f.message and "is unreadable" in f.message for f in unknown)


def test_a_hub_endpoint_the_vault_names_but_the_inventory_lacks_is_unknown_not_a_missing_endpoint() -> None:
    """The hub's endpoint is in a connectivity subscription that was not read: only the vault's own
    privateEndpointConnections (GETVault.json shape) names it, approved. The spoke cannot be said to lack an endpoint
    (a `private-endpoint` error telling to create one that exists) nor to reach it: unknown, naming the endpoint and
    ASR_SUBSCRIPTIONS; still no public AzureSiteRecovery rule is planned. The same estate with the endpoint read is
    compliant (test_a_hub_private_endpoint_serves_a_peered_spoke)."""
    resources = locked_down(source_pe=False)
    hub_pe = rid("00000000-0000-0000-0000-0000000000cc", "rg-hub", "Microsoft.Network", "privateEndpoints",
                 "pe-asr-hub")
    (vault,) = [r for r in resources if r["type"] == "microsoft.recoveryservices/vaults"]
    dr_endpoint = next(r["id"] for r in resources if r["type"] == "microsoft.network/privateendpoints")
    resources.remove(vault)
    resources.append(recovery_vault(SUB, "vault", "centralus", [(dr_endpoint, "Approved"), (hub_pe, "Approved")]))
    plan = scan_resources(resources)
    source = by_side(plan, "source")
    assert source["AzureSiteRecovery"] == {"unknown"}
    [finding] = [f for f in plan.reports[0].findings if f.side == "source" and f.destination == "AzureSiteRecovery"]
    assert hub_pe in finding.message and "ASR_SUBSCRIPTIONS" in finding.message
    assert by_side(plan, "target").get("AzureSiteRecovery", set()) <= {"private-dns"}  # its own endpoint: unchanged
    assert not any("AzureSiteRecovery" in d for d in planned_destinations(plan))
    pending = [r for r in resources if r["type"] != "microsoft.recoveryservices/vaults"]
    pending.append(recovery_vault(SUB, "vault", "centralus", [(dr_endpoint, "Approved"), (hub_pe, "Pending")]))
    assert by_side(scan_resources(pending), "source")["AzureSiteRecovery"] == {"private-endpoint"}  # not approved
