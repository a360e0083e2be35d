# asr-remediate plan as Terraform (azurerm): the NSGs and route tables exist; only the rules and routes below are managed.

provider "azurerm" {
  alias           = "sub_11111111_2222_3333_4444_555555555555"
  subscription_id = "11111111-2222-3333-4444-555555555555"
  features {}
}

provider "azurerm" {
  alias           = "sub_66666666_7777_8888_9999_000000000000"
  subscription_id = "66666666-7777-8888-9999-000000000000"
  features {}
}

# not written in this format: create-rule-collection-group asr-remediate on /subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-platform-network/providers/Microsoft.Network/firewallPolicies/afwp-spokes-eastus
# (its properties are in the JSON plan: az rest --method put --url 'https://management.azure.com/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-platform-network/providers/Microsoft.Network/firewallPolicies/afwp-spokes-eastus/ruleCollectionGroups/asr-remediate?api-version=2024-05-01' --body @<properties>)

# ASR needs outbound TCP 443 to AzureActiveDirectory: authenticate to Site Recovery; goes before Deny-Internet-Out (priority 4000) in NSG nsg-app
resource "azurerm_network_security_rule" "nsg_app_asr_remediate_AzureActiveDirectory" {
  provider                    = azurerm.sub_11111111_2222_3333_4444_555555555555
  name                        = "asr-remediate-AzureActiveDirectory"
  resource_group_name         = "rg-prod-eastus"
  network_security_group_name = "nsg-app"
  priority                    = 3999
  direction                   = "Outbound"
  access                      = "Allow"
  protocol                    = "Tcp"
  source_port_range           = "*"
  destination_port_range      = "443"
  source_address_prefixes     = ["10.10.2.0/24"]
  destination_address_prefix  = "AzureActiveDirectory"
  description                 = "Lets Azure Site Recovery reach AzureActiveDirectory ahead of deny rule Deny-Internet-Out (priority 4000); managed by asr-remediate"
}

# ASR needs outbound TCP 443 to AzureSiteRecovery: talk to the Site Recovery service; goes before Deny-Internet-Out (priority 4000) in NSG nsg-app
resource "azurerm_network_security_rule" "nsg_app_asr_remediate_AzureSiteRecovery" {
  provider                    = azurerm.sub_11111111_2222_3333_4444_555555555555
  name                        = "asr-remediate-AzureSiteRecovery"
  resource_group_name         = "rg-prod-eastus"
  network_security_group_name = "nsg-app"
  priority                    = 3998
  direction                   = "Outbound"
  access                      = "Allow"
  protocol                    = "Tcp"
  source_port_range           = "*"
  destination_port_range      = "443"
  source_address_prefixes     = ["10.10.2.0/24"]
  destination_address_prefix  = "AzureSiteRecovery"
  description                 = "Lets Azure Site Recovery reach AzureSiteRecovery ahead of deny rule Deny-Internet-Out (priority 4000); managed by asr-remediate"
}

# ASR needs outbound TCP 443 to EventHub.CentralUS: send monitoring data to centralus; goes before Deny-Internet-Out (priority 4000) in NSG nsg-app
resource "azurerm_network_security_rule" "nsg_app_asr_remediate_EventHub_CentralUS" {
  provider                    = azurerm.sub_11111111_2222_3333_4444_555555555555
  name                        = "asr-remediate-EventHub.CentralUS"
  resource_group_name         = "rg-prod-eastus"
  network_security_group_name = "nsg-app"
  priority                    = 3997
  direction                   = "Outbound"
  access                      = "Allow"
  protocol                    = "Tcp"
  source_port_range           = "*"
  destination_port_range      = "443"
  source_address_prefixes     = ["10.10.2.0/24"]
  destination_address_prefix  = "EventHub.CentralUS"
  description                 = "Lets Azure Site Recovery reach EventHub.CentralUS ahead of deny rule Deny-Internet-Out (priority 4000); managed by asr-remediate"
}

