"""``synapse classify`` and ``synapse messages``, run as the installed ``synapse`` command on a
file of real tracebacks (exceptions raised for real in this test, formatted by ``traceback``)."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import httpx
import pytest

from synapse_sdk.cli.classify import split_records
from synapse_sdk.exceptions import BackendError
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode

SYNAPSE = Path(sys.executable).parent / "synapse"
_HANGUL = re.compile("[가-힣]")


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SYNAPSE_LANGUAGE"}
    env.update(PYTHONUTF8="1", COLUMNS="200", NO_COLOR="1")
    done = subprocess.run(
        [str(SYNAPSE), *args], input=stdin, capture_output=True, timeout=60, env=env
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def _formatted(call: Callable[[], object]) -> str:
    try:
        call()
    except BaseException as exc:
        return "".join(traceback.format_exception(exc))
    raise AssertionError("expected the call to raise")


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def _convert_step() -> None:
    try:
        json.loads("<html>502</html>")
    except ValueError as exc:
        raise RuntimeError("step 'convert' failed") from exc


def _implicit_context() -> None:
    record: dict[str, object] = {}
    try:
        record["annotations"]
    except KeyError:
        raise ValueError("could not convert record 7")  # noqa: B904 - the implicit chain


def _group() -> None:
    errors: list[Exception] = []
    for path in ("/nonexistent/a.json", "/nonexistent/b.json"):
        try:
            Path(path).read_text()
        except OSError as exc:
            errors.append(exc)
    raise ExceptionGroup("2 files failed", errors)


@pytest.fixture(scope="module")
def tracebacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log file: real tracebacks of every chain shape, log lines, blank lines."""
    out = StringIO()
    port = _closed_port()
    with httpx.Client(trust_env=False) as client:
        out.write(_formatted(lambda: client.get(f"http://127.0.0.1:{port}/v2/tasks/", timeout=5)))
    out.write("\n")
    out.write(_formatted(_convert_step))
    out.write(_formatted(_implicit_context))
    out.write(_formatted(_group))
    out.write("2024-05-01 10:00:00 INFO export started\n\n")
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    log = logging.getLogger("test_cli_classify")
    log.addHandler(handler)
    log.propagate = False
    try:
        raise BackendError('bulk fetch failed: {"error": {"code": "partial_failure"}}')
    except BackendError:
        log.exception("bulk fetch failed")
    log.removeHandler(handler)
    out.write("\nhttpx.HTTPStatusError: Client error '429 Too Many Requests' for url 'http://x/'\n")
    path = tmp_path_factory.mktemp("logs") / "export.log"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


EXPECTED_CODES = [
    ("traceback", "EXPORT_FAILED_SERVER_UNREACHABLE"),
    ("traceback", "EXPORT_FAILED_MALFORMED_DATA"),
    ("traceback", "EXPORT_FAILED_INVALID_KEY"),
    ("traceback", "EXPORT_FAILED_FILE_NOT_FOUND"),
    ("line", None),
    ("traceback", "EXPORT_FAILED_BATCH_PARTIAL"),
    ("line", "EXPORT_FAILED_RATE_LIMITED"),
]


def test_json_lines_on_real_tracebacks(tracebacks: Path) -> None:
    done = run("classify", "--json", str(tracebacks))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(row["kind"], row["code"]) for row in rows] == EXPECTED_CODES
    first = rows[0]
    assert first["source"] == str(tracebacks) and first["line"] == 1
    assert first["level"] == "error" and first["retry"] == "backoff_then_retry"
    assert first["exception"] == "httpx.ConnectError: [Errno 111] Connection refused"
    partial = rows[5]
    assert partial["level"] == "warning" and partial["retry"] == "retry_failed_items"
    assert rows[1]["exception"] == "RuntimeError: step 'convert' failed"
    lines = tracebacks.read_text().split("\n")
    for row in rows:
        assert lines[row["line"] - 1].strip()
    # The summary table goes to stderr, so stdout stays pure JSON lines.
    assert "EXPORT_FAILED_SERVER_UNREACHABLE" in done.stderr and "total" in done.stderr


