"""The fault soak: ``synapse export`` under ~20 % faults, SIGKILLed again and again, resumed.

The soak serves an in-process :class:`~synapse_sdk.emulator.Emulator` on 127.0.0.1 (it lives
in this process, so it outlives every export it kills; its fault decisions are seeded, so a run
reproduces) and runs the export exactly as a user would, as a ``synapse export --out DIR
--backend URL --json`` subprocess with the token in ``SYNAPSE_TOKEN``. Each run is killed with
SIGKILL at a seeded random moment and the same command is run again (it resumes), until the
requested number of kills is done; then the export runs to completion. A run that stops on its
own (exit 1: the backend looked down during an outage window) is simply run again too.

**The fault profile** (built explicitly below and printed) makes about one item in five meet a
fault on its first try: 12 % of item fetches fail retryably in 207 answers, 0.5 % of ids are
permanently ``item_corrupted``, 4 % of served requests have their connection dropped (reset, or
cut mid-body), 0-2 ms of latency, a rate limit (429 with ``Retry-After``; tuned so the export's
steady state stays under it while the fast-forward of a resumed run runs into it) and 503
outage windows (``Retry-After`` = the time left) at regular times on the emulator clock.
``--faults`` applies overrides in the ``--faults`` syntax of the CLI (``drop_rate=0.1,
rate_limit=50/10``; a leading preset name replaces the whole profile).

**The kill moments**: the export spans ids ``1..N`` in order, so the moments are drawn (seeded)
one in each of ``--kills`` equal slices of ``[5 %, 95 %]`` of the ids; a run is killed once the
record of one of the 50 ids from its moment on exists (about that many records are on disk),
after an optional random extra delay (``--jitter``, so the kill lands in any phase of a chunk:
a download, a write, a ledger commit).

**The checks** at the end, from the output folder, the ledger, the last run's summary and the
emulator:

* every id ``1..N`` is either exported -- exactly one ``<id>.json`` whose record parses, names
  its id, carries the emulator's data, and names exactly one original file whose size and
  SHA-256 match -- or failed in the ledger *with its code*; none is both (``duplicated``),
  none is neither (``lost``);
* no stray file: no temporary ``.*.tmp`` a kill left, no original without its record, nothing
  else;
* the ledger agrees with the disk (exported == records, nothing pending), the final summary's
  ``failed_by_code`` is the ledger's and its counts add up to ``N``;
* the emulator agrees: every exported id was served by a bulk fetch and its original downloaded
  whole at least once, and the ids failed with ``item_corrupted`` are exactly those the fault
  profile corrupts.

**Memory**: the peak RSS of every export subprocess, its ``VmHWM`` (the high-water mark of its
own address space) read from ``/proc`` while it runs -- last just before the SIGKILL, or within
``POLL_SECONDS`` of a normal exit -- and the same soak at a smaller size (``--baseline-items``,
default a twentieth) to show it is flat. Not ``ru_maxrss`` (``getrusage(RUSAGE_CHILDREN)`` or
``wait4``): Linux carries the *parent's* high-water mark into a child spawned with
fork/vfork + exec, so it would report this process (the emulator) instead of the export.

``benchmarks/soak_export.py`` is the command line around :func:`soak`;
``tests/reliability/test_soak.py`` runs it small.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synapse_sdk.emulator import Emulator, FaultProfile, RequestRecord

RESOURCE = "tasks"
#: Exit codes of ``synapse export`` (see ``synapse_sdk.cli.export``).
EXIT_OK, EXIT_ABORTED, EXIT_ITEMS_FAILED = 0, 1, 3
#: A run is killed once the record of one of this many ids from its kill moment on exists.
TRIGGER_WINDOW = 50
#: How often a running export is looked at (polling the child, not waiting for an effect).
POLL_SECONDS = 0.02
#: Outage windows are laid out up to this many emulator-clock seconds.
OUTAGE_HORIZON = 3 * 3600.0

_RECORD = re.compile(r"(\d+)\.json")
_ORIGINAL_JSON = re.compile(r"(\d+)\.original\.json")
_ORIGINAL = re.compile(r"(\d+)\.([A-Za-z0-9]{1,10})")
_TEMP = re.compile(r"\..+\.tmp")


# -- configuration and the fault profile ------------------------------------------------------


@dataclass
class SoakConfig:
    """What one soak does. The defaults are the full soak."""

    items: int = 100_000
    kills: int = 10
    seed: int = 0
    #: Overrides of the soak's fault profile, in the CLI's ``--faults`` syntax.
    faults: str | None = None
    #: The rate limit: requests per second and burst, per token (list and bulk-fetch only).
    rate: float = 15.0
    burst: int = 5
    #: An outage window of ``outage_length`` seconds every ``outage_every`` seconds.
    outage_every: float = 45.0
    outage_length: float = 1.5
    #: Up to this many seconds of (seeded) random delay between a kill's trigger and the kill.
    jitter: float = 0.3
    retry_rounds: int = 6
    #: Give up after this many runs (default: kills + 20).
    max_runs: int | None = None
    #: Where the output, ledger, emulator database and run logs go (default: a temp folder).
    workdir: Path | None = None
    keep: bool = False


def build_profile(config: SoakConfig) -> FaultProfile:
    """The soak's fault profile: about one item in five meets a fault on its first try."""
    from synapse_sdk.emulator import FaultProfile, RateLimit

    windows: list[tuple[float, float]] = []
    if config.outage_every > 0 and config.outage_length > 0:
        start = config.outage_every
        while start < OUTAGE_HORIZON:
            windows.append((start, start + config.outage_length))
            start += config.outage_every
    profile = FaultProfile(
        seed=config.seed,
        partial_failure_rate=0.12,  # item_unavailable in a 207, retryable
        permanent_failure_rate=0.005,  # item_corrupted in a 207, never served
        rate_limit=RateLimit(per_second=config.rate, burst=config.burst),
        outages=tuple(windows),
        latency=(0.0, 0.002),
        drop_rate=0.04,  # connection reset, or cut mid-body after full-length headers
        name="soak",
    )
    return apply_overrides(profile, config.faults) if config.faults else profile


