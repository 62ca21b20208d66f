"""The fault soak, CI-sized: ``synapse export`` under ~20 % faults, SIGKILLed 3 times, resumed.

It runs the soak of ``benchmarks/soak_export.py`` (``synapse_testkit.soak``): an emulator
on 127.0.0.1 with seeded faults (207 partial failures, corrupted ids, dropped connections, a rate
limit, outage windows, latency), the export as a ``synapse export`` subprocess killed with
SIGKILL once a seeded number of records is on disk (no wall-clock kill moments: nothing here
depends on timing), rerun until it completes, then every check of the soak: each item exported
exactly once or failed with its code, no stray or partial file, ledger, summary and emulator in
agreement. No timing is asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synapse_testkit import soak

ITEMS = 2000
KILLS = 3


@pytest.mark.slow
def test_sigkilled_export_under_faults_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    config = soak.SoakConfig(
        items=ITEMS,
        kills=KILLS,
        seed=7,
        rate=20.0,
        burst=4,
        outage_every=3.0,
        outage_length=0.4,
        jitter=0.0,  # kill as soon as the seeded number of records is there: no random sleep
        workdir=tmp_path,
    )
    log: list[str] = []
    result = soak.soak(config, log=log.append)
    verdict = result.verdict
    details = "\n".join([*log, *verdict.examples, *result.problems])

    assert result.url.startswith("http://127.0.0.1:")
    assert result.kills == KILLS, details
    assert all(run.killed for run in result.runs[:KILLS]), details
    assert not result.runs[-1].killed and result.runs[-1].exit_code in (0, 3), details
    # Zero lost, zero duplicated, every failure reported with its code.
    assert verdict.lost == 0, details
    assert verdict.duplicated == 0, details
    assert verdict.failed_without_code == 0, details
    assert all(code and code != "(no code)" for code in verdict.failed_by_code), details
    assert verdict.exported + sum(verdict.failed_by_code.values()) == ITEMS, details
    # No half-written or temporary file; records, ledger, summary and emulator agree.
    assert verdict.stray_files == 0 and verdict.bad_records == 0, details
    assert (
        verdict.ledger_mismatches,
        verdict.summary_mismatches,
        verdict.emulator_mismatches,
    ) == (0, 0, 0), details
    assert result.ok, details
    # The faults really happened (seeded decisions, not timing).
    assert result.requests.get("status 207", 0) > 0
    dropped = result.requests.get("fault drop_reset", 0)
    dropped += result.requests.get("fault drop_truncated", 0)
    assert dropped > 0
    assert verdict.failed_by_code.get("item_corrupted", 0) > 0
