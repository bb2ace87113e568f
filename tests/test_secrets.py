"""No secret ever appears in a log line (at DEBUG, every logger) or in an exception's text.

Secrets are planted in every credential path: htpasswd passwords, passwords sent to a token
realm by GET and by OAuth2 POST, Entra access tokens, ACR refresh tokens (the null-GUID user),
registry bearer tokens, and a SAS query string on a blob redirect.
"""

from __future__ import annotations

import logging
import traceback

import pytest

from shared.credentials import AccessToken, EntraIdentity, Secret, UsernamePassword
from shared.credentials.model import ACR_NULL_USERNAME
from shared.errors import FerryError
from shared.registry import RegistryClient
from tests.conftest import FAST, TOKEN_USERS, Reg
from tests.harness.entra import FakeTokenCredential
from tests.harness.fakes import fake_server
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.images import make_image, push_image

PLANTED = "PLANTED-s3cret-7f1c"


def _texts(errors: list[BaseException]) -> str:
    out = []
    for error in errors:
        out.append("".join(traceback.format_exception_only(type(error), error)))
        out.append(repr(error))
        cause = error.__cause__ or error.__context__
        while cause is not None:
            out.append(str(cause))
            cause = cause.__cause__ or cause.__context__
    return "\n".join(out)


async def _attempt(client: RegistryClient, repo: str, errors: list[BaseException]) -> None:
    try:
        await push_image(client, repo, make_image(seed=repo), "v1")
        await client.resolve(repo, "v1")
    except FerryError as exc:
        errors.append(exc)


async def test_no_secret_in_logs_or_errors(
    caplog: pytest.LogCaptureFixture, basic_reg: Reg, token_reg: Reg, acr_reg: Reg, repo: str
) -> None:
    caplog.set_level(logging.DEBUG)
    assert token_reg.tokens is not None and acr_reg.tokens is not None
    errors: list[BaseException] = []
    secrets = [PLANTED]

    # htpasswd: a wrong planted password, then the right one.
    async with basic_reg.client(UsernamePassword("alice", Secret(PLANTED))) as client:
        await _attempt(client, repo, errors)
    async with basic_reg.client() as client:
        await _attempt(client, repo, errors)
    secrets.append(basic_reg.credential.password.reveal())  # type: ignore[union-attr]

    # Docker token auth: planted password by GET, then by the OAuth2 POST fallback; then right.
    token_reg.tokens.users["planted"] = PLANTED
    async with token_reg.client(UsernamePassword("bob", Secret(PLANTED))) as client:
        await _attempt(client, repo, errors)
    token_reg.tokens.get_enabled = False
    try:
        async with token_reg.client(UsernamePassword("planted", Secret(PLANTED))) as client:
            await _attempt(client, repo + "-post", errors)
    finally:
        token_reg.tokens.get_enabled = True
    secrets.append(TOKEN_USERS["bob"])

    # ACR: managed identity, an Entra access token as password, a null-GUID refresh token, a bad one.
    entra = FakeTokenCredential()
    async with acr_reg.client(EntraIdentity(entra)) as client:
        await _attempt(client, repo, errors)
    entra_token = FakeTokenCredential().get_token("https://containerregistry.azure.net/.default").token
    secrets.append(entra_token)
    async with acr_reg.client(AccessToken(Secret(entra_token))) as client:
        await _attempt(client, repo + "-at", errors)
    refresh = acr_reg.tokens.refresh_token("someone", acr_reg.host)
    async with acr_reg.client(UsernamePassword(ACR_NULL_USERNAME, Secret(refresh))) as client:
        await _attempt(client, repo + "-rt", errors)
    async with acr_reg.client(UsernamePassword(ACR_NULL_USERNAME, Secret(PLANTED))) as client:
        await _attempt(client, repo + "-bad", errors)
    async with acr_reg.client(AccessToken(Secret(PLANTED))) as client:
        await _attempt(client, repo + "-badat", errors)

    # A blob redirect whose URL carries a SAS token, to a storage host that fails.
    image = make_image((2000,), seed="sas")
    async with basic_reg.client() as client:
        await push_image(client, repo + "-sas", image, "v1")

    def storage(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return 403, {}, b"AuthenticationFailed"

    with fake_server(storage) as (storage_host, _):
        proxy = FaultProxy("127.0.0.1", basic_reg.proc.port).start()
        proxy.add(
            Rule(
                "GET",
                "/blobs/sha256:",
                times=5,
                when=lambda h: "authorization" in h,
                respond=(307, {"Location": f"http://{storage_host}/b?sv=2024&sig={PLANTED}"}, b""),
            )
        )
        try:
            async with RegistryClient(proxy.host, basic_reg.credential, FAST) as client:
                blob = image.blobs[-1]
                try:
                    _ = [c async for c in client.fetch_blob(repo + "-sas", blob.descriptor)]
                except FerryError as exc:
                    errors.append(exc)
        finally:
            proxy.stop()

    secrets += token_reg.tokens.issued + acr_reg.tokens.issued
    assert len(errors) >= 5  # the planted credentials were refused, each with an error
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "HTTP Request" in logs  # httpx's own request log was captured, and redacted
    text = logs + "\n" + _texts(errors)
    for secret in secrets:
        assert secret not in text
    for credential in (UsernamePassword("u", Secret(PLANTED)), AccessToken(Secret(PLANTED))):
        assert PLANTED not in repr(credential) and PLANTED not in str(credential)