def apply_overrides(profile: FaultProfile, spec: str) -> FaultProfile:
    """``profile`` with the ``field=value`` overrides of ``spec`` (the CLI's ``--faults``
    syntax); a leading preset name (``heavy``) replaces the profile with that preset first."""
    from synapse_sdk.emulator import FaultProfile

    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if parts and "=" not in parts[0]:
        profile = FaultProfile.preset(parts.pop(0), seed=profile.seed)
    for part in parts:
        key = part.partition("=")[0].strip()
        parsed = FaultProfile.from_spec(f"none,{part}", seed=profile.seed)
        profile = profile.replace(**{key: getattr(parsed, key)})
    if parts:
        profile = profile.replace(name=f"{profile.name}+custom")
    return profile


def describe_profile(profile: FaultProfile) -> list[str]:
    """The profile, field by field (outage windows summarized)."""
    windows = profile.outages
    if not windows:
        outages = "none"
    elif len(windows) == 1:
        outages = f"{windows[0][0]:g}-{windows[0][1]:g} s"
    else:
        length = windows[0][1] - windows[0][0]
        every = windows[1][0] - windows[0][0]
        outages = f"{length:g} s every {every:g} s of the emulator clock ({len(windows)} windows)"
    rate = profile.rate_limit
    nominal = 1 - (1 - profile.partial_failure_rate - profile.permanent_failure_rate) * (
        1 - profile.drop_rate
    ) ** 2
    return [
        f"FaultProfile(name={profile.name!r}, seed={profile.seed})",
        f"  partial_failure_rate   {profile.partial_failure_rate:g}  (207 item_unavailable)",
        f"  permanent_failure_rate {profile.permanent_failure_rate:g}  (207 item_corrupted)",
        f"  drop_rate              {profile.drop_rate:g}  (reset / cut mid-body)",
        "  rate_limit             "
        + ("none" if rate is None else f"{rate.per_second:g}/s burst {rate.burst}  (429)"),
        f"  outages                {outages}  (503)",
        f"  latency                {profile.latency[0] * 1000:g}-{profile.latency[1] * 1000:g} ms",
        f"  => an item meets a fault on its first try (207, or its bulk fetch or download "
        f"dropped) with p = {nominal:.1%}, plus 429s and outages",
    ]


