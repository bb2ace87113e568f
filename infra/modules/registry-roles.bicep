// Role assignments for Ferry's identity on one registry, in that registry's resource group
// (deployed as a module scoped there, so the registry may live in another resource group or
// subscription).
targetScope = 'resourceGroup'

@description('Name of an existing container registry in this module\'s resource group.')
param registryName string

@description('Principal (object) ID of Ferry\'s user-assigned managed identity.')
param principalId string

@description('Role definition IDs (GUIDs) to assign on the registry: AcrPull for sources, AcrPush for the target; Container Registry Repository Reader/Writer for registries in ABAC (repository-permission) mode.')
param roleDefinitionIds array

@description('For the target with the ARM engine: none, builtin (Container Registry Data Importer and Data Reader), contributor, or custom (a role with exactly the four actions importImage needs).')
@allowed([
  'none'
  'builtin'
  'contributor'
  'custom'
])
param importerRole string = 'none'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

var builtInImporter = '577a9874-89fd-4f24-9dbd-b5034d0ad23a' // Container Registry Data Importer and Data Reader
var contributor = 'b24988ac-6180-42a0-ab88-20f7382dd24c' // Contributor
var customImporterName = guid(resourceGroup().id, 'ferry-acr-importer')

// Exactly what importImage needs, and nothing else.
resource customImporter 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (importerRole == 'custom') {
  name: customImporterName
  properties: {
    roleName: 'Ferry ACR importer (${resourceGroup().name})'
    description: 'Import images into registries of this resource group with importImage.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.ContainerRegistry/registries/read'
          'Microsoft.ContainerRegistry/registries/pull/read'
          'Microsoft.ContainerRegistry/registries/push/write'
          'Microsoft.ContainerRegistry/registries/importImage/action'
        ]
        notActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource dataPlane 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in roleDefinitionIds: {
  name: guid(registry.id, principalId, roleId)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

var importerRoleId = importerRole == 'builtin' ? builtInImporter : (importerRole == 'contributor' ? contributor : customImporterName)

resource importer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (importerRole != 'none') {
  name: guid(registry.id, principalId, 'importer', importerRole)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', importerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    customImporter
  ]
}
