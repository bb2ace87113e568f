"""The rules file: promotions (Event Grid ``ImagePushed`` → import) and mirrors (timer → import
what changed). YAML or JSON, validated by pydantic; errors name the rule and the field.

```yaml
promotions:
  - name: web-to-prod
    sourceRegistry: devacr.azurecr.io
    repository: "team/*"                 # glob
    tag: "v\\d+\\.\\d+\\.\\d+"            # regex, whole tag
    targetRegistry: prodacr
    targetRepository: "{repository}"     # {repository} {tag} {digest}
    targetTags: ["{tag}", "stable"]
mirrors:
  - name: nginx
    source: docker.io/library/nginx
    credential: dockerhub
    semver: ">=1.25 <2"                  # or tags: [...], tagRegex: ..., and newest: N
    newest: 3
    targetRegistry: prodacr
    targetRepository: "mirror/{repository}"
    mode: Force
```
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.errors import ConfigurationError
from shared.oci.reference import parse_reference, parse_repository, parse_tag
from shared.service.models import Platforms, RegistryName

_TEMPLATE_FIELDS = {"repository", "tag", "digest"}
_FIELD = re.compile(r"\{(\w+)\}")


def _check_template(value: str) -> str:
    unknown = set(_FIELD.findall(value)) - _TEMPLATE_FIELDS
    if unknown:
        raise ValueError(f"unknown template field(s) {sorted(unknown)}; use {{repository}}, {{tag}} or {{digest}}")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


def render(template: str, **values: str) -> str:
    return _FIELD.sub(lambda m: values[m.group(1)], template)


# -- semver ------------------------------------------------------------------------------------

_SEMVER = re.compile(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")
_COMPARATOR = re.compile(r"(>=|<=|>|<|=|==)?\s*(v?\d+(?:\.\d+){0,2})")


def semver(tag: str) -> tuple[int, int, int] | None:
    """``1``, ``1.2``, ``v1.2.3`` as a version; anything else (pre-releases, suffixes) is None."""
    match = _SEMVER.fullmatch(tag)
    if not match:
        return None
    return (int(match.group(1)), int(match.group(2) or 0), int(match.group(3) or 0))


def parse_range(text: str) -> list[list[tuple[str, tuple[int, int, int]]]]:
    """``>=1.25 <2 || 3.1`` → alternatives of comparator lists; ValueError if it does not parse."""
    alternatives = []
    for part in text.split("||"):
        comparators = []
        for token in re.findall(r"(?:>=|<=|>|<|==|=)?\s*v?\d+(?:\.\d+){0,2}", part):
            match = _COMPARATOR.fullmatch(token.strip())
            assert match is not None
            version = semver(match.group(2))
            assert version is not None
            comparators.append((match.group(1) or "=", version))
        leftover = re.sub(r"(?:>=|<=|>|<|==|=)?\s*v?\d+(?:\.\d+){0,2}", "", part).strip()
        if leftover or not comparators:
            raise ValueError(f"semver range {text!r} does not parse near {leftover or part!r}")
        alternatives.append(comparators)
    return alternatives


def in_range(version: tuple[int, int, int], alternatives: list[list[tuple[str, tuple[int, int, int]]]]) -> bool:
    ops = {
        ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
        "<": lambda a, b: a < b, "=": lambda a, b: a == b, "==": lambda a, b: a == b,
    }  # fmt: skip
    return any(all(ops[op](version, bound) for op, bound in alt) for alt in alternatives)


# -- the model ---------------------------------------------------------------------------------


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    targetRegistry: RegistryName
    targetRepository: str = "{repository}"
    mode: Literal["NoForce", "Force"] = "NoForce"
    credential: str | None = None
    platforms: Platforms = Field(default_factory=list)
    includeReferrers: bool = False

    @field_validator("targetRepository")
    @classmethod
    def _repository(cls, value: str) -> str:
        _check_template(value)
        parse_repository(render(value, repository="a/b", tag="t", digest="sha256-0"))
        return value


class Promotion(_Rule):
    sourceRegistry: RegistryName
    repository: str = Field("*", description="glob over the pushed repository")
    tag: str = Field(".*", description="regular expression over the pushed tag (whole tag)")
    targetTags: list[str] = Field(default_factory=lambda: ["{tag}"], min_length=1, max_length=20)

    @field_validator("tag")
    @classmethod
    def _regex(cls, value: str) -> str:
        return _regex(value)

    @field_validator("targetTags")
    @classmethod
    def _tags(cls, values: list[str]) -> list[str]:
        for value in values:
            _check_template(value)
            parse_tag(render(value, repository="a", tag="t", digest="sha256-0"))
        return values

    def matches(self, registry: str, repository: str, tag: str) -> bool:
        return (
            registry == self.sourceRegistry
            and fnmatch.fnmatchcase(repository, self.repository)
            and re.fullmatch(self.tag, tag) is not None
        )


class Mirror(_Rule):
    source: str = Field(description="registry/repository to mirror")
    tags: list[str] = Field(default_factory=list, max_length=200)
    tagRegex: str | None = None
    semver: str | None = None
    newest: int | None = Field(None, ge=1, le=200, description="keep the newest N by semver")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        ref = parse_reference(value)
        if ref.tag or ref.digest:
            raise ValueError("a mirror's source is a repository, without tag or digest")
        return ref.name

    @field_validator("tagRegex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return None if value is None else _regex(value)

    @field_validator("semver")
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        if value is not None:
            parse_range(value)
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, values: list[str]) -> list[str]:
        return [parse_tag(v) for v in values]

    @model_validator(mode="after")
    def _selection(self) -> Mirror:
        if not (self.tags or self.tagRegex or self.semver or self.newest):
            raise ValueError("say which tags to mirror: tags, tagRegex, semver and/or newest")
        return self

    def select(self, available: list[str]) -> list[str]:
        """The tags to mirror out of ``available``: the explicit ones that exist, plus those matching
        the regex and semver range, then the newest N by semver."""
        chosen = [t for t in self.tags if t in available]
        pool = available
        if self.tagRegex is not None:
            pool = [t for t in pool if re.fullmatch(self.tagRegex, t)]
        if self.semver is not None or self.newest:
            alternatives = parse_range(self.semver) if self.semver else None
            versioned = [(v, t) for t in pool if (v := semver(t)) is not None]
            if alternatives is not None:
                versioned = [(v, t) for v, t in versioned if in_range(v, alternatives)]
            versioned.sort(reverse=True)
            if self.newest:
                versioned = versioned[: self.newest]
            pool = [t for _, t in versioned]
        elif not self.tagRegex:
            pool = []
        return list(dict.fromkeys(chosen + sorted(pool)))


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    promotions: list[Promotion] = Field(default_factory=list)
    mirrors: list[Mirror] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Rules:
        names = [r.name for r in (*self.promotions, *self.mirrors)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique; repeated: {duplicates}")
        return self


def _where(rules: Any, loc: tuple[Any, ...]) -> str:
    """``promotions[0] (web-to-prod).tag`` from a pydantic error location."""
    out = ""
    node = rules
    for part in loc:
        if isinstance(part, int):
            name = (
                node[part].get("name")
                if isinstance(node, list) and part < len(node) and isinstance(node[part], dict)
                else None
            )
            out += f"[{part}]" + (f" ({name})" if name else "")
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "rules"


def parse_rules(text: str, source: str = "rules") -> Rules:
    """Rules from YAML or JSON text; :class:`ConfigurationError` names each bad rule and field."""
    try:
        if text.lstrip().startswith("{"):
            doc = json.loads(text)
        else:
            import yaml  # noqa: PLC0415 - only the triggers and the CLI read rules

            doc = yaml.safe_load(text)
    except Exception as exc:
        raise ConfigurationError(f"{source}: not valid YAML or JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    if doc is None:
        doc = {}
    try:
        return Rules.model_validate(doc)
    except ValidationError as exc:
        problems = [
            f"{_where(doc, tuple(e['loc']))}: {str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()
        ]
        raise ConfigurationError(f"{source}: " + "; ".join(problems)) from None


def load_rules(path: str | Path) -> Rules:
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigurationError(f"rules file {file}: {exc.strerror}") from None
    return parse_rules(text, str(file))
