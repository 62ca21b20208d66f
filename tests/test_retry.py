"""The retry engine, synchronous styles: what is retried, how long it waits, when it stops.

Time never passes for real: a fake clock moves when the engine sleeps (``FakeTime.sleep``) or
when an operation says it took time, and ``testing()`` records planned waits.
"""

from __future__ import annotations

import functools
import gc
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.exceptions import (
    AgentUnavailableError,
    AttemptRecord,
    BackendServiceUnavailableError,
    ContextNotFoundError,
    InvalidInputError,
    NetworkTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    SynapPermanentError,
    SynapTransientError,
)
from synapse_sdk.retry import (
    EVENT_EXHAUSTED,
    EVENT_GIVING_UP,
    EVENT_SCHEDULED,
    Retrying,
    backoff_delay,
    remaining_time,
    retry,
    retry_call,
    testing,
)
from synapse_testkit.scripted import FakeTime, Script

LOGGER = "synapse_sdk.retry"


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"sleep({seconds}) must not be called")


def engine(policy: RetryPolicy | None, time: FakeTime, **kwargs: Any) -> Retrying:
    return Retrying(policy, sleep=time.sleep, clock=time.clock, **kwargs)


NO_JITTER = RetryPolicy(jitter="none", budget_capacity=None)


# --- what is retried --------------------------------------------------------------------------


def test_success_returns_at_once_and_passes_arguments() -> None:
    time = FakeTime()
    op = Script("value")
    assert engine(RetryPolicy(), time).call(op, 1, 2, key="k") == "value"
    assert op.calls == 1
    assert op.seen == [((1, 2), {"key": "k"})]
    assert time.sleeps == []


def test_transient_errors_are_retried_until_success() -> None:
    time = FakeTime()
    op = Script(ServiceUnavailableError, NetworkTimeoutError, "ok")
    assert engine(NO_JITTER, time).call(op) == "ok"
    assert op.calls == 3
    assert time.sleeps == [0.5, 1.0]  # backoff_base * multiplier ** n, no jitter


@pytest.mark.parametrize(
    "cls", [cls for cls in SynapPermanentError.__subclasses__() if cls is not InvalidInputError]
    + [InvalidInputError],
)
def test_permanent_errors_surface_at_once(cls: type[SynapPermanentError]) -> None:
    time = FakeTime()
    error = cls("no") if cls is not InvalidInputError else InvalidInputError("bad")
    op = Script(error)
    with pytest.raises(cls) as caught:
        engine(RetryPolicy(), time).call(op)
    assert caught.value is error
    assert op.calls == 1
    assert time.sleeps == []
    assert [a.number for a in caught.value.attempts] == [1]


def test_foreign_non_retryable_errors_pass_through_untouched() -> None:
    time = FakeTime()
    bug = KeyError("missing")
    op = Script(bug)
    with pytest.raises(KeyError) as caught:
        engine(RetryPolicy(), time).call(op)
    assert caught.value is bug
    assert not hasattr(bug, "attempts")
    assert op.calls == 1


def test_exhausted_raises_the_last_original_error_with_history() -> None:
    time = FakeTime()
    errors = [ServiceUnavailableError(f"down {i}", correlation_id=f"c{i}") for i in range(3)]
    op = Script(*errors, time=time, took=0.25)
    with pytest.raises(ServiceUnavailableError) as caught:
        engine(NO_JITTER, time).call(op)
    assert caught.value is errors[-1]  # the original, not a wrapper, and the last one
    assert op.calls == 3
    assert caught.value.attempts == (
        AttemptRecord(1, "ServiceUnavailableError", "service_unavailable", 0.25, 0.5),
        AttemptRecord(2, "ServiceUnavailableError", "service_unavailable", 0.25, 1.0),
        AttemptRecord(3, "ServiceUnavailableError", "service_unavailable", 0.25, None),
    )


def test_history_names_each_attempts_own_error() -> None:
    time = FakeTime()
    op = Script(AgentUnavailableError("a"), InvalidInputError("bad"))
    with pytest.raises(InvalidInputError) as caught:
        engine(NO_JITTER, time).call(op)
    assert [(a.error_type, a.error_code, a.wait) for a in caught.value.attempts] == [
        ("AgentUnavailableError", "agent_unavailable", 0.5),
        ("InvalidInputError", "invalid_input", None),
    ]


