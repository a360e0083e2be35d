// asr-remediate: the Function App and everything it runs on, in one resource group.
//
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
//
// What this file does NOT do (see docs/deployment.md for the order):
//   * the custom role "ASR Remediate Operator" (infra/role.bicep, once per tenant or subscription set);
//   * the role assignment and the Event Grid system topic in each monitored subscription
//     (infra/subscription.bicep, once per monitored subscription, after the code is published:
//     an Event Grid subscription to an Azure Function endpoint is validated against the deployed function).
targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Naming and placement
// ---------------------------------------------------------------------------------------------

@description('Region for every resource in this resource group. Must offer the Flex Consumption plan.')
param location string = resourceGroup().location

@description('Short lowercase alphanumeric prefix for resource names (3-11 characters).')
@minLength(3)
@maxLength(11)
param namePrefix string = 'asrrem'

@description('Function App name (globally unique host name).')
param functionAppName string = '${namePrefix}-func-${uniqueString(resourceGroup().id)}'

@description('Storage account name (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param storageAccountName string = take('${namePrefix}${uniqueString(resourceGroup().id)}', 24)

@description('Tags applied to every resource.')
param tags object = {
  application: 'asr-remediate'
}

// ---------------------------------------------------------------------------------------------
// Hosting
// ---------------------------------------------------------------------------------------------

@description('Flex Consumption: most instances the app may scale out to (the platform enforces 40-1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Flex Consumption: memory per instance, MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Storage redundancy. Geo-redundant by default: the audit table is the record of every change the app made.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_GRS'

@description('Days Log Analytics keeps the app\'s logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('Application Insights accepts telemetry only with an Entra token (local auth disabled); the identity gets Monitoring Metrics Publisher.')
param appInsightsEntraAuth bool = true

// ---------------------------------------------------------------------------------------------
// App behaviour (each becomes an ASR_* app setting; docs/deployment.md has the table)
// ---------------------------------------------------------------------------------------------

@description('Minutes between two full scans: a divisor of 60 below an hour, or whole hours dividing 24. The "no completed scan" alert fires after twice this without one, and scanSchedule follows it unless set.')
@minValue(5)
@maxValue(1440)
param scanIntervalMinutes int = 30

// Derived from scanIntervalMinutes (a parameter default may reference another parameter, Bicep BCP072), so the alert
// window and the timer cannot drift apart. A custom schedule is still possible: then set scanIntervalMinutes to its
// largest gap.
@description('ASR_SCAN_SCHEDULE: NCRONTAB schedule of the full scan (six fields, UTC). Default: every scanIntervalMinutes.')
param scanSchedule string = scanIntervalMinutes < 60 ? '0 */${scanIntervalMinutes} * * * *' : '0 0 */${scanIntervalMinutes / 60} * * *'

@description('E-mail address for the alerts (VM newly in drift, failed write, no completed scan). Empty: no alerts.')
param alertEmail string = ''

@description('ASR_APPLY: write fixes. Keep false (report-only) until the reports have been reviewed.')
param apply bool = false

@description('ASR_PROFILE: service-tags (today\'s tags) or seed-2017 (explicit prefixes from the 2017 seed document).')
@allowed([
  'service-tags'
  'seed-2017'
])
param profile string = 'service-tags'

@description('ASR_RULE_STYLE: tag (one service tag per rule) or prefix (explicit prefixes).')
@allowed([
  'tag'
  'prefix'
])
param ruleStyle string = 'tag'

@description('ASR_SOURCE_SCOPE: source of a planned rule: subnet (the prefixes of the subnets of the VMs that need it), vm (their NIC IPs) or virtualnetwork (the VirtualNetwork tag).')
@allowed([
  'subnet'
  'vm'
  'virtualnetwork'
])
param sourceScope string = 'subnet'

@description('ASR_INCLUDE_KEYVAULT: also require AzureKeyVault.<source> for ADE-encrypted VMs.')
param includeKeyVault bool = false

@description('ASR_INCLUDE_GUEST_MANAGEMENT: also require GuestAndHybridManagement (mobility agent auto-update).')
param includeGuestManagement bool = false

@description('ASR_FIX_ROUTES: plan asr-remediate-* routes (next hop Internet) in existing route tables.')
param fixRoutes bool = true

@description('ASR_APPLY_FIREWALL: with apply, also write the asr-remediate rule collection group in the Firewall Policy of an Azure Firewall on the path. Needs role.bicep with allowFirewallWrites=true.')
param applyFirewall bool = false

@description('ASR_SUBSCRIPTIONS (required): comma-separated subscription ids to scan, with the connectivity (hub) subscription of an Azure Firewall the spokes route to. Each needs infra/subscription.bicep deployed in it (role reads, Event Grid topic).')
@minLength(36)
param monitoredSubscriptions string

@description('ASR_SCOPE_ALLOWLIST: comma-separated resource id prefixes the app may write under. Empty: it writes nowhere.')
param scopeAllowlist string = ''

@description('ASR_OPT_OUT_TAG: tag name on a VM, NSG or route table that excludes it.')
param optOutTag string = 'asr-remediate-opt-out'

@description('ASR_MAX_CHANGES: most writes in one run.')
@minValue(0)
param maxChanges int = 20

@description('ASR_READ_EFFECTIVE_ROUTES: read NIC effective routes (BGP). Needs role.bicep with allowEffectiveRoutes=true.')
param readEffectiveRoutes bool = false

@description('ASR_READ_EFFECTIVE_NSG: read NIC effective security rules (Azure\'s VirtualNetwork expansion). Needs role.bicep with allowEffectiveNsgs=true.')
param readEffectiveNsgs bool = false
@description('ASR_READ_ADMIN_RULES: read the AVNM security admin rules in effect on each VNet of a replicated VM (one POST per VNet). Needs role.bicep with allowAdminRules=true (its default).')
param readAdminRules bool = true

@description('ASR_SERVICE_TAGS_LOCATION: region to call the Service Tag Discovery API in (the list is global).')
param serviceTagsLocation string = location

@description('ASR_SERVICE_TAGS_FILE: path of a ServiceTags_Public JSON shipped in the package, used when the API is unavailable.')
param serviceTagsFile string = ''

@description('ASR_AUDIT_TABLE: Table Storage table for audit records (letters and digits only).')
param auditTableName string = 'asrremediateaudit'

@description('ASR_FANOUT_QUEUE: queue of per-subscription scan batches.')
param fanoutQueueName string = 'asr-scan-batches'

@description('ASR_FANOUT_BATCH_SIZE: subscriptions per fan-out queue message (one queue-triggered scan each).')
@minValue(1)
param fanoutBatchSize int = 50

@description('Blob container Flex Consumption deploys the app package to.')
param deploymentContainerName string = 'app-package'

@description('Blob container Event Grid dead-letters undeliverable events to (used by infra/subscription.bicep).')
param deadLetterContainerName string = 'eventgrid-deadletter'

// ---------------------------------------------------------------------------------------------
// Built-in role ids
// ---------------------------------------------------------------------------------------------

var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

// ---------------------------------------------------------------------------------------------
// Identity: one user-assigned identity for the host storage, the deployment package, the audit
// table, the fan-out queue, Application Insights, ARM (DefaultAzureCredential via AZURE_CLIENT_ID)
// and Event Grid dead-lettering.
// ---------------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-id-${uniqueString(resourceGroup().id)}'
  location: location
  tags: tags
}

// ---------------------------------------------------------------------------------------------
// Storage: host state (AzureWebJobsStorage), deployment package, audit table, fan-out queue,
// Event Grid dead letters. Entra only: no shared keys, no anonymous blobs, TLS 1.2, HTTPS only.
// ---------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration reaches storage over its public endpoint; every request is Entra-authenticated (allowSharedKeyAccess false). Put the app in a VNet and switch defaultAction to Deny to close it.
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: the public endpoint stays reachable, but only with an Entra token; anonymous blob access and shared keys are off.
  // checkov:skip=CKV_AZURE_43:The name is a parameter (default derived from uniqueString); Bicep's @minLength/@maxLength and ARM validate it, checkov cannot evaluate it.
  name: storageAccountName
  location: location
  tags: tags
  sku: {
    name: storageSku
  }
  kind: 'StorageV2'
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource auditTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: auditTableName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource fanoutQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: fanoutQueueName
}

// Data-plane roles for the identity, scoped to this account only.
resource blobOwnerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------------------------------------
// Monitoring: workspace-based Application Insights
// ---------------------------------------------------------------------------------------------

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-log-${uniqueString(resourceGroup().id)}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-appi-${uniqueString(resourceGroup().id)}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: appInsightsEntraAuth
  }
}

