#!/usr/bin/env bash
# asr-remediate plan as az CLI commands: review, then run (each is idempotent by name).
set -euo pipefail

# ASR needs outbound TCP 443 to AzureActiveDirectory: authenticate to Site Recovery; goes before Deny-Internet-Out (priority 4000) in NSG nsg-app
az network nsg rule create \
    --subscription 11111111-2222-3333-4444-555555555555 \
    --resource-group rg-prod-eastus \
    --nsg-name nsg-app \
    --name asr-remediate-AzureActiveDirectory \
    --priority 3999 \
    --direction Outbound \
    --access Allow \
    --protocol Tcp \
    --source-address-prefixes 10.10.2.0/24 \
    --source-port-ranges '*' \
    --destination-address-prefixes AzureActiveDirectory \
    --destination-port-ranges 443 \
    --description 'Lets Azure Site Recovery reach AzureActiveDirectory ahead of deny rule Deny-Internet-Out (priority 4000); managed by asr-remediate'

# ASR needs outbound TCP 443 to AzureSiteRecovery: talk to the Site Recovery service; goes before Deny-Internet-Out (priority 4000) in NSG nsg-app
az network nsg rule create \
    --subscription 11111111-2222-3333-4444-555555555555 \
    --resource-group rg-prod-eastus \
    --nsg-name nsg-app \
    --name asr-remediate-AzureSiteRecovery \
    --priority 3998 \
    --direction Outbound \
    --access Allow \
    --protocol Tcp \
    --source-address-prefixes 10.10.2.0/24 \
    --source-port-ranges '*' \
    --destination-address-prefixes AzureSiteRecovery \
    --destination-port-ranges 443 \
    --description 'Lets Azure Site Recovery reach AzureSiteRecovery ahead of deny rule Deny-Internet-Out (priority 4000); managed by asr-remediate'

# ASR needs outbound TCP 443 to EventHub.CentralUS: send monitoring data to centralus; goes before Deny-Internet-Out (priority 4000) in NSG nsg-app
az network nsg rule create \
    --subscription 11111111-2222-3333-4444-555555555555 \
    --resource-group rg-prod-eastus \
    --nsg-name nsg-app \
    --name asr-remediate-EventHub.CentralUS \
    --priority 3997 \
    --direction Outbound \
    --access Allow \
    --protocol Tcp \
    --source-address-prefixes 10.10.2.0/24 \
    --source-port-ranges '*' \
    --destination-address-prefixes EventHub.CentralUS \
    --destination-port-ranges 443 \
    --description 'Lets Azure Site Recovery reach EventHub.CentralUS ahead of deny rule Deny-Internet-Out (priority 4000); managed by asr-remediate'

# ASR needs outbound TCP 443 to Storage.EastUS: write replication data to the cache storage account in eastus; goes before Deny-Internet-Out (priority 4000) in NSG nsg-app
az network nsg rule create \
    --subscription 11111111-2222-3333-4444-555555555555 \
    --resource-group rg-prod-eastus \
    --nsg-name nsg-app \
    --name asr-remediate-Storage.EastUS \
    --priority 3996 \
    --direction Outbound \
    --access Allow \
    --protocol Tcp \
    --source-address-prefixes 10.10.2.0/24 \
    --source-port-ranges '*' \
    --destination-address-prefixes Storage.EastUS \
    --destination-port-ranges 443 \
    --description 'Lets Azure Site Recovery reach Storage.EastUS ahead of deny rule Deny-Internet-Out (priority 4000); managed by asr-remediate'

# ASR needs outbound TCP 443 to AzureActiveDirectory: authenticate to Site Recovery; goes before Deny-All-Out (priority 120) in NSG nsg-legacy
az network nsg rule create \
    --subscription 11111111-2222-3333-4444-555555555555 \
    --resource-group rg-prod-eastus \
    --nsg-name nsg-legacy \
    --name asr-remediate-AzureActiveDirectory \
    --priority 119 \
    --direction Outbound \
    --access Allow \
    --protocol Tcp \
    --source-address-prefixes 10.10.4.0/24 \
    --source-port-ranges '*' \
    --destination-address-prefixes AzureActiveDirectory \
    --destination-port-ranges 443 \
    --description 'Lets Azure Site Recovery reach AzureActiveDirectory ahead of deny rule Deny-All-Out (priority 120); managed by asr-remediate'

# ASR needs outbound TCP 443 to AzureSiteRecovery: talk to the Site Recovery service; goes before Deny-All-Out (priority 120) in NSG nsg-legacy
az network nsg rule create \
    --subscription 11111111-2222-3333-4444-555555555555 \
    --resource-group rg-prod-eastus \
    --nsg-name nsg-legacy \
    --name asr-remediate-AzureSiteRecovery \
    --priority 118 \
    --direction Outbound \
    --access Allow \
    --protocol Tcp \
    --source-address-prefixes 10.10.4.0/24 \
    --source-port-ranges '*' \
    --destination-address-prefixes AzureSiteRecovery \
    --destination-port-ranges 443 \
    --description 'Lets Azure Site Recovery reach AzureSiteRecovery ahead of deny rule Deny-All-Out (priority 120); managed by asr-remediate'

