"""The export on a local Ray instance: exactly once, resumable, workers killed, one shared pace.

One Ray instance serves the whole session (``ray.init(num_cpus=2)``, no dashboard); the
emulator serves over a real socket on 127.0.0.1. Worker processes sleep for real (their clocks
are not the test's), so the data sets are small. Skipped, with the reason, where Ray cannot be
imported (no wheel for this Python).
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="Ray has no wheel for this Python or is not installed")

from ray import cloudpickle  # noqa: E402 - the pickler Ray sends arguments with

from synapse_sdk.cli.export import EXIT_OK  # noqa: E402
from synapse_sdk.config import RetryPolicy, SDKConfig  # noqa: E402
from synapse_sdk.emulator import Emulator, FaultProfile, RateLimit  # noqa: E402
from synapse_sdk.exceptions import AuthenticationError  # noqa: E402
from synapse_sdk.plugins.action import ActionStepError  # noqa: E402
from synapse_sdk.plugins.actions.export.action import (  # noqa: E402
    JOB_FOLDER,
    ExportAction,
    ExportProgress,
    ExportSummary,
)
from synapse_sdk.plugins.actions.export.chunks import ChunkExecutor  # noqa: E402
from synapse_sdk.plugins.actions.export.distributed import (  # noqa: E402
    PAD_ENV_VAR,
    ClientSpec,
    RayExecutor,
    SharedStorageError,
    WorkerSpec,
)
from synapse_sdk.plugins.actions.export.exporter import BaseExporter  # noqa: E402
from synapse_sdk.plugins.ledger import Ledger  # noqa: E402

_CLI = (sys.executable, "-c", "import sys; from synapse_sdk.cli import main; sys.exit(main())")


def _config(emu: Emulator) -> SDKConfig:
    policy = RetryPolicy(max_attempts=6, backoff_base=0.05, backoff_max=1.0, retry_after_max=30.0)
    return SDKConfig(
        backend_url=emu.url, token=emu.token, tenant=emu.tenant, retry_policy=policy,
        language="en",
    )


def _export(
    emu: Emulator, out: Path, executor: ChunkExecutor | None, **params: Any
) -> ExportSummary:
    on_progress = params.pop("on_progress", None)
    with ExportAction(
        {"out_dir": out, "batch_size": 20, **params}, config=_config(emu), executor=executor,
        on_progress=on_progress,
    ) as action:
        return action.run()


def _records(folder: Path) -> list[int]:
    return sorted(int(p.stem) for p in folder.glob("*.json"))


def _exactly_once(emu: Emulator, out: Path, items: int) -> None:
    """Every item's record and original once, no temporary file, every id marked exported."""
    target = out / "tasks"
    assert _records(target) == list(range(1, items + 1))
    names = [p.name for p in target.iterdir()]
    assert not [n for n in names if n.startswith(".")], "temporary files left behind"
    assert len(names) == 2 * items
    for item_id in range(1, items + 1):
        record = json.loads((target / f"{item_id}.json").read_bytes())
        assert record["id"] == item_id
        assert (target / record["original"]["file"]).stat().st_size == record["original"]["size"]
    with Ledger(out / JOB_FOLDER / "tasks") as ledger:
        summary = ledger.summary()
        assert (summary.exported, summary.pending, summary.failed) == (items, 0, 0)


def test_ray_export_is_exactly_once_and_a_rerun_exports_nothing(
    ray_address: str, tmp_path: Path
) -> None:
    faults = FaultProfile(partial_failure_rate=0.15, seed=3)
    with Emulator(items=240, faults=faults) as emu:
        first = _export(emu, tmp_path / "ray", RayExecutor(workers=2))
        downloads = Counter(r.path for r in emu.requests if r.path.startswith("/storage/"))
        ray_report = json.loads((tmp_path / "ray" / "export_report.json").read_bytes())
        again = _export(emu, tmp_path / "ray", RayExecutor(workers=2))
        local = _export(emu, tmp_path / "local", None)
    assert (first.exported, first.failed, first.executor, first.workers) == (240, 0, "ray", 2)
    assert first.retried > 0  # the partial failures rode along in later requests
    assert len(downloads) == 240 and set(downloads.values()) == {1}
    _exactly_once(emu, tmp_path / "ray", 240)
    assert (again.exported, again.skipped, again.requests) == (0, 240, 1)  # one listing page
    # The report is a local run's: the same fields, the same outcome.
    local_report = json.loads((tmp_path / "local" / "export_report.json").read_bytes())
    assert ray_report.keys() == local_report.keys()
    for key in ("target", "ok", "exported", "skipped", "failed", "repaired"):
        assert ray_report[key] == local_report[key], key
    assert (local.executor, local.workers) == ("local", 1)


