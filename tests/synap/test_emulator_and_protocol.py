"""Unit tests of the Synap emulator's parts and the client's error mapping."""

from __future__ import annotations

import base64
import filecmp
import importlib.util
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from synapse_sdk import exceptions as exc
from synapse_sdk.clients._transport import Transport
from synapse_sdk.clients.synap._core import SynapCore
from synapse_sdk.clients.synap._credentials import CertificateMeta, new_key_and_csr
from synapse_sdk.clients.synap._protocol import Request, error_from_grpc
from synapse_sdk.config import SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock
from synapse_sdk.emulator._serving import ServedEmulator
from synapse_sdk.emulator.synap import (
    CertificateAuthority,
    FaultPlan,
    Lifetimes,
    SynapEmulator,
)
from synapse_sdk.emulator.synap._service import ApiError
from synapse_sdk.retry_after import MAX_RETRY_AFTER_SECONDS

ROOT = Path(__file__).resolve().parents[2]
Env = Any


# --- the fake clock and the fault plan ----------------------------------------------------


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(100.0)
    assert clock() == 100.0
    clock.sleep(2.5)
    assert clock.advance(0.5) == 103.0 and clock.sleeps == [2.5]
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            clock.advance(bad)
    with pytest.raises(TypeError):
        clock.sleep("1")  # type: ignore[arg-type]


def test_fault_plan_serves_faults_in_order_then_runs_dry() -> None:
    plan = FaultPlan()
    plan.inject("context", "rate_limit", times=2, retry_after=3)
    plan.inject("context", "agent_unavailable")
    plan.inject("*", "service_unavailable")
    kinds = [getattr(plan.take("context"), "kind", None) for _ in range(5)]
    assert kinds == ["rate_limit", "rate_limit", "agent_unavailable", "service_unavailable", None]
    assert plan.served[("context", "rate_limit")] == 2
    plan.inject("ingest", "drop", times=None)
    assert plan.pending() == {"ingest": None}
    assert all(plan.take("ingest") is not None for _ in range(10))
    plan.clear("ingest")
    assert plan.take("ingest") is None


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("nowhere", "rate_limit"), {}),
        (("context", "explode"), {}),
        (("context", "rate_limit"), {"times": 0}),
        (("context", "rate_limit"), {"retry_after": -1}),
        (("context", "stall"), {"stall_seconds": float("nan")}),
    ],
)
def test_fault_plan_rejects_nonsense(args: tuple[str, str], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FaultPlan().inject(*args, **kwargs)  # type: ignore[arg-type]


def test_lifetimes_are_validated() -> None:
    with pytest.raises(ValueError):
        Lifetimes(certificate_ttl=0)
    with pytest.raises(ValueError):
        Lifetimes(renew_fraction=1.0)


# --- the certificate authority --------------------------------------------------------------


def test_ca_persists_and_reloads(tmp_path: Path) -> None:
    first = CertificateAuthority.load_or_create(tmp_path)
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"
    again = CertificateAuthority.load_or_create(tmp_path)
    assert again.certificate_pem == first.certificate_pem
    assert "PRIVATE" not in repr(again) and "BEGIN" not in repr(again)
    (tmp_path / "ca.pem").write_bytes(CertificateAuthority.generate().certificate_pem)
    with pytest.raises(ValueError, match="do not match"):
        CertificateAuthority.load_or_create(tmp_path)


def test_ca_signs_a_csr_for_the_instance_it_names() -> None:
    authority = CertificateAuthority.generate()
    _key, csr = new_key_and_csr("inst_0123456789abcdef")
    cert = authority.sign_client_csr(csr, "inst_fedcba9876543210", x509_lifetime_seconds=60)
    assert cert.subject.rfc4514_string().startswith("CN=inst_fedcba9876543210,")
    der = bytearray(x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte belongs to the signature
    forged = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der))
    forged += b"-----END CERTIFICATE REQUEST-----\n"
    for bad in (b"garbage", forged):
        with pytest.raises(ValueError):
            authority.sign_client_csr(bad, "inst_0123456789abcdef", x509_lifetime_seconds=60)


# --- the service's rules --------------------------------------------------------------------


def test_bootstrap_replays_its_answer_for_the_same_key_and_csr(env: Env) -> None:
    service = env.emu.service
    instance_id, token = env.fresh()
    _key, csr = new_key_and_csr(instance_id)
    body = {"instance_id": instance_id, "bootstrap_token": token, "csr": csr.decode()}
    first = service.bootstrap(body, "key-1")
    assert service.bootstrap(body, "key-1") == first  # a retry after a lost answer
    with pytest.raises(ApiError) as other_key:
        service.bootstrap(body, "key-2")
    assert other_key.value.code == "bootstrap_key_invalid"
    _key2, csr2 = new_key_and_csr(instance_id)
    with pytest.raises(ApiError):
        service.bootstrap({**body, "csr": csr2.decode()}, "key-1")


