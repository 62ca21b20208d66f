"""Retry hooks: callables told of every scheduled retry and of every give-up.

Kept free of imports beyond the standard library: the retry engine imports this module, so it
must stay as light as :mod:`synapse_sdk.retry` itself. The engine calls :func:`dispatch` only on
its failure path (a successful call never reaches it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "GIVING_UP",
    "SCHEDULED",
    "RetryEvent",
    "RetryHook",
    "dispatch",
    "get_retry_hooks",
    "set_retry_hooks",
]

logger: Final = logging.getLogger("synapse_sdk.telemetry")

#: :attr:`RetryEvent.kind` of a retry the engine will take after ``wait`` seconds.
SCHEDULED: Final = "scheduled"
#: :attr:`RetryEvent.kind` of the engine giving up (``reason`` says why).
GIVING_UP: Final = "giving_up"

EVENT_HOOK_FAILED: Final = "synapse_sdk.telemetry.hook_failed"


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """What a retry hook is told: one failed attempt and what the engine does next.

    ``kind`` is ``"scheduled"`` (a retry follows after ``wait`` seconds: the exact wait the
    engine sleeps) or ``"giving_up"`` (the ``error`` surfaces; ``reason`` is the engine's reason,
    such as ``max_attempts``, ``not_retryable`` or ``budget_exhausted``; ``wait`` is the refused
    wait for ``retry_after_too_long`` and ``deadline``, else None). ``attempt`` is the number
    (from 1) of the attempt that failed. ``error_code`` is the code the logs name (the backend's
    ``error_code`` when it sent one, else the SDK's stable ``code``); ``correlation_id`` the id
    the call sent. The error is the SDK's own (its message holds no credential: the transport
    redacts them); ``call_name`` names the engine (``"http"`` for the clients' transport).
    """

    kind: Literal["scheduled", "giving_up"]
    call_name: str | None
    attempt: int
    max_attempts: int
    wait: float | None
    reason: str | None
    error: BaseException
    error_code: str | None
    correlation_id: str | None


#: A retry hook: called with each :class:`RetryEvent`; what it returns is ignored.
RetryHook = Callable[[RetryEvent], object]

# The process-wide hooks (set_retry_hooks) and the SDK's own observers (the OpenTelemetry
# adapter), read by dispatch. Tuples replaced whole: readers need no lock.
_global: tuple[RetryHook, ...] = ()
_observers: tuple[RetryHook, ...] = ()


def check_hooks(hooks: object, what: str) -> tuple[RetryHook, ...]:
    """``hooks`` as a tuple of callables.

    Raises:
        TypeError: ``hooks`` is not an iterable of callables (a lone callable included).
    """
    if hooks is None:
        return ()
    if callable(hooks) or isinstance(hooks, str | bytes) or not isinstance(hooks, Iterable):
        raise TypeError(f"{what} must be an iterable of callables, not {hooks!r}")
    result = tuple(hooks)
    for hook in result:
        if not callable(hook):
            raise TypeError(f"{what} must hold callables, got {hook!r}")
    return result


def set_retry_hooks(hooks: Iterable[RetryHook] | None) -> None:
    """Replace the process-wide retry hooks (called for every retry engine, after the engine's
    own hooks); None or ``()`` removes them.

    Raises:
        TypeError: ``hooks`` is not an iterable of callables.
    """
    global _global
    _global = check_hooks(hooks, "hooks")


def get_retry_hooks() -> tuple[RetryHook, ...]:
    """The process-wide retry hooks."""
    return _global


def set_observers(observers: tuple[RetryHook, ...]) -> None:
    """Replace the SDK's own observers (called after every other hook)."""
    global _observers
    _observers = observers


# Called once, by the first any_hooks(): sets up the observers (the OpenTelemetry adapter, when
# OpenTelemetry is installed), so a retry engine used before any client call is observed too.
_loader: Callable[[], object] | None = None


def set_loader(loader: Callable[[], object] | None) -> None:
    """Set what the first :func:`any_hooks` calls to set the observers up."""
    global _loader
    _loader = loader


def any_hooks() -> bool:
    """Whether a process-wide hook or observer would be called (asked on failure paths only:
    the first call sets the observers up)."""
    global _loader
    loader = _loader
    if loader is not None:
        _loader = None
        loader()
    return bool(_global or _observers)


def dispatch(event: RetryEvent, hooks: tuple[RetryHook, ...]) -> None:
    """Call ``hooks``, then the process-wide hooks, then the observers, with ``event``.

    A hook that raises is logged (``synapse_sdk.telemetry.hook_failed`` at WARNING, with the
    hook's name and error type) and the next one is called: a hook never breaks the call.
    """
    for hook in (*hooks, *_global, *_observers):
        try:
            hook(event)
        except Exception as exc:  # a hook's bug must not break the call it watches
            logger.warning(
                EVENT_HOOK_FAILED,
                extra={
                    "event": EVENT_HOOK_FAILED,
                    "hook": getattr(hook, "__qualname__", type(hook).__qualname__),
                    "error_type": type(exc).__name__,
                    "correlation_id": event.correlation_id,
                },
            )
