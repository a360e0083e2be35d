// not written in this format: create-rule-collection-group asr-remediate on /subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-platform-network/providers/Microsoft.Network/firewallPolicies/afwp-spokes-eastus
// (its properties are in the JSON plan: az rest --method put --url 'https://management.azure.com/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-platform-network/providers/Microsoft.Network/firewallPolicies/afwp-spokes-eastus/ruleCollectionGroups/asr-remediate?api-version=2024-05-01' --body @<properties>)

// ---- 11111111-2222-3333-4444-555555555555/rg-prod-eastus.bicep: az deployment group create --subscription 11111111-2222-3333-4444-555555555555 --resource-group rg-prod-eastus --template-file rg-prod-eastus.bicep
// asr-remediate plan: the NSGs and route tables exist; only the rules and routes below are deployed.

resource nsg_app 'Microsoft.Network/networkSecurityGroups@2024-05-01' existing = {
  name: 'nsg-app'
}

resource nsg_legacy 'Microsoft.Network/networkSecurityGroups@2024-05-01' existing = {
  name: 'nsg-legacy'
}

resource rt_forced_tunnel 'Microsoft.Network/routeTables@2024-05-01' existing = {
  name: 'rt-forced-tunnel'
}

// ASR needs outbound TCP 443 to AzureActiveDirectory: authenticate to Site Recovery; goes before Deny-Internet-Out (priority 4000) in NSG nsg-app
resource nsg_app_asr_remediate_AzureActiveDirectory 'Microsoft.Network/networkSecurityGroups/securityRules@2024-05-01' = {
  parent: nsg_app
  name: 'asr-remediate-AzureActiveDirectory'
  properties: {
    description: 'Lets Azure Site Recovery reach AzureActiveDirectory ahead of deny rule Deny-Internet-Out (priority 4000); managed by asr-remediate'
    protocol: 'Tcp'
    sourcePortRange: '*'
    destinationPortRange: '443'
    access: 'Allow'
    priority: 3999
    direction: 'Outbound'
    sourceAddressPrefixes: [
      '10.10.2.0/24'
    ]
    destinationAddressPrefix: 'AzureActiveDirectory'
  }
}

// ASR needs outbound TCP 443 to AzureSiteRecovery: talk to the Site Recovery service; goes before Deny-Internet-Out (priority 4000) in NSG nsg-app
resource nsg_app_asr_remediate_AzureSiteRecovery 'Microsoft.Network/networkSecurityGroups/securityRules@2024-05-01' = {
  parent: nsg_app
  name: 'asr-remediate-AzureSiteRecovery'
  properties: {
    description: 'Lets Azure Site Recovery reach AzureSiteRecovery ahead of deny rule Deny-Internet-Out (priority 4000); managed by asr-remediate'
    protocol: 'Tcp'
    sourcePortRange: '*'
    destinationPortRange: '443'
    access: 'Allow'
    priority: 3998
    direction: 'Outbound'
    sourceAddressPrefixes: [
      '10.10.2.0/24'
    ]
    destinationAddressPrefix: 'AzureSiteRecovery'
  }
}

// ASR needs outbound TCP 443 to EventHub.CentralUS: send monitoring data to centralus; goes before Deny-Internet-Out (priority 4000) in NSG nsg-app
resource nsg_app_asr_remediate_EventHub_CentralUS 'Microsoft.Network/networkSecurityGroups/securityRules@2024-05-01' = {
  parent: nsg_app
  name: 'asr-remediate-EventHub.CentralUS'
  properties: {
    description: 'Lets Azure Site Recovery reach EventHub.CentralUS ahead of deny rule Deny-Internet-Out (priority 4000); managed by asr-remediate'
    protocol: 'Tcp'
    sourcePortRange: '*'
    destinationPortRange: '443'
    access: 'Allow'
    priority: 3997
    direction: 'Outbound'
    sourceAddressPrefixes: [
      '10.10.2.0/24'
    ]
    destinationAddressPrefix: 'EventHub.CentralUS'
  }
}