# ASR needs outbound TCP 443 to Storage.EastUS: write replication data to the cache storage account in eastus; goes before Deny-Internet-Out (priority 4000) in NSG nsg-app
resource "azurerm_network_security_rule" "nsg_app_asr_remediate_Storage_EastUS" {
  provider                    = azurerm.sub_11111111_2222_3333_4444_555555555555
  name                        = "asr-remediate-Storage.EastUS"
  resource_group_name         = "rg-prod-eastus"
  network_security_group_name = "nsg-app"
  priority                    = 3996
  direction                   = "Outbound"
  access                      = "Allow"
  protocol                    = "Tcp"
  source_port_range           = "*"
  destination_port_range      = "443"
  source_address_prefixes     = ["10.10.2.0/24"]
  destination_address_prefix  = "Storage.EastUS"
  description                 = "Lets Azure Site Recovery reach Storage.EastUS ahead of deny rule Deny-Internet-Out (priority 4000); managed by asr-remediate"
}

# ASR needs outbound TCP 443 to AzureActiveDirectory: authenticate to Site Recovery; goes before Deny-All-Out (priority 120) in NSG nsg-legacy
resource "azurerm_network_security_rule" "nsg_legacy_asr_remediate_AzureActiveDirectory" {
  provider                    = azurerm.sub_11111111_2222_3333_4444_555555555555
  name                        = "asr-remediate-AzureActiveDirectory"
  resource_group_name         = "rg-prod-eastus"
  network_security_group_name = "nsg-legacy"
  priority                    = 119
  direction                   = "Outbound"
  access                      = "Allow"
  protocol                    = "Tcp"
  source_port_range           = "*"
  destination_port_range      = "443"
  source_address_prefixes     = ["10.10.4.0/24"]
  destination_address_prefix  = "AzureActiveDirectory"
  description                 = "Lets Azure Site Recovery reach AzureActiveDirectory ahead of deny rule Deny-All-Out (priority 120); managed by asr-remediate"
}

# ASR needs outbound TCP 443 to AzureSiteRecovery: talk to the Site Recovery service; goes before Deny-All-Out (priority 120) in NSG nsg-legacy
resource "azurerm_network_security_rule" "nsg_legacy_asr_remediate_AzureSiteRecovery" {
  provider                    = azurerm.sub_11111111_2222_3333_4444_555555555555
  name                        = "asr-remediate-AzureSiteRecovery"
  resource_group_name         = "rg-prod-eastus"
  network_security_group_name = "nsg-legacy"
  priority                    = 118
  direction                   = "Outbound"
  access                      = "Allow"
  protocol                    = "Tcp"
  source_port_range           = "*"
  destination_port_range      = "443"
  source_address_prefixes     = ["10.10.4.0/24"]
  destination_address_prefix  = "AzureSiteRecovery"
  description                 = "Lets Azure Site Recovery reach AzureSiteRecovery ahead of deny rule Deny-All-Out (priority 120); managed by asr-remediate"
}

# ASR needs outbound TCP 443 to EventHub.CentralUS: send monitoring data to centralus; goes before Deny-All-Out (priority 120) in NSG nsg-legacy
resource "azurerm_network_security_rule" "nsg_legacy_asr_remediate_EventHub_CentralUS" {
  provider                    = azurerm.sub_11111111_2222_3333_4444_555555555555
  name                        = "asr-remediate-EventHub.CentralUS"
  resource_group_name         = "rg-prod-eastus"
  network_security_group_name = "nsg-legacy"
  priority                    = 117
  direction                   = "Outbound"
  access                      = "Allow"
  protocol                    = "Tcp"
  source_port_range           = "*"
  destination_port_range      = "443"
  source_address_prefixes     = ["10.10.4.0/24"]
  destination_address_prefix  = "EventHub.CentralUS"
  description                 = "Lets Azure Site Recovery reach EventHub.CentralUS ahead of deny rule Deny-All-Out (priority 120); managed by asr-remediate"
}

