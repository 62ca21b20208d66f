"""The Synap client's state and its multi-step procedures, shared by the sync and async clients.

A procedure (bootstrap, renewal, opening a session, ``initialize``) is written once, as a
generator that *yields* each :class:`~synapse_sdk.clients.synap._protocol.Request` it needs and
receives the answer's ``data`` (or has the call's :class:`~synapse_sdk.exceptions.SynapError`
thrown in at the ``yield``). The sync client drives it through the SDK's HTTP transport, the async
one through its asyncio twin; neither duplicates the rules. Retries happen inside each yielded
request, under the SDK's retry policy.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from synapse_sdk.clients._transport import ClientCertificate, ErrorContext
from synapse_sdk.clients.synap._credentials import Credentials, CredentialStore, new_key_and_csr
from synapse_sdk.clients.synap._protocol import SESSION_HEADER, Request, load_trust_root
from synapse_sdk.clients.synap._types import (
    CertificateStatus,
    Context,
    IngestResult,
    Memory,
    SessionInfo,
)
from synapse_sdk.config import SDKConfig
from synapse_sdk.exceptions import (
    AuthenticationError,
    BootstrapError,
    CertificateExpiredError,
    CertificateRenewalError,
    InvalidInstanceIdError,
    SynapError,
    validate_instance_id,
)

__all__ = [
    "DEFAULT_CREDENTIALS_DIR",
    "Finished",
    "Flow",
    "SessionState",
    "SynapCore",
    "advance",
    "parse_context",
    "parse_conversation",
    "parse_ingest",
]

logger = logging.getLogger("synapse_sdk.clients.synap")

T = TypeVar("T")
#: A procedure: yields requests, receives their ``data``, returns its result.
Flow = Generator[Request, dict[str, Any], T]

#: Where credentials live when neither the client nor ``SDKConfig.credentials_dir`` says.
DEFAULT_CREDENTIALS_DIR = Path("~/.synapse/synap")

_TARGET = re.compile(r"[A-Za-z0-9.\-\[\]:]+:\d{1,5}")

#: Errors ``initialize()`` lets through unchanged: each already names the init problem.
#: ``AuthenticationError`` includes the bootstrap-key and certificate errors.
_INIT_PASS_THROUGH = (AuthenticationError, BootstrapError, InvalidInstanceIdError)
#: Errors certificate renewal lets through unchanged (the rest become CertificateRenewalError).
_RENEW_PASS_THROUGH = (AuthenticationError, InvalidInstanceIdError)


@dataclass(frozen=True, slots=True)
class Finished(Generic[T]):
    """A procedure's result, once it stopped yielding requests."""

    value: T


def advance(
    flow: Flow[T], answer: dict[str, Any] | None, error: SynapError | None
) -> Request | Finished[T]:
    """Resume ``flow`` with a request's ``answer`` (or throw its ``error`` in at the ``yield``)
    and return the next request, or its result. Errors the flow raises propagate."""
    try:
        if error is not None:
            return flow.throw(error)
        return flow.send(answer)  # type: ignore[arg-type]  # None primes the generator
    except StopIteration as done:
        return Finished(done.value)


@dataclass(frozen=True, slots=True)
class SessionState:
    """The open session; ``token`` is a secret (kept out of ``repr``)."""

    session_id: str
    token: str = field(repr=False)
    idle_timeout_seconds: float
    expires_at: float
    listen_target: str


def _wrap(cls: type[SynapError], message: str, cause: SynapError) -> SynapError:
    """A ``cls`` error explaining ``cause`` (raised ``from`` it), keeping its history and id."""
    error = cls(
        f"{message}: {type(cause).__name__}: {cause.message}", correlation_id=cause.correlation_id
    )
    error.attempts = cause.attempts
    return error


def _validate_url(url: object) -> str:
    if not isinstance(url, str):
        raise ValueError("a Synap URL is required: pass url= or set SDKConfig.backend_url")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"the Synap URL must be https://host[:port], got {url!r}")
    return url.rstrip("/")


