"""The only code that imports azure.storage and azure.data.tables; :mod:`.records` holds plain
values (a job's record), read without them."""
