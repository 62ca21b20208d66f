"""The backend v2 API: cursor-paginated lists (``per_page``, ``meta.pagination``, slim items,
the list filters of :mod:`synapse_sdk.clients.list_filters`), retrieve, bulk fetch with per-item
faults, original files.

Exactly the "Backend v2 HTTP API" of ``dev/CONTRACTS.md``. Authentication, rate limiting,
outages, latency and dropped connections are the gate's job (:mod:`synapse_sdk.emulator.app`);
this module decides only what depends on the items: unknown ids, partial failures, pages.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import operator
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from synapse_sdk.clients.list_filters import LIST_FILTERS, ListFilter, parse_value
from synapse_sdk.emulator.responses import context_of, error_response, json_response
from synapse_sdk.emulator.seed import RESOURCES
from synapse_sdk.emulator.state import SIGNED_URL_TTL, EmulatorState, RequestContext
from synapse_sdk.emulator.store import FILE_URL_PLACEHOLDER, AttributeTest, Original

__all__ = [
    "DEFAULT_PAGE_LIMIT",
    "MAX_BULK_IDS",
    "MAX_PAGE_LIMIT",
    "RESPONSE_MODES",
    "STORAGE_PREFIX",
    "api_routes",
    "bulk_path",
    "decode_cursor",
    "encode_cursor",
    "file_routes",
    "payload_bytes",
    "payload_path",
    "storage_path",
]

MAX_BULK_IDS = 200
#: Where the emulated object store serves original files (presigned, no API credentials).
STORAGE_PREFIX = "/storage/"
MAX_PAGE_LIMIT = 500
DEFAULT_PAGE_LIMIT = 100
_CURSOR_VERSION = "c1"
_MAX_ID = 2**63 - 1  # SQLite's INTEGER range; larger ids cannot exist
#: The bulk routes' ``response_mode`` values: ``presigned`` serves each ``data`` as a
#: presigned wrapper; ``inline`` serves it as is, or as a truncated wrapper when it is over
#: the fault profile's ``inline_max_bytes``.
RESPONSE_MODES = ("inline", "presigned")
_Found = TypeVar("_Found")


def encode_cursor(resource: str, after: int) -> str:
    """An opaque cursor meaning "the items of ``resource`` after id ``after``"."""
    raw = f"{_CURSOR_VERSION}:{resource}:{after}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(resource: str, cursor: str) -> int:
    """The id a cursor continues after. Raises ``ValueError`` for a cursor this list never made."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, name, after = base64.urlsafe_b64decode(padded).decode().split(":")
        value = int(after)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("cursor is not one this API returned") from None
    if version != _CURSOR_VERSION or name != resource or value < 0:
        raise ValueError("cursor belongs to another list")
    return value


def _target(request: Request) -> tuple[RequestContext, str | Response]:
    """The request's context and its resource, or the 404 to send for an unknown resource."""
    ctx = context_of(request)
    resource = request.path_params["resource"]
    if resource not in RESOURCES:
        detail = f"unknown resource {resource!r}; expected one of: {', '.join(RESOURCES)}"
        return ctx, error_response(ctx, 404, "NOT_FOUND", detail)
    ctx.resource = resource
    return ctx, resource


def bulk_path(resource: str) -> str:
    """Where ``resource`` is fetched in bulk: ``bulk-data/`` for ground truths, else
    ``bulk-fetch/`` (the v2 API's paths)."""
    return f"/v2/{resource}/{'bulk-data' if resource == 'ground-truths' else 'bulk-fetch'}/"


def _one_item(
    request: Request, lookup: Callable[[str, int], _Found | None]
) -> tuple[RequestContext, _Found | Response]:
    """The request's context and what ``lookup`` finds for its resource and ``item_id``, or
    the 404 to send."""
    ctx, resource = _target(request)
    if isinstance(resource, Response):
        return ctx, resource
    item_id = int(request.path_params["item_id"])
    ctx.ids = (item_id,)
    found = lookup(resource, item_id)
    if found is None:
        return ctx, error_response(ctx, 404, "NOT_FOUND", f"no {resource} item with id {item_id}")
    return ctx, found


def storage_path(resource: str, item_id: int) -> str:
    """The object-store path of an item's original file."""
    return f"{STORAGE_PREFIX}{resource}/{item_id}"


