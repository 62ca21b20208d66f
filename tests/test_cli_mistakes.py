"""Everyday mistakes with ``synapse export``, run as a user runs it (a subprocess): each ends in a
clear message and its exit code, never a traceback, and leaves nothing half-created."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from synapse_sdk.cli.export import EXIT_ABORTED, EXIT_OK, EXIT_USAGE
from synapse_sdk.emulator import Emulator
from synapse_testkit.cli import LAUNCH, run_synapse

EMULATOR = ("--items", "5", "--faults", "none")
synapse = run_synapse


def json_error(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["exit_code"] == result.returncode
    error: dict[str, object] = data["error"]
    return error


# -- --backend ---------------------------------------------------------------------------------

BAD_URLS = [
    "not a url", "localhost:8000", "ftp://example.com", "http://", "http://[::1",
    "https://256.1.1.1",
]  # fmt: skip


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_backend_that_is_not_a_url_is_a_usage_error_saying_what_one_looks_like(
    tmp_path: Path, url: str
) -> None:
    out = tmp_path / "out"
    result = synapse("export", "--out", str(out), "--backend", url, "--token", "t")
    assert result.returncode == EXIT_USAGE
    assert "is not a backend URL" in result.stderr
    assert "https://backend.example.com" in result.stderr
    assert not out.exists()  # nothing created


def test_a_bad_backend_url_with_json_puts_the_error_object_on_stdout(tmp_path: Path) -> None:
    result = synapse(
        "export", "--out", str(tmp_path / "o"), "--backend", "ftp://x", "--token", "t", "--json"
    )
    assert result.returncode == EXIT_USAGE
    error = json_error(result)
    assert error["code"] == "usage_error" and "is not a backend URL" in str(error["message"])


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<h1>Not Found</h1>")

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def plain_web_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_url_that_answers_404_is_reported_as_not_the_backend(
    tmp_path: Path, plain_web_server: str
) -> None:
    result = synapse(
        "export", "--out", str(tmp_path / "o"), "--backend", plain_web_server, "--token", "t"
    )
    assert result.returncode == EXIT_ABORTED
    assert "is not the synapse backend" in result.stderr
    assert "validation" not in result.stderr and "resume" not in result.stderr
    assert result.stderr.count("Error:") == 1  # the final error is printed once
    with_json = synapse(
        "export", "--out", str(tmp_path / "o"), "--backend", plain_web_server, "--token", "t",
        "--json",
    )
    assert json_error(with_json)["code"] == "not_a_backend"


# -- --out -------------------------------------------------------------------------------------


def test_out_under_a_file_is_a_usage_error_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = synapse("export", "--out", "./afile/sub", *EMULATOR, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    assert "'afile' is a file" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize(("out", "expected"), [("/dev/null", "is not a folder"), ("", "empty")])
def test_out_that_is_a_device_or_empty_is_a_usage_error(
    tmp_path: Path, out: str, expected: str
) -> None:
    result = synapse("export", "--out", out, *EMULATOR, "--json", cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    assert expected in str(json_error(result)["message"])
    assert "pydantic" not in result.stderr and "errors.pydantic.dev" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # '' did not export into the current folder


def _unprivileged() -> tuple[str, ...]:
    """The command prefix that runs a child as ``nobody`` (the test runs as root)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv to run the export as an unprivileged user")
    prefix = (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import synapse_sdk.cli"],
        capture_output=True, check=False, timeout=60,
    )
    if probe.returncode != 0:
        pytest.skip("the unprivileged user cannot load this Python environment (not readable)")
    return prefix


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder any user can enter (pytest's own are private to the user running it)."""
    path = Path(tempfile.mkdtemp(prefix="synapse-perm-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for sub in path.rglob("*"):
            sub.chmod(0o755)
        shutil.rmtree(path)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize(
    "where", ["new-folder", "existing-folder", "unreachable"]
)
def test_out_without_write_permission_is_a_clear_permission_error(
    shared_dir: Path, where: str
) -> None:
    locked = shared_dir / "locked"
    locked.mkdir(mode=0o700 if where == "unreachable" else 0o555)
    locked.chmod(0o700 if where == "unreachable" else 0o555)
    prefix: tuple[str, ...] = _unprivileged() if os.geteuid() == 0 else ()
    out = locked if where == "existing-folder" else locked / "sub"
    result = synapse("export", "--out", str(out), *EMULATOR, "--json", prefix=prefix)
    assert result.returncode == EXIT_ABORTED
    assert json_error(result)["code"] == "EXPORT_FAILED_PERMISSION"
    assert "Permission denied" in result.stderr
    assert list(locked.iterdir()) == []  # nothing half-created


def test_out_on_a_read_only_file_system_is_a_clear_error(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs unshare as root to mount a read-only file system")
    mount = tmp_path / "ro"
    mount.mkdir()
    script = (
        f'mount -t tmpfs -o ro tmpfs "{mount}" && exec "{sys.executable}" -c "$0" "$@"'
    )
    probe = subprocess.run(
        [unshare, "--mount", "sh", "-c", f'mount -t tmpfs -o ro tmpfs "{mount}"'],
        capture_output=True, check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {probe.stderr!r}")
    result = subprocess.run(
        [unshare, "--mount", "sh", "-c", script, LAUNCH, "export", "--out",
         str(mount / "sub"), *EMULATOR, "--json"],
        capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "SYNAPSE_LANGUAGE": "en"},
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == EXIT_ABORTED, result.stderr
    assert json_error(result)["code"] == "EXPORT_FAILED_PERMISSION"
    assert "Read-only file system" in result.stderr


# -- tokens and languages ----------------------------------------------------------------------


def test_a_pasted_token_with_a_trailing_newline_works(tmp_path: Path) -> None:
    with Emulator(items=5) as emu:
        result = synapse(
            "export", "--out", str(tmp_path), "--backend", emu.url,
            env={"SYNAPSE_TOKEN": f"  {emu.token}\n"},
        )
    assert result.returncode == EXIT_OK, result.stderr


def test_a_non_ascii_token_is_a_usage_error_saying_tokens_are_ascii(tmp_path: Path) -> None:
    result = synapse(
        "export", "--out", str(tmp_path / "o"), "--backend", "http://127.0.0.1:9",
        "--token", "tök€n",
    )
    assert result.returncode == EXIT_USAGE
    assert "tokens are ASCII" in result.stderr
    assert "Export failed" not in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("tag", "hint"), [("kr", "did you mean 'ko'?"), ("xx", "")])
def test_an_unknown_language_is_never_taken_silently(tmp_path: Path, tag: str, hint: str) -> None:
    result = synapse("export", "--out", str(tmp_path), *EMULATOR, "--lang", tag)
    assert result.returncode == EXIT_OK
    assert f"unknown language '{tag}'; using en" in result.stderr
    assert hint in result.stderr
    assert "Export completed." in result.stderr


def test_usage_errors_speak_korean(tmp_path: Path) -> None:
    result = synapse("export", "--out", "/dev/null", *EMULATOR, "--lang", "ko")
    assert result.returncode == EXIT_USAGE
    assert "사용법: synapse export" in result.stderr
    assert "오류: '--out' 값이 올바르지 않습니다" in result.stderr
    assert "Usage:" not in result.stderr and "Error:" not in result.stderr


def test_the_lock_error_is_said_once(tmp_path: Path) -> None:
    import fcntl

    job = tmp_path / ".synapse-export" / "tasks"
    job.mkdir(parents=True)
    with open(job / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = synapse("export", "--out", str(tmp_path), *EMULATOR)
    assert result.returncode == EXIT_ABORTED
    assert result.stderr.count("Another export is running") == 1
    assert result.stderr.count("another export") == 0


# -- resume does not trust damaged files -------------------------------------------------------


def test_a_rerun_repairs_a_truncated_original_and_an_emptied_record(tmp_path: Path) -> None:
    first = synapse("export", "--out", str(tmp_path), "--items", "12", "--faults", "none")
    assert first.returncode == EXIT_OK, first.stderr
    tasks = tmp_path / "tasks"
    record = json.loads((tasks / "3.json").read_text())
    original = tasks / record["original"]["file"]
    whole = original.read_bytes()
    original.write_bytes(whole[: len(whole) // 2])  # truncated: its SHA-256 no longer matches
    (tasks / "5.json").write_text("{}")  # a record replaced by an empty object
    second = synapse("export", "--out", str(tmp_path), "--items", "12", "--faults", "none",
                     "--json")
    assert second.returncode == EXIT_OK, second.stderr
    summary = json.loads(second.stdout)
    assert (summary["exported"], summary["skipped"], summary["failed"]) == (2, 10, 0)
    assert original.read_bytes() == whole
    assert json.loads((tasks / "5.json").read_text())["id"] == 5
    wide = {"COLUMNS": "200"}
    third = synapse("export", "--out", str(tmp_path), "--items", "12", "--faults", "none",
                    env=wide)
    assert third.returncode == EXIT_OK
    assert "12 items already exported are kept; 0 missing or damaged" in third.stderr
    (tasks / "5.json").unlink()
    fourth = synapse("export", "--out", str(tmp_path), "--items", "12", "--faults", "none",
                     env=wide)
    assert "11 items already exported are kept; 1 missing or damaged" in fourth.stderr
