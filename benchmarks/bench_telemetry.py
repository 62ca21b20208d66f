"""What OpenTelemetry costs a client call and a retry: absent, unconfigured, and recording.

Run ``python benchmarks/bench_telemetry.py`` (about half a minute; ``--quick`` for a few
seconds). A :class:`~synapse_sdk.clients._transport.Transport` sends a GET with a query parameter
to an in-process ``httpx.MockTransport`` (no socket, so the SDK's own cost is most of the
figure; a real call over a network adds hundreds of microseconds to milliseconds). Rows:

* ``absent``: OpenTelemetry cannot be imported (run in a child process that blocks it);
* ``api only``: ``opentelemetry-api`` is importable but no SDK provider is set (non-recording
  spans, no-op instruments), the state of a library user who did not configure OpenTelemetry;
* ``recording``: the OpenTelemetry SDK's tracer and meter providers, spans recorded (no
  exporter) and metrics aggregated in memory.

A second table times a ``Retrying.call`` whose first attempt fails and whose second succeeds
(zero wait), where the OpenTelemetry observer counts the retry and adds its span event.

Each figure is the fastest of several rounds, in microseconds per call.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from synapse_sdk import telemetry
from synapse_sdk.clients._transport import Transport
from synapse_sdk.config import RetryPolicy
from synapse_sdk.exceptions import ServiceUnavailableError
from synapse_sdk.retry import Retrying


def per_call(calls: int, rounds: int) -> float:
    """Microseconds per call of the fastest round."""
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    with Transport(base_url="https://backend.test", token="t" * 24, http_client=client) as t:
        for _ in range(min(calls, 300)):
            t.request("GET", "/v2/tasks/", params={"limit": 5})
        best = float("inf")
        for _ in range(rounds):
            gc.collect()
            start = time.perf_counter()
            for _ in range(calls):
                t.request("GET", "/v2/tasks/", params={"limit": 5})
            best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def per_retry(calls: int, rounds: int) -> float:
    """Microseconds per call retried once (zero wait), of the fastest round."""
    retrying = Retrying(RetryPolicy(backoff_base=0.0, backoff_max=0.0, budget_capacity=None))
    failures = 0

    def operation() -> int:
        nonlocal failures
        failures += 1
        if failures % 2:
            raise ServiceUnavailableError("down")
        return 1

    for _ in range(min(calls, 300)):
        retrying.call(operation)
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        for _ in range(calls):
            retrying.call(operation)
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def absent(module: str, measure: str, *args: float) -> Any:
    """What ``measure(*args)`` of benchmark ``module`` returns (JSON-ready) in a child process
    where ``opentelemetry`` cannot be imported."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        f"sys.path[:0] = [{str(Path(__file__).resolve().parent)!r}]\n"
        f"import json, {module} as b\n"
        f"print(json.dumps(b.{measure}(*{args!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def table(title: str, measure: Callable[[int, int], float], calls: int, rounds: int) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    rows = [("absent", float(absent("bench_telemetry", measure.__name__, calls, rounds)))]
    telemetry.configure_opentelemetry()
    rows.append(("api only (no SDK provider)", measure(calls, rounds)))
    telemetry.configure_opentelemetry(
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
    )
    rows.append(("recording (SDK providers)", measure(calls, rounds)))
    telemetry.configure_opentelemetry()
    base = rows[0][1]
    print(title)
    print(f"  {'OpenTelemetry':30s} {'us/call':>9s} {'+us':>7s} {'x absent':>9s}")
    for label, value in rows:
        print(f"  {label:30s} {value:9.1f} {value - base:7.1f} {value / base:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, rougher figures")
    args = parser.parse_args()
    calls, rounds = (500, 3) if args.quick else (3000, 5)

    table("a GET through the transport to a mock backend", per_call, calls, rounds)
    table("a call retried once (zero wait)", per_retry, calls * 10, rounds)


if __name__ == "__main__":
    main()