resource metricsPublisherAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (appInsightsEntraAuth) {
  name: guid(appInsights.id, identity.id, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------------------------------------
// Function App on Flex Consumption (Linux, Python 3.11)
// ---------------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy is not offered for Flex Consumption in every region; the app is a background scanner whose missed work is retried (Event Grid) or redone (timer), so a zone outage delays it, nothing is lost.
  name: '${namePrefix}-plan-${uniqueString(resourceGroup().id)}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

// Not set, on purpose: FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION (Flex takes the
// runtime from functionAppConfig.runtime and manages the host version), WEBSITE_RUN_FROM_PACKAGE
// and WEBSITE_CONTENT* (Flex runs from the deployment container). They are deprecated on Flex.
var hostSettings = [
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identity.properties.clientId
  }
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: storage.properties.primaryEndpoints.blob
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: storage.properties.primaryEndpoints.queue
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: storage.properties.primaryEndpoints.table
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    // host.json telemetryMode OpenTelemetry + this: the Python worker configures the Azure Monitor distro and streams
    // its logs itself, without duplicate host entries (learn.microsoft.com/azure/azure-functions/opentelemetry-howto).
    name: 'PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY'
    value: 'true'
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identity.properties.clientId
  }
]

var appInsightsAuthSettings = appInsightsEntraAuth ? [
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  }
] : []

