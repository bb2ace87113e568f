"""Mirror selection on tag sets of real size and shape (tests/fixtures/tags: nginx, python, node,
postgres, redis; a few hundred tags each), every tag pushed to a real registry and planned from
its live tag list, as ``ferry rules plan`` does."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from shared.automation.plan import plan
from shared.automation.rules import parse_rules
from shared.automation.tags import parse_tag
from shared.credentials.resolver import Resolver
from tests.conftest import FAST, Reg
from tests.harness.images import make_image, push_image

pytestmark = pytest.mark.process
FIXTURES = Path(__file__).parent / "fixtures" / "tags"


def tag_set(name: str) -> list[str]:
    return [line for line in (FIXTURES / f"{name}.txt").read_text().splitlines() if line and not line.startswith("#")]


async def _push_all(reg: Reg, repo: str, tags: list[str]) -> None:
    """One small image under every tag (the blobs once, then a manifest PUT per tag)."""
    image = make_image((100,), seed=repo)
    async with reg.client() as client:
        await push_image(client, repo, image, tags[0])
        for tag in tags[1:]:
            await client.push_manifest(repo, tag, image.manifest, image.media_type)


def _by_version(tags: list[str]) -> list[str]:
    return sorted(tags, key=lambda t: (parse_tag(t).version, t))  # type: ignore[union-attr]


def test_real_size_tag_sets(open_reg: Reg, repo: str) -> None:
    names = ("nginx", "python", "node", "postgres", "redis")
    sets = {name: tag_set(name) for name in names}
    assert all(len(tags) >= 180 for tags in sets.values())
    for name, tags in sets.items():
        asyncio.run(_push_all(open_reg, f"{repo}/{name}", tags))
    rules = parse_rules(
        f"""
mirrors:
  - {{name: nginx, source: "{open_reg.host}/{repo}/nginx", versions: ">=1.25 <2", targetRegistry: p.io}}
  - {{name: nginx-alpine, source: "{open_reg.host}/{repo}/nginx", versions: "^1.27", suffix: alpine, newest: 3,
      targetRegistry: p.io}}
  - {{name: python, source: "{open_reg.host}/{repo}/python", versions: ">=3.12 <3.14", suffix: slim-bookworm,
      newest: 2, targetRegistry: p.io}}
  - {{name: node, source: "{open_reg.host}/{repo}/node", versions: "^22", suffix: "alpine*", newest: 1,
      targetRegistry: p.io}}
  - {{name: postgres, source: "{open_reg.host}/{repo}/postgres", versions: "~16", targetRegistry: p.io}}
  - {{name: redis, source: "{open_reg.host}/{repo}/redis", versions: ">=7.2", suffix: alpine, targetRegistry: p.io}}
""",
        "rules.yaml",
    )
    found = {m["name"]: m for m in asyncio.run(plan(rules, Resolver(), FAST))["mirrors"]}
    nginx = sets["nginx"]
    assert found["nginx"]["selected"] == _by_version([t for t in nginx if re.fullmatch(r"v?1\.2[5-9]\.\d+", t)])
    skipped = found["nginx"]["skipped"]
    assert (skipped["1.27"], skipped["mainline"], skipped["1.27.3-alpine"], skipped["1.24.5"]) == (
        "floating", "not a version", "suffix", "range",
    )  # fmt: skip
    assert found["nginx-alpine"]["selected"] == ["1.27.8-alpine", "1.27.9-alpine", "1.27.10-alpine"]
    assert found["python"]["selected"] == ["3.13.9-slim-bookworm", "3.13.10-slim-bookworm"]
    # Each suffix on its own: node's "-alpine" tags are all X.Y, so X.Y is that suffix's full precision.
    assert found["node"]["selected"] == ["22.11-alpine", "22.11.3-alpine3.20"]
    assert found["postgres"]["selected"] == [f"16.{m}" for m in range(10)]  # 16 alone floats
    assert found["redis"]["selected"] == [f"7.2.{p}-alpine" for p in range(7)] + ["7.4.0-alpine", "7.4.1-alpine"]
