"""The only code that imports azure.storage and azure.data.tables."""

from shared.azure_storage.queue import JobQueue, Received
from shared.azure_storage.store import StatusStore, StorageConfig, new_job_id

__all__ = ["JobQueue", "Received", "StatusStore", "StorageConfig", "new_job_id"]
