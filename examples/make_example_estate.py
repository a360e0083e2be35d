"""Writes examples/estate.json: a small estate showing each kind of drift the bot finds (and one of each it can't fix).

Run: python -m examples.make_example_estate  (the JSON is committed; this script documents how it was made)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from examples.estate_builder import (
    admin_rule,
    admin_rules,
    azure_firewall,
    dns_zone_link,
    expressroute_circuit,
    firewall_policy,
    gateway_connection,
    health_error,
    network_manager_id,
    network_rule,
    nic,
    nsg,
    private_endpoint,
    protected_item,
    recovery_vault,
    rid,
    route_table,
    rule_collection,
    rule_collection_group,
    use_remote_gateways,
    vault_id,
    virtual_network_gateway,
    vm,
    vnet,
)

SUB = "11111111-2222-3333-4444-555555555555"
DR_SUB = "66666666-7777-8888-9999-000000000000"
RG, DR_RG = "rg-prod-eastus", "rg-dr-centralus"
EU_RG, EU_DR_RG = "rg-prod-westeurope", "rg-dr-northeurope"
PLATFORM_RG = "rg-platform-network"
VAULT = "rsv-asr-centralus"


def build() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    # Target side (centralus): recovery VNet; its app subnet NSG denies Storage.CentralUS explicitly.
    dr_app_nsg = nsg(DR_SUB, DR_RG, "nsg-dr-app", "centralus", [
        {"name": "Deny-Storage-CentralUS", "priority": 300, "access": "Deny", "destination": "Storage.CentralUS",
         "description": "no storage egress (copied from the prod baseline)"},
    ])
    dr_web_nsg = nsg(DR_SUB, DR_RG, "nsg-dr-web", "centralus")
    dr_vnet = vnet(DR_SUB, DR_RG, "vnet-dr-centralus", "centralus", ["10.20.0.0/16"], [
        {"name": "snet-web", "prefix": "10.20.1.0/24", "nsg": dr_web_nsg["id"]},
        {"name": "snet-app", "prefix": "10.20.2.0/24", "nsg": dr_app_nsg["id"]},
    ])
    out += [dr_app_nsg, dr_web_nsg, dr_vnet]

    # Source side (eastus).
    web_nsg = nsg(SUB, RG, "nsg-web", "eastus", [
        {"name": "Allow-HTTPS-In", "priority": 100, "access": "Allow", "destination": "*", "direction": "Inbound",
         "protocol": "Tcp", "port": "443"},
    ])
    app_nsg = nsg(SUB, RG, "nsg-app", "eastus", [
        {"name": "Allow-SQL-Out", "priority": 200, "access": "Allow", "destination": "Sql.EastUS", "protocol": "Tcp",
         "port": "1433"},
        {"name": "Deny-Internet-Out", "priority": 4000, "access": "Deny", "destination": "Internet",
         "description": "egress lockdown"},
    ])
    legacy_nsg = nsg(SUB, RG, "nsg-legacy", "eastus", [
        {"name": "Allow-ASR-2017-CentralUS", "priority": 110, "access": "Allow", "protocol": "Tcp", "port": "443",
         "destination": ["40.69.144.231", "40.69.167.116", "52.165.34.144"], "source": "VirtualNetwork"},
        {"name": "Deny-All-Out", "priority": 120, "access": "Deny", "destination": "*"},
    ])
    locked_nsg = nsg(SUB, RG, "nsg-locked", "eastus", [
        {"name": "Deny-All-Out-First", "priority": 100, "access": "Deny", "destination": "*",
         "description": "vendor appliance subnet: nothing leaves"},
    ])
    tunnel_rt = route_table(SUB, RG, "rt-forced-tunnel", "eastus",
                            [("default-to-onprem", "0.0.0.0/0", "VirtualNetworkGateway")])
    nva_rt = route_table(SUB, RG, "rt-nva", "eastus",
                         [("default-to-firewall", "0.0.0.0/0", "VirtualAppliance", "10.10.255.4")], disable_bgp=True)
    prod_vnet = vnet(SUB, RG, "vnet-prod-eastus", "eastus", ["10.10.0.0/16"], [
        {"name": "snet-web", "prefix": "10.10.1.0/24", "nsg": web_nsg["id"]},
        {"name": "snet-app", "prefix": "10.10.2.0/24", "nsg": app_nsg["id"]},
        {"name": "snet-db", "prefix": "10.10.3.0/24", "route_table": tunnel_rt["id"]},
        {"name": "snet-legacy", "prefix": "10.10.4.0/24", "nsg": legacy_nsg["id"]},
        {"name": "snet-vendor", "prefix": "10.10.5.0/24", "nsg": locked_nsg["id"]},
        {"name": "snet-nva", "prefix": "10.10.6.0/24", "route_table": nva_rt["id"],
         "service_endpoints": [("Microsoft.Storage", ["eastus", "westus"])]},
        {"name": "GatewaySubnet", "prefix": "10.10.254.0/27"},
    ])
    out += [web_nsg, app_nsg, legacy_nsg, locked_nsg, tunnel_rt, nva_rt, prod_vnet]

    def replicated(name: str, subnet: str, ip: str, recovery_subnet: str, *, vm_tags: dict[str, str] | None = None,
                   active: str = "Primary", state: str = "Protected", nic_nsg: str = "",
                   encryption: str = "NotEncrypted", health: str = "Normal",
                   errors: list[dict[str, Any]] | None = None) -> None:
        vm_id = rid(SUB, RG, "Microsoft.Compute", "virtualMachines", name)
        subnet_id = f"{prod_vnet['id']}/subnets/{subnet}"
        the_nic = nic(SUB, RG, f"{name}-nic", "eastus", subnet_id, ip, vm_id, nsg_id=nic_nsg)
        out.append(vm(SUB, RG, name, "eastus", [the_nic["id"]], vm_tags))
        out.append(the_nic)
        out.append(protected_item(DR_SUB, VAULT, vm_id, name, "eastus", "centralus", the_nic["id"], dr_vnet["id"],
                                  recovery_subnet, active_location=active, state=state, encryption=encryption,
                                  replication_health=health, health_errors=errors))

    # Site Recovery's own health errors (issue 15): ASR confirms vm-app-01's and vm-vendor-01's drift, complains about
    # vm-nva-01 whose path the bot finds open up to the appliance (unexplained), has not yet noticed vm-app-02's, and
    # reports vm-web-01's missing test failover (161011, as in the recorded item), which is not a network error.
    replicated("vm-web-01", "snet-web", "10.10.1.4", "snet-web", errors=[health_error(
        "161011", "2026-11-28T10:02:51.5530000Z", "No successful test failover has been done on the virtual machine "
        "'vm-web-01'.", level="Warning", category="TestFailover")])  # compliant
    replicated("vm-app-01", "snet-app", "10.10.2.4", "snet-app", encryption="OneStepADE", health="Critical",
               errors=[health_error("151196", "2026-12-01T21:40:07.1200000Z", "Site Recovery configuration failed.")]
               )  # NSG deny, both sides
    replicated("vm-app-02", "snet-app", "10.10.2.5", "snet-web")  # shares nsg-app: one plan for both
    replicated("vm-db-01", "snet-db", "10.10.3.4", "snet-web")  # forced tunnelling + BGP warning
    replicated("vm-legacy-01", "snet-legacy", "10.10.4.4", "snet-web")  # 2017 IP rules: legacy + deny
    replicated("vm-vendor-01", "snet-vendor", "10.10.5.4", "snet-web", health="Critical", errors=[health_error(
        "151037", "2026-11-30T06:12:09.4410000Z", "Outbound connectivity to Site Recovery URLs or IP ranges failed.")]
               )  # deny at 100: not fixable
    replicated("vm-nva-01", "snet-nva", "10.10.6.4", "snet-web", health="Critical", errors=[health_error(
        "151197", "2026-12-02T03:27:45.0000000Z", "Site Recovery configuration failed.")]
               )  # NVA: warning; storage via service endpoint
    replicated("vm-batch-01", "snet-web", "10.10.1.9", "snet-web", vm_tags={"asr-remediate-opt-out": "true"})
    # failed over, committed, not reprotected yet: skipped
    replicated("vm-old-01", "snet-web", "10.10.1.10", "snet-web", active="Recovery", state="UnplannedFailoverCommitted")

    # Platform-managed spokes (eastus): the platform team's network manager decides before any NSG.
    # vnet-spoke-api: an AlwaysAllow admin rule for ASR's tags overrides the spoke NSG's Deny-Internet-Out (compliant,
    # nothing to plan). vnet-spoke-data: a Deny admin rule on Storage drops ASR's cache writes whatever the NSGs say
    # (admin-deny: not fixable by the bot, the finding says what to ask the platform team for).
    manager = network_manager_id(SUB, PLATFORM_RG, "avnm-platform")
    spoke_nsg = nsg(SUB, RG, "nsg-spoke-api", "eastus", [
        {"name": "Deny-Internet-Out", "priority": 4000, "access": "Deny", "destination": "Internet",
         "description": "spoke egress lockdown"},
    ])
    api_vnet = vnet(SUB, RG, "vnet-spoke-api", "eastus", ["10.50.0.0/16"], [
        {"name": "snet-api", "prefix": "10.50.1.0/24", "nsg": spoke_nsg["id"]},
    ])
    data_vnet = vnet(SUB, RG, "vnet-spoke-data", "eastus", ["10.60.0.0/16"], [
        {"name": "snet-data", "prefix": "10.60.1.0/24"},
    ])
    out += [spoke_nsg, api_vnet, data_vnet,
            admin_rules(api_vnet["id"], [
                admin_rule(manager, "AlwaysAllow-ASR", 100, "AlwaysAllow",
                           ["AzureSiteRecovery", "AzureActiveDirectory", "Storage.EastUS", "EventHub.CentralUS"],
                           configuration="cfg-baseline", collection="rc-dr-egress",
                           description="ASR replication egress, whatever the spoke NSGs say"),
            ]),
            admin_rules(data_vnet["id"], [
                admin_rule(manager, "Deny-Storage-Exfiltration", 50, "Deny", ["Storage"],
                           configuration="cfg-baseline", collection="rc-data-guardrails",
                           description="no storage egress from data spokes"),
            ])]
    for name, spoke, subnet, ip in (("vm-api-01", api_vnet, "snet-api", "10.50.1.4"),
                                    ("vm-data-01", data_vnet, "snet-data", "10.60.1.4")):
        vm_id = rid(SUB, RG, "Microsoft.Compute", "virtualMachines", name)
        the_nic = nic(SUB, RG, f"{name}-nic", "eastus", f"{spoke['id']}/subnets/{subnet}", ip, vm_id)
        out += [vm(SUB, RG, name, "eastus", [the_nic["id"]]), the_nic,
                protected_item(DR_SUB, VAULT, vm_id, name, "eastus", "centralus", the_nic["id"], dr_vnet["id"],
                               "snet-web")]

    # Europe: a NIC-level NSG allows top-level Storage but denies the rest; target VNet lacks the subnet.
    eu_nic_nsg = nsg(SUB, EU_RG, "nsg-nic-erp", "westeurope", [
        {"name": "Allow-Storage", "priority": 150, "access": "Allow", "destination": "Storage", "protocol": "Tcp",
         "port": "443", "source": "VirtualNetwork"},
        {"name": "Allow-ASR-Regional", "priority": 160, "access": "Allow", "protocol": "Tcp", "port": "443",
         "destination": "AzureSiteRecovery.WestEurope"},
        {"name": "Deny-Web-Out", "priority": 200, "access": "Deny", "destination": "Internet", "protocol": "Tcp",
         "port": ["80", "443"]},
    ])
    eu_vnet = vnet(SUB, EU_RG, "vnet-prod-westeurope", "westeurope", ["10.30.0.0/16"], [
        {"name": "snet-erp", "prefix": "10.30.1.0/24"},
    ])
    eu_dr_vnet = vnet(SUB, EU_DR_RG, "vnet-dr-northeurope", "northeurope", ["10.40.0.0/16"], [
        {"name": "snet-erp", "prefix": "10.40.1.0/24"},
    ])
    erp_vm_id = rid(SUB, EU_RG, "Microsoft.Compute", "virtualMachines", "vm-erp-01")
    erp_nic = nic(SUB, EU_RG, "vm-erp-01-nic", "westeurope", f"{eu_vnet['id']}/subnets/snet-erp", "10.30.1.4",
                  erp_vm_id, nsg_id=eu_nic_nsg["id"])
    out += [eu_nic_nsg, eu_vnet, eu_dr_vnet, vm(SUB, EU_RG, "vm-erp-01", "westeurope", [erp_nic["id"]]), erp_nic,
            protected_item(SUB, "rsv-asr-northeurope", erp_vm_id, "vm-erp-01", "westeurope", "northeurope",
                           erp_nic["id"], eu_dr_vnet["id"], "snet-erp-dr")]
    out += private_spoke()
    out += firewall_hub(dr_vnet["id"])
    out += hybrid_spoke()
    return out


FIREWALL_IP = "10.100.1.4"


def firewall_hub(dr_vnet_id: str) -> list[dict[str, Any]]:
    """A Cloud Adoption Framework hub (eastus) whose Azure Firewall every spoke's 0.0.0.0/0 goes to, with a Firewall
    Policy under the platform team's parent policy: spoke A is allowed what ASR needs (compliant), spoke B has no rule
    (the firewall denies by default: the plan adds the asr-remediate rule collection group, written only with
    ASR_APPLY_FIREWALL), spoke C is allowed by the child policy too, but the parent policy denies its Storage first
    (network rules inherited from a parent go first: not fixable from the child policy)."""
    rg = PLATFORM_RG
    hub = vnet(SUB, rg, "vnet-hub-eastus", "eastus", ["10.100.0.0/16"], [
        {"name": "AzureFirewallSubnet", "prefix": "10.100.1.0/26"},
    ])
    base = firewall_policy(SUB, rg, "afwp-platform-base", "eastus", group_names=["platform-guardrails"])
    base_group = rule_collection_group(base["id"], "platform-guardrails", 100, [
        rule_collection("deny-storage-from-data-spokes", 100, "Deny", [
            network_rule("no-storage-egress", ["10.72.0.0/16"], ["Storage"])])])
    child = firewall_policy(SUB, rg, "afwp-spokes-eastus", "eastus", base_policy=base["id"],
                            group_names=["spoke-egress"])
    asr = ["AzureActiveDirectory", "Storage.EastUS", "EventHub.CentralUS", "AzureSiteRecovery"]
    child_group = rule_collection_group(child["id"], "spoke-egress", 200, [
        rule_collection("allow-asr", 100, "Allow", [
            network_rule("asr-spoke-a", ["10.70.0.0/16"], asr),
            network_rule("asr-spoke-c", ["10.72.0.0/16"], asr)])])
    firewall = azure_firewall(SUB, rg, "afw-hub-eastus", "eastus", f"{hub['id']}/subnets/AzureFirewallSubnet",
                              FIREWALL_IP, policy_id=child["id"])
    out = [hub, base, base_group, child, child_group, firewall]
    for letter, name in (("a", "vm-fw-allowed-01"), ("b", "vm-fw-denied-01"), ("c", "vm-fw-parent-01")):
        prefix = {"a": "10.70", "b": "10.71", "c": "10.72"}[letter]
        table = route_table(SUB, RG, f"rt-spoke-{letter}", "eastus",
                            [("default-to-hub-firewall", "0.0.0.0/0", "VirtualAppliance", FIREWALL_IP)],
                            disable_bgp=True)
        spoke = vnet(SUB, RG, f"vnet-spoke-{letter}-eastus", "eastus", [f"{prefix}.0.0/16"], [
            {"name": "snet-app", "prefix": f"{prefix}.1.0/24", "route_table": table["id"]},
        ])
        vm_id = rid(SUB, RG, "Microsoft.Compute", "virtualMachines", name)
        the_nic = nic(SUB, RG, f"{name}-nic", "eastus", f"{spoke['id']}/subnets/snet-app", f"{prefix}.1.4", vm_id)
        out += [table, spoke, vm(SUB, RG, name, "eastus", [the_nic["id"]]), the_nic,
                protected_item(DR_SUB, VAULT, vm_id, name, "eastus", "centralus", the_nic["id"], dr_vnet_id,
                               "snet-web")]
    return out


def hybrid_spoke() -> list[dict[str, Any]]:
    """Failover readiness (issue 12): a spoke reaching on-premises through its hub's ExpressRoute gateway (a Standard
    circuit at Washington DC). vm-hybrid-01 fails over to centralus into a VNet with the same range and no gateway at
    all (failover-expressroute, with the seed's advice to keep the connection disconnected until failover);
    vm-hybrid-02 fails over to westeurope, whose VNet has a gateway but no connection, and a Standard circuit cannot
    reach Europe (failover-expressroute + failover-geopolitical)."""
    hub = vnet(SUB, PLATFORM_RG, "vnet-hub-er-eastus", "eastus", ["10.0.0.0/16"], [
        {"name": "GatewaySubnet", "prefix": "10.0.255.0/27"},
    ])
    spoke = use_remote_gateways(vnet(SUB, RG, "vnet-spoke-hybrid-eastus", "eastus", ["10.80.0.0/16"], [
        {"name": "snet-app", "prefix": "10.80.1.0/24"},
    ]), hub)
    circuit = expressroute_circuit(SUB, PLATFORM_RG, "er-onprem-washingtondc", "eastus", "Washington DC")
    gateway = virtual_network_gateway(SUB, PLATFORM_RG, "ergw-hub-eastus", "eastus", hub["id"])
    connection = gateway_connection(SUB, PLATFORM_RG, "conn-hub-eastus-er", "eastus", gateway["id"],
                                    circuit_id=circuit["id"])
    dr_us = vnet(DR_SUB, DR_RG, "vnet-dr-hybrid-centralus", "centralus", ["10.80.0.0/16"], [
        {"name": "snet-app", "prefix": "10.80.1.0/24"},
    ])
    dr_eu = vnet(DR_SUB, EU_DR_RG, "vnet-dr-hybrid-westeurope", "westeurope", ["10.81.0.0/16"], [
        {"name": "snet-app", "prefix": "10.81.1.0/24"}, {"name": "GatewaySubnet", "prefix": "10.81.255.0/27"},
    ])
    eu_gateway = virtual_network_gateway(DR_SUB, EU_DR_RG, "ergw-dr-westeurope", "westeurope", dr_eu["id"])
    out = [hub, spoke, circuit, gateway, connection, dr_us, dr_eu, eu_gateway]
    for name, ip, target, dr in (("vm-hybrid-01", "10.80.1.4", "centralus", dr_us),
                                 ("vm-hybrid-02", "10.80.1.5", "westeurope", dr_eu)):
        vm_id = rid(SUB, RG, "Microsoft.Compute", "virtualMachines", name)
        the_nic = nic(SUB, RG, f"{name}-nic", "eastus", f"{spoke['id']}/subnets/snet-app", ip, vm_id)
        out += [vm(SUB, RG, name, "eastus", [the_nic["id"]]), the_nic,
                protected_item(DR_SUB, VAULT, vm_id, name, "eastus", target, the_nic["id"], dr["id"], "snet-app")]
    return out


PRIVATE_VAULT = "rsv-asr-private"


def private_spoke() -> list[dict[str, Any]]:
    """A locked-down spoke replicating through a vault with private endpoints for Site Recovery, in the source and the
    recovery VNet, and the private DNS zone linked to both: compliant with an empty plan, although no NSG allows the
    AzureSiteRecovery tag (the private endpoints make it unnecessary; Entra ID, Event Hub and Storage stay public)."""
    rg, dr_rg = "rg-prod-private-eastus", "rg-dr-private-centralus"
    allow = {"access": "Allow", "protocol": "Tcp", "port": "443"}
    src_nsg = nsg(SUB, rg, "nsg-private-app", "eastus", [
        {"name": "Allow-AAD-Out", "priority": 100, "destination": "AzureActiveDirectory", **allow},
        {"name": "Allow-EventHub-Out", "priority": 110, "destination": "EventHub.CentralUS", **allow},
        {"name": "Allow-Storage-Out", "priority": 120, "destination": "Storage.EastUS", **allow},
        {"name": "Deny-Internet-Out", "priority": 4000, "access": "Deny", "destination": "Internet",
         "description": "locked-down spoke: the vault is reached through its private endpoint"},
    ])
    dr_nsg = nsg(DR_SUB, dr_rg, "nsg-dr-private-app", "centralus", [
        {"name": "Allow-AAD-Out", "priority": 100, "destination": "AzureActiveDirectory", **allow},
        {"name": "Allow-EventHub-Out", "priority": 110, "destination": "EventHub.EastUS", **allow},
        {"name": "Allow-Storage-Out", "priority": 120, "destination": "Storage.CentralUS", **allow},
        {"name": "Deny-Internet-Out", "priority": 4000, "access": "Deny", "destination": "Internet"},
    ])
    src_vnet = vnet(SUB, rg, "vnet-spoke-private-eastus", "eastus", ["10.50.0.0/16"], [
        {"name": "snet-app", "prefix": "10.50.1.0/24", "nsg": src_nsg["id"]},
        {"name": "snet-pe", "prefix": "10.50.9.0/24"},
    ])
    dr_vnet = vnet(DR_SUB, dr_rg, "vnet-dr-private-centralus", "centralus", ["10.60.0.0/16"], [
        {"name": "snet-app", "prefix": "10.60.1.0/24", "nsg": dr_nsg["id"]},
        {"name": "snet-pe", "prefix": "10.60.9.0/24"},
    ])
    vault = vault_id(DR_SUB, PRIVATE_VAULT)
    endpoints = [
        private_endpoint(SUB, rg, "pe-rsv-asr-private-eastus", "eastus", f"{src_vnet['id']}/subnets/snet-pe", vault,
                         "AzureSiteRecovery", [f"10.50.9.{i}" for i in range(4, 9)]),
        private_endpoint(DR_SUB, dr_rg, "pe-rsv-asr-private-centralus", "centralus",
                         f"{dr_vnet['id']}/subnets/snet-pe", vault, "AzureSiteRecovery",
                         [f"10.60.9.{i}" for i in range(4, 9)]),
    ]
    zone = "privatelink.siterecovery.windowsazure.com"
    vm_id = rid(SUB, rg, "Microsoft.Compute", "virtualMachines", "vm-pe-01")
    the_nic = nic(SUB, rg, "vm-pe-01-nic", "eastus", f"{src_vnet['id']}/subnets/snet-app", "10.50.1.4", vm_id)
    return [src_nsg, dr_nsg, src_vnet, dr_vnet, *endpoints,
            recovery_vault(DR_SUB, PRIVATE_VAULT, "centralus", [(e["id"], "Approved") for e in endpoints]),
            dns_zone_link(DR_SUB, "rg-dns", zone, "link-spoke-private-eastus", src_vnet["id"]),
            dns_zone_link(DR_SUB, "rg-dns", zone, "link-dr-private-centralus", dr_vnet["id"]),
            vm(SUB, rg, "vm-pe-01", "eastus", [the_nic["id"]]), the_nic,
            protected_item(DR_SUB, PRIVATE_VAULT, vm_id, "vm-pe-01", "eastus", "centralus", the_nic["id"],
                           dr_vnet["id"], "snet-app")]


def main() -> None:
    path = Path(__file__).with_name("estate.json")
    path.write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