def test_text_output_and_summary_table(tracebacks: Path) -> None:
    done = run("classify", str(tracebacks))
    assert done.returncode == 0, done.stderr
    first = f"{tracebacks}:1: EXPORT_FAILED_SERVER_UNREACHABLE [error] Export failed: the server"
    assert first in done.stdout
    assert "EXPORT_FAILED_BATCH_PARTIAL [warning]" in done.stdout
    assert "unclassified" in done.stdout
    summary = done.stdout[done.stdout.index("export failure codes"):]
    assert re.search(r"EXPORT_FAILED_RATE_LIMITED\s+│\s+error\s+│\s+1", summary)
    assert re.search(r"total\s+│\s+│\s+7", summary)


def test_korean_messages(tracebacks: Path) -> None:
    done = run("classify", "--json", "--lang", "ko-KR", "--no-summary", str(tracebacks))
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows[0]["message"] == (
        "내보내기 실패: 서버에 연결할 수 없습니다. 서버 주소와 네트워크를 확인하세요."
    )
    assert all(_HANGUL.search(row["message"]) for row in rows if row["code"])
    assert done.stderr == ""


def test_language_from_the_environment(tracebacks: Path) -> None:
    env = {**os.environ, "SYNAPSE_LANGUAGE": "ko_KR.UTF-8", "PYTHONUTF8": "1"}
    done = subprocess.run(
        [str(SYNAPSE), "classify", "--json", "--no-summary", str(tracebacks)],
        capture_output=True, timeout=60, env=env, text=True, encoding="utf-8",
    )
    assert _HANGUL.search(json.loads(done.stdout.splitlines()[0])["message"])


def test_other_category_and_stdin(tracebacks: Path) -> None:
    done = run("classify", "--json", "--category", "upload", "-", stdin=tracebacks.read_bytes())
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows[0]["source"] == "<stdin>"
    assert rows[0]["code"] == "UPLOAD_FAILED_SERVER_UNREACHABLE"
    assert rows[5]["code"] == "UPLOAD_FAILED_BATCH_PARTIAL"
    no_args = run("classify", "--json", "--category", "train", stdin=b"CUDA out of memory\n")
    assert json.loads(no_args.stdout)["code"] == "TRAIN_FAILED_OUT_OF_MEMORY"