# ASR needs outbound TCP 443 to Storage.EastUS: write replication data to the cache storage account in eastus; goes before Deny-All-Out (priority 120) in NSG nsg-legacy
resource "azurerm_network_security_rule" "nsg_legacy_asr_remediate_Storage_EastUS" {
  provider                    = azurerm.sub_11111111_2222_3333_4444_555555555555
  name                        = "asr-remediate-Storage.EastUS"
  resource_group_name         = "rg-prod-eastus"
  network_security_group_name = "nsg-legacy"
  priority                    = 116
  direction                   = "Outbound"
  access                      = "Allow"
  protocol                    = "Tcp"
  source_port_range           = "*"
  destination_port_range      = "443"
  source_address_prefixes     = ["10.10.4.0/24"]
  destination_address_prefix  = "Storage.EastUS"
  description                 = "Lets Azure Site Recovery reach Storage.EastUS ahead of deny rule Deny-All-Out (priority 120); managed by asr-remediate"
}

# ASR needs outbound TCP 443 to Storage.CentralUS: write replication data to the cache storage account in centralus; goes before Deny-Storage-CentralUS (priority 300) in NSG nsg-dr-app
resource "azurerm_network_security_rule" "nsg_dr_app_asr_remediate_Storage_CentralUS" {
  provider                    = azurerm.sub_66666666_7777_8888_9999_000000000000
  name                        = "asr-remediate-Storage.CentralUS"
  resource_group_name         = "rg-dr-centralus"
  network_security_group_name = "nsg-dr-app"
  priority                    = 299
  direction                   = "Outbound"
  access                      = "Allow"
  protocol                    = "Tcp"
  source_port_range           = "*"
  destination_port_range      = "443"
  source_address_prefixes     = ["10.20.2.0/24"]
  destination_address_prefix  = "Storage.CentralUS"
  description                 = "Lets Azure Site Recovery reach Storage.CentralUS ahead of deny rule Deny-Storage-CentralUS (priority 300); managed by asr-remediate"
}

# ASR traffic to AzureActiveDirectory must go to the Internet next hop: authenticate to Site Recovery; overrides route default-to-onprem in route table rt-forced-tunnel
resource "azurerm_route" "rt_forced_tunnel_asr_remediate_AzureActiveDirectory" {
  provider            = azurerm.sub_11111111_2222_3333_4444_555555555555
  name                = "asr-remediate-AzureActiveDirectory"
  resource_group_name = "rg-prod-eastus"
  route_table_name    = "rt-forced-tunnel"
  address_prefix      = "AzureActiveDirectory"
  next_hop_type       = "Internet"
}

# ASR traffic to AzureSiteRecovery must go to the Internet next hop: talk to the Site Recovery service; overrides route default-to-onprem in route table rt-forced-tunnel
resource "azurerm_route" "rt_forced_tunnel_asr_remediate_AzureSiteRecovery" {
  provider            = azurerm.sub_11111111_2222_3333_4444_555555555555
  name                = "asr-remediate-AzureSiteRecovery"
  resource_group_name = "rg-prod-eastus"
  route_table_name    = "rt-forced-tunnel"
  address_prefix      = "AzureSiteRecovery"
  next_hop_type       = "Internet"
}

# ASR traffic to EventHub.CentralUS must go to the Internet next hop: send monitoring data to centralus; overrides route default-to-onprem in route table rt-forced-tunnel
resource "azurerm_route" "rt_forced_tunnel_asr_remediate_EventHub_CentralUS" {
  provider            = azurerm.sub_11111111_2222_3333_4444_555555555555
  name                = "asr-remediate-EventHub.CentralUS"
  resource_group_name = "rg-prod-eastus"
  route_table_name    = "rt-forced-tunnel"
  address_prefix      = "EventHub.CentralUS"
  next_hop_type       = "Internet"
}

# ASR traffic to Storage.EastUS must go to the Internet next hop: write replication data to the cache storage account in eastus; overrides route default-to-onprem in route table rt-forced-tunnel
resource "azurerm_route" "rt_forced_tunnel_asr_remediate_Storage_EastUS" {
  provider            = azurerm.sub_11111111_2222_3333_4444_555555555555
  name                = "asr-remediate-Storage.EastUS"
  resource_group_name = "rg-prod-eastus"
  route_table_name    = "rt-forced-tunnel"
  address_prefix      = "Storage.EastUS"
  next_hop_type       = "Internet"
}
