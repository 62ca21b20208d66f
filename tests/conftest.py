"""Shared fixtures: asyncio as the only anyio backend (async tests use ``@pytest.mark.anyio``).

Also registers the suite-wide secret sink (``tests/synapse_testkit/secret_sink.py``): every
test fails if a planted secret reaches a log record or an SDK error's text.
"""

from __future__ import annotations

import pytest

from synapse_testkit import secret_sink


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(secret_sink, "secret_sink")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
