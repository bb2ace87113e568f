"""``ferry rules check`` (offline validation, what each rule does) and ``ferry rules plan`` (what
each mirror would select from its source's live tags)."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from shared import environment
from shared.automation.plan import plan as plan_mirrors
from shared.automation.rules import load_rules
from shared.credentials import Credential
from shared.credentials.resolver import Resolver
from shared.errors import ConfigurationError
from shared.exits import EXIT_BAD_INPUT, EXIT_OK
from shared.settings import credential_env, named_credentials


def plan(file: str) -> int:
    """One JSON document: per mirror, the tags it would select, skip (and why) and miss."""
    try:
        rules = load_rules(file)
        named = named_credentials(os.environ)
        options = environment.transport(os.environ, loopback_default=True)
        reserve = environment.ratelimit_floor(os.environ)
    except ConfigurationError as exc:
        print(f"ferry rules: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    def lookup(name: str) -> Credential:
        found = named.get(name.lower().replace("_", "-"))
        if found is None:
            raise ConfigurationError(f"credential {name!r} is not configured (set {credential_env(name)}_PASSWORD)")
        return found.credential()

    resolver = Resolver(lookup)
    print(json.dumps(asyncio.run(plan_mirrors(rules, resolver, options, reserve)), indent=2))
    return EXIT_OK


def check(file: str) -> int:
    try:
        rules = load_rules(file)
    except ConfigurationError as exc:
        print(f"ferry rules: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for p in rules.promotions:
        tags = ", ".join(p.targetTags)
        print(
            f"promotion {p.name}: pushes to {p.sourceRegistry}/{p.repository} with tags matching /{p.tag}/ "
            f"-> {p.targetRegistry}/{p.targetRepository} as {tags} ({p.mode})"
        )
    for m in rules.mirrors:
        how = [
            f"tags {m.tags}" if m.tags else "",
            f"/{m.tagRegex}/" if m.tagRegex else "",
            f"versions {m.range}" if m.range else "",
            f"suffix {m.suffix}" if m.suffix else "",
            "floating" if m.floating else "",
            f"extract /{m.extract}/ by {m.order}" if m.extract else "",
            f"newest {m.newest}" if m.newest else "",
        ]
        print(
            f"mirror {m.name}: {m.source} ({'; '.join(h for h in how if h)}) "
            f"-> {m.targetRegistry}/{m.targetRepository} ({m.mode})"
        )
    print(f"{len(rules.promotions)} promotions, {len(rules.mirrors)} mirrors: valid")
    return EXIT_OK
