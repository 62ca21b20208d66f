"""What the Synap client sends and how it reads answers: requests, errors, TLS contexts.

Transport-free pieces shared by :class:`~synapse_sdk.clients.synap.SynapClient` and its asyncio
twin. Foreign errors become the SDK's tree here (and only here), always raised ``from`` the
original by the callers:

* httpx and OS errors: :func:`synapse_sdk.clients._transport.map_transport_error` (connect
  failures and timeouts before sending → outcome known; read timeouts and broken connections →
  ``outcome_unknown``; an untrusted server certificate → ``AuthenticationError``).
* HTTP error answers: the envelope's ``code`` picks the class (:data:`ERROR_CODES`), an
  operation may override it (a revoked binding during renewal is a ``CertificateRenewalError``,
  elsewhere an ``AuthenticationError``), and an unknown code falls back to the status.
* gRPC statuses of the listening stream: :func:`error_from_grpc`, using the JSON details.
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

from synapse_sdk.clients._transport import error_for_status
from synapse_sdk.envelopes import ErrorEnvelope, find_envelope
from synapse_sdk.exceptions import (
    AgentUnavailableError,
    AuthenticationError,
    BackendError,
    BackendInvalidConversationIdError,
    BackendInvalidInstanceIdError,
    BootstrapError,
    BootstrapKeyInvalidError,
    CertificateExpiredError,
    CertificateRenewalError,
    ContextNotFoundError,
    InvalidInputError,
    InvalidInstanceIdError,
    NetworkTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    SessionExpiredError,
    SynapError,
    backend_error_class,
)
from synapse_sdk.retry_after import parse_retry_after, retry_after_from_headers

__all__ = [
    "ERROR_CODES",
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

#: Envelope code → the semantic error it means.
ERROR_CODES: Final[Mapping[str, type[SynapError]]] = {
    "invalid_input": InvalidInputError,
    "rate_limited": RateLimitError,
    "service_unavailable": ServiceUnavailableError,
    "agent_unavailable": AgentUnavailableError,
    "stream_dropped": ServiceUnavailableError,
    "context_not_found": ContextNotFoundError,
    "session_expired": SessionExpiredError,
    "authentication_failed": AuthenticationError,
    "client_certificate_required": AuthenticationError,
    "certificate_unknown": AuthenticationError,
    "credentials_rotated": AuthenticationError,
    "binding_revoked": AuthenticationError,
    "certificate_expired": CertificateExpiredError,
    "certificate_renewal_failed": CertificateRenewalError,
    "bootstrap_key_invalid": BootstrapKeyInvalidError,
    "bootstrap_failed": BootstrapError,
}

#: Codes naming an id the caller passed: the error carries that id.
_ID_CODES: Final = frozenset({"invalid_conversation_id", "invalid_instance_id"})

#: (operation, code) → the error that code means for that operation.
_OPERATION_CODES: Final[Mapping[tuple[str, str], type[SynapError]]] = {
    ("renew", "binding_revoked"): CertificateRenewalError,
}


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
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
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
) -> SynapError:
    """The error for a non-2xx answer to ``request`` (the caller raises it).

    Known envelope codes give the combined ``Backend<Semantic>Error`` (caught by both
    ``except BackendError`` and ``except <Semantic>Error``); unknown conversation and instance
    ids give :class:`InvalidConversationIdError` / :class:`InvalidInstanceIdError` naming the
    id; anything else is classified by status.
    """
    envelope = find_envelope(content) if content else None
    code = envelope.code if envelope is not None else None
    semantic = None
    if code is not None:
        semantic = _OPERATION_CODES.get((request.operation, code)) or ERROR_CODES.get(code)
    if envelope is None or code is None or (semantic is None and code not in _ID_CODES):
        return error_for_status(
            status,
            headers,
            content,
            method=request.method,
            path=request.path,
            correlation_id=request.correlation_id,
        )
    message = f"Synap {request.operation} refused (HTTP {status}): {_envelope_text(envelope)}"
    backend_fields: dict[str, Any] = {
        "status_code": status,
        "error_code": code,
        "detail": _shorten(envelope.message),
        "correlation_id": request.correlation_id,
        "envelope": envelope,
    }
    if code == "invalid_conversation_id":
        return BackendInvalidConversationIdError(
            request.conversation_id, message, **backend_fields
        )
    if semantic is None:  # invalid_instance_id
        return BackendInvalidInstanceIdError(instance_id, message, **backend_fields)
    retry_after = retry_after_from_headers(headers)
    if retry_after is None:
        retry_after = envelope.retry_after_seconds
    return backend_error_class(semantic)(
        message,
        status_code=status,
        error_code=code,
        detail=_shorten(envelope.message),
        retry_after_seconds=retry_after,
        correlation_id=request.correlation_id,
        envelope=envelope,
    )


def _envelope_text(envelope: ErrorEnvelope) -> str:
    body: dict[str, Any] = {"code": envelope.code}
    if envelope.message:
        body["detail"] = _shorten(envelope.message)
    if envelope.retry_after_seconds is not None:
        body["retry_after"] = envelope.retry_after_seconds
    return json.dumps({"error": body})


#: gRPC status name → the error when the details carry no known code.
_GRPC_STATUS: Final[Mapping[str, type[SynapError]]] = {
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": AuthenticationError,
    "RESOURCE_EXHAUSTED": RateLimitError,
    "UNAVAILABLE": ServiceUnavailableError,
    "DEADLINE_EXCEEDED": NetworkTimeoutError,
    "INVALID_ARGUMENT": InvalidInputError,
    "NOT_FOUND": InvalidInputError,
}


def error_from_grpc(
    status_name: str, details: str | None, *, correlation_id: str, instance_id: str
) -> SynapError:
    """The error for a failed listening stream (``status_name`` as in ``StatusCode.X.name``).

    Unknown statuses (INTERNAL, UNKNOWN, ...) count as a broken stream: a transient
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
    if code == "invalid_instance_id":
        return InvalidInstanceIdError(instance_id, message, correlation_id=correlation_id)
    semantic = (ERROR_CODES.get(code) if code else None) or _GRPC_STATUS.get(
        status_name, ServiceUnavailableError
    )
    if issubclass(semantic, RateLimitError):
        return RateLimitError(
            message, retry_after_seconds=retry_after, correlation_id=correlation_id
        )
    return semantic(message, correlation_id=correlation_id)


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
