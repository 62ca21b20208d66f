"""Fixtures of the reliability tests: one Synap emulator for the folder, clients of fresh instances.

Every test registers its own instance, so tests share no credentials or sessions. The Synap
clock only moves forward; a test that travels in time does so for instances it made itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from synapse_sdk.emulator import FakeClock
from synapse_sdk.emulator.synap import Lifetimes, SynapEmulator
from synapse_testkit.synap_world import SynapWorld

#: Certificates live an hour (renewal is due after 42 minutes) and sessions outlive that, so a
#: test can cross the renewal point with a session still open.
LIFETIMES = Lifetimes(certificate_ttl=3_600.0, session_idle=4 * 3_600.0, session_max=24 * 3_600.0)


@pytest.fixture(scope="session")
def reliability_synap() -> Iterator[SynapEmulator]:
    with SynapEmulator(clock=FakeClock(), lifetimes=LIFETIMES) as emulator:
        yield emulator


@pytest.fixture
def synap(reliability_synap: SynapEmulator, tmp_path: Path) -> Iterator[SynapWorld]:
    reliability_synap.faults.clear()
    world = SynapWorld(reliability_synap, tmp_path)
    yield world
    world.close()
    reliability_synap.faults.clear()
