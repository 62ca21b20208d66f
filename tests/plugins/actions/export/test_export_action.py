"""The export action over real sockets against the emulator, on a fake clock (nothing sleeps).

The emulator and the action share one :class:`FakeClock`: every wait the client plans (backoff,
Retry-After, pacing) advances the time the emulator's token bucket and outage windows see.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest

import synapse_sdk.storage as storage_module
from synapse_sdk.clients._transport import Transport
from synapse_sdk.clients.backend_v2 import BackendV2Client
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import (
    Emulator,
    FakeClock,
    FaultProfile,
    RateLimit,
    RequestRecord,
    Store,
)
from synapse_sdk.emulator.store import attributes
from synapse_sdk.exceptions import AuthenticationError, BackendRateLimitError
from synapse_sdk.plugins.action import JOB_LOG_FILENAME, ActionStepError, read_job_log
from synapse_sdk.plugins.actions.export.action import (
    JOB_FOLDER,
    ExportAction,
    ExportParams,
    ExportProgress,
    ExportSummary,
    JobLockedError,
    JobMismatchError,
)
from synapse_sdk.plugins.actions.export.steps import (
    RatePacer,
    UnsafeItemIdError,
    atomic_write,
    chunked,
    clean_temp_files,
    convert_item,
    item_filename,
    original_extension,
)
from synapse_sdk.plugins.ledger import Ledger

SECRET = "emu_test-token-that-must-not-leak"
API_PREFIXES = ("/v2/tasks/", "/v2/assignments/", "/v2/ground-truths/")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _action(
    emu: Emulator, clock: FakeClock, out: Path, token: str | None = None, **params: Any
) -> ExportAction:
    policy = RetryPolicy(max_attempts=6, backoff_base=0.2, backoff_max=5.0, retry_after_max=30.0)
    config = SDKConfig(
        backend_url=emu.url, token=token or emu.token, tenant=emu.tenant, retry_policy=policy,
        language="en",
    )
    return ExportAction(
        {"out_dir": out, "workers": 2, **params},
        config=config,
        sleep=clock.sleep,
        monotonic=clock,
        clock=clock,
    )


def _run(emu: Emulator, clock: FakeClock, out: Path, **params: Any) -> ExportSummary:
    with _action(emu, clock, out, **params) as action:
        return action.run()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _check_output(emu: Emulator, target_dir: Path, resource: str, ids: set[int]) -> None:
    """Every id in ``ids`` has its JSON and its original (bytes the backend holds, per a fresh
    store seeded like the emulator's), nothing else is in the folder, no temp file is left."""
    store = Store(items=emu.items, seed=emu.seed)
    try:
        _compare(store, target_dir, resource, ids)
    finally:
        store.close()


def _compare(store: Store, target_dir: Path, resource: str, ids: set[int]) -> None:
    names = _files(target_dir)
    assert not [n for n in names if n.startswith(".")], "temporary files left behind"
    records = [n for n in names if re.fullmatch(r"\d+\.json", n)]
    assert {int(n[:-5]) for n in records} == ids
    assert len(names) == 2 * len(ids)  # and one original beside each
    for item_id in ids:
        record = json.loads((target_dir / f"{item_id}.json").read_bytes())
        assert record["id"] == item_id and record["resource"] == resource
        original = store.original(resource, item_id)
        assert original is not None
        content = (target_dir / record["original"]["file"]).read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        assert digest == original.sha256 == record["original"]["sha256"]
        assert record["data"] == store.item(resource, item_id)["data"]  # type: ignore[index]


# -- a clean export --------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["tasks", "assignments", "ground-truths"])
def test_clean_export_writes_every_item_exactly_once(
    tmp_path: Path, clock: FakeClock, target: str
) -> None:
    progress: list[ExportProgress] = []
    with Emulator(items=120, clock=clock, sleep=clock.sleep) as emu:
        with _action(emu, clock, tmp_path, target=target, page_size=50, batch_size=40) as action:
            action._on_progress = progress.append
            summary = action.run()
        requests = emu.requests
    assert (summary.exported, summary.skipped, summary.failed) == (120, 0, 0)
    assert summary.ok and summary.retry_rounds == 0 and summary.retried == 0
    assert summary.requests == len(requests)
    _check_output(emu, tmp_path / target, target, set(range(1, 121)))
    downloads = Counter(r.path for r in requests if r.path.startswith("/storage/"))
    assert len(downloads) == 120 and set(downloads.values()) == {1}
    fetched = Counter(i for r in requests if r.path.endswith(("/bulk-fetch/", "/bulk-data/"))
                      for i in r.ids or ())
    assert len(fetched) == 120 and set(fetched.values()) == {1}
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert progress[-1].exported == 120
    with Ledger(tmp_path / JOB_FOLDER / target) as ledger:
        assert ledger.summary().exported == 120
    codes = [e["code"] for e in read_job_log(tmp_path / JOB_FOLDER / target / JOB_LOG_FILENAME)]
    assert codes[:2] == ["EXPORT_INITIALIZED", "EXPORT_TARGET"]
    assert codes[-1] == "EXPORT_COMPLETED"
    assert {"EXPORT_RESULTS_FETCHED", "EXPORT_CONVERTING", "EXPORT_FILES_SAVED"} <= set(codes)


def test_an_empty_project_exports_nothing_and_says_so(tmp_path: Path, clock: FakeClock) -> None:
    with Emulator(items=0, clock=clock, sleep=clock.sleep) as emu:
        summary = _run(emu, clock, tmp_path)
    assert summary.total == 0 and summary.ok
    events = read_job_log(tmp_path / JOB_FOLDER / "tasks" / JOB_LOG_FILENAME)
    assert "EXPORT_NO_RESULTS" in [e["code"] for e in events]


# -- faults ----------------------------------------------------------------------------------

FAULTY = FaultProfile(
    seed=11,
    partial_failure_rate=0.10,
    permanent_failure_rate=0.01,
    # No rate-limit headers: the pacer would keep every request clear of a 429; this run
    # exercises learning the rate from the 429s themselves.
    rate_limit=RateLimit(per_second=1.0, burst=2, headers=False),
    outages=((3.0, 5.0),),
    latency=(0.0, 0.002),
    drop_rate=0.05,
)


@dataclass(frozen=True)
class _FaultedRun:
    out: Path
    summary: ExportSummary
    requests: list[RequestRecord]
    emulator: Emulator


@pytest.fixture(scope="module")
def faulted_run(tmp_path_factory: pytest.TempPathFactory) -> _FaultedRun:
    """One export of 600 items under every fault, shared by the tests that inspect it."""
    clock = FakeClock()
    out = tmp_path_factory.mktemp("faulted")
    with Emulator(items=600, faults=FAULTY, clock=clock, sleep=clock.sleep) as emu:
        summary = _run(emu, clock, out, page_size=100, batch_size=50)
        requests = sorted(emu.requests, key=lambda r: r.seq)
    return _FaultedRun(out, summary, requests, emu)


def test_under_faults_every_item_is_exported_once_or_reported_with_its_code(
    faulted_run: _FaultedRun,
) -> None:
    ids = set(range(1, 601))
    out, summary = faulted_run.out, faulted_run.summary
    faults = Counter(f for r in faulted_run.requests for f in r.faults)
    # The profile really did all of it.
    for fault in ("partial_failure", "rate_limited", "outage", "drop_reset", "drop_truncated"):
        assert faults[fault] > 0, fault
    corrupted = {i for i in ids if FAULTY.is_corrupted("tasks", i)}
    assert corrupted
    with Ledger(out / JOB_FOLDER / "tasks") as ledger:
        exported = {i for i in ids if (r := ledger.get(i)) is not None and r.state == "exported"}
        failed = {r.id: r.code for r in ledger.iter_failed()}
        assert ledger.summary().pending == 0
    assert exported | set(failed) == ids and not exported & set(failed)
    assert failed == dict.fromkeys(corrupted, "item_corrupted")
    assert summary.exported == len(exported) and summary.failed == len(corrupted)
    assert summary.failed_by_code == {"item_corrupted": len(corrupted)}
    assert summary.failed_by_message == {"EXPORT_FAILED_MALFORMED_DATA": len(corrupted)}
    assert summary.retried > 0 and summary.retry_rounds >= 1
    _check_output(faulted_run.emulator, out / "tasks", "tasks", exported)
    events = list(read_job_log(out / JOB_FOLDER / "tasks" / JOB_LOG_FILENAME))
    assert events[-1]["code"] == "EXPORT_COMPLETED_WITH_FAILURES"
    assert events[-1]["params"] == {"exported": len(exported), "failed": len(corrupted)}
    item_failed = [e for e in events if e["code"] == "EXPORT_ITEM_FAILED"]
    assert {e["params"]["item_id"] for e in item_failed} == corrupted


def test_no_request_is_sent_before_its_retry_after(faulted_run: _FaultedRun) -> None:
    requests = faulted_run.requests
    hinted = [r for r in requests if r.status in (429, 503) and r.retry_after is not None]
    assert any(r.status == 429 for r in hinted) and any(r.status == 503 for r in hinted)
    for rejected in hinted:
        allowed = rejected.time + rejected.retry_after  # type: ignore[operator]
        later = [r for r in requests if r.seq > rejected.seq]
        # The retry of the same call waits at least as long as asked...
        same_call = [r for r in later if r.correlation_id == rejected.correlation_id]
        assert same_call, f"request {rejected.seq} was never retried"
        assert same_call[0].time >= allowed - 1e-9
        if rejected.status == 429:
            # ...and, the rate limit being per token, so does every other API request.
            api = [r for r in later if r.path.startswith(API_PREFIXES)]
            assert all(r.time >= allowed - 1e-9 for r in api)


def test_pacing_stops_spending_requests_on_rate_limits(tmp_path: Path, clock: FakeClock) -> None:
    # On a fake clock work takes no time, so without pacing every request after the burst
    # would be rejected once: 20 bulk fetches would cost ~40 requests.
    profile = FaultProfile(rate_limit=RateLimit(per_second=2.0, burst=2))
    with Emulator(items=1000, faults=profile, clock=clock, sleep=clock.sleep) as emu:
        summary = _run(emu, clock, tmp_path, page_size=500, batch_size=50, originals=False)
        api = [r for r in emu.requests if r.path.startswith(API_PREFIXES)]
    rejected = sum(1 for r in api if r.status == 429)
    assert summary.exported == 1000
    assert summary.rate_limited == rejected
    assert rejected <= 4, rejected
    assert len(api) <= 20 + 2 + 4  # bulk fetches + list pages + the few 429s that taught it
    events = read_job_log(tmp_path / JOB_FOLDER / "tasks" / JOB_LOG_FILENAME)
    waits = [e for e in events if e["code"] == "EXPORT_RATE_LIMITED_WAITING"]
    assert len(waits) == rejected and all(e["params"]["seconds"] > 0 for e in waits)


def test_ids_the_backend_does_not_serve_fail_once_without_retry(
    tmp_path: Path, clock: FakeClock
) -> None:
    with Emulator(items=20, clock=clock, sleep=clock.sleep) as emu:  # the real API: drops them
        summary = _run(emu, clock, tmp_path, ids=[1, 2, 3, 998, 999])
        bulk = [r for r in emu.requests if r.path.endswith("/bulk-fetch/")]
    assert summary.exported == 3
    assert summary.failed_by_code == {"not_served": 2}
    assert summary.failed_by_message == {"EXPORT_FAILED_NOT_SERVED": 2}
    assert [(r.ids, r.status) for r in bulk] == [((1, 2, 3, 998, 999), 200)]  # one request
    events = list(read_job_log(tmp_path / JOB_FOLDER / "tasks" / JOB_LOG_FILENAME))
    noted = [e for e in events if e["code"] == "EXPORT_FAILED_NOT_SERVED" and "ids" in e["params"]]
    assert len(noted) == 1 and set(noted[0]["params"]["ids"]) == {"998", "999"}  # when fetched
    assert not any(e["code"] == "EXPORT_FAILED_BATCH_PARTIAL" for e in events)
    assert not any(e["code"] == "EXPORT_RETRYING_FAILED_ITEMS" for e in events)
    _check_output(emu, tmp_path / "tasks", "tasks", {1, 2, 3})


def test_failed_items_are_listed_in_numeric_order(tmp_path: Path, clock: FakeClock) -> None:
    with Emulator(items=5, clock=clock, sleep=clock.sleep) as emu:
        summary = _run(emu, clock, tmp_path, ids=[1000, 20, 3, 100, 9])
    assert [item["id"] for item in summary.failed_items] == [9, 20, 100, 1000]


# -- filters ---------------------------------------------------------------------------------

ASSIGNMENTS_DONE = {"status_label": "completed,skipped", "is_confirmed": "true"}


def _done(item_id: int) -> bool:
    found = attributes(0, "assignments", item_id)
    return bool(found["status_label"] in ("completed", "skipped") and found["is_confirmed"])


def test_a_filtered_export_writes_exactly_the_matching_items_and_a_rerun_nothing(
    tmp_path: Path, clock: FakeClock
) -> None:
    wanted = {i for i in range(1, 151) if _done(i)}
    assert 0 < len(wanted) < 150
    with Emulator(items=150, clock=clock, sleep=clock.sleep) as emu:
        first = _run(emu, clock, tmp_path, target="assignments", filter=ASSIGNMENTS_DONE,
                     page_size=40)
        again = _run(emu, clock, tmp_path, target="assignments", page_size=40,
                     filter={"is_confirmed": True, "status_label": ["completed", "skipped"]})
        requests = emu.requests
    assert (first.exported, first.failed) == (len(wanted), 0)
    assert (again.exported, again.skipped, again.failed) == (0, len(wanted), 0)
    _check_output(emu, tmp_path / "assignments", "assignments", wanted)
    lists = [r for r in requests if r.path == "/v2/assignments/"]
    assert lists and all("status_label=completed&status_label=skipped" in r.query for r in lists)
    fetched = [i for r in requests if r.path.endswith("/bulk-fetch/") for i in r.ids or ()]
    assert sorted(fetched) == sorted(wanted)  # the rerun fetched nothing


def test_a_rerun_with_another_filter_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    with Emulator(items=40, clock=clock, sleep=clock.sleep) as emu:
        first = _run(emu, clock, tmp_path, filter={"is_discarded": "false"})
        with pytest.raises(JobMismatchError, match=(
            r"was started with filter is_discarded=false, not is_discarded=true: rerun with "
            r"the same filter")) as caught:
            _run(emu, clock, tmp_path, filter={"is_discarded": "true"})
        with pytest.raises(JobMismatchError, match=r"not \(none\)"):
            _run(emu, clock, tmp_path)
        before = len(emu.requests)
    assert caught.value.recorded == {"is_discarded": "false"}
    assert caught.value.given == {"is_discarded": "true"}
    assert len(list((tmp_path / "tasks").glob("*.json"))) == first.exported
    # Another target is another job: its own filter.
    with Emulator(items=40, clock=clock, sleep=clock.sleep) as emu:
        other = _run(emu, clock, tmp_path, target="ground-truths", filter={"category": "test"})
    assert other.ok and before > 0


def test_an_output_exported_before_filters_is_unfiltered(tmp_path: Path, clock: FakeClock) -> None:
    with Emulator(items=10, clock=clock, sleep=clock.sleep) as emu:
        _run(emu, clock, tmp_path)
        with sqlite3.connect(tmp_path / JOB_FOLDER / "tasks" / "ledger.sqlite3") as conn:
            conn.execute("DELETE FROM settings")  # as a ledger of the previous release
        assert _run(emu, clock, tmp_path).skipped == 10
        with pytest.raises(JobMismatchError, match="started with filter \\(none\\)"):
            _run(emu, clock, tmp_path, filter={"has_data": "true"})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter": {"colour": "red"}}, "unknown filter 'colour' for tasks; accepted: has_data"),
        ({"filter": {"per_page": "3"}}, "filter 'per_page' is reserved"),
        ({"filter": {"project": "x"}}, "'x' is not an integer"),
        ({"target": "ground-truths", "filter": {"category": "val"}}, "is not one of"),
        ({"filter": {"project": "1"}, "ids": [1]}, "ids and filter cannot be combined"),
        ({"filter": "project=1"}, "valid dictionary"),
    ],
)
def test_bad_filters_are_refused(tmp_path: Path, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExportParams.model_validate({"out_dir": tmp_path, **params})


def test_filter_values_given_as_python_values_become_text(tmp_path: Path) -> None:
    params = ExportParams(out_dir=tmp_path, target="assignments", filter={
        "project": 1, "is_confirmed": False, "users": [3, 4], "status_label": "completed",
    })
    assert params.filter == {"project": "1", "is_confirmed": "false", "users": "3,4",
                             "status_label": "completed"}
    assert ExportParams(out_dir=tmp_path, filter=None).filter == {}


def test_invalid_ids_end_as_bad_request_without_retry(tmp_path: Path, clock: FakeClock) -> None:
    seeds = FaultProfile(unknown_ids="invalid_ids")  # the seed's 400 invalid_ids, selected
    with Emulator(items=20, faults=seeds, clock=clock, sleep=clock.sleep) as emu:
        summary = _run(emu, clock, tmp_path, ids=[1, 2, 3, 998, 999])
        bulk = [r for r in emu.requests if r.path.endswith("/bulk-fetch/")]
    assert summary.exported == 3
    assert summary.failed_by_code == {"invalid_id": 2}
    assert summary.failed_by_message == {"EXPORT_FAILED_BAD_REQUEST": 2}
    assert [r.ids for r in bulk] == [(1, 2, 3, 998, 999), (1, 2, 3)]
    assert [r.status for r in bulk] == [400, 200]
    events = list(read_job_log(tmp_path / JOB_FOLDER / "tasks" / JOB_LOG_FILENAME))
    bad = [e for e in events if e["code"] == "EXPORT_FAILED_BAD_REQUEST"]
    assert bad and bad[0]["level"] == "error"
    assert {"998", "999"} <= set(bad[0]["params"]["ids"])
    assert not any(e["code"] == "EXPORT_RETRYING_FAILED_ITEMS" for e in events)
    _check_output(emu, tmp_path / "tasks", "tasks", {1, 2, 3})


def test_unsafe_ids_are_refused_before_any_request(tmp_path: Path, clock: FakeClock) -> None:
    unsafe = ["../escape", "/etc/passwd", "a/b", "a\\b", "nul\x00", ".hidden", "..", ""]
    with Emulator(items=5, clock=clock, sleep=clock.sleep) as emu:
        summary = _run(emu, clock, tmp_path / "out", ids=[1, *unsafe])
        bulk = [r for r in emu.requests if r.path.endswith("/bulk-fetch/")]
    assert [r.ids for r in bulk] == [(1,)]
    assert summary.exported == 1 and summary.failed_by_code == {"unsafe_id": len(unsafe)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing escaped


# -- resume ----------------------------------------------------------------------------------


def test_rerun_skips_exported_items_and_repairs_what_is_missing(
    tmp_path: Path, clock: FakeClock
) -> None:
    with Emulator(items=60, clock=clock, sleep=clock.sleep) as emu:
        first = _run(emu, clock, tmp_path, page_size=25)
        target = tmp_path / "tasks"
        (target / "7.json").unlink()  # a file deleted since
        (target / "8.json").write_bytes(b'{"id": 8, "resou')  # a half file from elsewhere
        (target / ".9.json.0123456789abcdef.tmp").write_bytes(b"{")  # left by a kill
        original = target / json.loads((target / "10.json").read_bytes())["original"]["file"]
        original.write_bytes(original.read_bytes()[:-1])  # truncated: size and SHA-256 differ
        same_size = target / json.loads((target / "12.json").read_bytes())["original"]["file"]
        same_size.write_bytes(bytes(len(same_size.read_bytes())))  # same size, other bytes
        (target / "11.json").write_bytes(b"{}")  # a record replaced by an empty object
        emu.reset_log()
        second = _run(emu, clock, tmp_path, page_size=25)
        bulk = [r for r in emu.requests if r.path.endswith("/bulk-fetch/")]
    assert first.exported == 60
    assert (second.exported, second.skipped, second.failed) == (5, 55, 0)
    assert [sorted(r.ids) for r in bulk] == [[7, 8, 10, 11, 12]]  # the ledger reads in text order
    _check_output(emu, target, "tasks", set(range(1, 61)))
    events = read_job_log(tmp_path / JOB_FOLDER / "tasks" / JOB_LOG_FILENAME)
    resumed = [e for e in events if e["code"] == "EXPORT_RESUMED"]
    assert resumed and resumed[-1]["params"] == {"skipped": 55, "repaired": 5}


def test_items_left_pending_by_an_earlier_run_are_retried(tmp_path: Path, clock: FakeClock) -> None:
    with Ledger(tmp_path / JOB_FOLDER / "tasks") as ledger:
        ledger.enqueue_retry([31, 32], "item_unavailable")  # not in the ids asked for this time
    with Emulator(items=40, clock=clock, sleep=clock.sleep) as emu:
        summary = _run(emu, clock, tmp_path, ids=[1, 2])
        bulk = [r.ids for r in emu.requests if r.path.endswith("/bulk-fetch/")]
    assert summary.exported == 4 and summary.retried == 2
    assert bulk == [(31, 32, 1, 2)]  # waiting ids first, in the same full request
    assert {p.name for p in (tmp_path / "tasks").glob("*.json")} == {
        "1.json", "2.json", "31.json", "32.json"
    }


def test_each_run_has_its_own_retry_rounds(tmp_path: Path, clock: FakeClock) -> None:
    """Attempts earlier runs used up do not count against this one; a code learned as permanent
    survives a rerun's transient failures."""
    with Ledger(tmp_path / JOB_FOLDER / "tasks") as ledger:
        for _ in range(10):  # more than retry_rounds, spent by earlier runs
            ledger.enqueue_retry([31], "service_unavailable")
        ledger.mark_failed([33], "item_corrupted")
    with Emulator(items=40, clock=clock, sleep=clock.sleep) as emu:
        summary = _run(emu, clock, tmp_path, ids=[1, 2, 33], retry_rounds=2)
    assert summary.exported == 4 and summary.failed == 0  # 31 was retried, 33 now served
    with Ledger(tmp_path / JOB_FOLDER / "tasks") as ledger:
        assert ledger.get(31).state == "exported"  # type: ignore[union-attr]


def test_items_an_earlier_run_left_pending_are_counted_once_when_listed_later(
    tmp_path: Path, clock: FakeClock
) -> None:
    # Found by the fault soak (benchmarks/soak_export.py): a killed run leaves ids pending; the
    # rerun exports them first (from the retry queue), then its listing reaches them again.
    # They must not be counted as exported *and* skipped.
    with Ledger(tmp_path / JOB_FOLDER / "tasks") as ledger:
        ledger.enqueue_retry([31, 32], "item_unavailable")
    with Emulator(items=40, clock=clock, sleep=clock.sleep) as emu:
        summary = _run(emu, clock, tmp_path, page_size=10, batch_size=10)
        bulk = [r.ids for r in emu.requests if r.path.endswith("/bulk-fetch/")]
    assert bulk[0] == (31, 32, *range(1, 9))  # the waiting ids went first
    assert (summary.exported, summary.skipped, summary.failed) == (40, 0, 0)
    assert summary.total == 40
    _check_output(emu, tmp_path / "tasks", "tasks", set(range(1, 41)))
    # A second rerun skips every item, each once.
    with Emulator(items=40, clock=clock, sleep=clock.sleep) as emu:
        again = _run(emu, clock, tmp_path, page_size=10, batch_size=10)
    assert (again.exported, again.skipped, again.failed) == (0, 40, 0)


def test_failed_items_ride_along_in_full_requests(tmp_path: Path, clock: FakeClock) -> None:
    profile = FaultProfile(seed=2, partial_failure_rate=0.2)
    with Emulator(items=400, faults=profile, clock=clock, sleep=clock.sleep) as emu:
        summary = _run(emu, clock, tmp_path, page_size=100, batch_size=50, originals=False)
        bulk = [r.ids or () for r in emu.requests if r.path.endswith("/bulk-fetch/")]
    assert summary.exported == 400 and summary.failed == 0
    fetches = sum(len(ids) for ids in bulk)
    assert fetches == 400 + summary.retried
    # Every request is full but the main pass's last one and the few of the drain after it:
    # no request is spent on failures alone.
    assert all(len(ids) == 50 for ids in bulk[: len(bulk) - summary.retry_rounds - 1])
    assert len(bulk) <= -(-fetches // 50) + summary.retry_rounds


def test_items_still_failing_after_the_rounds_are_reported(
    tmp_path: Path, clock: FakeClock
) -> None:
    profile = FaultProfile(seed=5, partial_failure_rate=0.5)
    with Emulator(items=100, faults=profile, clock=clock, sleep=clock.sleep) as emu:
        summary = _run(emu, clock, tmp_path, retry_rounds=0)
    assert summary.failed > 0 and summary.exported + summary.failed == 100
    assert summary.failed_by_code == {"item_unavailable": summary.failed}
    assert summary.failed_by_message == {"EXPORT_FAILED_BATCH_PARTIAL": summary.failed}


def test_an_answer_that_renames_ids_cannot_make_retries_loop(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A backend that answers id "other-7" for 7 leaves 7 out of its 200: under the v2
    contract that id is not served (permanent, reported once, no retry round), so the run
    ends. ("7" for 7 is the same item: its string form.)"""

    def backend(request: httpx.Request) -> httpx.Response:
        asked = json.loads(request.content)["ids"]
        items = [{"id": f"other-{i}", "resource": "tasks", "data": {}} for i in asked]
        return httpx.Response(200, json={"data": items, "meta": {"request_id": "r"}})

    http = httpx.Client(transport=httpx.MockTransport(backend))
    client = BackendV2Client(
        base_url="http://backend.test", token=SECRET, http_client=http, sleep=clock.sleep
    )
    action = ExportAction(
        {"out_dir": tmp_path, "ids": [7, 8], "originals": False, "retry_rounds": 2},
        v2_client=client, sleep=clock.sleep, monotonic=clock,
    )
    with action, http:
        summary = action.run()
    assert summary.failed_by_code == {"not_served": 2}
    with Ledger(tmp_path / JOB_FOLDER / "tasks") as ledger:
        assert {r.id: r.attempts for r in ledger.iter_failed()} == {7: 1, 8: 1}


# -- step failures ---------------------------------------------------------------------------


def test_bad_token_fails_the_fetch_step_from_its_cause(tmp_path: Path, clock: FakeClock) -> None:
    with Emulator(items=10, clock=clock, sleep=clock.sleep) as emu:
        action = _action(emu, clock, tmp_path, token=SECRET)
        with action, pytest.raises(ActionStepError) as info:
            action.run()
    error = info.value
    assert error.step == "fetch"
    assert isinstance(error.__cause__, AuthenticationError)
    assert error.message_code is not None
    assert error.message_code.value == "EXPORT_FAILED_AUTHENTICATION"
    log = tmp_path / JOB_FOLDER / "tasks" / JOB_LOG_FILENAME
    events = list(read_job_log(log))
    codes = [e["code"] for e in events[-2:]]
    assert codes == ["EXPORT_FAILED_AUTHENTICATION", "EXPORT_FAILED_STEP"]
    assert events[-1]["params"]["step"] == "fetch"
    assert SECRET not in log.read_text(encoding="utf-8")
    assert SECRET not in str(error) and SECRET not in repr(error.__cause__)


def test_a_backend_that_stays_down_stops_the_export(tmp_path: Path, clock: FakeClock) -> None:
    with Emulator(items=10) as emu:
        url = emu.url  # a port nobody listens on once the emulator stopped
    config = SDKConfig(
        backend_url=url,
        token=SECRET,
        retry_policy=RetryPolicy(max_attempts=2, backoff_base=0.1, backoff_max=0.2),
    )
    action = ExportAction(
        {"out_dir": tmp_path, "ids": list(range(1, 301)), "batch_size": 50},
        config=config,
        sleep=clock.sleep,
        monotonic=clock,
    )
    with action, pytest.raises(ActionStepError) as info:
        action.run()
    assert info.value.step == "fetch"
    with Ledger(tmp_path / JOB_FOLDER / "tasks") as ledger:
        summary = ledger.summary()
    # The first chunk, enqueued, was tried twice more before the run gave up; it waits for
    # the rerun (the ids never tried are listed again by it).
    assert (summary.pending, summary.exported) == (50, 0)
    # While it was being handled the failure read as handling; the failure is logged once.
    codes = [e["code"] for e in read_job_log(tmp_path / JOB_FOLDER / "tasks" / JOB_LOG_FILENAME)]
    assert "EXPORT_REQUEST_RETRYING" in codes
    failures = [c for c in codes if c.startswith("EXPORT_FAILED")]
    assert failures == ["EXPORT_FAILED_SERVER_UNREACHABLE", "EXPORT_FAILED_STEP"], codes


def test_a_disk_error_fails_the_save_step(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Any, data: bytes, *, fsync: bool = True) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage_module, "atomic_write", full)
    with Emulator(items=5, clock=clock, sleep=clock.sleep) as emu:
        action = _action(emu, clock, tmp_path)
        with action, pytest.raises(ActionStepError) as info:
            action.run()
    assert info.value.step == "save"
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.message_code is not None
    assert info.value.message_code.value == "EXPORT_FAILED_DISK_FULL"


def test_a_second_export_over_the_same_folder_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    with Emulator(items=5, clock=clock, sleep=clock.sleep) as emu:
        first = _action(emu, clock, tmp_path)
        second = _action(emu, clock, tmp_path)
        with first, second, first._job_lock(), pytest.raises(JobLockedError, match="another"):
            second.run()


# -- params ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"target": "projects"},
        {"batch_size": 201},
        {"page_size": 0},
        {"ids": [True]},
        {"ids": [1.5]},
        {"language": "??"},
        {"unknown": 1},
        {"retry_rounds": -1},
    ],
)
def test_bad_params_are_refused(tmp_path: Path, params: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ExportParams.model_validate({"out_dir": tmp_path, **params})


def test_out_dir_must_not_be_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        ExportParams(out_dir=path)


def test_out_is_accepted_for_out_dir(tmp_path: Path) -> None:
    assert ExportParams.model_validate({"out": tmp_path}).out_dir == tmp_path


# -- building blocks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ["", ".", "..", "../x", "x/..", "a/b", "a\\b", "/abs", "C:evil", "nul\x00", "tab\t",
     ".hidden", "~home", "x" * 129, -1],
)
def test_item_filename_refuses_ids_that_are_not_plain_names(bad: Any) -> None:
    with pytest.raises(UnsafeItemIdError) as info:
        item_filename(bad, "json")
    assert isinstance(info.value, ValueError)


def test_item_filename_accepts_plain_ids_and_checks_its_arguments() -> None:
    assert item_filename(7, "json") == "7.json"
    assert item_filename("task-7_b", "png") == "task-7_b.png"
    with pytest.raises(TypeError):
        item_filename(True, "json")
    assert item_filename(7, "original.json") == "7.original.json"
    for bad_suffix in ("../x", "a.b.c", "", ".json"):
        with pytest.raises(ValueError, match="suffix"):
            item_filename(1, bad_suffix)


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    atomic_write(path, b"old")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert _files(tmp_path) == ["a.json"]
    with pytest.raises(TypeError):
        atomic_write(path, "text")  # type: ignore[arg-type]
    with pytest.raises(OSError):
        atomic_write(tmp_path / "missing" / "a.json", b"x")


def test_atomic_write_cleans_up_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="I/O"):
        atomic_write(tmp_path / "a.json", b"data")
    assert _files(tmp_path) == []


def test_clean_temp_files_removes_only_our_temporaries(tmp_path: Path) -> None:
    for name in (".1.json.0123456789abcdef.tmp", ".2.png.fedcba9876543210.tmp", "3.json",
                 ".keep", "x.tmp", ".4.json.short.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert clean_temp_files(tmp_path) == 2
    assert _files(tmp_path) == [".4.json.short.tmp", ".keep", "3.json", "x.tmp"]
    assert clean_temp_files(tmp_path / "missing") == 0


def test_convert_item_keeps_the_data_and_describes_the_original() -> None:
    item = {
        "id": 3, "resource": "tasks", "project_id": 1, "data": {"a": [1]},
        "original": {"url": "/v2/files/tasks/3/original", "size": 4, "sha256": "AB" * 32},
    }
    record = convert_item(item, "tasks")
    assert record.json_name == "3.json" and record.has_original
    name = record.original_name(b"\x89PNG\r\n\x1a\nrest")
    assert name == "3.png"
    data = json.loads(record.json_bytes(name))
    assert data == {
        "id": 3, "resource": "tasks", "project_id": 1, "data": {"a": [1]},
        "original": {"file": "3.png", "size": 4, "sha256": "ab" * 32},
    }
    with pytest.raises(ValueError, match="id"):
        convert_item({"no": "id"}, "tasks")
    with pytest.raises(UnsafeItemIdError):
        convert_item({"id": "../x"}, "tasks")


@pytest.mark.parametrize(
    ("original", "content", "ext"),
    [
        ({"filename": "img.JPG"}, None, "jpg"),
        ({"ext": ".png"}, None, "png"),
        ({"url": "/v2/files/tasks/1/original"}, b'{"a": 1}', "json"),
        ({"url": "/x"}, b"[1, 2", "txt"),
        ({}, "안녕".encode() * 3000, "txt"),
        ({}, b"\x00\x01\x02\xff", "bin"),
        ({}, b"%PDF-1.7", "pdf"),
        ({"filename": "../../evil.sh/"}, b"x", "txt"),
    ],
)
def test_original_extension(original: dict[str, Any], content: bytes | None, ext: str) -> None:
    assert original_extension({"id": 1, "original": original}, content) == ext


def test_chunked_reads_lazily_and_checks_the_size() -> None:
    consumed: list[int] = []

    def source() -> Iterator[int]:
        for i in range(10):
            consumed.append(i)
            yield i

    chunks = chunked(source(), 4)
    assert next(chunks) == [0, 1, 2, 3] and consumed == [0, 1, 2, 3]
    assert list(chunks) == [[4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError):
        list(chunked([1], 0))


def _paced_transport(
    backend: Any, clock: FakeClock, pacer: RatePacer, policy: RetryPolicy
) -> Transport:
    """A transport over ``backend`` whose attempts ``pacer`` paces, on the fake clock."""
    return Transport(
        SDKConfig(retry_policy=policy, backend_url="http://b"),
        http_client=httpx.Client(transport=httpx.MockTransport(backend)),
        sleep=clock.sleep,
        clock=clock,
        pacer=pacer,
    )


def test_rate_pacer_learns_the_interval_from_retry_after(clock: FakeClock) -> None:
    bucket = {"tokens": 2.0, "at": 0.0}
    rate = 4.0  # requests per second, burst 2

    def backend(request: httpx.Request) -> httpx.Response:
        now = clock()
        bucket["tokens"] = min(2.0, bucket["tokens"] + (now - bucket["at"]) * rate)
        bucket["at"] = now
        if request.url.path.startswith("/files/") or bucket["tokens"] >= 1 - 1e-9:
            if not request.url.path.startswith("/files/"):
                bucket["tokens"] -= 1
            return httpx.Response(200, json={})
        wait = (1 - bucket["tokens"]) / rate
        return httpx.Response(429, headers={"Retry-After": f"{wait:.6f}"})

    policy = RetryPolicy(budget_capacity=None)
    pacer = RatePacer(["/bulk/"], clock=clock, policy=policy)
    transport = _paced_transport(backend, clock, pacer, policy)
    for _ in range(40):
        # A 429 is retried by the transport after exactly its Retry-After.
        assert transport.request("POST", "/bulk/").status_code == 200
        transport.request("GET", "/files/1")  # never paced: downloads are not rate limited
    assert transport.stats.requests - 40 - pacer.rejections == 40
    assert pacer.rejections <= 3
    assert 0.25 <= pacer.interval <= 0.25 * 1.02
    assert clock() == pytest.approx(40 / rate, rel=0.1)


@pytest.mark.parametrize(
    ("retry_after", "learned"),
    [
        ("3600", False),
        ("DAY_AHEAD", False),
        ("1e999", False),
        ("61", False),
        ("60", True),
        ("0", True),
        ("garbage", False),
    ],
)
def test_rate_pacer_never_paces_past_the_policy(
    clock: FakeClock, retry_after: str, learned: bool
) -> None:
    """A 429's hint above ``retry_after_max`` surfaces the 429 at once and is not learned: no
    later request waits for it; a hint within the cap is waited exactly, once."""
    if retry_after == "DAY_AHEAD":
        retry_after = formatdate(time.time() + 86_400, usegmt=True)
    answers = [httpx.Response(429, headers={"Retry-After": retry_after})]

    def backend(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/bulk/" and answers:
            return answers.pop(0)
        return httpx.Response(200, json={})

    policy = RetryPolicy(retry_after_max=60.0, max_attempts=1, budget_capacity=None)
    pacer = RatePacer(["/bulk/"], clock=clock, policy=policy)
    transport = _paced_transport(backend, clock, pacer, policy)
    transport.request("GET", "/other/")  # a request let in: the pacer's reference point
    with pytest.raises(BackendRateLimitError):
        transport.request("POST", "/bulk/")  # one attempt: the 429 surfaces
    assert transport.request("POST", "/bulk/").status_code == 200
    assert all(wait <= policy.retry_after_max for wait in clock.sleeps)
    if learned:
        hint = float(retry_after)
        assert clock.sleeps == ([hint] if hint else [])  # the next request waited its slot
    else:
        assert clock.sleeps == [] and pacer.interval == 0.0
    assert pacer.rejections == 1


def test_rate_pacer_refuses_bad_settings() -> None:
    with pytest.raises(TypeError):
        RatePacer(["/x"], policy="fast")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pacer"):
        Transport(SDKConfig(backend_url="http://b"), pacer=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RatePacer([])
    with pytest.raises(ValueError):
        RatePacer(["no-slash"])
    with pytest.raises(ValueError):
        RatePacer(["/x"], margin=0.5)


def test_a_v2_item_with_only_a_manifest_is_exported_with_its_sha256_as_saved() -> None:
    content = b"\x89PNG\r\n\x1a\nfake"
    entry = {"url": "https://cdn.test/o/1?sig=x", "file_name_original": "scan.png",
             "is_primary": True, "file_size": len(content)}
    record = convert_item({"id": 4, "project_id": 1, "data": {"a": 1},
                           "files_manifest": {"image_1": entry}}, "tasks")
    assert record.has_original and record.original_name(content) == "4.png"
    data = json.loads(record.json_bytes("4.png", hashlib.sha256(content).hexdigest()))
    assert data["original"] == {"file": "4.png", "size": len(content),
                                "sha256": hashlib.sha256(content).hexdigest()}