def test_workers_killed_mid_run_lose_and_duplicate_nothing(
    ray_address: str, tmp_path: Path
) -> None:
    executor = RayExecutor(workers=2)
    killed: list[int] = []

    def kill_a_worker(state: ExportProgress) -> None:
        # Every 60 items settled, SIGKILL a worker (its other chunk is mid-run).
        if state.phase == "main" and state.done >= 60 * (len(killed) + 1) and len(killed) < 3:
            pids = executor.worker_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

    slow = FaultProfile(latency=(0.005, 0.01))
    with Emulator(items=300, faults=slow) as emu:
        summary = _export(
            emu, tmp_path, executor, batch_size=10, on_progress=kill_a_worker
        )
        fetched = Counter(i for r in emu.requests if r.path.endswith("/bulk-fetch/")
                          for i in r.ids or ())
    assert len(killed) == 3 and executor.replaced >= 3
    assert (summary.exported, summary.skipped, summary.failed) == (300, 0, 0)
    _exactly_once(emu, tmp_path, 300)
    assert set(fetched) == set(range(1, 301))  # some twice: their worker died mid-chunk


def test_the_workers_share_one_pace_under_a_rate_limit(ray_address: str, tmp_path: Path) -> None:
    """Two workers against a 10/s limit (burst 1) draw no more 429s than one process (with
    slack): 10 bulk fetches, about a second of pace. Each worker pacing alone would send in
    the other's slot and be rejected."""
    limited = FaultProfile(rate_limit=RateLimit(per_second=10.0, burst=1))
    runs: dict[str, ExportSummary] = {}
    for name, executor in (("local", None), ("ray", RayExecutor(workers=2))):
        with Emulator(items=60, faults=limited) as emu:
            runs[name] = _export(
                emu, tmp_path / name, executor, batch_size=6, originals=False,
                ids=list(range(1, 61)),
            )
            assert runs[name].requests == len(
                [r for r in emu.requests if r.path.startswith("/v2/")]
            )
    assert runs["local"].exported == runs["ray"].exported == 60
    # Slack for a loaded machine (a worker may use its slot late): 3 of 10 requests at most.
    assert runs["ray"].rate_limited <= runs["local"].rate_limited + 3


def test_a_local_output_is_refused_on_a_cluster_of_several_nodes(
    ray_address: str, tmp_path: Path
) -> None:
    with Emulator(items=20) as emu:
        with pytest.raises(SharedStorageError, match="3 nodes") as caught:
            _export(emu, tmp_path, RayExecutor(workers=1, nodes=lambda: 3))
        assert caught.value.nodes == 3
        assert not list((tmp_path / "tasks").glob("*.json"))
        # A mount every node shares is the operator's word.
        shared = _export(emu, tmp_path, RayExecutor(workers=1, nodes=lambda: 3,
                                                    shared_storage=True))
    assert shared.exported == 20


def test_a_step_failing_in_a_worker_fails_that_step_on_the_driver(
    ray_address: str, tmp_path: Path
) -> None:
    with Emulator(items=20) as emu:
        config = replace(_config(emu), token="syn_refused-by-the-backend")
        action = ExportAction({"out_dir": tmp_path, "ids": [1, 2, 3]}, config=config,
                              executor=RayExecutor(workers=1))
        with action, pytest.raises(ActionStepError) as caught:
            action.run()
    assert caught.value.step == "fetch"  # the worker's bulk fetch, not the driver's listing
    assert isinstance(caught.value.__cause__, AuthenticationError)
    assert "refused-by-the-backend" not in str(caught.value.__cause__)


def test_the_token_never_reaches_ray_in_clear() -> None:
    token = "syn_" + "s3cr3t-t0ken" * 3
    config = SDKConfig(backend_url="http://127.0.0.1:1", token=token, tenant="t")
    spec, pad = ClientSpec.seal(config)
    worker = WorkerSpec(spec, BaseExporter(), "/tmp/x", "tasks", "tasks", True, 4,
                        frozenset({"/v2/tasks/"}))
    for blob in (pickle.dumps(worker), cloudpickle.dumps(worker)):
        assert token.encode() not in blob
        assert token[4:12].encode() not in blob
    assert token not in repr(worker) and token not in pad
    assert spec.config.token is None
    assert spec.unseal(pad).token == token  # the worker gets it back with its pad
    with pytest.raises(ValueError):
        spec.unseal("00")


