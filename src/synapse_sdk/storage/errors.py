"""Storage errors in the SDK's error tree, and the one mapping from what a filesystem raised.

fsspec filesystems raise their own exceptions (s3fs: ``PermissionError`` / ``FileNotFoundError``
/ ``OSError`` carrying botocore's ``ClientError``; botocore's ``ReadTimeoutError``,
``EndpointConnectionError``...). :func:`map_storage_error` turns them, at the storage boundary,
into classes of the tree, each a :class:`StorageError` *and* the semantic class the retry engine
and the export already act on::

    StorageError                     storage_error
    ├── StorageThrottledError        storage_throttled    also a RateLimitError (transient)
    ├── StorageUnavailableError      storage_unavailable  also a ServiceUnavailableError
    ├── StorageTimeoutError          storage_timeout      also a NetworkTimeoutError
    ├── StorageAccessDeniedError     storage_access_denied  permanent: stops the run (also no
    │                                                        credentials found at all)
    └── StorageNotFoundError         storage_not_found      permanent (NoSuchBucket): stops it

Each carries ``error_code`` (the code above, which the export's failure classifier looks up),
``storage_code`` (the service's own code, ``SlowDown``), ``status_code`` and ``url`` (without
credentials). The original exception stays on the chain (``raise ... from exc``).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit, urlunsplit

from synapse_sdk.exceptions import (
    NetworkTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    SynapError,
    SynapPermanentError,
)
from synapse_sdk.failures import walk_chain

__all__ = [
    "StorageAccessDeniedError",
    "StorageError",
    "StorageNotFoundError",
    "StorageThrottledError",
    "StorageTimeoutError",
    "StorageUnavailableError",
    "map_storage_error",
    "redact_url",
]

_THROTTLE_CODES: Final = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
     "TooManyRequests", "TooManyRequestsException", "RequestThrottled", "429"}
)
_ACCESS_CODES: Final = frozenset(
    {"AccessDenied", "AllAccessDisabled", "AccountProblem", "InvalidAccessKeyId",
     "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "NotSignedUp", "403"}
)
#: botocore's errors for credentials it could not find or load: no request was made, yet it is
#: the same fix as a refused key (a node with no credentials, e.g. a Ray worker's).
_NO_CREDENTIALS: Final = frozenset(
    {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
     "NoAuthTokenError"}
)
_MISSING_CODES: Final = frozenset({"NoSuchBucket", "NoSuchContainer"})
_TIMEOUT_CODES: Final = frozenset({"RequestTimeout", "RequestTimeoutException"})
_UNAVAILABLE_CODES: Final = frozenset(
    {"InternalError", "ServiceUnavailable", "ServerError", "500", "502", "503", "504"}
)


def redact_url(url: str) -> str:
    """``url`` without a user name or password (``sftp://u:p@host/x`` -> ``sftp://host/x``),
    also when a ``/`` in the password ends the URL's authority early (``s3://K:a/b@bucket/x``
    -> ``s3://bucket/x``)."""
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    _, colon, port = authority.rpartition(":")
    if colon and not port.isdigit() and "@" in rest:
        return f"{scheme}://{rest.rpartition('@')[2]}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=host))


class StorageError(SynapError):
    """The output storage failed an operation (see the module docstring for the subclasses)."""

    code: ClassVar[str] = "storage_error"
    #: The code the export's failure catalog looks up (also the item's failure code).
    error_code: ClassVar[str] = "storage_error"

    def __init__(
        self,
        message: str = "",
        *,
        url: str | None = None,
        storage_code: str | None = None,
        status_code: int | None = None,
        correlation_id: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        # Like BackendError: set every field here, since the semantic classes mixed in below
        # take other keywords.
        SynapError.__init__(self, message, correlation_id=correlation_id)
        self.url = None if url is None else redact_url(url)
        self.storage_code = storage_code
        self.status_code = status_code
        if outcome_unknown:
            self.outcome_unknown = True

    def _repr_fields(self) -> list[tuple[str, Any]]:
        return [
            ("url", self.url),
            ("storage_code", self.storage_code),
            ("status_code", self.status_code),
            *super()._repr_fields(),
        ]


class StorageThrottledError(StorageError, RateLimitError):
    """The storage asked us to slow down (S3 ``SlowDown``, a 503 or 429); retried."""

    error_code: ClassVar[str] = "storage_throttled"

    def __init__(self, message: str = "", **kwargs: Any) -> None:
        StorageError.__init__(self, message, **kwargs)
        self.retry_after_seconds = None


class StorageUnavailableError(StorageError, ServiceUnavailableError):
    """The storage failed on its side (500, ``InternalError``, 502-504) or could not be
    reached; retried (a 500's outcome is unknown: the object may have been written)."""

    error_code: ClassVar[str] = "storage_unavailable"


class StorageTimeoutError(StorageError, NetworkTimeoutError):
    """A storage request timed out; retried."""

    error_code: ClassVar[str] = "storage_timeout"


class StorageAccessDeniedError(StorageError, SynapPermanentError):
    """The storage refused the credentials or the operation (``AccessDenied``, a bad key);
    never retried: the run stops."""

    error_code: ClassVar[str] = "storage_access_denied"


class StorageNotFoundError(StorageError, SynapPermanentError):
    """The bucket (or container) of the output URL does not exist; the run stops."""

    error_code: ClassVar[str] = "storage_not_found"


def _service_answer(exc: BaseException) -> tuple[str | None, int | None, str | None]:
    """``(code, status, message)`` of a service answer on ``exc`` (botocore's ``ClientError``
    and its kin carry ``response = {"Error": {...}, "ResponseMetadata": {...}}``)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None, None, None
    error = response.get("Error")
    meta = response.get("ResponseMetadata")
    code = error.get("Code") if isinstance(error, Mapping) else None
    message = error.get("Message") if isinstance(error, Mapping) else None
    status = meta.get("HTTPStatusCode") if isinstance(meta, Mapping) else None
    return (
        code if isinstance(code, str) else None,
        status if isinstance(status, int) else None,
        message if isinstance(message, str) else None,
    )


def _classify(chain: list[BaseException]) -> tuple[type[StorageError], str | None, int | None]:
    code: str | None = None
    status: int | None = None
    for link in chain:
        code, status, _ = _service_answer(link)
        if code is not None or status is not None:
            break
    if code in _THROTTLE_CODES or status == 429 or (status == 503 and code == "SlowDown"):
        return StorageThrottledError, code, status
    if code in _ACCESS_CODES or status in (401, 403):
        return StorageAccessDeniedError, code, status
    if code in _MISSING_CODES:
        return StorageNotFoundError, code, status
    if code in _TIMEOUT_CODES:
        return StorageTimeoutError, code, status
    if code in _UNAVAILABLE_CODES or (status is not None and status >= 500):
        return StorageUnavailableError, code, status
    names = {type(link).__name__ for link in chain}
    if names & _NO_CREDENTIALS:
        return StorageAccessDeniedError, code, status
    if any("Timeout" in name for name in names) or any(
        isinstance(link, TimeoutError) for link in chain
    ):
        return StorageTimeoutError, code, status
    if names & {"EndpointConnectionError", "ConnectionClosedError", "ClientConnectorError",
                "ServerDisconnectedError", "ClientOSError"} or any(
        isinstance(link, ConnectionError) for link in chain
    ):
        return StorageUnavailableError, code, status
    first = chain[0]
    if isinstance(first, PermissionError):
        return StorageAccessDeniedError, code, status
    if isinstance(first, OSError) and first.errno == errno.EBUSY:
        return StorageThrottledError, code, status
    return StorageError, code, status


def map_storage_error(exc: BaseException, *, url: str, operation: str) -> BaseException:
    """The tree's error for what a (non-local) filesystem raised during ``operation`` on
    ``url``; to be raised ``from exc``. Returns ``exc`` itself when it is not a storage
    failure at all (a bug: ``TypeError``, ``ValueError``...) or already a :class:`SynapError`.
    Never raises."""
    if isinstance(exc, SynapError) or not isinstance(exc, (OSError, *_foreign_errors())):
        return exc
    chain = walk_chain(exc)
    cls, code, status = _classify(chain)
    if cls is StorageError and isinstance(exc, FileNotFoundError) and operation == "write":
        cls = StorageNotFoundError  # an object store has no folders: the bucket is missing
    shown = redact_url(url)
    reason = code or type(exc).__name__
    message = f"storage {operation} failed on {shown}: {reason}: {_brief(exc)}"
    return cls(
        message,
        url=url,
        storage_code=code,
        status_code=status,
        outcome_unknown=cls is StorageUnavailableError and status == 500,
    )


def _foreign_errors() -> tuple[type[BaseException], ...]:
    """Exception bases of the storage libraries that are not ``OSError`` (botocore's)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return ()
    return (BotoCoreError, ClientError)


def _brief(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:200] + "…"
