"""``data`` wrappers (dev/REAL_V2_API.md §4.2) against the emulator over a real socket.

``response_mode=presigned`` externalizes every payload; ``inline`` with the fault profile's
``inline_max_bytes`` truncates the long ones. The client downloads each wrapped payload without
the API's credentials, checks its size and SHA-256, and fails an item alone when it cannot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from synapse_sdk.cli.export import EXIT_ITEMS_FAILED
from synapse_sdk.clients import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.clients.backend_v2 import (
    PAYLOAD_TRUNCATED,
    PAYLOAD_URL_REFUSED,
    _Payload,
    succeeded_items,
)
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile, RequestRecord
from synapse_sdk.exceptions import BackendError, SynapError
from synapse_testkit.cli import run_synapse

ITEMS = 40
IDS = list(range(1, 21))


def make_client(emu: Emulator, clock: FakeClock, mode: str = "inline") -> BackendV2Client:
    return BackendV2Client(
        SDKConfig(retry_policy=RetryPolicy(max_attempts=3, budget_capacity=None)),
        base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=clock.sleep, clock=clock,
        rng=random.Random(1), response_mode=mode,
    )


def make_async_client(emu: Emulator, clock: FakeClock, mode: str) -> AsyncBackendV2Client:
    return AsyncBackendV2Client(
        SDKConfig(retry_policy=RetryPolicy(max_attempts=3, budget_capacity=None)),
        base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=clock.asleep, clock=clock,
        rng=random.Random(1), response_mode=mode,
    )


def expected(emu: Emulator, ids: list[int], resource: str = "tasks") -> list[Any]:
    """The payloads as the store holds them."""
    found = [emu.state.store.item(resource, i) for i in ids]
    return [item["data"] for item in found if item is not None]


def finished(emu: Emulator) -> list[RequestRecord]:
    """The request log, complete: stopping joins the server thread (idempotent)."""
    emu.stop()
    return emu.requests


def payload_gets(emu: Emulator) -> list[str]:
    return [r.path for r in finished(emu) if r.path.endswith("/data") and r.method == "GET"]


def bulk_posts(emu: Emulator) -> list[RequestRecord]:
    return [r for r in finished(emu) if r.method == "POST"]


def test_inline_payloads_are_used_as_sent() -> None:
    clock = FakeClock()
    with Emulator(items=ITEMS, clock=clock) as emu, make_client(emu, clock) as client:
        items = client.tasks.bulk_fetch(IDS)
        assert [item["data"] for item in items] == expected(emu, IDS)
        assert payload_gets(emu) == []
        assert all("response_mode=inline" in r.query for r in bulk_posts(emu))


@pytest.mark.parametrize("resource", ["tasks", "ground_truths"])
def test_presigned_payloads_are_downloaded_and_checked(resource: str) -> None:
    clock = FakeClock()
    with Emulator(items=ITEMS, clock=clock) as emu, make_client(emu, clock, "presigned") as c:
        items = getattr(c, resource).bulk_fetch(IDS)
        assert [item["data"] for item in items] == expected(emu, IDS, resource.replace("_", "-"))
        assert [item["id"] for item in items] == IDS
        assert len(payload_gets(emu)) == len(IDS)
        assert all("response_mode=presigned" in r.query for r in bulk_posts(emu))


def test_truncated_payloads_with_a_url_are_downloaded() -> None:
    clock = FakeClock()
    faults = FaultProfile(inline_max_bytes=10)
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu, make_client(emu, clock) as c:
        answer = c.tasks.bulk_fetch_once(IDS)
        assert [item["data"] for item in answer.items] == expected(emu, IDS)
        assert answer.failed == {} and answer.retry == {}
        assert len(payload_gets(emu)) == len(IDS)


def test_a_truncated_payload_without_a_url_fails_its_item_alone() -> None:
    clock = FakeClock()
    faults = FaultProfile(seed=4, inline_max_bytes=10, truncated_no_url_rate=0.3)
    lost = [i for i in IDS if faults.payload_fault("truncated_no_url", "tasks", i)]
    assert 0 < len(lost) < len(IDS)
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu, make_client(emu, clock) as c:
        with pytest.raises(BackendError) as caught:
            c.tasks.bulk_fetch(IDS)
        error = caught.value
        assert error.error_code == "partial_failure"
        assert error.failed_codes == dict.fromkeys(lost, PAYLOAD_TRUNCATED)
        kept = [i for i in IDS if i not in lost]
        assert [item["data"] for item in succeeded_items(error)] == expected(emu, kept)
        assert len(bulk_posts(emu)) == 1  # permanent: not asked again


def test_a_payload_that_does_not_match_its_digest_fails_its_item() -> None:
    clock = FakeClock()
    faults = FaultProfile(seed=2, payload_corrupt_rate=0.25)
    bad = [i for i in IDS if faults.payload_fault("payload_corrupt", "tasks", i)]
    assert 0 < len(bad) < len(IDS)
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu, \
            make_client(emu, clock, "presigned") as client:
        answer = client.tasks.bulk_fetch_once(IDS)
        assert answer.failed == dict.fromkeys(bad, "checksum_mismatch")
        assert [item["id"] for item in answer.items] == [i for i in IDS if i not in bad]
        assert all(not _Payload.wraps(item["data"]) for item in answer.items)


def _expires_once(faults: FaultProfile) -> list[int]:
    """The ids whose first payload URL is issued expired and the second is not."""
    return [
        i for i in IDS
        if faults.payload_fault("payload_url_expired", "tasks", i, 0)
        and not faults.payload_fault("payload_url_expired", "tasks", i, 1)
    ]


def test_an_expired_url_is_refetched_once_then_resolved() -> None:
    clock = FakeClock()
    faults = FaultProfile(seed=7, payload_url_expired_rate=0.3)
    refetched = _expires_once(faults)
    twice = [i for i in IDS if faults.payload_fault("payload_url_expired", "tasks", i, 0)
             and i not in refetched]
    assert refetched
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu, \
            make_client(emu, clock, "presigned") as client:
        answer = client.tasks.bulk_fetch_once(IDS)
        assert answer.retry == dict.fromkeys(twice, PAYLOAD_URL_REFUSED)
        served = [i for i in IDS if i not in twice]
        assert [item["id"] for item in answer.items] == served
        assert [item["data"] for item in answer.items] == expected(emu, served)
        log = finished(emu)
        posts = [r for r in log if r.method == "POST"]
        assert len(posts) == 2  # the request, then one re-fetch of the refused ids
        assert sorted(posts[1].ids or ()) == sorted(refetched + twice)
        refused = [r for r in log if r.path.endswith("/data") and r.status == 403]
        assert len(refused) == len(refetched) + 2 * len(twice)


def test_a_url_refused_twice_fails_the_item_as_retryable() -> None:
    clock = FakeClock()
    faults = FaultProfile(payload_url_expired_rate=1.0)
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu, \
            make_client(emu, clock, "presigned") as client:
        answer = client.tasks.bulk_fetch_once([1, 2])
        assert answer.items == [] and answer.failed == {}
        assert answer.retry == {1: PAYLOAD_URL_REFUSED, 2: PAYLOAD_URL_REFUSED}
        assert len(bulk_posts(emu)) == 2


@pytest.mark.anyio
async def test_async_client_resolves_presigned_and_refetches_expired_urls() -> None:
    clock = FakeClock()
    faults = FaultProfile(seed=7, payload_url_expired_rate=0.3, payload_corrupt_rate=0.1)
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu:
        async with make_async_client(emu, clock, "presigned") as client:
            answer = await client.tasks.bulk_fetch_once(IDS)
        corrupt = {i for i in IDS if faults.payload_fault("payload_corrupt", "tasks", i)}
        settled = {item["id"] for item in answer.items} | set(answer.retry) | set(answer.failed)
        assert settled == set(IDS)
        assert set(answer.failed) <= corrupt
        served = [item["id"] for item in answer.items]
        assert [item["data"] for item in answer.items] == expected(emu, served)
        assert any(i in _expires_once(faults) for i in served)


def test_wrapper_recognition_is_strict() -> None:
    digest = "0" * 64
    assert _Payload.wraps({"mode": "presigned", "presigned_url": "https://x/", "size": 1,
                           "data_digest": digest})
    assert _Payload.wraps({"mode": "inline", "truncated": True, "size": 1, "data_digest": digest})
    # Payloads that merely look like one stay payloads.
    assert not _Payload.wraps({"mode": "presigned", "size": 1})
    assert not _Payload.wraps({"mode": "inline", "truncated": "yes", "data_digest": digest})
    assert not _Payload.wraps({"mode": "inline", "data_digest": digest})
    assert not _Payload.wraps({"mode": "other", "presigned_url": "x", "data_digest": digest})
    assert not _Payload.wraps(["mode", "presigned"])


def test_response_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="response_mode"):
        BackendV2Client(base_url="http://127.0.0.1:1", token="syn_x", tenant="t",
                        response_mode="bogus")


def _records(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "tasks").glob("*.json"))}


def test_synapse_export_with_presigned_payloads_writes_what_inline_writes(tmp_path: Path) -> None:
    common = ("export", "--items", "30", "--faults", "none", "--json")
    inline = run_synapse(*common, "--out", str(tmp_path / "inline"))
    presigned = run_synapse(*common, "--out", str(tmp_path / "presigned"),
                            "--response-mode", "presigned")
    assert inline.returncode == presigned.returncode == 0, presigned.stderr
    records = _records(tmp_path / "inline")
    assert len(records) >= 30
    assert _records(tmp_path / "presigned") == records


def test_synapse_export_fails_items_whose_payload_is_corrupt(tmp_path: Path) -> None:
    faults = FaultProfile(seed=0, payload_corrupt_rate=0.2)
    bad = [i for i in range(1, 31) if faults.payload_fault("payload_corrupt", "tasks", i)]
    result = run_synapse("export", "--items", "30", "--out", str(tmp_path), "--json",
                         "--faults", "none,payload_corrupt_rate=0.2", "--response-mode",
                         "presigned")
    assert result.returncode == EXIT_ITEMS_FAILED, result.stderr
    summary = json.loads(result.stdout)
    assert summary["failed"] == len(bad) > 0
    assert summary["failed_by_code"] == {"checksum_mismatch": len(bad)}


def _everything_logged(records: list[logging.LogRecord]) -> str:
    """Each record's message and every extra field, as one text."""
    return "\n".join(f"{r.getMessage()} {vars(r)!r}" for r in records)


