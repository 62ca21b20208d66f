"""Bulk-fetch rounds wait only what the retry policy allows (``decide_wait``), sync and async.

A 207 answer's ``retry_after`` is honoured exactly up to ``retry_after_max``; above it (an hour,
a date a day ahead, ``1e999``) the rounds end at once and the still-failing items are reported;
garbage means the policy's backoff; a wait past the deadline ends the rounds too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from clients_support import (
    Clock,
    Scripted,
    async_client,
    config,
    ids_of,
    item,
    policy,
    reply,
    sync_client,
)

from synapse_sdk.exceptions import BackendError
from synapse_testkit.retry_hints import REFUSED_HINTS, hint_text, partial_body

CAP = 60.0


def _partial(retry_after: str) -> Any:
    return reply(207, partial_body(item(1), retry_after), {"content-type": "application/json"})


# (the 207's retry_after as JSON text, the wait expected before round 2; None: no round 2)
HOSTILE: list[tuple[str, float | None]] = [
    *((hint, None) for hint in REFUSED_HINTS),
    ("60", 60.0),  # at the cap: waited exactly
    ("2.5", 2.5),
    ("0", 0.0),
    ('"garbage"', 0.5),  # no hint: the policy's backoff (no jitter in these tests)
    ("-3", 0.5),
    ("null", 0.5),
]


def _script(hint: str, clock: Clock) -> Scripted:
    return Scripted([_partial(hint_text(hint)), reply(200, {"data": [item(2)]})])


def _check(handler: Scripted, clock: Clock, expected: float | None, outcome: Any) -> None:
    if expected is None:
        assert isinstance(outcome, BackendError) and outcome.error_code == "partial_failure"
        assert outcome.failed_codes == {2: "item_unavailable"}
        assert ids_of(outcome.succeeded) == [1]  # type: ignore[attr-defined]
        assert len(handler.requests) == 1 and clock.sleeps == []
    else:
        assert ids_of(outcome) == [1, 2]
        assert clock.sleeps == ([] if expected == 0.0 else [expected])
    assert all(wait <= CAP for wait in clock.sleeps)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("hint", "expected"), HOSTILE)
def test_bulk_rounds_never_wait_past_the_policy(
    hint: str, expected: float | None, asynchronous: bool, clock: Clock
) -> None:
    handler = _script(hint, clock)
    cfg = config(policy(retry_after_max=CAP))

    async def fetch_async() -> Any:
        return await async_client(handler, clock, cfg).tasks.bulk_fetch([1, 2])

    try:
        if asynchronous:
            outcome: Any = asyncio.run(fetch_async())
        else:
            outcome = sync_client(handler, clock, cfg).tasks.bulk_fetch([1, 2])
    except BackendError as exc:
        outcome = exc
    _check(handler, clock, expected, outcome)


def test_a_round_wait_past_the_deadline_ends_the_rounds(clock: Clock) -> None:
    handler = _script("2.5", clock)
    client = sync_client(handler, clock, config(policy(deadline=2.0)))
    with pytest.raises(BackendError) as info:
        client.tasks.bulk_fetch([1, 2])
    assert info.value.failed_codes == {2: "item_unavailable"}
    assert clock.sleeps == [] and len(handler.requests) == 1


def test_an_empty_budget_ends_the_rounds(clock: Clock) -> None:
    handler = _script("1", clock)
    client = sync_client(handler, clock, config(policy(
        budget_capacity=0, budget_refill_per_second=0.0, budget_refill_per_success=0.0)))
    with pytest.raises(BackendError) as info:
        client.tasks.bulk_fetch([1, 2])
    assert info.value.failed_codes == {2: "item_unavailable"}
    assert clock.sleeps == []
