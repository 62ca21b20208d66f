"""A reference export plugin: a titled record per item, and a CSV manifest of the export.

``CsvManifestExporter`` overrides two of :class:`BaseExporter`'s hooks and keeps the rest:

* ``convert_data`` (per item, convert step) starts from the SDK's record, adds a top-level
  ``title`` (the item's ``data.name``) and renames ``project_id`` to ``project``;
* ``additional_file_saving`` (once, at the end of every run, resumed ones included) writes
  ``manifest.csv`` beside the records: one row per exported item, in id order, read back from
  the records the output holds, so a resumed run lists what earlier runs exported too.

Use it from the command line (the folder of this file on ``PYTHONPATH``, or as the cwd)::

    synapse export --out ./export --exporter csv_manifest_exporter:CsvManifestExporter

or from Python: ``ExportAction(params, config=config, exporter=CsvManifestExporter())``.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from synapse_sdk.plugins.actions.export import BaseExporter, ExportOutput

__all__ = ["MANIFEST", "MANIFEST_COLUMNS", "CsvManifestExporter"]

#: The manifest's file name, under ``<out>/<target>/``.
MANIFEST = "manifest.csv"
#: The manifest's columns, in order (its header row).
MANIFEST_COLUMNS = ("id", "title", "record", "original", "size", "sha256")


class CsvManifestExporter(BaseExporter):
    """The SDK's export, plus a ``title`` per record and ``manifest.csv`` listing the items."""

    def convert_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """The SDK's record with ``title`` added and ``project_id`` renamed ``project``.

        Raises:
            KeyError: the item has no ``data.name`` (the item fails with its code; the run
                goes on).
        """
        record = super().convert_data(data)
        record["title"] = data["data"]["name"]
        record["project"] = record.pop("project_id")
        return record

    def additional_file_saving(self, output: ExportOutput) -> None:
        """Write ``manifest.csv``: a header, then one row per record under the output.

        Raises:
            OSError / StorageError: reading a record or writing the manifest failed (the export
                retries the finalize step's writes under its retry policy).
        """
        rows = []
        for name in output.names():
            if name.endswith(".json") and not name.endswith(".original.json"):
                record = json.loads(output.read(name))
                original = record.get("original") or {}
                rows.append((
                    record["id"], record.get("title"), name,
                    original.get("file"), original.get("size"), original.get("sha256"),
                ))
        # Integer ids in numeric order, then string ids (an export can mix both).
        rows.sort(key=lambda row: (isinstance(row[0], str), row[0]))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)
        output.write(MANIFEST, text.getvalue().encode("utf-8"))
