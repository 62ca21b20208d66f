"""OpenTelemetry fixtures: the SDK's spans and metrics go to in-memory exporters for one test.

Import ``spans`` and ``metrics`` into a test module (or conftest) to use them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from synapse_sdk import telemetry


@pytest.fixture
def metrics() -> InMemoryMetricReader:
    """The reader of the SDK's metrics during the test (``metrics.get_metrics_data()``)."""
    return InMemoryMetricReader()


@pytest.fixture
def spans(metrics: InMemoryMetricReader) -> Iterator[InMemorySpanExporter]:
    """The spans the SDK ends during the test (``spans.get_finished_spans()``); the SDK's
    metrics go to the ``metrics`` reader meanwhile."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[metrics])
    telemetry.configure_opentelemetry(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    yield exporter
    telemetry.configure_opentelemetry()
    tracer_provider.shutdown()
    meter_provider.shutdown()