def test_ingest_rejects_a_reused_idempotency_key_with_another_body(env: Env) -> None:
    client = env.ready()
    cert = x509.load_pem_x509_certificate(client._core.credentials.cert_pem)
    principal = env.emu.service.authenticate(cert.public_bytes(serialization.Encoding.DER))
    body = {"user_id": "u", "memories": [{"content": "a"}]}
    first = env.emu.service.ingest(principal, body, "same-key")
    assert env.emu.service.ingest(principal, body, "same-key") == first
    with pytest.raises(ApiError) as raised:
        env.emu.service.ingest(principal, {**body, "user_id": "v"}, "same-key")
    assert raised.value.status == 422
    conversation = env.emu.service.create_conversation(principal, "conv-key")
    assert env.emu.service.create_conversation(principal, "conv-key") == conversation
    assert env.emu.service.create_conversation(principal, None) != conversation


def test_dashboard_operations_refuse_unknown_instances(env: Env) -> None:
    with pytest.raises(KeyError):
        env.emu.issue_bootstrap_token("inst_0000000000000001")
    with pytest.raises(ValueError):
        env.emu.register_instance("not-an-id")
    instance_id = env.emu.register_instance()
    with pytest.raises(ValueError, match="already registered"):
        env.emu.register_instance(instance_id)


def test_emulator_state_survives_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    with SynapEmulator(clock=clock, state_dir=tmp_path) as first:
        instance_id = first.register_instance()
        ca = first.ca_pem
    with SynapEmulator(clock=clock, state_dir=tmp_path) as second:
        assert second.ca_pem == ca
        assert second.issue_bootstrap_token(instance_id).startswith("sbt_")
        assert repr(second).startswith("SynapEmulator(url='https://127.0.0.1:")
    assert repr(second) == "SynapEmulator(stopped)"
    with pytest.raises(RuntimeError):
        second.url  # noqa: B018 - reading it is the test


def test_the_synap_emulator_shares_the_backend_emulators_lifecycle() -> None:
    """Start, TLS and stop are the one lifecycle: the server key is on disk only while it is
    loaded, the private directory and the thread are gone after stop, and it starts once."""
    before = {t.name for t in threading.enumerate()}
    emu = SynapEmulator(clock=FakeClock())
    assert isinstance(emu, ServedEmulator) and isinstance(Emulator(), ServedEmulator)
    with emu:
        work = Path(emu.describe()["ca_file"]).parent
        names = {p.name for p in work.iterdir()}  # without state_dir, the state lives here too
        assert {"ca.pem", "server.pem", "synap.sqlite3"} <= names and "server.key" not in names
        assert work.stat().st_mode & 0o077 == 0
        assert any(t.name.startswith("synap-emulator:") for t in threading.enumerate())
    assert not work.exists() and not emu.running
    assert {t.name for t in threading.enumerate()} <= before
    with pytest.raises(RuntimeError, match="only once"):
        emu.start()


# --- the client's error mapping -------------------------------------------------------------

_REQUEST = Request("context", "GET", "/v1/context", "session", conversation_id="conv_x")


def _envelope(code: str, detail: str = "d") -> bytes:
    return json.dumps({"error": {"code": code, "detail": detail}}).encode()


def error_from_response(
    request: Request, status: int, headers: dict[str, str], content: bytes, *, instance_id: str
) -> exc.SynapError:
    """The error the Synap client's call options make the one HTTP transport raise for this
    answer (a request without authentication, so no session is needed)."""
    core = SynapCore(
        instance_id, config=None, url="https://synap.test", trust_root=None,
        credentials_dir="/nonexistent", clock=lambda: 0.0,
    )
    request = Request(
        request.operation, request.method, request.path, "none",
        conversation_id=request.conversation_id, correlation_id=request.correlation_id,
    )
    http = httpx.Client(
        transport=httpx.MockTransport(lambda _: httpx.Response(status, headers=headers,
                                                               content=content)),
    )
    transport = Transport(SDKConfig(retry_policy=None), base_url=core.url, http_client=http)
    with transport, pytest.raises(exc.SynapError) as raised:
        transport.request(**core.call_options(request))
    http.close()
    return raised.value


@pytest.mark.parametrize(
    ("status", "code", "operation", "expected"),
    [
        (429, "rate_limited", "context", exc.BackendRateLimitError),
        (503, "agent_unavailable", "context", exc.BackendAgentUnavailableError),
        (401, "binding_revoked", "context", exc.BackendAuthenticationError),
        (403, "binding_revoked", "renew", exc.BackendCertificateRenewalError),
        (401, "certificate_expired", "renew", exc.BackendCertificateExpiredError),
        (404, "invalid_conversation_id", "context", exc.BackendInvalidConversationIdError),
        (404, "invalid_instance_id", "context", exc.BackendInvalidInstanceIdError),
        (418, "teapot", "context", exc.BackendError),  # unknown code: classified by status
        (500, "teapot", "context", exc.BackendServiceUnavailableError),
    ],
)
def test_error_codes_map_to_the_tree(
    status: int, code: str, operation: str, expected: type[exc.SynapError]
) -> None:
    request = Request(operation, "GET", "/x", "session", conversation_id="conv_x")
    error = error_from_response(
        request, status, {"Retry-After": "2"}, _envelope(code), instance_id="inst_0123456789abcdef"
    )
    assert type(error) is expected
    assert error.correlation_id == request.correlation_id


