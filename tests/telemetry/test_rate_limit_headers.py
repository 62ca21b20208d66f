"""Rate-limit headers: parsed defensively, exposed on responses, sent by the emulator, and acted
on by the export's rate pacer before the first 429."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synapse_sdk.clients import BackendV2Client
from synapse_sdk.clients._transport import Transport
from synapse_sdk.clients.backend_v2 import rate_limited_paths
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile, RateLimit
from synapse_sdk.plugins.actions.export.steps import RatePacer
from synapse_sdk.retry_after import RateLimitInfo, rate_limit_from_headers


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"RateLimit": '"default";r=0;t=5', "RateLimit-Policy": '"default";q=100;w=60'},
            RateLimitInfo(100, 0, 5.0, 60.0),
        ),
        ({"RateLimit": '"a";r=5;t=1, "b";r=1;t=9'}, RateLimitInfo(None, 1, 9.0)),
        ({"RateLimit": "limit=100, remaining=0, reset=5"}, RateLimitInfo(100, 0, 5.0)),
        (
            {"RateLimit-Policy": "10;w=1", "RateLimit-Remaining": "3", "RateLimit-Reset": "1.5"},
            RateLimitInfo(10, 3, 1.5, 1.0),
        ),
        (
            {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7"},
            RateLimitInfo(60, 0, 7.0),
        ),
        ({"x-ratelimit-reset": "2000000010"}, RateLimitInfo(reset=10.0)),  # a Unix time
        ({"x-ratelimit-reset": "2000000010000"}, RateLimitInfo(reset=10.0)),  # in milliseconds
        ({"x-ratelimit-reset": "1500000000"}, None),  # a Unix time in the past: no hint
        # The draft's field wins over the common headers, field by field.
        (
            {"RateLimit": '"d";r=2;t=3', "X-RateLimit-Remaining": "9", "X-RateLimit-Limit": "10"},
            RateLimitInfo(10, 2, 3.0),
        ),
    ],
)
def test_rate_limit_headers_are_read_in_every_form(
    headers: dict[str, str], expected: RateLimitInfo | None
) -> None:
    assert rate_limit_from_headers(headers, now=2_000_000_000.0) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "application/json"},
        {"X-RateLimit-Remaining": "-1"},
        {"X-RateLimit-Remaining": "1.5", "X-RateLimit-Reset": "nan"},
        {"X-RateLimit-Limit": "١٢"},  # non-ASCII digits
        {"X-RateLimit-Limit": "9" * 19},  # longer than any real count
        {"RateLimit": '"a";r=x;t=-1'},
        {"RateLimit": ";;;=,,,=;"},
        {"RateLimit": "remaining=" + "1" * 2000},  # too long a value: ignored
    ],
)
def test_garbage_rate_limit_headers_say_nothing(headers: dict[str, str]) -> None:
    assert rate_limit_from_headers(headers) is None


@given(st.dictionaries(
    st.sampled_from(["RateLimit", "RateLimit-Policy", "RateLimit-Remaining", "X-RateLimit-Reset",
                     "X-RateLimit-Limit", "x-ratelimit-remaining"]),
    st.text(max_size=60),
))
def test_rate_limit_parsing_never_raises_and_reports_sane_numbers(headers: dict[str, str]) -> None:
    info = rate_limit_from_headers(headers)
    if info is not None:
        for count in (info.limit, info.remaining):
            assert count is None or count >= 0
        for seconds in (info.reset, info.window):
            assert seconds is None or seconds >= 0.0


def test_rate_limit_parsing_refuses_a_non_mapping() -> None:
    with pytest.raises(TypeError):
        rate_limit_from_headers([("RateLimit", "r=1")])  # type: ignore[arg-type]


def test_the_emulator_sends_rate_limit_headers_exposed_on_responses() -> None:
    clock = FakeClock()
    faults = FaultProfile(seed=1, rate_limit=RateLimit(per_second=0.5, burst=2))
    with Emulator(items=3, seed=1, faults=faults, clock=clock) as emu, Transport(
        SDKConfig(retry_policy=None), base_url=emu.url, token=emu.token, tenant=emu.tenant,
        clock=clock,
    ) as transport:
        first = transport.request("GET", "/v2/tasks/", params={"limit": 1})
        second = transport.request("GET", "/v2/tasks/", params={"limit": 1})
        health = transport.request("GET", "/healthz")
    assert first.rate_limit == RateLimitInfo(limit=2, remaining=1, reset=2.0, window=4.0)
    assert second.rate_limit == RateLimitInfo(limit=2, remaining=0, reset=4.0, window=4.0)
    assert second.headers["x-ratelimit-remaining"] == "0"
    assert health.rate_limit is None  # not a rate-limited path


def _paced_statuses(
    limit: RateLimit, requests: int, *, margin: float = 1.01
) -> tuple[list[int], list[float], RatePacer]:
    """``requests`` list pages through a paced client against the emulator under ``limit``,
    on a fake clock: the statuses the emulator saw, the client's sleeps and its pacer."""
    clock = FakeClock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.sleep(seconds)

    policy = RetryPolicy(max_attempts=6, backoff_base=0.1, budget_capacity=None)
    pacer = RatePacer(rate_limited_paths(), policy=policy, clock=clock, margin=margin)
    faults = FaultProfile(seed=1, rate_limit=limit)
    with Emulator(items=5, seed=1, faults=faults, clock=clock) as emu, BackendV2Client(
        SDKConfig(retry_policy=policy), base_url=emu.url, token=emu.token, tenant=emu.tenant,
        sleep=sleep,
        clock=clock, rng=random.Random(1), pacer=pacer,
    ) as client:
        for _ in range(requests):
            client.tasks.list_page(limit=2)
    return [r.status for r in emu.requests], sleeps, pacer


