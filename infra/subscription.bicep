// Per monitored subscription: give the app's identity the custom role here, and send this
// subscription's ARM events to the app. Deploy once in EVERY subscription listed in
// ASR_SUBSCRIPTIONS, after main.bicep and after the code is published (Event Grid validates the
// function endpoint when the event subscription is created).
//
//   az deployment sub create --subscription <monitored-sub> -l <region> \
//     -f infra/subscription.bicep -p infra/subscription.bicepparam
targetScope = 'subscription'

@description('Principal (object) id of the app\'s identity: main.bicep output identityPrincipalId.')
param principalId string

@description('GUID of the custom role: role.bicep output roleDefinitionGuid. Its assignableScopes must include this subscription.')
param roleDefinitionGuid string

@description('Send this subscription\'s ARM events to the app (Event Grid system topic). false: role assignment only; the timer scan still covers the subscription.')
param deployEvents bool = true

@description('Resource group (in this subscription) that holds the Event Grid system topic; created if missing.')
param eventsResourceGroupName string = 'rg-asr-remediate-events'

@description('Region of that resource group (the topic itself is global).')
param location string = deployment().location

@description('main.bicep output functionAppResourceId.')
param functionAppResourceId string = ''

@description('Name of the Event Grid-triggered function.')
param functionName string = 'on_resource_event'

@description('main.bicep output identityResourceId.')
param identityResourceId string = ''

@description('main.bicep output storageAccountResourceId.')
param deadLetterStorageAccountId string = ''

@description('main.bicep output deadLetterContainerName.')
param deadLetterContainerName string = 'eventgrid-deadletter'

@description('An existing Microsoft.Resources.Subscriptions system topic in eventsResourceGroupName to reuse (one is allowed per subscription).')
param existingSystemTopicName string = ''

param tags object = {
  application: 'asr-remediate'
}

// The whole subscription is the monitored scope. To narrow it, assign the same role at resource
// group scope instead (az role assignment create --scope ...) and deploy with deployEvents only.
resource operatorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinitionGuid)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'asr-remediate app identity'
  }
}

resource eventsGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = if (deployEvents) {
  name: eventsResourceGroupName
  location: location
  tags: tags
}

module events 'modules/events.bicep' = if (deployEvents) {
  name: 'asr-remediate-events'
  scope: resourceGroup(eventsResourceGroupName)
  params: {
    functionAppResourceId: functionAppResourceId
    functionName: functionName
    identityResourceId: identityResourceId
    deadLetterStorageAccountId: deadLetterStorageAccountId
    deadLetterContainerName: deadLetterContainerName
    existingSystemTopicName: existingSystemTopicName
    tags: tags
  }
  dependsOn: [
    eventsGroup
  ]
}

output roleAssignmentId string = operatorAssignment.id
