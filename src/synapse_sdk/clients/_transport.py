"""The HTTP boundary: one request in, one response or one error of the SDK's tree out.

:class:`Transport` (over :class:`httpx.Client`) and :class:`AsyncTransport` (over
:class:`httpx.AsyncClient`) are the only place where HTTP responses and httpx/OS errors become
exceptions of :mod:`synapse_sdk.exceptions`, always ``raise ... from exc`` so the chain the
failure classifier walks stays intact. Every call made through them:

* gets one correlation id (``uuid4().hex``) sent as ``X-Correlation-ID`` on every attempt and
  attached to the error it may raise;
* on ``POST``/``PATCH`` gets one ``Idempotency-Key`` reused on every attempt, which makes the call
  safe to retry after an outcome-unknown failure;
* is retried by :class:`synapse_sdk.retry.Retrying` with the configuration's effective policy
  (one engine per transport, built with it), each attempt's timeouts capped by the time left
  before the policy's deadline;
* is traced when OpenTelemetry is installed (:mod:`synapse_sdk.telemetry`): a span for the
  call, a CLIENT span per attempt;
* with a ``pacer`` (a :class:`Pacer`, e.g. the export's rate pacer), waits before each attempt
  as long as the pacer says and tells it every answer;
* reads at most :data:`ERROR_BODY_LIMIT` bytes of an error body and at most ``max_bytes`` of a
  success body, a bound that holds for the bytes received and for the bytes they decode to (the
  SDK undoes ``Content-Encoding`` itself, in bounded steps: a stacked gzip bomb is a
  ``response_too_large`` error, never a ``MemoryError``; see :mod:`._decoding`); the error's
  message quotes at most about 4 KiB of the body (the envelope's detail cut at 500 characters,
  its first 20 failed items).

Status mapping (the backend answered). The class is looked up in
:data:`synapse_sdk.exceptions.registry`, which the error classes fill with their declarations: a
known envelope code wins over the status (``agent_unavailable`` on a 503 is a
``BackendAgentUnavailableError``), then the exact status, then the status class:

=============================  =====================================================  =========
status                         raised                                                 retried
=============================  =====================================================  =========
2xx (207 included)             nothing: the caller inspects the response (bulk 207)   -
3xx                            ``BackendError`` (redirects are never followed, so the  no
                               token cannot leak to another host), ``error_code``
                               ``redirect_refused`` unless the body has an envelope
400, 422                       ``BackendInvalidInputError``                           no
401, 403                       ``BackendAuthenticationError``                         no
404                            ``BackendInvalidInputError``: the addressed resource   no
                               does not exist, the request named something wrong
408                            ``BackendServiceUnavailableError`` (outcome known:     yes
                               the server gave up waiting for the request)
429                            ``BackendRateLimitError`` with ``retry_after_seconds``  yes
                               from ``Retry-After``/``retry-after-ms`` (fallback: the
                               envelope's ``retry_after``)
other 4xx                      ``BackendError``                                       no
503                            ``BackendServiceUnavailableError`` (outcome known), or  yes
                               ``BackendAgentUnavailableError`` for the code
                               ``agent_unavailable``
500, 502, 504, other 5xx       ``BackendServiceUnavailableError`` with                 yes*
                               ``outcome_unknown=True`` (the request may have been
                               applied before the failure)
501, 505                       ``BackendError``: the server will never support this   no
=============================  =====================================================  =========

``*`` an outcome-unknown failure is retried only for idempotent calls (GET, HEAD, PUT, DELETE,
OPTIONS, and POST/PATCH sent with an idempotency key).

httpx and OS errors (nothing answered) are mapped by :data:`HTTPX_ERROR_MAP`, most specific
class first; see the table's entries for the reasoning. In short: connect/pool timeouts →
``NetworkTimeoutError`` (nothing sent); read/write timeouts → ``NetworkTimeoutError`` with
``outcome_unknown=True``; refused/unreachable/DNS → ``ServiceUnavailableError`` (nothing sent);
a connection broken mid-exchange or an incomplete body → ``ServiceUnavailableError`` with
``outcome_unknown=True``; a request httpx could not encode or a bad URL → ``InvalidInputError``;
a server certificate that fails TLS verification → ``AuthenticationError`` (retrying cannot fix
it). A raw ``OSError`` escaping httpx counts as a broken connection.

Log events (logger ``synapse_sdk.http``) carry ``method``, ``path``, ``status``,
``correlation_id``, ``attempt`` and the request headers with secrets redacted:
``synapse_sdk.http.request`` (debug), ``synapse_sdk.http.response`` (debug) and
``synapse_sdk.http.error`` (info: an attempt failed; whether the call gives up is the retry
engine's ``synapse_sdk.retry.*`` event). The token never appears in a log, repr or error message.
httpx's and httpcore's own records get a filter that redacts response header values, odd reason
phrases and protocol-error texts (a server may echo the token back; see :mod:`._log_redaction`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Literal, Protocol, TypeVar

import httpx

from synapse_sdk.clients import _log_redaction
from synapse_sdk.clients._decoding import ACCEPT_ENCODING, BoundedBody
from synapse_sdk.clients._download import Downloaded, DownloadSink, RangeState
from synapse_sdk.clients._network import attempt_limit, check_deadline, install, transports
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.envelopes import ErrorEnvelope, find_envelope
from synapse_sdk.exceptions import (
    AuthenticationError,
    BackendError,
    InvalidInputError,
    NetworkTimeoutError,
    ServiceUnavailableError,
    SynapError,
    SynapTransientError,
    backend_error_class,
    build_error,
    registry,
)
from synapse_sdk.retry import Retrying, decide_wait, notify_wait, remaining_time
from synapse_sdk.retry_after import (
    RateLimitInfo,
    rate_limit_from_headers,
    retry_after_from_headers,
)
from synapse_sdk.telemetry import opentelemetry

if TYPE_CHECKING:
    from synapse_sdk.telemetry._otel import OpenTelemetry

__all__ = [
    "ACCESS_TOKEN_HEADER",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "ERROR_BODY_LIMIT",
    "HTTPX_ERROR_MAP",
    "HTTPX_NOT_MAPPED",
    "MAX_ERROR_DETAILS",
    "REDIRECT_REFUSED",
    "TENANT_HEADER",
    "AsyncTransport",
    "ClientCertificate",
    "ClientStats",
    "ErrorContext",
    "ErrorMapping",
    "Pacer",
    "Response",
    "Transport",
    "VerifyTypes",
    "credential_headers",
    "default_ssl_context",
    "error_for_status",
    "map_transport_error",
    "redact_headers",
]

logger = logging.getLogger("synapse_sdk.http")
# httpx's and httpcore's own records never show what a server sent back (it may echo the token).
_log_redaction.install()

#: At most this many bytes of an error body are read (enough for any envelope).
ERROR_BODY_LIMIT: Final = 64 * 1024
#: Default bound on a success body; a larger one raises ``BackendError("response_too_large")``.
DEFAULT_MAX_RESPONSE_BYTES: Final = 32 * 1024 * 1024
#: ``error_code`` of a 3xx answer without an envelope of its own: the redirect was not followed.
REDIRECT_REFUSED: Final = "redirect_refused"
#: Longest excerpt of a non-JSON error body quoted in an error message.
_BODY_EXCERPT = 200
#: What an error message quotes of an envelope: its detail up to this many characters, at most
#: this many failed items, and never more than ``_ENVELOPE_SHOWN`` characters of JSON in all
#: (beyond that only the code, status and retry delay). The error's attributes keep it all.
_DETAIL_SHOWN = 500
_FAILED_SHOWN = 20
_ENVELOPE_SHOWN = 4096
#: Most ``error.details`` entries kept on an error (``BackendError.details``), the characters
#: of each field name and message, and the entries quoted in the error's message.
MAX_ERROR_DETAILS: Final = 20
_DETAIL_FIELD_CHARS = 100
_DETAIL_MESSAGE_CHARS = 300
_DETAILS_SHOWN = 3
#: Longest ``X-Request-ID`` quoted in an error message.
_REQUEST_ID_SHOWN = 200
_REDACTED: Final = "[REDACTED]"
#: The headers of the backend's credentials (the real v2 API's names).
ACCESS_TOKEN_HEADER: Final = "SYNAPSE-ACCESS-TOKEN"
TENANT_HEADER: Final = "SYNAPSE-Tenant"
_SENSITIVE_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        ACCESS_TOKEN_HEADER.lower(),
    }
)
_IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: A request's query parameters; a list value is sent as the key repeated (``a=1&a=2``).
QueryParams = Mapping[str, str | int | Sequence[str]]
_KEYED_METHODS: Final = frozenset({"POST", "PATCH"})

#: A custom CA bundle (path), CA certificates as PEM bytes, or an SSL context; verification
#: itself cannot be turned off.
VerifyTypes = ssl.SSLContext | str | os.PathLike[str] | bytes
SyncSleep = Callable[[float], None]
AsyncSleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class Pacer(Protocol):
    """Paces a transport's requests: asked before each attempt, told each answer.

    Both methods are called from the transport's threads or tasks and must be thread-safe; they
    must not block (the transport does the waiting, with its own sleep).
    """

    def before_request(self, path: str) -> float:
        """Seconds to wait before sending an attempt for ``path`` (the call's path: relative
        to the base URL, or an absolute URL); 0.0 sends it at once."""
        ...

    def after_response(self, path: str, status: int, headers: Mapping[str, str]) -> None:
        """Learn from the answer to an attempt for ``path`` (its status and headers)."""
        ...


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A TLS client certificate a call presents (mutual TLS).

    ``path`` is a PEM file holding the private key and the certificate; ``name`` tells
    certificates apart (a renewed certificate has a new name, such as its serial).
    """

    name: str
    path: Path


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """What a call tells the answer → error mapping beyond the answer itself.

    ``operation`` names the call for codes whose meaning depends on it (the registry's
    ``operation_codes``: a revoked binding while renewing is a ``CertificateRenewalError``);
    ``subjects`` holds the ids an error may be about (``instance_id``, ``conversation_id``),
    named by ``InvalidInstanceIdError`` and ``InvalidConversationIdError``.
    """

    operation: str | None = None
    subjects: Mapping[str, object] = field(default_factory=dict)


