"""The export's retry drain waits only what the retry policy allows (``decide_wait``).

A 207's ``retry_after`` is waited exactly up to ``retry_after_max``; above it (an hour, a date a
day ahead, ``1e999``) the drain stops at once and the item is reported failed with its code;
garbage is no hint. After whole requests failed the pause doubles from ``retry_delay`` but never
past the policy's ``backoff_max``. A fake clock: nothing sleeps for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_sdk.clients.backend_v2 import BackendV2Client
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import FakeClock
from synapse_sdk.plugins.actions.export.action import ExportAction
from synapse_testkit.retry_hints import (
    REFUSED_HINTS,
    hint_text,
    partial_response,
    scripted_bulk,
)

CAP = 30.0


_partial = partial_response


def _export(
    tmp_path: Path, clock: FakeClock, answers: list[httpx.Response], policy: RetryPolicy,
    **params: Any,
) -> tuple[Any, list[httpx.Request]]:
    sent: list[httpx.Request] = []
    backend = scripted_bulk(answers, sent)
    config = SDKConfig(backend_url="http://backend", token="t", retry_policy=policy)
    client = BackendV2Client(
        config, http_client=httpx.Client(transport=httpx.MockTransport(backend)),
        sleep=clock.sleep, clock=clock,
    )
    action = ExportAction(
        {"out_dir": tmp_path, "ids": [1, 2], "originals": False, **params},
        config=config, v2_client=client, sleep=clock.sleep, monotonic=clock, clock=clock,
    )
    with action:
        return action.run(), sent


HOSTILE: list[tuple[str, float | None]] = [
    *((hint, None) for hint in REFUSED_HINTS),
    ("30", 30.0),  # at the cap: waited exactly
    ("2.5", 2.5),
    ("0", 0.0),
    ('"garbage"', 0.0),  # no hint, and no whole request failed: no pause
    ("-1", 0.0),
]


@pytest.mark.parametrize(("hint", "expected"), HOSTILE)
def test_the_drain_never_waits_past_the_policy(
    tmp_path: Path, hint: str, expected: float | None
) -> None:
    clock = FakeClock()
    hint = hint_text(hint)
    policy = RetryPolicy(retry_after_max=CAP, budget_capacity=None, jitter="none")
    summary, sent = _export(tmp_path, clock, [_partial(hint)], policy)
    assert all(wait <= CAP for wait in clock.sleeps)
    if expected is None:  # the pause is refused: the drain stops, the item fails with its code
        assert clock.sleeps == [] and len(sent) == 1
        assert summary.exported == 1 and summary.failed_by_code == {"item_unavailable": 1}
    else:
        assert clock.sleeps == ([] if expected == 0.0 else [expected])
        assert summary.exported == 2 and summary.failed == 0 and len(sent) == 2


def test_the_pause_after_whole_request_failures_is_capped_at_backoff_max(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    down = httpx.Response(503, json={"error": {"code": "service_unavailable"}})
    policy = RetryPolicy(max_attempts=1, backoff_max=5.0, jitter="none", budget_capacity=None)
    # retry_delay 300 s doubling: before, the drain slept 300 s, then 600 s, ...
    summary, sent = _export(tmp_path, clock, [down, down], policy, retry_delay=300.0)
    assert clock.sleeps == [5.0, 5.0]
    assert summary.exported == 2 and len(sent) == 3
