"""The backend emulator's job area: ``PATCH /v2/jobs/{id}/`` and the job logs, as the v2 API has
them (``JobV2Detail``, the status transitions, atomic bulk logs of at most 1000 entries).

Jobs exist only when a test makes one (:meth:`Jobs.create`, ``Emulator.create_job``); the
export reports its progress, status and logs to them.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

__all__ = ["JOB_STATUSES", "LOG_LEVELS", "MAX_BULK_LOGS", "Jobs", "job_routes"]

JOB_STATUSES = ("PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED")
LOG_LEVELS = ("debug", "info", "success", "warning", "danger", "error", "critical")
#: Most log entries one bulk request may carry (``BULK_SIZE_EXCEEDED`` above).
MAX_BULK_LOGS = 1000
_TERMINAL = frozenset({"STOPPED", "SUCCEEDED", "FAILED"})
#: Where a job may go from each non-terminal status (a terminal status may only repeat itself).
_ALLOWED = {
    "PENDING": {"RUNNING", "STOPPED", "FAILED"},
    "RUNNING": {"SUCCEEDED", "FAILED", "STOPPED"},
}
_PATCHABLE = ("status", "progress_record", "metrics_record", "meta", "result")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Invalid(ValueError):
    """A request the job area refuses: ``(code, message, details)``."""

    def __init__(self, code: str, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


def _field_error(field: str, message: str, **extra: Any) -> _Invalid:
    code = "INVALID_TRANSITION" if "current_status" in extra else "VALIDATION_ERROR"
    return _Invalid(code, message, [{"field": field, "message": message, **extra}])


def _log_entry(entry: object, field: str) -> dict[str, Any]:
    """A log entry checked like ``JobLogEntry``. Raises :class:`_Invalid`."""
    if not isinstance(entry, dict):
        raise _field_error(field, "must be an object")
    event = entry.get("event")
    if not isinstance(event, str) or not event:
        raise _field_error(f"{field}.event", "must be a non-empty string")
    if "data" not in entry:
        raise _field_error(f"{field}.data", "is required")
    step = entry.get("step", "")
    if not isinstance(step, str) or len(step) > 255:
        raise _field_error(f"{field}.step", "must be a string of at most 255 characters")
    level = entry.get("level", "info")
    if level not in LOG_LEVELS:
        raise _field_error(f"{field}.level", f"must be one of {', '.join(LOG_LEVELS)}")
    stamp = entry.get("datetime")
    try:
        datetime.fromisoformat(stamp.replace("Z", "+00:00"))  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        raise _field_error(f"{field}.datetime", "must be an ISO 8601 date-time") from None
    return {"event": event, "step": step, "level": level, "data": entry["data"], "datetime": stamp}


class Jobs:
    """The emulator's jobs and their logs, in memory. Safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._logs: dict[str, list[dict[str, Any]]] = {}
        self._next_log = 1

    def create(
        self, action: str = "export", params: Any = None, job_id: str | None = None
    ) -> str:
        """Make a PENDING job (``job_id``, else a new UUID) and return its id.

        Raises:
            ValueError: ``job_id`` is not a UUID, or a job has it already.
        """
        if job_id is None:
            job_id = str(uuid.uuid4())
        else:
            uuid.UUID(job_id)  # a UUID, spelt as the caller will ask for it
        now = _now()
        job = {
            "id": job_id, "status": "PENDING", "action": action, "params": params or {},
            "progress_record": None, "metrics_record": None, "result": None, "meta": None,
            "queue": None, "error": None, "is_active": True, "plugin_release_id": 1,
            "plugin_release": {"id": 1, "plugin_id": 1, "version": "0.0.0"},
            "modified": now, "created": now, "completed": None,
        }
        with self._lock:
            if job_id in self._jobs:
                raise ValueError(f"a job {job_id} exists already")
            self._jobs[job_id], self._logs[job_id] = job, []
        return job_id

    def detail(self, job_id: str) -> dict[str, Any] | None:
        """A copy of the job's ``JobV2Detail``, or None for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else dict(job)

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        """The job's logs, oldest first."""
        with self._lock:
            return list(self._logs.get(job_id, []))

    def patch(self, job_id: str, body: object) -> dict[str, Any] | None:
        """Apply a ``PATCH`` body (each given field replaced whole, other keys ignored); None
        for an unknown job. Raises :class:`_Invalid` for a bad status or transition."""
        if not isinstance(body, dict):
            raise _field_error("body", "must be a JSON object")
        status = body.get("status")
        if "status" in body and status not in JOB_STATUSES:
            raise _field_error("status", f"must be one of {', '.join(JOB_STATUSES)}")
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            current = job["status"]
            if status is not None and status != current and status not in _ALLOWED.get(
                current, set()
            ):
                raise _field_error(
                    "status", f"{current} cannot become {status}",
                    current_status=current, requested_status=status,
                )
            job.update({key: body[key] for key in _PATCHABLE if key in body})
            job["modified"] = _now()
            if job["status"] in _TERMINAL:
                job["is_active"] = False
                job["completed"] = job["completed"] or job["modified"]
            return dict(job)

    def add_logs(self, job_id: str, entries: Sequence[object]) -> list[dict[str, Any]] | None:
        """Store ``entries`` all or none; None for an unknown job. Raises :class:`_Invalid`."""
        checked = [_log_entry(entry, f"logs[{n}]") for n, entry in enumerate(entries)]
        with self._lock:
            if job_id not in self._jobs:
                return None
            stored = []
            for entry in checked:
                log = {"id": self._next_log, "job_id": job_id, **entry, "file": None,
                       "created": _now()}
                self._next_log += 1
                stored.append(log)
            self._logs[job_id].extend(stored)
            return stored


