"""The Synap clients themselves: :class:`SynapClient` and its asyncio twin.

See the package docstring (:mod:`synapse_sdk.clients.synap`) and ``docs/synap.md``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from synapse_sdk._closing import ClosesOnExit
from synapse_sdk.clients._transport import AsyncTransport, Transport
from synapse_sdk.clients.synap._core import (
    DEFAULT_CREDENTIALS_DIR,
    Finished,
    Flow,
    SynapCore,
    advance,
    parse_context,
    parse_conversation,
    parse_ingest,
)
from synapse_sdk.clients.synap._listen import (
    OnError,
    OnMessage,
    StreamEndpoint,
    StreamListener,
    ThreadedStream,
    cancel_and_wait,
    report_first,
)
from synapse_sdk.clients.synap._protocol import SESSION_HEADER, Request, data_from_response
from synapse_sdk.clients.synap._types import (
    CertificateStatus,
    Context,
    IngestResult,
    ListenStatus,
    SessionInfo,
)
from synapse_sdk.config import SDKConfig
from synapse_sdk.exceptions import (
    BackendError,
    ListeningAlreadyActiveError,
    ListeningNotActiveError,
    SessionExpiredError,
    SynapError,
)

__all__ = ["DEFAULT_CREDENTIALS_DIR", "AsyncSynapClient", "SynapClient"]

logger = logging.getLogger("synapse_sdk.clients.synap")

T = TypeVar("T")


def _parsed(
    request: Request, parse: Callable[[Mapping[str, Any]], T], data: Mapping[str, Any]
) -> T:
    try:
        return parse(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise BackendError(
            f"Synap {request.operation} answered with a malformed body",
            error_code="malformed_response",
            correlation_id=request.correlation_id,
        ) from exc


class _ClientBase:
    """What both clients share: the core, the transport's options and argument checks."""

    def __init__(
        self,
        instance_id: str,
        *,
        config: SDKConfig | None,
        url: str | None,
        trust_root: bytes | str | Path | None,
        credentials_dir: str | Path | None,
        clock: Callable[[], float],
        asleep: Callable[[float], Awaitable[None]] | None,
        rng: random.Random | None,
    ) -> None:
        self._core = SynapCore(
            instance_id,
            config=config,
            url=url,
            trust_root=trust_root,
            credentials_dir=credentials_dir,
            clock=clock,
        )
        self._asleep: Callable[[float], Awaitable[None]] = (
            asleep if asleep is not None else asyncio.sleep
        )
        self._rng = rng

    def _transport_options(self) -> dict[str, Any]:
        """The options of this client's transport: Synap's URL and trust root, the session
        header as a secret, and the configuration without the backend's token."""
        core = self._core
        return {
            "config": replace(core.config, token=None),
            "base_url": core.url,
            "verify": core.trust_root,
            "rng": self._rng,
            "secret_headers": (SESSION_HEADER,),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._core!r})"

    @property
    def instance_id(self) -> str:
        """The ``inst_<hex16>`` id this client acts for."""
        return self._core.instance_id

    @property
    def config(self) -> SDKConfig:
        """The SDK configuration (retry policy, timeouts)."""
        return self._core.config

    @property
    def credentials_dir(self) -> Path:
        """The directory holding this instance's credentials."""
        return self._core.store.directory

    def certificate_status(self) -> CertificateStatus:
        """Where the stored certificate stands (local; no network).

        Raises:
            AuthenticationError: no usable credentials are stored.
        """
        return self._core.certificate_status()

    def _listener(
        self,
        on_message: OnMessage,
        on_error: OnError | None,
        endpoint: Callable[[], Awaitable[StreamEndpoint]],
    ) -> StreamListener:
        if not callable(on_message):
            raise TypeError("on_message must be callable")
        if on_error is not None and not callable(on_error):
            raise TypeError("on_error must be callable or None")
        self._core.require_session()
        timeouts = self._core.config.timeouts
        return StreamListener(
            instance_id=self._core.instance_id,
            endpoint=endpoint,
            on_message=on_message,
            on_error=on_error,
            policy=self._core.config.effective_retry_policy,
            asleep=self._asleep,
            rng=self._rng,
            connect_timeout=timeouts.connect + timeouts.read,
            idle_timeout=timeouts.stream_idle,
            hooks=self._core.config.retry_hooks,
        )

    def _endpoint_now(self) -> StreamEndpoint:
        session, creds = self._core.session, self._core.credentials
        if session is None or creds is None:
            # close_session() ran while the stream was reconnecting: nothing to resume with.
            raise SessionExpiredError(f"the session of {self.instance_id} was closed")
        return StreamEndpoint(
            session.listen_target,
            session.token,
            creds.key_pem,
            creds.cert_pem,
            self._core.trust_root,
        )


