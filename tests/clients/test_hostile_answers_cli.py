"""A redirect, a too-large body and a malformed body each end ``synapse export`` with their own
message (``EXPORT_FAILED_REDIRECT_REFUSED``, ``_RESPONSE_TOO_LARGE``, ``_MALFORMED_RESPONSE``),
not the bare "Export failed."; the CLI runs as a subprocess against the raw hostile server on
127.0.0.1 (the before -> after table is in docs/reliability.md).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hostile_server import Request, head, hostile_server, send_all

from synapse_sdk.cli.export import _LABELS
from synapse_sdk.clients import BackendV2Client
from synapse_sdk.config import SDKConfig
from synapse_sdk.exceptions import BackendError
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode as E
from synapse_sdk.plugins.log_messages import resolve_log_message

TOKEN = "answers-test-SECRET-token-0123456789"
CLI = "from synapse_sdk.cli import main; main()"


def _fixed(status: int, body: bytes, headers: dict[str, str]) -> Any:
    def answer(request: Request, conn: socket.socket) -> None:
        send_all(conn, head(status, {"Content-Length": str(len(body)), **headers}) + body)

    return answer


def _declares_64_mib(request: Request, conn: socket.socket) -> None:
    send_all(conn, head(200, {"Content-Length": str(64 << 20)}) + b'{"data": [')


def _export(url: str, out: Path, language: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYNAPSE_TOKEN": TOKEN, "SYNAPSE_LANGUAGE": language}
    return subprocess.run(
        [sys.executable, "-c", CLI, "export", "--backend", url, "--out", str(out),
         "--retry-rounds", "0"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def _error_line(output: str) -> str:
    """The error message, unwrapped (rich wraps long lines at the terminal width)."""
    return " ".join(line.strip() for line in output.splitlines())


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (_fixed(302, b"", {"Location": "http://127.0.0.1:9/v2/tasks/"}),
         E.EXPORT_FAILED_REDIRECT_REFUSED),
        (_declares_64_mib, E.EXPORT_FAILED_RESPONSE_TOO_LARGE),
        (_fixed(200, b"<html>hello</html>", {"Content-Type": "text/html"}),
         E.EXPORT_FAILED_MALFORMED_RESPONSE),
    ],
    ids=["redirect", "too-large", "malformed"],
)
@pytest.mark.parametrize("language", ["en", "ko"])
def test_each_hostile_answer_gets_its_own_message(
    answer: Any, code: E, language: str, tmp_path: Path
) -> None:
    with hostile_server(answer) as server:
        done = _export(server.url, tmp_path / "out", language)
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(server.requests) == 1  # none of the three is retried
    shown = _error_line(done.stdout + done.stderr)
    assert resolve_log_message(code, language).text in shown
    assert resolve_log_message(E.EXPORT_FAILED, language).text not in shown
    assert _LABELS[language]["resume"] not in shown  # a rerun would stop the same way
    assert "SECRET" not in shown


def test_a_redirect_is_not_followed_and_carries_its_code() -> None:
    with hostile_server(_fixed(200, b'{"data": []}', {})) as elsewhere:
        moved = _fixed(307, b"", {"Location": f"{elsewhere.url}/v2/tasks/"})
        with hostile_server(moved) as server, BackendV2Client(
            SDKConfig(retry_policy=None), base_url=server.url, token=TOKEN
        ) as client, pytest.raises(BackendError) as info:
            client.tasks.list_page()
    assert info.value.error_code == "redirect_refused"
    assert info.value.status_code == 307
    assert elsewhere.requests == []  # the token never went to the Location
