"""The retry engine: run a call again when, and only when, retrying can help.

Four ways in, one behaviour::

    r = Retrying(policy)                        # build once per call site, reuse it
    value = r.call(fetch, item_id)              # sync
    value = await r.acall(afetch, item_id)      # asyncio
    for attempt in r.attempts():                # a block of statements
        with attempt:
            value = fetch(item_id)

    @retry(policy)                              # a decorator, for sync and async functions
    def fetch(item_id): ...

What happens when an attempt fails is decided by :func:`decide_wait`, the one function that
decides every wait the SDK takes (the bulk-fetch rounds, the stream reconnects, the export's
retry drain and its rate pacer ask it too). In order:

1. An error that is not an instance of ``policy.retryable_errors`` (by default every
   :class:`~synapse_sdk.exceptions.SynapTransientError`) surfaces at once.
2. With ``idempotent=False``, an error whose ``outcome_unknown`` is true (the request may have been
   applied) surfaces at once. Pass ``idempotent=True`` (the default) when the operation is
   idempotent or carries an idempotency key that the caller reuses on every attempt.
3. After ``policy.max_attempts`` attempts the error surfaces (``synapse_sdk.retry.exhausted``).
4. The wait: an error carrying ``retry_after_seconds`` (a rate limit, or a 503 with
   ``Retry-After``) waits exactly that long; above ``policy.retry_after_max`` it surfaces at
   once, however large the hint. Otherwise :func:`backoff_delay`: ``min(backoff_max,
   backoff_base * multiplier ** n)`` with the policy's jitter, ``n = 0`` for the first retry.
5. If ``policy.deadline`` is set and the wait would end past it, the error surfaces now.
6. The policy's shared :class:`~synapse_sdk.config.RetryBudget` must give one token for the retry;
   an empty budget surfaces the error (this stops retry storms under overload). Each successful
   call gives tokens back.
7. The wait is slept (a zero wait never calls ``sleep``), and the next attempt starts.

Whenever the engine gives up it raises the *last original error* (never a wrapper) with the
attempt history attached as ``error.attempts`` (a tuple of
:class:`~synapse_sdk.exceptions.AttemptRecord`; set best-effort on foreign exceptions). Errors
that are neither retryable nor :class:`~synapse_sdk.exceptions.SynapError` (bugs, cancellation)
pass through untouched.

Log events go to the ``synapse_sdk.retry`` logger; the message is the stable event name and the
details are structured ``extra`` fields (``event``, ``call_name``, ``attempt``, ``max_attempts``,
``wait``, ``error_type``, ``error_code``, ``correlation_id`` and, when the engine stops,
``reason``). ``call_name`` carries the retried call's name because ``name`` is reserved by
:class:`logging.LogRecord`. No message text is logged: it may quote user data.

* ``synapse_sdk.retry.scheduled`` (INFO): a retry is planned after ``wait`` seconds;
* ``synapse_sdk.retry.exhausted`` (WARNING): the last allowed attempt failed
  (reason ``max_attempts``);
* ``synapse_sdk.retry.giving_up`` (WARNING): stopped early, reason ``outcome_unknown``,
  ``retry_after_too_long``, ``deadline`` or ``budget_exhausted``; at DEBUG for
  ``not_retryable`` (a permanent error) and ``retries_disabled``.

Retry hooks (``Retrying(hooks=...)``, ``SDKConfig(retry_hooks=...)``,
:func:`synapse_sdk.telemetry.set_retry_hooks`) are told the same two moments as a
:class:`~synapse_sdk.telemetry.RetryEvent`: each scheduled retry and each give-up.

Tests inject ``sleep``/``asleep``/``clock``/``rng``, or wrap code in :func:`testing`, which
records the planned waits instead of sleeping (and advances the deadline arithmetic as if the
waits had passed).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import math
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Final, Literal, NamedTuple, NoReturn, TypeVar, cast

from synapse_sdk.config import RetryPolicy
from synapse_sdk.exceptions import AttemptRecord, SynapError
from synapse_sdk.retry_after import MAX_RETRY_AFTER_SECONDS
from synapse_sdk.telemetry import _hooks
from synapse_sdk.telemetry._hooks import GIVING_UP, SCHEDULED, RetryEvent, RetryHook

__all__ = [
    "EVENT_EXHAUSTED",
    "EVENT_GIVING_UP",
    "EVENT_SCHEDULED",
    "Attempt",
    "Retrying",
    "WaitDecision",
    "aretry_call",
    "backoff_delay",
    "decide_wait",
    "notify_wait",
    "remaining_time",
    "retry",
    "retry_call",
    "testing",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# Silent unless the application configures logging: the package adds a NullHandler to the
# ``synapse_sdk`` logger (see synapse_sdk/__init__.py).
logger: Final = logging.getLogger("synapse_sdk.retry")

EVENT_SCHEDULED: Final = "synapse_sdk.retry.scheduled"
EVENT_EXHAUSTED: Final = "synapse_sdk.retry.exhausted"
EVENT_GIVING_UP: Final = "synapse_sdk.retry.giving_up"


_INFO: Final = logging.INFO
_DISABLED_POLICY: Final = RetryPolicy.disabled()

SleepFn = Callable[[float], object]
AsyncSleepFn = Callable[[float], Awaitable[object]]
ClockFn = Callable[[], float]


# --- backoff -------------------------------------------------------------------------------


def _backoff(
    policy: RetryPolicy, retry_number: int, previous: float | None, rand: Callable[[], float]
) -> float:
    """:func:`backoff_delay` without the argument checks (see it for the formula)."""
    base = policy.backoff_base
    cap = policy.backoff_max
    mode = policy.jitter
    if mode == "decorrelated":
        upper = 3.0 * (base if previous is None else previous)
        if upper < base:
            upper = base
        value = base + rand() * (upper - base)
        return cap if value > cap else value
    # The ceiling: min(cap, base * multiplier ** retry_number), without overflowing.
    if base <= 0.0:
        ceiling = 0.0
    else:
        try:
            # float ** int raises OverflowError instead of building a huge integer.
            ceiling = base * float(policy.multiplier) ** retry_number
        except OverflowError:
            ceiling = cap
        if ceiling > cap:
            ceiling = cap
    if mode == "full":
        return rand() * ceiling
    if mode == "equal":
        half = ceiling / 2.0
        return half + rand() * half
    return ceiling


def backoff_delay(
    policy: RetryPolicy,
    retry_number: int,
    *,
    rng: random.Random | None = None,
    previous: float | None = None,
) -> float:
    """Return the seconds to wait before retry ``retry_number`` (0 for the first retry).

    The ceiling is ``min(policy.backoff_max, policy.backoff_base * policy.multiplier **
    retry_number)``, computed without overflow for any ``retry_number``. Then ``policy.jitter``:

    * ``"full"``: uniform in ``[0, ceiling]``. The default: it spreads clients that failed
      together the most, so they do not come back in lockstep;
    * ``"equal"``: ``ceiling / 2`` plus uniform in ``[0, ceiling / 2]``; keeps a minimum pause;
    * ``"decorrelated"``: uniform in ``[backoff_base, 3 * previous]`` (``previous`` is the last
      wait, ``backoff_base`` before the first), capped at ``backoff_max``; ignores
      ``retry_number``;
    * ``"none"``: exactly the ceiling (predictable, but synchronized clients retry together).

    :func:`decide_wait` uses it when no server hint names the wait.

    Raises:
        TypeError: ``policy`` is not a RetryPolicy, ``retry_number`` not an int, or ``rng`` not a
            ``random.Random``.
        ValueError: ``retry_number`` is negative or ``previous`` is negative or not finite.
    """
    if not isinstance(policy, RetryPolicy):
        raise TypeError(f"policy must be a RetryPolicy, not {type(policy).__name__}")
    if isinstance(retry_number, bool) or not isinstance(retry_number, int):
        raise TypeError(f"retry_number must be an int, not {type(retry_number).__name__}")
    if retry_number < 0:
        raise ValueError(f"retry_number must be >= 0, got {retry_number}")
    if previous is not None and (
        isinstance(previous, bool)
        or not isinstance(previous, int | float)
        or not math.isfinite(previous)
        or previous < 0
    ):
        raise ValueError(f"previous must be a finite number >= 0 or None, got {previous!r}")
    if rng is not None and not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random or None, not {type(rng).__name__}")
    rand = rng.random if rng is not None else random.random
    return _backoff(policy, retry_number, previous, rand)


# --- the one wait decision ---------------------------------------------------------------------

# Reasons a wait is refused and the error surfaces (the ``reason`` log field).
NOT_RETRYABLE: Final = "not_retryable"
RETRIES_DISABLED: Final = "retries_disabled"
OUTCOME_UNKNOWN: Final = "outcome_unknown"
MAX_ATTEMPTS: Final = "max_attempts"
RETRY_AFTER_TOO_LONG: Final = "retry_after_too_long"
DEADLINE: Final = "deadline"
BUDGET_EXHAUSTED: Final = "budget_exhausted"


class WaitDecision(NamedTuple):
    """What :func:`decide_wait` decided: wait ``seconds``, or surface the error now.

    ``reason`` is None to wait, else why the error surfaces (one of the module's reason
    constants). ``seconds`` is the wait to take; when surfacing, the wait that was refused
    (0.0 when none was computed). ``hinted`` tells whether it is the server's hint.
    """

    seconds: float
    reason: str | None = None
    hinted: bool = False

    @property
    def surface(self) -> bool:
        """Whether the error surfaces now instead of waiting."""
        return self.reason is not None


def _hint(value: object) -> float | None:
    """A server hint as a wait: a number >= 0 (not NaN); anything else is no hint."""
    if type(value) is float:  # the common case: a parsed hint
        return value if value >= 0.0 else None  # NaN compares false
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:  # an int too large for a float: huge
        return _HUGE if value > 0 else None
    return value if value >= 0.0 else None


def decide_wait(
    policy: RetryPolicy,
    attempt: int | None,
    *,
    error: BaseException | None = None,
    hint: float | None = None,
    previous: float | None = None,
    remaining: float | None = None,
    idempotent: bool = True,
    rng: random.Random | None = None,
    charge: bool = True,
) -> WaitDecision:
    """Decide how long to wait before trying again, or that the error surfaces now.

    Every loop of the SDK that waits asks this function and nothing else: the retry engine,
    the bulk-fetch rounds, the listening stream's reconnects, the export's retry drain and its
    rate pacer. In order:

    1. ``error`` (when given) that ``policy`` does not retry surfaces (``not_retryable``); with
       ``idempotent=False``, one whose ``outcome_unknown`` is true surfaces
       (``outcome_unknown``).
    2. ``attempt`` is the number (from 1) of the attempt that just failed: at
       ``policy.max_attempts`` the error surfaces (``max_attempts``; ``retries_disabled`` when
       the policy allows one attempt). ``attempt=None`` is a pause that is not a retry (the
       pacer): no attempt limit, no backoff and no budget; it waits only on a hint.
    3. The wait: the server's ``hint`` (else ``error.retry_after_seconds``) exactly, whatever
       its size up to ``policy.retry_after_max``; above it the error surfaces
       (``retry_after_too_long``), however large the hint. A hint that is not a number >= 0
       (NaN, negative, a string) is no hint. Without a hint: :func:`backoff_delay` for retry
       ``attempt - 1`` (``previous`` is the last wait, for decorrelated jitter).
    4. ``remaining`` (seconds left before a deadline; None: none) smaller than the wait
       surfaces the error (``deadline``).
    5. With ``charge`` (the default) a retry takes one token from ``policy.budget``; an empty
       budget surfaces the error (``budget_exhausted``).

    Pure but for the budget it charges and ``rng`` (default: the ``random`` module).

    Raises:
        TypeError: ``policy`` is not a RetryPolicy or ``attempt`` is not an int or None.
        ValueError: ``attempt`` is below 1.
    """
    if not isinstance(policy, RetryPolicy):
        raise TypeError(f"policy must be a RetryPolicy, not {type(policy).__name__}")
    if attempt is not None:
        if isinstance(attempt, bool) or not isinstance(attempt, int):
            raise TypeError(f"attempt must be an int or None, not {type(attempt).__name__}")
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
    fields = _decide(policy, attempt, error, hint, previous, remaining, idempotent, rng, charge)
    return _decision(WaitDecision, fields)


def _decide(
    policy: RetryPolicy,
    attempt: int | None,
    error: BaseException | None,
    hint: float | None,
    previous: float | None,
    remaining: float | None,
    idempotent: bool,
    rng: random.Random | None,
    charge: bool,
) -> tuple[float, str | None, bool]:
    """:func:`decide_wait` without the argument checks, positional, its fields as a plain
    tuple (the engine's hot path)."""
    if error is not None:
        if not isinstance(error, policy.retryable_errors):
            return _SURFACE_NOT_RETRYABLE
        if not idempotent and _safe_attr(error, "outcome_unknown") is True:
            return _SURFACE_OUTCOME_UNKNOWN
    if attempt is not None and attempt >= policy.max_attempts:
        return _SURFACE_MAX_ATTEMPTS if policy.max_attempts > 1 else _SURFACE_DISABLED
    wait = None if hint is None else _hint(hint)
    if wait is None and error is not None:
        # Our errors validate the attribute (a float or None); foreign ones may hold anything.
        carried = (
            getattr(error, "retry_after_seconds", None)
            if isinstance(error, SynapError)
            else _safe_attr(error, "retry_after_seconds")
        )
        if carried is not None:
            wait = _hint(carried)
    hinted = wait is not None
    if wait is None:
        wait = (
            0.0
            if attempt is None
            else _backoff(
                policy, attempt - 1, previous, rng.random if rng is not None else random.random
            )
        )
    elif wait > policy.retry_after_max or wait >= _HUGE:
        return wait, RETRY_AFTER_TOO_LONG, True
    if remaining is not None and wait > remaining:
        return wait, DEADLINE, hinted
    if charge and attempt is not None:
        budget = policy.budget
        if budget is not None and not budget.try_spend():
            return wait, BUDGET_EXHAUSTED, hinted
    return wait, None, hinted


# Builds a WaitDecision from a plain tuple without NamedTuple's Python-level ``__new__``.
_decision: Final[Callable[[type[WaitDecision], tuple[float, str | None, bool]], WaitDecision]] = (
    tuple.__new__
)


_HUGE: Final = MAX_RETRY_AFTER_SECONDS
_QUIET_REASONS: Final = frozenset({NOT_RETRYABLE, RETRIES_DISABLED})
#: Reasons to give up that report the wait they refused (else there was none to report).
_SHOWN_WAIT_REASONS: Final = frozenset({RETRY_AFTER_TOO_LONG, DEADLINE})
_SURFACE_NOT_RETRYABLE: Final = (0.0, NOT_RETRYABLE, False)
_SURFACE_OUTCOME_UNKNOWN: Final = (0.0, OUTCOME_UNKNOWN, False)
_SURFACE_MAX_ATTEMPTS: Final = (0.0, MAX_ATTEMPTS, False)
_SURFACE_DISABLED: Final = (0.0, RETRIES_DISABLED, False)


def notify_wait(
    decision: WaitDecision,
    *,
    attempt: int,
    max_attempts: int,
    error: BaseException,
    call_name: str | None = None,
    hooks: tuple[RetryHook, ...] = (),
) -> None:
    """Tell the retry hooks (``hooks``, then the process-wide ones) what :func:`decide_wait`
    decided after failed ``attempt``: a scheduled retry, or giving up. For loops that wait
    outside :class:`Retrying` (which tells its hooks itself), such as the stream reconnects.
    Costs nothing when no hook listens."""
    if not (hooks or _hooks.any_hooks()):
        return
    code, correlation_id = _describe(error)
    reason = decision.reason
    if reason is None:
        kind: Literal["scheduled", "giving_up"] = SCHEDULED
        wait: float | None = decision.seconds
    else:
        kind = GIVING_UP
        wait = decision.seconds if reason in _SHOWN_WAIT_REASONS else None
    event = RetryEvent(
        kind, call_name, attempt, max_attempts, wait, reason, error, code, correlation_id
    )
    _hooks.dispatch(event, hooks)


# --- per-call state, deadline and testing switch ----------------------------------------------


class _CallState:
    """What one retried call has done so far; the contextvar's value while a deadline is set."""

    __slots__ = ("attempt", "attempt_start", "clock", "deadline_at", "history", "offset",
                 "previous")

    def __init__(self, clock: ClockFn, start: float, deadline_at: float | None) -> None:
        self.clock = clock
        self.attempt = 1  # number of the attempt running or just failed (1-based)
        self.attempt_start = start
        # (attempt number, its error, its elapsed time, the wait planned after it)
        self.history: list[tuple[int, BaseException, float, float | None]] = []
        self.previous: float | None = None  # the last wait (decorrelated jitter)
        self.offset = 0.0  # waits recorded by testing() instead of slept: virtual time
        self.deadline_at = deadline_at  # on the clock's scale; None: unbounded

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without one."""
        if self.deadline_at is None:
            return None
        left = self.deadline_at - self.clock() - self.offset
        return left if left > 0.0 else 0.0


_ACTIVE: contextvars.ContextVar[_CallState | None] = contextvars.ContextVar(
    "synapse_sdk_retry_active", default=None
)


def remaining_time() -> float | None:
    """Seconds left before the deadline of the retried call running in this context.

    Use it as the timeout of each attempt (the transport does). None when no enclosing call has
    a deadline; never negative. Nested calls see the tighter of their own and the outer deadline.
    """
    state = _ACTIVE.get()
    return None if state is None else state.remaining()


_TESTING: list[list[float]] = []
_TESTING_LOCK = threading.Lock()


@contextmanager
def testing() -> Iterator[list[float]]:
    """Record planned waits instead of sleeping, for tests; yields the list of waits.

    Inside the block every retry, sync or async, in any thread, appends its planned wait
    (zero included) to the innermost active ``testing()`` list and does not sleep; deadline
    arithmetic advances as if the waits had passed, so deadlines behave as in production.
    Blocks nest; on exit the previous one records again.
    """
    waits: list[float] = []
    with _TESTING_LOCK:
        _TESTING.append(waits)
    try:
        yield waits
    finally:
        with _TESTING_LOCK:
            for index in range(len(_TESTING) - 1, -1, -1):
                if _TESTING[index] is waits:
                    del _TESTING[index]
                    break


# pytest would collect ``testing`` as a test when a test module imports it by name.
setattr(testing, "__test__", False)  # noqa: B010 - mypy does not know function attributes


def _record_wait(wait: float, state: _CallState) -> bool:
    """Hand ``wait`` to the active :func:`testing` block; False when there is none."""
    with _TESTING_LOCK:
        if not _TESTING:
            return False
        _TESTING[-1].append(wait)
    state.offset += wait
    return True


_CONTEXT: Any = BaseException.__dict__["__context__"]


def _reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc`` again keeping its own ``__context__`` (a plain ``raise exc`` inside some
    unrelated ``except`` block would overwrite it and corrupt the chain classifiers walk)."""
    context = exc.__context__
    try:
        raise exc
    finally:
        if exc.__context__ is not context:
            # Through the descriptor: a foreign exception may forbid setting attributes.
            _CONTEXT.__set__(exc, context)
        del exc, context  # this frame is in the traceback: hold no reference to the error


def _safe_attr(exc: BaseException, name: str) -> Any:
    """``getattr(exc, name, None)`` that survives a foreign exception's raising property."""
    try:
        return getattr(exc, name, None)
    except Exception:  # a foreign exception's property may raise anything
        return None


def _describe(exc: BaseException) -> tuple[str | None, str | None]:
    """``(error_code, correlation_id)`` of ``exc``: the backend's ``error_code`` when it has one,
    else the SDK's stable ``code``; only string values count."""
    code = _safe_attr(exc, "error_code")
    if not isinstance(code, str):
        code = _safe_attr(exc, "code")
    correlation_id = _safe_attr(exc, "correlation_id")
    return (
        code if isinstance(code, str) else None,
        correlation_id if isinstance(correlation_id, str) else None,
    )


# --- the engine ----------------------------------------------------------------------------


class Retrying:
    """Runs calls under one :class:`~synapse_sdk.config.RetryPolicy`; build once, call often.

    ``policy=None`` means one attempt (retries off). ``sleep``/``asleep``/``clock``/``rng`` are
    injectable for tests (``asleep`` defaults to ``asyncio.sleep``); ``name`` labels log events.
    ``hooks`` (callables taking a :class:`~synapse_sdk.telemetry.RetryEvent`) are called on each
    scheduled retry and when the engine gives up, before the process-wide ones
    (:func:`synapse_sdk.telemetry.set_retry_hooks`); one that raises is logged and ignored.
    A successful call costs a clock read and one try/except; every wait after a failure is
    :func:`decide_wait`'s. Thread- and task-safe: a Retrying holds no per-call state.

    Raises:
        TypeError: ``policy`` is not a RetryPolicy or None, a hook is not callable, ``rng`` is
            not a ``random.Random`` or ``name`` is not a string.
    """

    __slots__ = ("_asleep", "_catch", "_clock", "_deadline", "_hooks", "_max_attempts", "_rng",
                 "_sleep", "_success_hook", "name", "policy")

    def __init__(
        self,
        policy: RetryPolicy | None,
        *,
        sleep: SleepFn = time.sleep,
        asleep: AsyncSleepFn | None = None,
        clock: ClockFn = time.monotonic,
        rng: random.Random | None = None,
        name: str | None = None,
        hooks: Iterable[RetryHook] | None = None,
    ) -> None:
        if policy is None:
            policy = _DISABLED_POLICY
        elif not isinstance(policy, RetryPolicy):
            raise TypeError(f"policy must be a RetryPolicy or None, not {type(policy).__name__}")
        for label, hook in (("sleep", sleep), ("clock", clock), ("asleep", asleep)):
            if not callable(hook) and not (label == "asleep" and hook is None):
                raise TypeError(f"{label} must be callable, got {hook!r}")
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random or None, not {type(rng).__name__}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None, not {type(name).__name__}")
        self.policy = policy
        self.name = name
        self._hooks = _hooks.check_hooks(hooks, "hooks")
        self._sleep = sleep
        self._asleep = asleep
        self._clock = clock
        self._rng = rng
        self._max_attempts = policy.max_attempts
        # Caught at all: what may be retried, plus our own errors (to attach their history).
        # Anything else (a bug, cancellation) passes through untouched.
        self._catch: tuple[type[BaseException], ...] = (*policy.retryable_errors, SynapError)
        self._deadline = policy.deadline
        budget = policy.budget if policy.max_attempts > 1 else None
        self._success_hook = (
            budget.record_success if budget is not None and budget.refill_per_success else None
        )

    def __repr__(self) -> str:
        return f"Retrying({self.policy!r}, name={self.name!r})"

    # -- decisions shared by every style --

    def _new_state(self) -> _CallState:
        """State for a call starting now, bounded by the tighter of this policy's deadline and
        the enclosing retried call's (an inner retry must not sleep past the outer deadline)."""
        clock = self._clock
        now = clock()
        deadline_at = None if self._deadline is None else now + self._deadline
        outer = _ACTIVE.get()
        if outer is not None:
            outer_left = outer.remaining()
            if outer_left is not None and (deadline_at is None or now + outer_left < deadline_at):
                deadline_at = now + outer_left
        return _CallState(clock, now, deadline_at)

    @contextmanager
    def _deadline_scope(self) -> Iterator[_CallState]:
        """A new bounded call state, visible to :func:`remaining_time` inside the block."""
        state = self._new_state()
        token = _ACTIVE.set(state)
        try:
            yield state
        finally:
            _ACTIVE.reset(token)

    def _outer_bound(self, outer: _CallState) -> float | None:
        """The enclosing retried call's deadline on this engine's clock (None: it has none),
        for a call without a deadline of its own whose first attempt just failed."""
        outer_left = outer.remaining()
        return None if outer_left is None else self._clock() + outer_left

    def _plan(self, state: _CallState, exc: BaseException, idempotent: bool) -> float | None:
        """Decide what follows the failed attempt ``state.attempt`` (:func:`decide_wait`): the
        seconds to sleep before the next one (0.0 when the wait is zero or :func:`testing`
        recorded it), or None after attaching the history to ``exc`` and logging why the engine
        gives up."""
        now = self._clock()
        number = state.attempt
        deadline_at = state.deadline_at
        wait, reason, _ = _decide(
            self.policy,
            number,
            exc,
            None,
            state.previous,
            None if deadline_at is None else deadline_at - now - state.offset,
            idempotent,
            self._rng,
            True,
        )
        if reason is not None:
            state.history.append((number, exc, now - state.attempt_start, None))
            self._give_up(state, exc, reason, wait)
            return None
        state.history.append((number, exc, now - state.attempt_start, wait))
        state.previous = wait
        state.attempt = number + 1
        if self._hooks or _hooks.any_hooks() or logger.isEnabledFor(_INFO):
            self._report(_INFO, SCHEDULED, EVENT_SCHEDULED, None, number, wait, exc)
        if _TESTING and _record_wait(wait, state):
            return 0.0
        return wait

    def _report(
        self,
        level: int,
        kind: Literal["scheduled", "giving_up"],
        event: str,
        reason: str | None,
        attempt: int,
        wait: float | None,
        exc: BaseException,
    ) -> None:
        """Log ``event`` at ``level`` (when enabled) and tell the retry hooks (this engine's,
        then the process-wide ones): the failed ``attempt``, its error and what follows."""
        logged = logger.isEnabledFor(level)
        hooked = bool(self._hooks) or _hooks.any_hooks()
        if not (logged or hooked):
            return
        code, correlation_id = _describe(exc)
        if logged:
            extra: dict[str, object] = {
                "event": event,
                "call_name": self.name,
                "attempt": attempt,
                "max_attempts": self._max_attempts,
                "wait": wait,
                "error_type": type(exc).__name__,
                "error_code": code,
                "correlation_id": correlation_id,
            }
            if reason is not None:
                extra["reason"] = reason
            logger.log(level, event, extra=extra)
        if hooked:
            hook_event = RetryEvent(
                kind, self.name, attempt, self._max_attempts, wait, reason, exc, code,
                correlation_id,
            )
            _hooks.dispatch(hook_event, self._hooks)

    def _give_up(self, state: _CallState, exc: BaseException, reason: str, wait: float) -> None:
        """Attach the attempt history to ``exc`` and log why the engine stops."""
        records = tuple(
            AttemptRecord(number, type(error).__name__, _describe(error)[0], elapsed, planned)
            for number, error, elapsed, planned in state.history
        )
        state.history.clear()  # see _succeeded
        if isinstance(exc, SynapError):
            exc.attempts = records
        else:
            try:
                setattr(exc, "attempts", records)  # noqa: B010 - foreign type, unknown to mypy
            except (AttributeError, TypeError):
                pass  # an exception type that refuses new attributes keeps none
        if reason == MAX_ATTEMPTS:
            event, level = EVENT_EXHAUSTED, logging.WARNING
        elif reason in _QUIET_REASONS:
            event, level = EVENT_GIVING_UP, logging.DEBUG
        else:
            event, level = EVENT_GIVING_UP, logging.WARNING
        shown_wait = wait if reason in _SHOWN_WAIT_REASONS else None
        self._report(level, GIVING_UP, event, reason, state.attempt, shown_wait, exc)

    def _succeeded(self, state: _CallState) -> None:
        """A retried call succeeded: refill the budget and drop the failed attempts' errors.

        Each error's traceback holds the frames that hold the error: keeping them would leave
        reference cycles for the garbage collector after every successful retry.
        """
        state.history.clear()
        hook = self._success_hook
        if hook is not None:
            hook()

    # -- sync --

    def call(
        self, fn: Callable[..., T], /, *args: Any, idempotent: bool = True, **kwargs: Any
    ) -> T:
        """Call ``fn(*args, **kwargs)`` under the policy and return its result.

        ``idempotent=False`` marks an operation that must not run twice: an error with
        ``outcome_unknown`` then surfaces instead of being retried.

        Raises:
            BaseException: the last original error when the engine gives up, with ``attempts``
                attached; foreign non-retryable errors pass through untouched.
        """
        if self._deadline is not None:
            with self._deadline_scope() as state:
                return self._retry(state, 0.0, None, fn, args, kwargs, idempotent)
        # The success path: one clock read (the attempt's elapsed time) and one try/except.
        start = self._clock()
        try:
            result = fn(*args, **kwargs)
        except self._catch as error:
            exc: BaseException = error
        else:
            hook = self._success_hook
            if hook is not None:
                hook()
            return result
        try:
            return self._retry(None, start, exc, fn, args, kwargs, idempotent)
        finally:
            del exc  # see _succeeded

    def _retry(
        self,
        state: _CallState | None,
        start: float,
        exc: BaseException | None,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        idempotent: bool,
    ) -> T:
        """Plan, wait and run attempts until one succeeds or the engine gives up.

        Either ``state`` is given and ``exc`` is None (run the first attempt), or ``exc`` is
        the error of the first attempt, which started at ``start`` without a deadline.
        """
        # Runs outside any except block, so each attempt's errors get their own, true context.
        clock = self._clock
        catch = self._catch
        if state is None:
            outer = _ACTIVE.get()
            state = _CallState(clock, start, None if outer is None else self._outer_bound(outer))
        while True:
            if exc is not None:
                wait = self._plan(state, exc, idempotent)
                if wait is None:
                    try:
                        _reraise(exc)
                    finally:
                        exc = None  # see _succeeded
                if wait:
                    self._sleep(wait)
                state.attempt_start = clock()
            try:
                result = fn(*args, **kwargs)
            except catch as error:
                exc = error
            else:
                exc = None
                state.history.clear()  # see _succeeded (inlined: the hot path of a retry)
                hook = self._success_hook
                if hook is not None:
                    hook()
                return result

    # -- async --

    def _async_sleep(self) -> AsyncSleepFn:
        asleep = self._asleep
        if asleep is None:
            import asyncio  # only async users pay for importing asyncio

            asleep = self._asleep = asyncio.sleep
        return asleep

    async def acall(
        self, fn: Callable[..., Awaitable[T]], /, *args: Any, idempotent: bool = True, **kwargs: Any
    ) -> T:
        """Await ``fn(*args, **kwargs)`` under the policy and return its result.

        The async twin of :meth:`call`; waits use ``asleep``. Cancellation is never retried.

        Raises:
            BaseException: the last original error when the engine gives up, with ``attempts``
                attached; foreign non-retryable errors pass through untouched.
        """
        if self._deadline is not None:
            with self._deadline_scope() as state:
                return await self._aretry(state, 0.0, None, fn, args, kwargs, idempotent)
        start = self._clock()
        try:
            result = await fn(*args, **kwargs)
        except self._catch as error:
            exc: BaseException = error
        else:
            hook = self._success_hook
            if hook is not None:
                hook()
            return result
        try:
            return await self._aretry(None, start, exc, fn, args, kwargs, idempotent)
        finally:
            del exc  # see _succeeded

    async def _aretry(
        self,
        state: _CallState | None,
        start: float,
        exc: BaseException | None,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        idempotent: bool,
    ) -> T:
        """The async twin of :meth:`_retry`."""
        clock = self._clock
        catch = self._catch
        if state is None:
            outer = _ACTIVE.get()
            state = _CallState(clock, start, None if outer is None else self._outer_bound(outer))
        while True:
            if exc is not None:
                wait = self._plan(state, exc, idempotent)
                if wait is None:
                    try:
                        _reraise(exc)
                    finally:
                        exc = None  # see _succeeded
                if wait:
                    await self._async_sleep()(wait)
                state.attempt_start = clock()
            try:
                result = await fn(*args, **kwargs)
            except catch as error:
                exc = error
            else:
                exc = None
                state.history.clear()  # see _succeeded (inlined: the hot path of a retry)
                hook = self._success_hook
                if hook is not None:
                    hook()
                return result

    # -- iterator style --

    def attempts(self, *, idempotent: bool = True) -> Iterator[Attempt]:
        """Iterate attempts of a block: ``for attempt in r.attempts(): with attempt: ...``.

        A failure inside ``with attempt:`` that will be retried is suppressed and the loop goes
        on after the wait; a success ends the loop; giving up lets the last error propagate
        from the ``with`` statement, history attached.

        Raises:
            RuntimeError: the next attempt is requested before the previous one was used as
                ``with attempt:``.
        """
        return _Attempts(self, idempotent)

    def aattempts(self, *, idempotent: bool = True) -> AsyncIterator[Attempt]:
        """The async twin of :meth:`attempts`: ``async for attempt in r.aattempts():``; the waits
        between attempts are awaited with ``asleep``.

        Raises:
            RuntimeError: as :meth:`attempts`.
            TypeError: (on iteration) a plain ``for`` instead of ``async for``.
        """
        return _AsyncAttempts(self, idempotent)


class Attempt:
    """One attempt of an iterator-style retried block, used as ``with attempt:``.

    ``number`` counts from 1. Inside the block :func:`remaining_time` reports the deadline.
    """

    __slots__ = ("_owner", "_state", "_token", "finished", "number")

    def __init__(self, owner: _AttemptSeries, state: _CallState) -> None:
        self._owner = owner
        self._state = state
        self._token: contextvars.Token[_CallState | None] | None = None
        self.number = state.attempt
        self.finished = False

    def __repr__(self) -> str:
        return f"Attempt(number={self.number})"

    def __enter__(self) -> Attempt:
        state = self._state
        state.attempt_start = state.clock()
        if state.deadline_at is not None:
            self._token = _ACTIVE.set(state)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._token is not None:
            _ACTIVE.reset(self._token)
            self._token = None
        self.finished = True
        return self._owner._settle(self._state, exc)


class _AttemptSeries:
    """What both attempt iterators share: handing out attempts and settling their outcomes."""

    __slots__ = ("_current", "_done", "_idempotent", "_pending", "_retrying")

    def __init__(self, retrying: Retrying, idempotent: bool) -> None:
        self._retrying = retrying
        self._idempotent = idempotent
        self._current: Attempt | None = None
        self._pending = 0.0
        self._done = False

    def _advance(self) -> tuple[Attempt, float]:
        """The next attempt and the wait due before it; checks the ``with attempt:`` protocol."""
        current = self._current
        if current is None:
            state = self._retrying._new_state()
            wait = 0.0
        else:
            if not current.finished:
                raise RuntimeError(
                    "each attempt must be used as `with attempt:` before the next one is requested"
                )
            state = current._state
            wait = self._pending
        attempt = self._current = Attempt(self, state)
        return attempt, wait

    def _settle(self, state: _CallState, exc: BaseException | None) -> bool:
        """Called by ``Attempt.__exit__``: True suppresses ``exc`` (a retry follows)."""
        retrying = self._retrying
        if exc is None:
            self._done = True
            retrying._succeeded(state)
            return False
        if not isinstance(exc, retrying._catch):
            self._done = True
            return False
        wait = retrying._plan(state, exc, self._idempotent)
        if wait is None:
            self._done = True
            return False
        self._pending = wait
        return True


class _Attempts(_AttemptSeries):
    """The iterator behind :meth:`Retrying.attempts`."""

    __slots__ = ()

    def __iter__(self) -> _Attempts:
        return self

    def __next__(self) -> Attempt:
        if self._done:
            raise StopIteration
        attempt, wait = self._advance()
        if wait > 0.0:
            self._retrying._sleep(wait)
        return attempt


class _AsyncAttempts(_AttemptSeries):
    """The async iterator behind :meth:`Retrying.aattempts`; a plain ``for`` over it raises
    TypeError (its waits must be awaited, never slept on the event loop's thread)."""

    __slots__ = ()

    def __aiter__(self) -> _AsyncAttempts:
        return self

    async def __anext__(self) -> Attempt:
        if self._done:
            raise StopAsyncIteration
        attempt, wait = self._advance()
        if wait > 0.0:
            await self._retrying._async_sleep()(wait)
        return attempt

    def __iter__(self) -> NoReturn:
        raise TypeError(
            "Retrying.aattempts() is an async iterator: use `async for attempt in "
            "r.aattempts():` (or `for attempt in r.attempts():` in sync code)"
        )


# --- decorator and one-shot helpers ---------------------------------------------------------


def retry(
    policy: RetryPolicy | Retrying | None,
    *,
    idempotent: bool = True,
    name: str | None = None,
    sleep: SleepFn = time.sleep,
    asleep: AsyncSleepFn | None = None,
    clock: ClockFn = time.monotonic,
    rng: random.Random | None = None,
) -> Callable[[F], F]:
    """Decorate a sync or ``async def`` function so each call runs under ``policy``.

    ``policy`` may be a ready :class:`Retrying` (its hooks and name are used as they are).
    Otherwise one is built per decorated function, named after it unless ``name`` is given;
    the policy's budget is still shared with every other user of that policy instance.

    Raises:
        TypeError: the decorated object is not callable or is a (async) generator function
            (retrying the call would not retry the iteration), or an argument is of the wrong
            type (see :class:`Retrying`).
    """
    if isinstance(policy, Retrying):
        shared: Retrying | None = policy
    else:
        shared = None
        Retrying(policy, sleep=sleep, asleep=asleep, clock=clock, rng=rng, name=name)  # validate

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"@retry needs a callable, got {fn!r}")
        call = getattr(fn, "__call__", None)  # noqa: B004 - the object's own call method
        if any(inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f) for f in (fn, call)):
            raise TypeError(f"@retry cannot retry generator function {fn!r}")
        retrying = shared or Retrying(
            cast(RetryPolicy | None, policy),
            sleep=sleep,
            asleep=asleep,
            clock=clock,
            rng=rng,
            name=name or getattr(fn, "__qualname__", None) or type(fn).__qualname__,
        )
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call):
            wrapper: Callable[..., Any] = _async_wrapper(retrying, fn, idempotent)
        else:
            wrapper = _sync_wrapper(retrying, fn, idempotent)
        return cast(F, _look_like(wrapper, fn))

    return decorate


