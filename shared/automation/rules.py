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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.automation.tags import Selection, in_range, parse_range
from shared.automation.tags import parse_tag as tag_version
from shared.errors import ConfigurationError
from shared.fields import unknown_field
from shared.importing.request import Platforms, RegistryName
from shared.oci.reference import parse_reference, parse_repository, parse_tag
from shared.verify.load import parse_policies
from shared.verify.policy import Policies, PolicyError
from shared.yamljson import SyntaxProblem, parse_yaml_or_json

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


def _range(value: str) -> str:
    parse_range(value)
    return value


#: Field types both kinds of rule take, checked once: a regular expression, an npm range.
Regex = Annotated[str, AfterValidator(_regex)]
VersionRange = Annotated[str, AfterValidator(_range)]


def render(template: str, **values: str) -> str:
    return _FIELD.sub(lambda m: values[m.group(1)], template)


@dataclass(frozen=True)
class Explanation:
    """One rule against one push: whether it matched and why, in words."""

    rule: str
    matched: bool
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "matched": self.matched, "why": self.why}

    def __str__(self) -> str:
        return f"rule {self.rule}: {self.why}"


# -- the model ---------------------------------------------------------------------------------


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    targetRegistry: RegistryName
    targetRepository: str = "{repository}"
    mode: Literal["NoForce", "Force"] = "NoForce"
    #: A named credential, or several (a list, or comma-separated): accounts to spread pulls over.
    credential: str | None = None
    platforms: Platforms = Field(default_factory=list)
    includeReferrers: bool = False
    verify: str | None = Field(None, description="a policy of this file's policies (docs/signing.md)")

    def request_options(self) -> dict[str, Any]:
        """What each request this rule makes carries besides its source and targets."""
        return {"mode": self.mode, "platforms": self.platforms, "includeReferrers": self.includeReferrers,
                "verify": self.verify}  # fmt: skip

    @field_validator("credential", mode="before")
    @classmethod
    def _credentials(cls, value: Any) -> Any:
        return ",".join(str(v) for v in value) if isinstance(value, list) else value

    @field_validator("targetRepository")
    @classmethod
    def _repository(cls, value: str) -> str:
        _check_template(value)
        parse_repository(render(value, repository="a/b", tag="t", digest="sha256-0"))
        return value


class Promotion(_Rule):
    sourceRegistry: RegistryName
    repository: str = Field("*", description="glob over the pushed repository")
    tag: Regex = Field(".*", description="regular expression over the pushed tag (whole tag)")
    #: The mirrors' tag model, besides the regex: a version range and a suffix glob.
    versions: VersionRange | None = None
    suffix: str | None = None
    targetTags: list[str] = Field(default_factory=lambda: ["{tag}"], min_length=1, max_length=20)

    @field_validator("targetTags")
    @classmethod
    def _tags(cls, values: list[str]) -> list[str]:
        for value in values:
            _check_template(value)
            parse_tag(render(value, repository="a", tag="t", digest="sha256-0"))
        return values

    def matches(self, registry: str, repository: str, tag: str) -> bool:
        return self.explain(registry, repository, tag).matched

    def explain(self, registry: str, repository: str, tag: str) -> Explanation:
        """Whether a push matches, and why: the first part of the rule that leaves it out
        (registry, repository pattern, tag filter, version range, suffix), or every part it meets."""
        if registry != self.sourceRegistry:
            return Explanation(self.name, False, f"registry {registry} is not sourceRegistry {self.sourceRegistry}")
        if not fnmatch.fnmatchcase(repository, self.repository):
            return Explanation(self.name, False, f"repository {repository} does not match {self.repository!r}")
        if re.fullmatch(self.tag, tag) is None:
            return Explanation(self.name, False, f"tag {tag} does not match /{self.tag}/")
        why_not = self._unversioned(tag)
        if why_not:
            return Explanation(self.name, False, why_not)
        parts = [f"registry {registry}", f"repository {self.repository!r}", f"tag /{self.tag}/"]
        parts += [f"versions {self.versions}"] * (self.versions is not None)
        parts += [f"suffix {self.suffix!r}"] * (self.suffix is not None)
        return Explanation(self.name, True, "matches " + ", ".join(parts))

    def _unversioned(self, tag: str) -> str | None:
        """With ``versions`` or ``suffix``: why the tag is not a version of that suffix in range."""
        if self.versions is None and self.suffix is None:
            return None
        parsed = tag_version(tag)
        if parsed is None:
            return f"tag {tag} is not a version (versions/suffix need one)"
        if not fnmatch.fnmatchcase(parsed.suffix, self.suffix or ""):
            return f"tag {tag}'s suffix {parsed.suffix!r} does not match suffix {self.suffix or ''!r}"
        if self.versions is not None and not in_range(parsed.version, parse_range(self.versions)):
            return f"tag {tag}'s version is not in versions {self.versions}"
        return None


