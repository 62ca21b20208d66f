"""The export action: every item of a project's tasks, assignments or ground truths, to a folder
or any storage URL, exactly once, whatever the backend does.

Steps::

    initialize ─> fetch ─> convert ─> save ─> (next chunk) ... ─> retries ─> finalize

* **initialize** — prepare ``<out>/<target>/`` on its storage (:mod:`synapse_sdk.storage`;
  locally: create it and remove temporary files a killed run left), take the job lock, open the
  ledger and job log in the local state folder (``<out>/.synapse-export/<target>/``, or one
  derived from the URL, or ``params.state_dir``); on a non-local storage, list the output once.
* **fetch** — list the ids page by page (or take ``params.ids``), skip those already exported
  (the ledger says so *and* the files are there), and bulk-fetch the rest in chunks of
  ``batch_size``, one request each. Each chunk is first filled with the oldest ids waiting in
  the ledger for a retry, then with fresh ids, so a failed item never costs a request of its own
  and every request stays full. A 207 keeps the items served; its failed items are enqueued in
  the ledger when retryable, marked failed with their own code when not. A 400 ``invalid_ids``
  marks the named ids failed (never retried) and fetches the rest of the chunk. A chunk that
  still fails transiently after the client's retries (rate limit, outage, dropped connections)
  is enqueued as a whole; three such chunks in a row mean the backend is down and stop the run.
* **convert** — each item becomes its export record through the exporter's hooks
  (:class:`~.exporter.BaseExporter`; a hook's exception fails its item only).
* **save** — the original file is downloaded (checked against its size and SHA-256 by the
  client) and written, then the JSON record, by the exporter's save hooks through the storage
  layer (locally: temporary file in the same folder, fsync, ``os.replace``; on an object
  store: one whole put per object); then the folder is fsynced and the items are marked
  exported in the ledger, 25 to a transaction (on a non-local storage, what each item wrote is
  recorded in the object index first). A kill at any point leaves only whole
  files, and at worst items whose files exist but whose mark is missing: the next run fetches
  them again and replaces the same files with the same bytes.
* **retries** — after the main pass, whatever still waits in the ledger is fetched again, oldest
  first, in full chunks; an item is fetched again at most ``retry_rounds`` times, and whatever
  still fails is marked failed with its last code. A pause is taken only after whole requests
  failed (``retry_delay``, doubling, capped at the retry policy's ``backoff_max``) or when the
  backend asked for one (exactly; one above the policy's ``retry_after_max`` ends the retries
  at once): :func:`~synapse_sdk.retry.decide_wait` decides it.
* **finalize** — the exporter's ``additional_file_saving``, an :class:`ExportSummary`
  (exported, skipped, repaired, failed by code, retried, requests sent, rate-limited answers,
  duration), ``export_report.json`` at the root of the output, and the completion message.

Fetch, convert and save run in a :class:`~.chunks.ChunkRunner` (ids in, outcomes out) that an
executor drives: in-process by default (:class:`~.chunks.LocalExecutor`), or in worker actors on
a Ray cluster (:class:`~.distributed.RayExecutor`). The action is the driver and the only writer
of the ledger: it leases chunks to the executor (never the same id twice at once) and marks the
outcomes that come back.

Memory stays flat as the dataset grows: one page of ids and one chunk of items are held at a
time; the ledger is queried per chunk and its retry queue read a chunk at a time.

A step failure that cannot be handled per item (a bad token, a disk error, a backend that stays
down) is classified with ``classify_export_error``, logged with that code and the failed-step
code naming the step, and raised as :class:`~synapse_sdk.plugins.action.ActionStepError`
``from`` the original error. The ledger keeps what was done, so a rerun resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from synapse_sdk.clients.list_filters import check_filters
from synapse_sdk.config import RetryPolicy
from synapse_sdk.envelopes import ItemId
from synapse_sdk.exceptions import (
    BackendError,
    SynapError,
)
from synapse_sdk.i18n import normalize_language
from synapse_sdk.plugins.action import BaseAction
from synapse_sdk.plugins.actions.export.chunks import (
    CODE_INVALID_ID,
    CODE_MALFORMED,
    CODE_NOT_SERVED,
    CODE_UNSAFE_ID,
    ITEMS_SHOWN,
    MARK_EVERY,
    ChunkExecutor,
    ChunkOutcome,
    CountingPacer,
    LocalExecutor,
)
from synapse_sdk.plugins.actions.export.exporter import BaseExporter, ExportOutput
from synapse_sdk.plugins.actions.export.failure_classifier import classify_export_error
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
from synapse_sdk.plugins.actions.export.report import REPORT_NAME, build_report, report_bytes
from synapse_sdk.plugins.actions.export.steps import (
    UnsafeItemIdError,
    chunked,
    item_filename,
    name_key,
)
from synapse_sdk.plugins.ledger import LedgerRecord, item_key, unique_ids
from synapse_sdk.plugins.log_messages import LogMessageCode
from synapse_sdk.retry import Retrying, decide_wait, notify_wait
from synapse_sdk.storage import (
    ListedObject,
    Storage,
    StoredObject,
    default_state_dir,
    is_url,
    open_storage,
)
from synapse_sdk.storage.errors import redact_url
from synapse_sdk.storage.index import ObjectIndex
from synapse_sdk.telemetry import record_export

if TYPE_CHECKING:
    from synapse_sdk.clients.backend_v2 import BackendV2Client

__all__ = [
    "JOB_FOLDER",
    "ExportAction",
    "ExportParams",
    "ExportProgress",
    "ExportSummary",
    "ExportTarget",
    "JobLockedError",
    "JobMismatchError",
]

#: Where the ledger, job log and lock of an export live, inside the output folder.
JOB_FOLDER: Final = ".synapse-export"

# Per-item failure codes the action itself assigns (the backend's own codes are kept as sent;
# those a chunk's processing assigns are in .chunks).
_CODE_INVALID_ID: Final = CODE_INVALID_ID
_CODE_UNSAFE_ID: Final = CODE_UNSAFE_ID
_CODE_MALFORMED: Final = CODE_MALFORMED
_CODE_MISSING: Final = "missing_from_response"
_CODE_DAMAGED: Final = "damaged_on_disk"
#: The ledger setting holding the filter a job was started with (its canonical JSON).
_FILTER_SETTING: Final = "filter"
_CODE_NOT_SERVED: Final = CODE_NOT_SERVED
#: Chunks in a row whose fetch outlasted every retry before the backend is taken to be down.
_MAX_TRANSIENT_STREAK: Final = 3
#: Saved items marked exported in the ledger together (one transaction).
_MARK_EVERY: Final = MARK_EVERY
#: Failed items whose ids are logged one by one at the end of a run (the rest are counted).
_ITEMS_SHOWN: Final = ITEMS_SHOWN
#: The step name the export's progress and metrics are reported under to its backend job.
_JOB_STEP: Final = "export"
#: Message codes shown on the console once per run; later ones go to the job log only.
_CONSOLE_ONCE: Final = frozenset(
    {
        ExportLogMessageCode.EXPORT_FAILED_BATCH_PARTIAL,
        ExportLogMessageCode.EXPORT_RATE_LIMITED_WAITING,
        ExportLogMessageCode.EXPORT_REQUEST_RETRYING,
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
    # backend_v2.PAYLOAD_TRUNCATED / PAYLOAD_URL_REFUSED: a data wrapper that cannot be resolved.
    "payload_truncated": ExportLogMessageCode.EXPORT_FAILED_MALFORMED_DATA,
    "payload_url_refused": ExportLogMessageCode.EXPORT_FAILED_INCOMPLETE_RESPONSE,
    "item_unavailable": ExportLogMessageCode.EXPORT_FAILED_BATCH_PARTIAL,
    "missing_from_response": ExportLogMessageCode.EXPORT_FAILED_BATCH_PARTIAL,
    _CODE_NOT_SERVED: ExportLogMessageCode.EXPORT_FAILED_NOT_SERVED,
    "rate_limited": ExportLogMessageCode.EXPORT_FAILED_RATE_LIMITED,
    "service_unavailable": ExportLogMessageCode.EXPORT_FAILED_SERVICE_UNAVAILABLE,
    "network_timeout": ExportLogMessageCode.EXPORT_FAILED_TIMEOUT,
    "storage_throttled": ExportLogMessageCode.EXPORT_FAILED_SERVICE_UNAVAILABLE,
    "storage_unavailable": ExportLogMessageCode.EXPORT_FAILED_SERVICE_UNAVAILABLE,
    "storage_timeout": ExportLogMessageCode.EXPORT_FAILED_TIMEOUT,
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
    * ``out_dir`` (also accepted as ``out``) — the output folder, or an fsspec URL
      (``s3://bucket/prefix``, ``memory://x``; see :mod:`synapse_sdk.storage`); a rerun over it
      resumes;
    * ``state_dir`` — the local folder of the ledger and job log (default: ``<out>/.synapse-export``
      for a folder, :func:`~synapse_sdk.storage.default_state_dir` of the URL for a URL);
    * ``page_size`` — ids listed per page (1-500, default 500: list pages share the rate limit
      with bulk fetches, so fewer is faster); ``batch_size`` — ids per bulk fetch (1-200);
    * ``language`` — language of the messages (``en``, ``ko``, ``ko-KR``…);
    * ``ids`` — export only these ids instead of listing the resource;
    * ``filter`` — list only the items matching these filters (``{"status_label": "completed",
      "users": "3,4"}``; keys and value types of :mod:`synapse_sdk.clients.list_filters` for the
      target, ints and booleans given as such are turned into strings). Not with ``ids``: the
      two select differently (a list query vs. named items), so the combination is refused. An
      output remembers the filter it was started with and refuses a run with another
      (:class:`JobMismatchError`);
    * ``retry_rounds`` — how many times an item that failed retryably is fetched again (0-10,
      default 6: retries ride along in full requests, so they cost little);
      ``retry_delay`` — seconds to pause before retrying after whole requests failed, doubled
      each time up to the retry policy's ``backoff_max``;
    * ``originals`` — download each item's original file beside its JSON (default yes),
      streamed to the storage (never whole in memory, any size);
      ``max_original_bytes`` — refuse an original larger than this (that item fails with
      ``response_too_large``; default: no bound);
    * ``workers`` — concurrent downloads and writes per chunk (1-32);
    * ``response_mode`` — how bulk answers carry each item's data: ``inline`` (default) or
      ``presigned`` (the client downloads each payload from its presigned URL).

    Raises:
        pydantic.ValidationError: (a ``ValueError``) a value is out of range, of the wrong type,
            an unknown field, ``out_dir`` is an existing file or a URL of a storage this
            installation cannot write to, an unknown or reserved filter key (the message names
            the accepted ones), a filter value of the wrong type, ``filter`` with ``ids``.
    """

    # A refused value is not echoed: an --out URL may carry credentials.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )

    target: ExportTarget = ExportTarget.TASKS
    out_dir: Path | str = Field(validation_alias=AliasChoices("out_dir", "out"))
    state_dir: Path | None = None
    page_size: int = Field(default=500, ge=1, le=500)
    batch_size: int = Field(default=200, ge=1, le=200)
    language: str | None = None
    ids: tuple[StrictInt | StrictStr, ...] | None = None
    filter: dict[str, str] = Field(default_factory=dict)
    retry_rounds: int = Field(default=6, ge=0, le=10)
    retry_delay: float = Field(default=0.25, ge=0.0, le=300.0)
    originals: bool = True
    max_original_bytes: int | None = Field(default=None, ge=1)
    workers: int = Field(default=4, ge=1, le=32)
    response_mode: Literal["inline", "presigned"] = "inline"

    @field_validator("out_dir", mode="before")
    @classmethod
    def _out_dir_is_a_folder_or_url(cls, value: Any) -> Any:
        if isinstance(value, str) and is_url(value):
            if not value.lower().startswith("file://"):
                open_storage(value)  # an unknown scheme or a missing package is refused here
                return value.rstrip("/")
            value = value.split("://", 1)[1]
        if isinstance(value, str | os.PathLike):
            path = Path(value)
            if path.exists() and not path.is_dir():
                raise ValueError(f"{str(path)!r} exists and is not a folder")
            return path
        return value

    @field_validator("language")
    @classmethod
    def _language_is_a_tag(cls, value: str | None) -> str | None:
        return None if value is None else normalize_language(value)

    @field_validator("filter", mode="before")
    @classmethod
    def _filter_values_as_text(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, Mapping):  # 3 -> "3", True -> "true", [1, 2] -> "1,2"
            return {key: _as_text(raw) for key, raw in value.items()}
        return value

    @model_validator(mode="after")
    def _filter_fits_the_target(self) -> ExportParams:
        check_filters(self.target.value, self.filter)
        if self.filter and self.ids is not None:
            raise ValueError(
                "ids and filter cannot be combined: export named ids, or the items a filter "
                "lists"
            )
        return self

    @property
    def selection(self) -> str:
        """The filter in its canonical form (normalised values, sorted keys), as the job
        records it: equal for two spellings of one filter."""
        return json.dumps(check_filters(self.target.value, self.filter), sort_keys=True)