def kill_moments(rng: random.Random, items: int, kills: int) -> list[int]:
    """One id per equal slice of ``[5 %, 95 %]`` of ``1..items``, in the middle half of it."""
    low, high = 0.05 * items, 0.95 * items
    width = (high - low) / max(kills, 1)
    return [
        max(1, min(items, round(low + width * (index + rng.uniform(0.25, 0.75)))))
        for index in range(kills)
    ]


# -- what the emulator saw ---------------------------------------------------------------------


def _tally_class() -> type[Any]:
    from synapse_sdk.emulator.state import RequestLog

    class Tally(RequestLog):
        """Replaces the emulator's request log: counts every request as it is logged instead
        of keeping it, so a 100 000-item soak does not hold 100 000 records."""

        def __init__(self, items: int, profile: FaultProfile) -> None:
            super().__init__(limit=1)
            self.profile = profile
            self.counts: Counter[str] = Counter()
            #: How often each id was served whole in a bulk fetch / its original downloaded
            #: whole (saturating at 255).
            self.bulk_served = bytearray(items + 1)
            self.files_served = bytearray(items + 1)
            self._bulk_ids: dict[str, tuple[int | str, ...]] = {}

        def append(self, record: RequestRecord) -> None:
            with self._lock:
                self._count(record)

        def _count(self, record: RequestRecord) -> None:
            counts = self.counts
            counts["requests"] += 1
            counts[f"status {record.status}"] += 1
            for fault in record.faults:
                counts[f"fault {fault}"] += 1
            whole = "drop_truncated" not in record.faults and record.status in (200, 207)
            if record.path.startswith(("/storage/", "/v2/files/")):
                counts["file downloads"] += 1
                # A 206 is the rest of a download resumed with Range, served to the file's end
                # (the client checks the size and digest of the whole).
                cut = "drop_truncated" in record.faults or "original_cut" in record.faults
                if not cut and record.status in (200, 206) and record.ids:
                    _bump(self.files_served, record.ids[0])
                return
            counts["api requests"] += 1
            if record.method != "POST" or not record.path.endswith(("/bulk-fetch/", "/bulk-data/")):
                return
            counts["bulk fetches"] += 1
            ids = record.ids
            if ids is not None and record.idempotency_key:
                self._bulk_ids[record.idempotency_key] = ids
            elif "idempotent_replay" in record.faults and record.idempotency_key:
                ids = self._bulk_ids.get(record.idempotency_key)
            if record.status in (200, 207) and ids is not None:
                counts["item fetches"] += len(ids)
                counts["item fetches failed"] += len(record.failed_ids)
                if whole:
                    failed = set(record.failed_ids)
                    for item_id in ids:
                        if item_id not in failed:
                            _bump(self.bulk_served, item_id)

        def snapshot(self) -> list[RequestRecord]:
            return []

        def __len__(self) -> int:
            with self._lock:
                return self.counts["requests"]

    return Tally


def _bump(counter: bytearray, item_id: object) -> None:
    if isinstance(item_id, int) and 0 < item_id < len(counter) and counter[item_id] < 255:
        counter[item_id] += 1


# -- one export run ----------------------------------------------------------------------------


@dataclass
class Run:
    """One ``synapse export`` subprocess."""

    index: int
    target: int | None
    killed: bool
    exit_code: int
    seconds: float
    peak_rss_mb: float
    summary: dict[str, Any] | None = None


def export_command(out: Path, url: str) -> list[str]:
    """``synapse export --out OUT --backend URL --json`` (the token comes from the environment)."""
    script = Path(sys.executable).with_name("synapse")
    if script.is_file() and os.access(script, os.X_OK):
        prefix = [str(script)]
    else:
        code = "import sys; from synapse_sdk.cli import main; sys.exit(main())"
        prefix = [sys.executable, "-c", code]
    return [*prefix, "export", "--out", str(out), "--backend", url, "--json"]


