"""``export_report.json``: what a run exported, skipped, repaired and why items failed, by id.

Written by the export at the end of every run into the output (``<out>/export_report.json``,
through the storage layer, atomically), so a plugin or a person sees what failed without reading
the job log. Its shape::

    {
      "report_version": 1,
      "target": "tasks",
      "out": "s3://bucket/prefix",
      "ok": false,
      "exported": 118,            # written by this run
      "skipped": 80,              # exported by an earlier run, files checked and left alone
      "repaired": {"count": 2, "ids": [4, 9]},   # marked exported, files missing or changed:
                                                 # written again by this run
      "failed": {
        "count": 3,
        "by_code": {
          "item_corrupted": {"count": 2, "message_code": "EXPORT_FAILED_MALFORMED_DATA",
                             "ids": [7, 11]},
          ...
        }
      },
      "retried": 12, "requests": 9, "rate_limited": 1, "duration": 3.52
    }

Ids are listed in id order, at most :data:`MAX_IDS` per list (``ids_truncated`` says when more
were left out; ``count`` is always the full number).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Final

from synapse_sdk.envelopes import ItemId
from synapse_sdk.plugins.ledger import LedgerRecord

__all__ = ["MAX_IDS", "REPORT_NAME", "build_report", "report_bytes"]

#: The report's file name, at the root of the output.
REPORT_NAME: Final = "export_report.json"
#: Ids listed per list at most (the counts stay exact).
MAX_IDS: Final = 100_000
_VERSION: Final = 1


def _ids(ids: list[ItemId], count: int) -> dict[str, Any]:
    shown = ids[:MAX_IDS]
    entry: dict[str, Any] = {"count": count, "ids": shown}
    if count > len(shown):
        entry["ids_truncated"] = True
    return entry


def build_report(
    summary: dict[str, Any],
    failed: Iterable[LedgerRecord],
    repaired: Iterable[ItemId],
    message_code: Callable[[str], str],
) -> dict[str, Any]:
    """The report of a run: ``summary`` is ``ExportSummary.as_dict()``, ``failed`` the ledger's
    failed records (read once, in id order), ``repaired`` the ids written again because their
    files were missing or changed, ``message_code`` the export message code of a per-item
    code."""
    by_code: dict[str, list[ItemId]] = {}
    counts: dict[str, int] = {}
    total_failed = 0
    for record in failed:
        code = record.code or "unknown"
        total_failed += 1
        counts[code] = counts.get(code, 0) + 1
        listed = by_code.setdefault(code, [])
        if len(listed) < MAX_IDS:
            listed.append(record.id)
    repaired_ids = list(repaired)
    return {
        "report_version": _VERSION,
        "target": summary["target"],
        "out": summary["out_dir"],
        "ok": total_failed == 0,
        "exported": summary["exported"],
        "skipped": summary["skipped"],
        "repaired": _ids(repaired_ids, len(repaired_ids)),
        "failed": {
            "count": total_failed,
            "by_code": {
                code: {"message_code": message_code(code), **_ids(by_code[code], counts[code])}
                for code in sorted(counts)
            },
        },
        "retried": summary["retried"],
        "requests": summary["requests"],
        "rate_limited": summary["rate_limited"],
        "duration": summary["duration"],
    }


def report_bytes(report: dict[str, Any]) -> bytes:
    """The report as written: indented UTF-8 JSON with a trailing newline."""
    return (json.dumps(report, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