def test_the_pacer_slows_down_on_remaining_zero_before_any_429() -> None:
    """Against the emulator: the answers' RateLimit-Remaining: 0 holds the next request until
    a token is back (the policy's q=2;w=4: one every 2 s), so the client never spends a request
    on a rejection."""
    statuses, sleeps, pacer = _paced_statuses(RateLimit(per_second=0.5, burst=2), 6)
    assert statuses == [200] * 6  # not one 429
    assert pacer.rejections == 0
    assert sleeps == pytest.approx([2.02] * 4)  # the burst, then one token per 2 s (+1 %)


def test_the_pacer_keeps_up_with_a_limit_above_one_request_a_second() -> None:
    """2/s, burst 1: the reset says "1" (whole seconds, rounded up) after every request, but
    the policy (q=2;w=1) tells the rate: the pace is the limit's, not one request a second."""
    statuses, sleeps, pacer = _paced_statuses(RateLimit(per_second=2.0, burst=1), 8, margin=1.0)
    assert statuses == [200] * 8 and pacer.rejections == 0
    assert sleeps == pytest.approx([0.5] * 7)


def test_a_pace_learned_from_a_precise_retry_after_beats_a_rounded_reset() -> None:
    """No policy, a reset in whole seconds: once a 429's retry-after-ms taught the interval,
    a spent quota holds the next request for that interval, not the rounded reset."""
    clock = FakeClock()
    pacer = RatePacer(["/v2/tasks/"], clock=clock, margin=1.0)
    spent = {"RateLimit": '"d";r=0;t=1'}
    alone = RatePacer(["/v2/tasks/"], clock=clock, margin=1.0)
    alone.after_response("/v2/tasks/", 200, spent)
    assert alone.before_request("/v2/tasks/") == 1.0  # nothing better known: the reset
    pacer.after_response("/v2/tasks/", 200, {})
    clock.sleep(0.1)
    pacer.after_response("/v2/tasks/", 429, {"Retry-After": "1", "retry-after-ms": "150"})
    assert pacer.interval == pytest.approx(0.25)
    assert pacer.before_request("/v2/tasks/") == pytest.approx(0.15)  # the 429's slot
    clock.sleep(0.15)
    pacer.after_response("/v2/tasks/", 200, spent)
    assert pacer.before_request("/v2/tasks/") == pytest.approx(0.25)  # not 1 s


def test_the_pacer_ignores_a_reset_its_policy_refuses() -> None:
    clock = FakeClock()
    pacer = RatePacer(["/v2/tasks/"], policy=RetryPolicy(retry_after_max=10.0), clock=clock)
    pacer.after_response("/v2/tasks/", 200, {"RateLimit": '"d";r=0;t=3600'})
    assert pacer.before_request("/v2/tasks/") == 0.0
    pacer.after_response("/v2/tasks/", 200, {"RateLimit": '"d";r=0;t=3'})
    assert pacer.before_request("/v2/tasks/") == 3.0
    assert pacer.before_request("/v2/files/1") == 0.0


def test_callers_sharing_a_spent_quota_take_one_slot_each() -> None:
    """While the quota is spent, slots are a unit's hold apart (two workers asking at once do
    not both go); once units are left again, only the learned pace (none here) spaces them."""
    clock = FakeClock()
    pacer = RatePacer(["/v2/tasks/"], clock=clock, margin=1.0)
    pacer.after_response("/v2/tasks/", 200, {"RateLimit": '"d";r=0;t=1',
                                             "RateLimit-Policy": '"d";q=10;w=1'})
    assert [pacer.before_request("/v2/tasks/") for _ in range(3)] == pytest.approx(
        [0.1, 0.2, 0.3]
    )
    clock.sleep(0.3)
    pacer.after_response("/v2/tasks/", 200, {"RateLimit": '"d";r=5;t=1'})
    clock.sleep(0.1)
    assert [pacer.before_request("/v2/tasks/") for _ in range(2)] == [0.0, 0.0]