def run_export(
    index: int,
    command: list[str],
    env: dict[str, str],
    target_dir: Path,
    items: int,
    target: int | None,
    delay: float,
    logs: Path,
) -> Run:
    """Run the export; when ``target`` is set, SIGKILL it ``delay`` seconds after the record of
    one of the ``TRIGGER_WINDOW`` ids from ``target`` on exists. The peak RSS is the child's own
    ``VmHWM`` (see the module docstring)."""
    stdout_path = logs / f"run-{index:02d}.out"
    stderr_path = logs / f"run-{index:02d}.err"
    window = [] if target is None else range(target, min(items + 1, target + TRIGGER_WINDOW))
    triggers = [target_dir / f"{i}.json" for i in window]
    started = time.monotonic()
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    killed = False
    peak_kib = 0
    try:
        while True:
            peak_kib = max(peak_kib, _high_water_kib(proc.pid))
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                break
            if triggers and any(path.exists() for path in triggers):
                if delay > 0:
                    time.sleep(delay)
                peak_kib = max(peak_kib, _high_water_kib(proc.pid))
                os.kill(proc.pid, signal.SIGKILL)  # not reaped yet: the pid is still ours
                killed = True
                pid, status = os.waitpid(proc.pid, 0)
                break
            time.sleep(POLL_SECONDS)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    summary: dict[str, Any] | None = None
    lines = stdout_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    if lines:
        try:
            summary = json.loads(lines[-1])
        except ValueError:
            summary = None
    return Run(
        index=index,
        target=target,
        killed=killed and proc.returncode == -signal.SIGKILL,
        exit_code=proc.returncode,
        seconds=seconds,
        peak_rss_mb=peak_kib / 1024,
        summary=summary,
    )


def _high_water_kib(pid: int) -> int:
    """The process's peak RSS so far (``VmHWM``, KiB), 0 once it has exited or off Linux."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


# -- the checks --------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What the output folder, the ledger, the summary and the emulator say at the end."""

    exported: int = 0
    failed_by_code: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    duplicated: int = 0
    failed_without_code: int = 0
    stray_files: int = 0
    bad_records: int = 0
    ledger_mismatches: int = 0
    summary_mismatches: int = 0
    emulator_mismatches: int = 0
    examples: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(text)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.failed_without_code
            or self.stray_files
            or self.bad_records
            or self.ledger_mismatches
            or self.summary_mismatches
            or self.emulator_mismatches
        )


def _ledger_rows(ledger: Path) -> Iterator[tuple[Any, str, str | None]]:
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        for item_id, state, code, is_int in db.execute(
            "SELECT id, state, code, is_int FROM items ORDER BY id"
        ):
            yield (int(item_id) if is_int else item_id), state, code
    finally:
        db.close()


