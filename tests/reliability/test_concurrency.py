"""Concurrency proofs: shared budgets, engines, clients, classifiers, ledgers and actions.

Every test runs many threads (or asyncio tasks) against one shared object and checks an exact
invariant afterwards: token accounting to the last sixteenth of a token, every result in its
place, one correlation id per logical call, attempt counts without a lost update. Thread
switches are forced every few microseconds (``sys.setswitchinterval``) so interleavings that a
lock must guard actually happen. Nothing sleeps for real: clocks are fake, waits are recorded.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import random
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from synapse_sdk.clients import AsyncBackendV2Client, BackendV2Client
from synapse_sdk.clients.backend_v2 import succeeded_items
from synapse_sdk.clients.synap import _client as synap_module
from synapse_sdk.config import RetryBudget, RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile
from synapse_sdk.exceptions import (
    BackendError,
    ListeningAlreadyActiveError,
    NetworkTimeoutError,
    ServiceUnavailableError,
)
from synapse_sdk.failures import flatten_exception
from synapse_sdk.i18n import use_language
from synapse_sdk.plugins.action import ActionStepError, BaseAction, read_job_log
from synapse_sdk.plugins.actions import CATEGORY_NAMES, get_category
from synapse_sdk.plugins.actions.export.action import (
    ExportAction,
    ExportProgress,
    JobLockedError,
)
from synapse_sdk.plugins.actions.export.failure_classifier import classify_export_error
from synapse_sdk.plugins.actions.export.log_messages import ExportLogMessageCode
from synapse_sdk.plugins.ledger import Ledger
from synapse_sdk.plugins.log_messages import resolve_log_message
from synapse_sdk.retry import Retrying, testing

T = TypeVar("T")

THREADS = 16


@pytest.fixture(autouse=True)
def _frequent_thread_switches() -> Iterator[None]:
    """Switch threads every 10 µs instead of 5 ms, so races show up within a short test."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def run_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(index)`` on ``count`` threads released together; results by index. The first
    error of any thread is raised in the caller."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def main(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:  # handed to the caller
            errors.append(exc)

    threads = [
        threading.Thread(target=main, args=(i,), name=f"worker-{i}") for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


class TickingClock:
    """A thread-safe fake clock: each read returns the time, then moves it ``step`` seconds, but
    only for reads from worker threads (a sampler reading the bucket does not move time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0.0
        self.step = 0.0
        self.last = 0.0

    def __call__(self) -> float:
        with self._lock:
            value = self.now
            if threading.current_thread().name.startswith("worker"):
                self.now += self.step
            self.last = value
            return value


class Sampler:
    """Reads a value on a thread until stopped; keeps the smallest and largest seen."""

    def __init__(self, read: Callable[[], float]) -> None:
        self.read = read
        self.low = float("inf")
        self.high = float("-inf")
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler")

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self.read()
            self.low, self.high = min(self.low, value), max(self.high, value)
            self.samples += 1

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


# --- the retry budget ----------------------------------------------------------------------


def test_budget_accounting_is_exact_under_many_threads() -> None:
    """Tokens = success refills + time refills - spends, exactly, with 16 threads hammering.

    The bucket starts drained and never comes near its capacity, so no refill is clipped: then
    ``tokens == 0.25 * successes + 0.5 * elapsed - spent`` must hold to the last bit (every
    quantity is a multiple of 1/16). A lost update of either operation would break it.
    """
    clock = TickingClock()
    budget = RetryBudget(64, refill_per_success=0.25, refill_per_second=0.5, clock=clock)
    assert all(budget.try_spend() for _ in range(64))
    assert not budget.try_spend()
    clock.step = 0.125  # from now on every read by a worker is 1/8 s later

    def hammer(index: int) -> tuple[int, int]:
        spent = successes = 0
        for _ in range(300):
            spent += budget.try_spend()
            budget.record_success()
            successes += 1
        return spent, successes

    with Sampler(lambda: budget.tokens) as sampler:
        outcomes = run_threads(THREADS, hammer)
    spent = sum(s for s, _ in outcomes)
    successes = sum(n for _, n in outcomes)

    final = budget.tokens
    assert final == 0.25 * successes + 0.5 * clock.last - spent
    assert spent > 0 and final >= 0.0
    assert sampler.low >= 0.0 and sampler.high <= budget.capacity
    assert sampler.samples > 0


def test_budget_never_exceeds_its_capacity_under_many_threads() -> None:
    clock = TickingClock()
    budget = RetryBudget(8, refill_per_success=0.5, refill_per_second=2.0, clock=clock)
    for _ in range(6):
        assert budget.try_spend()
    clock.step = 0.25

    def refill(index: int) -> None:
        for n in range(200):
            budget.record_success()
            if n % 10 == 0:
                budget.try_spend()

    with Sampler(lambda: budget.tokens) as sampler:
        run_threads(THREADS, refill)
    assert sampler.low >= 0.0 and sampler.high <= 8.0
    assert budget.tokens == 8.0  # time and successes refilled it, clipped at the capacity


def _flaky(failures: int, value: T) -> tuple[Callable[[], T], list[int]]:
    """A call failing ``failures`` times with a transient error, then returning ``value``."""
    attempts = [0]

    def call() -> T:
        attempts[0] += 1
        if attempts[0] <= failures:
            raise ServiceUnavailableError("flaky", outcome_unknown=False)
        return value

    return call, attempts


def _no_real_sleep(seconds: float) -> None:
    raise AssertionError(f"the engine slept {seconds} s for real inside testing()")


def test_retrying_shared_by_threads_accounts_every_retry() -> None:
    policy = RetryPolicy(
        max_attempts=4, backoff_base=0.01, budget_capacity=10_000,
        budget_refill_per_success=0.25, budget_refill_per_second=0.0,
    )
    retrying = Retrying(policy, sleep=_no_real_sleep, rng=random.Random(1), name="shared")
    budget = policy.budget
    assert budget is not None

    def calls(index: int) -> int:
        retries = 0
        for j in range(40):
            failures = 1 + (index + j) % 3  # 1..3 failures, always below max_attempts
            call, attempts = _flaky(failures, (index, j))
            assert retrying.call(call) == (index, j)
            assert attempts[0] == failures + 1
            retries += failures
        return retries

    with testing() as waits, Sampler(lambda: budget.tokens) as sampler:
        retries = sum(run_threads(THREADS, calls))
    # One planned wait per retry, recorded from every thread into the one testing() list.
    assert len(waits) == retries
    assert all(0.0 <= wait <= policy.backoff_max for wait in waits)
    # Every call spent before it refilled, so nothing was clipped: the accounting is exact.
    assert budget.tokens == 10_000 - retries + 0.25 * THREADS * 40
    assert sampler.low >= 0.0 and sampler.high <= 10_000


def test_an_exhausted_shared_budget_stops_retries_exactly() -> None:
    policy = RetryPolicy(
        max_attempts=3, backoff_base=0.0, budget_capacity=30,
        budget_refill_per_success=0.25, budget_refill_per_second=0.0,
    )
    retrying = Retrying(policy, sleep=_no_real_sleep)
    budget = policy.budget
    assert budget is not None

    def calls(index: int) -> tuple[int, int]:
        won = lost = 0
        for j in range(40):
            call, attempts = _flaky(1, j)
            try:
                assert retrying.call(call) == j
                won += 1
            except ServiceUnavailableError as exc:
                # Gave up at once: the budget had no token for the retry.
                assert attempts[0] == 1
                assert [(r.number, r.wait) for r in exc.attempts] == [(1, None)]
                lost += 1
        return won, lost

    with testing() as waits, Sampler(lambda: budget.tokens) as sampler:
        outcomes = run_threads(THREADS, calls)
    won = sum(w for w, _ in outcomes)
    lost = sum(n for _, n in outcomes)
    assert won + lost == THREADS * 40
    assert won >= 30 and lost > 0  # the first 30 retries always had a token
    assert len(waits) == won  # each call that won retried once
    assert budget.tokens == 30 - 0.75 * won  # spent 1, refilled 0.25 per won call
    assert sampler.low >= 0.0 and sampler.high <= 30


@pytest.mark.anyio
async def test_retrying_shared_by_asyncio_tasks_accounts_every_retry() -> None:
    policy = RetryPolicy(
        max_attempts=4, backoff_base=0.01, budget_capacity=1_000,
        budget_refill_per_success=0.25, budget_refill_per_second=0.0,
    )
    waits: list[float] = []

    async def asleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)  # let the other tasks run, as a real wait would

    retrying = Retrying(policy, asleep=asleep, sleep=_no_real_sleep, rng=random.Random(2))
    budget = policy.budget
    assert budget is not None

    async def task(index: int) -> int:
        failures = 1 + index % 3
        attempts = 0

        async def call() -> int:
            nonlocal attempts
            attempts += 1
            await asyncio.sleep(0)
            if attempts <= failures:
                raise NetworkTimeoutError("slow")
            return index

        assert await retrying.acall(call) == index
        assert attempts == failures + 1
        return failures

    retries = sum(await asyncio.gather(*(task(i) for i in range(300))))
    assert len(waits) == retries
    assert budget.tokens == 1_000 - retries + 0.25 * 300


# --- the backend v2 clients against one emulator -------------------------------------------

ITEMS = 400
#: Retryable and permanent per-item failures, and dropped connections (reset or cut mid-body).
FAULTS = FaultProfile(seed=7, partial_failure_rate=0.15, permanent_failure_rate=0.02,
                      drop_rate=0.1)
ITEM_CODES = {"item_unavailable", "item_corrupted"}


def _config() -> SDKConfig:
    return SDKConfig(
        retry_policy=RetryPolicy(max_attempts=8, backoff_base=0.05, backoff_max=1.0,
                                 budget_capacity=None),
    )


def _ids_of(worker: int, call: int) -> list[int]:
    """Each worker's own ids for one call: overlapping other workers', with duplicates."""
    rng = random.Random(worker * 1000 + call)
    return [rng.randint(1, ITEMS) for _ in range(70)]


def _reference(emu: Emulator, clock: FakeClock) -> dict[int, dict[str, Any]]:
    """Every task item (its bulk shape), fetched once by one thread from a fault-free view."""
    with BackendV2Client(_config(), base_url=emu.url, token=emu.token, tenant=emu.tenant,
                         sleep=clock.sleep, clock=clock) as client:
        ids = [item["id"] for item in client.tasks.iter(limit=500)]
        return {item["id"]: item for item in client.tasks.bulk_fetch(ids)}


def _settle(call: Callable[[], list[dict[str, Any]]]) -> tuple[list[dict[str, Any]],
                                                                   dict[Any, Any]]:
    try:
        return call(), {}
    except BackendError as exc:
        assert exc.error_code == "partial_failure", exc
        return succeeded_items(exc), dict(exc.failed_codes)


def _check_bulk(ids: list[int], fetched: list[dict[str, Any]], failed: dict[Any, Any],
                reference: dict[int, dict[str, Any]]) -> None:
    wanted = list(dict.fromkeys(ids))
    fetched_ids = [item["id"] for item in fetched]
    assert len(fetched_ids) == len(set(fetched_ids)), "an item came back twice"
    assert not set(fetched_ids) & set(failed), "an item is both fetched and failed"
    assert sorted(fetched_ids + list(failed)) == sorted(wanted), "an item was lost"
    assert fetched_ids == [i for i in wanted if i in set(fetched_ids)], "input order lost"
    assert all(_unsigned(item) == _unsigned(reference[item["id"]]) for item in fetched), (
        "an item is wrong"
    )
    assert set(failed.values()) <= ITEM_CODES


def _unsigned(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` without its file URLs: each answer signs them afresh (expiry, server key)."""
    manifest = {name: {k: v for k, v in entry.items() if k != "url"}
                for name, entry in item.get("files_manifest", {}).items()}
    return {**item, "files_manifest": manifest}


def _check_log(emu: Emulator, logical_calls: int, stats: dict[str, int]) -> None:
    """One correlation id per logical call, shared by its retries and rounds only."""
    records = emu.requests
    ids = Counter(record.correlation_id for record in records)
    assert None not in ids
    assert len(ids) == logical_calls
    assert stats["requests"] == len(records)
    by_call: dict[str | None, set[str]] = {}
    for record in records:
        by_call.setdefault(record.correlation_id, set()).add(record.path)
    assert all(len(paths) == 1 for paths in by_call.values()), "a correlation id was reused"


@pytest.mark.parametrize("faults", [None, FAULTS], ids=["clean", "faults"])
def test_sync_client_shared_by_threads(faults: FaultProfile | None) -> None:
    clock = FakeClock()
    with Emulator(items=ITEMS, seed=3, clock=clock) as clean:
        reference = _reference(clean, clock)
    with Emulator(items=ITEMS, seed=3, faults=faults, clock=clock) as emu, BackendV2Client(
        _config(), base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=clock.sleep,
        clock=clock,
        rng=random.Random(4),
    ) as client:

        def work(worker: int) -> int:
            calls = 0
            for n in range(3):
                ids = _ids_of(worker, n)
                fetched, failed = _settle(lambda ids=ids: client.tasks.bulk_fetch(ids))
                _check_bulk(ids, fetched, failed, reference)
                calls += 1
            cursor = None
            for number in range(2):  # the first two pages, in order, equal to the reference
                page = client.tasks.list_page(cursor, limit=50)
                assert [item["id"] for item in page.items] == list(
                    range(1 + 50 * number, 51 + 50 * number)
                )
                assert all(item["project_id"] == reference[item["id"]]["project_id"]
                           for item in page.items)  # slim list items: no data to compare
                cursor = page.next_cursor
                calls += 1
            return calls

        logical_calls = sum(run_threads(THREADS, work))
        stats = client.stats.as_dict()
    _check_log(emu, logical_calls, stats)
    if faults is not None:
        faulted = Counter(f for r in emu.requests for f in r.faults)
        assert faulted["partial_failure"] > 0
        assert faulted["drop_reset"] + faulted["drop_truncated"] > 0
        assert stats["retries"] > 0 and stats["items_retried"] > 0


@pytest.mark.anyio
@pytest.mark.parametrize("faults", [None, FAULTS], ids=["clean", "faults"])
async def test_async_client_shared_by_tasks(faults: FaultProfile | None) -> None:
    clock = FakeClock()
    async with Emulator(items=ITEMS, seed=3, clock=clock) as clean:
        reference = await asyncio.to_thread(_reference, clean, clock)
    async with Emulator(items=ITEMS, seed=3, faults=faults, clock=clock) as emu, \
            AsyncBackendV2Client(_config(), base_url=emu.url, token=emu.token, tenant=emu.tenant,
                                 sleep=clock.asleep, clock=clock, rng=random.Random(4)) as client:

        async def work(worker: int) -> int:
            for n in range(2):
                ids = _ids_of(worker, n)
                try:
                    fetched, failed = await client.tasks.bulk_fetch(ids), {}
                except BackendError as exc:
                    assert exc.error_code == "partial_failure", exc
                    fetched, failed = succeeded_items(exc), dict(exc.failed_codes)
                _check_bulk(ids, fetched, failed, reference)
            page = await client.tasks.list_page(None, limit=20)
            assert [item["id"] for item in page.items] == list(range(1, 21))
            return 3

        logical_calls = sum(await asyncio.gather(*(work(w) for w in range(40))))
        stats = client.stats.as_dict()
    _check_log(emu, logical_calls, stats)


# --- classifiers and messages from many threads --------------------------------------------


def _corpus() -> list[tuple[BaseException | None, str | None]]:
    def chained(outer: BaseException, inner: BaseException) -> BaseException:
        outer.__cause__ = inner
        return outer

    envelope = json.dumps({"error": {"code": "partial_failure", "failed": [{"id": 7}]}})
    return [
        (BackendError("x", error_code="rate_limited", status_code=429), None),
        (BackendError(f"bulk fetch failed: {envelope}"), None),
        (BackendError('{"error": {"code": "invalid_ids", "invalid_ids": [1]}}'), None),
        (chained(RuntimeError("export failed"), OSError(errno.ENOSPC, "No space left")), None),
        (chained(ActionStepError("save", "ExportAction", None), PermissionError(13, "denied")),
         None),
        (httpx.ConnectError("All connection attempts failed"), None),
        (httpx.ReadTimeout("timed out"), None),
        (KeyError("annotations"), None),
        (ValueError("Expecting value: line 1 column 1 (char 0)"), None),
        (TimeoutError(), None),
        (ServiceUnavailableError("503 Service Unavailable"), None),
        (None, "peer closed connection without sending complete message body"),
        (None, "HTTP 401 Unauthorized: token expired"),
        (None, "step 'convert' failed"),
        (None, "nothing to see here"),
        (ConnectionResetError(104, "Connection reset by peer"), "while saving"),
        (RuntimeError("x" * 300_000 + " Too Many Requests"), None),
    ]


def _answers(corpus: list[tuple[BaseException | None, str | None]]) -> list[object]:
    answers: list[object] = []
    categories = [get_category(name) for name in CATEGORY_NAMES]
    for exc, message in corpus:
        answers.append(classify_export_error(exc, message))
        answers.extend(category.classify(exc, message) for category in categories)
        explained = categories[0].classifier.explain(exc, message)
        answers.append(None if explained is None else (explained.code, explained.layer))
        if exc is not None:
            answers.append(flatten_exception(exc))
    for code in ExportLogMessageCode:
        for language in ("en", "ko", "ko-KR", None):
            answers.append(resolve_log_message(code, language, count=3, step="save", code="c"))
    with use_language("ko"):
        answers.extend(resolve_log_message(code, count=1) for code in ExportLogMessageCode)
    answers.extend(resolve_log_message(code, count=1) for code in ExportLogMessageCode)
    return answers


def test_classifiers_and_messages_agree_across_threads() -> None:
    corpus = _corpus()
    expected = _answers(corpus)

    def work(index: int) -> list[list[object]]:
        return [_answers(corpus) for _ in range(3)]

    for rounds in run_threads(THREADS, work):
        for answers in rounds:
            assert answers == expected


# --- the ledger ----------------------------------------------------------------------------


def test_ledger_shared_by_threads_loses_no_update(tmp_path: Path) -> None:
    ids = list(range(120)) + [f"s-{n}" for n in range(40)]
    exported = set(ids[::3])
    with Ledger(tmp_path) as ledger:

        def fail_everything(index: int) -> None:
            for item_id in ids:
                ledger.enqueue_retry([item_id], code="item_unavailable")
                ledger.mark_failed(item_id, f"code-{index % 2}")

        run_threads(THREADS, fail_everything)
        # Each thread counted two attempts per item: no increment may be lost.
        assert {ledger.get(i).attempts for i in ids} == {2 * THREADS}  # type: ignore[union-attr]

        def export_and_requeue(index: int) -> int:
            changed = ledger.mark_exported(sorted(exported, key=str))
            ledger.enqueue_retry(ids, code="late")  # exported items stay exported
            return changed

        changed = run_threads(THREADS, export_and_requeue)
        summary = ledger.summary()
        assert sum(changed) == len(exported)  # each item was marked exported exactly once
        assert summary.exported == len(exported)
        assert summary.pending == len(ids) - len(exported)
        assert summary.total == len(ids)
        for item_id in ids:
            record = ledger.get(item_id)
            assert record is not None
            if item_id in exported:
                assert (record.state, record.code) == ("exported", None)
            else:
                assert (record.state, record.code, record.attempts) == (
                    "pending", "late", 3 * THREADS
                )


# --- actions -------------------------------------------------------------------------------


class _Probe(BaseAction[Any]):
    def run(self) -> None:  # pragma: no cover - never run
        raise NotImplementedError


def test_base_action_resources_are_built_once_and_logging_is_thread_safe(
    tmp_path: Path,
) -> None:
    action = _Probe(job_dir=tmp_path / "job")

    def work(index: int) -> tuple[int, int]:
        ledger, job_log = action.ledger, action.job_log
        for n in range(25):
            action.log_message(ExportLogMessageCode.EXPORT_RESULTS_FETCHED, count=n)
        return id(ledger), id(job_log)

    with action:
        resources = set(run_threads(THREADS, work))
    assert len(resources) == 1  # one ledger and one job log, whoever asked first
    events = list(read_job_log(tmp_path / "job" / "job.log.jsonl"))
    assert len(events) == THREADS * 25  # every line whole, none interleaved
    assert Counter(event["params"]["count"] for event in events) == {n: THREADS for n in range(25)}


def test_a_second_export_over_the_same_folder_is_refused_while_one_runs(tmp_path: Path) -> None:
    clock = FakeClock()
    refused: list[BaseException] = []
    with Emulator(items=30, clock=clock) as emu, BackendV2Client(
        base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=clock.sleep, clock=clock
    ) as client:

        def second_run(progress: ExportProgress) -> None:
            if refused:
                return
            other = ExportAction({"out_dir": tmp_path, "ids": [1, 2]}, v2_client=client,
                                 sleep=clock.sleep, monotonic=clock)
            with other, pytest.raises(JobLockedError) as info:
                other.run()
            refused.append(info.value)

        first = ExportAction({"out_dir": tmp_path, "batch_size": 10}, v2_client=client,
                             sleep=clock.sleep, monotonic=clock, on_progress=second_run)
        with first:
            summary = first.run()
    assert refused, "the second run was never attempted"
    assert summary.exported == 30 and summary.ok
    assert sorted(p.name for p in (tmp_path / "tasks").glob("*.json")) == sorted(
        f"{n}.json" for n in range(1, 31)
    )


# --- the Synap client ----------------------------------------------------------------------


def test_renewal_never_closes_a_connection_another_thread_is_about_to_use(synap: Any) -> None:
    client = synap.ready()
    client.ingest(["prefers tea"], user_id="u")
    transport = client._transport
    original = transport._client_for
    renewed: list[str] = []

    def client_for(call: Any) -> Any:
        http = original(call)
        if call.path == "/v1/context" and not renewed:
            # This call holds the HTTP client of the current certificate and is about to send.
            # Meanwhile another thread renews the certificate and calls with the new one.
            def renew_and_call() -> None:
                renewed.append(client.renew_certificate().serial)
                client.ingest(["and biscuits"], user_id="u")

            other = threading.Thread(target=renew_and_call)
            other.start()
            other.join()
        return http

    transport._client_for = client_for
    context = client.get_context(user_id="u")
    assert renewed and {m.content for m in context.memories} >= {"prefers tea"}
    assert client.certificate_status().serial == renewed[0]


def test_threads_crossing_the_renewal_point_renew_once(
    synap: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = synap.ready()
    client.ingest(["note"], user_id="u")
    before = client.certificate_status().serial
    synap.clock.advance(2_700)  # under 30 % of the one-hour TTL left: renewal is due
    caplog.set_level(logging.INFO, logger="synapse_sdk.clients.synap")

    def call(index: int) -> int:
        return len(client.get_context(user_id="u").memories)

    assert run_threads(12, call) == [1] * 12
    renewals = [r for r in caplog.records if r.getMessage() == "synap.certificate.renewed"]
    assert len(renewals) == 1
    assert client.certificate_status().serial != before


@pytest.mark.anyio
async def test_tasks_crossing_the_renewal_point_renew_once(synap: Any) -> None:
    instance_id, token = synap.fresh()
    async with synap.async_client(instance_id) as client:
        await client.initialize(bootstrap_token=token)
        await client.ingest(["note"], user_id="u")
        before = client.certificate_status().serial
        synap.clock.advance(2_700)
        saves: list[str] = []
        store_save = client._core.store.save

        def counting_save(*args: Any, **kwargs: Any) -> Any:
            creds = store_save(*args, **kwargs)
            saves.append(creds.meta.serial)
            return creds

        client._core.store.save = counting_save
        results = await asyncio.gather(
            *(client.get_context(user_id="u") for _ in range(30))
        )
        assert [len(r.memories) for r in results] == [1] * 30
        assert len(saves) == 1 and saves[0] != before


def test_concurrent_listen_calls_start_one_stream(
    synap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = synap.ready()
    started: list[object] = []

    class CountingStream(synap_module.ThreadedStream):
        def start(self) -> None:
            started.append(self)
            super().start()

    monkeypatch.setattr(synap_module, "ThreadedStream", CountingStream)

    def listen(index: int) -> str:
        try:
            client.listen(on_message=lambda message: None)
        except ListeningAlreadyActiveError:
            return "refused"
        return "listening"

    outcomes = run_threads(8, listen)
    try:
        assert sorted(outcomes) == ["listening"] + ["refused"] * 7
        assert len(started) == 1
        assert client.listening
    finally:
        client.stop_listening()
    assert not client.listening
