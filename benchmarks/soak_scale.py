"""Soak: the export on Ray under faults, with workers and drivers killed, exactly once.

One emulator (real clock) serves ``--items`` tasks with their originals under about 20 %
faults (``--faults``: 15 % of item fetches fail retryably in 207 answers, 3 % of requests get
a gateway error and 2 % a dropped connection, downloads included).
``synapse export --executor ray`` runs as a driver subprocess against one local Ray instance
this script starts. While it runs, the script SIGKILLs ``--worker-kills`` worker
actors (their processes are found by Ray's process title, ``ray::ChunkWorker``) and
``--driver-kills`` drivers (each then started again over the same ``--out``), spread over the
run by the records on disk; the last driver runs to the end.

Checked at the end: every item's record and original on disk exactly once, no temporary file,
the ledger holding every id exported and nothing pending or failed: zero lost, zero duplicated.
Printed: the kills made, the wall time, the drivers' runs, the requests and re-downloads.

Usage::

    python benchmarks/soak_scale.py                    # 50 000 items
    python benchmarks/soak_scale.py --items 5000       # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_export import check_output

_CLI = (sys.executable, "-c", "import sys; from synapse_sdk.cli import main; sys.exit(main())")


def worker_pids() -> list[int]:
    """The processes of the export's worker actors on this machine (by Ray's process title)."""
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                if cmdline.read().startswith(b"ray::ChunkWorker"):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def records(folder: Path) -> int:
    """Item records on disk (``<id>.json``)."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if e.name.endswith(".json") and e.name[0] != ".")
    except FileNotFoundError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--faults", type=float, default=0.2, help="faulted share [0.2]")
    parser.add_argument("--worker-kills", type=int, default=10)
    parser.add_argument("--driver-kills", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import ray

    from synapse_sdk.emulator import Emulator, FaultProfile
    from synapse_sdk.plugins.ledger import Ledger

    # ~20 %: three quarters items failing retryably in 207s, the rest gateway errors and drops.
    profile = FaultProfile(
        seed=7,
        partial_failure_rate=args.faults * 0.75,
        gateway_error_rate=args.faults * 0.15,
        drop_rate=args.faults * 0.10,
    )
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    address = str(ray.get_runtime_context().gcs_address)
    started = time.monotonic()
    worker_kills = driver_kills = runs = 0
    with tempfile.TemporaryDirectory(prefix="soak-scale-") as tmp, Emulator(
        items=args.items, faults=profile
    ) as emu:
        out = Path(tmp) / "out"
        env = {**os.environ, "SYNAPSE_TOKEN": emu.token, "SYNAPSE_TENANT": emu.tenant,
               "SYNAPSE_LANGUAGE": "en", "RAY_ADDRESS": address}
        command = [*_CLI, "export", "--backend", emu.url, "--executor", "ray", "--workers",
                   str(args.workers), "--out", str(out), "--json"]
        # Kill points, by records on disk: workers and drivers spread over the run.
        step = args.items // (args.worker_kills + args.driver_kills + 2)
        plan = sorted(
            [(step * (i + 1), "worker") for i in range(args.worker_kills)]
            + [(int(args.items * (i + 1) / (args.driver_kills + 1.5)), "driver")
               for i in range(args.driver_kills)]
        )
        summary: dict[str, object] = {}
        while True:
            runs += 1
            errors = open(Path(tmp) / f"driver-{runs}.err", "w+")  # noqa: SIM115
            driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                      stderr=errors, text=True)
            killed_driver = False
            while driver.poll() is None:
                time.sleep(0.5)
                if not plan or records(out / "tasks") < plan[0][0]:
                    continue
                _, what = plan.pop(0)
                if what == "driver":
                    driver.send_signal(signal.SIGKILL)
                    driver.wait()
                    driver_kills += 1
                    killed_driver = True
                    break
                pids = worker_pids()
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    worker_kills += 1
                else:
                    plan.insert(0, (0, "worker"))  # none up right now: the next poll
            if killed_driver:
                continue
            stdout = driver.communicate()[0]
            errors.seek(0)
            try:
                summary = json.loads(stdout.strip().splitlines()[-1])
            except (IndexError, ValueError):
                raise SystemExit(
                    f"driver run {runs} failed (exit {driver.returncode}):\n{stdout[-2000:]}\n"
                    f"{errors.read()[-3000:]}"
                ) from None
            if driver.returncode == 0:
                break
            if runs > args.driver_kills + 3:
                raise SystemExit(f"the export did not complete: {summary}")
        downloads = Counter(r.path for r in emu.requests if r.path.startswith("/storage/"))
        api = [r for r in emu.requests if r.path.startswith("/v2/")]
        missing, extra = check_output(out, args.items)
        with Ledger(out / ".synapse-export" / "tasks") as ledger:
            state = ledger.summary()
        files = sum(1 for _ in (out / "tasks").iterdir())  # a record and an original each
    elapsed = time.monotonic() - started
    ray.shutdown()
    lost = missing
    duplicated = extra + max(0, files - 2 * args.items)
    print(f"items {args.items}, faults ~{args.faults:.0%}, {args.workers} workers")
    print(f"kills: {worker_kills} workers, {driver_kills} drivers; driver runs {runs}; "
          f"{elapsed:.0f} s ({args.items / elapsed:.0f} items/s overall)")
    failing = sum(1 for r in api if r.status is None or r.status >= 500)
    print(f"API requests {len(api)} ({failing} 5xx or dropped, "
          f"{sum(1 for r in api if r.status == 429)} 429s); downloads {sum(downloads.values())} "
          f"for {len(downloads)} originals ({sum(downloads.values()) - len(downloads)} again "
          "after a kill or a drop)")
    print(f"ledger: {state.exported} exported, {state.pending} pending, {state.failed} failed; "
          f"last run: exported {summary.get('exported')}, skipped {summary.get('skipped')}")
    print(f"lost {lost}, duplicated {duplicated}")
    ok = (lost == duplicated == 0 and state.exported == args.items and not state.pending
          and worker_kills == args.worker_kills and driver_kills == args.driver_kills)
    print("SOAK PASSED" if ok else "SOAK FAILED")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
