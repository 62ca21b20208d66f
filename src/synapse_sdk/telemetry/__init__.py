"""Telemetry: retry hooks, and OpenTelemetry traces and metrics when OpenTelemetry is installed.

Retry hooks are plain callables told of every scheduled retry and of every give-up (see
:class:`RetryEvent`). Set them per engine (``Retrying(policy, hooks=[...])``), per client
(``SDKConfig(retry_hooks=[...])``: every call of a client built with that configuration) or for
the whole process (:func:`set_retry_hooks`)::

    from synapse_sdk.telemetry import RetryEvent, set_retry_hooks

    def on_retry(event: RetryEvent) -> None:
        print(event.kind, event.attempt, event.error_code, event.wait, event.correlation_id)

    set_retry_hooks([on_retry])

A hook that raises is logged (``synapse_sdk.telemetry.hook_failed``) and ignored.

OpenTelemetry (``pip install synapse-sdk[otel]``): when ``opentelemetry-api`` is importable, each
logical HTTP call is a span, each attempt a CLIENT span under it (HTTP client semantic
conventions), and each scheduled retry's wait an event of the call's span; metrics count attempt
durations, retries, rate-limited answers, retry-budget refusals and exported/failed items
(see :mod:`synapse_sdk.telemetry._otel` for the names). They go to the global providers unless
:func:`configure_opentelemetry` names others. Without OpenTelemetry
nothing of it is imported and a call pays one look-up of a module global.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Final

from synapse_sdk.telemetry import _hooks
from synapse_sdk.telemetry._hooks import (
    GIVING_UP,
    SCHEDULED,
    RetryEvent,
    RetryHook,
    get_retry_hooks,
    set_retry_hooks,
)

if TYPE_CHECKING:
    from synapse_sdk.telemetry._otel import OpenTelemetry

__all__ = [
    "GIVING_UP",
    "SCHEDULED",
    "RetryEvent",
    "RetryHook",
    "configure_opentelemetry",
    "get_retry_hooks",
    "grpc_span",
    "opentelemetry",
    "record_export",
    "set_retry_hooks",
]

_UNSET: Final[Any] = object()
# The adapter in use: _UNSET until first asked, None when OpenTelemetry is off or absent.
_adapter: Any = _UNSET


def opentelemetry() -> OpenTelemetry | None:
    """The OpenTelemetry adapter the clients use, or None when OpenTelemetry is not installed or
    was turned off. The first call imports it (with the global providers) if it is importable."""
    adapter = _adapter
    if adapter is _UNSET:
        try:
            configure_opentelemetry()
        except ImportError:
            configure_opentelemetry(enabled=False)
        adapter = _adapter
    return adapter  # type: ignore[no-any-return]


def configure_opentelemetry(
    *, enabled: bool = True, tracer_provider: Any = None, meter_provider: Any = None
) -> None:
    """Send the SDK's spans to ``tracer_provider`` and its metrics to ``meter_provider``
    (default: OpenTelemetry's global providers), or turn OpenTelemetry off for the SDK
    (``enabled=False``).

    Raises:
        ImportError: ``enabled`` and ``opentelemetry-api`` is not installed.
    """
    global _adapter
    if not enabled:
        _adapter = None
        _hooks.set_observers(())
        return
    from synapse_sdk.telemetry._otel import OpenTelemetry

    adapter = OpenTelemetry(tracer_provider, meter_provider)
    _adapter = adapter
    _hooks.set_observers((adapter.on_retry,))


# A retry engine's first failure sets OpenTelemetry up if no client call did it before.
_hooks.set_loader(opentelemetry)


def record_export(exported: int, failed_by_code: Mapping[str, int]) -> None:
    """Count an export run's items (exported, and failed by code) when OpenTelemetry is on."""
    adapter = opentelemetry()
    if adapter is not None:
        adapter.count_export(exported, failed_by_code)


def grpc_span(
    target: str, service: str, method: str, correlation_id: str
) -> AbstractContextManager[object]:
    """The span of one gRPC call when OpenTelemetry is on, else a context that does nothing."""
    adapter = opentelemetry()
    if adapter is None:
        return nullcontext()
    return adapter.grpc_call(target, service, method, correlation_id)
