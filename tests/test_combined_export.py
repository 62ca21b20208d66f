"""The round's export options together, as a user runs them: ``synapse export`` as a subprocess
on the session's local Ray instance (``--executor ray --workers 2``), with ``--filter``,
``--response-mode presigned``, streamed originals bounded by ``--max-original-bytes``,
``--job-id``, ``--lang ko`` and ``--json``, writing to moto's S3 server; killed mid-run, resumed,
then run again. Exactly once, nothing rerun, and a planted token reaches none of what the run
leaves behind (stdout/stderr, the job on the backend, ``export_report.json``, the job log and
ledger, Ray's session logs).
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

from synapse_sdk.cli.export import EXIT_OK
from synapse_sdk.emulator import Emulator, FaultProfile
from synapse_sdk.emulator.store import attributes
from synapse_sdk.plugins.ledger import Ledger
from synapse_testkit.s3 import S3, aws_env

pytest.importorskip("ray", reason="Ray has no wheel for this Python or is not installed")
pytest.importorskip("s3fs", reason="the s3 extra is not installed")
pytestmark = pytest.mark.slow

TOKEN = "syn_planted-combined-export-token-0123456789"
JOB_ID = "3f2c9a4e-1b7d-4c55-9a0e-2d6f8b1c7e90"
ITEMS = 160
ORIGINAL = 64 * 1024
_CLI = (sys.executable, "-c", "import sys; from synapse_sdk.cli import main; sys.exit(main())")


def _command(url: str, out: str) -> list[str]:
    return [
        *_CLI, "export", "--backend", url, "--out", out, "--target", "assignments",
        "--executor", "ray", "--workers", "2", "--filter", "status_label=completed,skipped",
        "--response-mode", "presigned", "--max-original-bytes", "1M", "--job-id", JOB_ID,
        "--lang", "ko", "--json",
    ]


def _run(command: list[str], env: dict[str, str]) -> tuple[dict[str, Any], str]:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == EXIT_OK, done.stderr
    return json.loads(done.stdout), done.stdout + done.stderr


def _ray_session_logs() -> list[Path]:
    import ray

    node = ray._private.worker._global_node  # the session's files: the only way to reach them
    logs = Path(node.get_session_dir_path()) / "logs"
    return [p for p in logs.rglob("*") if p.is_file()]


def test_every_option_together_killed_resumed_and_rerun_exactly_once_without_the_token(
    ray_address: str, moto_server: str, tmp_path: Path
) -> None:
    wanted = {
        i for i in range(1, ITEMS + 1)
        if attributes(0, "assignments", i)["status_label"] in ("completed", "skipped")
    }
    bucket = f"combined-{os.getpid()}"
    store = S3(moto_server, bucket, aws_env(moto_server))
    store.client().create_bucket(Bucket=bucket)
    faults = FaultProfile(partial_failure_rate=0.1, latency=(0.01, 0.02), seed=5)
    with Emulator(items=ITEMS, faults=faults, token=TOKEN, original_bytes=ORIGINAL) as emu:
        emu.create_job(job_id=JOB_ID)
        env = {
            **os.environ, **store.env, "XDG_STATE_HOME": str(tmp_path / "state"),
            "SYNAPSE_TOKEN": TOKEN, "SYNAPSE_TENANT": emu.tenant, "RAY_ADDRESS": ray_address,
        }
        command = _command(emu.url, f"s3://{bucket}/out")
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        try:
            store.wait_for("out/assignments/", 20, first)
            os.kill(first.pid, signal.SIGKILL)
        finally:
            first.kill()
            killed_out, killed_err = first.communicate()
        assert first.returncode == -signal.SIGKILL
        assert store.count("out/assignments/") < 2 * len(wanted), "it finished before the kill"
        resumed, resumed_text = _run(command, env)
        rerun, rerun_text = _run(command, env)
        job = emu.state.jobs.detail(JOB_ID)
        job_logs = emu.state.jobs.logs(JOB_ID)
    assert resumed["exported"] + resumed["skipped"] == len(wanted)
    assert (resumed["executor"], resumed["workers"], resumed["failed"]) == ("ray", 2, 0)
    assert (rerun["exported"], rerun["skipped"], rerun["failed"]) == (0, len(wanted), 0)
    objects = store.objects("out/")
    report = json.loads(objects.pop("out/export_report.json"))
    assert (report["ok"], report["skipped"], report["failed"]["count"]) == (True, len(wanted), 0)
    records = {int(k.rsplit("/", 1)[1][:-5]): v for k, v in objects.items() if k.endswith(".json")}
    assert set(records) == wanted and len(objects) == 2 * len(wanted)  # a record, an original
    for record in map(json.loads, records.values()):
        original = objects[f"out/assignments/{record['original']['file']}"]
        assert len(original) == record["original"]["size"] == ORIGINAL
    state = tmp_path / "state" / "synapse-sdk" / "export"
    (folder,) = state.iterdir()
    with Ledger(folder / "assignments") as ledger:
        counts = ledger.summary()
    assert (counts.exported, counts.pending, counts.failed) == (len(wanted), 0, 0)
    assert job is not None and job["status"] == "SUCCEEDED"
    assert job_logs[-1]["data"]["key"] == "EXPORT_COMPLETED"
    # The planted token: nowhere the run wrote or printed, nowhere Ray logged.
    texts = {
        "stdout/stderr": (killed_out + killed_err).decode() + resumed_text + rerun_text,
        "the backend job": json.dumps([job, job_logs]),
        "the S3 output": b"".join(store.objects("out/").values()).decode("latin-1"),
    }
    secret = TOKEN.encode()
    leaks = [name for name, text in texts.items() if TOKEN in text or TOKEN[4:20] in text]
    leaks += [str(p) for p in state.rglob("*") if p.is_file() and secret in p.read_bytes()]
    leaks += [str(p) for p in _ray_session_logs() if secret in p.read_bytes()]
    assert leaks == []
