"""Deterministic fault injection for the Synap emulator.

Faults are queued per operation and served in order, one per request, so a test states exactly
what the next requests meet (``emu.faults.inject("context", "rate_limit", times=2)``). An
operation of ``"*"`` matches every operation. Every transient error of the SDK has a fault:

==================  =================================================================
kind                what the request meets
==================  =================================================================
rate_limit          HTTP 429 ``rate_limited`` with ``Retry-After`` (gRPC RESOURCE_EXHAUSTED)
service_unavailable HTTP 503 ``service_unavailable`` (gRPC UNAVAILABLE)
agent_unavailable   HTTP 503 ``agent_unavailable``: the agent is restarting (gRPC UNAVAILABLE)
stall               the response is held ``stall_seconds`` (real time), past a short read timeout
drop                the connection is closed without a response (gRPC: the stream is cut)
==================  =================================================================
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["OPERATIONS", "Fault", "FaultKind", "FaultPlan"]

FaultKind = Literal["rate_limit", "service_unavailable", "agent_unavailable", "stall", "drop"]
_KINDS: frozenset[str] = frozenset(get_args(FaultKind))

#: The operations a fault can target.
OPERATIONS: frozenset[str] = frozenset(
    {"bootstrap", "renew", "session", "conversation", "ingest", "context", "forget", "listen"}
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure; ``retry_after`` applies to rate limits, ``stall_seconds`` to stalls."""

    kind: FaultKind
    retry_after: float | None = None
    stall_seconds: float = 5.0


class FaultPlan:
    """Queues of faults per operation, consumed one per request (thread-safe).

    Raises:
        ValueError: an unknown operation or kind, a negative count or duration.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[tuple[Fault, int | None]]] = {}
        #: How many faults of each ``(operation, kind)`` were served.
        self.served: Counter[tuple[str, str]] = Counter()

    def inject(
        self,
        operation: str,
        kind: FaultKind,
        *,
        times: int | None = 1,
        retry_after: float | None = None,
        stall_seconds: float = 5.0,
    ) -> None:
        """Make the next ``times`` requests of ``operation`` fail with ``kind`` (None: forever,
        until :meth:`clear`)."""
        if operation != "*" and operation not in OPERATIONS:
            raise ValueError(
                f"unknown operation {operation!r}; expected one of {sorted(OPERATIONS)}"
            )
        if kind not in _KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(_KINDS)}")
        if times is not None and (isinstance(times, bool) or times < 1):
            raise ValueError(f"times must be >= 1 or None, got {times!r}")
        for name, value in (("retry_after", retry_after), ("stall_seconds", stall_seconds)):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        with self._lock:
            self._queues.setdefault(operation, deque()).append(
                (Fault(kind, retry_after, stall_seconds), times)
            )

    def take(self, operation: str) -> Fault | None:
        """The fault the next request of ``operation`` meets, or None (consumes one use)."""
        with self._lock:
            for key in (operation, "*"):
                queue = self._queues.get(key)
                if not queue:
                    continue
                fault, times = queue[0]
                if times is None:
                    pass
                elif times <= 1:
                    queue.popleft()
                else:
                    queue[0] = (fault, times - 1)
                self.served[(operation, fault.kind)] += 1
                return fault
        return None

    def clear(self, operation: str | None = None) -> None:
        """Drop queued faults of one operation, or of all."""
        with self._lock:
            if operation is None:
                self._queues.clear()
            else:
                self._queues.pop(operation, None)

    def pending(self) -> dict[str, int | None]:
        """Remaining uses per operation (None: unlimited)."""
        with self._lock:
            out: dict[str, int | None] = {}
            for op, queue in self._queues.items():
                if not queue:
                    continue
                counts = [times for _, times in queue]
                out[op] = None if None in counts else sum(t for t in counts if t is not None)
            return out
