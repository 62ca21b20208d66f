"""A local emulator of the Synapse backend v2 API, with deterministic fault injection.

It is a real HTTP server (Starlette on uvicorn, loopback, a free port) over a demo project whose
items are built on demand from a seed, answering exactly the v2 API the clients speak:
cursor-paginated lists, bulk fetch with 207 partial failures, 400 ``invalid_ids``, 429 with
``Retry-After``, 503 during outages, 401 for a bad token, original-file downloads. A
:class:`FaultProfile` decides, from a seed and never from timing, which items fail and which
connections drop. :class:`FakeClock` is the fake clock of this emulator and of the Synap
emulator (:mod:`synapse_sdk.emulator.synap`). See ``docs/emulator.md``.

    >>> from synapse_sdk.emulator import Emulator
    >>> with Emulator(items=10) as emu:  # doctest: +SKIP
    ...     print(emu.url)
"""

from synapse_sdk.emulator._serving import is_loopback
from synapse_sdk.emulator.app import create_app
from synapse_sdk.emulator.clock import FakeClock
from synapse_sdk.emulator.faults import DROP_KINDS, PRESETS, FaultProfile, RateLimit, decide
from synapse_sdk.emulator.seed import DEMO_PROJECT_ID, RESOURCES
from synapse_sdk.emulator.server import Emulator
from synapse_sdk.emulator.state import EmulatorState, RequestRecord
from synapse_sdk.emulator.store import DEFAULT_ITEMS, Store

__all__ = [
    "DEFAULT_ITEMS",
    "DEMO_PROJECT_ID",
    "DROP_KINDS",
    "PRESETS",
    "RESOURCES",
    "Emulator",
    "EmulatorState",
    "FakeClock",
    "FaultProfile",
    "RateLimit",
    "RequestRecord",
    "Store",
    "create_app",
    "decide",
    "is_loopback",
]
