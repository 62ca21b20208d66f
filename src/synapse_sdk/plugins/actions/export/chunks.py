"""One chunk of an export, processed: ids in, outcomes out.

:class:`ChunkRunner` is the part of the export a worker does: bulk-fetch a chunk of ids (one
request), convert each item through the exporter's hooks, download originals and write the
files to the output storage. It never touches the ledger: it returns a :class:`ChunkOutcome`
(the ids written, with what each wrote; the ids to retry and the ids failed for good, each with
its code; whether the whole request failed transiently; the pause the backend asked for) and
the driver (:class:`~synapse_sdk.plugins.actions.export.action.ExportAction`) alone marks the
ledger from it. The single-process export runs it in-process; the Ray executor
(:mod:`~synapse_sdk.plugins.actions.export.distributed`) runs the same class in worker actors.

Messages go through an ``emit`` callable, ``emit(code, quiet, params)`` (``quiet`` None: on the
console once per run), so a worker can send them back to the driver to be logged.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from synapse_sdk.config import RetryPolicy
from synapse_sdk.envelopes import ItemId
from synapse_sdk.exceptions import (
    AuthenticationError,
    BackendError,
    SynapError,
    SynapTransientError,
)
from synapse_sdk.failures import walk_chain
from synapse_sdk.plugins.actions.export.exporter import (
    BaseExporter,
    ExporterHookError,
    ExportOutput,
    OriginalFile,
    convert_with,
)
from synapse_sdk.plugins.actions.export.failure_classifier import classify_export_error
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
from synapse_sdk.plugins.actions.export.steps import (
    ExportRecord,
    RatePacer,
    UnsafeItemIdError,
)
from synapse_sdk.plugins.log_messages import LogMessageCode
from synapse_sdk.storage import StagedFile, Storage, StoredObject

if TYPE_CHECKING:
    from synapse_sdk.clients.backend_v2 import BackendV2Client, SavedOriginal
    from synapse_sdk.plugins.actions.export.action import ExportAction

__all__ = [
    "ChunkExecutor",
    "ChunkOutcome",
    "ChunkRunner",
    "CountingPacer",
    "Emit",
    "LocalExecutor",
    "StepFactory",
]

# Per-item failure codes the export itself assigns (the backend's own codes are kept as sent).
CODE_INVALID_ID: Final = "invalid_id"
CODE_UNSAFE_ID: Final = "unsafe_id"
CODE_MALFORMED: Final = "malformed_item"
#: backend_v2.NOT_SERVED (not imported: the client loads lazily): an id a 200 answer left out.
CODE_NOT_SERVED: Final = "not_served"
#: Items in a row failing in an exporter hook before the exporter is taken to be broken.
MAX_HOOK_STREAK: Final = 50
#: Failed ids named one by one in a message (the rest are counted).
ITEMS_SHOWN: Final = 20
#: Saved items marked exported in the ledger together (one transaction).
MARK_EVERY: Final = 25

#: ``emit(code, quiet, params)``: log a message (``quiet`` None: on the console once per run).
Emit = Callable[[LogMessageCode, "bool | None", "dict[str, Any]"], None]
#: ``step(name)``: the context a step of the chunk runs in (the action's ``step``).
StepFactory = Callable[[str], AbstractContextManager[None]]
#: ``on_saved(written)``: items just written (the folder synced), to be marked at once.
OnSaved = Callable[["dict[ItemId, list[StoredObject]]"], None]


@dataclass(slots=True)
class ChunkOutcome:
    """What became of one chunk of ids.

    * ``exported`` — the ids completely written (the folder synced), each with the objects it
      wrote, in order, still to be marked; ``marked`` — ids written and already handed to the
      runner's ``on_saved`` (in-process: marked as they were saved);
    * ``retry`` / ``failed`` — ids to fetch again later / failed for good, each with its code;
    * ``transient`` — the error when the whole request failed transiently after the client's
      retries (every id is then in ``retry``); ``answered`` — the backend answered the fetch;
    * ``retry_after`` — the pause the backend asked for before its failed items are asked again;
    * ``requests`` / ``rate_limited`` — requests sent and 429s seen by a worker's own client
      (0 when the driver's client did the work: it counts them itself).
    """

    exported: dict[ItemId, list[StoredObject]] = field(default_factory=dict)
    marked: list[ItemId] = field(default_factory=list)
    retry: dict[ItemId, str | None] = field(default_factory=dict)
    failed: dict[ItemId, str | None] = field(default_factory=dict)
    transient: SynapError | None = None
    answered: bool = False
    retry_after: float | None = None
    requests: int = 0
    rate_limited: int = 0


@dataclass(slots=True)
class _Fetched:
    items: list[dict[str, Any]] = field(default_factory=list)
    retry: dict[ItemId, str | None] = field(default_factory=dict)
    failed: dict[ItemId, str | None] = field(default_factory=dict)


class ChunkRunner:
    """Fetch, convert and save chunks of ids with one client, exporter and output storage.

    ``target`` is the resource's client attribute (``tasks``, ``ground_truths``…), ``originals``
    whether originals are downloaded, ``threads`` the concurrent downloads and writes per chunk,
    ``max_original_bytes`` the largest original accepted (None: no bound; originals are
    streamed, never held whole).
    ``on_saved``, when given, receives the items written in groups of ``MARK_EVERY`` as they
    are (after the folder is synced), so an in-process driver marks them at once and a kill
    loses at most a group's marks; without it they come back in the outcome.
    One :meth:`process` at a time; the hook-failure streak carries across chunks.
    """

    def __init__(
        self,
        client: BackendV2Client,
        exporter: BaseExporter,
        storage: Storage,
        *,
        target: str,
        originals: bool,
        threads: int,
        emit: Emit,
        on_saved: OnSaved | None = None,
        max_original_bytes: int | None = None,
    ) -> None:
        self.client = client
        self._on_saved = on_saved
        self.exporter = exporter
        self.storage = storage
        self._target = target
        self._originals = originals
        self._max_original_bytes = max_original_bytes
        self._threads = threads
        self._emit = emit
        self._hook_errors: dict[ItemId, ExporterHookError] = {}
        self._hook_streak = 0

    def process(self, chunk: list[ItemId], step: StepFactory) -> ChunkOutcome:
        """Fetch, convert and save ``chunk``, each part inside ``step(name)``.

        Raises:
            Exception: what fails a step as a whole (a bad token, a disk error, a broken
                exporter), raised inside that step's context.
        """
        with step("fetch"):
            outcome, items = self._fetch(chunk)
        self._emit(ExportLogMessageCode.EXPORT_RESULTS_FETCHED, True, {"count": len(items)})
        with step("convert"):
            records = self._convert(items, outcome)
        with step("save"):
            self._save(records, outcome)
        return outcome

    # -- fetch ----------------------------------------------------------------------------------

    def _fetch(self, chunk: list[ItemId]) -> tuple[ChunkOutcome, list[dict[str, Any]]]:
        """Bulk-fetch ``chunk`` (one request; the failed items of a 207 are returned to be
        pooled, not re-requested here), sorting out invalid ids and transient failures that
        outlasted the client's retries."""
        resource = getattr(self.client, self._target)
        invalid: dict[ItemId, str | None] = {}
        remaining = list(chunk)
        # Each pass either returns or drops at least one invalid id, so the loop ends.
        while remaining:
            outcome = ChunkOutcome()
            items: list[dict[str, Any]] = []
            try:
                answer = resource.bulk_fetch_once(remaining)
            except BackendError as exc:
                asked = set(remaining)
                named = {i for i in exc.failed_ids if i in asked}
                if exc.error_code == "invalid_ids" and named:
                    self._emit(
                        classify_export_error(exc)
                        or ExportLogMessageCode.EXPORT_FAILED_BAD_REQUEST,
                        None,
                        {"count": len(named), "ids": [str(i) for i in list(named)[:ITEMS_SHOWN]]},
                    )
                    invalid.update(dict.fromkeys(named, CODE_INVALID_ID))
                    remaining = [i for i in remaining if i not in named]
                    continue
                if not isinstance(exc, SynapTransientError):
                    raise
                outcome.transient = exc
            except SynapTransientError as exc:
                outcome.transient = exc
            else:
                outcome.answered = True
                items = list(answer.items)
                outcome.retry = dict(answer.retry)
                outcome.failed = dict(answer.failed)
                if answer.retry_after is not None and answer.retry:
                    outcome.retry_after = answer.retry_after
            if outcome.transient is not None:  # the driver decides: retried later, or down
                outcome.retry = dict.fromkeys(remaining, _error_code(outcome.transient))
            outcome.failed.update(invalid)
            not_served = [i for i, code in outcome.failed.items() if code == CODE_NOT_SERVED]
            if not_served:  # reported once, here: the backend will never serve them
                self._emit(
                    ExportLogMessageCode.EXPORT_FAILED_NOT_SERVED,
                    None,
                    {"count": len(not_served), "ids": [str(i) for i in not_served[:ITEMS_SHOWN]]},
                )
            # A whole request put back is noted by the driver as being handled.
            if outcome.answered and (
                answer_failed := len(outcome.retry) + len(outcome.failed) - len(not_served)
            ):
                self._emit(
                    ExportLogMessageCode.EXPORT_FAILED_BATCH_PARTIAL,
                    None,
                    {
                        "succeeded": len(items),
                        "failed": answer_failed,
                        "retrying": len(outcome.retry),
                    },
                )
            return outcome, items
        return ChunkOutcome(failed=invalid), []

    # -- convert and save -----------------------------------------------------------------------

    def _convert(self, items: list[dict[str, Any]], outcome: ChunkOutcome) -> list[ExportRecord]:
        self._emit(ExportLogMessageCode.EXPORT_CONVERTING, True, {})
        records: list[ExportRecord] = []
        for item in items:
            try:
                records.append(convert_with(self.exporter, item))
                self._hook_streak = 0
            except ExporterHookError as exc:
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                outcome.failed[exc.item_id] = self._hook_failed(exc, cause)  # type: ignore[index]
                self._hook_systemic(exc)
            except UnsafeItemIdError as exc:
                outcome.failed[exc.item_id] = CODE_UNSAFE_ID  # type: ignore[index]
            except (ValueError, TypeError, RecursionError):
                item_id = item.get("id")
                if isinstance(item_id, int | str) and not isinstance(item_id, bool):
                    outcome.failed[item_id] = CODE_MALFORMED
        return records

    def _save(self, records: list[ExportRecord], outcome: ChunkOutcome) -> None:
        """Write every record and its original; the ids completely written go to
        ``outcome.exported`` or ``on_saved`` (after the folder is synced: a mark never precedes
        its file)."""
        if not records:
            return
        saved = 0
        unmarked: dict[ItemId, list[StoredObject]] = {}
        threads = min(self._threads, len(records))
        with contextlib.ExitStack() as stack:
            if threads == 1:
                results: Iterator[tuple[str | None, bool] | list[StoredObject]] = map(
                    self._save_one, records
                )
            else:
                pool = stack.enter_context(
                    ThreadPoolExecutor(max_workers=threads, thread_name_prefix="export-save")
                )
                results = pool.map(self._save_one, records)
            for record, result in zip(records, results, strict=True):
                hook_error = self._hook_errors.pop(record.id, None)
                if hook_error is not None:
                    self._hook_systemic(hook_error)
                elif isinstance(result, list):
                    self._hook_streak = 0
                if isinstance(result, list):
                    saved += 1
                    unmarked[record.id] = result
                    if len(unmarked) >= MARK_EVERY:
                        self._saved(unmarked, outcome)
                        unmarked = {}
                elif result[1]:
                    outcome.retry[record.id] = result[0]
                else:
                    outcome.failed[record.id] = result[0]
        self._saved(unmarked, outcome)
        self._emit(ExportLogMessageCode.EXPORT_FILES_SAVED, True, {"count": saved})

    def _saved(self, written: dict[ItemId, list[StoredObject]], outcome: ChunkOutcome) -> None:
        """Sync the folder, then hand ``written`` to ``on_saved`` or the outcome."""
        if not written:
            return
        self.storage.sync()
        if self._on_saved is None:
            outcome.exported.update(written)
        else:
            self._on_saved(written)
            outcome.marked.extend(written)

    def _hook_systemic(self, error: ExporterHookError) -> None:
        """Count a hook failure; ``MAX_HOOK_STREAK`` in a row with no item getting through
        mean the exporter is broken, not the items: the error is raised and the step fails."""
        self._hook_streak += 1
        if self._hook_streak >= MAX_HOOK_STREAK:
            raise error

    def _save_one(self, record: ExportRecord) -> tuple[str | None, bool] | list[StoredObject]:
        """Write one item through the exporter's save hooks, original first and JSON last.
        The objects written when done, else ``(code, retryable)`` saying why not.

        A transient download or storage failure is retryable; a backend error about this item
        (a checksum or size mismatch, a missing file) is not, nor is an item the backend described
        wrongly or whose id cannot name a file here (:func:`item_fault`), nor a save hook's own
        error (its classified code). Authentication, disk and permanent storage errors propagate
        and fail the save step.
        """
        with contextlib.ExitStack() as stack:
            original: OriginalFile | None = None
            if self._originals and record.has_original:
                # Streamed to a staged file (the output folder on local disk): a failed or
                # killed download leaves nothing under the final name.
                staged = stack.enter_context(self.storage.stage(record.json_name))
                outcome = self._download(record, staged)
                if isinstance(outcome, tuple):
                    return outcome
                original = OriginalFile(staged, outcome)
                # A v2 manifest gives a SHA-1: the record keeps the SHA-256 of the bytes saved.
                record = record.with_saved_sha256(outcome.sha256)
            return self._save_files(record, original)

    def _download(
        self, record: ExportRecord, staged: StagedFile
    ) -> SavedOriginal | tuple[str, bool]:
        """Stream the record's original into ``staged``: what was saved, or ``(code,
        retryable)`` saying why the item is not saved (see :meth:`_save_one`)."""
        try:
            return self.client.download_original_to(
                dict(record.source), staged, max_bytes=self._max_original_bytes
            )
        except SynapTransientError as exc:
            return (_error_code(exc), True)
        except BackendError as exc:
            if isinstance(exc, AuthenticationError):
                raise
            return (exc.error_code or exc.code, False)
        except Exception as exc:
            code = item_fault(exc)
            if code is None:
                raise
            return (code, False)

    def _save_files(
        self, record: ExportRecord, original: OriginalFile | None
    ) -> tuple[str | None, bool] | list[StoredObject]:
        """Run the save hooks for a record whose original (if any) is staged: the objects
        written, else ``(code, retryable)`` (see :meth:`_save_one`). An item's writes are all or
        nothing: when a hook or the storage fails after some of its files were written (the
        original before the JSON), those files are removed again (best effort)."""
        output = ExportOutput(self.storage)
        try:
            result = self._run_save_hooks(record, original, output)
        except Exception:
            output.rollback()
            raise
        if not isinstance(result, list):
            output.rollback()
        return result

    def _run_save_hooks(
        self, record: ExportRecord, original: OriginalFile | None, output: ExportOutput
    ) -> tuple[str | None, bool] | list[StoredObject]:
        """:meth:`_save_files` without the rollback."""
        exporter = type(self.exporter)
        streamed = exporter.save_original is not BaseExporter.save_original
        bytes_api = exporter.save_original_file is not BaseExporter.save_original_file
        hook = "save_original_file" if bytes_api and not streamed else "save_original"
        try:
            original_name = (
                None if original is None
                else self.exporter.save_original(record, original, output)
            )
            hook = "save_as_json"
            self.exporter.save_as_json(record, original_name, output)
        except Exception as exc:
            if output.failure is None:  # the hook's own error, not the storage's
                fault = self._item_fault_in(hook, exc)
                if fault is not None:
                    return (fault, False)
                error = ExporterHookError(hook, record.id)
                self._hook_errors[record.id] = error  # counted by _save, in order
                return (self._hook_failed(error, exc), False)
        failure = output.failure
        if failure is not None:  # even if a hook swallowed it
            if isinstance(failure, SynapTransientError):  # storage throttled, 5xx, timed out
                return (_error_code(failure), True)
            raise failure
        return output.written

    def _item_fault_in(self, hook: str, exc: Exception) -> str | None:
        """The item's own code for an error of save hook ``hook``: an id that cannot name a file
        here always; a malformed item only from the default hook (a plugin's override reports
        its own errors as the hook's)."""
        if isinstance(exc, UnsafeItemIdError | OSError):
            return item_fault(exc)
        if getattr(type(self.exporter), hook) is getattr(BaseExporter, hook):
            return item_fault(exc)
        return None

    def _hook_failed(self, error: ExporterHookError, cause: BaseException) -> str:
        """Log a per-item hook failure (the chain kept on ``error``) and return the item's
        code: the export code its chain classifies as."""
        error.__cause__ = cause
        code = classify_export_error(error) or ExportLogMessageCode.EXPORT_FAILED
        self._emit(
            code,
            True,
            {
                "hook": error.hook,
                "item_id": str(error.item_id),
                "error": " <- ".join(type(e).__name__ for e in walk_chain(error)),
            },
        )
        return str(code.value)


class CountingPacer(Protocol):
    """A transport :class:`~synapse_sdk.clients._transport.Pacer` that counts the 429 answers
    it saw."""

    rejections: int

    def before_request(self, path: str) -> float:
        """Seconds to wait before a request on ``path``."""
        ...

    def after_response(self, path: str, status: int, headers: Mapping[str, str]) -> None:
        """Learn from an answer on ``path``."""


class ChunkExecutor(Protocol):
    """Where an export's chunks are processed: the driver leases chunks with :meth:`submit`
    (at most :attr:`capacity` at a time) and takes their outcomes back with :meth:`next_outcome`
    to mark the ledger. ``name`` and ``workers`` go to the summary."""

    name: str
    workers: int

    @property
    def capacity(self) -> int:
        """How many chunks may be in flight at once."""
        ...

    @property
    def in_flight(self) -> int:
        """Chunks submitted whose outcome was not taken yet."""
        ...

    def make_pacer(
        self,
        paths: Iterable[str],
        policy: RetryPolicy,
        clock: Callable[[], float] | None = None,
        on_rejection: Callable[[float], None] | None = None,
    ) -> CountingPacer:
        """The pacer of the action's own client: its rate-limited ``paths`` paced under
        ``policy`` (a local :class:`~.steps.RatePacer`, or one shared by every worker)."""
        ...

    def start(self, action: ExportAction) -> None:
        """Get ready to process ``action``'s chunks (its client, exporter and storage)."""

    def submit(self, chunk: list[ItemId]) -> None:
        """Lease ``chunk`` to a worker."""

    def next_outcome(self) -> tuple[list[ItemId], ChunkOutcome]:
        """The next chunk done and its outcome (a step failing as a whole is raised inside
        the action's step of that name)."""
        ...

    def close(self) -> None:
        """Release the workers (idempotent)."""


class LocalExecutor:
    """The single-process executor: each chunk is processed in-process, at once, by one
    :class:`ChunkRunner` on the action's own client, exporter and storage."""

    name = "local"
    workers = 1
    capacity = 1

    def __init__(self) -> None:
        self._runner: ChunkRunner | None = None
        self._done: deque[tuple[list[ItemId], ChunkOutcome]] = deque()

    @property
    def in_flight(self) -> int:
        """Chunks processed whose outcome was not taken yet (0 or 1)."""
        return len(self._done)

    def make_pacer(
        self,
        paths: Iterable[str],
        policy: RetryPolicy,
        clock: Callable[[], float] | None = None,
        on_rejection: Callable[[float], None] | None = None,
    ) -> RatePacer:
        """A :class:`~.steps.RatePacer` of this process on ``clock``."""
        return RatePacer(
            paths, policy=policy, clock=clock or time.monotonic, on_rejection=on_rejection
        )

    def start(self, action: ExportAction) -> None:
        """Build the runner over ``action``'s client, exporter and storage."""
        self._done.clear()
        self._runner = ChunkRunner(
            action.v2_client,
            action.exporter,
            action.storage,
            target=action.params.target.attribute,
            originals=action.params.originals,
            threads=action.params.workers,
            emit=action.emit,
            on_saved=action.mark_saved,
            max_original_bytes=action.params.max_original_bytes,
        )
        self._step = action.step

    def submit(self, chunk: list[ItemId]) -> None:
        """Process ``chunk`` now (its steps inside the action's steps)."""
        if self._runner is None:
            raise RuntimeError("LocalExecutor.submit before start")
        self._done.append((chunk, self._runner.process(chunk, self._step)))

    def next_outcome(self) -> tuple[list[ItemId], ChunkOutcome]:
        """The chunk processed by the last :meth:`submit` and its outcome."""
        return self._done.popleft()

    def close(self) -> None:
        """Drop the runner."""
        self._runner = None
        self._done.clear()


def _error_code(exc: SynapError) -> str:
    """The code an item failing with ``exc`` is recorded with."""
    return str(getattr(exc, "error_code", None) or exc.code)


#: ``OSError`` numbers that mean the filesystem refuses this one item's file name.
_NAME_ERRNOS: Final = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL})


def item_fault(exc: Exception) -> str | None:
    """The per-item code of an error that concerns one item only, or None when it must stop
    the run: the id cannot be a file name here (``unsafe_id``), or the item is described in a
    way no file can come from (an ``original`` whose size, sha256 or url is not usable, data
    nested deeper than can be written: ``malformed_item``)."""
    if isinstance(exc, UnsafeItemIdError):
        return CODE_UNSAFE_ID
    if isinstance(exc, OSError):
        return CODE_UNSAFE_ID if exc.errno in _NAME_ERRNOS else None
    if isinstance(exc, ValueError | TypeError | RecursionError):
        return CODE_MALFORMED
    return None