def _signed(state: EmulatorState, base: str, resource: str, item_id: int, body: str) -> str:
    """``body`` with its file URL made a presigned, expiring URL for this answer."""
    path = storage_path(resource, item_id)
    url = f"{base}{path}?{state.sign(path)}"
    return body.replace(f'"{FILE_URL_PLACEHOLDER}"', json.dumps(url))


def payload_path(resource: str, item_id: int) -> str:
    """The object-store path of an item's externalized payload (its ``data`` as JSON)."""
    return f"{storage_path(resource, item_id)}/data"


def payload_bytes(data: object) -> bytes:
    """The bytes a payload is externalized as (compact JSON, UTF-8): what ``size`` and
    ``data_digest`` describe."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _wrapped(state: EmulatorState, base: str, resource: str, item_id: int, body: str,
             mode: str) -> str:
    """``body`` (signed) with its ``data`` as the wrapper ``mode`` calls for, if any (see
    :func:`_wrapper`)."""
    signed = _signed(state, base, resource, item_id, body)
    if mode == "inline" and state.faults.inline_max_bytes is None:
        return signed
    item = json.loads(signed)
    wrapper = _wrapper(state, base, resource, item_id, item["data"], mode)
    if wrapper is None:
        return signed
    item["data"] = wrapper
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


def _wrapper(state: EmulatorState, base: str, resource: str, item_id: int, data: object,
             mode: str) -> dict[str, object] | None:
    """The wrapper standing for ``data`` under ``mode``: every payload under ``presigned``,
    one over ``inline_max_bytes`` under ``inline``; None to serve ``data`` as is."""
    faults = state.faults
    payload = payload_bytes(data)
    if mode == "inline" and (
        faults.inline_max_bytes is None or len(payload) <= faults.inline_max_bytes
    ):
        return None
    path = payload_path(resource, item_id)
    issued = state.request_attempt(f"payload-url {path}")
    expired = faults.payload_fault("payload_url_expired", resource, item_id, issued)
    url = f"{base}{path}?{state.sign(path, -SIGNED_URL_TTL if expired else SIGNED_URL_TTL)}"
    digest = hashlib.sha256(payload).hexdigest()
    wrapper: dict[str, object] = {"mode": mode, "size": len(payload), "data_digest": digest}
    if mode == "presigned":
        wrapper["presigned_url"] = url
    else:
        wrapper |= {"truncated": True, "inline_max_bytes": faults.inline_max_bytes}
        if not faults.payload_fault("truncated_no_url", resource, item_id):
            wrapper["presigned_url"] = url
    return wrapper


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``(start, end)`` (inclusive) of a single ``Range: bytes=...`` header, None for the
    whole file. Raises ``ValueError`` for a range that cannot be satisfied."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip() != "bytes" or not dash or "," in spec:
        raise ValueError("only one bytes=START-END range is supported")
    if not first:  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start > end or start >= size:
        raise ValueError("the range is outside the file")
    return start, end


def _body(original: Original, span: tuple[int, int] | None, headers: dict[str, str]) -> Response:
    """An original file's answer: the whole file (200) or ``span`` of it (206); a streamed
    original (``original_bytes``) is sent in chunks as generated, never held whole."""
    start, end = (0, original.size - 1) if span is None else span
    status = 200 if span is None else 206
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{original.size}"
    if original.block is None:
        return Response(original.content[start : end + 1], status_code=status, headers=headers,
                        media_type=original.content_type)
    headers["Content-Length"] = str(end + 1 - start)

    async def pieces() -> AsyncIterator[bytes]:  # slicing a block is quick: no thread needed
        for piece in original.chunks(start, end):
            yield piece

    return StreamingResponse(pieces(), status_code=status, headers=headers,
                             media_type=original.content_type)


def _invalid(ctx: RequestContext, field: str, message: str) -> Response:
    """The schema's 400 ``VALIDATION_ERROR``, naming the offending ``field``."""
    details = [{"field": field, "message": message}]
    return error_response(ctx, 400, "VALIDATION_ERROR", message, details=details)


def _per_page(raw: str | None) -> int:
    """The page size ``per_page`` asks for, as DRF's cursor pagination applies it: missing,
    non-numeric or non-positive → the default; above the maximum → the maximum."""
    try:
        asked = int(raw) if raw is not None else DEFAULT_PAGE_LIMIT
    except ValueError:
        return DEFAULT_PAGE_LIMIT
    return DEFAULT_PAGE_LIMIT if asked < 1 else min(asked, MAX_PAGE_LIMIT)


