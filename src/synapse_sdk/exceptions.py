"""The synapse-sdk error tree.

Every error the SDK raises on purpose derives from :class:`SynapError`. The two branches decide
what the retry engine does by default: transient errors are retried, permanent ones surface at
once. ``BackendError`` marks an error the backend itself answered with; an error raised for a
backend response is *both* a ``BackendError`` and its semantic class (a 429 is a
``BackendRateLimitError``, caught by ``except RateLimitError`` and by ``except BackendError``).

::

    Exception
    └── SynapError                                   code="synap_error"
        ├── SynapTransientError                      retried by default
        │   ├── NetworkTimeoutError                  network_timeout
        │   ├── RateLimitError                       rate_limited (retry_after_seconds)
        │   ├── ServiceUnavailableError              service_unavailable
        │   └── AgentUnavailableError                agent_unavailable
        ├── SynapPermanentError                      never retried by default
        │   ├── InvalidInputError                    invalid_input
        │   │   ├── InvalidInstanceIdError           invalid_instance_id (instance_id)
        │   │   └── InvalidConversationIdError       invalid_conversation_id (conversation_id)
        │   ├── AuthenticationError                  authentication_failed
        │   │   ├── CertificateExpiredError          certificate_expired
        │   │   ├── CertificateRenewalError          certificate_renewal_failed
        │   │   └── BootstrapKeyInvalidError         bootstrap_key_invalid
        │   ├── BootstrapError                       bootstrap_failed
        │   ├── ContextNotFoundError                 context_not_found
        │   ├── SessionExpiredError                  session_expired
        │   ├── ListeningAlreadyActiveError          listening_already_active
        │   └── ListeningNotActiveError              listening_not_active
        └── BackendError                             backend_error (status_code, error_code, ...)
            └── Backend<Semantic>Error               both BackendError and <Semantic>Error,
                                                     e.g. BackendRateLimitError

Choices where the seed page is silent or contradicts itself (see ``docs/errors.md``):

* ``AgentUnavailableError`` sits on the transient branch, as the seed's reference table says
  ("Transient, Retried: Yes"), although the seed's prose once lists it under the permanent branch.
* ``InvalidInstanceIdError`` and ``InvalidConversationIdError`` are kinds of invalid input, so
  ``except InvalidInputError`` catches them; both remain permanent.
* ``CertificateExpiredError``, ``CertificateRenewalError`` and ``BootstrapKeyInvalidError`` are
  authentication failures, as in the real Synap SDK's tree, so ``except AuthenticationError``
  catches them; they stay permanent and are never retried by default.
* Misusing the SDK (bad argument types, wrong call order the seed does not name) raises builtin
  ``ValueError``/``TypeError``, outside this tree, so ``except SynapError`` never hides a bug.

Every class has a stable machine-readable ``code``, accepts ``correlation_id=`` as a keyword,
has a readable ``repr`` and survives ``pickle`` (actions may run in other processes).

Which class an answer becomes is declared on the classes themselves: ``http_statuses``,
``http_status_class`` (a whole status class such as 5xx), ``grpc_statuses``, ``backend_codes``
and ``operation_codes``. Defining a class registers its declarations in :data:`registry`
(``__init_subclass__``, as google-api-core does with its metaclass), which answers "which class
for this answer" for the HTTP transport and the listening stream; no other table picks a class.
A second class claiming the same status or code is a ``TypeError`` at definition time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from synapse_sdk.envelopes import ErrorEnvelope, ItemId, find_envelope

__all__ = [
    "INSTANCE_ID_PATTERN",
    "AgentUnavailableError",
    "AnswerMatch",
    "AttemptRecord",
    "AuthenticationError",
    "BackendAgentUnavailableError",
    "BackendAuthenticationError",
    "BackendBootstrapError",
    "BackendBootstrapKeyInvalidError",
    "BackendCertificateExpiredError",
    "BackendCertificateRenewalError",
    "BackendContextNotFoundError",
    "BackendError",
    "BackendInvalidConversationIdError",
    "BackendInvalidInputError",
    "BackendInvalidInstanceIdError",
    "BackendRateLimitError",
    "BackendServiceUnavailableError",
    "BackendSessionExpiredError",
    "BootstrapError",
    "BootstrapKeyInvalidError",
    "CertificateExpiredError",
    "CertificateRenewalError",
    "ContextNotFoundError",
    "ErrorRegistry",
    "InvalidConversationIdError",
    "InvalidInputError",
    "InvalidInstanceIdError",
    "ListeningAlreadyActiveError",
    "ListeningNotActiveError",
    "NetworkTimeoutError",
    "RateLimitError",
    "ServiceUnavailableError",
    "SessionExpiredError",
    "SynapError",
    "SynapPermanentError",
    "SynapTransientError",
    "backend_error_class",
    "build_error",
    "registry",
    "validate_instance_id",
]

#: The ``inst_<hex16>`` instance id format.
INSTANCE_ID_PATTERN = re.compile(r"inst_[0-9a-f]{16}")

_MAX_ID_IN_MESSAGE = 64

SynapErrorT = TypeVar("SynapErrorT", bound="SynapError")


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One finished attempt of a retried call, as the retry engine attaches it to an error.

    ``wait`` is the pause planned after this attempt (``None`` for the attempt that ended the
    call); ``elapsed`` is how long the attempt itself ran, in seconds.
    """

    number: int
    error_type: str
    error_code: str | None
    elapsed: float
    wait: float | None


