"""Clients of the backend v2 HTTP API: :class:`BackendV2Client` and :class:`AsyncBackendV2Client`.

Both expose three resources, ``.tasks``, ``.assignments`` and ``.ground_truths`` (URL names
``tasks``, ``assignments``, ``ground-truths``), each with:

* ``list_page(cursor=None, limit=100)`` — one page (a :class:`Page`) of the cursor-paginated list
  (``GET /v2/{resource}/?per_page=&cursor=``; the page size goes out as ``per_page``);
* ``iter(limit=100)`` — every item, fetched page by page as you iterate (never all at once);
* both take ``filters={"key": value}``: the list's query filters, checked against
  :data:`synapse_sdk.clients.list_filters.LIST_FILTERS` before anything is sent;
* ``retrieve(id)`` — one item's detail (``GET /v2/{resource}/{id}/``);
* ``bulk_fetch(ids)`` — the items with these ids, in input order;
* ``bulk_fetch_once(ids)`` — one request of at most 200 ids, its answer sorted out into a
  :class:`BulkAnswer` (served items, retryable and permanent failures) with no follow-ups, for
  callers that pool the failures of many requests themselves.

``bulk_fetch`` splits the ids into requests of at most :data:`BULK_FETCH_LIMIT` ids. Each request
goes through the transport, so 429s, 503s and dropped connections are retried by the retry policy
(one ``Idempotency-Key`` per request body, one correlation id for the whole call). A 207 answer
names per-item failures: the retryable ones (``item_unavailable``) are requested again by
themselves, for up to ``max_attempts`` rounds in all, after the wait
:func:`synapse_sdk.retry.decide_wait` decides: the 207's own ``retry_after`` exactly, else the
policy's backoff. A ``retry_after`` above the policy's ``retry_after_max``, a wait that would end
past the policy's ``deadline`` (counted from the start of the bulk fetch) or an empty retry
budget ends the rounds at once: the items still failing are reported as failed. The policy's
``deadline`` also bounds each request (with its retries). The result keeps the input order.

When items still fail (a non-retryable per-item code such as ``item_corrupted``, retryable ones
whose rounds ran out, or a transient error that outlasted the retry policy after some items were
fetched), ``bulk_fetch`` raises a plain :class:`~synapse_sdk.exceptions.BackendError` with
``error_code="partial_failure"``, ``status_code=207``, the ``partial_failure`` envelope,
``failed_ids`` (input order), ``failed_codes`` (id → per-item code) and **``succeeded``**: the list
of items that were fetched, in input order (read it with :func:`succeeded_items`). Its message
holds the envelope JSON, so ``classify_export_error(exc)`` gives ``EXPORT_FAILED_BATCH_PARTIAL``.
Every id ends either in the result (or ``succeeded``) or in ``failed_ids``, exactly once.

Errors that concern the whole call propagate unchanged: a 400 ``invalid_ids`` is raised at once as
``BackendInvalidInputError`` (``failed_ids`` = the invalid ids, never retried), a 401 as
``BackendAuthenticationError``; and a transient error that outlasted the retries before any item
was settled is raised as itself (e.g. ``BackendServiceUnavailableError``).

List answers are the v2 list envelope ``{"data": [...], "meta": {"pagination": {"next_cursor",
"previous_cursor", "per_page"}, "request_id"}}``; list items are slim (ids and a few fields,
no ``data``: fetch those with ``bulk_fetch``). An answer without ``data`` or without the
pagination object is a ``BackendError("malformed_response")``, never a silent last page.

Design choices: duplicate ids are fetched once (the result has one item per distinct id, at its
first position); ids are matched by their string form (``7`` and ``"7"`` name the same item). An
id a 200 answer left out is one the backend does not serve (the real v2 API silently drops
unknown and forbidden ids): a permanent failure with code ``not_served``, reported once and never
asked again. An id a 207 left out without naming it is retried (``missing_from_response``).
Ground truths are fetched at ``/v2/ground-truths/bulk-data/``, the others at
``/v2/{resource}/bulk-fetch/``, with ``?response_mode=`` the client's ``response_mode``
(``inline`` by default). A ``data`` that is a presigned or truncated-inline wrapper is resolved
before the item is returned (:class:`_Resolution`): downloaded without the API's credentials,
bounded, checked against the wrapper's ``size`` and SHA-256 ``data_digest``; the downloads of one
answer run concurrently, at most ``payload_concurrency`` at a time (a thread pool for the sync
client, a semaphore for the async one). A refused URL is re-fetched once; an item that cannot be
resolved fails alone with its own code (:data:`PAYLOAD_TRUNCATED`, ``checksum_mismatch``,
:data:`PAYLOAD_URL_REFUSED`...), but a re-fetch the backend refuses outright (401, 403 or
another error the retry policy does not retry) fails the whole call, as that error does anywhere.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import ipaddress
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final, Generic, TypeVar
from urllib.parse import urlsplit

import httpx

from synapse_sdk.clients._download import Downloaded, DownloadSink
from synapse_sdk.clients._manifest import primary_file
from synapse_sdk.clients._transport import (
    AsyncSleep,
    AsyncTransport,
    ClientStats,
    Clock,
    Pacer,
    Response,
    SyncSleep,
    Transport,
    TransportViews,
    VerifyTypes,
    malformed_response,
)
from synapse_sdk.clients.list_filters import FilterValue, check_filters
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.envelopes import ErrorEnvelope, FailedItem, ItemId, find_envelope
from synapse_sdk.exceptions import BackendError, SynapError
from synapse_sdk.retry import decide_wait, notify_wait
from synapse_sdk.telemetry import RetryHook

__all__ = [
    "BULK_FETCH_LIMIT",
    "DEFAULT_MAX_ORIGINAL_BYTES",
    "DEFAULT_PAGE_LIMIT",
    "MAX_LOGS_PER_REQUEST",
    "MAX_PAGE_LIMIT",
    "MAX_PAYLOAD_BYTES",
    "NOT_SERVED",
    "PAYLOAD_TRUNCATED",
    "PAYLOAD_URL_REFUSED",
    "RESPONSE_MODES",
    "AsyncBackendV2Client",
    "AsyncJobs",
    "AsyncResource",
    "BackendV2Client",
    "BulkAnswer",
    "Item",
    "Jobs",
    "Page",
    "Resource",
    "SavedOriginal",
    "rate_limited_paths",
    "retry_round_error",
    "sort_answer",
    "succeeded_items",
    "validate_ids",
]

#: An item as the backend sends it (``id``, ``resource``, ``project_id``, ``data``, ``original``).
Item = dict[str, Any]

#: Most ids the backend accepts in one bulk-fetch request.
BULK_FETCH_LIMIT: Final = 200
#: Default and largest page size of the list endpoints.
DEFAULT_PAGE_LIMIT: Final = 100
MAX_PAGE_LIMIT: Final = 500
#: Default bound on one original file.
DEFAULT_MAX_ORIGINAL_BYTES: Final = 64 * 1024 * 1024
#: Bound on one list page or bulk answer (the transport's 32 MiB default is for any body): 8 MiB
#: is 35x the emulator's largest page (500 items, 235 KB) and keeps a page of ``{}`` items, the
#: worst bytes-to-memory ratio, near 245 MB of peak RSS (docs/reliability.md, Hostile server).
MAX_PAGE_BYTES: Final = 8 * 1024 * 1024
#: What a bulk request may ask for: payloads inline (the default) or behind presigned URLs.
RESPONSE_MODES: Final = ("inline", "presigned")
#: Hard bound on one payload behind a ``data`` wrapper, whatever size the wrapper declares.
MAX_PAYLOAD_BYTES: Final = 64 * 1024 * 1024
#: The per-item code of a truncated payload the backend offers no URL for (permanent).
PAYLOAD_TRUNCATED: Final = "payload_truncated"
#: How many wrapped payloads of one bulk answer are downloaded at once, by default.
DEFAULT_PAYLOAD_CONCURRENCY: Final = 8
#: The per-item code of a payload whose URL the store refused again after a fresh fetch.
PAYLOAD_URL_REFUSED: Final = "payload_url_refused"
#: What an object store answers to a presigned URL that expired or was revoked.
_URL_REFUSED: Final = frozenset({400, 401, 403})
#: Failed items shown in a partial-failure message (the ``envelope`` attribute holds them all).
_FAILED_SHOWN = 20
_MAX_ID_CHARS = 256
#: The v2 resources a client serves (``tasks``, ``assignments``, ``ground-truths``).
_RESOURCE_NAMES: Final = ("tasks", "assignments", "ground-truths")


#: Ground truths are fetched in bulk at ``bulk-data/``, the others at ``bulk-fetch/``.
_BULK_ACTIONS: Final = {"ground-truths": "bulk-data"}


def _resource_paths(name: str) -> tuple[str, str]:
    """The list and bulk paths of resource ``name``."""
    return f"/v2/{name}/", f"/v2/{name}/{_BULK_ACTIONS.get(name, 'bulk-fetch')}/"


def rate_limited_paths(job_id: str | None = None) -> frozenset[str]:
    """The call paths that share the backend's rate limit (every resource's list and bulk-fetch
    paths, and with ``job_id`` that job's update and bulk-log paths): what a
    :class:`~synapse_sdk.clients._transport.Pacer` paces.

    Raises:
        TypeError, ValueError: ``job_id`` is not a job's id.
    """
    paths = {path for name in _RESOURCE_NAMES for path in _resource_paths(name)}
    if job_id is not None:
        paths.update((_JobsBase._path(job_id), _JobsBase._path(job_id, "logs/bulk/")))
    return frozenset(paths)


_PARTIAL = "partial_failure"


def retry_round_error(
    what: str, retry: Mapping[ItemId, str | None], correlation_id: str | None = None
) -> BackendError:
    """What a round that asks items again waits for, as the retry hooks are told it: a
    ``partial_failure`` (status 207) whose ``failed_ids``/``failed_codes`` are ``retry``."""
    return BackendError(
        f"{what}: {len(retry)} items to fetch again",
        status_code=207,
        error_code=_PARTIAL,
        failed_ids=list(retry),
        failed_codes=dict(retry),
        correlation_id=correlation_id,
    )
_MISSING = "missing_from_response"
#: The per-item code of an id a 200 answer left out: the backend does not serve it to us
#: (unknown or not visible). Permanent: asking again gives the same answer.
NOT_SERVED: Final = "not_served"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: its items, the cursor of the next page (None: last page), the
    cursor of the previous one, the page size the backend applied and its request id."""

    items: list[Item]
    next_cursor: str | None
    request_id: str | None = None
    previous_cursor: str | None = None
    per_page: int | None = None


