"""The export action: every item of a project's tasks, assignments or ground truths, to disk,
exactly once, whatever the backend does.

Steps::

    initialize ─> fetch ─> convert ─> save ─> (next chunk) ... ─> retries ─> finalize

* **initialize** — create ``<out>/<target>/``, take the job lock, remove temporary files a
  killed run left, open the ledger and job log (``<out>/.synapse-export/<target>/``).
* **fetch** — list the ids page by page (or take ``params.ids``), skip those already exported
  (the ledger says so *and* the files are there), and bulk-fetch the rest in chunks of
  ``batch_size``, one request each. Each chunk is first filled with the oldest ids waiting in
  the ledger for a retry, then with fresh ids, so a failed item never costs a request of its own
  and every request stays full. A 207 keeps the items served; its failed items are enqueued in
  the ledger when retryable, marked failed with their own code when not. A 400 ``invalid_ids``
  marks the named ids failed (never retried) and fetches the rest of the chunk. A chunk that
  still fails transiently after the client's retries (rate limit, outage, dropped connections)
  is enqueued as a whole; three such chunks in a row mean the backend is down and stop the run.
* **convert** — each item becomes its export record (:func:`~.steps.convert_item`).
* **save** — the original file is downloaded (checked against its size and SHA-256 by the
  client) and written with :func:`~.steps.atomic_write` (temporary file in the same folder,
  fsync, ``os.replace``), then the JSON record; then the folder is fsynced and the items are
  marked exported in the ledger, 25 to a transaction. A kill at any point leaves only whole
  files, and at worst items whose files exist but whose mark is missing: the next run fetches
  them again and replaces the same files with the same bytes.
* **retries** — after the main pass, whatever still waits in the ledger is fetched again, oldest
  first, in full chunks; an item is fetched again at most ``retry_rounds`` times, and whatever
  still fails is marked failed with its last code. A pause (``retry_delay``, doubling) is taken
  only after whole requests failed, or when the backend asked for one.
* **finalize** — an :class:`ExportSummary` (exported, skipped, failed by code, retried, requests
  sent, rate-limited answers, duration) and the completion message.

Memory stays flat as the dataset grows: one page of ids and one chunk of items are held at a
time; the ledger is queried per chunk and its retry queue read a chunk at a time.

A step failure that cannot be handled per item (a bad token, a disk error, a backend that stays
down) is classified with ``classify_export_error``, logged with that code and the failed-step
code naming the step, and raised as :class:`~synapse_sdk.plugins.action.ActionStepError`
``from`` the original error. The ledger keeps what was done, so a rerun resumes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
)

from synapse_sdk.envelopes import ItemId
from synapse_sdk.exceptions import (
    AuthenticationError,
    BackendError,
    SynapError,
    SynapTransientError,
)
from synapse_sdk.i18n import normalize_language
from synapse_sdk.plugins.action import BaseAction
from synapse_sdk.plugins.actions.export.failure_classifier import classify_export_error
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
from synapse_sdk.plugins.actions.export.steps import (
    ExportRecord,
    RatePacer,
    UnsafeItemIdError,
    atomic_write,
    chunked,
    clean_temp_files,
    convert_item,
    fsync_dir,
    item_filename,
    sha256_hex,
)
from synapse_sdk.plugins.ledger import LedgerRecord
from synapse_sdk.plugins.log_messages import LogMessageCode

if TYPE_CHECKING:
    import httpx

    from synapse_sdk.clients.backend_v2 import BackendV2Client

__all__ = [
    "JOB_FOLDER",
    "ExportAction",
    "ExportParams",
    "ExportProgress",
    "ExportSummary",
    "ExportTarget",
    "JobLockedError",
]

#: Where the ledger, job log and lock of an export live, inside the output folder.
JOB_FOLDER: Final = ".synapse-export"

# Per-item failure codes the action itself assigns (the backend's own codes are kept as sent).
_CODE_INVALID_ID: Final = "invalid_id"
_CODE_UNSAFE_ID: Final = "unsafe_id"
_CODE_MALFORMED: Final = "malformed_item"
_CODE_MISSING: Final = "missing_from_response"
#: backend_v2.NOT_SERVED (not imported: the client loads lazily): an id a 200 answer left out.
_CODE_NOT_SERVED: Final = "not_served"
#: Chunks in a row whose fetch outlasted every retry before the backend is taken to be down.
_MAX_TRANSIENT_STREAK: Final = 3
#: Saved items marked exported in the ledger together (one transaction).
_MARK_EVERY: Final = 25
#: Failed items whose ids are logged one by one at the end of a run (the rest are counted).
_ITEMS_SHOWN: Final = 20
#: Message codes shown on the console once per run; later ones go to the job log only.
_CONSOLE_ONCE: Final = frozenset(
    {
        ExportLogMessageCode.EXPORT_FAILED_BATCH_PARTIAL,
        ExportLogMessageCode.EXPORT_RATE_LIMITED_WAITING,
    }
)
#: The message code reporting items that ended failed with a per-item code.
_ITEM_CODE_MESSAGES: Final[dict[str, ExportLogMessageCode]] = {
    _CODE_INVALID_ID: ExportLogMessageCode.EXPORT_FAILED_BAD_REQUEST,
    "invalid_ids": ExportLogMessageCode.EXPORT_FAILED_BAD_REQUEST,
    "not_found": ExportLogMessageCode.EXPORT_FAILED_BAD_REQUEST,
    _CODE_UNSAFE_ID: ExportLogMessageCode.EXPORT_FAILED_VALIDATION,
    _CODE_MALFORMED: ExportLogMessageCode.EXPORT_FAILED_MALFORMED_DATA,
    "item_corrupted": ExportLogMessageCode.EXPORT_FAILED_MALFORMED_DATA,
    "checksum_mismatch": ExportLogMessageCode.EXPORT_FAILED_INCOMPLETE_RESPONSE,
    "size_mismatch": ExportLogMessageCode.EXPORT_FAILED_INCOMPLETE_RESPONSE,
    "item_unavailable": ExportLogMessageCode.EXPORT_FAILED_BATCH_PARTIAL,
    "missing_from_response": ExportLogMessageCode.EXPORT_FAILED_BATCH_PARTIAL,
    _CODE_NOT_SERVED: ExportLogMessageCode.EXPORT_FAILED_NOT_SERVED,
    "rate_limited": ExportLogMessageCode.EXPORT_FAILED_RATE_LIMITED,
    "service_unavailable": ExportLogMessageCode.EXPORT_FAILED_SERVICE_UNAVAILABLE,
    "network_timeout": ExportLogMessageCode.EXPORT_FAILED_TIMEOUT,
}


class ExportTarget(StrEnum):
    """What to export: the backend v2 resource name."""

    TASKS = "tasks"
    ASSIGNMENTS = "assignments"
    GROUND_TRUTHS = "ground-truths"

    @property
    def attribute(self) -> str:
        """The client's attribute for this resource (``ground_truths``)."""
        return self.value.replace("-", "_")


