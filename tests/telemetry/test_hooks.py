"""Retry hooks: per engine, per client (SDKConfig) and process-wide; a raising hook is ignored."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import Any

import pytest

from synapse_sdk.clients import BackendV2Client
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile, RateLimit
from synapse_sdk.exceptions import BackendRateLimitError, RateLimitError, ServiceUnavailableError
from synapse_sdk.retry import Retrying
from synapse_sdk.telemetry import RetryEvent, get_retry_hooks, set_retry_hooks


@pytest.fixture(autouse=True)
def _no_global_hooks() -> Iterator[None]:
    set_retry_hooks(None)
    yield
    set_retry_hooks(None)


def flaky(errors: list[BaseException]) -> object:
    def operation() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    return operation


def test_engine_hooks_see_each_scheduled_retry_then_success() -> None:
    events: list[RetryEvent] = []
    policy = RetryPolicy(max_attempts=3, backoff_base=0.5, jitter="none", budget_capacity=None)
    sleeps: list[float] = []
    retrying = Retrying(policy, sleep=sleeps.append, name="op", hooks=[events.append])
    errors: list[BaseException] = [
        ServiceUnavailableError("down", correlation_id="c1"),
        RateLimitError("slow down", retry_after_seconds=2.25, correlation_id="c1"),
    ]
    assert retrying.call(flaky(errors)) == "ok"  # type: ignore[arg-type]
    assert [(e.kind, e.attempt, e.wait) for e in events] == [
        ("scheduled", 1, 0.5),
        ("scheduled", 2, 2.25),
    ]
    assert sleeps == [0.5, 2.25]
    assert [e.error_code for e in events] == ["service_unavailable", "rate_limited"]
    assert {e.correlation_id for e in events} == {"c1"}
    assert {e.call_name for e in events} == {"op"}
    assert all(e.max_attempts == 3 and e.reason is None for e in events)


def test_giving_up_is_reported_with_its_reason() -> None:
    events: list[RetryEvent] = []
    policy = RetryPolicy(max_attempts=2, backoff_base=0.0, budget_capacity=None)
    retrying = Retrying(policy, sleep=lambda s: None, hooks=[events.append])
    error = ServiceUnavailableError("down")
    with pytest.raises(ServiceUnavailableError):
        retrying.call(flaky([error, error]))  # type: ignore[arg-type]
    assert [(e.kind, e.attempt, e.reason) for e in events] == [
        ("scheduled", 1, None),
        ("giving_up", 2, "max_attempts"),
    ]
    assert events[-1].error is error


def test_a_raising_hook_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[RetryEvent] = []

    def broken(event: RetryEvent) -> None:
        raise RuntimeError("hook bug")

    policy = RetryPolicy(max_attempts=2, backoff_base=0.0, budget_capacity=None)
    retrying = Retrying(policy, sleep=lambda s: None, hooks=[broken, seen.append])
    caplog.set_level(logging.WARNING, logger="synapse_sdk.telemetry")
    assert retrying.call(flaky([ServiceUnavailableError("x")])) == "ok"  # type: ignore[arg-type]
    assert len(seen) == 1  # the hook after the broken one still ran
    (record,) = [r for r in caplog.records if r.name == "synapse_sdk.telemetry"]
    assert record.getMessage() == "synapse_sdk.telemetry.hook_failed"
    assert record.error_type == "RuntimeError"  # type: ignore[attr-defined]
    assert "broken" in record.hook  # type: ignore[attr-defined]


def test_process_wide_hooks_run_after_the_engines_own() -> None:
    order: list[str] = []
    set_retry_hooks([lambda e: order.append("global")])
    assert len(get_retry_hooks()) == 1
    policy = RetryPolicy(max_attempts=2, backoff_base=0.0, budget_capacity=None)
    retrying = Retrying(policy, sleep=lambda s: None, hooks=[lambda e: order.append("own")])
    retrying.call(flaky([ServiceUnavailableError("x")]))  # type: ignore[arg-type]
    assert order == ["own", "global"]


@pytest.mark.parametrize("bad", [print, "hook", [1]])
def test_hooks_must_be_an_iterable_of_callables(bad: object) -> None:
    with pytest.raises(TypeError):
        set_retry_hooks(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Retrying(None, hooks=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SDKConfig(retry_hooks=bad)  # type: ignore[arg-type]


def test_client_hooks_see_every_retry_of_a_429_with_its_exact_wait(secret_sink: Any) -> None:
    """Against the emulator: each 429's Retry-After is the wait the hook is told, and slept."""
    clock = FakeClock()
    events: list[RetryEvent] = []
    process_wide: list[RetryEvent] = []
    set_retry_hooks([process_wide.append])
    policy = RetryPolicy(max_attempts=6, backoff_base=0.1, budget_capacity=None)
    config = SDKConfig(retry_policy=policy, retry_hooks=[events.append])
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.sleep(seconds)

    faults = FaultProfile(seed=1, rate_limit=RateLimit(per_second=0.5, burst=1))
    with Emulator(items=5, seed=1, faults=faults, clock=clock) as emu, BackendV2Client(
        config, base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=sleep, clock=clock,
        rng=random.Random(1),
    ) as client:
        for _ in range(3):
            client.tasks.list_page(limit=2)
    limited = [r for r in emu.requests if r.status == 429]
    assert len(limited) >= 2
    assert [e.kind for e in events] == ["scheduled"] * len(limited)
    assert [e.wait for e in events] == [r.retry_after for r in limited] == sleeps
    assert all(isinstance(e.error, BackendRateLimitError) for e in events)
    assert {e.error_code for e in events} == {"rate_limited"}
    assert [e.correlation_id for e in events] == [r.correlation_id for r in limited]
    assert events == process_wide
    assert secret_sink.find(repr(events)) is None  # the emulator's token is planted
