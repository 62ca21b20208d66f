"""List pages and bulk answers have their own, lower bound (``MAX_PAGE_BYTES``).

A 32 MiB body of ``{}`` items parses to about 0.9 GB; no honest page of at most 500 items is
that large, so list and bulk calls read at most 8 MiB (figures in docs/reliability.md). Each test
drives the real client over a socket to the raw hostile server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from hostile_server import Request, head, hostile_server, send_all

from synapse_sdk.clients import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.clients.backend_v2 import DEFAULT_MAX_ORIGINAL_BYTES, MAX_PAGE_BYTES
from synapse_sdk.config import SDKConfig
from synapse_sdk.exceptions import BackendError

TOKEN = "pages-test-SECRET-token-0123456789"
NO_RETRY = SDKConfig(retry_policy=None)


def _page_of(size: int) -> bytes:
    """A valid page of exactly ``size`` bytes: one item padded with a long string."""
    frame = json.dumps(
        {"data": [{"id": 1, "pad": ""}], "meta": {"pagination": {"next_cursor": None}}}
    )
    return frame.replace('"pad": ""', '"pad": "' + "x" * (size - len(frame)) + '"').encode()


def _tiny_values(size: int) -> bytes:
    """About ``size`` bytes of ``{"data": [{}, {}, ...]}``, gzipped (small on the wire)."""
    count = (size - 16) // 3
    return gzip.compress(b'{"data": [{}' + b",{}" * (count - 1) + b"]}", 1)


def _serving(body: bytes, headers: dict[str, str] | None = None) -> Any:
    def answer(request: Request, conn: socket.socket) -> None:
        fields = {"Content-Length": str(len(body)), **(headers or {})}
        send_all(conn, head(200, fields) + body)

    return answer


CALLS: dict[str, Callable[[BackendV2Client], object]] = {
    "list_page": lambda client: client.tasks.list_page(),
    "bulk_fetch_once": lambda client: client.tasks.bulk_fetch_once([1]),
    "bulk_fetch": lambda client: client.tasks.bulk_fetch([1]),
}


@pytest.fixture(scope="module")
def tiny() -> bytes:
    """``{}`` items just over the page bound once decoded."""
    return _tiny_values(MAX_PAGE_BYTES + 64)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_page_of_tiny_values_over_the_page_bound_is_too_large(tiny: bytes, call: str) -> None:
    served = _serving(tiny, {"Content-Encoding": "gzip"})
    with hostile_server(served) as server, \
            BackendV2Client(NO_RETRY, base_url=server.url, token=TOKEN) as client, \
            pytest.raises(BackendError) as info:
        CALLS[call](client)
    assert info.value.error_code == "response_too_large"
    assert f"{MAX_PAGE_BYTES}-byte bound" in str(info.value)
    assert len(server.requests) == 1  # not retried: the same answer would come back


@pytest.mark.parametrize("call", ["list_page", "bulk_fetch_once"])
def test_the_async_client_has_the_same_page_bound(tiny: bytes, call: str) -> None:
    async def run(url: str) -> BaseException:
        async with AsyncBackendV2Client(NO_RETRY, base_url=url, token=TOKEN) as client:
            with pytest.raises(BackendError) as info:
                if call == "list_page":
                    await client.tasks.list_page()
                else:
                    await client.tasks.bulk_fetch_once([1])
            return info.value

    with hostile_server(_serving(tiny, {"Content-Encoding": "gzip"})) as server:
        error = asyncio.run(run(server.url))
    assert isinstance(error, BackendError) and error.error_code == "response_too_large"


def test_a_page_at_the_bound_still_passes_and_one_byte_more_does_not() -> None:
    with hostile_server(_serving(_page_of(MAX_PAGE_BYTES))) as server, \
            BackendV2Client(NO_RETRY, base_url=server.url, token=TOKEN) as client:
        assert [item["id"] for item in client.tasks.list_page().items] == [1]
    with hostile_server(_serving(_page_of(MAX_PAGE_BYTES + 1))) as server, \
            BackendV2Client(NO_RETRY, base_url=server.url, token=TOKEN) as client, \
            pytest.raises(BackendError) as info:
        client.tasks.list_page()
    assert info.value.error_code == "response_too_large"


def test_originals_keep_their_own_larger_bound() -> None:
    assert DEFAULT_MAX_ORIGINAL_BYTES > MAX_PAGE_BYTES
    content = b"\x89" * (MAX_PAGE_BYTES + 1)
    with hostile_server(_serving(content)) as server, \
            BackendV2Client(NO_RETRY, base_url=server.url, token=TOKEN) as client:
        item = {"id": 1, "original": {"url": "/v2/files/tasks/1/original"}}
        assert client.download_original(item) == content
