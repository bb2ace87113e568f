"""`make demo`: a real import end to end, through the HTTP API, the queue and the worker.

Starts, on 127.0.0.1: Azurite (queue and table), a "dev" registry with htpasswd auth and an
open "prod" registry, the HTTP API under uvicorn, and one worker (`python -m shared.cli
worker`). Pushes a generated multi-arch image into dev, POSTs an import of it to prod with a
named credential, follows the job until it ends, checks that prod has the same digest, prints
the curl commands a user would type, and stops everything it started (by PID).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from shared.credentials import Secret, UsernamePassword
from shared.registry import RegistryClient, TransportOptions
from tests.harness.azurite import Azurite
from tests.harness.images import make_multiarch, push_image
from tests.harness.processes import start_api, start_worker, stop_process
from tests.harness.registry import basic_registry, open_registry

ROOT = Path(__file__).resolve().parent.parent
DEV_USER, DEV_PASSWORD = "dev-bot", "dev-registry-password"
#: The demo's registries are on 127.0.0.1, which Ferry refuses unless told otherwise.
LOCAL = TransportOptions(allow_loopback=True)


async def push_sample(host: str) -> str:
    image = make_multiarch(
        ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"], layer_sizes=(400_000, 600_000), seed="demo"
    )
    async with RegistryClient(host, UsernamePassword(DEV_USER, Secret(DEV_PASSWORD)), LOCAL) as client:
        return str(await push_image(client, "team/web", image, "1.0"))


async def digest_at(host: str, repo: str, tag: str) -> str:
    async with RegistryClient(host, options=LOCAL) as client:
        return str((await client.resolve(repo, tag)).digest)


def follow(api: str, location: str, timeout: float = 120.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        status = httpx.get(api + location, timeout=10).json()
        progress = status.get("progress") or {}
        line = f"  {status['state']:9}  attempts {status['attemptCount']}"
        if progress:
            line += f"  blobs {progress.get('blobsCopied', 0)}/{progress.get('blobsTotal', '?')}"
        if line != last:
            print(line)
            last = line
        if status["state"] in ("succeeded", "failed"):
            return dict(status)
        time.sleep(0.3)
    raise TimeoutError("the job did not finish in time")


def main() -> int:
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="ferry-demo-") as tmp:
        work = Path(tmp)
        azurite = Azurite(work / "azurite").start()
        dev = basic_registry(work, {DEV_USER: DEV_PASSWORD}, name="dev")
        prod = open_registry(work, "prod")
        print(
            f"started Azurite (queue :{azurite.queue_port}, table :{azurite.table_port}), "
            f"dev registry {dev.host} (htpasswd), prod registry {prod.host}"
        )
        try:
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "AzureWebJobsStorage": azurite.connection_string,
                "FERRY_CREDENTIAL_DEV_USERNAME": DEV_USER,
                "FERRY_CREDENTIAL_DEV_PASSWORD": DEV_PASSWORD,
                "FERRY_RETRY_DELAY_SECONDS": "2",
                "FERRY_ALLOW_LOOPBACK": "true",  # the demo's registries are on 127.0.0.1
            }
            api_proc, api = start_api(env, work / "api.log")
            procs.append(api_proc)
            procs.append(start_worker(env, work / "worker.log"))
            print(f"started the HTTP API on {api} (uvicorn, pid {procs[0].pid}) and a worker (pid {procs[1].pid})")

            pushed = asyncio.run(push_sample(dev.host))
            print(f"pushed a 3-platform image to {dev.host}/team/web:1.0 -> {pushed}")
            request = {
                "targetRegistry": prod.host,
                "source": {"registryUri": dev.host, "sourceImage": "team/web:1.0", "credential": "dev"},
                "targetTags": ["web:1.0", "web:stable"],
            }
            response = httpx.post(f"{api}/api/imports", json=request, timeout=10)
            response.raise_for_status()
            job = response.json()
            print(
                f"POST /api/imports -> {response.status_code}, job {job['id']}, Location {response.headers['Location']}"
            )
            status = follow(api, job["location"])
            if status["state"] != "succeeded":
                print(f"the import failed: {status.get('error')}")
                print((work / "worker.log").read_text()[-3000:])
                return 1
            result = status["result"]
            assert isinstance(result, dict)
            at_prod = asyncio.run(digest_at(prod.host, "web", "stable"))
            print(f"prod {prod.host}/web:stable -> {at_prod}")
            print(f"dev  {dev.host}/team/web:1.0 -> {pushed}")
            print(f"digests {'match' if at_prod == pushed else 'DIFFER'}; {result['blobs']} in {result['seconds']} s")
            # The demo's servers stop when it ends: the commands to try by hand are make up's.
            local = "http://127.0.0.1:7071"
            by_hand = {**request, "source": {**request["source"], "registryUri": "127.0.0.1:5101"},  # type: ignore[dict-item]
                       "targetRegistry": "127.0.0.1:5102"}  # fmt: skip
            print("\nThe demo's servers are stopped now. To do the same by hand, run `make up` (it keeps")
            print("Azurite, a dev and a prod registry, the API and workers running) and then:")
            print(
                f"  curl -s -X POST {local}/api/imports -H 'Content-Type: application/json' \\\n"
                f"       -H 'Idempotency-Key: my-pipeline-run-42' -d '{__import__('json').dumps(by_hand)}'"
            )
            print(f"  curl -s {local}/api/imports/<id>")
            print(f"  curl -s '{local}/api/imports?state=succeeded&limit=10'")
            print("  (in Azure, add ?code=<function key> or put Entra ID in front; see the README)")
            return 0 if at_prod == pushed else 1
        finally:
            for proc in reversed(procs):
                stop_process(proc, timeout=15)
            prod.stop()
            dev.stop()
            azurite.stop()
            print("stopped the worker, the API, both registries and Azurite")


if __name__ == "__main__":
    sys.exit(main())
