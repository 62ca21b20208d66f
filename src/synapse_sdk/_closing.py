"""One ``with`` protocol for the SDK's objects that hold something open until ``close()``."""

from __future__ import annotations

from abc import abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["ClosesOnExit"]


class ClosesOnExit:
    """Mixin: ``with obj:`` gives ``obj`` and calls ``obj.close()`` on the way out, whether the
    block returned or raised (the exception propagates; ``close`` is never given it)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the object holds; idempotent in every subclass."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
