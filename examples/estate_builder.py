"""Builders for ARM-shaped resources (as Resource Graph returns them): the example estate, tests, benchmarks.

The shapes follow the real payloads: NSGs/route tables/VNets/NICs as in the Microsoft.Network REST examples,
protected items as in the recorded A2A ReplicationProtectedItems responses (fabricObjectId lower-cased).
"""

from __future__ import annotations

from typing import Any

Resource = dict[str, Any]

VAULT_RG = "rg-asr-vault"


def rid(sub: str, rg: str, provider: str, *parts: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/" + "/".join(parts)


def security_rule(nsg_id: str, name: str, priority: int, access: str, destination: str | list[str], *,
                  direction: str = "Outbound", protocol: str = "*", port: str | list[str] = "*",
                  source: str | list[str] = "*", source_port: str = "*", description: str = "") -> Resource:
    props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "protocol": protocol,
        "sourcePortRange": source_port,
        "access": access,
        "priority": priority,
        "direction": direction,
    }
    if description:
        props["description"] = description
    for field, value in (("destinationPortRange", port), ("sourceAddressPrefix", source),
                         ("destinationAddressPrefix", destination)):
        if isinstance(value, list):
            props[field.replace("Range", "Ranges").replace("Prefix", "Prefixes")] = value
            props[field] = ""
        else:
            props[field] = value
    return {"name": name, "id": f"{nsg_id}/securityRules/{name}", "properties": props}


def nsg(sub: str, rg: str, name: str, location: str, rules: list[Resource] | None = None,
        tags: dict[str, str] | None = None) -> Resource:
    nsg_id = rid(sub, rg, "Microsoft.Network", "networkSecurityGroups", name)
    built = [r if "id" in r else security_rule(nsg_id, **r) for r in rules or []]
    return {
        "id": nsg_id, "name": name, "type": "microsoft.network/networksecuritygroups", "location": location,
        "resourceGroup": rg.lower(), "subscriptionId": sub, "tags": tags or {},
        "etag": 'W/"00000000-0000-0000-0000-000000000001"',
        "properties": {"provisioningState": "Succeeded", "securityRules": built},
    }


def route(table_id: str, name: str, prefix: str, hop: str, ip: str = "") -> Resource:
    props: dict[str, Any] = {"provisioningState": "Succeeded", "addressPrefix": prefix, "nextHopType": hop}
    if ip:
        props["nextHopIpAddress"] = ip
    return {"name": name, "id": f"{table_id}/routes/{name}", "properties": props}


def route_table(sub: str, rg: str, name: str, location: str, routes: list[tuple[str, ...]],
                disable_bgp: bool = False, tags: dict[str, str] | None = None) -> Resource:
    table_id = rid(sub, rg, "Microsoft.Network", "routeTables", name)
    return {
        "id": table_id, "name": name, "type": "microsoft.network/routetables", "location": location,
        "resourceGroup": rg.lower(), "subscriptionId": sub, "tags": tags or {},
        "etag": 'W/"00000000-0000-0000-0000-000000000002"',
        "properties": {"provisioningState": "Succeeded", "disableBgpRoutePropagation": disable_bgp,
                       "routes": [route(table_id, *r) for r in routes]},
    }


def vnet(sub: str, rg: str, name: str, location: str, space: list[str], subnets: list[dict[str, Any]],
         peered: list[str] | None = None) -> Resource:
    vnet_id = rid(sub, rg, "Microsoft.Network", "virtualNetworks", name)
    built = []
    for s in subnets:
        props: dict[str, Any] = {"provisioningState": "Succeeded", "addressPrefix": s["prefix"]}
        if s.get("nsg"):
            props["networkSecurityGroup"] = {"id": s["nsg"]}
        if s.get("route_table"):
            props["routeTable"] = {"id": s["route_table"]}
        if s.get("service_endpoints"):
            props["serviceEndpoints"] = [{"service": svc, "locations": locs} for svc, locs in s["service_endpoints"]]
        if s.get("pe_policies"):
            props["privateEndpointNetworkPolicies"] = s["pe_policies"]
        built.append({"name": s["name"], "id": f"{vnet_id}/subnets/{s['name']}", "properties": props})
    peerings = [
        {"name": f"peer{i}", "properties": {"peeringState": "Connected",
                                            "remoteAddressSpace": {"addressPrefixes": [p]}}}
        for i, p in enumerate(peered or [])
    ]
    return {
        "id": vnet_id, "name": name, "type": "microsoft.network/virtualnetworks", "location": location,
        "resourceGroup": rg.lower(), "subscriptionId": sub, "tags": {},
        "properties": {"provisioningState": "Succeeded", "addressSpace": {"addressPrefixes": space},
                       "subnets": built, "virtualNetworkPeerings": peerings},
    }