_NO_CONTEXT: Final = ErrorContext()


@dataclass(frozen=True, slots=True)
class ErrorMapping:
    """How one httpx exception class becomes an SDK error."""

    error: type[SynapError]
    #: Whether the request may have reached the server and been applied.
    outcome_unknown: bool
    #: The human explanation put in the error message.
    reason: str


#: httpx exception class → SDK error. Looked up along the raised exception's MRO, so the most
#: specific entry wins. A test fails if httpx exports an exception class that is in neither this
#: table nor :data:`HTTPX_NOT_MAPPED`.
HTTPX_ERROR_MAP: Final[Mapping[type[Exception], ErrorMapping]] = {
    # Timeouts. Connect and pool timeouts happen before a byte of the request left: the outcome is
    # known (nothing happened). A read or write timeout happens after (part of) the request was
    # sent, so the server may have applied it.
    httpx.ConnectTimeout: ErrorMapping(
        NetworkTimeoutError, False, "connecting timed out; nothing was sent"
    ),
    httpx.PoolTimeout: ErrorMapping(
        NetworkTimeoutError, False, "no pooled connection came free in time; nothing was sent"
    ),
    httpx.ReadTimeout: ErrorMapping(
        NetworkTimeoutError, True, "the response did not arrive in time; it may have been applied"
    ),
    httpx.WriteTimeout: ErrorMapping(
        NetworkTimeoutError, True, "sending the request timed out part-way"
    ),
    httpx.TimeoutException: ErrorMapping(NetworkTimeoutError, True, "the request timed out"),
    # Connection-level failures. Refused, unreachable and DNS failures (ConnectError) and a proxy
    # that would not connect (ProxyError) happen before the request is sent: transient, outcome
    # known. A connection that breaks once the exchange started may have delivered the request.
    httpx.ConnectError: ErrorMapping(
        ServiceUnavailableError,
        False,
        "could not connect (refused, unreachable or name resolution failed); nothing was sent",
    ),
    httpx.ProxyError: ErrorMapping(
        ServiceUnavailableError, False, "the proxy could not connect; nothing was sent"
    ),
    httpx.ReadError: ErrorMapping(
        ServiceUnavailableError, True, "the connection broke while reading the response"
    ),
    httpx.WriteError: ErrorMapping(
        ServiceUnavailableError, True, "the connection broke while sending the request"
    ),
    httpx.CloseError: ErrorMapping(
        ServiceUnavailableError, True, "the connection failed while closing"
    ),
    httpx.NetworkError: ErrorMapping(ServiceUnavailableError, True, "the network failed"),
    httpx.RemoteProtocolError: ErrorMapping(
        ServiceUnavailableError,
        True,
        "the server closed the connection or broke the protocol mid-response",
    ),
    # Our side could not produce a valid request (e.g. an illegal header value): permanent.
    httpx.LocalProtocolError: ErrorMapping(
        InvalidInputError, False, "the request could not be encoded"
    ),
    httpx.ProtocolError: ErrorMapping(
        ServiceUnavailableError, True, "the HTTP exchange broke off"
    ),
    httpx.UnsupportedProtocol: ErrorMapping(
        InvalidInputError, False, "the URL scheme is not http or https"
    ),
    httpx.InvalidURL: ErrorMapping(InvalidInputError, False, "the URL is invalid"),
    # A body that could not be decoded (corrupt gzip, a coding the SDK does not decode, too many
    # stacked codings) arrived broken; the request itself was received, so the outcome is
    # unknown. Transient: the next answer may be whole.
    httpx.DecodingError: ErrorMapping(
        ServiceUnavailableError, True, "the response body could not be decoded"
    ),
    # Only a user-supplied client that follows redirects can raise this: a misconfiguration.
    httpx.TooManyRedirects: ErrorMapping(BackendError, False, "too many redirects"),
    # Future or base-class transport errors: transient, and conservatively outcome-unknown.
    httpx.TransportError: ErrorMapping(ServiceUnavailableError, True, "the transport failed"),
    httpx.RequestError: ErrorMapping(ServiceUnavailableError, True, "the request failed"),
    # raise_for_status() is never called here; if a caller's hook raises it, its response is
    # mapped by status instead (see map_transport_error). This entry is the fallback.
    httpx.HTTPStatusError: ErrorMapping(BackendError, False, "the backend answered an error"),
    httpx.HTTPError: ErrorMapping(ServiceUnavailableError, True, "the HTTP request failed"),
}

#: httpx exception classes deliberately left unmapped, with the reason. They signal misuse of
#: httpx (programming errors outside the SDK's tree, like ``ValueError``) and pass through.
HTTPX_NOT_MAPPED: Final[Mapping[type[Exception], str]] = {
    httpx.StreamError: "misuse of a response stream (a bug), not a failure of the call",
    httpx.StreamConsumed: "misuse of a response stream (a bug)",
    httpx.StreamClosed: "misuse of a response stream (a bug)",
    httpx.ResponseNotRead: "misuse of a response stream (a bug)",
    httpx.RequestNotRead: "misuse of a request stream (a bug)",
    httpx.CookieConflict: "raised only by cookie look-ups, which the SDK never makes",
}

_OS_ERROR_MAPPING: Final = ErrorMapping(
    ServiceUnavailableError, True, "the connection failed at the operating-system level"
)
_TLS_MAPPING: Final = ErrorMapping(
    AuthenticationError,
    False,
    "the server's TLS certificate failed verification; nothing was sent",
)


class ClientStats:
    """Counters of what a client sent, shared by its transport (thread-safe).

    ``requests`` counts every HTTP attempt handed to httpx (retries included); ``retries`` the
    attempts after the first of a call; ``items_retried`` the item ids re-requested by bulk-fetch
    follow-up rounds after a 207.
    """

    __slots__ = ("_lock", "items_retried", "requests", "retries")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.items_retried = 0

    def add(self, *, requests: int = 0, retries: int = 0, items_retried: int = 0) -> None:
        """Add to the counters atomically."""
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.items_retried += items_retried

    def as_dict(self) -> dict[str, int]:
        """A snapshot of the counters."""
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "items_retried": self.items_retried,
            }

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.as_dict().items())
        return f"ClientStats({fields})"


