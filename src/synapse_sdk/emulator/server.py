"""Run the emulator app with uvicorn on a background thread: :class:`Emulator`.

The listening socket is bound before the server starts (port 0 picks a free port, known at
once), uvicorn runs on its own event loop in a daemon thread, :meth:`Emulator.start` returns only
once it is serving, and :meth:`Emulator.stop` shuts it down and joins the thread, so tests can
start and stop many emulators without leaking threads or sockets.

With ``tls=True`` it serves HTTPS instead: a throwaway certificate authority (the one the Synap
emulator uses, :mod:`synapse_sdk.emulator._ca`) is made at every start and signs a server
certificate for the served address; clients trust the CA through :attr:`Emulator.ca_file` or
:attr:`Emulator.ca_pem`. The server key exists on disk (0600, in a private temporary directory)
only until uvicorn has loaded it, and everything is removed on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn

from synapse_sdk.emulator._ca import CertificateAuthority, write_private
from synapse_sdk.emulator.app import create_app
from synapse_sdk.emulator.areas import Area
from synapse_sdk.emulator.clock import FakeClock
from synapse_sdk.emulator.faults import FaultProfile
from synapse_sdk.emulator.state import (
    Clock,
    EmulatorState,
    RequestRecord,
    Sleep,
    new_token,
    validate_token,
)
from synapse_sdk.emulator.store import DEFAULT_ITEMS, Store, validate_items

if TYPE_CHECKING:
    import httpx

__all__ = ["Emulator", "is_loopback"]

logger = logging.getLogger("synapse_sdk.emulator")

_STARTUP_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Server(uvicorn.Server):
    """uvicorn's server, telling a thread when it is serving and waking at once on stop."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready
        self._wakeup: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        await super().startup(sockets=sockets)
        self._ready.set()

    async def main_loop(self) -> None:
        # uvicorn polls should_exit every 0.1 s; also wake as soon as stop() asks.
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            assert self._wakeup is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), 0.1)

    def request_exit(self) -> None:
        """Ask the server to shut down; safe from any thread."""
        self.should_exit = True
        loop, wakeup = self.loop, self._wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(wakeup.set)

    def find_connection(self, scope: Any) -> Callable[[], Awaitable[None]] | None:
        """A closer for the connection serving ``scope``, or None when it is not found."""
        client = scope.get("client") if isinstance(scope, dict) else None
        if client is None:
            return None
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if getattr(connection, "client", None) == tuple(client) and transport is not None:
                return functools.partial(_close, transport)
        return None


async def _close(transport: asyncio.BaseTransport) -> None:
    """Close a connection without a (further) response; let uvicorn see it is gone."""
    transport.close()
    for _ in range(3):  # connection_lost runs on the next loop iterations
        await asyncio.sleep(0)


