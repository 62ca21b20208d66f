"""Security proofs: secrets, file permissions, TLS verification, loopback, unsafe ids, bounds.

The suite-wide secret sink (``synapse_testkit/secret_sink.py``, registered by
``tests/conftest.py``) watches every test; the tests here first prove the sink sees what it
must, then drive the backend, export, CLI and emulator paths with planted secrets and check the
remaining promises directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import inspect
import io
import json
import logging
import os
import re
import secrets
import ssl
import stat
import threading
import tokenize
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from click.testing import CliRunner
from rich.console import Console

from synapse_sdk.cli import main as cli_main
from synapse_sdk.clients import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.clients._transport import ERROR_BODY_LIMIT, AsyncTransport, Transport
from synapse_sdk.clients.synap import _client as synap_module
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile, RateLimit
from synapse_sdk.emulator.synap import SynapEmulator
from synapse_sdk.exceptions import (
    BackendAuthenticationError,
    BackendError,
    BackendServiceUnavailableError,
    SynapError,
)
from synapse_sdk.failures import DEFAULT_LIMIT, flatten_exception, walk_chain
from synapse_sdk.plugins.action import JOB_LOG_FILENAME, ActionStepError, read_job_log
from synapse_sdk.plugins.actions.export.action import JOB_FOLDER, ExportAction
from synapse_sdk.plugins.actions.export.failure_classifier import classify_export_error
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
from synapse_sdk.plugins.actions.export.steps import UnsafeItemIdError, item_filename

SRC = Path(__file__).resolve().parents[2] / "src" / "synapse_sdk"
NO_RETRY = SDKConfig(retry_policy=None)


def _token(prefix: str = "tok") -> str:
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def _pem_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


# --- the sink sees what it must --------------------------------------------------------------


def test_the_sink_sees_a_planted_secret_anywhere_in_a_log_record(secret_sink: Any) -> None:
    token = _token()
    secret_sink.plant(token, "test token")
    log = logging.getLogger("synapse_sdk.tests.sink")
    leaks: list[Callable[[], None]] = [
        lambda: log.debug("sending %s", token),
        lambda: log.debug("request", extra={"headers": {"Authorization": f"Bearer {token}"}}),
        lambda: log.debug("cut short: %s", token[4:28]),  # a 24-character fragment
        lambda: log.info("quoted: %r", json.dumps({"t": token})),
        lambda: logging.getLogger("some.library").warning("url=https://h/?t=%s", token),
    ]

    def logged_traceback() -> None:
        try:
            raise RuntimeError(f"boom {token}")
        except RuntimeError:
            log.debug("failed", exc_info=True)

    leaks.append(logged_traceback)
    for leak in leaks:
        with secret_sink.expect_leak() as seen:
            leak()
        assert seen and all("test token" in line for line in seen)
    # A text without the secret is clean; so is one sharing only a short prefix with it.
    assert secret_sink.find(f"{token[:10]} and unrelated text " + "Z" * 40) is None


def test_the_sink_sees_a_secret_in_sdk_errors_and_pem_bodies(secret_sink: Any) -> None:
    token = _token("sst")
    secret_sink.plant(token, "session token")
    with secret_sink.expect_leak():
        BackendError(f"refused: {token}")  # seen in the message, as it is built
    with secret_sink.expect_leak():
        alive = BackendError("refused", correlation_id=token[3:30])  # seen in str() and repr()
    assert alive.correlation_id
    pem = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(
        secrets.token_urlsafe(48)[:64] for _ in range(3)
    ) + "\n-----END PRIVATE KEY-----\n"
    secret_sink.plant(pem, "private key")
    with secret_sink.expect_leak():
        logging.getLogger("synapse_sdk.tests.sink").debug("line: %s", _pem_lines(pem)[1])
    assert secret_sink.find("-----BEGIN PRIVATE KEY-----") is None  # only the body is secret


def test_every_kind_of_secret_is_planted_where_it_is_made(
    secret_sink: Any, synap: Any, tmp_path: Path
) -> None:
    with Emulator(items=3) as emu:
        assert secret_sink.find(emu.token) == "emulator bearer token"
        extra = emu.add_token()
        assert secret_sink.find(extra) == "emulator bearer token"
    backend_token = _token("bk")
    BackendV2Client(base_url="https://backend.test", token=backend_token).close()
    assert secret_sink.find(backend_token) == "backend token"

    instance_id, bootstrap = synap.fresh()
    assert secret_sink.find(bootstrap) == "Synap bootstrap token"
    client = synap.client(instance_id)
    client.initialize(bootstrap_token=bootstrap)
    assert secret_sink.find(client._core.session.token) == "Synap session token"
    document = json.loads((client.credentials_dir / "credentials.json").read_text())
    # The first base64 line of a key or certificate starts with an ASN.1 header every key of
    # its type shares, so it may be attributed to another key planted earlier in the session
    # (still caught as a secret); the lines after it are this key's own.
    for pem, kind in (
        (document["private_key"], "Synap private key"),
        (document["certificate"], "Synap client certificate"),
    ):
        first, *rest = _pem_lines(pem)
        assert secret_sink.find(first) is not None
        assert rest and all(secret_sink.find(line) == kind for line in rest)


# --- secrets on the backend, export, CLI and emulator paths -----------------------------------


def test_tokens_stay_out_of_logs_errors_and_request_logs_on_backend_paths(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    faults = FaultProfile(seed=4, partial_failure_rate=0.3, permanent_failure_rate=0.05,
                          drop_rate=0.2, rate_limit=RateLimit(per_second=5.0, burst=2))
    seen: list[object] = []
    policy = RetryPolicy(max_attempts=4, backoff_base=0.1, budget_capacity=None)
    with Emulator(items=80, faults=faults, clock=clock) as emu:
        good, wrong = emu.token, _token("wrong")
        with BackendV2Client(SDKConfig(retry_policy=policy), base_url=emu.url, token=good,
                             tenant=emu.tenant, sleep=clock.sleep, clock=clock) as client:
            client.tasks.list_page(limit=10)
            try:
                items = client.tasks.bulk_fetch(list(range(1, 81)))
            except BackendError as exc:
                seen.append(exc)
                items = exc.succeeded
            assert client.download_original(items[0])
            with pytest.raises(BackendError) as not_served:
                client.tasks.bulk_fetch([1, 999_999])
            assert not_served.value.failed_codes == {999_999: "not_served"}
            seen.append(not_served.value)
            seen.append(client)
        with BackendV2Client(base_url=emu.url, token=wrong, sleep=clock.sleep,
                             clock=clock) as intruder:
            with pytest.raises(BackendAuthenticationError) as refused:
                intruder.tasks.list_page()
            seen.extend([refused.value, intruder])
        seen.extend([emu, emu.requests, emu.state])
    texts = [repr(o) for o in seen] + [str(o) for o in seen]
    texts += [repr(vars(r)) + r.getMessage() for r in caplog.records]
    blob = "\n".join(texts)
    for secret in (good, wrong):
        assert secret not in blob
    http_events = [r for r in caplog.records if r.getMessage() == "synapse_sdk.http.request"]
    sent = [r.headers.get("SYNAPSE-ACCESS-TOKEN") for r in http_events]  # type: ignore[attr-defined]
    assert "[REDACTED]" in sent and set(sent) <= {"[REDACTED]", None}  # None: presigned files
    assert any(r.name.startswith("httpx") for r in caplog.records)


def test_tokens_stay_out_of_the_export_job_log_console_and_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    with Emulator(items=40, faults="mild", clock=clock) as emu:
        console_text = io.StringIO()
        config = SDKConfig(backend_url=emu.url, token=emu.token, tenant=emu.tenant)
        action = ExportAction({"out_dir": tmp_path / "ok", "batch_size": 15}, config=config,
                              sleep=clock.sleep, monotonic=clock,
                              console=Console(file=console_text, width=200))
        with action:
            summary = action.run()
        assert summary.exported + summary.failed == 40

        wrong = _token("wrong")
        bad = ExportAction({"out_dir": tmp_path / "bad"},
                           config=SDKConfig(backend_url=emu.url, token=wrong),
                           sleep=clock.sleep, monotonic=clock,
                           console=Console(file=console_text, width=200))
        with bad, pytest.raises(ActionStepError) as failed:
            bad.run()
        assert failed.value.message_code is ExportLogMessageCode.EXPORT_FAILED_AUTHENTICATION
        good_token = emu.token
    chain = walk_chain(failed.value)
    blob = "\n".join(
        [console_text.getvalue(), caplog.text]
        + [repr(e) + str(e) for e in chain]
        + [path.read_text(errors="replace") for path in tmp_path.rglob(JOB_LOG_FILENAME)]
    )
    assert "EXPORT" in blob or "xport" in blob  # the job log and console were written
    for secret in (good_token, wrong):
        assert secret not in blob


def test_the_export_cli_never_prints_the_token(tmp_path: Path) -> None:
    runner = CliRunner()
    with Emulator(items=12) as emu:
        ok = runner.invoke(cli_main, ["export", "--backend", emu.url, "--out", str(tmp_path / "a"),
                                      "--json"],
                           env={"SYNAPSE_TOKEN": emu.token, "SYNAPSE_TENANT": emu.tenant})
        wrong = _token("wrong")
        refused = runner.invoke(cli_main, ["export", "--backend", emu.url, "--token", wrong,
                                           "--tenant", emu.tenant, "--out", str(tmp_path / "b")])
        token = emu.token
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout.strip().splitlines()[-1])["exported"] == 12
    assert refused.exit_code == 4, refused.output
    for result, secret in ((ok, token), (refused, wrong)):
        assert secret not in result.output
        assert result.exception is None or secret not in repr(result.exception)


# --- credentials on disk ----------------------------------------------------------------------


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077], ids=["umask000", "umask022", "umask077"])
def test_credentials_are_private_whatever_the_umask(synap: Any, mask: int) -> None:
    instance_id, token = synap.fresh()
    root = synap.creds_dir()
    with _umask(mask):
        client = synap.client(instance_id, credentials_dir=root)
        client.initialize(bootstrap_token=token)
        client.renew_certificate()  # rewrites both files
    directory = client.credentials_dir
    assert _mode(root) == 0o700 and _mode(directory) == 0o700
    files = sorted(p.name for p in directory.iterdir())
    assert files == ["credentials.json", "tls-identity.pem"]  # no temporary file left
    for name in files:
        assert _mode(directory / name) == 0o600


def test_loose_credentials_are_tightened(
    synap: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = synap.ready()
    directory = client.credentials_dir
    client.close()
    directory.chmod(0o755)
    directory.parent.chmod(0o755)
    (directory / "credentials.json").chmod(0o644)
    caplog.set_level(logging.WARNING, logger="synapse_sdk.clients.synap")
    again = synap.client(client.instance_id, credentials_dir=directory.parent)
    again.initialize()  # loads the stored credentials, renews if due, writes the identity file
    assert _mode(directory / "credentials.json") == 0o600
    assert "synap.credentials.permissions_tightened" in caplog.text
    again.renew_certificate()  # saving tightens the folders too
    assert _mode(directory) == 0o700 and _mode(directory.parent) == 0o700


def test_emulator_ca_key_and_cli_token_file_are_private_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    with _umask(0), SynapEmulator(clock=FakeClock(), state_dir=state):
        pass
    assert _mode(state) == 0o700 and _mode(state / "ca.key") == 0o600

    from synapse_sdk.emulator import synap as synap_emulator

    class OneShot(synap_emulator.SynapEmulator):
        """Serves, hands out the tokens, and reports itself stopped at once."""

        @property
        def running(self) -> bool:
            return False

    monkeypatch.setattr(synap_emulator, "SynapEmulator", OneShot)
    token_file = tmp_path / "tokens.json"
    token_file.write_text("{}")
    token_file.chmod(0o644)  # left world-readable by someone else
    with _umask(0):
        result = CliRunner().invoke(cli_main, ["synap", "serve", "--token-file", str(token_file)])
    assert result.exit_code == 0, result.output
    assert _mode(token_file) == 0o600
    ((_, token),) = json.loads(token_file.read_text()).items()
    assert token not in result.output


# --- TLS verification cannot be turned off ----------------------------------------------------

#: Code that would switch certificate or host name verification off (matched on code tokens
#: joined by spaces: strings, docstrings and comments are left out).
_DISABLING = re.compile(
    r"verify = (?:False|0)\b|check_hostname = False|_create_unverified_context"
    r"|_create_default_https_context|CERT_NONE|ssl_target_name_override|PYTHONHTTPSVERIFY"
)
#: The only CERT_NONE uses allowed: comparisons that refuse such a context.
_REFUSING = re.compile(r"(?:==|!=) ssl \. CERT_NONE")
_SETS_MODE = re.compile(r"verify_mode =(?!=)")
#: Server-side contexts of the emulators may ask for a client certificate optionally.
_SERVER_SIDE = {"emulator/synap/_server.py"}


def _code_lines(path: Path) -> dict[int, str]:
    """Each line's code tokens joined by single spaces (no strings, no comments)."""
    lines: dict[int, list[str]] = {}
    with path.open("rb") as fh:
        for token in tokenize.tokenize(fh.readline):
            if token.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER):
                lines.setdefault(token.start[0], []).append(token.string)
    return {number: " ".join(parts) for number, parts in lines.items()}


