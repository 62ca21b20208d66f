"""The backend emulator's shared state: store, fault profile, clock, tokens, counters and log.

The gate and the v2 routes receive the one :class:`EmulatorState`. Mutations happen on the
server's event loop; a lock guards what tests read from other threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import itertools
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synapse_sdk.emulator.faults import FaultProfile, RateLimit
from synapse_sdk.emulator.jobs import Jobs
from synapse_sdk.emulator.store import Store

__all__ = [
    "Clock",
    "EmulatorState",
    "RecordedResponse",
    "RequestContext",
    "RequestLog",
    "RequestRecord",
    "Sleep",
    "TokenBucket",
    "new_token",
    "presented_token",
    "validate_tenant",
    "validate_token",
]

#: A clock: seconds as a float, only differences matter (``time.monotonic`` by default).
Clock = Callable[[], float]
#: A sleep for injected latency: may be a coroutine function (``asyncio.sleep``) or a plain
#: function that returns at once (``FakeClock.sleep``).
Sleep = Callable[[float], Awaitable[Any] | None]

#: Idempotent responses kept for replay (the oldest is forgotten first).
IDEMPOTENCY_CACHE_SIZE = 128


#: How long a presigned storage URL stays valid, in emulator-clock seconds.
SIGNED_URL_TTL = 3600.0
#: The tenant code an emulator serves unless told otherwise.
DEFAULT_TENANT = "emulator"


def new_token() -> str:
    """A fresh random access token, shaped like the platform's (``syn_`` and the secret)."""
    return "syn_" + secrets.token_urlsafe(24)


def validate_token(token: object) -> str:
    """Return ``token`` if usable as an access token; ``ValueError`` if empty or with whitespace."""
    if not isinstance(token, str) or not token or any(ch.isspace() for ch in token):
        raise ValueError("an access token must be a non-empty string without whitespace")
    return token


def validate_tenant(tenant: object) -> str:
    """Return ``tenant`` if usable as a tenant code; ``ValueError`` if empty or with whitespace."""
    if not isinstance(tenant, str) or not tenant or any(ch.isspace() for ch in tenant):
        raise ValueError("a tenant code must be a non-empty string without whitespace")
    return tenant


def presented_token(access_token: str | None, authorization: str | None) -> str | None:
    """The token a request presents: its ``SYNAPSE-ACCESS-TOKEN``, else the key of an
    ``Authorization: Token <key>`` header (the legacy DRF form); None when it presents neither."""
    if access_token is not None and access_token.strip():
        return access_token.strip()
    scheme, _, key = (authorization or "").partition(" ")
    return (key.strip() or None) if scheme.lower() == "token" else None


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the emulator saw it. Holds no secret (never the token).

    ``time`` is the emulator clock at arrival; ``status`` is None when the connection was
    dropped before a response; ``faults`` names what was injected (``outage``, ``rate_limited``,
    ``partial_failure``, ``drop_reset``, ``drop_truncated``, ``latency``,
    ``idempotent_replay``); ``retry_after`` is the hint sent with a 429 or 503.
    """

    seq: int
    time: float
    method: str
    path: str
    query: str
    request_id: str
    status: int | None
    correlation_id: str | None = None
    idempotency_key: str | None = None
    resource: str | None = None
    ids: tuple[int | str, ...] | None = None
    failed_ids: tuple[int, ...] = ()
    error_code: str | None = None
    faults: tuple[str, ...] = ()
    retry_after: float | None = None
    latency: float = 0.0
    authenticated: bool = False

    @property
    def fault(self) -> str | None:
        """The first injected fault, or None for a clean request."""
        return self.faults[0] if self.faults else None


@dataclass(slots=True)
class RequestContext:
    """The mutable record of a request in flight; handlers fill in what they learn."""

    seq: int
    time: float
    method: str
    path: str
    query: str
    request_id: str
    correlation_id: str | None = None
    idempotency_key: str | None = None
    resource: str | None = None
    ids: tuple[int | str, ...] | None = None
    failed_ids: tuple[int, ...] = ()
    error_code: str | None = None
    faults: list[str] = field(default_factory=list)
    retry_after: float | None = None
    latency: float = 0.0
    authenticated: bool = False
    status: int | None = None
    token_fingerprint: str | None = None
    logged: bool = False
    #: The rate-limit headers sent with the response (rate-limited paths only).
    rate_limit_headers: tuple[tuple[bytes, bytes], ...] = ()

    def freeze(self) -> RequestRecord:
        """The frozen record for the log."""
        return RequestRecord(
            seq=self.seq,
            time=self.time,
            method=self.method,
            path=self.path,
            query=self.query,
            request_id=self.request_id,
            status=self.status,
            correlation_id=self.correlation_id,
            idempotency_key=self.idempotency_key,
            resource=self.resource,
            ids=self.ids,
            failed_ids=self.failed_ids,
            error_code=self.error_code,
            faults=tuple(self.faults),
            retry_after=self.retry_after,
            latency=self.latency,
            authenticated=self.authenticated,
        )


class RequestLog:
    """A thread-safe log of :class:`RequestRecord`, keeping the newest ``limit`` entries."""

    def __init__(self, limit: int | None = 200_000) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise TypeError("log limit must be an int or None")
        if limit is not None and limit < 1:
            raise ValueError(f"log limit must be >= 1, got {limit}")
        self._records: deque[RequestRecord] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> None:
        """Add a record."""
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        """A copy of the records, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


