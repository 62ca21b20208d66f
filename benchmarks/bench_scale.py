"""Benchmark: the export on a local Ray instance with 1, 2 and 4 workers, against one process.

Every run exports the emulator's tasks with their originals (real clock) through the same fault
profile: each served request (bulk fetches and original downloads) takes ``--latency`` seconds,
as a distant backend and object store would, and the API has a per-token rate limit
(``--rate`` per second, ``--burst``). Downloads are what grows with the data and what the
workers share out; the rate limit is the ceiling they all share.

Each export runs in its own driver subprocess (so its figures are its own) against a fresh
emulator in this process; the Ray runs connect to one local Ray instance this script starts
(``ray.init(num_cpus=<cores>)``, no dashboard), so its start-up is not timed.

Reported per run: items/s over the whole run and steady (from the workers being up to the end:
a Ray run's connection and worker start-up left out); the steady ratio to the
single-worker Ray run and to the single-process export (the issue's target: ``>= 0.8 x N x``
one worker until the rate-limit ceiling); API
requests over the minimum (list pages + bulk fetches); 429 answers; peak RSS of the driver and
of each worker; and a check that every item is on disk exactly once.

Usage::

    python benchmarks/bench_scale.py                  # 2 000 and 4 000 items
    python benchmarks/bench_scale.py --quick          # 600 items
    python benchmarks/bench_scale.py --items 1000 --latency 0.05 --rate 10
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_export import check_output

RESOURCE = "tasks"
LIST_PAGE = 500


def driver(args: argparse.Namespace) -> None:
    """One export (in a subprocess): print its figures as one JSON line."""
    from synapse_sdk.config import SDKConfig
    from synapse_sdk.plugins.actions.export.action import ExportAction
    from synapse_sdk.plugins.actions.export.chunks import ChunkExecutor
    from synapse_sdk.plugins.actions.export.distributed import RayExecutor, peak_rss_mb

    config = SDKConfig(
        backend_url=args.url, token=os.environ["BENCH_TOKEN"], tenant=os.environ["BENCH_TENANT"]
    )
    executor: ChunkExecutor | None = None
    ray_executor: RayExecutor | None = None
    if args.executor == "ray":
        executor = ray_executor = RayExecutor(workers=args.workers)
    params = {"out_dir": args.out, "batch_size": args.batch, "workers": args.threads}
    started = time.perf_counter()
    with ExportAction(params, config=config, executor=executor) as action:
        summary = action.run()
    ended = time.perf_counter()
    ready = ray_executor.ready_at if ray_executor is not None else None
    result: dict[str, Any] = {
        "seconds": ended - started,
        # From the workers being up to the end: a Ray run's connection and start-up left out.
        "steady_items_per_s": summary.total / max(ended - (ready or started), 1e-9),
        "exported": summary.exported,
        "failed": summary.failed,
        "requests": summary.requests,
        "rate_limited_seen": summary.rate_limited,
        "driver_rss_mb": peak_rss_mb(),
        "worker_rss_mb": sorted(ray_executor.peak_rss_mb.values()) if ray_executor else [],
    }
    print(json.dumps(result))


def run_one(label: str, executor: str, workers: int, items: int, args: argparse.Namespace,
            ray_address: str) -> dict[str, Any]:
    from synapse_sdk.emulator import Emulator, FaultProfile, RateLimit

    profile = FaultProfile(
        latency=(args.latency, args.latency),
        rate_limit=RateLimit(per_second=args.rate, burst=args.burst),
    )
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{label}-") as out, Emulator(
        items=items, faults=profile
    ) as emu:
        env = {**os.environ, "BENCH_TOKEN": emu.token, "BENCH_TENANT": emu.tenant,
               "RAY_ADDRESS": ray_address}
        command = [
            sys.executable, __file__, "--driver", "--executor", executor, "--workers",
            str(workers), "--url", emu.url, "--out", out, "--batch", str(args.batch),
            "--threads", str(args.threads),
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{label} failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        api = [r for r in emu.requests if r.path.startswith("/v2/")]
        result["api_requests"] = len(api)
        result["rate_limited"] = sum(1 for r in api if r.status == 429)
        result["missing"], result["extra"] = check_output(Path(out), items)
    minimum = math.ceil(items / LIST_PAGE) + math.ceil(items / args.batch)
    result.update(
        label=label,
        items=items,
        items_per_s=items / result["seconds"],
        min_api_requests=minimum,
        over_minimum=result["api_requests"] - minimum,
        ceiling=items / max((minimum - args.burst) / args.rate, 1e-9),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--executor", default="local", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--items", type=int, action="append",
                        help="dataset size (repeatable) [default: 2000 and 4000]")
    parser.add_argument("--quick", action="store_true", help="600 items")
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--worker-counts", default="1,2,4", help="Ray workers per run [1,2,4]")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds each bulk fetch and download takes [0.05]")
    parser.add_argument("--rate", type=float, default=20.0, help="API requests/s allowed [20]")
    parser.add_argument("--burst", type=int, default=10, help="API burst [10]")
    parser.add_argument("--batch", type=int, default=50, help="ids per bulk fetch [50]")
    parser.add_argument("--threads", type=int, default=4,
                        help="downloads and writes at once per worker [4]")
    args = parser.parse_args()
    if args.driver:
        driver(args)
        return
    import ray

    sizes = [600] if args.quick else (args.items or [2000, 4000])
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    address = str(ray.get_runtime_context().gcs_address)
    counts = [int(n) for n in args.worker_counts.split(",")]
    print(f"cores {os.cpu_count()}, latency {args.latency}s per request, rate {args.rate}/s "
          f"burst {args.burst}, {args.batch} ids per bulk fetch, {args.threads} threads/worker")
    header = (f"{'run':<8}{'items':>7}{'s':>7}{'items/s':>9}{'steady':>8}{'x ray-1':>8}"
              f"{'x local':>8}"
              f"{'ceiling':>9}{'api':>6}{'over min':>9}{'429s':>6}{'lost':>6}"
              f"{'driver MB':>10}  worker MB")
    try:
        for items in sizes:
            print(header)
            results = [run_one("local", "local", 1, items, args, address)]
            results += [run_one(f"ray-{n}", "ray", n, items, args, address) for n in counts]
            local = results[0]["steady_items_per_s"]
            one = results[1]["steady_items_per_s"] if len(results) > 1 else local
            for r in results:
                workers = " ".join(f"{m:.0f}" for m in r["worker_rss_mb"]) or "-"
                steady = r["steady_items_per_s"]
                print(f"{r['label']:<8}{r['items']:>7}{r['seconds']:>7.1f}"
                      f"{r['items_per_s']:>9.1f}{steady:>8.1f}{steady / one:>8.2f}"
                      f"{steady / local:>8.2f}{r['ceiling']:>9.0f}"
                      f"{r['api_requests']:>6}{r['over_minimum']:>9}{r['rate_limited']:>6}"
                      f"{r['missing'] + r['extra'] - r['failed']:>6}"
                      f"{r['driver_rss_mb']:>10.0f}  {workers}")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
