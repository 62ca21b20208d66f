"""Response helpers of the backend emulator's gate and routes: v2 bodies, error envelopes and
the request context."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from synapse_sdk.emulator.state import RequestContext, format_seconds

__all__ = [
    "CONTEXT_KEY",
    "context_of",
    "error_response",
    "json_response",
    "raw_json_response",
]

#: Where the gate puts the :class:`RequestContext` in the ASGI scope.
CONTEXT_KEY = "synapse_sdk.emulator.request"

_JSON = "application/json"


def context_of(request: Request) -> RequestContext:
    """The request's context, set by the gate. Raises ``RuntimeError`` outside the emulator app."""
    ctx = request.scope.get(CONTEXT_KEY)
    if not isinstance(ctx, RequestContext):
        raise RuntimeError("this route must run behind the emulator's gate (create_app)")
    return ctx


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def raw_json_response(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    """A response whose JSON body text is already assembled."""
    return Response(body.encode(), status_code=status, headers=headers, media_type=_JSON)


def json_response(
    ctx: RequestContext,
    status: int,
    *,
    data_json: str | None = None,
    error: dict[str, Any] | None = None,
    pagination: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A v2 body ``{"data": ..., "error": ..., "meta": {"request_id", "pagination"?}}``
    (``pagination`` only for a list answer).

    ``data_json`` is JSON text (items are stored serialised), spliced in without re-encoding.
    """
    parts = []
    if data_json is not None:
        parts.append(f'"data":{data_json}')
    if error is not None:
        parts.append(f'"error":{_dumps(error)}')
        ctx.error_code = str(error.get("code"))
    meta: dict[str, Any] = {"request_id": ctx.request_id}
    if pagination is not None:
        meta["pagination"] = pagination
    parts.append(f'"meta":{_dumps(meta)}')
    return raw_json_response(status, "{" + ",".join(parts) + "}", headers)


def error_response(
    ctx: RequestContext,
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """The v2 API's error envelope ``{"error": {"code", "message", "details"}, "meta":
    {"request_id"}}``; ``extra`` keys (our extensions: ``invalid_ids``, ``failed``...) join
    ``error``.

    With ``retry_after`` the wait goes out as whole seconds, rounded up (RFC 9110
    delay-seconds), in ``Retry-After`` and the body's ``retry_after``, and to the millisecond in
    ``retry-after-ms`` (our extension, which a client should prefer).
    """
    error: dict[str, Any] = {"code": code, "message": message, "details": details, **extra}
    all_headers = dict(headers or {})
    if retry_after is not None:
        seconds, header, millis = format_seconds(retry_after)
        error["retry_after"] = int(header)
        all_headers["Retry-After"] = header
        all_headers["retry-after-ms"] = millis
        ctx.retry_after = seconds
    return json_response(ctx, status, error=error, headers=all_headers)
