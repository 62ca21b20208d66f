"""``BaseAction``: the base class of plugin actions (export, upload, train, inference).

An action is one job over a job folder. The base class gives every action the same tools:

* typed parameters: a pydantic model named by the class attribute ``params_model``, validated
  once and available as ``self.params``;
* :meth:`BaseAction.log_message`: a log-message code rendered in the job's language and written
  as one structured event to the job log (JSON lines in the job folder), the console (rich,
  optional) and stdlib logging (logger ``synapse_sdk.plugins.action``);
* ``self.v2_client``: a backend v2 client, injected or built lazily from an ``SDKConfig``;
* :meth:`BaseAction._extract_failed` and :meth:`BaseAction._enqueue_retry`: the failed ids of a
  backend error, recorded in the job's durable :class:`~synapse_sdk.plugins.ledger.Ledger`;
* :meth:`BaseAction.step`: runs one step so that its failure is classified, logged with its
  code and a "step failed" code, and re-raised as :class:`ActionStepError` ``from`` the cause;
* :meth:`BaseAction.reporting`: when the action runs as a backend job (``job_id``), its coded
  messages, progress (:meth:`BaseAction.report_progress`), metrics
  (:meth:`BaseAction.report_metrics`) and final status go to that job through a
  :class:`~synapse_sdk.plugins.job_reporter.JobReporter` (the job log stays the source of truth).

An action is a context manager; leaving it closes the job log, the ledger and a client the action
built itself (an injected client belongs to the caller).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from synapse_sdk._closing import ClosesOnExit
from synapse_sdk.config import SDKConfig
from synapse_sdk.envelopes import ErrorEnvelope, ItemId, find_envelope
from synapse_sdk.exceptions import BackendError
from synapse_sdk.failures import walk_chain
from synapse_sdk.i18n import normalize_language
from synapse_sdk.plugins.ledger import Ledger
from synapse_sdk.plugins.log_messages import LogLevel, LogMessageCode, resolve_log_message

if TYPE_CHECKING:
    from rich.console import Console

    from synapse_sdk.clients.backend_v2 import BackendV2Client
    from synapse_sdk.plugins.job_reporter import JobReporter

__all__ = [
    "JOB_LOG_FILENAME",
    "ActionStepError",
    "BaseAction",
    "FreeParams",
    "JobLog",
    "LogEvent",
    "read_job_log",
]

logger = logging.getLogger("synapse_sdk.plugins.action")

#: The job log's file name inside a job folder.
JOB_LOG_FILENAME: Final = "job.log.jsonl"

#: stdlib logging level for each log-message level (SUCCESS is good news: INFO; DANGER is the
#: UI's red, an error the user must look at: ERROR).
_STDLIB_LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "success": logging.INFO,
    "warning": logging.WARNING,
    "danger": logging.ERROR,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_CONSOLE_STYLES: Final[dict[str, str]] = {
    "debug": "dim",
    "info": "",
    "success": "green",
    "warning": "yellow",
    "danger": "bold red",
    "error": "red",
    "critical": "bold white on red",
}
# Parameter names whose values are secrets: never written anywhere, whatever a caller passes.
_SECRET_WORDS: Final = ("token", "password", "secret", "authorization", "api_key", "apikey")
_REDACTED: Final = "[redacted]"

ParamsT = TypeVar("ParamsT", bound=BaseModel)


class FreeParams(BaseModel):
    """Parameters of an action that declares no ``params_model``: any keyword, read as an
    attribute (``self.params.ids``)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class ActionStepError(Exception):
    """A step of an action failed; the original error is ``__cause__``.

    ``step`` names the step, ``action`` the action class, and ``message_code`` the log-message
    code the failure was classified as (None when no classifier matched). It is outside the SDK's
    error tree on purpose: it adds *where* the failure happened, while ``__cause__`` keeps *what*
    happened, and classification walks through it to the cause.
    """

    def __init__(self, step: str, action: str, message_code: LogMessageCode | None) -> None:
        self.step = step
        self.action = action
        self.message_code = message_code
        code = message_code.value if message_code is not None else "unclassified"
        super().__init__(f"{action}: step {step!r} failed ({code})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.step, self.action, self.message_code))


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One structured log event, as written to the job log."""

    ts: float
    action: str
    code: str
    level: str
    params: dict[str, Any]
    text: str
    language: str | None

    def to_json(self) -> str:
        """The event as one line of JSON (no newline)."""
        return json.dumps(
            {
                "ts": self.ts,
                "action": self.action,
                "code": self.code,
                "level": self.level,
                "params": self.params,
                "text": self.text,
                "language": self.language,
            },
            ensure_ascii=False,
            default=str,
            separators=(",", ":"),
        )


class JobLog:
    """An append-only JSON-lines file of :class:`LogEvent` s.

    Each event is one ``write`` of one complete line on a file opened with ``O_APPEND``, so
    concurrent writers never interleave inside a line and a kill can at worst truncate the last
    line (which :func:`read_job_log` skips).

    Raises:
        OSError: the file cannot be opened or written.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o644
        )

    def write(self, event: LogEvent) -> None:
        """Append one event as a line."""
        data = (event.to_json() + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                raise ValueError(f"the job log {str(self.path)!r} is closed")
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __repr__(self) -> str:
        return f"JobLog({str(self.path)!r})"


def read_job_log(path: str | Path) -> Iterator[dict[str, Any]]:
    """Read the events of a job log one at a time, skipping a line a kill cut short.

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return  # the last line was cut short by a kill
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                if isinstance(event, dict):
                    yield event


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of a log parameter: containers copied (bounded), others as is or str."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if depth >= 4:
        return str(value)
    if isinstance(value, Mapping):
        return {
            str(k): (_REDACTED if _is_secret(str(k)) else _json_safe(v, depth + 1))
            for k, v in list(value.items())[:100]
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v, depth + 1) for v in list(value)[:100]]
    return str(value)


def _printable(text: str) -> str:
    """``text`` with every non-printable character (ESC, CR, newline, C1 controls...) written as
    its Python escape, so a message cannot move a terminal's cursor or forge a log line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


class BaseAction(ClosesOnExit, ABC, Generic[ParamsT]):
    """Base class of a plugin action: typed params, job folder, logging, client and ledger.

    Subclasses set ``params_model`` (a pydantic model; without one any keyword parameters are
    accepted as :class:`FreeParams`) and implement :meth:`run`. Construct it with the params (a
    model instance or a mapping) and optionally:

    * ``job_dir``: the job folder (job log and ledger); default: a new temporary folder, or
      :meth:`default_job_dir` of the subclass;
    * ``config``: an :class:`~synapse_sdk.config.SDKConfig` to build the client from;
    * ``v2_client``: a ready backend v2 client (the caller keeps ownership);
    * ``language``: the language of rendered messages (else the params' ``language`` field, else
      ``config.language``, else ``SYNAPSE_LANGUAGE``, else English);
    * ``console``: a rich ``Console`` that also shows each event (default: none);
    * ``clock``: wall-clock seconds for event timestamps (injectable for tests);
    * ``job_id``: the backend job this run is (messages, progress, metrics and status are
      reported to it, see :meth:`reporting`), or ``job_reporter``: a ready
      :class:`~synapse_sdk.plugins.job_reporter.JobReporter` (the action then uses that one).

    Thread-safety: the lazily opened job folder, ledger, job log and client, and
    :meth:`log_message`, are thread-safe, so a run may use worker threads; :meth:`run` is one
    job, not thread-safe: do not run one instance from several threads at once.

    Raises:
        pydantic.ValidationError: (a ``ValueError``) the params do not validate.
        TypeError: ``params`` is neither a mapping nor an instance of ``params_model``, or
            ``config`` is not an ``SDKConfig``.
        ValueError: ``language`` is not a language tag.
    """

    #: The pydantic model of this action's parameters.
    params_model: ClassVar[type[BaseModel]] = FreeParams
    #: Code logged (with ``step=<name>``) when a step fails; None logs only the classified code.
    step_failed_code: ClassVar[LogMessageCode | None] = None
    #: Code logged for a step failure no classifier recognised; None: nothing extra is logged.
    unclassified_failure_code: ClassVar[LogMessageCode | None] = None

    params: ParamsT

    def __init__(
        self,
        params: ParamsT | Mapping[str, Any] | None = None,
        *,
        job_dir: str | Path | None = None,
        config: SDKConfig | None = None,
        v2_client: BackendV2Client | None = None,
        language: str | None = None,
        console: Console | None = None,
        clock: Callable[[], float] = time.time,
        job_id: str | None = None,
        job_reporter: JobReporter | None = None,
    ) -> None:
        self.params = self._validate_params(params)
        if config is not None and not isinstance(config, SDKConfig):
            raise TypeError(f"config must be an SDKConfig, not {type(config).__name__}")
        self.config = config if config is not None else SDKConfig()
        chosen = (
            language
            if language is not None
            else _str_or_none(getattr(self.params, "language", None)) or self.config.language
        )
        #: The language of this action's messages (None: ``SYNAPSE_LANGUAGE``, then English).
        self.language: str | None = None if chosen is None else normalize_language(chosen)
        self.console = console
        self._clock = clock
        self._job_dir = Path(job_dir) if job_dir is not None else None
        self._v2_client = v2_client
        self._owns_client = False
        self._ledger: Ledger | None = None
        self._job_log: JobLog | None = None
        self._lock = threading.Lock()
        #: The backend job this run reports to (None: it reports nowhere).
        self.job_id = job_reporter.job_id if job_reporter is not None else _str_or_none(job_id)
        self._reporter = job_reporter
        #: The clock of the reporter's batching and pauses (monotonic seconds).
        self._monotonic: Callable[[], float] = time.monotonic
        self._step_name = ""

    @classmethod
    def _validate_params(cls, params: object) -> ParamsT:
        model = cls.params_model
        if params is None:
            params = {}
        if isinstance(params, model):
            return cast(ParamsT, params)
        if isinstance(params, BaseModel):
            params = params.model_dump()
        if not isinstance(params, Mapping):
            raise TypeError(
                f"{cls.__name__} params must be a {model.__name__} or a mapping, "
                f"not {type(params).__name__}"
            )
        return cast(ParamsT, model.model_validate(dict(params)))

    # -- the job --------------------------------------------------------------------------------

    @abstractmethod
    def run(self) -> Any:
        """Do the job. Subclasses implement it."""

    @property
    def name(self) -> str:
        """The action's name in events and errors (its class name)."""
        return type(self).__name__

    def default_job_dir(self) -> Path:
        """The job folder when none was given: a new temporary folder (subclasses override)."""
        return Path(tempfile.mkdtemp(prefix="synapse-job-"))

    @property
    def job_dir(self) -> Path:
        """The job folder (created on first use)."""
        with self._lock:
            if self._job_dir is None:
                self._job_dir = self.default_job_dir()
            self._job_dir.mkdir(parents=True, exist_ok=True)
            return self._job_dir

    @property
    def ledger(self) -> Ledger:
        """The job's durable ledger (opened on first use)."""
        job_dir = self.job_dir
        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger(job_dir)
            return self._ledger

    @property
    def job_log(self) -> JobLog:
        """The job's JSON-lines log (opened on first use)."""
        job_dir = self.job_dir
        with self._lock:
            if self._job_log is None:
                self._job_log = JobLog(job_dir / JOB_LOG_FILENAME)
            return self._job_log

    @property
    def v2_client(self) -> BackendV2Client:
        """The backend v2 client: the injected one, else built once from ``config``.

        Raises:
            ValueError: no client was injected and ``config`` has no ``backend_url``.
        """
        with self._lock:
            if self._v2_client is None:
                if not self.config.backend_url:
                    raise ValueError(
                        f"{self.name} needs a backend: pass v2_client=... or a config with "
                        "backend_url (and token)"
                    )
                self._v2_client = self._build_v2_client()
                self._owns_client = True
            return self._v2_client

    def _build_v2_client(self) -> BackendV2Client:
        """Build the client :attr:`v2_client` returns when none was injected (from ``config``).

        Subclasses override it to tune the client (sleep, clock, pacing).
        """
        from synapse_sdk.clients.backend_v2 import BackendV2Client

        return BackendV2Client(config=self.config)

    def close(self) -> None:
        """Close the job log, the ledger and a client this action built (idempotent)."""
        with self._lock:
            ledger, self._ledger = self._ledger, None
            job_log, self._job_log = self._job_log, None
            client = self._v2_client if self._owns_client else None
            if client is not None:
                self._v2_client = None
                self._owns_client = False
        if ledger is not None:
            ledger.close()
        if job_log is not None:
            job_log.close()
        if client is not None:
            client.close()

    # -- messages -------------------------------------------------------------------------------

    def log_message(
        self, code: LogMessageCode, /, *, quiet: bool = False, **params: Any
    ) -> LogEvent:
        """Emit ``code`` as a structured event in the job's language; return the event.

        The event (code value, level, params, rendered text) goes to the job log, the console if
        the action has one (unless ``quiet``: routine progress a progress bar already shows),
        and stdlib logging (logger ``synapse_sdk.plugins.action``, level mapped from the code's
        level, structured fields in ``extra``). Parameters whose names look like secrets
        (``token``, ``password``…) are redacted everywhere.

        Raises:
            TypeError: ``code`` is not a ``LogMessageCode``.
            OSError: the job log cannot be written.
        """
        if not isinstance(code, LogMessageCode):
            raise TypeError(f"code must be a LogMessageCode, not {type(code).__name__}")
        safe = {
            name: (_REDACTED if _is_secret(name) else _json_safe(value))
            for name, value in params.items()
        }
        resolved = resolve_log_message(code, self.language, **safe)
        level = LogLevel(resolved.level).value
        event = LogEvent(
            ts=self._clock(),
            action=self.name,
            code=str(code.value),
            level=level,
            params=safe,
            text=resolved.text,
            language=self.language,
        )
        self.job_log.write(event)  # first: the local log is the source of truth
        reporter = self._reporter
        if reporter is not None:
            english = resolved.text if self.language == "en" else (
                resolve_log_message(code, "en", **safe).text
            )
            reporter.message(event.code, level, safe, english, event.ts, self._step_name)
        # A parameter from the backend (an item id, say) may hold control characters: the JSON
        # job log escapes them, the terminal and plain log files get them escaped here.
        shown = _printable(resolved.text)
        if self.console is not None and not quiet:
            from rich.text import Text

            self.console.print(Text(shown, style=_CONSOLE_STYLES.get(level, "")))
        logger.log(
            _STDLIB_LEVELS.get(level, logging.INFO),
            shown,
            extra={
                "event": "synapse_sdk.plugins.action.message",
                "action": self.name,
                "code": event.code,
                "log_level": level,
                "params": safe,
            },
        )
        return event

    # -- failures -------------------------------------------------------------------------------

    def classify_failure(self, exc: BaseException) -> LogMessageCode | None:
        """The log-message code of a failure; the base class knows none (subclasses override)."""
        return None

    @contextlib.contextmanager
    def step(self, step: str, **params: Any) -> Iterator[None]:
        """Run the body as step ``step``; on failure classify, log and re-raise.

        A failure is classified with :meth:`classify_failure`, logged with that code (or
        ``unclassified_failure_code``) and then ``step_failed_code`` naming the step, and raised
        as :class:`ActionStepError` ``from`` the original. Both go to the job log and stdlib
        logging but not to the console: the raised error is the caller's to show, once. An
        ``ActionStepError`` from a nested step passes through unchanged (it was logged once
        already); ``KeyboardInterrupt`` and other ``BaseException`` s are not steps failing and
        pass through too. A backend job (see :meth:`reporting`) sees the step's ``status``
        (``running``, ``done``, ``failed``) in its progress record.
        """
        outer, self._step_name = self._step_name, step
        self._report_step(step, "running")
        try:
            yield
        except ActionStepError:
            self._report_step(step, "failed")
            raise
        except Exception as exc:
            self._report_step(step, "failed")
            code = self.classify_failure(exc)
            logged = code if code is not None else self.unclassified_failure_code
            if logged is not None:
                self.log_message(
                    logged, quiet=True, step=step, error=type(exc).__name__, **params
                )
            if self.step_failed_code is not None:
                self.log_message(self.step_failed_code, quiet=True, step=step, **params)
            raise ActionStepError(step, self.name, code) from exc
        else:
            self._report_step(step, "done")
        finally:
            self._step_name = outer

    # -- the backend job ------------------------------------------------------------------------

    @property
    def job_reporter(self) -> JobReporter | None:
        """The reporter of this run's backend job: the injected one, else built from
        ``job_id`` and :attr:`v2_client` on first use; None when the action is no job.

        Raises:
            ValueError: a ``job_id`` but no backend (see :attr:`v2_client`).
        """
        if self._reporter is None and self.job_id is not None:
            from synapse_sdk.plugins.job_reporter import JobReporter

            reporter = JobReporter(self.v2_client.jobs, self.job_id, clock=self._monotonic)
            with self._lock:
                if self._reporter is None:
                    self._reporter = reporter
        return self._reporter

    @contextlib.contextmanager
    def reporting(self) -> Iterator[JobReporter | None]:
        """Run the body as the backend job's run (a no-op without a job).

        The job is told ``RUNNING`` first; at the end, after the last messages, ``SUCCEEDED``
        when the body returns, ``STOPPED`` on ``KeyboardInterrupt``, ``FAILED`` on any other
        exception (which passes through). Reporting never raises: an unreachable backend costs
        at most the reporter's final deadline. Yields the reporter (``set_result`` names the
        job's result).

        Raises:
            ValueError: a ``job_id`` but no backend (see :attr:`v2_client`).
        """
        from synapse_sdk.plugins.job_reporter import FAILED, STOPPED, SUCCEEDED

        reporter = self.job_reporter
        if reporter is None:
            yield None
            return
        reporter.start()
        status = FAILED
        try:
            yield reporter
            status = SUCCEEDED
        except KeyboardInterrupt:
            status = STOPPED
            raise
        finally:
            reporter.finish(status)

    def report_progress(self, step: str, *, percent: float | None = None, **fields: Any) -> None:
        """Report ``step``'s progress (``percent`` 0-100 when known, counts as ``fields``) to the
        backend job, if the action runs as one; the newest value is sent when due."""
        reporter = self._reporter
        if reporter is not None:
            reporter.progress(step, percent=percent, **fields)

    def report_metrics(self, step: str, **values: Any) -> None:
        """Report ``step``'s metrics (such as exported and failed counts) to the backend job,
        if the action runs as one."""
        reporter = self._reporter
        if reporter is not None:
            reporter.metrics(step, **values)

    def _report_step(self, step: str, status: str) -> None:
        reporter = self._reporter
        if reporter is not None:
            reporter.step_status(step, status)

    def _extract_failed(self, exc: BaseException) -> list[ItemId]:
        """The ids of the items that failed, read from an exception.

        Looks through the whole chain (causes, contexts, groups): first a ``BackendError``'s
        ``failed_ids``, then a v2 error envelope (an error's ``envelope`` attribute or one found
        in its message). Returns an empty list when no failed item is named. Never raises.
        """
        chain = walk_chain(exc)
        for error in chain:
            if isinstance(error, BackendError) and error.failed_ids:
                return list(error.failed_ids)
        for error in chain:
            # A hostile property or __str__ must not break failure handling.
            try:
                envelope = getattr(error, "envelope", None)
            except Exception:
                envelope = None
            if not isinstance(envelope, ErrorEnvelope):
                try:
                    envelope = find_envelope(str(error))
                except Exception:
                    envelope = None
            if envelope is not None and envelope.failed:
                return [item.id for item in envelope.failed]
        return []

    def _enqueue_retry(
        self, failed_ids: Iterable[ItemId], *, code: str | None = None
    ) -> int:
        """Record ``failed_ids`` in the job's ledger as waiting for a retry; return how many.

        The ledger is durable: a later run over the same job folder sees them pending.

        Raises:
            TypeError: an id is not an ``int`` or a ``str``.
        """
        return self.ledger.enqueue_retry(failed_ids, code)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
