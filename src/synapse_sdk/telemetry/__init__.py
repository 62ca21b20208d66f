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

This package imports nothing beyond the standard library.
"""

from __future__ import annotations

from synapse_sdk.telemetry._hooks import (
    GIVING_UP,
    SCHEDULED,
    RetryEvent,
    RetryHook,
    get_retry_hooks,
    set_retry_hooks,
)

__all__ = [
    "GIVING_UP",
    "SCHEDULED",
    "RetryEvent",
    "RetryHook",
    "get_retry_hooks",
    "set_retry_hooks",
]
