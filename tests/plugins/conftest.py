"""Fixtures for the plugin tests: real loopback servers that misbehave the way real servers do,
and a helper that says which declared pattern of a category catches a text first."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator, Sequence

import httpx
import pytest

Handler = Callable[[socket.socket], None]


class RawServer:
    """A TCP server on 127.0.0.1 (random port) running ``handler(conn)`` for each connection.

    Connections stay open until the server is closed, so a handler that returns without
    answering leaves the client waiting (a server that accepts but never responds).
    """

    def __init__(self, handler: Handler) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._handler = handler
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="raw-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/tasks/"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            try:
                self._handler(conn)
            except OSError:
                pass

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self._listener.close()
        for conn in self._conns:
            conn.close()
        self._thread.join(timeout=5)


def read_request(conn: socket.socket) -> bytes:
    """Read one HTTP request head (enough for GET requests)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _silent(conn: socket.socket) -> None:
    """Accept and never answer."""


def _truncating(conn: socket.socket) -> None:
    """Promise 100 bytes, send 10, hang up."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    conn.sendall(b'{"data": [')
    conn.close()


def _hangup(conn: socket.socket) -> None:
    """Read the request, then close without a response."""
    read_request(conn)
    conn.close()


def _serving(handler: Handler) -> Iterator[RawServer]:
    """A fixture's body: a server answering every connection with ``handler``, closed after."""
    server = RawServer(handler)
    yield server
    server.close()


@pytest.fixture
def silent_server() -> Iterator[RawServer]:
    yield from _serving(_silent)


@pytest.fixture
def truncating_server() -> Iterator[RawServer]:
    yield from _serving(_truncating)


@pytest.fixture
def hangup_server() -> Iterator[RawServer]:
    yield from _serving(_hangup)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on: bound, read, released."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """An httpx client that ignores proxy settings of the environment (loopback only)."""
    with httpx.Client(trust_env=False) as client:
        yield client


def first_matching_pattern(patterns: Sequence[tuple[str, object]], text: str) -> int | None:
    """Index of the first declared pattern that matches ``text`` (what the v1 layer picks)."""
    for index, (pattern, _) in enumerate(patterns):
        if re.search(pattern, text):
            return index
    return None


@pytest.fixture
def pattern_index() -> Callable[[Sequence[tuple[str, object]], str], int | None]:
    return first_matching_pattern
