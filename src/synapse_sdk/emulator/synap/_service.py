"""The Synap emulator's rules: bootstrap, certificates, sessions, memories, context, events.

Transport-free: the HTTPS app and the gRPC listener both call these methods and turn an
:class:`ApiError` into their own status. Every time-dependent rule reads the injected clock, so
a test that advances a :class:`~synapse_sdk.emulator.FakeClock` moves certificate
lifetimes, token windows and session idle timers without sleeping.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from synapse_sdk.emulator._ca import CertificateAuthority, InvalidCSRError
from synapse_sdk.emulator.synap._store import (
    CertificateRow,
    EventRow,
    InstanceRow,
    MemoryRow,
    SessionRow,
    SynapStore,
)
from synapse_sdk.exceptions import INSTANCE_ID_PATTERN

__all__ = [
    "BOOTSTRAP_TOKEN_PATTERN",
    "ApiError",
    "Lifetimes",
    "Principal",
    "SynapService",
]

#: ``sbt_`` followed by 43 URL-safe characters (32 random bytes).
BOOTSTRAP_TOKEN_PATTERN = re.compile(r"sbt_[A-Za-z0-9_-]{43}")
_SESSION_TOKEN_PATTERN = re.compile(r"sst_[A-Za-z0-9_-]{43}")
_CONVERSATION_PATTERN = re.compile(r"conv_[0-9a-f]{16}")
_MAX_USER_ID = 128
_MAX_MEMORIES = 100
_MAX_CONTENT = 10_000
_MAX_METADATA = 4_096
_MAX_CONTEXT_LIMIT = 200
_DEFAULT_CONTEXT_LIMIT = 50
_X509_EXTRA = 86_400.0


class ApiError(Exception):
    """A request the emulator refuses: an HTTP status, a stable code and a safe detail."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after

    def envelope(self, request_id: str) -> dict[str, Any]:
        """The JSON error body."""
        error: dict[str, Any] = {"code": self.code, "detail": self.detail}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return {"error": error, "meta": {"request_id": request_id}}


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """The emulator's time rules, in seconds (defaults are the production values).

    ``renew_fraction`` is the share of the TTL left when a client should renew (30 %).
    """

    certificate_ttl: float = 7 * 86_400.0
    grace: float = 48 * 3_600.0
    renew_fraction: float = 0.3
    bootstrap_token_ttl: float = 3_600.0
    session_idle: float = 30 * 60.0
    session_max: float = 12 * 3_600.0
    heartbeat_interval: float = 15.0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"Lifetimes.{name} must be > 0, got {value!r}")
        if self.renew_fraction >= 1:
            raise ValueError(f"Lifetimes.renew_fraction must be < 1, got {self.renew_fraction!r}")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the instance named by a registered client certificate."""

    instance_id: str
    certificate: CertificateRow


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _invalid(detail: str) -> ApiError:
    return ApiError(400, "invalid_input", detail)


def _bad_conversation(detail: str) -> ApiError:
    return ApiError(404, "invalid_conversation_id", detail)


def _key_invalid(detail: str) -> ApiError:
    return ApiError(401, "bootstrap_key_invalid", detail)


def _str_field(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _invalid(f"{name} must be a non-empty string")
    return value


class SynapService:
    """Every rule the emulator enforces, over a :class:`SynapStore` and a certificate authority.

    ``on_event`` is called (from whichever thread made the change) with each new stream event;
    the server uses it to push events to open listening streams.
    """

    def __init__(
        self,
        store: SynapStore,
        authority: CertificateAuthority,
        clock: Callable[[], float],
        lifetimes: Lifetimes,
        *,
        listen_target: Callable[[], str],
        on_event: Callable[[EventRow], None] = lambda _event: None,
        on_credentials_changed: Callable[[str, str, str], None] = lambda _i, _c, _d: None,
    ) -> None:
        self.store = store
        self.authority = authority
        self.clock = clock
        self.lifetimes = lifetimes
        self._listen_target = listen_target
        self.on_event = on_event
        self.on_credentials_changed = on_credentials_changed
        self._bootstrap_lock = threading.Lock()

    # --- administration (the "dashboard") ------------------------------------------------

    def register_instance(self, instance_id: str | None = None) -> str:
        """Register an instance (a fresh ``inst_<hex16>`` id unless one is given).

        Raises:
            ValueError: the id is malformed or already registered.
        """
        if instance_id is None:
            instance_id = f"inst_{secrets.token_hex(8)}"
        if not INSTANCE_ID_PATTERN.fullmatch(instance_id):
            raise ValueError("instance id must be 'inst_' followed by 16 lowercase hex digits")
        if self.store.instance(instance_id) is not None:
            raise ValueError(f"instance {instance_id} is already registered")
        self.store.add_instance(instance_id, self.clock())
        return instance_id

    def issue_bootstrap_token(self, instance_id: str, *, ttl: float | None = None) -> str:
        """Mint a single-use bootstrap token for a registered instance (secret: shown once).

        Raises:
            KeyError: the instance is not registered.
            ValueError: ``ttl`` is not positive.
        """
        self._require_instance(instance_id)
        window = self.lifetimes.bootstrap_token_ttl if ttl is None else ttl
        if not window > 0:
            raise ValueError(f"ttl must be > 0, got {ttl!r}")
        token = f"sbt_{secrets.token_urlsafe(32)}"
        now = self.clock()
        self.store.add_token(_digest(token), instance_id, now, now + window)
        return token

    def revoke_binding(self, instance_id: str) -> None:
        """Revoke the instance's certificate binding: renewals fail and calls are refused until a
        fresh bootstrap re-binds it."""
        self._require_instance(instance_id)
        self.store.set_instance(instance_id, revoked=True)
        self.on_credentials_changed(instance_id, "binding_revoked", "certificate binding revoked")

    def rotate_credentials(self, instance_id: str) -> None:
        """Rotate the instance's credentials server-side: every certificate it holds stops being
        accepted (``credentials_rotated``) and its sessions are invalidated."""
        self._require_instance(instance_id)
        self.store.set_instance(instance_id, bump_generation=True)
        self.store.invalidate_sessions(instance_id, "credential rotation")
        self.on_credentials_changed(
            instance_id, "credentials_rotated", "the instance's credentials were rotated"
        )

    def invalidate_sessions(self, instance_id: str, reason: str = "credential rotation") -> int:
        """Invalidate the instance's sessions server-side (certificates stay valid)."""
        self._require_instance(instance_id)
        count = self.store.invalidate_sessions(instance_id, reason)
        self.on_credentials_changed(
            instance_id, "session_expired", f"session invalidated: {reason}"
        )
        return count

    def deactivate_instance(self, instance_id: str) -> None:
        """Deactivate (delete) an instance: every call for it is refused."""
        self._require_instance(instance_id)
        self.store.set_instance(instance_id, active=False)
        self.on_credentials_changed(instance_id, "invalid_instance_id", "instance deactivated")

    def _require_instance(self, instance_id: str) -> InstanceRow:
        row = self.store.instance(instance_id)
        if row is None:
            raise KeyError(f"instance {instance_id} is not registered")
        return row

    # --- bootstrap and certificates ------------------------------------------------------

    def bootstrap(self, body: Mapping[str, Any], idempotency_key: str | None) -> dict[str, Any]:
        """Exchange a bootstrap token and a CSR for a client certificate.

        A retry carrying the same ``Idempotency-Key`` and CSR as the request that consumed the
        token gets the same certificate back, so a lost response does not burn the token.

        Raises:
            ApiError: 404 ``invalid_instance_id``; 401 ``bootstrap_key_invalid`` (malformed,
                foreign, consumed or expired token); 400 ``invalid_input`` (bad CSR or body).
        """
        instance_id = _str_field(body, "instance_id")
        token = body.get("bootstrap_token")
        csr = _str_field(body, "csr")
        if not INSTANCE_ID_PATTERN.fullmatch(instance_id):
            raise ApiError(404, "invalid_instance_id", "instance id is malformed")
        instance = self.store.instance(instance_id)
        if instance is None or not instance.active:
            raise ApiError(404, "invalid_instance_id", "instance does not exist or is deactivated")
        if not isinstance(token, str) or not BOOTSTRAP_TOKEN_PATTERN.fullmatch(token):
            raise _key_invalid("bootstrap token is malformed")
        csr_sha = hashlib.sha256(csr.encode()).hexdigest()
        with self._bootstrap_lock:
            row = self.store.token(_digest(token))
            if row is None or row.instance_id != instance_id:
                raise _key_invalid("bootstrap token does not correspond to this instance")
            if row.consumed_at is not None:
                if (
                    idempotency_key
                    and row.idempotency_key == idempotency_key
                    and row.csr_sha256 == csr_sha
                    and row.response is not None
                ):
                    replay: dict[str, Any] = json.loads(row.response)
                    return replay
                raise _key_invalid("bootstrap token was already used (tokens are single-use)")
            now = self.clock()
            if now >= row.expires_at:
                raise _key_invalid("bootstrap token expired")
            # A fresh bootstrap re-binds the instance: older certificates and sessions retire.
            self.store.set_instance(instance_id, revoked=False, bump_generation=True)
            self.store.invalidate_sessions(instance_id, "instance bootstrapped again")
            generation = instance.generation + 1
            response = self._issue(instance_id, generation, csr, now)
            self.store.consume_token(
                row.token_hash, now, idempotency_key or "", csr_sha, json.dumps(response)
            )
        return response

    def _issue(self, instance_id: str, generation: int, csr: str, now: float) -> dict[str, Any]:
        life = self.lifetimes
        try:
            cert = self.authority.sign_client_csr(
                csr.encode(),
                instance_id,
                x509_lifetime_seconds=life.certificate_ttl + life.grace + _X509_EXTRA,
            )
        except InvalidCSRError as exc:
            raise _invalid(str(exc)) from exc
        serial = format(cert.serial_number, "x")
        self.store.add_certificate(
            CertificateRow(serial, instance_id, generation, now, now + life.certificate_ttl)
        )
        return {
            "instance_id": instance_id,
            "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "ca_certificate": self.authority.certificate_pem.decode(),
            "serial": serial,
            "issued_at": now,
            "expires_at": now + life.certificate_ttl,
            "ttl_seconds": life.certificate_ttl,
            "grace_seconds": life.grace,
            "renew_fraction": life.renew_fraction,
        }

    def authenticate(self, peer_der: bytes | None, *, renewal: bool = False) -> Principal:
        """Identify the caller by its TLS client certificate and apply the lifetime rules.

        Raises:
            ApiError: 401 ``client_certificate_required`` / ``certificate_unknown`` /
                ``credentials_rotated`` / ``binding_revoked`` / ``certificate_expired``;
                403 ``binding_revoked`` on renewal; 404 ``invalid_instance_id``.
        """
        if not peer_der:
            raise ApiError(401, "client_certificate_required", "a client certificate is required")
        serial = format(x509.load_der_x509_certificate(peer_der).serial_number, "x")
        cert = self.store.certificate(serial)
        if cert is None:
            raise ApiError(401, "certificate_unknown", "client certificate is not registered")
        instance = self.store.instance(cert.instance_id)
        if instance is None or not instance.active:
            raise ApiError(404, "invalid_instance_id", "instance does not exist or is deactivated")
        if cert.generation != instance.generation:
            raise ApiError(
                401, "credentials_rotated", "the instance's credentials were rotated server-side"
            )
        if instance.revoked:
            status = 403 if renewal else 401
            raise ApiError(status, "binding_revoked", "the certificate binding was revoked")
        now = self.clock()
        limit = cert.expires_at + (self.lifetimes.grace if renewal else 0.0)
        if now >= limit:
            detail = (
                "client certificate expired beyond its grace period"
                if renewal
                else "client certificate expired"
            )
            raise ApiError(401, "certificate_expired", detail)
        return Principal(cert.instance_id, cert)

    def renew(self, principal: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        """Issue a new certificate for a fresh CSR (the caller authenticated with ``renewal``).

        Raises:
            ApiError: 400 ``invalid_input`` (bad CSR).
        """
        csr = _str_field(body, "csr")
        return self._issue(
            principal.instance_id, principal.certificate.generation, csr, self.clock()
        )

    # --- sessions ------------------------------------------------------------------------

    def open_session(self, principal: Principal) -> dict[str, Any]:
        """Open a time-bounded session for the caller's instance."""
        token = f"sst_{secrets.token_urlsafe(32)}"
        now = self.clock()
        life = self.lifetimes
        row = SessionRow(
            _digest(token),
            f"sess_{secrets.token_hex(8)}",
            principal.instance_id,
            now,
            now,
            now + life.session_max,
            None,
        )
        self.store.add_session(row)
        return {
            "session_id": row.session_id,
            "session_token": token,
            "idle_timeout_seconds": life.session_idle,
            "expires_at": row.expires_at,
            "listen_target": self._listen_target(),
        }

    def check_session(self, principal: Principal, token: str | None) -> SessionRow:
        """Validate a session token for the caller and reset its idle window.

        Raises:
            ApiError: 401 ``session_expired`` (missing, unknown, invalidated, idle or too old).
        """
        if not token or not _SESSION_TOKEN_PATTERN.fullmatch(token):
            raise ApiError(401, "session_expired", "no valid session; call initialize()")
        row = self.store.session(_digest(token))
        if row is None or row.instance_id != principal.instance_id:
            raise ApiError(401, "session_expired", "unknown session; call initialize()")
        if row.invalidated is not None:
            raise ApiError(
                401, "session_expired", f"session was invalidated server-side ({row.invalidated})"
            )
        now = self.clock()
        if now >= row.expires_at:
            raise ApiError(401, "session_expired", "session reached its maximum lifetime")
        if now - row.last_used > self.lifetimes.session_idle:
            raise ApiError(401, "session_expired", "session was idle beyond its expiry window")
        self.store.touch_session(row.token_hash, now)
        return row

    def close_session(self, session: SessionRow) -> None:
        """End a session at the client's request."""
        self.store.invalidate_session(session.token_hash, "closed by the client")

    # --- conversations, memories and context ---------------------------------------------

    def _replayed(
        self, principal: Principal, key: str | None, operation: str, request_hash: str
    ) -> dict[str, Any] | None:
        """The stored answer of an earlier request with this idempotency key, if any.

        Raises:
            ApiError: 422 ``invalid_input`` when the key was used for a different request.
        """
        if not key:
            return None
        stored = self.store.idempotent_response(principal.instance_id, key)
        if stored is None:
            return None
        known_operation, known_hash, response = stored
        if known_operation != operation or known_hash != request_hash:
            raise ApiError(422, "invalid_input", "idempotency key reused with a different request")
        replay: dict[str, Any] = json.loads(response)
        return replay

    def _remember(
        self,
        principal: Principal,
        key: str | None,
        operation: str,
        request_hash: str,
        answer: dict[str, Any],
    ) -> dict[str, Any]:
        if key:
            self.store.remember_response(
                principal.instance_id, key, operation, request_hash, json.dumps(answer)
            )
        return answer

    def create_conversation(
        self, principal: Principal, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Create a conversation for the caller's instance (once per idempotency key)."""
        replay = self._replayed(principal, idempotency_key, "conversation", "")
        if replay is not None:
            return replay
        conversation_id = f"conv_{secrets.token_hex(8)}"
        self.store.add_conversation(conversation_id, principal.instance_id, self.clock())
        return self._remember(
            principal, idempotency_key, "conversation", "", {"conversation_id": conversation_id}
        )

    def _conversation(self, principal: Principal, conversation_id: object) -> str:
        if not isinstance(conversation_id, str) or not _CONVERSATION_PATTERN.fullmatch(
            conversation_id
        ):
            raise _bad_conversation("conversation id is malformed")
        row = self.store.conversation(conversation_id)
        if row is None or row.instance_id != principal.instance_id:
            raise _bad_conversation("conversation does not exist")
        if row.deleted:
            raise _bad_conversation("conversation was deleted")
        return conversation_id

    def delete_conversation(self, principal: Principal, conversation_id: str) -> dict[str, Any]:
        """Delete a conversation and its memories.

        Raises:
            ApiError: 404 ``invalid_conversation_id``.
        """
        self._conversation(principal, conversation_id)
        self.store.delete_conversation(conversation_id)
        return {"conversation_id": conversation_id, "deleted": True}

    def _subject(
        self, principal: Principal, user_id: object, conversation_id: object
    ) -> tuple[str | None, str | None]:
        if (user_id is None) == (conversation_id is None):
            raise _invalid("exactly one of user_id or conversation_id is required")
        if user_id is not None:
            if (
                not isinstance(user_id, str)
                or not user_id
                or len(user_id) > _MAX_USER_ID
                or not user_id.isprintable()
            ):
                raise _invalid(f"user_id must be 1-{_MAX_USER_ID} printable characters")
            return user_id, None
        return None, self._conversation(principal, conversation_id)

    def ingest(
        self, principal: Principal, body: Mapping[str, Any], idempotency_key: str | None
    ) -> dict[str, Any]:
        """Store memories for a user or a conversation (replayed for a repeated key).

        Raises:
            ApiError: 400/422 ``invalid_input``; 404 ``invalid_conversation_id``.
        """
        request_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        replay = self._replayed(principal, idempotency_key, "ingest", request_hash)
        if replay is not None:
            return replay
        user_id, conversation_id = self._subject(
            principal, body.get("user_id"), body.get("conversation_id")
        )
        items = body.get("memories")
        if not isinstance(items, list) or not 1 <= len(items) <= _MAX_MEMORIES:
            raise _invalid(f"memories must be a list of 1-{_MAX_MEMORIES} items")
        now = self.clock()
        rows = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise _invalid(f"memories[{index}] must be an object")
            content = item.get("content")
            if not isinstance(content, str) or not content.strip() or len(content) > _MAX_CONTENT:
                raise _invalid(f"memories[{index}].content must be 1-{_MAX_CONTENT} characters")
            metadata = item.get("metadata", {})
            if not isinstance(metadata, dict) or len(json.dumps(metadata)) > _MAX_METADATA:
                raise _invalid(
                    f"memories[{index}].metadata must be an object under {_MAX_METADATA} bytes"
                )
            rows.append(
                MemoryRow(
                    f"mem_{secrets.token_hex(8)}", user_id, conversation_id, content, metadata, now
                )
            )
        self.store.add_memories(principal.instance_id, rows)
        answer: dict[str, Any] = {"memory_ids": [r.memory_id for r in rows], "ingested": len(rows)}
        self._remember(principal, idempotency_key, "ingest", request_hash, answer)
        self.publish(
            principal.instance_id,
            "memory_ingested",
            f"{len(rows)} memories ingested",
            conversation_id=conversation_id or "",
            user_id=user_id or "",
        )
        return answer

    def context(
        self,
        principal: Principal,
        *,
        user_id: str | None,
        conversation_id: str | None,
        limit: str | None,
    ) -> dict[str, Any]:
        """The stored memories of a user or conversation (newest ``limit``, oldest first).

        Raises:
            ApiError: 400 ``invalid_input``; 404 ``invalid_conversation_id``; 404
                ``context_not_found`` when nothing is stored.
        """
        user, conversation = self._subject(principal, user_id, conversation_id)
        count = _DEFAULT_CONTEXT_LIMIT
        if limit is not None:
            if not limit.isdigit() or not 1 <= int(limit) <= _MAX_CONTEXT_LIMIT:
                raise _invalid(f"limit must be an integer from 1 to {_MAX_CONTEXT_LIMIT}")
            count = int(limit)
        rows = self.store.memories(
            principal.instance_id, user_id=user, conversation_id=conversation, limit=count
        )
        if not rows:
            raise ApiError(
                404, "context_not_found", "no memories are stored for this user or conversation"
            )
        return {
            "user_id": user,
            "conversation_id": conversation,
            "memories": [
                {
                    "memory_id": r.memory_id,
                    "content": r.content,
                    "metadata": r.metadata,
                    "created_at": r.created_at,
                }
                for r in rows
            ],
        }

    def forget(
        self, principal: Principal, *, user_id: str | None, conversation_id: str | None
    ) -> dict[str, Any]:
        """Delete the memories of a user or conversation.

        Raises:
            ApiError: 400 ``invalid_input``; 404 ``invalid_conversation_id``.
        """
        user, conversation = self._subject(principal, user_id, conversation_id)
        deleted = self.store.forget(
            principal.instance_id, user_id=user, conversation_id=conversation
        )
        return {"deleted": deleted}

    # --- listening stream ----------------------------------------------------------------

    def publish(
        self,
        instance_id: str,
        kind: str,
        content: str,
        *,
        conversation_id: str = "",
        user_id: str = "",
    ) -> EventRow:
        """Append an event to an instance's stream and hand it to open streams."""
        event = self.store.add_event(
            f"evt_{secrets.token_hex(8)}",
            instance_id,
            kind,
            conversation_id,
            user_id,
            content,
            self.clock(),
        )
        self.on_event(event)
        return event