// ASR needs outbound TCP 443 to Storage.EastUS: write replication data to the cache storage account in eastus; goes before Deny-Internet-Out (priority 4000) in NSG nsg-app
resource nsg_app_asr_remediate_Storage_EastUS 'Microsoft.Network/networkSecurityGroups/securityRules@2024-05-01' = {
  parent: nsg_app
  name: 'asr-remediate-Storage.EastUS'
  properties: {
    description: 'Lets Azure Site Recovery reach Storage.EastUS ahead of deny rule Deny-Internet-Out (priority 4000); managed by asr-remediate'
    protocol: 'Tcp'
    sourcePortRange: '*'
    destinationPortRange: '443'
    access: 'Allow'
    priority: 3996
    direction: 'Outbound'
    sourceAddressPrefixes: [
      '10.10.2.0/24'
    ]
    destinationAddressPrefix: 'Storage.EastUS'
  }
}

// ASR needs outbound TCP 443 to AzureActiveDirectory: authenticate to Site Recovery; goes before Deny-All-Out (priority 120) in NSG nsg-legacy
resource nsg_legacy_asr_remediate_AzureActiveDirectory 'Microsoft.Network/networkSecurityGroups/securityRules@2024-05-01' = {
  parent: nsg_legacy
  name: 'asr-remediate-AzureActiveDirectory'
  properties: {
    description: 'Lets Azure Site Recovery reach AzureActiveDirectory ahead of deny rule Deny-All-Out (priority 120); managed by asr-remediate'
    protocol: 'Tcp'
    sourcePortRange: '*'
    destinationPortRange: '443'
    access: 'Allow'
    priority: 119
    direction: 'Outbound'
    sourceAddressPrefixes: [
      '10.10.4.0/24'
    ]
    destinationAddressPrefix: 'AzureActiveDirectory'
  }
}

// ASR needs outbound TCP 443 to AzureSiteRecovery: talk to the Site Recovery service; goes before Deny-All-Out (priority 120) in NSG nsg-legacy
resource nsg_legacy_asr_remediate_AzureSiteRecovery 'Microsoft.Network/networkSecurityGroups/securityRules@2024-05-01' = {
  parent: nsg_legacy
  name: 'asr-remediate-AzureSiteRecovery'
  properties: {
    description: 'Lets Azure Site Recovery reach AzureSiteRecovery ahead of deny rule Deny-All-Out (priority 120); managed by asr-remediate'
    protocol: 'Tcp'
    sourcePortRange: '*'
    destinationPortRange: '443'
    access: 'Allow'
    priority: 118
    direction: 'Outbound'
    sourceAddressPrefixes: [
      '10.10.4.0/24'
    ]
    destinationAddressPrefix: 'AzureSiteRecovery'
  }
}

// ASR needs outbound TCP 443 to EventHub.CentralUS: send monitoring data to centralus; goes before Deny-All-Out (priority 120) in NSG nsg-legacy
resource nsg_legacy_asr_remediate_EventHub_CentralUS 'Microsoft.Network/networkSecurityGroups/securityRules@2024-05-01' = {
  parent: nsg_legacy
  name: 'asr-remediate-EventHub.CentralUS'
  properties: {
    description: 'Lets Azure Site Recovery reach EventHub.CentralUS ahead of deny rule Deny-All-Out (priority 120); managed by asr-remediate'
    protocol: 'Tcp'
    sourcePortRange: '*'
    destinationPortRange: '443'
    access: 'Allow'
    priority: 117
    direction: 'Outbound'
    sourceAddressPrefixes: [
      '10.10.4.0/24'
    ]
    destinationAddressPrefix: 'EventHub.CentralUS'
  }
}

