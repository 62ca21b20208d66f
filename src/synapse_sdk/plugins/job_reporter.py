"""``JobReporter``: an action's progress, coded messages, metrics and final status, sent to the
backend job it runs as.

When the platform runs an action as a job it gives the job's id (``synapse export --job-id`` or
the environment variable :data:`JOB_ID_ENV`); :class:`~synapse_sdk.plugins.action.BaseAction`
then hands every event to a reporter, which sends, through the client's transport and its
retries:

* **messages** — each ``log_message`` as one entry of ``POST /v2/jobs/{id}/logs/bulk/``:
  ``event="message"``, the code's ``level``, the ``step`` it was logged in, its ``datetime`` and
  ``data = {"key": code, "content": English text, "params": params}``, so the backend can render
  the code in the reader's language (the params went through the action's secret redaction);
* **progress and metrics** — coalesced snapshots (only the newest is sent) in
  ``PATCH /v2/jobs/{id}/`` as ``progress_record = {"record": {"steps": {step: {...}}},
  "current_progress": {"step": step, ...}}`` and ``metrics_record = {"record": {"steps":
  {step: {...}}}}`` (the published SDK's shapes);
* **status** — ``RUNNING`` at the start; ``SUCCEEDED``, ``FAILED`` or ``STOPPED`` at the end,
  with the last progress, metrics and the action's ``result`` in the same ``PATCH``.

Batched and throttled on an injectable clock: messages are sent once ``batch_size`` are waiting
or ``flush_interval`` seconds passed since the last send, snapshots at most once per
``progress_interval``; both are checked on each event (nothing runs in the background).
Reporting takes at most ``max_share`` of the run's time: a send that took d seconds (pacing,
latency, retries) puts the next one off by ``(1 - max_share) / max_share * d``.

Reporting never fails the action; the local job log stays the source of truth. A transient
failure (outage, rate limit, unreachable host) keeps the messages buffered and pauses sending
(doubling from 2 s up to ``backoff_max``, or the server's Retry-After up to it; decided by
:func:`~synapse_sdk.retry.decide_wait`); the buffer holds at most ``max_buffer`` messages, the
oldest dropped beyond that (counted, one warning). A batch whose outcome is unknown (the request
went out, no answer) is not sent again: log creation is not idempotent. An answer saying the job
or the credentials are wrong (401, 403, 404) turns reporting off; another refusal drops what it
refused. The final flush and status are best effort within ``final_deadline`` seconds (messages
logged meanwhile, a rate-limit note say, go in it too). Warnings go to stdlib logging (logger
``synapse_sdk.plugins.job_reporter``), never to the job itself.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from synapse_sdk.config import RetryPolicy
from synapse_sdk.exceptions import SynapError, SynapTransientError
from synapse_sdk.retry import Retrying, decide_wait, remaining_time

__all__ = [
    "FAILED",
    "JOB_ID_ENV",
    "RUNNING",
    "STOPPED",
    "SUCCEEDED",
    "JobReporter",
    "JobReporterStats",
    "job_id_from_env",
]

logger = logging.getLogger("synapse_sdk.plugins.job_reporter")

#: The environment variable the platform sets to the id of the job an action runs as (the
#: published SDK's name). ``RAY_JOB_ID`` is not read: Ray sets it to ids of its own.
JOB_ID_ENV: Final = "SYNAPSE_JOB_ID"

#: Job statuses the reporter sends (``PATCH /v2/jobs/{id}/``'s ``status``).
RUNNING: Final = "RUNNING"
SUCCEEDED: Final = "SUCCEEDED"
FAILED: Final = "FAILED"
STOPPED: Final = "STOPPED"
_FINAL_STATUSES: Final = frozenset({SUCCEEDED, FAILED, STOPPED})

#: Statuses of an answer saying reporting to this job cannot work at all.
_HOPELESS: Final = frozenset({401, 403, 404})
_BACKOFF_FIRST: Final = 2.0
_STEP_MAX: Final = 255  # the backend's limit on a log entry's step

EVENT_FAILED: Final = "synapse_sdk.job_report.failed"
EVENT_DROPPED: Final = "synapse_sdk.job_report.dropped"
EVENT_DISABLED: Final = "synapse_sdk.job_report.disabled"
EVENT_UNSENT: Final = "synapse_sdk.job_report.unsent"


class JobRoutes(Protocol):
    """What the reporter needs of a client's job routes (``BackendV2Client.jobs``)."""

    def update(self, job_id: str, **fields: Any) -> Any:
        """``PATCH /v2/jobs/{id}/``."""

    def create_logs(self, job_id: str, entries: Sequence[dict[str, Any]]) -> Any:
        """``POST /v2/jobs/{id}/logs/bulk/``."""


