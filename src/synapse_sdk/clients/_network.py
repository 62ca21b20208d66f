"""The SDK's hold on its sockets: a time limit per attempt, and a TLS check on every handshake.

httpx's ``read`` timeout bounds each single read, so a server sending one byte per second keeps
an answer (its head or its body) going forever. :func:`attempt_limit` sets the running
attempt's deadline in a context variable, and the network backend installed under every
connection pool of the transport's client (:func:`install`) shortens each connect, read and
write to the time left, raising httpcore's timeout (mapped by httpx to ``httpx.ReadTimeout``
and so on) once the deadline has passed. The deadline follows the caller (a thread, or a task),
so a pooled connection opened by another call is bounded by the call using it now.

The same backend checks every TLS handshake before a byte of a request is sent
(:func:`check_peer`): the server's certificate chain was verified and the context still checks
host names. The ``ssl.SSLContext`` a caller passed as ``verify=`` stays the caller's object, so
switching its ``verify_mode`` or ``check_hostname`` off after the client was built would
otherwise turn verification off for every new connection.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import httpcore
import httpx

__all__ = ["attempt_limit", "check_deadline", "check_peer", "install", "transports"]

#: (deadline on time.monotonic, the limit in seconds, where the limit comes from) of the attempt
#: running in this context.
_DEADLINE: ContextVar[tuple[float, float, str] | None] = ContextVar(
    "synapse_sdk_attempt_deadline", default=None
)

_T = TypeVar("_T")
_Timeout = type[httpcore.TimeoutException]


@contextmanager
def attempt_limit(limit: tuple[float, str] | None) -> Iterator[None]:
    """Bound the socket operations made inside the block to ``limit`` (seconds, and the setting
    they come from, named in the timeout's message) in all; None: unbounded."""
    token = _DEADLINE.set(None if limit is None else (time.monotonic() + limit[0], *limit))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _message(limit: tuple[float, float, str], phase: str) -> str:
    return f"the attempt's time limit of {limit[1]:.3g} s ({limit[2]}) passed while {phase}"


def _passed() -> tuple[float, float, str] | None:
    """This context's limit if its deadline has passed, else None."""
    current = _DEADLINE.get()
    if current is not None and time.monotonic() >= current[0]:
        return current
    return None


def check_deadline() -> None:
    """Raise ``httpx.ReadTimeout`` if the running attempt's deadline has passed.

    For loops that read from a stream the SDK's backend may not sit under (a pooled connection
    of a client opened before the SDK got it).
    """
    passed = _passed()
    if passed is not None:
        raise httpx.ReadTimeout(_message(passed, _READING))


def _bounded(timeout: float | None, phase: str, error: _Timeout) -> float | None:
    """``timeout`` shortened to the time left before the deadline.

    Raises:
        httpcore.TimeoutException: (``error``) the deadline has passed.
    """
    current = _DEADLINE.get()
    if current is None:
        return timeout
    left = current[0] - time.monotonic()
    if left <= 0:
        raise error(_message(current, phase))
    return left if timeout is None else min(timeout, left)


def _run(operation: Callable[[float | None], _T], timeout: float | None, phase: str,
         error: _Timeout) -> _T:
    try:
        return operation(_bounded(timeout, phase, error))
    except httpcore.TimeoutException as exc:
        passed = _passed()
        if passed is not None:
            raise error(_message(passed, phase)) from exc
        raise


async def _arun(operation: Callable[[float | None], Awaitable[_T]], timeout: float | None,
                phase: str, error: _Timeout) -> _T:
    try:
        return await operation(_bounded(timeout, phase, error))
    except httpcore.TimeoutException as exc:
        passed = _passed()
        if passed is not None:
            raise error(_message(passed, phase)) from exc
        raise


def check_peer(stream: httpcore.NetworkStream | httpcore.AsyncNetworkStream) -> None:
    """Make sure the TLS handshake ``stream`` just made verified the server.

    Raises:
        ssl.SSLCertVerificationError: the connection's context skips the certificate or host
            name check, or no verified certificate came with the handshake (the stream is the
            caller's to close).
    """
    ssl_object = stream.get_extra_info("ssl_object")
    context = getattr(ssl_object, "context", None)
    verified = (
        isinstance(context, ssl.SSLContext)
        and context.verify_mode != ssl.CERT_NONE
        and context.check_hostname
        and bool(ssl_object.getpeercert())
    )
    if not verified:
        raise ssl.SSLCertVerificationError(
            "the TLS connection did not verify the server's certificate and host name (was "
            "the ssl.SSLContext changed after the client was built?); nothing was sent"
        )


_READING = "reading the response"
_WRITING = "sending the request"
_CONNECTING = "connecting"


class _Stream(httpcore.NetworkStream):
    """A connection whose every operation stays within the attempt's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _run(lambda t: self._inner.read(max_bytes, t), timeout, _READING,
                    httpcore.ReadTimeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _run(lambda t: self._inner.write(buffer, t), timeout, _WRITING, httpcore.WriteTimeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        stream = _run(lambda t: self._inner.start_tls(ssl_context, server_hostname, t), timeout,
                      _CONNECTING, httpcore.ConnectTimeout)
        try:
            check_peer(stream)
        except ssl.SSLCertVerificationError:
            stream.close()
            raise
        return _Stream(stream)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """Opens :class:`_Stream` connections through the backend it wraps."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(_run(
            lambda t: self._inner.connect_tcp(host, port, t, local_address, socket_options),
            timeout, _CONNECTING, httpcore.ConnectTimeout,
        ))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(_run(lambda t: self._inner.connect_unix_socket(path, t, socket_options),
                            timeout, _CONNECTING, httpcore.ConnectTimeout))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncStream(httpcore.AsyncNetworkStream):
    """Async twin of :class:`_Stream`."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await _arun(lambda t: self._inner.read(max_bytes, t), timeout, _READING,
                           httpcore.ReadTimeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await _arun(lambda t: self._inner.write(buffer, t), timeout, _WRITING,
                    httpcore.WriteTimeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        stream = await _arun(lambda t: self._inner.start_tls(ssl_context, server_hostname, t),
                             timeout, _CONNECTING, httpcore.ConnectTimeout)
        try:
            check_peer(stream)
        except ssl.SSLCertVerificationError:
            await stream.aclose()
            raise
        return _AsyncStream(stream)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    """Async twin of :class:`_Backend`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        stream = await _arun(
            lambda t: self._inner.connect_tcp(host, port, t, local_address, socket_options),
            timeout, _CONNECTING, httpcore.ConnectTimeout,
        )
        return _AsyncStream(stream)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        stream = await _arun(lambda t: self._inner.connect_unix_socket(path, t, socket_options),
                             timeout, _CONNECTING, httpcore.ConnectTimeout)
        return _AsyncStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def transports(client: httpx.Client | httpx.AsyncClient) -> list[object]:
    """Every transport ``client`` may send through: its own and each mounted one."""
    mounts: dict[Any, Any] = getattr(client, "_mounts", {})
    found = [getattr(client, "_transport", None), *mounts.values()]
    return [t for t in found if t is not None]


def install(client: httpx.Client | httpx.AsyncClient) -> None:
    """Put the deadline-keeping backend under every connection pool of ``client``'s transports
    (httpx's own ``HTTPTransport``/``AsyncHTTPTransport``; others are left as they are).
    Idempotent; connections the pools already hold keep their old streams."""
    for transport in transports(client):
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(transport, httpx.HTTPTransport) and isinstance(
            backend, httpcore.NetworkBackend
        ) and not isinstance(backend, _Backend):
            pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
        elif isinstance(transport, httpx.AsyncHTTPTransport) and isinstance(
            backend, httpcore.AsyncNetworkBackend
        ) and not isinstance(backend, _AsyncBackend):
            pool._network_backend = _AsyncBackend(backend)  # type: ignore[union-attr]