class TokenBucket:
    """A token bucket on an injected clock: :meth:`take` spends one token or says how long to wait.

    A token that is due within a millionth of a token counts as present, so a client that waits
    exactly the advertised ``Retry-After`` on a fake clock is let through despite float rounding.
    """

    _EPSILON = 1e-6

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.updated = now

    def take(self, now: float) -> float:
        """Spend a token and return 0.0, or return the seconds until one is available."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.per_second)
        self.updated = max(self.updated, now)
        if self.tokens + self._EPSILON >= 1.0:
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.limit.per_second

    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """The rate-limit headers describing the bucket after the last :meth:`take`: the IETF
        draft's ``RateLimit-Policy``/``RateLimit`` and the common ``X-RateLimit-*``. What is left
        is the whole tokens, the reset the whole seconds (rounded up) until the bucket is full
        again; the window is the whole seconds a full bucket takes to refill (at least 1) and
        the quota what the rate lets through in it (at least the burst), so ``w / q`` tells a
        client the rate even when it is above one request a second."""
        limit = self.limit
        remaining = int(self.tokens + self._EPSILON)
        reset = math.ceil(max(0.0, limit.burst - self.tokens) / limit.per_second - self._EPSILON)
        window = max(1, math.ceil(limit.burst / limit.per_second - self._EPSILON))
        quota = max(limit.burst, math.floor(limit.per_second * window + self._EPSILON))
        values = (
            ("ratelimit-policy", f'"default";q={quota};w={window}'),
            ("ratelimit", f'"default";r={remaining};t={reset}'),
            ("x-ratelimit-limit", str(quota)),
            ("x-ratelimit-remaining", str(remaining)),
            ("x-ratelimit-reset", str(reset)),
        )
        return tuple((name.encode(), value.encode()) for name, value in values)


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    """A complete response kept for an ``Idempotency-Key`` replay."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