def test_step_name_is_filled_in(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    log.write_text("ActionStepError: step 'save_files' failed\n")
    row = json.loads(run("classify", "--json", "--no-summary", str(log)).stdout)
    assert row["code"] == "EXPORT_FAILED_STEP"
    assert row["message"] == "Export failed at the 'save_files' step."


def test_missing_file_is_a_clear_usage_error(tmp_path: Path) -> None:
    done = run("classify", str(tmp_path / "nope.log"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_directory_is_a_clear_usage_error(tmp_path: Path) -> None:
    done = run("classify", str(tmp_path))
    assert done.returncode == 2
    assert "is a directory" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_unreadable_file_is_a_clear_error() -> None:
    # Reading /proc/self/mem at offset 0 fails with EIO, even for root.
    done = run("classify", "/proc/self/mem")
    assert done.returncode != 0
    assert "Could not open file" in done.stderr and "/proc/self/mem" in done.stderr
    assert "Traceback" not in done.stderr


def test_binary_garbage_is_survived(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(
        random.Random(3).randbytes(20000)
        + b"\x00\xff\xfe[bold]x[/]\x1b[31m\nTraceback (most recent call last):\n\xff\n"
    )
    done = run("classify", str(garbage))
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert "total" in done.stdout
    as_json = run("classify", "--json", str(garbage))
    assert as_json.returncode == 0
    for line in as_json.stdout.splitlines():
        json.loads(line)


def test_bad_language_is_a_usage_error(tracebacks: Path) -> None:
    done = run("classify", "--lang", "not a tag!", str(tracebacks))
    assert done.returncode == 2 and "not a language tag" in done.stderr


def test_messages_lists_every_code_with_level_and_template() -> None:
    done = run("messages", "--category", "export", "--lang", "ko", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["code"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert set(rows) == {code.value for code in ExportLogMessageCode}
    partial = rows["EXPORT_FAILED_BATCH_PARTIAL"]
    assert partial["level"] == "warning"
    assert partial["v2"] == ["partial_failure"]
    assert partial["retry"] == "retry_failed_items"
    assert partial["language"] == "ko" and _HANGUL.search(partial["template"])
    assert rows["EXPORT_FILES_SAVED"]["template"] == "파일 {count}개를 저장했습니다."
    assert rows["EXPORT_COMPLETED"]["retry"] is None


def test_messages_table_and_failures_only() -> None:
    done = run("messages", "--category", "inference", "--failures-only")
    assert done.returncode == 0, done.stderr
    assert "INFERENCE_FAILED_MODEL_NOT_LOADED" in done.stdout and "model_not_loaded" in done.stdout
    assert "INFERENCE_COMPLETED" not in done.stdout.replace("INFERENCE_COMPLETED_", "")
    assert run("messages", "--category", "nope").returncode == 2


def test_help_lists_the_subcommands() -> None:
    done = run("--help")
    assert "classify" in done.stdout and "messages" in done.stdout


# --- the record splitter, in process --------------------------------------------------------------


def test_split_records_chains_groups_and_lines() -> None:
    text = (
        _formatted(_convert_step)
        + _formatted(_implicit_context)
        + "\n\nplain line\n   \n"
        + _formatted(_group)
        + "2024-05-01 ERROR after the group\n"
    )
    records = split_records(text)
    assert [(r.kind, r.summary) for r in records] == [
        ("traceback", "RuntimeError: step 'convert' failed"),
        ("traceback", "ValueError: could not convert record 7"),
        ("line", "plain line"),
        (
            "traceback",
            "FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/b.json'",
        ),
        ("line", "2024-05-01 ERROR after the group"),
    ]
    chained = records[0].message_lines
    assert chained[0].startswith("json.decoder.JSONDecodeError: Expecting value")
    assert chained[-1] == "RuntimeError: step 'convert' failed"
    assert not any("File " in line for r in records for line in r.message_lines)
    group = records[3].message_lines
    assert group[0] == "ExceptionGroup: 2 files failed (2 sub-exceptions)"
    assert len(group) == 3


def test_split_records_merges_the_logger_line_and_multiline_messages() -> None:
    text = (
        "ERROR:root:export failed\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "httpx.HTTPStatusError: Client error '404 Not Found' for url 'http://x/'\n"
        "For more information check: https://developer.mozilla.org/404\n"
        "WARNING next record\n"
    )
    records = split_records(text)
    assert [r.line for r in records] == [1, 6]
    assert records[0].message_lines == [
        "ERROR:root:export failed",
        "httpx.HTTPStatusError: Client error '404 Not Found' for url 'http://x/'",
        "For more information check: https://developer.mozilla.org/404",
    ]
    assert records[0].summary.startswith("httpx.HTTPStatusError")


def test_split_records_on_nothing_and_on_a_bare_header() -> None:
    assert split_records("") == []
    assert split_records("\n \n\r\n") == []
    [record] = split_records("Traceback (most recent call last):\n")
    assert record.kind == "traceback" and record.message == "" and record.summary == ""


def test_credentials_in_the_input_are_masked(tmp_path: Path) -> None:
    log = tmp_path / "secrets.log"
    log.write_text(
        "httpx.HTTPStatusError: Client error '401' (Authorization: Bearer eyJ.abc.def)\n"
        "RuntimeError: connect failed token=s3cr3t-value api_key: 'AKIA1234' password=hunter2\n"
    )
    done = run("classify", "--json", "--no-summary", str(log))
    for secret in ("eyJ.abc.def", "s3cr3t-value", "AKIA1234", "hunter2"):
        assert secret not in done.stdout
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert "Bearer ***" in rows[0]["exception"]
    assert "token=***" in rows[1]["exception"] and "password=***" in rows[1]["exception"]
    text = run("classify", "--no-summary", str(log)).stdout
    assert "hunter2" not in text and "eyJ.abc.def" not in text
