#!/usr/bin/env python3
"""Run the coverage-guided fuzz harnesses (``fuzz/fuzz_*.py``) for a fixed time each.

    python fuzz/run.py --seconds 60                  # every harness, one after the other
    python fuzz/run.py --seconds 10 envelopes render # some of them
    python fuzz/run.py --seconds 60 --json fuzz.json # also write a JSON summary

Each harness runs in its own subprocess (``python fuzz/fuzz_NAME.py`` with libFuzzer flags) on
a fresh temporary corpus seeded from ``fuzz/seeds/NAME/`` (read only), with crash artifacts
written to a temporary directory, never into the repository. The runner reads libFuzzer's
closing ``Done N runs in M second(s)`` line and its ``stat::`` lines, prints a table (inputs
tried, exec/s, coverage, crashes) and a total, and exits non-zero when a harness crashed
(a non-zero exit, an ``==ERROR``, a Python traceback, a crash/timeout/OOM artifact) or tried no
input at all. A crashing input is kept (its path is printed) so it can be replayed with
``python fuzz/fuzz_NAME.py PATH``. Nothing here needs to know atheris beyond it being installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = HERE / "seeds"

_DONE = re.compile(r"^Done (\d+) runs in (\d+) second", re.MULTILINE)
_STAT = re.compile(r"^stat::(\w+):\s*(\d+)", re.MULTILINE)
_PULSE = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", re.MULTILINE)
# At a line start only: libFuzzer's dictionary lines may quote any string the harness compared.
_CRASH = re.compile(
    r"^(?:==\d+== ?ERROR|ERROR: libFuzzer|\s*=== Uncaught Python exception"
    r"|Traceback \(most recent call last\):|Fatal Python error)",
    re.MULTILINE,
)
_ARTIFACT_KINDS = ("crash-", "timeout-", "oom-", "leak-")


@dataclass
class Result:
    """What one harness run gave."""

    name: str
    seconds: float = 0.0
    inputs: int = 0
    exec_per_sec: float = 0.0
    coverage: int = 0
    features: int = 0
    corpus: int = 0
    peak_rss_mb: int = 0
    crashes: int = 0
    exit_code: int | None = None
    problem: str = ""
    artifacts: list[str] = field(default_factory=list)
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.crashes == 0 and self.inputs > 0


def harnesses() -> dict[str, Path]:
    """Harness name (file stem without ``fuzz_``) → path."""
    return {path.stem.removeprefix("fuzz_"): path for path in sorted(HERE.glob("fuzz_*.py"))}


def parse_output(result: Result, output: str) -> None:
    """Fill ``result`` from libFuzzer's output."""
    done = _DONE.findall(output)
    stats = {name: int(value) for name, value in _STAT.findall(output)}
    pulses = _PULSE.findall(output)
    if done:
        result.inputs = int(done[-1][0])
        result.seconds = float(done[-1][1])
    elif "number_of_executed_units" in stats:
        result.inputs = stats["number_of_executed_units"]
    elif pulses:
        result.inputs = int(pulses[-1][0])
    if pulses:
        _, cov, ft, corp = pulses[-1]
        result.coverage, result.features, result.corpus = int(cov), int(ft), int(corp)
    result.peak_rss_mb = stats.get("peak_rss_mb", 0)
    if "average_exec_per_sec" in stats:
        result.exec_per_sec = float(stats["average_exec_per_sec"])
    elif result.seconds:
        result.exec_per_sec = result.inputs / result.seconds


