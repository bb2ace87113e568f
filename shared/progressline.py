"""The command line's progress on stderr, from a local run's progress or a service job's."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from shared.engine.progress import Progress, Snapshot


class ProgressLine:
    """Progress on stderr: redrawn in place on a terminal, a plain line every 5 s otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = 0.2 if self.tty else 5.0

    def __call__(self, p: Progress) -> None:
        self.draw(p.snapshot())

    def draw(self, snap: Snapshot) -> None:
        """The line for a progress snapshot (what the worker records, and a service job shows)."""
        seconds = max(snap["seconds"], 1e-6)
        blobs = snap["blobsCopied"] + snap["blobsMounted"] + snap["blobsPresent"] + snap["blobsForeign"]
        moved, done = snap["bytesMoved"], snap["bytesMoved"] + snap["bytesSkipped"]
        line = (
            f"manifests {snap['manifestsDone']}/{snap['manifestsTotal']}  blobs {blobs}/{snap['blobsTotal']}  "
            f"{done / 1e6:.1f}/{snap['bytesTotal'] / 1e6:.1f} MB  {moved / 1e6 / seconds:.1f} MB/s"
        )
        self.stream.write(f"\r{line}\x1b[K" if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
