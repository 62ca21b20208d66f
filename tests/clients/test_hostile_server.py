"""The backend v2 client against a hostile server on 127.0.0.1 (``hostile_server.py``).

Each test drives the real :class:`BackendV2Client` (or its async twin) over a real socket to a
server that sends what no honest backend would: stacked compression bombs, a trickled answer,
JSON nested 100 000 deep. The client must end each with a typed SDK error, bounded in memory and
time. Retries are off or sleep on a fake clock; the server's trickle is the only real wait.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import subprocess
import sys
from typing import Any

import httpx
import pytest
from clients_support import Clock
from hostile_server import Request, gzip_bomb, head, hostile_server, send_all, trickle

from synapse_sdk.clients import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.clients.backend_v2 import MAX_PAGE_BYTES
from synapse_sdk.config import RetryPolicy, SDKConfig, TimeoutConfig
from synapse_sdk.exceptions import (
    BackendError,
    BackendInvalidInputError,
    NetworkTimeoutError,
    ServiceUnavailableError,
)

TOKEN = "hostile-test-SECRET-token-0123456789"
#: Twice the default 32 MiB bound (the 1 GiB and 10 GiB bombs are measured in docs/reliability.md).
BOMB_SIZE = 64 << 20
NO_RETRY = SDKConfig(retry_policy=None)


def _client(url: str, cfg: SDKConfig = NO_RETRY, **kwargs: Any) -> BackendV2Client:
    return BackendV2Client(cfg, base_url=url, token=TOKEN, **kwargs)


def _answer(status: int, body: bytes, headers: dict[str, str]) -> Any:
    def answer(request: Request, conn: socket.socket) -> None:
        send_all(conn, head(status, {"Content-Length": str(len(body)), **headers}) + body)

    return answer


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """64 MiB of zeros, gzipped twice: a few hundred bytes on the wire."""
    data = gzip_bomb(BOMB_SIZE)
    assert len(data) < 4096
    return data


# --- 1. Stacked compression bombs ----------------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip, gzip", "gzip,gzip", "deflate, gzip"])
def test_a_stacked_bomb_in_a_success_body_is_too_large_not_out_of_memory(
    bomb: bytes, coding: str
) -> None:
    body = gzip_bomb(BOMB_SIZE, inner="deflate") if coding.startswith("deflate") else bomb
    with hostile_server(_answer(200, body, {"Content-Encoding": coding})) as server, \
            _client(server.url) as client, pytest.raises(BackendError) as info:
        client.tasks.list_page()
    assert info.value.error_code == "response_too_large"
    assert f"{MAX_PAGE_BYTES}-byte bound" in str(info.value)  # a list page's bound
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_a_bomb_in_an_original_file_is_bounded_by_the_download_limit(bomb: bytes) -> None:
    with hostile_server(_answer(200, bomb, {"Content-Encoding": "gzip, gzip"})) as server, \
            _client(server.url) as client, pytest.raises(BackendError) as info:
        item = {"id": 1, "original": {"url": f"{server.url}/files/1"}}
        client.download_original(item, max_bytes=1 << 20)
    assert info.value.error_code == "response_too_large"


def test_a_bomb_in_an_error_body_still_gives_the_status_error(bomb: bytes) -> None:
    clock = Clock()
    cfg = SDKConfig(retry_policy=RetryPolicy(max_attempts=2, budget_capacity=None))
    answer = _answer(503, bomb, {"Content-Encoding": "gzip, gzip", "Retry-After": "1"})
    with hostile_server(answer) as server, \
            _client(server.url, cfg, sleep=clock.sleep, clock=clock) as client, \
            pytest.raises(ServiceUnavailableError) as info:
        client.tasks.list_page()
    assert info.value.status_code == 503
    assert len(info.value.attempts) == 2  # retried as any 503, the body cut at 64 KiB decoded
    assert len(str(info.value)) < 1_000


def _async_list_error(url: str, cfg: SDKConfig = NO_RETRY) -> Exception:
    """What listing a page with the async client raises."""

    async def run() -> Exception:
        async with AsyncBackendV2Client(cfg, base_url=url, token=TOKEN) as client:
            with pytest.raises(Exception) as info:
                await client.tasks.list_page()
            return info.value

    return asyncio.run(run())


def test_an_async_client_bounds_a_bomb_too(bomb: bytes) -> None:
    with hostile_server(_answer(200, bomb, {"Content-Encoding": "gzip, gzip"})) as server:
        error = _async_list_error(server.url)
    assert isinstance(error, BackendError)
    assert error.error_code == "response_too_large"


def test_a_small_compressed_answer_still_decodes() -> None:
    page = {"data": [{"id": 1}], "meta": {"pagination": {"next_cursor": None}}}
    body = gzip.compress(gzip.compress(json.dumps(page).encode()))
    with hostile_server(_answer(200, body, {"Content-Encoding": "gzip, gzip"})) as server, \
            _client(server.url) as client:
        assert [item["id"] for item in client.tasks.list_page().items] == [1]


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("br", b"\x1b\x00"),
        ("gzip, " * 5 + "gzip", b"x"),
        ("gzip", b"definitely not gzip"),
    ],
)
def test_unsupported_or_broken_codings_are_decoding_errors(coding: str, body: bytes) -> None:
    with hostile_server(_answer(200, body, {"Content-Encoding": coding})) as server, \
            _client(server.url) as client, pytest.raises(ServiceUnavailableError) as info:
        client.tasks.list_page()
    assert "could not be decoded" in str(info.value)


# --- 2. Trickled answers -------------------------------------------------------------------------

#: Each attempt may take half a second in all; the server would need 20 s to finish.
QUICK = SDKConfig(retry_policy=None, timeouts=TimeoutConfig(total=0.5))
PAGE = b'{"data": [], "meta": {"pagination": {"next_cursor": null}}}'


def _trickled_head(request: Request, conn: socket.socket) -> None:
    trickle(conn, head(200, {"X-Padding": "x" * 1000, "Content-Length": str(len(PAGE))}), 0.02)


def _trickled_body(request: Request, conn: socket.socket) -> None:
    body = b" " * 1000 + PAGE
    send_all(conn, head(200, {"Content-Length": str(len(body))}))
    trickle(conn, body, 0.02)


@pytest.mark.parametrize("answer", [_trickled_head, _trickled_body], ids=["head", "body"])
def test_a_trickled_answer_ends_at_the_attempts_total_time_limit(answer: Any) -> None:
    with hostile_server(answer) as server, _client(server.url, QUICK) as client, \
            pytest.raises(NetworkTimeoutError) as info:
        client.tasks.list_page()
    assert "time limit of 0.5 s (TimeoutConfig.total)" in str(info.value)
    assert info.value.outcome_unknown


@pytest.mark.parametrize("answer", [_trickled_head, _trickled_body], ids=["head", "body"])
def test_an_async_client_ends_a_trickle_too(answer: Any) -> None:
    with hostile_server(answer) as server:
        error = _async_list_error(server.url, QUICK)
    assert isinstance(error, NetworkTimeoutError)
    assert "TimeoutConfig.total" in str(error)


def test_the_policy_deadline_still_bounds_the_whole_call() -> None:
    cfg = SDKConfig(retry_policy=RetryPolicy(deadline=0.5, max_attempts=3),
                    timeouts=TimeoutConfig(total=60))
    with hostile_server(_trickled_body) as server, _client(server.url, cfg) as client, \
            pytest.raises(NetworkTimeoutError) as info:
        client.tasks.list_page()
    assert "(RetryPolicy.deadline) passed" in str(info.value)


def test_an_injected_client_keeps_the_limit_and_an_honest_answer_passes() -> None:
    def honest(request: Request, conn: socket.socket) -> None:
        send_all(conn, head(200, {"Content-Length": str(len(PAGE))}) + PAGE)

    with hostile_server(honest) as server, \
            _client(server.url, QUICK, http_client=httpx.Client()) as client:
        assert client.tasks.list_page().items == []
    with hostile_server(_trickled_head) as server, \
            _client(server.url, QUICK, http_client=httpx.Client()) as client, \
            pytest.raises(NetworkTimeoutError, match=r"TimeoutConfig\.total"):
        client.tasks.list_page()


# --- 3. Deep JSON --------------------------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


def test_deep_json_in_a_success_body_is_a_malformed_response() -> None:
    with hostile_server(_answer(200, DEEP, {"Content-Type": "application/json"})) as server, \
            _client(server.url) as client, pytest.raises(BackendError) as info:
        client.tasks.list_page()
    assert info.value.error_code == "malformed_response"
    assert "nests too deep" in str(info.value)
    assert isinstance(info.value.__cause__, RecursionError)


def test_deep_json_in_an_error_body_still_gives_the_status_error() -> None:
    deep = b'{"error": ' * 20_000 + b"1" + b"}" * 20_000
    with hostile_server(_answer(400, deep, {"Content-Type": "application/json"})) as server, \
            _client(server.url) as client, pytest.raises(BackendInvalidInputError) as info:
        client.tasks.list_page()
    assert info.value.status_code == 400
    assert len(str(info.value)) < 1_000


# --- 5. A server echoing the token, with the CLI logging at DEBUG --------------------------------

_DEBUG_CLI = (
    "import logging, sys; logging.basicConfig(level=logging.DEBUG); "
    "from synapse_sdk.cli import main; sys.exit(main())"
)


def _echo_in_headers(request: Request, conn: socket.socket) -> None:
    echoed = request.headers.get("synapse-access-token", "")
    send_all(conn, head(200, {"X-Echo": echoed, "Content-Length": str(len(PAGE))},
                        reason=echoed) + PAGE)


def _echo_in_a_broken_head(request: Request, conn: socket.socket) -> None:
    token = request.headers["synapse-access-token"].encode()
    send_all(conn, b"HTTP/1.1 200 OK\r\nbroken line " + token
             + b"\r\n\r\n")


@pytest.mark.parametrize("answer", [_echo_in_headers, _echo_in_a_broken_head],
                         ids=["headers", "broken-head"])
def test_the_cli_at_debug_never_logs_a_token_the_server_echoes(
    answer: Any, tmp_path: Any
) -> None:
    env = {**os.environ, "SYNAPSE_TOKEN": TOKEN, "SYNAPSE_LANGUAGE": "en"}
    with hostile_server(answer) as server:
        done = subprocess.run(
            [sys.executable, "-c", _DEBUG_CLI, "export", "--backend", server.url,
             "--out", str(tmp_path), "--retry-rounds", "0"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )
    assert server.requests and all(
        r.headers["synapse-access-token"] == TOKEN for r in server.requests
    )
    output = done.stdout + done.stderr
    assert "httpcore.http11:receive_response_headers" in output  # DEBUG was on
    assert "SECRET" not in output
