"""AsyncBackendV2Client: the async twins of the sync client's behaviours."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
from clients_support import (
    BASE,
    TOKEN,
    Clock,
    FakeBulk,
    Scripted,
    async_client,
    config,
    envelope,
    ids_of,
    item,
    reply,
)

from synapse_sdk.clients import AsyncBackendV2Client
from synapse_sdk.clients.backend_v2 import succeeded_items
from synapse_sdk.exceptions import (
    BackendError,
    BackendInvalidInputError,
    BackendServiceUnavailableError,
)

pytestmark = pytest.mark.anyio


async def test_async_iter_streams_pages(clock: Clock) -> None:
    backend = FakeBulk(total=230)
    async with async_client(backend, clock) as client:
        iterator = client.ground_truths.iter(limit=100)
        assert backend.requests == []
        first = await iterator.__anext__()
        assert first["id"] == 0 and len(backend.requests) == 1
        seen = [first] + [x async for x in iterator]
    assert ids_of(seen) == list(range(230))
    assert [r.url.path for r in backend.requests] == ["/v2/ground-truths/"] * 3


async def test_async_bad_limit_raises_at_once(clock: Clock) -> None:
    client = async_client(Scripted([]), clock)
    with pytest.raises(ValueError, match="limit"):
        client.tasks.iter(limit=0)
    with pytest.raises(TypeError, match="limit"):
        await client.tasks.list_page(limit=None)  # type: ignore[arg-type]


async def test_async_chunking_and_order(clock: Clock) -> None:
    backend = FakeBulk()
    client = async_client(backend, clock)
    ids = list(range(449, -1, -1))
    assert ids_of(await client.assignments.bulk_fetch(ids=ids)) == ids
    assert [len(b) for b in backend.bulk_bodies()] == [200, 200, 50]
    assert len({r.headers["x-correlation-id"] for r in backend.requests}) == 1
    await client.aclose()


async def test_async_207_retries_only_failed_items(clock: Clock) -> None:
    backend = FakeBulk(fail={4: ["item_unavailable"], 6: ["item_corrupted"]})
    client = async_client(backend, clock)
    with pytest.raises(BackendError) as info:
        await client.assignments.bulk_fetch(ids=list(range(1, 9)))
    exc = info.value
    assert exc.error_code == "partial_failure"
    assert exc.failed_ids == (6,)
    assert exc.failed_codes == {6: "item_corrupted"}
    assert ids_of(succeeded_items(exc)) == [1, 2, 3, 4, 5, 7, 8]
    assert backend.bulk_bodies() == [list(range(1, 9)), [4]]
    assert clock.sleeps == [0.5]
    assert client.stats.as_dict() == {"requests": 2, "retries": 0, "items_retried": 1}


async def test_async_invalid_ids_not_retried(clock: Clock) -> None:
    backend = FakeBulk(invalid={42})
    with pytest.raises(BackendInvalidInputError) as info:
        await async_client(backend, clock).tasks.bulk_fetch([1, 42])
    assert info.value.failed_ids == (42,)
    assert len(backend.requests) == 1


async def test_async_rate_limit_and_drop_are_retried(clock: Clock) -> None:
    backend = FakeBulk()
    limited = reply(429, {"error": {"code": "rate_limited"}}, {"retry-after-ms": "1500"})
    handler = Scripted([limited, httpx.ReadError("reset"), backend])
    assert ids_of(await async_client(handler, clock).tasks.bulk_fetch([3, 1])) == [3, 1]
    assert clock.sleeps == [1.5, 1.0]
    assert len({r.headers["idempotency-key"] for r in handler.requests}) == 1


async def test_async_outage_after_progress_is_partial(clock: Clock) -> None:
    down = envelope("service_unavailable", 503)
    handler = Scripted([FakeBulk(), down, down, down])
    with pytest.raises(BackendError) as info:
        await async_client(handler, clock).tasks.bulk_fetch(list(range(250)))
    assert isinstance(info.value.__cause__, BackendServiceUnavailableError)
    assert info.value.failed_ids == tuple(range(200, 250))
    assert ids_of(succeeded_items(info.value)) == list(range(200))


async def test_async_bad_ids(clock: Clock) -> None:
    with pytest.raises(TypeError):
        await async_client(FakeBulk(), clock).tasks.bulk_fetch([None])  # type: ignore[list-item]


async def test_async_download_original(clock: Clock) -> None:
    content = b"\x89PNG fake"
    good = {"id": 3, "original": {"url": "/v2/files/tasks/3/original", "size": len(content),
                                  "sha256": hashlib.sha256(content).hexdigest()}}
    handler = Scripted([reply(200, content), reply(200, b"\x89PNG fakX")])
    client = async_client(handler, clock)
    assert await client.download_original(good) == content
    with pytest.raises(BackendError) as info:
        await client.download_original(good)
    assert info.value.error_code == "checksum_mismatch"


async def test_async_client_construction_and_close() -> None:
    http = httpx.AsyncClient()
    async with AsyncBackendV2Client(config(), http_client=http) as client:
        assert client.base_url == BASE
        assert TOKEN not in repr(client)
    assert not http.is_closed  # the caller's client stays open
    await http.aclose()
    own = AsyncBackendV2Client(config())
    await own.aclose()
    assert own.transport._client.is_closed


async def test_async_shuffled_answer_keeps_input_order(clock: Clock) -> None:
    def shuffled(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["ids"]
        return reply(200, {"data": [item(i) for i in sorted(ids)]})

    assert ids_of(await async_client(shuffled, clock).tasks.bulk_fetch([9, 2, 5])) == [9, 2, 5]
