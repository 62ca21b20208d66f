"""The backend emulator's ASGI app: the v2 routes behind one gate.

The gate is plain ASGI (it must be able to cut a response mid-body). For every HTTP request it
assigns a request id and sequence number, then, following the :class:`Policy` of the request's
path (:func:`policy_for`: ``/v2/`` is gated fully, ``/storage/`` (presigned URLs) is neither
authenticated by the gate nor rate limited, other paths such as ``/healthz`` are open):

1. outage window on the emulator clock → 503 ``service_unavailable`` with ``Retry-After``
   (whole seconds) and ``retry-after-ms``;
2. credentials, as the platform's v2 API takes them: the access token
   (``SYNAPSE-ACCESS-TOKEN: syn_…``, or the legacy ``Authorization: Token …``) → 401
   ``NOT_AUTHENTICATED`` when missing, ``AUTHENTICATION_FAILED`` when wrong; then the tenant
   (``SYNAPSE-Tenant``) → 403 ``PERMISSION_DENIED`` when missing or another tenant's;
3. per-token token bucket → 429 ``rate_limited`` with ``Retry-After`` and ``retry-after-ms``;
   every answer on a rate-limited path carries the bucket's ``RateLimit``/``RateLimit-Policy``
   and ``X-RateLimit-Limit/Remaining/Reset`` headers;
4. latency (injected sleep), the gateway, drop and stall decisions for this request identity
   and attempt (a stalled answer sends its headers and half its body, then waits, in real
   time, for the client to hang up or ``stall_seconds`` to pass);
5. ``Idempotency-Key`` replay of a recorded 200, else the route itself.

Every response carries ``X-Request-ID`` (and echoes ``X-Correlation-ID``); every request, even a
dropped one, ends up in the request log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synapse_sdk.clients._transport import ACCESS_TOKEN_HEADER, TENANT_HEADER
from synapse_sdk.emulator import backend_v2
from synapse_sdk.emulator.backend_v2 import STORAGE_PREFIX
from synapse_sdk.emulator.jobs import job_routes
from synapse_sdk.emulator.responses import CONTEXT_KEY, context_of, error_response
from synapse_sdk.emulator.state import (
    EmulatorState,
    RecordedResponse,
    RequestContext,
    presented_token,
)

__all__ = ["MAX_BODY_BYTES", "OPENAPI_DOCUMENT", "FaultGate", "Policy", "create_app", "policy_for"]

#: Request bodies above this size are refused with 413 before any route runs.
MAX_BODY_BYTES = 1 << 20
_HEADER_LIMIT = 200  # longest correlation id / idempotency key kept in the log


def _clip(value: str | None) -> str | None:
    return None if value is None else value[:_HEADER_LIMIT]


def _request_key(ctx: RequestContext, body: bytes) -> str:
    """A request's identity for fault decisions: method, path, query and a body digest."""
    digest = hashlib.sha256(body).hexdigest()[:16] if body else "-"
    return f"{ctx.method} {ctx.path}?{ctx.query} {digest}"


@dataclass(frozen=True, slots=True)
class Policy:
    """How the gate treats a path: whether a request needs an access token and tenant
    (``authenticated``), takes one from the per-token bucket (``rate_limited``) and is subject
    to outages, latency and drops (``faulted``)."""

    authenticated: bool
    rate_limited: bool
    faulted: bool


_OPEN = Policy(authenticated=False, rate_limited=False, faulted=False)
_API = Policy(authenticated=True, rate_limited=True, faulted=True)
#: Presigned object-store URLs: the signature is the credential (checked by the route).
_STORAGE = Policy(authenticated=False, rate_limited=False, faulted=True)


def policy_for(path: str) -> Policy:
    """The gate's policy for ``path``: the object store, ``/v2/``, or open."""
    if path.startswith(STORAGE_PREFIX):
        return _STORAGE
    return _API if path.startswith("/v2/") else _OPEN


class _DroppedConnection(ConnectionAbortedError):
    """Raised to make a server without our drop hook abort the connection mid-response."""


