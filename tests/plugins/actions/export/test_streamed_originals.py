"""Originals streamed by the export: any size, resumed after drops, checked, bounded on demand,
never partial under their final name; plugins on the bytes API and on the streamed API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import synapse_sdk.plugins.actions.export.exporter as exporter_module
from synapse_sdk.clients.backend_v2 import SavedOriginal
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile
from synapse_sdk.plugins.actions.export import BaseExporter, ExportOutput, OriginalFile
from synapse_sdk.plugins.actions.export.action import ExportAction, ExportSummary
from synapse_sdk.plugins.actions.export.steps import ExportRecord
from synapse_sdk.storage import StagedFile
from synapse_testkit.cli import run_synapse

SIZE = 2_000_003


def _run(
    emu: Emulator, clock: FakeClock, out: Path, exporter: BaseExporter | None = None,
    **params: Any,
) -> ExportSummary:
    config = SDKConfig(
        backend_url=emu.url, token=emu.token, tenant=emu.tenant, language="en",
        retry_policy=RetryPolicy(max_attempts=4),
    )
    action = ExportAction(
        {"out_dir": out, "workers": 2, **params}, config=config, sleep=clock.sleep,
        monotonic=clock, clock=clock, exporter=exporter,
    )
    with action:
        return action.run()


def _sha256(emu: Emulator, item_id: int) -> str:
    original = emu._state.store.original("tasks", item_id)  # type: ignore[union-attr]
    assert original is not None
    digest = hashlib.sha256()
    for piece in original.chunks(0, original.size - 1):
        digest.update(piece)
    return digest.hexdigest()


def test_large_originals_stream_resume_and_are_skipped_on_rerun(tmp_path: Path) -> None:
    clock = FakeClock()
    faults = FaultProfile(original_drop_rate=0.6)
    with Emulator(items=4, clock=clock, sleep=clock.sleep, faults=faults,
                  original_bytes=SIZE) as emu:
        summary = _run(emu, clock, tmp_path)
        assert summary.ok and summary.exported == 4
        cuts = [r for r in emu.requests if "original_cut" in r.faults]
        assert cuts  # drops happened, and every download resumed
        folder = tmp_path / "tasks"
        for item_id in range(1, 5):
            record = json.loads((folder / f"{item_id}.json").read_bytes())
            assert record["original"]["file"] == f"{item_id}.bin"
            assert record["original"]["size"] == SIZE
            assert record["original"]["sha256"] == _sha256(emu, item_id)
            data = (folder / f"{item_id}.bin").read_bytes()
            assert hashlib.sha256(data).hexdigest() == _sha256(emu, item_id)
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]
        again = _run(emu, clock, tmp_path)
        assert (again.exported, again.skipped) == (0, 4)


def test_max_original_bytes_fails_those_items_alone(tmp_path: Path) -> None:
    clock = FakeClock()
    with Emulator(items=3, clock=clock, sleep=clock.sleep, faults="none",
                  original_bytes=SIZE) as emu:
        summary = _run(emu, clock, tmp_path, max_original_bytes=SIZE - 1)
        assert summary.failed == 3 and summary.failed_by_code == {"response_too_large": 3}
        assert list((tmp_path / "tasks").iterdir()) == []  # nothing partial, no temporaries
        fits = _run(emu, clock, tmp_path / "fits", max_original_bytes=SIZE)
        assert fits.exported == 3


class BytesPlugin(BaseExporter):
    """A plugin written for the bytes API: gets the original's bytes."""

    seen: list[int]

    def __init__(self) -> None:
        self.seen = []

    def save_original_file(
        self, record: ExportRecord, content: bytes, output: ExportOutput
    ) -> str | None:
        self.seen.append(len(content))
        output.write(f"{record.id}.raw", content[::-1])
        return f"{record.id}.raw"


class StreamPlugin(BaseExporter):
    """A plugin on the streamed API: reads the staged file in chunks, stores it renamed."""

    def save_original(
        self, record: ExportRecord, original: OriginalFile, output: ExportOutput
    ) -> str | None:
        digest = hashlib.sha256()
        with original.path.open("rb") as file:
            for chunk in iter(lambda: file.read(65536), b""):
                digest.update(chunk)
        assert digest.hexdigest() == original.sha256
        name = f"{record.id}.data"
        output.commit(name, original)
        return name


def test_plugins_on_the_bytes_api_and_the_streamed_api(tmp_path: Path) -> None:
    clock = FakeClock()
    with Emulator(items=3, clock=clock, sleep=clock.sleep, faults="none") as emu:
        plugin = BytesPlugin()
        assert _run(emu, clock, tmp_path / "bytes", plugin).exported == 3
        assert len(plugin.seen) == 3 and all(size > 0 for size in plugin.seen)
        raw = (tmp_path / "bytes" / "tasks" / "1.raw").read_bytes()
        original = emu._state.store.original("tasks", 1)  # type: ignore[union-attr]
        assert original is not None and raw == original.content[::-1]
        assert _run(emu, clock, tmp_path / "stream", StreamPlugin()).exported == 3
        streamed = tmp_path / "stream" / "tasks"
        assert (streamed / "1.data").read_bytes() == original.content
        assert json.loads((streamed / "1.json").read_bytes())["original"]["file"] == "1.data"


def test_cli_original_size_options(tmp_path: Path) -> None:
    result = run_synapse(
        "export", "--out", str(tmp_path / "out"), "--items", "2", "--faults", "none",
        "--original-bytes", "1M", "--max-original-bytes", "512K", "--json",
    )
    assert result.returncode == 3, result.stderr
    summary = json.loads(result.stdout)
    assert summary["failed_by_code"] == {"response_too_large": 2}
    wrong = run_synapse(
        "export", "--out", str(tmp_path / "x"), "--backend", "https://b.example",
        "--token", "t", "--tenant", "x", "--original-bytes", "1M",
    )
    assert wrong.returncode == 2 and "--original-bytes" in wrong.stderr
    bad = run_synapse("export", "--out", str(tmp_path / "y"), "--max-original-bytes", "lots")
    assert bad.returncode == 2 and "300M" in bad.stderr


def test_a_staged_original_is_sniffed_from_its_head_and_json_parsed_up_to_a_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = ExportRecord(5, {}, "5.json", True, None, {"id": 5})
    with StagedFile(tmp_path, "5.json") as staged:
        staged.write(b"[" + b"1, " * 3000 + b"1]")  # JSON longer than the 4 KiB head
        original = OriginalFile(staged, SavedOriginal(staged.size, "0" * 64))
        assert record.original_name(original.sniff) == "5.original.json"
        monkeypatch.setattr(exporter_module, "SNIFF_WHOLE_BYTES", 4)
        assert record.original_name(original.sniff) == "5.txt"
    with StagedFile(tmp_path, "6.json") as staged:
        staged.write(b"\x89PNG\r\n\x1a\n" + bytes(10_000))
        original = OriginalFile(staged, SavedOriginal(staged.size, "0" * 64))
        assert record.original_name(original.sniff) == "5.png"
