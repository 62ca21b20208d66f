"""Shared fixtures: asyncio as the only anyio backend (async tests use ``@pytest.mark.anyio``).

Also registers the suite-wide secret sink (``tests/synapse_testkit/secret_sink.py``): every
test fails if a planted secret reaches a log record or an SDK error's text. Two session
fixtures are shared by several folders: ``moto_server`` (moto's S3 server on loopback) and
``ray_address`` (one local Ray instance for the whole session).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from synapse_testkit import secret_sink
from synapse_testkit.s3 import aws_env, start_moto


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


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The URL of a moto S3 server running for the whole session."""
    with start_moto() as url:
        yield url


@pytest.fixture(scope="session")
def ray_address(moto_server: str) -> Iterator[str]:
    """One local Ray instance for the session (``num_cpus=2``, no dashboard); its GCS address,
    for CLI subprocesses. Its node has credentials for ``moto_server`` in its environment, as
    docs/scale-out.md asks of every node (workers do not get the driver's). Skips where Ray
    cannot be imported (no wheel for this Python)."""
    ray = pytest.importorskip("ray", reason="Ray has no wheel for this Python or is not installed")
    if not ray.is_initialized():
        node_env = aws_env(moto_server)
        saved = {key: os.environ.get(key) for key in node_env}
        os.environ.update(node_env)  # inherited by the node's processes
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        finally:
            for key, value in saved.items():  # only these: ray.init sets variables of its own
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()
