"""The only code that imports azure.storage and azure.data.tables."""
