"""The backend v2 clients over real TLS: the emulator's HTTPS mode on 127.0.0.1.

Every test talks to a real uvicorn server over a loopback socket, with a throwaway CA made at
the emulator's start. They prove that a client trusting that CA (a CA file, or a verifying
``ssl.SSLContext``) lists and bulk-fetches, sync and async; that a certificate the client cannot
trust, or one for another host name, is refused with the SDK's mapped error before any request
reaches the app and without a retry; that the client refuses to be built with verification off;
and that neither the bearer token nor the server's private key shows in any error, repr or log.

No test sleeps: the clients' retry engine and bulk-fetch pauses sleep on a fake clock, whose
recorded sleeps also prove that nothing was retried.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from clients_support import Clock

from synapse_sdk.clients import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator
from synapse_sdk.emulator._ca import CertificateAuthority
from synapse_sdk.exceptions import AuthenticationError, BackendError
from synapse_sdk.failures import flatten_exception, walk_chain
from synapse_sdk.plugins.actions.export import classify_export_error
from synapse_sdk.plugins.actions.export.failure_classifier import EXPORT_FAILURES
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
from synapse_sdk.plugins.failure_semantics import RetrySemantics

ITEMS = 12
TOKEN = "emu_tls-SECRET-bearer-token-0123456789"
#: Generous on purpose: a TLS failure must not be retried even though the policy would allow it.
POLICY = RetryPolicy(max_attempts=5, backoff_base=0.5, budget_capacity=None)

Op = Literal["list", "bulk_fetch"]
OPS: list[Op] = ["list", "bulk_fetch"]


class _TestEmulator(Emulator):
    """The HTTPS emulator, remembering its server key so the tests can hunt for it, and
    optionally presenting a certificate valid only for other host names."""

    def __init__(self, *, names: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._names = names
        self.server_key = b""

    def _tls_names(self) -> list[str]:
        return self._names if self._names is not None else super()._tls_names()

    def _server_certificate(
        self, authority: CertificateAuthority, names: Sequence[str], common_name: str
    ) -> tuple[bytes, bytes]:
        self.server_key, cert_pem = super()._server_certificate(authority, names, common_name)
        return self.server_key, cert_pem


@pytest.fixture(scope="module")
def served() -> Iterator[_TestEmulator]:
    """HTTPS, a certificate for 127.0.0.1 (IP address SAN only)."""
    running = _TestEmulator(items=ITEMS, token=TOKEN, tls=True)
    with running:
        yield running


@pytest.fixture(scope="module")
def misnamed() -> Iterator[_TestEmulator]:
    """HTTPS on 127.0.0.1, with a certificate (from its own CA) valid only for example.invalid."""
    running = _TestEmulator(names=["example.invalid"], items=ITEMS, token=TOKEN, tls=True)
    with running:
        yield running


def _ready(emu: _TestEmulator, secret_sink: Any) -> _TestEmulator:
    assert emu.server_key.startswith(b"-----BEGIN PRIVATE KEY-----")
    secret_sink.plant(emu.server_key, "backend emulator server key")
    secret_sink.plant(TOKEN, "backend token")
    emu.reset_log()
    return emu


@pytest.fixture
def emu(served: _TestEmulator, secret_sink: Any) -> _TestEmulator:
    return _ready(served, secret_sink)


@pytest.fixture
def wrong_name_emu(misnamed: _TestEmulator, secret_sink: Any) -> _TestEmulator:
    return _ready(misnamed, secret_sink)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="synapse_sdk")
    return caplog


def _config() -> SDKConfig:
    return SDKConfig(retry_policy=POLICY)


def _sync(emu: Emulator, clock: Clock, **kwargs: Any) -> BackendV2Client:
    options: dict[str, Any] = {"base_url": emu.url, "token": TOKEN, "tenant": emu.tenant, **kwargs}
    return BackendV2Client(_config(), sleep=clock.sleep, clock=clock, **options)


def _async(emu: Emulator, clock: Clock, **kwargs: Any) -> AsyncBackendV2Client:
    options: dict[str, Any] = {"base_url": emu.url, "token": TOKEN, "tenant": emu.tenant, **kwargs}
    return AsyncBackendV2Client(_config(), sleep=clock.asleep, clock=clock, **options)


VERIFY_KINDS = ["ca_file", "ca_path", "context_cafile", "context_cadata"]


def _verify(kind: str, emu: Emulator) -> str | Path | ssl.SSLContext:
    if kind == "ca_file":
        return emu.ca_file
    if kind == "ca_path":
        return Path(emu.ca_file)
    if kind == "context_cafile":
        return ssl.create_default_context(cafile=emu.ca_file)
    assert kind == "context_cadata"
    return ssl.create_default_context(cadata=emu.ca_pem.decode("ascii"))


def _assert_all_served(emu: Emulator, client: BackendV2Client | AsyncBackendV2Client) -> None:
    records = emu.requests
    assert records and all(r.status == 200 for r in records)
    # API calls carry the credentials; presigned file URLs never do.
    assert all(r.authenticated != r.path.startswith("/storage/") for r in records)
    assert client.stats.as_dict() == {"requests": len(records), "retries": 0, "items_retried": 0}


# -- (a) a client that trusts the emulator's CA -----------------------------------------------


@pytest.mark.parametrize("kind", VERIFY_KINDS)
def test_sync_client_lists_and_bulk_fetches_over_tls(
    emu: _TestEmulator, clock: Clock, kind: str
) -> None:
    with _sync(emu, clock, verify=_verify(kind, emu)) as client:
        assert client.base_url == f"https://127.0.0.1:{emu.port}"
        listed = list(client.tasks.iter(limit=5))  # three pages, one keep-alive TLS connection
        assert [item["id"] for item in listed] == list(range(1, ITEMS + 1))
        page = client.assignments.list_page(limit=4)
        assert [item["id"] for item in page.items] == [1, 2, 3, 4] and page.next_cursor
        fetched = client.ground_truths.bulk_fetch([7, 2, 11])
        assert [item["id"] for item in fetched] == [7, 2, 11]
        original = client.download_original(fetched[0])  # size and SHA-1 checked
        assert len(original) == fetched[0]["files_manifest"]["original"]["file_size"]
        _assert_all_served(emu, client)
    assert [r.path for r in emu.requests].count("/v2/ground-truths/bulk-data/") == 1
    assert clock.sleeps == []


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["ca_file", "context_cafile"])
async def test_async_client_lists_and_bulk_fetches_over_tls(
    emu: _TestEmulator, clock: Clock, kind: str
) -> None:
    async with _async(emu, clock, verify=_verify(kind, emu)) as client:
        listed = [item async for item in client.tasks.iter(limit=5)]
        assert [item["id"] for item in listed] == list(range(1, ITEMS + 1))
        page = await client.assignments.list_page(limit=4)
        assert [item["id"] for item in page.items] == [1, 2, 3, 4]
        fetched = await client.ground_truths.bulk_fetch([7, 2, 11])
        assert [item["id"] for item in fetched] == [7, 2, 11]
        original = await client.download_original(fetched[0])
        assert len(original) == fetched[0]["files_manifest"]["original"]["file_size"]
        _assert_all_served(emu, client)
    assert clock.sleeps == []


# -- (b), (c), (e): certificates the client must refuse ---------------------------------------


def _run_sync(client: BackendV2Client, op: Op) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        if op == "list":
            client.tasks.list_page()
        else:
            client.tasks.bulk_fetch([1, 2, 3])
    return info.value


async def _run_async(client: AsyncBackendV2Client, op: Op) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        if op == "list":
            await client.tasks.list_page()
        else:
            await client.tasks.bulk_fetch([1, 2, 3])
    return info.value


def _raw_chain(exc: BaseException) -> list[BaseException]:
    """Every ``__cause__``/``__context__`` link, suppressed contexts included.

    httpcore's connection pool re-raises its ``ConnectError`` ``from None``, so the
    ``ssl.SSLCertVerificationError`` is only its (suppressed) ``__context__``: invisible to
    ``walk_chain`` and to a printed traceback, but followed by the transport's TLS detection.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _assert_refused(
    exc: AuthenticationError,
    client: BackendV2Client | AsyncBackendV2Client,
    emu: _TestEmulator,
    clock: Clock,
    logs: pytest.LogCaptureFixture,
    *,
    op: Op,
    reason: str,
) -> None:
    """One refusal, mapped right, never retried, no request served, no secret shown."""
    # The exact type: the backend never answered, so not the combined BackendAuthenticationError.
    assert type(exc) is AuthenticationError
    assert not isinstance(exc, BackendError)
    assert exc.code == "authentication_failed" and exc.outcome_unknown is False
    assert "TLS certificate failed verification; nothing was sent" in str(exc)
    assert exc.correlation_id is not None and re.fullmatch(r"[0-9a-f]{32}", exc.correlation_id)
    # raise ... from: the httpx error; the ssl verification error at the bottom of the chain.
    assert isinstance(exc.__cause__, httpx.ConnectError)
    verification = [e for e in _raw_chain(exc) if isinstance(e, ssl.SSLCertVerificationError)]
    assert len(verification) == 1
    assert reason in verification[0].verify_message
    assert reason in str(exc)  # the message quotes why
    # No retry: one attempt recorded by the engine, one request counted, nothing slept.
    assert len(exc.attempts) == 1
    assert (exc.attempts[0].number, exc.attempts[0].error_type) == (1, "AuthenticationError")
    assert exc.attempts[0].wait is None
    assert client.stats.as_dict() == {"requests": 1, "retries": 0, "items_retried": 0}
    assert clock.sleeps == []
    events = [record.getMessage() for record in logs.records]
    assert "synapse_sdk.retry.scheduled" not in events
    failed = [r for r in logs.records if r.getMessage() == "synapse_sdk.http.error"]
    assert [(r.__dict__["attempt"], r.__dict__["error_type"]) for r in failed] == [
        (1, "AuthenticationError")
    ]
    path = "/v2/tasks/" if op == "list" else "/v2/tasks/bulk-fetch/"
    assert failed[0].__dict__["path"] == path
    # Nothing reached the app: the handshake failed before a byte of HTTP.
    assert emu.requests == []
    # (e) neither the token nor the server key anywhere an error, repr or log could show it.
    texts = [flatten_exception(exc), repr(client), repr(client.transport), repr(emu)]
    for error in walk_chain(exc):
        texts += [str(error), repr(error)]
    texts += [repr(attempt) for attempt in exc.attempts]
    for record in logs.records:
        texts += [record.getMessage(), repr(vars(record))]
    key_line = emu.server_key.decode().splitlines()[1]
    for text in texts:
        assert TOKEN not in text
        assert "SECRET-bearer" not in text
        assert "PRIVATE KEY" not in text and key_line not in text