def _as_text(raw: Any) -> Any:
    """A filter value given in Python as the string the command line would give."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, list | tuple):
        return ",".join(str(_as_text(part)) for part in raw)
    return raw


@dataclass(frozen=True, slots=True)
class ExportProgress:
    """Where an export stands, passed to the ``on_progress`` callback after each chunk.

    ``phase`` is ``main`` (the listing pass), ``retry`` (the retry rounds) or ``done`` (the
    final state, reported once before the closing messages). ``total`` is the number of ids:
    known up front with ``params.ids``, else once the listing has finished (the items settled
    plus those waiting in the ledger for a retry); None while the ids are still being listed.
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

    @property
    def percent(self) -> float | None:
        """``done`` as a percentage of ``total`` (one decimal; 100 once the export is
        ``done``), or None while the total is unknown."""
        if self.phase == "done":
            return 100.0
        if not self.total:
            return None
        return min(100.0, round(100 * self.done / self.total, 1))


@dataclass(slots=True)
class ExportSummary:
    """The result of an export run.

    * ``exported`` — items written by this run; ``skipped`` — items a previous run had already
      exported (their files are there), left alone; ``repaired`` — items among ``exported``
      a previous run had exported but whose files were missing or changed;
    * ``failed`` — items that ended failed, ``failed_by_code`` counted by their own code (the
      backend's ``item_corrupted``, ``invalid_id``, or the code of a transient failure that
      outlasted every retry) and ``failed_by_message`` by the export message code reporting them
      (``EXPORT_FAILED_BAD_REQUEST`` for ``invalid_id``); ``failed_items`` names the first
      20 of them (``{"id": ..., "code": ...}``, in the ledger's order of their ids);
    * ``retried`` — item fetches repeated after a failure; ``retry_rounds`` — chunks fetched
      after the main pass to retry items;
    * ``requests`` — HTTP requests sent (retries included); ``rate_limited`` — 429 answers seen;
    * ``duration`` — seconds the run took;
    * ``executor`` — where the chunks were processed (``local``, ``ray``) and ``workers`` by
      how many workers.
    """

    target: str
    out_dir: str
    exported: int = 0
    skipped: int = 0
    repaired: int = 0
    failed: int = 0
    failed_by_code: dict[str, int] = field(default_factory=dict)
    failed_by_message: dict[str, int] = field(default_factory=dict)
    failed_items: list[dict[str, Any]] = field(default_factory=list)
    retried: int = 0
    retry_rounds: int = 0
    requests: int = 0
    rate_limited: int = 0
    duration: float = 0.0
    executor: str = "local"
    workers: int = 1

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


