"""A deliberately hostile HTTP/1.1 server on 127.0.0.1 for the transport tests.

Starlette would never send what these tests need (stacked codings, a header trickled byte by
byte, a reason phrase holding a secret), so this server writes raw bytes on a socket. Each
connection reads one request head (bounded) and hands the socket to the test's ``answer``, then
closes. Every loop is bounded: the accept loop stops on :meth:`HostileServer.close`, reads stop
at :data:`MAX_HEAD` bytes, and a trickle ends after its bytes or at the client's first hang-up.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = [
    "HostileServer",
    "Request",
    "gzip_bomb",
    "head",
    "hostile_server",
    "send_all",
    "trickle",
]

#: Longest request head read.
MAX_HEAD = 64 * 1024


@dataclass
class Request:
    """A request head as the server received it."""

    method: str
    target: str
    headers: dict[str, str]


Answer = Callable[[Request, socket.socket], None]


@dataclass
class HostileServer:
    """The running server: its URL and what it received."""

    url: str
    requests: list[Request] = field(default_factory=list)


def head(status: int, headers: dict[str, str] | None = None, *, reason: str = "X") -> bytes:
    """A response head (status line and headers)."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send_all(conn: socket.socket, data: bytes) -> None:
    """Send ``data``, quietly stopping if the client hung up."""
    try:
        conn.sendall(data)
    except OSError:
        pass


def trickle(conn: socket.socket, data: bytes, interval: float) -> None:
    """Send ``data`` one byte every ``interval`` seconds, until the end or the client hangs up."""
    for i in range(len(data)):
        try:
            conn.sendall(data[i : i + 1])
        except OSError:
            return
        time.sleep(interval)


def gzip_bomb(size: int, layers: int = 2, *, inner: str = "gzip") -> bytes:
    """``size`` zero bytes compressed with ``inner`` (gzip or deflate), then gzipped until there
    are ``layers`` codings; built without holding ``size`` bytes."""
    wbits = zlib.MAX_WBITS | 16 if inner == "gzip" else zlib.MAX_WBITS
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = b"\0" * (1 << 20)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    parts.append(packer.compress(b"\0" * (size % len(block))))
    parts.append(packer.flush())
    data = b"".join(parts)
    for _ in range(layers - 1):
        data = gzip.compress(data, 9)
    return data


def _read_head(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_HEAD:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    text = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    first, *lines = text.split("\r\n")
    method, target, _ = [*first.split(" ", 2), "", ""][:3]
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    rest = data.split(b"\r\n\r\n", 1)[1]
    while len(rest) < min(length, MAX_HEAD):
        chunk = conn.recv(4096)
        if not chunk:
            break
        rest += chunk
    return Request(method, target, headers)


@contextmanager
def hostile_server(answer: Answer) -> Iterator[HostileServer]:
    """Serve ``answer`` on 127.0.0.1 (a free port) for the ``with`` block."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    server = HostileServer(url=f"http://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                request = _read_head(conn)
            except OSError:
                return
            if request is None:
                return
            server.requests.append(request)
            answer(request, conn)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
