"""Fixtures of the reliability tests: one Synap emulator for the folder, clients of fresh instances.

Every test registers its own instance, so tests share no credentials or sessions. The Synap
clock only moves forward; a test that travels in time does so for instances it made itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.clients.synap import AsyncSynapClient, SynapClient
from synapse_sdk.emulator import FakeClock
from synapse_sdk.emulator.synap import Lifetimes, SynapEmulator

#: Certificates live an hour (renewal is due after 42 minutes) and sessions outlive that, so a
#: test can cross the renewal point with a session still open.
LIFETIMES = Lifetimes(certificate_ttl=3_600.0, session_idle=4 * 3_600.0, session_max=24 * 3_600.0)


@pytest.fixture(scope="session")
def reliability_synap() -> Iterator[SynapEmulator]:
    with SynapEmulator(clock=FakeClock(), lifetimes=LIFETIMES) as emulator:
        yield emulator


class SynapWorld:
    """A test's view of the Synap emulator: fresh instances, clients on the fake clock."""

    def __init__(self, emu: SynapEmulator, tmp_path: Path) -> None:
        self.emu = emu
        self.clock: FakeClock = emu.clock  # type: ignore[assignment]
        self.tmp_path = tmp_path
        self._count = 0
        self._clients: list[SynapClient] = []

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
            "credentials_dir": self.creds_dir(),
            "asleep": self.clock.asleep,
        }
        options.update(overrides)
        return options

    def client(self, instance_id: str, **overrides: Any) -> SynapClient:
        client = SynapClient(instance_id, sleep=self.clock.sleep, **self.options(**overrides))
        self._clients.append(client)
        return client

    def async_client(self, instance_id: str, **overrides: Any) -> AsyncSynapClient:
        return AsyncSynapClient(instance_id, **self.options(**overrides))

    def ready(self, **overrides: Any) -> SynapClient:
        """An initialized client of a fresh instance."""
        instance_id, token = self.fresh()
        client = self.client(instance_id, **overrides)
        client.initialize(bootstrap_token=token)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def synap(reliability_synap: SynapEmulator, tmp_path: Path) -> Iterator[SynapWorld]:
    reliability_synap.faults.clear()
    world = SynapWorld(reliability_synap, tmp_path)
    yield world
    world.close()
    reliability_synap.faults.clear()