class JobMismatchError(ValueError):
    """The output was started with another filter: resuming with this one would mix two
    selections in one folder. ``recorded`` and ``given`` are the two filters."""

    def __init__(self, message: str, recorded: dict[str, Any], given: dict[str, Any]) -> None:
        super().__init__(message)
        self.recorded, self.given = recorded, given

    @staticmethod
    def shown(selection: Mapping[str, Any]) -> str:
        """A filter as ``key=value`` pairs (lists comma-joined); empty for no filter."""
        return " ".join(
            f"{key}={','.join(value) if isinstance(value, list) else value}"
            for key, value in selection.items()
        )


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
    #: Ids marked exported whose files were missing or changed, written again by this run.
    repairing: list[ItemId] = field(default_factory=list)
    #: Requests sent and 429s seen by workers' own clients (not the action's).
    remote_requests: int = 0
    remote_rejections: int = 0


class ExportAction(BaseAction[ExportParams]):
    """Export one resource of a project to ``out_dir``; see the module docstring.

    Besides :class:`~synapse_sdk.plugins.action.BaseAction`'s arguments it takes:

    * ``sleep`` — every pause (the client's retries, rate pacing, the pause before a retry
      round); ``monotonic`` — the clock of those pauses and of the duration. Inject a fake clock's
      pair in tests and nothing sleeps for real.
    * ``on_progress`` — called with an :class:`ExportProgress` after each chunk;
    * ``exporter`` — a :class:`~.exporter.BaseExporter` whose hooks convert and write each
      item (default: the SDK's own output);
    * ``executor`` — where chunks are fetched, converted and saved (a
      :class:`~.chunks.ChunkExecutor`; default :class:`~.chunks.LocalExecutor`, in-process;
      :class:`~.distributed.RayExecutor` on a Ray cluster). The action alone marks the ledger.

    Raises:
        TypeError: ``exporter`` is not a ``BaseExporter``.

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
        exporter: BaseExporter | None = None,
        executor: ChunkExecutor | None = None,
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
        #: What the retry rounds wait for: the last whole request that failed, or the last 207
        #: that asked for a pause (what the retry hooks are told).
        self._wait_cause: BaseException | None = None
        self._phase = "main"
        self._pacer: CountingPacer | None = None
        self._console_seen: set[LogMessageCode] = set()
        self._storage: Storage | None = None
        self._root_storage: Storage | None = None
        self._index: ObjectIndex | None = None
        #: One listing of a non-local storage per run (resume checks), kept current with the
        #: objects this run writes.
        self._listing: dict[str, ListedObject] | None = None
        self._executor: ChunkExecutor = executor if executor is not None else LocalExecutor()
        #: Keys of the ids leased to the executor whose outcome has not come back.
        self._leased: dict[str, None] = {}
        #: The exporter's hooks (:class:`BaseExporter`: the SDK's own output).
        self.exporter = exporter if exporter is not None else BaseExporter()
        if not isinstance(self.exporter, BaseExporter):
            raise TypeError(
                f"exporter must be a BaseExporter, not {type(self.exporter).__name__}"
            )

    # -- folders and client ---------------------------------------------------------------------

    @property
    def target_dir(self) -> Path:
        """The local folder the item files are written to: ``<out_dir>/<target>``.

        Raises:
            ValueError: the output is a URL (use :attr:`storage`).
        """
        out = self.params.out_dir
        if not isinstance(out, Path):
            raise ValueError(f"the output {out!r} is not a local folder; see .storage")
        return out / self.params.target.value

    @property
    def root_storage(self) -> Storage:
        """The output, ``<out_dir>`` on its storage (where ``export_report.json`` goes)."""
        if self._root_storage is None:
            self._root_storage = open_storage(self.params.out_dir)
        return self._root_storage

    @property
    def storage(self) -> Storage:
        """Where the item files are written: ``<out_dir>/<target>`` on its storage."""
        if self._storage is None:
            self._storage = self.root_storage.child(self.params.target.value)
        return self._storage

    def default_job_dir(self) -> Path:
        """The ledger, job log and lock of this export: ``<state_dir>/<target>``, where the
        state folder is ``params.state_dir``, else ``<out_dir>/.synapse-export`` for a local
        folder, else a local folder derived from the URL
        (:func:`~synapse_sdk.storage.default_state_dir`)."""
        out = self.params.out_dir
        if self.params.state_dir is not None:
            state = self.params.state_dir
        elif isinstance(out, Path):
            state = out / JOB_FOLDER
        else:
            state = default_state_dir(out)
        return state / self.params.target.value

    def _build_v2_client(self) -> BackendV2Client:
        """A client on the action's sleep and clock whose rate-limited requests are paced (its
        transport's ``pacer`` option), the reports to the backend job included."""
        from synapse_sdk.clients.backend_v2 import BackendV2Client, rate_limited_paths

        self._pacer = self._executor.make_pacer(
            rate_limited_paths(self.job_id),  # the job's reports share the rate limit
            self.config.effective_retry_policy,
            clock=self._monotonic,
            on_rejection=self._rate_limited,
        )
        return BackendV2Client(
            config=self.config, sleep=self._sleep, clock=self._monotonic, pacer=self._pacer,
            response_mode=self.params.response_mode,
        )

    def _rate_limited(self, wait: float) -> None:
        """Tell the user the backend is limiting the rate (on the console once per run)."""
        self._note(ExportLogMessageCode.EXPORT_RATE_LIMITED_WAITING, seconds=round(wait, 2))

    def close(self) -> None:
        """Close what :class:`BaseAction` closes and the object index."""
        super().close()
        index, self._index = self._index, None
        if index is not None:
            index.close()

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
            JobMismatchError: the output was started with another ``filter`` (nothing is done).
            ValueError: no client was injected and ``config`` names no backend.
        """
        started = self._monotonic()
        self._counts = _Counters()
        self._transient_streak = 0
        self._whole_request_failed = False
        self._not_before = float("-inf")
        self._wait_cause = None
        self._console_seen = set()
        self._leased = {}
        self.exporter.target = self.params.target.value
        client = self.v2_client
        requests_before = client.stats.requests
        rejections_before = self._pacer.rejections if self._pacer is not None else 0
        # The lock first: a run refused it (another one owns the output, and maybe the same
        # job) leaves the backend job untouched instead of failing it under the other run.
        with self._job_lock(), self.reporting() as job:
            with self.step("initialize"):  # a ledger that cannot be opened fails the step
                mismatch = self._selection_mismatch()
            if mismatch is not None:
                raise mismatch
            with self.step("initialize"):
                self._initialize()
                self._counts.carried_until = self._newest_pending()
            self._executor.start(self)
            try:
                self._phase = "main"
                if self._main_pass() == 0:
                    self.log_message(ExportLogMessageCode.EXPORT_NO_RESULTS)
                self._phase = "retry"
                self._drain()
            finally:
                self._executor.close()
            with self.step("finalize"):
                # Aggregate files and the report are whole rewrites: a throttled or failed
                # write is retried under the configured policy.
                retrying = Retrying(
                    self.config.retry_policy, sleep=self._sleep, clock=self._monotonic,
                    name="export finalize",
                )
                retrying.call(self.exporter.additional_file_saving, ExportOutput(self.storage))
                summary = self._summarize(started, requests_before, rejections_before)
                retrying.call(self._write_report, summary)
                self._phase = "done"
                self._report_progress()  # the last progress comes before the closing messages
                self._report(summary)
                if job is not None:
                    job.set_result(summary.as_dict())
                return summary

    def _selection_mismatch(self) -> JobMismatchError | None:
        """Record the run's filter in a new job; the error to raise when it differs from the
        filter the job recorded (a job from before filters existed was unfiltered)."""
        given = self.params.selection
        recorded = self.ledger.setting(_FILTER_SETTING)
        if recorded is None and self.ledger.summary().total:
            recorded = "{}"
        if recorded is None:
            self.ledger.record_setting(_FILTER_SETTING, given)
        elif recorded != given:
            before, now = json.loads(recorded), json.loads(given)
            return JobMismatchError(
                f"{redact_url(str(self.params.out_dir))!r} ({self.params.target.value}) was "
                f"started with filter {JobMismatchError.shown(before) or '(none)'}, not "
                f"{JobMismatchError.shown(now) or '(none)'}: rerun "
                "with the same filter to resume, or export to another folder",
                before, now,
            )
        return None

    def _initialize(self) -> None:
        self.root_storage.prepare()  # also removes a killed report write's temporary
        storage = self.storage
        storage.prepare()
        if not storage.is_local:
            if self._index is None:
                self._index = ObjectIndex(self.job_dir)
            # One listing: a missing bucket or refused credentials stop the run here, early.
            self._listing = storage.listing()
        self.log_message(ExportLogMessageCode.EXPORT_INITIALIZED)
        self.log_message(ExportLogMessageCode.EXPORT_TARGET, target=self.params.target.value)
        self.ledger.start_run()  # this run's retry rounds are its own
        before = self.ledger.summary()
        if before.total:
            repaired = self._requeue_damaged()
            self.log_message(
                ExportLogMessageCode.EXPORT_RESUMED,
                skipped=before.exported - repaired,
                repaired=repaired,
            )

    def _requeue_damaged(self) -> int:
        """Check the files of every item an earlier run exported and put those that do not match
        back in the retry queue; returns how many. On local disk each item's files are read
        (:meth:`_files_match`); elsewhere the run's one listing is compared with the object
        index (sizes and checksums), with no request per item."""
        repaired = 0
        batch: list[ItemId] = []
        for record in self.ledger.iter_exported():
            batch.append(record.id)
            if len(batch) >= _MARK_EVERY:
                repaired += self._requeue_unmatched(batch)
                batch = []
        return repaired + self._requeue_unmatched(batch)

    def _requeue_unmatched(self, ids: list[ItemId]) -> int:
        if not ids:
            return 0
        if self._index is not None and self._listing is not None:
            present = self._index.present(ids, self._listing)
            damaged = [i for i in ids if i not in present]
        else:
            damaged = [i for i in ids if not self._files_match(i)]
        self._counts.repairing.extend(damaged)  # the report names those exported again
        return self.ledger.requeue(damaged, _CODE_DAMAGED)

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
            yield from chunked(unique_ids(self.params.ids), self.params.page_size)
            return
        with self.step("fetch"):
            listing = self._resource().iter(
                limit=self.params.page_size, filters=self.params.filter
            )
        pages = chunked(map(self._listed_id, listing), self.params.page_size)
        while True:
            with self.step("fetch"):
                page = next(pages, None)
            if page is None:
                return
            yield page

    def _listed_id(self, item: Mapping[str, Any]) -> ItemId:
        """A listed item's id, checked where the listing is read (inside the fetch step).

        Raises:
            BackendError: ``malformed_response``; the id is missing or not an int or str
                (``null``, ``2.5``, ``true``): the listing breaks the API's shape.
        """
        item_id = item.get("id")
        if isinstance(item_id, bool) or not isinstance(item_id, int | str):
            raise BackendError(
                f"the {self.params.target.value} listing holds an item without a usable id "
                f"({type(item_id).__name__})",
                error_code="malformed_response",
            )
        return item_id

    def _resource(self) -> Any:
        return getattr(self.v2_client, self.params.target.attribute)

    # -- chunks: leased to the executor, marked from their outcomes ----------------------------

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
        while self._executor.in_flight:
            self._settle_next()
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
        taken = {item_key(i) for i in chunk}
        while len(chunk) < size and fresh:
            candidates = [fresh.popleft() for _ in range(min(size - len(chunk), len(fresh)))]
            chunk.extend(i for i in self._select(candidates) if item_key(i) not in taken)
            taken.update(item_key(i) for i in chunk)
        self._counts.retried += len(retry)
        if chunk:
            self._lease(chunk)

    def _retry_records(self, limit: int) -> list[LedgerRecord]:
        if self._monotonic() < self._not_before:
            return []  # the backend asked for a pause before failed items are asked again
        return self._oldest_pending(limit)

    def _oldest_pending(self, limit: int) -> list[LedgerRecord]:
        """Up to ``limit`` ids waiting for a retry, oldest first, leaving out those leased."""
        leased = self._leased
        records = self.ledger.oldest_pending(
            limit + len(leased), max_attempts=self.params.retry_rounds
        )
        return [r for r in records if item_key(r.id) not in leased][:limit]

    def _lease(self, chunk: list[ItemId]) -> None:
        """Hand ``chunk`` to the executor; while it is full, mark the outcomes coming back
        (the local executor: at once, so the next chunk sees this one's retries)."""
        self._leased.update(dict.fromkeys(item_key(i) for i in chunk))
        self._executor.submit(chunk)
        while self._executor.in_flight >= self._executor.capacity:
            self._settle_next()

    def _drain(self) -> None:
        """After the main pass: fetch what still waits for a retry; what is still pending at
        the end is marked failed with its code.

        The pause before a round is :func:`~synapse_sdk.retry.decide_wait`'s under
        :meth:`_drain_policy`: the pause the backend asked for (a 207's ``retry_after``)
        exactly; else, after failures of whole requests, a backoff from ``retry_delay``
        (doubling, capped at the policy's ``backoff_max``); else none. When the policy refuses
        the pause (a ``retry_after`` above ``retry_after_max``, an empty retry budget) the
        drain stops at once. Each decision is told to the client's retry hooks
        (:func:`~synapse_sdk.retry.notify_wait`, ``call_name="export.retry_round"``) with
        what caused it: the whole request that failed, or the 207 that asked for the pause.
        """
        policy = self._drain_policy()
        failures = 0
        previous: float | None = None
        while True:
            records = self._oldest_pending(self.params.batch_size)
            if not records:
                if not self._executor.in_flight:
                    break
                self._settle_next()  # its retries may start another round
                continue
            hint = self._not_before - self._monotonic()
            wait = 0.0
            if hint > 0 or self._whole_request_failed:
                if self._whole_request_failed:
                    failures += 1
                decision = decide_wait(
                    policy, max(failures, 1), hint=hint if hint > 0 else None, previous=previous
                )
                if self._wait_cause is not None:
                    notify_wait(
                        decision, attempt=max(failures, 1), max_attempts=self.params.retry_rounds,
                        error=self._wait_cause, call_name="export.retry_round",
                        hooks=self.v2_client.config.retry_hooks,
                    )
                if decision.surface:
                    break
                wait = previous = decision.seconds
            if self._counts.rounds == 0 or self._whole_request_failed:
                pending = self.ledger.summary().pending
                self.log_message(ExportLogMessageCode.EXPORT_RETRYING_FAILED_ITEMS, count=pending)
            self._whole_request_failed = False
            if wait > 0:
                self._sleep(wait)
            self._counts.rounds += 1
            self._counts.retried += len(records)
            self._lease([record.id for record in records])
        self.ledger.fail_pending()

    def _drain_policy(self) -> RetryPolicy:
        """The client's retry policy with the drain's own backoff base (``retry_delay``); its
        rounds are bounded by the ledger (``retry_rounds`` fetches per item), not by
        ``max_attempts``, a per-call deadline does not apply, and the copy has a retry budget
        of its own (the same capacity), so the drain cannot starve the client's calls."""
        return self.v2_client.config.effective_retry_policy.replace(
            backoff_base=self.params.retry_delay, max_attempts=sys.maxsize, deadline=None
        )

    def _select(self, ids: list[ItemId]) -> list[ItemId]:
        """Drop ids already exported (ledger and files agree); fail ids unusable as names."""
        safe: list[ItemId] = []
        unsafe: dict[ItemId, str | None] = {}
        for item_id in unique_ids(ids):
            try:
                item_filename(item_id, "json")
            except UnsafeItemIdError:
                unsafe[item_id] = _CODE_UNSAFE_ID
            else:
                safe.append(item_id)
        for item_id in self._name_clashes(safe):
            unsafe[item_id] = _CODE_UNSAFE_ID
        if unsafe:
            self.ledger.mark_failed_codes(unsafe)
            safe = [i for i in safe if i not in unsafe]
        done = self.ledger.exported_among(safe)
        todo: list[ItemId] = []
        ahead = self._counts.taken_ahead
        leased = self._leased
        for item_id in safe:
            if item_key(item_id) in leased:  # listed twice: its first chunk is still out
                continue
            exported_by_this_run = item_id in ahead
            ahead.discard(item_id)
            if item_id in done:  # its files were checked when the run began
                if not exported_by_this_run:
                    self._counts.skipped += 1
            else:
                todo.append(item_id)
        return todo

    def _name_clashes(self, ids: list[ItemId]) -> set[ItemId]:
        """The ids whose files would be another item's where case or Unicode normalisation is
        ignored (Windows, macOS): the ledger gives each name to the first id that claims it.
        Integer ids cannot clash (their twin ``"5"`` is the same item)."""
        return self.ledger.claim_names({i: name_key(i) for i in ids if isinstance(i, str)})

    def _files_match(self, item_id: ItemId) -> bool:
        """Whether an exported item's files are whole, cheaply: its JSON record parses and names
        the item, and the original file it describes exists with the recorded size (checked
        first) and SHA-256 (where the record has one)."""
        try:
            record = json.loads((self.target_dir / item_filename(item_id, "json")).read_bytes())
        except (OSError, ValueError, UnsafeItemIdError, TypeError):
            return False
        if not isinstance(record, dict) or record.get("id") != item_id or "original" not in record:
            return False
        original = record["original"]
        if original is None or not self.params.originals:
            return True
        name = original.get("file") if isinstance(original, dict) else None
        if not isinstance(name, str) or not name or Path(name).name != name or name[0] == ".":
            return False
        path = self.target_dir / name
        try:
            if not path.is_file():
                return False
            size, sha256 = original.get("size"), original.get("sha256")
            if isinstance(size, int) and path.stat().st_size != size:
                return False
            if not isinstance(sha256, str):
                return True
            with path.open("rb") as file:
                return hashlib.file_digest(file, "sha256").hexdigest() == sha256.lower()
        except OSError:
            return False

    # -- outcomes -------------------------------------------------------------------------------

    def emit(self, code: LogMessageCode, quiet: bool | None, params: dict[str, Any]) -> None:
        """Log a message of a chunk's processing (:data:`~.chunks.Emit`): ``quiet`` None puts
        it on the console once per run."""
        if quiet is None:
            self._note(code, **params)
        else:
            self.log_message(code, quiet=quiet, **params)

    def _settle_next(self) -> None:
        """Take the next outcome from the executor and record it: the ledger marks, the
        transient streak, the pause the backend asked for, and the progress."""
        chunk, outcome = self._executor.next_outcome()
        for item_id in chunk:
            self._leased.pop(item_key(item_id), None)
        self._counts.remote_requests += outcome.requests
        self._counts.remote_rejections += outcome.rate_limited
        if outcome.transient is not None:
            with self.step("fetch"):
                self._transient(outcome.transient, len(outcome.retry))
        elif outcome.answered:
            self._transient_streak = 0
            if outcome.retry_after is not None:
                self._not_before = self._monotonic() + outcome.retry_after
                if outcome.retry:  # what the retry hooks are told the rounds wait for
                    from synapse_sdk.clients.backend_v2 import retry_round_error

                    self._wait_cause = retry_round_error(
                        f"export of {self.params.target.value}", outcome.retry
                    )
        exported = list(outcome.exported)
        for start in range(0, len(exported), _MARK_EVERY):
            self.mark_saved({i: outcome.exported[i] for i in exported[start : start + _MARK_EVERY]})
        self._settle(chunk, [*outcome.marked, *exported], outcome)
        self._report_progress()

    def _transient(self, exc: SynapError, count: int) -> None:
        """A transient error outlasted the client's retries: every id of the chunk is retried
        later. After ``_MAX_TRANSIENT_STREAK`` such chunks in a row the backend is taken to be
        down and the error is raised (the fetch step fails; a rerun resumes)."""
        self._transient_streak += 1
        if self._transient_streak >= _MAX_TRANSIENT_STREAK:
            raise exc
        code = getattr(exc, "error_code", None) or exc.code
        self._whole_request_failed = True
        self._wait_cause = exc
        # Handled, not failed: the ids ride along with the next request.
        self._note(ExportLogMessageCode.EXPORT_REQUEST_RETRYING, count=count, reason=code)

    def mark_saved(self, written: dict[ItemId, list[StoredObject]]) -> None:
        """Mark the items of ``written`` exported (one transaction; their files are written
        and synced); on a non-local storage, what each wrote is put in the object index first,
        so a kill between the two redoes the item."""
        if written:
            ids = list(written)
            if self._index is not None:
                self._index.put(written)
            if self._listing is not None:
                for objects in written.values():
                    for obj in objects:
                        self._listing[obj.name] = ListedObject(obj.size, obj.md5)
            self.ledger.mark_exported(ids)
            self._counts.exported += len(ids)

    def _settle(self, chunk: list[ItemId], saved: list[ItemId], outcome: ChunkOutcome) -> None:
        """Record the rest of the chunk's outcome in the ledger: enqueued for retry, failed.

        An id asked for that ended nowhere (an answer naming another id: ``"7"`` for ``7`` is
        the same item) is enqueued as ``missing_from_response``: every id asked for ends
        somewhere, so every retry counts an attempt and the retries end.
        """
        settled = {item_key(i) for i in (*saved, *outcome.retry, *outcome.failed)}
        for item_id in chunk:
            if item_key(item_id) not in settled:
                outcome.retry[item_id] = _CODE_MISSING
        by_code: dict[str | None, list[ItemId]] = {}
        for item_id, code in outcome.retry.items():
            by_code.setdefault(code, []).append(item_id)
        for code, ids in by_code.items():
            self._enqueue_retry(ids, code=code)
        if outcome.failed:
            self.ledger.mark_failed_codes(outcome.failed)

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
            out_dir=redact_url(str(self.params.out_dir)),
            exported=self._counts.exported,
            skipped=self._counts.skipped,
            repaired=len(self._repaired()),
            failed=ledger.failed,
            failed_by_code=by_code,
            failed_by_message=by_message,
            failed_items=[
                {"id": record.id, "code": record.code}
                for record in itertools.islice(self.ledger.iter_failed(), _ITEMS_SHOWN)
            ],
            retried=self._counts.retried,
            retry_rounds=self._counts.rounds,
            requests=self.v2_client.stats.requests - requests_before
            + self._counts.remote_requests,
            rate_limited=(self._pacer.rejections if self._pacer is not None else 0)
            - rejections_before + self._counts.remote_rejections,
            duration=self._monotonic() - started,
            executor=self._executor.name,
            workers=self._executor.workers,
        )

    def _write_report(self, summary: ExportSummary) -> None:
        """Write ``export_report.json`` at the root of the output (atomically)."""
        report = build_report(
            summary.as_dict(),
            self.ledger.iter_failed(),
            self._repaired(),
            lambda code: str(_item_message(code).value),
        )
        self.root_storage.write(REPORT_NAME, report_bytes(report))

    def _repaired(self) -> list[ItemId]:
        """The ids this run repaired: found damaged, and exported again by now."""
        candidates = dict.fromkeys(self._counts.repairing)
        exported = self.ledger.exported_among(candidates)
        return [item_id for item_id in candidates if item_id in exported]

    def _report(self, summary: ExportSummary) -> None:
        """Log each failed code with its count, the first failed items, and the outcome."""
        record_export(summary.exported, summary.failed_by_code)
        self.report_metrics(_JOB_STEP, failed_by_code=summary.failed_by_code)
        if summary.failed:
            for code, count in summary.failed_by_code.items():
                self.log_message(_item_message(code), count=count, code=code)
            for item in summary.failed_items:
                self.log_message(
                    ExportLogMessageCode.EXPORT_ITEM_FAILED, item_id=item["id"], code=item["code"]
                )
            self.log_message(
                ExportLogMessageCode.EXPORT_COMPLETED_WITH_FAILURES,
                exported=summary.exported + summary.skipped,
                failed=summary.failed,
            )
        else:
            self.log_message(ExportLogMessageCode.EXPORT_COMPLETED)

    def _report_progress(self) -> None:
        """Tell ``on_progress`` and the backend job (progress and metrics) where the export
        stands."""
        if self._on_progress is None and self.job_id is None:
            return
        ledger = self.ledger.summary()
        progress = ExportProgress(
            phase=self._phase,
            exported=self._counts.exported,
            skipped=self._counts.skipped,
            failed=ledger.failed,
            pending=ledger.pending,
            total=len(self.params.ids) if self.params.ids is not None else (
                # Listing over: every item of the run is settled or waits in the ledger.
                None if self._phase == "main" else self._counts.exported + self._counts.skipped
                + ledger.failed + ledger.pending
            ),
        )
        if self._on_progress is not None:
            self._on_progress(progress)
        if self.job_id is not None:
            counts = {"exported": progress.exported, "skipped": progress.skipped,
                      "failed": progress.failed}
            self.report_progress(
                _JOB_STEP, percent=progress.percent, phase=progress.phase,
                pending=progress.pending, **counts,
            )
            self.report_metrics(_JOB_STEP, **counts)

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
                    f"another export is running over {redact_url(str(self.params.out_dir))!r} "
                    f"({self.params.target.value}); wait for it or choose another folder"
                ) from None
            yield
        finally:
            os.close(fd)


def _item_message(code: str) -> LogMessageCode:
    """The export message code reporting items that ended failed with the per-item ``code``
    (an exporter hook's failure is recorded with the export code itself)."""
    known = _ITEM_CODE_MESSAGES.get(code)
    if known is not None:
        return known
    if code in ExportLogMessageCode.__members__:
        return ExportLogMessageCode[code]
    return classify_export_error(message=code) or ExportLogMessageCode.EXPORT_FAILED