var asrSettings = [
  {
    name: 'ASR_SCAN_SCHEDULE'
    value: scanSchedule
  }
  {
    name: 'ASR_APPLY'
    value: apply ? 'true' : 'false'
  }
  {
    name: 'ASR_PROFILE'
    value: profile
  }
  {
    name: 'ASR_RULE_STYLE'
    value: ruleStyle
  }
  {
    name: 'ASR_SOURCE_SCOPE'
    value: sourceScope
  }
  {
    name: 'ASR_INCLUDE_KEYVAULT'
    value: includeKeyVault ? 'true' : 'false'
  }
  {
    name: 'ASR_INCLUDE_GUEST_MANAGEMENT'
    value: includeGuestManagement ? 'true' : 'false'
  }
  {
    name: 'ASR_FIX_ROUTES'
    value: fixRoutes ? 'true' : 'false'
  }
  {
    name: 'ASR_APPLY_FIREWALL'
    value: applyFirewall ? 'true' : 'false'
  }
  {
    name: 'ASR_SUBSCRIPTIONS'
    value: monitoredSubscriptions
  }
  {
    name: 'ASR_SCOPE_ALLOWLIST'
    value: scopeAllowlist
  }
  {
    name: 'ASR_OPT_OUT_TAG'
    value: optOutTag
  }
  {
    name: 'ASR_MAX_CHANGES'
    value: string(maxChanges)
  }
  {
    name: 'ASR_READ_EFFECTIVE_ROUTES'
    value: readEffectiveRoutes ? 'true' : 'false'
  }
  {
    name: 'ASR_READ_EFFECTIVE_NSG'
    value: readEffectiveNsgs ? 'true' : 'false'
  }
  {
    name: 'ASR_READ_ADMIN_RULES'
    value: readAdminRules ? 'true' : 'false'
  }
  {
    name: 'ASR_SERVICE_TAGS_LOCATION'
    value: serviceTagsLocation
  }
  {
    name: 'ASR_SERVICE_TAGS_FILE'
    value: serviceTagsFile
  }
  {
    name: 'ASR_AUDIT_SINK'
    value: 'table'
  }
  {
    name: 'ASR_AUDIT_TABLE'
    value: auditTableName
  }
  {
    name: 'ASR_AUDIT_TABLE_ENDPOINT'
    value: storage.properties.primaryEndpoints.table
  }
  {
    // The Event Grid handler drops events caused by these principals (the bot's own writes).
    name: 'ASR_BOT_PRINCIPAL_IDS'
    value: '${identity.properties.principalId},${identity.properties.clientId}'
  }
  {
    name: 'ASR_FANOUT_QUEUE'
    value: fanoutQueueName
  }
  {
    name: 'ASR_FANOUT_BATCH_SIZE'
    value: string(fanoutBatchSize)
  }
  {
    name: 'ASR_ARM_ENDPOINT'
    value: environment().resourceManager
  }
]

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17:Incoming client certificates are not used: Event Grid cannot present one; the Event Grid webhook takes the system key and the dry run a function key.
  // checkov:skip=CKV_AZURE_222:Event Grid delivers to the function over the public endpoint (an Azure Function endpoint subscription needs it); HTTPS only and every trigger needs a key.
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales to zero and has no minimum instance count; a missed event is retried by Event Grid and caught by the next timer scan.
  // checkov:skip=CKV_AZURE_213:Health check pings a path on running instances; Flex Consumption scales to zero and replaces unhealthy instances itself, and this app serves no user traffic.
  name: functionAppName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: concat(hostSettings, appInsightsAuthSettings, asrSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
  dependsOn: [
    blobOwnerAssignment
    queueContributorAssignment
    tableContributorAssignment
    deploymentContainer
  ]
}

// Deployments go through Entra (func / az CLI with a token); no FTP or SCM basic-auth passwords.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs (the per-subscription deployment takes several of them as parameters)
// ---------------------------------------------------------------------------------------------

// The operator's view: workbook, action group and scheduled-query alerts over the app's telemetry (README, Telemetry).
module monitoring 'modules/monitoring.bicep' = {
  name: 'asr-remediate-monitoring'
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    workspaceId: workspace.id
    alertEmail: alertEmail
    scanIntervalMinutes: scanIntervalMinutes
  }
}

output functionAppName string = functionApp.name
output workbookId string = monitoring.outputs.workbookId
output functionAppResourceId string = functionApp.id
output identityResourceId string = identity.id
output identityPrincipalId string = identity.properties.principalId
output identityClientId string = identity.properties.clientId
output storageAccountName string = storage.name
output storageAccountResourceId string = storage.id
output deadLetterContainerName string = deadLetterContainer.name
output auditTableEndpoint string = storage.properties.primaryEndpoints.table
