"""``synapse export``: exit codes, languages, JSON output, secrets, and a SIGKILL mid-export."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from synapse_sdk.cli import main
from synapse_sdk.cli.export import (
    _LABELS,
    EXIT_AUTH,
    EXIT_ITEMS_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    _progress,
    _step_stop,
)
from synapse_sdk.emulator import Emulator, FaultProfile
from synapse_sdk.exceptions import (
    BackendAuthenticationError,
    BackendError,
    BackendRateLimitError,
    BackendServiceUnavailableError,
)
from synapse_sdk.plugins.actions.export.action import ExportProgress
from synapse_sdk.plugins.ledger import Ledger
from synapse_sdk.storage.errors import StorageAccessDeniedError

BAD_TOKEN = "emu_definitely-not-the-right-token"


def _invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(main, ["export", *args], env={"SYNAPSE_LANGUAGE": "", **(env or {})})


def _json_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if not p.name.endswith(".original.json"))


def test_embedded_emulator_exports_the_demo_project(tmp_path: Path) -> None:
    result = _invoke("--out", str(tmp_path), "--items", "40", "--faults", "none")
    assert result.exit_code == EXIT_OK, result.output
    assert "embedded emulator" in result.stderr
    assert "Export completed." in result.stderr
    assert "Export summary" in result.stdout
    assert "━" not in result.output  # no progress bar when not a terminal
    assert len(_json_files(tmp_path / "tasks")) == 40


def test_json_output_is_one_parseable_object(tmp_path: Path) -> None:
    result = _invoke(
        "--out", str(tmp_path), "--items", "30", "--faults", "none", "--target", "ground-truths",
        "--json",
    )
    assert result.exit_code == EXIT_OK, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["exit_code"] == 0
    assert (data["target"], data["exported"], data["failed"]) == ("ground-truths", 30, 0)
    assert "job_report" not in data  # no --job-id: no job
    assert result.stderr == ""  # nothing but JSON, and nothing on the console


def test_korean(tmp_path: Path) -> None:
    result = _invoke("--out", str(tmp_path), "--items", "20", "--faults", "none", "--lang", "ko")
    assert result.exit_code == EXIT_OK, result.output
    assert "내보내기 요약" in result.stdout
    assert "내보내기를 완료했습니다." in result.stderr
    assert "내장 에뮬레이터" in result.stderr


def test_items_that_stay_failed_give_their_own_exit_code(tmp_path: Path) -> None:
    result = _invoke(
        "--out", str(tmp_path), "--items", "200", "--faults", "none,permanent_failure_rate=0.05",
        "--json",
    )
    assert result.exit_code == EXIT_ITEMS_FAILED, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["exit_code"] == EXIT_ITEMS_FAILED
    assert data["failed"] > 0
    assert data["failed_by_code"] == {"item_corrupted": data["failed"]}
    assert data["exported"] + data["failed"] == 200


@pytest.mark.parametrize(
    ("lang", "expected"),
    [("en", "authentication was rejected"), ("ko", "인증에 실패했습니다")],
)
def test_bad_token_is_a_clear_message_and_exit_4(tmp_path: Path, lang: str, expected: str) -> None:
    with Emulator(items=10) as emu:
        result = _invoke(
            "--out", str(tmp_path), "--backend", emu.url, "--token", BAD_TOKEN, "--lang", lang,
            "--tenant", emu.tenant,
        )
    assert result.exit_code == EXIT_AUTH, result.output
    assert expected in result.stderr
    assert "Traceback" not in result.output
    assert BAD_TOKEN not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_bad_token_with_json_reports_the_error_as_json(tmp_path: Path) -> None:
    with Emulator(items=10) as emu:
        result = _invoke(
            "--out", str(tmp_path), "--backend", emu.url, "--json",
            env={"SYNAPSE_TOKEN": BAD_TOKEN, "SYNAPSE_TENANT": emu.tenant},
        )
    assert result.exit_code == EXIT_AUTH
    data = json.loads(result.stdout)
    assert data == {
        "ok": False,
        "exit_code": EXIT_AUTH,
        "error": {
            "code": "EXPORT_FAILED_AUTHENTICATION",
            "message": data["error"]["message"],
            "step": "fetch",
        },
    }
    assert BAD_TOKEN not in result.output


def test_token_from_the_environment_is_used_and_never_echoed(tmp_path: Path) -> None:
    with Emulator(items=15) as emu:
        result = _invoke(
            "--out", str(tmp_path), "--backend", emu.url,
            env={"SYNAPSE_TOKEN": emu.token, "SYNAPSE_TENANT": emu.tenant},
        )
        token = emu.token
    assert result.exit_code == EXIT_OK, result.output
    assert token not in result.output
    assert len(_json_files(tmp_path / "tasks")) == 15


@pytest.mark.parametrize(
    "args",
    [
        ["--backend", "http://127.0.0.1:9", "--token", "t", "--faults", "heavy"],
        ["--backend", "http://127.0.0.1:9", "--token", "t", "--items", "5"],
        ["--backend", "http://127.0.0.1:9"],
        ["--faults", "no-such-profile"],
        ["--lang", "!!"],
        ["--target", "projects"],
        ["--items", "0"],
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = _invoke("--out", str(tmp_path), *args, env={"SYNAPSE_TOKEN": ""})
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.output


def test_backend_without_a_tenant_is_a_usage_error_naming_both_ways(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SYNAPSE_TENANT"}
    env |= {"SYNAPSE_TOKEN": "syn_not-checked", "SYNAPSE_LANGUAGE": "en"}
    done = subprocess.run(
        _export_command(tmp_path / "out", "http://127.0.0.1:9"),
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "--tenant CODE or SYNAPSE_TENANT" in done.stderr
    assert "syn_not-checked" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_out_must_be_a_folder(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    result = _invoke("--out", str(path), "--items", "5", "--faults", "none")
    assert result.exit_code == EXIT_USAGE


def test_progress_bar_renders_on_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    progress = _progress(console, "Exporting tasks", 10, True)
    assert progress is not None
    progress.start()
    progress.update_from(ExportProgress("main", exported=6, skipped=1, failed=0, pending=3,
                                        total=None))
    progress.stop()
    assert "7/10" in buffer.getvalue()
    assert _progress(console, "x", 10, False) is None


def test_progress_bar_takes_the_total_once_listing_gave_it() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    progress = _progress(console, "Exporting tasks", None, True)
    assert progress is not None
    progress.start()
    progress.update_from(ExportProgress("main", exported=3, skipped=0, failed=0, pending=0,
                                        total=None))
    progress.update_from(ExportProgress("retry", exported=8, skipped=0, failed=1, pending=3,
                                        total=12))
    progress.stop()
    assert "9/12" in buffer.getvalue()


# -- SIGKILL mid-export, then a rerun ---------------------------------------------------------


def _export_command(out: Path, url: str, *extra: str) -> list[str]:
    code = "import sys; from synapse_sdk.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "export", "--out", str(out), "--backend", url, *extra]


def _wait_for_files(folder: Path, count: int, proc: subprocess.Popen[Any], limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if folder.is_dir() and len(_json_files(folder)) >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"the export ended (exit {proc.returncode}) before it could be killed")
        time.sleep(0.02)  # polling a subprocess, not waiting for an effect to happen
    pytest.fail("the export wrote too few files in time")


def test_sigkill_mid_export_then_rerun_gives_exactly_once_output(tmp_path: Path) -> None:
    items = 300
    # Latency keeps the first run going long enough to be killed in the middle.
    slow = FaultProfile(latency=(0.01, 0.02))
    out = tmp_path / "out"
    with Emulator(items=items, faults=slow) as emu:
        env = {**os.environ, "SYNAPSE_TOKEN": emu.token, "SYNAPSE_TENANT": emu.tenant,
               "SYNAPSE_LANGUAGE": "en"}
        first = subprocess.Popen(
            _export_command(out, emu.url), env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_files(out / "tasks", 40, first, limit=30)
            os.kill(first.pid, signal.SIGKILL)
        finally:
            first.kill()
            first.wait()
        assert first.returncode == -signal.SIGKILL
        done_before = len(_json_files(out / "tasks"))
        assert done_before < items, "the first run finished before the kill"
        rerun = subprocess.run(
            _export_command(out, emu.url, "--json"), env=env, capture_output=True, text=True,
            timeout=120,
        )
    assert rerun.returncode == EXIT_OK, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["exported"] + summary["skipped"] == items
    # Marks follow the files in groups of 25, and 4 workers may have been mid-item.
    assert summary["skipped"] >= done_before - 25 - 4
    target = out / "tasks"
    names = sorted(p.name for p in target.iterdir())
    assert not [n for n in names if n.startswith(".")], "temporary files left behind"
    records = _json_files(target)
    assert sorted(int(p.stem) for p in records) == list(range(1, items + 1))
    for path in records:
        record = json.loads(path.read_bytes())  # every JSON parses: no half file
        assert (target / record["original"]["file"]).stat().st_size == record["original"]["size"]
    assert len(names) == 2 * items
    with Ledger(out / ".synapse-export" / "tasks") as ledger:
        ledger_summary = ledger.summary()
    assert (ledger_summary.exported, ledger_summary.pending, ledger_summary.failed) == (items, 0, 0)


# -- filters ----------------------------------------------------------------------------------


def _cli(*args: str, language: str = "en") -> subprocess.CompletedProcess[str]:
    code = "import sys; from synapse_sdk.cli import main; sys.exit(main())"
    env = {**os.environ, "SYNAPSE_LANGUAGE": language, "SYNAPSE_TOKEN": ""}
    return subprocess.run(
        [sys.executable, "-c", code, "export", *args], env=env, capture_output=True, text=True,
        timeout=180, check=False,
    )


def _one_line(text: str) -> str:
    """Output unwrapped (rich wraps long lines at the terminal width)."""
    return " ".join(line.strip() for line in text.splitlines())


def test_filter_exports_exactly_the_selected_items_and_a_rerun_nothing(tmp_path: Path) -> None:
    from synapse_sdk.emulator.store import attributes

    wanted = {
        i for i in range(1, 81)
        if (found := attributes(0, "assignments", i))["status_label"] in ("completed", "skipped")
        and found["user"] in (1, 2, 3, 4)
    }
    args = ["--out", str(tmp_path), "--items", "80", "--faults", "none", "--target",
            "assignments", "--filter", "status_label=completed,skipped", "--filter", "users=1,2",
            "--filter", "users=3,4", "--json"]
    first = _cli(*args)
    assert first.returncode == EXIT_OK, first.stderr
    assert json.loads(first.stdout)["exported"] == len(wanted)
    assert {int(p.stem) for p in _json_files(tmp_path / "assignments")} == wanted
    again = _cli(*args)
    assert again.returncode == EXIT_OK, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["exported"], summary["skipped"]) == (0, len(wanted))
    other = _cli(*args[:-7], "--filter", "status_label=stand_by")  # the same folder
    assert other.returncode == EXIT_USAGE
    shown = _one_line(other.stderr)
    assert "was started with the filter status_label=completed,skipped users=1,2,3,4, not " \
           "status_label=stand_by" in shown
    assert "Traceback" not in other.stderr + other.stdout
    assert {int(p.stem) for p in _json_files(tmp_path / "assignments")} == wanted


@pytest.mark.parametrize(
    ("args", "language", "expected"),
    [
        (["--filter", "colour=red"], "en",
         "'colour' is not a filter of tasks; accepted: has_data, is_discarded, project, schema"),
        (["--filter", "colour=red"], "ko",
         "tasks에 쓸 수 없는 필터입니다: --filter 'colour'. 쓸 수 있는 필터: has_data"),
        (["--filter", "project"], "en", "--filter 'project' is not key=value"),
        (["--filter", "=3"], "en", "is not key=value"),
        (["--filter", "per_page=3"], "en", "'per_page' is not a filter of tasks"),
        (["--filter", "project=seven"], "en", "--filter project: 'seven' is not an integer"),
        (["--filter", "project=1", "--filter", "project=2"], "en", "given twice"),
        (["--target", "assignments", "--filter", "status_review=done"], "en",
         "'done' is not one of: completed, in_progress, rejected, skipped, stand_by"),
        (["--target", "assignments", "--filter", "created_after=yesterday"], "ko",
         "--filter created_after의 값이 올바르지 않습니다: 'yesterday' (필요한 값: 시간대를 "
         "포함한 RFC 3339 날짜·시각(예: 2026-01-01T00:00:00Z))"),
        (["--target", "assignments", "--filter", "users=1,x"], "ko",
         "--filter users의 값이 올바르지 않습니다: '1,x' (필요한 값: 정수, 여러 개는 쉼표로 구분)"),
    ],
)
def test_a_bad_filter_is_a_usage_error_without_traceback(
    tmp_path: Path, args: list[str], language: str, expected: str
) -> None:
    done = _cli("--out", str(tmp_path / "out"), "--items", "5", *args, language=language)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert expected in _one_line(done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()  # refused before anything started


# -- the resume hint only when a rerun can help -------------------------------------------------


def _stopped_by(cause: BaseException) -> Exception:
    from synapse_sdk.plugins.action import ActionStepError
    from synapse_sdk.plugins.actions.export.failure_classifier import classify_export_error

    try:
        try:
            raise cause
        except BaseException as exc:
            raise ActionStepError("fetch", "ExportAction", classify_export_error(exc)) from exc
    except ActionStepError as stop:
        return stop


@pytest.mark.parametrize(
    ("cause", "hinted"),
    [
        (BackendServiceUnavailableError("down", status_code=503), True),
        (BackendRateLimitError("slow down", status_code=429), True),
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (BackendError("bad page", error_code="malformed_response"), False),
        (BackendError("too big", error_code="response_too_large"), False),
        (StorageAccessDeniedError("AccessDenied"), False),
        (BackendAuthenticationError("no", status_code=401), False),
    ],
)
def test_a_rerun_is_suggested_only_when_something_transient_stopped_the_export(
    cause: BaseException, hinted: bool
) -> None:
    stop = _step_stop(_stopped_by(cause), "http://127.0.0.1:9", "en", _LABELS["en"])
    assert (stop.hint is not None) is hinted
    if hinted:
        assert stop.hint == "Run the same command again to resume; exported items are kept."


# -- --job-id: the export reports to its backend job -----------------------------------------------


@pytest.mark.parametrize("how", ["option", "environment"])
def test_job_id_reports_the_export_to_the_backend_job(tmp_path: Path, how: str) -> None:
    from synapse_sdk.clients.backend_v2 import BackendV2Client
    from synapse_sdk.config import SDKConfig
    from synapse_testkit.cli import run_synapse

    with Emulator(items=25) as emu:
        job_id = emu.create_job()
        given = ["--job-id", job_id] if how == "option" else []
        result = run_synapse(
            "export", "--out", str(tmp_path), "--backend", emu.url, *given,
            env={"SYNAPSE_TOKEN": emu.token, "SYNAPSE_TENANT": emu.tenant,
                 **({"SYNAPSE_JOB_ID": job_id} if how == "environment" else {})},
        )
        assert result.returncode == EXIT_OK, result.stderr
        with BackendV2Client(
            SDKConfig(), base_url=emu.url, token=emu.token, tenant=emu.tenant
        ) as client:
            job = client.transport.request("GET", f"/v2/jobs/{job_id}/").json()["data"]
        logs = emu.state.jobs.logs(job_id)
    assert job["status"] == "SUCCEEDED"
    assert job["progress_record"]["current_progress"]["exported"] == 25
    assert job["metrics_record"]["record"]["steps"]["export"]["failed"] == 0
    assert logs[-1]["data"]["key"] == "EXPORT_COMPLETED" and logs[-1]["level"] == "success"
    assert emu.token not in json.dumps([job, logs])


@pytest.mark.parametrize("known", [True, False])
def test_json_and_the_summary_say_what_reached_the_job(tmp_path: Path, known: bool) -> None:
    from synapse_testkit.cli import run_synapse

    with Emulator(items=12) as emu:
        job_id = emu.create_job() if known else "00000000-0000-0000-0000-000000000000"
        env = {"SYNAPSE_TOKEN": emu.token, "SYNAPSE_TENANT": emu.tenant}
        args = ("export", "--backend", emu.url, "--job-id", job_id)
        as_json = run_synapse(*args, "--out", str(tmp_path / "a"), "--json", env=env)
        korean = run_synapse(*args, "--out", str(tmp_path / "b"), "--lang", "ko", env=env)
        stored = len(emu.state.jobs.logs(job_id)) if known else 0
    assert as_json.returncode == korean.returncode == EXIT_OK, as_json.stderr + korean.stderr
    report = json.loads(as_json.stdout)["job_report"]
    local = len((tmp_path / "a/.synapse-export/tasks/job.log.jsonl").read_text().splitlines())
    if known:  # both runs reported to the one job
        assert report == {"job_id": job_id, "sent": local, "dropped": 0, "unconfirmed": 0,
                          "unsent": 0}
        assert stored == 2 * local
        assert f"작업 {job_id}: 메시지 {local}건을 보냈습니다." in korean.stdout.splitlines()
    else:  # refused at once: every message stays in the job log only
        assert report == {"job_id": job_id, "sent": 0, "dropped": local, "unconfirmed": 0,
                          "unsent": local}
        line = next(ln for ln in korean.stdout.splitlines() if ln.startswith("작업 "))
        assert line.startswith(f"작업 {job_id}: 메시지 0건을 보냈고 {local}건은 보내지 못했습니다(")


def test_job_id_with_the_embedded_emulator_and_a_bad_job_id(tmp_path: Path) -> None:
    job_id = "3f2c9a4e-1b7d-4c55-9a0e-2d6f8b1c7e90"
    result = _invoke("--out", str(tmp_path), "--items", "10", "--faults", "none",
                     "--job-id", job_id)
    assert result.exit_code == EXIT_OK, result.output
    local = (tmp_path / ".synapse-export/tasks/job.log.jsonl").read_text().splitlines()
    assert f"Job {job_id}: {len(local)} messages sent." in result.stdout  # the emulator made it
    bad = _invoke("--out", str(tmp_path), "--job-id", "not-a-uuid", "--lang", "ko")
    assert bad.exit_code == EXIT_USAGE and "작업 ID가 아닙니다" in bad.output


def test_a_job_the_backend_does_not_know_is_noted_and_the_export_still_succeeds(
    tmp_path: Path,
) -> None:
    with Emulator(items=10) as emu:
        result = _invoke(
            "--out", str(tmp_path), "--backend", emu.url,
            "--job-id", "00000000-0000-0000-0000-000000000000",
            env={"SYNAPSE_TOKEN": emu.token, "SYNAPSE_TENANT": emu.tenant},
        )
    assert result.exit_code == EXIT_OK, result.output
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("Job "))
    assert line.startswith("Job 00000000-0000-0000-0000-000000000000: 0 messages sent; ")
    assert "could not be sent (the job log in" in line
    assert len(_json_files(tmp_path / "tasks")) == 10
