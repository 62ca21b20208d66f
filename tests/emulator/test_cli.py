"""``synapse emulator serve``: as a real subprocess, and its argument checks in-process."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from synapse_sdk.cli import main

_LAUNCH = "from synapse_sdk.cli import main; main()"


class _Lines:
    """Reads a pipe on a thread so the test can wait for a line with a timeout (no sleeping)."""

    def __init__(self, stream: object) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._queue.put(line)
        self._queue.put(None)

    def until(self, predicate: object, timeout: float = 30.0) -> str:
        while True:
            line = self._queue.get(timeout=timeout)
            if line is None:
                raise AssertionError("the process ended before printing the expected line")
            if predicate(line):  # type: ignore[operator]
                return line

    def rest(self, timeout: float = 30.0) -> str:
        lines = []
        while (line := self._queue.get(timeout=timeout)) is not None:
            lines.append(line)
        return "".join(lines)


@contextlib.contextmanager
def _serve(*args: str) -> Iterator[tuple[subprocess.Popen[str], _Lines]]:
    """Run ``synapse emulator serve`` with a free port; always reaped and its pipes closed."""
    with subprocess.Popen(
        [sys.executable, "-c", _LAUNCH, "emulator", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            yield proc, _Lines(proc.stdout)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_url_and_token_serves_and_stops_cleanly_on_a_signal(sig: int) -> None:
    with _serve("--items", "30", "--seed", "2", "--faults", "none") as (proc, out):
        url = out.until(lambda line: line.strip().startswith("url:")).split()[-1]
        token = out.until(lambda line: line.strip().startswith("token:")).split()[-1]
        assert url.startswith("http://127.0.0.1:")
        response = httpx.post(
            url + "/v2/tasks/bulk-fetch/",
            json={"ids": [30, 1]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert [item["id"] for item in response.json()["data"]] == [30, 1]
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        assert "stopped after 1 requests" in out.rest()
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()


def test_serve_json_line_with_mild_faults_by_default() -> None:
    with _serve("--items", "10", "--json") as (proc, out):
        info = json.loads(out.until(lambda line: line.startswith("{")))
        assert info["faults"] == "mild"
        assert httpx.get(info["url"] + "/healthz", timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        out.rest()


def test_non_loopback_host_needs_the_flag() -> None:
    result = CliRunner().invoke(main, ["emulator", "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--allow-non-loopback" in result.output


def test_non_loopback_with_the_flag_warns() -> None:
    # 192.0.2.0/24 is reserved for documentation: binding fails, so nothing is exposed, but the
    # warning must already be printed and the failure must be a clean error.
    result = CliRunner().invoke(
        main, ["emulator", "serve", "--host", "192.0.2.1", "--allow-non-loopback", "--items", "1"]
    )
    assert result.exit_code == 1
    assert "warning: serving on 192.0.2.1" in result.output
    assert "cannot start the emulator" in result.output


@pytest.mark.parametrize("spec", ["extreme", "mild,drop_rate=2"])
def test_bad_fault_profile_is_a_usage_error(spec: str) -> None:
    result = CliRunner().invoke(main, ["emulator", "serve", "--faults", spec])
    assert result.exit_code == 2
    assert "--faults" in result.output


def test_help_lists_serve() -> None:
    result = CliRunner().invoke(main, ["emulator", "--help"])
    assert result.exit_code == 0
    assert "serve" in result.output


def test_serve_tls_and_export_over_https_only_with_its_ca(tmp_path: Path) -> None:
    """`serve --tls` in one process, `synapse export` in another: with the printed CA
    (SSL_CERT_FILE) every item arrives; without it nothing is sent and the failure is
    EXPORT_FAILED_TLS, exit 4, with no retry."""
    base = tmp_path
    with _serve("--items", "25", "--faults", "none", "--tls", "--json") as (proc, out):
        info = json.loads(out.until(lambda line: line.startswith("{")))
        assert info["url"].startswith("https://127.0.0.1:")
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("SSL_CERT_FILE", "SSL_CERT_DIR")
        }
        env["SYNAPSE_TOKEN"] = info["token"]
        command = [sys.executable, "-c", _LAUNCH, "export", "--backend", info["url"], "--json"]

        refused = subprocess.run(
            [*command, "--out", str(base / "refused")],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        assert refused.returncode == 4, refused.stderr
        failure = json.loads(refused.stdout)
        assert failure["error"]["code"] == "EXPORT_FAILED_TLS"
        assert info["token"] not in refused.stdout + refused.stderr

        trusted = subprocess.run(
            [*command, "--out", str(base / "trusted")],
            env={**env, "SSL_CERT_FILE": info["ca_file"]},
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert trusted.returncode == 0, trusted.stderr
        assert json.loads(trusted.stdout)["exported"] == 25
        assert len(list((base / "trusted" / "tasks").glob("*.json"))) == 25

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        out.rest()
