"""What the Synap client sends and how it reads answers: requests, answers, gRPC errors.

Transport-free pieces shared by :class:`~synapse_sdk.clients.synap.SynapClient` and its asyncio
twin. Every HTTP call goes through :mod:`synapse_sdk.clients._transport`, which maps httpx and
OS errors and error answers (told each call's operation, so a revoked binding during renewal is
a ``CertificateRenewalError`` and elsewhere an ``AuthenticationError``, and the ids an error may
name). The listening stream's gRPC statuses are mapped here, by :func:`error_from_grpc`. Both
pick the class in :data:`synapse_sdk.exceptions.registry`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from synapse_sdk.clients._transport import Response, malformed_response
from synapse_sdk.exceptions import (
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
    "data_from_response",
    "error_from_grpc",
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
    idempotency_key: str | None = None
    conversation_id: str | None = None
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def _shorten(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"


def data_from_response(response: Response) -> dict[str, Any]:
    """The ``data`` object of a 2xx answer.

    Raises:
        BackendError: the body is not ``{"data": {...}}`` (code ``malformed_response``).
    """
    document = response.json()
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        raise malformed_response(response, 'no "data" object')
    return data


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
