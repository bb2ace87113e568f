"""Every authentication mode, against real ``docker-registry`` processes, for pull and push."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared import environment
from shared.credentials import AccessToken, Anonymous, EntraIdentity, Secret, UsernamePassword
from shared.credentials.model import ACR_NULL_USERNAME
from shared.errors import AuthenticationError, ConfigurationError, InsecureEndpointError
from shared.registry import RegistryClient
from tests.conftest import FAST, Reg
from tests.harness.entra import AsyncFakeTokenCredential, FakeTokenCredential
from tests.harness.images import make_image, make_multiarch, push_image


async def _round_trip(client: RegistryClient, repo: str, seed: str) -> None:
    """Push a multi-arch image, then read every part of it back, verified."""
    index = make_multiarch(seed=seed)
    digest = await push_image(client, repo, index, "v1")
    resolved = await client.resolve(repo, "v1")
    assert resolved.digest == digest == index.digest
    desc, body = await client.fetch_manifest(repo, "v1")
    assert body == index.manifest and desc.media_type == index.media_type
    blob = index.children[1].blobs[-1]
    data = b"".join([c async for c in client.fetch_blob(repo, blob.descriptor)])
    assert data == blob.data
    assert await client.list_tags(repo) == ["v1"]


def fetches(reg: Reg, kind: str = "token") -> int:
    """Requests the registry's token service has had: ``token`` (the realm, by GET or POST),
    ``exchange`` (ACR's ``/oauth2/exchange``). Counted at the server, not by the client."""
    assert reg.tokens is not None
    seen = reg.tokens.requests
    if kind == "exchange":
        return seen["POST /oauth2/exchange"]
    return sum(n for key, n in seen.items() if key.endswith(("/token", "/oauth2/token")))


class Clock:
    """A clock the test moves: token freshness is judged by it instead of by real sleeps."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_open_registry_anonymous(open_reg: Reg, repo: str) -> None:
    async with open_reg.client() as client:
        await _round_trip(client, repo, "open")


async def test_basic_auth_push_and_pull(basic_reg: Reg, repo: str) -> None:
    async with basic_reg.client() as client:
        await _round_trip(client, repo, "basic")


async def test_basic_auth_wrong_password_is_clear(basic_reg: Reg, repo: str) -> None:
    async with basic_reg.client(UsernamePassword("alice", Secret("nope-wrong"))) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.resolve(repo, "v1")
    assert str(caught.value) == f"registry {basic_reg.host}: rejected the credentials of user alice"
    assert "401" in caught.value.detail
    assert "nope-wrong" not in str(caught.value)


async def test_basic_auth_anonymous_is_refused(basic_reg: Reg, repo: str) -> None:
    async with basic_reg.client(Anonymous()) as client:
        with pytest.raises(AuthenticationError):
            await client.resolve(repo, "v1")


async def test_token_auth_with_basic_to_realm(token_reg: Reg, repo: str) -> None:
    before = fetches(token_reg)
    async with token_reg.client() as client:
        await _round_trip(client, repo, "token")
        # Scopes accumulate: one token serves the whole session, fetched once per scope growth.
        assert fetches(token_reg) - before <= 3


async def test_token_auth_oauth2_post_fallback(token_reg: Reg, repo: str) -> None:
    assert token_reg.tokens is not None
    token_reg.tokens.get_enabled = False
    before = token_reg.tokens.requests["POST /token"]
    try:
        async with token_reg.client() as client:
            await _round_trip(client, repo, "oauth2")
    finally:
        token_reg.tokens.get_enabled = True
    assert token_reg.tokens.requests["POST /token"] > before


async def test_token_auth_anonymous_pull_only(token_reg: Reg, repo: str) -> None:
    image = make_image(seed="anon")
    async with token_reg.client() as pusher:
        await push_image(pusher, repo, image, "v1")
    async with token_reg.client(Anonymous()) as anonymous:
        assert (await anonymous.resolve(repo, "v1")).digest == image.digest
        with pytest.raises(AuthenticationError):
            await anonymous.push_manifest(repo, "v2", image.manifest, image.media_type)


async def test_token_auth_wrong_password(token_reg: Reg, repo: str) -> None:
    async with token_reg.client(UsernamePassword("bob", Secret("bad-password-xyz"))) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.resolve(repo, "v1")
    assert "token service refused user bob" in str(caught.value) and "fetch token" in caught.value.detail
    assert "bad-password-xyz" not in str(caught.value) + caught.value.detail


async def test_token_expiring_mid_run_is_renewed(token_reg: Reg, repo: str) -> None:
    """Tokens that live one second are renewed before they are sent stale."""
    assert token_reg.tokens is not None
    token_reg.tokens.expires_in = 1
    clock = Clock()
    try:
        async with RegistryClient(token_reg.host, token_reg.credential, FAST, clock=clock) as client:
            image = make_image(seed="expiry")
            await push_image(client, repo, image, "v1")
            first = fetches(token_reg)
            clock.now += 1.1
            assert (await client.resolve(repo, "v1")).digest == image.digest
            assert fetches(token_reg) > first
    finally:
        token_reg.tokens.expires_in = 300


async def test_token_rejected_by_registry_is_refetched_once(token_reg: Reg, repo: str) -> None:
    """A token the registry does not accept (its answer says it lives 300 s, but its JWT has
    expired) gets a 401; the client fetches a new one and retries once, no more."""
    assert token_reg.tokens is not None
    image = make_image(seed="stale")
    async with token_reg.client() as pusher:
        await push_image(pusher, repo, image, "v1")
    before = fetches(token_reg)
    async with token_reg.client() as client:
        token_reg.tokens.jwt_lifetime = -120  # past distribution's clock-skew leeway
        try:
            with pytest.raises(AuthenticationError):
                await client.resolve(repo, "v1")  # the token it gets is stale: one retry, then a clear error
            assert fetches(token_reg) - before == 1
        finally:
            token_reg.tokens.jwt_lifetime = 300
        # The cached token is stale: the registry's 401 makes the client fetch a fresh one.
        assert (await client.resolve(repo, "v1")).digest == image.digest
        assert fetches(token_reg) - before == 2


async def test_one_token_fetch_for_many_concurrent_requests(token_reg: Reg, repo: str) -> None:
    image = make_image(seed="concurrent")
    async with token_reg.client() as pusher:
        await push_image(pusher, repo, image, "v1")
    async with token_reg.client() as client:
        await client.ping()  # learn the challenge (and get a token without scopes for /v2/)
        before = fetches(token_reg)
        results = await asyncio.gather(*(client.blob_exists(repo, b.descriptor.digest) for b in image.blobs * 4))
        assert all(r is not None for r in results)
        assert fetches(token_reg) == before + 1


async def test_mount_needs_two_scopes(token_reg: Reg, repo: str) -> None:
    """A cross-repository mount asks one token for pull,push on the target and pull on the source;
    a user allowed only to pull the source still mounts, and no byte moves."""
    assert token_reg.tokens is not None
    image = make_image((3000,), seed="mount")
    layer = image.blobs[-1].descriptor
    async with token_reg.client() as owner:
        await push_image(owner, repo, image, "v1")
    source, target = repo, repo + "-copy"

    def policy(user: str | None, kind: str, name: str, actions: list[str]) -> list[str]:
        if user is None:
            return []
        return actions if name == target else [a for a in actions if a == "pull"]

    token_reg.tokens.policy = policy
    try:
        async with token_reg.client() as client:
            assert await client.start_upload(target, mount=layer.digest, source_repo=source) is None
            assert await client.blob_exists(target, layer.digest) == layer.size
    finally:
        from tests.harness.tokenserver import default_policy

        token_reg.tokens.policy = default_policy


async def test_mount_202_falls_back_to_upload(open_reg: Reg, repo: str) -> None:
    image = make_image((1000,), seed="nomount")
    layer = image.blobs[-1]
    async with open_reg.client() as client:
        location = await client.start_upload(repo, mount=layer.descriptor.digest, source_repo="does/not-exist")
        assert location is not None
        await client.push_blob(repo, layer.descriptor, layer.data, location=location)
        assert await client.blob_exists(repo, layer.descriptor.digest) == layer.descriptor.size


@pytest.mark.parametrize("credential_type", [FakeTokenCredential, AsyncFakeTokenCredential])
async def test_acr_managed_identity_exchange(
    acr_reg: Reg, repo: str, credential_type: type[FakeTokenCredential]
) -> None:
    assert acr_reg.tokens is not None
    entra = credential_type(tenant="tenant-mi")
    before = acr_reg.tokens.requests["POST /oauth2/exchange"]
    async with acr_reg.client(EntraIdentity(entra)) as client:
        await _round_trip(client, repo, "acr")
    assert acr_reg.tokens.requests["POST /oauth2/exchange"] == before + 1  # the ACR refresh token is cached
    assert acr_reg.tokens.requests["POST /oauth2/token"] > 0
    assert acr_reg.tokens.seen_tenants[-1] == "tenant-mi"  # read from the Entra token's tid
    assert len(entra.calls) == 1


async def test_acr_refresh_token_expiry_triggers_new_exchange(acr_reg: Reg, repo: str) -> None:
    assert acr_reg.tokens is not None
    acr_reg.tokens.refresh_lifetime = 2
    acr_reg.tokens.expires_in = 1
    clock, before = Clock(), fetches(acr_reg, "exchange")
    try:
        async with RegistryClient(acr_reg.host, EntraIdentity(FakeTokenCredential()), FAST, clock=clock) as client:
            await push_image(client, repo, make_image(seed="refresh"), "v1")
            assert fetches(acr_reg, "exchange") - before == 1
            clock.now += 1.6
            await client.resolve(repo, "v1")
            assert fetches(acr_reg, "exchange") - before == 2
    finally:
        acr_reg.tokens.refresh_lifetime = 3 * 3600
        acr_reg.tokens.expires_in = 300


async def test_acr_null_guid_user_with_refresh_token(acr_reg: Reg, repo: str) -> None:
    assert acr_reg.tokens is not None
    refresh = acr_reg.tokens.refresh_token("ci-user", acr_reg.host)
    before = fetches(acr_reg, "exchange")
    async with acr_reg.client(UsernamePassword(ACR_NULL_USERNAME, Secret(refresh))) as client:
        await _round_trip(client, repo, "nullguid")
        assert fetches(acr_reg, "exchange") - before == 0


async def test_acr_access_token_as_password_is_exchanged(acr_reg: Reg, repo: str) -> None:
    entra_token = (
        FakeTokenCredential(tenant="other-tenant").get_token("https://containerregistry.azure.net/.default").token
    )
    before = fetches(acr_reg, "exchange")
    async with acr_reg.client(AccessToken(Secret(entra_token))) as client:
        await _round_trip(client, repo, "accesstoken")
        assert fetches(acr_reg, "exchange") - before == 1


async def test_acr_admin_user_basic_to_realm(acr_reg: Reg, repo: str) -> None:
    before = fetches(acr_reg, "exchange")
    async with acr_reg.client(UsernamePassword("acradmin", Secret("acr-admin-s3cret"))) as client:
        await _round_trip(client, repo, "acradmin")
        assert fetches(acr_reg, "exchange") - before == 0


async def test_entra_identity_refused_on_a_non_acr_registry(token_reg: Reg, repo: str) -> None:
    async with token_reg.client(EntraIdentity(FakeTokenCredential())) as client:
        with pytest.raises(ConfigurationError, match="only to Azure Container Registry"):
            await client.resolve(repo, "v1")


async def test_realm_on_private_address_is_refused() -> None:
    """A challenge naming a realm on a private address is not followed (no request goes there)."""
    from tests.harness.fakes import challenge_server

    with challenge_server('Bearer realm="http://169.254.169.254/token",service="x"') as host:
        async with RegistryClient(host, Anonymous(), FAST) as client:
            with pytest.raises(InsecureEndpointError, match=r"address 169\.254\.169\.254: refused"):
                await client.resolve("a/b", "v1")


async def test_realm_over_plain_http_to_a_public_host_is_refused() -> None:
    from tests.harness.fakes import challenge_server

    with challenge_server('Bearer realm="http://auth.example.com/token",service="x"') as host:
        async with RegistryClient(host, Anonymous(), FAST) as client:
            with pytest.raises(InsecureEndpointError, match="plain HTTP"):
                await client.resolve("a/b", "v1")


def test_https_is_used_for_non_loopback_hosts() -> None:
    client = RegistryClient("registry.example.com")
    assert client.transport.base_url == "https://registry.example.com"
    assert RegistryClient("docker.io").transport.base_url == "https://registry-1.docker.io"
    assert RegistryClient("127.0.0.1:5000").transport.base_url == "http://127.0.0.1:5000"

    insecure = environment.transport({"FERRY_INSECURE_REGISTRIES": "reg.lan:5000, other.lan"})
    assert RegistryClient("reg.lan:5000", options=insecure).transport.base_url == "http://reg.lan:5000"
