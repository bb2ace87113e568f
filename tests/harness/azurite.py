"""Azurite (queues and tables) on 127.0.0.1 and free ports, in memory, started and stopped by PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.harness.registry import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
ACCOUNT = "devstoreaccount1"
#: Azurite's well-known development key (public, documented; not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    workdir: Path
    blob_port: int = 0
    queue_port: int = 0
    table_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    #: Keep data on disk (under ``workdir``) across restarts, instead of in memory.
    persistent: bool = False

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};"
        )

    def start(self) -> Azurite:
        binary = ROOT / "node_modules" / ".bin" / "azurite"
        if not binary.exists():
            found = shutil.which("azurite")
            if not found:
                raise RuntimeError("azurite is not installed: run `make deps`")
            binary = Path(found)
        if not self.queue_port:
            self.blob_port, self.queue_port, self.table_port = free_port(), free_port(), free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(binary), "--silent", "--skipApiVersionCheck", "--disableTelemetry", "--loose",
            "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
            *(["--location", str(self.workdir / "data")] if self.persistent else []),
            "--blobPort", str(self.blob_port), "--queuePort", str(self.queue_port), "--tablePort", str(self.table_port),
        ]  # fmt: skip
        if not self.persistent:
            cmd.append("--inMemoryPersistence")
        with open(self.workdir / "azurite.log", "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir
            )
        deadline = time.monotonic() + 30
        for port in (self.queue_port, self.table_port):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"azurite exited with {self.proc.returncode}; see {self.workdir}/azurite.log")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("azurite did not start within 30 s") from None
                    time.sleep(0.1)
        return self

    def restart(self) -> None:
        """Stop and start again on the same ports (what a crash and a restart look like)."""
        self.stop()
        self.start()

    def stop(self) -> None:
        from tests.harness.processes import stop_process

        stop_process(self.proc)