class ExportParams(BaseModel):
    """Parameters of :class:`ExportAction`.

    * ``target`` — tasks, assignments or ground-truths (default tasks);
    * ``out_dir`` (also accepted as ``out``) — the output folder; a rerun over it resumes;
    * ``page_size`` — ids listed per page (1-500, default 500: list pages share the rate limit
      with bulk fetches, so fewer is faster); ``batch_size`` — ids per bulk fetch (1-200);
    * ``language`` — language of the messages (``en``, ``ko``, ``ko-KR``…);
    * ``ids`` — export only these ids instead of listing the resource;
    * ``retry_rounds`` — how many times an item that failed retryably is fetched again (0-10,
      default 6: retries ride along in full requests, so they cost little);
      ``retry_delay`` — seconds to pause before retrying after whole requests failed, doubled
      each time;
    * ``originals`` — download each item's original file beside its JSON (default yes);
    * ``workers`` — concurrent downloads and writes per chunk (1-32).

    Raises:
        pydantic.ValidationError: (a ``ValueError``) a value is out of range, of the wrong type,
            an unknown field, or ``out_dir`` is an existing file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    target: ExportTarget = ExportTarget.TASKS
    out_dir: Path = Field(validation_alias=AliasChoices("out_dir", "out"))
    page_size: int = Field(default=500, ge=1, le=500)
    batch_size: int = Field(default=200, ge=1, le=200)
    language: str | None = None
    ids: tuple[StrictInt | StrictStr, ...] | None = None
    retry_rounds: int = Field(default=6, ge=0, le=10)
    retry_delay: float = Field(default=0.25, ge=0.0, le=300.0)
    originals: bool = True
    workers: int = Field(default=4, ge=1, le=32)

    @field_validator("out_dir")
    @classmethod
    def _out_dir_is_a_folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{str(value)!r} exists and is not a folder")
        return value

    @field_validator("language")
    @classmethod
    def _language_is_a_tag(cls, value: str | None) -> str | None:
        return None if value is None else normalize_language(value)


@dataclass(frozen=True, slots=True)
class ExportProgress:
    """Where an export stands, passed to the ``on_progress`` callback after each chunk.

    ``total`` is the number of ids when known up front (``params.ids``), else None.
    """

    phase: str
    exported: int
    skipped: int
    failed: int
    pending: int
    total: int | None

    @property
    def done(self) -> int:
        """Items settled so far (exported, skipped or failed)."""
        return self.exported + self.skipped + self.failed


@dataclass(slots=True)
class ExportSummary:
    """The result of an export run.

    * ``exported`` — items written by this run; ``skipped`` — items a previous run had already
      exported (their files are there), left alone;
    * ``failed`` — items that ended failed, ``failed_by_code`` counted by their own code (the
      backend's ``item_corrupted``, ``invalid_id``, or the code of a transient failure that
      outlasted every retry) and ``failed_by_message`` by the export message code reporting them
      (``EXPORT_FAILED_BAD_REQUEST`` for ``invalid_id``);
    * ``retried`` — item fetches repeated after a failure; ``retry_rounds`` — chunks fetched
      after the main pass to retry items;
    * ``requests`` — HTTP requests sent (retries included); ``rate_limited`` — 429 answers seen;
    * ``duration`` — seconds the run took.
    """

    target: str
    out_dir: str
    exported: int = 0
    skipped: int = 0
    failed: int = 0
    failed_by_code: dict[str, int] = field(default_factory=dict)
    failed_by_message: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    retry_rounds: int = 0
    requests: int = 0
    rate_limited: int = 0
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no item ended failed."""
        return self.failed == 0

    @property
    def total(self) -> int:
        """Every item this run settled (exported, skipped or failed)."""
        return self.exported + self.skipped + self.failed

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the summary, with ``ok`` and ``total``."""
        data = asdict(self)
        data["duration"] = round(self.duration, 3)
        data["total"] = self.total
        data["ok"] = self.ok
        return data


class JobLockedError(RuntimeError):
    """Another export is already running over the same output folder and target."""


@dataclass(slots=True)
class _Chunk:
    """What one bulk fetch produced and what became of it: the items served, and the ids to
    retry or failed for good, each with its code (filled in further by convert and save)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    retry: dict[ItemId, str | None] = field(default_factory=dict)
    failed: dict[ItemId, str | None] = field(default_factory=dict)


