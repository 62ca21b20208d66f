"""S3 test helpers: moto's standalone server on loopback, a bucket handle, a fault proxy.

:func:`start_moto` starts ``python -m moto.server`` on a free loopback port and waits for it by
polling. :class:`S3` is a bucket on it with the standard ``AWS_*`` environment
(``AWS_ENDPOINT_URL`` pointing at the server). :class:`FaultProxy` is a loopback HTTP proxy in
front of the server that answers chosen requests with S3 error documents (``SlowDown`` 503,
``InternalError`` 500, ``AccessDenied`` 403) instead of forwarding them.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_REGION = "us-east-1"
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
     "proxy-authorization", "proxy-authenticate", "content-length"}
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def start_moto() -> Iterator[str]:
    """Run a moto S3 server on loopback; yields its URL, kills it on exit."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto's server exited at start (exit {proc.returncode})")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/moto-api/")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start within 60 s") from None
                time.sleep(0.05)  # polling a subprocess that is starting
        yield url
    finally:
        proc.kill()
        proc.wait()


@dataclass
class S3:
    """A fresh bucket on the moto server, and the environment that reaches it."""

    endpoint: str
    bucket: str
    env: dict[str, str]

    def client(self, endpoint: str | None = None) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            region_name=_REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        """Every object under ``prefix``: key -> bytes."""
        client = self.client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for entry in page.get("Contents", []):
                body = client.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"]
                found[entry["Key"]] = body.read()
        return found

    def count(self, prefix: str = "") -> int:
        page = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return int(page.get("KeyCount", 0))

    def wait_for(
        self, prefix: str, count: int, proc: subprocess.Popen[Any], limit: float = 120
    ) -> None:
        """Poll until ``prefix`` holds ``count`` objects written by the subprocess ``proc``
        (its progress, not a wait for time to pass); raise AssertionError if it ends first or
        writes too little within ``limit`` seconds."""
        deadline = time.monotonic() + limit
        while self.count(prefix) < count:
            if proc.poll() is not None:
                stderr = proc.stderr.read() if proc.stderr is not None else b""
                raise AssertionError(
                    f"the export ended (exit {proc.returncode}) before the kill: {stderr!r}"
                )
            if time.monotonic() > deadline:
                raise AssertionError("the export wrote too few objects in time")
            time.sleep(0.02)  # polling a subprocess, not waiting for an effect


def aws_env(endpoint: str) -> dict[str, str]:
    """The standard AWS environment for a test server at ``endpoint``."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": _REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


# -- faults ------------------------------------------------------------------------------------

#: A rule sees (method, path) and returns (status, S3 error code) to answer with, or None.
Rule = Callable[[str, str], "tuple[int, str] | None"]


@dataclass
class FaultProxy:
    """A loopback proxy to ``upstream`` that answers what ``rule`` picks with an S3 error."""

    upstream: str
    rule: Rule
    injected: list[tuple[str, str, int, str]] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> FaultProxy:
        proxy = self
        host, port = self.upstream.removeprefix("http://").split(":")
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()
                with lock:
                    fault = proxy.rule(self.command, self.path)
                    if fault is not None:
                        proxy.injected.append((self.command, self.path, *fault))
                if fault is not None:
                    status, code = fault
                    doc = (
                        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>'
                        f"{code}</Code><Message>injected {code}</Message>"
                        "<RequestId>proxy</RequestId></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    size = 0 if self.command == "HEAD" else len(doc)
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(doc)
                    return
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP_BY_HOP}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body or None, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