def nic(sub: str, rg: str, name: str, location: str, subnet_id: str, ip: str, vm_id: str,
        nsg_id: str = "", asgs: list[str] | None = None) -> Resource:
    nic_id = rid(sub, rg, "Microsoft.Network", "networkInterfaces", name)
    config: dict[str, Any] = {"provisioningState": "Succeeded", "privateIPAddress": ip,
                              "privateIPAllocationMethod": "Dynamic", "subnet": {"id": subnet_id},
                              "primary": True, "privateIPAddressVersion": "IPv4"}
    if asgs:
        config["applicationSecurityGroups"] = [{"id": a} for a in asgs]
    props: dict[str, Any] = {"provisioningState": "Succeeded", "primary": True, "virtualMachine": {"id": vm_id},
                             "ipConfigurations": [{"name": "ipconfig1", "id": f"{nic_id}/ipConfigurations/ipconfig1",
                                                   "properties": config}]}
    if nsg_id:
        props["networkSecurityGroup"] = {"id": nsg_id}
    return {"id": nic_id, "name": name, "type": "microsoft.network/networkinterfaces", "location": location,
            "resourceGroup": rg.lower(), "subscriptionId": sub, "tags": {}, "properties": props}


def vm(sub: str, rg: str, name: str, location: str, nic_ids: list[str], tags: dict[str, str] | None = None) -> Resource:
    return {
        "id": rid(sub, rg, "Microsoft.Compute", "virtualMachines", name), "name": name,
        "type": "microsoft.compute/virtualmachines", "location": location, "resourceGroup": rg.lower(),
        "subscriptionId": sub, "tags": tags or {},
        "properties": {"networkProfile": {"networkInterfaces": [{"id": n} for n in nic_ids]}},
    }


def protected_item(sub: str, vault: str, vm_id: str, vm_name: str, source: str, target: str, source_nic_id: str,
                   recovery_vnet_id: str, recovery_subnet: str, *, recovery_nsg_id: str = "",
                   active_location: str = "Primary", state: str = "Protected",
                   encryption: str = "NotEncrypted", replication_health: str = "Normal",
                   health_errors: list[Resource] | None = None,
                   cache_storage_ids: list[str] | None = None) -> Resource:
    item_id = rid(sub, VAULT_RG, "Microsoft.RecoveryServices", "vaults", vault, "replicationFabrics",
                  f"asr-a2a-default-{source}", "replicationProtectionContainers",
                  f"asr-a2a-default-{source}-container", "replicationProtectedItems", f"{vm_name}-item")
    return {
        "id": item_id, "name": f"{vm_name}-item",
        "type": "microsoft.recoveryservices/vaults/replicationfabrics/replicationprotectioncontainers/"
                "replicationprotecteditems",
        "location": "", "resourceGroup": VAULT_RG, "subscriptionId": sub, "tags": {},
        "properties": {
            "friendlyName": vm_name, "protectionState": state, "activeLocation": active_location,
            "replicationHealth": replication_health, "primaryFabricProvider": "AzureFabric",
            "healthErrors": health_errors or [],
            "providerSpecificDetails": {
                "instanceType": "A2A",
                "fabricObjectId": vm_id.lower(),
                "primaryFabricLocation": source,
                "recoveryFabricLocation": target,
                "vmEncryptionType": encryption,
                "selectedRecoveryAzureNetworkId": recovery_vnet_id,
                "vmNics": [{
                    "sourceNicArmId": source_nic_id,
                    "recoveryVMNetworkId": recovery_vnet_id,
                    "ipConfigs": [{"name": "ipconfig1", "isPrimary": True, "recoverySubnetName": recovery_subnet}],
                    "recoveryNetworkSecurityGroupId": recovery_nsg_id,
                }],
                **({"protectedManagedDisks": [{"diskName": f"{vm_name}-osdisk-{i}",
                                               "primaryStagingAzureStorageAccountId": cache}
                                              for i, cache in enumerate(cache_storage_ids)]}
                   if cache_storage_ids else {}),
            },
        },
    }


