"""A fake time and scripted operations for tests of code that retries and waits.

Shared by the retry engine's sync and async tests and the client tests, so the sync and async
twins of a test drive the same fakes.
"""

from __future__ import annotations

import asyncio
from typing import Any


class FakeTime:
    """A clock that only moves when slept on or told to (``now += ...``); records every sleep.

    Read it as ``time()`` or ``time.clock()``; ``sleep``/``asleep`` return at once.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


class Script:
    """An operation that plays outcomes in order: an exception (instance or class) is raised,
    anything else returned; the last outcome repeats. ``took`` seconds pass on ``time`` during
    each call."""

    def __init__(self, *outcomes: Any, time: FakeTime | None = None, took: float = 0.0) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.seen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.time = time
        self.took = took

    def _record(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls += 1
        self.seen.append((args, kwargs))

    def _play(self) -> Any:
        if self.time is not None:
            self.time.now += self.took
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, type) and issubclass(outcome, BaseException):
            raise outcome("scripted")
        return outcome

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._record(args, kwargs)
        return self._play()


class AsyncScript(Script):
    """The async :class:`Script`: each call suspends once, as a network call does."""

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self._record(args, kwargs)
        await asyncio.sleep(0)
        return self._play()
