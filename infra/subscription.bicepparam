using 'subscription.bicep'

// Values come from the outputs of role.bicep and main.bicep (see docs/deployment.md).
param principalId = '<main.bicep output identityPrincipalId>'
param roleDefinitionGuid = '<role.bicep output roleDefinitionGuid>'
param functionAppResourceId = '<main.bicep output functionAppResourceId>'
param identityResourceId = '<main.bicep output identityResourceId>'
param deadLetterStorageAccountId = '<main.bicep output storageAccountResourceId>'
param deadLetterContainerName = 'eventgrid-deadletter'
param deployEvents = true
param eventsResourceGroupName = 'rg-asr-remediate-events'
