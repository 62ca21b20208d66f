"""A read stall (the emulator's ``stall`` fault): headers and half a body, then silence.

The client's read timeout (0.2 s here: the only real waiting these tests do) turns it into a
``NetworkTimeoutError``, which the retry policy retries for idempotent requests only.
"""

from __future__ import annotations

import random

import pytest

from synapse_sdk.clients import BackendV2Client
from synapse_sdk.config import RetryPolicy, SDKConfig, TimeoutConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile, RequestRecord
from synapse_sdk.exceptions import NetworkTimeoutError

#: The gate's identity of ``tasks.list_page(limit=10)`` (method, path, query, no body).
LIST_KEY = "GET /v2/tasks/?per_page=10 -"


def make_client(emu: Emulator, clock: FakeClock, attempts: int = 3) -> BackendV2Client:
    config = SDKConfig(
        retry_policy=RetryPolicy(max_attempts=attempts, budget_capacity=None),
        timeouts=TimeoutConfig(read=0.2),
    )
    return BackendV2Client(config, base_url=emu.url, token=emu.token, tenant=emu.tenant,
                           sleep=clock.sleep, clock=clock, rng=random.Random(0))


def finished(emu: Emulator) -> list[RequestRecord]:
    emu.stop()
    return emu.requests


def _seed_stalling_once() -> int:
    """A fault seed whose first list attempt stalls and whose second does not."""
    for seed in range(200):
        profile = FaultProfile(seed=seed, stall_rate=0.5)
        if profile.stall(LIST_KEY, 0) and not profile.stall(LIST_KEY, 1):
            return seed
    raise AssertionError("no such seed")


def test_a_stalled_read_times_out_and_is_retried() -> None:
    clock = FakeClock()
    faults = FaultProfile(seed=_seed_stalling_once(), stall_rate=0.5, stall_seconds=5.0)
    with Emulator(items=30, clock=clock, faults=faults) as emu, make_client(emu, clock) as c:
        page = c.tasks.list_page(limit=10)
        assert [item["id"] for item in page.items] == list(range(1, 11))
        assert c.stats.retries == 1
    log = [r for r in finished(emu) if r.path == "/v2/tasks/"]
    assert [r.faults for r in log] == [("stall",), ()]
    assert log[0].status == 200  # the head went out; then the body stalled


def test_a_read_that_always_stalls_ends_in_a_network_timeout() -> None:
    clock = FakeClock()
    faults = FaultProfile(stall_rate=1.0, stall_seconds=5.0)
    with Emulator(items=30, clock=clock, faults=faults) as emu, \
            make_client(emu, clock, attempts=2) as client, pytest.raises(NetworkTimeoutError):
        client.tasks.list_page(limit=10)
    assert len([r for r in finished(emu) if r.path == "/v2/tasks/"]) == 2


def test_a_stalled_non_idempotent_request_is_not_sent_again() -> None:
    clock = FakeClock()
    faults = FaultProfile(stall_rate=1.0, stall_seconds=5.0)
    with Emulator(items=30, clock=clock, faults=faults) as emu, make_client(emu, clock) as c:
        job_id = emu.create_job()
        entry = {"event": "export", "data": {}, "datetime": "2026-12-03T10:00:00Z"}
        with pytest.raises(NetworkTimeoutError) as caught:
            c.jobs.create_log(job_id, entry)
        assert caught.value.outcome_unknown  # the log may have been stored
    assert len([r for r in finished(emu) if r.path.endswith("/logs/")]) == 1


def test_stall_is_a_spec_field_and_described() -> None:
    profile = FaultProfile.from_spec("none,stall_rate=0.1,stall_seconds=2")
    assert (profile.stall_rate, profile.stall_seconds) == (0.1, 2.0)
    assert not profile.is_clean
    assert "10.0% stalled answers" in profile.describe()
    assert "응답 도중 멈춤 10.0%" in profile.describe("ko")
    with pytest.raises(ValueError):
        FaultProfile(stall_seconds=-1)
