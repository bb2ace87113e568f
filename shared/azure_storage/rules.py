"""Each automation rule's last pass, one row per rule in the status table (partition ``rule``),
for the status page and ``GET /api/rules``: when it last ran, what it selected, which tags were
up to date, the jobs it made for the others, since when it has been behind."""

from __future__ import annotations

import json

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, UpdateMode
from pydantic import TypeAdapter
from typing_extensions import TypedDict

RULES = "rule"
#: Properties stored as JSON text (table properties are flat).
_NESTED = ("jobs",)


class RulePass(TypedDict, total=False):
    """A rule's last pass as its row keeps it (a field that is None is not stored): its kind
    (``mirror``, ``promotion``), the tags it selected and those up to date, the job made (or found
    in flight) for each other tag, why a mirror pass deferred tags, the push a promotion acted on,
    and when (ISO text) it last passed, last had nothing behind, and has been behind since."""

    kind: str
    selected: int
    upToDate: int
    jobs: dict[str, str]
    deferred: str | None
    lastPush: str
    lastPass: str
    lastSuccess: str | None
    behindSince: str | None


_PASS = TypeAdapter(RulePass)


class RuleRecords:
    """Rule rows beside the job records (the same table: one more partition)."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def get(self, name: str) -> RulePass | None:
        try:
            return _decode(self.table.get_entity(RULES, name))
        except ResourceNotFoundError:
            return None

    def put(self, name: str, fields: RulePass) -> None:
        """Replace the rule's row with ``fields``."""
        row = {k: json.dumps(v) if k in _NESTED else v for k, v in fields.items() if v is not None}
        self.table.upsert_entity({"PartitionKey": RULES, "RowKey": name, **row}, mode=UpdateMode.REPLACE)

    def all(self) -> dict[str, RulePass]:
        found = self.table.query_entities("PartitionKey eq @p", parameters={"p": RULES})
        return {str(e["RowKey"]): _decode(e) for e in found}


def _decode(entity: TableEntity) -> RulePass:
    doc = {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey", "Timestamp")}
    doc = {k: v for k, v in doc.items() if not k.startswith("odata")}
    for key in _NESTED:
        if isinstance(doc.get(key), str):
            doc[key] = json.loads(doc[key]) if doc[key] else {}
    return _PASS.validate_python(doc)