def health_error(code: str, created: str, message: str, *, level: str = "Error", category: str = "Replication",
                 inner: list[Resource] | None = None) -> Resource:
    """One entry of a protected item's healthErrors[], with the fields (and their order) of the recorded A2A item
    (tests/data/arm/A2A_ReplicationProtectedItems_List_Protected_recorded_2026-02-01.json, error 161011)."""
    return {
        "innerHealthErrors": inner or [], "errorSource": "ReplicationUnit", "errorType": "8010",
        "errorLevel": level, "errorCategory": category, "errorCode": code, "summaryMessage": "",
        "errorMessage": message, "possibleCauses": "", "recommendedAction": "", "creationTimeUtc": created,
        "recoveryProviderErrorMessage": None, "entityId": "00000000-0000-0000-0000-000000000000",
        "errorId": f"6:{code}", "customerResolvability": "Allowed",
    }


# -- Private Link (shapes of PrivateEndpointGet.json, GETVault.json and VirtualNetworkLinkGet.json) ------------------

def vault_id(sub: str, name: str) -> str:
    return rid(sub, VAULT_RG, "Microsoft.RecoveryServices", "vaults", name)


def recovery_vault(sub: str, name: str, location: str, endpoints: list[tuple[str, str]] | None = None,
                   site_recovery: str = "Enabled") -> Resource:
    """A vault with Site Recovery private endpoint connections: (private endpoint id, status)."""
    the_id = vault_id(sub, name)
    connections = [{"id": f"{the_id}/privateEndpointConnections/{pe.rsplit('/', 1)[-1]}.{i}",
                    "properties": {"provisioningState": "Succeeded", "privateEndpoint": {"id": pe},
                                   "groupIds": ["AzureSiteRecovery"],
                                   "privateLinkServiceConnectionState": {"status": status, "description": "None",
                                                                         "actionsRequired": "None"}}}
                   for i, (pe, status) in enumerate(endpoints or [])]
    return {"id": the_id, "name": name, "type": "microsoft.recoveryservices/vaults", "location": location,
            "resourceGroup": VAULT_RG, "subscriptionId": sub, "tags": {}, "sku": {"name": "Standard"},
            "properties": {"provisioningState": "Succeeded", "publicNetworkAccess": "Disabled",
                           "privateEndpointConnections": connections,
                           "privateEndpointStateForSiteRecovery": site_recovery,
                           "privateEndpointStateForBackup": "None"}}


def private_endpoint(sub: str, rg: str, name: str, location: str, subnet_id: str, target_id: str, group: str,
                     ips: list[str], status: str = "Approved", fqdns: list[str] | None = None) -> Resource:
    pe_id = rid(sub, rg, "Microsoft.Network", "privateEndpoints", name)
    names = fqdns or [f"{name}-{i}.example.privatelink" for i in range(len(ips))]
    return {"id": pe_id, "name": name, "type": "microsoft.network/privateendpoints", "location": location,
            "resourceGroup": rg.lower(), "subscriptionId": sub, "tags": {},
            "properties": {
                "provisioningState": "Succeeded",
                "privateLinkServiceConnections": [{
                    "id": f"{pe_id}/privateLinkServiceConnections/{name}",
                    "properties": {"privateLinkServiceId": target_id, "groupIds": [group],
                                   "privateLinkServiceConnectionState": {"status": status, "description": "",
                                                                         "actionsRequired": "None"}}}],
                "manualPrivateLinkServiceConnections": [],
                "subnet": {"id": subnet_id},
                "networkInterfaces": [{"id": rid(sub, rg, "Microsoft.Network", "networkInterfaces", f"{name}.nic")}],
                "customDnsConfigs": [{"fqdn": f, "ipAddresses": [ip]} for f, ip in zip(names, ips, strict=False)],
            }}