def job_routes(jobs: Jobs) -> Sequence[BaseRoute]:
    """The job routes over ``jobs``."""
    # Here, not at the top: the state module holds the Jobs, and responses import the state.
    from synapse_sdk.emulator.responses import context_of, error_response, json_response

    def missing(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        return error_response(context_of(request), 404, "NOT_FOUND", f"no job {job_id[:40]!r}")

    def refused(request: Request, exc: _Invalid) -> Response:
        return error_response(context_of(request), 400, exc.code, exc.message,
                              details=exc.details)

    async def body_of(request: Request) -> object:
        try:
            return await request.json()
        except ValueError:
            return None

    async def job(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            found = (
                jobs.patch(job_id, await body_of(request)) if request.method == "PATCH"
                else jobs.detail(job_id)
            )
        except _Invalid as exc:
            return refused(request, exc)
        if found is None:
            return missing(request)
        return json_response(context_of(request), 200, data_json=_json(found))

    async def logs(request: Request) -> Response:
        body = await body_of(request)
        bulk = request.url.path.endswith("/bulk/")
        try:
            if not bulk:
                entries: list[object] = [body]
            elif not isinstance(body, dict) or not isinstance(body.get("logs"), list):
                raise _field_error("logs", "must be a list of log entries")
            else:
                entries = body["logs"]
                if not entries:
                    raise _field_error("logs", "must not be empty")
                if len(entries) > MAX_BULK_LOGS:
                    detail = {"received": len(entries), "limit": MAX_BULK_LOGS}
                    message = f"at most {MAX_BULK_LOGS} logs per request"
                    raise _Invalid("BULK_SIZE_EXCEEDED", message,
                                   [{"field": "logs", "message": message, **detail}])
            stored = jobs.add_logs(request.path_params["job_id"], entries)
        except _Invalid as exc:
            return refused(request, exc)
        if stored is None:
            return missing(request)
        data = stored if bulk else stored[0]
        return json_response(context_of(request), 201, data_json=_json(data))

    return [
        Route("/v2/jobs/{job_id}/", job, methods=["GET", "PATCH"], name="v2-job"),
        Route("/v2/jobs/{job_id}/logs/", logs, methods=["POST"], name="v2-job-log"),
        Route("/v2/jobs/{job_id}/logs/bulk/", logs, methods=["POST"], name="v2-job-logs"),
    ]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