class _BadFilter(ValueError):
    """A filter value of the wrong type (the 400 ``VALIDATION_ERROR`` names ``key``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _matches(spec: ListFilter, wanted: Any, value: Any) -> bool:
    """Whether an item's attribute ``value`` passes filter ``spec`` asking for ``wanted``."""
    if spec.op == "in":
        values = value if isinstance(value, list) else (value,)
        return any(v in wanted for v in values)
    if spec.op == "eq":
        return bool(value == wanted)
    return bool(_COMPARE[spec.op](value, wanted))


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
}


def _query_filter(resource: str, request: Request) -> list[AttributeTest]:
    """The list filters of the query as tests of the items' attributes (none: no filter). As
    the real API (DRF): unknown parameters are ignored; of a single-valued filter given twice
    the last counts.

    Raises:
        _BadFilter: a value of the wrong type.
    """
    tests: list[AttributeTest] = []
    query = request.query_params
    for key, spec in LIST_FILTERS[resource].items():
        raw = query.getlist(key)
        if not raw:
            continue
        try:
            wanted = (
                tuple(v for part in raw for v in parse_value(spec, part, strict=True))
                if spec.is_list else parse_value(spec, raw[-1], strict=True)
            )
        except ValueError as exc:
            raise _BadFilter(key, f"{key}: {exc}") from None
        tests.append((spec.field, functools.partial(_matches, spec, wanted)))
    return tests