def test_rate_limit_reads_retry_after_from_headers_then_the_body() -> None:
    body = json.dumps({"error": {"code": "rate_limited", "retry_after": 4}}).encode()
    from_body = error_from_response(_REQUEST, 429, {}, body, instance_id="inst_0123456789abcdef")
    assert isinstance(from_body, exc.RateLimitError) and from_body.retry_after_seconds == 4
    from_header = error_from_response(
        _REQUEST, 429, {"retry-after": "1.5"}, body, instance_id="inst_0123456789abcdef"
    )
    assert isinstance(from_header, exc.RateLimitError)
    assert from_header.retry_after_seconds == 1.5


@pytest.mark.parametrize(
    ("status", "details", "expected"),
    [
        (
            "UNAUTHENTICATED",
            '{"code": "session_expired", "detail": "idle"}',
            exc.SessionExpiredError,
        ),
        ("UNAUTHENTICATED", '{"code": "certificate_expired"}', exc.CertificateExpiredError),
        ("UNAUTHENTICATED", "not json", exc.AuthenticationError),
        ("RESOURCE_EXHAUSTED", '{"code": "rate_limited", "retry_after": 3}', exc.RateLimitError),
        ("UNAVAILABLE", '{"code": "agent_unavailable"}', exc.AgentUnavailableError),
        ("UNAVAILABLE", "failed to connect to all addresses", exc.ServiceUnavailableError),
        ("DEADLINE_EXCEEDED", "", exc.NetworkTimeoutError),
        ("INTERNAL", "", exc.ServiceUnavailableError),
        ("NOT_FOUND", '{"code": "invalid_instance_id"}', exc.InvalidInstanceIdError),
    ],
)
def test_grpc_statuses_map_to_the_tree(
    status: str, details: str, expected: type[exc.SynapError]
) -> None:
    error = error_from_grpc(
        status, details, correlation_id="c-1", instance_id="inst_0123456789abcdef"
    )
    assert type(error) is expected and error.correlation_id == "c-1"
    if isinstance(error, exc.RateLimitError):
        assert error.retry_after_seconds == 3


def test_certificate_metadata_is_validated() -> None:
    good = {
        "serial": "ab",
        "issued_at": 10,
        "expires_at": 20,
        "ttl_seconds": 10,
        "grace_seconds": 5,
        "renew_fraction": 0.3,
    }
    meta = CertificateMeta.from_response(good)
    assert [meta.state(t) for t in (12, 17.5, 21, 25)] == [
        "valid",
        "renew_due",
        "in_grace",
        "expired",
    ]
    for broken in ({"serial": ""}, {"expires_at": 5}, {"renew_fraction": 1.5}, {"ttl_seconds": -1}):
        with pytest.raises(ValueError):
            CertificateMeta.from_response({**good, **broken})


# --- codegen --------------------------------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None, reason="needs the codegen extra"
)
def test_generated_modules_are_reproducible(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path)}
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh")],
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
    )
    committed = ROOT / "src" / "synapse_sdk" / "_proto" / "synap" / "v1"
    names = ["listen_pb2.py", "listen_pb2.pyi", "listen_pb2_grpc.py"]
    match, mismatch, errors = filecmp.cmpfiles(
        committed, tmp_path / "synap" / "v1", names, shallow=False
    )
    assert (mismatch, errors) == ([], [])
    assert sorted(match) == sorted(names)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("1e999", MAX_RETRY_AFTER_SECONDS),  # json.loads gives inf: huge, not garbage
        ("Infinity", MAX_RETRY_AFTER_SECONDS),
        ("NaN", None),
        ("-3", None),
        ("999999999", 999999999.0),  # over a day: a hint, which the policy refuses
        ('"2.5"', 2.5),  # a string, read like the header
        ('"+5"', None),
        ("true", None),
        ("[1]", None),
        ("4", 4.0),
    ],
)
def test_grpc_rate_limit_hints_are_read_like_headers(
    retry_after: str, expected: float | None
) -> None:
    details = '{"code": "rate_limited", "retry_after": ' + retry_after + "}"
    error = error_from_grpc(
        "RESOURCE_EXHAUSTED", details, correlation_id="c-2", instance_id="inst_0123456789abcdef"
    )
    assert type(error) is exc.RateLimitError
    assert error.retry_after_seconds == expected
