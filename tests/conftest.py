"""Shared fixtures: asyncio as the only anyio backend (async tests use ``@pytest.mark.anyio``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
