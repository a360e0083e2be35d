// Event Grid: the monitored subscription's ARM events -> the app's Event Grid trigger.
// Deployed by infra/subscription.bicep into a resource group of the monitored subscription: a
// system topic of type Microsoft.Resources.Subscriptions lives in (and listens to) one subscription.
targetScope = 'resourceGroup'

@description('Resource id of the Function App (main.bicep output functionAppResourceId).')
param functionAppResourceId string

@description('Name of the Event Grid-triggered function in function_app.py.')
param functionName string = 'on_resource_event'

@description('Resource id of the app\'s user-assigned identity (main.bicep output identityResourceId); Event Grid dead-letters with it.')
param identityResourceId string

@description('Resource id of the app\'s storage account (main.bicep output storageAccountResourceId).')
param deadLetterStorageAccountId string

@description('Blob container for undeliverable events (main.bicep output deadLetterContainerName).')
param deadLetterContainerName string = 'eventgrid-deadletter'

@description('Name of the system topic to create. Azure allows one system topic per source: if this subscription already has a Microsoft.Resources.Subscriptions topic, set existingSystemTopicName instead.')
param systemTopicName string = 'asr-remediate-${subscription().subscriptionId}'

@description('Use this existing system topic (in this resource group) instead of creating one. It must carry the identity identityResourceId.')
param existingSystemTopicName string = ''

@description('Event subscription name (3-64 letters, digits, hyphens).')
param eventSubscriptionName string = 'asr-remediate'

@description('Delivery attempts before an event is dead-lettered.')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 10

@description('Minutes an undelivered event is retried before it is dead-lettered.')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

param tags object = {
  application: 'asr-remediate'
}

// The ARM operations that can change what a replicated VM's outbound path allows. Advanced filter
// limit: 25 values across all filters of one event subscription (17 used here). Deletes of VNets,
// subnets, NICs and protected items are left out: they cannot open a gap on a VM that still replicates; a firewall
// policy in use cannot be deleted (it is attached to a firewall), a deleted firewall leaves its routes to nowhere.
var watchedOperations = [
  'Microsoft.Network/networkSecurityGroups/write'
  'Microsoft.Network/networkSecurityGroups/delete'
  'Microsoft.Network/networkSecurityGroups/securityRules/write'
  'Microsoft.Network/networkSecurityGroups/securityRules/delete'
  'Microsoft.Network/routeTables/write'
  'Microsoft.Network/routeTables/delete'
  'Microsoft.Network/routeTables/routes/write'
  'Microsoft.Network/routeTables/routes/delete'
  'Microsoft.Network/virtualNetworks/write'
  'Microsoft.Network/virtualNetworks/subnets/write'
  'Microsoft.Network/networkInterfaces/write'
  'Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems/write'
  'Microsoft.Network/azureFirewalls/write'
  'Microsoft.Network/azureFirewalls/delete'
  'Microsoft.Network/firewallPolicies/write'
  'Microsoft.Network/firewallPolicies/ruleCollectionGroups/write'
  'Microsoft.Network/firewallPolicies/ruleCollectionGroups/delete'
]

var createTopic = empty(existingSystemTopicName)
var topicName = createTopic ? systemTopicName : existingSystemTopicName

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = if (createTopic) {
  name: systemTopicName
  location: 'global'
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityResourceId}': {}
    }
  }
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

resource eventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  name: '${topicName}/${eventSubscriptionName}'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppResourceId}/functions/${functionName}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess'
        'Microsoft.Resources.ResourceDeleteSuccess'
      ]
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: watchedOperations
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'UserAssigned'
        userAssignedIdentity: identityResourceId
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
  dependsOn: [
    systemTopic
  ]
}

output systemTopicName string = topicName
output eventSubscriptionName string = eventSubscriptionName