def test_cli_exports_on_ray_exactly_once_and_a_rerun_exports_nothing(
    ray_address: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [*_CLI, "export", "--executor", "ray",
               "--workers", "2", "--items", "150", "--faults", "none", "--out", str(out),
               "--json"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["SYNAPSE_LANGUAGE"] = "en"
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == EXIT_OK, first.stderr
    assert "started a local Ray instance" in first.stderr
    summary = json.loads(first.stdout)
    assert (summary["exported"], summary["executor"], summary["workers"]) == (150, "ray", 2)
    assert _records(out / "tasks") == list(range(1, 151))
    rerun = subprocess.run(command, env={**env, "RAY_ADDRESS": ray_address},
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == EXIT_OK, rerun.stderr
    assert "started a local Ray instance" not in rerun.stderr
    assert (json.loads(rerun.stdout)["exported"], json.loads(rerun.stdout)["skipped"]) == (0, 150)
    assert PAD_ENV_VAR not in first.stderr + rerun.stderr


def test_a_killed_driver_then_a_rerun_completes_exactly_once(
    ray_address: str, tmp_path: Path
) -> None:
    items = 300
    out = tmp_path / "out"
    slow = FaultProfile(latency=(0.01, 0.02))
    with Emulator(items=items, faults=slow) as emu:
        env = {**os.environ, "SYNAPSE_TOKEN": emu.token, "SYNAPSE_TENANT": emu.tenant,
               "SYNAPSE_LANGUAGE": "en", "RAY_ADDRESS": ray_address}
        command = [*_CLI, "export", "--backend", emu.url,
                   "--executor", "ray", "--workers", "2", "--out", str(out)]
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            _wait_for_records(out / "tasks", 40, first)
            os.kill(first.pid, signal.SIGKILL)
        finally:
            first.kill()
            first.wait()
        assert first.returncode == -signal.SIGKILL
        assert len(_records(out / "tasks")) < items, "the first run ended before the kill"
        rerun = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True,
                               timeout=300)
    assert rerun.returncode == EXIT_OK, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["exported"] + summary["skipped"] == items
    _exactly_once(emu, out, items)


def _wait_for_records(folder: Path, count: int, proc: subprocess.Popen[bytes]) -> None:
    """Poll until ``folder`` holds ``count`` records (the subprocess's progress, not a wait
    for time to pass); fail if the subprocess ends first."""
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if folder.is_dir() and len(_records(folder)) >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"the export ended (exit {proc.returncode}) before it could be killed")
        time.sleep(0.02)  # polling a subprocess
    pytest.fail("the export wrote too few records in time")


def _ray_workers() -> list[int]:
    """Process ids of this machine's Ray export workers (their title is ``ray::ChunkWorker``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::ChunkWorker"):
                found.append(int(entry.name))
    return found


def _writing_a_temp(pids: list[int], folder: Path) -> tuple[int, str] | None:
    """A worker holding a staged temporary file of ``folder`` open, and the file's name."""
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = Path(os.readlink(fd))
            except OSError:
                continue
            if target.parent == folder and target.name.endswith(".tmp"):
                return pid, target.name
    return None


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_a_worker_killed_mid_download_leaves_no_partial_original(
    ray_address: str, tmp_path: Path
) -> None:
    """SIGKILL the worker that is writing a large original: the staged temp never lands under
    the final name, and the chunk's rerun exports every item exactly once."""
    import threading

    items, size = 6, 24 * 1024 * 1024
    target = tmp_path / "tasks"
    killed: list[tuple[int, int]] = []  # (pid, bytes of the original written when killed)
    done = threading.Event()

    def kill_the_writer() -> None:
        # Watches the workers (not a wait for time to pass): the first one seen holding a
        # staged original open is killed mid-write.
        while not killed and not done.wait(0.005):  # polling the workers' open files
            found = _writing_a_temp(_ray_workers(), target)
            try:
                written = (target / found[1]).stat().st_size if found is not None else 0
            except OSError:  # renamed into place meanwhile
                continue
            if found is not None and 0 < written < size:
                os.kill(found[0], signal.SIGKILL)
                killed.append((found[0], written))

    executor = RayExecutor(workers=2)
    watcher = threading.Thread(target=kill_the_writer, daemon=True)
    with Emulator(items=items, original_bytes=size) as emu:
        watcher.start()
        try:
            summary = _export(emu, tmp_path, executor, batch_size=2)
        finally:
            done.set()
            watcher.join()
        downloads = Counter(r.path for r in emu.requests if r.path.startswith("/storage/"))
    assert killed, "no worker was seen writing an original"
    assert executor.replaced >= 1
    assert (summary.exported, summary.failed) == (items, 0)
    _exactly_once(emu, tmp_path, items)  # sizes match, no temp left, ledger exported once
    originals = [p for p in target.iterdir() if not p.name.endswith(".json")]
    assert all(p.stat().st_size == size for p in originals)
    assert sum(downloads.values()) > items  # the killed download was made again