@pytest.mark.parametrize("op", OPS)
def test_sync_default_trust_store_refuses_the_emulator_certificate(
    emu: _TestEmulator, clock: Clock, logs: pytest.LogCaptureFixture, op: Op
) -> None:
    with _sync(emu, clock) as client:  # no verify=: httpx's default trust store
        exc = _run_sync(client, op)
    _assert_refused(
        exc, client, emu, clock, logs, op=op, reason="unable to get local issuer certificate"
    )


@pytest.mark.anyio
@pytest.mark.parametrize("op", OPS)
async def test_async_default_trust_store_refuses_the_emulator_certificate(
    emu: _TestEmulator, clock: Clock, logs: pytest.LogCaptureFixture, op: Op
) -> None:
    async with _async(emu, clock) as client:
        exc = await _run_async(client, op)
    _assert_refused(
        exc, client, emu, clock, logs, op=op, reason="unable to get local issuer certificate"
    )


@pytest.mark.parametrize("op", OPS)
def test_sync_certificate_for_another_host_is_refused(
    wrong_name_emu: _TestEmulator, clock: Clock, logs: pytest.LogCaptureFixture, op: Op
) -> None:
    # The client trusts the CA: only the host name check can fail.
    with _sync(wrong_name_emu, clock, verify=wrong_name_emu.ca_file) as client:
        exc = _run_sync(client, op)
    _assert_refused(
        exc, client, wrong_name_emu, clock, logs, op=op,
        reason="IP address mismatch, certificate is not valid for '127.0.0.1'",
    )


