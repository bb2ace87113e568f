"""Ferry's newest tag per suffix is Renovate's: on tag sets shaped like Docker Hub's (ubuntu,
whose LTS tags have a leading zero, nginx, python, node, postgres, redis), each as its history
grows or as random subsets, ``Selection(suffix="*", newest=1)`` picks, per suffix, a tag that
Renovate's ``docker`` versioning finds equal to its own newest stable version of that suffix
(among its tags with the most parts, Ferry's full precision). Renovate 37 (pinned in
tests/renovate, installed by ``scripts/bootstrap.sh --test``) answers all sets in one node call."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from shared.automation.tags import Selection, parse_tag
from tests.harness.node import run_node

pytestmark = pytest.mark.process
HERE = Path(__file__).parent
RENOVATE = HERE / "renovate"
FIXTURES = HERE / "fixtures" / "tags"

DOCKER = """
const { api } = require("renovate/dist/modules/versioning/docker");
let input = "";
process.stdin.on("data", (c) => (input += c)).on("end", () => {
  const wrong = [];
  for (const { name, tags, ferry } of JSON.parse(input)) {
    const bySuffix = new Map();
    for (const tag of tags.filter((t) => api.isValid(t) && api.isStable(t))) {
      const suffix = tag.replace(/^v/, "").split("-").slice(1).join("-");
      bySuffix.set(suffix, [...(bySuffix.get(suffix) || []), tag]);
    }
    const renovate = {};
    for (const [suffix, group] of bySuffix) {
      const parts = (t) => api.valueToVersion(t.replace(/^v/, "")).split(".").length;
      const most = Math.max(...group.map(parts));
      const full = group.filter((t) => parts(t) === most);
      if (!full.every((t) => api.isCompatible(t, full[0]))) wrong.push(`${name}: ${suffix} mixes`);
      renovate[suffix] = full.reduce((a, b) => (api.isGreaterThan(b, a) ? b : a));
    }
    const suffixes = new Set([...Object.keys(renovate), ...Object.keys(ferry)]);
    for (const suffix of suffixes) {
      const [f, r] = [ferry[suffix], renovate[suffix]];
      if (!f || !r || !api.equals(f, r)) wrong.push(`${name}: suffix "${suffix}": Ferry ${f}, Renovate ${r}`);
    }
  }
  process.stdout.write(JSON.stringify(wrong));
});
"""


def tag_set(name: str) -> list[str]:
    lines = (FIXTURES / f"{name}.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def newest_per_suffix(tags: list[str]) -> dict[str, str]:
    chosen = Selection(suffix="*", newest=1).select(tags)
    return {parsed.suffix: tag for tag in chosen if (parsed := parse_tag(tag)) is not None}


def samples() -> list[dict[str, object]]:
    """ubuntu's history, tag by tag; every other set whole and as 20 random subsets."""
    ubuntu = tag_set("ubuntu")
    sets = [(f"ubuntu[:{n}]", ubuntu[:n]) for n in range(1, len(ubuntu) + 1)]
    pick = random.Random(20)
    for name in ("nginx", "python", "node", "postgres", "redis"):
        tags = tag_set(name)
        sets.append((name, tags))
        sets += [(f"{name}~{i}", pick.sample(tags, pick.randint(5, len(tags)))) for i in range(20)]
    return [{"name": name, "tags": tags, "ferry": newest_per_suffix(tags)} for name, tags in sets]


def test_newest_per_suffix_is_renovates() -> None:
    assert (RENOVATE / "node_modules" / "renovate").is_dir(), "run scripts/bootstrap.sh --test (installs Renovate)"
    wrong = run_node(DOCKER, samples(), cwd=RENOVATE)
    assert isinstance(wrong, list)
    assert wrong == [], f"{len(wrong)} differ:\n" + "\n".join(wrong[:30])
