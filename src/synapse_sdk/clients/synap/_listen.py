"""The Synap listening stream: one gRPC server stream over mutual TLS, kept open.

:class:`StreamListener` is the asyncio loop: it asks its owner for an endpoint (which renews the
certificate first when due), opens ``synap.v1.Listener/Listen`` with the client certificate and
the session token, delivers events to ``on_message`` and, when the stream drops (UNAVAILABLE, a
rate limit, an idle stream, a server that ends it), reconnects after a backoff, resuming after
the last sequence it delivered so nothing is lost or repeated. Consecutive failed connection
attempts are bounded by the retry policy's ``max_attempts`` (a successful connection resets the
count); each wait is :func:`synapse_sdk.retry.decide_wait`'s: the error's
``retry_after_seconds`` (a rate limit's gRPC detail) exactly, else the policy's backoff. A
permanent error (expired session or certificate, rotated credentials, ...), exhausted
reconnects, a hint above ``retry_after_max`` or an empty retry budget end the stream and go to
``on_error``.

:class:`ThreadedStream` runs a listener for the sync client on one process-wide event loop in a
daemon thread (``synap-listen``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import random
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc  # type: ignore[import-untyped]

from synapse_sdk._proto.synap.v1 import listen_pb2, listen_pb2_grpc
from synapse_sdk.clients.synap._protocol import SESSION_HEADER, error_from_grpc
from synapse_sdk.clients.synap._types import ListenMessage, ListenStatus
from synapse_sdk.config import RetryPolicy
from synapse_sdk.exceptions import (
    NetworkTimeoutError,
    ServiceUnavailableError,
    SynapError,
)
from synapse_sdk.retry import decide_wait, notify_wait
from synapse_sdk.telemetry import RetryHook, grpc_span

__all__ = ["StreamEndpoint", "StreamListener", "ThreadedStream", "cancel_and_wait", "report_first"]

logger = logging.getLogger("synapse_sdk.clients.synap")

_OPEN_MARKER = "x-synap-stream"
#: The listening service's full name (proto/synap/v1/listen.proto), for its spans.
_SERVICE = "synap.v1.Listener"

OnMessage = Callable[[ListenMessage], object]
OnError = Callable[[SynapError], object]


@dataclass(frozen=True, slots=True)
class StreamEndpoint:
    """Where and as whom to connect; the key, certificate and token stay out of ``repr``."""

    target: str
    session_token: str = field(repr=False)
    key_pem: bytes = field(repr=False)
    cert_pem: bytes = field(repr=False)
    trust_root: bytes | None = field(repr=False)


def _message(event: listen_pb2.ListenEvent) -> ListenMessage:
    return ListenMessage(
        sequence=int(event.sequence),
        kind=event.kind,
        event_id=event.event_id,
        conversation_id=event.conversation_id or None,
        user_id=event.user_id or None,
        content=event.content,
        created_at=float(event.created_at),
    )


async def _call_back(fn: Callable[[Any], object], value: Any) -> None:
    result = fn(value)
    if inspect.isawaitable(result):
        await result


class StreamListener:
    """Keeps one listening stream open until cancelled or a permanent error ends it.

    Each reconnect decision (a scheduled reconnect, or the end) is told to the retry hooks,
    ``hooks`` then the process-wide ones, as ``call_name="synap.listen"``.
    """

    def __init__(
        self,
        *,
        instance_id: str,
        endpoint: Callable[[], Awaitable[StreamEndpoint]],
        on_message: OnMessage,
        on_error: OnError | None,
        policy: RetryPolicy,
        asleep: Callable[[float], Awaitable[None]],
        rng: random.Random | None,
        connect_timeout: float,
        idle_timeout: float,
        hooks: tuple[RetryHook, ...] = (),
    ) -> None:
        self._instance_id = instance_id
        self._hooks = hooks
        self._endpoint = endpoint
        self._on_message = on_message
        self._on_error = on_error
        self._policy = policy
        self._asleep = asleep
        self._rng = rng
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self.connected = False
        self.connections = 0
        self.reconnects = 0
        self.messages = 0
        self.last_sequence = 0
        self.last_error: SynapError | None = None
        self.finished = False
        self._previous_wait: float | None = None

    def status(self) -> ListenStatus:
        """A snapshot of the stream's counters."""
        error = self.last_error
        return ListenStatus(
            connected=self.connected,
            connections=self.connections,
            reconnects=self.reconnects,
            messages=self.messages,
            last_sequence=self.last_sequence,
            last_error=None if error is None else f"{type(error).__name__}: {error.message}",
        )

    async def run(self, first: Callable[[SynapError | None], None]) -> None:
        """Listen until cancelled or a permanent error; ``first`` is told the outcome of the
        first connection (None when it opened, else the error that ended the stream)."""
        told = False
        failures = 0

        def connected() -> None:
            nonlocal told, failures
            failures = 0
            self._previous_wait = None
            if not told:
                told = True
                first(None)

        try:
            while True:
                try:
                    endpoint = await self._endpoint()
                    correlation_id = uuid.uuid4().hex
                    with grpc_span(endpoint.target, _SERVICE, "Listen", correlation_id):
                        await self._stream_once(endpoint, connected, correlation_id)
                    error: SynapError = ServiceUnavailableError(
                        "the Synap listening stream was closed by the server"
                    )
                except SynapError as exc:
                    error = exc
                self.connected = False
                self.last_error = error
                failures += 1
                wait = self._plan(error, failures)
                if wait is None:
                    break
                logger.info(
                    "synap.listen.reconnect_scheduled",
                    extra={
                        "instance_id": self._instance_id,
                        "attempt": failures,
                        "wait": wait,
                        "error_type": type(error).__name__,
                        "error_code": error.code,
                    },
                )
                if wait > 0:
                    await self._asleep(wait)
                self.reconnects += 1
        finally:
            self.connected = False
            self.finished = True
        logger.warning(
            "synap.listen.stopped",
            extra={
                "instance_id": self._instance_id,
                "error_type": type(error).__name__,
                "error_code": error.code,
                "correlation_id": error.correlation_id,
            },
        )
        if not told:
            first(error)
        elif self._on_error is not None:
            try:
                await _call_back(self._on_error, error)
            except Exception:
                logger.exception("synap.listen.on_error_failed")

    def _plan(self, error: SynapError, failures: int) -> float | None:
        """The wait before reconnecting after ``failures`` failed connections in a row
        (:func:`~synapse_sdk.retry.decide_wait`), or None to stop."""
        decision = decide_wait(
            self._policy, failures, error=error, previous=self._previous_wait, rng=self._rng
        )
        notify_wait(
            decision,
            attempt=failures,
            max_attempts=self._policy.max_attempts,
            error=error,
            call_name="synap.listen",
            hooks=self._hooks,
        )
        if decision.surface:
            return None
        self._previous_wait = decision.seconds
        return decision.seconds

    async def _stream_once(
        self, endpoint: StreamEndpoint, connected: Callable[[], None], correlation_id: str
    ) -> None:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=endpoint.trust_root,
            private_key=endpoint.key_pem,
            certificate_chain=endpoint.cert_pem,
        )
        async with grpc.aio.secure_channel(endpoint.target, credentials) as channel:
            stub = listen_pb2_grpc.ListenerStub(channel)  # type: ignore[no-untyped-call]
            call = stub.Listen(
                listen_pb2.ListenRequest(after_sequence=self.last_sequence),
                metadata=(
                    (SESSION_HEADER, endpoint.session_token),
                    ("x-correlation-id", correlation_id),
                ),
            )
            try:
                metadata = await asyncio.wait_for(call.initial_metadata(), self._connect_timeout)
                if metadata is not None and any(key == _OPEN_MARKER for key, _ in metadata):
                    self.connected = True
                    self.connections += 1
                    logger.info(
                        "synap.listen.connected",
                        extra={"instance_id": self._instance_id, "correlation_id": correlation_id},
                    )
                    connected()
                while True:
                    event = await asyncio.wait_for(call.read(), self._idle_timeout)
                    if event is grpc.aio.EOF:
                        return
                    if event.kind == "heartbeat" or event.sequence <= self.last_sequence:
                        continue
                    self.last_sequence = int(event.sequence)
                    self.messages += 1
                    try:
                        await _call_back(self._on_message, _message(event))
                    except Exception:
                        logger.exception(
                            "synap.listen.on_message_failed",
                            extra={"instance_id": self._instance_id, "sequence": event.sequence},
                        )
            except grpc.aio.AioRpcError as exc:
                raise error_from_grpc(
                    exc.code().name,
                    exc.details(),
                    correlation_id=correlation_id,
                    instance_id=self._instance_id,
                ) from exc
            except TimeoutError as exc:
                call.cancel()
                raise NetworkTimeoutError(
                    "the Synap listening stream went silent past the idle timeout"
                    if self.connected
                    else "opening the Synap listening stream timed out",
                    correlation_id=correlation_id,
                ) from exc


