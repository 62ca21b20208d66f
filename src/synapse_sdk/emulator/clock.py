"""A manual clock that tests share between the emulator and a client, so nobody sleeps for real."""

from __future__ import annotations

import asyncio
import math
import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A thread-safe clock that only moves when told to.

    Pass the instance as the emulator's ``clock=`` (it is callable) and its :meth:`sleep` /
    :meth:`asleep` as the client's sleep: every wait the client plans advances the time the
    emulator's token bucket and outage windows see, instantly. ``sleeps`` records each wait.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = self._check(start, "start")
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    @staticmethod
    def _check(value: float, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{what} must be a number of seconds, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{what} must be finite, got {value!r}")
        return float(value)

    def __call__(self) -> float:
        """The current fake time in seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward. Raises ``ValueError`` for a negative or non-finite step."""
        step = self._check(seconds, "seconds")
        if step < 0:
            raise ValueError(f"a clock cannot go back ({seconds!r} seconds)")
        with self._lock:
            self._now += step

    def sleep(self, seconds: float) -> None:
        """Record the wait and advance the clock by it, returning at once (like ``time.sleep``)."""
        self.advance(seconds)
        with self._lock:
            self.sleeps.append(float(seconds))

    async def asleep(self, seconds: float) -> None:
        """The async flavour of :meth:`sleep`; yields to the event loop once."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self():.3f})"
