"""What retrying costs per call: a bare call, a hand-written loop, tenacity, stamina, backoff, ours.

Run ``python benchmarks/bench_retry.py`` (under a minute) or ``--quick`` (a few seconds). In one
run it measures, sync and async:

* the success path: the operation succeeds at once (what nearly every call pays);
* one retry at zero wait: the first attempt raises a transient error, the second succeeds.

Every contender wraps the same operation and retries the same error (up to 3 attempts). On the
success path each uses a realistic backoff (it is never reached); for the retry each is set to
wait zero: tenacity ``wait_none()``, stamina ``wait_initial=wait_max=wait_jitter=0``, backoff
``constant`` with ``interval=0`` and no jitter, ours ``backoff_base=backoff_max=0`` (the
hand-written loop skips a zero sleep, as ours does; the peers still call ``sleep(0)``). Logging
hooks are off for the peers (stamina's instrumentation hooks emptied, backoff ``logger=None``); ours
logs only when its logger is enabled for INFO, which it is not here, and its OpenTelemetry
observer is off (``bench_telemetry.py`` measures it). stamina's 45 s default
timeout is turned off, like ours (no deadline). Our retry rows run without a retry budget, as the
peers have none (in a loop where every call retries, a budget of 50 empties fast); the
"+budget" row refunds each spent token to show the budget's own cost.

Timing: each contender runs in rounds, interleaved with the others so a noisy machine hurts all
alike; the figure is the fastest round's nanoseconds per call, harness loop included for every
row. Garbage is collected before each round and the collector is off while it is timed (the
peers leave cyclic garbage that would otherwise slow whichever row runs next). The script then runs
``python -X importtime -c "import synapse_sdk"`` and sums the self time of our own modules.

``--instrumented`` measures instead what the SDK's instrumentation costs the sync success path
(the hand-written loop, ``Retrying.call`` and ``@retry``): with OpenTelemetry absent (a child
process that cannot import it), installed with our observer off (the main run's state), on
without an SDK provider, and recording through the SDK's providers; then what a
:class:`~synapse_sdk.plugins.job_reporter.JobReporter` costs per event of the action it reports
(a message or a progress or metrics update; none goes to the backend while the run goes on). A
reporter is never on the retry engine's path: it hears only of the action's messages and
progress, not of its calls.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backoff
import stamina
import tenacity

from synapse_sdk import telemetry
from synapse_sdk.config import RetryPolicy
from synapse_sdk.exceptions import ServiceUnavailableError, SynapTransientError
from synapse_sdk.retry import Retrying, retry

ATTEMPTS = 3
TRANSIENT = SynapTransientError
BASE = 0.0  # the hand-written loop's backoff base: zero, so a retry skips the sleep

SUCCESS_POLICY = RetryPolicy()  # the defaults, budget included
ZERO_WAIT_POLICY = RetryPolicy(backoff_base=0.0, backoff_max=0.0, budget_capacity=None)
ZERO_WAIT_BUDGET_POLICY = RetryPolicy(
    backoff_base=0.0, backoff_max=0.0, budget_refill_per_success=1.0
)

# --- operations -------------------------------------------------------------------------------


def succeed() -> int:
    return 42


async def asucceed() -> int:
    return 42


def flaky() -> Callable[[], int]:
    """An operation that fails every other call: each retried call sees one failure, then a
    success. A plain function (not a callable object), so every library sees what it expects."""
    calls = 0

    def operation() -> int:
        nonlocal calls
        calls += 1
        if calls & 1:
            raise ServiceUnavailableError("busy")
        return 42

    return operation


def aflaky() -> Callable[[], Awaitable[int]]:
    """The async twin of :func:`flaky`."""
    calls = 0

    async def operation() -> int:
        nonlocal calls
        calls += 1
        if calls & 1:
            raise ServiceUnavailableError("busy")
        return 42

    return operation


# --- contenders -------------------------------------------------------------------------------


def hand_retry(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """What one writes by hand: a helper with a for loop, try/except and capped backoff."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return fn(*args, **kwargs)
        except TRANSIENT:
            if attempt == ATTEMPTS:
                raise
            delay = min(10.0, BASE * 2.0 ** (attempt - 1))
            if delay > 0:
                time.sleep(delay)
    raise AssertionError("unreachable")