def test_presigned_signatures_stay_out_of_logs_and_messages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    faults = FaultProfile(payload_url_expired_rate=1.0)  # every payload URL refused: errors too
    caplog.set_level(logging.DEBUG)
    with Emulator(items=ITEMS, clock=clock) as emu, make_client(emu, clock, "presigned") as c:
        items = c.tasks.bulk_fetch([1, 2])
        entry = items[0]["files_manifest"]["original"]
        signature = parse_qs(urlsplit(entry["url"]).query)["signature"][0]
        assert c.download_original(items[0])
        forged = entry["url"].replace(signature, signature[::-1])
        with pytest.raises(BackendError) as caught:
            c.transport.request("GET", forged, credentials=False)
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu, \
            make_client(emu, clock, "presigned") as client:
        answer = client.tasks.bulk_fetch_once([3])
        assert answer.retry == {3: PAYLOAD_URL_REFUSED}
    logged = _everything_logged(caplog.records)
    assert "HTTP Request: GET" in logged and "/storage/tasks/1?" in logged
    assert "signature=REDACTED" in logged and "expires=REDACTED" in logged
    assert re.search(r"signature=(?!REDACTED)", logged) is None
    assert signature not in logged and signature[::-1] not in logged
    assert signature[::-1] not in str(caught.value)
    assert "signature=REDACTED" in str(caught.value)