@dataclass(frozen=True, slots=True)
class AnswerMatch:
    """The class an HTTP error answer stands for, and whether the request may have been applied.

    ``error`` is the semantic class (``RateLimitError``) or plain ``BackendError``;
    :func:`backend_error_class` gives the class to raise for a backend answer.
    """

    error: type[SynapError]
    #: True when only the status class matched (500, 502, 504, other 5xx): the server failed
    #: part-way and the request may have been applied.
    outcome_unknown: bool


class ErrorRegistry:
    """Answer → error class, filled by the classes' own declarations as they are defined.

    Look-ups, most specific first: a backend code the answered operation gives its own meaning
    (``operation_codes``), a backend code (``backend_codes``), the exact status
    (``http_statuses`` / ``grpc_statuses``), the status class (``http_status_class``).
    """

    def __init__(self) -> None:
        self._http: dict[int, type[SynapError]] = {}
        self._http_class: dict[int, type[SynapError]] = {}
        self._grpc: dict[str, type[SynapError]] = {}
        self._codes: dict[str, type[SynapError]] = {}
        self._operation_codes: dict[tuple[str, str], type[SynapError]] = {}
        self._backend_forms: dict[type[SynapError], type[BackendError]] = {}

    def register(self, cls: type[SynapError]) -> None:
        """Record what ``cls`` itself declares (inherited declarations are its parents').

        Raises:
            TypeError: another class already claims one of the statuses or codes.
        """
        own = vars(cls)
        status_class = own.get("http_status_class")
        self._claim(
            cls,
            (self._http, own.get("http_statuses", ()), "HTTP status"),
            (self._http_class, () if status_class is None else (status_class,), "status class"),
            (self._grpc, own.get("grpc_statuses", ()), "gRPC status"),
            (self._codes, own.get("backend_codes", ()), "backend code"),
            (self._operation_codes, own.get("operation_codes", ()), "operation code"),
        )

    def register_backend_form(self, semantic: type[SynapError], cls: type[BackendError]) -> None:
        """Record ``cls`` as the class raised when the backend answers with ``semantic``."""
        self._claim(cls, (self._backend_forms, (semantic,), "backend form of"))

    @staticmethod
    def _claim(cls: type, *claims: tuple[dict[Any, Any], Iterable[Any], str]) -> None:
        """Enter every claim of ``cls``, or none if one is already another class's."""
        for table, keys, what in claims:
            for key in keys:
                holder = table.get(key)
                if holder is not None and holder is not cls:
                    raise TypeError(
                        f"{cls.__name__} and {holder.__name__} both claim the {what} {key!r}"
                    )
        for table, keys, _ in claims:
            table.update(dict.fromkeys(keys, cls))

    def for_http(
        self, status: int, code: str | None = None, operation: str | None = None
    ) -> AnswerMatch:
        """The class an HTTP error answer ``status`` (with the envelope's ``code``, to the
        call ``operation``) stands for; plain ``BackendError`` when nothing claims it."""
        exact = self._http.get(status)
        by_class = None if exact is not None else self._http_class.get(status // 100)
        chosen = self.for_code(code, operation) or exact or by_class or BackendError
        return AnswerMatch(chosen, by_class is not None)

    def for_grpc(self, status_name: str, code: str | None = None) -> type[SynapError] | None:
        """The class a gRPC status (``StatusCode.X.name``) with a details ``code`` stands for."""
        return self.for_code(code) or self._grpc.get(status_name)

    def for_code(self, code: str | None, operation: str | None = None) -> type[SynapError] | None:
        """The class a backend error code stands for (in the answer to ``operation``)."""
        if code is None:
            return None
        if operation is not None:
            scoped = self._operation_codes.get((operation, code))
            if scoped is not None:
                return scoped
        return self._codes.get(code)

    def backend_form(self, semantic: type[SynapError] | None) -> type[BackendError]:
        """The class that is both ``BackendError`` and ``semantic`` (plain ``BackendError``
        when ``semantic`` is None or has no backend-reported form)."""
        if semantic is None:
            return BackendError
        return self._backend_forms.get(semantic, BackendError)


#: The one registry every class registers in as it is defined.
registry = ErrorRegistry()


def _rebuild(cls: type[SynapError], message: str, state: dict[str, Any]) -> SynapError:
    """Recreate an error on unpickling without calling its (subclass-specific) ``__init__``."""
    obj = cls.__new__(cls)
    Exception.__init__(obj, message)
    obj.__dict__.update(state)
    return obj


class SynapError(Exception):
    """Base class of every error the SDK raises on purpose."""

    code: ClassVar[str] = "synap_error"
    #: Whether the outcome of the failed operation is unknown (the request may have been applied).
    outcome_unknown: bool = False

    # What answers this class stands for (see ErrorRegistry); each class declares its own.
    #: HTTP error statuses.
    http_statuses: ClassVar[tuple[int, ...]] = ()
    #: A status class (5 for 5xx) for statuses no class claims exactly; their outcome is unknown.
    http_status_class: ClassVar[int | None] = None
    #: gRPC status names (``StatusCode.X.name``).
    grpc_statuses: ClassVar[tuple[str, ...]] = ()
    #: Backend error codes (the envelope's ``code``), whatever the status.
    backend_codes: ClassVar[tuple[str, ...]] = ()
    #: ``(operation, code)``: a code that means this class in the answer to one operation only.
    operation_codes: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: The id the error is about, passed first to the constructor (``instance_id``), if any.
    subject: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        registry.register(cls)

    def __init__(self, message: str = "", *, correlation_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.correlation_id = correlation_id
        self.attempts: tuple[AttemptRecord, ...] = ()

    def __str__(self) -> str:
        if self.correlation_id:
            return f"{self.message} (correlation_id={self.correlation_id})"
        return self.message

    def _repr_fields(self) -> list[tuple[str, Any]]:
        """Keyword fields shown by ``repr`` besides the message, omitting unset ones."""
        return [("correlation_id", self.correlation_id)]

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        seen: set[str] = set()
        for key, value in self._repr_fields():
            if key in seen or value is None or value is False or value == ():
                continue
            seen.add(key)
            parts.append(f"{key}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


class SynapTransientError(SynapError):
    """A temporary condition that usually resolves by itself; retried by default."""

    code: ClassVar[str] = "transient_error"

    def __init__(
        self,
        message: str = "",
        *,
        correlation_id: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, correlation_id=correlation_id)
        if outcome_unknown:
            self.outcome_unknown = True

    def _repr_fields(self) -> list[tuple[str, Any]]:
        return [*super()._repr_fields(), ("outcome_unknown", self.outcome_unknown)]


class SynapPermanentError(SynapError):
    """A condition retrying will not fix; it needs a change of code, configuration or data."""

    code: ClassVar[str] = "permanent_error"


# --- transient -------------------------------------------------------------------------------


class NetworkTimeoutError(SynapTransientError):
    """A network request to Synap Cloud timed out before completing."""

    code: ClassVar[str] = "network_timeout"
    grpc_statuses: ClassVar[tuple[str, ...]] = ("DEADLINE_EXCEEDED",)


def _check_retry_after(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"retry_after_seconds must be a number or None, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"retry_after_seconds must be finite and >= 0, got {value!r}")
    return float(value)


class RateLimitError(SynapTransientError):
    """The API rate limit was exceeded; ``retry_after_seconds`` says how long to wait."""

    code: ClassVar[str] = "rate_limited"
    http_statuses: ClassVar[tuple[int, ...]] = (429,)
    grpc_statuses: ClassVar[tuple[str, ...]] = ("RESOURCE_EXHAUSTED",)
    backend_codes: ClassVar[tuple[str, ...]] = ("rate_limited",)

    def __init__(
        self,
        message: str = "",
        *,
        retry_after_seconds: float | None = None,
        correlation_id: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, correlation_id=correlation_id, outcome_unknown=outcome_unknown)
        self.retry_after_seconds = _check_retry_after(retry_after_seconds)

    def _repr_fields(self) -> list[tuple[str, Any]]:
        return [*super()._repr_fields(), ("retry_after_seconds", self.retry_after_seconds)]


class ServiceUnavailableError(SynapTransientError):
    """Synap Cloud is temporarily unavailable (maintenance, deployment or an outage)."""

    code: ClassVar[str] = "service_unavailable"
    #: 408: the server gave up waiting for the request (outcome known); other 5xx: see the
    #: transport's table (501 and 505 are plain ``BackendError``).
    http_statuses: ClassVar[tuple[int, ...]] = (408, 503)
    http_status_class: ClassVar[int | None] = 5
    grpc_statuses: ClassVar[tuple[str, ...]] = ("UNAVAILABLE",)
    backend_codes: ClassVar[tuple[str, ...]] = ("service_unavailable", "stream_dropped")


class AgentUnavailableError(SynapTransientError):
    """The Synap agent backing the instance is temporarily unavailable (restarting or busy)."""

    code: ClassVar[str] = "agent_unavailable"
    backend_codes: ClassVar[tuple[str, ...]] = ("agent_unavailable",)


# --- permanent -------------------------------------------------------------------------------


class InvalidInputError(SynapPermanentError):
    """The request contains invalid parameters or data that fails validation."""

    code: ClassVar[str] = "invalid_input"
    #: 404: the addressed resource does not exist, the request named something wrong.
    http_statuses: ClassVar[tuple[int, ...]] = (400, 404, 422)
    grpc_statuses: ClassVar[tuple[str, ...]] = ("INVALID_ARGUMENT", "NOT_FOUND")
    #: Ours, then the v2 API's (``ids_limit_exceeded``: a bulk request over 200 ids).
    backend_codes: ClassVar[tuple[str, ...]] = (
        "invalid_input",
        "VALIDATION_ERROR",
        "ids_limit_exceeded",
        "NOT_FOUND",
        "INVALID_TRANSITION",
        "BULK_SIZE_EXCEEDED",
    )


def _shown_id(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _MAX_ID_IN_MESSAGE:
        text = text[:_MAX_ID_IN_MESSAGE] + "…"
    return repr(text) if isinstance(value, str) else text


class InvalidInstanceIdError(InvalidInputError):
    """The ``instance_id`` does not exist or does not match the ``inst_<hex16>`` format."""

    code: ClassVar[str] = "invalid_instance_id"
    backend_codes: ClassVar[tuple[str, ...]] = ("invalid_instance_id",)
    subject: ClassVar[str | None] = "instance_id"

    def __init__(
        self,
        instance_id: object,
        message: str | None = None,
        *,
        correlation_id: str | None = None,
    ) -> None:
        if message is None:
            if isinstance(instance_id, str) and INSTANCE_ID_PATTERN.fullmatch(instance_id):
                message = f"instance {_shown_id(instance_id)} does not exist or is deactivated"
            else:
                message = (
                    f"invalid instance id {_shown_id(instance_id)}: "
                    "expected 'inst_' followed by 16 lowercase hex digits"
                )
        super().__init__(message, correlation_id=correlation_id)
        self.instance_id = instance_id

    def _repr_fields(self) -> list[tuple[str, Any]]:
        return [("instance_id", self.instance_id), *super()._repr_fields()]


def validate_instance_id(instance_id: object) -> str:
    """Return ``instance_id`` if it matches ``inst_<hex16>``.

    Raises:
        InvalidInstanceIdError: the value is not a string of that format.
    """
    if isinstance(instance_id, str) and INSTANCE_ID_PATTERN.fullmatch(instance_id):
        return instance_id
    raise InvalidInstanceIdError(instance_id)


class InvalidConversationIdError(InvalidInputError):
    """The ``conversation_id`` does not exist or cannot be found."""

    code: ClassVar[str] = "invalid_conversation_id"
    backend_codes: ClassVar[tuple[str, ...]] = ("invalid_conversation_id",)
    subject: ClassVar[str | None] = "conversation_id"

    def __init__(
        self,
        conversation_id: object,
        message: str | None = None,
        *,
        correlation_id: str | None = None,
    ) -> None:
        if message is None:
            message = f"conversation {_shown_id(conversation_id)} does not exist or was deleted"
        super().__init__(message, correlation_id=correlation_id)
        self.conversation_id = conversation_id

    def _repr_fields(self) -> list[tuple[str, Any]]:
        return [("conversation_id", self.conversation_id), *super()._repr_fields()]


class AuthenticationError(SynapPermanentError):
    """The SDK cannot authenticate: credentials invalid, revoked, rotated, missing or corrupt."""

    code: ClassVar[str] = "authentication_failed"
    http_statuses: ClassVar[tuple[int, ...]] = (401, 403)
    grpc_statuses: ClassVar[tuple[str, ...]] = ("UNAUTHENTICATED", "PERMISSION_DENIED")
    backend_codes: ClassVar[tuple[str, ...]] = (
        "authentication_failed",
        "client_certificate_required",
        "certificate_unknown",
        "credentials_rotated",
        "binding_revoked",
        # The v2 API's: no or a refused token (401), no or another tenant (403).
        "NOT_AUTHENTICATED",
        "AUTHENTICATION_FAILED",
        "PERMISSION_DENIED",
    )


class CertificateExpiredError(AuthenticationError):
    """The mTLS client certificate expired beyond its TTL plus the 48-hour grace period."""

    code: ClassVar[str] = "certificate_expired"
    backend_codes: ClassVar[tuple[str, ...]] = ("certificate_expired",)


class CertificateRenewalError(AuthenticationError):
    """Renewing an expiring client certificate failed (authority unreachable or binding revoked)."""

    code: ClassVar[str] = "certificate_renewal_failed"
    backend_codes: ClassVar[tuple[str, ...]] = ("certificate_renewal_failed",)
    #: A revoked binding found while renewing is a failed renewal (elsewhere: authentication).
    operation_codes: ClassVar[tuple[tuple[str, str], ...]] = (("renew", "binding_revoked"),)


class BootstrapKeyInvalidError(AuthenticationError):
    """The bootstrap token is invalid, expired, malformed or already consumed."""

    code: ClassVar[str] = "bootstrap_key_invalid"
    backend_codes: ClassVar[tuple[str, ...]] = ("bootstrap_key_invalid",)


class BootstrapError(SynapPermanentError):
    """Initialization failed for a reason other than the bootstrap token itself."""

    code: ClassVar[str] = "bootstrap_failed"
    backend_codes: ClassVar[tuple[str, ...]] = ("bootstrap_failed",)


class ContextNotFoundError(SynapPermanentError):
    """No stored memories exist for the user or conversation; treat it as an empty state."""

    code: ClassVar[str] = "context_not_found"
    backend_codes: ClassVar[tuple[str, ...]] = ("context_not_found",)


class SessionExpiredError(SynapPermanentError):
    """The session expired (idle too long or invalidated server-side) and must be re-established."""

    code: ClassVar[str] = "session_expired"
    backend_codes: ClassVar[tuple[str, ...]] = ("session_expired",)


class ListeningAlreadyActiveError(SynapPermanentError):
    """``listen()`` was called while a listening stream is already active."""

    code: ClassVar[str] = "listening_already_active"


class ListeningNotActiveError(SynapPermanentError):
    """A stream operation such as ``stop_listening()`` was called with no active stream."""

    code: ClassVar[str] = "listening_not_active"


# --- backend ---------------------------------------------------------------------------------


class BackendError(SynapError):
    """The backend answered a request with an error.

    Built from a message alone (``BackendError('bulk fetch failed: {"error": {...}}')``) it finds
    the v2 envelope in that text. Built by the transport it carries ``status_code``,
    ``error_code``, ``detail``, ``details`` (the body's ``[{field, message}]`` as pairs),
    ``failed_ids``, ``retry_after_seconds`` and ``correlation_id``, and
    its ``str()`` contains the envelope JSON so text classification sees it too.
    """

    code: ClassVar[str] = "backend_error"
    #: 501, 505: the server will never support this request; not retried.
    http_statuses: ClassVar[tuple[int, ...]] = (501, 505)

    def __init__(
        self,
        message: str = "",
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        detail: str | None = None,
        failed_ids: Iterable[ItemId] = (),
        failed_codes: Mapping[ItemId, str | None] | None = None,
        retry_after_seconds: float | None = None,
        correlation_id: str | None = None,
        outcome_unknown: bool = False,
        envelope: ErrorEnvelope | None = None,
        details: Iterable[tuple[str, str]] = (),
    ) -> None:
        # Deliberately not super().__init__: in the combined Backend<Semantic>Error classes the
        # next class in the MRO has a different signature; BackendError sets every field itself.
        SynapError.__init__(self, message, correlation_id=correlation_id)
        if envelope is None and error_code is None and message:
            envelope = find_envelope(message)
        failed = tuple(failed_ids)
        codes = dict(failed_codes or {})
        if envelope is not None:
            error_code = error_code if error_code is not None else envelope.code
            detail = detail if detail is not None else envelope.message
            if not failed:
                failed = tuple(item.id for item in envelope.failed)
                codes = {item.id: item.code for item in envelope.failed} | codes
            if retry_after_seconds is None:
                retry_after_seconds = envelope.retry_after_seconds
        self.status_code = status_code
        self.error_code = error_code
        self.detail = detail
        self.failed_ids: tuple[ItemId, ...] = failed
        self.failed_codes: dict[ItemId, str | None] = codes
        self.retry_after_seconds = _check_retry_after(retry_after_seconds)
        self.envelope = envelope
        #: The error body's ``error.details`` as ``(field, message)`` pairs (the transport
        #: keeps at most 20, each bounded, sanitized and free of the token); () when none.
        self.details: tuple[tuple[str, str], ...] = tuple(details)
        #: Items a bulk call did fetch before it raised (filled by the backend client).
        self.succeeded: list[dict[str, Any]] = []
        if outcome_unknown:
            self.outcome_unknown = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A combined Backend<Semantic>Error registers as the backend-reported form of the
        # semantic class it names right after BackendError.
        super().__init_subclass__(**kwargs)
        semantic = [b for b in cls.__bases__ if issubclass(b, SynapError) and b is not BackendError]
        if BackendError in cls.__bases__ and len(semantic) == 1:
            registry.register_backend_form(semantic[0], cls)

    def _repr_fields(self) -> list[tuple[str, Any]]:
        failed: Any = self.failed_ids
        if len(failed) > 5:
            failed = f"<{len(failed)} ids>"
        return [
            ("status_code", self.status_code),
            ("error_code", self.error_code),
            ("failed_ids", failed),
            ("retry_after_seconds", self.retry_after_seconds),
            ("details", self.details[:3]),
            *super()._repr_fields(),
        ]


class BackendRateLimitError(BackendError, RateLimitError):
    """The backend's rate limiter rejected the request (HTTP 429)."""

    code: ClassVar[str] = RateLimitError.code


class BackendServiceUnavailableError(BackendError, ServiceUnavailableError):
    """The backend answered that it is temporarily unavailable (HTTP 5xx)."""

    code: ClassVar[str] = ServiceUnavailableError.code


class BackendAgentUnavailableError(BackendError, AgentUnavailableError):
    """The backend answered that the agent behind the instance is unavailable."""

    code: ClassVar[str] = AgentUnavailableError.code


class BackendInvalidInputError(BackendError, InvalidInputError):
    """The backend rejected the request as invalid (HTTP 400/422)."""

    code: ClassVar[str] = InvalidInputError.code


class BackendAuthenticationError(BackendError, AuthenticationError):
    """The backend refused the credentials (HTTP 401/403)."""

    code: ClassVar[str] = AuthenticationError.code


class BackendContextNotFoundError(BackendError, ContextNotFoundError):
    """The backend holds no context for the requested user or conversation."""

    code: ClassVar[str] = ContextNotFoundError.code


class BackendSessionExpiredError(BackendError, SessionExpiredError):
    """The backend answered that the session expired or was invalidated."""

    code: ClassVar[str] = SessionExpiredError.code


class BackendBootstrapKeyInvalidError(BackendError, BootstrapKeyInvalidError):
    """The backend refused the bootstrap token."""

    code: ClassVar[str] = BootstrapKeyInvalidError.code


class BackendBootstrapError(BackendError, BootstrapError):
    """The backend failed the bootstrap sequence for a reason other than the token."""

    code: ClassVar[str] = BootstrapError.code


class BackendCertificateExpiredError(BackendError, CertificateExpiredError):
    """The backend refused a certificate past its TTL and grace period."""

    code: ClassVar[str] = CertificateExpiredError.code


class BackendCertificateRenewalError(BackendError, CertificateRenewalError):
    """The backend's certificate authority refused to renew the certificate."""

    code: ClassVar[str] = CertificateRenewalError.code


class BackendInvalidInstanceIdError(BackendError, InvalidInstanceIdError):
    """The backend answered that the instance does not exist or is deactivated.

    Built like :class:`InvalidInstanceIdError` (the offending id first), plus the
    :class:`BackendError` keywords.
    """

    code: ClassVar[str] = InvalidInstanceIdError.code

    def __init__(self, instance_id: object, message: str | None = None, **kwargs: Any) -> None:
        if message is None:
            message = InvalidInstanceIdError(instance_id).message
        BackendError.__init__(self, message, **kwargs)
        self.instance_id = instance_id


class BackendInvalidConversationIdError(BackendError, InvalidConversationIdError):
    """The backend answered that the conversation does not exist or was deleted.

    Built like :class:`InvalidConversationIdError` (the offending id first), plus the
    :class:`BackendError` keywords.
    """

    code: ClassVar[str] = InvalidConversationIdError.code

    def __init__(
        self, conversation_id: object, message: str | None = None, **kwargs: Any
    ) -> None:
        if message is None:
            message = InvalidConversationIdError(conversation_id).message
        BackendError.__init__(self, message, **kwargs)
        self.conversation_id = conversation_id


def backend_error_class(semantic: type[SynapError] | None) -> type[BackendError]:
    """Return the class that is both ``BackendError`` and ``semantic`` (plain ``BackendError``
    when ``semantic`` is None or has no backend-reported form)."""
    return registry.backend_form(semantic)


def build_error(
    cls: type[SynapErrorT], message: str, subjects: Mapping[str, object], **fields: Any
) -> SynapErrorT:
    """``cls(message, **fields)``, passing first the id the class is about (its ``subject``,
    looked up in ``subjects``; None when the caller does not know it)."""
    if cls.subject is not None:
        return cls(subjects.get(cls.subject), message, **fields)  # type: ignore[arg-type,call-arg]
    return cls(message, **fields)