def succeeded_items(exc: BaseException) -> list[Item]:
    """The items a failed ``bulk_fetch`` did fetch (its error's ``succeeded``; [] if none)."""
    items = vars(exc).get("succeeded") if hasattr(exc, "__dict__") else None
    return list(items) if isinstance(items, list) else []


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "…"


def validate_ids(ids: object) -> list[ItemId]:
    """``ids`` checked: a non-empty list or tuple of ints and non-empty strings.

    Raises:
        TypeError: ``ids`` is not a list/tuple (a str, dict, set, generator or None), or an
            element is a bool, None, float, dict or anything but an int or str.
        ValueError: ``ids`` is empty, or an element is an empty/blank or overlong string.
    """
    if not isinstance(ids, list | tuple):
        raise TypeError(f"ids must be a list or tuple of ints/strs, not {type(ids).__name__}")
    if not ids:
        raise ValueError("ids must not be empty")
    for position, value in enumerate(ids):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(
                f"ids[{position}] must be an int or str, not {type(value).__name__} "
                f"({_shown(value)})"
            )
        if isinstance(value, str) and (not value.strip() or len(value) > _MAX_ID_CHARS):
            raise ValueError(
                f"ids[{position}] must be a non-blank string of at most {_MAX_ID_CHARS} "
                f"characters, got {_shown(value)}"
            )
    return list(ids)


def _unique_ids(ids: object) -> dict[str, ItemId]:
    """``ids`` checked (:func:`validate_ids`), keyed by string form, first occurrence kept."""
    unique: dict[str, ItemId] = {}
    for item_id in validate_ids(ids):
        unique.setdefault(str(item_id), item_id)
    return unique


def _one_request(ids: object) -> list[ItemId]:
    """``ids`` checked and deduplicated, at most one request's worth."""
    unique = _unique_ids(ids)
    if len(unique) > BULK_FETCH_LIMIT:
        raise ValueError(
            f"one bulk-fetch request takes at most {BULK_FETCH_LIMIT} ids, got {len(unique)}; "
            "use bulk_fetch() to split them"
        )
    return list(unique.values())