class SynapClient(ClosesOnExit, _ClientBase):
    """Synchronous Synap client for one instance.

    ``url`` defaults to ``config.backend_url``; ``trust_root`` is the CA (PEM bytes, text or a
    path) that verifies Synap's servers — default: the system trust store. Credentials live under
    ``credentials_dir`` (default ``config.credentials_dir``, else ``~/.synapse/synap``).
    ``clock`` (epoch seconds) measures certificate and session lifetimes; ``sleep``/``asleep``
    and ``rng`` drive retry and reconnect backoff. All four exist so tests never wait.

    Thread-safe: one instance may be shared by threads. Initialization and certificate renewal
    are serialized by a lock, ``listen`` starts at most one stream, and the HTTP connections of a
    replaced certificate stay open for calls still using them until :meth:`close`.

    Raises:
        InvalidInstanceIdError: ``instance_id`` does not match ``inst_<hex16>``.
        ValueError: no ``https://`` URL, or a trust root with no certificate.
        TypeError: an argument of the wrong type.
    """

    def __init__(
        self,
        instance_id: str,
        *,
        config: SDKConfig | None = None,
        url: str | None = None,
        trust_root: bytes | str | Path | None = None,
        credentials_dir: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            instance_id,
            config=config,
            url=url,
            trust_root=trust_root,
            credentials_dir=credentials_dir,
            clock=clock,
            asleep=asleep,
            rng=rng,
        )
        self._transport = Transport(**self._transport_options(), sleep=sleep)
        self._lock = threading.RLock()
        self._listen_lock = threading.Lock()
        self._stream: ThreadedStream | None = None

    # --- plumbing ------------------------------------------------------------------------

    def _execute(self, request: Request) -> dict[str, Any]:
        response = self._transport.request(**self._core.call_options(request))
        return data_from_response(response)

    def _run(self, flow: Flow[T]) -> T:
        with self._lock:
            step = advance(flow, None, None)
            while not isinstance(step, Finished):
                try:
                    answer = self._execute(step)
                except SynapError as exc:
                    step = advance(flow, None, exc)
                else:
                    step = advance(flow, answer, None)
            return step.value

    def _ensure_certificate(self) -> None:
        if not self._core.certificate_current():
            self._run(self._core.renew_flow(force=False))

    def _call(self, request: Request) -> dict[str, Any]:
        self._core.require_session()
        self._ensure_certificate()
        return self._execute(request)

    # --- lifecycle -----------------------------------------------------------------------

    def initialize(self, bootstrap_token: str | None = None) -> SessionInfo:
        """Establish credentials and open a session.

        With ``bootstrap_token``: generate a private key and CSR, exchange the single-use token
        for a 7-day client certificate and store it (files 0600 under ``credentials_dir``).
        Without: load the stored credentials. Then renew the certificate if due and open a new
        session — so calling ``initialize()`` again is how to recover from
        :class:`~synapse_sdk.exceptions.SessionExpiredError`.

        Raises:
            BootstrapKeyInvalidError: the token is malformed, expired, consumed or not this
                instance's.
            InvalidInstanceIdError: the instance does not exist or was deactivated.
            AuthenticationError: no token and no (or corrupted) stored credentials, or the
                stored credentials were rotated server-side.
            CertificateExpiredError: the stored certificate is past its grace period.
            CertificateRenewalError: a due renewal failed.
            BootstrapError: any other failure, e.g. Synap unreachable (the cause is chained).
        """
        return self._run(self._core.initialize_flow(bootstrap_token))

    def renew_certificate(self) -> CertificateStatus:
        """Renew the client certificate now, whatever its age.

        Raises:
            CertificateExpiredError, CertificateRenewalError, AuthenticationError: as for calls.
        """
        with self._lock:
            creds = self._run(self._core.renew_flow(force=True))
        return CertificateStatus.of(creds.meta, self._core.clock())

    def close(self) -> None:
        """Stop listening (if active) and close the HTTP connections. Idempotent; the client
        sends nothing afterwards."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
        self._transport.close()

    # --- memories and context ------------------------------------------------------------

    def create_conversation(self) -> str:
        """Create a conversation and return its id.

        Raises:
            SessionExpiredError: the session expired or was invalidated; call ``initialize()``.
            SynapTransientError: retries exhausted (rate limit, outage, agent, timeout).
        """
        request = self._core.conversation_request()
        return _parsed(request, parse_conversation, self._call(request))

    def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation and its memories.

        Raises:
            InvalidConversationIdError: no such conversation.
        """
        self._call(self._core.delete_conversation_request(conversation_id))

    def ingest(
        self,
        memories: Iterable[str | Mapping[str, Any]],
        *,
        user_id: str | None = None,
        conversation_id: str | None = None,
    ) -> IngestResult:
        """Store memories for a user or a conversation (exactly one of the two).

        Each memory is a string or ``{"content": str, "metadata": {...}}``. The request carries
        an idempotency key reused on every retry, so a retried ingest never stores twice.

        Raises:
            InvalidInputError: the request is invalid (neither or both ids, empty content, ...).
            InvalidConversationIdError: the conversation does not exist.
            SessionExpiredError: call ``initialize()`` again.
            SynapTransientError: retries exhausted.
            TypeError: ``memories`` is not an iterable of strings or mappings.
        """
        request = self._core.ingest_request(memories, user_id, conversation_id)
        return _parsed(request, parse_ingest, self._call(request))

    def get_context(
        self,
        *,
        user_id: str | None = None,
        conversation_id: str | None = None,
        limit: int | None = None,
    ) -> Context:
        """Fetch the memories stored for a user or a conversation (newest ``limit``).

        Raises:
            ContextNotFoundError: nothing is stored yet — treat it as an empty state.
            InvalidConversationIdError: the conversation does not exist.
            InvalidInputError: neither or both ids, or a bad ``limit``.
            SessionExpiredError: call ``initialize()`` again.
            NetworkTimeoutError, RateLimitError, ServiceUnavailableError,
            AgentUnavailableError: retries exhausted.
        """
        request = self._core.context_request(user_id, conversation_id, limit)
        return _parsed(request, parse_context, self._call(request))

    def forget(self, *, user_id: str | None = None, conversation_id: str | None = None) -> int:
        """Delete the memories of a user or a conversation; return how many were deleted."""
        data = self._call(self._core.forget_request(user_id, conversation_id))
        return int(data.get("deleted", 0))

    def close_session(self) -> None:
        """End the session server-side; later calls need ``initialize()``."""
        self._call(self._core.close_session_request())
        self._core.session = None

    # --- listening -----------------------------------------------------------------------

    def listen(self, on_message: OnMessage, *, on_error: OnError | None = None) -> None:
        """Open the listening stream and return once it is connected.

        ``on_message(ListenMessage)`` runs on the stream's thread for each event. Dropped
        streams reconnect with backoff, resuming after the last delivered event; a permanent
        error, or reconnects exhausted, ends the stream and is passed to ``on_error``.

        Raises:
            ListeningAlreadyActiveError: a stream is already active on this client.
            SynapError: the first connection failed (e.g. ``SessionExpiredError``).
            RuntimeError: the client is not initialized.
        """

        async def endpoint() -> StreamEndpoint:
            return await asyncio.to_thread(self._stream_endpoint)

        # Check and start under one lock: two threads calling listen() at once must not both
        # see no active stream and each start one (the second would run on, unstoppable).
        with self._listen_lock:
            if self._stream is not None and self._stream.active:
                raise ListeningAlreadyActiveError(
                    f"a listening stream is already active for {self.instance_id}; "
                    "call stop_listening() first"
                )
            stream = ThreadedStream(self._listener(on_message, on_error, endpoint))
            self._stream = stream
            try:
                stream.start()
            except BaseException:
                stream.stop()
                self._stream = None
                raise

    def _stream_endpoint(self) -> StreamEndpoint:
        self._ensure_certificate()
        return self._endpoint_now()

    def _active_stream(self) -> ThreadedStream:
        stream = self._stream
        if stream is None or not stream.active:
            raise ListeningNotActiveError(f"no listening stream is active for {self.instance_id}")
        return stream

    @property
    def listening(self) -> bool:
        """Whether a listening stream is active."""
        return self._stream is not None and self._stream.active

    def listening_status(self) -> ListenStatus:
        """Counters of the active stream.

        Raises:
            ListeningNotActiveError: no stream is active.
        """
        return self._active_stream().listener.status()

    def stop_listening(self) -> None:
        """Close the active listening stream.

        Raises:
            ListeningNotActiveError: no stream is active (safe to ignore).
        """
        with self._listen_lock:
            stream = self._active_stream()
            self._stream = None
        stream.stop()


