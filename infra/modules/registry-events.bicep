// The dev registry's Event Grid system topic, and (second pass, once the code is published) the
// subscription that sends ImagePushed events to Ferry's Event Grid function.
targetScope = 'resourceGroup'

@description('Name of the existing dev registry (in this module\'s resource group).')
param registryName string

@description('Resource ID of Ferry\'s Event Grid function: <function app ID>/functions/on_image_pushed.')
param functionResourceId string

@description('Create the subscription. It fails while the function does not exist yet, so it is a second deployment pass after the code is published.')
param deploySubscription bool = false

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: 'evgt-${registryName}'
  location: registry.location
  properties: {
    source: registry.id
    topicType: 'Microsoft.ContainerRegistry.Registries'
  }
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = if (deploySubscription) {
  parent: topic
  name: 'ferry-image-pushed'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: functionResourceId
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.ContainerRegistry.ImagePushed'
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output topicName string = topic.name