def dns_zone_link(sub: str, rg: str, zone: str, name: str, vnet_id: str) -> Resource:
    return {"id": rid(sub, rg, "Microsoft.Network", "privateDnsZones", zone, "virtualNetworkLinks", name),
            "name": name, "type": "microsoft.network/privatednszones/virtualnetworklinks", "location": "global",
            "resourceGroup": rg.lower(), "subscriptionId": sub, "tags": {},
            "properties": {"virtualNetwork": {"id": vnet_id}, "registrationEnabled": False,
                           "virtualNetworkLinkState": "Completed", "provisioningState": "Succeeded"}}


# -- AVNM security admin rules (shape of the NetworkManagerEffectiveSecurityAdminRulesList example) ------------------

ADMIN_RULES_TYPE = "Microsoft.Network/virtualNetworks/networkManagerEffectiveSecurityAdminRules"


def admin_rule(manager_id: str, name: str, priority: int, access: str, destinations: str | list[str], *,
               configuration: str = "cfg-platform", collection: str = "rc-egress", direction: str = "Outbound",
               protocol: str = "Tcp", ports: list[str] | None = None, sources: list[str] | None = None,
               kind: str = "Custom", description: str = "") -> Resource:
    """One effective security admin rule. Destinations / sources: a CIDR or '*' (IPPrefix), a service tag name
    (ServiceTag) or a network group id (NetworkGroup)."""
    def items(values: str | list[str]) -> list[dict[str, str]]:
        listed = [values] if isinstance(values, str) else values
        return [{"addressPrefix": v,
                 "addressPrefixType": ("NetworkGroup" if "/networkGroups/" in v else
                                       "IPPrefix" if v == "*" or v[:1].isdigit() else "ServiceTag")}
                for v in listed]

    group = f"{manager_id}/networkGroups/ng-all-spokes"
    return {
        "id": f"{manager_id}/securityAdminConfigurations/{configuration}/ruleCollections/{collection}/rules/{name}",
        "kind": kind,
        "configurationDescription": f"{configuration} (managed by the platform team)",
        "ruleCollectionDescription": f"{collection}",
        "ruleCollectionAppliesToGroups": [{"networkGroupId": group}],
        "ruleGroups": [{"id": group, "properties": {"description": "every spoke VNet", "provisioningState":
                                                    "Succeeded"}}],
        "properties": {
            "description": description or f"{access} {name}", "access": access, "priority": priority,
            "direction": direction, "protocol": protocol, "provisioningState": "Succeeded",
            "sourcePortRanges": ["0-65535"], "destinationPortRanges": ports or ["443"],
            "sources": items(sources or ["*"]), "destinations": items(destinations),
        },
    }


def network_manager_id(sub: str, rg: str, name: str) -> str:
    return rid(sub, rg, "Microsoft.Network", "networkManagers", name)


def admin_rules(vnet_id: str, rules: list[Resource] | None = None, error: str = "") -> Resource:
    """A VNet's effective security admin rules as ``export`` writes them (every page's ``value``), or a failed read."""
    properties: dict[str, Any] = {"error": error} if error else {"value": rules or []}
    return {"id": f"{vnet_id}/networkManagerEffectiveSecurityAdminRules", "type": ADMIN_RULES_TYPE,
            "properties": properties}


# -- Azure Firewall (shapes of AzureFirewallGet.json and FirewallPolicyRuleCollectionGroup*.json) -------------------

def network_rule(name: str, sources: list[str], destinations: list[str], *, ports: list[str] | None = None,
                 protocols: list[str] | None = None, fqdns: list[str] | None = None,
                 source_ip_groups: list[str] | None = None, destination_ip_groups: list[str] | None = None) -> Resource:
    rule: Resource = {"ruleType": "NetworkRule", "name": name, "sourceAddresses": sources,
                      "destinationAddresses": destinations, "ipProtocols": protocols or ["TCP"],
                      "destinationPorts": ports or ["443"]}
    for field, value in (("destinationFqdns", fqdns), ("sourceIpGroups", source_ip_groups),
                         ("destinationIpGroups", destination_ip_groups)):
        if value:
            rule[field] = value
    return rule