class Emulator:
    """A local backend v2 server with seeded data and deterministic faults.

    Use it as a context manager (sync or async)::

        with Emulator(items=200, faults="mild") as emu:
            httpx.get(emu.url + "/v2/tasks/", headers={"Authorization": f"Bearer {emu.token}"})

    * ``items`` — items per resource (tasks, assignments, ground truths); ``seed`` seeds the
      data and, when ``faults`` is a preset name, the faults too.
    * ``faults`` — a :class:`FaultProfile`, a preset/spec string (``"mild"``), or None (no
      faults).
    * ``clock`` / ``sleep`` — the emulator clock (token bucket, outages, log times) and the sleep
      used for injected latency; inject a :class:`~synapse_sdk.emulator.FakeClock` in tests
      (its ``sleep`` is then the default, so latency advances it instead of sleeping).
    * ``host`` / ``port`` — loopback only unless ``allow_non_loopback=True``; port 0 picks a
      free port. ``db`` — a SQLite file to keep the data in (default: memory).
    * ``token`` — the bearer token to accept (default: a random one). It never appears in
      ``repr``.
    * ``tls`` — serve HTTPS (default: plain HTTP). A throwaway CA and a server certificate for
      the served address (an IP address SAN, e.g. ``127.0.0.1``) are made at start; ``url`` is
      then ``https://...``, ``ca_file`` / ``ca_pem`` give clients the CA to verify it with
      (e.g. ``BackendV2Client(base_url=emu.url, token=emu.token, verify=emu.ca_file)``), and
      :meth:`client` / :meth:`async_client` trust it already. The server's private key never
      leaves the server: it is not kept on the object, not logged, and its file is deleted as
      soon as uvicorn has loaded it; the CA file is removed on stop.

    Raises ``ValueError`` for a non-loopback host without ``allow_non_loopback`` and for bad
    item counts or fault settings; ``OSError`` when the address cannot be bound;
    ``RuntimeError`` when the server fails to start.

    Serving is thread-safe: any number of client threads and tasks may call one running emulator
    at once, and its accessors (``requests``, ``add_token``...) may be used from any thread;
    ``start``/``stop`` (the context manager) belong to one thread.
    """

    def __init__(
        self,
        *,
        items: int = DEFAULT_ITEMS,
        seed: int = 0,
        faults: FaultProfile | str | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        db: str | Path | None = None,
        token: str | None = None,
        allow_non_loopback: bool = False,
        areas: list[Area] | None = None,
        log_limit: int | None = 200_000,
        tls: bool = False,
    ) -> None:
        if not isinstance(tls, bool):
            raise TypeError(f"tls must be a bool, got {type(tls).__name__}")
        if not isinstance(host, str) or not host:
            raise ValueError("host must be a non-empty string")
        if not is_loopback(host):
            if not allow_non_loopback:
                raise ValueError(
                    f"refusing to serve on non-loopback host {host!r}: the emulator has no real "
                    "security; pass allow_non_loopback=True if you mean it"
                )
            logger.warning(
                "synapse emulator will serve on non-loopback host %s: anyone who can reach it "
                "and holds the token can read the demo data",
                host,
            )
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int between 0 and 65535, got {port!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.items = validate_items(items)
        self.seed = seed
        self.faults = FaultProfile.resolve(faults, seed=seed)
        self.host = host
        self._requested_port = port
        self._db = db
        self._clock = clock
        # With a fake clock, injected latency must advance it, never sleep for real.
        self._sleep = clock.sleep if sleep is None and isinstance(clock, FakeClock) else sleep
        self._areas = areas
        self._log_limit = log_limit
        self._token = new_token() if token is None else validate_token(token)
        self._state: EmulatorState | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._error: BaseException | None = None
        self._stopped = False
        self.tls = tls
        self._tls_dir: Path | None = None
        self._ca_pem: bytes | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Emulator:
        """Seed the store, bind the socket and serve; returns once requests are accepted.

        Raises ``RuntimeError`` if called twice or if the server does not come up.
        """
        if self._state is not None or self._stopped:
            raise RuntimeError("an Emulator can be started only once")
        store = Store(self._db, items=self.items, seed=self.seed)
        try:
            state = EmulatorState(
                store=store,
                faults=self.faults,
                tokens=[self._token],
                clock=self._clock,
                sleep=self._sleep,
                log_limit=self._log_limit,
            )
            sock = self._bind()
        except BaseException:
            store.close()
            raise
        ssl_files: dict[str, Any] = {}
        if self.tls:
            try:
                ssl_files = self._prepare_tls()
            except BaseException:
                sock.close()
                store.close()
                raise
        self._state, self._socket = state, sock
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(state, self._areas),
            log_config=None,
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=2,
            **ssl_files,
        )
        ready = threading.Event()
        self._server = server = _Server(config, ready)
        state.find_connection = server.find_connection
        self._thread = threading.Thread(
            target=self._run,
            args=(server, sock),
            name=f"synapse-emulator:{self._port}",
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(_STARTUP_TIMEOUT) or self._error is not None or not server.started:
            error = self._error
            self.stop()
            raise RuntimeError(f"the emulator failed to start on {self.host}") from error
        if "ssl_keyfile" in ssl_files:
            # uvicorn loaded the key into its SSL context at startup: the file is not needed.
            Path(ssl_files["ssl_keyfile"]).unlink(missing_ok=True)
        return self

    def _served_host(self) -> str:
        """The address clients connect to (what ``url`` names), without IPv6 brackets."""
        return "127.0.0.1" if self.host == "localhost" else self.host.strip("[]")

    def _tls_names(self) -> list[str]:
        """The names the server certificate is valid for: the address ``url`` names."""
        return [self._served_host()]

    def _prepare_tls(self) -> dict[str, Any]:
        """Make a throwaway CA and a server certificate in a private temporary directory.

        Returns uvicorn's SSL settings (``ssl_certfile``, ``ssl_keyfile``). The key file is
        written 0600 and deleted once the server has started; the directory on stop.
        """
        directory = Path(tempfile.mkdtemp(prefix="synapse-emulator-tls-"))  # mode 0700
        try:
            authority = CertificateAuthority.generate("Synapse Backend Emulator Root CA")
            key_pem, cert_pem = authority.issue_server_certificate(
                self._tls_names(), common_name="Synapse Backend Emulator"
            )
            key_file, cert_file = directory / "server.key", directory / "server.pem"
            write_private(key_file, key_pem)
            cert_file.write_bytes(cert_pem)
            (directory / "ca.pem").write_bytes(authority.certificate_pem)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self._tls_dir, self._ca_pem = directory, authority.certificate_pem
        return {"ssl_certfile": str(cert_file), "ssl_keyfile": str(key_file)}

    def _bind(self) -> socket.socket:
        host = self._served_host()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it every small response waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, self._requested_port))
        except OSError as exc:
            sock.close()
            message = f"cannot bind {host}:{self._requested_port}: {exc.strerror}"
            raise OSError(exc.errno, message) from exc
        return sock

    def _run(self, server: _Server, sock: socket.socket) -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported to start(); SystemExit from uvicorn included
            self._error = exc
        finally:
            server._ready.set()

    def stop(self) -> None:
        """Stop serving, join the server thread and close the socket and store. Idempotent."""
        self._stopped = True
        server, thread = self._server, self._thread
        if server is not None:
            server.request_exit()
        if thread is not None and thread is not threading.current_thread():
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                server.request_exit()
                thread.join(_STOP_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        if self._state is not None:
            self._state.store.close()
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = None
        self._server = None
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Emulator:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- what callers read ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop` (or a server crash)."""
        return self._thread is not None and self._thread.is_alive() and not self._stopped

    def _started(self) -> EmulatorState:
        if self._state is None:
            raise RuntimeError("the emulator is not started; use `with Emulator() as emu:`")
        return self._state

    @property
    def state(self) -> EmulatorState:
        """The shared state (store, faults, log). Raises ``RuntimeError`` before start."""
        return self._started()

    @property
    def store(self) -> Store:
        """The seeded store. Raises ``RuntimeError`` before start."""
        return self._started().store

    @property
    def port(self) -> int:
        """The bound port. Raises ``RuntimeError`` before start."""
        self._started()
        assert self._port is not None
        return self._port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (``https://`` with ``tls=True``).

        Raises ``RuntimeError`` before start.
        """
        host = self._served_host()
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{shown}:{self.port}"

    def _require_tls(self) -> bytes:
        self._started()
        if self._ca_pem is None:
            raise RuntimeError("the emulator serves plain HTTP; pass tls=True for a CA")
        return self._ca_pem

    @property
    def ca_pem(self) -> bytes:
        """The PEM certificate of the CA that signed the server's certificate (``tls=True``).

        Public, not a secret. For ``ssl.create_default_context(cadata=...)`` pass
        ``emu.ca_pem.decode()`` (bytes there mean DER). Raises ``RuntimeError`` before start or
        without ``tls=True``.
        """
        return self._require_tls()

    @property
    def ca_file(self) -> str:
        """The path of a PEM file holding :attr:`ca_pem`, for ``verify=`` or ``cafile=``.

        It exists while the emulator runs (removed on stop). Raises ``RuntimeError`` before
        start, after stop or without ``tls=True``.
        """
        self._require_tls()
        if self._tls_dir is None:
            raise RuntimeError("the emulator is stopped; its CA file was removed")
        return str(self._tls_dir / "ca.pem")

    @property
    def token(self) -> str:
        """The bearer token the emulator accepts (a secret: not shown in ``repr``)."""
        return self._token

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first. Raises ``RuntimeError`` before start."""
        return self._started().log.snapshot()

    def reset_log(self) -> None:
        """Forget the recorded requests (fault counters and rate-limit buckets are kept)."""
        self._started().log.clear()

    def add_token(self) -> str:
        """Accept a new random bearer token, with its own rate-limit bucket, and return it."""
        token = new_token()
        self._started().add_token(token)
        return token

    def client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` for this emulator: its base URL and bearer token preset (and,
        with ``tls=True``, ``verify`` trusting the emulator's CA).

        Keyword arguments go to ``httpx.Client`` (extra ``headers`` are merged).
        Raises ``RuntimeError`` before start.
        """
        import httpx

        return httpx.Client(**self._client_options(kwargs))

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """The ``httpx.AsyncClient`` flavour of :meth:`client`."""
        import httpx

        return httpx.AsyncClient(**self._client_options(kwargs))

    def _client_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}", **dict(kwargs.pop("headers", {}))}
        options: dict[str, Any] = {"base_url": self.url, "timeout": 30.0}
        if self.tls:
            options["verify"] = ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))
        return {**options, **kwargs, "headers": headers}

    def __repr__(self) -> str:
        where = self.url if self._state is not None else f"{self.host}:{self._requested_port}"
        status = "running" if self.running else ("stopped" if self._stopped else "not started")
        return (
            f"<Emulator {where} items={self.items} seed={self.seed} "
            f"faults={self.faults.name or 'custom'!r} {status}>"
        )