def test_retrieve_resolves_a_ground_truths_wrapped_data() -> None:
    clock = FakeClock()
    faults = FaultProfile(seed=7, inline_max_bytes=10, payload_url_expired_rate=0.3)
    refetched = [i for i in IDS if faults.payload_fault("payload_url_expired", "ground-truths",
                                                        i, 0)
                 and not faults.payload_fault("payload_url_expired", "ground-truths", i, 1)]
    item_id = refetched[0]
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu, make_client(emu, clock) as c:
        want = expected(emu, [item_id], "ground-truths")[0]
        detail = c.ground_truths.retrieve(item_id)
        assert detail["data"] == want and detail["id"] == item_id
        assert c.tasks.retrieve(1)["data"] == expected(emu, [1])[0]  # tasks: never wrapped
        log = finished(emu)
    retrieves = [r for r in log if r.path == f"/v2/ground-truths/{item_id}/"]
    assert len(retrieves) == 2  # the URL was refused once: retrieved again for a fresh one
    assert all("response_mode=inline" in r.query for r in retrieves)
    assert not any("response_mode" in r.query for r in log if r.path == "/v2/tasks/1/")


def test_retrieve_raises_the_items_code_when_its_data_cannot_be_resolved() -> None:
    clock = FakeClock()
    faults = FaultProfile(inline_max_bytes=10, truncated_no_url_rate=1.0)
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu, make_client(emu, clock) as c:
        with pytest.raises(BackendError) as caught:
            c.ground_truths.retrieve(3)
        assert (caught.value.error_code, caught.value.failed_ids) == (PAYLOAD_TRUNCATED, (3,))
    faults = FaultProfile(payload_url_expired_rate=1.0)
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu, \
            make_client(emu, clock, "presigned") as client:
        with pytest.raises(BackendError) as caught:
            client.ground_truths.retrieve(3)
        assert caught.value.error_code == PAYLOAD_URL_REFUSED
        assert isinstance(caught.value.__cause__, BackendError)  # the store's 403
        assert len([r for r in finished(emu) if r.path == "/v2/ground-truths/3/"]) == 2


