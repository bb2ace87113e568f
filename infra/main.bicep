// Ferry: a Flex Consumption function app that imports images into a container registry, with a
// user-assigned identity and no keys anywhere. See the README's "Deploying to Azure".
targetScope = 'resourceGroup'

@description('Region for every resource (a Flex Consumption region).')
param location string = resourceGroup().location

@description('Short name used in resource names.')
@minLength(2)
@maxLength(10)
param name string = 'ferry'

@description('Python version of the function app (Ferry runs on 3.11).')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Name of the target registry (an existing ACR), its resource group and subscription.')
param targetRegistryName string
param targetRegistryResourceGroup string = resourceGroup().name
param targetRegistrySubscriptionId string = subscription().subscriptionId

@description('Role definition IDs assigned on the target registry for the OCI engine: AcrPush by default; Container Registry Repository Writer (2a1e307c-b015-4ebd-883e-5b7698a07328) for a registry in ABAC mode.')
param targetRoleDefinitionIds array = [
  '8311e382-0749-4cb8-b61a-304f252e45ec' // AcrPush
]

@description('The ARM engine\'s role on the target: none (OCI engine only), builtin (Container Registry Data Importer and Data Reader), contributor, or custom (exactly registries/read, pull/read, push/write and importImage/action).')
@allowed([
  'none'
  'builtin'
  'contributor'
  'custom'
])
param armImporterRole string = 'builtin'

@description('Source registries Ferry pulls from with its identity: objects { name, resourceGroup, subscriptionId? }; each gets the sourceRoleDefinitionIds.')
param sourceRegistries array = []

@description('Role definition IDs assigned on each source registry: AcrPull by default; Container Registry Repository Reader (b93aa761-3e63-49ed-ac28-beffa264f7ac) for ABAC mode.')
param sourceRoleDefinitionIds array = [
  '7f951dda-4ed3-4680-a7ca-43fe172d538d' // AcrPull
]

@description('Named credentials for non-Azure registries: objects { name, hasUsername }. Store the secrets in the Key Vault as <name>-username and <name>-password; the app reads them as Key Vault references.')
param namedCredentials array = []

@description('Dev registry whose pushes are promoted (empty: no Event Grid). Its resource group, and whether to create the Event Grid subscription (second pass, after the code is published).')
param devRegistryName string = ''
param devRegistryResourceGroup string = resourceGroup().name
param deployEventSubscription bool = false

@description('NCRONTAB schedule (UTC) of the mirror pass.')
param mirrorSchedule string = '0 0 */6 * * *'

@description('Rules file shipped with the app (promotions and mirrors).')
param rulesFile string = 'rules.yaml'

@description('Accept ARM-style inline credentials (sealed with a key kept in the Key Vault as ferry-credential-key).')
param allowInlineCredentials bool = false

@description('Registries (host or host:port) allowed on private addresses, e.g. behind private endpoints; every other private, link-local or metadata destination is refused.')
param allowedRegistries array = []

@description('When not empty, the only source registries imports may come from (login servers).')
param sourceRegistryAllowList array = []

@description('Deliveries of a failing job before it goes to imports-poison.')
@minValue(1)
param maxDequeueCount int = 5

@description('At most this many manifests per import, and this many bytes per blob from a public source.')
param maxManifests int = 50
param maxPublicBlobBytes int = 2147483648

@description('Seconds an ARM import may run before it is failed.')
param armTimeoutSeconds int = 1800

@description('Seconds one run event is retried at one destination before it is recorded undelivered on the run (one function call: keep it under host.json\'s 30-minute functionTimeout).')
@maxValue(1500)
param eventDeliverySeconds int = 1200

@description('Maximum instances of the function app.')
param maximumInstanceCount int = 40

@description('Resource ID of an action group for Ferry\'s alerts (failed jobs, a mirror behind); empty: the alerts fire with no action.')
param alertActionGroupId string = ''

@description('Failed jobs in 15 minutes above which the failed-jobs alert fires.')
@minValue(0)
param failedJobsThreshold int = 0

@description('Minutes a mirror may stay behind before its alert fires (15 to 2880).')
@minValue(15)
@maxValue(2880)
param mirrorBehindMinutes int = 360

var token = toLower(uniqueString(subscription().id, resourceGroup().id, name))
var deployContainer = 'app-package-${take(token, 7)}'
var targetLoginServer = '${targetRegistryName}.azurecr.io'
var targetRegistryId = resourceId(targetRegistrySubscriptionId, targetRegistryResourceGroup, 'Microsoft.ContainerRegistry/registries', targetRegistryName)
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7' // EventGrid Data Sender
}
var siteName = 'func-${name}-${token}'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${name}-${token}'
  location: location
}

