"""The rules in force: the rules file read at start-up (a bad one stops the service, naming the
file, rule and field) and read again whenever it changes on disk. A bad edit keeps the last good
rules, is logged once, and is reported by :meth:`LiveRules.describe` (``/api/health`` shows it as
degraded) until the file is good again."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.automation.rules import Rules, load_rules
from shared.errors import ConfigurationError

log = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[int, int] | None:
    """What changes when the file is edited (modification time, size); None when it is gone."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


@dataclass
class LiveRules:
    path: Path
    rules: Rules
    loaded_at: datetime
    stamp: tuple[int, int] | None
    #: The refused edit: why, and the file's stamp when it was refused (logged once per edit).
    error: str | None = None
    refused: tuple[tuple[int, int] | None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def load(cls, path: str | Path) -> LiveRules:
        """The rules file as it is now; :class:`ConfigurationError` (file, rule, field) if bad."""
        file = Path(path)
        stamp = _stamp(file)
        rules = load_rules(file)
        return cls(file, rules, datetime.now(UTC), stamp)

    def current(self) -> Rules:
        """The rules in force: read again if the file changed since; the last good ones if the
        change is bad (logged once, and kept in :attr:`error` until a good edit)."""
        stamp = _stamp(self.path)
        if stamp == self.stamp or (stamp,) == self.refused:
            return self.rules
        with self.lock:
            if stamp == self.stamp or (stamp,) == self.refused:
                return self.rules
            try:
                rules = load_rules(self.path)
            except ConfigurationError as exc:
                self.error, self.refused = str(exc), (stamp,)
                log.error("%s; keeping the rules loaded at %s", exc, _when(self.loaded_at))
                return self.rules
            self.rules, self.stamp, self.loaded_at = rules, stamp, datetime.now(UTC)
            self.error = self.refused = None
            log.info("rules file %s read again: %s", self.path, counts(rules))
        return self.rules

    def describe(self) -> dict[str, Any]:
        """For ``/api/health`` and the banner: the file, its counts, when it was loaded, and the
        refused edit if there is one."""
        rules = self.current()
        out: dict[str, Any] = {
            "file": str(self.path.resolve()),
            "promotions": len(rules.promotions),
            "mirrors": len(rules.mirrors),
            "loadedAt": _when(self.loaded_at),
        }
        if self.error:
            out["error"] = f"{self.error} (the rules loaded at {_when(self.loaded_at)} are still in force)"
        return out


def counts(rules: Rules) -> str:
    return f"{len(rules.promotions)} promotions, {len(rules.mirrors)} mirrors"


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
