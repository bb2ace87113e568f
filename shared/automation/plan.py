"""``ferry rules plan``: what each mirror of a rules file would select from its source's live tag
list, before anything runs — the selected tags, every other tag with the part of the rule that
left it out (``tagRegex``, ``suffix``, ``range``, ``floating``, ``not a version``, ``newest``,
``extract``), the named tags that do not exist, a warning for a rule that selects nothing, and
the pass's cost to the source in requests and pulls, with what its pull budget would defer
(:mod:`shared.automation.cost`)."""

from __future__ import annotations

from typing import Any

from shared.automation.cost import estimate
from shared.automation.rules import Rules
from shared.credentials.resolver import Resolver
from shared.errors import FerryError
from shared.oci.reference import parse_reference
from shared.registry import RegistryClient, TransportOptions


async def plan(rules: Rules, credentials: Resolver, options: TransportOptions, reserve: int = 10) -> dict[str, Any]:
    mirrors, warnings = [], []
    for mirror in rules.mirrors:
        source = parse_reference(mirror.source)
        entry: dict[str, Any] = {"name": mirror.name, "source": mirror.source}
        try:
            # several accounts: the first one's view of the limit (each has a budget of its own)
            credential = credentials(source.registry, name=(mirror.credential or "").split(",")[0] or None)
            async with RegistryClient(source.registry, credential, options, role="source") as client:
                tags = await client.list_tags(source.repository)
                explained = mirror.explain(tags)
                cost = await estimate(client, source.repository, explained["selected"], reserve)
        except FerryError as exc:
            entry["error"] = {"code": exc.code, "message": str(exc)}
            warnings.append(f"mirror {mirror.name}: could not list the tags of {mirror.source}: {exc}")
            mirrors.append(entry)
            continue
        entry.update(explained)
        entry["cost"] = cost
        if cost.get("note"):
            warnings.append(f"mirror {mirror.name}: {cost['note']}")
        if tags and not entry["selected"]:
            warnings.append(f"mirror {mirror.name}: selects none of the {len(tags)} tags of {mirror.source}")
        if entry["missing"]:
            warnings.append(f"mirror {mirror.name}: named tags that do not exist: {', '.join(entry['missing'])}")
        mirrors.append(entry)
    return {"mirrors": mirrors, "warnings": warnings}
