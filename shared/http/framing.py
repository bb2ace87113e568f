"""HTTP/1.1 message syntax, strictly (RFC 9112): the request head Ferry sends, and the response
head, header fields, chunk-size lines and body framing it reads. Pure functions over bytes;
checked against h11 as an oracle (tests/test_wire_oracle.py), and stricter where a registry has
no business being loose (control characters, Transfer-Encodings other than chunked).
"""

from __future__ import annotations

import httpx

#: The longest response head (status line and headers) accepted.
MAX_HEAD = 64 * 1024
_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: What a received field value or reason phrase may hold: VCHAR, obs-text, SP and HTAB.
_RECEIVED = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))


def protocol_error(message: str, request: httpx.Request) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(message, request=request)


def _is_token(name: bytes) -> bool:
    return bool(name) and not name.translate(None, _TCHAR)  # nothing left once tchars are deleted


def _is_field_value(value: bytes) -> bool:
    """No CR, LF or NUL: what would split or end a header line (RFC 9110 §5.5)."""
    return b"\r" not in value and b"\n" not in value and b"\0" not in value


_HEX = frozenset(b"0123456789abcdefABCDEF")
#: Hex digits of a chunk size: 16 is 2^64, more than any body.
_MAX_CHUNK_DIGITS = 16


def _is_received_value(value: bytes) -> bool:
    """Only VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5): no control character, which a terminal
    would obey, in a field value or a reason phrase Ferry accepts."""
    return not value.translate(None, _RECEIVED)


def parse_chunk_size(line: bytes) -> int | None:
    """The size of a chunk-size line (without its CRLF), as RFC 9112 §7.1 and h11 read it: hex
    digits, then extensions after ``;`` or trailing whitespace; None when malformed."""
    size, semicolon, _ = line.partition(b";")
    if not semicolon:
        size = size.rstrip(b" \t")
    if not size or len(size) > _MAX_CHUNK_DIGITS or any(c not in _HEX for c in size):
        return None
    return int(size, 16)


def parse_field_line(line: bytes) -> tuple[bytes, bytes] | None:
    """``name: value`` of a header or trailer line, strictly; None when malformed (also obsolete
    line folding, whose leading space makes the name no token)."""
    name, colon, value = line.partition(b":")
    if not colon or not _is_token(name):
        return None
    value = value.strip(b" \t")
    return (name, value) if _is_received_value(value) else None


def request_head(request: httpx.Request, proxy_authorization: bytes | None = None, *, absolute: bool = False) -> bytes:
    """The request line and headers; ``absolute`` for a plain-http request through a proxy
    (absolute-form target, ``Proxy-Authorization``). Header injection is refused: a name that is
    not a token or a value with CR, LF or NUL (a token server's answer ends up in
    ``Authorization``)."""
    url = request.url
    target = url.raw_scheme + b"://" + url.netloc + url.raw_path if absolute else url.raw_path
    parts = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    headers = list(request.headers.raw)
    if absolute and proxy_authorization:
        headers.append((b"Proxy-Authorization", proxy_authorization))
    for name, value in headers:
        if not _is_token(name) or not _is_field_value(value):
            raise httpx.LocalProtocolError(f"invalid header {name[:40]!r}", request=request)
        parts += [name, b": ", value, b"\r\n"]
    parts.append(b"\r\n")
    return b"".join(parts)


class Head:
    """A parsed response head."""

    __slots__ = ("headers", "reason", "status", "version")

    def __init__(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], version: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.version = version

    def values(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]


def parse_head(raw: bytes, request: httpx.Request) -> Head:
    """Status line and header fields of ``raw`` (which ends with the blank line), strictly."""
    if len(raw) > MAX_HEAD:
        raise protocol_error(f"response head over {MAX_HEAD} bytes", request)
    lines = raw[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit() or code < b"100":
        raise protocol_error("malformed status line", request)
    if not _is_received_value(reason):
        raise protocol_error("control characters in the reason phrase", request)
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        field = parse_field_line(line)
        if field is None:
            raise protocol_error("malformed header line", request)
        headers.append(field)
    return Head(int(code), reason, headers, version)


def framing(method: str, head: Head, request: httpx.Request) -> int | str | None:
    """How the body is delimited (RFC 9112 §6.3): None (no body), a length, ``"chunked"`` or
    ``"close"`` (until the connection ends). The framing headers are checked whether or not the
    answer has a body: conflicting ones are refused either way, as h11 refuses them."""
    encodings = head.values(b"transfer-encoding")
    # Registries frame with chunked alone; anything else (gzip, chunked twice) is refused, as
    # h11 refuses it, rather than read to the end of the connection.
    if encodings and (len(encodings) != 1 or encodings[0].strip().lower() != b"chunked"):
        raise protocol_error("unsupported Transfer-Encoding", request)
    lengths = {v.strip() for value in head.values(b"content-length") for v in value.split(b",")}
    if len(lengths) > 1 or not all(v.isdigit() and len(v) <= 19 for v in lengths):
        raise protocol_error("invalid Content-Length", request)
    if method == "HEAD" or head.status in (204, 304) or head.status < 200:
        return None
    if encodings:
        return "chunked"
    return int(lengths.pop()) if lengths else "close"
