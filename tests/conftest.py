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


@pytest.fixture(autouse=True)
def _tenant_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CLI run with ``--backend`` needs a tenant; like a configured user's shell, the suite's
    environment names the embedded emulator's default one (``emulator``). Tests of a missing
    tenant remove it from the environment they pass."""
    monkeypatch.setenv("SYNAPSE_TENANT", "emulator")
