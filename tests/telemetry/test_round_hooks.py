"""Retry hooks see the waits taken outside the transport's engine: the bulk-fetch rounds (the
failed items of a 207 asked again) and the export's retry rounds (its drain). Mock transports
and a fake clock: nothing sleeps for real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_sdk.clients.backend_v2 import BackendV2Client
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import FakeClock
from synapse_sdk.exceptions import BackendError
from synapse_sdk.plugins.actions.export.action import ExportAction
from synapse_sdk.telemetry import RetryEvent, set_retry_hooks
from synapse_testkit.retry_hints import partial_response, scripted_bulk


@pytest.fixture(autouse=True)
def _no_global_hooks() -> Iterator[None]:
    set_retry_hooks(None)
    yield
    set_retry_hooks(None)


_partial = partial_response


def _client(
    clock: FakeClock, answers: list[httpx.Response], policy: RetryPolicy,
    hooks: list[RetryEvent], sent: list[httpx.Request],
) -> BackendV2Client:
    """A client whose bulk fetches get ``answers`` in order, then every id served."""
    backend = scripted_bulk(answers, sent)
    config = SDKConfig(
        backend_url="http://backend", token="t", retry_policy=policy, retry_hooks=[hooks.append]
    )
    return BackendV2Client(
        config, http_client=httpx.Client(transport=httpx.MockTransport(backend)),
        sleep=clock.sleep, clock=clock,
    )


def test_bulk_fetch_rounds_tell_the_hooks_each_wait_and_the_give_up() -> None:
    clock = FakeClock()
    events: list[RetryEvent] = []
    process_wide: list[RetryEvent] = []
    set_retry_hooks([process_wide.append])
    sent: list[httpx.Request] = []
    policy = RetryPolicy(max_attempts=2, jitter="none", budget_capacity=None)
    with _client(clock, [_partial("2.5")], policy, events, sent) as client:
        assert [item["id"] for item in client.tasks.bulk_fetch([1, 2])] == [1, 2]
    assert [(e.kind, e.call_name, e.attempt, e.max_attempts, e.wait) for e in events] == [
        ("scheduled", "bulk_fetch", 1, 2, 2.5)
    ]
    assert clock.sleeps == [2.5]  # the wait told is the wait slept
    event = events[0]
    assert event.error_code == "partial_failure" and isinstance(event.error, BackendError)
    assert event.error.failed_ids == (2,) and event.error.failed_codes == {2: "item_unavailable"}
    assert event.correlation_id == sent[0].headers["x-correlation-id"]
    assert process_wide == events

    events.clear()
    with (
        _client(clock, [_partial("0.5"), _partial("0.5")], policy, events, []) as client,
        pytest.raises(BackendError),
    ):
        client.tasks.bulk_fetch([1, 2])
    assert [(e.kind, e.attempt, e.reason) for e in events] == [
        ("scheduled", 1, None), ("giving_up", 2, "max_attempts"),
    ]


def _export(
    tmp_path: Path, clock: FakeClock, answers: list[httpx.Response], policy: RetryPolicy,
    events: list[RetryEvent], **params: Any,
) -> Any:
    client = _client(clock, answers, policy, events, [])
    action = ExportAction(
        {"out_dir": tmp_path, "ids": [1, 2], "originals": False, **params},
        config=client.config, v2_client=client, sleep=clock.sleep, monotonic=clock, clock=clock,
    )
    with client, action:
        return action.run()


def test_the_export_drain_tells_the_hooks_the_pause_a_207_asked_for(tmp_path: Path) -> None:
    clock = FakeClock()
    events: list[RetryEvent] = []
    policy = RetryPolicy(retry_after_max=30.0, budget_capacity=None, jitter="none")
    summary = _export(tmp_path, clock, [_partial("2.5")], policy, events)
    assert summary.exported == 2
    rounds = [e for e in events if e.call_name == "export.retry_round"]
    assert [(e.kind, e.wait, e.error_code) for e in rounds] == [
        ("scheduled", 2.5, "partial_failure")
    ]
    assert clock.sleeps == [2.5]
    assert rounds[0].error.failed_ids == (2,)  # type: ignore[attr-defined]


def test_the_export_drain_tells_the_hooks_its_backoff_and_when_it_gives_up(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    events: list[RetryEvent] = []
    down = httpx.Response(503, json={"error": {"code": "service_unavailable"}})
    policy = RetryPolicy(max_attempts=1, backoff_max=5.0, jitter="none", budget_capacity=None)
    summary = _export(tmp_path, clock, [down, down], policy, events, retry_delay=300.0)
    assert summary.exported == 2
    rounds = [e for e in events if e.call_name == "export.retry_round"]
    assert [(e.kind, e.attempt, e.wait, e.error_code) for e in rounds] == [
        ("scheduled", 1, 5.0, "service_unavailable"),
        ("scheduled", 2, 5.0, "service_unavailable"),
    ]
    assert clock.sleeps == [5.0, 5.0]

    events.clear()
    refused = RetryPolicy(retry_after_max=30.0, budget_capacity=None, jitter="none")
    summary = _export(tmp_path / "b", clock, [_partial("3600")], refused, events)
    assert summary.failed == 1
    rounds = [e for e in events if e.call_name == "export.retry_round"]
    assert [(e.kind, e.reason, e.wait) for e in rounds] == [
        ("giving_up", "retry_after_too_long", 3600.0)
    ]