@dataclass(frozen=True, slots=True)
class Response:
    """A successful (2xx) answer, read completely within its size bound."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    #: The correlation id the call sent (the same on every attempt).
    correlation_id: str
    #: The backend's ``X-Request-ID`` for this answer, if any.
    request_id: str | None
    method: str
    path: str

    @property
    def rate_limit(self) -> RateLimitInfo | None:
        """What the answer's rate-limit headers say (``RateLimit``/``RateLimit-Policy``,
        ``X-RateLimit-*``; see :func:`synapse_sdk.retry_after.rate_limit_from_headers`), or
        None when it sent none."""
        return rate_limit_from_headers(self.headers)

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            BackendError: ``error_code="malformed_response"``; the body is not valid UTF-8 JSON,
                or nests too deep for the parser (raised from the decoding error).
        """
        try:
            return json.loads(self.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise malformed_response(self, f"the body is not valid JSON ({exc})") from exc
        except RecursionError as exc:  # e.g. 100 000 nested '[': hostile, never a real answer
            raise malformed_response(self, "the JSON nests too deep to parse") from exc


def malformed_response(response: Response, what: str) -> BackendError:
    """A permanent ``BackendError`` for a 2xx answer whose body breaks the API's shape."""
    return BackendError(
        f"{response.method} {response.path} answered HTTP {response.status_code} with a malformed "
        f"body: {what}",
        status_code=response.status_code,
        error_code="malformed_response",
        correlation_id=response.correlation_id,
    )


def redact_headers(
    headers: Mapping[str, str], secret_headers: Collection[str] = ()
) -> dict[str, str]:
    """A copy of ``headers`` with credentials (Authorization, cookies, API keys and the
    lower-case names in ``secret_headers``) redacted."""
    return {
        key: (
            _REDACTED
            if key.lower() in _SENSITIVE_HEADERS or key.lower() in secret_headers
            else value
        )
        for key, value in headers.items()
    }


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, _REDACTED) if secret else text


def _lookup_mapping(exc: BaseException) -> ErrorMapping | None:
    for cls in type(exc).__mro__:
        mapping = HTTPX_ERROR_MAP.get(cls)
        if mapping is not None:
            return mapping
    return None


def _tls_verification_failed(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def map_transport_error(
    exc: BaseException,
    *,
    method: str,
    path: str,
    correlation_id: str | None = None,
    secret: str | None = None,
) -> SynapError:
    """The SDK error for an httpx or OS error raised while ``method path`` was in flight.

    The caller raises the result ``from exc``. ``secret`` (the token) is redacted from the
    message should the foreign text contain it.

    Raises:
        TypeError: ``exc`` is neither an httpx error in :data:`HTTPX_ERROR_MAP` nor an ``OSError``.
    """
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        try:
            body = response.content[:ERROR_BODY_LIMIT]
        except httpx.ResponseNotRead:  # streamed and not read: judge by the status alone
            body = b""
        return error_for_status(
            response.status_code,
            response.headers,
            body,
            method=method,
            path=path,
            correlation_id=correlation_id,
            secret=secret,
        )
    if isinstance(exc, httpx.ConnectError | ssl.SSLCertVerificationError) and (
        _tls_verification_failed(exc)
    ):
        # httpx wraps the ssl error in a ConnectError; a custom transport may let it out bare.
        mapping: ErrorMapping | None = _TLS_MAPPING
    else:
        mapping = _lookup_mapping(exc)
    if mapping is None:
        if not isinstance(exc, OSError):
            raise TypeError(f"no SDK error mapping for {type(exc).__name__}")
        mapping = _OS_ERROR_MAPPING
    detail = _redact(str(exc), secret) or "no detail"
    message = f"{method} {path}: {mapping.reason} ({type(exc).__name__}: {detail})"
    if issubclass(mapping.error, SynapTransientError):
        return mapping.error(
            message, correlation_id=correlation_id, outcome_unknown=mapping.outcome_unknown
        )
    if issubclass(mapping.error, BackendError):
        return mapping.error(message, correlation_id=correlation_id, error_code=None)
    return mapping.error(message, correlation_id=correlation_id)


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    path: str,
    correlation_id: str | None = None,
    secret: str | None = None,
    context: ErrorContext | None = None,
) -> BackendError:
    """The ``BackendError`` (semantic subclass per the module table) for an error answer.

    The class comes from :data:`synapse_sdk.exceptions.registry`: the envelope's code (read in
    the light of ``context.operation``) first, then the status. ``body`` is at most
    :data:`ERROR_BODY_LIMIT` bytes of the error body; a malformed or non-JSON body still gives
    the right class, with ``envelope=None``. The message contains the envelope's canonical JSON
    (so text classification sees it) and never the token.
    """
    context = context if context is not None else _NO_CONTEXT
    envelope = find_envelope(body) if body else None
    match = registry.for_http(
        status, envelope.code if envelope is not None else None, context.operation
    )
    cls, outcome_unknown = backend_error_class(match.error), match.outcome_unknown
    parsed = _json_object(body) if body else {}
    request_id = headers.get("x-request-id") or _meta_request_id(parsed)
    details = _error_details(parsed, secret)
    if request_id is not None and len(request_id) > _REQUEST_ID_SHOWN:
        request_id = request_id[:_REQUEST_ID_SHOWN] + "…"
    if envelope is not None:
        shown = _redact(_envelope_shown(envelope), secret)
    elif body:
        excerpt = body[:_BODY_EXCERPT].decode("utf-8", "replace")
        more = "…" if len(body) > _BODY_EXCERPT else ""
        shown = f"non-JSON body {_redact(excerpt, secret)!r}{more}"
    else:
        shown = "empty body"
    message = f"{method} {path} answered HTTP {status}: {shown}{_details_shown(details)}"
    if request_id:
        message += f" (request_id={_redact(request_id, secret)})"
    retry_after = retry_after_from_headers(headers)
    return build_error(
        cls,
        message,
        context.subjects,
        status_code=status,
        error_code=envelope.code if envelope is not None else (
            REDIRECT_REFUSED if 300 <= status < 400 else None
        ),
        detail=_redact(envelope.message, secret) if envelope and envelope.message else None,
        retry_after_seconds=retry_after,
        correlation_id=correlation_id,
        outcome_unknown=outcome_unknown,
        envelope=envelope,
        details=details,
    )


def _json_object(body: bytes) -> dict[str, Any]:
    """An error body parsed as a JSON object; ``{}`` for anything else (malformed, too deep)."""
    if not body.lstrip().startswith(b"{"):
        return {}
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _meta_request_id(parsed: dict[str, Any]) -> str | None:
    """The v2 envelope's ``meta.request_id`` (the backend's trace id), if the body has one."""
    meta = parsed.get("meta")
    request_id = meta.get("request_id") if isinstance(meta, dict) else None
    return request_id if isinstance(request_id, str) and request_id else None


def _detail_text(value: object, limit: int, secret: str | None) -> str | None:
    """One ``details`` string made safe to show: the token redacted, control characters
    (a forged log line) blanked, at most ``limit`` characters; None for a value that is no
    text (an object, a list of objects, null)."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value[:10]):
        value = "; ".join(value[:10])  # DRF lists a field's messages
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = _redact(str(value)[: 4 * limit + 2 * len(secret or "")], secret)
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_details(parsed: dict[str, Any], secret: str | None) -> tuple[tuple[str, str], ...]:
    """The v2 error body's ``error.details`` (``[{field, message}]``) as at most
    :data:`MAX_ERROR_DETAILS` bounded, sanitized ``(field, message)`` pairs (see
    :func:`_detail_text`); entries without a usable message are skipped, anything but a list
    gives none. Never raises: the body is the server's."""
    error = parsed.get("error")
    details = error.get("details") if isinstance(error, dict) else None
    if not isinstance(details, list):
        return ()
    pairs: list[tuple[str, str]] = []
    for entry in details[: 4 * MAX_ERROR_DETAILS]:
        if not isinstance(entry, dict):
            continue
        message = _detail_text(entry.get("message"), _DETAIL_MESSAGE_CHARS, secret)
        if not message:
            continue
        field = _detail_text(entry.get("field"), _DETAIL_FIELD_CHARS, secret) or ""
        pairs.append((field, message))
        if len(pairs) == MAX_ERROR_DETAILS:
            break
    return tuple(pairs)