def application_rule(name: str, sources: list[str], fqdns: list[str] | None = None, *,
                     fqdn_tags: list[str] | None = None, protocols: list[tuple[str, int]] | None = None,
                     source_ip_groups: list[str] | None = None) -> Resource:
    rule: Resource = {"ruleType": "ApplicationRule", "name": name, "sourceAddresses": sources,
                      "protocols": [{"protocolType": p, "port": port} for p, port in protocols or [("Https", 443)]]}
    for field, value in (("targetFqdns", fqdns), ("fqdnTags", fqdn_tags), ("sourceIpGroups", source_ip_groups)):
        if value:
            rule[field] = value
    return rule


def rule_collection(name: str, priority: int, action: str, rules: list[Resource]) -> Resource:
    return {"ruleCollectionType": "FirewallPolicyFilterRuleCollection", "name": name, "priority": priority,
            "action": {"type": action}, "rules": rules}


def firewall_policy(sub: str, rg: str, name: str, location: str, *, base_policy: str = "", group_names: list[str],
                    dns_proxy: bool = False, tags: dict[str, str] | None = None) -> Resource:
    policy_id = rid(sub, rg, "Microsoft.Network", "firewallPolicies", name)
    props: dict[str, Any] = {"provisioningState": "Succeeded", "sku": {"tier": "Standard"},
                             "threatIntelMode": "Alert",
                             "ruleCollectionGroups": [{"id": f"{policy_id}/ruleCollectionGroups/{g}"}
                                                      for g in group_names]}
    if base_policy:
        props["basePolicy"] = {"id": base_policy}
    if dns_proxy:
        props["dnsSettings"] = {"enableProxy": True}
    return {"id": policy_id, "name": name, "type": "microsoft.network/firewallpolicies", "location": location,
            "resourceGroup": rg.lower(), "subscriptionId": sub, "tags": tags or {},
            "etag": 'W/"00000000-0000-0000-0000-000000000003"', "properties": props}


def rule_collection_group(policy_id: str, name: str, priority: int, collections: list[Resource]) -> Resource:
    return {"id": f"{policy_id}/ruleCollectionGroups/{name}", "name": name,
            "type": "Microsoft.Network/firewallPolicies/ruleCollectionGroups",
            "etag": 'W/"00000000-0000-0000-0000-000000000004"',
            "properties": {"provisioningState": "Succeeded", "priority": priority, "ruleCollections": collections}}


def azure_firewall(sub: str, rg: str, name: str, location: str, subnet_id: str, private_ip: str, *,
                   policy_id: str = "", forced_tunnelling: bool = False) -> Resource:
    fw_id = rid(sub, rg, "Microsoft.Network", "azureFirewalls", name)
    props: dict[str, Any] = {
        "provisioningState": "Succeeded", "sku": {"name": "AZFW_VNet", "tier": "Standard"},
        "threatIntelMode": "Alert",
        "ipConfigurations": [{"name": "fw-ipconfig", "id": f"{fw_id}/ipConfigurations/fw-ipconfig",
                              "properties": {"privateIPAddress": private_ip, "subnet": {"id": subnet_id},
                                             "publicIPAddress": {"id": rid(sub, rg, "Microsoft.Network",
                                                                           "publicIPAddresses", f"{name}-pip")}}}],
        "applicationRuleCollections": [], "natRuleCollections": [], "networkRuleCollections": [],
    }
    if policy_id:
        props["firewallPolicy"] = {"id": policy_id}
    if forced_tunnelling:
        props["managementIpConfiguration"] = {
            "name": "fw-mgmt", "id": f"{fw_id}/managementIpConfiguration",
            "properties": {"subnet": {"id": subnet_id.rsplit("/", 1)[0] + "/AzureFirewallManagementSubnet"}}}
    return {"id": fw_id, "name": name, "type": "microsoft.network/azurefirewalls", "location": location,
            "resourceGroup": rg.lower(), "subscriptionId": sub, "tags": {}, "properties": props}


