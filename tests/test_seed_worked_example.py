"""The export seed's worked example, pasted as written, run against the real emulator.

``MyExportAction`` below is the seed's "Worked example — handling a partial failure" verbatim.
The emulator answers its bulk fetch with 207s (some items corrupted for good, some unavailable
for a while); the client retries the retryable ones and raises the ``partial_failure``
``BackendError``; the example classifies it, logs a WARNING in the job's language and enqueues
exactly the still-failed ids in the job folder's ledger.
"""
# The seed's imports sit with its example below, as the seed writes them, not sorted into ours.
# ruff: noqa: I001

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from synapse_sdk.clients.backend_v2 import BackendV2Client
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile
from synapse_sdk.exceptions import BackendInvalidInputError
from synapse_sdk.plugins.action import JOB_LOG_FILENAME, read_job_log
from synapse_sdk.plugins.ledger import Ledger

# --- the seed's worked example, as written ----------------------------------------------------
from synapse_sdk.exceptions import BackendError
from synapse_sdk.plugins.action import BaseAction
from synapse_sdk.plugins.actions.export.failure_classifier import (
    classify_export_error,
)
from synapse_sdk.plugins.actions.export.log_messages import (
    ExportLogMessageCode,
)


class MyExportAction(BaseAction):
    def run(self):
        try:
            self.v2_client.assignments.bulk_fetch(ids=self.params.ids)
        except BackendError as exc:
            code = classify_export_error(exc)
            if code is ExportLogMessageCode.EXPORT_FAILED_BATCH_PARTIAL:
                # Half the batch succeeded — surface a WARNING and
                # schedule a retry of just the failed subset.
                self.log_message(code)
                self._enqueue_retry(failed_ids=self._extract_failed(exc))
                return
            # Any other classification (or None) bubbles up as ERROR.
            self.log_message(code or ExportLogMessageCode.EXPORT_FAILED)
            raise
# --- end of the seed's example ------------------------------------------------------------------


FAULTS = FaultProfile(seed=7, partial_failure_rate=0.3, permanent_failure_rate=0.05)
IDS = list(range(1, 301))


def _client(emu: Emulator, clock: FakeClock) -> BackendV2Client:
    return BackendV2Client(
        base_url=emu.url, token=emu.token, tenant=emu.tenant, sleep=clock.sleep, clock=clock
    )


def test_partial_failure_is_logged_as_warning_and_failed_ids_enqueued(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="synapse_sdk.plugins.action")
    clock = FakeClock()
    with Emulator(items=400, faults=FAULTS, clock=clock, sleep=clock.sleep) as emu:
        with _client(emu, clock) as client:
            action = MyExportAction({"ids": IDS}, job_dir=tmp_path, v2_client=client)
            with action:
                assert action.run() is None
        requests = [r for r in emu.requests if r.path == "/v2/assignments/bulk-fetch/"]

    # What the backend served, and what it still refused at the end (from its own log).
    served: set[int] = set()
    for record in requests:
        assert record.ids is not None and record.status in (200, 207)
        served |= set(record.ids) - set(record.failed_ids)
    corrupted = {i for i in IDS if FAULTS.is_corrupted("assignments", i)}
    assert corrupted, "the fault profile must corrupt some ids for this test to mean anything"
    with Ledger(tmp_path) as ledger:
        pending = {record.id for record in ledger.iter_pending()}
        assert ledger.summary().exported == 0
    assert corrupted <= pending
    assert pending == set(IDS) - served  # exactly the still-failed ids, nothing more
    assert len(requests) > 2  # the client retried the retryable subset before giving up

    (event,) = read_job_log(tmp_path / JOB_LOG_FILENAME)
    assert event["code"] == "EXPORT_FAILED_BATCH_PARTIAL"
    assert event["level"] == "warning"
    assert event["text"].startswith("Some items could not be exported.")
    records = [r for r in caplog.records if r.name == "synapse_sdk.plugins.action"]
    assert [(r.levelno, r.code) for r in records] == [  # type: ignore[attr-defined]
        (logging.WARNING, "EXPORT_FAILED_BATCH_PARTIAL")
    ]


def test_the_warning_speaks_korean_when_the_action_does(tmp_path: Path) -> None:
    clock = FakeClock()
    with (
        Emulator(items=400, faults=FAULTS, clock=clock, sleep=clock.sleep) as emu,
        _client(emu, clock) as client,
        MyExportAction({"ids": IDS}, job_dir=tmp_path, v2_client=client, language="ko") as action,
    ):
        action.run()
    (event,) = read_job_log(tmp_path / JOB_LOG_FILENAME)
    assert event["text"].startswith("일부 항목을 내보내지 못했습니다.")
    assert event["language"] == "ko"


def test_unknown_ids_are_an_error_that_bubbles_up(tmp_path: Path) -> None:
    clock = FakeClock()
    seeds = FaultProfile(unknown_ids="invalid_ids")  # the seed's 400 invalid_ids, selected
    with Emulator(items=50, faults=seeds, clock=clock, sleep=clock.sleep) as emu:
        with _client(emu, clock) as client:
            action = MyExportAction({"ids": [1, 2, 999]}, job_dir=tmp_path, v2_client=client)
            with action, pytest.raises(BackendInvalidInputError) as info:
                action.run()
        bulk = [r for r in emu.requests if r.path.endswith("/bulk-fetch/")]
    assert info.value.failed_ids == (999,)
    assert len(bulk) == 1  # invalid ids are never retried
    (event,) = read_job_log(tmp_path / JOB_LOG_FILENAME)
    assert (event["code"], event["level"]) == ("EXPORT_FAILED_BAD_REQUEST", "error")
    with Ledger(tmp_path) as ledger:
        assert ledger.summary().total == 0
