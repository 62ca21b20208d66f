"""The retry engine under asyncio: the async twin of every behaviour in ``test_retry.py``.

Waits go to an injected ``asleep`` that records them and moves a fake clock; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
from typing import Any

import pytest

from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.exceptions import (
    AgentUnavailableError,
    AttemptRecord,
    ContextNotFoundError,
    InvalidInputError,
    NetworkTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
)
from synapse_sdk.retry import (
    EVENT_EXHAUSTED,
    EVENT_GIVING_UP,
    EVENT_SCHEDULED,
    Retrying,
    aretry_call,
    remaining_time,
    retry,
    testing,
)
from synapse_testkit.scripted import AsyncScript, FakeTime

pytestmark = pytest.mark.anyio
LOGGER = "synapse_sdk.retry"
NO_JITTER = RetryPolicy(jitter="none", budget_capacity=None)


#: The async tests' fake time starts elsewhere than the sync tests' (moved by awaited waits).
START = 50.0


def sync_sleep_forbidden(seconds: float) -> None:
    raise AssertionError("the async path must never call the sync sleep")


async def asleep_forbidden(seconds: float) -> None:
    raise AssertionError(f"asleep({seconds}) must not be awaited")


def engine(policy: RetryPolicy | None, time: FakeTime, **kwargs: Any) -> Retrying:
    return Retrying(policy, sleep=sync_sleep_forbidden, asleep=time.asleep, clock=time.clock,
                    **kwargs)


async def test_success_returns_at_once() -> None:
    time = FakeTime(START)
    op = AsyncScript("value")
    assert await engine(RetryPolicy(), time).acall(op, 1, key="k") == "value"
    assert op.seen == [((1,), {"key": "k"})]
    assert time.sleeps == []


async def test_transient_errors_are_retried() -> None:
    time = FakeTime(START)
    op = AsyncScript(ServiceUnavailableError, AgentUnavailableError, "ok")
    assert await engine(NO_JITTER, time).acall(op) == "ok"
    assert time.sleeps == [0.5, 1.0]


async def test_permanent_error_surfaces_at_once() -> None:
    time = FakeTime(START)
    error = InvalidInputError("bad")
    op = AsyncScript(error)
    with pytest.raises(InvalidInputError) as caught:
        await engine(RetryPolicy(), time).acall(op)
    assert caught.value is error
    assert op.calls == 1
    assert time.sleeps == []


async def test_exhausted_raises_the_last_original_error_with_history() -> None:
    time = FakeTime(START)
    errors = [NetworkTimeoutError(str(i)) for i in range(3)]
    op = AsyncScript(*errors, time=time, took=0.5)
    with pytest.raises(NetworkTimeoutError) as caught:
        await engine(NO_JITTER, time).acall(op)
    assert caught.value is errors[-1]
    assert caught.value.attempts == (
        AttemptRecord(1, "NetworkTimeoutError", "network_timeout", 0.5, 0.5),
        AttemptRecord(2, "NetworkTimeoutError", "network_timeout", 0.5, 1.0),
        AttemptRecord(3, "NetworkTimeoutError", "network_timeout", 0.5, None),
    )


async def test_rate_limit_waits_exactly_retry_after() -> None:
    time = FakeTime(START)
    op = AsyncScript(RateLimitError("x", retry_after_seconds=1.25), "ok")
    assert await engine(RetryPolicy(), time).acall(op) == "ok"
    assert time.sleeps == [1.25]


async def test_retry_after_above_the_cap_surfaces_at_once() -> None:
    time = FakeTime(START)
    op = AsyncScript(RateLimitError("x", retry_after_seconds=61))
    with pytest.raises(RateLimitError):
        await engine(RetryPolicy(retry_after_max=60), time).acall(op)
    assert op.calls == 1
    assert time.sleeps == []


async def test_zero_waits_never_await_asleep() -> None:
    op = AsyncScript(RateLimitError("x", retry_after_seconds=0), ServiceUnavailableError, "ok")
    r = Retrying(RetryPolicy(backoff_base=0.0, backoff_max=0.0), asleep=asleep_forbidden,
                 sleep=sync_sleep_forbidden)
    assert await r.acall(op) == "ok"
    assert op.calls == 3


async def test_retries_off_with_sdk_config_retry_policy_none() -> None:
    time = FakeTime(START)
    op = AsyncScript(ServiceUnavailableError)
    with pytest.raises(ServiceUnavailableError):
        await engine(SDKConfig(retry_policy=None).retry_policy, time).acall(op)
    assert op.calls == 1


async def test_custom_retryable_list() -> None:
    policy = NO_JITTER.replace(
        retryable_errors=(NetworkTimeoutError, RateLimitError, ServiceUnavailableError,
                          ContextNotFoundError)
    )
    time = FakeTime(START)
    op = AsyncScript(ContextNotFoundError("not yet"), "found")
    assert await engine(policy, time).acall(op) == "found"
    op2 = AsyncScript(AgentUnavailableError("x"))
    with pytest.raises(AgentUnavailableError):
        await engine(policy, time).acall(op2)
    assert op2.calls == 1


async def test_deadline_and_remaining_time() -> None:
    time = FakeTime(START)
    seen: list[float | None] = []

    async def op() -> None:
        seen.append(remaining_time())
        time.now += 1.0
        raise ServiceUnavailableError("down")

    policy = RetryPolicy(max_attempts=10, jitter="none", backoff_base=2.0, deadline=10.0,
                         budget_capacity=None)
    with pytest.raises(ServiceUnavailableError) as caught:
        await engine(policy, time).acall(op)
    assert time.sleeps == [2.0, 4.0]
    assert seen == [10.0, 7.0, 2.0]
    assert len(caught.value.attempts) == 3
    assert remaining_time() is None


async def test_deadlines_of_concurrent_tasks_do_not_mix() -> None:
    time = FakeTime(START)
    seen: dict[str, float | None] = {}

    async def op(label: str) -> None:
        await asyncio.sleep(0)
        seen[label] = remaining_time()

    short = engine(RetryPolicy(deadline=1.0), time)
    long = engine(RetryPolicy(deadline=9.0), time)
    plain = engine(RetryPolicy(), time)
    await asyncio.gather(short.acall(op, "short"), long.acall(op, "long"), plain.acall(op, "none"))
    assert seen == {"short": 1.0, "long": 9.0, "none": None}


async def test_idempotency_rule() -> None:
    time = FakeTime(START)
    op = AsyncScript(NetworkTimeoutError("x", outcome_unknown=True), "ok")
    with pytest.raises(NetworkTimeoutError):
        await engine(RetryPolicy(), time).acall(op, idempotent=False)
    assert op.calls == 1
    op2 = AsyncScript(NetworkTimeoutError("x", outcome_unknown=True), "ok")
    assert await engine(RetryPolicy(), time).acall(op2) == "ok"


async def test_budget_holds_under_many_concurrent_tasks() -> None:
    capacity = 15
    policy = RetryPolicy(max_attempts=4, backoff_base=0.0, budget_capacity=capacity,
                         budget_refill_per_success=0.0, budget_refill_per_second=0.0)
    r = Retrying(policy, asleep=asleep_forbidden)
    attempts = 0

    async def op() -> None:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)  # interleave the tasks between attempts
        raise ServiceUnavailableError("overloaded")

    async def caller() -> None:
        with pytest.raises(ServiceUnavailableError):
            await r.acall(op)

    await asyncio.gather(*(caller() for _ in range(60)))
    assert attempts - 60 == capacity
    assert policy.budget is not None and policy.budget.tokens == 0.0


async def test_log_events(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime(START)
    caplog.set_level(logging.DEBUG, LOGGER)
    op = AsyncScript(ServiceUnavailableError("x", correlation_id="c-9"))
    with pytest.raises(ServiceUnavailableError):
        await engine(NO_JITTER.replace(max_attempts=2), time, name="async-op").acall(op)
    assert caplog.record_tuples == [
        (LOGGER, logging.INFO, EVENT_SCHEDULED),
        (LOGGER, logging.WARNING, EVENT_EXHAUSTED),
    ]
    assert [r.correlation_id for r in caplog.records] == ["c-9", "c-9"]  # type: ignore[attr-defined]
    assert caplog.records[0].call_name == "async-op"  # type: ignore[attr-defined]
    caplog.clear()
    with pytest.raises(InvalidInputError):
        await engine(RetryPolicy(), time).acall(AsyncScript(InvalidInputError("bad")))
    assert caplog.record_tuples == [(LOGGER, logging.DEBUG, EVENT_GIVING_UP)]


async def test_testing_records_waits_for_async_calls() -> None:
    op = AsyncScript(RateLimitError("x", retry_after_seconds=4), ServiceUnavailableError, "ok")
    r = Retrying(NO_JITTER, asleep=asleep_forbidden)
    with testing() as waits:
        assert await r.acall(op) == "ok"
    assert waits == [4.0, 1.0]


async def test_cancellation_is_never_retried() -> None:
    time = FakeTime(START)
    op = AsyncScript(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await engine(RetryPolicy(), time).acall(op)
    assert op.calls == 1


async def test_cancelled_while_waiting_stops_the_call() -> None:
    started = asyncio.Event()

    async def never_ends(seconds: float) -> None:
        started.set()
        await asyncio.Event().wait()

    op = AsyncScript(ServiceUnavailableError)
    r = Retrying(NO_JITTER, asleep=never_ends)
    task = asyncio.ensure_future(r.acall(op))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert op.calls == 1


async def test_default_asleep_is_asyncio_sleep() -> None:
    r = Retrying(RetryPolicy())
    assert r._async_sleep() is asyncio.sleep


async def test_aattempts_iterator() -> None:
    time = FakeTime(START)
    op = AsyncScript(ServiceUnavailableError, RateLimitError("x", retry_after_seconds=3), "ok")
    numbers = []
    async for attempt in engine(NO_JITTER, time).aattempts():
        with attempt:
            numbers.append(attempt.number)
            result = await op()
    assert result == "ok"
    assert numbers == [1, 2, 3]
    assert time.sleeps == [0.5, 3.0]


async def test_aattempts_gives_up_with_history_and_respects_idempotency() -> None:
    time = FakeTime(START)
    with pytest.raises(ServiceUnavailableError) as caught:
        async for attempt in engine(NO_JITTER, time).aattempts():
            with attempt:
                await AsyncScript(ServiceUnavailableError)()
    assert len(caught.value.attempts) == 3
    runs = 0
    with pytest.raises(NetworkTimeoutError):
        async for attempt in engine(RetryPolicy(), time).aattempts(idempotent=False):
            with attempt:
                runs += 1
                raise NetworkTimeoutError("x", outcome_unknown=True)
    assert runs == 1


async def test_aattempts_deadline_and_protocol() -> None:
    time = FakeTime(START)
    seen = []
    policy = RetryPolicy(jitter="none", deadline=3.0, max_attempts=10, budget_capacity=None)
    with pytest.raises(ServiceUnavailableError):
        async for attempt in engine(policy, time).aattempts():
            with attempt:
                seen.append(remaining_time())
                raise ServiceUnavailableError("x")
    assert seen == [3.0, 2.5, 1.5]
    iterator = Retrying(RetryPolicy()).aattempts()
    await iterator.__anext__()
    with pytest.raises(RuntimeError, match="with attempt"):
        await iterator.__anext__()


async def test_async_decorator() -> None:
    time = FakeTime(START)
    op = AsyncScript(ServiceUnavailableError, "ok")

    @retry(NO_JITTER, asleep=time.asleep, clock=time.clock)
    async def fetch(item_id: int) -> str:
        """Fetch one item."""
        return str(await op(item_id))

    assert asyncio.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch" and fetch.__doc__ == "Fetch one item."
    assert await fetch(3) == "ok"
    assert op.seen == [((3,), {})] * 2
    assert time.sleeps == [0.5]


async def test_async_decorator_with_deadline_and_non_idempotent() -> None:
    time = FakeTime(START)
    seen = []

    @retry(RetryPolicy(jitter="none", deadline=2.0), asleep=time.asleep, clock=time.clock)
    async def op() -> str:
        seen.append(remaining_time())
        if len(seen) < 2:
            raise ServiceUnavailableError("x")
        return "ok"

    assert await op() == "ok"
    assert seen == [2.0, 1.5]
    script = AsyncScript(NetworkTimeoutError("x", outcome_unknown=True))
    guarded = retry(RetryPolicy(), idempotent=False, asleep=asleep_forbidden)(script)
    with pytest.raises(NetworkTimeoutError):
        await guarded()
    assert script.calls == 1


async def test_async_decorator_rejects_async_generators() -> None:
    async def agen() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        retry(RetryPolicy())(agen)


async def test_aretry_call() -> None:
    op = AsyncScript(AgentUnavailableError, "ok")
    with testing() as waits:
        assert await aretry_call(op, 5, policy=NO_JITTER, flag=True) == "ok"
    assert waits == [0.5]
    assert op.seen[-1] == ((5,), {"flag": True})


async def test_seeded_jitter_is_reproducible_async() -> None:
    runs = []
    for _ in range(2):
        time = FakeTime(START)
        with pytest.raises(ServiceUnavailableError):
            await engine(RetryPolicy(max_attempts=4, budget_capacity=None), time,
                         rng=random.Random(11)).acall(AsyncScript(ServiceUnavailableError))
        runs.append(time.sleeps)
    assert runs[0] == runs[1]
    assert all(0 <= w <= c for w, c in zip(runs[0], [0.5, 1.0, 2.0], strict=True))


async def test_decorator_detects_objects_with_async_call() -> None:
    class Fetcher:
        def __init__(self) -> None:
            self.calls = 0

        async def __call__(self) -> str:
            self.calls += 1
            if self.calls == 1:
                raise ServiceUnavailableError("x")
            return "ok"

    fetcher = Fetcher()
    decorated = retry(RetryPolicy(backoff_base=0.0), asleep=asleep_forbidden)(fetcher)
    assert asyncio.iscoroutinefunction(decorated)
    assert await decorated() == "ok"
    assert fetcher.calls == 2


async def test_async_retry_leaves_no_reference_cycles() -> None:
    r = Retrying(RetryPolicy(backoff_base=0.0), asleep=asleep_forbidden)

    async def op(errors: list[type[Exception]]) -> str:
        if errors:
            raise errors.pop()("x")
        return "ok"

    await r.acall(op, [ServiceUnavailableError])  # warm up: first-use allocations
    gc.disable()
    try:
        gc.collect()
        assert await r.acall(op, [ServiceUnavailableError, ServiceUnavailableError]) == "ok"
        assert await retry(r)(op)([ServiceUnavailableError]) == "ok"
        assert gc.collect() == 0
    finally:
        gc.enable()
