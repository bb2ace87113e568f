"""Shared fixtures: real registries on 127.0.0.1 (open, htpasswd, Docker token auth, ACR-style
token exchange), started once per session and stopped by PID."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from shared.credentials import Anonymous, Credential, EntraIdentity, Secret, UsernamePassword
from shared.registry import RegistryClient, TransportOptions
from tests.harness.azurite import Azurite
from tests.harness.entra import FakeTokenCredential
from tests.harness.registry import RegistryProcess, basic_registry, free_port, open_registry, token_registry
from tests.harness.tokenserver import ACR_ISSUER, ISSUER, TokenServer

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from shared.service.wiring import Services
    from tests.harness.faultproxy import FaultProxy

BASIC_USERS = {"alice": "alice-s3cret-pw"}
TOKEN_USERS = {"bob": "bob-s3cret-pw"}

#: Fast retries for tests: the behaviour is the same, the waits are short.
FAST = TransportOptions(backoff_base=0.01, backoff_cap=0.2, retry_budget=10.0, allow_loopback=True)


@dataclass
class Reg:
    """A running registry and a credential that may push to it."""

    proc: RegistryProcess
    credential: Credential
    tokens: TokenServer | None = None
    entra: FakeTokenCredential | None = None

    @property
    def host(self) -> str:
        return self.proc.host

    def client(self, credential: Credential | None = None, options: TransportOptions = FAST) -> RegistryClient:
        return RegistryClient(self.host, self.credential if credential is None else credential, options)


#: Fixtures that start a process: a test that uses one (directly or through another fixture)
#: is marked ``process`` and left out of ``make check``.
PROCESS_FIXTURES = frozenset({"open_reg", "target_reg", "basic_reg", "token_reg", "acr_reg", "acr2_reg", "azurite"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.process)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ferry")


@pytest.fixture(scope="session")
def open_reg(workdir: Path) -> Iterator[Reg]:
    proc = open_registry(workdir)
    yield Reg(proc, Anonymous())
    proc.stop()


@pytest.fixture(scope="session")
def target_reg(workdir: Path) -> Iterator[Reg]:
    """A second open registry: the target of cross-registry imports."""
    proc = open_registry(workdir, "target")
    yield Reg(proc, Anonymous())
    proc.stop()


@pytest.fixture(scope="session")
def basic_reg(workdir: Path) -> Iterator[Reg]:
    proc = basic_registry(workdir, BASIC_USERS)
    yield Reg(proc, UsernamePassword("alice", Secret(BASIC_USERS["alice"])))
    proc.stop()


@pytest.fixture(scope="session")
def token_reg(workdir: Path) -> Iterator[Reg]:
    tokens = TokenServer(workdir / "token-ts", TOKEN_USERS).start()
    proc = token_registry(workdir, f"{tokens.url}/token", "ferry-test-registry", ISSUER, tokens.certfile)
    yield Reg(proc, UsernamePassword("bob", Secret(TOKEN_USERS["bob"])), tokens)
    proc.stop()
    tokens.stop()


def _acr(workdir: Path, name: str, tenant: str) -> Iterator[Reg]:
    """A registry that authenticates like ACR: realm ``/oauth2/token``, service = its host, and an
    Entra identity (the fake) whose tokens its ``/oauth2/exchange`` accepts."""
    tokens = TokenServer(workdir / f"{name}-ts", {"acradmin": "acr-admin-s3cret"}).start()
    port = free_port()
    auth = {
        "token": {
            "realm": f"{tokens.url}/oauth2/token",
            "service": f"127.0.0.1:{port}",
            "issuer": ACR_ISSUER,
            "rootcertbundle": str(tokens.certfile),
        }
    }
    proc = RegistryProcess(name, port, workdir / name, auth).start()
    entra = FakeTokenCredential(tenant=tenant)
    yield Reg(proc, EntraIdentity(entra), tokens, entra)
    proc.stop()
    tokens.stop()


@pytest.fixture(scope="session")
def acr_reg(workdir: Path) -> Iterator[Reg]:
    yield from _acr(workdir, "acr", "tenant-acr")


@pytest.fixture(scope="session")
def acr2_reg(workdir: Path) -> Iterator[Reg]:
    """A second ACR-like registry, in another tenant."""
    yield from _acr(workdir, "acr2", "tenant-two")


@pytest.fixture(scope="session")
def azurite(workdir: Path) -> Iterator[Azurite]:
    server = Azurite(workdir / "azurite").start()
    yield server
    server.stop()


@functools.cache
def app_functions() -> dict[str, Any]:
    """The function app's functions by name. ``get_functions()`` may run only once per app."""
    import function_app

    return {str(f.get_function_name()): f for f in function_app.app.get_functions()}


@pytest.fixture
def repo() -> str:
    """A repository name no other test uses."""
    return f"test/{uuid.uuid4().hex[:12]}"


# -- the service: imported when a test asks for it (make check imports this file too) ----------


@pytest.fixture
def svc(azurite: Azurite) -> Services:
    """A service of its own against Azurite: its own queue and table, fast retries."""
    from tests.harness.service import environment, make_services

    return make_services(environment(azurite))


@pytest.fixture
def api(svc: Services) -> TestClient:
    """The HTTP API over ``svc``, in process."""
    from fastapi.testclient import TestClient

    from functions.http import create_app

    return TestClient(create_app(lambda: svc))


@pytest.fixture
def flaky_source(open_reg: Reg) -> Iterator[FaultProxy]:
    """A fault proxy in front of the open registry, for rules a test adds."""
    from tests.harness.faultproxy import FaultProxy

    proxy = FaultProxy("127.0.0.1", open_reg.proc.port).start()
    yield proxy
    proxy.stop()
