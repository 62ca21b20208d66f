"""OpenTelemetry traces of the clients' calls, read from the SDK's in-memory span exporter."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from synapse_sdk.clients import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.clients._transport import Transport
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile
from synapse_sdk.exceptions import BackendError
from synapse_sdk.telemetry._otel import redact_url

POLICY = RetryPolicy(max_attempts=3, backoff_base=0.1, budget_capacity=None)


def by_kind(spans: InMemorySpanExporter) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
    finished = list(spans.get_finished_spans())
    calls = [s for s in finished if s.kind is SpanKind.INTERNAL]
    attempts = [s for s in finished if s.kind is SpanKind.CLIENT]
    return calls, attempts


def check_retried_once_after_503(spans: InMemorySpanExporter, emu: Emulator) -> None:
    (call,), (first, second) = by_kind(spans)
    assert first.parent is not None and first.parent.span_id == call.context.span_id
    assert second.parent is not None and second.parent.span_id == call.context.span_id
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["http.response.status_code"] == 503
    assert first.attributes["error.type"] == "service_unavailable"
    assert first.status.status_code is StatusCode.ERROR
    assert "http.request.resend_count" not in first.attributes
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["http.response.status_code"] == 200
    assert "error.type" not in second.attributes
    host = emu.url.split("//")[1].split(":")[0]
    for span in (first, second):
        assert span.name == "GET"
        assert span.attributes["http.request.method"] == "GET"
        assert span.attributes["server.address"] == host
        assert span.attributes["url.full"] == f"{emu.url}/v2/tasks/?per_page=REDACTED"
    (record503, record200) = emu.requests
    assert call.attributes is not None
    assert call.attributes["synapse.correlation_id"] == record503.correlation_id
    assert first.attributes["synapse.correlation_id"] == record200.correlation_id
    assert call.attributes["synapse.attempts"] == 2
    (event,) = call.events
    assert event.name == "synapse.retry"
    assert event.attributes is not None
    assert event.attributes["synapse.retry.wait"] == record503.retry_after
    assert event.attributes["synapse.retry.attempt"] == 1
    assert event.attributes["error.type"] == "service_unavailable"


def test_a_call_retried_once_after_a_503_has_two_attempt_spans(
    spans: InMemorySpanExporter,
) -> None:
    clock = FakeClock()
    faults = FaultProfile(seed=1, outages=((0.0, 1.5),))
    with Emulator(items=3, seed=1, faults=faults, clock=clock) as emu, BackendV2Client(
        SDKConfig(retry_policy=POLICY), base_url=emu.url, token=emu.token, tenant=emu.tenant,
        sleep=clock.sleep, clock=clock, rng=random.Random(1),
    ) as client:
        client.tasks.list_page(limit=2)
    check_retried_once_after_503(spans, emu)


def test_async_calls_are_traced_alike(spans: InMemorySpanExporter) -> None:
    clock = FakeClock()
    faults = FaultProfile(seed=1, outages=((0.0, 1.5),))

    async def run(emu: Emulator) -> None:
        async with AsyncBackendV2Client(
            SDKConfig(retry_policy=POLICY), base_url=emu.url, token=emu.token, tenant=emu.tenant,
            sleep=clock.asleep, clock=clock, rng=random.Random(1),
        ) as client:
            await client.tasks.list_page(limit=2)

    with Emulator(items=3, seed=1, faults=faults, clock=clock) as emu:
        asyncio.run(run(emu))
    check_retried_once_after_503(spans, emu)


def test_a_failed_call_marks_its_span(spans: InMemorySpanExporter) -> None:
    clock = FakeClock()
    with Emulator(items=3, seed=1, clock=clock) as emu, BackendV2Client(
        SDKConfig(retry_policy=POLICY), base_url=emu.url, token="not-the-token",
        sleep=clock.sleep, clock=clock,
    ) as client, pytest.raises(BackendError):
        client.tasks.list_page(limit=2)
    (call,), (attempt,) = by_kind(spans)
    assert call.attributes is not None and attempt.attributes is not None
    assert call.attributes["error.type"] == attempt.attributes["error.type"]
    assert attempt.attributes["error.type"] == "authentication_failed"
    assert attempt.attributes["http.response.status_code"] == 401
    assert call.status.status_code is StatusCode.ERROR
    assert not call.events and not attempt.events  # no exception recorded: no message


def test_a_planted_token_reaches_no_span_event_or_metric(
    spans: InMemorySpanExporter, metrics: InMemoryMetricReader, secret_sink: object
) -> None:
    """A hostile server echoes the (planted) token; a pre-signed URL carries a signature (not
    planted: the transport's own logs quote the call's path) that ``url.full`` must redact."""
    token = "tok-planted-TRACE-0123456789abcdef"
    signature = "sig-TRACE-fedcba9876543210"
    answers = iter([
        httpx.Response(503, json={"error": {"code": "service_unavailable", "detail": token}}),
        httpx.Response(500, text=f"Bearer {token}"),
        httpx.Response(200, json={}),
    ])
    client = httpx.Client(transport=httpx.MockTransport(lambda request: next(answers)))
    sleeps: list[float] = []
    with Transport(
        SDKConfig(retry_policy=POLICY), base_url="https://backend.test", token=token,
        http_client=client, sleep=sleeps.append,
    ) as transport:
        transport.request("GET", f"https://storage.test/v2/files/1?sig={signature}")
    finished = spans.get_finished_spans()
    assert len(finished) == 4
    for span in finished:
        text = span.to_json()
        assert secret_sink.find(text) is None  # type: ignore[attr-defined]
        assert token not in text and signature not in text
    data = metrics.get_metrics_data()
    assert data is not None
    measured = data.to_json()
    assert "http.client.request.duration" in measured
    assert secret_sink.find(measured) is None  # type: ignore[attr-defined]
    assert token not in measured and signature not in measured
    assert finished[0].attributes is not None
    assert finished[0].attributes["url.full"] == "https://storage.test/v2/files/1?sig=REDACTED"


def test_redact_url_drops_user_info_and_query_values() -> None:
    assert redact_url("https://u:p@h.test:8443/a?x=1&y=&x=2#frag", {"cursor": "c"}) == (
        "https://h.test:8443/a?x=REDACTED&y=REDACTED&x=REDACTED&cursor=REDACTED"
    )
    assert redact_url("http://h.test/a") == "http://h.test/a"


NO_OTEL = """
import sys
sys.modules["opentelemetry"] = None  # as if it were not installed
import httpx
from synapse_sdk import telemetry
from synapse_sdk.clients._transport import Transport
client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
with Transport(base_url="https://backend.test", http_client=client) as transport:
    transport.request("GET", "/v2/x/")
