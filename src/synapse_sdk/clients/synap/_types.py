"""Values the Synap client returns: sessions, certificates, memories, context, stream events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from synapse_sdk.clients.synap._credentials import CertificateMeta, CertificateState

__all__ = [
    "CertificateStatus",
    "Context",
    "IngestResult",
    "ListenMessage",
    "ListenStatus",
    "Memory",
    "SessionInfo",
]


@dataclass(frozen=True, slots=True)
class CertificateStatus:
    """Where the client certificate stands in its lifecycle (times in epoch seconds).

    ``state`` is ``valid``, ``renew_due`` (less than 30 % of the TTL left: the next call renews),
    ``in_grace`` (expired but still renewable) or ``expired`` (past the grace period:
    :class:`~synapse_sdk.exceptions.CertificateExpiredError` until a fresh bootstrap).
    """

    serial: str
    issued_at: float
    expires_at: float
    renew_at: float
    grace_ends_at: float
    state: CertificateState

    @classmethod
    def of(cls, meta: CertificateMeta, now: float) -> CertificateStatus:
        """The status of ``meta`` at ``now``."""
        return cls(
            meta.serial,
            meta.issued_at,
            meta.expires_at,
            meta.renew_at,
            meta.grace_ends_at,
            meta.state(now),
        )


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """The session :meth:`initialize` opened (the session token itself is never exposed)."""

    instance_id: str
    session_id: str
    idle_timeout_seconds: float
    expires_at: float
    certificate: CertificateStatus


@dataclass(frozen=True, slots=True)
class Memory:
    """One stored memory."""

    memory_id: str
    content: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Context:
    """The memories stored for a user or a conversation, oldest first."""

    user_id: str | None
    conversation_id: str | None
    memories: tuple[Memory, ...]


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The ids of the memories an ingest stored, in request order."""

    memory_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListenMessage:
    """One event of the listening stream (heartbeats are not delivered)."""

    sequence: int
    kind: str
    event_id: str
    conversation_id: str | None
    user_id: str | None
    content: str
    created_at: float


@dataclass(frozen=True, slots=True)
class ListenStatus:
    """A snapshot of the active listening stream."""

    connected: bool
    connections: int
    reconnects: int
    messages: int
    last_sequence: int
    last_error: str | None