def ip_group(sub: str, rg: str, name: str, location: str, addresses: list[str]) -> Resource:
    return {"id": rid(sub, rg, "Microsoft.Network", "ipGroups", name), "name": name,
            "type": "microsoft.network/ipgroups", "location": location, "resourceGroup": rg.lower(),
            "subscriptionId": sub, "tags": {}, "properties": {"provisioningState": "Succeeded",
                                                               "ipAddresses": addresses}}


# -- On-premises connectivity (failover readiness): the fields of VirtualNetworkGatewayGet.json,
# VirtualNetworkGatewayConnectionGet.json and ExpressRouteCircuitGet.json (azure-rest-api-specs, 2025-05-01) that the
# engine reads.

def use_remote_gateways(spoke: Resource, hub: Resource) -> Resource:
    """Adds to ``spoke`` a connected peering to ``hub`` with useRemoteGateways (the hub's gateway serves the spoke)."""
    spoke["properties"]["virtualNetworkPeerings"].append({
        "name": f"peer-{hub['name']}", "properties": {
            "peeringState": "Connected", "useRemoteGateways": True, "allowGatewayTransit": False,
            "remoteVirtualNetwork": {"id": hub["id"]},
            "remoteAddressSpace": {"addressPrefixes": hub["properties"]["addressSpace"]["addressPrefixes"]}}})
    return spoke


def virtual_network_gateway(sub: str, rg: str, name: str, location: str, vnet_id: str,
                            gateway_type: str = "ExpressRoute") -> Resource:
    gateway_id = rid(sub, rg, "Microsoft.Network", "virtualNetworkGateways", name)
    return {"id": gateway_id, "name": name, "type": "microsoft.network/virtualnetworkgateways", "location": location,
            "resourceGroup": rg.lower(), "subscriptionId": sub, "tags": {}, "sku": None,
            "properties": {"provisioningState": "Succeeded", "gatewayType": gateway_type,
                           "sku": {"name": "ErGw1AZ" if gateway_type == "ExpressRoute" else "VpnGw1AZ",
                                   "tier": "ErGw1AZ" if gateway_type == "ExpressRoute" else "VpnGw1AZ"},
                           "ipConfigurations": [{
                               "name": "gwipconfig1", "id": f"{gateway_id}/ipConfigurations/gwipconfig1",
                               "properties": {"privateIPAllocationMethod": "Dynamic",
                                              "subnet": {"id": f"{vnet_id}/subnets/GatewaySubnet"}}}]}}


def gateway_connection(sub: str, rg: str, name: str, location: str, gateway_id: str, *, circuit_id: str = "",
                       local_gateway_id: str = "", status: str = "Connected") -> Resource:
    props: dict[str, Any] = {"provisioningState": "Succeeded", "virtualNetworkGateway1": {"id": gateway_id},
                             "connectionType": "ExpressRoute" if circuit_id else "IPsec", "routingWeight": 0,
                             "connectionStatus": status}
    if circuit_id:
        props["peer"] = {"id": circuit_id}
    if local_gateway_id:
        props["localNetworkGateway2"] = {"id": local_gateway_id}
    return {"id": rid(sub, rg, "Microsoft.Network", "connections", name), "name": name,
            "type": "microsoft.network/connections", "location": location, "resourceGroup": rg.lower(),
            "subscriptionId": sub, "tags": {}, "sku": None, "properties": props}


def expressroute_circuit(sub: str, rg: str, name: str, location: str, peering_location: str, *,
                         tier: str = "Standard", provider: str = "Equinix") -> Resource:
    return {"id": rid(sub, rg, "Microsoft.Network", "expressRouteCircuits", name), "name": name,
            "type": "microsoft.network/expressroutecircuits", "location": location, "resourceGroup": rg.lower(),
            "subscriptionId": sub, "tags": {},
            "sku": {"name": f"{tier}_MeteredData", "tier": tier, "family": "MeteredData"},
            "properties": {"provisioningState": "Succeeded", "circuitProvisioningState": "Enabled",
                           "serviceProviderProvisioningState": "Provisioned",
                           "serviceProviderProperties": {"serviceProviderName": provider,
                                                         "peeringLocation": peering_location,
                                                         "bandwidthInMbps": 1000}}}