@dataclass(slots=True)
class _Counters:
    exported: int = 0
    skipped: int = 0
    retried: int = 0
    rounds: int = 0
    #: Ids an earlier run left pending that this run took from the retry queue before its
    #: listing reached them. Exported by then, such an id was counted as exported: the listing
    #: must not count it again as skipped. Bounded by what the earlier run left pending; each
    #: id leaves the set when it is listed.
    taken_ahead: set[ItemId] = field(default_factory=set)
    #: The newest ``updated`` among the items pending when the run started (None: none was).
    carried_until: float | None = None


class ExportAction(BaseAction[ExportParams]):
    """Export one resource of a project to ``out_dir``; see the module docstring.

    Besides :class:`~synapse_sdk.plugins.action.BaseAction`'s arguments it takes:

    * ``sleep`` — every pause (the client's retries, rate pacing, the pause before a retry
      round); ``monotonic`` — the clock of those pauses and of the duration. Inject a fake clock's
      pair in tests and nothing sleeps for real.
    * ``on_progress`` — called with an :class:`ExportProgress` after each chunk.

    A client the action builds itself (from ``config``) uses ``sleep``/``monotonic`` and paces
    its list and bulk-fetch requests to the rate limit the backend reveals (:class:`RatePacer`);
    an injected ``v2_client`` is used as it is.

    :meth:`run` returns an :class:`ExportSummary`.

    Not thread-safe: one :meth:`run` at a time per instance (a second run over the same output
    folder and target, from any instance, raises :class:`JobLockedError`). A run uses worker
    threads of its own only for downloads and writes, over thread-safe parts.
    """

    params_model: ClassVar[type[BaseModel]] = ExportParams
    step_failed_code: ClassVar[LogMessageCode | None] = ExportLogMessageCode.EXPORT_FAILED_STEP
    unclassified_failure_code: ClassVar[LogMessageCode | None] = ExportLogMessageCode.EXPORT_FAILED

    def __init__(
        self,
        params: ExportParams | Mapping[str, Any] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        on_progress: Callable[[ExportProgress], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, **kwargs)
        self._sleep = sleep
        self._monotonic = monotonic
        self._on_progress = on_progress
        self._counts = _Counters()
        self._transient_streak = 0
        self._whole_request_failed = False
        self._not_before = float("-inf")
        self._phase = "main"
        self._pacer: RatePacer | None = None
        self._http_client: httpx.Client | None = None
        self._console_seen: set[LogMessageCode] = set()

    # -- folders and client ---------------------------------------------------------------------

    @property
    def target_dir(self) -> Path:
        """The folder the item files are written to: ``<out_dir>/<target>``."""
        return self.params.out_dir / self.params.target.value

    def default_job_dir(self) -> Path:
        """``<out_dir>/.synapse-export/<target>``: the ledger, job log and lock of this export."""
        return self.params.out_dir / JOB_FOLDER / self.params.target.value

    def _build_v2_client(self) -> BackendV2Client:
        """A client on the action's sleep and clock whose rate-limited requests are paced."""
        import httpx

        from synapse_sdk.clients.backend_v2 import BackendV2Client

        http_client = httpx.Client(follow_redirects=False)
        try:
            client = BackendV2Client(
                config=self.config,
                http_client=http_client,
                sleep=self._sleep,
                clock=self._monotonic,
            )
        except BaseException:
            http_client.close()
            raise
        paths = [
            path
            for resource in (client.tasks, client.assignments, client.ground_truths)
            for path in (resource.list_path, resource.bulk_path)
        ]
        self._pacer = RatePacer(
            paths, sleep=self._sleep, clock=self._monotonic, on_rejection=self._rate_limited
        )
        self._pacer.install(http_client)
        self._http_client = http_client
        return client

    def _rate_limited(self, wait: float) -> None:
        """Tell the user the backend is limiting the rate (on the console once per run)."""
        self._note(ExportLogMessageCode.EXPORT_RATE_LIMITED_WAITING, seconds=round(wait, 2))

    def close(self) -> None:
        """Close what :class:`BaseAction` closes, and the HTTP client built for the pacer."""
        super().close()
        http_client = self._http_client
        if http_client is not None:
            self._http_client = None
            http_client.close()

    def classify_failure(self, exc: BaseException) -> LogMessageCode | None:
        """Export failures are classified with ``classify_export_error``."""
        return classify_export_error(exc)

    def _note(self, code: LogMessageCode, /, **params: Any) -> None:
        """Log a code; codes in ``_CONSOLE_ONCE`` reach the console only the first time."""
        quiet = code in _CONSOLE_ONCE and code in self._console_seen
        self._console_seen.add(code)
        self.log_message(code, quiet=quiet, **params)

    # -- the job --------------------------------------------------------------------------------

    def run(self) -> ExportSummary:
        """Export every item (see the module docstring) and return the summary.

        Raises:
            ActionStepError: a step failed as a whole (``__cause__`` is the original error);
                what was done is in the ledger and a rerun resumes.
            JobLockedError: another export holds the same output folder and target.
            ValueError: no client was injected and ``config`` names no backend.
        """
        started = self._monotonic()
        self._counts = _Counters()
        self._transient_streak = 0
        self._whole_request_failed = False
        self._not_before = float("-inf")
        self._console_seen = set()
        client = self.v2_client
        requests_before = client.stats.requests
        rejections_before = self._pacer.rejections if self._pacer is not None else 0
        with self._job_lock():
            with self.step("initialize"):
                self._initialize()
                self._counts.carried_until = self._newest_pending()
            self._phase = "main"
            if self._main_pass() == 0:
                self.log_message(ExportLogMessageCode.EXPORT_NO_RESULTS)
            self._phase = "retry"
            self._drain()
            with self.step("finalize"):
                summary = self._summarize(started, requests_before, rejections_before)
                self._report(summary)
                return summary

    def _initialize(self) -> None:
        self.target_dir.mkdir(parents=True, exist_ok=True)
        clean_temp_files(self.target_dir)
        self.log_message(ExportLogMessageCode.EXPORT_INITIALIZED)
        self.log_message(ExportLogMessageCode.EXPORT_TARGET, target=self.params.target.value)
        before = self.ledger.summary()
        if before.total:
            self.log_message(ExportLogMessageCode.EXPORT_RESUMED, skipped=before.exported)

    def _newest_pending(self) -> float | None:
        """The newest ``updated`` of the items an earlier run left pending (read in batches).

        Items enqueued by this run are changed later than that, so a retry-queue record changed
        no later than it was carried over from an earlier run: one the listing may still reach.
        """
        newest: float | None = None
        for record in self.ledger.iter_pending():
            if newest is None or record.updated > newest:
                newest = record.updated
        return newest

    def _pages(self) -> Iterator[list[ItemId]]:
        """The ids to export, a page at a time (listing is part of the fetch step)."""
        if self.params.ids is not None:
            yield from chunked(dict.fromkeys(self.params.ids), self.params.page_size)
            return
        with self.step("fetch"):
            listing = self._resource().iter(limit=self.params.page_size)
        pages = chunked((item.get("id") for item in listing), self.params.page_size)
        while True:
            with self.step("fetch"):
                page = next(pages, None)
            if page is None:
                return
            yield page

    def _resource(self) -> Any:
        return getattr(self.v2_client, self.params.target.attribute)

    # -- chunks ---------------------------------------------------------------------------------

    def _main_pass(self) -> int:
        """Export the listed ids chunk by chunk, each chunk topped up with ids waiting for a
        retry; returns how many ids were listed."""
        listed = 0
        buffer: deque[ItemId] = deque()
        for page in self._pages():
            listed += len(page)
            buffer.extend(page)
            while len(buffer) >= self.params.batch_size:
                self._next_chunk(buffer)
        while buffer:
            self._next_chunk(buffer)
        return listed

    def _next_chunk(self, fresh: deque[Any]) -> None:
        """Fetch, convert and save one chunk: the oldest ids waiting for a retry first (so every
        request is full and failures never need requests of their own), then fresh ids."""
        size = self.params.batch_size
        retry = self._retry_records(size)
        chunk = [record.id for record in retry]
        carried_until = self._counts.carried_until
        if carried_until is not None:
            # Unchanged since the run started: left by an earlier run, maybe not listed yet.
            self._counts.taken_ahead.update(
                record.id for record in retry if record.updated <= carried_until
            )
        taken = set(chunk)
        while len(chunk) < size and fresh:
            candidates = [fresh.popleft() for _ in range(min(size - len(chunk), len(fresh)))]
            chunk.extend(i for i in self._select(candidates) if i not in taken)
            taken.update(chunk)
        self._counts.retried += len(retry)
        if chunk:
            self._process(chunk)

    def _retry_records(self, limit: int) -> list[LedgerRecord]:
        if self._monotonic() < self._not_before:
            return []  # the backend asked for a pause before failed items are asked again
        return self.ledger.oldest_pending(limit, max_attempts=self.params.retry_rounds)

    def _drain(self) -> None:
        """After the main pass: fetch what still waits for a retry, pausing (``retry_delay``,
        doubled each time) only after failures of whole requests, and honouring a pause the
        backend asked for; what is still pending at the end is marked failed with its code."""
        delay = self.params.retry_delay
        while True:
            wait = self._not_before - self._monotonic()
            if self._whole_request_failed and delay > 0:
                wait = max(wait, delay)
                delay *= 2
            records = self.ledger.oldest_pending(
                self.params.batch_size, max_attempts=self.params.retry_rounds
            )
            if not records:
                break
            if self._counts.rounds == 0 or self._whole_request_failed:
                pending = self.ledger.summary().pending
                self.log_message(ExportLogMessageCode.EXPORT_RETRYING_FAILED_ITEMS, count=pending)
            self._whole_request_failed = False
            if wait > 0:
                self._sleep(wait)
            self._counts.rounds += 1
            self._counts.retried += len(records)
            self._process([record.id for record in records])
        self.ledger.fail_pending()

    def _process(self, chunk: list[ItemId]) -> None:
        """Fetch, convert and save one chunk of ids."""
        with self.step("fetch"):
            fetched = self._fetch(chunk)
        self.log_message(
            ExportLogMessageCode.EXPORT_RESULTS_FETCHED, quiet=True, count=len(fetched.items)
        )
        with self.step("convert"):
            records = self._convert(fetched)
        with self.step("save"):
            saved = self._save(records, fetched)
        self._settle(chunk, saved, fetched)
        self._report_progress()

    def _select(self, ids: list[Any]) -> list[ItemId]:
        """Drop ids already exported (ledger and files agree); fail ids unusable as names."""
        safe: list[ItemId] = []
        unsafe: dict[ItemId, str | None] = {}
        for item_id in dict.fromkeys(ids):
            try:
                item_filename(item_id, "json")
            except UnsafeItemIdError:
                unsafe[item_id] = _CODE_UNSAFE_ID
            except TypeError:
                # Not an int or str: it cannot even be recorded; the listing is malformed.
                raise BackendError(
                    f"the {self.params.target.value} listing holds an item without a usable id "
                    f"({type(item_id).__name__})",
                    error_code="malformed_response",
                ) from None
            else:
                safe.append(item_id)
        if unsafe:
            self.ledger.mark_failed_codes(unsafe)
        done = self.ledger.exported_among(safe)
        todo: list[ItemId] = []
        ahead = self._counts.taken_ahead
        for item_id in safe:
            exported_by_this_run = item_id in ahead
            ahead.discard(item_id)
            if item_id in done and self._files_present(item_id):
                if not exported_by_this_run:
                    self._counts.skipped += 1
            else:
                todo.append(item_id)
        return todo

    def _files_present(self, item_id: ItemId) -> bool:
        """Whether the item's JSON parses and the original file it names exists."""
        try:
            record = json.loads((self.target_dir / item_filename(item_id, "json")).read_bytes())
        except (OSError, ValueError):
            return False
        if not isinstance(record, dict):
            return False
        original = record.get("original")
        if not self.params.originals or not isinstance(original, dict):
            return True
        name = original.get("file")
        return isinstance(name, str) and (self.target_dir / name).is_file()

    # -- fetch ----------------------------------------------------------------------------------

    def _fetch(self, chunk: list[ItemId]) -> _Chunk:
        """Bulk-fetch ``chunk`` (one request; the failed items of a 207 are pooled in the
        ledger, not re-requested here), sorting out invalid ids and transient failures that
        outlasted the client's retries."""
        resource = self._resource()
        invalid: dict[ItemId, str | None] = {}
        remaining = list(chunk)
        # Each pass either returns or drops at least one invalid id, so the loop ends.
        while remaining:
            try:
                answer = resource.bulk_fetch_once(remaining)
            except BackendError as exc:
                asked = set(remaining)
                named = {i for i in exc.failed_ids if i in asked}
                if exc.error_code == "invalid_ids" and named:
                    self._note(
                        classify_export_error(exc)
                        or ExportLogMessageCode.EXPORT_FAILED_BAD_REQUEST,
                        count=len(named),
                        ids=[str(i) for i in list(named)[:_ITEMS_SHOWN]],
                    )
                    invalid.update(dict.fromkeys(named, _CODE_INVALID_ID))
                    remaining = [i for i in remaining if i not in named]
                    continue
                if not isinstance(exc, SynapTransientError):
                    raise
                result = self._transient(exc, remaining)
            except SynapTransientError as exc:
                result = self._transient(exc, remaining)
            else:
                result = _Chunk(list(answer.items), dict(answer.retry), dict(answer.failed))
                self._transient_streak = 0
                if answer.retry_after is not None and answer.retry:
                    self._not_before = self._monotonic() + answer.retry_after
            result.failed.update(invalid)
            not_served = [i for i, code in result.failed.items() if code == _CODE_NOT_SERVED]
            if not_served:  # reported once, here: the backend will never serve them
                self._note(
                    ExportLogMessageCode.EXPORT_FAILED_NOT_SERVED,
                    count=len(not_served),
                    ids=[str(i) for i in not_served[:_ITEMS_SHOWN]],
                )
            if answer_failed := len(result.retry) + len(result.failed) - len(not_served):
                self._note(
                    ExportLogMessageCode.EXPORT_FAILED_BATCH_PARTIAL,
                    succeeded=len(result.items),
                    failed=answer_failed,
                    retrying=len(result.retry),
                )
            return result
        return _Chunk(failed=invalid)

    def _transient(self, exc: SynapError, ids: list[ItemId]) -> _Chunk:
        """A transient error outlasted the client's retries: every id of the chunk is retried
        later. After ``_MAX_TRANSIENT_STREAK`` such chunks in a row the backend is taken to be
        down and the error is raised (the fetch step fails; a rerun resumes)."""
        self._transient_streak += 1
        if self._transient_streak >= _MAX_TRANSIENT_STREAK:
            raise exc
        code = getattr(exc, "error_code", None) or exc.code
        self._whole_request_failed = True
        self._note(
            classify_export_error(exc) or ExportLogMessageCode.EXPORT_FAILED,
            count=len(ids),
            error=type(exc).__name__,
        )
        return _Chunk(retry=dict.fromkeys(ids, code))

    # -- convert and save -----------------------------------------------------------------------

    def _convert(self, fetched: _Chunk) -> list[ExportRecord]:
        self.log_message(ExportLogMessageCode.EXPORT_CONVERTING, quiet=True)
        records: list[ExportRecord] = []
        for item in fetched.items:
            try:
                records.append(convert_item(item, self.params.target.value))
            except UnsafeItemIdError as exc:
                fetched.failed[exc.item_id] = _CODE_UNSAFE_ID  # type: ignore[index]
            except (ValueError, TypeError):
                item_id = item.get("id")
                if isinstance(item_id, int | str) and not isinstance(item_id, bool):
                    fetched.failed[item_id] = _CODE_MALFORMED
        return records

    def _save(self, records: list[ExportRecord], fetched: _Chunk) -> list[ItemId]:
        """Write every record and its original; mark the ids completely written as exported
        (in groups of ``_MARK_EVERY``, after the folder is fsynced, so a kill loses at most a
        group's marks, never a file) and return them."""
        if not records:
            return []
        saved: list[ItemId] = []
        unmarked: list[ItemId] = []
        workers = min(self.params.workers, len(records))
        with contextlib.ExitStack() as stack:
            if workers == 1:
                outcomes: Iterator[tuple[str | None, bool] | None] = map(self._save_one, records)
            else:
                pool = stack.enter_context(
                    ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export-save")
                )
                outcomes = pool.map(self._save_one, records)
            for record, outcome in zip(records, outcomes, strict=True):
                if outcome is None:
                    saved.append(record.id)
                    unmarked.append(record.id)
                    if len(unmarked) >= _MARK_EVERY:
                        self._mark_exported(unmarked)
                        unmarked = []
                elif outcome[1]:
                    fetched.retry[record.id] = outcome[0]
                else:
                    fetched.failed[record.id] = outcome[0]
        self._mark_exported(unmarked)
        self.log_message(ExportLogMessageCode.EXPORT_FILES_SAVED, quiet=True, count=len(saved))
        return saved

    def _mark_exported(self, ids: list[ItemId]) -> None:
        if ids:
            fsync_dir(self.target_dir)
            self.ledger.mark_exported(ids)
            self._counts.exported += len(ids)

    def _save_one(self, record: ExportRecord) -> tuple[str | None, bool] | None:
        """Write one item, original first and JSON last. None when done, else ``(code,
        retryable)`` saying why not.

        A transient download failure is retryable; a backend error about this item (a checksum
        or size mismatch, a missing file) is not. Authentication and disk errors propagate and
        fail the save step.
        """
        original_name: str | None = None
        digest: str | None = None
        if self.params.originals and record.has_original:
            try:
                content = self.v2_client.download_original(dict(record.source))
            except SynapTransientError as exc:
                return (getattr(exc, "error_code", None) or exc.code, True)
            except BackendError as exc:
                if isinstance(exc, AuthenticationError):
                    raise
                return (exc.error_code or exc.code, False)
            original_name, digest = record.original_name(content), sha256_hex(content)
            atomic_write(self.target_dir / original_name, content)
        atomic_write(self.target_dir / record.json_name, record.json_bytes(original_name, digest))
        return None

    def _settle(self, chunk: list[ItemId], saved: list[ItemId], fetched: _Chunk) -> None:
        """Record the rest of the chunk's outcome in the ledger: enqueued for retry, failed.

        An id asked for that ended nowhere (an answer naming it differently, say ``"7"`` for
        ``7``) is enqueued as ``missing_from_response``: every id asked for ends somewhere, so
        every retry counts an attempt and the retries end.
        """
        settled = {*saved, *fetched.retry, *fetched.failed}
        for item_id in chunk:
            if item_id not in settled:
                fetched.retry[item_id] = _CODE_MISSING
        by_code: dict[str | None, list[ItemId]] = {}
        for item_id, code in fetched.retry.items():
            by_code.setdefault(code, []).append(item_id)
        for code, ids in by_code.items():
            self._enqueue_retry(ids, code=code)
        if fetched.failed:
            self.ledger.mark_failed_codes(fetched.failed)

    # -- retry rounds and the end ---------------------------------------------------------------

    def _summarize(
        self, started: float, requests_before: int, rejections_before: int
    ) -> ExportSummary:
        ledger = self.ledger.summary()
        by_code = {str(code): n for code, n in ledger.failed_by_code.items()}
        by_message: dict[str, int] = {}
        for code, count in by_code.items():
            message = _item_message(code).value
            by_message[message] = by_message.get(message, 0) + count
        return ExportSummary(
            target=self.params.target.value,
            out_dir=str(self.params.out_dir),
            exported=self._counts.exported,
            skipped=self._counts.skipped,
            failed=ledger.failed,
            failed_by_code=by_code,
            failed_by_message=by_message,
            retried=self._counts.retried,
            retry_rounds=self._counts.rounds,
            requests=self.v2_client.stats.requests - requests_before,
            rate_limited=(self._pacer.rejections if self._pacer is not None else 0)
            - rejections_before,
            duration=self._monotonic() - started,
        )

    def _report(self, summary: ExportSummary) -> None:
        """Log each failed code with its count, the first failed items, and the outcome."""
        if summary.failed:
            for code, count in summary.failed_by_code.items():
                self.log_message(_item_message(code), count=count, code=code)
            for shown, record in enumerate(self.ledger.iter_failed()):
                if shown >= _ITEMS_SHOWN:
                    break
                self.log_message(
                    ExportLogMessageCode.EXPORT_ITEM_FAILED, item_id=record.id, code=record.code
                )
            self.log_message(
                ExportLogMessageCode.EXPORT_COMPLETED_WITH_FAILURES,
                exported=summary.exported + summary.skipped,
                failed=summary.failed,
            )
        else:
            self.log_message(ExportLogMessageCode.EXPORT_COMPLETED)

    def _report_progress(self) -> None:
        if self._on_progress is None:
            return
        ledger = self.ledger.summary()
        self._on_progress(
            ExportProgress(
                phase=self._phase,
                exported=self._counts.exported,
                skipped=self._counts.skipped,
                failed=ledger.failed,
                pending=ledger.pending,
                total=len(self.params.ids) if self.params.ids is not None else None,
            )
        )

    @contextlib.contextmanager
    def _job_lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the job folder for the run (POSIX ``flock``; none on
        platforms without it)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fd = os.open(self.job_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JobLockedError(
                    f"another export is running over {str(self.params.out_dir)!r} "
                    f"({self.params.target.value}); wait for it or choose another folder"
                ) from None
            yield
        finally:
            os.close(fd)


def _item_message(code: str) -> LogMessageCode:
    """The export message code reporting items that ended failed with the per-item ``code``."""
    known = _ITEM_CODE_MESSAGES.get(code)
    if known is not None:
        return known
    return classify_export_error(message=code) or ExportLogMessageCode.EXPORT_FAILED