def _details_shown(details: tuple[tuple[str, str], ...]) -> str:
    """The first few details for an error message: ``; details: ids: not an integer``."""
    if not details:
        return ""
    shown = "; ".join(f"{field}: {message}" if field else message
                      for field, message in details[:_DETAILS_SHOWN])
    more = len(details) - _DETAILS_SHOWN
    return f"; details: {shown}" + (f" (+{more} more)" if more > 0 else "")


def _envelope_shown(envelope: ErrorEnvelope) -> str:
    """The envelope's canonical JSON for an error message, bounded (see ``_ENVELOPE_SHOWN``).

    A short envelope is quoted whole, so parsing the message gives it back unchanged.
    """
    shown = envelope
    if envelope.message is not None and len(envelope.message) > _DETAIL_SHOWN:
        shown = replace(shown, message=envelope.message[:_DETAIL_SHOWN] + "…")
    more = len(envelope.failed) - _FAILED_SHOWN
    if more > 0:
        shown = replace(shown, failed=envelope.failed[:_FAILED_SHOWN])
    text = shown.to_json()
    if len(text) > _ENVELOPE_SHOWN:  # e.g. twenty very long failed ids
        bare = ErrorEnvelope(envelope.code, None, envelope.status, (), envelope.retry_after_seconds)
        return f"{bare.to_json()} (envelope shortened)"
    return f"{text} (+{more} more failed items)" if more > 0 else text


def _validate_base_url(base_url: object) -> str:
    if not isinstance(base_url, str | httpx.URL):
        raise TypeError(f"base_url must be a string, not {type(base_url).__name__}")
    try:
        url = httpx.URL(str(base_url))
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url is not a valid URL: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an absolute http(s) URL, got {str(base_url)!r}")
    if url.userinfo:
        raise ValueError("base_url must not contain credentials; pass token= instead")
    return str(url.copy_with(query=None, fragment=None)).rstrip("/")


def _validate_token(token: object) -> str | None:
    if token is None:
        return None
    if not isinstance(token, str):
        raise TypeError(f"token must be a string or None, not {type(token).__name__}")
    if not token or token != token.strip() or any(c in token for c in "\r\n\0"):
        # Never echo the token itself.
        raise ValueError("token must be non-empty, without surrounding whitespace or newlines")
    return token


def credential_headers(token: str | None, tenant: str | None, kind: str) -> dict[str, str]:
    """The headers presenting ``token`` (``SYNAPSE-ACCESS-TOKEN``, or ``Authorization: Token``
    when ``kind`` is ``drf``) and ``tenant`` (``SYNAPSE-Tenant``, raw) to the backend."""
    headers: dict[str, str] = {}
    if token is not None:
        if kind == "drf":
            headers["Authorization"] = f"Token {token}"
        else:
            headers[ACCESS_TOKEN_HEADER] = token
    if tenant is not None:
        headers[TENANT_HEADER] = tenant
    return headers


def _header_value(name: str, value: object) -> str:
    """``value`` if it is a non-empty single-line string fit for a header."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    if not value or len(value) > 200 or not value.isprintable():
        raise ValueError(f"{name} must be 1-200 printable characters, got {value[:40]!r}")
    return value


def _load_context(source: str, *, cafile: str | None = None, capath: str | None = None
                  ) -> ssl.SSLContext:
    """A verifying SSL context trusting the CA certificates of ``cafile`` or ``capath``.

    Raises:
        ValueError: they cannot be loaded (a missing or empty file, not PEM), naming ``source``.
    """
    try:
        return _client_context(**({"cafile": cafile} if cafile else {"capath": capath or ""}))
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise ValueError(
            f"cannot load the CA certificates of {source}: {reason}; point it to a PEM bundle "
            "of the certificates to trust"
        ) from exc


def default_ssl_context() -> ssl.SSLContext:
    """The context the SDK builds when given no ``verify=``: trusting ``SSL_CERT_FILE`` or
    ``SSL_CERT_DIR`` when set (as httpx would), else certifi's bundle.

    Raises:
        ValueError: the environment names CA certificates that cannot be loaded.
    """
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile:
        return _load_context(f"SSL_CERT_FILE={cafile!r}", cafile=cafile)
    if capath:
        return _load_context(f"SSL_CERT_DIR={capath!r}", capath=capath)
    import certifi

    return _load_context("certifi's CA bundle", cafile=certifi.where())


def _check_verify(verify: object) -> ssl.SSLContext:
    """The SSL context for ``verify`` (None: :func:`default_ssl_context`).

    Raises:
        ValueError: ``verify`` is a bool, a context that does not verify, or CA certificates
            that cannot be loaded.
        TypeError: ``verify`` is of another type.
    """
    if verify is None:
        return default_ssl_context()
    if isinstance(verify, bool):
        raise ValueError(
            "TLS verification cannot be switched off; pass a CA bundle path or an ssl.SSLContext"
        )
    if isinstance(verify, ssl.SSLContext):
        if verify.verify_mode == ssl.CERT_NONE or not verify.check_hostname:
            raise ValueError(
                "the ssl.SSLContext passed as verify= does not verify certificates and host names"
            )
        # Still the caller's object: every handshake is checked again (_network.check_peer).
        return verify
    if isinstance(verify, bytes):
        if b"-----BEGIN CERTIFICATE-----" not in verify:
            raise ValueError("verify= as bytes must hold PEM CA certificates")
        return _client_context(cadata=verify.decode("ascii"))
    if isinstance(verify, str | os.PathLike):
        path = os.fspath(verify)
        if os.path.isdir(path):
            return _load_context(f"verify={path!r}", capath=path)
        return _load_context(f"verify={path!r}", cafile=path)
    raise TypeError(
        f"verify must be a CA bundle path, PEM bytes or an ssl.SSLContext, not {verify!r}"
    )


def _client_context(**trust: str) -> ssl.SSLContext:
    """A verifying client context (chain and host name checked, TLS 1.2 or later)."""
    context = ssl.create_default_context(**trust)  # type: ignore[arg-type]
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _certificate_context(verify: object, certificate: ClientCertificate) -> ssl.SSLContext:
    """A fresh verifying context trusting what ``verify`` names and presenting ``certificate``.

    Raises:
        ValueError: ``verify`` is a caller's ``ssl.SSLContext`` (it would be changed), or CA
            certificates that cannot be loaded.
        OSError, ssl.SSLError: the certificate file cannot be read or does not match its key.
    """
    if isinstance(verify, ssl.SSLContext):
        raise ValueError(
            "a call presenting a client certificate needs verify= as a CA path or PEM bytes, "
            "not an ssl.SSLContext"
        )
    context = _check_verify(verify)  # a fresh context for anything but an SSLContext
    context.load_cert_chain(certificate.path)
    return context


def _unusable_client(client: httpx.Client | httpx.AsyncClient) -> str | None:
    """Why the SDK refuses a caller's client, or None.

    Each transport it may send through (its own and every mounted one) must be httpx's own
    ``HTTPTransport``/``AsyncHTTPTransport`` with a context that verifies certificates and host
    names, under which the SDK checks every handshake and keeps its time limits; or a
    ``MockTransport``, which never touches the network. A custom transport could send the token
    anywhere, verified or not.
    """
    for transport in transports(client):
        kind = type(transport)
        if kind is httpx.MockTransport:
            continue
        if kind not in (httpx.HTTPTransport, httpx.AsyncHTTPTransport):
            return (
                f"http_client sends through a {kind.__name__}, a transport the SDK cannot check "
                "for TLS verification; pass an httpx client using httpx's own transports"
            )
        context = getattr(getattr(transport, "_pool", None), "_ssl_context", None)
        if not isinstance(context, ssl.SSLContext) or (
            context.verify_mode == ssl.CERT_NONE or not context.check_hostname
        ):
            return (
                "http_client disables TLS verification (of the certificate or the host name); "
                "the SDK refuses to use it"
            )
    return None


@dataclass(slots=True)
class _Call:
    """One logical call: what is sent on every attempt."""

    method: str
    #: The path or URL as logs, messages and the pacer see it: query values redacted
    #: (:func:`~synapse_sdk.clients._log_redaction.redact_query`; a presigned signature).
    path: str
    #: What is requested: the full URL, query intact.
    url: str
    send_token: bool
    params: QueryParams | None
    json_body: Any
    correlation_id: str
    idempotency_key: str | None
    max_bytes: int
    attempt: int = 0
    #: Extra headers of this call (credentials among them are named by ``secret_headers``).
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The TLS client certificate this call presents, if any.
    certificate: ClientCertificate | None = None
    #: What the answer → error mapping needs to know about this call.
    context: ErrorContext | None = None
    #: ``Accept`` and ``Accept-Encoding`` sent (a file download asks for any type, unencoded).
    accept: str = "application/json"
    accept_encoding: str = ACCEPT_ENCODING

    @property
    def idempotent(self) -> bool:
        return self.method in _IDEMPOTENT_METHODS or self.idempotency_key is not None


class _Read:
    """What one attempt read: the response head and its body, decoded within its bound.

    ``_Read(response, limit)`` takes chunks already decoded (``iter_bytes``);
    :meth:`start` reads the raw stream (``iter_raw``) and decodes it itself, bounded.
    """

    __slots__ = ("broken", "complete", "decoded", "response")

    def __init__(
        self, response: httpx.Response, limit: int, *, coding: str = "", complete: bool = False
    ) -> None:
        self.response = response
        self.decoded = BoundedBody(coding, limit)
        #: An error body that stopped decoding: the error is judged on what was read.
        self.broken = False
        #: Nothing (more) to read from the stream.
        self.complete = complete

    @classmethod
    def start(cls, response: httpx.Response, limit: int) -> _Read:
        """Raises httpx.DecodingError: a success body's coding is not one the SDK decodes."""
        if response.is_stream_consumed:
            # Built in memory (a mock transport, a hook that read it): already decoded by httpx.
            read = cls(response, limit, complete=True)
            read.take(response.content)
            return read
        try:
            return cls(response, limit, coding=response.headers.get("content-encoding", ""))
        except httpx.DecodingError:
            if response.is_success:
                raise
            read = cls(response, limit, complete=True)
            read.broken = True
            return read

    def take(self, raw: bytes) -> bool:
        """Decode ``raw`` within the bound; True once reading should stop.

        Raises:
            httpx.DecodingError: a success body is not valid for its coding.
        """
        if self.broken:
            return True
        try:
            return self.decoded.take(raw)
        except httpx.DecodingError:
            if self.response.is_success:
                raise
            self.broken = True
            return True

    @property
    def exceeded(self) -> bool:
        return self.decoded.exceeded

    @property
    def limit(self) -> int:
        return self.decoded.limit

    @property
    def body(self) -> bytes:
        return self.decoded.body


