"""The only code that imports azure.storage and azure.data.tables."""

from shared.azure_storage.store import JobQueue, Received, StatusStore, StorageConfig, new_job_id

__all__ = ["JobQueue", "Received", "StatusStore", "StorageConfig", "new_job_id"]
