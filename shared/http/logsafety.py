"""Keeps secrets out of httpx's and httpcore's own log records.

httpx logs every request with its full URL at INFO, and httpcore, at DEBUG, every response's
headers. A blob redirect's ``Location`` and URL carry a storage SAS token in the query string.
This filter, installed on those libraries' loggers when :mod:`shared.registry` is imported,
drops query strings from URLs, response header lists and every registered secret (a webhook's
token path) from the records. It adds no handler
and changes no level: where and whether records go stays the application's choice.
"""

from __future__ import annotations

import logging
import re

import httpx

from shared.errors import redact_url
from shared.text import redact

_QUERY = re.compile(r"""(https?://[^\s'"?#]+)[?#][^\s'"]*""")
_HEADER_LIST = re.compile(r"(receive_response_headers\.complete return_value=\(b'[^']*', \d+, b'[^']*'), \[.*\]\)")
#: httpx logs on "httpx"; httpcore on one logger per module (filters are not inherited).
LOGGERS = ("httpx", "httpcore.http11", "httpcore.http2", "httpcore.connection", "httpcore.proxy", "httpcore.socks")


def scrub(text: str) -> str:
    """No query strings, no header lists, and no registered secret (a webhook URL's token path)."""
    text = _HEADER_LIST.sub(r"\1, [headers not logged])", text)
    return redact(_QUERY.sub(r"\1?<redacted>", text))


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                scrub(redact_url(a)) if isinstance(a, httpx.URL) else scrub(a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        return True


def install() -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
