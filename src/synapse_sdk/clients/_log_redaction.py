"""Keep what a server says out of httpx's and httpcore's own log records.

At DEBUG, httpcore logs every response head verbatim (``receive_response_headers.complete
return_value=(b'HTTP/1.1', 200, b'OK', [(b'X-Echo', b'<token>')])``) and the text of protocol
errors, which can quote the bytes received; at INFO, httpx logs the reason phrase. A server that
echoes the request's ``Authorization`` header back would put the token in the user's logs.
:func:`install` adds a filter to those loggers that keeps the status and the header names but
replaces header values (a numeric ``Content-Length`` aside), a reason phrase other than the
status's standard one, and exception texts with ``[REDACTED]``. The filter changes only those
records; it never drops one, and it adds no handler or level (the application's logging setup
stays the application's).

URLs are shown with their query values replaced (:func:`redact_query`): a presigned URL's
signature is a credential for its object. httpx's INFO line (``HTTP Request: GET <url> ...``),
the transport's own log records and error messages, and the OpenTelemetry ``url.full``
attribute all show a URL that way.
"""

from __future__ import annotations

import ast
import http
import logging
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

__all__ = ["LOGGERS", "URL_REDACTED", "install", "redact_query"]

#: The third-party loggers whose records can carry a server's words.
LOGGERS: Final = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
_REDACTED: Final = "[REDACTED]"
_HEAD: Final = "receive_response_headers.complete return_value="
#: What stands for each query value in a shown URL (URL-safe, unlike ``[REDACTED]``).
URL_REDACTED: Final = "REDACTED"


def redact_query(url: str, keys: Iterable[str] = ()) -> str:
    """``url`` fit for logs, messages and traces: user info and fragment dropped, every query
    value (a presigned URL's signature, a cursor) replaced by :data:`URL_REDACTED`, the keys
    kept, and one ``key=REDACTED`` added for each of ``keys`` (parameters sent beside the URL).
    A path with no query comes back unchanged."""
    parts = urlsplit(url)
    names = [key for key, _ in parse_qsl(parts.query, keep_blank_values=True)]
    names.extend(keys)
    if not names and not parts.fragment and "@" not in parts.netloc:
        return url
    query = "&".join(f"{quote(name, safe='')}={URL_REDACTED}" for name in names)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _reason(status: object, reason: object) -> object:
    """``reason`` if it is ``status``'s standard phrase (or empty), else the redaction mark."""
    text = reason.decode("latin-1") if isinstance(reason, bytes) else reason
    try:
        standard = http.HTTPStatus(status).phrase if isinstance(status, int) else None
    except ValueError:
        standard = None
    if text in ("", standard):
        return reason
    return _REDACTED.encode() if isinstance(reason, bytes) else _REDACTED


def _head(text: str) -> str:
    """httpcore's logged response head with header values and an odd reason redacted."""
    try:
        version, status, reason, headers = ast.literal_eval(text)
        shown = [
            (name, value if name.lower() == b"content-length" and value.isdigit()
             else _REDACTED.encode())
            for name, value in headers
        ]
        return repr((version, status, _reason(status, reason), shown))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return "(response head redacted)"


class _Redact(logging.Filter):
    """Rewrites the records described in the module docstring in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "httpx":
            args: Any = record.args
            if isinstance(args, tuple) and len(args) == 5:
                url = redact_query(str(args[1]))
                record.args = (args[0], url, *args[2:4], _reason(args[3], args[4]))
            return True
        message = record.msg
        if not isinstance(message, str):
            return True
        if message.startswith(_HEAD):
            record.msg = _HEAD + _head(message[len(_HEAD):])
        elif " exception=" in message:
            name, _, rest = message.partition(" exception=")
            record.msg = f"{name} exception={rest.partition('(')[0]}({_REDACTED})"
        return True


_FILTER: Final = _Redact()


def install() -> None:
    """Add the redacting filter to each of :data:`LOGGERS` (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
