"""The export on a Ray cluster: worker actors process chunks, the driver marks the ledger.

:class:`RayExecutor` is a :class:`~.chunks.ChunkExecutor` for
:class:`~synapse_sdk.plugins.actions.export.action.ExportAction`::

    ExportAction(params, config=config, executor=RayExecutor(address=None, workers=4)).run()

* **Driver and workers.** The action (the driver) lists the ids, leases chunks to a pool of
  worker actors and marks the outcomes they return; it is the only writer of the ledger. Each
  worker runs the same :class:`~.chunks.ChunkRunner` as the single-process export: bulk fetch,
  convert through the exporter's hooks, download originals, write to the output storage. A
  worker that dies mid-chunk (``RayActorError``) is replaced and its chunk leased again to the
  new one: writes are deterministic and marks idempotent, so the result is still exactly once.
* **One pace, one budget.** A pacer actor holds the rate pace (a
  :class:`~.steps.RatePacer`) and the retry budget (a :class:`~synapse_sdk.config.RetryBudget`)
  of the whole run. Every client (the workers' and the driver's) asks it before each
  rate-limited request through the transport's ``pacer`` option and reports each answer, 429s
  with their ``Retry-After``; every worker's retry spends from the one budget (the driver,
  which only lists, keeps its own). The wait decisions stay
  :func:`synapse_sdk.retry.decide_wait`'s: the actor only shares their state.
* **Secrets.** Workers rebuild their clients from a :class:`ClientSpec` whose config holds no
  token: the token is split in two with a one-time pad. The pad goes to each worker in its
  ``runtime_env`` environment (what Ray's dashboard shows), the padded token in the spec (what
  Ray's object store holds); neither alone says anything about the token, and neither is the
  token in clear. (Whoever can read both can run code on the workers anyway.)
* **Storage.** The output must be reachable from every worker: a local path is refused when
  the cluster has more than one node, unless it is on a mount every node shares (say so with
  ``shared_storage=True``); object storage (``s3://…``) always works.

Ray is the optional extra ``synapse-sdk[ray]``; this module imports it only when used.
"""

from __future__ import annotations

import importlib.machinery
import logging
import os
import pickle
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from synapse_sdk.config import RetryBudget, RetryPolicy, SDKConfig
from synapse_sdk.envelopes import ItemId
from synapse_sdk.plugins.actions.export.chunks import ChunkOutcome, ChunkRunner
from synapse_sdk.plugins.actions.export.exporter import BaseExporter
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
from synapse_sdk.plugins.actions.export.steps import RatePacer
from synapse_sdk.plugins.log_messages import LogMessageCode
from synapse_sdk.storage import open_storage

if TYPE_CHECKING:
    from synapse_sdk.plugins.actions.export.action import ExportAction

__all__ = [
    "RAY_EXTRA",
    "ClientSpec",
    "RayExecutor",
    "RayUnavailableError",
    "SharedStorageError",
    "check_portable_exporter",
    "ray_available",
]

_log = logging.getLogger(__name__)

#: The extra that installs Ray: ``pip install 'synapse-sdk[ray]'``.
RAY_EXTRA: Final = "synapse-sdk[ray]"
#: The worker environment variable holding the one-time pad of the token.
PAD_ENV_VAR: Final = "SYNAPSE_EXPORT_TOKEN_PAD"
#: The shared pacer's margin over the pace it learns: a slot handed out by the actor is used
#: a few milliseconds later by a worker, and that jitter must not bring two slots closer than
#: the backend allows.
SHARED_MARGIN: Final = 1.1
#: Times one chunk is leased again after its worker died before the run gives up.
MAX_RELEASES: Final = 10


class RayUnavailableError(RuntimeError):
    """Ray cannot be imported: install the ``synapse-sdk[ray]`` extra."""


class SharedStorageError(ValueError):
    """The output is a local path but the Ray cluster has ``nodes`` nodes (more than one)."""

    def __init__(self, message: str, nodes: int) -> None:
        super().__init__(message)
        self.nodes = nodes


