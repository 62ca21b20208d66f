"""Fault soak: ``synapse export`` under ~20 % faults, killed with SIGKILL again and again.

The soak itself -- the in-process emulator with its seeded fault profile, the export run as a
``synapse export`` subprocess, the seeded kill moments, the memory readings and every check at
the end (nothing lost, nothing duplicated, no stray file, ledger, summary and emulator in
agreement) -- lives in ``tests/synapse_testkit/soak.py``, where its docstring tells it in full;
``tests/reliability/test_soak.py`` runs it small. This script is its command line and report:
one soak per size (a smaller baseline first, to show memory stays flat), a table, and an exit
status of 1 when anything was lost or duplicated (or another check failed), else 0.

Usage::

    python benchmarks/soak_export.py                 # 100 000 items, 10 kills (~13 min, 2 cores)
    python benchmarks/soak_export.py --quick         # 5 000 items, 3 kills
    python benchmarks/soak_export.py --items 20000 --kills 5 --seed 3 --json soak.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

# The soak's core is shared with the test suite, which keeps its helpers in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from synapse_testkit.soak import SoakConfig, SoakResult, soak

# -- the report --------------------------------------------------------------------------------


def table(results: list[SoakResult]) -> str:
    """The summary table, one column per soak."""
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, value: Callable[[SoakResult], object]) -> None:
        rows.append((label, [str(value(r)) for r in results]))

    def fmt(n: int) -> str:
        return f"{n:,}".replace(",", " ")

    row("items", lambda r: fmt(r.items))
    row("kills survived", lambda r: f"{r.kills}/{r.kills_requested}")
    row("runs", lambda r: len(r.runs))
    row("runs stopped by outages (exit 1)", lambda r: sum(x.exit_code == 1 for x in r.runs))
    row("exported", lambda r: fmt(r.verdict.exported))
    codes = sorted({code for r in results for code in r.verdict.failed_by_code})
    if not codes:
        row("reported failed", lambda r: 0)
    for code in codes:
        row(f"reported failed: {code}", _failed_with(code))
    row("lost", lambda r: r.verdict.lost)
    row("duplicated", lambda r: r.verdict.duplicated)
    row("failed without a code", lambda r: r.verdict.failed_without_code)
    row("stray / partial files", lambda r: r.verdict.stray_files)
    row("bad records", lambda r: r.verdict.bad_records)
    row("ledger / summary / emulator mismatches", lambda r: " / ".join(str(n) for n in (
        r.verdict.ledger_mismatches, r.verdict.summary_mismatches, r.verdict.emulator_mismatches)))
    row("peak RSS of an export (max)", lambda r: f"{r.peak_rss_mb:.1f} MB")
    row("wall time of the runs", lambda r: f"{r.wall_seconds:.0f} s")
    row("  + seeding, checking", lambda r: f"{r.seed_seconds:.0f} s, {r.verify_seconds:.0f} s")
    row("requests sent (all)", lambda r: fmt(r.requests.get("requests", 0)))
    row("  API (list + bulk fetch)", lambda r: fmt(r.requests.get("api requests", 0)))
    row("  original downloads", lambda r: fmt(r.requests.get("file downloads", 0)))
    row("  429 rate limited", lambda r: fmt(r.requests.get("status 429", 0)))
    row("  503 outage", lambda r: fmt(r.requests.get("fault outage", 0)))
    row("  dropped connections", lambda r: fmt(
        r.requests.get("fault drop_reset", 0) + r.requests.get("fault drop_truncated", 0)))
    row("  207 partial failures", lambda r: fmt(r.requests.get("status 207", 0)))
    row("item fetches failed in 207s", lambda r: "{} of {} ({:.1%})".format(
        fmt(r.requests.get("item fetches failed", 0)), fmt(r.requests.get("item fetches", 0)),
        r.requests.get("item fetches failed", 0) / max(1, r.requests.get("item fetches", 0))))
    row("verdict", lambda r: "OK" if r.ok else "FAILED")
    width = max(len(label) for label, _ in rows)
    cols = [max(len(values[i]) for _, values in rows) for i in range(len(results))]
    lines = []
    for label, values in rows:
        cells = "  ".join(v.rjust(cols[i]) for i, v in enumerate(values))
        lines.append(f"{label:<{width}}  {cells}")
    return "\n".join(lines)


def _failed_with(code: str) -> Callable[[SoakResult], object]:
    return lambda result: result.verdict.failed_by_code.get(code, 0)


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=None, help="items (default 100 000)")
    parser.add_argument("--kills", type=int, default=None, help="SIGKILLs (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, faults and kills")
    parser.add_argument("--faults", default=None, metavar="OVERRIDES",
                        help="fault overrides, e.g. 'drop_rate=0.1,rate_limit=50/10'")
    parser.add_argument("--rate", type=float, default=15.0, help="rate limit, requests/s")
    parser.add_argument("--burst", type=int, default=5, help="rate-limit burst")
    parser.add_argument("--outage-every", type=float, default=None,
                        help="seconds between outage windows (default 45; --quick 10)")
    parser.add_argument("--outage-length", type=float, default=1.5, help="seconds per outage")
    parser.add_argument("--jitter", type=float, default=0.3,
                        help="max random delay between a kill's trigger and the kill")
    parser.add_argument("--baseline-items", type=int, default=None,
                        help="items of the smaller soak for the memory comparison "
                        "(default a twentieth, at least 1 000; 0: none)")
    parser.add_argument("--quick", action="store_true", help="5 000 items, 3 kills")
    parser.add_argument("--json", dest="json_out", type=Path, default=None, metavar="OUT",
                        help="write a machine-readable summary to OUT")
    parser.add_argument("--workdir", type=Path, default=None, help="keep everything here")
    args = parser.parse_args(argv)
    items = args.items or (5_000 if args.quick else 100_000)
    kills = args.kills if args.kills is not None else (3 if args.quick else 10)
    baseline = (
        args.baseline_items if args.baseline_items is not None else max(1_000, items // 20)
    )
    outage_every = args.outage_every or (10.0 if args.quick else 45.0)
    sizes = ([baseline] if 0 < baseline < items else []) + [items]
    results: list[SoakResult] = []
    for size in sizes:
        print(f"\n== soak: {size} items, {kills} kills, seed {args.seed} ==", flush=True)
        config = SoakConfig(
            items=size, kills=kills, seed=args.seed, faults=args.faults, rate=args.rate,
            burst=args.burst, outage_every=outage_every, outage_length=args.outage_length,
            jitter=args.jitter,
            workdir=None if args.workdir is None else args.workdir / f"soak-{size}",
        )
        result = soak(config, log=lambda text: print(text, flush=True))
        results.append(result)
        for line in result.verdict.examples + result.problems:
            print(f"  ! {line}", flush=True)
    print()
    print(table(results))
    if len(results) == 2:
        small, large = results
        print(
            f"memory: peak RSS {small.peak_rss_mb:.1f} MB at {small.items} items, "
            f"{large.peak_rss_mb:.1f} MB at {large.items} items "
            f"({large.peak_rss_mb / max(small.peak_rss_mb, 1e-9):.2f}x for "
            f"{large.items / small.items:.0f}x the items)"
        )
    if args.json_out is not None:
        data = {"results": [r.as_dict() for r in results]}
        args.json_out.write_text(json.dumps(data, indent=2, default=str) + "\n")
    failed = [r for r in results if not r.ok]
    lost = sum(r.verdict.lost + r.verdict.duplicated for r in results)
    print(f"lost or duplicated: {lost}; verdict: {'FAILED' if failed else 'OK'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