class _Core:
    """Everything the sync and async transports share except the I/O itself."""

    def __init__(
        self,
        config: SDKConfig | None,
        *,
        base_url: str | None,
        token: str | None,
        tenant: str | None,
        client_base_url: str | None,
        clock: Clock | None,
        rng: random.Random | None,
        max_response_bytes: int,
    ) -> None:
        if config is not None and not isinstance(config, SDKConfig):
            raise TypeError(f"config must be an SDKConfig or None, not {type(config).__name__}")
        self.config = config if config is not None else SDKConfig()
        url = base_url if base_url is not None else self.config.backend_url or client_base_url
        if not url:
            raise ValueError("no backend URL: pass base_url= or SDKConfig(backend_url=...)")
        self.base_url = _validate_base_url(url)
        self.token = _validate_token(token if token is not None else self.config.token)
        if tenant is not None:
            self.config = self.config.replace(tenant=tenant)  # validated there
        #: Sent to the base URL's origin only, with every request (never logged: redacted).
        self.credentials = credential_headers(
            self.token, self.config.tenant, self.config.token_kind
        )
        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes < 1
        ):
            raise ValueError(
                f"max_response_bytes must be a positive int, got {max_response_bytes!r}"
            )
        self.max_response_bytes = max_response_bytes
        self.clock = clock
        self.rng = rng
        self.secret_headers: frozenset[str] = frozenset()
        self.stats = ClientStats()
        base = httpx.URL(self.base_url)
        self._origin = (base.scheme, base.host, base.port)

    @property
    def policy(self) -> RetryPolicy:
        return self.config.effective_retry_policy

    def retry_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.clock is not None:
            kwargs["clock"] = self.clock
        if self.rng is not None:
            kwargs["rng"] = self.rng
        return kwargs

    def new_call(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None,
        json_body: Any,
        correlation_id: str | None,
        idempotency_key: str | Literal[False] | None,
        max_bytes: int | None,
    ) -> _Call:
        method = method.upper()
        if not isinstance(path, str):
            raise TypeError(f"path must be a string, not {type(path).__name__}")
        if path.startswith(("http://", "https://")):
            try:
                url = httpx.URL(path)
            except httpx.InvalidURL as exc:
                raise ValueError(f"not a valid URL: {path!r} ({exc})") from exc
            # Never send the credentials to another origin (e.g. a pre-signed storage URL).
            send_token = (url.scheme, url.host, url.port) == self._origin
            full = path
        elif path.startswith("/"):
            send_token = True
            full = self.base_url + path
        else:
            raise ValueError(f"path must start with '/' or be an absolute URL, got {path!r}")
        key: str | None = None
        if idempotency_key is None:
            key = uuid.uuid4().hex if method in _KEYED_METHODS else None
        elif idempotency_key is not False:
            key = _header_value("idempotency_key", idempotency_key)
        if correlation_id is not None:
            correlation_id = _header_value("correlation_id", correlation_id)
        limit = self.max_response_bytes if max_bytes is None else max_bytes
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        return _Call(
            method=method,
            path=_log_redaction.redact_query(path),
            url=full,
            send_token=send_token,
            params=params,
            json_body=json_body,
            correlation_id=correlation_id or uuid.uuid4().hex,
            idempotency_key=key,
            max_bytes=limit,
        )

    def add_options(
        self,
        call: _Call,
        headers: Mapping[str, str] | None,
        certificate: ClientCertificate | None,
        context: ErrorContext | None,
        credentials: bool = True,
    ) -> _Call:
        """Give ``call`` its extra headers, client certificate and error context; without
        ``credentials`` the token and tenant are not sent, whatever the origin."""
        call.send_token = call.send_token and credentials
        if headers:
            call.headers = {
                _header_value("header name", k): _header_value(k, v) for k, v in headers.items()
            }
        if certificate is not None and not isinstance(certificate, ClientCertificate):
            raise TypeError(f"certificate must be a ClientCertificate, not {certificate!r}")
        call.certificate, call.context = certificate, context
        return call

    def secret(self, call: _Call) -> str | None:
        """The credential of ``call`` (a secret header's value, else the token): redacted from
        every message."""
        for key, value in call.headers.items():
            if key.lower() in self.secret_headers:
                return value
        return self.token

    def attempt_timeout(self, call: _Call) -> httpx.Timeout:
        """Configured timeouts, each capped by the time left before the policy's deadline.

        Raises:
            NetworkTimeoutError: the deadline has already passed (nothing is sent).
        """
        t = self.config.timeouts
        left = remaining_time()
        if left is None:
            return httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.connect)
        if left <= 0:
            raise NetworkTimeoutError(
                f"{call.method} {call.path}: the call's deadline passed before the attempt; "
                "nothing was sent",
                correlation_id=call.correlation_id,
            )
        return httpx.Timeout(
            connect=min(t.connect, left),
            read=min(t.read, left),
            write=min(t.write, left),
            pool=min(t.connect, left),
        )

    def attempt_total(self) -> tuple[float, str] | None:
        """How long one attempt may take in all, and why: ``TimeoutConfig.total``, or the time
        left before the policy's deadline if that is shorter (None: unbounded)."""
        total, left = self.config.timeouts.total, remaining_time()
        if left is not None and (total is None or left < total):
            return left, "RetryPolicy.deadline"
        return None if total is None else (total, "TimeoutConfig.total")

    def build_request(self, client: httpx.Client | httpx.AsyncClient, call: _Call) -> httpx.Request:
        """Start an attempt: count it, log it and build its request (fresh timeouts).

        Raises:
            NetworkTimeoutError: the call's deadline already passed (nothing sent or counted).
        """
        timeout = self.attempt_timeout(call)
        call.attempt += 1
        self.stats.add(requests=1, retries=1 if call.attempt > 1 else 0)
        headers = {
            **call.headers,
            "X-Correlation-ID": call.correlation_id,
            "Accept": call.accept,
            "Accept-Encoding": call.accept_encoding,
        }
        if call.idempotency_key is not None:
            headers["Idempotency-Key"] = call.idempotency_key
        if call.send_token:
            headers.update(self.credentials)
        logger.debug(
            "synapse_sdk.http.request",
            extra={
                "method": call.method,
                "path": call.path,
                "correlation_id": call.correlation_id,
                "attempt": call.attempt,
                "headers": redact_headers(headers, self.secret_headers),
            },
        )
        return client.build_request(
            call.method,
            call.url,
            params=call.params,
            json=call.json_body,
            headers=headers,
            timeout=timeout,
        )

    def start_read(self, call: _Call, response: httpx.Response) -> _Read:
        """Prepare to read the body within its bound (an error body: :data:`ERROR_BODY_LIMIT`),
        the bound holding for the raw and for the decoded bytes.

        Raises:
            BackendError: ``response_too_large``; a success body declares a length over the bound.
            httpx.DecodingError: a success body's coding is not one the SDK decodes.
        """
        if not response.is_success:
            return _Read.start(response, ERROR_BODY_LIMIT)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > call.max_bytes:
            raise self._too_large(call, response)
        return _Read.start(response, call.max_bytes)

    def _too_large(self, call: _Call, response: httpx.Response) -> BackendError:
        return BackendError(
            f"{call.method} {call.path} answered HTTP {response.status_code} with a body larger "
            f"than the {call.max_bytes}-byte bound",
            status_code=response.status_code,
            error_code="response_too_large",
            correlation_id=call.correlation_id,
        )

    def map_error(self, call: _Call, exc: BaseException) -> SynapError:
        """The SDK error for a foreign error of this attempt, logged."""
        error = map_transport_error(
            exc,
            method=call.method,
            path=call.path,
            correlation_id=call.correlation_id,
            secret=self.secret(call),
        )
        self._log_error(call, error, status=None)
        return error

    def _log_error(self, call: _Call, error: SynapError, status: int | None) -> None:
        logger.info(
            "synapse_sdk.http.error",
            extra={
                "method": call.method,
                "path": call.path,
                "status": status,
                "correlation_id": call.correlation_id,
                "attempt": call.attempt,
                "error_type": type(error).__name__,
                "error_code": getattr(error, "error_code", None) or error.code,
                "outcome_unknown": error.outcome_unknown,
            },
        )

    def finish(self, call: _Call, read: _Read) -> Response:
        """Turn what an attempt read into a :class:`Response`, or raise the mapped error."""
        response = read.response
        request_id = response.headers.get("x-request-id")
        if request_id is not None:
            request_id = _redact(request_id, self.secret(call))
        logger.debug(
            "synapse_sdk.http.response",
            extra={
                "method": call.method,
                "path": call.path,
                "status": response.status_code,
                "correlation_id": call.correlation_id,
                "attempt": call.attempt,
                "request_id": request_id,
            },
        )
        if response.is_success:
            if read.exceeded:
                raise self._too_large(call, response)
            return Response(
                status_code=response.status_code,
                headers=response.headers,
                content=read.body,
                correlation_id=call.correlation_id,
                request_id=request_id,
                method=call.method,
                path=call.path,
            )
        error = error_for_status(
            response.status_code,
            response.headers,
            read.body,
            method=call.method,
            path=call.path,
            correlation_id=call.correlation_id,
            secret=self.secret(call),
            context=call.context,
        )
        self._log_error(call, error, status=response.status_code)
        raise error

    def download_call(
        self,
        path: str,
        *,
        max_bytes: int | None,
        headers: Mapping[str, str] | None,
        context: ErrorContext | None,
        credentials: bool,
        correlation_id: str | None,
    ) -> _Call:
        """The GET call of a streamed download (any type, unencoded; ``max_bytes`` checked).

        Raises:
            ValueError: a bad ``path`` or ``max_bytes``.
        """
        call = self.new_call(
            "GET",
            path,
            params=None,
            json_body=None,
            correlation_id=correlation_id,
            idempotency_key=False,
            max_bytes=max_bytes,
        )
        call = self.add_options(call, headers, None, context, credentials)
        call.accept, call.accept_encoding = "*/*", "identity"
        return call

    def body_failed(
        self, call: _Call, state: RangeState, exc: BaseException | None, failures: int
    ) -> tuple[SynapError, float | None]:
        """A download's body broke off (``exc``, or None: it ended short of its declared size):
        the mapped error and the seconds to wait before resuming (None: give up), decided by
        :func:`~synapse_sdk.retry.decide_wait` for consecutive failure ``failures`` (told to
        the retry hooks as a ``http.download`` event)."""
        if exc is None:
            error: SynapError = ServiceUnavailableError(
                f"GET {call.path}: the body ended after {state.offset} of {state.total} bytes",
                correlation_id=call.correlation_id,
            )
            self._log_error(call, error, status=None)
        else:
            error = self.map_error(call, exc)
        decision = decide_wait(self.policy, failures, error=error, rng=self.rng)
        notify_wait(
            decision,
            attempt=failures,
            max_attempts=self.policy.max_attempts,
            error=error,
            call_name="http.download",
            hooks=self.config.retry_hooks,
        )
        return error, None if decision.surface else decision.seconds

    def resume_wait(
        self, call: _Call, state: RangeState, broken: BaseException | None, start: int,
        failures: int,
    ) -> tuple[int, float]:
        """After a pass over a download's body that did not complete (it began at byte
        ``start``; ``failures`` passes before it failed without progress): the consecutive
        failures now and the seconds to wait before resuming (see :meth:`body_failed`).

        Raises:
            SynapError: the body's mapped error, when the policy gives up.
        """
        failures = 1 if state.offset > start else failures + 1
        error, wait = self.body_failed(call, state, broken, failures)
        if wait is None:
            raise error from broken
        return failures, wait

    def repr(self, cls: str) -> str:
        return (
            f"{cls}(base_url={self.base_url!r}, tenant={self.config.tenant!r}, "
            f"authenticated={self.token is not None})"
        )


