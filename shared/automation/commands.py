"""``ferry rules check`` (offline validation, what each rule does), ``ferry rules plan`` (what each
mirror would select from its source's live tags) and ``ferry rules match`` (whether, and why, each
promotion matches a push).

Exit codes: 0 fine; 1 a plan that could not list a mirror's tags, or a push no promotion matches;
2 bad input (a rules file that does not validate: each problem on its own line, YAML and JSON
errors with their line and column)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping

from shared import environment
from shared.automation.plan import plan as plan_mirrors
from shared.automation.rules import Rules, RulesError, load_rules
from shared.credentials import Credential
from shared.credentials.resolver import Resolver
from shared.errors import ConfigurationError
from shared.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from shared.oci.reference import parse_reference
from shared.settings import named_credential, named_credentials
from shared.text import clean

DEFAULT_RULES = "rules.yaml"


def _refused(exc: ConfigurationError) -> int:
    """A bad rules file or setting on stderr, one problem a line (real line breaks, escaped text)."""
    if isinstance(exc, RulesError):
        print(f"ferry rules: {clean(exc.source)}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {clean(problem)}", file=sys.stderr)
    else:
        print(f"ferry rules: {exc}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _load(file: str) -> Rules | int:
    try:
        return load_rules(file)
    except ConfigurationError as exc:
        return _refused(exc)


def plan(file: str, env: Mapping[str, str]) -> int:
    """One JSON document: per mirror, the tags it would select, skip (and why) and miss; exit 1
    when a mirror's tags could not be listed. ``env``: the settings (named credentials, the
    transport, the pull floor), handed in by the command's root."""
    rules = _load(file)
    if isinstance(rules, int):
        return rules
    try:
        named = named_credentials(env)
        options = environment.transport(env, loopback_default=True)
        reserve = environment.RATELIMIT_FLOOR.whole(env)
    except ConfigurationError as exc:
        return _refused(exc)

    def lookup(name: str) -> Credential:
        return named_credential(named, name)

    report = asyncio.run(plan_mirrors(rules, Resolver(lookup), options, reserve))
    print(json.dumps(report, indent=2))
    for warning in report["warnings"]:
        print(f"ferry rules plan: {clean(warning)}", file=sys.stderr)
    return EXIT_FAILED if any("error" in m for m in report["mirrors"]) else EXIT_OK


def check(file: str) -> int:
    rules = _load(file)
    if isinstance(rules, int):
        return rules
    for p in rules.promotions:
        tags = ", ".join(p.targetTags)
        print(
            f"promotion {p.name}: pushes to {p.sourceRegistry}/{p.repository} with tags matching /{p.tag}/ "
            f"-> {p.targetRegistry}/{p.targetRepository} as {tags} ({p.mode})"
            + (f", verified by policy {p.verify}" if p.verify else "")
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
            + (f", verified by policy {m.verify} per tag" if m.verify else "")
        )
    for policy in rules.verification.policies.values():
        print("\n".join(policy.explain()))
    print(f"{len(rules.promotions)} promotions, {len(rules.mirrors)} mirrors: valid")
    return EXIT_OK


def match(image: str, file: str | None, env: Mapping[str, str]) -> int:
    """Per promotion, whether a push of ``image`` matches and why, as the service explains an
    event; exit 0 when one matches, 1 when none does."""
    path = file or env.get("FERRY_RULES_FILE") or DEFAULT_RULES
    try:
        ref = parse_reference(image)
    except ValueError as exc:
        print(f"ferry rules match: {clean(image)}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not ref.tag:
        print(f"ferry rules match: {clean(image)}: give the pushed tag (REGISTRY/REPO:TAG)", file=sys.stderr)
        return EXIT_BAD_INPUT
    rules = _load(path)
    if isinstance(rules, int):
        return rules
    print(f"push of {ref.registry}/{ref.repository}:{ref.tag} against {path}:")
    matched = 0
    for rule in rules.promotions:
        explained = rule.explain(ref.registry, ref.repository, ref.tag)
        matched += explained.matched
        print(f"  {'MATCH' if explained.matched else 'no   '} {explained}")
    if not rules.promotions:
        print("  (the file has no promotions)")
    print(f"{matched} of {len(rules.promotions)} promotions match")
    return EXIT_OK if matched else EXIT_FAILED
