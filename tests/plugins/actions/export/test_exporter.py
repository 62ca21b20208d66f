"""Exporter hooks: the default reproduces the SDK's output, a plugin changes records and adds
aggregate files, a hook's exception fails its item (classified, chain kept), a broken plugin
fails the step, and ``synapse export --exporter`` loads one (or refuses it with exit 2)."""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import synapse_sdk.storage as storage_module
from synapse_sdk.cli import main
from synapse_sdk.clients.backend_v2 import BackendV2Client
from synapse_sdk.config import SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock
from synapse_sdk.plugins.action import ActionStepError, read_job_log
from synapse_sdk.plugins.actions.export import BaseExporter, ExportOutput
from synapse_sdk.plugins.actions.export.action import ExportAction, ExportSummary
from synapse_sdk.plugins.actions.export.exporter import load_exporter
from synapse_sdk.plugins.actions.export.steps import ExportRecord, convert_item


def _run(
    emu: Emulator, clock: FakeClock, out: Path, exporter: BaseExporter | None = None,
    **params: Any,
) -> ExportSummary:
    config = SDKConfig(backend_url=emu.url, token=emu.token, tenant=emu.tenant, language="en")
    action = ExportAction(
        {"out_dir": out, "workers": 2, **params}, config=config, sleep=clock.sleep,
        monotonic=clock, clock=clock, exporter=exporter,
    )
    with action:
        return action.run()


class Tagged(BaseExporter):
    """Adds a field to every record and writes a CSV manifest of what is exported."""

    def after_convert(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "exported_by": "tagged"}

    def additional_file_saving(self, output: ExportOutput) -> None:
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        writer.writerow(["id", "original"])
        for name in output.names():
            if name.endswith(".json") and not name.endswith(".original.json"):
                record = json.loads(output.read(name))
                writer.writerow([record["id"], (record["original"] or {}).get("file")])
        output.write("manifest.csv", rows.getvalue().encode())


def test_the_default_exporter_reproduces_the_sdks_output_byte_for_byte(tmp_path: Path) -> None:
    clock = FakeClock()
    with Emulator(items=15, clock=clock, sleep=clock.sleep, faults="none") as emu:
        assert _run(emu, clock, tmp_path / "a").exported == 15
        assert _run(emu, clock, tmp_path / "b", BaseExporter()).exported == 15
        config = SDKConfig(backend_url=emu.url, token=emu.token, tenant=emu.tenant)
        client = BackendV2Client(config=config)
        with client:
            items = client.tasks.bulk_fetch(list(range(1, 16)))
    first = {p.name: p.read_bytes() for p in (tmp_path / "a" / "tasks").iterdir()}
    second = {p.name: p.read_bytes() for p in (tmp_path / "b" / "tasks").iterdir()}
    assert first == second
    for item in items:  # the JSON is exactly what convert_item + json_bytes make
        record = convert_item(item, "tasks")
        data = json.loads(first[record.json_name])
        original = data["original"]["file"] if data["original"] else None
        # A v2 manifest declares no SHA-256: the record carries that of the bytes saved.
        saved = hashlib.sha256(first[original]).hexdigest() if original else None
        assert first[record.json_name] == record.json_bytes(original, saved)


def test_a_plugin_changes_records_and_writes_an_aggregate_file(tmp_path: Path) -> None:
    clock = FakeClock()
    with Emulator(items=8, clock=clock, sleep=clock.sleep, faults="none") as emu:
        summary = _run(emu, clock, tmp_path, Tagged())
        again = _run(emu, clock, tmp_path, Tagged())
    assert (summary.exported, again.skipped) == (8, 8)
    target = tmp_path / "tasks"
    record = json.loads((target / "3.json").read_bytes())
    assert record["exported_by"] == "tagged"
    rows = list(csv.reader(io.StringIO((target / "manifest.csv").read_text())))
    assert rows[0] == ["id", "original"]
    assert sorted(int(r[0]) for r in rows[1:]) == list(range(1, 9))
    assert not [p for p in target.iterdir() if p.name.startswith(".")]


