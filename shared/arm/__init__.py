"""Azure Resource Manager: ACR's server-side importImage (the ARM engine)."""
