"""The clients against the real emulator over a loopback socket, under injected faults.

The emulator and the client share one fake clock: every wait the client plans advances the time
the emulator's token bucket and outage windows see, so nothing sleeps for real. The request log is
read after the emulator stopped: stopping joins the server thread, so every request's record is
in (the emulator appends a record once its response went out).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from typing import Any

import pytest

from synapse_sdk.clients import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.clients.backend_v2 import succeeded_items
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile, RateLimit, RequestRecord
from synapse_sdk.exceptions import (
    BackendAuthenticationError,
    BackendError,
    BackendInvalidInputError,
)

ITEMS = 600
#: Every fault at once: 10 % retryable item failures, 1 % corrupted ids, a tight rate limit,
#: a two-second outage and 20 % dropped connections (reset or cut mid-body). The seed is one
#: whose run shows both kinds of drop.
FAULTS = FaultProfile(
    seed=23,
    partial_failure_rate=0.10,
    permanent_failure_rate=0.01,
    rate_limit=RateLimit(per_second=2.0, burst=2),
    outages=((2.0, 4.0),),
    drop_rate=0.2,
)
#: Per-item codes a settled failure may carry.
ITEM_CODES = {"item_corrupted", "item_unavailable"}


def retry_policy() -> RetryPolicy:
    return RetryPolicy(max_attempts=8, backoff_base=0.2, backoff_max=2.0, budget_capacity=None)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


def sync_client(emu: Emulator, clock: FakeClock) -> BackendV2Client:
    return BackendV2Client(
        SDKConfig(retry_policy=retry_policy()), base_url=emu.url, token=emu.token,
        tenant=emu.tenant, sleep=clock.sleep, clock=clock, rng=random.Random(3),
    )


def async_client(emu: Emulator, clock: FakeClock) -> AsyncBackendV2Client:
    return AsyncBackendV2Client(
        SDKConfig(retry_policy=retry_policy()), base_url=emu.url, token=emu.token,
        tenant=emu.tenant, sleep=clock.asleep, clock=clock, rng=random.Random(3),
    )


def assert_retry_after_respected(records: list[RequestRecord]) -> None:
    """No request arrived before the time a previous 429 (or 503) Retry-After allowed."""
    not_before = float("-inf")
    limited = 0
    for record in records:
        assert record.time >= not_before - 1e-9, (record, not_before)
        if record.status in (429, 503) and record.retry_after is not None:
            not_before = max(not_before, record.time + record.retry_after)
            limited += record.status == 429
    assert limited > 0, "the profile should have produced rate limits"


def assert_every_id_settled_once(
    ids: list[int], fetched: list[dict[str, Any]], failed_codes: dict[Any, Any]
) -> None:
    fetched_ids = [item["id"] for item in fetched]
    assert len(fetched_ids) == len(set(fetched_ids)), "an item was returned twice"
    assert not set(fetched_ids) & set(failed_codes), "an item is both fetched and failed"
    assert sorted(fetched_ids + list(failed_codes)) == sorted(ids), "an item was lost"
    order = {item_id: n for n, item_id in enumerate(ids)}
    assert fetched_ids == sorted(fetched_ids, key=order.__getitem__), "input order not kept"


def bulk_fetch_all(client: BackendV2Client, ids: list[int]) -> tuple[list[dict[str, Any]],
                                                                     dict[Any, Any]]:
    try:
        return client.assignments.bulk_fetch(ids=ids), {}
    except BackendError as exc:
        assert exc.error_code == "partial_failure", exc
        return succeeded_items(exc), dict(exc.failed_codes)


def test_full_bulk_fetch_under_every_fault(fake_clock: FakeClock) -> None:
    with Emulator(items=ITEMS, seed=5, faults=FAULTS, clock=fake_clock,
                  sleep=fake_clock.sleep) as emu, sync_client(emu, fake_clock) as client:
        ids = [item["id"] for item in client.assignments.iter(limit=250)]
        assert len(ids) == ITEMS
        shuffled = ids[:]
        random.Random(9).shuffle(shuffled)
        fetched, failed = bulk_fetch_all(client, shuffled)
        stats = client.stats.as_dict()
    records = emu.requests

    assert_every_id_settled_once(shuffled, fetched, failed)
    assert set(failed.values()) <= ITEM_CODES
    corrupted = {i for i in ids if FAULTS.is_corrupted("assignments", i)}
    assert corrupted, "the profile should have corrupted some ids"
    assert {i for i, code in failed.items() if code == "item_corrupted"} == corrupted
    for item in fetched:
        assert item["project_id"] == 1 and item["files_manifest"]["original"]["is_primary"]

    assert_retry_after_respected(records)
    faults = Counter(fault for record in records for fault in record.faults)
    assert faults["rate_limited"] > 0
    assert faults["outage"] > 0
    assert faults["partial_failure"] > 0
    assert faults["drop_reset"] + faults["drop_truncated"] > 0
    assert stats["requests"] == len(records)
    assert stats["items_retried"] > 0

    bulk = [r for r in records if r.path.endswith("/bulk-fetch/") and r.ids]
    assert all(len(r.ids or ()) <= 200 for r in bulk)
    # Follow-up rounds carry only ids an earlier 207 reported failed, never a corrupted one.
    first_round = {tuple(shuffled[i : i + 200]) for i in range(0, len(shuffled), 200)}
    reported: set[Any] = set()
    followups = 0
    for record in bulk:
        ids_sent = set(record.ids or ())
        if tuple(record.ids or ()) not in first_round:
            followups += 1
            assert ids_sent <= reported
            assert not ids_sent & corrupted
        if record.status == 207:
            reported |= set(record.failed_ids)
    assert followups > 0


def test_retry_only_failed_items_against_emulator(fake_clock: FakeClock) -> None:
    faults = FaultProfile(seed=2, partial_failure_rate=0.2)
    with Emulator(items=150, seed=1, faults=faults, clock=fake_clock) as emu, \
            sync_client(emu, fake_clock) as client:
        ids = list(range(1, 151))
        fetched, failed = bulk_fetch_all(client, ids)
    records = emu.requests
    assert_every_id_settled_once(ids, fetched, failed)
    first, *rest = records
    assert first.status == 207 and list(first.ids or ()) == ids
    assert rest, "the 207 should have been followed up"
    assert list(rest[0].ids or ()) == sorted(first.failed_ids, key=ids.index)
    assert fake_clock.sleeps, "the follow-up round should back off"


def test_clean_emulator_bulk_fetch_and_download(fake_clock: FakeClock) -> None:
    with Emulator(items=30, seed=4, clock=fake_clock) as emu, \
            sync_client(emu, fake_clock) as client:
        items = client.tasks.bulk_fetch(list(range(30, 0, -1)))
        assert [item["id"] for item in items] == list(range(30, 0, -1))
        content = client.download_original(items[0])
        assert hashlib.sha1(content).hexdigest() == items[0]["files_manifest"]["original"][
            "checksum"
        ]
        assert client.stats.as_dict() == {"requests": 2, "retries": 0, "items_retried": 0}
    assert [r.status for r in emu.requests] == [200, 200]
    assert all(r.correlation_id for r in emu.requests)


def test_invalid_ids_against_emulator(fake_clock: FakeClock) -> None:
    seeds = FaultProfile(unknown_ids="invalid_ids")  # the seed's 400 invalid_ids, selected
    with Emulator(items=10, seed=4, faults=seeds, clock=fake_clock) as emu, \
            sync_client(emu, fake_clock) as client:
        with pytest.raises(BackendInvalidInputError) as info:
            client.ground_truths.bulk_fetch([1, 2, 99999])
        assert info.value.error_code == "invalid_ids"
        assert info.value.failed_ids == (99999,)
    assert [r.status for r in emu.requests] == [400]


def test_an_id_a_200_leaves_out_is_not_served_once_without_a_retry_round(
    fake_clock: FakeClock,
) -> None:
    with Emulator(items=10, seed=4, clock=fake_clock) as emu, \
            sync_client(emu, fake_clock) as client:
        with pytest.raises(BackendError) as info:
            client.ground_truths.bulk_fetch([3, 99999, 1])
        assert info.value.error_code == "partial_failure"
        assert info.value.failed_codes == {99999: "not_served"}
        assert [item["id"] for item in succeeded_items(info.value)] == [3, 1]
        answer = client.tasks.bulk_fetch_once([5, 12345])
        assert answer.failed == {12345: "not_served"} and answer.retry == {}
    requests = emu.requests
    assert [(r.path, r.status) for r in requests] == [
        ("/v2/ground-truths/bulk-data/", 200), ("/v2/tasks/bulk-fetch/", 200),
    ]  # one request each: no round spent on the dropped ids
    assert all(r.query == "response_mode=inline" for r in requests)
    assert client.stats.as_dict()["items_retried"] == 0


def test_bad_token_against_emulator(fake_clock: FakeClock) -> None:
    with Emulator(items=10, clock=fake_clock) as emu, BackendV2Client(
        base_url=emu.url, token="not-the-token", sleep=fake_clock.sleep, clock=fake_clock
    ) as client:
        with pytest.raises(BackendAuthenticationError) as info:
            client.tasks.list_page()
        assert info.value.status_code == 401
        assert "not-the-token" not in str(info.value)
    assert [r.status for r in emu.requests] == [401]  # permanent: not retried


@pytest.mark.anyio
async def test_async_full_bulk_fetch_under_every_fault(fake_clock: FakeClock) -> None:
    async with Emulator(items=ITEMS, seed=5, faults=FAULTS, clock=fake_clock,
                        sleep=fake_clock.sleep) as emu, async_client(emu, fake_clock) as client:
        ids = [item["id"] async for item in client.tasks.iter(limit=200)]
        try:
            fetched, failed = await client.tasks.bulk_fetch(ids), {}
        except BackendError as exc:
            assert exc.error_code == "partial_failure"
            fetched, failed = succeeded_items(exc), dict(exc.failed_codes)
    records = emu.requests
    assert len(ids) == ITEMS
    assert_every_id_settled_once(ids, fetched, failed)
    assert set(failed.values()) <= ITEM_CODES
    assert_retry_after_respected(records)


def test_errors_classify_as_the_seed_says(fake_clock: FakeClock) -> None:
    """The seed's worked example: ``bulk_fetch`` inside ``except BackendError``, then
    ``classify_export_error`` — partial failures, bad ids and rate limits each get their code."""
    from synapse_sdk.plugins.actions.export.failure_classifier import classify_export_error
    from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode as Code

    faults = FaultProfile(seed=3, permanent_failure_rate=0.2, rate_limit=RateLimit(1.0, 1),
                          unknown_ids="invalid_ids")
    no_retry = SDKConfig(retry_policy=None)
    with Emulator(items=40, seed=2, faults=faults, clock=fake_clock) as emu, BackendV2Client(
        no_retry, base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=fake_clock.sleep,
        clock=fake_clock,
    ) as client:
        outcomes = []
        for ids in (list(range(1, 41)), [1, 2, 40_000]):
            fake_clock.advance(5.0)  # a fresh rate-limit token for each call
            try:
                client.assignments.bulk_fetch(ids=ids)
            except BackendError as exc:
                outcomes.append((exc, classify_export_error(exc)))
        fake_clock.advance(5.0)
        client.tasks.list_page(limit=1)  # spends the token: the next call is rate limited
        try:
            client.tasks.bulk_fetch([1])
        except BackendError as exc:
            outcomes.append((exc, classify_export_error(exc)))
    (partial, partial_code), (invalid, invalid_code), (limited, limited_code) = outcomes
    assert partial_code is Code.EXPORT_FAILED_BATCH_PARTIAL
    assert set(partial.failed_codes.values()) == {"item_corrupted"}
    assert invalid_code is Code.EXPORT_FAILED_BAD_REQUEST
    assert invalid.failed_ids == (40_000,)
    assert limited_code is Code.EXPORT_FAILED_RATE_LIMITED
    assert limited.retry_after_seconds is not None and limited.retry_after_seconds > 0


def test_a_client_without_the_tenant_is_refused_with_the_schemas_403(fake_clock: FakeClock) -> None:
    with Emulator(items=3, clock=fake_clock) as emu, BackendV2Client(
        base_url=emu.url, token=emu.token, sleep=fake_clock.sleep, clock=fake_clock
    ) as client:
        with pytest.raises(BackendAuthenticationError) as info:
            client.tasks.list_page()
        assert info.value.status_code == 403
        assert info.value.error_code == "PERMISSION_DENIED"
        assert emu.token not in str(info.value)


def test_the_legacy_drf_token_is_accepted(fake_clock: FakeClock) -> None:
    with Emulator(items=3, clock=fake_clock) as emu, BackendV2Client(
        SDKConfig(token_kind="drf"), base_url=emu.url, token=emu.token, tenant=emu.tenant,
        sleep=fake_clock.sleep, clock=fake_clock,
    ) as client:
        assert [item["id"] for item in client.tasks.iter()] == [1, 2, 3]
    assert all(record.authenticated for record in emu.requests)
