"""The reference plugin ``examples/csv_manifest_exporter`` through the real paths: ``synapse
export --exporter`` as a subprocess against the embedded emulator (local disk and moto's S3
server), and ``ExportAction(exporter=...)`` in Python, a resume included."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.config import SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock
from synapse_sdk.plugins.actions.export.action import ExportAction
from synapse_testkit.s3 import S3, aws_env, start_moto

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "csv_manifest_exporter"
SPEC = "csv_manifest_exporter:CsvManifestExporter"
ITEMS = 20


@pytest.fixture(scope="module")
def plugin() -> Iterator[Any]:
    """The example's module, imported from its folder as a plugin author's would be."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        import csv_manifest_exporter

        yield csv_manifest_exporter
    finally:
        sys.path.remove(str(EXAMPLE))


def _cli(out: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``synapse export --exporter`` in a subprocess with the example on ``PYTHONPATH``."""
    path = os.pathsep.join(p for p in (str(EXAMPLE), os.environ.get("PYTHONPATH", "")) if p)
    code = "import sys; from synapse_sdk.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "export", "--out", out, "--items", str(ITEMS),
         "--faults", "none", "--exporter", SPEC, "--json"],
        cwd=cwd, capture_output=True, text=True, timeout=180,
        env={**os.environ, **(env or {}), "PYTHONPATH": path, "SYNAPSE_LANGUAGE": "en"},
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _manifest(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def _check(files: dict[str, bytes], ids: list[int]) -> None:
    """The records carry the hook's change and the manifest lists exactly their items."""
    records = {
        name: json.loads(data) for name, data in files.items()
        if name.endswith(".json") and not name.endswith(".original.json")
    }
    assert sorted(r["id"] for r in records.values()) == ids
    for record in records.values():
        assert record["title"] == f"task-{record['id']:05d}"
        assert "project_id" not in record and record["project"] == 1
    rows = _manifest(files["manifest.csv"])
    assert [int(row["id"]) for row in rows] == ids  # every item once, in id order
    for row in rows:
        record = records[row["record"]]
        assert row["title"] == record["title"]
        assert row["original"] == record["original"]["file"] and row["original"] in files
        assert int(row["size"]) == len(files[row["original"]]) == record["original"]["size"]
        assert row["sha256"] == record["original"]["sha256"]


def _local(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_cli_loads_the_example_and_writes_its_manifest(tmp_path: Path) -> None:
    summary = _cli(str(tmp_path / "out"), tmp_path)
    assert summary["ok"] and summary["exported"] == ITEMS
    _check(_local(tmp_path / "out" / "tasks"), list(range(1, ITEMS + 1)))


@pytest.mark.slow
def test_cli_exports_the_example_to_s3(tmp_path: Path) -> None:
    with start_moto() as endpoint:
        env = {**aws_env(endpoint), "XDG_STATE_HOME": str(tmp_path / "state")}
        store = S3(endpoint, "example-plugin", env)
        store.client().create_bucket(Bucket=store.bucket)
        summary = _cli(f"s3://{store.bucket}/run", tmp_path, env)
        assert summary["ok"] and summary["exported"] == ITEMS
        objects = store.objects("run/tasks/")
    _check({key.rsplit("/", 1)[1]: data for key, data in objects.items()},
           list(range(1, ITEMS + 1)))


def test_export_action_with_the_example_and_a_resume(plugin: Any, tmp_path: Path) -> None:
    clock = FakeClock()
    with Emulator(items=ITEMS, faults="none", clock=clock) as emu:
        config = SDKConfig(backend_url=emu.url, token=emu.token, tenant=emu.tenant, language="en")

        def run(ids: list[int] | None) -> Any:
            params: dict[str, Any] = {"out_dir": tmp_path, "workers": 2}
            if ids is not None:
                params["ids"] = ids
            with ExportAction(params, config=config, sleep=clock.sleep, monotonic=clock,
                              exporter=plugin.CsvManifestExporter()) as action:
                return action.run()

        first = run([3, 1, 2, 7])
        assert first.exported == 4
        _check(_local(tmp_path / "tasks"), [1, 2, 3, 7])
        # A resumed run over the same folder: the manifest lists the earlier items as well.
        second = run(None)
        assert (second.exported, second.skipped) == (ITEMS - 4, 4)
        _check(_local(tmp_path / "tasks"), list(range(1, ITEMS + 1)))
    header = (tmp_path / "tasks" / plugin.MANIFEST).read_text().splitlines()[0]
    assert header == ",".join(plugin.MANIFEST_COLUMNS)


def test_an_item_the_hook_cannot_convert_fails_alone_and_stays_out_of_the_manifest(
    plugin: Any, tmp_path: Path
) -> None:
    class Nameless(plugin.CsvManifestExporter):  # type: ignore[misc]
        def before_convert(self, data: dict[str, Any]) -> dict[str, Any]:
            if data["id"] == 5:  # item 5 comes without data.name: convert_data's KeyError
                return {**data, "data": {}}
            return data

    clock = FakeClock()
    with Emulator(items=ITEMS, faults="none", clock=clock) as emu:
        config = SDKConfig(backend_url=emu.url, token=emu.token, tenant=emu.tenant, language="en")
        with ExportAction({"out_dir": tmp_path, "workers": 2}, config=config, sleep=clock.sleep,
                          monotonic=clock, exporter=Nameless()) as action:
            summary = action.run()
    assert (summary.exported, summary.failed) == (ITEMS - 1, 1)
    assert summary.failed_by_code == {"EXPORT_FAILED_INVALID_KEY": 1}
    _check(_local(tmp_path / "tasks"), [i for i in range(1, ITEMS + 1) if i != 5])