# ASR needs outbound TCP 443 to EventHub.CentralUS: send monitoring data to centralus; goes before Deny-All-Out (priority 120) in NSG nsg-legacy
az network nsg rule create \
    --subscription 11111111-2222-3333-4444-555555555555 \
    --resource-group rg-prod-eastus \
    --nsg-name nsg-legacy \
    --name asr-remediate-EventHub.CentralUS \
    --priority 117 \
    --direction Outbound \
    --access Allow \
    --protocol Tcp \
    --source-address-prefixes 10.10.4.0/24 \
    --source-port-ranges '*' \
    --destination-address-prefixes EventHub.CentralUS \
    --destination-port-ranges 443 \
    --description 'Lets Azure Site Recovery reach EventHub.CentralUS ahead of deny rule Deny-All-Out (priority 120); managed by asr-remediate'

# ASR needs outbound TCP 443 to Storage.EastUS: write replication data to the cache storage account in eastus; goes before Deny-All-Out (priority 120) in NSG nsg-legacy
az network nsg rule create \
    --subscription 11111111-2222-3333-4444-555555555555 \
    --resource-group rg-prod-eastus \
    --nsg-name nsg-legacy \
    --name asr-remediate-Storage.EastUS \
    --priority 116 \
    --direction Outbound \
    --access Allow \
    --protocol Tcp \
    --source-address-prefixes 10.10.4.0/24 \
    --source-port-ranges '*' \
    --destination-address-prefixes Storage.EastUS \
    --destination-port-ranges 443 \
    --description 'Lets Azure Site Recovery reach Storage.EastUS ahead of deny rule Deny-All-Out (priority 120); managed by asr-remediate'

# ASR needs outbound TCP 443 to Storage.CentralUS: write replication data to the cache storage account in centralus; goes before Deny-Storage-CentralUS (priority 300) in NSG nsg-dr-app
az network nsg rule create \
    --subscription 66666666-7777-8888-9999-000000000000 \
    --resource-group rg-dr-centralus \
    --nsg-name nsg-dr-app \
    --name asr-remediate-Storage.CentralUS \
    --priority 299 \
    --direction Outbound \
    --access Allow \
    --protocol Tcp \
    --source-address-prefixes 10.20.2.0/24 \
    --source-port-ranges '*' \
    --destination-address-prefixes Storage.CentralUS \
    --destination-port-ranges 443 \
    --description 'Lets Azure Site Recovery reach Storage.CentralUS ahead of deny rule Deny-Storage-CentralUS (priority 300); managed by asr-remediate'

# ASR traffic to AzureActiveDirectory must go to the Internet next hop: authenticate to Site Recovery; overrides route default-to-onprem in route table rt-forced-tunnel
az network route-table route create \
    --subscription 11111111-2222-3333-4444-555555555555 \
    --resource-group rg-prod-eastus \
    --route-table-name rt-forced-tunnel \
    --name asr-remediate-AzureActiveDirectory \
    --address-prefix AzureActiveDirectory \
    --next-hop-type Internet

# ASR traffic to AzureSiteRecovery must go to the Internet next hop: talk to the Site Recovery service; overrides route default-to-onprem in route table rt-forced-tunnel
az network route-table route create \
    --subscription 11111111-2222-3333-4444-555555555555 \
    --resource-group rg-prod-eastus \
    --route-table-name rt-forced-tunnel \
    --name asr-remediate-AzureSiteRecovery \
    --address-prefix AzureSiteRecovery \
    --next-hop-type Internet

# ASR traffic to EventHub.CentralUS must go to the Internet next hop: send monitoring data to centralus; overrides route default-to-onprem in route table rt-forced-tunnel
az network route-table route create \
    --subscription 11111111-2222-3333-4444-555555555555 \
    --resource-group rg-prod-eastus \
    --route-table-name rt-forced-tunnel \
    --name asr-remediate-EventHub.CentralUS \
    --address-prefix EventHub.CentralUS \
    --next-hop-type Internet

# ASR traffic to Storage.EastUS must go to the Internet next hop: write replication data to the cache storage account in eastus; overrides route default-to-onprem in route table rt-forced-tunnel
az network route-table route create \
    --subscription 11111111-2222-3333-4444-555555555555 \
    --resource-group rg-prod-eastus \
    --route-table-name rt-forced-tunnel \
    --name asr-remediate-Storage.EastUS \
    --address-prefix Storage.EastUS \
    --next-hop-type Internet

# not written in this format: create-rule-collection-group asr-remediate on /subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-platform-network/providers/Microsoft.Network/firewallPolicies/afwp-spokes-eastus
# (its properties are in the JSON plan: az rest --method put --url 'https://management.azure.com/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-platform-network/providers/Microsoft.Network/firewallPolicies/afwp-spokes-eastus/ruleCollectionGroups/asr-remediate?api-version=2024-05-01' --body @<properties>)
