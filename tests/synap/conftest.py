"""Fixtures for the Synap tests: one emulator per session, a shared manual clock, client factories.

Every test registers its own instance, so tests never share credentials, sessions or data; the
fault plan is cleared around each test. The clock only moves forward (time travel is per test,
but instances created later simply start later).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from synapse_sdk.emulator import FakeClock
from synapse_sdk.emulator.synap import SynapEmulator
from synapse_testkit.synap_world import SynapWorld


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


@pytest.fixture
def env(emu: SynapEmulator, clock: FakeClock, tmp_path: Path) -> Iterator[SynapWorld]:
    # ``clock``: its sleeps are cleared for this test (the world's clock is the same object)
    world = SynapWorld(emu, tmp_path)
    yield world
    world.close()