// -- storage: host storage, the imports queue and its poison twin, the status table ------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches its storage over the public endpoint; access is by identity only (shared keys off). Add VNet integration and private endpoints, then deny by default.
  // checkov:skip=CKV_AZURE_59: same as CKV_AZURE_35: the endpoint stays reachable, but no anonymous or key-based access is possible.
  // checkov:skip=CKV_AZURE_206: ZRS keeps three copies across zones; the queue and table hold transient job state, so geo-replication adds cost, not value.
  // checkov:skip=CKV_AZURE_43: the name is computed ('st' + name + a hash): lowercase letters and digits, 3-24 characters, which checkov cannot evaluate.
  name: 'st${name}${take(token, 13)}'
  location: location
  sku: {
    name: 'Standard_ZRS'
  }
  kind: 'StorageV2'
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
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
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deployContainer
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource importsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'imports'
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'imports-poison'
}

// Runs' end events wait here until delivered (their own queue: a slow subscriber never holds a job).
resource eventsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'imports-events'
}

resource eventsPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'imports-events-poison'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource importsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'imports'
}

// -- monitoring, by identity -----------------------------------------------------------------

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${name}-${token}'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${name}-${token}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

// -- Key Vault for named registry credentials ------------------------------------------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: App Service resolves Key Vault references over the public endpoint unless the app is VNet-integrated; access is RBAC-only (Key Vault Secrets User for Ferry's identity).
  // checkov:skip=CKV_AZURE_189: Key Vault references need the vault reachable from the app; without VNet integration that is its public endpoint (RBAC-only access).
  name: 'kv-${name}-${take(token, 10)}'
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enablePurgeProtection: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// -- run events: an Event Grid custom topic, CloudEvents 1.0, published by identity only -------

// Each run's end event is published here; subscribers use Event Grid's own filters, retries and
// dead-lettering. A topic without subscriptions costs nothing.
resource runTopic 'Microsoft.EventGrid/topics@2022-06-15' = {
  // checkov:skip=CKV_AZURE_193: the app publishes over the topic's public endpoint (Flex Consumption without VNet integration); keys are off, so only Entra identities with EventGrid Data Sender can publish.
  name: 'evgt-${name}-${token}'
  location: location
  // Its own identity, for subscriptions that deliver or dead-letter with a managed identity.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

// -- the function app ------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: a Flex Consumption plan (FC1) has no zoneRedundant plan setting of the Elastic Premium kind this check reads.
  name: 'plan-${name}-${token}'
  location: location
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

var kvRef = 'https://${vault.name}${environment().suffixes.keyvaultDns}/secrets'
// A credential without a username gets an empty USERNAME setting, which Ferry reads as none.
var credentialUsernames = [for c in namedCredentials: {
  name: 'FERRY_CREDENTIAL_${toUpper(replace(c.name, '-', '_'))}_USERNAME'
  value: c.hasUsername ? '@Microsoft.KeyVault(SecretUri=${kvRef}/${c.name}-username/)' : ''
}]
var credentialPasswords = [for c in namedCredentials: {
  name: 'FERRY_CREDENTIAL_${toUpper(replace(c.name, '-', '_'))}_PASSWORD'
  value: '@Microsoft.KeyVault(SecretUri=${kvRef}/${c.name}-password/)'
}]

// Destinations are named settings (FERRY_EVENTGRID_<NAME>_ENDPOINT, FERRY_WEBHOOK_<NAME>_*): add webhooks as app settings.
var runEventSettings = [
  { name: 'FERRY_EVENTGRID_RUNS_ENDPOINT', value: runTopic.properties.endpoint }
]

var appSettings = concat([
  // Host storage and the queue trigger's connection, by identity (no keys).
  { name: 'AzureWebJobsStorage__accountName', value: storage.name }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
  { name: 'AzureWebJobsStorage__blobServiceUri', value: storage.properties.primaryEndpoints.blob }
  { name: 'AzureWebJobsStorage__queueServiceUri', value: storage.properties.primaryEndpoints.queue }
  { name: 'AzureWebJobsStorage__tableServiceUri', value: storage.properties.primaryEndpoints.table }
  // DefaultAzureCredential in Ferry picks the user-assigned identity from this.
  { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId }
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
  // host.json's telemetryMode is OpenTelemetry: the Python worker takes the host's trace context.
  { name: 'PYTHON_ENABLE_OPENTELEMETRY', value: 'true' }
  { name: 'FERRY_QUEUE', value: 'imports' }
  { name: 'FERRY_TABLE', value: 'imports' }
  { name: 'FERRY_MAX_DEQUEUE_COUNT', value: string(maxDequeueCount) }
  { name: 'FERRY_RETRY_DELAY_SECONDS', value: '30' }
  { name: 'FERRY_LEASE_SECONDS', value: '60' }
  { name: 'FERRY_MAX_POLLING_SECONDS', value: '0.5' }
  { name: 'FERRY_CONCURRENCY', value: '8' }
  { name: 'FERRY_MAX_MANIFESTS', value: string(maxManifests) }
  { name: 'FERRY_MAX_PUBLIC_BLOB_BYTES', value: string(maxPublicBlobBytes) }
  { name: 'FERRY_MAX_DESCRIPTORS', value: '20000' }
  { name: 'FERRY_STALL_FLOOR_BYTES', value: '32768' }
  { name: 'FERRY_STALL_WINDOW_SECONDS', value: '30' }
  { name: 'FERRY_RETRY_ATTEMPTS', value: '5' }
  { name: 'FERRY_RETRY_BUDGET_SECONDS', value: '120' }
  { name: 'FERRY_LOG_LEVEL', value: 'INFO' }
  { name: 'FERRY_INSECURE_REGISTRIES', value: '' }
  { name: 'FERRY_ALLOWED_REGISTRIES', value: join(allowedRegistries, ',') }
  { name: 'FERRY_ALLOW_LOOPBACK', value: 'false' }
  { name: 'FERRY_SOURCE_REGISTRIES', value: join(sourceRegistryAllowList, ',') }
  { name: 'FERRY_RULES_FILE', value: rulesFile }
  { name: 'FERRY_MIRROR_SCHEDULE', value: mirrorSchedule }
  { name: 'FERRY_RATELIMIT_FLOOR', value: '10' }
  { name: 'FERRY_REGISTRIES', value: string({ '${targetLoginServer}': targetRegistryId }) }
  { name: 'FERRY_ARM_ENDPOINT', value: environment().resourceManager }
  { name: 'FERRY_ARM_TIMEOUT_SECONDS', value: string(armTimeoutSeconds) }
  { name: 'FERRY_ALLOW_INLINE_CREDENTIALS', value: string(allowInlineCredentials) }
  { name: 'FERRY_CREDENTIAL_KEY', value: allowInlineCredentials ? '@Microsoft.KeyVault(SecretUri=${kvRef}/ferry-credential-key/)' : '' }
  // Run events: CloudEvents' source is the function app's resource ID.
  { name: 'FERRY_EVENT_SOURCE', value: resourceId('Microsoft.Web/sites', siteName) }
  { name: 'FERRY_EVENT_DELIVERY_SECONDS', value: string(eventDeliverySeconds) }
  { name: 'FERRY_EVENT_TIMEOUT_SECONDS', value: '10' }
], credentialUsernames, credentialPasswords, runEventSettings)

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: pipelines call the API over the internet; it is protected by function keys, or Entra ID with App Service authentication (README).
  // checkov:skip=CKV_AZURE_17: callers authenticate with function keys or Entra ID tokens, not client certificates.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales to zero and out on demand (maximumInstanceCount); no fixed minimum instances.
  // checkov:skip=CKV_AZURE_213: Flex Consumption does not use App Service health checks; GET /api/health probes the queue and table.
  name: siteName
  location: location
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
    keyVaultReferenceIdentity: identity.id
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deployContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: appSettings
    }
  }
  dependsOn: [
    deploymentContainer
    importsQueue
    poisonQueue
    importsTable
    eventsQueue
    eventsPoisonQueue
  ]
}