def test_no_library_code_turns_verification_off() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50
    offenders = []
    for path in files:
        relative = str(path.relative_to(SRC))
        for number, code in _code_lines(path).items():
            if _DISABLING.search(code) and not _REFUSING.search(code):
                offenders.append(f"{relative}:{number}: {code}")
            if _SETS_MODE.search(code) and relative not in _SERVER_SIDE:
                offenders.append(f"{relative}:{number}: {code}")
    assert offenders == []
    # The check itself finds what it looks for.
    assert _DISABLING.search("httpx . Client ( verify = False )")
    assert _DISABLING.search("ctx . verify_mode = ssl . CERT_NONE")
    assert not _DISABLING.search("verify = context") and _REFUSING.search(
        "if context . verify_mode == ssl . CERT_NONE :"
    )


def _lax_contexts() -> list[ssl.SSLContext]:
    no_hostname = ssl.create_default_context()
    no_hostname.check_hostname = False
    nothing = ssl.create_default_context()
    nothing.check_hostname = False
    nothing.verify_mode = ssl.CERT_NONE
    return [no_hostname, nothing]


@pytest.mark.parametrize("cls", [Transport, AsyncTransport, BackendV2Client,
                                 AsyncBackendV2Client])
def test_verification_cannot_be_switched_off_by_any_argument(cls: Any) -> None:
    options = {"base_url": "https://backend.test", "token": _token()}
    for verify in (False, True, *_lax_contexts()):
        with pytest.raises(ValueError, match=r"cannot be switched off|does not verify"):
            cls(**options, verify=verify)
    client_type = httpx.AsyncClient if "Async" in cls.__name__ else httpx.Client
    for lax in (False, *_lax_contexts()):
        http = client_type(verify=lax)
        with pytest.raises(ValueError, match="disables TLS verification"):
            cls(**options, http_client=http)
    # And no other argument could: there is no opt-in to opt into.
    names = set(inspect.signature(cls.__init__).parameters)
    assert not {n for n in names if re.search(r"insecure|unverified|no_verify|ssl", n)}