def verify(
    out: Path,
    items: int,
    final: dict[str, Any] | None,
    emu: Emulator,
    tally: Any,
    profile: FaultProfile,
) -> Verdict:
    """Check every id ``1..items`` ended exported exactly once or failed with its code."""
    verdict = Verdict()
    target = out / RESOURCE
    records: set[int] = set()
    originals: dict[int, list[str]] = {}
    for entry in os.scandir(target):
        name = entry.name
        if _TEMP.fullmatch(name) or not entry.is_file(follow_symlinks=False):
            verdict.stray_files += 1
            verdict.problem(f"stray file {name}")
        elif match := _RECORD.fullmatch(name):
            records.add(int(match.group(1)))
        elif (match := _ORIGINAL_JSON.fullmatch(name) or _ORIGINAL.fullmatch(name)) is not None:
            originals.setdefault(int(match.group(1)), []).append(name)
        else:
            verdict.stray_files += 1
            verdict.problem(f"stray file {name}")
    expected = range(1, items + 1)

    # Records: each parses, is the item the emulator holds, and names one whole original.
    on_disk: set[int] = set()
    ordered = sorted(records)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        bodies = emu.store.fetch(RESOURCE, chunk)
        for item_id in chunk:
            if self_check := _check_record(target, item_id, bodies.get(item_id), originals):
                verdict.bad_records += 1
                verdict.problem(self_check)
            else:
                on_disk.add(item_id)
    for item_id, names in originals.items():
        if item_id not in records:
            verdict.stray_files += len(names)
            verdict.problem(f"original without its record: {names}")
        elif len(names) > 1:
            verdict.duplicated += 1
            verdict.problem(f"id {item_id} has {len(names)} originals: {names}")
    outside = records - set(expected)
    verdict.duplicated += len(outside)

    # The ledger.
    ledger_path = out / ".synapse-export" / RESOURCE / "ledger.sqlite3"
    ledger_exported: set[int] = set()
    failed: dict[int, str | None] = {}
    for item_id, state, code in _ledger_rows(ledger_path):
        if state == "exported":
            ledger_exported.add(item_id)
        elif state == "failed":
            failed[item_id] = code
        else:
            verdict.ledger_mismatches += 1
            verdict.problem(f"id {item_id} still {state} in the ledger")
    for item_id in ledger_exported ^ on_disk:
        verdict.ledger_mismatches += 1
        where = "the ledger only" if item_id in ledger_exported else "disk only"
        verdict.problem(f"id {item_id} exported on {where}")
    by_code = Counter(code or "(no code)" for code in failed.values())
    verdict.failed_by_code = dict(sorted(by_code.items()))
    verdict.failed_without_code = sum(1 for code in failed.values() if not code)
    both = on_disk & failed.keys()
    verdict.duplicated += len(both)
    for item_id in sorted(both)[:5]:
        verdict.problem(f"id {item_id} is both exported and failed")
    lost = [i for i in expected if i not in on_disk and i not in failed]
    verdict.lost = len(lost)
    if lost:
        verdict.problem(f"lost ids, e.g. {lost[:10]}")
    verdict.exported = len(on_disk)

    # The last run's own summary.
    if final is None:
        verdict.summary_mismatches += 1
        verdict.problem("the last run printed no summary")
    else:
        if final.get("failed_by_code") != {k: v for k, v in by_code.items()}:
            verdict.summary_mismatches += 1
            verdict.problem(f"summary failed_by_code {final.get('failed_by_code')} != ledger")
        settled = final.get("exported", 0) + final.get("skipped", 0) + final.get("failed", 0)
        if settled != items:
            verdict.summary_mismatches += 1
            verdict.problem(
                f"summary exported {final.get('exported')} + skipped {final.get('skipped')} "
                f"+ failed {final.get('failed')} = {settled}, not {items}"
            )
        if final.get("exit_code") != (EXIT_OK if not failed else EXIT_ITEMS_FAILED):
            verdict.summary_mismatches += 1
            verdict.problem(f"exit code {final.get('exit_code')} with {len(failed)} failed")

    # The emulator.
    for item_id in on_disk:
        if not (tally.bulk_served[item_id] and tally.files_served[item_id]):
            verdict.emulator_mismatches += 1
            verdict.problem(f"id {item_id} is on disk but the emulator never served it whole")
    corrupted = {i for i in expected if profile.is_corrupted(RESOURCE, i)}
    failed_corrupted = {i for i, code in failed.items() if code == "item_corrupted"}
    if corrupted != failed_corrupted:
        verdict.emulator_mismatches += len(corrupted ^ failed_corrupted)
        verdict.problem(
            f"item_corrupted: {len(failed_corrupted)} failed, the profile corrupts "
            f"{len(corrupted)}"
        )
    return verdict


def _check_record(
    target: Path, item_id: int, body: str | None, originals: dict[int, list[str]]
) -> str | None:
    """Why ``<item_id>.json`` is not a whole, correct export of the item, or None."""
    try:
        record = json.loads((target / f"{item_id}.json").read_bytes())
    except (OSError, ValueError) as exc:
        return f"{item_id}.json does not parse: {exc}"
    if body is None:
        return f"{item_id}.json names an id the emulator does not hold"
    item = json.loads(body)
    if record.get("id") != item_id or record.get("data") != item["data"]:
        return f"{item_id}.json is not the emulator's item {item_id}"
    original = record.get("original") or {}
    name = original.get("file")
    if name not in originals.get(item_id, []):
        return f"{item_id}.json names {name!r}, not an original on disk"
    content = (target / name).read_bytes()
    sha = hashlib.sha256(content).hexdigest()
    entry = item["files_manifest"]["original"]
    if (len(content), hashlib.sha1(content).hexdigest()) != (entry["file_size"], entry["checksum"]):
        return f"{name} is not the whole original ({len(content)} bytes)"
    if (original.get("size"), original.get("sha256")) != (len(content), sha):
        return f"{item_id}.json describes its original wrongly"
    return None


# -- the soak ----------------------------------------------------------------------------------


@dataclass
class SoakResult:
    """Everything a soak measured and checked."""

    items: int
    url: str
    kills_requested: int
    kills: int
    runs: list[Run]
    verdict: Verdict
    profile: list[str]
    requests: dict[str, int]
    wall_seconds: float
    seed_seconds: float
    verify_seconds: float
    problems: list[str]

    @property
    def peak_rss_mb(self) -> float:
        return max((run.peak_rss_mb for run in self.runs), default=0.0)

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not self.problems

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["peak_rss_mb"] = round(self.peak_rss_mb, 1)
        data["ok"] = self.ok
        data["exit_codes"] = dict(Counter(str(run.exit_code) for run in self.runs))
        return data