async def ahand_retry(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """The async twin of :func:`hand_retry`."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await fn(*args, **kwargs)
        except TRANSIENT:
            if attempt == ATTEMPTS:
                raise
            delay = min(10.0, BASE * 2.0 ** (attempt - 1))
            if delay > 0:
                await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def hand_decorator(fn: Callable[[], Any], helper: Callable[..., Any]) -> Callable[[], Any]:
    """The hand-written loop pasted into a decorator's wrapper (as a user would specialise it)."""
    if helper is ahand_retry:

        async def awrapper() -> Any:
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    return await fn()
                except TRANSIENT:
                    if attempt == ATTEMPTS:
                        raise
                    delay = min(10.0, BASE * 2.0 ** (attempt - 1))
                    if delay > 0:
                        await asyncio.sleep(delay)
            raise AssertionError("unreachable")

        return awrapper

    def wrapper() -> Any:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return fn()
            except TRANSIENT:
                if attempt == ATTEMPTS:
                    raise
                delay = min(10.0, BASE * 2.0 ** (attempt - 1))
                if delay > 0:
                    time.sleep(delay)
        raise AssertionError("unreachable")

    return wrapper


def bare_retry(fn: Callable[[], Any]) -> Callable[[], Any]:
    """The least work a retry can be: call, catch, call again (no loop, no policy)."""

    def call() -> Any:
        try:
            return fn()
        except TRANSIENT:
            return fn()

    return call


def abare_retry(fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        try:
            return await fn()
        except TRANSIENT:
            return await fn()

    return call


def tenacity_wrap(fn: Callable[..., Any], zero_wait: bool) -> Callable[..., Any]:
    wait = tenacity.wait_none() if zero_wait else tenacity.wait_random_exponential(0.5, max=10)
    decorator = tenacity.retry(
        stop=tenacity.stop_after_attempt(ATTEMPTS),
        wait=wait,
        retry=tenacity.retry_if_exception_type(TRANSIENT),
        reraise=True,
    )
    return decorator(fn)


def stamina_wrap(fn: Callable[..., Any], zero_wait: bool) -> Callable[..., Any]:
    waits: dict[str, float] = (
        {"wait_initial": 0.0, "wait_max": 0.0, "wait_jitter": 0.0} if zero_wait else {}
    )
    return stamina.retry(on=TRANSIENT, attempts=ATTEMPTS, timeout=None, **waits)(fn)


def backoff_wrap(fn: Callable[..., Any], zero_wait: bool) -> Callable[..., Any]:
    if zero_wait:
        decorator = backoff.on_exception(
            backoff.constant, TRANSIENT, max_tries=ATTEMPTS, interval=0, jitter=None, logger=None
        )
    else:
        decorator = backoff.on_exception(
            backoff.expo, TRANSIENT, max_tries=ATTEMPTS, factor=0.5, max_value=10, logger=None
        )
    return decorator(fn)


def contenders(zero_wait: bool, is_async: bool) -> list[tuple[str, Callable[[], Any]]]:
    """(label, zero-argument callable) for one scenario; each gets its own operation.

    Call-style contenders (the hand-written helper, ``Retrying.call``) go through
    ``functools.partial``; decorator-style ones (the peers, ``@retry``) are called directly.
    """

    def op() -> Any:
        if is_async:
            return aflaky() if zero_wait else asucceed
        return flaky() if zero_wait else succeed

    policy = ZERO_WAIT_POLICY if zero_wait else SUCCESS_POLICY
    helper, bare = (ahand_retry, abare_retry) if is_async else (hand_retry, bare_retry)
    call = "acall" if is_async else "call"
    first = ("bare: call, catch, call", bare(op())) if zero_wait else ("bare call", op())
    rows: list[tuple[str, Callable[[], Any]]] = [
        first,
        ("hand-written loop", functools.partial(helper, op())),
        ("hand-written decorator", hand_decorator(op(), helper)),
        ("tenacity", tenacity_wrap(op(), zero_wait)),
        ("stamina", stamina_wrap(op(), zero_wait)),
        ("backoff", backoff_wrap(op(), zero_wait)),
        (f"ours: Retrying.{call}", functools.partial(getattr(Retrying(policy), call), op())),
        ("ours: @retry", retry(policy)(op())),
    ]
    if zero_wait:
        budget = Retrying(ZERO_WAIT_BUDGET_POLICY)
        rows.append((f"ours: Retrying.{call} +budget",
                     functools.partial(getattr(budget, call), op())))
    return rows


# --- timing -----------------------------------------------------------------------------------


def time_sync(fn: Callable[[], Any], number: int) -> float:
    """Nanoseconds per call over ``number`` calls."""
    start = time.perf_counter_ns()
    for _ in range(number):
        fn()
    return (time.perf_counter_ns() - start) / number


async def time_async(fn: Callable[[], Awaitable[Any]], number: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(number):
        await fn()
    return (time.perf_counter_ns() - start) / number


@dataclass
class Row:
    label: str
    fn: Callable[[], Any]
    number: int = 1
    best: float = float("inf")
    rounds: list[float] = field(default_factory=list)


def measure(rows: list[Row], is_async: bool, round_seconds: float, rounds: int) -> None:
    """Calibrate each row to ``round_seconds`` per round, then run interleaved rounds."""
    loop = asyncio.new_event_loop() if is_async else None

    def run(row: Row, number: int) -> float:
        if loop is not None:
            return loop.run_until_complete(time_async(row.fn, number))
        return time_sync(row.fn, number)

    try:
        for row in rows:
            number = 1
            while True:
                per_call = run(row, number)
                if per_call * number >= round_seconds * 1e9 / 4 or number >= 1 << 24:
                    break
                number *= 4
            row.number = max(1, int(round_seconds * 1e9 / max(per_call, 1.0)))
        for _ in range(rounds):
            for row in rows:
                # Collect the garbage of the previous row (the peers make plenty) outside the
                # timed region, then time with the collector off, as timeit does.
                gc.collect()
                gc.disable()
                try:
                    per_call = run(row, row.number)
                finally:
                    gc.enable()
                row.rounds.append(per_call)
                row.best = min(row.best, per_call)
    finally:
        if loop is not None:
            loop.close()


def print_table(title: str, rows: list[Row], loop_ns: float, ours_ns: float) -> None:
    print(f"\n{title}")
    print(f"  {'contender':<34} {'ns/call':>11} {'x loop':>8} {'x ours':>8}")
    for row in rows:
        print(
            f"  {row.label:<34} {row.best:>11,.0f} {row.best / loop_ns:>8.2f} "
            f"{row.best / ours_ns:>8.2f}"
        )


def scenario(title: str, zero_wait: bool, is_async: bool, args: argparse.Namespace) -> dict[
    str, float
]:
    rows = [Row(label, fn) for label, fn in contenders(zero_wait, is_async)]
    measure(rows, is_async, args.round_seconds, args.rounds)
    by_label = {row.label: row.best for row in rows}
    call = "acall" if is_async else "call"
    print_table(title, rows, by_label["hand-written loop"], by_label[f"ours: Retrying.{call}"])
    return by_label


# --- import time ------------------------------------------------------------------------------


def own_import_ms(module: str, runs: int) -> tuple[float, float]:
    """(our modules' summed self time, the top module's cumulative time), best of ``runs``, ms."""
    best_own = best_total = float("inf")
    with tempfile.TemporaryDirectory() as cache:
        # Compiled bytecode goes to a private cache (never into the source tree), and the first
        # run, which compiles, is a warm-up: users import from cached bytecode.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        outputs = [
            subprocess.run(
                [sys.executable, "-X", "importtime", "-c", f"import {module}"],
                capture_output=True, text=True, check=True, env=env,
            ).stderr
            for _ in range(runs + 1)
        ][1:]
    for output in outputs:
        own = 0
        total = 0
        for line in output.splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            parts = line.split("|")
            try:
                self_us = int(parts[0].split(":")[1])
                cumulative_us = int(parts[1])
            except ValueError:
                continue  # the header line
            name = parts[2].strip()
            if name == "synapse_sdk" or name.startswith("synapse_sdk."):
                own += self_us
            if name == module:
                total = cumulative_us
        best_own = min(best_own, own / 1000)
        best_total = min(best_total, total / 1000)
    return best_own, best_total


# --- main -------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, rougher figures")
    parser.add_argument("--instrumented", action="store_true",
                        help="the success path's cost by telemetry state, and a JobReporter's")
    args = parser.parse_args(argv)
    args.round_seconds, args.rounds, import_runs = (0.01, 3, 2) if args.quick else (0.03, 17, 7)
    if args.instrumented:
        args.rounds *= 3  # each state is a table of its own: more rounds against the noise
        instrumented(args)
        return 0

    stamina.instrumentation.set_on_retry_hooks([])  # no log lines from the peers
    logging.getLogger("synapse_sdk.retry").setLevel(logging.WARNING)
    # Our instrumentation off too (OpenTelemetry, when installed, observes every retry);
    # benchmarks/bench_telemetry.py gives its cost.
    telemetry.configure_opentelemetry(enabled=False)
    started = time.perf_counter()
    print(f"Python {sys.version.split()[0]} on {sys.platform}; tenacity {tenacity_version()}, "
          f"stamina {package_version('stamina')}, backoff {package_version('backoff')}")

    sync_ok = scenario("sync, success path", False, False, args)
    sync_retry = scenario("sync, one retry at zero wait", True, False, args)
    async_ok = scenario("async, success path", False, True, args)
    async_retry = scenario("async, one retry at zero wait", True, True, args)

    own_ms, total_ms = own_import_ms("synapse_sdk", import_runs)
    retry_own_ms, retry_total_ms = own_import_ms("synapse_sdk.retry", import_runs)
    print("\nimport time (python -X importtime, best run)")
    print(f"  import synapse_sdk:        ours {own_ms:6.1f} ms, "
          f"with stdlib deps {total_ms:6.1f} ms")
    print(f"  import synapse_sdk.retry:  ours {retry_own_ms:6.1f} ms, "
          f"with stdlib deps {retry_total_ms:6.1f} ms")

    print("\ntargets")
    for name, ok_rows, loop_key, call in (
        ("sync", sync_ok, "hand-written loop", "call"),
        ("async", async_ok, "hand-written loop", "acall"),
    ):
        bare = ok_rows["bare call"]
        loop = ok_rows[loop_key]
        for label in (f"ours: Retrying.{call}", "ours: @retry"):
            ours = ok_rows[label]
            overhead = (ours - bare) / max(loop - bare, 1.0)
            print(f"  {name} success, {label:<22} {ours / loop:5.2f}x the loop's cost "
                  f"({overhead:4.2f}x its overhead over a bare call)  <= 1.5x: "
                  f"{verdict(ours / loop <= 1.5)}")
        fastest_ours = min(ok_rows[f"ours: Retrying.{call}"], ok_rows["ours: @retry"])
        slowest_ours = max(ok_rows[f"ours: Retrying.{call}"], ok_rows["ours: @retry"])
        for peer in ("tenacity", "stamina"):
            ratio = ok_rows[peer] / slowest_ours
            print(f"  {name} success, {peer:<9} costs {ratio:6.1f}x ours (slowest style; "
                  f"{ok_rows[peer] / fastest_ours:.1f}x fastest)  >= 30x: {verdict(ratio >= 30)}")
    for name, rows, call in (("sync", sync_retry, "call"), ("async", async_retry, "acall")):
        ours = rows[f"ours: Retrying.{call}"]
        engine = ours - rows["hand-written loop"]
        print(f"  {name} one retry at zero wait: ours {ours / 1000:5.2f} us per call "
              f"(the engine's own share over the hand loop {engine / 1000:5.2f} us; "
              f"tenacity {rows['tenacity'] / 1000:.1f} us, stamina {rows['stamina'] / 1000:.1f} "
              f"us)  < 3 us: {verdict(ours < 3000)}")
    print(f"  import synapse_sdk, our own modules: {own_ms:.1f} ms  < 30 ms: "
          f"{verdict(own_ms < 30)}")
    print(f"\n(done in {time.perf_counter() - started:.1f} s)")
    return 0


# --- --instrumented ------------------------------------------------------------------------------


def success_rows(round_seconds: float, rounds: int) -> dict[str, float]:
    """ns per call of the loop, ``Retrying.call`` and ``@retry`` on the sync success path, in
    the process's current telemetry state."""
    rows = [
        Row("hand-written loop", functools.partial(hand_retry, succeed)),
        Row("ours: Retrying.call", functools.partial(Retrying(SUCCESS_POLICY).call, succeed)),
        Row("ours: @retry", retry(SUCCESS_POLICY)(succeed)),
    ]
    measure(rows, False, round_seconds, rounds)
    return {row.label: row.best for row in rows}


def reporter_rows(round_seconds: float, rounds: int) -> list[Row]:
    """ns per event a JobReporter adds: a message buffered, a progress or metrics update
    recorded (the clock stands still, so nothing but full batches of 200 messages is sent;
    the routes answer at once)."""
    from synapse_sdk.plugins.job_reporter import JobReporter

    class Routes:
        def update(self, job_id: str, **fields: Any) -> None:
            return None

        def create_logs(self, job_id: str, entries: Any) -> None:
            return None

    reporter = JobReporter(Routes(), "3f2c9a4e-1b7d-4c55-9a0e-2d6f8b1c7e90", clock=lambda: 0.0)
    reporter.progress("export", exported=0)  # the first snapshot goes at once: past it
    params = {"seconds": 1.5}
    rows = [
        Row("JobReporter.message", functools.partial(
            reporter.message, "EXPORT_RATE_LIMITED_WAITING", "info", params, "Waiting.", 0.0,
            "fetch",
        )),
        Row("JobReporter.progress", functools.partial(
            reporter.progress, "export", phase="main", exported=10, skipped=0, failed=0,
            pending=0,
        )),
        Row("JobReporter.metrics", functools.partial(
            reporter.metrics, "export", exported=10, skipped=0, failed=0,
        )),
    ]
    measure(rows, False, round_seconds, rounds)
    return rows


def instrumented(args: argparse.Namespace) -> None:
    """Print the instrumentation's cost on the success path and a reporter's per event."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    logging.getLogger("synapse_sdk.retry").setLevel(logging.WARNING)
    from bench_telemetry import absent  # a sibling script: benchmarks/ is on sys.path

    states: list[tuple[str, dict[str, float]]] = [
        ("OpenTelemetry absent",
         absent("bench_retry", "success_rows", args.round_seconds, args.rounds)),
    ]
    telemetry.configure_opentelemetry(enabled=False)
    states.append(("installed, observer off", success_rows(args.round_seconds, args.rounds)))
    telemetry.configure_opentelemetry()
    states.append(("installed, no SDK provider", success_rows(args.round_seconds, args.rounds)))
    telemetry.configure_opentelemetry(
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
    )
    states.append(("recording (SDK providers)", success_rows(args.round_seconds, args.rounds)))
    print("\nsync success path, by telemetry state (ns per call; x: the loop's cost)")
    print(f"  {'state':<30} {'loop':>7} {'Retrying.call':>14} {'x':>6} {'@retry':>8} {'x':>6}")
    for label, rows in states:
        loop, call, deco = (rows[k] for k in
                            ("hand-written loop", "ours: Retrying.call", "ours: @retry"))
        print(f"  {label:<30} {loop:>7,.0f} {call:>14,.0f} {call / loop:>6.2f} {deco:>8,.0f} "
              f"{deco / loop:>6.2f}")
    print("\na JobReporter, per event of the action it reports (ns per call)")
    for row in reporter_rows(args.round_seconds, args.rounds):
        print(f"  {row.label:<30} {row.best:>9,.0f}")


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def tenacity_version() -> str:
    return package_version("tenacity")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    raise SystemExit(main())
