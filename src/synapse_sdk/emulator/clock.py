"""The one fake clock of the emulators: tests share it between an emulator and a client, so
nobody sleeps for real."""

from __future__ import annotations

import asyncio
import math
import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A thread-safe clock that only moves when told to.

    Call it to read the time in seconds. Pass the instance as an emulator's ``clock=`` and its
    :meth:`sleep` / :meth:`asleep` as the client's sleep: every wait the client plans then
    advances the time the emulator sees, instantly, and :attr:`sleeps` records each wait.

    * The backend :class:`~synapse_sdk.emulator.Emulator` reads it for its token bucket,
      outage windows and log times (only differences matter, so the default start of 0 does).
    * The :class:`~synapse_sdk.emulator.synap.SynapEmulator` and a Synap client read it as the
      wall clock (epoch seconds) for certificate lifetimes, bootstrap-token windows and session
      idle timers: ``clock.advance(9 * 86_400)`` travels nine days.

    Raises ``TypeError`` for a start or step that is not a number and ``ValueError`` for one
    that is not finite, or for a negative step.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = self._check(start, "start")
        self._lock = threading.Lock()
        #: Durations passed to :meth:`sleep` / :meth:`asleep`, in call order.
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

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time. Raises ``ValueError`` for a
        negative or non-finite step."""
        step = self._check(seconds, "seconds")
        if step < 0:
            raise ValueError(f"a clock cannot go back ({seconds!r} seconds)")
        with self._lock:
            self._now += step
            return self._now

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
