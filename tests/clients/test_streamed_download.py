"""Streamed downloads of originals over a real socket: size and digest checked on the way, a
dropped body resumed with ``Range``, a server ignoring ``Range`` restarting from 0, resumes
bounded by the retry policy, ``max_bytes``; the emulator's streamed originals (sync and async).

The file server is a plain ``http.server`` on loopback whose misbehaviour each test scripts:
``drops`` cuts the first answers' bodies after that many bytes (the head promised them all),
``ignore_range`` answers every request with the whole file, ``bad_start`` answers a range from
the wrong byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.clients.backend_v2 import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FaultProfile
from synapse_sdk.exceptions import BackendError, ServiceUnavailableError
from synapse_sdk.storage import StagedFile

BODY = bytes(range(256)) * 4096  # 1 MiB, every offset distinguishable within 256 bytes


@dataclass
class Script:
    """What the file server does; ``ranges`` records the Range header of every request."""

    body: bytes = BODY
    drops: list[int] = field(default_factory=list)
    ignore_range: bool = False
    bad_start: bool = False
    ranges: list[str | None] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            asked = self.headers.get("Range")
            script.ranges.append(asked)
            body, start = script.body, 0
            if asked and not script.ignore_range:
                start = int(asked.removeprefix("bytes=").split("-")[0])
                shown = start + 1 if script.bad_start else start
                self.send_response(206)
                self.send_header(
                    "Content-Range", f"bytes {shown}-{len(body) - 1}/{len(body)}"
                )
            else:
                self.send_response(200)
            part = body[start:]
            self.send_header("Content-Length", str(len(part)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if script.drops:
                self.wfile.write(part[: script.drops.pop(0)])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(part)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()


def _item(url: str, body: bytes = BODY, **entry: Any) -> dict[str, Any]:
    manifest = {
        "url": f"{url}/file.bin",
        "file_name_original": "file.bin",
        "is_primary": True,
        "file_size": len(body),
        "checksum": hashlib.sha1(body).hexdigest(),
        **entry,
    }
    return {"id": 7, "files_manifest": {"original": {k: v for k, v in manifest.items()
                                                     if v is not None}}}


def _client(
    url: str, waits: list[float], attempts: int = 4, events: list[Any] | None = None
) -> BackendV2Client:
    policy = RetryPolicy(max_attempts=attempts, backoff_base=0.5, backoff_max=2.0)
    hooks = () if events is None else (events.append,)
    config = SDKConfig(retry_policy=policy, retry_hooks=hooks)
    return BackendV2Client(config, base_url=url, token="t", tenant="x", sleep=waits.append)


def test_a_dropped_body_resumes_with_range_and_the_digest_holds(
    server: tuple[str, Script], tmp_path: Path
) -> None:
    url, script = server
    script.drops = [100_000, 300_000]
    waits: list[float] = []
    events: list[Any] = []
    with _client(url, waits, events=events) as client, StagedFile(tmp_path, "x") as staged:
        saved = client.download_original_to(_item(url), staged)
        assert staged.head(len(BODY) + 1) == BODY
    assert saved.size == len(BODY) and saved.sha256 == hashlib.sha256(BODY).hexdigest()
    assert (saved.resumes, saved.restarts) == (2, 0)
    assert script.ranges == [None, "bytes=100000-", "bytes=400000-"]
    assert len(waits) == 2  # each resume waited what decide_wait said, told to the hooks
    assert [(e.kind, e.call_name, e.wait) for e in events] == [
        ("scheduled", "http.download", wait) for wait in waits
    ]


def test_a_server_ignoring_range_restarts_from_zero(
    server: tuple[str, Script], tmp_path: Path
) -> None:
    url, script = server
    script.drops, script.ignore_range = [500_000], True
    with _client(url, []) as client, StagedFile(tmp_path, "x") as staged:
        saved = client.download_original_to(_item(url), staged)
        assert staged.size == len(BODY) and staged.head(len(BODY)) == BODY
    assert (saved.resumes, saved.restarts) == (0, 1)
    assert script.ranges == [None, "bytes=500000-"]


def test_a_range_answer_from_the_wrong_byte_is_malformed(
    server: tuple[str, Script], tmp_path: Path
) -> None:
    url, script = server
    script.drops, script.bad_start = [1000], True
    with (
        _client(url, []) as client,
        StagedFile(tmp_path, "x") as staged,
        pytest.raises(BackendError) as info,
    ):
        client.download_original_to(_item(url), staged)
    assert info.value.error_code == "malformed_response"


def test_resumes_without_progress_are_bounded_by_the_policy(
    server: tuple[str, Script], tmp_path: Path
) -> None:
    url, script = server
    script.drops = [1000] + [0] * 10  # then nothing more ever arrives
    waits: list[float] = []
    with (
        _client(url, waits, attempts=3) as client,
        StagedFile(tmp_path, "x") as staged,
        pytest.raises(ServiceUnavailableError),
    ):
        client.download_original_to(_item(url), staged)
    # max_attempts counts the attempts since the last progress: the one that brought 1000
    # bytes, then two that brought none.
    assert script.ranges == [None, "bytes=1000-", "bytes=1000-"]
    assert len(waits) == 2


def test_size_and_digest_mismatches(server: tuple[str, Script], tmp_path: Path) -> None:
    url, _ = server
    with _client(url, []) as client:
        with StagedFile(tmp_path, "a") as staged, pytest.raises(BackendError) as small:
            client.download_original_to(_item(url, file_size=1000), staged)
        assert small.value.error_code == "size_mismatch"
        assert staged.size <= 1000  # refused as soon as more came than declared
        with StagedFile(tmp_path, "b") as staged, pytest.raises(BackendError) as large:
            client.download_original_to(_item(url, file_size=len(BODY) + 1), staged)
        assert large.value.error_code == "size_mismatch"
        with StagedFile(tmp_path, "c") as staged, pytest.raises(BackendError) as digest:
            client.download_original_to(_item(url, checksum="0" * 40), staged)
        assert digest.value.error_code == "checksum_mismatch"
        assert digest.value.failed_ids == (7,)
    assert list(tmp_path.iterdir()) == []  # every staged file discarded


def test_max_bytes_refuses_a_declared_or_streamed_size(
    server: tuple[str, Script], tmp_path: Path
) -> None:
    url, script = server
    with _client(url, []) as client, StagedFile(tmp_path, "x") as staged:
        with pytest.raises(BackendError) as declared:
            client.download_original_to(_item(url), staged, max_bytes=1000)
        assert declared.value.error_code == "response_too_large"
        assert script.ranges == []  # refused before anything was sent
        with pytest.raises(BackendError) as streamed:
            client.download_original_to(_item(url, file_size=None), staged, max_bytes=1000)
        assert streamed.value.error_code == "response_too_large"


def test_emulator_originals_stream_and_resume(tmp_path: Path) -> None:
    faults = FaultProfile(original_drop_rate=1.0)  # every attempt cut (each one gets further)
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    with Emulator(items=3, original_bytes=3_000_001, faults=faults) as emu:
        with BackendV2Client(
            base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=waits.append
        ) as client:
            item = client.tasks.bulk_fetch([2])[0]
            entry = item["files_manifest"]["original"]
            assert entry["file_size"] == 3_000_001 and "checksum" not in entry
            with StagedFile(tmp_path, "x") as staged:
                saved = client.download_original_to(item, staged)
                first = staged.head(3_000_002)
        assert saved.size == 3_000_001 and saved.resumes > 5 and len(waits) == saved.resumes
        assert hashlib.sha256(first).hexdigest() == saved.sha256
        original = emu._state.store.original("tasks", 2)  # type: ignore[union-attr]
        assert first == b"".join(original.chunks(0, original.size - 1))

        async def fetch() -> bytes:
            async with AsyncBackendV2Client(
                base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=no_sleep
            ) as client:
                item = (await client.tasks.bulk_fetch([2]))[0]
                return await client.download_original(item, max_bytes=4_000_000)

        assert asyncio.run(fetch()) == first