// -- roles: storage, monitoring, the vault ---------------------------------------------------

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]: {
  name: guid(storage.id, identity.id, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource insightsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource vaultRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource topicRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(runTopic.id, identity.id, roles.eventGridDataSender)
  scope: runTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// -- roles on the registries, each in its own resource group and subscription ----------------

module targetRoles 'modules/registry-roles.bicep' = {
  name: 'ferry-target-roles-${token}'
  scope: resourceGroup(targetRegistrySubscriptionId, targetRegistryResourceGroup)
  params: {
    registryName: targetRegistryName
    principalId: identity.properties.principalId
    roleDefinitionIds: targetRoleDefinitionIds
    importerRole: armImporterRole
  }
}

module sourceRoles 'modules/registry-roles.bicep' = [for (source, i) in sourceRegistries: {
  name: 'ferry-source-roles-${i}-${token}'
  scope: resourceGroup(contains(source, 'subscriptionId') ? source.subscriptionId : subscription().subscriptionId, source.resourceGroup)
  params: {
    registryName: source.name
    principalId: identity.properties.principalId
    roleDefinitionIds: sourceRoleDefinitionIds
    importerRole: armImporterRole == 'none' ? 'none' : 'builtin'
  }
}]

// -- promotion on push: the dev registry's events --------------------------------------------

module devEvents 'modules/registry-events.bicep' = if (!empty(devRegistryName)) {
  name: 'ferry-dev-events-${token}'
  scope: resourceGroup(devRegistryResourceGroup)
  params: {
    registryName: devRegistryName
    functionResourceId: '${site.id}/functions/on_image_pushed'
    deploySubscription: deployEventSubscription
  }
}

// -- alerts: failed jobs, a mirror behind for too long ------------------------------------------

module alerts 'modules/alerts.bicep' = {
  name: 'ferry-alerts-${token}'
  params: {
    location: location
    insightsId: insights.id
    name: '${name}-${take(token, 6)}'
    actionGroupId: alertActionGroupId
    failedJobsThreshold: failedJobsThreshold
    mirrorBehindMinutes: mirrorBehindMinutes
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'ferry-workbook-${token}'
  params: {
    location: location
    insightsId: insights.id
    name: name
  }
}

output functionAppName string = site.name
output apiBaseUrl string = 'https://${site.properties.defaultHostName}/api'
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
output keyVaultName string = vault.name
output storageAccountName string = storage.name
output runEventsTopicId string = runTopic.id
output runEventsTopicEndpoint string = runTopic.properties.endpoint
