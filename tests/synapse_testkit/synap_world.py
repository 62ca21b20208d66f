"""One test's view of a Synap emulator, shared by ``tests/synap`` and ``tests/reliability``.

Every test registers its own instances, so tests share no credentials or sessions; the clients
run on the emulator's fake clock (``sleep``/``asleep``), so no test waits for real.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, cast

from synapse_sdk.clients.synap import AsyncSynapClient, SynapClient
from synapse_sdk.emulator import FakeClock
from synapse_sdk.emulator.synap import SynapEmulator


class SynapWorld:
    """Fresh instances of ``emu``, clients on its fake clock with their own credentials under
    ``tmp_path``, and :meth:`close` for the sync clients it made."""

    def __init__(self, emu: SynapEmulator, tmp_path: Path) -> None:
        self.emu = emu
        self.clock = cast(FakeClock, emu.clock)
        self.tmp_path = tmp_path
        self._clients: list[SynapClient] = []
        self._count = 0

    def fresh(self) -> tuple[str, str]:
        """A newly registered instance and a bootstrap token for it."""
        instance_id = self.emu.register_instance()
        return instance_id, self.emu.issue_bootstrap_token(instance_id)

    def creds_dir(self) -> Path:
        """A credentials directory no other client of this test uses."""
        self._count += 1
        return self.tmp_path / f"creds-{self._count}"

    def options(self, **overrides: Any) -> dict[str, Any]:
        """A sync client's keyword arguments: the emulator's URL and trust root, the fake clock's
        sleeps, then ``overrides``."""
        options: dict[str, Any] = {
            **self.emu.client_options(),
            "sleep": self.clock.sleep,
            "asleep": self.clock.asleep,
        }
        options.update(overrides)
        return options

    def client(self, instance_id: str, **overrides: Any) -> SynapClient:
        """A sync client (closed by :meth:`close`) with its own credentials directory."""
        overrides.setdefault("credentials_dir", self.creds_dir())
        client = SynapClient(instance_id, **self.options(**overrides))
        self._clients.append(client)
        return client

    def async_client(self, instance_id: str, **overrides: Any) -> AsyncSynapClient:
        """An async client with its own credentials directory (it takes no ``sleep``)."""
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
