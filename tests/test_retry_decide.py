"""The one wait decision (``decide_wait``) and the retry engine's edges.

Every loop of the SDK that waits asks ``decide_wait``; these tests pin its rules (a hint honoured
exactly, a hint above ``retry_after_max`` surfacing however large, the deadline, the budget) and
the engine edges of issue 10: ``aattempts()`` under a plain ``for``, decorated functions keeping
their defaults and signature. Nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
from email.utils import formatdate
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synapse_sdk.config import RetryPolicy
from synapse_sdk.exceptions import (
    InvalidInputError,
    NetworkTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
)
from synapse_sdk.retry import (
    BUDGET_EXHAUSTED,
    DEADLINE,
    MAX_ATTEMPTS,
    NOT_RETRYABLE,
    OUTCOME_UNKNOWN,
    RETRIES_DISABLED,
    RETRY_AFTER_TOO_LONG,
    Retrying,
    WaitDecision,
    backoff_delay,
    decide_wait,
    retry,
    testing,
)
from synapse_sdk.retry_after import MAX_RETRY_AFTER_SECONDS, parse_retry_after

POLICY = RetryPolicy(jitter="none", budget_capacity=None, retry_after_max=60.0)

# Hostile Retry-After values as a server sends them, parsed as every client parses them.
DAY_AHEAD = formatdate(1_700_000_000.0 + 86_400, usegmt=True)
HOSTILE: list[tuple[str, float | None]] = [
    ("3600", 3600.0),
    (DAY_AHEAD, 86_400.0),
    ("172800", 172_800.0),  # two days
    ("1e999", MAX_RETRY_AFTER_SECONDS),
    ("9" * 400, MAX_RETRY_AFTER_SECONDS),
    ("0", 0.0),
    ("soon", None),
    ("-5", None),
    ("nan", None),
]


@pytest.mark.parametrize(("header", "parsed"), HOSTILE)
def test_hostile_hints_wait_exactly_within_the_cap_or_surface(
    header: str, parsed: float | None
) -> None:
    hint = parse_retry_after(header, now=1_700_000_000.0)
    assert hint == parsed
    decision = decide_wait(POLICY, 1, hint=hint)
    if parsed is None:  # garbage: no hint, the policy's backoff
        assert decision == WaitDecision(0.5, None, False)
    elif parsed > POLICY.retry_after_max:
        assert decision.surface and decision.reason == RETRY_AFTER_TOO_LONG
        assert decision.seconds == parsed and decision.hinted
    else:
        assert decision == WaitDecision(parsed, None, True)


def test_error_hint_is_read_and_an_explicit_hint_wins() -> None:
    limited = RateLimitError("slow down", retry_after_seconds=7.0)
    assert decide_wait(POLICY, 1, error=limited) == WaitDecision(7.0, None, True)
    assert decide_wait(POLICY, 1, error=limited, hint=2.0) == WaitDecision(2.0, None, True)
    assert decide_wait(POLICY, 1, error=RateLimitError("x", retry_after_seconds=61.0)).reason == (
        RETRY_AFTER_TOO_LONG
    )


def test_a_hint_at_the_cap_waits_and_just_above_surfaces() -> None:
    assert decide_wait(POLICY, 1, hint=60.0).seconds == 60.0
    assert decide_wait(POLICY, 1, hint=math.nextafter(60.0, math.inf)).surface
    # Even a policy with the largest cap refuses a hint too large to represent.
    widest = POLICY.replace(retry_after_max=MAX_RETRY_AFTER_SECONDS)
    assert decide_wait(widest, 1, hint=MAX_RETRY_AFTER_SECONDS).reason == RETRY_AFTER_TOO_LONG


@given(st.floats(min_value=0.0, max_value=1e6), st.floats(min_value=0.0, allow_nan=False))
def test_the_cap_is_monotonic(cap: float, hint: float) -> None:
    """Any hint above the cap surfaces, however large; none at or below it does."""
    decision = decide_wait(POLICY.replace(retry_after_max=cap), 1, hint=hint)
    assert decision.surface is (hint > cap)
    assert decision.seconds == hint


@pytest.mark.parametrize("garbage", [math.nan, -1.0, -math.inf, "3", True, [1]])
def test_a_garbage_hint_is_no_hint(garbage: Any) -> None:
    assert decide_wait(POLICY, 2, hint=garbage) == WaitDecision(1.0, None, False)


def test_backoff_follows_the_attempt_and_the_jitter() -> None:
    five = POLICY.replace(max_attempts=5)
    assert [decide_wait(five, n).seconds for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    policy = RetryPolicy(max_attempts=10, budget_capacity=None)  # full jitter
    for n in range(1, 10):
        wait = decide_wait(policy, n, rng=random.Random(n)).seconds
        assert wait == backoff_delay(policy, n - 1, rng=random.Random(n))
        assert 0.0 <= wait <= policy.backoff_max
    decorrelated = policy.replace(jitter="decorrelated")
    wait = decide_wait(decorrelated, 3, previous=4.0, rng=random.Random(1)).seconds
    assert wait == backoff_delay(decorrelated, 2, previous=4.0, rng=random.Random(1))


def test_why_an_error_surfaces() -> None:
    assert decide_wait(POLICY, 1, error=InvalidInputError("bad")).reason == NOT_RETRYABLE
    unknown = NetworkTimeoutError("read timed out", outcome_unknown=True)
    assert decide_wait(POLICY, 1, error=unknown, idempotent=False).reason == OUTCOME_UNKNOWN
    assert not decide_wait(POLICY, 1, error=unknown).surface
    assert decide_wait(POLICY, 3).reason == MAX_ATTEMPTS
    assert decide_wait(RetryPolicy.disabled(), 1).reason == RETRIES_DISABLED
    assert decide_wait(POLICY, 1, remaining=0.4) == WaitDecision(0.5, DEADLINE, False)
    assert decide_wait(POLICY, 1, hint=3.0, remaining=2.0) == WaitDecision(3.0, DEADLINE, True)
    assert not decide_wait(POLICY, 1, remaining=0.5).surface


def test_the_budget_is_charged_per_retry_and_never_for_a_pause() -> None:
    policy = RetryPolicy(budget_capacity=1, budget_refill_per_second=0.0)
    assert policy.budget is not None
    assert not decide_wait(policy, None, hint=1.0).surface  # a pause: no token
    assert not decide_wait(policy, 1, charge=False).surface
    assert policy.budget.tokens == 1.0
    assert not decide_wait(policy, 1).surface
    assert decide_wait(policy, 1).reason == BUDGET_EXHAUSTED
    assert decide_wait(policy, 1, error=InvalidInputError("x")).reason == NOT_RETRYABLE


def test_a_pause_waits_only_on_a_hint_and_has_no_attempt_limit() -> None:
    disabled = RetryPolicy.disabled()
    assert decide_wait(disabled, None) == WaitDecision(0.0, None, False)
    assert decide_wait(disabled, None, hint=2.0) == WaitDecision(2.0, None, True)
    assert decide_wait(disabled, None, hint=61.0).reason == RETRY_AFTER_TOO_LONG


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("policy", 1), {}, TypeError),
        ((POLICY, 1.5), {}, TypeError),
        ((POLICY, True), {}, TypeError),
        ((POLICY, 0), {}, ValueError),
    ],
)
def test_decide_wait_rejects_bad_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        decide_wait(*args, **kwargs)


# --- the engine asks decide_wait: hostile hints through Retrying --------------------------------


@pytest.mark.parametrize(("header", "parsed"), HOSTILE)
def test_retrying_never_waits_past_the_policy(header: str, parsed: float | None) -> None:
    slept: list[float] = []
    hint = parse_retry_after(header, now=1_700_000_000.0)
    calls = []

    def op() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RateLimitError("limited", retry_after_seconds=hint)
        return "ok"

    r = Retrying(POLICY, sleep=slept.append)
    if parsed is not None and parsed > POLICY.retry_after_max:
        with pytest.raises(RateLimitError) as caught:
            r.call(op)
        assert slept == [] and caught.value.attempts[0].wait is None
    else:
        assert r.call(op) == "ok"
        assert slept == ([] if parsed == 0.0 else [0.5 if parsed is None else parsed])
    assert all(wait <= POLICY.retry_after_max for wait in slept)


# --- engine edges ---------------------------------------------------------------------------


def test_plain_for_over_aattempts_raises_type_error() -> None:
    r = Retrying(POLICY, sleep=lambda s: pytest.fail("must not sleep"))
    with pytest.raises(TypeError, match="async for"):
        for _attempt in r.aattempts():  # type: ignore[attr-defined]
            pass


@pytest.mark.anyio
async def test_async_for_over_aattempts_still_works() -> None:
    waits: list[float] = []

    async def asleep(seconds: float) -> None:
        waits.append(seconds)

    r = Retrying(POLICY, asleep=asleep)
    numbers = []
    async for attempt in r.aattempts():
        with attempt:
            numbers.append(attempt.number)
            if attempt.number < 3:
                raise ServiceUnavailableError("down")
    assert numbers == [1, 2, 3] and waits == [0.5, 1.0]


def _plain(a: int, b: int = 2, *, c: int = 3, d: str = "x") -> tuple[int, int, int, str]:
    """Doc of plain."""
    return a, b, c, d


async def _coroutine(a: int, b: int = 2, *, c: int = 3) -> tuple[int, int, int]:
    return a, b, c


@pytest.mark.parametrize("policy", [POLICY, POLICY.replace(deadline=10.0)])
def test_decorated_functions_keep_defaults_kwdefaults_and_signature(policy: RetryPolicy) -> None:
    for fn in (_plain, _coroutine):
        decorated: Any = retry(policy)(fn)
        assert decorated.__defaults__ == fn.__defaults__
        assert decorated.__kwdefaults__ == fn.__kwdefaults__
        assert inspect.signature(decorated) == inspect.signature(fn)
        assert decorated.__name__ == fn.__name__ and decorated.__doc__ == fn.__doc__
        assert inspect.iscoroutinefunction(decorated) is inspect.iscoroutinefunction(fn)
    plain: Any = retry(policy)(_plain)
    assert plain(1) == (1, 2, 3, "x")  # the defaults still bind as the function's own
    assert plain(1, 5, d="y") == (1, 5, 3, "y")
    assert asyncio.run(retry(policy)(_coroutine)(4, c=9)) == (4, 2, 9)


def test_a_function_without_defaults_keeps_none() -> None:
    def bare(a: int) -> int:
        return a

    decorated: Any = retry(POLICY)(bare)
    assert decorated.__defaults__ is None and decorated.__kwdefaults__ is None
    assert decorated(3) == 3


def test_testing_records_the_decided_waits() -> None:
    with testing() as waits:
        r = Retrying(POLICY, sleep=lambda s: pytest.fail("must not sleep"))
        with pytest.raises(ServiceUnavailableError):
            r.call(lambda: (_ for _ in ()).throw(ServiceUnavailableError("down")))
    assert waits == [0.5, 1.0]


def test_a_garbage_explicit_hint_falls_back_to_the_errors_hint() -> None:
    limited = RateLimitError("slow down", retry_after_seconds=4.0)
    assert decide_wait(POLICY, 1, error=limited, hint=math.nan) == WaitDecision(4.0, None, True)


class _Foreign(Exception):
    """A foreign retryable error whose hint attribute raises."""

    @property
    def retry_after_seconds(self) -> float:
        raise RuntimeError("broken property")


def test_a_foreign_errors_broken_hint_is_no_hint() -> None:
    policy = POLICY.replace(retryable_errors=(_Foreign,))
    assert decide_wait(policy, 1, error=_Foreign()) == WaitDecision(0.5, None, False)
