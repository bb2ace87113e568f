// Ferry's alerts, over the custom metrics the function app sends to Application Insights through
// OpenTelemetry (shared/telemetry/meters.py): jobs that failed, and a mirror that has been behind
// for longer than a set time. Both are log search alerts on Application Insights' customMetrics
// (where OpenTelemetry metrics land), routed to the action group given.

@description('Region of the alert rules.')
param location string

@description('Resource ID of the Application Insights component Ferry sends its telemetry to.')
param insightsId string

@description('Short name used in the rules\' names.')
param name string

@description('Resource ID of the action group alerts go to; empty: alerts fire with no action.')
param actionGroupId string = ''

@description('Failed jobs in 15 minutes above which the failed-jobs alert fires.')
@minValue(0)
param failedJobsThreshold int = 0

@description('Minutes a mirror may stay behind (tags missing or stale at the target) before its alert fires (at most two days).')
@minValue(15)
@maxValue(2880)
param mirrorBehindMinutes int = 360

var actions = {
  actionGroups: empty(actionGroupId) ? [] : [
    actionGroupId
  ]
}

resource failedJobs 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-${name}-failed-jobs'
  location: location
  properties: {
    displayName: 'Ferry: import jobs failed'
    description: 'Import jobs ended failed (ferry.jobs with ferry.outcome = failed), by error code. The status page\'s Failures view groups them.'
    severity: 2
    enabled: true
    scopes: [
      insightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "ferry.jobs" | where tostring(customDimensions["ferry.outcome"]) == "failed" | extend code = tostring(customDimensions["error.type"]) | summarize failed = sum(valueSum) by code'
          timeAggregation: 'Total'
          metricMeasureColumn: 'failed'
          dimensions: [
            {
              name: 'code'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: failedJobsThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

resource mirrorBehind 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-${name}-mirror-behind'
  location: location
  properties: {
    displayName: 'Ferry: a mirror is behind'
    description: 'A promotion or mirror rule has had tags behind (ferry.rule.tags_behind > 0) for the whole window: its target lacks tags or has stale ones. The status page\'s Rules view says which and since when.'
    severity: 2
    enabled: true
    scopes: [
      insightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT${mirrorBehindMinutes}M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "ferry.rule.tags_behind" | extend rule = tostring(customDimensions["ferry.rule"]) | summarize behind = min(valueMin) by rule'
          timeAggregation: 'Minimum'
          metricMeasureColumn: 'behind'
          dimensions: [
            {
              name: 'rule'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

output alertRuleIds array = [
  failedJobs.id
  mirrorBehind.id
]
