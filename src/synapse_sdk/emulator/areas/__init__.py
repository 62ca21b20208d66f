"""The emulator's areas: each contributes routes and says how the gate treats its paths.

An :class:`Area` owns a path prefix. The gate (:mod:`synapse_sdk.emulator.app`) applies to a
request the policy of the area with the longest matching prefix: authentication, rate limiting
and fault injection can each be switched off per area. Later areas (certificate authority,
sessions, memory store) are added by appending to :func:`default_areas`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.routing import BaseRoute

from synapse_sdk.emulator.areas import backend_v2
from synapse_sdk.emulator.state import EmulatorState

__all__ = ["Area", "default_areas"]


@dataclass(frozen=True, slots=True)
class Area:
    """A part of the emulator's HTTP surface.

    ``routes`` builds the area's Starlette routes from the shared state. Requests whose path
    starts with ``prefix`` need a bearer token when ``authenticated``, take a token from the
    per-token bucket when ``rate_limited`` and are subject to outages, latency and drops when
    ``faulted``.
    """

    name: str
    prefix: str
    routes: Callable[[EmulatorState], Sequence[BaseRoute]]
    authenticated: bool = True
    rate_limited: bool = True
    faulted: bool = True

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/"):
            raise ValueError(f"an area prefix must start with '/', got {self.prefix!r}")


def default_areas() -> list[Area]:
    """The areas of the backend v2 emulator: the API, and file downloads (not rate limited)."""
    return [
        Area("backend-v2", "/v2/", backend_v2.api_routes),
        Area("backend-v2-files", "/v2/files/", backend_v2.file_routes, rate_limited=False),
    ]
