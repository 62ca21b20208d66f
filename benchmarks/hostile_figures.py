"""The figures of docs/reliability.md's "Hostile server" section: each attack, its outcome, the
wall time and the peak RSS of the client process.

Each case runs in its own child process (so its peak RSS is its own), capped at 4 GiB of address
space (a bomb that gets through ends in ``MemoryError`` instead of hurting the machine) and at
``--limit`` seconds of wall time (a case still running then is reported as such). The servers
are the tests' hostile server (``tests/clients/hostile_server.py``) and the HTTPS emulator, on
127.0.0.1. Run it against another tree of the SDK with ``PYTHONPATH=that/src``; cases that need a
newer API (``TimeoutConfig.total``) fall back to the defaults there.

    python benchmarks/hostile_figures.py               # every case
    python benchmarks/hostile_figures.py bomb-1g deep  # some
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "clients"))

from hostile_server import (
    Request,
    gzip_bomb,
    head,
    hostile_server,
    send_all,
    trickle,
)

TOKEN = "figures-SECRET-token-0123456789abcdef"
PAGE = b'{"data": [], "next_cursor": null}'
GIB = 1 << 30
CASES = [
    "bomb-1g", "bomb-10g", "bomb-503", "bomb-file", "trickle-head", "trickle-body", "silent",
    "deep", "tls-mount", "tls-wrapper", "tls-flip", "log-echo", "tiny-page", "tiny-bulk",
    "tiny-page-8m",
]


def _bomb(size: int, cache: Path) -> bytes:
    path = cache / f"bomb-{size}.gz2"
    if not path.exists():
        path.write_bytes(gzip_bomb(size))
    return path.read_bytes()


def _tiny_values(size: int) -> bytes:
    """A gzipped list page of about ``size`` bytes holding nothing but ``{}`` items (each parses
    to a ~64-byte dict: the cheapest bytes-to-memory ratio JSON offers); small on the wire, so
    the server's copy does not count in the client's peak."""
    count = (size - 64) // 3
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [packer.compress(b'{"data": [{}')]
    block = b",{}" * (1 << 16)
    parts += [packer.compress(block) for _ in range((count - 1) >> 16)]
    parts += [packer.compress(b",{}" * ((count - 1) & 0xFFFF)), packer.compress(b"]}")]
    return b"".join([*parts, packer.flush()])


def _fixed(status: int, body: bytes, headers: dict[str, str]) -> Any:
    def answer(request: Request, conn: socket.socket) -> None:
        send_all(conn, head(status, {"Content-Length": str(len(body)), **headers}) + body)

    return answer


def _config(total: float | None = 2.0, retries: bool = False) -> Any:
    from synapse_sdk.config import RetryPolicy, SDKConfig, TimeoutConfig

    policy = RetryPolicy() if retries else None
    try:
        timeouts = TimeoutConfig(total=total)  # type: ignore[call-arg]
    except TypeError:  # an SDK without TimeoutConfig.total
        timeouts = TimeoutConfig()
    return SDKConfig(retry_policy=policy, timeouts=timeouts)


def _outcome(call: Any) -> str:
    try:
        call()
    except BaseException as exc:  # the outcome is what is measured
        code = getattr(exc, "error_code", None)
        return f"{type(exc).__name__}" + (f" ({code})" if code else "")
    return "returned"


def _listing(server_url: str, config: Any, **kwargs: Any) -> str:
    from synapse_sdk.clients import BackendV2Client

    with BackendV2Client(config, base_url=server_url, token=TOKEN, **kwargs) as client:
        return _outcome(client.tasks.list_page)


def _tls(case: str) -> str:
    import httpx

    from synapse_sdk.clients import BackendV2Client
    from synapse_sdk.emulator import Emulator

    with Emulator(items=3, token=TOKEN, tls=True) as emu:
        def attack() -> None:
            if case == "tls-mount":
                http = httpx.Client(mounts={"https://": httpx.HTTPTransport(verify=False)})
                kwargs: dict[str, Any] = {"http_client": http}
            elif case == "tls-wrapper":
                inner = httpx.HTTPTransport(verify=False)

                class Wrapper(httpx.BaseTransport):
                    def handle_request(self, request: httpx.Request) -> httpx.Response:
                        return inner.handle_request(request)

                kwargs = {"http_client": httpx.Client(transport=Wrapper())}
            else:
                context = ssl.create_default_context()
                kwargs = {"verify": context}
            with BackendV2Client(
                _config(None), base_url=emu.url, token=TOKEN, tenant=emu.tenant, **kwargs
            ) as c:
                if case == "tls-flip":
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                c.tasks.list_page()

        outcome = _outcome(attack)
        sent = sum(1 for r in emu.requests if r.authenticated)
    return f"{outcome}; requests with the token: {sent}"


def _log_echo(url: str) -> str:
    stream = io.StringIO()
    logging.basicConfig(level=logging.DEBUG, stream=stream)
    outcome = _listing(url, _config(None))
    leaked = sum(1 for line in stream.getvalue().splitlines() if "SECRET" in line)
    return f"{outcome}; log records showing the token: {leaked}"


def run_case(case: str, cache: Path) -> str:
    """Run one attack in this process; its outcome in words."""
    if case.startswith("tls-"):
        return _tls(case)
    if case in ("bomb-1g", "bomb-10g", "bomb-503", "bomb-file"):
        body = _bomb(10 * GIB if case == "bomb-10g" else GIB, cache)
        status = 503 if case == "bomb-503" else 200
        answer = _fixed(status, body, {"Content-Encoding": "gzip, gzip"})
        with hostile_server(answer) as server:
            if case != "bomb-file":
                return f"{len(body)} bytes sent; " + _listing(server.url, _config(None))
            from synapse_sdk.clients import BackendV2Client

            with BackendV2Client(_config(None), base_url=server.url, token=TOKEN) as client:
                item = {"id": 1, "original": {"url": f"{server.url}/f"}}
                return f"{len(body)} bytes sent; " + _outcome(
                    lambda: client.download_original(item)
                )
    if case in ("trickle-head", "trickle-body"):
        def answer(request: Request, conn: socket.socket) -> None:
            padded = b" " * 10_000 + PAGE
            if case == "trickle-head":
                trickle(conn, head(200, {"X-Pad": "x" * 10_000,
                                         "Content-Length": str(len(PAGE))}), 0.5)
            else:
                send_all(conn, head(200, {"Content-Length": str(len(padded))}))
                trickle(conn, padded, 0.5)

        with hostile_server(answer) as server:
            return "TimeoutConfig(total=2), 2 bytes/s; " + _listing(server.url, _config(2.0))
    if case == "silent":
        with hostile_server(lambda request, conn: time.sleep(200)) as server:
            return "defaults (3 attempts, read 30 s); " + _listing(
                server.url, _config(120.0, retries=True)
            )
    if case == "deep":
        deep = b"[" * 100_000 + b"]" * 100_000
        with hostile_server(_fixed(200, deep, {})) as server:
            return _listing(server.url, _config(None))
    if case in ("tiny-page", "tiny-bulk", "tiny-page-8m"):
        mib = 8 if case == "tiny-page-8m" else 32  # just under the page bound, or the default
        body = _tiny_values(mib * 1024 * 1024 - 1024)
        with hostile_server(_fixed(200, body, {"Content-Encoding": "gzip"})) as server:
            from synapse_sdk.clients import BackendV2Client

            with BackendV2Client(_config(None), base_url=server.url, token=TOKEN) as client:
                call = client.tasks.list_page if case == "tiny-page" else (
                    lambda: client.tasks.bulk_fetch_once([1])
                )
                return f"{mib} MiB of {{}} items, gzipped; " + _outcome(call)
    if case == "log-echo":
        def echo(request: Request, conn: socket.socket) -> None:
            echoed = request.headers.get("authorization", "")
            send_all(conn, head(200, {"X-Echo": echoed, "Content-Length": str(len(PAGE))},
                                reason=echoed) + PAGE)

        with hostile_server(echo) as server:
            return _log_echo(server.url)
    raise SystemExit(f"unknown case {case!r}")


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 * GIB, 4 * GIB))


def measure(case: str, cache: Path, limit: float) -> dict[str, Any]:
    """Run ``case`` in a child process; its outcome, wall time and peak RSS (MB)."""
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", case, "--cache", str(cache)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_limit_memory,
    )
    try:
        out, err = child.communicate(timeout=limit)
        outcome = out.strip().splitlines()[-1] if out.strip() else f"crashed: {err[-300:]}"
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        outcome = f"still running after {limit:g} s (killed)"
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"case": case, "outcome": outcome, "seconds": round(elapsed, 2),
            "peak_rss_mb": round(peak, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=CASES)
    parser.add_argument("--limit", type=float, default=150.0, help="seconds per case")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hostile")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.cache.mkdir(exist_ok=True)
    if args.child:  # the client process of one case
        print(run_case(args.child, args.cache), flush=True)
        return
    if args.one:  # the parent of one case: ru_maxrss of RUSAGE_CHILDREN is then that case's
        print(json.dumps(measure(args.one, args.cache, args.limit)), flush=True)
        return
    for case in args.cases:
        done = subprocess.run(
            [sys.executable, __file__, "--one", case, "--limit", str(args.limit),
             "--cache", str(args.cache)],
            capture_output=True, text=True, check=False, env=os.environ.copy(),
        )
        print(done.stdout.strip() or done.stderr[-500:], flush=True)


if __name__ == "__main__":
    main()