def run_one(
    name: str, path: Path, seconds: int, rss_limit_mb: int, timeout: int, keep: bool
) -> Result:
    """Run one harness for ``seconds`` and read what it did."""
    result = Result(name)
    work = Path(tempfile.mkdtemp(prefix=f"synapse-fuzz-{name}-"))
    corpus = work / "corpus"
    artifacts = work / "artifacts"
    corpus.mkdir()
    artifacts.mkdir()
    command = [
        sys.executable,
        str(path),
        f"-max_total_time={seconds}",
        f"-rss_limit_mb={rss_limit_mb}",
        f"-timeout={timeout}",
        f"-artifact_prefix={artifacts}{os.sep}",
        "-print_final_stats=1",
        str(corpus),
    ]
    seeds = SEEDS / name
    if seeds.is_dir():
        command.append(str(seeds))  # read only: libFuzzer writes new inputs to the first dir
    log_path = work / "log.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work,
            start_new_session=True,
        )  # fmt: skip
        try:
            result.exit_code = process.wait(timeout=seconds + timeout + 120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: only the harness
            process.wait()
            result.problem = "did not stop in time"
    elapsed = time.monotonic() - started
    output = log_path.read_text("utf-8", errors="replace")
    parse_output(result, output)
    if not result.seconds:
        result.seconds = round(elapsed, 1)
    found = sorted(p for p in artifacts.iterdir() if p.name.startswith(_ARTIFACT_KINDS))
    markers = sorted({match.group().strip() for match in _CRASH.finditer(output)})
    if found or markers or result.exit_code != 0 or result.problem:
        result.crashes = max(1, len(found))
        if not result.problem:
            result.problem = (
                f"exit code {result.exit_code}" if result.exit_code else ", ".join(markers)
            ) or "crash artifact"
    if result.inputs == 0 and not result.problem:
        result.problem = "no input was tried"
    result.artifacts = [str(p) for p in found]
    if result.ok and not keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        result.log = str(log_path)
    return result


def print_table(results: list[Result]) -> None:
    header = ("harness", "seconds", "inputs tried", "exec/s", "cov", "corpus", "crashes")
    rows = [
        (
            r.name, f"{r.seconds:.0f}", f"{r.inputs:,}", f"{r.exec_per_sec:,.0f}",
            f"{r.coverage:,}", f"{r.corpus:,}", str(r.crashes),
        )
        for r in results
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells)

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    total_inputs = sum(r.inputs for r in results)
    total_seconds = sum(r.seconds for r in results)
    crashes = sum(r.crashes for r in results)
    print(
        f"total: {len(results)} harnesses, {total_inputs:,} inputs in {total_seconds:.0f} s, "
        f"{crashes} crash(es), {sum(not r.ok for r in results)} failed"
    )
    for r in results:
        if not r.ok:
            print(f"FAILED {r.name}: {r.problem}; log: {r.log}")
            for artifact in r.artifacts:
                print(f"  reproduce: {sys.executable} {harnesses()[r.name]} {artifact}")


def main(argv: list[str] | None = None) -> int:
    available = harnesses()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help=f"harnesses to run (default: all of {', '.join(available)})"
    )
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time per harness")
    parser.add_argument("--json", type=Path, help="write a JSON summary to this file")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="libFuzzer -rss_limit_mb")
    parser.add_argument("--timeout", type=int, default=30, help="seconds one input may take")
    parser.add_argument("--keep", action="store_true", help="keep corpora and logs of good runs")
    args = parser.parse_args(argv)
    if args.seconds < 1:
        parser.error("--seconds must be at least 1")
    names = [name.removeprefix("fuzz_").removesuffix(".py") for name in args.names]
    unknown = [name for name in names if name not in available]
    if unknown:
        parser.error(f"unknown harness(es) {', '.join(unknown)}; have {', '.join(available)}")
    if importlib.util.find_spec("atheris") is None:
        print("atheris is not installed: pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    results: list[Result] = []
    for name in names or list(available):
        print(f"fuzzing {name} for {args.seconds} s ...", flush=True)
        results.append(
            run_one(name, available[name], args.seconds, args.rss_limit_mb, args.timeout, args.keep)
        )
    print()
    print_table(results)
    if args.json:
        summary = {
            "seconds_per_harness": args.seconds,
            "ok": all(r.ok for r in results),
            "total_inputs": sum(r.inputs for r in results),
            "total_crashes": sum(r.crashes for r in results),
            "harnesses": [{**asdict(r), "ok": r.ok} for r in results],
        }
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
