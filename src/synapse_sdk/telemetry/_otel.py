"""The OpenTelemetry adapter: spans and metrics of the transport's calls and attempts.

Imported only by :func:`synapse_sdk.telemetry.opentelemetry` once ``opentelemetry`` proved
importable; nothing else in the SDK imports it. Follows the HTTP client semantic conventions
(``http.request.method``, ``server.address``, ``server.port``, ``url.full``,
``http.response.status_code``, ``http.request.resend_count``, ``error.type``). What it records is
bounded and holds no secret: query values are redacted from ``url.full``, ``error.type`` is the
SDK's stable error code, exceptions are not recorded (no message, no traceback), and the
correlation id is the only id (``synapse.correlation_id``, on spans only).

Metrics (attributes are methods, hosts, status codes and error codes, never ids):

* ``http.client.request.duration`` (histogram, s): each HTTP attempt;
* ``synapse.client.retries`` ({retry}): each scheduled retry, by ``error.type`` and
  ``synapse.retry.name`` (the engine's name, ``http`` for the clients);
* ``synapse.client.rate_limited`` ({response}): each 429 answer;
* ``synapse.client.retry_budget.refusals`` ({refusal}): each retry the budget refused;
* ``synapse.export.items`` ({item}): items an export run settled, by ``synapse.export.outcome``
  (``exported`` or ``failed``) and, when failed, ``error.type`` (the item's code).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Final, Protocol
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from synapse_sdk.clients._log_redaction import redact_query
from synapse_sdk.exceptions import SynapError
from synapse_sdk.retry import BUDGET_EXHAUSTED
from synapse_sdk.telemetry._hooks import SCHEDULED, RetryEvent

__all__ = ["HttpCall", "OpenTelemetry", "error_type", "redact_url"]

_SCOPE: Final = "synapse_sdk"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

CORRELATION_ID: Final = "synapse.correlation_id"
ATTEMPTS: Final = "synapse.attempts"
RETRY_EVENT: Final = "synapse.retry"
#: The gRPC status code of a call the client cancelled.
_GRPC_CANCELLED: Final = 1
#: The HTTP client semantic conventions' advisory buckets for request durations.
_DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)


class HttpCall(Protocol):
    """What the adapter reads of a transport call."""

    @property
    def method(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def params(self) -> Mapping[str, object] | None: ...

    @property
    def correlation_id(self) -> str: ...

    @property
    def attempt(self) -> int: ...


def error_type(exc: BaseException) -> str:
    """The ``error.type`` of ``exc``: the SDK's stable code, else the exception class's name
    (bounded either way: never a message or an id)."""
    if isinstance(exc, SynapError):
        return exc.code
    return type(exc).__qualname__


def redact_url(url: str, params: Mapping[str, object] | None = None) -> str:
    """``url`` with ``params`` appended, fit for ``url.full``: no user info, every query value
    replaced by ``REDACTED`` (a pre-signed URL's signature, a cursor), the fragment dropped."""
    return redact_query(url, [str(key) for key in params or ()])


@functools.lru_cache(maxsize=256)
def _origin_attributes(origin: str) -> Mapping[str, str | int]:
    """``server.address`` and ``server.port`` of a URL's ``scheme://authority`` (cached: a
    client talks to few origins)."""
    parts = urlsplit(origin)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = _DEFAULT_PORTS.get(parts.scheme)
    found: dict[str, str | int] = {"server.address": parts.hostname or ""}
    if port is not None:
        found["server.port"] = port
    return found


def _server(url: str) -> Mapping[str, str | int]:
    """``server.address`` and ``server.port`` of ``url``."""
    end = url.find("/", url.find("//") + 2)
    return _origin_attributes(url if end < 0 else url[:end])


def _fail(span: Span, exc: BaseException) -> str:
    kind = error_type(exc)
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR))
    return kind


class AttemptScope:
    """The span of one HTTP attempt; the transport tells it the answer's status."""

    __slots__ = ("span", "started", "status")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.status: int | None = None
        self.started = time.perf_counter()

    def answered(self, status: int) -> None:
        """Record the answer's status code."""
        self.status = status
        self.span.set_attribute("http.response.status_code", status)