class _Outcome(Protocol):
    """What :func:`report_first` needs of a future (asyncio's and concurrent's both fit)."""

    def done(self) -> bool: ...
    def set_result(self, result: None, /) -> None: ...
    def set_exception(self, exception: BaseException, /) -> None: ...


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has ended (its cleanup run); its cancellation is not
    re-raised here."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def report_first(outcome: _Outcome) -> Callable[[SynapError | None], None]:
    """The ``first`` callback of :meth:`StreamListener.run` that settles ``outcome`` once."""

    def first(error: SynapError | None) -> None:
        if outcome.done():
            return
        if error is None:
            outcome.set_result(None)
        else:
            outcome.set_exception(error)

    return first


_LOOP_LOCK = threading.Lock()
_LOOP: asyncio.AbstractEventLoop | None = None


def _stream_loop() -> asyncio.AbstractEventLoop:
    """The process-wide event loop (in a daemon thread) that runs every sync client's stream.

    One long-lived loop rather than one per stream: grpc's asyncio layer delivers completions to
    the loop a call was made on, and a loop closed while such a delivery is in flight makes
    grpc log errors; a loop that lives as long as the process never is.
    """
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="synap-listen", daemon=True)
            thread.start()
            _LOOP = loop
        return _LOOP


class ThreadedStream:
    """Runs a :class:`StreamListener` for the sync client on the shared stream loop.

    ``on_message`` therefore runs on the ``synap-listen`` thread: keep it short (hand work to a
    queue) so it does not delay other streams of the process.
    """

    def __init__(self, listener: StreamListener) -> None:
        self.listener = listener
        self._future: concurrent.futures.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """Whether the stream is still running (connected or reconnecting)."""
        future = self._future
        return future is not None and not future.done() and not self.listener.finished

    async def _main(self, first: Callable[[SynapError | None], None]) -> None:
        self._task = asyncio.current_task()
        await self.listener.run(first)

    def start(self) -> None:
        """Start the stream and return once the first connection opened.

        Raises:
            SynapError: the stream could not be opened (after the reconnect policy gave up, for
                transient errors).
        """
        outcome: concurrent.futures.Future[None] = concurrent.futures.Future()
        first = report_first(outcome)

        def ended(future: concurrent.futures.Future[None]) -> None:
            if outcome.done():
                return
            error = None if future.cancelled() else future.exception()
            outcome.set_exception(
                error if error is not None else ServiceUnavailableError("the stream stopped")
            )

        self._future = asyncio.run_coroutine_threadsafe(self._main(first), _stream_loop())
        self._future.add_done_callback(ended)
        outcome.result()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the stream and wait until it has closed its channel."""
        future = self._future
        if future is None or future.done():
            return

        async def cancel() -> None:
            task = self._task
            if task is None or task.done():
                future.cancel()
                return
            await cancel_and_wait(task)

        try:
            asyncio.run_coroutine_threadsafe(cancel(), _stream_loop()).result(timeout)
        except concurrent.futures.TimeoutError:
            logger.warning("synap.listen.stop_timeout", extra={"timeout": timeout})