class EmulatorState:
    """Everything the gate and the v2 routes share.

    ``clock`` and ``sleep`` are injectable so tests run on a fake clock; ``tokens`` are the access
    tokens accepted (kept out of ``repr``), ``tenant`` the tenant code requests must name.
    """

    def __init__(
        self,
        *,
        store: Store,
        faults: FaultProfile,
        tokens: Sequence[str],
        tenant: str = DEFAULT_TENANT,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        log_limit: int | None = 200_000,
    ) -> None:
        if not tokens:
            raise ValueError("the emulator needs at least one access token")
        self.tenant = validate_tenant(tenant)
        self._signing_key = secrets.token_bytes(32)
        self.store = store
        #: The job area (``/v2/jobs/``): jobs exist once a test creates them.
        self.jobs = Jobs()
        self.faults = faults
        self.clock: Clock = time.monotonic if clock is None else clock
        self.sleep: Sleep = asyncio.sleep if sleep is None else sleep
        self.started_at = self.clock()
        self.log = RequestLog(log_limit)
        #: Set by the server: finds the connection serving an ASGI scope and returns a coroutine
        #: function that closes it without a (further) response, or None if it cannot.
        self.find_connection: Callable[[Any], Callable[[], Awaitable[None]] | None] | None = None
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}
        for token in tokens:
            self.add_token(token)
        self._buckets: dict[str, TokenBucket] = {}
        self._request_attempts: dict[str, int] = {}
        self._item_attempts: dict[tuple[str, int], int] = {}
        self._replays: OrderedDict[tuple[str, ...], RecordedResponse] = OrderedDict()
        self._seq = itertools.count(1)

    def __repr__(self) -> str:
        return (
            f"EmulatorState(store={self.store!r}, faults={self.faults.name or 'custom'!r}, "
            f"tokens={len(self._tokens)}, requests={len(self.log)})"
        )

    def connection_closer(self, scope: Any) -> Callable[[], Awaitable[None]] | None:
        """How to close the connection serving ``scope`` (None when the server cannot)."""
        return None if self.find_connection is None else self.find_connection(scope)

    def record(self, ctx: RequestContext) -> None:
        """Log a request once. Called *before* its last byte (or its drop) reaches the client,
        so a client that has its answer always finds the request in the log."""
        if not ctx.logged:
            ctx.logged = True
            self.log.append(ctx.freeze())

    # -- clock ---------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Emulator-clock seconds since the state was created (what outage windows use)."""
        return self.clock() - self.started_at

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` with the injected sleep (awaited when it is a coroutine function)."""
        if seconds <= 0:
            return
        result = self.sleep(seconds)
        if inspect.isawaitable(result):
            await result

    def next_seq(self) -> int:
        """The next request sequence number (1, 2, ...)."""
        with self._lock:
            return next(self._seq)

    # -- tokens --------------------------------------------------------------------------

    def add_token(self, token: str) -> None:
        """Accept another access token (it gets its own rate-limit bucket).

        Raises ``ValueError`` for an empty token or one with whitespace.
        """
        validate_token(token)
        with self._lock:
            self._tokens[_fingerprint(token)] = token

    def authenticate(self, presented: str) -> str | None:
        """The fingerprint of the presented token (see :func:`presented_token`), or None if it
        is not one this emulator accepts."""
        fingerprint = _fingerprint(presented)
        with self._lock:
            known = self._tokens.get(fingerprint)
        if known is None or not hmac.compare_digest(known.encode(), presented.encode()):
            return None
        return fingerprint

    def serves_tenant(self, header: str | None) -> bool:
        """Whether a ``SYNAPSE-Tenant`` header names this emulator's tenant (raw, or in the
        v1-compatible ``Token <code>`` form)."""
        if not header:
            return False
        scheme, _, code = header.strip().partition(" ")
        named = code.strip() if scheme.lower() == "token" and code.strip() else header.strip()
        return hmac.compare_digest(named.encode(), self.tenant.encode())

    # -- presigned storage URLs ----------------------------------------------------------

    def sign(self, path: str, ttl: float = SIGNED_URL_TTL) -> str:
        """The query that makes ``path`` a presigned URL valid for ``ttl`` emulator seconds."""
        expires = math.ceil(self.elapsed() + ttl)
        return f"expires={expires}&signature={self._signature(path, expires)}"

    def check_signature(self, path: str, expires: str | None, signature: str | None) -> str | None:
        """None when ``path`` carries a valid, unexpired signature, else what is wrong."""
        if not expires or not signature or not expires.isdigit():
            return "the URL is not signed"
        expected = self._signature(path, int(expires)).encode()
        if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected):
            return "the signature does not match"
        if self.elapsed() > int(expires):
            return "the URL has expired"
        return None

    def _signature(self, path: str, expires: int) -> str:
        message = f"{path}\n{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()[:32]

    # -- faults --------------------------------------------------------------------------

    def take_rate_token(self, fingerprint: str, ctx: RequestContext | None = None) -> float:
        """Spend one request from the token's bucket: 0.0 if allowed, else seconds to wait.
        The bucket's rate-limit headers go to ``ctx`` (sent with its response)."""
        limit = self.faults.rate_limit
        if limit is None:
            return 0.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(fingerprint)
            if bucket is None:
                bucket = self._buckets[fingerprint] = TokenBucket(limit, now)
            wait = bucket.take(now)
            if ctx is not None and limit.headers:
                ctx.rate_limit_headers = bucket.headers()
            return wait

    def outage_remaining(self) -> float | None:
        """Seconds left in the current outage window, or None when the backend is up."""
        if not self.faults.outages:
            return None
        return self.faults.outage_remaining(self.elapsed())

    def request_attempt(self, key: str) -> int:
        """How many times a request with this identity was served before (then count this one)."""
        with self._lock:
            attempt = self._request_attempts.get(key, 0)
            self._request_attempts[key] = attempt + 1
        return attempt

    def item_failures(self, resource: str, ids: Sequence[int]) -> dict[int, str]:
        """Decide which of ``ids`` fail in this bulk fetch: id -> failure code.

        Each distinct id's attempt counter advances once per call, so decisions depend only on
        the seed and how often that id was fetched, never on other requests.
        """
        profile = self.faults
        failures: dict[int, str] = {}
        for item_id in dict.fromkeys(ids):
            with self._lock:
                attempt = self._item_attempts.get((resource, item_id), 0)
                self._item_attempts[(resource, item_id)] = attempt + 1
            if profile.is_corrupted(resource, item_id):
                failures[item_id] = "item_corrupted"
            elif profile.item_unavailable(resource, item_id, attempt):
                failures[item_id] = "item_unavailable"
        return failures

    # -- idempotency ---------------------------------------------------------------------

    def replay(self, key: tuple[str, ...]) -> RecordedResponse | None:
        """The recorded response for an idempotency key, if any."""
        with self._lock:
            recorded = self._replays.get(key)
            if recorded is not None:
                self._replays.move_to_end(key)
            return recorded

    def remember(self, key: tuple[str, ...], response: RecordedResponse) -> None:
        """Record a complete response for later replays (bounded, oldest evicted)."""
        with self._lock:
            self._replays[key] = response
            self._replays.move_to_end(key)
            while len(self._replays) > IDEMPOTENCY_CACHE_SIZE:
                self._replays.popitem(last=False)


def format_seconds(seconds: float) -> tuple[float, str, str]:
    """Round a wait *up*: (seconds to the millisecond, ``Retry-After`` in whole seconds as
    RFC 9110 requires, ``retry-after-ms``)."""
    millis = max(1, math.ceil(seconds * 1000 - 1e-9))
    return millis / 1000, str(-(-millis // 1000)), str(millis)
