"""Azure Resource Manager: ACR's server-side importImage (the ARM engine)."""

#: Azure Resource Manager's public endpoint (``FERRY_ARM_ENDPOINT`` points elsewhere: a sovereign
#: cloud, or a fake in tests).
ARM_ENDPOINT = "https://management.azure.com"