@pytest.mark.anyio
@pytest.mark.parametrize("op", OPS)
async def test_async_certificate_for_another_host_is_refused(
    wrong_name_emu: _TestEmulator, clock: Clock, logs: pytest.LogCaptureFixture, op: Op
) -> None:
    context = ssl.create_default_context(cafile=wrong_name_emu.ca_file)
    async with _async(wrong_name_emu, clock, verify=context) as client:
        exc = await _run_async(client, op)
    _assert_refused(
        exc, client, wrong_name_emu, clock, logs, op=op,
        reason="IP address mismatch, certificate is not valid for '127.0.0.1'",
    )


def _localhost_is_127_0_0_1() -> bool:
    try:
        infos = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(info[4][0] == "127.0.0.1" for info in infos)


@pytest.mark.skipif(not _localhost_is_127_0_0_1(), reason="localhost does not name 127.0.0.1")
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.anyio
async def test_a_name_the_ip_only_certificate_does_not_cover_is_refused(
    emu: _TestEmulator, clock: Clock, logs: pytest.LogCaptureFixture, mode: str
) -> None:
    # The same server, the same trusted CA, but reached as "localhost": its certificate names
    # only the address 127.0.0.1, so the host name check fails.
    url = f"https://localhost:{emu.port}"
    reason = "Hostname mismatch, certificate is not valid for 'localhost'"
    if mode == "sync":
        with _sync(emu, clock, base_url=url, verify=emu.ca_file) as client:
            exc = _run_sync(client, "list")
        _assert_refused(exc, client, emu, clock, logs, op="list", reason=reason)
    else:
        async with _async(emu, clock, base_url=url, verify=emu.ca_file) as aclient:
            exc = await _run_async(aclient, "list")
        _assert_refused(exc, aclient, emu, clock, logs, op="list", reason=reason)