_FOREIGN_ERRORS = (httpx.HTTPError, httpx.InvalidURL, OSError)


def _asyncio_sleep() -> AsyncSleep:
    """:func:`asyncio.sleep`, imported when an async transport first paces."""
    import asyncio

    return asyncio.sleep


_C = TypeVar("_C", httpx.Client, httpx.AsyncClient)
_S = TypeVar("_S", SyncSleep, AsyncSleep)


class _Basics(Protocol):
    """Where a transport's or client's read-only views come from."""

    @property
    def stats(self) -> ClientStats: ...

    @property
    def config(self) -> SDKConfig: ...

    @property
    def base_url(self) -> str: ...


class TransportViews:
    """The read-only views a transport and a client share (``stats``, ``config``,
    ``base_url``), read from :meth:`_basics`: a transport's core, a client's transport."""

    def _basics(self) -> _Basics:
        raise NotImplementedError

    @property
    def stats(self) -> ClientStats:
        """Requests sent (retries included), retries, and items re-requested after 207s."""
        return self._basics().stats

    @property
    def config(self) -> SDKConfig:
        """The configuration in use."""
        return self._basics().config

    @property
    def base_url(self) -> str:
        """The backend's base URL (no trailing slash)."""
        return self._basics().base_url


class _TransportBase(TransportViews, Generic[_C, _S]):
    """Construction, ownership and read-only views shared by both transports.

    ``http_client`` is used as given and not closed on close; it must send only through httpx's
    own transports (mounted ones included) with verification on, or a ``MockTransport``, and the
    SDK puts its network backend under their pools (time limits, a check of every TLS
    handshake). Without it the transport owns a client built with ``verify`` (a CA bundle path,
    PEM bytes or ``ssl.SSLContext``; default: ``SSL_CERT_FILE``/``SSL_CERT_DIR`` if set, else
    certifi's bundle; verification cannot be turned off) and no redirect following. ``sleep``,
    ``clock`` and ``rng`` go to the retry engine (``sleep`` also takes the ``pacer``'s pauses);
    ``max_response_bytes`` bounds success bodies unless a call passes its own ``max_bytes``;
    ``pacer`` (a :class:`Pacer`) paces every attempt. ``secret_headers`` names headers that
    carry credentials (redacted in logs and messages like the token).
    ``token`` and ``tenant`` override the config's; they are sent (``SYNAPSE-ACCESS-TOKEN``
    or, for ``token_kind="drf"``, ``Authorization: Token``, plus ``SYNAPSE-Tenant``) only to
    the base URL's origin.

    A call may present a TLS client certificate (``certificate=``): the transport then sends it
    on a client of its own built for that certificate, trusting what ``verify`` names. Clients of
    earlier certificates (before a renewal) stay open for calls still using them until the
    transport closes.

    Raises:
        ValueError: no or a bad ``base_url``, a bad token or tenant, ``verify`` that disables
            verification, CA certificates that cannot be loaded (``verify=`` or
            ``SSL_CERT_FILE`` naming a missing or empty file), an ``http_client`` built with
            ``verify=False`` or sending through a transport the SDK cannot check.
        TypeError: arguments of the wrong type.
    """

    _client_type: ClassVar[type[httpx.Client] | type[httpx.AsyncClient]]

    def __init__(
        self,
        config: SDKConfig | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        tenant: str | None = None,
        http_client: _C | None = None,
        verify: VerifyTypes | None = None,
        sleep: _S | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        secret_headers: Collection[str] = (),
        pacer: Pacer | None = None,
    ) -> None:
        client_type = self._client_type
        if http_client is not None:
            if not isinstance(http_client, client_type):
                raise TypeError(
                    f"http_client must be an httpx.{client_type.__name__}, "
                    f"not {type(http_client).__name__}"
                )
            if verify is not None:
                raise ValueError("pass verify= to your own http_client, not beside it")
            refused = _unusable_client(http_client)
            if refused is not None:
                raise ValueError(refused)
        if sleep is not None and not callable(sleep):
            raise TypeError(f"sleep must be callable, got {sleep!r}")
        if pacer is not None and not (
            callable(getattr(pacer, "before_request", None))
            and callable(getattr(pacer, "after_response", None))
        ):
            raise TypeError(f"pacer must have before_request and after_response, got {pacer!r}")
        self._core = _Core(
            config,
            base_url=base_url,
            token=token,
            tenant=tenant,
            client_base_url=str(http_client.base_url) if http_client is not None else None,
            clock=clock,
            rng=rng,
            max_response_bytes=max_response_bytes,
        )
        self._core.secret_headers = frozenset(h.lower() for h in secret_headers)
        self._verify = verify
        self._owns_client = http_client is None
        if http_client is None:
            http_client = client_type(  # type: ignore[assignment]
                verify=_check_verify(verify), follow_redirects=False
            )
        assert http_client is not None
        install(http_client)  # every socket operation keeps the attempt's time limit
        self._client: _C = http_client
        self._sleep: _S | None = sleep
        self._pacer = pacer
        kwargs = self._core.retry_kwargs()
        if sleep is not None:
            kwargs["asleep" if client_type is httpx.AsyncClient else "sleep"] = sleep
        # One engine for every call: the policy, sleep, clock and rng are the transport's.
        self._retrying = Retrying(
            self._core.policy, name="http", hooks=self._core.config.retry_hooks, **kwargs
        )
        self._lock = threading.Lock()
        #: Clients presenting a client certificate, by certificate name.
        self._certified: dict[str, _C] = {}
        self._closed = False

    def _client_for(self, call: _Call) -> _C:
        """The httpx client that sends ``call``: the transport's own, or one presenting the
        call's client certificate (built on first use).

        Raises:
            ValueError: a certificate with a caller's ``http_client`` or ``ssl.SSLContext``.
            OSError, ssl.SSLError: the certificate file cannot be used.
            RuntimeError: a certificate after the transport was closed (a usage error).
        """
        certificate = call.certificate
        if certificate is None:
            return self._client
        if not self._owns_client:
            raise ValueError("a call presenting a client certificate needs no http_client=")
        with self._lock:  # no await inside: also safe between the tasks of one event loop
            if self._closed:
                raise RuntimeError("the transport is closed")
            if certificate.name not in self._certified:
                context = _certificate_context(self._verify, certificate)
                built = self._client_type(verify=context, follow_redirects=False)
                install(built)  # the same time limits and handshake checks as the main client
                self._certified[certificate.name] = built  # type: ignore[assignment]
            return self._certified[certificate.name]

    def _owned_clients(self) -> list[_C]:
        """Every client this transport built and must close (emptied: closing is idempotent)."""
        with self._lock:
            owned = list(self._certified.values())
            self._certified, self._closed = {}, True
        if self._owns_client:
            owned.append(self._client)
        return owned

    def _basics(self) -> _Basics:
        return self._core

    def _prepare(
        self,
        method: str,
        path: str,
        params: QueryParams | None,
        json: Any,
        correlation_id: str | None,
        idempotency_key: str | Literal[False] | None,
        max_bytes: int | None,
    ) -> tuple[_Call, Retrying]:
        """The call's fixed parts and the transport's retry engine, which runs its attempts."""
        call = self._core.new_call(
            method,
            path,
            params=params,
            json_body=json,
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            max_bytes=max_bytes,
        )
        return call, self._retrying

    def __repr__(self) -> str:
        return self._core.repr(type(self).__name__)

    def _pace_wait(self, call: _Call) -> float:
        """The seconds the pacer wants before an attempt of ``call`` (0.0 without a pacer)."""
        pacer = self._pacer
        return 0.0 if pacer is None else pacer.before_request(call.path)

    def _heard(self, call: _Call, response: httpx.Response) -> None:
        """Tell the pacer an attempt of ``call`` was answered."""
        if self._pacer is not None:
            self._pacer.after_response(call.path, response.status_code, response.headers)

    def _download_span(self, call: _Call) -> AbstractContextManager[object]:
        """The span of a whole download, resumes included (nothing without OpenTelemetry)."""
        otel = opentelemetry()
        return nullcontext() if otel is None else otel.http_call(call)


