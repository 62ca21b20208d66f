"""Export to S3 against a real S3-compatible server (moto's standalone server on loopback).

The export in-process (fake clock) for the faults the storage injects: throttling and 500s are
retried by the export's policy, access denied and a missing bucket stop the run with their
codes. The CLI as a subprocess for the rest: an export byte for byte the same as on local
disk, a SIGKILL in the middle, the resume, and a rerun that writes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile
from synapse_sdk.plugins.action import ActionStepError
from synapse_sdk.plugins.actions.export.action import ExportAction, ExportSummary
from synapse_sdk.plugins.ledger import Ledger
from synapse_sdk.storage import StorageAccessDeniedError, StorageNotFoundError
from synapse_testkit.s3 import S3, FaultProxy, aws_env

pytestmark = pytest.mark.slow


def _action(emu: Emulator, clock: FakeClock, out: str, state: Path, **params: Any) -> ExportAction:
    policy = RetryPolicy(max_attempts=4, backoff_base=0.2, backoff_max=5.0, retry_after_max=30.0)
    config = SDKConfig(
        backend_url=emu.url, token=emu.token, tenant=emu.tenant, retry_policy=policy,
        language="en",
    )
    return ExportAction(
        {"out_dir": out, "state_dir": state, "workers": 2, **params},
        config=config,
        sleep=clock.sleep,
        monotonic=clock,
        clock=clock,
    )


def _run(emu: Emulator, clock: FakeClock, out: str, state: Path, **params: Any) -> ExportSummary:
    with _action(emu, clock, out, state, **params) as action:
        return action.run()


def _local_export(emu: Emulator, clock: FakeClock, tmp_path: Path) -> dict[str, bytes]:
    out = tmp_path / "local"
    assert _run(emu, clock, str(out), tmp_path / "local-state").ok
    return {p.name: p.read_bytes() for p in (out / "tasks").iterdir()}


def test_export_to_s3_matches_the_local_export_and_resumes_by_one_listing(
    s3: S3, tmp_path: Path
) -> None:
    clock = FakeClock()
    url = f"s3://{s3.bucket}/exports/run1"
    with Emulator(items=40, clock=clock, sleep=clock.sleep, faults="none") as emu:
        local = _local_export(emu, clock, tmp_path)
        summary = _run(emu, clock, url, tmp_path / "state")
        assert (summary.exported, summary.failed, summary.ok) == (40, 0, True)
        assert summary.out_dir == url
        stored = s3.objects("exports/run1/tasks/")
        assert {k.rsplit("/", 1)[1]: v for k, v in stored.items()} == local
        # The rerun checks the 80 objects with one listing, reads none of them, writes only
        # the report.
        with FaultProxy(s3.endpoint, lambda m, p: None) as proxy:
            requests: list[tuple[str, str]] = []

            def count(method: str, path: str) -> None:
                requests.append((method, path))

            proxy.rule = lambda m, p: count(m, p)
            os.environ["AWS_ENDPOINT_URL"] = proxy.url
            again = _run(emu, clock, url, tmp_path / "state")
    assert (again.exported, again.skipped, again.failed) == (0, 40, 0)
    # The one listing, and the report: no request per item.
    assert [m for m, _ in requests] == ["GET", "PUT"], requests
    assert requests[1][1].endswith("/exports/run1/export_report.json")


def test_an_object_changed_behind_the_exports_back_is_written_again(
    s3: S3, tmp_path: Path
) -> None:
    clock = FakeClock()
    url = f"s3://{s3.bucket}/run"
    with Emulator(items=5, clock=clock, sleep=clock.sleep, faults="none") as emu:
        assert _run(emu, clock, url, tmp_path / "state").exported == 5
        key = "run/tasks/3.json"
        original = s3.objects(key)[key]
        s3.client().put_object(Bucket=s3.bucket, Key=key, Body=b"{}")  # another size
        s3.client().delete_object(Bucket=s3.bucket, Key="run/tasks/4.json")
        again = _run(emu, clock, url, tmp_path / "state")
    assert (again.exported, again.skipped) == (2, 3)
    assert s3.objects(key)[key] == original


def test_throttling_and_500s_are_retried_by_the_export_policy(s3: S3, tmp_path: Path) -> None:
    clock = FakeClock()
    seen: dict[str, int] = {}

    def faults(method: str, path: str) -> tuple[int, str] | None:
        # The first two puts of each key fail: a SlowDown, then a 500 (for every third key,
        # the other way round).
        if method != "PUT":
            return None
        tries = seen[path] = seen.get(path, 0) + 1
        if tries > 2:
            return None
        slow_first = len(seen) % 3 != 0
        return (503, "SlowDown") if (tries == 1) == slow_first else (500, "InternalError")

    url = f"s3://{s3.bucket}/faulty"
    with FaultProxy(s3.endpoint, faults) as proxy:
        os.environ["AWS_ENDPOINT_URL"] = proxy.url
        with Emulator(items=30, clock=clock, sleep=clock.sleep, faults="none") as emu:
            summary = _run(emu, clock, url, tmp_path / "state")
            local = _local_export(emu, clock, tmp_path)
    codes = {code for *_, code in proxy.injected}
    assert codes == {"SlowDown", "InternalError"}
    assert (summary.exported, summary.failed, summary.ok) == (30, 0, True), summary
    assert summary.retried > 0
    stored = s3.objects("faulty/tasks/")
    assert {k.rsplit("/", 1)[1]: v for k, v in stored.items()} == local


def test_storage_that_stays_throttled_fails_items_with_their_code(
    s3: S3, tmp_path: Path
) -> None:
    clock = FakeClock()
    url = f"s3://{s3.bucket}/throttled"

    def items_throttled(method: str, path: str) -> tuple[int, str] | None:
        if method == "PUT" and "/tasks/" in path:
            return (503, "SlowDown")
        return None

    with FaultProxy(s3.endpoint, items_throttled) as proxy:
        os.environ["AWS_ENDPOINT_URL"] = proxy.url
        with Emulator(items=3, clock=clock, sleep=clock.sleep, faults="none") as emu:
            summary = _run(emu, clock, url, tmp_path / "state", retry_rounds=2)
    assert (summary.exported, summary.failed) == (0, 3)
    assert summary.failed_by_code == {"storage_throttled": 3}
    assert summary.failed_by_message == {"EXPORT_FAILED_SERVICE_UNAVAILABLE": 3}
    report = json.loads(s3.objects("throttled/export_report.json")["throttled/export_report.json"])
    assert report["failed"] == {
        "count": 3,
        "by_code": {
            "storage_throttled": {
                "message_code": "EXPORT_FAILED_SERVICE_UNAVAILABLE", "count": 3, "ids": [1, 2, 3]
            }
        },
    }


def test_access_denied_stops_the_run_with_its_code(s3: S3, tmp_path: Path) -> None:
    clock = FakeClock()
    url = f"s3://{s3.bucket}/denied"
    with FaultProxy(s3.endpoint, lambda m, p: (403, "AccessDenied") if m == "PUT" else None) as p:
        os.environ["AWS_ENDPOINT_URL"] = p.url
        with Emulator(items=5, clock=clock, sleep=clock.sleep, faults="none") as emu:
            action = _action(emu, clock, url, tmp_path / "state")
            with action, pytest.raises(ActionStepError) as info:
                action.run()
    assert info.value.step == "save"
    cause = info.value.__cause__
    assert isinstance(cause, StorageAccessDeniedError)
    assert (cause.storage_code, cause.status_code) == ("AccessDenied", 403)
    assert isinstance(cause.__cause__, PermissionError)  # s3fs's error, kept on the chain
    assert info.value.message_code is not None
    assert info.value.message_code.value == "EXPORT_FAILED_STORAGE_ACCESS_DENIED"


def test_a_missing_bucket_stops_the_run_at_initialize(s3: S3, tmp_path: Path) -> None:
    clock = FakeClock()
    with Emulator(items=5, clock=clock, sleep=clock.sleep, faults="none") as emu:
        action = _action(emu, clock, "s3://no-such-bucket-here/x", tmp_path / "state")
        with action, pytest.raises(ActionStepError) as info:
            action.run()
    assert info.value.step == "initialize"
    assert isinstance(info.value.__cause__, StorageNotFoundError)
    assert info.value.message_code is not None
    assert info.value.message_code.value == "EXPORT_FAILED_STORAGE_NOT_FOUND"


# -- the CLI as a subprocess -----------------------------------------------------------------


def _cli(out: str, *extra: str) -> list[str]:
    code = "import sys; from synapse_sdk.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "export", "--out", out, *extra]


def _cli_env(s3: S3, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **aws_env(s3.endpoint),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        "SYNAPSE_LANGUAGE": "en",
        **extra,
    }


def test_cli_export_to_s3_killed_resumed_and_rerun_exactly_once(s3: S3, tmp_path: Path) -> None:
    items = 300
    url = f"s3://{s3.bucket}/cli"
    slow = FaultProfile(latency=(0.01, 0.02))
    with Emulator(items=items, faults=slow) as emu:
        env = _cli_env(s3, tmp_path, SYNAPSE_TOKEN=emu.token)
        backend = ("--backend", emu.url)
        first = subprocess.Popen(
            _cli(url, *backend), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            s3.wait_for("cli/tasks/", 60, first, limit=60)
            os.kill(first.pid, signal.SIGKILL)
        finally:
            first.kill()
            first.wait()
        assert first.returncode == -signal.SIGKILL
        before = s3.count("cli/tasks/")
        assert before < 2 * items, "the first run finished before the kill"
        resumed = subprocess.run(
            _cli(url, *backend, "--json"), env=env, capture_output=True, text=True, timeout=180
        )
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads(resumed.stdout)
        assert summary["exported"] + summary["skipped"] == items
        assert summary["skipped"] > 0
        rerun = subprocess.run(
            _cli(url, *backend, "--json"), env=env, capture_output=True, text=True, timeout=180
        )
        assert rerun.returncode == 0, rerun.stderr
        assert (json.loads(rerun.stdout)["exported"], json.loads(rerun.stdout)["skipped"]) == (
            0,
            items,
        )
        clock = FakeClock()
        with Emulator(items=items, clock=clock, sleep=clock.sleep, faults="none") as same:
            local = _local_export(same, clock, tmp_path)
    stored = s3.objects("cli/tasks/")
    assert {k.rsplit("/", 1)[1]: v for k, v in stored.items()} == local  # whole, exactly once
    state = list((tmp_path / "xdg-state" / "synapse-sdk" / "export").iterdir())
    assert len(state) == 1 and state[0].name.startswith(f"s3-{s3.bucket}-cli-")
    with Ledger(state[0] / "tasks") as ledger:
        counts = ledger.summary()
    assert (counts.exported, counts.pending, counts.failed) == (items, 0, 0)


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "the output storage refused access"),
        ("ko", "출력 스토리지가 접근을 거부했습니다"),
    ],
)
def test_cli_access_denied_exits_1_with_a_clear_message(
    s3: S3, tmp_path: Path, lang: str, text: str
) -> None:
    deny = FaultProxy(s3.endpoint, lambda m, p: (403, "AccessDenied") if m == "PUT" else None)
    with deny as proxy:
        env = _cli_env(s3, tmp_path, AWS_ENDPOINT_URL=proxy.url, SYNAPSE_LANGUAGE=lang)
        done = subprocess.run(
            _cli(f"s3://{s3.bucket}/denied", "--items", "5", "--faults", "none", "--json",
                 "--state-dir", str(tmp_path / "state")),
            env=env, capture_output=True, text=True, timeout=120,
        )
    assert done.returncode == 1, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "EXPORT_FAILED_STORAGE_ACCESS_DENIED"
    assert text in error["message"]
    assert "Traceback" not in done.stderr
    assert (tmp_path / "state" / "tasks" / "ledger.sqlite3").is_file()


def test_cli_refuses_an_unknown_storage_scheme(tmp_path: Path) -> None:
    done = subprocess.run(
        _cli("nosuchfs://bucket/x", "--items", "5"),
        env={**os.environ, "SYNAPSE_LANGUAGE": "en"}, capture_output=True, text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unsupported storage type 'nosuchfs'" in done.stderr