class SynapCore:
    """Configuration, credentials and session of one client, and the procedures over them.

    Raises (constructor):
        InvalidInstanceIdError: ``instance_id`` does not match ``inst_<hex16>``.
        ValueError: no https URL; a trust root without a PEM certificate.
        TypeError: an argument of the wrong type.
    """

    def __init__(
        self,
        instance_id: object,
        *,
        config: SDKConfig | None,
        url: str | None,
        trust_root: bytes | str | Path | None,
        credentials_dir: str | Path | None,
        clock: Callable[[], float],
    ) -> None:
        self.instance_id = validate_instance_id(instance_id)
        if config is not None and not isinstance(config, SDKConfig):
            raise TypeError(f"config must be an SDKConfig, not {type(config).__name__}")
        self.config = config if config is not None else SDKConfig()
        self.url = _validate_url(url if url is not None else self.config.backend_url)
        self.trust_root = load_trust_root(trust_root)
        directory = credentials_dir if credentials_dir is not None else self.config.credentials_dir
        root = Path(directory) if directory is not None else DEFAULT_CREDENTIALS_DIR
        self.store = CredentialStore(root.expanduser(), self.instance_id)
        if not callable(clock):
            raise TypeError("clock must be a callable returning epoch seconds")
        self.clock = clock
        self.credentials: Credentials | None = None
        self.session: SessionState | None = None

    def __repr__(self) -> str:
        root = str(self.store.root)
        return f"instance_id={self.instance_id!r}, url={self.url!r}, credentials_dir={root!r}"

    # --- state checks --------------------------------------------------------------------

    def require_session(self) -> SessionState:
        """The open session.

        Raises:
            RuntimeError: ``initialize()`` has not succeeded yet (a usage error).
        """
        if self.session is None or self.credentials is None:
            raise RuntimeError("the Synap client is not initialized; call initialize() first")
        return self.session

    def certificate_current(self) -> bool:
        """Whether the certificate needs no renewal now (the fast path of every call)."""
        creds = self.credentials
        return creds is not None and creds.meta.state(self.clock()) == "valid"

    def certificate_status(self) -> CertificateStatus:
        """The stored certificate's lifecycle status.

        Raises:
            AuthenticationError: no usable credentials are stored.
        """
        creds = self.credentials if self.credentials is not None else self.store.load()
        return CertificateStatus.of(creds.meta, self.clock())

    def certificate(self, request: Request) -> ClientCertificate | None:
        """The TLS client certificate ``request`` presents: none for bootstrap, the current
        certificate for everything else."""
        if request.auth == "none":
            return None
        creds = self.credentials
        assert creds is not None, "credentials are loaded before any authenticated request"
        return ClientCertificate(creds.meta.serial, creds.identity_file)

    def call_options(self, request: Request) -> dict[str, Any]:
        """Keyword arguments of ``Transport.request`` for ``request`` (the same on every retry).

        Raises:
            RuntimeError: a session call before ``initialize()`` succeeded.
        """
        headers = None
        if request.auth == "session":
            headers = {SESSION_HEADER: self.require_session().token}
        return {
            "method": request.method,
            "path": request.path,
            "params": request.params,
            "json": request.body,
            "correlation_id": request.correlation_id,
            "idempotency_key": request.idempotency_key,
            "headers": headers,
            "certificate": self.certificate(request),
            "context": ErrorContext(
                request.operation,
                {"instance_id": self.instance_id, "conversation_id": request.conversation_id},
            ),
        }

    # --- procedures ----------------------------------------------------------------------

    def initialize_flow(self, bootstrap_token: str | None) -> Flow[SessionInfo]:
        """Bootstrap (with a token) or load stored credentials, renew if due, open a session.

        Raises:
            BootstrapKeyInvalidError, InvalidInstanceIdError, AuthenticationError,
            CertificateExpiredError, CertificateRenewalError: as named.
            BootstrapError: anything else, including Synap being unreachable (chained).
        """
        if bootstrap_token is not None and not isinstance(bootstrap_token, str):
            raise TypeError("bootstrap_token must be a string")
        try:
            if bootstrap_token is not None:
                self.credentials = yield from self._bootstrap_flow(bootstrap_token)
            else:
                self.credentials = self.store.load()
            yield from self.renew_flow(force=False)
            return (yield from self._open_session_flow())
        except _INIT_PASS_THROUGH:
            raise
        except SynapError as exc:
            raise _wrap(BootstrapError, f"initialize() failed for {self.instance_id}", exc) from exc

    def _bootstrap_flow(self, token: str) -> Flow[Credentials]:
        key_pem, csr_pem = new_key_and_csr(self.instance_id)
        data = yield Request(
            "bootstrap",
            "POST",
            "/v1/bootstrap",
            "none",
            body={
                "instance_id": self.instance_id,
                "bootstrap_token": token,
                "csr": csr_pem.decode(),
            },
            # The emulator (like Synap Cloud) replays the answer for the same key and CSR, so a
            # retry after a lost response does not find the single-use token consumed.
            idempotency_key=uuid.uuid4().hex,
        )
        try:
            creds = self.store.save(key_pem, data)
        except ValueError as exc:
            raise BootstrapError(
                f"the certificate issued for {self.instance_id} is unusable: {exc}"
            ) from exc
        except OSError as exc:
            raise BootstrapError(
                f"cannot store credentials in {self.store.directory} ({type(exc).__name__})"
            ) from exc
        self.session = None
        logger.info(
            "synap.bootstrap.completed",
            extra={"instance_id": self.instance_id, "serial": creds.meta.serial},
        )
        return creds

    def renew_flow(self, *, force: bool) -> Flow[Credentials]:
        """Renew the certificate if less than 30 % of its TTL is left (or ``force``).

        Raises:
            CertificateExpiredError: past the TTL plus the grace period (a fresh bootstrap is
                the only way back), whether the client or the authority finds it.
            CertificateRenewalError: the authority is unreachable, refuses (binding revoked) or
                the new certificate cannot be stored.
            AuthenticationError: the credentials were rotated or are corrupted.
        """
        creds = self.credentials if self.credentials is not None else self.store.load()
        self.credentials = creds
        now = self.clock()
        state = creds.meta.state(now)
        if state == "expired":
            raise CertificateExpiredError(
                f"the client certificate of {self.instance_id} expired at "
                f"{creds.meta.expires_at:.0f} and its grace period ended at "
                f"{creds.meta.grace_ends_at:.0f}; initialize with a new bootstrap token"
            )
        if state == "valid" and not force:
            return creds
        key_pem, csr_pem = new_key_and_csr(self.instance_id)
        try:
            data = yield Request(
                "renew",
                "POST",
                "/v1/certificates/renew",
                "certificate",
                body={"csr": csr_pem.decode()},
            )
        except _RENEW_PASS_THROUGH:
            raise
        except SynapError as exc:
            raise _wrap(
                CertificateRenewalError,
                f"renewing the certificate of {self.instance_id} failed",
                exc,
            ) from exc
        try:
            renewed = self.store.save(key_pem, data)
        except (ValueError, OSError) as exc:
            raise CertificateRenewalError(
                f"the renewed certificate of {self.instance_id} cannot be used or stored "
                f"({type(exc).__name__})"
            ) from exc
        logger.info(
            "synap.certificate.renewed",
            extra={
                "instance_id": self.instance_id,
                "serial": renewed.meta.serial,
                "previous_state": state,
            },
        )
        self.credentials = renewed
        return renewed

    def _open_session_flow(self) -> Flow[SessionInfo]:
        data = yield Request("session", "POST", "/v1/sessions", "certificate")
        try:
            token, session_id = data["session_token"], data["session_id"]
            idle, expires = float(data["idle_timeout_seconds"]), float(data["expires_at"])
            target = data["listen_target"]
            if not isinstance(token, str) or not isinstance(session_id, str):
                raise TypeError("session id/token")
            if not isinstance(target, str) or not _TARGET.fullmatch(target):
                raise ValueError("listen target")
        except (KeyError, TypeError, ValueError) as exc:
            raise BootstrapError(
                f"Synap answered the session request of {self.instance_id} with a malformed body"
            ) from exc
        self.session = SessionState(session_id, token, idle, expires, target)
        assert self.credentials is not None
        logger.info(
            "synap.session.opened",
            extra={"instance_id": self.instance_id, "session_id": session_id},
        )
        return SessionInfo(
            self.instance_id,
            session_id,
            idle,
            expires,
            CertificateStatus.of(self.credentials.meta, self.clock()),
        )

    # --- single requests and their answers -----------------------------------------------

    def conversation_request(self) -> Request:
        """Create a conversation; the idempotency key makes a retried create return the same
        conversation instead of a second one."""
        return Request(
            "conversation",
            "POST",
            "/v1/conversations",
            "session",
            idempotency_key=uuid.uuid4().hex,
        )

    def delete_conversation_request(self, conversation_id: str) -> Request:
        """Delete a conversation (idempotent: deleting twice is refused, never duplicated)."""
        _check_id("conversation_id", conversation_id)
        return Request(
            "conversation",
            "DELETE",
            f"/v1/conversations/{conversation_id}",
            "session",
            conversation_id=conversation_id,
        )

    def ingest_request(
        self,
        memories: Iterable[str | Mapping[str, Any]],
        user_id: str | None,
        conversation_id: str | None,
    ) -> Request:
        """Store memories; carries an idempotency key, so it is retried safely.

        Raises:
            TypeError: ``memories`` is a bare string/bytes, or an item is neither a string nor a
                mapping, or the payload is not JSON-serialisable.
        """
        if isinstance(memories, str | bytes) or not isinstance(memories, Iterable):
            raise TypeError("memories must be an iterable of strings or mappings")
        items: list[dict[str, Any]] = []
        for item in memories:
            if isinstance(item, str):
                items.append({"content": item})
            elif isinstance(item, Mapping):
                items.append(dict(item))
            else:
                raise TypeError(
                    f"a memory must be a string or a mapping, not {type(item).__name__}"
                )
        body: dict[str, Any] = {"memories": items}
        if user_id is not None:
            body["user_id"] = user_id
        if conversation_id is not None:
            body["conversation_id"] = conversation_id
        json.dumps(body)  # TypeError now, not inside the transport
        return Request(
            "ingest",
            "POST",
            "/v1/memories",
            "session",
            body=body,
            idempotency_key=uuid.uuid4().hex,
            conversation_id=conversation_id,
        )

    def context_request(
        self, user_id: str | None, conversation_id: str | None, limit: int | None
    ) -> Request:
        """Fetch the context of a user or a conversation."""
        params: dict[str, str] = {}
        if user_id is not None:
            params["user_id"] = _check_id("user_id", user_id)
        if conversation_id is not None:
            params["conversation_id"] = _check_id("conversation_id", conversation_id)
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError("limit must be an integer")
            params["limit"] = str(limit)
        return Request(
            "context",
            "GET",
            "/v1/context",
            "session",
            params=params,
            conversation_id=conversation_id,
        )

    def forget_request(self, user_id: str | None, conversation_id: str | None) -> Request:
        """Delete the memories of a user or a conversation."""
        params: dict[str, str] = {}
        if user_id is not None:
            params["user_id"] = _check_id("user_id", user_id)
        if conversation_id is not None:
            params["conversation_id"] = _check_id("conversation_id", conversation_id)
        return Request(
            "forget",
            "DELETE",
            "/v1/memories",
            "session",
            params=params,
            conversation_id=conversation_id,
        )

    def close_session_request(self) -> Request:
        """End the session server-side."""
        return Request("session", "DELETE", "/v1/sessions/current", "session")


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    return value


def parse_context(data: Mapping[str, Any]) -> Context:
    """A :class:`Context` from a context answer."""
    memories = tuple(
        Memory(
            str(m["memory_id"]),
            str(m["content"]),
            dict(m.get("metadata") or {}),
            float(m.get("created_at", 0.0)),
        )
        for m in data.get("memories", ())
    )
    return Context(data.get("user_id"), data.get("conversation_id"), memories)


def parse_conversation(data: Mapping[str, Any]) -> str:
    """The id of a created conversation."""
    conversation_id = data["conversation_id"]
    if not isinstance(conversation_id, str):
        raise TypeError("conversation_id is not a string")
    return conversation_id


def parse_ingest(data: Mapping[str, Any]) -> IngestResult:
    """An :class:`IngestResult` from an ingest answer."""
    return IngestResult(tuple(str(i) for i in data.get("memory_ids", ())))
