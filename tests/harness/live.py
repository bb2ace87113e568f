"""The service as a person reaches it: the HTTP API under uvicorn on a free loopback port and a
worker, each in a thread of the test's process, over a test's :class:`Services`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from functions.http import create_app
from shared.service.localworker import serve
from shared.service.wiring import Services
from tests.harness.registry import free_port


class LiveService:
    """The API on a loopback port and one worker (``worker=False``: none, jobs stay queued).
    ``wrap`` puts an ASGI layer around the app (a fake of the Functions host's key check)."""

    def __init__(self, svc: Services, *, worker: bool = True, wrap: Callable[[Any], Any] | None = None) -> None:
        self.svc = svc
        self.port = free_port()
        app = create_app(lambda: svc)
        config = uvicorn.Config(wrap(app) if wrap else app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.loop = asyncio.new_event_loop()
        self.with_worker = worker
        self.worker: concurrent.futures.Future[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveService:
        threading.Thread(target=self.server.run, daemon=True).start()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        if self.with_worker:
            self.start_worker()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.02)
        return self

    def start_worker(self) -> None:
        self.worker = asyncio.run_coroutine_threadsafe(serve(self.svc, idle=0.05), self.loop)

    def stop_worker(self) -> None:
        """No worker from now on: jobs stay queued."""
        if self.worker is not None:
            self.loop.call_soon_threadsafe(self.worker.cancel)
            concurrent.futures.wait([self.worker], 5)
            self.worker = None

    def stop(self) -> None:
        self.server.should_exit = True
        self.stop_worker()
        self.loop.call_soon_threadsafe(self.loop.stop)