class OpenTelemetry:
    """Spans and metrics of the SDK's HTTP calls: the tracer of ``tracer_provider`` and the
    meter of ``meter_provider`` (default: the global ones, so providers set later are used)."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        from synapse_sdk import __version__

        self.tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests (each attempt).",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        self.retries = meter.create_counter(
            "synapse.client.retries", unit="{retry}", description="Retries scheduled."
        )
        self.rate_limited = meter.create_counter(
            "synapse.client.rate_limited",
            unit="{response}",
            description="Rate-limited (429) answers.",
        )
        self.budget_refusals = meter.create_counter(
            "synapse.client.retry_budget.refusals",
            unit="{refusal}",
            description="Retries the retry budget refused.",
        )
        self.export_items = meter.create_counter(
            "synapse.export.items", unit="{item}", description="Items an export settled."
        )

    def _attributes(self, call: HttpCall) -> dict[str, str | int]:
        """A span's attributes (built only for a recording span: they cost a URL parse)."""
        return {
            "http.request.method": call.method,
            **_server(call.url),
            "url.full": redact_url(call.url, call.params),
            CORRELATION_ID: call.correlation_id,
        }

    def _span(self, name: str, kind: SpanKind) -> AbstractContextManager[Span]:
        """A current span that records no exception (messages may quote a body): the callers
        set the error's status and ``error.type`` themselves."""
        return self.tracer.start_as_current_span(
            name, kind=kind, record_exception=False, set_status_on_exception=False
        )

    @contextmanager
    def http_call(self, call: HttpCall) -> Iterator[Span]:
        """The span of one logical call (every attempt and wait inside it)."""
        with self._span(f"synapse_sdk.http {call.method}", SpanKind.INTERNAL) as span:
            if span.is_recording():
                span.set_attributes(self._attributes(call))
            try:
                yield span
            except BaseException as exc:
                _fail(span, exc)
                raise
            finally:
                span.set_attribute(ATTEMPTS, call.attempt)

    @contextmanager
    def http_attempt(self, call: HttpCall) -> Iterator[AttemptScope]:
        """The CLIENT span of the attempt about to start (number ``call.attempt + 1``)."""
        with self._span(call.method, SpanKind.CLIENT) as span:
            if span.is_recording():
                attributes = self._attributes(call)
                if call.attempt:
                    attributes["http.request.resend_count"] = call.attempt
                span.set_attributes(attributes)
            scope = AttemptScope(span)
            kind: str | None = None
            try:
                yield scope
            except BaseException as exc:
                status = getattr(exc, "status_code", None)
                if isinstance(status, int) and scope.status is None:
                    scope.answered(status)
                kind = _fail(span, exc)
                raise
            finally:
                self._measure(call, scope, kind)

    def _measure(self, call: HttpCall, scope: AttemptScope, kind: str | None) -> None:
        """Record an attempt's duration (and a 429) with the metric's bounded attributes."""
        measured = {"http.request.method": call.method, **_server(call.url)}
        if scope.status is not None:
            measured["http.response.status_code"] = scope.status
        if kind is not None:
            measured["error.type"] = kind
        self.duration.record(time.perf_counter() - scope.started, measured)
        if scope.status == 429:
            self.rate_limited.add(1, measured)

    def on_retry(self, event: RetryEvent) -> None:
        """A retry hook: counts retries and budget refusals; a scheduled retry's wait becomes an
        event of the current span."""
        counted = {
            "error.type": error_type(event.error),
            "synapse.retry.name": event.call_name or "",
        }
        if event.kind != SCHEDULED:
            if event.reason == BUDGET_EXHAUSTED:
                self.budget_refusals.add(1, counted)
            return
        self.retries.add(1, counted)
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                RETRY_EVENT,
                {
                    "synapse.retry.attempt": event.attempt,
                    "synapse.retry.wait": event.wait or 0.0,
                    "error.type": error_type(event.error),
                },
            )

    def count_export(self, exported: int, failed_by_code: Mapping[str, int]) -> None:
        """Count an export run's settled items: exported, and failed by code."""
        if exported:
            self.export_items.add(exported, {"synapse.export.outcome": "exported"})
        for code, count in failed_by_code.items():
            self.export_items.add(count, {"synapse.export.outcome": "failed", "error.type": code})

    @contextmanager
    def grpc_call(
        self, target: str, service: str, method: str, correlation_id: str
    ) -> Iterator[Span]:
        """The CLIENT span of one gRPC call (a listening stream's connection) to ``target``
        (``host:port``), with the RPC semantic conventions; a failure's gRPC status comes from
        the grpc error the SDK's error was raised from."""
        with self._span(f"{service}/{method}", SpanKind.CLIENT) as span:
            if span.is_recording():
                host, _, port = target.rpartition(":")
                attributes: dict[str, str | int] = {
                    "rpc.system": "grpc",
                    "rpc.service": service,
                    "rpc.method": method,
                    "server.address": (host or target).strip("[]"),
                    CORRELATION_ID: correlation_id,
                }
                if port.isdigit():
                    attributes["server.port"] = int(port)
                span.set_attributes(attributes)
            try:
                yield span
            except asyncio.CancelledError:
                span.set_attribute("rpc.grpc.status_code", _GRPC_CANCELLED)  # stopped: no error
                raise
            except BaseException as exc:
                code = getattr(exc.__cause__, "code", None)
                status = code() if callable(code) else None
                value = getattr(status, "value", None)
                if isinstance(value, tuple) and value and isinstance(value[0], int):
                    span.set_attribute("rpc.grpc.status_code", value[0])
                _fail(span, exc)
                raise
            span.set_attribute("rpc.grpc.status_code", 0)
