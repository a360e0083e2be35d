// The custom role the app's identity holds in every monitored subscription: exactly the ARM
// actions the code calls, nothing else. Deploy once, then assign it per subscription with
// infra/subscription.bicep.
//
//   az deployment sub create -l <region> -f infra/role.bicep -p infra/role.bicepparam
//
// One definition serves several subscriptions: list them all in assignableScopes (the deploying
// principal needs Microsoft.Authorization/roleDefinitions/write on each). The definition's id is
// derived from the tenant and the role name, so redeploying with allowWrites=true (or false)
// updates the same role in place and existing assignments follow; role names are unique per tenant.
targetScope = 'subscription'

@description('Allow the write and delete actions on asr-remediate-* security rules and routes. false: report-only (read) role.')
param allowWrites bool = false

@description('Allow writing and deleting the app\'s own rule collection group (asr-remediate) in Firewall Policies; needed only with ASR_APPLY_FIREWALL=true.')
param allowFirewallWrites bool = false

@description('Allow reading NIC effective routes (BGP-learned routes); needed only with ASR_READ_EFFECTIVE_ROUTES=true.')
param allowEffectiveRoutes bool = false

@description('Allow reading NIC effective security rules (Azure\'s expansion of VirtualNetwork); needed only with ASR_READ_EFFECTIVE_NSG=true.')
param allowEffectiveNsgs bool = false

@description('Allow listing the AVNM security admin rules in effect on a VNet (a read-only POST); needed with ASR_READ_ADMIN_RULES=true, the default.')
param allowAdminRules bool = true

@description('Scopes the role can be assigned at: the monitored subscriptions (/subscriptions/<id>) or resource groups in them.')
param assignableScopes array = [
  subscription().id
]

@description('Role name (unique per tenant). Give a second app with different permissions its own name.')
param roleName string = 'ASR Remediate Operator'

// Read: inventory (Resource Graph returns only what the identity may read, so each queried type's /read), ARM GETs
// of a resource right before a write or when an event names it, Service Tags, and polling long-running operations
// (Azure-AsyncOperation URLs: locations/operations; Location URLs of async POSTs and DELETEs: locations/operationResults).
// tests/emulator/test_rbac.py derives this list from the requests the code really sends.
var readActions = [
  'Microsoft.ResourceGraph/resources/read'
  'Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems/read'
  'Microsoft.Compute/virtualMachines/read'
  'Microsoft.Network/networkInterfaces/read'
  'Microsoft.Network/virtualNetworks/read'
  'Microsoft.Network/networkSecurityGroups/read'
  'Microsoft.Network/networkSecurityGroups/securityRules/read'
  'Microsoft.Network/routeTables/read'
  'Microsoft.Network/routeTables/routes/read'
  'Microsoft.Network/azureFirewalls/read'
  'Microsoft.Network/firewallPolicies/read'
  'Microsoft.Network/firewallPolicies/ruleCollectionGroups/read'
  'Microsoft.Network/ipGroups/read'
  'Microsoft.Network/privateEndpoints/read'
  'Microsoft.Network/privateDnsZones/virtualNetworkLinks/read'
  'Microsoft.RecoveryServices/vaults/read'
  'Microsoft.Storage/storageAccounts/read'
  'Microsoft.Network/virtualNetworkGateways/read'
  'Microsoft.Network/connections/read'
  'Microsoft.Network/expressRouteCircuits/read'
  'Microsoft.Network/locations/serviceTags/read'
  'Microsoft.Network/locations/operations/read'
  'Microsoft.Network/locations/operationResults/read'
]

// Write: create / update / remove the app's own asr-remediate-* rules and routes.
var writeActions = [
  'Microsoft.Network/networkSecurityGroups/securityRules/write'
  'Microsoft.Network/networkSecurityGroups/securityRules/delete'
  'Microsoft.Network/routeTables/routes/write'
  'Microsoft.Network/routeTables/routes/delete'
]

// Opt-in: create / update / remove the app's own rule collection group asr-remediate in a Firewall Policy
// (ASR_APPLY_FIREWALL); its long-running operations are polled with the read actions above.
var firewallWriteActions = [
  'Microsoft.Network/firewallPolicies/ruleCollectionGroups/write'
  'Microsoft.Network/firewallPolicies/ruleCollectionGroups/delete'
]

// Opt-in: effective routes of a NIC (a POST action, not a read).
var effectiveRouteActions = [
  'Microsoft.Network/networkInterfaces/effectiveRouteTable/action'
]

// Opt-in: effective security rules of a NIC (a POST action, not a read).
var effectiveNsgActions = [
  'Microsoft.Network/networkInterfaces/effectiveNetworkSecurityGroups/action'
]

// On by default: the AVNM security admin rules in effect on a VNet (a POST action that changes nothing).
var adminRuleActions = [
  'Microsoft.Network/virtualNetworks/listNetworkManagerEffectiveSecurityAdminRules/action'
]

var actions = concat(readActions, allowWrites ? writeActions : [], allowFirewallWrites ? firewallWriteActions : [], allowEffectiveRoutes ? effectiveRouteActions : [], allowEffectiveNsgs ? effectiveNsgActions : [], allowAdminRules ? adminRuleActions : [])

resource operatorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(tenant().tenantId, roleName)
  properties: {
    roleName: roleName
    description: allowWrites ? 'asr-remediate: reads VMs replicated by Azure Site Recovery and the NSGs and route tables on their path, and writes its own asr-remediate-* security rules and routes.' : 'asr-remediate (report-only): reads VMs replicated by Azure Site Recovery and the NSGs and route tables on their path.'
    type: 'customRole'
    permissions: [
      {
        actions: actions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: assignableScopes
  }
}

@description('Role definition GUID: pass it to infra/subscription.bicep as roleDefinitionGuid.')
output roleDefinitionGuid string = operatorRole.name
output roleDefinitionId string = operatorRole.id
output roleName string = roleName
