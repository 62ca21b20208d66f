"""Fixtures for the Synap tests: one emulator per session, a shared manual clock, client factories.

Every test registers its own instance, so tests never share credentials, sessions or data; the
fault plan is cleared around each test. The clock only moves forward (time travel is per test,
but instances created later simply start later).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.clients.synap import AsyncSynapClient, SynapClient
from synapse_sdk.emulator import FakeClock
from synapse_sdk.emulator.synap import SynapEmulator


@pytest.fixture(scope="session")
def synap_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def synap_emulator(synap_clock: FakeClock) -> Iterator[SynapEmulator]:
    with SynapEmulator(clock=synap_clock) as emulator:
        yield emulator


@pytest.fixture
def clock(synap_clock: FakeClock) -> FakeClock:
    synap_clock.sleeps.clear()
    return synap_clock


@pytest.fixture
def emu(synap_emulator: SynapEmulator) -> Iterator[SynapEmulator]:
    synap_emulator.faults.clear()
    yield synap_emulator
    synap_emulator.faults.clear()


class Env:
    """One test's world: the emulator, the clock, a temp dir and the clients it made."""

    def __init__(self, emu: SynapEmulator, clock: FakeClock, tmp_path: Path) -> None:
        self.emu = emu
        self.clock = clock
        self.tmp_path = tmp_path
        self._clients: list[SynapClient] = []
        self._count = 0

    def fresh(self) -> tuple[str, str]:
        """A newly registered instance and a bootstrap token for it."""
        instance_id = self.emu.register_instance()
        return instance_id, self.emu.issue_bootstrap_token(instance_id)

    def creds_dir(self) -> Path:
        self._count += 1
        return self.tmp_path / f"creds-{self._count}"

    def options(self, **overrides: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            **self.emu.client_options(),
            "sleep": self.clock.sleep,
            "asleep": self.clock.asleep,
        }
        options.update(overrides)
        return options

    def client(self, instance_id: str, **overrides: Any) -> SynapClient:
        overrides.setdefault("credentials_dir", self.creds_dir())
        client = SynapClient(instance_id, **self.options(**overrides))
        self._clients.append(client)
        return client

    def async_client(self, instance_id: str, **overrides: Any) -> AsyncSynapClient:
        overrides.setdefault("credentials_dir", self.creds_dir())
        overrides.pop("sleep", None)
        options = self.options(**overrides)
        options.pop("sleep")
        return AsyncSynapClient(instance_id, **options)

    def ready(self, **overrides: Any) -> SynapClient:
        """An initialized client of a fresh instance."""
        instance_id, token = self.fresh()
        client = self.client(instance_id, **overrides)
        client.initialize(bootstrap_token=token)
        return client

    @staticmethod
    def closed_port() -> int:
        """A loopback port nothing listens on (bound, then released)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        return port

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def env(emu: SynapEmulator, clock: FakeClock, tmp_path: Path) -> Iterator[Env]:
    world = Env(emu, clock, tmp_path)
    yield world
    world.close()
