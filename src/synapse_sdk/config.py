"""Configuration values: timeouts, the retry policy and the SDK configuration that holds them.

All three are frozen dataclasses validated on construction: a negative, NaN or otherwise
impossible value raises :class:`ValueError` naming the field. Make variants by copy::

    policy = RetryPolicy().replace(max_attempts=5)
    config = SDKConfig(retry_policy=None)          # retries off: exactly one attempt

Defaults (chosen for a production SDK; see ``docs/errors.md``):

=================  ========  ==============================================================
field              default   why
=================  ========  ==============================================================
max_attempts       3         the first attempt plus two retries
backoff_base       0.5 s     first retry waits up to 0.5 s (full jitter)
backoff_max        10 s      no single backoff wait exceeds 10 s
multiplier         2.0       0.5, 1, 2, 4, 8, 10, ... before jitter
jitter             "full"    uniform in [0, backoff]: spreads synchronized clients best
retry_after_max    60 s      a server asking for a longer wait surfaces the error at once
deadline           None      no overall bound unless you set one
budget_capacity    50        retries a burst may spend before the budget stops retry storms
=================  ========  ==============================================================
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self, get_args

from synapse_sdk.exceptions import SynapTransientError
from synapse_sdk.telemetry._hooks import RetryHook, check_hooks

__all__ = [
    "TENANT_ENV_VAR",
    "TOKEN_ENV_VAR",
    "JitterMode",
    "RetryBudget",
    "RetryPolicy",
    "SDKConfig",
    "TimeoutConfig",
    "TokenKind",
]

JitterMode = Literal["none", "full", "equal", "decorrelated"]
_JITTER_MODES: frozenset[str] = frozenset(get_args(JitterMode))
#: How the backend token is presented: ``access`` (``SYNAPSE-ACCESS-TOKEN: syn_…``, the
#: default) or ``drf`` (the legacy ``Authorization: Token …``).
TokenKind = Literal["access", "drf"]
_TOKEN_KINDS: frozenset[str] = frozenset(get_args(TokenKind))
#: Environment variables :meth:`SDKConfig.from_env` reads.
TOKEN_ENV_VAR = "SYNAPSE_TOKEN"
TENANT_ENV_VAR = "SYNAPSE_TENANT"


def _check_number(
    owner: str,
    name: str,
    value: object,
    *,
    allow_none: bool = False,
    positive: bool = False,
) -> None:
    """Raise ValueError naming ``owner.name`` unless ``value`` is a finite number >= 0 (> 0)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{owner}.{name} must be a number, got {value!r}")
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{owner}.{name} must be finite, got {value!r}")
    if value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{owner}.{name} must be {bound}, got {value!r}")


