"""``synapse emulator serve``: as a real subprocess, and its argument checks in-process."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
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
from synapse_sdk.cli._common import EXIT_INTERRUPTED
from synapse_sdk.emulator import FaultProfile

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
            headers={"SYNAPSE-ACCESS-TOKEN": token, "SYNAPSE-Tenant": "emulator"},
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


def test_serve_original_bytes_streams_files_of_that_size_with_ranges() -> None:
    with _serve("--items", "2", "--faults", "none", "--original-bytes", "2M", "--json") as (
        proc,
        out,
    ):
        info = json.loads(out.until(lambda line: line.startswith("{")))
        assert info["original_bytes"] == 2 * 1024 * 1024
        headers = {"SYNAPSE-ACCESS-TOKEN": info["token"], "SYNAPSE-Tenant": info["tenant"]}
        item = httpx.post(
            info["url"] + "/v2/tasks/bulk-fetch/", json={"ids": [1]}, headers=headers, timeout=10
        ).json()["data"][0]
        entry = item["files_manifest"]["original"]
        assert entry["file_size"] == 2 * 1024 * 1024 and "checksum" not in entry
        whole = httpx.get(entry["url"], timeout=10)
        assert whole.status_code == 200 and len(whole.content) == 2 * 1024 * 1024
        tail = httpx.get(entry["url"], headers={"Range": "bytes=1000000-"}, timeout=10)
        assert tail.status_code == 206 and tail.content == whole.content[1_000_000:]
        assert tail.headers["content-range"] == f"bytes 1000000-{2 * 1024 * 1024 - 1}/2097152"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        out.rest()


def test_bad_original_bytes_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["emulator", "serve", "--original-bytes", "0"])
    assert result.exit_code == 2 and "at least 1 byte" in result.output


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
        env["SYNAPSE_TENANT"] = info["tenant"]
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


def test_a_million_items_serve_at_once_and_answer_the_last_id() -> None:
    """Items are built on demand: `--items 1000000` serves (measured by hand: 0.5 s, 40 MB peak
    RSS; see docs/emulator.md) and its last item is there."""
    with _serve("--items", "1000000", "--faults", "none", "--json") as (proc, out):
        info = json.loads(out.until(lambda line: line.startswith("{")))
        assert info["items"] == 1_000_000
        headers = {"SYNAPSE-ACCESS-TOKEN": info["token"], "SYNAPSE-Tenant": info["tenant"]}
        fetched = httpx.post(
            info["url"] + "/v2/ground-truths/bulk-data/",
            json={"ids": [1_000_000, 1]},
            headers=headers,
            timeout=10,
        )
        assert [item["id"] for item in fetched.json()["data"]] == [1_000_000, 1]
        page = httpx.get(
            info["url"] + "/v2/tasks/", params={"per_page": 500}, headers=headers, timeout=10
        )
        assert len(page.json()["data"]) == 500 and page.json()["meta"]["pagination"]["next_cursor"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        out.rest()
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def _full_pipe() -> tuple[int, int]:
    """A pipe whose buffer is full: whoever writes to it next blocks until it is read."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"\n" * 4096)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"\n")
    os.set_blocking(write_end, True)
    return read_end, write_end


def _wchan(pid: int) -> str | None:
    """Where in the kernel the process sleeps ("0" while it runs; None: not readable here)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return None


def test_ctrl_c_while_starting_exits_130_and_leaves_nothing_running() -> None:
    # The first thing `serve` prints is its "starting" line on stderr, before it starts the
    # server. With stderr a full pipe that write blocks, so the Ctrl-C below arrives during
    # startup for certain (no timing), and the process ends as soon as the pipe is drained.
    read_end, write_end = _full_pipe()
    command = [sys.executable, "-c", _LAUNCH, "emulator", "serve", "--items", "1000000"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=write_end) as proc:
        os.close(write_end)
        try:
            seen: set[str | None] = set()
            for _ in range(3000):  # wait (up to ~30 s) for the process to reach that write
                wchan = _wchan(proc.pid)
                seen.add(wchan)
                if wchan is not None and "pipe_write" in wchan:
                    break
                threading.Event().wait(0.01)
            else:
                if seen <= {None, "", "0"}:
                    pytest.skip("/proc/<pid>/wchan does not say where a process sleeps here")
                raise AssertionError(f"the process never blocked writing its first line: {seen}")
            proc.send_signal(signal.SIGINT)
            with os.fdopen(read_end, "rb") as err:
                stderr = err.read().decode().strip("\n")
            assert proc.wait(timeout=30) == EXIT_INTERRUPTED
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.stdout is not None and proc.stdout.read() == b""  # never served
    assert "Traceback" not in stderr and "Aborted" not in stderr
    # (The starting line itself may be lost: the interrupted write is not retried.)
    assert stderr.splitlines()[-1] == (
        "interrupted before the emulator was serving; nothing is left running"
    )


_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z_-]*")
#: What may stay Latin in the Korean banner: the command, resource names, preset names, the
#: key, units and the CA.
_LATIN_ALLOWED = {"synapse", "tasks", "assignments", "ground-truths", "mild", "none", "Ctrl-C"}
_LATIN_ALLOWED |= {"CA", "ms", "http"}


def test_the_banner_speaks_korean_with_lang_ko() -> None:
    with _serve("--items", "5", "--lang", "ko") as (proc, out):
        faults = out.until(lambda line: "장애:" in line)
        banner = out.until(lambda line: "Ctrl-C" in line)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        rest = out.rest()
        assert proc.stderr is not None
        stderr = proc.stderr.read()
    assert "Traceback" not in stderr and "에뮬레이터를 시작하는 중입니다" in stderr
    assert faults.strip().startswith("장애:   mild (재시도할 수 있는 항목 실패 3%; 요청 제한")
    assert banner.strip() == "멈추려면 Ctrl-C를 누르세요."
    assert rest.strip() == "요청 0건을 처리하고 멈췄습니다"


def test_every_banner_line_in_korean_has_no_english_left() -> None:
    from synapse_sdk.cli.emulator import _TEXT

    values = {"url": "http://127.0.0.1:1", "token": "emu_x", "items": 5, "seed": 0}
    values |= {"tenant": "emulator"}
    values |= {"faults": FaultProfile.preset("heavy").describe("ko"), "ca_file": "/ca.pem"}
    values |= {"requests": 3}
    assert set(_TEXT["ko"]) == set(_TEXT["en"])
    for key, template in _TEXT["ko"].items():
        line = template.format(**values).replace(values["url"], "").replace("emu_x", "")
        line = line.replace("/ca.pem", "").replace("emulator", "")
        latin = set(_LATIN_WORD.findall(line)) - _LATIN_ALLOWED - {"heavy"}
        assert not latin, (key, line)


def test_an_unknown_language_says_it_falls_back_to_english() -> None:
    with _serve("--items", "1", "--lang", "xx", "--faults", "none") as (proc, out):
        out.until(lambda line: line.startswith("Press Ctrl-C"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        out.rest()
        assert proc.stderr is not None
        stderr = proc.stderr.read()
    assert "unknown language 'xx'; using en" in stderr and "Traceback" not in stderr
