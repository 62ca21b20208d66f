"""OpenTelemetry metrics of the clients' calls, read with the SDK's in-memory metric reader."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from synapse_sdk import telemetry
from synapse_sdk.clients import BackendV2Client
from synapse_sdk.clients._transport import Transport
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile, RateLimit
from synapse_sdk.exceptions import BackendServiceUnavailableError
from synapse_sdk.plugins.actions.export.action import ExportAction

#: Every attribute a metric may carry: bounded values (methods, hosts, codes), never an id.
BOUNDED = {
    "http.request.method", "server.address", "server.port", "http.response.status_code",
    "error.type", "synapse.retry.name", "synapse.export.outcome",
}


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Metric name -> its data points."""
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def total(found: dict[str, list[Any]], name: str, **attributes: object) -> int:
    return sum(
        p.value for p in found.get(name, [])
        if all(p.attributes.get(k) == v for k, v in attributes.items())
    )


def test_rate_limited_calls_count_429s_retries_and_attempt_durations(
    spans: InMemorySpanExporter, metrics: InMemoryMetricReader
) -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=6, backoff_base=0.1, budget_capacity=None)
    faults = FaultProfile(seed=1, rate_limit=RateLimit(per_second=0.5, burst=1))
    with Emulator(items=5, seed=1, faults=faults, clock=clock) as emu, BackendV2Client(
        SDKConfig(retry_policy=policy), base_url=emu.url, token=emu.token, tenant=emu.tenant,
        sleep=clock.sleep, clock=clock, rng=random.Random(1),
    ) as client:
        for _ in range(3):
            client.tasks.list_page(limit=2)
    limited = sum(r.status == 429 for r in emu.requests)
    assert limited >= 2
    found = points(metrics)
    assert total(found, "synapse.client.rate_limited", **{"http.response.status_code": 429}) == (
        limited
    )
    assert total(found, "synapse.client.retries", **{"error.type": "rate_limited"}) == limited
    durations = found["http.client.request.duration"]
    assert sum(p.count for p in durations) == len(emu.requests)
    assert {p.attributes.get("error.type") for p in durations} == {None, "rate_limited"}
    for series in found.values():
        for point in series:
            assert set(point.attributes) <= BOUNDED


def test_budget_refusals_are_counted(
    spans: InMemorySpanExporter, metrics: InMemoryMetricReader
) -> None:
    policy = RetryPolicy(
        max_attempts=5, backoff_base=0.0, budget_capacity=1, budget_refill_per_success=0.0,
        budget_refill_per_second=0.0,
    )
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(503)))
    with Transport(
        SDKConfig(retry_policy=policy), base_url="https://backend.test", http_client=client,
        sleep=lambda seconds: None,
    ) as transport, pytest.raises(BackendServiceUnavailableError):
        transport.request("GET", "/v2/x/")
    found = points(metrics)
    assert total(found, "synapse.client.retries") == 1
    assert total(
        found, "synapse.client.retry_budget.refusals",
        **{"error.type": "service_unavailable", "synapse.retry.name": "http"},
    ) == 1


def test_export_items_are_counted_by_outcome_and_code(
    spans: InMemorySpanExporter, metrics: InMemoryMetricReader
) -> None:
    telemetry.record_export(7, {"item_corrupted": 2, "item_unavailable": 1})
    found = points(metrics)
    assert total(found, "synapse.export.items", **{"synapse.export.outcome": "exported"}) == 7
    assert total(found, "synapse.export.items", **{"error.type": "item_corrupted"}) == 2
    assert total(found, "synapse.export.items", **{"synapse.export.outcome": "failed"}) == 3


def test_an_export_run_counts_its_items_by_outcome_and_code(
    spans: InMemorySpanExporter, metrics: InMemoryMetricReader, tmp_path: Path
) -> None:
    """A real export against the emulator (corrupted items fail for good, headers pace it)."""
    clock = FakeClock()
    faults = FaultProfile(
        seed=5, permanent_failure_rate=0.1, rate_limit=RateLimit(per_second=5.0, burst=3)
    )
    with Emulator(items=60, faults=faults, clock=clock, sleep=clock.sleep) as emu:
        config = SDKConfig(
            backend_url=emu.url, token=emu.token, tenant=emu.tenant, language="en",
            retry_policy=RetryPolicy(max_attempts=6, backoff_base=0.2, retry_after_max=30.0),
        )
        with ExportAction(
            {"out_dir": tmp_path, "workers": 2}, config=config, sleep=clock.sleep,
            monotonic=clock, clock=clock,
        ) as action:
            summary = action.run()
    assert summary.exported and summary.failed
    found = points(metrics)
    assert total(found, "synapse.export.items", **{"synapse.export.outcome": "exported"}) == (
        summary.exported
    )
    for code, count in summary.failed_by_code.items():
        assert total(found, "synapse.export.items", **{"error.type": code}) == count
    assert total(found, "synapse.export.items", **{"synapse.export.outcome": "failed"}) == (
        summary.failed
    )
    assert total(found, "synapse.client.rate_limited") == sum(
        r.status == 429 for r in emu.requests
    )