def ray_available() -> bool:
    """Whether Ray can be imported here."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(
            f"the ray executor needs Ray: pip install '{RAY_EXTRA}'"
        ) from exc
    return ray


# -- the client spec: everything but the token in clear ------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """How a worker rebuilds its backend client: the config without its token, and the token
    XORed with a one-time pad the worker gets from its environment (:data:`PAD_ENV_VAR`).
    Its repr and its pickle hold no token."""

    config: SDKConfig
    sealed: bytes = field(repr=False)

    @classmethod
    def seal(cls, config: SDKConfig) -> tuple[ClientSpec, str]:
        """The spec of ``config`` and the pad (hex) that unseals its token."""
        token = (config.token or "").encode()
        pad = secrets.token_bytes(len(token))
        sealed = bytes(a ^ b for a, b in zip(token, pad, strict=True))
        return cls(replace(config, token=None, retry_hooks=()), sealed), pad.hex()

    def unseal(self, pad_hex: str) -> SDKConfig:
        """The config with its token, given the pad.

        Raises:
            ValueError: the pad is not the one the token was sealed with.
        """
        pad = bytes.fromhex(pad_hex)
        if len(pad) != len(self.sealed):
            raise ValueError("the token pad does not match the sealed token")
        token = bytes(a ^ b for a, b in zip(self.sealed, pad, strict=True)).decode()
        return replace(self.config, token=token or None)


# -- the shared pacer and budget -----------------------------------------------------------------


class PacerState:
    """What the pacer actor holds: one :class:`RatePacer` over the rate-limited paths and one
    :class:`RetryBudget` under ``policy``, on this process's clock. Plain methods, so it is
    testable without Ray."""

    def __init__(self, paths: Iterable[str], policy: RetryPolicy) -> None:
        self.pacer = RatePacer(paths, policy=policy, margin=SHARED_MARGIN)
        self.budget = RetryBudget(
            policy.budget_capacity if policy.budget_capacity is not None else 0.0,
            refill_per_success=policy.budget_refill_per_success,
            refill_per_second=policy.budget_refill_per_second,
        )

    def before_request(self, path: str) -> float:
        """The seconds this request waits for its slot (the slot is taken)."""
        return self.pacer.before_request(path)

    def after_response(self, path: str, status: int, headers: dict[str, str]) -> None:
        """Learn from an answer."""
        self.pacer.after_response(path, status, headers)

    def try_spend(self) -> bool:
        """Take one token of the shared retry budget."""
        return self.budget.try_spend()

    def record_success(self) -> None:
        """Refill the shared retry budget after a success."""
        self.budget.record_success()

    def tokens(self) -> float:
        """Tokens left in the shared retry budget."""
        return self.budget.tokens

    def rejections(self) -> int:
        """429 answers reported so far."""
        return self.pacer.rejections


class RemotePacer:
    """A transport :class:`~synapse_sdk.clients._transport.Pacer` that asks the pacer actor.

    Paths outside ``paths`` never leave the process. ``rejections`` counts the 429s this
    client saw; ``on_rejection`` is told each one's advertised wait.
    """

    def __init__(
        self,
        actor: Any,
        paths: Iterable[str],
        on_rejection: Callable[[float], None] | None = None,
    ) -> None:
        self._actor = actor
        self._paths = frozenset(paths)
        self._on_rejection = on_rejection
        self.rejections = 0

    def before_request(self, path: str) -> float:
        """The wait the shared pacer gives this request."""
        if path not in self._paths:
            return 0.0
        wait: float = _ray().get(self._actor.before_request.remote(path))
        return wait

    def after_response(self, path: str, status: int, headers: Mapping[str, str]) -> None:
        """Report the answer to the shared pacer (without waiting for it)."""
        if path not in self._paths:
            return
        # Only what the pace is learned from: Retry-After (and its precise retry-after-ms:
        # without it a whole-second Retry-After would teach a pace of about one a second)
        # and the rate-limit headers.
        kept = {
            k: v for k, v in headers.items()
            if k.lower() in ("retry-after", "retry-after-ms") or "ratelimit" in k.lower()
        }
        self._actor.after_response.remote(path, status, kept)
        if status == 429:
            self.rejections += 1
            if self._on_rejection is not None:
                from synapse_sdk.retry_after import retry_after_from_headers

                self._on_rejection(retry_after_from_headers(headers) or 0.0)


class RemoteBudget(RetryBudget):
    """A :class:`RetryBudget` whose tokens live in the pacer actor (one budget per run)."""

    __slots__ = ("_actor",)

    def __init__(self, actor: Any, policy: RetryPolicy) -> None:
        super().__init__(
            policy.budget_capacity or 0.0,
            refill_per_success=policy.budget_refill_per_success,
            refill_per_second=policy.budget_refill_per_second,
        )
        self._actor = actor

    def try_spend(self) -> bool:
        """Take a token from the shared budget."""
        spent: bool = _ray().get(self._actor.try_spend.remote())
        return spent

    def record_success(self) -> None:
        """Refill the shared budget (without waiting for it)."""
        self._actor.record_success.remote()

    @property
    def tokens(self) -> float:
        """Tokens left in the shared budget."""
        left: float = _ray().get(self._actor.tokens.remote())
        return left


def _shared_policy(config: SDKConfig, actor: Any) -> SDKConfig:
    """``config`` whose retry policy spends from the shared budget in ``actor``."""
    policy = config.retry_policy
    if policy is None or policy.budget is None:
        return config
    policy = replace(policy)  # a copy of its own: the caller's policy keeps its budget
    object.__setattr__(policy, "budget", RemoteBudget(actor, policy))
    return replace(config, retry_policy=policy)


# -- the worker ----------------------------------------------------------------------------------


def check_portable_exporter(exporter: BaseExporter) -> None:
    """Check, on the driver, that every Ray worker can rebuild ``exporter``: workers unpickle
    it, which imports its class by module and name, so the class must live at the top level
    of a module found on ``sys.path`` (not in ``__main__``, not inside a function, not in a
    module loaded from a file under a made-up name) and the instance must pickle.

    Raises:
        ValueError: the exporter cannot reach the workers; the message names the problem.
    """
    cls = type(exporter)
    module, name = cls.__module__, cls.__qualname__
    where = "move it to a module every worker can import (installed, or on PYTHONPATH)"
    if module == "__main__":
        raise ValueError(
            f"the exporter class {name!r} is defined in __main__ (the script being run), "
            f"which Ray workers cannot import: {where}"
        )
    if "<locals>" in name:
        raise ValueError(
            f"the exporter class {name!r} is defined inside a function, which Ray workers "
            f"cannot import: {where}"
        )
    top = module.partition(".")[0]
    if top not in sys.builtin_module_names and (
        importlib.machinery.PathFinder.find_spec(top) is None
    ):
        raise ValueError(
            f"the exporter's module {module!r} cannot be imported by name (no {top!r} on "
            f"sys.path), so Ray workers cannot load {name!r}: {where}"
        )
    try:
        pickle.dumps(exporter)
    except Exception as exc:
        raise ValueError(
            f"the exporter {module}:{name} cannot be pickled for the Ray workers "
            f"({type(exc).__name__}: {exc}): keep only picklable attributes on it"
        ) from exc


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker actor is built from (pickled into Ray: no secret in clear)."""

    client: ClientSpec
    exporter: BaseExporter
    out: Any
    target: str
    attribute: str
    originals: bool
    threads: int
    paths: frozenset[str]
    max_original_bytes: int | None = None
    response_mode: str = "inline"


