"""The Synap emulator's HTTPS API (Starlette under uvicorn, mutual TLS optional per route).

TLS asks every client for a certificate but does not require one, so ``POST /v1/bootstrap``
works before the client has any; every other route requires a registered certificate, which the
app reads from the TLS connection (uvicorn does not expose it, so :class:`PeerCertProtocol` puts
it into the ASGI scope). Routes::

    POST   /v1/bootstrap                 token + CSR -> client certificate      (no client cert)
    POST   /v1/certificates/renew        CSR -> new certificate (grace rule)     (client cert)
    POST   /v1/sessions                  open a session                          (client cert)
    DELETE /v1/sessions/current          close it                                (+ session)
    POST   /v1/conversations             create a conversation                   (+ session)
    DELETE /v1/conversations/{id}        delete it and its memories              (+ session)
    POST   /v1/memories                  ingest memories for a user/conversation (+ session)
    DELETE /v1/memories?user_id=|conversation_id=      forget them               (+ session)
    GET    /v1/context?user_id=|conversation_id=&limit= fetch context            (+ session)

Success: ``{"data": ..., "meta": {"request_id": ...}}``; failure: ``{"error": {"code", "detail"},
"meta": ...}`` with the codes of :mod:`synapse_sdk.emulator.synap._service`. Every response
carries ``X-Request-ID``; a client's ``X-Correlation-ID`` is echoed back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from synapse_sdk.emulator.synap._faults import Fault, FaultPlan
from synapse_sdk.emulator.synap._service import ApiError, Principal, SynapService
from synapse_sdk.emulator.synap._store import SessionRow

__all__ = ["SESSION_HEADER", "PeerCertProtocol", "build_app"]

logger = logging.getLogger("synapse_sdk.emulator.synap")

#: The header carrying the session token (a secret: never logged).
SESSION_HEADER = "x-synap-session"
_TLS_KEY = "synap.tls"

Auth = Literal["none", "certificate", "session"]
Handler = Callable[["Call"], dict[str, Any]]


class PeerCertProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus the TLS peer certificate and transport in the ASGI scope.

    asyncio calls ``connection_made`` after the TLS handshake, so the peer certificate (already
    verified against the emulator's CA by the SSL context) is known; each request of the
    connection sees it under ``scope["extensions"]["synap.tls"]``.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        peer = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        inner: ASGIApp = self.app

        async def with_peer(scope: Scope, receive: Receive, send: Send) -> None:
            extensions = dict(scope.get("extensions") or {})
            extensions[_TLS_KEY] = {"peer_der": peer, "transport": transport}
            await inner({**scope, "extensions": extensions}, receive, send)

        self.app = with_peer


class Call:
    """One request as a handler sees it: the body, the query, the caller and its session."""

    def __init__(
        self,
        request: Request,
        body: dict[str, Any],
        principal: Principal | None,
        session: SessionRow | None,
    ) -> None:
        self.request = request
        self.body = body
        self.principal = principal
        self.session = session

    @property
    def caller(self) -> Principal:
        """The authenticated caller (routes with ``auth="none"`` have none)."""
        assert self.principal is not None
        return self.principal

    def query(self, name: str) -> str | None:
        """A query parameter, or None."""
        return self.request.query_params.get(name)

    @property
    def idempotency_key(self) -> str | None:
        """The request's ``Idempotency-Key`` header, if any."""
        return self.request.headers.get("idempotency-key")


