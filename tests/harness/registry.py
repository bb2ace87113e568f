"""Real ``docker-registry`` processes (Debian's distribution 2.8) on 127.0.0.1, started and
stopped by PID."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REGISTRY_BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(
    url: str, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None, verify: str | bool = True
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1.0, verify=verify)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@dataclass
class RegistryProcess:
    """One running registry. ``host`` is what clients are given (``127.0.0.1:port``)."""

    name: str
    port: int
    workdir: Path
    auth: dict[str, Any] | None
    proc: subprocess.Popen[bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: (certificate, key) PEM files: serve HTTPS with them.
    tls: tuple[Path, Path] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "data")},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": {"addr": self.host, "secret": "ferry-test-secret"},
        }
        if self.tls:
            cfg["http"]["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        if self.auth:
            cfg["auth"] = self.auth
        cfg.update(self.extra)  # more of distribution's configuration (e.g. notifications)
        return cfg

    def start(self) -> RegistryProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "config.yml"
        # JSON is YAML: no YAML library needed.
        path.write_text(json.dumps(self.config()))
        with open(self.workdir / "registry.log", "ab") as log:
            self.proc = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(path)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        # The certificate names the registry, not 127.0.0.1: readiness only, so unverified.
        wait_for_http(f"{self.url}/v2/", proc=self.proc, verify=not self.tls)
        return self

    def stop(self) -> None:
        from tests.harness.processes import stop_process

        stop_process(self.proc)

    def restart(self) -> None:
        self.stop()
        self.start()


def htpasswd_file(path: Path, users: dict[str, str]) -> Path:
    lines = []
    for user, password in users.items():
        out = subprocess.run(["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True)
        lines.append(out.stdout.strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def open_registry(workdir: Path, name: str = "open") -> RegistryProcess:
    return RegistryProcess(name, free_port(), workdir / name, None).start()


def basic_registry(workdir: Path, users: dict[str, str], name: str = "basic") -> RegistryProcess:
    path = htpasswd_file(workdir / name / "htpasswd", users)
    return RegistryProcess(
        name, free_port(), workdir / name, {"htpasswd": {"realm": "ferry-test", "path": str(path)}}
    ).start()


def token_registry(
    workdir: Path, realm: str, service: str, issuer: str, certfile: Path, name: str = "token"
) -> RegistryProcess:
    auth = {"token": {"realm": realm, "service": service, "issuer": issuer, "rootcertbundle": str(certfile)}}
    return RegistryProcess(name, free_port(), workdir / name, auth).start()