class _StepFailed(Exception):
    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(step)
        self.step = step
        self.error = error


@dataclass(slots=True)
class WorkerResult:
    """What a worker returns for a chunk: the outcome or the step that failed and its error,
    and the messages to log on the driver."""

    outcome: ChunkOutcome | None
    notes: list[tuple[LogMessageCode, bool | None, dict[str, Any]]]
    pid: int
    peak_rss_mb: float
    step: str | None = None
    error: BaseException | None = None


class ChunkWorker:
    """The body of a worker actor: a :class:`ChunkRunner` on a client rebuilt from the spec,
    paced and budgeted by the shared pacer actor."""

    def __init__(self, spec: WorkerSpec, pacer: Any) -> None:
        from synapse_sdk.clients.backend_v2 import BackendV2Client

        config = _shared_policy(spec.client.unseal(os.environ.get(PAD_ENV_VAR, "")), pacer)
        self._notes: list[tuple[LogMessageCode, bool | None, dict[str, Any]]] = []
        self._pacer = RemotePacer(pacer, spec.paths, on_rejection=self._rate_limited)
        self._client = BackendV2Client(
            config=config, pacer=self._pacer, response_mode=spec.response_mode
        )
        storage = open_storage(spec.out).child(spec.target)
        self._runner = ChunkRunner(
            self._client,
            spec.exporter,
            storage,
            target=spec.attribute,
            originals=spec.originals,
            threads=spec.threads,
            emit=lambda code, quiet, params: self._notes.append((code, quiet, params)),
            max_original_bytes=spec.max_original_bytes,
        )

    def _rate_limited(self, wait: float) -> None:
        self._notes.append(
            (ExportLogMessageCode.EXPORT_RATE_LIMITED_WAITING, None, {"seconds": round(wait, 2)})
        )

    def pid(self) -> int:
        """This worker's process id."""
        return os.getpid()

    def process(self, chunk: list[ItemId]) -> WorkerResult:
        """Process ``chunk``; a step failing as a whole comes back as ``step`` and ``error``."""
        self._notes = []
        requests, rejections = self._client.stats.requests, self._pacer.rejections
        try:
            outcome = self._runner.process(chunk, _recording_step)
        except _StepFailed as failed:
            return WorkerResult(
                None, self._notes, os.getpid(), peak_rss_mb(), failed.step,
                _picklable(failed.error),
            )
        outcome.requests = self._client.stats.requests - requests
        outcome.rate_limited = self._pacer.rejections - rejections
        if outcome.transient is not None:
            outcome.transient = _picklable(outcome.transient)  # type: ignore[assignment]
        return WorkerResult(outcome, self._notes, os.getpid(), peak_rss_mb())