def job_id_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The job id the platform set in :data:`JOB_ID_ENV` (stripped), or None when unset or
    blank."""
    value = (os.environ if environ is None else environ).get(JOB_ID_ENV, "").strip()
    return value or None


@dataclass(frozen=True, slots=True)
class JobReporterStats:
    """What a reporter did so far.

    ``sent`` messages stored by the backend in ``log_requests`` requests; ``patches`` job
    updates accepted; ``buffered`` messages waiting; ``dropped`` messages given up (buffer full,
    refused, reporting turned off or still unsent when the final flush ended); ``unconfirmed``
    messages whose request went out without an answer (not sent again); ``failures`` failed
    requests.
    """

    sent: int
    log_requests: int
    patches: int
    buffered: int
    dropped: int
    unconfirmed: int
    failures: int


class JobReporter:
    """Reports one action run to backend job ``job_id`` through ``jobs`` (a client's job
    routes); see the module docstring. Thread-safe: events may come from worker threads; one
    thread sends at a time, the others only buffer.

    Raises:
        ValueError: ``job_id`` is blank, or a size or interval is not positive.
    """

    def __init__(
        self,
        jobs: JobRoutes,
        job_id: str,
        *,
        batch_size: int = 200,
        flush_interval: float = 2.0,
        progress_interval: float = 1.0,
        max_buffer: int = 2000,
        backoff_max: float = 60.0,
        final_deadline: float = 10.0,
        max_share: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(job_id, str) or not job_id.strip():
            raise ValueError("job_id must be a job's id (a UUID)")
        if not 1 <= batch_size <= 1000 or max_buffer < batch_size:
            raise ValueError("batch_size must be 1..1000 and max_buffer at least batch_size")
        if min(flush_interval, progress_interval, backoff_max, final_deadline) <= 0:
            raise ValueError("intervals and deadlines must be positive")
        if not 0 < max_share <= 1:
            raise ValueError("max_share must be above 0 and at most 1")
        # After a send that took d seconds, the next waits (1 - share) / share * d more.
        self._quiet_factor = (1 - max_share) / max_share
        self.job_id = job_id.strip()
        self._jobs = jobs
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._progress_interval = progress_interval
        self._max_buffer = max_buffer
        #: The pause after transient failures in a row, decided by the one wait decision on a
        #: policy that never gives up: 2 s doubling up to ``backoff_max`` (no jitter: one
        #: reporter per run), a Retry-After up to ``backoff_max``.
        self._pause_policy = RetryPolicy(
            max_attempts=sys.maxsize, backoff_base=_BACKOFF_FIRST, backoff_max=backoff_max,
            jitter="none", retry_after_max=backoff_max, budget_capacity=None,
        )
        self._final_deadline = final_deadline
        self._clock = clock
        self._state = threading.Lock()  # guards everything below
        self._sending = threading.Lock()  # held by the one thread sending
        self._buffer: deque[dict[str, Any]] = deque()
        self._steps: dict[str, dict[str, Any]] = {}
        self._current: str | None = None
        self._metrics: dict[str, dict[str, Any]] = {}
        self._snapshot_due = False  # progress or metrics changed since the last PATCH
        self._result: Any = None
        started = clock()
        self._last_logs = started
        self._last_patch = started - progress_interval  # the first snapshot goes at once
        self._resume_at = float("-inf")
        self._streak = 0  # transient failures in a row
        self._disabled = False
        #: finish() was called / its final flush is over (messages after that are dropped).
        self._finished = self._closed = False
        #: start() was called / the backend accepted RUNNING (a job must run before it ends).
        self._starting = self._running = False
        self._warned: set[str] = set()
        self._sent = self._log_requests = self._patches = 0
        self._dropped = self._unconfirmed = self._failures = 0

    def __repr__(self) -> str:
        return f"JobReporter(job_id={self.job_id!r})"

    @property
    def stats(self) -> JobReporterStats:
        """A snapshot of what was sent, dropped and is still waiting."""
        with self._state:
            return JobReporterStats(
                self._sent, self._log_requests, self._patches, len(self._buffer),
                self._dropped, self._unconfirmed, self._failures,
            )

    # -- what the action reports ----------------------------------------------------------------

    def start(self) -> None:
        """Tell the job it is ``RUNNING`` (sent at once; after a failure, it goes again with the
        next update, and before the final status at the latest)."""
        with self._state:
            self._starting = True
        with self._sending:
            self._patch({"status": RUNNING})

    def message(
        self, code: str, level: str, params: Mapping[str, Any], text: str, ts: float,
        step: str = "",
    ) -> None:
        """Queue one coded message (``text``: its English rendering; ``ts``: epoch seconds) and
        send what is due."""
        entry = {
            "event": "message",
            "data": {"key": code, "content": text, "params": dict(params)},
            "datetime": datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z"),
            "step": step[:_STEP_MAX],
            "level": level,
        }
        with self._state:
            if self._disabled or self._closed:
                self._dropped += 1  # reporting is off or over: it never reaches the job
                return
            # During the final flush too (a rate-limit note on its requests): it goes with it.
            self._buffer.append(entry)
            self._trim()
        self._send_due()

    def progress(self, step: str, *, percent: float | None = None, **fields: Any) -> None:
        """Record ``step``'s progress (``percent`` 0-100 when known, counts as ``fields``) as the
        current one; the newest snapshot is sent when due."""
        update = dict(fields) if percent is None else {**fields, "percent": percent}
        with self._state:
            self._steps.setdefault(step, {}).update(update)
            self._current = step
            self._snapshot_due = True
        self._send_due()

    def step_status(self, step: str, status: str) -> None:
        """Record where ``step`` stands (``running``, ``done``, ``failed``) in the progress
        record, leaving the current progress on the step that reported it last (or on this
        one, when none did yet); sent when due."""
        with self._state:
            self._steps.setdefault(step, {})["status"] = status
            if self._current is None:
                self._current = step
            self._snapshot_due = True
        self._send_due()

    def metrics(self, step: str, **values: Any) -> None:
        """Record ``step``'s metrics (counts; the newest value of each wins); sent when due."""
        with self._state:
            self._metrics.setdefault(step, {}).update(values)
            self._snapshot_due = True
        self._send_due()

    def set_result(self, result: Any) -> None:
        """What :meth:`finish` sends as the job's ``result`` (JSON-ready)."""
        with self._state:
            self._result = result

    def finish(self, status: str) -> None:
        """Send every buffered message, then ``status`` with the last progress, metrics and
        result, within ``final_deadline`` seconds; what is still unsent then is counted dropped
        and warned about once. Messages logged while this runs (a rate-limit note on one of
        its requests) go with it, after the status when they came during it. Only the first
        call does anything.

        Raises:
            ValueError: ``status`` is not ``SUCCEEDED``, ``FAILED`` or ``STOPPED``.
        """
        if status not in _FINAL_STATUSES:
            raise ValueError(f"status must be one of {sorted(_FINAL_STATUSES)}, not {status!r}")
        with self._state:
            if self._finished:
                return
            self._finished = True
            if status == SUCCEEDED and self._current is not None:
                self._steps[self._current]["percent"] = 100
        bound = RetryPolicy(max_attempts=1, deadline=self._final_deadline, budget_capacity=None)
        with self._sending:
            Retrying(bound, clock=self._clock, name="job report").call(self._final, status)
            with self._state:
                self._closed = True
                unsent, self._dropped = len(self._buffer), self._dropped + len(self._buffer)
                self._buffer.clear()
        if unsent:
            self._warn_once(EVENT_UNSENT, count=unsent)

    # -- sending --------------------------------------------------------------------------------

    def _final(self, status: str) -> None:
        if self._disabled:
            return
        self._flush_buffer()
        if self._starting and not self._running and self._time_left():
            self._patch({"status": RUNNING})  # a PENDING job cannot succeed: run it first
        if self._time_left():
            self._patch({**self._snapshot_fields(), "status": status})
        self._flush_buffer()  # what was logged while the status went

    def _flush_buffer(self) -> None:
        """Send batches while messages wait (those logged meanwhile too), until one fails or
        the final deadline passed."""
        while self._buffer and self._time_left() and not self._disabled:
            if not self._send_batch():
                return

    @staticmethod
    def _time_left() -> bool:
        left = remaining_time()
        return left is None or left > 0

    def _send_due(self) -> None:
        """Send the messages and the snapshot that are due, unless another thread is sending
        or a failure paused sending."""
        now = self._clock()
        with self._state:
            if self._disabled or self._finished or now < self._resume_at:
                return
            logs_due = len(self._buffer) >= self._batch_size or (
                bool(self._buffer) and now - self._last_logs >= self._flush_interval
            )
            patch_due = self._snapshot_due and now - self._last_patch >= self._progress_interval
        if not (logs_due or patch_due) or not self._sending.acquire(blocking=False):
            return
        try:
            self._send_now(now, logs_due, patch_due)
            # Reporting takes at most max_share of the run's time: a send slowed down by the
            # rate limit's pacing, latency or retries puts the next one off for longer.
            took = self._clock() - now
            with self._state:
                self._resume_at = max(self._resume_at, now + took + took * self._quiet_factor)
        finally:
            self._sending.release()

    def _send_now(self, now: float, logs_due: bool, patch_due: bool) -> None:
        """Send the due messages (full batches while there are) and the due snapshot."""
        if logs_due:
            self._last_logs = now
            while self._buffer and self._send_batch() and len(self._buffer) >= self._batch_size:
                pass
        if patch_due and now >= self._resume_at and not self._disabled:
            self._last_patch = now
            self._patch(self._snapshot_fields())

    def _send_batch(self) -> bool:
        """Send the oldest ``batch_size`` messages; True when they were stored."""
        with self._state:
            size = min(self._batch_size, len(self._buffer))
            batch = [self._buffer.popleft() for _ in range(size)]
        try:
            self._jobs.create_logs(self.job_id, batch)
        except Exception as exc:
            if isinstance(exc, SynapTransientError) and not getattr(exc, "outcome_unknown", False):
                with self._state:  # not stored: back to the front, oldest first
                    self._buffer.extendleft(reversed(batch))
                    self._trim()
            elif isinstance(exc, SynapTransientError):
                with self._state:
                    self._unconfirmed += len(batch)
            else:
                with self._state:
                    self._dropped += len(batch)
            self._failed(exc, "logs")
            return False
        with self._state:
            self._sent += len(batch)
            self._log_requests += 1
            self._streak = 0
        return True

    def _patch(self, fields: dict[str, Any]) -> None:
        if not fields or self._disabled:
            return
        try:
            self._jobs.update(self.job_id, **fields)
            if fields.get("status") == RUNNING:
                self._running = True
        except Exception as exc:
            if isinstance(exc, SynapTransientError):
                with self._state:
                    self._snapshot_due = True  # the newest snapshot goes with the next one
            self._failed(exc, "update")
            return
        with self._state:
            self._patches += 1
            self._streak = 0

    def _snapshot_fields(self) -> dict[str, Any]:
        """The newest progress and metrics as ``PATCH`` fields (and the result, once set)."""
        with self._state:
            fields: dict[str, Any] = {}
            if self._current is not None:
                steps = {name: dict(values) for name, values in self._steps.items()}
                fields["progress_record"] = {
                    "record": {"steps": steps},
                    "current_progress": {"step": self._current, **steps[self._current]},
                }
            if self._metrics:
                metrics = {name: dict(values) for name, values in self._metrics.items()}
                fields["metrics_record"] = {"record": {"steps": metrics}}
            if self._result is not None:
                fields["result"] = self._result
            if self._starting and not self._running:
                fields["status"] = RUNNING  # the start did not get through: again
            self._snapshot_due = False
            return fields

    def _trim(self) -> None:
        """Drop the oldest messages beyond ``max_buffer`` (caller holds the state lock)."""
        over = len(self._buffer) - self._max_buffer
        if over <= 0:
            return
        for _ in range(over):
            self._buffer.popleft()
        self._dropped += over
        if EVENT_DROPPED not in self._warned:
            self._warned.add(EVENT_DROPPED)
            logger.warning(
                EVENT_DROPPED,
                extra={"event": EVENT_DROPPED, "job_id": self.job_id, "cap": self._max_buffer},
            )

    def _failed(self, exc: BaseException, what: str) -> None:
        """A request failed: pause sending after a transient error; turn reporting off when the
        job or the credentials are refused."""
        status = getattr(exc, "status_code", None)
        with self._state:
            self._failures += 1
            if isinstance(exc, SynapTransientError):
                self._streak += 1
                decision = decide_wait(self._pause_policy, self._streak, error=exc, charge=False)
                # A hint above backoff_max (or an error the policy does not retry) pauses the
                # longest; reporting itself never gives up on a transient failure.
                pause = self._pause_policy.backoff_max if decision.surface else decision.seconds
                self._resume_at = self._clock() + pause
            # Not the SDK's own error (a bad job id, a bug): trying again cannot help either.
            hopeless = status in _HOPELESS or not isinstance(exc, SynapError)
            if hopeless and not self._disabled:
                self._disabled = True
                self._dropped += len(self._buffer)
                self._buffer.clear()
        event = EVENT_DISABLED if hopeless else EVENT_FAILED
        self._warn_once(
            event, request=what, status_code=status, error_type=type(exc).__name__,
            error_code=getattr(exc, "error_code", None) or getattr(exc, "code", None),
        )

    def _warn_once(self, event: str, **fields: Any) -> None:
        with self._state:
            if event in self._warned:
                return
            self._warned.add(event)
        logger.warning(event, extra={"event": event, "job_id": self.job_id, **fields})