def test_backend_error_code_is_recorded() -> None:
    time = FakeTime()
    op = Script(BackendServiceUnavailableError("x", status_code=503, error_code="maintenance"))
    with pytest.raises(BackendServiceUnavailableError) as caught:
        engine(NO_JITTER.replace(max_attempts=2), time).call(op)
    assert [a.error_code for a in caught.value.attempts] == ["maintenance", "maintenance"]


def test_error_chains_are_left_as_they_were() -> None:
    time = FakeTime()

    def op() -> None:
        try:
            raise OSError("socket closed")
        except OSError:
            raise NetworkTimeoutError("timed out")  # noqa: B904 - the implicit context is the point

    try:
        raise LookupError("the caller's own handling")
    except LookupError:
        with pytest.raises(NetworkTimeoutError) as caught:
            engine(NO_JITTER, time).call(op)
    assert isinstance(caught.value.__context__, OSError)
    assert len(caught.value.attempts) == 3


def test_an_attempt_does_not_see_the_previous_attempts_error_as_context() -> None:
    time = FakeTime()
    raised: list[BaseException] = []

    def op() -> None:
        error = ServiceUnavailableError(str(len(raised)))
        raised.append(error)
        raise error

    with pytest.raises(ServiceUnavailableError):
        engine(NO_JITTER, time).call(op)
    assert all(error.__context__ is None for error in raised)


def test_retries_off_with_sdk_config_retry_policy_none() -> None:
    time = FakeTime()
    op = Script(ServiceUnavailableError)
    config = SDKConfig(retry_policy=None)
    with pytest.raises(ServiceUnavailableError) as caught:
        engine(config.retry_policy, time).call(op)
    assert op.calls == 1
    assert len(caught.value.attempts) == 1
    op2 = Script(ServiceUnavailableError)
    with pytest.raises(ServiceUnavailableError):
        engine(config.effective_retry_policy, time).call(op2)
    assert op2.calls == 1
    assert time.sleeps == []


def test_retries_off_with_disabled_policy() -> None:
    time = FakeTime()
    op = Script(RateLimitError("x", retry_after_seconds=1))
    with pytest.raises(RateLimitError):
        engine(RetryPolicy.disabled(), time).call(op)
    assert op.calls == 1


def test_custom_retryable_list_adds_a_permanent_error_and_removes_a_transient_one() -> None:
    policy = NO_JITTER.replace(
        retryable_errors=(
            NetworkTimeoutError,
            RateLimitError,
            ServiceUnavailableError,
            ContextNotFoundError,
        )
    )
    time = FakeTime()
    op = Script(ContextNotFoundError("not yet"), "found")
    assert engine(policy, time).call(op) == "found"
    assert op.calls == 2
    op2 = Script(AgentUnavailableError("restarting"))
    with pytest.raises(AgentUnavailableError):
        engine(policy, time).call(op2)
    assert op2.calls == 1


class FlakyConnection(ConnectionError):
    """A foreign, retryable-by-choice error."""