// ASR needs outbound TCP 443 to Storage.EastUS: write replication data to the cache storage account in eastus; goes before Deny-All-Out (priority 120) in NSG nsg-legacy
resource nsg_legacy_asr_remediate_Storage_EastUS 'Microsoft.Network/networkSecurityGroups/securityRules@2024-05-01' = {
  parent: nsg_legacy
  name: 'asr-remediate-Storage.EastUS'
  properties: {
    description: 'Lets Azure Site Recovery reach Storage.EastUS ahead of deny rule Deny-All-Out (priority 120); managed by asr-remediate'
    protocol: 'Tcp'
    sourcePortRange: '*'
    destinationPortRange: '443'
    access: 'Allow'
    priority: 116
    direction: 'Outbound'
    sourceAddressPrefixes: [
      '10.10.4.0/24'
    ]
    destinationAddressPrefix: 'Storage.EastUS'
  }
}

// ASR traffic to AzureActiveDirectory must go to the Internet next hop: authenticate to Site Recovery; overrides route default-to-onprem in route table rt-forced-tunnel
resource rt_forced_tunnel_asr_remediate_AzureActiveDirectory 'Microsoft.Network/routeTables/routes@2024-05-01' = {
  parent: rt_forced_tunnel
  name: 'asr-remediate-AzureActiveDirectory'
  properties: {
    addressPrefix: 'AzureActiveDirectory'
    nextHopType: 'Internet'
  }
}

// ASR traffic to AzureSiteRecovery must go to the Internet next hop: talk to the Site Recovery service; overrides route default-to-onprem in route table rt-forced-tunnel
resource rt_forced_tunnel_asr_remediate_AzureSiteRecovery 'Microsoft.Network/routeTables/routes@2024-05-01' = {
  parent: rt_forced_tunnel
  name: 'asr-remediate-AzureSiteRecovery'
  properties: {
    addressPrefix: 'AzureSiteRecovery'
    nextHopType: 'Internet'
  }
}

// ASR traffic to EventHub.CentralUS must go to the Internet next hop: send monitoring data to centralus; overrides route default-to-onprem in route table rt-forced-tunnel
resource rt_forced_tunnel_asr_remediate_EventHub_CentralUS 'Microsoft.Network/routeTables/routes@2024-05-01' = {
  parent: rt_forced_tunnel
  name: 'asr-remediate-EventHub.CentralUS'
  properties: {
    addressPrefix: 'EventHub.CentralUS'
    nextHopType: 'Internet'
  }
}

// ASR traffic to Storage.EastUS must go to the Internet next hop: write replication data to the cache storage account in eastus; overrides route default-to-onprem in route table rt-forced-tunnel
resource rt_forced_tunnel_asr_remediate_Storage_EastUS 'Microsoft.Network/routeTables/routes@2024-05-01' = {
  parent: rt_forced_tunnel
  name: 'asr-remediate-Storage.EastUS'
  properties: {
    addressPrefix: 'Storage.EastUS'
    nextHopType: 'Internet'
  }
}

// ---- 66666666-7777-8888-9999-000000000000/rg-dr-centralus.bicep: az deployment group create --subscription 66666666-7777-8888-9999-000000000000 --resource-group rg-dr-centralus --template-file rg-dr-centralus.bicep
// asr-remediate plan: the NSGs and route tables exist; only the rules and routes below are deployed.

resource nsg_dr_app 'Microsoft.Network/networkSecurityGroups@2024-05-01' existing = {
  name: 'nsg-dr-app'
}

// ASR needs outbound TCP 443 to Storage.CentralUS: write replication data to the cache storage account in centralus; goes before Deny-Storage-CentralUS (priority 300) in NSG nsg-dr-app
resource nsg_dr_app_asr_remediate_Storage_CentralUS 'Microsoft.Network/networkSecurityGroups/securityRules@2024-05-01' = {
  parent: nsg_dr_app
  name: 'asr-remediate-Storage.CentralUS'
  properties: {
    description: 'Lets Azure Site Recovery reach Storage.CentralUS ahead of deny rule Deny-Storage-CentralUS (priority 300); managed by asr-remediate'
    protocol: 'Tcp'
    sourcePortRange: '*'
    destinationPortRange: '443'
    access: 'Allow'
    priority: 299
    direction: 'Outbound'
    sourceAddressPrefixes: [
      '10.20.2.0/24'
    ]
    destinationAddressPrefix: 'Storage.CentralUS'
  }
}