def _parse_ids(body: bytes) -> list[int | str]:
    """The ``ids`` of a bulk-fetch body. Raises ``ValueError`` saying what is wrong."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or "ids" not in payload:
        raise ValueError('request body must be a JSON object {"ids": [...]}')
    ids = payload["ids"]
    if not isinstance(ids, list):
        raise ValueError(f'"ids" must be a JSON array, got {type(ids).__name__}')
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f'"ids" must hold integer ids, got {value!r}')
    return ids


def api_routes(state: EmulatorState) -> Sequence[BaseRoute]:
    """The list and bulk-fetch routes, bound to ``state``."""

    async def list_items(request: Request) -> Response:
        ctx, resource = _target(request)
        if isinstance(resource, Response):
            return resource
        per_page = _per_page(request.query_params.get("per_page"))
        cursor = request.query_params.get("cursor")
        try:
            after = decode_cursor(resource, cursor) if cursor else 0
        except ValueError:
            return error_response(ctx, 404, "NOT_FOUND", "Invalid cursor")
        try:
            tests = _query_filter(resource, request)
        except _BadFilter as exc:
            return _invalid(ctx, exc.key, str(exc))
        bodies, last = state.store.page(resource, after, per_page, tests)
        pagination = {
            "next_cursor": None if last is None else encode_cursor(resource, last),
            "previous_cursor": None,  # ours: only forward cursors are issued
            "per_page": per_page,
        }
        data = f"[{','.join(bodies)}]"
        return json_response(ctx, 200, data_json=data, pagination=pagination)

    async def retrieve(request: Request) -> Response:
        ctx, found = _one_item(request, state.store.detail)
        if isinstance(found, Response):
            return found
        if ctx.resource == "ground-truths":  # the one detail that takes response_mode
            mode = request.query_params.get("response_mode", "inline")
            if mode not in RESPONSE_MODES:
                return _invalid(ctx, "response_mode", f"must be one of {', '.join(RESPONSE_MODES)}")
            base = str(request.base_url).rstrip("/")
            wrapper = _wrapper(state, base, ctx.resource, found["id"], found["data"], mode)
            if wrapper is not None:
                found["data"] = wrapper
        return json_response(ctx, 200, data_json=json.dumps(found, ensure_ascii=False))

    async def bulk_fetch(request: Request) -> Response:
        ctx, resource = _target(request)
        if isinstance(resource, Response):
            return resource
        if request.url.path != bulk_path(resource):
            return error_response(ctx, 404, "NOT_FOUND", f"{resource} are fetched in bulk at "
                                  f"{bulk_path(resource)}")
        mode = request.query_params.get("response_mode", "inline")
        if mode not in RESPONSE_MODES:
            return _invalid(ctx, "response_mode", f"must be one of {', '.join(RESPONSE_MODES)}")
        try:
            ids = _parse_ids(await request.body())
        except ValueError as exc:
            return _invalid(ctx, "ids", str(exc))
        ctx.ids = tuple(ids)
        if len(ids) > MAX_BULK_IDS:
            return error_response(
                ctx,
                400,
                "ids_limit_exceeded",
                f"at most {MAX_BULK_IDS} ids per bulk fetch, got {len(ids)}",
                max_ids=MAX_BULK_IDS,
            )
        candidates = [i for i in ids if isinstance(i, int) and 0 < i <= _MAX_ID]
        found = state.store.fetch(resource, candidates)
        invalid = [i for i in dict.fromkeys(ids) if not isinstance(i, int) or i not in found]
        if invalid and state.faults.unknown_ids == "invalid_ids":
            shown = ", ".join(repr(i) for i in invalid[:10]) + (" ..." if len(invalid) > 10 else "")
            return error_response(
                ctx,
                400,
                "invalid_ids",
                f"{len(invalid)} unknown {resource} id(s): {shown}",
                invalid_ids=invalid,
            )
        known = [i for i in ids if isinstance(i, int) and i in found]  # the rest: dropped
        failures = state.item_failures(resource, known)
        base = str(request.base_url).rstrip("/")
        served = [
            _wrapped(state, base, resource, i, found[i], mode) for i in known if i not in failures
        ]
        data = f"[{','.join(served)}]"
        if not failures:
            return json_response(ctx, 200, data_json=data)
        ctx.failed_ids = tuple(failures)
        ctx.faults.append("partial_failure")
        failed = [
            {"id": i, "code": code, "retryable": code == "item_unavailable"}
            for i, code in failures.items()
        ]
        error = {
            "code": "partial_failure",
            "message": f"{len(failures)} of {len(dict.fromkeys(known))} items failed",
            "failed": failed,
        }
        return json_response(ctx, 207, data_json=data, error=error)

    return [
        Route("/v2/{resource}/", list_items, methods=["GET"], name="v2-list"),
        Route("/v2/{resource}/{item_id:int}/", retrieve, methods=["GET"], name="v2-retrieve"),
        Route("/v2/{resource}/bulk-fetch/", bulk_fetch, methods=["POST"], name="v2-bulk-fetch"),
        Route("/v2/{resource}/bulk-data/", bulk_fetch, methods=["POST"], name="v2-bulk-data"),
    ]


def _unsigned(state: EmulatorState, request: Request) -> Response | None:
    """The 403 refusing a storage request whose URL is not validly signed, or None."""
    problem = state.check_signature(
        request.url.path,
        request.query_params.get("expires"),
        request.query_params.get("signature"),
    )
    if problem is None:
        return None
    return error_response(context_of(request), 403, "SIGNATURE_INVALID", problem)


def file_routes(state: EmulatorState) -> Sequence[BaseRoute]:
    """The object-store routes (original files and externalized payloads), bound to ``state``."""

    async def stored(request: Request) -> Response:
        """A presigned object-store URL: the signature is the only credential."""
        refusal = _unsigned(state, request)
        if refusal is not None:
            return refusal
        ctx, original = _one_item(request, state.store.original)
        if isinstance(original, Response):
            return original
        size = original.size
        headers = {"Accept-Ranges": "bytes"}
        if original.sha256 is not None:
            headers["ETag"] = f'"{original.sha256}"'
        try:
            span = _byte_range(request.headers.get("range"), size)
        except ValueError as exc:
            headers["Content-Range"] = f"bytes */{size}"
            return error_response(ctx, 416, "RANGE_NOT_SATISFIABLE", str(exc), headers=headers)
        return _body(original, span, headers)

    async def payload(request: Request) -> Response:
        """An externalized payload (a ``data`` wrapper's ``presigned_url``)."""
        refusal = _unsigned(state, request)
        if refusal is not None:
            return refusal
        ctx, found = _one_item(request, state.store.item)
        if isinstance(found, Response):
            return found
        content = payload_bytes(found["data"])
        resource, item_id = request.path_params["resource"], int(request.path_params["item_id"])
        if content and state.faults.payload_fault("payload_corrupt", resource, item_id):
            ctx.faults.append("payload_corrupt")
            content = content[:-1] + (b" " if content[-1:] != b" " else b"\n")
        return Response(content, media_type="application/json")

    return [
        Route(
            STORAGE_PREFIX + "{resource}/{item_id:int}", stored, methods=["GET"], name="storage"
        ),
        Route(
            STORAGE_PREFIX + "{resource}/{item_id:int}/data", payload, methods=["GET"],
            name="storage-payload",
        ),
    ]
