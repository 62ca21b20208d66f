"""Every public way to switch TLS verification off, tried against the HTTPS emulator.

The emulator's certificate comes from a throwaway CA that no default trust store holds: a
client that connects and sends the token has not verified it. Each attack below once did
(issue 13); now each is refused before a byte of a request leaves, and the emulator records no
request. Retries would not help and do not happen (the fake clock records no sleep).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from clients_support import Clock

from synapse_sdk.clients import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator
from synapse_sdk.exceptions import AuthenticationError

TOKEN = "emu_tls-hostile-SECRET-token-0123456789"
CONFIG = SDKConfig(retry_policy=RetryPolicy(max_attempts=3, budget_capacity=None))


@pytest.fixture(scope="module")
def served() -> Iterator[Emulator]:
    with Emulator(items=3, token=TOKEN, tls=True) as running:
        yield running


@pytest.fixture
def emu(served: Emulator, secret_sink: Any) -> Emulator:
    secret_sink.plant(TOKEN, "backend token")
    served.reset_log()
    return served


class _Wrapper(httpx.BaseTransport):
    """A custom transport that forwards to one that does not verify."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport(verify=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.inner.handle_request(request)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: httpx.Client(mounts={"https://": httpx.HTTPTransport(verify=False)}),
         "disables TLS verification"),
        (lambda: httpx.Client(mounts={"all://127.0.0.1": httpx.HTTPTransport(verify=False)}),
         "disables TLS verification"),
        (lambda: httpx.Client(transport=_Wrapper()), "a _Wrapper, a transport the SDK cannot"),
        (lambda: httpx.Client(mounts={"https://": _Wrapper()}), "cannot check"),
        (lambda: httpx.AsyncClient(mounts={"https://": httpx.AsyncHTTPTransport(verify=False)}),
         "disables TLS verification"),
    ],
    ids=["https-mount", "host-mount", "wrapper", "wrapper-mount", "async-mount"],
)
def test_an_injected_client_that_could_skip_verification_is_refused(
    emu: Emulator, make: Any, match: str
) -> None:
    http = make()
    cls = AsyncBackendV2Client if isinstance(http, httpx.AsyncClient) else BackendV2Client
    with pytest.raises(ValueError, match=match):
        cls(CONFIG, base_url=emu.url, token=TOKEN, http_client=http)
    assert emu.requests == []


def test_a_mock_transport_is_still_accepted() -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})),
                        mounts={"https://": httpx.MockTransport(lambda r: httpx.Response(204))})
    with BackendV2Client(CONFIG, base_url="https://backend.test", token=TOKEN, http_client=http):
        pass


def _lax(context: ssl.SSLContext, *, only_hostname: bool = False) -> None:
    context.check_hostname = False
    if not only_hostname:
        context.verify_mode = ssl.CERT_NONE


@pytest.mark.parametrize("only_hostname", [False, True], ids=["verify_mode", "check_hostname"])
def test_a_verify_context_switched_off_after_building_is_caught_at_the_handshake(
    emu: Emulator, only_hostname: bool
) -> None:
    # Trusts the emulator's CA; switching the host name check off must not go unnoticed either.
    context = ssl.create_default_context(cafile=emu.ca_file)
    if not only_hostname:
        context = ssl.create_default_context()  # the emulator's CA is not trusted at all
    clock = Clock()
    with BackendV2Client(CONFIG, base_url=emu.url, token=TOKEN, verify=context,
                         sleep=clock.sleep, clock=clock) as client:
        _lax(context, only_hostname=only_hostname)
        with pytest.raises(AuthenticationError, match="did not verify the server") as info:
            client.tasks.list_page()
    assert len(info.value.attempts) == 1 and clock.sleeps == []
    assert emu.requests == []


def test_the_async_client_catches_a_switched_off_context_too(emu: Emulator) -> None:
    context = ssl.create_default_context()

    async def run() -> None:
        async with AsyncBackendV2Client(CONFIG, base_url=emu.url, token=TOKEN,
                                        verify=context, sleep=Clock().asleep) as client:
            _lax(context)
            with pytest.raises(AuthenticationError, match="did not verify the server"):
                await client.tasks.list_page()

    asyncio.run(run())
    assert emu.requests == []


def test_a_verifying_context_still_connects(emu: Emulator) -> None:
    context = ssl.create_default_context(cafile=emu.ca_file)
    with BackendV2Client(
        CONFIG, base_url=emu.url, token=TOKEN, tenant=emu.tenant, verify=context
    ) as client:
        assert len(client.tasks.list_page().items) == 3


def test_an_empty_ssl_cert_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    with pytest.raises(ValueError, match=r"cannot load the CA certificates of SSL_CERT_FILE=") \
            as info:
        BackendV2Client(CONFIG, base_url="https://backend.test", token=TOKEN)
    assert str(empty) in str(info.value)


def test_the_cli_reports_an_empty_ssl_cert_file_without_a_traceback(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    env = {**os.environ, "SSL_CERT_FILE": str(empty), "SYNAPSE_TOKEN": TOKEN}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from synapse_sdk.cli import main; sys.exit(main())",
         "export", "--backend", "https://127.0.0.1:9", "--out", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "SSL_CERT_FILE" in done.stderr
    assert "Traceback" not in done.stderr