class Mirror(_Rule):
    source: str = Field(description="registry/repository to mirror")
    tags: list[str] = Field(default_factory=list, max_length=200)
    tagRegex: Regex | None = None
    #: npm's range syntax over the version part (``^1.27``, ``>=1.25 <2``); ``semver:`` is an alias.
    versions: VersionRange | None = None
    semver: VersionRange | None = None
    #: Glob over the tag's suffix (``alpine``, ``slim-*``); none by default, ``*`` each on its own.
    suffix: str | None = None
    floating: bool = False
    newest: int | None = Field(None, ge=1, le=200, description="keep the newest N versions per suffix")
    extract: str | None = None
    order: Literal["semver", "numerical", "alphabetical"] = "semver"

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        ref = parse_reference(value)
        if ref.tag or ref.digest:
            raise ValueError("a mirror's source is a repository, without tag or digest")
        return ref.name

    @field_validator("extract")
    @classmethod
    def _extract(cls, value: str | None) -> str | None:
        if value is not None and "version" not in re.compile(_regex(value)).groupindex:
            raise ValueError("extract needs a named group (?P<version>...)")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, values: list[str]) -> list[str]:
        return [parse_tag(v) for v in values]

    @model_validator(mode="after")
    def _selection(self) -> Mirror:
        if self.versions and self.semver:
            raise ValueError("give versions or its alias semver, not both")
        if not (self.tags or self.tagRegex or self.range or self.newest or self.extract):
            raise ValueError("say which tags to mirror: tags, tagRegex, versions, newest and/or extract")
        return self

    @property
    def range(self) -> str | None:
        return self.versions or self.semver

    def explain(self, available: list[str]) -> dict[str, Any]:
        """What a pass would do with ``available``: the tags selected, each other tag with the part
        of the rule that left it out, and the named tags that do not exist."""
        selected = self.select(available)
        chosen = set(selected)
        longest: dict[str, int] = {}  # per suffix, the most parts a version has: once, not per tag
        for t in available:
            if (v := tag_version(t)) is not None:
                longest[v.suffix] = max(longest.get(v.suffix, 0), len(v.parts))
        skipped = {t: self._why_not(t, longest) for t in available if t not in chosen}
        return {"selected": selected, "skipped": skipped, "missing": [t for t in self.tags if t not in available]}

    def _why_not(self, tag: str, longest: dict[str, int]) -> str:
        if self.tagRegex is not None and not re.fullmatch(self.tagRegex, tag):
            return "tagRegex"
        if not (self.range or self.newest or self.extract):
            return "not selected" if self.tagRegex is None else "tagRegex"
        if self.extract:
            match = re.fullmatch(self.extract, tag)
            return "extract" if match is None else "newest"
        parsed = tag_version(tag)
        if parsed is None:
            return "not a version"
        suffix = self.suffix if self.suffix is not None else ("*" if self.tagRegex else "")
        if not fnmatch.fnmatchcase(parsed.suffix, suffix):
            return "suffix"
        if self.range and not in_range(parsed.version, parse_range(self.range)):
            return "range"
        if len(parsed.parts) < longest[parsed.suffix]:
            return "floating"
        return "newest"

    def select(self, available: list[str]) -> list[str]:
        """The tags to mirror out of ``available``: the explicit ones that exist, plus those the
        regex, the version range (within a suffix), ``newest`` or ``extract`` select."""
        chosen = [t for t in self.tags if t in available]
        pool = available
        if self.tagRegex is not None:
            pool = [t for t in pool if re.fullmatch(self.tagRegex, t)]
        if self.range or self.newest or self.extract:
            # A regex already narrowed the tags: compare each suffix it let through on its own.
            suffix = self.suffix if self.suffix is not None else ("*" if self.tagRegex else "")
            selection = Selection(self.range, suffix, self.floating, self.newest, self.extract, self.order)
            pool = selection.select(pool)
        elif not self.tagRegex:
            pool = []
        return list(dict.fromkeys(chosen + pool))


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    promotions: list[Promotion] = Field(default_factory=list)
    mirrors: list[Mirror] = Field(default_factory=list)
    #: Verification (docs/signing.md): read by shared.verify.load, which names each bad field.
    authorities: dict[str, Any] = Field(default_factory=dict)
    policies: dict[str, Any] = Field(default_factory=dict)
    _verification: Policies = PrivateAttr(default_factory=Policies)

    @property
    def verification(self) -> Policies:
        return self._verification

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


def _check_verification(rules: Rules, base: Path) -> None:
    """The policies, and the one each rule names, checked (files relative to ``base``)."""
    rules._verification = parse_policies({"authorities": rules.authorities, "policies": rules.policies}, base)
    for kind, listed in (("promotions", rules.promotions), ("mirrors", rules.mirrors)):
        for i, rule in enumerate(listed):
            if rule.verify is not None:
                rules.verification.get(rule.verify, f"{kind}[{i}] ({rule.name}).verify")


class RulesError(ConfigurationError):
    """A rules file that cannot be used: the file, and each problem (rule and field, or the YAML
    or JSON line and column) on its own."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source, self.problems = source, problems


def _problem(doc: Any, error: Any) -> str:
    loc = tuple(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = unknown_field(Rules, loc)
    return f"{_where(doc, loc)}: {message}"


def parse_rules(text: str, source: str = "rules", base: Path | None = None) -> Rules:
    """Rules from YAML or JSON text; :class:`RulesError` names each bad rule and field. Files a
    verification policy names are relative to ``base`` (the rules file's folder)."""
    try:
        doc = parse_yaml_or_json(text)
    except SyntaxProblem as exc:
        raise RulesError(source, [str(exc)[:300]]) from None
    if doc is None:
        doc = {}
    try:
        rules = Rules.model_validate(doc)
    except ValidationError as exc:
        raise RulesError(source, [_problem(doc, e) for e in exc.errors()]) from None
    try:
        _check_verification(rules, base or Path("."))
    except PolicyError as exc:
        raise RulesError(source, [str(exc)]) from None
    return rules


def load_rules(path: str | Path) -> Rules:
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise RulesError(f"rules file {file}", [str(exc.strerror)]) from None
    return parse_rules(text, str(file), file.parent)
