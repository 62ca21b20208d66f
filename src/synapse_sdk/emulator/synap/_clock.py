"""A manual wall clock: the one time source a Synap client and its emulator share in tests.

Certificate lifetimes (days), session idle windows (minutes) and bootstrap token validity are all
measured on a clock passed in as a plain ``Callable[[], float]`` returning epoch seconds. In
production that is :func:`time.time`; in tests it is a :class:`ManualClock` handed to both the
client and the :class:`~synapse_sdk.emulator.synap.SynapEmulator`, so a test travels nine days
forward with ``clock.advance(9 * 86400)`` and never sleeps.
"""

from __future__ import annotations

import asyncio
import math
import threading

__all__ = ["DEFAULT_START", "ManualClock"]

#: 2026-01-01T00:00:00Z — a fixed, readable starting point so test output is reproducible.
DEFAULT_START = 1_767_225_600.0


class ManualClock:
    """A thread-safe clock that moves only when told to.

    Call it to read the time (epoch seconds). :meth:`sleep` and :meth:`asleep` advance it instead
    of waiting, and record the requested durations in :attr:`sleeps`, so they can be injected as
    a client's ``sleep=``/``asleep=`` and retry backoff costs no real time.

    Raises:
        ValueError: a start, step or sleep that is negative, NaN or infinite.
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = _finite("start", start)
        self._lock = threading.Lock()
        #: Durations passed to :meth:`sleep`/:meth:`asleep`, in call order.
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0) and return the new time."""
        step = _finite("seconds", seconds)
        with self._lock:
            self._now += step
            return self._now

    def sleep(self, seconds: float) -> None:
        """Record ``seconds`` and advance the clock by it; never blocks."""
        step = _finite("seconds", seconds)
        with self._lock:
            self.sleeps.append(step)
            self._now += step

    async def asleep(self, seconds: float) -> None:
        """Async twin of :meth:`sleep`; yields to the event loop once so other tasks can run."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"ManualClock(now={self():.3f})"


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)