def _look_like(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``wrapper`` the face of ``fn``: what :func:`functools.wraps` copies (name, doc,
    ``__wrapped__``, so :func:`inspect.signature` shows ``fn``'s) plus ``__defaults__`` and
    ``__kwdefaults__``, which it does not. The wrapper takes ``*args, **kwargs`` only, so the
    copied defaults are for introspection and never change how a call binds."""
    functools.update_wrapper(wrapper, fn)
    for name in ("__defaults__", "__kwdefaults__"):
        value = getattr(fn, name, None)
        if value is not None:
            setattr(wrapper, name, value)
    return wrapper


# The wrappers repeat Retrying.call's success path with everything bound in closure cells:
# a decorated call then costs about what a hand-written try/except loop does.


def _sync_wrapper(retrying: Retrying, fn: Callable[..., T], idempotent: bool) -> Callable[..., T]:
    if retrying._deadline is not None:
        call = retrying.call

        def bounded(*args: Any, **kwargs: Any) -> T:
            return call(fn, *args, idempotent=idempotent, **kwargs)

        return bounded
    clock, catch, hook = retrying._clock, retrying._catch, retrying._success_hook
    slow = retrying._retry

    def wrapper(*args: Any, **kwargs: Any) -> T:
        start = clock()
        try:
            result = fn(*args, **kwargs)
        except catch as error:
            exc: BaseException = error
        else:
            if hook is not None:
                hook()
            return result
        try:
            return slow(None, start, exc, fn, args, kwargs, idempotent)
        finally:
            del exc  # see Retrying._succeeded

    return wrapper


def _async_wrapper(
    retrying: Retrying, fn: Callable[..., Awaitable[T]], idempotent: bool
) -> Callable[..., Awaitable[T]]:
    if retrying._deadline is not None:
        acall = retrying.acall

        async def bounded(*args: Any, **kwargs: Any) -> T:
            return await acall(fn, *args, idempotent=idempotent, **kwargs)

        return bounded
    clock, catch, hook = retrying._clock, retrying._catch, retrying._success_hook
    slow = retrying._aretry

    async def wrapper(*args: Any, **kwargs: Any) -> T:
        start = clock()
        try:
            result = await fn(*args, **kwargs)
        except catch as error:
            exc: BaseException = error
        else:
            if hook is not None:
                hook()
            return result
        try:
            return await slow(None, start, exc, fn, args, kwargs, idempotent)
        finally:
            del exc  # see Retrying._succeeded

    return wrapper


def retry_call(
    fn: Callable[..., T],
    /,
    *args: Any,
    policy: RetryPolicy | None,
    idempotent: bool = True,
    **kwargs: Any,
) -> T:
    """One-shot ``Retrying(policy).call(fn, *args, **kwargs)``; for hot paths keep a Retrying.

    Raises:
        BaseException: as :meth:`Retrying.call`.
    """
    return Retrying(policy).call(fn, *args, idempotent=idempotent, **kwargs)


async def aretry_call(
    fn: Callable[..., Awaitable[T]],
    /,
    *args: Any,
    policy: RetryPolicy | None,
    idempotent: bool = True,
    **kwargs: Any,
) -> T:
    """One-shot ``await Retrying(policy).acall(fn, *args, **kwargs)``.

    Raises:
        BaseException: as :meth:`Retrying.acall`.
    """
    return await Retrying(policy).acall(fn, *args, idempotent=idempotent, **kwargs)