class _RecordingStep:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, _StepFailed):
            raise _StepFailed(self.name, exc) from exc


def _recording_step(name: str) -> _RecordingStep:
    return _RecordingStep(name)


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB: ``VmHWM`` of its memory map. (``ru_maxrss`` is not:
    Linux carries the parent's high-water mark into a forked child across ``exec``, so a
    worker spawned by a large parent would report the parent's figure.) Off Linux,
    ``ru_maxrss``. The workers report it; the benchmarks measure their processes with it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _picklable(error: BaseException) -> BaseException:
    """``error`` if it survives a pickle round trip, else a RuntimeError naming it."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


# -- the executor --------------------------------------------------------------------------------


class RayExecutor:
    """Run an export's chunks on a Ray cluster (see the module docstring).

    * ``address`` — the cluster (``ray://…`` or ``host:port``); None: ``RAY_ADDRESS``, else a
      local instance is started (``notice`` says so in one line);
    * ``workers`` — worker actors (each with ``cpus_per_worker`` CPUs of the cluster);
    * ``shared_storage`` — the output path is a mount every node shares (a local path is
      otherwise refused on a cluster of several nodes);
    * ``nodes`` — how many live nodes the cluster has (default: from ``ray.nodes()``;
      injectable for tests); ``notice`` — where the one-line notices go (default: logging).

    Raises:
        ValueError: ``workers`` below 1; (from :meth:`start`) an exporter the workers cannot
            import or unpickle.
        RayUnavailableError: (from :meth:`start`) Ray is not installed.
        SharedStorageError: (from :meth:`start`) a local output on a multi-node cluster.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int = 2,
        *,
        cpus_per_worker: float = 0.5,
        shared_storage: bool = False,
        nodes: Callable[[], int] | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        self.address = address
        self.workers = workers
        self._cpus = cpus_per_worker
        self._shared_storage = shared_storage
        self._nodes = nodes
        self._notice = notice if notice is not None else _log.info
        self._pacer: Any = None
        self._spec: WorkerSpec | None = None
        self._pad = ""
        self._actors: list[Any] = []
        self._load: dict[int, int] = {}
        self._pids: dict[int, int] = {}
        self._pending: dict[Any, tuple[list[ItemId], Any, int]] = {}
        self._action: ExportAction | None = None
        #: Worker actors replaced after they died (for the summary of a soak).
        self.replaced = 0
        #: ``time.perf_counter()`` when the last run's workers were up (for benchmarks).
        self.ready_at: float | None = None
        #: The peak RSS (MB) each worker process reported, by pid.
        self.peak_rss_mb: dict[int, float] = {}
        self._replaced_before = 0

    @property
    def capacity(self) -> int:
        """Chunks in flight: two per worker, so none waits for the driver."""
        return 2 * self.workers

    @property
    def in_flight(self) -> int:
        """Chunks leased whose outcome was not taken yet."""
        return len(self._pending)

    # -- the cluster and the pacer --------------------------------------------------------------

    def connect(self) -> Any:
        """Connect to the cluster (or start a local instance) once; the ``ray`` module."""
        ray = _ray()
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS") or None
            if address is None:
                # Ray's own INFO line is replaced by the notice.
                ray.init(
                    include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
                )
                self._notice("RAY_ADDRESS is not set: started a local Ray instance")
            else:
                ray.init(address=address, log_to_driver=False)
        return ray

    def make_pacer(
        self,
        paths: Iterable[str],
        policy: RetryPolicy,
        clock: Callable[[], float] | None = None,
        on_rejection: Callable[[float], None] | None = None,
    ) -> RemotePacer:
        """The driver client's pacer: the shared pacer actor (created here once, on its own
        clock: ``clock`` is not used)."""
        ray = self.connect()
        if self._pacer is None:
            self._pacer = ray.remote(num_cpus=0)(PacerState).remote(paths, policy)
        return RemotePacer(self._pacer, paths, on_rejection)

    def node_count(self) -> int:
        """Live nodes of the cluster."""
        if self._nodes is not None:
            return self._nodes()
        return sum(1 for node in self.connect().nodes() if node.get("Alive"))

    # -- ChunkExecutor --------------------------------------------------------------------------

    def start(self, action: ExportAction) -> None:
        """Check the storage, then start the pacer and the worker actors for ``action``.

        Raises:
            ValueError: the exporter cannot reach the workers (see
                :func:`check_portable_exporter`).
            SharedStorageError: a local output on a cluster of several nodes.
        """
        from synapse_sdk.clients.backend_v2 import rate_limited_paths

        check_portable_exporter(action.exporter)
        self.connect()
        nodes = self.node_count()
        if action.storage.is_local and nodes > 1 and not self._shared_storage:
            raise SharedStorageError(
                f"the output {str(action.params.out_dir)!r} is a local path but the Ray cluster "
                f"has {nodes} nodes: write to object storage (s3://…) or, on a mount every node "
                "shares, pass shared_storage=True (--shared-storage)",
                nodes,
            )
        self._action = action
        self._replaced_before = self.replaced
        client, pad = ClientSpec.seal(action.config)
        paths = frozenset(rate_limited_paths())
        if self._pacer is None:
            self.make_pacer(paths, action.config.effective_retry_policy)
        self._pad = pad
        self._spec = WorkerSpec(
            client=client,
            exporter=action.exporter,
            out=action.params.out_dir,
            target=action.params.target.value,
            attribute=action.params.target.attribute,
            originals=action.params.originals,
            threads=action.params.workers,
            paths=paths,
            max_original_bytes=action.params.max_original_bytes,
            response_mode=action.params.response_mode,
        )
        self._actors = [self._new_actor() for _ in range(self.workers)]
        self._load = {id(a): 0 for a in self._actors}
        self._wait_ready()
        self.ready_at = time.perf_counter()

    def _wait_ready(self) -> None:
        """Wait until every worker is up; one that dies meanwhile is replaced (up to
        :data:`MAX_RELEASES` times), one that cannot start at all fails the run here.

        Raises:
            RuntimeError: the workers keep dying before they are up.
        """
        ray = _ray()
        for attempt in range(MAX_RELEASES + 1):
            dead = []
            for actor in list(self._actors):
                try:
                    ray.get(actor.pid.remote())
                except ray.exceptions.RayActorError as exc:
                    if attempt == MAX_RELEASES:
                        raise RuntimeError("the export's Ray workers could not start") from exc
                    dead.append(actor)
            if not dead:
                return
            for actor in dead:
                self._replace(actor)

    def _new_actor(self) -> Any:
        ray = _ray()
        actor_class = ray.remote(ChunkWorker)
        return actor_class.options(
            num_cpus=self._cpus,
            max_restarts=0,
            runtime_env={"env_vars": {PAD_ENV_VAR: self._pad}},
        ).remote(self._spec, self._pacer)

    def worker_pids(self) -> list[int]:
        """The process ids of the workers now in the pool that returned a chunk (to kill one
        in a test or a soak)."""
        return [self._pids[id(a)] for a in self._actors if id(a) in self._pids]

    def submit(self, chunk: list[ItemId]) -> None:
        """Lease ``chunk`` to the least loaded worker."""
        self._lease(chunk, 0)

    def _lease(self, chunk: list[ItemId], leases: int) -> None:
        actor = min(self._actors, key=lambda a: self._load[id(a)])
        self._load[id(actor)] += 1
        self._pending[actor.process.remote(chunk)] = (chunk, actor, leases)

    def next_outcome(self) -> tuple[list[ItemId], ChunkOutcome]:
        """The next chunk a worker finished; a chunk whose worker died is leased again to a
        fresh worker (up to :data:`MAX_RELEASES` times).

        Raises:
            ActionStepError: a step failed as a whole in a worker (raised in that step).
            RuntimeError: a chunk's workers kept dying.
        """
        ray = _ray()
        action = self._action
        if action is None:
            raise RuntimeError("RayExecutor.next_outcome before start")
        while True:
            ready, _ = ray.wait(list(self._pending), num_returns=1)
            ref = ready[0]
            chunk, actor, leases = self._pending.pop(ref)
            try:
                result: WorkerResult = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                if leases + 1 > MAX_RELEASES:
                    raise RuntimeError(
                        f"the workers of a chunk died {leases + 1} times in a row"
                    ) from exc
                self._replace(actor)
                self._lease(chunk, leases + 1)
                continue
            self._load[id(actor)] = max(0, self._load.get(id(actor), 1) - 1)
            self._pids[id(actor)] = result.pid
            self.peak_rss_mb[result.pid] = result.peak_rss_mb
            for code, quiet, params in result.notes:
                action.emit(code, quiet, params)
            if result.outcome is None:
                error = result.error if result.error is not None else RuntimeError("no outcome")
                with action.step(result.step or "save"):
                    raise error
            return chunk, result.outcome

    def _replace(self, actor: Any) -> None:
        """Swap a dead worker for a fresh one (once, however many of its chunks failed)."""
        for index, current in enumerate(self._actors):
            if current is actor:
                del self._load[id(actor)]
                self._pids.pop(id(actor), None)
                fresh = self._new_actor()
                self._actors[index] = fresh
                self._load[id(fresh)] = 0
                self.replaced += 1
                _ray().kill(actor, no_restart=True)
                return

    def close(self) -> None:
        """Stop the workers (the pacer actor lives as long as a client holds it, the Ray
        connection as long as the process). When a worker died during the run, the temporary
        files it left are removed once no worker writes any more (as a rerun would)."""
        pending, self._pending = self._pending, {}
        if self._actors:
            ray = _ray()
            for ref in pending:
                ray.cancel(ref, force=False)
            for actor in self._actors:
                ray.kill(actor, no_restart=True)
        if self._action is not None and self.replaced > self._replaced_before and not pending:
            self._action.storage.prepare()
        self._actors, self._load, self._pids, self._action = [], {}, {}, None