def soak(config: SoakConfig, log: Callable[[str], None] = print) -> SoakResult:
    """Serve the emulator, run, kill and resume the export, and check the outcome."""
    from synapse_sdk.emulator import Emulator

    profile = build_profile(config)
    description = describe_profile(profile)
    for line in description:
        log(line)
    rng = random.Random(config.seed)
    moments = kill_moments(rng, config.items, config.kills)
    max_runs = config.max_runs if config.max_runs is not None else config.kills + 20
    workdir = Path(tempfile.mkdtemp(prefix="soak-")) if config.workdir is None else config.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    out, logs = workdir / "out", workdir / "logs"
    logs.mkdir(exist_ok=True)
    problems: list[str] = []
    runs: list[Run] = []
    try:
        seeding = time.monotonic()
        emu = Emulator(
            items=config.items,
            seed=config.seed,
            faults=profile,
            host="127.0.0.1",
        )
        with emu:
            seed_seconds = time.monotonic() - seeding
            tally = _tally_class()(config.items, profile)
            emu.state.log = tally
            env = {**os.environ, "SYNAPSE_TOKEN": emu.token, "SYNAPSE_TENANT": emu.tenant,
                   "SYNAPSE_LANGUAGE": "en"}
            url = emu.url
            command = export_command(out, url)
            log(f"emulator at {emu.url} ({config.items} items, seeded in {seed_seconds:.1f} s); "
                f"kill moments (record ids): {moments}")
            started = time.monotonic()
            while len(runs) < max_runs:
                target = moments[0] if moments else None
                delay = rng.uniform(0, config.jitter) if target and config.jitter > 0 else 0.0
                run = run_export(
                    len(runs) + 1, command, env, out / RESOURCE, config.items, target, delay, logs
                )
                runs.append(run)
                log(_describe_run(run))
                if run.killed:
                    moments.pop(0)
                    continue
                if run.exit_code in (EXIT_OK, EXIT_ITEMS_FAILED):
                    if moments:
                        problems.append(f"the export finished before {len(moments)} kill(s)")
                    break
                stopped = run.exit_code == EXIT_ABORTED and run.summary is not None
                if not stopped:  # not "the backend looked down, rerun": a crash or a refusal
                    tail = (logs / f"run-{run.index:02d}.err").read_text(errors="replace")
                    problems.append(f"run {run.index} exited {run.exit_code}: {tail[-600:]}")
                    if run.exit_code != EXIT_ABORTED:
                        break
            else:
                problems.append(f"no run completed within {max_runs} runs")
            wall = time.monotonic() - started
            final = runs[-1].summary if runs and not runs[-1].killed else None
            checking = time.monotonic()
            verdict = verify(out, config.items, final, emu, tally, profile)
            verify_seconds = time.monotonic() - checking
            requests = dict(sorted(tally.counts.items()))
    finally:
        if not config.keep and config.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return SoakResult(
        items=config.items,
        url=url,
        kills_requested=config.kills,
        kills=sum(run.killed for run in runs),
        runs=runs,
        verdict=verdict,
        profile=description,
        requests=requests,
        wall_seconds=wall,
        seed_seconds=seed_seconds,
        verify_seconds=verify_seconds,
        problems=problems,
    )


def _describe_run(run: Run) -> str:
    how = (
        f"killed (SIGKILL) after record {run.target}"
        if run.killed
        else f"exit {run.exit_code}"
    )
    text = f"  run {run.index:2d}: {how} after {run.seconds:6.1f} s, "
    text += f"peak RSS {run.peak_rss_mb:.1f} MB"
    if run.summary is not None and "exported" in run.summary:
        s = run.summary
        text += (
            f"; exported {s['exported']}, skipped {s['skipped']}, failed {s['failed']} "
            f"{s.get('failed_by_code')}, {s['requests']} requests, {s['rate_limited']} x 429"
        )
    elif run.summary is not None:
        text += f"; {run.summary.get('error', {}).get('code')}"
    return text
