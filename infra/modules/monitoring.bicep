// asr-remediate: what operators see without reading logs. A workbook over the app's telemetry and three
// scheduled-query alerts to an action group (e-mail). The queries read only what asr_remediate/telemetry.py writes:
// AppTraces records told apart by Properties.asrEvent (asr.run, asr.finding, asr.write) and AppMetrics rows named
// asr.* (tests/test_monitoring.py checks every table, column, attribute and name used here against the code).

@description('Region of the alert rules and the workbook.')
param location string

@description('Tags for every resource.')
param tags object

@description('Short prefix for resource names.')
param namePrefix string

@description('The Log Analytics workspace of the workspace-based Application Insights resource.')
param workspaceId string

@description('Where alerts are e-mailed. Empty: the action group and the alerts are not created.')
param alertEmail string

@description('Minutes between two scheduled scans (ASR_SCAN_SCHEDULE); "no completed scan" looks back twice this.')
@minValue(5)
@maxValue(1440)
param scanIntervalMinutes int

var findings = 'AppTraces | where tostring(Properties.asrEvent) == "asr.finding"'
var writes = 'AppTraces | where tostring(Properties.asrEvent) == "asr.write"'
var runs = 'AppTraces | where tostring(Properties.asrEvent) == "asr.run"'

// A VM with an error finding in the last hour and none in the 24 hours before it.
var newDriftQuery = 'let recent = ${findings} | where TimeGenerated > ago(1h) | summarize arg_max(TimeGenerated, *) by vmId = tostring(Properties.vmId); let before = ${findings} | where TimeGenerated between (ago(25h) .. ago(1h)) | distinct vmId = tostring(Properties.vmId); recent | join kind=leftanti before on vmId | project TimeGenerated, vmId, vmName = tostring(Properties.vmName), side = tostring(Properties.side), destination = tostring(Properties.destination), kind = tostring(Properties.kind), resourceId = tostring(Properties.resourceId), ruleName = tostring(Properties.ruleName)'
var failedWriteQuery = '${writes} | where tostring(Properties.outcome) endswith "failed" | project TimeGenerated, runId = tostring(Properties.runId), resourceId = tostring(Properties.resourceId), childName = tostring(Properties.childName), outcome = tostring(Properties.outcome), detail = tostring(Properties.detail)'
var completedScanQuery = '${runs} | where tostring(Properties.outcome) == "completed" and tostring(Properties.trigger) in ("timer", "queue")'

var complianceOverTime = 'AppMetrics | where Name == "asr.vms" | summarize vms = sum(Sum) by bin(TimeGenerated, 1h), status = tostring(Properties.status) | render timechart'
var currentDrift = 'let last = ${runs} | where tostring(Properties.trigger) in ("timer", "queue") | summarize arg_max(TimeGenerated, *) | project since = TimeGenerated - 1h; ${findings} | where TimeGenerated >= toscalar(last) | summarize arg_max(TimeGenerated, *) by vmId = tostring(Properties.vmId), side = tostring(Properties.side), destination = tostring(Properties.destination) | project vmName = tostring(Properties.vmName), side, destination, kind = tostring(Properties.kind), blockingResource = tostring(Properties.resourceId), ruleName = tostring(Properties.ruleName), fixable = tostring(Properties.fixable), vmId'
var lastRunPerTrigger = '${runs} | summarize arg_max(TimeGenerated, *) by trigger = tostring(Properties.trigger) | project trigger, TimeGenerated, outcome = tostring(Properties.outcome), runId = tostring(Properties.runId), vms = toint(Properties.vms), drift = toint(Properties.drift), planned = toint(Properties.planned), applied = toint(Properties.applied), failed = toint(Properties.failed), durationSeconds = todouble(Properties.durationSeconds)'
var writeOutcomes = '${writes} | project TimeGenerated, runId = tostring(Properties.runId), outcome = tostring(Properties.outcome), action = tostring(Properties.action), childName = tostring(Properties.childName), resourceId = tostring(Properties.resourceId), detail = tostring(Properties.detail) | order by TimeGenerated desc'

var workbookQueries = [
  {
    title: 'Compliance over time (replicated VMs by status)'
    query: complianceOverTime
    visualization: 'timechart'
  }
  {
    title: 'Current drift by VM, with the blocking resource and rule'
    query: currentDrift
    visualization: 'table'
  }
  {
    title: 'Last run per trigger'
    query: lastRunPerTrigger
    visualization: 'table'
  }
  {
    title: 'Writes and their outcomes'
    query: writeOutcomes
    visualization: 'table'
  }
]

var workbookContent = {
  version: 'Notebook/1.0'
  items: [for (item, i) in workbookQueries: {
    type: 3
    name: 'query-${i}'
    content: {
      version: 'KqlItem/1.0'
      title: item.title
      query: item.query
      size: 0
      timeContext: {
        durationMs: 604800000
      }
      queryType: 0
      resourceType: 'microsoft.operationalinsights/workspaces'
      visualization: item.visualization
    }
  }]
  isLocked: false
  fallbackResourceIds: [
    workspaceId
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, namePrefix, 'asr-remediate-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'asr-remediate: ASR network drift'
    category: 'workbook'
    sourceId: workspaceId
    serializedData: string(workbookContent)
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: '${namePrefix}-ag-asr-remediate'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'asrremed'
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var alerts = [
  {
    name: 'vm-newly-in-drift'
    description: 'A replicated VM has an error finding (ASR traffic blocked) that it did not have in the day before.'
    severity: 1
    query: newDriftQuery
    operator: 'GreaterThan'
    threshold: 0
    window: 'PT25H' // the query compares the last hour with the 24 hours before it
  }
  {
    name: 'write-failed'
    description: 'asr-remediate could not write a planned rule or route (see the audit record of the run).'
    severity: 1
    query: failedWriteQuery
    operator: 'GreaterThan'
    threshold: 0
    window: 'PT1H'
  }
  {
    name: 'no-completed-scan'
    description: 'No scheduled scan completed within twice the scan interval.'
    severity: 2
    query: completedScanQuery
    operator: 'LessThan'
    threshold: 1
    window: 'PT${scanIntervalMinutes * 2}M'
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for alert in alerts: if (!empty(alertEmail)) {
  name: '${namePrefix}-${alert.name}'
  location: location
  tags: tags
  properties: {
    displayName: 'asr-remediate: ${alert.name}'
    description: alert.description
    severity: alert.severity
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: alert.window
    criteria: {
      allOf: [
        {
          query: alert.query
          timeAggregation: 'Count'
          operator: alert.operator
          threshold: alert.threshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output workbookId string = workbook.id
