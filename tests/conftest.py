"""Shared fixtures: asyncio as the only anyio backend (async tests use ``@pytest.mark.anyio``).

Also registers the suite-wide secret sink (``tests/reliability/secret_sink.py``): every test
fails if a planted secret reaches a log record or an SDK error's text.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load_secret_sink() -> object:
    name = "synapse_tests_secret_sink"
    if name not in sys.modules:
        path = Path(__file__).parent / "reliability" / "secret_sink.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_load_secret_sink(), "secret_sink")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