class Rigid(Exception):
    """A foreign error that refuses new attributes."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(name)


def test_foreign_errors_in_the_list_are_retried_and_get_history_best_effort() -> None:
    time = FakeTime()
    policy = NO_JITTER.replace(retryable_errors=(FlakyConnection, Rigid))
    error = FlakyConnection("reset")
    op = Script(error)
    with pytest.raises(FlakyConnection):
        engine(policy, time).call(op)
    assert op.calls == 3
    assert [a.error_type for a in error.attempts] == ["FlakyConnection"] * 3  # type: ignore[attr-defined]
    rigid = Rigid()
    op2 = Script(rigid)
    with pytest.raises(Rigid) as caught:
        engine(policy, time).call(op2)
    assert caught.value is rigid
    assert op2.calls == 3


# --- how long it waits ------------------------------------------------------------------------


def test_rate_limit_waits_exactly_retry_after_not_backoff() -> None:
    time = FakeTime()
    op = Script(RateLimitError("slow", retry_after_seconds=2.5),
                RateLimitError("slow", retry_after_seconds=7), "ok")
    policy = RetryPolicy(backoff_max=1.0)  # the hint is honoured even above backoff_max
    assert engine(policy, time).call(op) == "ok"
    assert time.sleeps == [2.5, 7.0]


def test_rate_limit_without_a_hint_uses_backoff() -> None:
    time = FakeTime()
    op = Script(RateLimitError("slow"), "ok")
    assert engine(NO_JITTER, time).call(op) == "ok"
    assert time.sleeps == [0.5]


def test_a_backend_503_with_retry_after_waits_exactly_that() -> None:
    time = FakeTime()
    op = Script(BackendServiceUnavailableError("outage", status_code=503, retry_after_seconds=4),
                "ok")
    assert engine(RetryPolicy(), time).call(op) == "ok"
    assert time.sleeps == [4.0]


def test_retry_after_above_the_cap_surfaces_at_once(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    error = RateLimitError("come back tomorrow", retry_after_seconds=120)
    op = Script(error)
    caplog.set_level(logging.DEBUG, LOGGER)
    with pytest.raises(RateLimitError) as caught:
        engine(RetryPolicy(retry_after_max=60), time).call(op)
    assert caught.value is error
    assert op.calls == 1
    assert time.sleeps == []
    (record,) = caplog.records
    assert record.getMessage() == EVENT_GIVING_UP
    assert record.reason == "retry_after_too_long"  # type: ignore[attr-defined]
    assert record.wait == 120.0  # type: ignore[attr-defined]
    assert record.levelno == logging.WARNING


def test_retry_after_equal_to_the_cap_is_waited() -> None:
    time = FakeTime()
    op = Script(RateLimitError("x", retry_after_seconds=60), "ok")
    assert engine(RetryPolicy(retry_after_max=60), time).call(op) == "ok"
    assert time.sleeps == [60.0]


def test_zero_waits_never_sleep() -> None:
    op = Script(RateLimitError("x", retry_after_seconds=0), ServiceUnavailableError, "ok")
    policy = RetryPolicy(backoff_base=0.0, backoff_max=0.0)
    assert Retrying(policy, sleep=no_sleep).call(op) == "ok"
    assert op.calls == 3


def test_full_jitter_is_the_default_and_bounded() -> None:
    time = FakeTime()
    op = Script(*([ServiceUnavailableError] * 5), "ok")
    policy = RetryPolicy(max_attempts=6, budget_capacity=None)
    assert engine(policy, time, rng=random.Random(7)).call(op) == "ok"
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0]
    assert all(0.0 <= w <= c for w, c in zip(time.sleeps, ceilings, strict=True))
    assert time.sleeps != ceilings  # jittered


def test_engine_waits_match_backoff_delay_beyond_the_precomputed_table() -> None:
    time = FakeTime()
    policy = RetryPolicy(max_attempts=40, jitter="none", backoff_base=0.001, backoff_max=1e6,
                         multiplier=1.5, budget_capacity=None)
    op = Script(ServiceUnavailableError)
    with pytest.raises(ServiceUnavailableError):
        engine(policy, time).call(op)
    assert time.sleeps == [backoff_delay(policy, n) for n in range(39)]


def test_seeded_rng_makes_waits_reproducible() -> None:
    runs = []
    for _ in range(2):
        time = FakeTime()
        op = Script(ServiceUnavailableError)
        with pytest.raises(ServiceUnavailableError):
            engine(RetryPolicy(max_attempts=4, jitter="decorrelated"), time,
                   rng=random.Random(3)).call(op)
        runs.append(time.sleeps)
    assert runs[0] == runs[1]
    assert len(runs[0]) == 3


# --- backoff_delay ----------------------------------------------------------------------------

policies = st.builds(
    lambda base, extra, multiplier, jitter: RetryPolicy(
        backoff_base=base, backoff_max=base + extra, multiplier=multiplier, jitter=jitter
    ),
    st.floats(min_value=0.0, max_value=100.0),
    st.floats(min_value=0.0, max_value=1000.0),
    st.floats(min_value=1.0, max_value=10.0),
    st.sampled_from(["none", "full", "equal", "decorrelated"]),
)


@given(policies, st.integers(min_value=0, max_value=10**9), st.integers(0, 2**32),
       st.one_of(st.none(), st.floats(min_value=0.0, max_value=1e6)))
def test_backoff_delay_bounds_per_jitter_mode(
    policy: RetryPolicy, n: int, seed: int, previous: float | None
) -> None:
    delay = backoff_delay(policy, n, rng=random.Random(seed), previous=previous)
    base, cap = policy.backoff_base, policy.backoff_max
    try:
        ceiling = min(cap, base * policy.multiplier**n)
    except OverflowError:
        ceiling = cap if base > 0 else 0.0
    assert 0.0 <= delay <= cap
    if policy.jitter == "none":
        assert delay == ceiling
    elif policy.jitter == "full":
        assert delay <= ceiling
    elif policy.jitter == "equal":
        assert ceiling / 2 <= delay <= ceiling
    else:
        upper = max(base, 3 * (base if previous is None else previous))
        assert min(base, cap) <= delay <= min(cap, upper) + 1e-9


@pytest.mark.parametrize(
    ("n", "multiplier"),
    [(n, m) for n in (64, 1100, 10**6, 10**18, 10**100) for m in (2, 2.0, 10.0)]
    + [(10**6, 1.0001), (10**100, 1.0001)],
)
def test_backoff_delay_never_overflows(n: int, multiplier: float) -> None:
    policy = RetryPolicy(jitter="none", multiplier=multiplier, backoff_max=30.0)
    assert backoff_delay(policy, n) == 30.0


def test_backoff_delay_examples() -> None:
    policy = RetryPolicy(jitter="none")
    assert [backoff_delay(policy, n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert backoff_delay(RetryPolicy(jitter="none", backoff_base=0.0), 5) == 0.0
    equal = RetryPolicy(jitter="equal")
    assert 2.0 <= backoff_delay(equal, 3, rng=random.Random(1)) <= 4.0


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((RetryPolicy(), -1), {}, ValueError),
        ((RetryPolicy(), 1.0), {}, TypeError),
        ((RetryPolicy(), True), {}, TypeError),
        (("policy", 1), {}, TypeError),
        ((RetryPolicy(), 1), {"previous": -1.0}, ValueError),
        ((RetryPolicy(), 1), {"previous": float("nan")}, ValueError),
        ((RetryPolicy(), 1), {"rng": 42}, TypeError),
    ],
)
def test_backoff_delay_rejects_bad_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        backoff_delay(*args, **kwargs)


# --- deadline ---------------------------------------------------------------------------------


def test_deadline_bounds_the_whole_call(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    seen: list[float | None] = []

    def op() -> None:
        seen.append(remaining_time())
        time.now += 1.0
        raise ServiceUnavailableError("down")

    policy = RetryPolicy(max_attempts=10, jitter="none", backoff_base=2.0, deadline=10.0,
                         budget_capacity=None)
    caplog.set_level(logging.INFO, LOGGER)
    with pytest.raises(ServiceUnavailableError) as caught:
        engine(policy, time).call(op)
    # t=0 attempt 1 (1 s), wait 2 -> t=3 attempt 2 (1 s), wait 4 -> t=8 attempt 3 (1 s);
    # at t=9 the next wait (8 s) would cross the deadline at t=10: give up now.
    assert time.sleeps == [2.0, 4.0]
    assert seen == [10.0, 7.0, 2.0]
    assert len(caught.value.attempts) == 3
    assert caplog.records[-1].reason == "deadline"  # type: ignore[attr-defined]
    assert remaining_time() is None  # nothing active outside the call


def test_remaining_time_is_none_without_a_deadline() -> None:
    seen: list[float | None] = []
    Retrying(RetryPolicy()).call(lambda: seen.append(remaining_time()))
    assert seen == [None]


def test_nested_call_is_bounded_by_the_outer_deadline() -> None:
    time = FakeTime()
    inner_seen: list[float | None] = []

    def inner_op() -> None:
        inner_seen.append(remaining_time())
        time.now += 1.0
        raise ServiceUnavailableError("inner")

    inner = engine(RetryPolicy(max_attempts=10, jitter="none", backoff_base=1.0, multiplier=1.0,
                               deadline=100.0, budget_capacity=None), time)
    no_deadline = engine(RetryPolicy(max_attempts=10, jitter="none", backoff_base=1.0,
                                     multiplier=1.0, budget_capacity=None), time)
    outer = engine(RetryPolicy(max_attempts=1, deadline=5.0), time)

    with pytest.raises(ServiceUnavailableError):
        outer.call(inner.call, inner_op)
    assert inner_seen[0] == 5.0  # the tighter outer deadline
    assert time.sleeps == [1.0, 1.0]  # attempt, wait, attempt, wait, attempt: t=5 reached
    time.sleeps.clear()
    inner_seen.clear()
    with pytest.raises(ServiceUnavailableError):
        outer.call(no_deadline.call, inner_op)
    assert time.sleeps == [1.0, 1.0]  # an inner call without a deadline is bounded as well
    assert inner_seen[0] == 5.0


def test_deadline_with_testing_advances_virtual_time() -> None:
    policy = RetryPolicy(max_attempts=10, jitter="none", backoff_base=0.4, multiplier=1.0,
                         deadline=1.0, budget_capacity=None)
    op = Script(ServiceUnavailableError)
    with testing() as waits, pytest.raises(ServiceUnavailableError):
        Retrying(policy, sleep=no_sleep).call(op)
    assert waits == [0.4, 0.4]  # a third 0.4 s wait would end past the 1 s deadline
    assert op.calls == 3


# --- idempotency ------------------------------------------------------------------------------


def test_outcome_unknown_failure_of_a_non_idempotent_call_is_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    error = NetworkTimeoutError("read timed out after sending", outcome_unknown=True)
    op = Script(error, "ok")
    caplog.set_level(logging.INFO, LOGGER)
    with pytest.raises(NetworkTimeoutError) as caught:
        engine(RetryPolicy(), time).call(op, idempotent=False)
    assert caught.value is error
    assert op.calls == 1
    assert caplog.records[-1].reason == "outcome_unknown"  # type: ignore[attr-defined]
    assert op.seen == [((), {})]  # ``idempotent`` is ours, never passed on


def test_idempotent_calls_retry_outcome_unknown_failures() -> None:
    time = FakeTime()
    op = Script(NetworkTimeoutError("x", outcome_unknown=True), "ok")
    assert engine(RetryPolicy(), time).call(op) == "ok"  # idempotent=True: e.g. idempotency key
    assert op.calls == 2


def test_known_outcome_failures_of_non_idempotent_calls_are_retried() -> None:
    time = FakeTime()
    op = Script(ServiceUnavailableError("refused before processing"), "ok")
    assert engine(RetryPolicy(), time).call(op, idempotent=False) == "ok"
    assert op.calls == 2


# --- budget -----------------------------------------------------------------------------------


def test_empty_budget_surfaces_the_error(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    policy = RetryPolicy(backoff_base=0.0, budget_capacity=2, budget_refill_per_success=0.0,
                         budget_refill_per_second=0.0)
    op = Script(ServiceUnavailableError)
    with pytest.raises(ServiceUnavailableError):
        engine(policy, time).call(op)
    assert op.calls == 3  # two retries spent both tokens
    caplog.set_level(logging.INFO, LOGGER)
    op2 = Script(ServiceUnavailableError)
    with pytest.raises(ServiceUnavailableError):
        engine(policy, time).call(op2)  # another Retrying, the same policy: the same budget
    assert op2.calls == 1
    assert caplog.records[-1].reason == "budget_exhausted"  # type: ignore[attr-defined]
    assert policy.budget is not None and policy.budget.tokens == 0.0


def test_success_refills_the_budget() -> None:
    policy = RetryPolicy(backoff_base=0.0, budget_capacity=1, budget_refill_per_success=0.5,
                         budget_refill_per_second=0.0)
    assert policy.budget is not None
    r = Retrying(policy, sleep=no_sleep)
    assert r.call(Script(ServiceUnavailableError, "ok")) == "ok"
    assert policy.budget.tokens == 0.5  # one spent, half given back
    r.call(Script("ok"))
    assert policy.budget.tokens == 1.0


def test_budget_holds_under_many_concurrent_threads() -> None:
    capacity = 20
    policy = RetryPolicy(max_attempts=5, backoff_base=0.0, budget_capacity=capacity,
                         budget_refill_per_success=0.0, budget_refill_per_second=0.0)
    r = Retrying(policy, sleep=no_sleep)
    attempts = 0
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def op() -> None:
        nonlocal attempts
        with lock:
            attempts += 1
        raise ServiceUnavailableError("overloaded")

    def worker() -> None:
        barrier.wait()
        for _ in range(10):
            with pytest.raises(ServiceUnavailableError):
                r.call(op)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    calls = 16 * 10
    assert attempts - calls == capacity  # every token spent once, and no more retries
    assert policy.budget is not None and policy.budget.tokens == 0.0


# --- log events -------------------------------------------------------------------------------


def test_log_events_are_stable_with_structured_fields(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    secret = "token=sk-live-SECRET"
    op = Script(ServiceUnavailableError(f"down ({secret})", correlation_id="corr-1"))
    caplog.set_level(logging.DEBUG, LOGGER)
    with pytest.raises(ServiceUnavailableError):
        engine(NO_JITTER, time, name="tasks.bulk_fetch").call(op)
    assert caplog.record_tuples == [
        (LOGGER, logging.INFO, EVENT_SCHEDULED),
        (LOGGER, logging.INFO, EVENT_SCHEDULED),
        (LOGGER, logging.WARNING, EVENT_EXHAUSTED),
    ]
    first, second, last = caplog.records
    for record, attempt in ((first, 1), (second, 2), (last, 3)):
        assert record.attempt == attempt  # type: ignore[attr-defined]
        assert record.error_type == "ServiceUnavailableError"  # type: ignore[attr-defined]
        assert record.error_code == "service_unavailable"  # type: ignore[attr-defined]
        assert record.correlation_id == "corr-1"  # type: ignore[attr-defined]
        assert record.call_name == "tasks.bulk_fetch"  # type: ignore[attr-defined]
        assert record.max_attempts == 3  # type: ignore[attr-defined]
        assert secret not in record.getMessage()
        assert all(secret not in str(value) for value in vars(record).values())
    assert (first.wait, second.wait, last.wait) == (0.5, 1.0, None)  # type: ignore[attr-defined]
    assert first.event == EVENT_SCHEDULED  # type: ignore[attr-defined]
    assert last.reason == "max_attempts"  # type: ignore[attr-defined]


def test_not_retryable_gives_up_quietly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    with pytest.raises(InvalidInputError):
        Retrying(RetryPolicy()).call(Script(InvalidInputError("bad")))
    assert caplog.record_tuples == [(LOGGER, logging.DEBUG, EVENT_GIVING_UP)]
    assert caplog.records[0].reason == "not_retryable"  # type: ignore[attr-defined]
    caplog.clear()
    with pytest.raises(ServiceUnavailableError):
        Retrying(None).call(Script(ServiceUnavailableError))
    assert caplog.record_tuples == [(LOGGER, logging.DEBUG, EVENT_GIVING_UP)]
    assert caplog.records[0].reason == "retries_disabled"  # type: ignore[attr-defined]


def test_success_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    Retrying(RetryPolicy()).call(Script("ok"))
    assert caplog.records == []


# --- testing() --------------------------------------------------------------------------------


def test_testing_records_planned_waits_without_sleeping() -> None:
    op = Script(RateLimitError("x", retry_after_seconds=3), ServiceUnavailableError, "ok")
    with testing() as waits:
        assert Retrying(NO_JITTER, sleep=no_sleep).call(op) == "ok"
    assert waits == [3.0, 1.0]  # the hint replaces retry 0's backoff; retry 1 backs off


def test_testing_records_zero_waits_too() -> None:
    with testing() as waits:
        Retrying(RetryPolicy(backoff_base=0.0), sleep=no_sleep).call(
            Script(ServiceUnavailableError, "ok")
        )
    assert waits == [0.0]


def test_testing_nests_and_restores() -> None:
    time = FakeTime()
    r = engine(NO_JITTER, time)
    with testing() as outer:
        r.call(Script(ServiceUnavailableError, "ok"))
        with testing() as inner:
            r.call(Script(RateLimitError("x", retry_after_seconds=9), "ok"))
        r.call(Script(ServiceUnavailableError, ServiceUnavailableError, "ok"))
    assert inner == [9.0]
    assert outer == [0.5, 0.5, 1.0]
    assert time.sleeps == []
    r.call(Script(ServiceUnavailableError, "ok"))
    assert time.sleeps == [0.5]  # outside testing() the engine sleeps again


def test_testing_sees_waits_planned_in_other_threads() -> None:
    r = Retrying(NO_JITTER, sleep=no_sleep)
    with testing() as waits:
        thread = threading.Thread(target=r.call, args=(Script(ServiceUnavailableError, "ok"),))
        thread.start()
        thread.join()
    assert waits == [0.5]


def test_testing_is_not_collected_as_a_test() -> None:
    assert getattr(testing, "__test__", True) is False


# --- iterator style ---------------------------------------------------------------------------


def test_attempts_iterator_retries_a_block() -> None:
    time = FakeTime()
    op = Script(ServiceUnavailableError, AgentUnavailableError, "ok")
    numbers = []
    for attempt in engine(NO_JITTER, time).attempts():
        with attempt:
            numbers.append(attempt.number)
            result = op()
    assert result == "ok"
    assert numbers == [1, 2, 3]
    assert time.sleeps == [0.5, 1.0]


def test_attempts_iterator_gives_up_with_the_last_error() -> None:
    time = FakeTime()
    errors = [ServiceUnavailableError(str(i)) for i in range(3)]
    op = Script(*errors)
    with pytest.raises(ServiceUnavailableError) as caught:
        for attempt in engine(NO_JITTER, time).attempts():
            with attempt:
                op()
    assert caught.value is errors[-1]
    assert [a.number for a in caught.value.attempts] == [1, 2, 3]


def test_attempts_iterator_lets_permanent_and_foreign_errors_through() -> None:
    time = FakeTime()
    for error in (InvalidInputError("bad"), KeyError("k")):
        runs = 0
        with pytest.raises(type(error)):
            for attempt in engine(RetryPolicy(), time).attempts():
                with attempt:
                    runs += 1
                    raise error
        assert runs == 1


def test_attempts_iterator_respects_idempotency_and_deadline() -> None:
    time = FakeTime()
    runs = 0
    with pytest.raises(NetworkTimeoutError):
        for attempt in engine(RetryPolicy(), time).attempts(idempotent=False):
            with attempt:
                runs += 1
                raise NetworkTimeoutError("x", outcome_unknown=True)
    assert runs == 1
    seen = []
    policy = RetryPolicy(jitter="none", deadline=3.0, max_attempts=10, budget_capacity=None)
    with pytest.raises(ServiceUnavailableError):
        for attempt in engine(policy, time).attempts():
            with attempt:
                seen.append(remaining_time())
                raise ServiceUnavailableError("x")
    assert seen == [3.0, 2.5, 1.5]  # waits 0.5 and 1.0; a 2.0 s wait would cross the deadline
    assert remaining_time() is None


def test_attempts_iterator_requires_with_attempt() -> None:
    iterator = Retrying(RetryPolicy()).attempts()
    next(iterator)
    with pytest.raises(RuntimeError, match="with attempt"):
        next(iterator)


def test_attempts_iterator_with_testing() -> None:
    op = Script(ServiceUnavailableError, "ok")
    with testing() as waits:
        for attempt in Retrying(NO_JITTER, sleep=no_sleep).attempts():
            with attempt:
                op()
    assert waits == [0.5]


# --- decorator and helpers --------------------------------------------------------------------


def test_decorator_retries_and_keeps_the_function_identity(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    op = Script(ServiceUnavailableError, "ok")

    @retry(NO_JITTER, sleep=time.sleep, clock=time.clock)
    def fetch(item_id: int, *, verbose: bool = False) -> str:
        """Fetch one item."""
        return str(op(item_id, verbose=verbose))

    caplog.set_level(logging.INFO, LOGGER)
    assert fetch(7, verbose=True) == "ok"
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch one item."
    assert fetch.__wrapped__ is not None  # type: ignore[attr-defined]
    assert op.seen == [((7,), {"verbose": True})] * 2
    assert time.sleeps == [0.5]
    assert caplog.records[0].call_name.endswith("fetch")  # type: ignore[attr-defined]


def test_decorator_with_a_ready_retrying_and_a_deadline() -> None:
    time = FakeTime()
    r = engine(RetryPolicy(jitter="none", deadline=1.0), time, name="custom")
    seen = []

    @retry(r)
    def op() -> str:
        seen.append(remaining_time())
        if len(seen) < 2:
            raise ServiceUnavailableError("x")
        return "ok"

    assert op() == "ok"
    assert seen == [1.0, 0.5]


def test_decorator_rejects_what_it_cannot_retry() -> None:
    def gen() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        retry(RetryPolicy())(gen)
    with pytest.raises(TypeError, match="callable"):
        retry(RetryPolicy())(42)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="policy"):
        retry("fast")  # type: ignore[arg-type]


def test_decorator_non_idempotent() -> None:
    op = Script(NetworkTimeoutError("x", outcome_unknown=True), "ok")
    decorated = retry(RetryPolicy(), idempotent=False, sleep=no_sleep)(op)
    with pytest.raises(NetworkTimeoutError):
        decorated()
    assert op.calls == 1


def test_retry_call() -> None:
    op = Script(ServiceUnavailableError, "ok")
    with testing() as waits:
        assert retry_call(op, 1, policy=NO_JITTER, key="v") == "ok"
    assert waits == [0.5]
    assert op.seen[-1] == ((1,), {"key": "v"})
    op2 = Script(ServiceUnavailableError)
    with pytest.raises(ServiceUnavailableError):
        retry_call(op2, policy=None)
    assert op2.calls == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"policy": "x"}, "policy"), ({"sleep": 3}, "sleep"), ({"clock": None}, "clock"),
     ({"rng": 5}, "rng"), ({"name": 5}, "name"), ({"asleep": "x"}, "asleep")],
)
def test_retrying_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    args = {"policy": RetryPolicy(), **kwargs}
    policy = args.pop("policy")
    with pytest.raises(TypeError, match=match):
        Retrying(policy, **args)


def test_retrying_repr_and_reuse() -> None:
    r = Retrying(RetryPolicy(), name="x")
    assert repr(r).startswith("Retrying(RetryPolicy(")
    assert "name='x'" in repr(r)
    partial: Callable[[], Any] = functools.partial(r.call, Script("a"))
    assert partial() == "a" and partial() == "a"


def test_transient_subclass_defined_by_a_user_is_retried() -> None:
    class QuotaRefreshing(SynapTransientError):
        """A user's own transient error."""

    op = Script(QuotaRefreshing("x"), "ok")
    with testing():
        assert Retrying(RetryPolicy()).call(op) == "ok"


# --- memory ----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["call", "decorator", "attempts", "give_up"])
def test_retries_leave_no_reference_cycles(style: str) -> None:
    """Errors keep their tracebacks and tracebacks keep frames: the engine must not keep the
    errors in those frames, or every retried call would leave garbage for the collector."""
    r = Retrying(RetryPolicy(backoff_base=0.0), sleep=no_sleep)
    op = Script(ServiceUnavailableError, ServiceUnavailableError, "ok")
    gc.disable()
    try:
        gc.collect()
        if style == "call":
            r.call(op)
        elif style == "decorator":
            retry(r)(op)()
        elif style == "attempts":
            for attempt in r.attempts():
                with attempt:
                    op()
        else:
            try:
                Retrying(NO_JITTER.replace(backoff_base=0.0), sleep=no_sleep).call(
                    Script(ServiceUnavailableError)
                )
            except ServiceUnavailableError:
                pass
        assert gc.collect() == 0
    finally:
        gc.enable()
