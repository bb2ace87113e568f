"""Each automation rule's last pass, one row per rule in the status table (partition ``rule``),
for the status page and ``GET /api/rules``: when it last ran, what it selected, which tags were
up to date, the jobs it made for the others, since when it has been behind."""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

RULES = "rule"
#: Properties stored as JSON text (table properties are flat).
_NESTED = ("jobs",)


class RuleRecords:
    """Rule rows beside the job records (the same table: one more partition)."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            return _decode(dict(self.table.get_entity(RULES, name)))
        except ResourceNotFoundError:
            return None

    def put(self, name: str, fields: dict[str, Any]) -> None:
        """Replace the rule's row with ``fields`` (plain values; ``jobs`` a mapping)."""
        row = {k: json.dumps(v) if k in _NESTED else v for k, v in fields.items() if v is not None}
        self.table.upsert_entity({"PartitionKey": RULES, "RowKey": name, **row}, mode=UpdateMode.REPLACE)

    def all(self) -> dict[str, dict[str, Any]]:
        found = self.table.query_entities("PartitionKey eq @p", parameters={"p": RULES})
        return {str(e["RowKey"]): _decode(dict(e)) for e in found}


def _decode(entity: dict[str, Any]) -> dict[str, Any]:
    doc = {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey", "Timestamp")}
    doc = {k: v for k, v in doc.items() if not k.startswith("odata")}
    for key in _NESTED:
        if isinstance(doc.get(key), str):
            doc[key] = json.loads(doc[key]) if doc[key] else {}
    return doc
