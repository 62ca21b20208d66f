"""OpenTelemetry fixtures: the SDK's spans and metrics go to in-memory exporters for one test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from synapse_sdk import telemetry


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans the SDK ends during the test (``spans.get_finished_spans()``)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.configure_opentelemetry(tracer_provider=provider)
    yield exporter
    telemetry.configure_opentelemetry()
    provider.shutdown()
