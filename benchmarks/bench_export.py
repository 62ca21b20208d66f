"""Benchmark: the export action against a naive client, under a rate limit and partial failures.

Both clients export every task of the emulator (real clock) through the same fault profile: a
per-token rate limit and 10 % of item fetches failing retryably in 207 answers. Each export
runs in its own subprocess (so its peak RSS is its own) against a fresh emulator in this
process, at two dataset sizes.

* **ours** — ``ExportAction``: bulk fetches of 200 ids, the failed ids of all answers pooled in
  the ledger and fetched again in full requests, ``Retry-After`` honoured exactly and the pace
  learned from it (``RatePacer``), output written atomically.
* **naive** — a hand-written loop a hurried user might write: the same list and bulk calls,
  but any answer other than 200 (a 207 included) makes it sleep a fixed time and send the
  *whole* batch again, ignoring ``Retry-After``; the items any attempt returned are kept.

Reported per run: items/s; our fraction of the ceiling the rate limit allows; rate-limited
requests per item against the minimum the faults force; 429s; peak RSS; and a check that every
item is on disk exactly once.

The ceiling: a client that never gets a 429 sends ``M`` rate-limited requests, where ``M`` is
the list pages (``N / 500``) plus the bulk fetches the faults force. Those are computed from the
fault profile itself (each id needs as many fetches as it takes to draw a success; 200 ids per
request), so ``M`` is a lower bound no client can beat. At ``R`` requests per second with a
burst of ``B``, no export can take less than ``(M - B) / R`` seconds: ceiling = ``N`` divided by
that. (The issue's "rate limit x 200 ids per request, minus forced retries" is the same figure
without the list pages; it is printed too.)

Original files are not rate limited; by default they are not downloaded, so the figures measure
what the benchmark is about (retries and rate limits) rather than how fast this machine's
emulator serves small files. ``--originals`` includes them.

**Storage: local disk against S3.** In the same run, the export action exports one dataset
(originals on, no faults, no rate limit: the storage is what differs) twice, each in its own
subprocess: to a local folder, and to ``s3://`` on moto's standalone S3 server, which the script
starts on loopback (``python -m moto.server``, as the tests do; the worker reaches it through the
standard ``AWS_*`` variables with ``AWS_ENDPOINT_URL``). Printed: items/s and MB/s of both, the
ratio S3/local, and a check that each output holds every record once. Needs the ``s3`` extra
and moto (the dev dependencies); ``--no-s3`` skips it, ``--s3-only`` runs only it.

**Streamed originals.** Two more runs of the export action, each worker in its own subprocess
(the emulator serving the files stays in this process, so the worker's peak RSS is the
exporter's alone):

* *memory*: items whose originals are 1 GiB each (``Emulator(original_bytes=...)``, generated
  and streamed), exported to local disk: the worker's peak RSS must stay under 150 MB however
  large the files;
* *memory, S3*: the same with originals of ``--big-s3-bytes`` (300 MiB) exported to moto's S3
  server (each one a multipart upload; ``--no-s3`` skips it, ``--s3-originals-only`` runs
  only it);
* *throughput*: the streamed path against today's in-memory one on small demo originals (no
  faults), alternating ``--rounds`` times: ``inmemory`` is the action with its save step
  replaced by the old way (the whole body read by ``Transport.request``, checked, sniffed and
  written from bytes), kept here only as the baseline. Printed: the median and best items/s
  of each and the ratios streamed/in-memory (target >= 0.95). ``--no-originals`` skips both,
  ``--originals-only`` runs only them.

Usage::

    python benchmarks/bench_export.py            # 5 000 and 20 000 items (a few minutes)
    python benchmarks/bench_export.py --quick    # 1 000 and 4 000 items
    python benchmarks/bench_export.py --s3-only --storage-items 500
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESOURCE = "tasks"
LIST_PAGE = 500
BULK_LIMIT = 200
FAILURE_RATE = 0.10


# -- the naive client (runs in a worker subprocess) --------------------------------------------


def naive_export(
    url: str, token: str, tenant: str, out: Path, originals: bool, pause: float
) -> dict[str, Any]:
    """Export every task the naive way; returns counters."""
    import httpx

    from synapse_sdk.plugins.actions.export.steps import atomic_write, convert_item

    target = out / RESOURCE
    target.mkdir(parents=True, exist_ok=True)
    headers = {"SYNAPSE-ACCESS-TOKEN": token, "SYNAPSE-Tenant": tenant}
    requests = exported = 0
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:

        def send(method: str, path: str, **kwargs: Any) -> httpx.Response:
            nonlocal requests
            while True:
                requests += 1
                try:
                    return client.request(method, path, **kwargs)
                except httpx.TransportError:
                    time.sleep(pause)

        def pages() -> Iterator[list[int]]:
            cursor = None
            while True:
                params: dict[str, Any] = {"per_page": LIST_PAGE}
                if cursor:
                    params["cursor"] = cursor
                response = send("GET", f"/v2/{RESOURCE}/", params=params)
                if response.status_code != 200:
                    time.sleep(pause)  # the naive wait: fixed, Retry-After ignored
                    continue
                body = response.json()
                yield [item["id"] for item in body["data"]]
                cursor = body["meta"]["pagination"]["next_cursor"]
                if cursor is None:
                    return

        for page in pages():
            for start in range(0, len(page), BULK_LIMIT):
                batch = page[start : start + BULK_LIMIT]
                got: dict[int, dict[str, Any]] = {}
                while len(got) < len(batch):
                    response = send("POST", f"/v2/{RESOURCE}/bulk-fetch/", json={"ids": batch})
                    if response.status_code in (200, 207):
                        for item in response.json()["data"]:
                            got.setdefault(item["id"], item)
                    if response.status_code != 200 and len(got) < len(batch):
                        time.sleep(pause)  # then the WHOLE batch again
                for item_id in batch:
                    record = convert_item(got[item_id], RESOURCE)
                    name = None
                    if originals:
                        url = got[item_id]["files_manifest"]["original"]["url"]
                        data = send("GET", url).content
                        name = record.original_name(data)
                        atomic_write(target / name, data)
                    atomic_write(target / record.json_name, record.json_bytes(name))
                    exported += 1
    return {"exported": exported, "requests_client": requests}


def ours_export(url: str, token: str, tenant: str, out: str, originals: bool) -> dict[str, Any]:
    """Export every task with the export action; returns counters."""
    from synapse_sdk.config import SDKConfig
    from synapse_sdk.plugins.actions.export.action import ExportAction

    params: dict[str, Any] = {
        "out_dir": out, "target": RESOURCE, "page_size": LIST_PAGE, "originals": originals,
    }
    config = SDKConfig(backend_url=url, token=token, tenant=tenant)
    with ExportAction(params, config=config) as action:
        summary = action.run()
    return {
        "exported": summary.exported,
        "failed": summary.failed,
        "requests_client": summary.requests,
        "retry_rounds": summary.retry_rounds,
    }


def inmemory_export(url: str, token: str, tenant: str, out: str) -> dict[str, Any]:
    """The baseline: the export action saving each original the old way, whole in memory."""
    import hashlib

    from synapse_sdk.clients._manifest import primary_file
    from synapse_sdk.config import SDKConfig
    from synapse_sdk.plugins.actions.export.action import ExportAction
    from synapse_sdk.plugins.actions.export.exporter import ExportOutput
    from synapse_sdk.plugins.actions.export.steps import ExportRecord

    class InMemoryExport(ExportAction):
        def _save_one(self, record: ExportRecord) -> tuple[str | None, bool] | None:
            entry = primary_file(record.source)
            assert entry is not None
            response = self.v2_client.transport.request(
                "GET", entry["url"], max_bytes=64 * 1024 * 1024, credentials=False
            )
            content = response.content
            if len(content) != entry["file_size"]:
                return ("size_mismatch", False)
            if hashlib.sha1(content).hexdigest() != entry["checksum"]:
                return ("checksum_mismatch", False)
            record = record.with_saved_sha256(hashlib.sha256(content).hexdigest())
            output = ExportOutput(self.storage)
            name = record.original_name(content)
            output.write(name, content)
            self.exporter.save_as_json(record, name, output)
            self._written[record.id] = output.written
            return None

    params: dict[str, Any] = {"out_dir": out, "target": RESOURCE, "page_size": LIST_PAGE}
    config = SDKConfig(backend_url=url, token=token, tenant=tenant)
    with InMemoryExport(params, config=config) as action:
        summary = action.run()
    return {"exported": summary.exported, "failed": summary.failed}


def worker(args: argparse.Namespace) -> None:
    """Run one export in this (sub)process and print its figures as one JSON line."""
    token, tenant = os.environ["BENCH_TOKEN"], os.environ["BENCH_TENANT"]
    import httpx  # noqa: F401 - imported before the clock starts, like the SDK below

    import synapse_sdk.plugins.actions.export.action  # noqa: F401
    from synapse_sdk.plugins.actions.export.distributed import peak_rss_mb

    started = time.perf_counter()
    if args.worker == "ours":
        result = ours_export(args.url, token, tenant, args.out, args.originals)
    elif args.worker == "inmemory":
        result = inmemory_export(args.url, token, tenant, args.out)
    else:
        result = naive_export(args.url, token, tenant, Path(args.out), args.originals, args.pause)
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


# -- the parent: emulator, runs, figures -----------------------------------------------------


def minimum_requests(profile: Any, items: int) -> tuple[int, int, int]:
    """(list pages, bulk fetches, item fetches) the faults force: a lower bound for any client."""
    fetches = 0
    for item_id in range(1, items + 1):
        attempt = 0
        while profile.item_unavailable(RESOURCE, item_id, attempt):
            attempt += 1
        fetches += attempt + 1
    return math.ceil(items / LIST_PAGE), math.ceil(fetches / BULK_LIMIT), fetches


def check_output(folder: Path, items: int) -> tuple[int, int]:
    """(missing, extra) item records on disk; also fails on temporary files left behind."""
    names = [p.name for p in (folder / RESOURCE).iterdir()]
    if any(n.startswith(".") for n in names):
        raise SystemExit(f"temporary files left in {folder}")
    ids = record_ids(names)
    if len(ids) != len(set(ids)):
        raise SystemExit("duplicate records")  # cannot happen on one filesystem; checked anyway
    expected = set(range(1, items + 1))
    return len(expected - set(ids)), len(set(ids) - expected)


def run_one(side: str, items: int, args: argparse.Namespace) -> dict[str, Any]:
    from synapse_sdk.emulator import Emulator, FaultProfile, RateLimit

    profile = FaultProfile(
        seed=args.seed,
        partial_failure_rate=FAILURE_RATE,
        rate_limit=RateLimit(per_second=args.rate, burst=args.burst),
    )
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as out, Emulator(
        items=items, seed=args.seed, faults=profile
    ) as emu:
        env = {**os.environ, "BENCH_TOKEN": emu.token, "BENCH_TENANT": emu.tenant}
        result = spawn_worker(side, emu.url, out, env, args, originals=args.originals)
        api = [r for r in emu.requests if not r.path.startswith(("/storage/", "/v2/files/"))]
        result["api_requests"] = len(api)
        result["rate_limited"] = sum(1 for r in api if r.status == 429)
        result["missing"], result["extra"] = check_output(Path(out), items)
        # An item reported failed with its code is accounted for; one missing without a
        # report would be lost.
        result["lost"] = result["missing"] - result.get("failed", 0)
    pages, bulk, fetches = minimum_requests(profile, items)
    minimum = pages + bulk
    result.update(
        side=side,
        items=items,
        items_per_s=items / result["seconds"],
        min_api_requests=minimum,
        forced_item_fetches=fetches,
        ceiling=items / max((minimum - args.burst) / args.rate, 1e-9),
        ceiling_bulk_only=items / max((bulk - args.burst) / args.rate, 1e-9),
    )
    result["ceiling_fraction"] = result["items_per_s"] / result["ceiling"]
    result["extra_requests"] = result["api_requests"] / minimum - 1
    return result


def spawn_worker(side: str, url: str, out: str, env: dict[str, str], args: argparse.Namespace,
                 originals: bool) -> dict[str, Any]:
    """Run one export in a worker subprocess; its figures."""
    command = [
        sys.executable, __file__, "--worker", side, "--url", url, "--out", out,
        "--pause", str(args.pause),
    ] + (["--originals"] if originals else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def record_ids(names: list[str]) -> list[int]:
    """The item ids of the record names among ``names`` (``<id>.json``)."""
    return [int(m.group(1)) for n in names if (m := re.fullmatch(r"(\d+)\.json", n))]


@contextlib.contextmanager
def moto_bucket(tmp: str) -> Iterator[tuple[dict[str, str], Any] | None]:
    """moto's server on loopback with a bucket, as the tests start them: yields the ``AWS_*``
    environment that reaches it and the bucket (``synapse_testkit.s3.S3``), or None (printed)
    when boto3, moto or s3fs is missing."""
    missing = [m for m in ("boto3", "moto", "s3fs") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"S3: skipped, {', '.join(missing)} not installed (pip install -e '.[s3]' moto)")
        yield None
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    s3kit = importlib.import_module("synapse_testkit.s3")
    with s3kit.start_moto() as endpoint:
        env = {**os.environ, **s3kit.aws_env(endpoint), "XDG_STATE_HOME": str(Path(tmp, "state"))}
        store = s3kit.S3(endpoint, "bench-export", env)
        store.client().create_bucket(Bucket=store.bucket)
        yield env, store


def s3_sizes(store: Any, prefix: str) -> dict[str, int]:
    """The objects under ``prefix`` in the bucket: name (after the prefix) -> size."""
    sizes: dict[str, int] = {}
    pages = store.client().get_paginator("list_objects_v2")
    for page in pages.paginate(Bucket=store.bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            sizes[entry["Key"].rsplit("/", 1)[1]] = entry["Size"]
    return sizes


def storage_comparison(items: int, args: argparse.Namespace) -> None:
    """The export action to local disk and to S3 (moto on loopback), same dataset; prints both
    throughputs and their ratio."""
    from synapse_sdk.emulator import Emulator

    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp, moto_bucket(tmp) as moto:
        if moto is None:
            return
        env, store = moto
        print(f"storage: {items} items with originals, no faults, local disk vs S3 (moto, "
              "loopback)")
        for where, out in (("local", str(Path(tmp, "out"))), ("s3", f"s3://{store.bucket}/out")):
            with Emulator(items=items, seed=args.seed, faults="none") as emu:
                worker_env = {**env, "BENCH_TOKEN": emu.token, "BENCH_TENANT": emu.tenant}
                result = spawn_worker("ours", emu.url, out, worker_env, args, originals=True)
            if where == "local":
                folder = Path(out, RESOURCE)
                sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
            else:
                sizes = s3_sizes(store, f"out/{RESOURCE}/")
            ids = record_ids(list(sizes))
            result.update(
                items_per_s=items / result["seconds"],
                mb_per_s=sum(sizes.values()) / 1e6 / result["seconds"],
                objects=len(sizes),
                exactly_once=sorted(ids) == list(range(1, items + 1)),
            )
            runs[where] = result
            print(
                f"  {where:<5} {result['items_per_s']:7.1f} items/s, "
                f"{result['mb_per_s']:6.2f} MB/s ({result['objects']} files, "
                f"{result['seconds']:.2f} s), peak RSS {result['peak_rss_mb']:.1f} MB, "
                f"every record exactly once: {result['exactly_once']}",
                flush=True,
            )
    ratio = runs["s3"]["items_per_s"] / runs["local"]["items_per_s"]
    print(f"  S3 / local throughput: {ratio:.2f}x")


def originals_memory(items: int, size: int, args: argparse.Namespace, s3: bool = False) -> None:
    """Peak RSS of the export action's worker exporting ``items`` originals of ``size`` bytes,
    to local disk or (``s3``) to moto's S3 server (an original of 16 MiB or more goes up as a
    multipart upload)."""
    from synapse_sdk.emulator import Emulator

    where = "S3 (moto, loopback)" if s3 else "local disk"
    with tempfile.TemporaryDirectory(prefix="bench-big-") as tmp, contextlib.ExitStack() as stack:
        env = dict(os.environ)
        out = str(Path(tmp, "out"))
        if s3:
            moto = stack.enter_context(moto_bucket(tmp))
            if moto is None:
                return
            env, store = moto
            out = f"s3://{store.bucket}/out"
        print(f"originals: {items} items of {size / 2**20:.0f} MiB each, streamed to {where}")
        with Emulator(items=items, seed=args.seed, faults="none", original_bytes=size) as emu:
            env.update(BENCH_TOKEN=emu.token, BENCH_TENANT=emu.tenant)
            result = spawn_worker("ours", emu.url, out, env, args, originals=True)
        sizes = (
            s3_sizes(store, f"out/{RESOURCE}/") if s3
            else {p.name: p.stat().st_size for p in Path(out, RESOURCE).iterdir()}
        )
        written = sum(sizes.values()) / 1e6
    print(
        f"  exported {result['exported']}, failed {result['failed']}: {written:.0f} MB in "
        f"{result['seconds']:.1f} s ({written / result['seconds']:.0f} MB/s), peak RSS "
        f"{result['peak_rss_mb']:.1f} MB (target < 150 MB)",
        flush=True,
    )


def originals_throughput(items: int, args: argparse.Namespace) -> None:
    """The streamed path against the in-memory baseline on small originals, alternating."""
    from synapse_sdk.emulator import Emulator

    print(f"originals: streamed vs in-memory, {items} items with small originals, "
          f"{args.rounds} rounds each (alternating)")
    rates: dict[str, list[float]] = {"ours": [], "inmemory": []}
    for round_number in range(args.rounds):
        for side in ("inmemory", "ours") if round_number % 2 else ("ours", "inmemory"):
            with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as out, Emulator(
                items=items, seed=args.seed, faults="none"
            ) as emu:
                env = {**os.environ, "BENCH_TOKEN": emu.token, "BENCH_TENANT": emu.tenant}
                result = spawn_worker(side, emu.url, out, env, args, originals=True)
                missing, extra = check_output(Path(out), items)
            if result["exported"] != items or missing or extra:
                raise SystemExit(f"{side}: {result}, missing {missing}, extra {extra}")
            rate = items / result["seconds"]
            rates[side].append(rate)
            print(f"  {side:<8} round {round_number + 1}: {rate:7.1f} items/s, peak RSS "
                  f"{result['peak_rss_mb']:.1f} MB", flush=True)
    for name, pick in (("median", statistics.median), ("best", max)):
        ours, baseline = pick(rates["ours"]), pick(rates["inmemory"])
        print(f"  {name}: streamed {ours:.1f} items/s, in-memory {baseline:.1f} items/s; "
              f"streamed / in-memory: {ours / baseline:.3f}x (target >= 0.95x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 000 and 4 000 items")
    parser.add_argument("--sizes", type=int, nargs=2, default=None, metavar=("SMALL", "LARGE"))
    parser.add_argument("--rate", type=float, default=5.0, help="rate limit, requests/s")
    parser.add_argument("--burst", type=int, default=5, help="rate-limit burst")
    parser.add_argument("--pause", type=float, default=0.5, help="the naive client's fixed sleep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--originals", action="store_true", help="download original files too")
    parser.add_argument("--storage-items", type=int, default=None, metavar="N",
                        help="items of the local vs S3 run (default 2000, --quick 500)")
    parser.add_argument("--no-s3", action="store_true", help="skip the local vs S3 run")
    parser.add_argument("--s3-only", action="store_true", help="only the local vs S3 run")
    parser.add_argument("--no-originals", action="store_true",
                        help="skip the streamed-originals runs (memory, throughput)")
    parser.add_argument("--originals-only", action="store_true",
                        help="only the streamed-originals runs")
    parser.add_argument("--big-bytes", type=int, default=2**30, metavar="N",
                        help="size of each original of the memory run (default 1 GiB)")
    parser.add_argument("--big-items", type=int, default=2, metavar="N",
                        help="items of the memory run (default 2)")
    parser.add_argument("--small-items", type=int, default=None, metavar="N",
                        help="items of the streamed vs in-memory run (default 2000, --quick 500)")
    parser.add_argument("--big-s3-bytes", type=int, default=300 * 2**20, metavar="N",
                        help="size of each original streamed to S3 (default 300 MiB)")
    parser.add_argument("--s3-originals-only", action="store_true",
                        help="only the large originals streamed to S3")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side (default 3)")
    parser.add_argument("--worker", choices=["ours", "naive", "inmemory"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    storage_items = args.storage_items or (500 if args.quick else 2000)
    small_items = args.small_items or (500 if args.quick else 2000)
    if args.s3_originals_only:
        originals_memory(args.big_items, args.big_s3_bytes, args, s3=True)
        return
    if args.originals_only:
        originals_memory(args.big_items, args.big_bytes, args)
        if not args.no_s3:
            originals_memory(args.big_items, args.big_s3_bytes, args, s3=True)
        originals_throughput(small_items, args)
        return
    if args.s3_only:
        storage_comparison(storage_items, args)
        return
    sizes = args.sizes or ([1000, 4000] if args.quick else [5000, 20000])
    print(
        f"export benchmark: rate limit {args.rate:g}/s (burst {args.burst}), "
        f"{FAILURE_RATE:.0%} retryable item failures, originals "
        f"{'on' if args.originals else 'off'}, naive pause {args.pause:g}s"
    )
    results = []
    for items in sizes:
        for side in ("ours", "naive"):
            result = run_one(side, items, args)
            results.append(result)
            print(
                f"  {side:<5} {items:>6} items: {result['items_per_s']:7.1f} items/s "
                f"({result['ceiling_fraction']:5.1%} of ceiling {result['ceiling']:.1f}/s), "
                f"{result['api_requests']} API requests = "
                f"{result['api_requests'] / items:.4f}/item vs minimum "
                f"{result['min_api_requests'] / items:.4f} ({result['extra_requests']:+.1%}), "
                f"{result['rate_limited']} x 429, peak RSS {result['peak_rss_mb']:.1f} MB, "
                f"reported failed {result.get('failed', 0)}, lost {result['lost']}, "
                f"duplicated {result['extra']}",
                flush=True,
            )
    ours = [r for r in results if r["side"] == "ours"]
    naive = [r for r in results if r["side"] == "naive"]
    print("summary")
    for small, large in ((ours[0], ours[-1]), (naive[0], naive[-1])):
        print(
            f"  {small['side']:<5} peak RSS {small['peak_rss_mb']:.1f} MB at {small['items']} "
            f"items, {large['peak_rss_mb']:.1f} MB at {large['items']} "
            f"({large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x for "
            f"{large['items'] / small['items']:.0f}x the items)"
        )
    for ours_run, naive_run in zip(ours, naive, strict=True):
        speedup = ours_run["items_per_s"] / naive_run["items_per_s"]
        print(
            f"  {ours_run['items']} items: ours {speedup:.1f}x the naive client's throughput with "
            f"{naive_run['api_requests'] / ours_run['api_requests']:.1f}x fewer API requests; "
            f"ours at {ours_run['ceiling_fraction']:.1%} of the ceiling "
            f"({ours_run['items_per_s'] / ours_run['ceiling_bulk_only']:.1%} of the bulk-only "
            f"ceiling), {ours_run['extra_requests']:+.1%} requests over the minimum"
        )
    lost = sum(r["lost"] + r["extra"] for r in results)
    print(f"  items lost or duplicated across all runs: {lost}")
    if not args.no_s3:
        storage_comparison(storage_items, args)
    if not args.no_originals:
        originals_memory(args.big_items, args.big_bytes, args)
        if not args.no_s3:
            originals_memory(args.big_items, args.big_s3_bytes, args, s3=True)
        originals_throughput(small_items, args)


if __name__ == "__main__":
    main()
