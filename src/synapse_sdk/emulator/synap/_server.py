"""``SynapEmulator``: the Synap HTTPS API and gRPC listener on loopback, in one background thread.

Both servers run on one asyncio loop in a daemon thread, bound to 127.0.0.1 on random ports,
with a CA generated at start (or loaded from ``state_dir``); serving is the lifecycle both
emulators share, :class:`~synapse_sdk.emulator._serving.ServedEmulator`, with the gRPC listener
as its companion. The emulator's clock is injectable and meant to be shared with the client
under test, so certificate lifetimes, bootstrap-token windows and session idle timers move
together when a test advances it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import grpc  # type: ignore[import-untyped]
from starlette.types import ASGIApp

from synapse_sdk._proto.synap.v1 import listen_pb2_grpc
from synapse_sdk.emulator._ca import CertificateAuthority
from synapse_sdk.emulator._serving import ServedEmulator
from synapse_sdk.emulator.synap._faults import FaultPlan
from synapse_sdk.emulator.synap._grpc import ListenerService, StreamHub, grpc_status_for
from synapse_sdk.emulator.synap._http import PeerCertProtocol, build_app
from synapse_sdk.emulator.synap._service import Lifetimes, SynapService
from synapse_sdk.emulator.synap._store import EventRow, SynapStore

__all__ = ["SynapEmulator"]

logger = logging.getLogger("synapse_sdk.emulator.synap")

_HTTP_STATUS_OF_CODE = {"invalid_instance_id": 404}
_SERVER_NAMES = ("localhost", "127.0.0.1")


class SynapEmulator(ServedEmulator):
    """A local Synap Cloud: certificate authority, API, sessions, memory store and listener.

    Use it as a context manager (``with SynapEmulator(clock=clock) as emu:``) or call
    :meth:`start`/:meth:`stop`; it starts only once. ``state_dir`` keeps the CA and the SQLite
    database across runs (the CLI uses it so ``synapse synap init`` and a later ``synapse synap
    context`` talk to the same CA); without it everything lives in a temporary directory
    removed at stop.

    The "dashboard" operations (:meth:`register_instance`, :meth:`issue_bootstrap_token`,
    :meth:`revoke_binding`, :meth:`rotate_credentials`, :meth:`invalidate_sessions`,
    :meth:`deactivate_instance`) and :attr:`faults` may be used from any thread.

    Raises:
        RuntimeError: the servers failed to start (the cause is chained), or an address is read
            before :meth:`start`.
    """

    _thread_prefix: ClassVar[str] = "synap-emulator"
    _dir_prefix: ClassVar[str] = "synap-emulator-"
    _http_protocol: ClassVar[Any] = PeerCertProtocol

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        lifetimes: Lifetimes | None = None,
        state_dir: str | Path | None = None,
    ) -> None:
        super().__init__(host="127.0.0.1", port=0)
        self.clock = clock
        self.lifetimes = lifetimes if lifetimes is not None else Lifetimes()
        self.state_dir = Path(state_dir) if state_dir is not None else None
        #: Fault injection: ``emu.faults.inject("context", "rate_limit", times=2)``.
        self.faults = FaultPlan()
        self._requests: list[tuple[str, str | None]] = []
        self._shutdown_event: asyncio.Event | None = None
        self._hub: StreamHub | None = None
        self._grpc: Any = None
        self._grpc_port: int | None = None
        self._tls: ssl.SSLContext | None = None
        self._identity: tuple[bytes, bytes] | None = None  # the gRPC server's, until it starts
        self.authority: CertificateAuthority | None = None
        self._store: SynapStore | None = None
        self._service: SynapService | None = None

    # --- the lifecycle's hooks (see synapse_sdk.emulator._serving) ---------------------------

    def _state_path(self) -> Path:
        return self.state_dir if self.state_dir is not None else self._private_dir()

    def _prepare(self) -> None:
        state = self._state_path()
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
        context, key_pem, cert_pem = self._tls_context(
            self.authority, _SERVER_NAMES, common_name="Synap Emulator Server"
        )
        # Client certificates are optional, not required: bootstrap happens before the client
        # has one. The app refuses every other route without a registered one.
        context.load_verify_locations(cadata=self.authority.certificate_pem.decode("ascii"))
        context.verify_mode = ssl.CERT_OPTIONAL
        self._tls, self._identity = context, (key_pem, cert_pem)

    def _app(self) -> ASGIApp:
        assert self._service is not None
        return build_app(self._service, self.faults, self._shutdown_getter, self._requests)

    def _ssl_context(self) -> ssl.SSLContext | None:
        return self._tls

    async def _start_companions(self) -> None:
        assert self._service is not None and self.authority is not None
        assert self._identity is not None
        self._shutdown_event = asyncio.Event()
        self._hub = StreamHub(asyncio.get_running_loop())
        server = grpc.aio.server()
        listen_pb2_grpc.add_ListenerServicer_to_server(  # type: ignore[no-untyped-call]
            ListenerService(self._service, self.faults, self._hub, self._shutdown_getter), server
        )
        credentials = grpc.ssl_server_credentials(
            [self._identity],
            root_certificates=self.authority.certificate_pem,
            require_client_auth=True,
        )
        self._identity = None
        self._grpc_port = int(server.add_secure_port("127.0.0.1:0", credentials))
        self._grpc = server
        await server.start()

    def _begin_stop(self) -> None:
        if self._shutdown_event is not None:
            self._shutdown_event.set()
        if self._hub is not None:
            self._hub.end(None, grpc.StatusCode.UNAVAILABLE, "service_unavailable", "shutting down")

    async def _stop_companions(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(0.5)

    def _release(self) -> None:
        self._tls = self._identity = None
        self._grpc_port = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def _shutdown_getter(self) -> asyncio.Event:
        assert self._shutdown_event is not None
        return self._shutdown_event

    # --- addresses -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The HTTPS API's base URL (``https://127.0.0.1:<port>``)."""
        if self._port is None or self._stopped:
            raise RuntimeError("SynapEmulator is not running")
        return f"https://127.0.0.1:{self._port}"

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

    def describe(self) -> dict[str, str]:
        """What a separate process needs to connect: the API URL, the listener address, the CA
        file (PEM, valid while the emulator runs) and the state directory. No secrets.

        Raises:
            RuntimeError: the emulator is not running.
        """
        if self._work_dir is None or self._port is None or self._stopped:
            raise RuntimeError("SynapEmulator is not running")
        return {
            "url": self.url,
            "listen_target": self.listen_target,
            "ca_file": str(self._work_dir / "ca.pem"),
            "state_dir": str(self._state_path()),
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
        where = f"url={self.url!r}" if self.running else "stopped"
        return f"SynapEmulator({where})"