def test_clients_built_by_the_sdk_verify_certificates_and_host_names(tmp_path: Path) -> None:
    def context_of(client: Any) -> ssl.SSLContext:
        http = client.transport._client
        return http._transport._pool._ssl_context  # type: ignore[no-any-return]

    with BackendV2Client(base_url="https://backend.test", token=_token()) as client:
        context = context_of(client)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    action = ExportAction({"out_dir": tmp_path},
                          config=SDKConfig(backend_url="https://backend.test", token=_token()))
    with action:
        context = context_of(action.v2_client)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert action.v2_client.transport._client.follow_redirects is False
    with pytest.raises(ValueError, match="https"):
        synap_module.SynapClient("inst_0123456789abcdef", url="http://synap.test",
                                 credentials_dir=tmp_path)


# --- the emulator binds loopback ---------------------------------------------------------------


def test_the_emulator_binds_loopback_by_default() -> None:
    with Emulator(items=2) as emu:
        assert emu.host == "127.0.0.1"
        assert emu._socket is not None and emu._socket.getsockname()[0] == "127.0.0.1"
        assert emu.url.startswith("http://127.0.0.1:")
    with Emulator(items=2, host="localhost") as emu:
        assert emu._socket is not None and emu._socket.getsockname()[0] == "127.0.0.1"
    with SynapEmulator(clock=FakeClock()) as synap_emu:
        assert synap_emu.url.startswith("https://127.0.0.1:")
        assert synap_emu.listen_target.startswith("127.0.0.1:")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com", "10.1.2.3"])
