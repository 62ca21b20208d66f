"""What ``synapse`` prints, run as a user runs it (a subprocess, on a terminal where it matters):
handling reads as handling, final errors are said once, the summary's counts have distinct
names, the progress bar ends above the closing message and shows what is saved, and code
listings keep codes whole at 80 columns."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synapse_sdk.cli.export import EXIT_ABORTED, EXIT_INTERRUPTED, EXIT_OK
from synapse_sdk.emulator import Emulator, FaultProfile
from synapse_sdk.plugins.actions import get_category
from synapse_testkit.cli import LAUNCH, run_synapse

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
synapse = run_synapse


class _Terminal:
    """``synapse ARGS`` on a pseudo-terminal (what rich shows a person), read as it runs."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        environ = {**os.environ, "SYNAPSE_LANGUAGE": "en", "TERM": "xterm", "COLUMNS": "100",
                   "LINES": "40", **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *args],
            stdin=slave, stdout=slave, stderr=slave, env=environ, close_fds=True,
        )
        os.close(slave)
        self._master = master
        self.output = b""

    def read(self, seconds: float) -> None:
        """Read what is there (up to ``seconds`` of waiting for more; a poll, not a sleep)."""
        ready, _, _ = select.select([self._master], [], [], seconds)
        if ready:
            try:
                self.output += os.read(self._master, 65536)
            except OSError:  # the child closed the terminal
                pass

    def finish(self, limit: float = 120.0) -> str:
        deadline = time.monotonic() + limit
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.read(0.05)
        for _ in range(20):
            self.read(0.01)
        os.close(self._master)
        self.proc.wait(timeout=5)
        text = _ANSI.sub("", self.output.decode("utf-8", "replace"))
        assert "Traceback" not in text, text
        return text


def _records(folder: Path) -> int:
    return sum(1 for p in folder.glob("*.json") if not p.name.endswith(".original.json"))


def test_the_progress_bar_ends_above_export_completed(tmp_path: Path) -> None:
    term = _Terminal("export", "--out", str(tmp_path), "--items", "60", "--faults", "none",
                     env={})
    text = term.finish()
    assert term.proc.returncode == EXIT_OK, text
    assert "Export completed." in text
    assert text.rindex("60/60") < text.index("Export completed."), text


def test_after_ctrl_c_the_bar_shows_what_is_saved(tmp_path: Path) -> None:
    slow = FaultProfile(latency=(0.005, 0.01))
    with Emulator(items=2000, faults=slow) as emu:
        term = _Terminal("export", "--out", str(tmp_path), "--backend", emu.url,
                         env={"SYNAPSE_TOKEN": emu.token})
        deadline = time.monotonic() + 60
        while not (tmp_path / "tasks").is_dir() or _records(tmp_path / "tasks") < 230:
            assert time.monotonic() < deadline and term.proc.poll() is None
            term.read(0.02)
        term.proc.send_signal(signal.SIGINT)
        text = term.finish()
    assert term.proc.returncode == EXIT_INTERRUPTED, text
    assert "Interrupted." in text
    shown = int(re.findall(r"(\d+)/(?:\d+|\?)", text)[-1])  # the bar's last count
    assert shown == _records(tmp_path / "tasks"), text[-2000:]


def test_the_summary_names_its_two_retry_counts_apart(tmp_path: Path) -> None:
    result = synapse(
        "export", "--out", str(tmp_path), "--items", "20", "--faults", "none",
        env={"COLUMNS": "200"},
    )
    assert result.returncode == EXIT_OK
    assert "item fetches repeated (after a failure)" in result.stdout
    assert "retry requests (after the main pass)" in result.stdout
    assert "items retried" not in result.stdout


def test_a_final_error_is_printed_once(tmp_path: Path) -> None:
    with Emulator(items=5) as emu:
        url = emu.url  # nobody listens there once it stopped
    result = synapse("export", "--out", str(tmp_path), "--backend", url, "--token", "t")
    assert result.returncode == EXIT_ABORTED
    assert result.stderr.count("could not be reached") == 1, result.stderr
    assert result.stderr.count("Error:") == 1
    assert "(the 'fetch' step)" in result.stderr


def test_messages_keep_codes_whole_at_80_columns() -> None:
    result = synapse("messages", env={"COLUMNS": "80"})
    assert result.returncode == EXIT_OK
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    words = set(re.findall(r"[A-Za-z_]+", result.stdout))
    for code in get_category("export").all_codes():
        assert code.value in words, code.value


@pytest.mark.parametrize("columns", ["80", "200"])
def test_messages_in_korean_have_korean_headers(columns: str) -> None:
    result = synapse("messages", "--lang", "ko", env={"COLUMNS": columns})
    assert result.returncode == EXIT_OK
    assert "로그 메시지 코드" in result.stdout
    assert "template" not in result.stdout and "level" not in result.stdout


def test_demo_is_a_real_tour() -> None:
    result = synapse("demo", "--outage", "0.4", env={"COLUMNS": "100"})
    assert result.returncode == EXIT_OK, result.stderr
    out = result.stdout
    # The tree, drawn.
    assert "SynapTransientError  transient_error  (retried)" in out
    assert "└── " in out and "├── " in out
    # A call against the embedded emulator, retried live with its wait shown.
    assert re.search(r"attempt 1 failed: \w+ \(service_unavailable\); retrying in \d\.\d s", out)
    assert "got tasks 1, 2, 3, 4, 5" in out
    # A classification in English and Korean.
    assert "→ EXPORT_FAILED_PERMISSION" in out
    assert "en: Export failed: permission denied." in out
    assert "ko: 권한이 없어 내보내기에 실패했습니다." in out