def test_export_classification_of_a_tls_failure(emu: _TestEmulator, clock: Clock) -> None:
    with _sync(emu, clock) as client:
        exc = _run_sync(client, "bulk_fetch")
    code = classify_export_error(exc)
    # The TLS pattern (declared before AUTHENTICATION, whose class name the chain also shows)
    # matches the transport's message: a permanent failure whose text points at the URL and
    # the CA bundle, not at the token.
    assert code is ExportLogMessageCode.EXPORT_FAILED_TLS
    explained = EXPORT_FAILURES.classifier.explain(exc)
    assert explained is not None
    assert explained.layer == "pattern"
    assert explained.matched.lower() == "tls certificate failed verification"
    assert EXPORT_FAILURES.semantics(code) is RetrySemantics.NO_RETRY
    assert classify_export_error(exc) is code  # stable on a second look


# -- (d) verification cannot be switched off ---------------------------------------------------


def _not_verifying() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _no_host_name_check() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False  # still CERT_REQUIRED: any certificate of a trusted CA
    return context


OFF = [
    pytest.param(lambda: False, id="False"),
    pytest.param(lambda: True, id="True"),
    pytest.param(_not_verifying, id="CERT_NONE-context"),
    pytest.param(_no_host_name_check, id="no-hostname-context"),
]


@pytest.mark.parametrize("make_verify", OFF)
@pytest.mark.parametrize("client_type", [BackendV2Client, AsyncBackendV2Client])
def test_verification_cannot_be_switched_off(
    emu: _TestEmulator, make_verify: Any, client_type: type[Any]
) -> None:
    with pytest.raises(ValueError, match="verif") as info:
        client_type(_config(), base_url=emu.url, token=TOKEN, verify=make_verify())
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert emu.requests == []  # refused at construction: nothing was ever sent


@pytest.mark.parametrize(
    "make_client",
    [
        pytest.param(lambda: httpx.Client(verify=False), id="Client-verify-False"),
        pytest.param(lambda: httpx.Client(verify=_not_verifying()), id="Client-CERT_NONE"),
        pytest.param(
            lambda: httpx.AsyncClient(verify=_no_host_name_check()), id="AsyncClient-no-hostname"
        ),
    ],
)
def test_an_injected_client_that_does_not_verify_is_refused(
    emu: _TestEmulator, make_client: Any
) -> None:
    http_client = make_client()
    client_type = BackendV2Client if isinstance(http_client, httpx.Client) else AsyncBackendV2Client
    try:
        with pytest.raises(ValueError, match="disables TLS verification"):
            client_type(_config(), base_url=emu.url, token=TOKEN, http_client=http_client)
    finally:
        if isinstance(http_client, httpx.Client):
            http_client.close()
    assert emu.requests == []


def test_a_verifying_context_and_a_ca_file_are_accepted_without_a_request(
    emu: _TestEmulator, clock: Clock
) -> None:
    # The counterpart of the refusals: building a client sends nothing either way.
    for kind in VERIFY_KINDS:
        with _sync(emu, clock, verify=_verify(kind, emu)):
            pass
    assert emu.requests == []