class _Replaceable:
    """Mixin giving frozen dataclasses a validated ``replace(**changes)``."""

    def replace(self, **changes: Any) -> Self:
        """Return a copy with ``changes`` applied (validated like the constructor)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True, slots=True)
class TimeoutConfig(_Replaceable):
    """Per-request timeouts, in seconds.

    ``connect``, ``read`` and ``write`` bound each single network operation: ``read`` is the
    longest wait for the next bytes, so a server trickling a byte at a time never trips it.
    ``total`` bounds one whole attempt of a backend v2 call (connecting, sending, the response
    head and body, decoding), checked on every read: a trickled answer ends after ``total``
    seconds with a ``NetworkTimeoutError``. ``None`` turns it off. The retry policy's
    ``deadline`` still bounds the whole call, retries and waits included. ``stream_idle`` bounds
    how long a listening stream may stay silent before it counts as dropped and is reconnected.
    """

    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    stream_idle: float = 60.0
    total: float | None = 120.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "stream_idle"):
            _check_number("TimeoutConfig", name, getattr(self, name), positive=True)
        _check_number("TimeoutConfig", "total", self.total, allow_none=True, positive=True)


class RetryBudget:
    """A token bucket shared by every call made with one :class:`RetryPolicy` instance.

    Each retry spends one token; each successful call gives back ``refill_per_success`` tokens and
    time gives back ``refill_per_second``, never above ``capacity``. When the bucket is empty,
    failing calls surface their error instead of retrying, which stops retry storms under
    overload. Thread-safe: every spend and refill is atomic, so with any number of threads the
    tokens stay within ``[0, capacity]`` and, while no refill is clipped at the capacity, equal
    exactly ``capacity - spent + refills``.
    """

    __slots__ = ("_clock", "_last", "_lock", "_tokens", "capacity", "refill_per_second",
                 "refill_per_success")

    def __init__(
        self,
        capacity: float,
        *,
        refill_per_success: float = 0.1,
        refill_per_second: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_number("RetryBudget", "capacity", capacity)
        _check_number("RetryBudget", "refill_per_success", refill_per_success)
        _check_number("RetryBudget", "refill_per_second", refill_per_second)
        self.capacity = float(capacity)
        self.refill_per_success = float(refill_per_success)
        self.refill_per_second = float(refill_per_second)
        self._tokens = float(capacity)
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._last
        self._last = now
        if elapsed > 0 and self.refill_per_second:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.refill_per_second)

    def try_spend(self) -> bool:
        """Take one token for a retry; False (and nothing taken) when fewer than one is left."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def record_success(self) -> None:
        """Give back ``refill_per_success`` tokens after a call succeeded."""
        # Unlocked early exit when full: the retry engine calls this on every success, and a
        # racing spend can at worst cost this one refill, never a negative or overfull bucket.
        if self.refill_per_success and self._tokens < self.capacity:
            with self._lock:
                self._tokens = min(self.capacity, self._tokens + self.refill_per_success)

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        with self._lock:
            self._refill()
            return self._tokens

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle or deep copy keeps: the settings, the tokens and the clock (the lock
        and the clock reading are this process's own and are made anew on load)."""
        with self._lock:
            self._refill()
            return {
                "capacity": self.capacity,
                "refill_per_success": self.refill_per_success,
                "refill_per_second": self.refill_per_second,
                "tokens": self._tokens,
                "clock": self._clock,
            }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.capacity = state["capacity"]
        self.refill_per_success = state["refill_per_success"]
        self.refill_per_second = state["refill_per_second"]
        self._tokens = state["tokens"]
        self._clock = state["clock"]
        self._last = self._clock()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RetryBudget(tokens={self.tokens:.2f}, capacity={self.capacity:g})"


@dataclass(frozen=True, slots=True)
class RetryPolicy(_Replaceable):
    """How the SDK retries failed calls: which errors, how many times and how long to wait.

    The wait before retry ``n`` (``n = 0`` for the first retry) is
    ``min(backoff_max, backoff_base * multiplier ** n)`` with ``jitter`` applied:

    * ``"full"`` (default): uniform in ``[0, backoff]``;
    * ``"equal"``: ``backoff / 2`` plus uniform in ``[0, backoff / 2]``;
    * ``"decorrelated"``: uniform in ``[backoff_base, previous_wait * 3]``, capped at
      ``backoff_max``;
    * ``"none"``: exactly ``backoff``.

    ``backoff_max`` caps every backoff wait, even below ``backoff_base`` (then each wait is at
    most ``backoff_max``, as in stamina).

    A server hint (a :class:`~synapse_sdk.exceptions.RateLimitError`'s ``retry_after_seconds``, a
    ``Retry-After`` header, a 207's ``retry_after``) is waited exactly instead, unless it exceeds
    ``retry_after_max``: then the error surfaces at once, however large the hint. Every wait the
    SDK takes is decided by :func:`synapse_sdk.retry.decide_wait` from this policy.
    ``max_attempts`` counts the first attempt, so ``1`` means no retries. ``deadline`` (seconds)
    bounds the whole call, waits included. Each policy instance owns one :class:`RetryBudget`
    shared by every call using it (``budget_capacity=None`` turns the budget off).

    Thread-safe: immutable; one instance may be shared by threads and tasks, which then share
    its budget.

    Raises:
        ValueError: a field is negative, NaN, infinite, zero where it must be positive, or
            ``jitter`` is not one of none/full/equal/decorrelated.
    """

    max_attempts: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    multiplier: float = 2.0
    jitter: JitterMode = "full"
    retryable_errors: tuple[type[BaseException], ...] = (SynapTransientError,)
    retry_after_max: float = 60.0
    deadline: float | None = None
    budget_capacity: float | None = 50.0
    budget_refill_per_success: float = 0.1
    budget_refill_per_second: float = 0.5
    budget: RetryBudget | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ValueError(
                f"RetryPolicy.max_attempts must be an integer >= 1, got {self.max_attempts!r}"
            )
        _check_number("RetryPolicy", "backoff_base", self.backoff_base)
        _check_number("RetryPolicy", "backoff_max", self.backoff_max)
        _check_number("RetryPolicy", "multiplier", self.multiplier)
        if self.multiplier < 1:
            raise ValueError(f"RetryPolicy.multiplier must be >= 1, got {self.multiplier!r}")
        if self.jitter not in _JITTER_MODES:
            raise ValueError(
                f"RetryPolicy.jitter must be one of {sorted(_JITTER_MODES)}, got {self.jitter!r}"
            )
        errors = self.retryable_errors
        if not isinstance(errors, tuple) or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in errors
        ):
            raise ValueError(
                "RetryPolicy.retryable_errors must be a tuple of exception classes, "
                f"got {errors!r}"
            )
        _check_number("RetryPolicy", "retry_after_max", self.retry_after_max)
        _check_number("RetryPolicy", "deadline", self.deadline, allow_none=True, positive=True)
        _check_number("RetryPolicy", "budget_capacity", self.budget_capacity, allow_none=True)
        _check_number("RetryPolicy", "budget_refill_per_success", self.budget_refill_per_success)
        _check_number("RetryPolicy", "budget_refill_per_second", self.budget_refill_per_second)
        budget = None
        if self.budget_capacity is not None:
            budget = RetryBudget(
                self.budget_capacity,
                refill_per_success=self.budget_refill_per_success,
                refill_per_second=self.budget_refill_per_second,
            )
        object.__setattr__(self, "budget", budget)

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """A policy that makes exactly one attempt (like ``SDKConfig(retry_policy=None)``)."""
        return cls(max_attempts=1, budget_capacity=None)

    @property
    def enabled(self) -> bool:
        """Whether this policy can retry at all."""
        return self.max_attempts > 1

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` is of a type this policy retries."""
        return isinstance(exc, self.retryable_errors)


@dataclass(frozen=True, slots=True)
class SDKConfig(_Replaceable):
    """Everything a client needs to know: retries, timeouts, language, where and who.

    ``retry_policy=None`` turns retries off (one attempt per call). ``retry_hooks`` are called
    on each scheduled retry and give-up of the client's calls (see
    :mod:`synapse_sdk.telemetry`). ``token`` is a secret and never appears in ``repr``;
    ``token_kind`` says how it is sent (``access``: ``SYNAPSE-ACCESS-TOKEN``; ``drf``: the
    legacy ``Authorization: Token``). ``tenant`` is the tenant code sent as ``SYNAPSE-Tenant``
    (shown in ``repr``: it is not a secret). ``language`` picks the locale of rendered messages
    (``None``: ``SYNAPSE_LANGUAGE``, then English). :meth:`from_env` fills ``token`` and
    ``tenant`` from ``SYNAPSE_TOKEN`` and ``SYNAPSE_TENANT``.

    Thread-safe: immutable; one instance may be shared by threads and tasks.
    """

    retry_policy: RetryPolicy | None = field(default_factory=RetryPolicy)
    timeouts: TimeoutConfig = field(default_factory=TimeoutConfig)
    backend_url: str | None = None
    token: str | None = field(default=None, repr=False)
    language: str | None = None
    credentials_dir: Path | None = None
    retry_hooks: tuple[RetryHook, ...] = ()
    tenant: str | None = None
    token_kind: TokenKind = "access"

    def __post_init__(self) -> None:
        object.__setattr__(self, "retry_hooks", check_hooks(self.retry_hooks, "retry_hooks"))
        if self.retry_policy is not None and not isinstance(self.retry_policy, RetryPolicy):
            raise ValueError(
                f"SDKConfig.retry_policy must be a RetryPolicy or None, got {self.retry_policy!r}"
            )
        if not isinstance(self.timeouts, TimeoutConfig):
            raise ValueError(f"SDKConfig.timeouts must be a TimeoutConfig, got {self.timeouts!r}")
        if self.language is not None and (not isinstance(self.language, str) or not self.language):
            raise ValueError(
                f"SDKConfig.language must be a non-empty string, got {self.language!r}"
            )
        if self.tenant is not None and (
            not isinstance(self.tenant, str)
            or not self.tenant
            or any(c.isspace() or not c.isprintable() for c in self.tenant)
        ):
            raise ValueError(
                f"SDKConfig.tenant must be a non-empty code without spaces, got {self.tenant!r}"
            )
        if self.token_kind not in _TOKEN_KINDS:
            raise ValueError(
                f"SDKConfig.token_kind must be one of {sorted(_TOKEN_KINDS)}, "
                f"got {self.token_kind!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **fields: Any) -> SDKConfig:
        """A config whose ``token`` and ``tenant`` come from ``SYNAPSE_TOKEN`` and
        ``SYNAPSE_TENANT`` (empty values count as unset) unless ``fields`` name them.

        Raises:
            ValueError: a field is invalid (as the constructor).
        """
        env = os.environ if environ is None else environ
        for name, var in (("token", TOKEN_ENV_VAR), ("tenant", TENANT_ENV_VAR)):
            if fields.get(name) is None:
                fields[name] = env.get(var) or None
        return cls(**fields)

    @property
    def effective_retry_policy(self) -> RetryPolicy:
        """The policy calls use: ``retry_policy``, or a one-attempt policy when it is None."""
        return self.retry_policy if self.retry_policy is not None else _NO_RETRY


_NO_RETRY = RetryPolicy.disabled()