class Transport(_TransportBase[httpx.Client, SyncSleep]):
    """Synchronous HTTP transport over :class:`httpx.Client`; see the module docstring and
    :class:`_TransportBase` for the constructor's arguments.

    Thread-safe: one instance may be shared by threads (per-call state lives in the call).
    """

    _client_type = httpx.Client

    def request(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        json: Any = None,
        correlation_id: str | None = None,
        idempotency_key: str | Literal[False] | None = None,
        max_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
        certificate: ClientCertificate | None = None,
        context: ErrorContext | None = None,
        credentials: bool = True,
    ) -> Response:
        """Send one logical call, retried per the policy, and return its 2xx response.

        ``path`` starts with ``/`` (joined to the base URL) or is an absolute URL (the token is
        sent only to the base URL's origin). ``idempotency_key``: None generates one for
        POST/PATCH, a string is used as is, False sends none (the call is then not retried after
        an outcome-unknown failure). ``max_bytes`` bounds the success body. ``headers`` are
        sent besides the SDK's own, ``certificate`` is presented in the TLS handshake,
        ``context`` tells the error mapping the operation and the ids an error may name, and
        ``credentials=False`` sends neither token nor tenant (a presigned file URL).

        Raises:
            SynapError: the mapped error of the last attempt (see the module docstring), with
                ``correlation_id`` and ``attempts`` set.
            ValueError: a bad ``path`` or ``max_bytes``.
        """
        call, retrying = self._prepare(
            method, path, params, json, correlation_id, idempotency_key, max_bytes
        )
        self._core.add_options(call, headers, certificate, context, credentials)
        otel = opentelemetry()
        if otel is None:
            return retrying.call(self._attempt, call, idempotent=call.idempotent)
        with otel.http_call(call):
            return retrying.call(self._traced_attempt, call, otel, idempotent=call.idempotent)

    def _traced_attempt(self, call: _Call, otel: OpenTelemetry) -> Response:
        self._pace(call)  # before the span: a pause is not part of the attempt's duration
        with otel.http_attempt(call) as scope:
            response = self._attempt(call, paced=True)
            scope.answered(response.status_code)
            return response

    def _pace(self, call: _Call) -> None:
        """Wait as long as the pacer says before an attempt of ``call``."""
        wait = self._pace_wait(call)
        if wait > 0.0:
            (self._sleep or time.sleep)(wait)

    def _read(self, call: _Call, response: httpx.Response) -> _Read:
        """An answer's body, read as far as ``call`` allows; the response is closed."""
        try:
            self._heard(call, response)
            read = self._core.start_read(call, response)
            if not read.complete:
                for chunk in response.iter_raw():
                    check_deadline()
                    if read.take(chunk):
                        break
            return read
        finally:
            response.close()

    def _attempt(self, call: _Call, paced: bool = False) -> Response:
        if not paced:
            self._pace(call)
        client = self._client_for(call)
        try:
            with attempt_limit(self._core.attempt_total()):
                response = client.send(self._core.build_request(client, call), stream=True)
                read = self._read(call, response)
        except _FOREIGN_ERRORS as exc:
            raise self._core.map_error(call, exc) from exc
        return self._core.finish(call, read)

    def download(
        self,
        path: str,
        sink: DownloadSink,
        *,
        max_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
        context: ErrorContext | None = None,
        credentials: bool = True,
        correlation_id: str | None = None,
    ) -> Downloaded:
        """Stream the body of ``GET path`` into ``sink`` as it arrives (no body in memory).

        The answer's head is retried like any call (:meth:`request`); a body that breaks off
        resumes with ``Range: bytes=N-`` (a ``206`` must start at ``N``; a ``200`` restarts the
        sink from byte 0), each wait decided by :func:`~synapse_sdk.retry.decide_wait` for the
        consecutive failures without progress. ``max_bytes`` bounds the body (None: unbounded).
        The attempt's ``TimeoutConfig.total`` bounds each head; the body is bounded by the read
        timeout of each chunk. The other arguments are :meth:`request`'s.

        Raises:
            SynapError: the mapped error of the head, or of the body once resuming gives up;
                ``BackendError`` ``response_too_large`` past ``max_bytes``,
                ``malformed_response`` for a ``Content-Range`` that is not the range asked.
            ValueError: a bad ``path`` or ``max_bytes``.
            Exception: whatever ``sink`` raised, unchanged.
        """
        call = self._core.download_call(
            path,
            max_bytes=max_bytes,
            headers=headers,
            context=context,
            credentials=credentials,
            correlation_id=correlation_id,
        )
        with self._download_span(call):
            return self._download(call, sink, max_bytes)

    def _download(self, call: _Call, sink: DownloadSink, max_bytes: int | None) -> Downloaded:
        state, base, failures = RangeState(sink, max_bytes, call.correlation_id), call.headers, 0
        while True:
            call.headers = {**base, **state.headers()}
            response = self._retrying.call(self._open, call)
            start, broken = state.offset, None
            try:
                state.begin(response)
                for chunk in state.raw_chunks(response):
                    state.take(chunk)
            except _FOREIGN_ERRORS as exc:
                broken = exc
            finally:
                response.close()
            if broken is None and state.complete:
                return state.result()
            failures, wait = self._core.resume_wait(call, state, broken, start, failures)
            if wait > 0:
                (self._sleep or time.sleep)(wait)

    def _open(self, call: _Call) -> httpx.Response:
        """One attempt at a download's head: the open 2xx response (its body unread), or the
        mapped error of an error answer."""
        self._pace(call)
        client = self._client_for(call)
        try:
            with attempt_limit(self._core.attempt_total()):
                response = client.send(self._core.build_request(client, call), stream=True)
                if response.is_success:
                    self._heard(call, response)
                    return response
                read = self._read(call, response)
        except _FOREIGN_ERRORS as exc:
            raise self._core.map_error(call, exc) from exc
        self._core.finish(call, read)  # raises the status's error
        raise AssertionError("unreachable: an error answer raises")  # pragma: no cover

    def close(self) -> None:
        """Close the clients this transport created."""
        for client in self._owned_clients():
            client.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncTransport(_TransportBase[httpx.AsyncClient, AsyncSleep]):
    """Asynchronous twin of :class:`Transport` over :class:`httpx.AsyncClient`; ``sleep`` is an
    async callable (default :func:`asyncio.sleep`).

    Safe to share between the tasks of one event loop; not thread-safe.
    """

    _client_type = httpx.AsyncClient

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        json: Any = None,
        correlation_id: str | None = None,
        idempotency_key: str | Literal[False] | None = None,
        max_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
        certificate: ClientCertificate | None = None,
        context: ErrorContext | None = None,
        credentials: bool = True,
    ) -> Response:
        """Async :meth:`Transport.request`: same arguments, same errors."""
        call, retrying = self._prepare(
            method, path, params, json, correlation_id, idempotency_key, max_bytes
        )
        self._core.add_options(call, headers, certificate, context, credentials)
        otel = opentelemetry()
        if otel is None:
            return await retrying.acall(self._attempt, call, idempotent=call.idempotent)
        with otel.http_call(call):
            return await retrying.acall(
                self._traced_attempt, call, otel, idempotent=call.idempotent
            )

    async def _traced_attempt(self, call: _Call, otel: OpenTelemetry) -> Response:
        await self._pace(call)  # before the span: a pause is not part of the attempt's duration
        with otel.http_attempt(call) as scope:
            response = await self._attempt(call, paced=True)
            scope.answered(response.status_code)
            return response

    async def _pace(self, call: _Call) -> None:
        """Wait as long as the pacer says before an attempt of ``call``."""
        wait = self._pace_wait(call)
        if wait > 0.0:
            await (self._sleep or _asyncio_sleep())(wait)

    async def _read(self, call: _Call, response: httpx.Response) -> _Read:
        """Async :meth:`Transport._read`."""
        try:
            self._heard(call, response)
            read = self._core.start_read(call, response)
            if not read.complete:
                async for chunk in response.aiter_raw():
                    check_deadline()
                    if read.take(chunk):
                        break
            return read
        finally:
            await response.aclose()

    async def _attempt(self, call: _Call, paced: bool = False) -> Response:
        if not paced:
            await self._pace(call)
        client = self._client_for(call)
        try:
            with attempt_limit(self._core.attempt_total()):
                response = await client.send(self._core.build_request(client, call), stream=True)
                read = await self._read(call, response)
        except _FOREIGN_ERRORS as exc:
            raise self._core.map_error(call, exc) from exc
        return self._core.finish(call, read)

    async def download(
        self,
        path: str,
        sink: DownloadSink,
        *,
        max_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
        context: ErrorContext | None = None,
        credentials: bool = True,
        correlation_id: str | None = None,
    ) -> Downloaded:
        """Async :meth:`Transport.download`: same arguments, same errors (``sink`` is written
        synchronously)."""
        call = self._core.download_call(
            path,
            max_bytes=max_bytes,
            headers=headers,
            context=context,
            credentials=credentials,
            correlation_id=correlation_id,
        )
        with self._download_span(call):
            return await self._download(call, sink, max_bytes)

    async def _download(
        self, call: _Call, sink: DownloadSink, max_bytes: int | None
    ) -> Downloaded:
        state, base, failures = RangeState(sink, max_bytes, call.correlation_id), call.headers, 0
        while True:
            call.headers = {**base, **state.headers()}
            response = await self._retrying.acall(self._open, call)
            start, broken = state.offset, None
            try:
                state.begin(response)
                async for chunk in state.araw_chunks(response):
                    state.take(chunk)
            except _FOREIGN_ERRORS as exc:
                broken = exc
            finally:
                await response.aclose()
            if broken is None and state.complete:
                return state.result()
            failures, wait = self._core.resume_wait(call, state, broken, start, failures)
            if wait > 0:
                await (self._sleep or _asyncio_sleep())(wait)

    async def _open(self, call: _Call) -> httpx.Response:
        """Async :meth:`Transport._open`."""
        await self._pace(call)
        client = self._client_for(call)
        try:
            with attempt_limit(self._core.attempt_total()):
                response = await client.send(self._core.build_request(client, call), stream=True)
                if response.is_success:
                    self._heard(call, response)
                    return response
                read = await self._read(call, response)
        except _FOREIGN_ERRORS as exc:
            raise self._core.map_error(call, exc) from exc
        self._core.finish(call, read)  # raises the status's error
        raise AssertionError("unreachable: an error answer raises")  # pragma: no cover

    async def aclose(self) -> None:
        """Close the clients this transport created."""
        for client in self._owned_clients():
            await client.aclose()

    async def __aenter__(self) -> AsyncTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
