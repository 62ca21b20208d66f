"""The in-process server: lifecycle, no leaked threads or sockets, loopback only, secrets hidden."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from synapse_sdk.emulator import Emulator, FaultProfile, is_loopback
from synapse_sdk.emulator._ca import CertificateAuthority, write_private


def _emulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("synapse-emulator:")]


def _refuses_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_start_serves_at_once_and_stop_leaves_nothing_behind() -> None:
    before = len(_emulator_threads())
    ports = []
    for _ in range(4):
        with Emulator(items=3) as emu:
            assert emu.running
            assert emu.url == f"http://127.0.0.1:{emu.port}"
            with emu.client() as http:  # keep-alive connection still open at stop()
                assert http.get("/v2/tasks/").status_code == 200
                ports.append(emu.port)
                emu.stop()
        assert not emu.running
    assert len(_emulator_threads()) == before
    assert all(_refuses_connections(port) for port in ports)


def test_stop_is_idempotent_and_an_emulator_starts_only_once() -> None:
    emu = Emulator(items=1)
    with pytest.raises(RuntimeError, match="not started"):
        _ = emu.url
    emu.start()
    with pytest.raises(RuntimeError, match="only once"):
        emu.start()
    emu.stop()
    emu.stop()
    with pytest.raises(RuntimeError, match="only once"):
        emu.start()


def test_the_token_never_shows_in_reprs_or_the_log() -> None:
    with Emulator(items=2, token="emu_secret-value-123") as emu, emu.client() as http:
        http.get("/v2/tasks/")
        http.post("/v2/tasks/bulk-fetch/", json={"ids": [1]})
        texts = [
            repr(emu),
            str(emu),
            repr(emu.state),
            repr(emu.store),
            repr(emu.faults),
            repr(emu.requests),
        ]
    assert emu.token == "emu_secret-value-123"
    for text in texts:
        assert "secret-value" not in text


def test_client_helpers_preset_url_and_token_and_merge_headers() -> None:
    with Emulator(items=2) as emu:
        with emu.client(headers={"X-Correlation-ID": "c-9"}, timeout=5.0) as http:
            assert http.get("/v2/tasks/").status_code == 200
        assert emu.requests[-1].correlation_id == "c-9"
        assert emu.requests[-1].authenticated


@pytest.mark.anyio
async def test_async_client_helper() -> None:
    async with Emulator(items=2) as emu, emu.async_client() as http:
        assert (await http.get("/v2/assignments/")).status_code == 200


def test_generated_tokens_are_random_and_authenticate() -> None:
    with Emulator(items=1) as first, Emulator(items=1) as second:
        assert first.token != second.token
        assert len(first.token) > 20
        with first.client() as http:
            assert http.get("/v2/tasks/").status_code == 200
        wrong = httpx.get(
            first.url + "/v2/tasks/", headers=second.auth_headers
        )
        assert wrong.status_code == 401


@pytest.mark.parametrize("token", ["", "has space", "tab\there"])
def test_a_bad_fixed_token_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match="access token"):
        Emulator(items=1, token=token)


def test_non_loopback_hosts_need_an_explicit_opt_in() -> None:
    for host in ("0.0.0.0", "192.0.2.10", "example.com", "::"):
        with pytest.raises(ValueError, match="allow_non_loopback"):
            Emulator(host=host)
    assert is_loopback("127.0.0.1") and is_loopback("127.1.2.3") and is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")


def test_allowing_a_non_loopback_host_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # Constructing does not bind; the warning comes at once, before anything is exposed.
    with caplog.at_level("WARNING", logger="synapse_sdk.emulator"):
        Emulator(host="192.0.2.1", allow_non_loopback=True)
    assert "non-loopback host 192.0.2.1" in caplog.text


def test_a_busy_port_is_a_clear_os_error() -> None:
    with (
        Emulator(items=1) as emu,
        pytest.raises(OSError, match=f"cannot bind 127.0.0.1:{emu.port}"),
    ):
        Emulator(items=1, port=emu.port).start()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"port": -1}, ValueError),
        ({"port": 70000}, ValueError),
        ({"seed": "1"}, TypeError),
        ({"faults": "terrible"}, ValueError),
        ({"faults": 3}, TypeError),
        ({"tls": "yes"}, TypeError),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        Emulator(**kwargs)  # type: ignore[arg-type]


def test_preset_names_are_seeded_from_the_emulator_seed() -> None:
    emu = Emulator(items=1, seed=12, faults="mild")
    assert emu.faults == FaultProfile.preset("mild", seed=12)
    assert "faults='mild'" in repr(emu)


@pytest.mark.anyio
async def test_async_context_manager() -> None:
    async with Emulator(items=3) as emu:
        async with httpx.AsyncClient(
            base_url=emu.url, headers=emu.auth_headers
        ) as http:
            response = await http.post("/v2/ground-truths/bulk-data/", json={"ids": [3, 1]})
        assert [item["id"] for item in response.json()["data"]] == [3, 1]
    assert not emu.running


def test_concurrent_clients_are_served_and_all_logged() -> None:
    with Emulator(items=200) as emu:
        errors: list[BaseException] = []

        def worker(start: int) -> None:
            try:
                with emu.client() as http:
                    for n in range(5):
                        ids = list(range(start + n * 10, start + n * 10 + 10))
                        response = http.post("/v2/tasks/bulk-fetch/", json={"ids": ids})
                        assert [item["id"] for item in response.json()["data"]] == ids
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(1 + 50 * k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        records = emu.requests
    assert len(records) == 20
    assert sorted(r.seq for r in records) == list(range(1, 21))


# -- HTTPS mode ---------------------------------------------------------------------------------


def _tls_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("synapse-emulator-tls-*")}


def test_tls_mode_serves_https_with_a_throwaway_ca_and_cleans_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, secret_sink: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    keys: list[bytes] = []

    def capture(path: Path, data: bytes) -> None:
        keys.append(data)
        secret_sink.plant(data, "backend emulator server key")
        write_private(path, data)

    monkeypatch.setattr("synapse_sdk.emulator._serving.write_private", capture)
    with Emulator(items=3, tls=True) as emu:
        assert emu.url == f"https://127.0.0.1:{emu.port}"
        directory = Path(emu.ca_file).parent
        # The key file is gone as soon as uvicorn loaded it; the directory is private.
        assert sorted(p.name for p in directory.iterdir()) == ["ca.pem", "server.pem"]
        assert directory.stat().st_mode & 0o077 == 0
        assert Path(emu.ca_file).read_bytes() == emu.ca_pem
        ca = x509.load_pem_x509_certificate(emu.ca_pem)
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        served = x509.load_pem_x509_certificate((directory / "server.pem").read_bytes())
        san = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
        assert san.get_values_for_type(x509.DNSName) == []
        assert served.issuer == ca.subject
        # That certificate is what the server presents, and it verifies against the CA.
        context = ssl.create_default_context(cafile=emu.ca_file)
        with (
            socket.create_connection(("127.0.0.1", emu.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            presented = tls.getpeercert(binary_form=True)
        assert presented == served.public_bytes(serialization.Encoding.DER)
        with emu.client() as http:  # the helper trusts the CA already
            assert http.get("/v2/tasks/").status_code == 200
        with pytest.raises(httpx.TransportError), httpx.Client() as plain:  # no plain HTTP
            plain.get(f"http://127.0.0.1:{emu.port}/healthz")
        ca_pem = emu.ca_pem
        texts = [repr(emu), str(emu), repr(vars(emu)), repr(emu.state), repr(emu.requests)]
    assert len(keys) == 1 and keys[0].startswith(b"-----BEGIN PRIVATE KEY-----")
    key_line = keys[0].decode().splitlines()[1]
    for text in [*texts, caplog.text]:
        assert "PRIVATE KEY" not in text and key_line not in text
    assert not directory.exists()
    with pytest.raises(RuntimeError, match="stopped"):
        _ = emu.ca_file
    assert emu.ca_pem == ca_pem  # public: still readable after stop


@pytest.mark.anyio
async def test_tls_mode_async_client_helper() -> None:
    async with Emulator(items=2, tls=True) as emu, emu.async_client() as http:
        assert str(http.base_url).startswith("https://127.0.0.1:")
        assert (await http.get("/v2/assignments/")).status_code == 200


def test_tls_accessors_need_a_started_tls_emulator() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = Emulator(items=1, tls=True).ca_pem
    with Emulator(items=1) as plain:
        assert plain.url.startswith("http://") and not plain.tls
        with pytest.raises(RuntimeError, match="plain HTTP"):
            _ = plain.ca_pem
        with pytest.raises(RuntimeError, match="plain HTTP"):
            _ = plain.ca_file


def test_a_failed_tls_setup_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("no entropy today")

    monkeypatch.setattr(CertificateAuthority, "generate", broken)
    before = _tls_dirs()
    emu = Emulator(items=1, tls=True)
    with pytest.raises(OSError, match="no entropy"):
        emu.start()
    assert _tls_dirs() == before
    assert not emu.running
