"""Who asked: the Easy Auth principal only when Easy Auth is on (a client can send the headers
itself otherwise), a function key by its fingerprint and never itself."""

from __future__ import annotations

import base64
import hashlib
import json

from shared.service.requester import requested_by

KEY = "q1w2e3r4t5y6u7i8o9p0-functionkey-AbCdEf=="


def principal(*claims: tuple[str, str]) -> str:
    doc = {"auth_typ": "aad", "claims": [{"typ": t, "val": v} for t, v in claims]}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def test_easy_auth_names_the_principal() -> None:
    headers = {"X-MS-CLIENT-PRINCIPAL-NAME": "alice@contoso.com", "x-functions-key": KEY}
    assert requested_by(headers, {}, easy_auth=True) == "alice@contoso.com"
    encoded = {"x-ms-client-principal": principal(("preferred_username", "bob@contoso.com"))}
    assert requested_by(encoded, {}, easy_auth=True) == "bob@contoso.com"
    app = {"x-ms-client-principal": principal(("appid", "11111111-2222-3333-4444-555555555555"))}
    assert requested_by(app, {}, easy_auth=True) == "app 11111111-2222-3333-4444-555555555555"


def test_principal_headers_are_not_believed_without_easy_auth() -> None:
    spoofed = {"x-ms-client-principal-name": "admin@contoso.com"}
    assert requested_by(spoofed, {}, easy_auth=False) is None
    assert requested_by({**spoofed, "x-functions-key": KEY}, {}, easy_auth=False).startswith("function key")  # type: ignore[union-attr]


def test_a_function_key_is_named_by_its_fingerprint_never_itself() -> None:
    fingerprint = hashlib.sha256(KEY.encode()).hexdigest()[:8]
    for headers, query in (({"x-functions-key": KEY}, {}), ({}, {"code": KEY})):
        got = requested_by(headers, query, easy_auth=False)
        assert got == f"function key sha256:{fingerprint}" and KEY not in got


def test_junk_in_the_principal_header_is_no_one() -> None:
    for junk in ("%%%", base64.b64encode(b"[1,2]").decode(), base64.b64encode(b'{"claims": 3}').decode()):
        assert requested_by({"x-ms-client-principal": junk}, {}, easy_auth=True) is None
    weird = {"x-ms-client-principal-name": "eve\x1b[31m" + "x" * 500}
    got = requested_by(weird, {}, easy_auth=True)
    assert got is not None and "\x1b" not in got and len(got) <= 200