class Picky(BaseExporter):
    """convert_data fails on ids divisible by 4; save_as_json fails on id 5."""

    def convert_data(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["id"] % 4 == 0:
            return {"missing": data["no such field"]}
        return super().convert_data(data)

    def save_as_json(
        self, record: ExportRecord, original_name: str | None, output: ExportOutput
    ) -> None:
        if record.id == 5:
            raise RuntimeError("plugin bug while saving")
        super().save_as_json(record, original_name, output)


def test_a_hook_exception_fails_only_its_item_with_a_classified_code(tmp_path: Path) -> None:
    clock = FakeClock()
    with Emulator(items=12, clock=clock, sleep=clock.sleep, faults="none") as emu:
        summary = _run(emu, clock, tmp_path, Picky())
    assert (summary.exported, summary.failed) == (8, 4)
    assert summary.failed_by_code == {"EXPORT_FAILED_INVALID_KEY": 3, "EXPORT_FAILED": 1}
    assert summary.failed_by_message == summary.failed_by_code
    assert not (tmp_path / "tasks" / "4.json").exists()
    assert not (tmp_path / "tasks" / "5.json").exists()
    events = read_job_log(tmp_path / ".synapse-export" / "tasks" / "job.log.jsonl")
    hooked = {e["params"]["item_id"]: e["params"] for e in events if "hook" in e["params"]}
    assert hooked["4"]["hook"] == "convert_data"
    assert hooked["4"]["error"] == "ExporterHookError <- KeyError"
    assert hooked["5"]["hook"] == "save_as_json"
    assert hooked["5"]["error"] == "ExporterHookError <- RuntimeError"


class JsonFailsOn5(BaseExporter):
    """save_as_json fails on id 5, after the default hook stored its original."""

    def save_as_json(
        self, record: ExportRecord, original_name: str | None, output: ExportOutput
    ) -> None:
        if record.id == 5:
            assert original_name is not None and output.names().count(original_name) == 1
            raise RuntimeError("plugin bug after the original was stored")
        super().save_as_json(record, original_name, output)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_an_item_whose_later_hook_fails_leaves_none_of_its_files(
    tmp_path: Path, where: str
) -> None:
    out: Path | str = tmp_path / "out"
    if where == "memory":
        out = f"memory://rollback-{os.getpid()}-{tmp_path.name}/out"
    listing = storage_module.open_storage(out).child("tasks").listing
    clock = FakeClock()
    with Emulator(items=6, clock=clock, sleep=clock.sleep, faults="none") as emu:
        params = {"state_dir": tmp_path / "state"}
        summary = _run(emu, clock, out, JsonFailsOn5(), **params)  # type: ignore[arg-type]
        assert (summary.exported, summary.failed) == (5, 1)
        names = set(listing())
        assert {"4.json", "6.json"} <= names
        assert not [name for name in names if name.startswith("5.")]  # no stray original
        again = _run(emu, clock, out, BaseExporter(), **params)  # type: ignore[arg-type]
    assert again.exported == 1
    record = json.loads(storage_module.open_storage(out).child("tasks").read("5.json"))
    assert record["original"]["file"] in set(listing())


def test_a_rollback_that_cannot_remove_names_what_is_left(tmp_path: Path) -> None:
    storage = storage_module.LocalStorage(tmp_path)
    output = ExportOutput(storage)
    output.write("1.bin", b"original")
    output.write("1.json", b"{}")
    assert output.rollback() == [] and list(tmp_path.iterdir()) == []
    output.write("2.bin", b"original")

    def refuse(name: str) -> None:
        raise PermissionError(errno.EACCES, "read-only", name)

    storage.remove = refuse  # type: ignore[method-assign]
    assert output.rollback() == ["2.bin"] and output.written == []


class Broken(BaseExporter):
    def convert_data(self, data: dict[str, Any]) -> dict[str, Any]:
        raise AttributeError("this plugin is broken")


def test_a_broken_exporter_fails_the_convert_step(tmp_path: Path) -> None:
    clock = FakeClock()
    with Emulator(items=80, clock=clock, sleep=clock.sleep, faults="none") as emu:
        config = SDKConfig(backend_url=emu.url, token=emu.token, tenant=emu.tenant, language="en")
        action = ExportAction({"out_dir": tmp_path}, config=config, sleep=clock.sleep,
                              monotonic=clock, clock=clock, exporter=Broken())
        with action, pytest.raises(ActionStepError) as info:
            action.run()
    assert info.value.step == "convert"
    assert isinstance(info.value.__cause__.__cause__, AttributeError)  # type: ignore[union-attr]


class Swallowing(BaseExporter):
    def save_as_json(
        self, record: ExportRecord, original_name: str | None, output: ExportOutput
    ) -> None:
        try:
            super().save_as_json(record, original_name, output)
        except OSError:
            pass  # a plugin must not hide a full disk


def test_a_storage_failure_a_hook_swallows_still_fails_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = threading.Lock()

    def full(path: Any, data: bytes, **kwargs: Any) -> None:
        with calls:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage_module, "atomic_write", full)
    clock = FakeClock()
    with Emulator(items=3, clock=clock, sleep=clock.sleep, faults="none") as emu:
        config = SDKConfig(backend_url=emu.url, token=emu.token, tenant=emu.tenant, language="en")
        action = ExportAction({"out_dir": tmp_path, "originals": False}, config=config,
                              sleep=clock.sleep, monotonic=clock, clock=clock,
                              exporter=Swallowing())
        with action, pytest.raises(ActionStepError) as info:
            action.run()
    assert info.value.step == "save"
    assert info.value.message_code is not None
    assert info.value.message_code.value == "EXPORT_FAILED_DISK_FULL"


def test_export_action_refuses_a_non_exporter() -> None:
    with pytest.raises(TypeError, match="BaseExporter"):
        ExportAction({"out_dir": "x"}, exporter=object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:Exporter", "cannot import the exporter module"),
        ("json:Nope", "has no 'Nope'"),
        ("json:JSONDecoder", "is not a BaseExporter subclass"),
        ("json", "MODULE:CLASS"),
    ],
)
def test_load_exporter_refuses_what_is_not_an_exporter(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_exporter(spec)


def test_cli_refuses_a_bad_exporter_with_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["export", "--out", str(tmp_path), "--exporter", "json:JSONDecoder"],
        env={"SYNAPSE_LANGUAGE": ""},
    )
    assert result.exit_code == 2
    assert "--exporter" in result.output and "not a BaseExporter subclass" in result.output


def test_cli_loads_an_exporter_from_the_current_folder(tmp_path: Path) -> None:
    (tmp_path / "my_plugin.py").write_text(textwrap.dedent('''
        from synapse_sdk.plugins.actions.export import BaseExporter

        class Upper(BaseExporter):
            def after_convert(self, data):
                return {**data, "resource": str(data["resource"]).upper()}
    '''))
    code = "import sys; from synapse_sdk.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "export", "--out", "out", "--items", "6", "--faults",
         "none", "--exporter", "my_plugin:Upper", "--json"],
        cwd=tmp_path, env={**os.environ, "SYNAPSE_LANGUAGE": "en"}, capture_output=True,
        text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["exported"] == 6
    record = json.loads((tmp_path / "out" / "tasks" / "2.json").read_bytes())
    assert record["resource"] == "TASKS"
