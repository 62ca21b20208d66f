"""The SDK's HTTP clients.

:class:`BackendV2Client` and :class:`AsyncBackendV2Client` speak the backend v2 API (cursor
pagination, bulk fetch with 207 partial failures, original files; more in
:mod:`synapse_sdk.clients.backend_v2`); :class:`SynapClient` and :class:`AsyncSynapClient` talk
to Synap Cloud (bootstrap, mutual-TLS certificates, sessions, memories, the listening stream;
more in :mod:`synapse_sdk.clients.synap`). Every HTTP call of all four goes through one
transport (``clients/_transport``), the one place where answers and httpx/OS errors become the
SDK's error tree. Async clients close with ``aclose()``.

The clients load on first use, so importing one does not import the others' dependencies
(the Synap client's gRPC and cryptography).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synapse_sdk.clients.backend_v2 import AsyncBackendV2Client, BackendV2Client
    from synapse_sdk.clients.synap import AsyncSynapClient, SynapClient

__all__ = ["AsyncBackendV2Client", "AsyncSynapClient", "BackendV2Client", "SynapClient"]

_HOMES = {
    "AsyncBackendV2Client": "synapse_sdk.clients.backend_v2",
    "BackendV2Client": "synapse_sdk.clients.backend_v2",
    "AsyncSynapClient": "synapse_sdk.clients.synap",
    "SynapClient": "synapse_sdk.clients.synap",
}


def __getattr__(name: str) -> Any:
    """Load a client class from its module on first access."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