def _validate_limit(limit: object, maximum: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, not {type(limit).__name__}")
    if not 1 <= limit <= maximum:
        raise ValueError(f"limit must be between 1 and {maximum}, got {limit}")
    return limit


def _validate_cursor(cursor: object) -> str | None:
    if cursor is not None and not isinstance(cursor, str):
        raise TypeError(f"cursor must be a str or None, not {type(cursor).__name__}")
    return cursor or None


def _data_list(response: Response) -> tuple[list[Item], dict[str, Any]]:
    """The ``data`` list and the whole body of a success answer.

    Raises:
        BackendError: ``malformed_response``; the body breaks the API's shape.
    """
    body = response.json()
    if not isinstance(body, dict):
        raise malformed_response(response, "the body is not a JSON object")
    data = body.get("data")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise malformed_response(response, "'data' is not a list of objects")
    return data, body


def _parse_page(response: Response, cursor: str | None) -> Page:
    """A list answer as a :class:`Page`.

    Raises:
        BackendError: ``malformed_response``; no ``data`` list, no ``meta.pagination`` object,
            a cursor that is not a string or null, or a next cursor equal to this page's.
    """
    data, body = _data_list(response)
    meta = body.get("meta")
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    if not isinstance(pagination, dict):
        raise malformed_response(response, "no 'meta.pagination' object in a list answer")
    cursors = [pagination.get(key) for key in ("next_cursor", "previous_cursor")]
    for key, value in zip(("next_cursor", "previous_cursor"), cursors, strict=True):
        if value is not None and not isinstance(value, str):
            raise malformed_response(response, f"'meta.pagination.{key}' is not a string or null")
    next_cursor, previous_cursor = (value or None for value in cursors)
    if next_cursor is not None and next_cursor == cursor:
        raise malformed_response(response, "'meta.pagination.next_cursor' did not advance")
    per_page = pagination.get("per_page")
    request_id = meta.get("request_id") if isinstance(meta, dict) else None
    return Page(
        items=data,
        next_cursor=next_cursor,
        request_id=request_id if isinstance(request_id, str) else response.request_id,
        previous_cursor=previous_cursor,
        per_page=per_page if isinstance(per_page, int) and not isinstance(per_page, bool) else None,
    )


def _parse_detail(response: Response) -> Item:
    """The ``data`` object of a retrieve answer.

    Raises:
        BackendError: ``malformed_response``; the body has no ``data`` object.
    """
    body = response.json()
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise malformed_response(response, "'data' is not an object")
    return data


def _validate_item_id(item_id: object) -> int:
    if isinstance(item_id, bool) or not isinstance(item_id, int):
        raise TypeError(f"item_id must be an int, not {type(item_id).__name__}")
    if item_id < 1:
        raise ValueError(f"item_id must be positive, got {item_id}")
    return item_id


def _new_cursor(page: Page, seen: set[bytes], path: str) -> str:
    """The page's next cursor, remembered (as a 16-byte digest) in ``seen``, the cursors of
    this iteration so far: a listing that cycles (A -> B -> A) would never end.

    Raises:
        BackendError: ``malformed_response``; the cursor was seen before in this iteration.
    """
    cursor = page.next_cursor or ""
    digest = hashlib.blake2b(cursor.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    if digest in seen:
        raise BackendError(
            f"GET {path}: 'meta.next_cursor' {_shown(cursor)} leads back to a page already "
            "listed (the listing cycles)",
            error_code="malformed_response",
            correlation_id=page.request_id,
        )
    seen.add(digest)
    return cursor


def _key(item_id: object) -> str:
    return str(item_id)


@dataclass(frozen=True, slots=True)
class BulkAnswer:
    """One bulk-fetch answer (200 or 207) sorted out against the ids it was asked for.

    ``items`` are the items served, in request order; ``retry`` maps the ids worth asking again
    (the backend said ``retryable``, or a 207 left them out without naming them:
    ``missing_from_response``) to their code; ``failed`` the ids it will not serve (e.g.
    ``item_corrupted``, or :data:`NOT_SERVED` for an id a 200 left out) to theirs;
    ``retry_after`` is the wait the answer asked for before asking again, if any.
    """

    items: list[Item]
    retry: dict[ItemId, str | None]
    failed: dict[ItemId, str | None]
    retry_after: float | None = None
    status_code: int = 200


def sort_answer(sent: Sequence[ItemId], response: Response) -> BulkAnswer:
    """Sort a bulk-fetch ``response`` to the ids in ``sent`` (matched by their string form).

    Raises:
        BackendError: ``malformed_response``; the answer breaks the API's shape.
    """
    data, body = _data_list(response)
    served = {_key(item.get("id")): item for item in reversed(data)}
    reported: dict[str, FailedItem] = {}
    retry_after: float | None = None
    error = body.get("error")
    if error is not None:
        envelope = find_envelope({"error": error})
        if envelope is not None:
            reported = {_key(f.id): f for f in envelope.failed}
            retry_after = envelope.retry_after_seconds
    answer = BulkAnswer([], {}, {}, retry_after, response.status_code)
    seen: set[str] = set()
    for item_id in sent:
        key = _key(item_id)
        if key in seen:
            continue
        seen.add(key)
        item = served.get(key)
        failure = reported.get(key)
        if item is not None:
            answer.items.append(item)
        elif failure is None and response.status_code == 200:
            answer.failed[item_id] = NOT_SERVED
        elif failure is None:
            answer.retry[item_id] = _MISSING
        elif failure.retryable:
            answer.retry[item_id] = failure.code
        else:
            answer.failed[item_id] = failure.code
    return answer


class _BulkFetch:
    """The bookkeeping of one ``bulk_fetch`` call, free of I/O (shared by sync and async).

    Round 1 requests every id; each later round requests, by themselves, the ids that failed
    with a retryable per-item code, until none are left or ``max_attempts`` rounds ran.
    """

    def __init__(
        self,
        resource: str,
        ids: object,
        policy: RetryPolicy,
        rng: random.Random | None,
        stats: ClientStats,
        clock: Callable[[], float],
        hooks: tuple[RetryHook, ...] = (),
    ) -> None:
        self.resource = resource
        #: The client's retry hooks, told of each round's wait (:func:`notify_wait`).
        self.hooks = hooks
        self.correlation_id = uuid.uuid4().hex
        self.original = _unique_ids(ids)
        self.order = list(self.original)
        self.policy = policy
        self.rng = rng
        self.stats = stats
        self.round = 1
        self.pending: list[str] = list(self.order)
        self.results: dict[str, Item] = {}
        #: Settled failures: key → (code, whether retrying later may help).
        self.failed: dict[str, tuple[str | None, bool]] = {}
        #: Retryable failures of the current round: key → code.
        self.retry: dict[str, str | None] = {}
        self.retry_hint: float | None = None
        self.previous_delay: float | None = None
        self.abort_error: SynapError | None = None
        self.settled_before_abort = True
        self.clock = clock
        self.started = clock()

    def chunks(self) -> Iterator[list[ItemId]]:
        """This round's requests: the pending ids (input order) in slices of the backend limit."""
        for start in range(0, len(self.pending), BULK_FETCH_LIMIT):
            yield [self.original[k] for k in self.pending[start : start + BULK_FETCH_LIMIT]]

    def record(self, answer: BulkAnswer) -> None:
        """Settle the ids of one request from its sorted (and resolved) 200 or 207 answer."""
        for item in answer.items:
            self.results.setdefault(_key(item.get("id")), item)
        for item_id, code in answer.retry.items():
            self.retry[_key(item_id)] = code
        for item_id, code in answer.failed.items():
            self.failed[_key(item_id)] = (code, False)
        if answer.retry_after is not None:
            self.retry_hint = max(self.retry_hint or 0.0, answer.retry_after)

    def abort(self, exc: SynapError) -> None:
        """A request failed with a transient error the policy gave up on: stop, and settle every
        id of this round still open as failed (its per-item code, else the error's code)."""
        self.abort_error = exc
        self.settled_before_abort = bool(self.results or self.failed)
        code = getattr(exc, "error_code", None) or exc.code
        for key in self.pending:
            if key not in self.results and key not in self.failed:
                self.failed[key] = (self.retry.get(key, code), True)
        self.retry = {}

    def next_round(self) -> float | None:
        """Start the next round and return the wait before it, or None when the call is done.

        The wait is :func:`~synapse_sdk.retry.decide_wait`'s: the 207's ``retry_after`` exactly,
        else the policy's backoff. When it refuses to wait (the rounds are spent, the hint is
        above ``retry_after_max``, the wait would cross the policy's deadline, the budget is
        empty) the items still failing settle as failed, retryable, at once.
        """
        if self.abort_error is not None or not self.retry:
            return None
        deadline = self.policy.deadline
        decision = decide_wait(
            self.policy,
            self.round,
            hint=self.retry_hint,
            previous=self.previous_delay,
            remaining=None if deadline is None else deadline - (self.clock() - self.started),
            rng=self.rng,
        )
        notify_wait(
            decision, attempt=self.round, max_attempts=self.policy.max_attempts,
            error=self._round_error(), call_name="bulk_fetch", hooks=self.hooks,
        )
        self.retry_hint = None
        if decision.surface:
            for key, code in self.retry.items():
                self.failed[key] = (code, True)
            self.retry = {}
            return None
        delay = self.previous_delay = decision.seconds
        self.pending = [key for key in self.order if key in self.retry]
        self.retry = {}
        self.round += 1
        self.stats.add(items_retried=len(self.pending))
        return delay

    def _round_error(self) -> BackendError:
        """The round's failure as the retry hooks see it (:func:`retry_round_error`)."""
        retry = {self.original[key]: self.retry[key] for key in self.order if key in self.retry}
        return retry_round_error(f"bulk fetch of {self.resource}", retry, self.correlation_id)

    def outcome(self) -> list[Item]:
        """The fetched items in input order.

        Raises:
            BackendError: ``partial_failure`` (see the module docstring) when any id failed;
                raised from the transient error that stopped the call, if one did.
            SynapError: that transient error itself, when it stopped the call before any id
                was settled.
        """
        if self.abort_error is not None and not self.settled_before_abort:
            raise self.abort_error
        succeeded = [self.results[key] for key in self.order if key in self.results]
        if not self.failed:
            return succeeded
        failed_keys = [key for key in self.order if key in self.failed]
        detail = (
            f"{len(failed_keys)} of {len(self.order)} {self.resource} could not be fetched "
            f"({len(succeeded)} fetched)"
        )
        envelope = ErrorEnvelope(
            code=_PARTIAL,
            message=detail,
            status=207,
            failed=tuple(
                FailedItem(self.original[key], self.failed[key][0], self.failed[key][1])
                for key in failed_keys
            ),
        )
        shown = replace(envelope, failed=envelope.failed[:_FAILED_SHOWN])
        more = len(failed_keys) - _FAILED_SHOWN
        suffix = f" (+{more} more failed items)" if more > 0 else ""
        error = BackendError(
            f"bulk fetch of {self.resource} partly failed: {shown.to_json()}{suffix}",
            status_code=207,
            error_code=_PARTIAL,
            detail=detail,
            failed_ids=[self.original[key] for key in failed_keys],
            failed_codes={self.original[key]: self.failed[key][0] for key in failed_keys},
            correlation_id=self.correlation_id,
            envelope=envelope,
        )
        vars(error)["succeeded"] = succeeded
        if self.abort_error is not None:
            raise error from self.abort_error
        raise error


def _hex_digest(value: object, length: int, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"item's {what} must be a hex string")
    digest = value.lower()
    if len(digest) != length or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"item's {what} is not {length} hex digits: {digest!r}")
    return digest



def _origin(parts: Any) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a split URL, with the scheme's default port filled in."""
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

def _plain_http_elsewhere(url: str, base_url: str) -> bool:
    """Whether ``url`` is plain http on another origin than the backend's (refused: a file
    from elsewhere comes over https, unless the backend itself is plain http on loopback)."""
    if url.startswith("/"):
        return False
    target, backend = urlsplit(url), urlsplit(base_url)
    if target.scheme == "https" or _origin(target) == _origin(backend):
        return False
    return not (backend.scheme == "http" and _is_loopback(backend.hostname))


@dataclass(frozen=True, slots=True)
class _Original:
    """Where an item's original file is and what it must look like."""

    item_id: ItemId | None
    url: str
    size: int | None
    digest: str | None
    #: ``sha1`` (a manifest's ``checksum``) or ``sha256`` (our ``original`` block).
    algorithm: str
    #: Whether the API's credentials may go with the download: never for a manifest's
    #: (presigned) URL; for our ``original`` block, to the base URL's origin only.
    credentials: bool

    @classmethod
    def of(cls, item: object) -> _Original:
        """Read the primary ``files_manifest`` entry (``url``, ``file_size``, SHA-1
        ``checksum``), else our ``original`` block (``url``, ``size``, ``sha256``).

        Raises:
            TypeError: ``item`` is not a dict, has neither, or a field has the wrong type.
            ValueError: ``url`` is missing or not a path/URL, a size negative, a digest not hex
                of the right length.
        """
        if not isinstance(item, dict):
            raise TypeError(f"item must be a dict from the backend, not {type(item).__name__}")
        entry = primary_file(item)
        if entry is not None:
            url, size, algorithm = entry.get("url"), entry.get("file_size"), "sha1"
            digest = _hex_digest(entry.get("checksum"), 40, "files_manifest checksum")
        else:
            original = item.get("original")
            if not isinstance(original, dict):
                raise TypeError("item has no file: no 'files_manifest' entry, no 'original'")
            url, size, algorithm = original.get("url"), original.get("size"), "sha256"
            digest = _hex_digest(original.get("sha256"), 64, "original sha256")
        if not isinstance(url, str) or not url.startswith(("/", "http://", "https://")):
            raise ValueError(f"item's original url must be a path or http(s) URL, got {url!r}")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ValueError(f"item's original size must be an int >= 0, got {size!r}")
        raw_id = item.get("id")
        item_id = raw_id if isinstance(raw_id, int | str) and not isinstance(raw_id, bool) else None
        return cls(item_id, url, size, digest, algorithm, entry is None)

    def check_origin(self, base_url: str) -> None:
        """Refuse a plain-http URL on another origin than the backend's: a file from elsewhere
        comes over https, unless the backend itself is plain http on loopback (a local
        emulator or a development backend).

        Raises:
            ValueError: the URL is plain http on another origin (nothing is fetched).
        """
        if _plain_http_elsewhere(self.url, base_url):
            target = urlsplit(self.url)
            raise ValueError(
                f"item {self.item_id!r}: its original is on another origin over plain http "
                f"({target.scheme}://{target.hostname}); files from elsewhere must come over https"
            )

    def _error(self, code: str, what: str, correlation_id: str | None) -> BackendError:
        return BackendError(
            f"original file of item {self.item_id!r} {what}",
            error_code=code,
            failed_ids=() if self.item_id is None else (self.item_id,),
            failed_codes=None if self.item_id is None else {self.item_id: code},
            correlation_id=correlation_id,
        )

    def limit(self, max_bytes: object, default: int | None) -> int | None:
        """The byte bound for the download: ``max_bytes``, else ``default`` (None: none).

        Raises:
            ValueError: ``max_bytes`` is not a positive int or None.
            BackendError: ``response_too_large``; the declared size is over the bound.
        """
        limit = default if max_bytes is None else max_bytes
        if limit is None:
            return None
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        if self.size is not None and self.size > limit:
            raise self._error(
                "response_too_large",
                f"declares {self.size} bytes, over the {limit}-byte bound",
                None,
            )
        return limit

    def checked(self, sink: DownloadSink) -> _CheckedSink:
        """``sink`` behind a sink that counts and hashes the bytes on their way to it."""
        return _CheckedSink(self, sink)

    def verify(self, checked: _CheckedSink, downloaded: Downloaded) -> SavedOriginal:
        """What was saved, if its size and digest match the item's (without a size: if its
        length matches the ``Content-Length`` or ``Content-Range`` total).

        Raises:
            BackendError: ``size_mismatch`` or ``checksum_mismatch`` (not retried: the backend
                serves this file wrong), carrying the item id in ``failed_ids``.
        """
        expected = self.size if self.size is not None else downloaded.total
        correlation_id = downloaded.correlation_id
        if expected is not None and checked.size != expected:
            raise self._error(
                "size_mismatch", f"has {checked.size} bytes, expected {expected}", correlation_id
            )
        if self.digest is not None:
            actual = checked.item_digest()
            if actual != self.digest:
                name = "SHA-1" if self.algorithm == "sha1" else "SHA-256"
                raise self._error(
                    "checksum_mismatch",
                    f"has {name} {actual}, the item declares {self.digest}",
                    correlation_id,
                )
        return SavedOriginal(
            checked.size, checked.sha256.hexdigest(), downloaded.resumes, downloaded.restarts
        )


@dataclass(frozen=True, slots=True)
class SavedOriginal:
    """An original file downloaded into a sink and checked: its size, its SHA-256 (hex), and
    how many times its download resumed with ``Range`` or started over from byte 0."""

    size: int
    sha256: str
    resumes: int = 0
    restarts: int = 0


class _CheckedSink:
    """Counts and hashes (SHA-256, and the item's own algorithm) what goes to ``sink``; bytes
    past the item's declared size are refused at once (``size_mismatch``)."""

    def __init__(self, original: _Original, sink: DownloadSink) -> None:
        self._original = original
        self._sink = sink
        self._reset()

    def _reset(self) -> None:
        self.size = 0
        self.sha256 = hashlib.sha256()
        own = self._original.digest is not None and self._original.algorithm != "sha256"
        self._own = hashlib.new(self._original.algorithm) if own else None

    def item_digest(self) -> str:
        """The digest in the item's algorithm (hex)."""
        return (self._own or self.sha256).hexdigest()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        declared = self._original.size
        if declared is not None and self.size > declared:
            raise self._original._error(
                "size_mismatch", f"has more than the {declared} bytes it declares", None
            )
        self.sha256.update(data)
        if self._own is not None:
            self._own.update(data)
        self._sink.write(data)

    def restart(self) -> None:
        self._sink.restart()
        self._reset()


class _MemorySink:
    """A download kept in memory (:meth:`BackendV2Client.download_original`)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> None:
        self.buffer += data

    def restart(self) -> None:
        self.buffer.clear()


class _ItemFailure(Exception):
    """One item's payload cannot be resolved: its per-item ``code`` and whether asking again
    later may help."""

    def __init__(self, code: str, retryable: bool = False) -> None:
        super().__init__(code)
        self.code = code
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class _Payload:
    """A ``data`` wrapper standing for an item's payload (dev/REAL_V2_API.md §4.2): presigned
    (``mode: presigned``, ``presigned_url``) or truncated inline (``mode: inline``,
    ``truncated: true``, maybe a ``presigned_url``); both carry ``size`` and ``data_digest``
    (the payload's SHA-256)."""

    url: str
    size: int
    digest: str

    @staticmethod
    def wraps(data: object) -> bool:
        """Whether ``data`` is a wrapper, recognised strictly so that a payload that merely has
        a ``mode`` key stays a payload: ``mode`` presigned with a ``presigned_url``, or inline
        with ``truncated: true``, and a ``data_digest`` either way."""
        if not isinstance(data, dict) or "data_digest" not in data:
            return False
        mode = data.get("mode")
        return (mode == "presigned" and "presigned_url" in data) or (
            mode == "inline" and data.get("truncated") is True
        )

    @classmethod
    def of(cls, item: Item, base_url: str) -> _Payload | None:
        """The wrapper in ``item``'s ``data``, or None when ``data`` is the payload itself.

        Raises:
            _ItemFailure: ``payload_truncated`` (a truncated wrapper without a URL: the backend
                gives the payload no other way), ``malformed_item`` (a bad URL, size or digest,
                or a plain-http URL on another origin), ``response_too_large`` (a declared size
                over :data:`MAX_PAYLOAD_BYTES`). All permanent.
        """
        data = item.get("data")
        if not cls.wraps(data):
            return None
        assert isinstance(data, dict)
        url, size, digest = data.get("presigned_url"), data.get("size"), data.get("data_digest")
        if url is None:
            raise _ItemFailure(PAYLOAD_TRUNCATED)
        try:
            checked = _hex_digest(digest, 64, "data_digest")
        except (TypeError, ValueError):
            checked = None
        if (
            checked is None
            or not isinstance(url, str)
            or not url.startswith(("https://", "http://"))
            or _plain_http_elsewhere(url, base_url)
            or isinstance(size, bool)
            or not isinstance(size, int)
            or size < 0
        ):
            raise _ItemFailure("malformed_item")
        if size > MAX_PAYLOAD_BYTES:
            raise _ItemFailure("response_too_large")
        return cls(url, size, checked)

    @property
    def limit(self) -> int:
        """The byte bound of the download: the declared size (a longer body is refused)."""
        return max(self.size, 1)

    def resolved(self, item: Item, response: Response) -> Item:
        """``item`` with the downloaded payload as its ``data``.

        Raises:
            _ItemFailure: ``size_mismatch``, ``checksum_mismatch`` (the store serves other
                bytes than the wrapper declares) or ``malformed_item`` (not JSON); permanent.
        """
        content = response.content
        if len(content) != self.size:
            raise _ItemFailure("size_mismatch")
        if hashlib.sha256(content).hexdigest() != self.digest:
            raise _ItemFailure("checksum_mismatch")
        try:
            payload = json.loads(content)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise _ItemFailure("malformed_item") from None
        return {**item, "data": payload}


def _download_failure(exc: SynapError, policy: RetryPolicy) -> _ItemFailure | None:
    """What a failed payload download means for its item: None when the store refused the
    URL (400/401/403: expired or revoked; fetching the item again issues a fresh one), else
    the error's code, retryable when the policy retries such errors."""
    if getattr(exc, "status_code", None) in _URL_REFUSED:
        return None
    return _ItemFailure(getattr(exc, "error_code", None) or exc.code, policy.is_retryable(exc))


def _unresolved(item_id: int, code: str) -> BackendError:
    """The error of a retrieved item whose ``data`` wrapper cannot be resolved."""
    return BackendError(
        f"the data of item {item_id} could not be resolved ({code})",
        error_code=code,
        failed_ids=(item_id,),
        failed_codes={item_id: code},
    )


def _detail_payload(item: Item, item_id: int, base_url: str) -> _Payload | None:
    """The wrapper in a retrieved item's ``data``, None when ``data`` is the payload.

    Raises:
        BackendError: the wrapper is unusable (its :class:`_ItemFailure` code).
    """
    try:
        return _Payload.of(item, base_url)
    except _ItemFailure as failure:
        raise _unresolved(item_id, failure.code) from None


def _detail_resolved(item: Item, item_id: int, payload: _Payload, got: Response | SynapError,
                     final: bool, policy: RetryPolicy) -> Item | None:
    """A retrieved item with its payload downloaded; None to retrieve it again for a fresh
    URL (the store refused this one and ``final`` is false).

    Raises:
        BackendError: ``payload_url_refused`` (refused again), or the payload is not what
            its wrapper says (:meth:`_Payload.resolved`'s code).
        SynapError: the download's own error (e.g. a timeout that outlasted the retries).
    """
    if isinstance(got, SynapError):
        if _download_failure(got, policy) is not None:
            raise got
        if final:
            raise _unresolved(item_id, PAYLOAD_URL_REFUSED) from got
        return None
    try:
        return payload.resolved(item, got)
    except _ItemFailure as failure:
        raise _unresolved(item_id, failure.code) from None


class _Resolution:
    """The payload resolution of one bulk answer, free of I/O (shared by sync and async).

    Each wrapped item's payload is downloaded; an item whose URL the store refused is fetched
    again once (one bulk request for all of them) and its fresh URL tried; a second refusal
    fails it (:data:`PAYLOAD_URL_REFUSED`, retryable). An item that cannot be resolved fails
    alone; the others keep their place in request order.
    """

    def __init__(self, answer: BulkAnswer, sent: Sequence[ItemId], base_url: str,
                 policy: RetryPolicy) -> None:
        self.answer = answer
        self.base_url = base_url
        self.policy = policy
        self.ids = {_key(item_id): item_id for item_id in sent}
        self.items: dict[str, Item] = {_key(item.get("id")): item for item in answer.items}
        self.retry = dict(answer.retry)
        self.failed = dict(answer.failed)
        self.refused: list[ItemId] = []
        self.final = False

    def _fail(self, key: str, failure: _ItemFailure) -> None:
        self.items.pop(key, None)
        item_id = self.ids.get(key, key)
        (self.retry if failure.retryable else self.failed)[item_id] = failure.code

    def downloads(self, items: Sequence[Item] | None = None) -> list[tuple[Item, _Payload]]:
        """The wrapped items among ``items`` (default: the answer's) with their wrappers; an
        item whose wrapper is unusable fails at once."""
        wanted: list[tuple[Item, _Payload]] = []
        for item in self.answer.items if items is None else items:
            try:
                payload = _Payload.of(item, self.base_url)
            except _ItemFailure as failure:
                self._fail(_key(item.get("id")), failure)
                continue
            if payload is not None:
                wanted.append((item, payload))
        return wanted

    def settle(self, item: Item, payload: _Payload, got: Response | SynapError) -> None:
        """Record one download's outcome."""
        key = _key(item.get("id"))
        if isinstance(got, SynapError):
            failure = _download_failure(got, self.policy)
            if failure is None and not self.final:
                self.items.pop(key, None)
                self.refused.append(self.ids.get(key, key))
                return
            self._fail(key, failure or _ItemFailure(PAYLOAD_URL_REFUSED, True))
            return
        try:
            self.items[key] = payload.resolved(item, got)
        except _ItemFailure as failure:
            self._fail(key, failure)

    def refetched(self, got: Response | SynapError) -> list[tuple[Item, _Payload]]:
        """Take the answer to the re-fetch of the refused items; their downloads to try again
        (the last try). A transient error of the re-fetch fails those items retryably.

        Raises:
            SynapError: the re-fetch's error when the policy does not retry it (a 401 or 403
                refusing the credentials, a 400...): it concerns the whole call, as it would
                on the bulk request itself.
        """
        self.final = True
        refused, self.refused = self.refused, []
        if isinstance(got, SynapError):
            if not self.policy.is_retryable(got):
                raise got
            code = getattr(got, "error_code", None) or got.code
            self.retry.update(dict.fromkeys(refused, code))
            return []
        again = sort_answer(refused, got)
        self.retry.update(again.retry)
        self.failed.update(again.failed)
        for item in again.items:
            self.items[_key(item.get("id"))] = item
        return self.downloads(again.items)

    def outcome(self) -> BulkAnswer:
        """The answer with every payload resolved (or its item failed), in request order."""
        items = [self.items[key] for key in self.ids if key in self.items]
        return replace(self.answer, items=items, retry=self.retry, failed=self.failed)


_T = TypeVar("_T", Transport, AsyncTransport)
_R = TypeVar("_R", "Resource", "AsyncResource")
_H = TypeVar("_H", httpx.Client, httpx.AsyncClient)
_S = TypeVar("_S", SyncSleep, AsyncSleep)


class _ResourceBase(Generic[_T]):
    """What both resource flavours share: names, paths and argument checks."""

    _transport: _T

    def __init__(
        self,
        transport: _T,
        name: str,
        sleep: Any,
        rng: random.Random | None,
        clock: Callable[[], float] = time.monotonic,
        response_mode: str = "inline",
        payload_concurrency: int = DEFAULT_PAYLOAD_CONCURRENCY,
    ) -> None:
        self._transport = transport
        self._sleep = sleep
        #: Most wrapped payloads of one answer downloaded at once.
        self.payload_concurrency = payload_concurrency
        self._rng = rng
        self._clock = clock
        #: The resource's URL name (``tasks``, ``assignments``, ``ground-truths``).
        self.name = name
        self.list_path, self.bulk_path = _resource_paths(name)
        #: The bulk requests' query: ``response_mode`` (wrapped payloads are resolved).
        self.bulk_params: dict[str, str | int] = {"response_mode": response_mode}

    def _resolution(self, sent: Sequence[ItemId], response: Response) -> _Resolution:
        return _Resolution(
            sort_answer(sent, response), sent, self._transport.base_url,
            self._transport.config.effective_retry_policy,
        )

    def _page_params(
        self, cursor: object, limit: object, filters: Mapping[str, FilterValue] | None
    ) -> tuple[str | None, dict[str, str | int | list[str]]]:
        checked = _validate_cursor(cursor)
        params: dict[str, str | int | list[str]] = {**check_filters(self.name, filters)}
        params["per_page"] = _validate_limit(limit, MAX_PAGE_LIMIT)
        if checked is not None:
            params["cursor"] = checked
        return checked, params

    def _detail_path(self, item_id: object) -> str:
        return f"{self.list_path}{_validate_item_id(item_id)}/"

    @property
    def _detail_params(self) -> dict[str, str | int] | None:
        """A retrieve's query: ground truths take ``response_mode`` (the others do not)."""
        return self.bulk_params if self.name == "ground-truths" else None

    def _plan(self, ids: object) -> _BulkFetch:
        return _BulkFetch(
            self.name, ids, self._transport.config.effective_retry_policy, self._rng,
            self._transport.stats, self._clock, self._transport.config.retry_hooks,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Resource(_ResourceBase[Transport]):
    """One v2 resource (tasks, assignments or ground truths) of a :class:`BackendV2Client`."""

    def list_page(
        self,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        *,
        filters: Mapping[str, FilterValue] | None = None,
    ) -> Page:
        """One page of the list, starting at ``cursor`` (None: the first page), of the items
        matching ``filters`` (keys and values of :data:`~.list_filters.LIST_FILTERS`; follow-up
        pages must be asked with the same filters).

        Raises:
            TypeError, ValueError: ``cursor`` not a str/None, ``limit`` not an int in 1..500, an
                unknown or reserved filter key or a value of the wrong type.
            SynapError: the transport's error (see :mod:`synapse_sdk.clients._transport`);
                ``BackendError("malformed_response")`` for a body of the wrong shape.
        """
        checked, params = self._page_params(cursor, limit, filters)
        return _parse_page(self._transport.request(
            "GET", self.list_path, params=params, max_bytes=MAX_PAGE_BYTES
        ), checked)

    def iter(
        self,
        limit: int = DEFAULT_PAGE_LIMIT,
        *,
        filters: Mapping[str, FilterValue] | None = None,
    ) -> Iterator[Item]:
        """Every item matching ``filters``, in list order, fetched ``limit`` at a time as
        iteration goes.

        Raises:
            TypeError, ValueError: a bad ``limit`` or filter (at once, not at the first ``next``).
            SynapError: as :meth:`list_page`, when a page fails.
        """
        self._page_params(None, limit, filters)
        return self._iter(limit, filters)

    def _iter(self, limit: int, filters: Mapping[str, FilterValue] | None) -> Iterator[Item]:
        cursor: str | None = None
        seen: set[bytes] = set()
        while True:
            page = self.list_page(cursor, limit, filters=filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = _new_cursor(page, seen, self.list_path)

    def retrieve(self, item_id: int) -> Item:
        """One item's detail object (``GET /v2/{resource}/{id}/``).

        Raises:
            TypeError, ValueError: ``item_id`` is not a positive int.
            BackendInvalidInputError: 404, no such item (or not visible to you).
            SynapError: another error of the transport; ``BackendError("malformed_response")``
                for an answer without a ``data`` object.
            BackendError: a ``data`` wrapper that cannot be resolved (its per-item code as
                ``error_code``, e.g. ``payload_truncated``, ``checksum_mismatch``,
                ``payload_url_refused`` after one fresh retrieve).
        """
        path, policy = self._detail_path(item_id), self._transport.config.effective_retry_policy
        for final in (False, True):
            response = self._transport.request("GET", path, params=self._detail_params)
            item = _parse_detail(response)
            payload = _detail_payload(item, item_id, self._transport.base_url)
            if payload is None:
                return item
            got = self._download(payload)
            resolved = _detail_resolved(item, item_id, payload, got, final, policy)
            if resolved is not None:
                return resolved
        raise AssertionError("unreachable: the final try returns or raises")

    def bulk_fetch_once(self, ids: Sequence[ItemId]) -> BulkAnswer:
        """One bulk-fetch request for at most :data:`BULK_FETCH_LIMIT` ids, sorted out.

        The building block of :meth:`bulk_fetch` for callers that pool the failures of many
        requests themselves: no follow-up request is made for the failed items of a 207.
        429s, 503s and dropped connections are still retried by the transport.

        Raises:
            TypeError, ValueError: bad ``ids``, or more distinct ids than the backend's limit.
            BackendError: ``malformed_response``; any error of the transport propagates (a 400
                ``invalid_ids`` as ``BackendInvalidInputError``, a 401, a transient error that
                outlasted the retries).
        """
        sent = _one_request(ids)
        response = self._transport.request(
            "POST", self.bulk_path, json={"ids": sent}, params=self.bulk_params,
            max_bytes=MAX_PAGE_BYTES,
        )
        return self._answer(sent, response)

    def _download(self, payload: _Payload) -> Response | SynapError:
        """GET a wrapped payload (no API credentials: the URL is presigned); the error, if any."""
        try:
            return self._transport.request(
                "GET", payload.url, max_bytes=payload.limit, credentials=False
            )
        except SynapError as exc:
            return exc

    def _download_all(self, wanted: list[tuple[Item, _Payload]], work: _Resolution) -> None:
        """Download ``wanted``'s payloads, at most :attr:`payload_concurrency` at once, and
        settle each in ``work``, in request order. Each download runs in a copy of the caller's
        context (an enclosing call's deadline and language hold in the pool's threads too)."""
        workers = min(self.payload_concurrency, len(wanted))
        if workers <= 1:
            got = [self._download(payload) for _, payload in wanted]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="synapse-payload") as pool:
                futures = [
                    pool.submit(contextvars.copy_context().run, self._download, payload)
                    for _, payload in wanted
                ]
                got = [future.result() for future in futures]
        for (item, payload), answer in zip(wanted, got, strict=True):
            work.settle(item, payload, answer)

    def _answer(self, sent: Sequence[ItemId], response: Response) -> BulkAnswer:
        """One bulk answer sorted out against ``sent``, its wrapped payloads resolved (see
        :class:`_Resolution`).

        Raises:
            SynapError: the re-fetch of refused URLs failed with an error the policy does not
                retry (see :meth:`_Resolution.refetched`).
        """
        work = self._resolution(sent, response)
        self._download_all(work.downloads(), work)
        if work.refused:
            try:
                got: Response | SynapError = self._transport.request(
                    "POST", self.bulk_path, json={"ids": work.refused},
                    params=self.bulk_params, max_bytes=MAX_PAGE_BYTES,
                )
            except SynapError as exc:
                got = exc
            self._download_all(work.refetched(got), work)
        return work.outcome()

    def bulk_fetch(self, ids: Sequence[ItemId]) -> list[Item]:
        """The items with ``ids``, in input order (see the module docstring).

        Raises:
            TypeError, ValueError: bad ``ids`` (see :func:`validate_ids`).
            BackendError: ``partial_failure`` with ``failed_ids``, ``failed_codes`` and
                ``succeeded`` when items still failed.
            BackendInvalidInputError: a 400 ``invalid_ids`` (``failed_ids`` = the invalid ids).
            SynapError: another error of the whole call (authentication, or a transient error
                outlasting the retries before any item was settled).
        """
        plan = self._plan(ids)
        while True:
            for chunk in plan.chunks():
                try:
                    response = self._transport.request(
                        "POST", self.bulk_path, json={"ids": chunk}, params=self.bulk_params,
                        correlation_id=plan.correlation_id, max_bytes=MAX_PAGE_BYTES,
                    )
                except SynapError as exc:
                    if not plan.policy.is_retryable(exc):
                        raise
                    plan.abort(exc)
                    break
                plan.record(self._answer(chunk, response))
            delay = plan.next_round()
            if delay is None:
                return plan.outcome()
            if delay > 0:
                self._sleep(delay)


class AsyncResource(_ResourceBase[AsyncTransport]):
    """One v2 resource of an :class:`AsyncBackendV2Client`; the async twin of :class:`Resource`."""

    async def list_page(
        self,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        *,
        filters: Mapping[str, FilterValue] | None = None,
    ) -> Page:
        """Async :meth:`Resource.list_page`: same arguments, same errors."""
        checked, params = self._page_params(cursor, limit, filters)
        response = await self._transport.request(
            "GET", self.list_path, params=params, max_bytes=MAX_PAGE_BYTES
        )
        return _parse_page(response, checked)

    def iter(
        self,
        limit: int = DEFAULT_PAGE_LIMIT,
        *,
        filters: Mapping[str, FilterValue] | None = None,
    ) -> AsyncIterator[Item]:
        """Async :meth:`Resource.iter` (use ``async for``); a bad ``limit`` or filter raises at
        once."""
        self._page_params(None, limit, filters)
        return self._iter(limit, filters)

    async def _iter(
        self, limit: int, filters: Mapping[str, FilterValue] | None
    ) -> AsyncIterator[Item]:
        cursor: str | None = None
        seen: set[bytes] = set()
        while True:
            page = await self.list_page(cursor, limit, filters=filters)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = _new_cursor(page, seen, self.list_path)

    async def retrieve(self, item_id: int) -> Item:
        """Async :meth:`Resource.retrieve`: same arguments, same errors."""
        path, policy = self._detail_path(item_id), self._transport.config.effective_retry_policy
        for final in (False, True):
            response = await self._transport.request("GET", path, params=self._detail_params)
            item = _parse_detail(response)
            payload = _detail_payload(item, item_id, self._transport.base_url)
            if payload is None:
                return item
            got = await self._download(payload)
            resolved = _detail_resolved(item, item_id, payload, got, final, policy)
            if resolved is not None:
                return resolved
        raise AssertionError("unreachable: the final try returns or raises")

    async def bulk_fetch_once(self, ids: Sequence[ItemId]) -> BulkAnswer:
        """Async :meth:`Resource.bulk_fetch_once`: same arguments, same errors."""
        sent = _one_request(ids)
        response = await self._transport.request(
            "POST", self.bulk_path, json={"ids": sent}, params=self.bulk_params,
            max_bytes=MAX_PAGE_BYTES,
        )
        return await self._answer(sent, response)

    async def _download(self, payload: _Payload) -> Response | SynapError:
        """Async :meth:`Resource._download`."""
        try:
            return await self._transport.request(
                "GET", payload.url, max_bytes=payload.limit, credentials=False
            )
        except SynapError as exc:
            return exc

    async def _download_all(
        self, wanted: list[tuple[Item, _Payload]], work: _Resolution
    ) -> None:
        """Async :meth:`Resource._download_all`: gathered under a semaphore."""
        gate = asyncio.Semaphore(self.payload_concurrency)

        async def one(payload: _Payload) -> Response | SynapError:
            async with gate:
                return await self._download(payload)

        got = await asyncio.gather(*(one(payload) for _, payload in wanted))
        for (item, payload), answer in zip(wanted, got, strict=True):
            work.settle(item, payload, answer)

    async def _answer(self, sent: Sequence[ItemId], response: Response) -> BulkAnswer:
        """Async :meth:`Resource._answer`: same errors."""
        work = self._resolution(sent, response)
        await self._download_all(work.downloads(), work)
        if work.refused:
            try:
                got: Response | SynapError = await self._transport.request(
                    "POST", self.bulk_path, json={"ids": work.refused},
                    params=self.bulk_params, max_bytes=MAX_PAGE_BYTES,
                )
            except SynapError as exc:
                got = exc
            await self._download_all(work.refetched(got), work)
        return work.outcome()

    async def bulk_fetch(self, ids: Sequence[ItemId]) -> list[Item]:
        """Async :meth:`Resource.bulk_fetch`: same arguments, same errors."""
        plan = self._plan(ids)
        while True:
            for chunk in plan.chunks():
                try:
                    response = await self._transport.request(
                        "POST", self.bulk_path, json={"ids": chunk}, params=self.bulk_params,
                        correlation_id=plan.correlation_id, max_bytes=MAX_PAGE_BYTES,
                    )
                except SynapError as exc:
                    if not plan.policy.is_retryable(exc):
                        raise
                    plan.abort(exc)
                    break
                plan.record(await self._answer(chunk, response))
            delay = plan.next_round()
            if delay is None:
                return plan.outcome()
            if delay > 0:
                await self._sleep(delay)


#: Most log entries one ``logs/bulk/`` request carries (the backend's limit).
MAX_LOGS_PER_REQUEST: Final = 1000
_JOB_FIELDS: Final = frozenset({"status", "progress_record", "metrics_record", "meta", "result"})


class _JobsBase(Generic[_T]):
    """The job routes (``/v2/jobs/{id}/``): argument checks shared by both flavours."""

    _transport: _T

    def __init__(self, transport: _T) -> None:
        self._transport = transport

    @staticmethod
    def _path(job_id: object, tail: str = "") -> str:
        if not isinstance(job_id, str):
            raise TypeError(f"job_id must be a str, not {type(job_id).__name__}")
        if not job_id or any(c in job_id for c in "/?#") or job_id != job_id.strip():
            raise ValueError(f"job_id must be a job's id (a UUID), got {job_id[:40]!r}")
        return f"/v2/jobs/{job_id}/{tail}"

    @staticmethod
    def _fields(fields: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(fields) - _JOB_FIELDS)
        if unknown or not fields:
            raise ValueError(f"update takes some of {sorted(_JOB_FIELDS)}, got {sorted(fields)}")
        return fields

    @staticmethod
    def _chunks(entries: object) -> list[list[Any]]:
        if not isinstance(entries, list | tuple) or not entries:
            raise ValueError("entries must be a non-empty list of log entries")
        step = MAX_LOGS_PER_REQUEST
        return [list(entries[i : i + step]) for i in range(0, len(entries), step)]


class Jobs(_JobsBase[Transport]):
    """A :class:`BackendV2Client`'s job routes: progress, status and logs of a running job.

    Log creation is not idempotent on the backend: a log request is never re-sent after an
    answer that may have been applied (no idempotency key, so outcome-unknown failures are
    not retried).
    """

    def update(self, job_id: str, **fields: Any) -> Item:
        """``PATCH /v2/jobs/{id}/`` with ``status``, ``progress_record``, ``metrics_record``,
        ``meta`` or ``result`` (each replaces the stored value whole); the job's detail.

        Raises:
            TypeError, ValueError: a bad ``job_id`` or field name.
            BackendInvalidInputError: 400 ``INVALID_TRANSITION``/``VALIDATION_ERROR``, 404.
            SynapError: another error of the transport.
        """
        path = self._path(job_id)
        body = self._fields(fields)
        return _parse_detail(self._transport.request("PATCH", path, json=body))

    def create_log(self, job_id: str, entry: dict[str, Any]) -> Item:
        """``POST /v2/jobs/{id}/logs/``: one log entry (``event``, ``data``, ``datetime``,
        optional ``step``, ``level``); the stored log. Errors as :meth:`update`."""
        response = self._transport.request(
            "POST", self._path(job_id, "logs/"), json=entry, idempotency_key=False
        )
        return _parse_detail(response)

    def create_logs(self, job_id: str, entries: Sequence[dict[str, Any]]) -> list[Item]:
        """``POST /v2/jobs/{id}/logs/bulk/`` in requests of at most
        :data:`MAX_LOGS_PER_REQUEST` entries (each stored all or none); the stored logs.
        Errors as :meth:`update` (``BULK_SIZE_EXCEEDED`` cannot happen: chunks are bounded)."""
        path = self._path(job_id, "logs/bulk/")
        stored: list[Item] = []
        for chunk in self._chunks(entries):
            response = self._transport.request(
                "POST", path, json={"logs": chunk}, idempotency_key=False
            )
            stored.extend(_data_list(response)[0])
        return stored


class AsyncJobs(_JobsBase[AsyncTransport]):
    """The async twin of :class:`Jobs`: same arguments, same errors."""

    async def update(self, job_id: str, **fields: Any) -> Item:
        """Async :meth:`Jobs.update`."""
        path = self._path(job_id)
        body = self._fields(fields)
        return _parse_detail(await self._transport.request("PATCH", path, json=body))

    async def create_log(self, job_id: str, entry: dict[str, Any]) -> Item:
        """Async :meth:`Jobs.create_log`."""
        response = await self._transport.request(
            "POST", self._path(job_id, "logs/"), json=entry, idempotency_key=False
        )
        return _parse_detail(response)

    async def create_logs(self, job_id: str, entries: Sequence[dict[str, Any]]) -> list[Item]:
        """Async :meth:`Jobs.create_logs`."""
        path = self._path(job_id, "logs/bulk/")
        stored: list[Item] = []
        for chunk in self._chunks(entries):
            response = await self._transport.request(
                "POST", path, json={"logs": chunk}, idempotency_key=False
            )
            stored.extend(_data_list(response)[0])
        return stored


class _ClientBase(TransportViews, Generic[_T, _R, _H, _S]):
    """Construction and read-only views shared by both clients.

    ``base_url``/``token``/``tenant`` override ``config.backend_url``/``config.token``/
    ``config.tenant``; the token goes out as ``SYNAPSE-ACCESS-TOKEN`` (or ``Authorization:
    Token`` with ``config.token_kind="drf"``) and the tenant as ``SYNAPSE-Tenant``, to the base
    URL's origin only. ``http_client`` is a
    caller-owned httpx client (not closed on close); ``verify`` a CA bundle path or
    ``ssl.SSLContext`` for the client built otherwise (TLS verification cannot be turned off).
    ``sleep``, ``clock`` and ``rng`` drive every wait: the retry engine's, the pause between
    bulk-fetch rounds and the ``pacer``'s (a :class:`~synapse_sdk.clients._transport.Pacer` the
    transport asks before each request, e.g. the export's rate pacer). ``response_mode`` is
    what bulk requests ask for (:data:`RESPONSE_MODES`): payloads ``inline`` (the default) or
    ``presigned`` (externalized); either way a ``data`` wrapper is resolved before the item is
    returned, the downloads of one answer ``payload_concurrency`` at a time (default
    :data:`DEFAULT_PAYLOAD_CONCURRENCY`).

    Raises:
        ValueError: no backend URL, a bad URL, token or tenant, ``verify`` or an ``http_client``
            that disables verification, a ``payload_concurrency`` below 1.
        TypeError: arguments of the wrong type.
    """

    _transport_type: ClassVar[Callable[..., Any]]
    _resource_type: ClassVar[Callable[..., Any]]
    _jobs_type: ClassVar[Callable[..., Any]]
    _default_sleep: ClassVar[Callable[..., Any]]

    _transport: _T
    #: The ``tasks`` resource.
    tasks: _R
    #: The ``assignments`` resource.
    assignments: _R
    #: The ``ground-truths`` resource.
    ground_truths: _R

    def __init__(
        self,
        config: SDKConfig | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        tenant: str | None = None,
        http_client: _H | None = None,
        sleep: _S | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        verify: VerifyTypes | None = None,
        pacer: Pacer | None = None,
        response_mode: str = "inline",
        payload_concurrency: int = DEFAULT_PAYLOAD_CONCURRENCY,
    ) -> None:
        if response_mode not in RESPONSE_MODES:
            raise ValueError(
                f"response_mode must be one of {', '.join(RESPONSE_MODES)}, got {response_mode!r}"
            )
        if isinstance(payload_concurrency, bool) or not isinstance(payload_concurrency, int):
            raise TypeError(
                f"payload_concurrency must be an int, got {type(payload_concurrency).__name__}"
            )
        if payload_concurrency < 1:
            raise ValueError(f"payload_concurrency must be >= 1, got {payload_concurrency}")
        cls = type(self)
        self._transport = cls._transport_type(
            config, base_url=base_url, token=token, tenant=tenant, http_client=http_client,
            verify=verify, sleep=sleep, clock=clock, rng=rng, pacer=pacer,
        )
        pause = sleep if sleep is not None else cls._default_sleep
        now = clock if clock is not None else time.monotonic
        tasks, assignments, ground_truths = (
            cls._resource_type(
                self._transport, name, pause, rng, now, response_mode, payload_concurrency
            )
            for name in _RESOURCE_NAMES
        )
        self.tasks, self.assignments, self.ground_truths = tasks, assignments, ground_truths
        #: The job routes (progress, status, logs of a running job).
        self.jobs = cls._jobs_type(self._transport)

    def _basics(self) -> _T:
        return self._transport

    @property
    def transport(self) -> _T:
        """The transport, for calls this client has no method for."""
        return self._transport

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, "
            f"tenant={self.config.tenant!r})"
        )


class BackendV2Client(_ClientBase[Transport, Resource, httpx.Client, SyncSleep]):
    """Synchronous client of the backend v2 API; a context manager (``close()`` on exit).

    Arguments: see :class:`_ClientBase`; ``http_client`` is an :class:`httpx.Client` and
    ``sleep`` defaults to :func:`time.sleep`.

    Thread-safe: one instance may be shared by threads (each call keeps its own state, the
    connection pool and the counters are locked; injected ``sleep``/``clock``/``rng`` must be
    thread-safe too).
    """

    _transport_type = Transport
    _resource_type = Resource
    _jobs_type = Jobs
    _default_sleep = time.sleep

    def download_original(self, item: Item, *, max_bytes: int | None = None) -> bytes:
        """The bytes of ``item``'s original file: the primary entry of its ``files_manifest``
        (checked against ``file_size`` and the SHA-1 ``checksum`` when given, else against the
        answer's length), or our ``original`` block (size and SHA-256).

        The file is held in memory: at most ``max_bytes`` (default
        :data:`DEFAULT_MAX_ORIGINAL_BYTES`) are read; :meth:`download_original_to` streams a
        file of any size into a sink instead. A manifest
        URL is presigned: it is fetched without the API's credentials, whatever its origin;
        for an ``original`` block they go only to the backend's own origin. A file on another
        origin must come over https, unless the backend itself is plain http on loopback.

        Raises:
            TypeError, ValueError: ``item`` lacks a well-formed ``original``, or its URL is
                plain http on another origin (nothing is fetched).
            BackendError: ``response_too_large``, ``size_mismatch`` or ``checksum_mismatch``
                (``failed_ids`` = the item's id), or the transport's error for the download.
        """
        sink = _MemorySink()
        self.download_original_to(
            item, sink, max_bytes=DEFAULT_MAX_ORIGINAL_BYTES if max_bytes is None else max_bytes
        )
        return bytes(sink.buffer)

    def download_original_to(
        self, item: Item, sink: DownloadSink, *, max_bytes: int | None = None
    ) -> SavedOriginal:
        """Stream ``item``'s original file into ``sink`` (see :meth:`download_original` for
        which file, its checks and where credentials go), checking its size and digest on the
        way, and return its size and SHA-256. A dropped connection resumes with ``Range``
        (:meth:`Transport.download <synapse_sdk.clients._transport.Transport.download>`); a
        server that ignores it makes ``sink`` start over. No bound unless ``max_bytes``.

        Raises:
            TypeError, ValueError: as :meth:`download_original`.
            BackendError: as :meth:`download_original` (``response_too_large`` past
                ``max_bytes``); a ``size_mismatch`` as soon as more bytes come than declared.
            Exception: whatever ``sink`` raised.
        """
        original = _Original.of(item)
        original.check_origin(self._transport.base_url)
        limit = original.limit(max_bytes, None)
        checked = original.checked(sink)
        downloaded = self._transport.download(
            original.url, checked, max_bytes=limit, credentials=original.credentials
        )
        return original.verify(checked, downloaded)

    def close(self) -> None:
        """Close the HTTP client this client created (a caller's ``http_client`` stays open)."""
        self._transport.close()

    def __enter__(self) -> BackendV2Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncBackendV2Client(
    _ClientBase[AsyncTransport, AsyncResource, httpx.AsyncClient, AsyncSleep]
):
    """Asynchronous client of the backend v2 API; an async context manager.

    Arguments: see :class:`_ClientBase`; ``http_client`` is an :class:`httpx.AsyncClient` and
    ``sleep`` an async callable (default :func:`asyncio.sleep`).

    Safe to share between the tasks of one event loop; not thread-safe: use one instance per
    thread and event loop.
    """

    _transport_type = AsyncTransport
    _resource_type = AsyncResource
    _jobs_type = AsyncJobs
    _default_sleep = asyncio.sleep

    async def download_original(self, item: Item, *, max_bytes: int | None = None) -> bytes:
        """Async :meth:`BackendV2Client.download_original`: same arguments, same errors."""
        sink = _MemorySink()
        await self.download_original_to(
            item, sink, max_bytes=DEFAULT_MAX_ORIGINAL_BYTES if max_bytes is None else max_bytes
        )
        return bytes(sink.buffer)

    async def download_original_to(
        self, item: Item, sink: DownloadSink, *, max_bytes: int | None = None
    ) -> SavedOriginal:
        """Async :meth:`BackendV2Client.download_original_to`: same arguments, same errors
        (``sink`` is written synchronously)."""
        original = _Original.of(item)
        original.check_origin(self._transport.base_url)
        limit = original.limit(max_bytes, None)
        checked = original.checked(sink)
        downloaded = await self._transport.download(
            original.url, checked, max_bytes=limit, credentials=original.credentials
        )
        return original.verify(checked, downloaded)

    async def aclose(self) -> None:
        """Close the HTTP client this client created (a caller's ``http_client`` stays open)."""
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncBackendV2Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
