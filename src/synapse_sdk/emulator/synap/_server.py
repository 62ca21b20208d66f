"""``SynapEmulator``: the Synap HTTPS API and gRPC listener on loopback, in one background thread.

Both servers run on one asyncio loop in a daemon thread, bound to 127.0.0.1 on random ports,
with a CA generated at start (or loaded from ``state_dir``). The emulator's clock is injectable
and meant to be shared with the client under test, so certificate lifetimes, bootstrap-token
windows and session idle timers move together when a test advances it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc  # type: ignore[import-untyped]
import uvicorn

from synapse_sdk._proto.synap.v1 import listen_pb2_grpc
from synapse_sdk.emulator.synap._ca import CertificateAuthority
from synapse_sdk.emulator.synap._faults import FaultPlan
from synapse_sdk.emulator.synap._grpc import ListenerService, StreamHub, grpc_status_for
from synapse_sdk.emulator.synap._http import PeerCertProtocol, build_app
from synapse_sdk.emulator.synap._service import Lifetimes, SynapService
from synapse_sdk.emulator.synap._store import EventRow, SynapStore

__all__ = ["SynapEmulator"]

logger = logging.getLogger("synapse_sdk.emulator.synap")

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_HTTP_STATUS_OF_CODE = {"invalid_instance_id": 404}


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600)
    path.write_bytes(data)


class SynapEmulator:
    """A local Synap Cloud: certificate authority, API, sessions, memory store and listener.

    Use it as a context manager (``with SynapEmulator(clock=clock) as emu:``) or call
    :meth:`start`/:meth:`stop`. ``state_dir`` keeps the CA and the SQLite database across runs
    (the CLI uses it so ``synapse synap init`` and a later ``synapse synap context`` talk to the
    same CA); without it everything lives in a temporary directory removed at stop.

    The "dashboard" operations (:meth:`register_instance`, :meth:`issue_bootstrap_token`,
    :meth:`revoke_binding`, :meth:`rotate_credentials`, :meth:`invalidate_sessions`,
    :meth:`deactivate_instance`) and :attr:`faults` may be used from any thread.

    Raises:
        RuntimeError: the servers failed to start (the cause is chained), or an address is read
            before :meth:`start`.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        lifetimes: Lifetimes | None = None,
        state_dir: str | Path | None = None,
    ) -> None:
        self.clock = clock
        self.lifetimes = lifetimes if lifetimes is not None else Lifetimes()
        self.state_dir = Path(state_dir) if state_dir is not None else None
        #: Fault injection: ``emu.faults.inject("context", "rate_limit", times=2)``.
        self.faults = FaultPlan()
        self._requests: list[tuple[str, str | None]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._shutdown_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._work_dir: Path | None = None
        self._hub: StreamHub | None = None
        self._http_port: int | None = None
        self._grpc_port: int | None = None
        self.authority: CertificateAuthority | None = None
        self._store: SynapStore | None = None
        self._service: SynapService | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start both servers and return once they accept connections.

        Raises:
            RuntimeError: already started, or a server failed to start.
        """
        if self._thread is not None:
            raise RuntimeError("SynapEmulator is already running")
        self._work_dir = Path(tempfile.mkdtemp(prefix="synap-emulator-"))
        self._work_dir.chmod(0o700)
        state = self.state_dir if self.state_dir is not None else self._work_dir
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.authority = CertificateAuthority.load_or_create(state)
        self._store = SynapStore(state / "synap.sqlite3")
        self._service = SynapService(
            self._store,
            self.authority,
            self.clock,
            self.lifetimes,
            listen_target=lambda: self.listen_target,
            on_event=self._on_event,
            on_credentials_changed=self._on_credentials_changed,
        )
        self._reset_startup()
        self._thread = threading.Thread(target=self._run, name="synap-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            self.stop()
            raise RuntimeError("SynapEmulator did not start in time")
        if self._error is not None:
            error = self._error
            self.stop()
            raise RuntimeError("SynapEmulator failed to start") from error
        return self

    def _reset_startup(self) -> None:
        self._ready.clear()
        self._error = None

    def stop(self) -> None:
        """Stop both servers, end open streams and stalled requests, and clean up."""
        thread, loop = self._thread, self._loop
        if thread is not None and loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._request_stop)
            except RuntimeError:
                pass
        if thread is not None:
            thread.join(_STOP_TIMEOUT)
        self._thread = self._loop = None
        self._http_port = self._grpc_port = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    def _request_stop(self) -> None:
        if self._shutdown_event is not None:
            self._shutdown_event.set()
        if self._stop is not None:
            self._stop.set()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    def _server_context(self, key_file: Path, cert_file: Path, ca_file: Path) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_file, key_file)
        context.load_verify_locations(ca_file)
        # Optional, not required: bootstrap happens before the client has a certificate. The
        # app refuses every other route without a registered one.
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    async def _serve(self) -> None:
        assert self.authority is not None and self._service is not None
        assert self._work_dir is not None
        self._stop = asyncio.Event()
        self._shutdown_event = asyncio.Event()
        self._hub = StreamHub(asyncio.get_running_loop())
        key_pem, cert_pem = self.authority.issue_server_certificate()
        key_file, cert_file = self._work_dir / "server.key", self._work_dir / "server.pem"
        ca_file = self._work_dir / "ca.pem"
        _write_private(key_file, key_pem)
        cert_file.write_bytes(cert_pem)
        ca_file.write_bytes(self.authority.certificate_pem)

        shutdown = self._shutdown_getter
        server = grpc.aio.server()
        listen_pb2_grpc.add_ListenerServicer_to_server(  # type: ignore[no-untyped-call]
            ListenerService(self._service, self.faults, self._hub, shutdown), server
        )
        credentials = grpc.ssl_server_credentials(
            [(key_pem, cert_pem)],
            root_certificates=self.authority.certificate_pem,
            require_client_auth=True,
        )
        self._grpc_port = int(server.add_secure_port("127.0.0.1:0", credentials))
        await server.start()

        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP,
        # and without it every response waits ~40 ms on Nagle + delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._http_port = sock.getsockname()[1]
        ssl_context = self._server_context(key_file, cert_file, ca_file)
        config = uvicorn.Config(
            build_app(self._service, self.faults, shutdown, self._requests),
            http=PeerCertProtocol,
            ssl_context_factory=lambda _config, _default: ssl_context,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        http = uvicorn.Server(config)
        serving = asyncio.create_task(http.serve(sockets=[sock]))
        try:
            while not http.started:
                if serving.done():
                    serving.result()  # raises the startup error
                    raise RuntimeError("uvicorn exited during startup")
                await asyncio.sleep(0.005)
            self._ready.set()
            await self._stop.wait()
        finally:
            http.should_exit = True
            self._hub.end(None, grpc.StatusCode.UNAVAILABLE, "service_unavailable", "shutting down")
            await server.stop(0.5)
            await serving
            sock.close()

    def _shutdown_getter(self) -> asyncio.Event:
        assert self._shutdown_event is not None
        return self._shutdown_event

    # --- addresses -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The HTTPS API's base URL (``https://127.0.0.1:<port>``)."""
        if self._http_port is None:
            raise RuntimeError("SynapEmulator is not running")
        return f"https://127.0.0.1:{self._http_port}"

    @property
    def listen_target(self) -> str:
        """The gRPC listener's address (``127.0.0.1:<port>``)."""
        if self._grpc_port is None:
            raise RuntimeError("SynapEmulator is not running")
        return f"127.0.0.1:{self._grpc_port}"

    @property
    def ca_pem(self) -> bytes:
        """The emulator CA's certificate (PEM): the trust root a client verifies servers with."""
        if self.authority is None:
            raise RuntimeError("SynapEmulator is not running")
        return self.authority.certificate_pem

    @property
    def requests(self) -> tuple[tuple[str, str | None], ...]:
        """Every HTTPS request so far as ``(operation, correlation id)``, in arrival order
        (operations: ``bootstrap``, ``renew``, ``session``, ``context``, ``ingest``, ...)."""
        return tuple(self._requests)

    @property
    def running(self) -> bool:
        """Whether the servers' thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def describe(self) -> dict[str, str]:
        """What a separate process needs to connect: the API URL, the listener address, the CA
        file (PEM, valid while the emulator runs) and the state directory. No secrets.

        Raises:
            RuntimeError: the emulator is not running.
        """
        if self._work_dir is None or self._http_port is None:
            raise RuntimeError("SynapEmulator is not running")
        state = self.state_dir if self.state_dir is not None else self._work_dir
        return {
            "url": self.url,
            "listen_target": self.listen_target,
            "ca_file": str(self._work_dir / "ca.pem"),
            "state_dir": str(state),
        }

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments that point a Synap client at this emulator (url, trust root, clock)."""
        return {"url": self.url, "trust_root": self.ca_pem, "clock": self.clock}

    @property
    def service(self) -> SynapService:
        """The rules engine (for tests that need to look inside)."""
        if self._service is None:
            raise RuntimeError("SynapEmulator is not running")
        return self._service

    # --- the dashboard -------------------------------------------------------------------

    def register_instance(self, instance_id: str | None = None) -> str:
        """Register an instance and return its ``inst_<hex16>`` id."""
        return self.service.register_instance(instance_id)

    def issue_bootstrap_token(self, instance_id: str, *, ttl: float | None = None) -> str:
        """Mint a single-use bootstrap token (valid ``ttl`` seconds on the emulator's clock)."""
        return self.service.issue_bootstrap_token(instance_id, ttl=ttl)

    def revoke_binding(self, instance_id: str) -> None:
        """Revoke the instance's certificate binding (renewal fails; calls are refused)."""
        self.service.revoke_binding(instance_id)

    def rotate_credentials(self, instance_id: str) -> None:
        """Rotate the instance's credentials server-side (stored certificates stop working)."""
        self.service.rotate_credentials(instance_id)

    def invalidate_sessions(self, instance_id: str, reason: str = "credential rotation") -> int:
        """Invalidate the instance's sessions server-side; return how many."""
        return self.service.invalidate_sessions(instance_id, reason)

    def deactivate_instance(self, instance_id: str) -> None:
        """Deactivate the instance: every call for it fails with ``invalid_instance_id``."""
        self.service.deactivate_instance(instance_id)

    def publish(
        self,
        instance_id: str,
        content: str,
        *,
        conversation_id: str = "",
        user_id: str = "",
        kind: str = "message",
    ) -> int:
        """Push an event to the instance's listening stream; return its sequence number."""
        return self.service.publish(
            instance_id, kind, content, conversation_id=conversation_id, user_id=user_id
        ).sequence

    def drop_streams(self, instance_id: str | None = None) -> int:
        """Cut the open listening streams (of one instance, or all) with UNAVAILABLE; return how
        many were open."""
        hub = self._hub
        if hub is None:
            return 0
        count = hub.count(instance_id)
        hub.end(instance_id, grpc.StatusCode.UNAVAILABLE, "stream_dropped", "stream dropped")
        return count

    def open_streams(self, instance_id: str | None = None) -> int:
        """How many listening streams are open (of one instance, or in all)."""
        hub = self._hub
        return 0 if hub is None else hub.count(instance_id)

    # --- hooks from the service ------------------------------------------------------------

    def _on_event(self, event: EventRow) -> None:
        if self._hub is not None:
            self._hub.publish(event)

    def _on_credentials_changed(self, instance_id: str, code: str, detail: str) -> None:
        if self._hub is not None:
            status = grpc_status_for(_HTTP_STATUS_OF_CODE.get(code, 401))
            self._hub.end(instance_id, status, code, detail)

    def __repr__(self) -> str:
        where = f"url={self.url!r}" if self._http_port is not None else "stopped"
        return f"SynapEmulator({where})"
