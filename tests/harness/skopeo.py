"""skopeo as the independent witness and yardstick: the same flags wherever it runs here
(every image's platforms, digests kept, the local registries' plain HTTP)."""

from __future__ import annotations

import subprocess


def copy_command(source: str, target: str, source_creds: str | None = None) -> list[str]:
    """``skopeo copy`` of ``source`` to ``target`` (``host/repo:tag`` each), all of it, as is."""
    cmd = ["skopeo", "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", "-q"]
    if source_creds:
        cmd += ["--src-creds", source_creds]
    return [*cmd, f"docker://{source}", f"docker://{target}"]


def raw_manifest(host: str, ref: str) -> bytes:
    """The manifest bytes at ``host/ref`` as skopeo reads them."""
    cmd = ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{ref}"]
    return subprocess.run(cmd, check=True, capture_output=True).stdout
