"""The pull budgets every worker shares, in the status table: one row per (registry, credential)
in partition ``budget``, its :class:`~shared.http.budget.Ledger` as JSON, changed only under the
row's ETag (read, change, write if no one wrote meanwhile, else again), so concurrent workers
never take the same pull twice."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.http.budget import Ledger

PARTITION = "budget"
#: Writers racing for one row: after this many lost races in a row, something is wrong.
MAX_RACES = 100


def row_key(key: str) -> str:
    """A row key for any budget name (row keys may not hold ``/``, ``#``, ``?``, ``\\``)."""
    return hashlib.sha256(key.encode()).hexdigest()


class TableLedgers:
    """:class:`~shared.http.budget.Ledgers` in Azure Table storage (Azurite locally): in
    ``table``, the status table's client (:attr:`StatusStore.table`)."""

    blocking = True

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def change(self, key: str, fn: Callable[[Ledger], bool]) -> Ledger:
        row = row_key(key)
        for _ in range(MAX_RACES):
            try:
                entity = self.table.get_entity(PARTITION, row)
            except ResourceNotFoundError:
                entity = None
            ledger = Ledger.from_json(json.loads(entity["ledger"])) if entity else Ledger()
            if not fn(ledger):
                return ledger
            doc = {"PartitionKey": PARTITION, "RowKey": row, "key": key, "ledger": json.dumps(ledger.to_json())}
            try:
                if entity is None:
                    self.table.create_entity(doc)
                else:
                    self.table.update_entity(
                        doc,
                        mode=UpdateMode.REPLACE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceModifiedError, ResourceExistsError):
                continue  # another worker changed it first: read it again
            return ledger
        raise RuntimeError(f"budget {key}: the ledger kept changing under {MAX_RACES} attempts to update it")

    def all(self) -> dict[str, Ledger]:
        """Every budget in the table, by name (for reports)."""
        found = self.table.query_entities("PartitionKey eq @p", parameters={"p": PARTITION})
        return {str(e["key"]): Ledger.from_json(json.loads(e["ledger"])) for e in found}