@pytest.mark.anyio
async def test_async_retrieve_resolves_presigned_data() -> None:
    clock = FakeClock()
    faults = FaultProfile(payload_corrupt_rate=1.0)
    with Emulator(items=ITEMS, clock=clock) as emu:
        want = expected(emu, [5], "ground-truths")[0]
        async with make_async_client(emu, clock, "presigned") as client:
            assert (await client.ground_truths.retrieve(5))["data"] == want
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu:
        async with make_async_client(emu, clock, "presigned") as client:
            with pytest.raises(BackendError) as caught:
                await client.ground_truths.retrieve(5)
            assert caught.value.error_code == "checksum_mismatch"


# -- concurrent downloads -----------------------------------------------------------------------

class _InFlight:
    """Counts the payload GETs in flight; each waits at a barrier of ``parties`` before it is
    sent, so the downloads only get through if that many run at once (a serial client would
    break the barrier instead)."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=10)
        self.lock = threading.Lock()
        self.now = self.most = 0

    def request(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/data"):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            self.barrier.wait()

    def response(self, response: httpx.Response) -> None:
        if response.request.url.path.endswith("/data"):
            with self.lock:
                self.now -= 1


def test_presigned_payloads_are_downloaded_concurrently_in_order() -> None:
    clock = FakeClock()
    faults = FaultProfile(seed=2, payload_corrupt_rate=0.25)
    bad = [i for i in IDS if faults.payload_fault("payload_corrupt", "tasks", i)]
    assert 0 < len(bad) < len(IDS) and len(IDS) % 4 == 0
    seen = _InFlight(4)
    hooks: dict[str, list[Any]] = {"request": [seen.request], "response": [seen.response]}
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu, \
            httpx.Client(event_hooks=hooks) as http, BackendV2Client(
                base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=clock.sleep,
                clock=clock, http_client=http, response_mode="presigned", payload_concurrency=4,
            ) as client:
        answer = client.tasks.bulk_fetch_once(list(reversed(IDS)))
        assert seen.most == 4  # four at once, never more
        served = [i for i in reversed(IDS) if i not in bad]
        assert [item["id"] for item in answer.items] == served  # request order kept
        assert [item["data"] for item in answer.items] == expected(emu, served)
        assert answer.failed == dict.fromkeys(bad, "checksum_mismatch")  # each fails alone
        assert len(payload_gets(emu)) == len(IDS)


@pytest.mark.anyio
async def test_async_presigned_payloads_are_gathered_under_a_bound() -> None:
    clock = FakeClock()
    barrier = asyncio.Barrier(5)
    now = most = 0

    async def on_request(request: httpx.Request) -> None:
        nonlocal now, most
        if request.url.path.endswith("/data"):
            now += 1
            most = max(most, now)
            await asyncio.wait_for(barrier.wait(), 10)

    async def on_response(response: httpx.Response) -> None:
        nonlocal now
        if response.request.url.path.endswith("/data"):
            now -= 1

    hooks: dict[str, list[Any]] = {"request": [on_request], "response": [on_response]}
    with Emulator(items=ITEMS, clock=clock) as emu:
        async with httpx.AsyncClient(event_hooks=hooks) as http, AsyncBackendV2Client(
            base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=clock.asleep,
            clock=clock, http_client=http, response_mode="presigned", payload_concurrency=5,
        ) as client:
            answer = await client.tasks.bulk_fetch_once(IDS)
        assert most == 5
        assert [item["id"] for item in answer.items] == IDS
        assert [item["data"] for item in answer.items] == expected(emu, IDS)


@pytest.mark.parametrize("bad", [0, -1, True, 2.0])
def test_payload_concurrency_is_checked(bad: Any) -> None:
    with pytest.raises(TypeError if not isinstance(bad, int) or bad is True else ValueError):
        BackendV2Client(base_url="http://127.0.0.1:9", token="syn_x", tenant="t",
                        payload_concurrency=bad)


# -- a refused re-fetch fails the whole call ----------------------------------------------------

def _unauthenticated_refetch(posts: list[str]) -> Any:
    """A request hook dropping the access token from the second bulk POST (the re-fetch of the
    refused URLs): the emulator refuses it with the schema's 401 or 403."""

    def hook(request: httpx.Request) -> None:
        if request.method == "POST":
            posts.append(request.url.path)
            if len(posts) == 2:
                del request.headers["SYNAPSE-ACCESS-TOKEN"]

    return hook


