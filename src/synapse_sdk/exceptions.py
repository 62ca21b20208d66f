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
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from synapse_sdk.envelopes import ErrorEnvelope

__all__ = [
    "INSTANCE_ID_PATTERN",
    "AgentUnavailableError",
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
    "InvalidConversationIdError",
    "InvalidInputError",
    "InvalidInstanceIdError",
    "ItemId",
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
    "validate_instance_id",
]

#: An item id as the backend sends it (the v2 API uses strings or integers).
ItemId = str | int

#: The ``inst_<hex16>`` instance id format.
INSTANCE_ID_PATTERN = re.compile(r"inst_[0-9a-f]{16}")

_MAX_ID_IN_MESSAGE = 64


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


class AgentUnavailableError(SynapTransientError):
    """The Synap agent backing the instance is temporarily unavailable (restarting or busy)."""

    code: ClassVar[str] = "agent_unavailable"


# --- permanent -------------------------------------------------------------------------------


class InvalidInputError(SynapPermanentError):
    """The request contains invalid parameters or data that fails validation."""

    code: ClassVar[str] = "invalid_input"


def _shown_id(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _MAX_ID_IN_MESSAGE:
        text = text[:_MAX_ID_IN_MESSAGE] + "…"
    return repr(text) if isinstance(value, str) else text


class InvalidInstanceIdError(InvalidInputError):
    """The ``instance_id`` does not exist or does not match the ``inst_<hex16>`` format."""

    code: ClassVar[str] = "invalid_instance_id"

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


class CertificateExpiredError(AuthenticationError):
    """The mTLS client certificate expired beyond its TTL plus the 48-hour grace period."""

    code: ClassVar[str] = "certificate_expired"


class CertificateRenewalError(AuthenticationError):
    """Renewing an expiring client certificate failed (authority unreachable or binding revoked)."""

    code: ClassVar[str] = "certificate_renewal_failed"


class BootstrapKeyInvalidError(AuthenticationError):
    """The bootstrap token is invalid, expired, malformed or already consumed."""

    code: ClassVar[str] = "bootstrap_key_invalid"


class BootstrapError(SynapPermanentError):
    """Initialization failed for a reason other than the bootstrap token itself."""

    code: ClassVar[str] = "bootstrap_failed"


class ContextNotFoundError(SynapPermanentError):
    """No stored memories exist for the user or conversation; treat it as an empty state."""

    code: ClassVar[str] = "context_not_found"


class SessionExpiredError(SynapPermanentError):
    """The session expired (idle too long or invalidated server-side) and must be re-established."""

    code: ClassVar[str] = "session_expired"


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
    ``error_code``, ``detail``, ``failed_ids``, ``retry_after_seconds`` and ``correlation_id``, and
    its ``str()`` contains the envelope JSON so text classification sees it too.
    """

    code: ClassVar[str] = "backend_error"

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
    ) -> None:
        # Deliberately not super().__init__: in the combined Backend<Semantic>Error classes the
        # next class in the MRO has a different signature; BackendError sets every field itself.
        SynapError.__init__(self, message, correlation_id=correlation_id)
        if envelope is None and error_code is None and message:
            from synapse_sdk.envelopes import find_envelope

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
        #: Items a bulk call did fetch before it raised (filled by the backend client).
        self.succeeded: list[dict[str, Any]] = []
        if outcome_unknown:
            self.outcome_unknown = True

    def _repr_fields(self) -> list[tuple[str, Any]]:
        failed: Any = self.failed_ids
        if len(failed) > 5:
            failed = f"<{len(failed)} ids>"
        return [
            ("status_code", self.status_code),
            ("error_code", self.error_code),
            ("failed_ids", failed),
            ("retry_after_seconds", self.retry_after_seconds),
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


_BACKEND_CLASSES: dict[type[SynapError], type[BackendError]] = {
    cls.__mro__[2]: cls
    for cls in (
        BackendRateLimitError,
        BackendServiceUnavailableError,
        BackendAgentUnavailableError,
        BackendInvalidInputError,
        BackendAuthenticationError,
        BackendContextNotFoundError,
        BackendSessionExpiredError,
        BackendBootstrapKeyInvalidError,
        BackendBootstrapError,
        BackendCertificateExpiredError,
        BackendCertificateRenewalError,
        BackendInvalidInstanceIdError,
        BackendInvalidConversationIdError,
    )
}


def backend_error_class(semantic: type[SynapError] | None) -> type[BackendError]:
    """Return the class that is both ``BackendError`` and ``semantic`` (plain ``BackendError``
    when ``semantic`` is None or has no backend-reported form)."""
    if semantic is None:
        return BackendError
    return _BACKEND_CLASSES.get(semantic, BackendError)