class _Sender:
    """Wraps ``send``: adds request headers, records the status, truncates when told to drop."""

    def __init__(self, send: Send, ctx: RequestContext, state: EmulatorState, scope: Scope):
        self._send = send
        self._ctx = ctx
        self._state = state
        self._scope = scope
        self.truncate = False
        #: Stall mid-body for at most this many seconds (real time) or until the client hangs
        #: up, then drop the connection (the ``stall`` fault); None: no stall.
        self.stall: float | None = None
        self.receive: Receive | None = None
        #: Cut the body after this fraction of its ``Content-Length`` (an original's drop).
        self.cut_fraction: float | None = None
        self._cut_at: int | None = None
        self._sent = 0
        self.remember_as: tuple[str, ...] | None = None
        self._dropped = False
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if self._dropped:
            return
        if message["type"] == "http.response.start":
            self._status = int(message["status"])
            self._ctx.status = self._status
            self._headers = list(message.get("headers", []))
            self._plan_cut()
            extra = [(b"x-request-id", self._ctx.request_id.encode())]
            extra.extend(self._ctx.rate_limit_headers)
            if self._ctx.correlation_id is not None:
                extra.append((b"x-correlation-id", self._ctx.correlation_id.encode("latin-1")))
            await self._send({**message, "headers": self._headers + extra})
            return
        if message["type"] == "http.response.body":
            body = bytes(message.get("body", b""))
            if self.remember_as is not None:
                self._body.append(body)
            more = bool(message.get("more_body", False))
            if not more:
                self._remember()
                self._state.record(self._ctx)
            if self._cut_at is not None and self._sent + len(body) >= self._cut_at:
                cut = {"type": "http.response.body", "more_body": True}
                await self._send({**cut, "body": body[: self._cut_at - self._sent]})
                await self._drop()
                return
            self._sent += len(body)
            if self.truncate or self.stall is not None:
                await self._send(
                    {
                        "type": "http.response.body",
                        "body": body[: len(body) // 2],
                        "more_body": True,
                    }
                )
                if self.stall is not None:
                    await self._until_hung_up(self.stall)
                await self._drop()
                return
        await self._send(message)

    def _plan_cut(self) -> None:
        """Where to cut a success body of known length when told to (at least one byte in,
        never at its end)."""
        if self.cut_fraction is None or self._status not in (200, 206):
            return
        length = Headers(raw=self._headers).get("content-length", "")
        if length.isdigit() and int(length) > 1:
            self._cut_at = max(1, int(int(length) * self.cut_fraction))

    def _remember(self) -> None:
        if self.remember_as is None or self._status != 200:
            return
        self._state.remember(
            self.remember_as,
            RecordedResponse(self._status, tuple(self._headers), b"".join(self._body)),
        )

    async def _until_hung_up(self, seconds: float) -> None:
        """Wait until the client closes the connection, or ``seconds`` (real time) pass."""
        receive = self.receive

        async def hung_up() -> None:
            while receive is not None and (await receive())["type"] != "http.disconnect":
                pass

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hung_up(), timeout=seconds)

    async def _drop(self) -> None:
        self._dropped = True
        closer = self._state.connection_closer(self._scope)
        self._state.record(self._ctx)
        if closer is None:
            raise _DroppedConnection("emulator dropped the connection mid-body (fault injection)")
        await closer()

    async def replay(self, recorded: RecordedResponse) -> None:
        """Send a recorded response again, marked ``Idempotent-Replayed: true``."""
        headers = [*recorded.headers, (b"idempotent-replayed", b"true")]
        await self({"type": "http.response.start", "status": recorded.status, "headers": headers})
        await self({"type": "http.response.body", "body": recorded.body, "more_body": False})


