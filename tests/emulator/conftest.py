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


def client_for(emu: Emulator, **headers: str) -> httpx.Client:
    """An httpx client authenticated against ``emu``."""
    return httpx.Client(
        base_url=emu.url,
        headers={"Authorization": f"Bearer {emu.token}", **headers},
        timeout=10.0,
    )


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with client_for(emu) as http:
        yield http