def test_the_emulator_refuses_other_hosts_unless_allowed(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ValueError, match="allow_non_loopback"):
        Emulator(items=2, host=host)
    caplog.set_level(logging.WARNING, logger="synapse_sdk.emulator")
    emu = Emulator(items=2, host=host, allow_non_loopback=True)  # built, not started
    assert emu.host == host
    assert f"non-loopback host {host}" in caplog.text
    result = CliRunner().invoke(cli_main, ["emulator", "serve", "--host", host])
    assert result.exit_code == 2 and "allow-non-loopback" in result.output


# --- ids that would escape the export folder ---------------------------------------------------

ESCAPING_IDS = ["../escape", "/etc/passwd", "a/b", "..", ".", "nul\x00byte", "esc\x1b[2J",
                "c1\x85x", "x" * 200, "C:evil", "~root", ".hidden", "back\\slash", " ", "\t"]
SAFE_IDS = ["ok-1", "ok-2", "swap-me"]


class FakeBackend:
    """A v2 backend (for httpx.MockTransport) listing hostile ids, serving what is asked, except
    that ``swap-me`` comes back as ``../swapped``."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.fetched: list[list[str]] = []

    def item(self, item_id: str, served: str | None = None) -> dict[str, Any]:
        content = f"content of {item_id}".encode()
        return {
            "id": served or item_id, "resource": "tasks", "project_id": 1, "data": {"x": 1},
            "original": {"url": f"/v2/files/tasks/{self.ids.index(item_id)}/original",
                         "size": len(content), "sha256": hashlib.sha256(content).hexdigest()},
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v2/tasks/":
            data = [self.item(i) for i in self.ids]
            meta = {"pagination": {"next_cursor": None}}
            return httpx.Response(200, json={"data": data, "meta": meta})
        if path == "/v2/tasks/bulk-fetch/":
            asked = json.loads(request.content)["ids"]
            self.fetched.append(asked)
            data = [self.item(i, "../swapped" if i == "swap-me" else None) for i in asked]
            return httpx.Response(200, json={"data": data, "meta": {}})
        index = int(path.split("/")[-2])
        return httpx.Response(200, content=f"content of {self.ids[index]}".encode())


def test_ids_that_would_escape_the_folder_are_reported_never_written(tmp_path: Path) -> None:
    backend = FakeBackend([*ESCAPING_IDS, *SAFE_IDS])
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    out = tmp_path / "deep" / "out"
    (out / "tasks").mkdir(parents=True)
    (out / "tasks" / "ok-1.json").symlink_to(outside)  # a planted link must not be followed
    http = httpx.Client(transport=httpx.MockTransport(backend), base_url="https://backend.test")
    clock = FakeClock()
    with BackendV2Client(base_url="https://backend.test", token=_token(), http_client=http,
                         sleep=clock.sleep, clock=clock) as client:
        action = ExportAction({"out_dir": out, "retry_rounds": 1}, v2_client=client,
                              sleep=clock.sleep, monotonic=clock)
        with action:
            summary = action.run()
            ledger = {record.id: record.code for record in action.ledger.iter_failed()}

    # Only the safe ids were ever requested; the hostile ones were settled before any request.
    assert {i for chunk in backend.fetched for i in chunk} == set(SAFE_IDS)
    assert summary.exported == 2
    # An item served under another id (``../swapped`` for ``swap-me``) is never written: the
    # id asked for is reported not served (the 200 left it out).
    assert summary.failed_by_code == {"unsafe_id": len(ESCAPING_IDS), "not_served": 1}
    assert summary.failed_by_message["EXPORT_FAILED_VALIDATION"] == len(ESCAPING_IDS)
    assert ledger == {**dict.fromkeys(ESCAPING_IDS, "unsafe_id"),
                      "swap-me": "not_served"}
    # Nothing was written outside the target folder, and the planted link was replaced, not
    # followed.
    assert outside.read_text() == "precious"
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == [JOB_FOLDER, "export_report.json", "tasks"]
    assert sorted(p.name for p in (out / "tasks").iterdir()) == [
        "ok-1.json", "ok-1.txt", "ok-2.json", "ok-2.txt"
    ]
    assert not (out / "tasks" / "ok-1.json").is_symlink()
    events = list(read_job_log(out / JOB_FOLDER / "tasks" / JOB_LOG_FILENAME))
    reported = {e["params"].get("item_id") for e in events if e["code"] == "EXPORT_ITEM_FAILED"}
    assert "../escape" in reported and "/etc/passwd" in reported


@pytest.mark.parametrize("bad", [*ESCAPING_IDS, "x" * 1_000_000, "\u3000", -5])
def test_item_filename_refuses_with_a_short_clear_error(bad: Any) -> None:
    with pytest.raises(UnsafeItemIdError) as info:
        item_filename(bad, "json")
    message = str(info.value)
    assert "cannot be used as a file name" in message and len(message) < 250
    assert info.value.item_id == bad and info.value.reason


# --- bounded bodies and messages ---------------------------------------------------------------


class _HugeErrorHandler(http.server.BaseHTTPRequestHandler):
    """Answers 500 with a 64 MiB body, written until the client hangs up."""

    size = 64 * 1024 * 1024
    sent: ClassVar[list[int]] = []
    done: ClassVar[threading.Event] = threading.Event()

    def do_GET(self) -> None:
        sent = 0
        try:
            self.send_response(500)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(self.size))
            self.end_headers()
            chunk = b"E" * 65536
            while sent < self.size:
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the client stopped reading and closed the connection
        finally:
            type(self).sent.append(sent)
            type(self).done.set()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_huge_error_body_from_a_real_server_is_read_bounded() -> None:
    _HugeErrorHandler.sent = []
    _HugeErrorHandler.done = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HugeErrorHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with Transport(NO_RETRY, base_url=url, token=_token()) as transport, \
                pytest.raises(BackendServiceUnavailableError) as info:
            transport.request("GET", "/v2/tasks/")
        assert _HugeErrorHandler.done.wait(30)
    finally:
        server.shutdown()
        server.server_close()
    message = str(info.value)
    assert len(message) < 1_000 and "EEEE" in message
    # The client hung up after its bound: the server could not deliver its 64 MiB.
    assert _HugeErrorHandler.sent[0] < _HugeErrorHandler.size


def _error_transport(body: bytes | Iterator[bytes], status: int = 400) -> Transport:
    http = httpx.Client(
        transport=httpx.MockTransport(lambda request: httpx.Response(status, content=body)),
        base_url="https://backend.test",
    )
    return Transport(NO_RETRY, token=_token(), http_client=http)


def test_error_messages_quote_a_bounded_part_of_the_envelope() -> None:
    detail = "d" * 60_000
    many = list(range(5_000))
    long_ids = ["i" * 2_900 + str(n) for n in range(20)]
    cases = [
        {"error": {"code": "invalid_input", "detail": detail}},
        {"error": {"code": "invalid_ids", "detail": "bad", "invalid_ids": many}},
        {"error": {"code": "partial_failure", "failed": [{"id": i} for i in long_ids]}},
    ]
    for body in cases:
        raw = json.dumps(body).encode()
        assert len(raw) <= ERROR_BODY_LIMIT
        with _error_transport(raw) as transport, pytest.raises(BackendError) as info:
            transport.request("POST", "/v2/tasks/bulk-fetch/", json={"ids": [1]})
        error = info.value
        assert len(str(error)) < 5_000 and len(repr(error)) < 5_500
        assert error.error_code == body["error"]["code"]
        assert classify_export_error(error) is not None
    # The attributes keep everything that was read.
    with _error_transport(json.dumps(cases[1]).encode()) as transport, \
            pytest.raises(BackendError) as info:
        transport.request("GET", "/v2/tasks/")
    assert info.value.failed_ids == tuple(many)
    assert "(+4980 more failed items)" in str(info.value)
    # A short envelope is still quoted whole (so parsing the message gives it back).
    short = b'{"error": {"code": "invalid_input", "detail": "no"}}'
    with _error_transport(short) as transport, pytest.raises(BackendError) as info:
        transport.request("GET", "/v2/tasks/")
    assert '{"error": {"code": "invalid_input", "detail": "no"}}' in str(info.value)


def test_the_synap_client_reads_bounded_bodies(
    synap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = synap.ready(config=SDKConfig(retry_policy=None))
    pulled: list[int] = []

    def stream(size: int) -> Iterator[bytes]:
        for _ in range(size // 8192):
            pulled.append(8192)
            yield b"{" + b"x" * 8191

    answers: list[tuple[int, int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status, size = answers.pop(0)
        return httpx.Response(status, content=stream(size))

    fake = httpx.Client(transport=httpx.MockTransport(handler))
    monkeypatch.setattr(client._transport, "_client_for", lambda call: fake)

    answers.append((500, 8 * 1024 * 1024))  # an 8 MiB error body
    with pytest.raises(SynapError) as info:
        client.get_context(user_id="u")
    assert sum(pulled) <= ERROR_BODY_LIMIT + 8192
    assert len(str(info.value)) < 1_000

    pulled.clear()
    monkeypatch.setattr(client._transport._core, "max_response_bytes", 256 * 1024)
    answers.append((200, 8 * 1024 * 1024))  # an 8 MiB success body over a 256 KiB bound
    with pytest.raises(BackendError) as too_large:
        client.get_context(user_id="u")
    assert too_large.value.error_code == "response_too_large"
    assert sum(pulled) <= 256 * 1024 + 8192
    fake.close()


def test_huge_exception_texts_are_capped_and_still_classified() -> None:
    huge = RuntimeError("x" * 5_000_000 + " 429 Too Many Requests")
    text = flatten_exception(huge)
    assert len(text) <= DEFAULT_LIMIT and text.endswith("Too Many Requests")
    assert classify_export_error(huge) is ExportLogMessageCode.EXPORT_FAILED_RATE_LIMITED
    wrapped = ActionStepError("fetch", "ExportAction", None)
    wrapped.__cause__ = huge
    assert len(str(wrapped)) < 200


def test_the_classify_cli_prints_bounded_lines(tmp_path: Path) -> None:
    line = "ERROR " + "y" * 2_000_000 + " Connection refused\n"
    result = CliRunner().invoke(cli_main, ["classify", "--json", "--no-summary", "-"],
                                input=line)
    assert result.exit_code == 0, result.output[:500]
    (record,) = [json.loads(text) for text in result.stdout.splitlines() if text]
    assert len(record["exception"]) <= 1_000
    assert record["code"] == "EXPORT_FAILED_SERVER_UNREACHABLE"
    assert len(result.stdout) < 5_000