class FaultGate:
    """The ASGI middleware applying each path's policy and the fault profile (see module doc)."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        headers = Headers(scope=scope)
        ctx = RequestContext(
            seq=state.next_seq(),
            time=state.clock(),
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            request_id=f"req_{uuid.uuid4().hex}",
            correlation_id=_clip(headers.get("x-correlation-id")),
            idempotency_key=_clip(headers.get("idempotency-key")),
        )
        scope[CONTEXT_KEY] = ctx
        sender = _Sender(send, ctx, state, scope)
        try:
            await self._serve(scope, receive, sender, ctx, headers)
        finally:
            state.record(ctx)  # if the response did not log it already

    def _refusal(
        self, ctx: RequestContext, headers: Headers, policy: Policy, body: bytes
    ) -> Response | None:
        """The response refusing this request (413, 503, 401, 429), or None to serve it."""
        state = self.state
        if len(body) > MAX_BODY_BYTES:
            detail = f"request body is larger than {MAX_BODY_BYTES} bytes"
            return error_response(ctx, 413, "PAYLOAD_TOO_LARGE", detail)
        remaining = state.outage_remaining() if policy.faulted else None
        if remaining is not None:
            ctx.faults.append("outage")
            detail = "the backend is unavailable (emulated outage)"
            return error_response(ctx, 503, "service_unavailable", detail, retry_after=remaining)
        if not policy.authenticated:
            return None
        presented = presented_token(
            headers.get(ACCESS_TOKEN_HEADER), headers.get("authorization")
        )
        fingerprint = None if presented is None else state.authenticate(presented)
        if fingerprint is None:
            challenge = {"WWW-Authenticate": "Token"}
            if presented is None:
                detail = "Authentication credentials were not provided."
                return error_response(ctx, 401, "NOT_AUTHENTICATED", detail, headers=challenge)
            detail = "Invalid token."
            return error_response(ctx, 401, "AUTHENTICATION_FAILED", detail, headers=challenge)
        if not state.serves_tenant(headers.get(TENANT_HEADER)):
            detail = f"a {TENANT_HEADER} header naming your tenant is required"
            return error_response(ctx, 403, "PERMISSION_DENIED", detail)
        ctx.authenticated = True
        ctx.token_fingerprint = fingerprint
        wait = state.take_rate_token(fingerprint, ctx) if policy.rate_limited else 0.0
        if wait > 0:
            ctx.faults.append("rate_limited")
            detail = "too many requests for this token; retry after the advertised wait"
            return error_response(ctx, 429, "rate_limited", detail, retry_after=wait)
        return None

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        sender: _Sender,
        ctx: RequestContext,
        headers: Headers,
    ) -> None:
        state = self.state
        body = await _read_body(receive)
        if body is None:  # the client went away before sending its whole request
            ctx.error_code = "client_disconnected"
            return
        policy = policy_for(ctx.path)
        refusal = self._refusal(ctx, headers, policy, body)
        if refusal is not None:
            await refusal(scope, receive, sender)
            return
        if policy.faulted:
            key = _request_key(ctx, body)
            attempt = state.request_attempt(key)
            ctx.latency = state.faults.latency_for(key, attempt)
            await state.pause(ctx.latency)
            gateway = state.faults.gateway_error(key, attempt)
            if gateway is not None:
                ctx.faults.append(f"gateway_{gateway}")
                await _gateway_page(gateway)(scope, receive, sender)
                return
            if policy is not _API:  # an original file's download
                sender.cut_fraction = state.faults.original_cut(key, attempt)
                if sender.cut_fraction is not None:
                    ctx.faults.append("original_cut")
            drop = state.faults.drop(key, attempt)
            if drop is not None:
                ctx.faults.append(drop)
                closer = state.connection_closer(scope)
                if drop == "drop_reset" and closer is not None:
                    state.record(ctx)
                    await closer()
                    return
                sender.truncate = True
            elif state.faults.stall(key, attempt):
                ctx.faults.append("stall")
                sender.stall, sender.receive = state.faults.stall_seconds, receive
        if ctx.method == "POST" and ctx.idempotency_key and ctx.token_fingerprint:
            replay_key = (
                ctx.token_fingerprint,
                ctx.idempotency_key,
                ctx.path,
                ctx.query,
                hashlib.sha256(body).hexdigest(),
            )
            recorded = state.replay(replay_key)
            if recorded is not None:
                ctx.faults.append("idempotent_replay")
                await sender.replay(recorded)
                return
            sender.remember_as = replay_key
        await self.app(scope, _replaying(body, receive), sender)


def _gateway_page(status: int) -> Response:
    """What a gateway in front of the backend answers when it fails: an HTML page, no JSON."""
    page = f"<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"
    return Response(page, status_code=status, media_type="text/html")


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (reading stops past the size cap), or None on disconnect."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = bytes(message.get("body", b""))
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES or not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body to the app once, then defers."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


#: The OpenAPI document of the routes the emulator serves (``GET /api-schema/v2/``).
OPENAPI_DOCUMENT = Path(__file__).with_name("openapi_v2.json")


async def _schema(request: Request) -> Response:
    context_of(request)
    return Response(OPENAPI_DOCUMENT.read_bytes(), media_type="application/json")


async def _health(request: Request) -> Response:
    ctx = context_of(request)
    return JSONResponse({"status": "ok", "meta": {"request_id": ctx.request_id}})


def _http_error(request: Request, exc: Exception) -> Response:
    ctx = context_of(request)
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return error_response(ctx, 404, "NOT_FOUND", f"no route for {request.url.path}")
    if status == 405:
        return error_response(
            ctx, 405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.url.path}"
        )
    detail = exc.detail if isinstance(exc, HTTPException) else "internal emulator error"
    return error_response(
        ctx, status, "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR", str(detail)
    )


def create_app(state: EmulatorState) -> ASGIApp:
    """Build the backend emulator's ASGI app over ``state``: the gate wrapping a Starlette app
    with the v2 API, file downloads and ``GET /healthz`` (which answers without a token)."""
    routes: list[BaseRoute] = [
        Route("/healthz", _health, methods=["GET"], name="health"),
        Route("/api-schema/v2/", _schema, methods=["GET"], name="api-schema"),
        *backend_v2.api_routes(state),
        *backend_v2.file_routes(state),
        *job_routes(state.jobs),
    ]
    handlers: dict[Any, Any] = {404: _http_error, 405: _http_error, Exception: _http_error}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.emulator = state
    return FaultGate(app, state)
