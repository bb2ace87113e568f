// An Application Insights workbook with the status page's views, from Ferry's telemetry
// (shared/telemetry/meters.py and spans.py): rules behind, failures by code, jobs and bytes,
// job durations, queue depth, and the slowest jobs' traces.

@description('Region of the workbook.')
param location string

@description('Resource ID of the Application Insights component Ferry sends its telemetry to.')
param insightsId string

@description('Short name shown in the workbook\'s title.')
param name string

var kql = [
  {
    title: 'Rules: tags behind now (ferry.rule.tags_behind) and last success'
    query: 'customMetrics | where name in ("ferry.rule.tags_behind", "ferry.rule.last_success") | extend rule = tostring(customDimensions["ferry.rule"]), kind = tostring(customDimensions["ferry.rule.kind"]) | summarize arg_max(timestamp, value) by rule, kind, name | evaluate pivot(name, any(value), rule, kind) | extend lastSuccess = unixtime_seconds_todatetime(todouble(column_ifexists("ferry.rule.last_success", real(null)))) | project rule, kind, behind = column_ifexists("ferry.rule.tags_behind", real(null)), lastSuccess | order by behind desc'
    visualization: 'table'
  }
  {
    title: 'Failures in the last day, by code'
    query: 'customMetrics | where timestamp > ago(1d) and name == "ferry.jobs" and tostring(customDimensions["ferry.outcome"]) == "failed" | summarize failed = sum(valueSum) by code = tostring(customDimensions["error.type"]) | order by failed desc'
    visualization: 'barchart'
  }
  {
    title: 'Job attempts by outcome'
    query: 'customMetrics | where name == "ferry.jobs" | summarize jobs = sum(valueSum) by bin(timestamp, 15m), outcome = tostring(customDimensions["ferry.outcome"])'
    visualization: 'timechart'
  }
  {
    title: 'Bytes copied'
    query: 'customMetrics | where name == "ferry.copy.bytes" | summarize bytes = sum(valueSum) by bin(timestamp, 15m)'
    visualization: 'timechart'
  }
  {
    title: 'Queue depth'
    query: 'customMetrics | where name == "ferry.queue.depth" | summarize depth = max(valueMax) by bin(timestamp, 5m), queue = tostring(customDimensions["messaging.destination.name"])'
    visualization: 'timechart'
  }
  {
    title: 'Slowest jobs of the last day (open one for its trace)'
    query: 'dependencies | union requests | where timestamp > ago(1d) and name == "ferry.import" | project timestamp, duration, job = tostring(customDimensions["ferry.job.id"]), source = tostring(customDimensions["ferry.source"]), outcome = tostring(customDimensions["ferry.outcome"]), code = tostring(customDimensions["error.type"]), operation_Id | top 20 by duration desc'
    visualization: 'table'
  }
]

var header = {
  type: 1
  content: {
    json: '## Ferry: the control room\nThe same views as the status page (`/api/control`), from Ferry\'s OpenTelemetry metrics and traces.'
  }
}

var queryItems = [for q in kql: {
  type: 3
  content: {
    version: 'KqlItem/1.0'
    title: q.title
    query: q.query
    size: 0
    timeContext: {
      durationMs: 86400000
    }
    queryType: 0
    resourceType: 'microsoft.insights/components'
    visualization: q.visualization
  }
}]

var items = concat([
  header
], queryItems)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, insightsId, 'ferry-control-room')
  location: location
  kind: 'shared'
  properties: {
    displayName: 'Ferry control room (${name})'
    category: 'workbook'
    sourceId: insightsId
    serializedData: string({
      version: 'Notebook/1.0'
      items: items
      fallbackResourceIds: [
        insightsId
      ]
    })
  }
}

output workbookId string = workbook.id