class AsyncSynapClient(_ClientBase):
    """The asyncio twin of :class:`SynapClient`: the same arguments, methods as coroutines.

    The listening stream runs as a task on the caller's event loop.

    Safe to share between the tasks of one event loop (initialization and renewal are serialized
    by an ``asyncio.Lock``); not thread-safe: use one instance per thread and event loop.

    Raises:
        InvalidInstanceIdError: ``instance_id`` does not match ``inst_<hex16>``.
        ValueError: no ``https://`` URL, or a trust root with no certificate.
        TypeError: an argument of the wrong type.
    """

    def __init__(
        self,
        instance_id: str,
        *,
        config: SDKConfig | None = None,
        url: str | None = None,
        trust_root: bytes | str | Path | None = None,
        credentials_dir: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        asleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            instance_id,
            config=config,
            url=url,
            trust_root=trust_root,
            credentials_dir=credentials_dir,
            clock=clock,
            asleep=asleep,
            rng=rng,
        )
        self._transport = AsyncTransport(**self._transport_options(), sleep=self._asleep)
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._stream: StreamListener | None = None

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _execute(self, request: Request) -> dict[str, Any]:
        response = await self._transport.request(**self._core.call_options(request))
        return data_from_response(response)

    async def _run(self, flow: Flow[T]) -> T:
        async with self._get_lock():
            step = advance(flow, None, None)
            while not isinstance(step, Finished):
                try:
                    answer = await self._execute(step)
                except SynapError as exc:
                    step = advance(flow, None, exc)
                else:
                    step = advance(flow, answer, None)
            return step.value

    async def _ensure_certificate(self) -> None:
        if not self._core.certificate_current():
            await self._run(self._core.renew_flow(force=False))

    async def _call(self, request: Request) -> dict[str, Any]:
        self._core.require_session()
        await self._ensure_certificate()
        return await self._execute(request)

    # --- lifecycle -----------------------------------------------------------------------

    async def initialize(self, bootstrap_token: str | None = None) -> SessionInfo:
        """Establish credentials and open a session; see :meth:`SynapClient.initialize`."""
        return await self._run(self._core.initialize_flow(bootstrap_token))

    async def renew_certificate(self) -> CertificateStatus:
        """Renew the client certificate now; see :meth:`SynapClient.renew_certificate`."""
        creds = await self._run(self._core.renew_flow(force=True))
        return CertificateStatus.of(creds.meta, self._core.clock())

    async def aclose(self) -> None:
        """Stop listening (if active) and close the HTTP connections. Idempotent; the client
        sends nothing afterwards."""
        task, self._task, self._stream = self._task, None, None
        if task is not None:
            await cancel_and_wait(task)
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- memories and context ------------------------------------------------------------

    async def create_conversation(self) -> str:
        """Create a conversation; see :meth:`SynapClient.create_conversation`."""
        request = self._core.conversation_request()
        return _parsed(request, parse_conversation, await self._call(request))

    async def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation; see :meth:`SynapClient.delete_conversation`."""
        await self._call(self._core.delete_conversation_request(conversation_id))

    async def ingest(
        self,
        memories: Iterable[str | Mapping[str, Any]],
        *,
        user_id: str | None = None,
        conversation_id: str | None = None,
    ) -> IngestResult:
        """Store memories; see :meth:`SynapClient.ingest`."""
        request = self._core.ingest_request(memories, user_id, conversation_id)
        return _parsed(request, parse_ingest, await self._call(request))

    async def get_context(
        self,
        *,
        user_id: str | None = None,
        conversation_id: str | None = None,
        limit: int | None = None,
    ) -> Context:
        """Fetch context; see :meth:`SynapClient.get_context`."""
        request = self._core.context_request(user_id, conversation_id, limit)
        return _parsed(request, parse_context, await self._call(request))

    async def forget(
        self, *, user_id: str | None = None, conversation_id: str | None = None
    ) -> int:
        """Delete memories; see :meth:`SynapClient.forget`."""
        data = await self._call(self._core.forget_request(user_id, conversation_id))
        return int(data.get("deleted", 0))

    async def close_session(self) -> None:
        """End the session server-side; see :meth:`SynapClient.close_session`."""
        await self._call(self._core.close_session_request())
        self._core.session = None

    # --- listening -----------------------------------------------------------------------

    async def listen(self, on_message: OnMessage, *, on_error: OnError | None = None) -> None:
        """Open the listening stream as a task and return once it is connected.

        ``on_message`` may be a function or a coroutine function. See
        :meth:`SynapClient.listen` for reconnects and errors.

        Raises:
            ListeningAlreadyActiveError: a stream is already active on this client.
            SynapError: the first connection failed.
            RuntimeError: the client is not initialized.
        """
        if self.listening:
            raise ListeningAlreadyActiveError(
                f"a listening stream is already active for {self.instance_id}; "
                "call stop_listening() first"
            )

        async def endpoint() -> StreamEndpoint:
            await self._ensure_certificate()
            return self._endpoint_now()

        listener = self._listener(on_message, on_error, endpoint)
        outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        first = report_first(outcome)
        task = asyncio.create_task(listener.run(first), name="synap-listen")
        task.add_done_callback(lambda t: _settle(outcome, t))
        self._task, self._stream = task, listener
        try:
            await outcome
        except BaseException:
            self._task = self._stream = None
            task.cancel()
            raise

    @property
    def listening(self) -> bool:
        """Whether a listening stream is active."""
        task, stream = self._task, self._stream
        return task is not None and stream is not None and not task.done() and not stream.finished

    def _active_stream(self) -> tuple[asyncio.Task[None], StreamListener]:
        task, stream = self._task, self._stream
        if task is None or stream is None or task.done() or stream.finished:
            raise ListeningNotActiveError(f"no listening stream is active for {self.instance_id}")
        return task, stream

    def listening_status(self) -> ListenStatus:
        """Counters of the active stream.

        Raises:
            ListeningNotActiveError: no stream is active.
        """
        return self._active_stream()[1].status()

    async def stop_listening(self) -> None:
        """Close the active listening stream.

        Raises:
            ListeningNotActiveError: no stream is active (safe to ignore).
        """
        task, _ = self._active_stream()
        self._task = self._stream = None
        await cancel_and_wait(task)


def _settle(outcome: asyncio.Future[None], task: asyncio.Task[None]) -> None:
    """Fail ``outcome`` if the listener task ended without reporting a first connection."""
    if outcome.done():
        return
    if task.cancelled():
        outcome.cancel()
        return
    error = task.exception()
    outcome.set_exception(
        error if error is not None else RuntimeError("the listening stream stopped")
    )
