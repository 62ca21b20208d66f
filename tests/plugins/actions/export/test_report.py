"""``export_report.json``: exported, skipped, repaired and failed (by code, with ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synapse_sdk.config import SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock
from synapse_sdk.plugins.actions.export import BaseExporter
from synapse_sdk.plugins.actions.export.action import ExportAction, ExportSummary
from synapse_sdk.plugins.actions.export.report import build_report
from synapse_sdk.plugins.ledger import LedgerRecord


class FailsOnSeven(BaseExporter):
    def convert_data(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["id"] == 7:
            raise KeyError("annotations")
        return super().convert_data(data)


def _run(emu: Emulator, clock: FakeClock, out: Path, **params: Any) -> ExportSummary:
    config = SDKConfig(backend_url=emu.url, token=emu.token, tenant=emu.tenant, language="en")
    action = ExportAction({"out_dir": out, **params}, config=config, sleep=clock.sleep,
                          monotonic=clock, clock=clock, exporter=FailsOnSeven())
    with action:
        return action.run()


def test_the_report_says_what_was_exported_skipped_repaired_and_failed(tmp_path: Path) -> None:
    clock = FakeClock()
    with Emulator(items=10, clock=clock, sleep=clock.sleep, faults="none") as emu:
        first = _run(emu, clock, tmp_path, ids=[*range(1, 11), "bad/id"])
        report = json.loads((tmp_path / "export_report.json").read_bytes())
        assert report["report_version"] == 1
        assert (report["target"], report["out"], report["ok"]) == ("tasks", str(tmp_path), False)
        assert (report["exported"], report["skipped"]) == (first.exported, 0) == (9, 0)
        assert report["repaired"] == {"count": 0, "ids": []}
        assert report["failed"] == {
            "count": 2,
            "by_code": {
                "EXPORT_FAILED_INVALID_KEY": {
                    "message_code": "EXPORT_FAILED_INVALID_KEY", "count": 1, "ids": [7]
                },
                "unsafe_id": {
                    "message_code": "EXPORT_FAILED_VALIDATION", "count": 1, "ids": ["bad/id"]
                },
            },
        }
        # Damage two exported items; the rerun repairs them and says so.
        (tmp_path / "tasks" / "3.json").unlink()
        (tmp_path / "tasks" / "5.json").write_bytes(b"not json")
        second = _run(emu, clock, tmp_path, ids=list(range(1, 11)))
    report = json.loads((tmp_path / "export_report.json").read_bytes())
    # Item 7 failed again: an earlier failure is tried again on a rerun.
    assert (second.exported, second.skipped, second.repaired) == (2, 7, 2)
    assert (report["exported"], report["skipped"]) == (2, 7)
    assert report["repaired"] == {"count": 2, "ids": [3, 5]}
    assert report["failed"]["by_code"]["EXPORT_FAILED_INVALID_KEY"]["ids"] == [7]
    assert json.loads((tmp_path / "tasks" / "5.json").read_bytes())["id"] == 5


def test_long_id_lists_are_truncated_but_counted(monkeypatch: Any) -> None:
    from synapse_sdk.plugins.actions.export import report as report_module

    monkeypatch.setattr(report_module, "MAX_IDS", 2)
    failed = [LedgerRecord(i, "failed", "item_corrupted", 1, 0.0) for i in range(5)]
    summary = {"target": "tasks", "out_dir": "x", "exported": 0, "skipped": 0, "retried": 0,
               "requests": 1, "rate_limited": 0, "duration": 0.1}
    report = build_report(summary, failed, [1, 2, 3], lambda code: "EXPORT_FAILED")
    assert report["failed"]["by_code"]["item_corrupted"] == {
        "message_code": "EXPORT_FAILED", "count": 5, "ids": [0, 1], "ids_truncated": True
    }
    assert report["repaired"] == {"count": 3, "ids": [1, 2], "ids_truncated": True}