def test_an_auth_error_on_the_refetch_fails_the_whole_call() -> None:
    clock = FakeClock()
    faults = FaultProfile(payload_url_expired_rate=1.0)
    posts: list[str] = []
    hooks = {"request": [_unauthenticated_refetch(posts)]}
    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu, \
            httpx.Client(event_hooks=hooks) as http, BackendV2Client(
                base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=clock.sleep,
                clock=clock, http_client=http, response_mode="presigned",
            ) as client:
        with pytest.raises(SynapError) as caught:
            client.tasks.bulk_fetch([1, 2, 3])
        assert caught.value.status_code in (401, 403)
        assert not client.config.effective_retry_policy.is_retryable(caught.value)
        assert not (isinstance(caught.value, BackendError)
                    and caught.value.error_code == "partial_failure")
        assert len(posts) == 2  # no retry round after it
        log = finished(emu)
        assert [r.status for r in log if r.method == "POST"][1] in (401, 403)


@pytest.mark.anyio
async def test_async_auth_error_on_the_refetch_fails_the_whole_call() -> None:
    clock = FakeClock()
    faults = FaultProfile(payload_url_expired_rate=1.0)
    posts: list[str] = []
    sync_hook = _unauthenticated_refetch(posts)

    async def hook(request: httpx.Request) -> None:
        sync_hook(request)

    with Emulator(items=ITEMS, clock=clock, faults=faults) as emu:
        async with httpx.AsyncClient(event_hooks={"request": [hook]}) as http, \
                AsyncBackendV2Client(
                    base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=clock.asleep,
                    clock=clock, http_client=http, response_mode="presigned",
                ) as client:
            with pytest.raises(SynapError) as caught:
                await client.tasks.bulk_fetch_once([1, 2, 3])
        assert caught.value.status_code in (401, 403)
        assert len(posts) == 2
