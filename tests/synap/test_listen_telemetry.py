"""The listening stream's connections as gRPC CLIENT spans (RPC semantic conventions)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from synapse_sdk import exceptions as exc
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_testkit.otel import metrics, spans

__all__ = ["metrics", "spans"]

Env = Any


def listen_spans(exporter: InMemorySpanExporter) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.name == "synap.v1.Listener/Listen"]


def test_each_failed_connection_is_an_rpc_span_with_its_status(
    env: Env, spans: InMemorySpanExporter
) -> None:
    client = env.ready(config=SDKConfig(retry_policy=RetryPolicy(max_attempts=2)))
    env.emu.faults.inject("listen", "agent_unavailable", times=2)
    with pytest.raises(exc.AgentUnavailableError):
        client.listen(on_message=print)
    connections = listen_spans(spans)
    assert len(connections) == 2
    host, _, port = env.emu.listen_target.rpartition(":")
    for span in connections:
        assert span.kind is SpanKind.CLIENT
        assert span.status.status_code is StatusCode.ERROR
        attributes = span.attributes
        assert attributes["rpc.system"] == "grpc"
        assert attributes["rpc.service"] == "synap.v1.Listener"
        assert attributes["rpc.method"] == "Listen"
        assert attributes["error.type"] == "agent_unavailable"
        assert isinstance(attributes["rpc.grpc.status_code"], int)
        assert attributes["rpc.grpc.status_code"] != 0
        assert attributes["server.address"] == host
        assert attributes["server.port"] == int(port)
        assert len(attributes["synapse.correlation_id"]) == 32
    assert len({s.attributes["synapse.correlation_id"] for s in connections}) == 2


def test_a_stopped_stream_is_a_cancelled_span_without_error(
    env: Env, spans: InMemorySpanExporter
) -> None:
    client = env.ready()
    client.listen(on_message=print)
    client.stop_listening()
    (connection,) = listen_spans(spans)
    assert connection.attributes["rpc.grpc.status_code"] == 1
    assert connection.status.status_code is not StatusCode.ERROR


def test_synap_http_calls_are_traced_like_the_backends(
    env: Env, spans: InMemorySpanExporter
) -> None:
    env.ready()  # initializes the instance over HTTPS
    finished = spans.get_finished_spans()
    calls = [s for s in finished if s.name.startswith("synapse_sdk.http ")]
    attempts = [s for s in finished if s.kind is SpanKind.CLIENT and s.parent is not None]
    assert calls and attempts
    host, _, port = env.emu.url.removeprefix("https://").partition(":")
    for span in attempts:
        assert span.attributes["server.address"] == host
        assert span.attributes["server.port"] == int(port)
        assert span.attributes["url.full"].startswith(env.emu.url)
        assert span.parent.span_id in {c.context.span_id for c in calls}