assert telemetry.opentelemetry() is None
loaded = sorted(m for m in sys.modules if "opentelemetry" in m or m.endswith("._otel"))
assert loaded == ["opentelemetry"], loaded
"""

LIGHT_IMPORT = """
import sys
import synapse_sdk, synapse_sdk.retry, synapse_sdk.clients
loaded = sorted(m for m in sys.modules if "opentelemetry" in m or m.endswith("._otel"))
assert loaded == [], loaded
"""


@pytest.mark.parametrize("script", [NO_OTEL, LIGHT_IMPORT], ids=["absent", "import"])
def test_nothing_of_opentelemetry_is_imported_before_a_call_uses_it(script: str) -> None:
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_a_retry_engine_used_before_any_client_call_is_observed() -> None:
    """The retry counter sees a bare Retrying's retries in a process that has made no call."""
    script = """
import sys
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry import metrics
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
from synapse_sdk.config import RetryPolicy
from synapse_sdk.exceptions import ServiceUnavailableError
from synapse_sdk.retry import Retrying
errors = [ServiceUnavailableError("down")]
def op():
    if errors:
        raise errors.pop()
    return 1
Retrying(RetryPolicy(backoff_base=0.0), sleep=lambda s: None).call(op)
assert "synapse.client.retries" in reader.get_metrics_data().to_json()
"""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_the_pacers_pause_is_outside_the_attempt_span(spans: InMemorySpanExporter) -> None:
    """The pause happens in the call's span, so an attempt's span and duration are the HTTP
    exchange alone."""
    from collections.abc import Mapping

    from opentelemetry import trace

    seen: list[str] = []

    class Pacer:
        def before_request(self, path: str) -> float:
            seen.append(trace.get_current_span().name)  # type: ignore[attr-defined]
            return 0.5

        def after_response(self, path: str, status: int, headers: Mapping[str, str]) -> None:
            seen.append(trace.get_current_span().name)  # type: ignore[attr-defined]

    sleeps: list[float] = []
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    with Transport(
        base_url="https://backend.test", http_client=client, sleep=sleeps.append, pacer=Pacer()
    ) as transport:
        transport.request("GET", "/v2/x/")
    assert seen == ["synapse_sdk.http GET", "GET"]
    assert sleeps == [0.5]


def test_a_streamed_download_is_one_call_span_with_its_resumes_inside(
    spans: InMemorySpanExporter,
) -> None:
    body = b"0123456789" * 1000
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("range"))
        if "range" in request.headers:
            return httpx.Response(
                206, content=body[5000:], headers={"Content-Range": f"bytes 5000-9999/{len(body)}"}
            )
        return httpx.Response(200, content=body[:5000], headers={"Content-Length": "10000"})

    class Sink:
        data = b""

        def write(self, chunk: bytes) -> None:
            self.data += chunk

        def restart(self) -> None:
            self.data = b""

    client = httpx.Client(transport=httpx.MockTransport(handler))
    sink = Sink()
    with Transport(base_url="https://backend.test", http_client=client, sleep=[].append) as t:
        done = t.download("/files/a.bin", sink, credentials=False)
    assert sink.data == body and (done.size, done.total, done.resumes) == (10_000, 10_000, 1)
    assert seen == [None, "bytes=5000-"]
    (call,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.INTERNAL]
    assert call.name == "synapse_sdk.http GET"
