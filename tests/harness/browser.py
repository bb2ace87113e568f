"""Debian's chromium (``/usr/bin/chromium``, never a downloaded browser) driven by Playwright, for
the status page's tests: headless, no sandbox (root), no background networking (it would try
hosts this machine cannot reach), a fresh profile each time; every console error and uncaught
page error collected; screenshots saved where a person can look at them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


@contextmanager
def chromium() -> Iterator[Browser]:
    assert shutil.which("chromium"), "Debian's chromium is missing: scripts/bootstrap.sh installs it"
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh --user-data-dir of its own (it refuses one passed in).
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Watched:
    """A page with its console errors and uncaught exceptions collected."""

    def __init__(self, browser: Browser, viewport: dict[str, int], shots: Path) -> None:
        self.context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.shots = shots
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


ROOT = Path(__file__).resolve().parents[2]


def screenshots() -> Path:
    """Where screenshots go: ``FERRY_SCREENSHOTS``, else ``build/screenshots/`` in the checkout
    (git-ignored; kept after the run, unlike pytest's temporary directories)."""
    path = Path(os.environ.get("FERRY_SCREENSHOTS") or ROOT / "build" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def overflow(page: Page) -> Any:
    """How many CSS pixels the document is wider than the window (0: nothing to scroll sideways)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
