"""Staged files: what a streamed original is written to before it gets its final name.

Local disk stages in the output folder itself (hidden, fsynced, renamed); other storages stage
in a local temporary folder and store the file in one put (s3fs: or a multipart upload it
completes only when whole). A failure at any point leaves nothing under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest

from synapse_sdk.storage import (
    DEFAULT_MULTIPART_THRESHOLD,
    MIN_MULTIPART_THRESHOLD,
    FsspecStorage,
    LocalStorage,
    StagedFile,
    StorageError,
    clean_temp_files,
    open_storage,
)
from synapse_testkit.s3 import S3, FaultProxy


def test_a_staged_file_restarts_and_commits_whole(tmp_path: Path) -> None:
    with StagedFile(tmp_path, "a.bin", md5=True) as staged:
        staged.write(b"wrong start")
        staged.restart()
        staged.write(b"right ")
        staged.write(b"bytes")
        assert staged.head(4) == b"righ" and staged.size == 11
        assert not (tmp_path / "a.bin").exists()
        staged.commit(tmp_path / "a.bin")
    assert (tmp_path / "a.bin").read_bytes() == b"right bytes"
    assert staged.md5 == hashlib.md5(b"right bytes").hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError), StagedFile(tmp_path, "a.bin") as staged:
        staged.write(b"half of the new file")
        raise RuntimeError("download broke")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    assert (tmp_path / "a.bin").read_bytes() == b"old"
    with pytest.raises(TypeError), StagedFile(tmp_path, "b.bin") as staged:
        staged.write("text")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_a_killed_stage_is_cleaned_on_the_next_run(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    left = storage.stage("5.json")  # a kill: neither committed nor discarded
    left.write(b"partial")
    left.finish()
    assert left.path.parent == tmp_path and left.path.name.startswith(".")
    assert clean_temp_files(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


def test_local_storage_commits_by_rename(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    staged = storage.stage("5.json")
    staged.write(b"x" * 1000)
    stored = storage.commit(staged, "5.bin")
    assert (stored.name, stored.size, stored.md5) == ("5.bin", 1000, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["5.bin"]


def test_an_object_store_gets_the_whole_object_in_one_put() -> None:
    storage = open_storage("memory://staged-test/out")
    assert isinstance(storage, FsspecStorage)
    staged = storage.stage("5.json")
    assert Path(staged.path).parent == Path(tempfile.gettempdir())
    staged.write(b"abc" * 1000)
    stored = storage.commit(staged, "5.bin")
    assert stored.md5 == hashlib.md5(b"abc" * 1000).hexdigest()
    assert storage.read("5.bin") == b"abc" * 1000
    assert not os.path.exists(staged.path)


def test_s3_put_failing_leaves_no_object_and_no_spool(s3: S3) -> None:
    failing = True

    def rule(method: str, path: str) -> tuple[int, str] | None:
        return (403, "AccessDenied") if failing and method in ("PUT", "POST") else None

    with FaultProxy(s3.endpoint, rule) as proxy:
        os.environ["AWS_ENDPOINT_URL"] = proxy.url
        storage = open_storage(f"s3://{s3.bucket}/out")
        staged = storage.stage("5.json")
        staged.write(b"y" * 100_000)
        with pytest.raises(StorageError):
            storage.commit(staged, "5.bin")
        assert not os.path.exists(staged.path)
        assert s3.count() == 0
        failing = False
        staged = storage.stage("5.json")
        staged.write(b"y" * 100_000)
        stored = storage.commit(staged, "5.bin")
    assert s3.objects() == {"out/5.bin": b"y" * 100_000}
    assert stored.md5 == hashlib.md5(b"y" * 100_000).hexdigest()


def test_streamed_originals_export_to_s3_whole(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synapse_sdk.config import SDKConfig
    from synapse_sdk.emulator import Emulator, FakeClock, FaultProfile
    from synapse_sdk.plugins.actions.export.action import ExportAction

    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # where object stores stage
    clock = FakeClock()
    faults = FaultProfile(original_drop_rate=0.5)
    with Emulator(items=3, clock=clock, sleep=clock.sleep, faults=faults,
                  original_bytes=3_000_000) as emu:
        config = SDKConfig(backend_url=emu.url, token=emu.token, tenant=emu.tenant)
        params = {"out_dir": f"s3://{s3.bucket}/out", "state_dir": tmp_path / "state"}
        with ExportAction(params, config=config, sleep=clock.sleep, monotonic=clock,
                          clock=clock) as action:
            summary = action.run()
    assert summary.ok and summary.exported == 3
    objects = s3.objects("out/tasks/")
    for item_id in (1, 2, 3):
        record = json.loads(objects[f"out/tasks/{item_id}.json"])
        data = objects[f"out/tasks/{item_id}.bin"]
        assert len(data) == 3_000_000 == record["original"]["size"]
        assert hashlib.sha256(data).hexdigest() == record["original"]["sha256"]
    assert list(spool.iterdir()) == []  # every staged original removed once stored


def _multipart_storage(endpoint: str, bucket: str) -> FsspecStorage:
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    storage = open_storage(f"s3://{bucket}/out", multipart_threshold=MIN_MULTIPART_THRESHOLD)
    assert isinstance(storage, FsspecStorage)
    return storage


def _staged_bytes(storage: FsspecStorage, size: int) -> tuple[StagedFile, bytes]:
    data = hashlib.sha256(b"seed").digest() * (size // 32) + b"!" * (size % 32)
    staged = storage.stage("7.json")
    for start in range(0, size, 1 << 20):
        staged.write(data[start:start + (1 << 20)])
    return staged, data


def test_a_file_over_the_multipart_threshold_lands_whole_in_parts(s3: S3) -> None:
    seen: list[tuple[str, str]] = []

    def watch(method: str, path: str) -> None:
        seen.append((method, path))
        return

    size = MIN_MULTIPART_THRESHOLD + 2 * 2**20  # parts of 5, 5 and 2 MiB
    with FaultProxy(s3.endpoint, watch) as proxy:
        storage = _multipart_storage(proxy.url, s3.bucket)
        staged, data = _staged_bytes(storage, size)
        stored = storage.commit(staged, "7.bin")
    parts = [path for method, path in seen if method == "PUT" and "partNumber=" in path]
    assert len(parts) == 3
    assert any(method == "POST" and "uploads" in path for method, path in seen)
    assert s3.objects() == {"out/7.bin": data}
    assert (stored.size, stored.md5) == (size, hashlib.md5(data).hexdigest())
    head = s3.client().head_object(Bucket=s3.bucket, Key="out/7.bin")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object's ETag
    assert not os.path.exists(staged.path)
    # Below the threshold: one PUT, no parts.
    seen.clear()
    with FaultProxy(s3.endpoint, watch) as proxy:
        storage = _multipart_storage(proxy.url, s3.bucket)
        staged, data = _staged_bytes(storage, MIN_MULTIPART_THRESHOLD - 1)
        storage.commit(staged, "8.bin")
    assert [method for method, _ in seen] == ["PUT"]


@pytest.mark.parametrize("status, code", [(500, "InternalError"), (403, "AccessDenied")])
def test_a_part_failing_mid_upload_leaves_no_object_and_no_upload(
    s3: S3, status: int, code: str
) -> None:
    def second_part(method: str, path: str) -> tuple[int, str] | None:
        return (status, code) if method == "PUT" and "partNumber=2" in path else None

    with FaultProxy(s3.endpoint, second_part) as proxy:
        storage = _multipart_storage(proxy.url, s3.bucket)
        staged, _ = _staged_bytes(storage, MIN_MULTIPART_THRESHOLD + 2**20)
        with pytest.raises(StorageError) as caught:
            storage.commit(staged, "7.bin")
    assert caught.value.error_code == {500: "storage_unavailable", 403: "storage_access_denied"}[
        status
    ]
    assert [fault[0] for fault in proxy.injected] == ["PUT"]
    assert s3.count() == 0  # nothing under the final key
    assert s3.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert not os.path.exists(staged.path)


def test_the_multipart_threshold_has_a_floor() -> None:
    with pytest.raises(ValueError, match="at least"):
        open_storage("memory://threshold/out", multipart_threshold=MIN_MULTIPART_THRESHOLD - 1)
    storage = open_storage("memory://threshold/out")
    assert isinstance(storage, FsspecStorage)
    assert storage.multipart_threshold == DEFAULT_MULTIPART_THRESHOLD == 16 * 2**20
    assert storage.child("tasks").multipart_threshold == DEFAULT_MULTIPART_THRESHOLD