def build_app(
    service: SynapService,
    faults: FaultPlan,
    shutdown: Callable[[], asyncio.Event],
    log: list[tuple[str, str | None]] | None = None,
) -> Starlette:
    """The Starlette app serving the Synap HTTPS API over ``service``.

    ``shutdown`` returns an event set when the emulator stops, which ends stalled requests early.
    ``log``, when given, receives ``(operation, correlation id)`` for every request, in arrival
    order (before faults and checks), so tests can see what a client sent on each attempt.
    """

    def route(path: str, method: str, operation: str, auth: Auth, handler: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            request_id = f"req_{secrets.token_hex(6)}"
            headers = {"X-Request-ID": request_id}
            correlation = request.headers.get("x-correlation-id")
            if correlation and len(correlation) <= 128 and correlation.isprintable():
                headers["X-Correlation-ID"] = correlation
            else:
                correlation = None
            if log is not None:
                log.append((operation, correlation))
            tls = request.scope.get("extensions", {}).get(_TLS_KEY, {})
            try:
                fault = faults.take(operation)
                if fault is not None:
                    response = await _apply_fault(fault, tls, headers, request_id, shutdown())
                    if response is not None:
                        return response
                body = await _json_body(request) if method in ("POST", "PUT") else {}
                principal = session = None
                if auth != "none":
                    principal = service.authenticate(
                        tls.get("peer_der"), renewal=operation == "renew"
                    )
                if auth == "session":
                    assert principal is not None
                    session = service.check_session(principal, request.headers.get(SESSION_HEADER))
                data = handler(Call(request, body, principal, session))
            except ApiError as exc:
                if exc.retry_after is not None:
                    headers["Retry-After"] = f"{exc.retry_after:g}"
                logger.debug(
                    "synap emulator refused %s %s: %s",
                    method,
                    path,
                    exc.code,
                    extra={"request_id": request_id},
                )
                return JSONResponse(exc.envelope(request_id), exc.status, headers=headers)
            return JSONResponse({"data": data, "meta": {"request_id": request_id}}, headers=headers)

        return Route(path, endpoint, methods=[method])

    s = service
    routes = [
        route(
            "/v1/bootstrap",
            "POST",
            "bootstrap",
            "none",
            lambda c: s.bootstrap(c.body, c.idempotency_key),
        ),
        route(
            "/v1/certificates/renew",
            "POST",
            "renew",
            "certificate",
            lambda c: s.renew(c.caller, c.body),
        ),
        route("/v1/sessions", "POST", "session", "certificate", lambda c: s.open_session(c.caller)),
        route("/v1/sessions/current", "DELETE", "session", "session", _close_session(s)),
        route(
            "/v1/conversations",
            "POST",
            "conversation",
            "session",
            lambda c: s.create_conversation(c.caller, c.idempotency_key),
        ),
        route(
            "/v1/conversations/{conversation_id}",
            "DELETE",
            "conversation",
            "session",
            lambda c: s.delete_conversation(c.caller, c.request.path_params["conversation_id"]),
        ),
        route(
            "/v1/memories",
            "POST",
            "ingest",
            "session",
            lambda c: s.ingest(c.caller, c.body, c.idempotency_key),
        ),
        route(
            "/v1/memories",
            "DELETE",
            "forget",
            "session",
            lambda c: s.forget(
                c.caller, user_id=c.query("user_id"), conversation_id=c.query("conversation_id")
            ),
        ),
        route(
            "/v1/context",
            "GET",
            "context",
            "session",
            lambda c: s.context(
                c.caller,
                user_id=c.query("user_id"),
                conversation_id=c.query("conversation_id"),
                limit=c.query("limit"),
            ),
        ),
    ]
    return Starlette(routes=routes)


def _close_session(service: SynapService) -> Handler:
    def handler(call: Call) -> dict[str, Any]:
        assert call.session is not None
        service.close_session(call.session)
        return {"closed": True}

    return handler


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_input", "request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_input", "request body must be a JSON object")
    return body


_FAULT_ERRORS: dict[str, Callable[[Fault], ApiError]] = {
    "rate_limit": lambda f: ApiError(
        429,
        "rate_limited",
        "rate limit exceeded",
        retry_after=f.retry_after if f.retry_after is not None else 1.0,
    ),
    "service_unavailable": lambda f: ApiError(
        503,
        "service_unavailable",
        "Synap Cloud is temporarily unavailable",
        retry_after=f.retry_after,
    ),
    "agent_unavailable": lambda f: ApiError(
        503, "agent_unavailable", "the agent is restarting", retry_after=f.retry_after
    ),
}


async def _apply_fault(
    fault: Fault,
    tls: dict[str, Any],
    headers: dict[str, str],
    request_id: str,
    shutdown: asyncio.Event,
) -> Response | None:
    """Serve an injected fault: an error response, a stall (then carry on) or a dropped socket."""
    if fault.kind == "stall":
        try:
            await asyncio.wait_for(shutdown.wait(), fault.stall_seconds)
        except TimeoutError:
            pass
        return None
    if fault.kind == "drop":
        transport: Any = tls.get("transport")
        if transport is not None:
            transport.abort()
        return Response(status_code=503, headers=headers)
    error = _FAULT_ERRORS[fault.kind](fault)
    if error.retry_after is not None:
        headers["Retry-After"] = f"{error.retry_after:g}"
    return JSONResponse(error.envelope(request_id), error.status, headers=headers)
