"""The one server lifecycle both emulators share: :class:`ServedEmulator`.

The backend emulator (:class:`~synapse_sdk.emulator.Emulator`) and the Synap emulator
(:class:`~synapse_sdk.emulator.synap.SynapEmulator`) are each an ASGI app on uvicorn, run on a
private asyncio event loop in a daemon thread:

* **start** — the subclass prepares its state (:meth:`ServedEmulator._prepare`), the listening
  socket is bound before the thread starts (port 0 picks a free port, known at once), and
  :meth:`~ServedEmulator.start` returns once uvicorn serves and any companion server (the Synap
  gRPC listener) is up; it raises ``RuntimeError``, the cause chained, when they do not.
* **TLS** — :meth:`ServedEmulator._tls_context`: a certificate authority signs a server
  certificate; its key is written 0600 into a private temporary directory only for
  :mod:`ssl` to load it (``ssl`` reads keys from files only) and deleted at once; the CA's
  certificate stays there as ``ca.pem`` for other processes to trust.
* **stop** — wake uvicorn at once (it would otherwise poll every 0.1 s), let the subclass end
  its streams and stalled requests, join the thread, close the socket, release the state and
  remove the directory. Idempotent; an emulator starts only once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import uvicorn
from starlette.types import ASGIApp

from synapse_sdk.emulator._ca import CertificateAuthority, write_private

__all__ = ["ServedEmulator", "is_loopback"]

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, telling a thread when it serves and waking at once on stop."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready
        self._wakeup: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
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
        """Ask the server to shut down (call on its loop)."""
        self.should_exit = True
        if self._wakeup is not None:
            self._wakeup.set()

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


class ServedEmulator:
    """An emulator served by uvicorn on a background thread (see the module doc).

    Subclasses build their app and state in :meth:`_prepare` and :meth:`_app`, may serve TLS
    (:meth:`_tls_context`, :meth:`_ssl_context`), run companions on the same loop
    (:meth:`_start_companions` / :meth:`_stop_companions`), end long-lived work when asked to
    stop (:meth:`_begin_stop`) and free their state in :meth:`_release`. Use it as a context
    manager (sync or async) or call :meth:`start` / :meth:`stop` from one thread.
    """

    #: Names the server thread (``<prefix>:<port>``).
    _thread_prefix: ClassVar[str] = "synapse-emulator"
    #: Prefix of the private temporary directory (TLS files, scratch state).
    _dir_prefix: ClassVar[str] = "synapse-emulator-tls-"
    #: uvicorn's HTTP protocol: a name or an ``asyncio.Protocol`` class.
    _http_protocol: ClassVar[Any] = "h11"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._server: _Uvicorn | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._work_dir: Path | None = None
        self._launched = False
        self._stopped = False

    # -- what subclasses provide ---------------------------------------------------------

    def _prepare(self) -> None:
        """Build the state to serve (in the calling thread, before the socket is bound)."""

    def _app(self) -> ASGIApp:
        """The ASGI app to serve."""
        raise NotImplementedError

    def _ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context, or None for plain HTTP."""
        return None

    async def _start_companions(self) -> None:
        """Start other servers on the loop before uvicorn (default: none)."""

    def _begin_stop(self) -> None:
        """On the loop, when stop is asked: end streams and stalled requests (default: none)."""

    async def _stop_companions(self) -> None:
        """Stop the companion servers once uvicorn has shut down (default: none)."""

    def _release(self) -> None:
        """Free the state after the thread has ended (default: nothing)."""

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Prepare, bind and serve; return once requests are accepted.

        Raises ``RuntimeError`` when called twice or when a server does not come up (its
        error chained), ``OSError`` when the address cannot be bound, and whatever
        :meth:`_prepare` raises. Nothing is left running or on disk after a failure.
        """
        if self._launched:
            raise RuntimeError(f"{type(self).__name__} can be started only once")
        self._launched = True
        try:
            self._prepare()
            self._socket = self._bind()
            self._port = self._socket.getsockname()[1]
            self._thread = threading.Thread(
                target=self._run, name=f"{self._thread_prefix}:{self._port}", daemon=True
            )
            self._thread.start()
            came_up = self._ready.wait(_START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        server = self._server
        if not came_up or self._error is not None or server is None or not server.started:
            error = self._error
            self.stop()
            raise RuntimeError(f"{type(self).__name__} failed to start on {self.host}") from error
        return self

    def stop(self) -> None:
        """Stop serving, join the thread, close the socket, free the state. Idempotent."""
        self._stopped = True
        thread, loop = self._thread, self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(self._stop_on_loop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                thread.join(_STOP_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        try:
            self._release()
        finally:
            if self._work_dir is not None:
                shutil.rmtree(self._work_dir, ignore_errors=True)
                self._work_dir = None
            self._thread = None

    def _stop_on_loop(self) -> None:
        self._begin_stop()
        if self._server is not None:
            self._server.request_exit()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(); SystemExit from uvicorn included
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        context = self._ssl_context()
        tls: dict[str, Any] = {}
        if context is not None:
            tls["ssl_context_factory"] = lambda _config, _default: context
        config = uvicorn.Config(
            self._app(),
            http=self._http_protocol,
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=1,
            **tls,
        )
        self._server = _Uvicorn(config, self._ready)
        assert self._socket is not None
        try:
            await self._start_companions()
            if self._stopped:  # stop() came while the companions were starting
                return
            await self._server.serve(sockets=[self._socket])
        finally:
            await self._stop_companions()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- sockets, directories, TLS ---------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop` (or a server crash)."""
        return self._thread is not None and self._thread.is_alive() and not self._stopped

    def _served_host(self) -> str:
        """The address clients connect to (what URLs name), without IPv6 brackets."""
        return "127.0.0.1" if self.host == "localhost" else self.host.strip("[]")

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

    def _private_dir(self) -> Path:
        """This run's private temporary directory (mode 0700), made on first use."""
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix=self._dir_prefix))
        return self._work_dir

    def _server_certificate(
        self, authority: CertificateAuthority, names: Sequence[str], common_name: str
    ) -> tuple[bytes, bytes]:
        """``(key_pem, cert_pem)`` of a fresh server certificate for ``names``."""
        return authority.issue_server_certificate(names, common_name=common_name)

    def _tls_context(
        self,
        authority: CertificateAuthority,
        names: Sequence[str],
        *,
        common_name: str,
    ) -> tuple[ssl.SSLContext, bytes, bytes]:
        """A TLS 1.2+ server context presenting a certificate ``authority`` signs for ``names``.

        Writes ``server.pem`` and ``ca.pem`` into :meth:`_private_dir`; the key exists there
        (0600) only while :mod:`ssl` loads it. Returns the context and the ``(key_pem,
        cert_pem)`` pair for a companion server; the key is a secret the caller must not keep
        longer than it needs.
        """
        key_pem, cert_pem = self._server_certificate(authority, names, common_name)
        directory = self._private_dir()
        key_file, cert_file = directory / "server.key", directory / "server.pem"
        cert_file.write_bytes(cert_pem)
        (directory / "ca.pem").write_bytes(authority.certificate_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        write_private(key_file, key_pem)
        try:
            context.load_cert_chain(cert_file, key_file)
        finally:
            key_file.unlink(missing_ok=True)
        return context, key_pem, cert_pem
