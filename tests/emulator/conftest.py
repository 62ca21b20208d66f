"""Fixtures for the emulator tests: emulators over real loopback sockets, fake clocks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from synapse_sdk.emulator import Emulator, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture(scope="module")
def shared_emu() -> Iterator[Emulator]:
    """A clean emulator (no faults) with 450 items per resource, shared by a module's tests."""
    with Emulator(items=450, seed=0) as running:
        yield running


@pytest.fixture
def emu(shared_emu: Emulator) -> Emulator:
    """The module's clean emulator with an empty request log."""
    shared_emu.reset_log()
    return shared_emu


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with emu.client() as http:
        yield http
