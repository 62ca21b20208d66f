"""The listening stream's reconnects wait only what the retry policy allows (``decide_wait``).

The stream is driven without a server: each connection attempt raises the scripted error. A
rate limit's hint is waited exactly up to ``retry_after_max``; above it (an hour, a day, a
saturated ``1e999``) the stream ends at once; garbage means the policy's backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.utils import formatdate

import pytest

from synapse_sdk.clients.synap._listen import StreamEndpoint, StreamListener
from synapse_sdk.config import RetryPolicy
from synapse_sdk.exceptions import RateLimitError, ServiceUnavailableError, SynapError
from synapse_sdk.retry_after import parse_retry_after

POLICY = RetryPolicy(max_attempts=3, jitter="none", budget_capacity=None, retry_after_max=60.0)
NOW = 1_700_000_000.0


class _Scripted(StreamListener):
    """A listener whose connection attempts raise ``errors`` in order."""

    def __init__(self, errors: list[SynapError], policy: RetryPolicy) -> None:
        self.waits: list[float] = []

        async def endpoint() -> StreamEndpoint:
            return StreamEndpoint("127.0.0.1:1", "session", b"key", b"cert", None)

        async def asleep(seconds: float) -> None:
            self.waits.append(seconds)

        super().__init__(
            instance_id="inst_0123456789abcdef", endpoint=endpoint, on_message=lambda m: None,
            on_error=None, policy=policy, asleep=asleep, rng=None, connect_timeout=1.0,
            idle_timeout=1.0,
        )
        self._errors = errors

    async def _stream_once(
        self, endpoint: StreamEndpoint, connected: Callable[[], None], correlation_id: str
    ) -> None:
        raise self._errors.pop(0)


def _run(errors: list[SynapError], policy: RetryPolicy = POLICY) -> tuple[_Scripted, SynapError]:
    listener = _Scripted(errors, policy)
    outcome: list[SynapError | None] = []
    asyncio.run(listener.run(outcome.append))
    assert len(outcome) == 1 and outcome[0] is not None
    return listener, outcome[0]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3600", None),
        (formatdate(NOW + 86_400, usegmt=True), None),
        ("1e999", None),
        ("61", None),
        ("60", 60.0),
        ("0", 0.0),
        ("garbage", 0.5),  # no hint: the policy's backoff
    ],
)
def test_reconnects_never_wait_past_the_policy(header: str, expected: float | None) -> None:
    hint = parse_retry_after(header, now=NOW)
    limited = RateLimitError("listen rate limited", retry_after_seconds=hint)
    final = ServiceUnavailableError("down for good")
    listener, error = _run([limited, final, final])
    assert all(wait <= POLICY.retry_after_max for wait in listener.waits)
    if expected is None:  # the hint is refused: the stream ends with the rate limit at once
        assert error is limited and listener.waits == [] and listener.reconnects == 0
    else:
        # The hint exactly (a zero wait is not slept), then the backoff for the second
        # failure, then the attempts end.
        assert listener.waits == [w for w in (expected, 1.0) if w] and error is final


def test_an_empty_budget_ends_the_reconnects() -> None:
    policy = POLICY.replace(budget_capacity=1, budget_refill_per_second=0.0)
    down = ServiceUnavailableError("down")
    listener, error = _run([down, down, down], policy)
    assert listener.waits == [0.5] and error is down


def test_retry_hooks_are_told_every_reconnect_and_the_end() -> None:
    from synapse_sdk.telemetry import RetryEvent, set_retry_hooks

    events: list[RetryEvent] = []
    set_retry_hooks([events.append])
    try:
        limited = RateLimitError("listen rate limited", retry_after_seconds=7.0)
        final = ServiceUnavailableError("down for good", correlation_id="c-9")
        listener, error = _run([limited, final, final])
    finally:
        set_retry_hooks(None)
    assert [(e.kind, e.attempt, e.wait, e.reason) for e in events] == [
        ("scheduled", 1, 7.0, None),
        ("scheduled", 2, 1.0, None),
        ("giving_up", 3, None, "max_attempts"),
    ]
    assert listener.waits == [7.0, 1.0]
    assert {e.call_name for e in events} == {"synap.listen"}
    codes = ["rate_limited", "service_unavailable", "service_unavailable"]
    assert [e.error_code for e in events] == codes
    assert events[-1].error is error and events[-1].correlation_id == "c-9"
