"""The Synap emulator's gRPC listener: server-streaming ``synap.v1.Listener/Listen``.

The server requires a client certificate signed by the emulator's CA (TLS checks the chain; the
service then applies the SDK lifetime rules on the injected clock) and a session token in the
``x-synap-session`` metadata. Events are replayed from SQLite after the requested sequence and
then pushed live: at once when this process ingested them, within :data:`STORE_POLL_SECONDS`
when another process sharing the state directory did. Heartbeats keep an idle stream observably
alive. The emulator can cut streams (``drop``) to exercise a client's reconnect, and ends them
with UNAUTHENTICATED when the instance's credentials change (rotation, revocation, session
invalidation).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from synapse_sdk._proto.synap.v1 import listen_pb2, listen_pb2_grpc
from synapse_sdk.emulator.synap._faults import FaultPlan
from synapse_sdk.emulator.synap._service import ApiError, SynapService
from synapse_sdk.emulator.synap._store import EventRow

__all__ = ["STORE_POLL_SECONDS", "ListenerService", "StreamHub", "grpc_status_for"]

logger = logging.getLogger("synapse_sdk.emulator.synap")

_SESSION_METADATA = "x-synap-session"
#: How often an open stream looks in the store for events another process added (this
#: process's own events arrive at once through the :class:`StreamHub`).
STORE_POLL_SECONDS = 0.5

_STATUS_BY_HTTP: dict[int, Any] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}

_FAULT_STATUS: dict[str, tuple[Any, str, str]] = {
    "rate_limit": (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited", "rate limit exceeded"),
    "service_unavailable": (
        grpc.StatusCode.UNAVAILABLE,
        "service_unavailable",
        "Synap Cloud is temporarily unavailable",
    ),
    "agent_unavailable": (
        grpc.StatusCode.UNAVAILABLE,
        "agent_unavailable",
        "the agent is restarting",
    ),
    "drop": (grpc.StatusCode.UNAVAILABLE, "stream_dropped", "the stream was dropped"),
}


def grpc_status_for(http_status: int) -> Any:
    """The gRPC status code matching an HTTP status of the API (UNKNOWN if none does)."""
    return _STATUS_BY_HTTP.get(http_status, grpc.StatusCode.UNKNOWN)


def _details(code: str, detail: str, retry_after: float | None = None) -> str:
    body: dict[str, Any] = {"code": code, "detail": detail}
    if retry_after is not None:
        body["retry_after"] = retry_after
    return json.dumps(body)


@dataclass(frozen=True, slots=True)
class _End:
    """A request to end a stream with a status."""

    status: Any
    code: str
    detail: str


class StreamHub:
    """The open streams per instance; thread-safe entry points hop onto the server's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._streams: dict[str, set[asyncio.Queue[EventRow | _End]]] = {}

    def subscribe(self, instance_id: str) -> asyncio.Queue[EventRow | _End]:
        """Register a stream of ``instance_id`` (call on the loop)."""
        queue: asyncio.Queue[EventRow | _End] = asyncio.Queue()
        self._streams.setdefault(instance_id, set()).add(queue)
        return queue

    def unsubscribe(self, instance_id: str, queue: asyncio.Queue[EventRow | _End]) -> None:
        """Forget a stream (call on the loop)."""
        streams = self._streams.get(instance_id)
        if streams is not None:
            streams.discard(queue)
            if not streams:
                del self._streams[instance_id]

    def count(self, instance_id: str | None = None) -> int:
        """How many streams are open (for one instance, or in all)."""
        if instance_id is not None:
            return len(self._streams.get(instance_id, ()))
        return sum(len(s) for s in self._streams.values())

    def _fan_out(self, instance_id: str | None, item: EventRow | _End) -> None:
        targets = (
            [q for qs in self._streams.values() for q in qs]
            if instance_id is None
            else list(self._streams.get(instance_id, ()))
        )
        for queue in targets:
            queue.put_nowait(item)

    def publish(self, event: EventRow) -> None:
        """Deliver an event to the instance's open streams (from any thread)."""
        self._call_soon(self._fan_out, event.instance_id, event)

    def end(self, instance_id: str | None, status: Any, code: str, detail: str) -> None:
        """End the open streams of one instance (None: all) with a status (from any thread)."""
        self._call_soon(self._fan_out, instance_id, _End(status, code, detail))

    def _call_soon(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop.is_closed():
            return
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed between the check and the call
            pass


class ListenerService(listen_pb2_grpc.ListenerServicer):
    """The ``Listener`` servicer over a :class:`SynapService`."""

    def __init__(
        self,
        service: SynapService,
        faults: FaultPlan,
        hub: StreamHub,
        shutdown: Callable[[], asyncio.Event],
    ) -> None:
        self._service = service
        self._faults = faults
        self._hub = hub
        self._shutdown = shutdown

    async def Listen(
        self, request: listen_pb2.ListenRequest, context: Any
    ) -> AsyncIterator[listen_pb2.ListenEvent]:
        """Authenticate the caller, replay its events after ``after_sequence``, then stream."""
        fault = self._faults.take("listen")
        if fault is not None:
            if fault.kind == "stall":
                try:
                    await asyncio.wait_for(self._shutdown().wait(), fault.stall_seconds)
                except TimeoutError:
                    pass
            else:
                status, code, detail = _FAULT_STATUS[fault.kind]
                await context.abort(status, _details(code, detail, fault.retry_after))
        try:
            principal = self._service.authenticate(_peer_der(context))
            self._service.check_session(principal, _metadata(context, _SESSION_METADATA))
        except ApiError as exc:
            await context.abort(grpc_status_for(exc.status), _details(exc.code, exc.detail))
        instance_id = principal.instance_id
        queue = self._hub.subscribe(instance_id)
        try:
            await context.send_initial_metadata((("x-synap-stream", "open"),))
            last = request.after_sequence
            for event in self._service.store.events_after(instance_id, last):
                last = event.sequence
                yield _event(event)
            interval = self._service.lifetimes.heartbeat_interval
            loop = asyncio.get_running_loop()
            quiet_since = loop.time()
            while True:
                wait = min(STORE_POLL_SECONDS, max(0.0, quiet_since + interval - loop.time()))
                try:
                    item = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    # Events this process did not publish: another emulator on the same state
                    # directory wrote them (`synapse synap ingest` in another terminal).
                    for event in self._service.store.events_after(instance_id, last):
                        last = event.sequence
                        quiet_since = loop.time()
                        yield _event(event)
                    if loop.time() - quiet_since >= interval:
                        quiet_since = loop.time()
                        yield listen_pb2.ListenEvent(
                            kind="heartbeat", created_at=self._service.clock()
                        )
                    continue
                if isinstance(item, _End):
                    await context.abort(item.status, _details(item.code, item.detail))
                    return
                if item.sequence > last:
                    last = item.sequence
                    quiet_since = loop.time()
                    yield _event(item)
        finally:
            self._hub.unsubscribe(instance_id, queue)


def _event(row: EventRow) -> listen_pb2.ListenEvent:
    return listen_pb2.ListenEvent(
        sequence=row.sequence,
        kind=row.kind,
        event_id=row.event_id,
        conversation_id=row.conversation_id,
        user_id=row.user_id,
        content=row.content,
        created_at=row.created_at,
    )


def _peer_der(context: Any) -> bytes | None:
    pems = context.auth_context().get("x509_pem_cert") or []
    if not pems:
        return None
    cert = x509.load_pem_x509_certificate(pems[0])
    return cert.public_bytes(serialization.Encoding.DER)


def _metadata(context: Any, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return str(value)
    return None
