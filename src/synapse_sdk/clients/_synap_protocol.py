"""What the Synap client sends and how it reads answers: requests, errors, TLS contexts.

Transport-free pieces shared by :class:`~synapse_sdk.clients.synap.SynapClient` and its asyncio
twin. Foreign errors become the SDK's tree here (and only here), always raised ``from`` the
original by the callers:

* httpx and OS errors: :func:`synapse_sdk.clients._transport.map_transport_error` (connect
  failures and timeouts before sending → outcome known; read timeouts and broken connections →
  ``outcome_unknown``; an untrusted server certificate → ``AuthenticationError``).
* HTTP error answers: the transport's :func:`~synapse_sdk.clients._transport.error_for_status`,
  told the operation (a revoked binding during renewal is a ``CertificateRenewalError``,
  elsewhere an ``AuthenticationError``) and the ids an error may name.
* gRPC statuses of the listening stream: :func:`error_from_grpc`, using the JSON details.

Both pick the class in :data:`synapse_sdk.exceptions.registry`.
"""

from __future__ import annotations

import json
import logging
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from synapse_sdk.clients._transport import ErrorContext, error_for_status
from synapse_sdk.exceptions import (
    BackendError,
    RateLimitError,
    ServiceUnavailableError,
    SynapError,
    build_error,
    registry,
)
from synapse_sdk.retry_after import parse_retry_after

__all__ = [
    "SESSION_HEADER",
    "Request",
    "client_ssl_context",
    "data_from_response",
    "error_from_grpc",
    "error_from_response",
    "load_trust_root",
]

logger = logging.getLogger("synapse_sdk.clients.synap")

#: Header (and gRPC metadata key) carrying the session token. A secret: never logged.
SESSION_HEADER: Final = "x-synap-session"
_MAX_DETAIL = 300

Auth = Literal["none", "certificate", "session"]

@dataclass(frozen=True, slots=True)
class Request:
    """One logical API call: retried as a unit, one correlation id across its attempts.

    ``body`` may hold secrets (the bootstrap token) and is kept out of ``repr``.
    """

    operation: str
    method: str
    path: str
    auth: Auth
    body: Mapping[str, Any] | None = field(default=None, repr=False)
    params: Mapping[str, str] | None = None
    idempotent: bool = True
    idempotency_key: str | None = None
    conversation_id: str | None = None
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def _shorten(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"


def data_from_response(request: Request, status: int, content: bytes) -> dict[str, Any]:
    """The ``data`` object of a 2xx answer.

    Raises:
        BackendError: the body is not ``{"data": {...}}`` (code ``malformed_response``).
    """
    try:
        document = json.loads(content)
        data = document["data"]
        if not isinstance(data, dict):
            raise TypeError("data is not an object")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise BackendError(
            f"Synap {request.operation} answered HTTP {status} with a malformed body",
            status_code=status,
            error_code="malformed_response",
            correlation_id=request.correlation_id,
        ) from exc
    return data


def error_from_response(
    request: Request,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    instance_id: str,
) -> BackendError:
    """The error for a non-2xx answer to ``request`` (the caller raises it): the transport's
    mapping, told the operation and the ids the error may be about."""
    return error_for_status(
        status,
        headers,
        content,
        method=request.method,
        path=request.path,
        correlation_id=request.correlation_id,
        context=ErrorContext(
            request.operation,
            {"instance_id": instance_id, "conversation_id": request.conversation_id},
        ),
    )


def error_from_grpc(
    status_name: str, details: str | None, *, correlation_id: str, instance_id: str
) -> SynapError:
    """The error for a failed listening stream (``status_name`` as in ``StatusCode.X.name``).

    The details' ``code``, else the status, picks the class in the error registry. Unknown
    statuses (INTERNAL, UNKNOWN, ...) count as a broken stream: a transient
    ``ServiceUnavailableError`` whose reconnect may succeed.
    """
    code: str | None = None
    detail = details or ""
    retry_after: float | None = None
    try:
        parsed = json.loads(details or "")
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        code = parsed.get("code") if isinstance(parsed.get("code"), str) else None
        detail = str(parsed.get("detail", ""))
        value = parsed.get("retry_after")
        if isinstance(value, str | int | float):  # read like a Retry-After header
            retry_after = parse_retry_after(value)
    message = f"Synap listening stream ended with {status_name}: {_shorten(detail)}"
    semantic = registry.for_grpc(status_name, code) or ServiceUnavailableError
    fields: dict[str, Any] = {"correlation_id": correlation_id}
    if issubclass(semantic, RateLimitError):
        fields["retry_after_seconds"] = retry_after
    return build_error(semantic, message, {"instance_id": instance_id}, **fields)


def load_trust_root(value: bytes | str | Path | None) -> bytes | None:
    """Read the CA certificate(s) that verify Synap's servers: PEM bytes, PEM text or a path.

    ``None`` means the system's default trust store.

    Raises:
        TypeError: ``value`` has another type.
        ValueError: the data holds no PEM certificate.
        OSError: the path cannot be read.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        data = value.encode()
    elif isinstance(value, str | Path):
        data = Path(value).read_bytes()
    else:
        raise TypeError(
            f"trust_root must be PEM bytes, PEM text or a path, not {type(value).__name__}"
        )
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError("trust_root holds no PEM certificate")
    return data


def client_ssl_context(trust_root: bytes | None, identity_file: Path | None) -> ssl.SSLContext:
    """A verifying TLS context: hostname and chain checked against ``trust_root`` (or the system
    store), presenting the client certificate in ``identity_file`` (key + certificate PEM).

    Verification is never turned off.
    """
    if trust_root is not None:
        context = ssl.create_default_context(cadata=trust_root.decode("ascii"))
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if identity_file is not None:
        context.load_cert_chain(identity_file)
    return context
