"""The command line's progress on stderr, from a local run's progress or a service job's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from shared.engine.progress import Progress


class ProgressLine:
    """Progress on stderr: redrawn in place on a terminal, a plain line every 5 s otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = 0.2 if self.tty else 5.0

    def __call__(self, p: Progress) -> None:
        self.draw(p.snapshot())

    def draw(self, snap: Mapping[str, Any]) -> None:
        """The line for a progress snapshot (:class:`~shared.engine.progress.Snapshot`: what the
        worker records, or a service job's as the API shows it)."""
        seconds = max(float(snap.get("seconds") or 0), 1e-6)
        blobs = sum(int(snap.get(k) or 0) for k in ("blobsCopied", "blobsMounted", "blobsPresent", "blobsForeign"))
        moved, done = (
            int(snap.get("bytesMoved") or 0),
            int(snap.get("bytesMoved") or 0) + int(snap.get("bytesSkipped") or 0),
        )
        line = (
            f"manifests {snap.get('manifestsDone', 0)}/{snap.get('manifestsTotal', 0)}  "
            f"blobs {blobs}/{snap.get('blobsTotal', 0)}  "
            f"{done / 1e6:.1f}/{int(snap.get('bytesTotal') or 0) / 1e6:.1f} MB  {moved / 1e6 / seconds:.1f} MB/s"
        )
        self.stream.write(f"\r{line}\x1b[K" if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
