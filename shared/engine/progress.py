"""What a copy has done so far, reported through a callback: the CLI draws it, the worker
records it. Per-run state, kept apart from the options."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TypedDict, cast


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class Snapshot(TypedDict):
    """:meth:`Progress.snapshot`: the progress as a job's record keeps it and the API shows it."""

    manifestsTotal: int
    blobsTotal: int
    bytesTotal: int
    manifestsDone: int
    manifestsPresent: int
    blobsCopied: int
    blobsMounted: int
    blobsPresent: int
    blobsForeign: int
    bytesMoved: int
    bytesSkipped: int
    seconds: float


@dataclass
class Progress:
    manifests_total: int = 0
    blobs_total: int = 0
    bytes_total: int = 0
    manifests_done: int = 0
    #: Manifests the target already had (counted in ``manifests_done`` too).
    manifests_present: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    blobs_foreign: int = 0
    #: Blob bytes sent to the target.
    bytes_moved: int = 0
    #: Blob bytes the target already had or got by a mount.
    bytes_skipped: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def blobs_done(self) -> int:
        return self.blobs_copied + self.blobs_mounted + self.blobs_present + self.blobs_foreign

    @property
    def bytes_done(self) -> int:
        return self.bytes_moved + self.bytes_skipped

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def snapshot(self) -> Snapshot:
        """The progress as the API shows it: camelCase, as every other field of a job."""
        doc = asdict(self)
        doc.pop("started")
        doc["seconds"] = round(self.seconds, 3)
        return cast(Snapshot, {_camel(k): v for k, v in doc.items()})  # its keys, in order: tests/test_documents.py


class Reporter:
    """Calls ``callback`` with the progress at most every ``interval`` seconds, and at the end."""

    def __init__(self, progress: Progress, callback: Callable[[Progress], None] | None, interval: float = 0.5) -> None:
        self.progress = progress
        self._callback = callback
        self._interval = interval
        self._last = 0.0

    def tick(self, force: bool = False) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if force or now - self._last >= self._interval:
            self._last = now
            self._callback(self.progress)
