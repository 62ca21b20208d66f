"""The storage layer without a server: local and memory:// storages, the error mapping, URLs."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from pydantic import ValidationError

from synapse_sdk.config import SDKConfig
from synapse_sdk.emulator import Emulator, FakeClock
from synapse_sdk.exceptions import (
    NetworkTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    SynapPermanentError,
    SynapTransientError,
)
from synapse_sdk.plugins.actions.export.action import ExportAction, ExportParams
from synapse_sdk.storage import (
    CredentialsInUrlError,
    FsspecStorage,
    LocalStorage,
    StorageAccessDeniedError,
    StorageError,
    StorageNotFoundError,
    StorageThrottledError,
    StorageTimeoutError,
    StorageUnavailableError,
    UnsupportedStorageError,
    carries_credentials,
    default_state_dir,
    open_storage,
)
from synapse_sdk.storage.errors import map_storage_error, redact_url


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": f"said {code}"},
         "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


def _wrapped(code: str, status: int, outer: type[OSError] = OSError) -> OSError:
    # What s3fs raises: its translation of the ClientError, with the ClientError as the cause.
    exc = outer(errno.EIO, f"translated {code}")
    exc.__cause__ = _client_error(code, status)
    return exc


@pytest.mark.parametrize(
    ("exc", "cls", "semantic"),
    [
        (_wrapped("SlowDown", 503), StorageThrottledError, RateLimitError),
        (_wrapped("InternalError", 500), StorageUnavailableError, ServiceUnavailableError),
        (_wrapped("ServiceUnavailable", 503), StorageUnavailableError, ServiceUnavailableError),
        (_wrapped("RequestTimeout", 400, TimeoutError), StorageTimeoutError, NetworkTimeoutError),
        (_wrapped("AccessDenied", 403, PermissionError), StorageAccessDeniedError,
         SynapPermanentError),
        (_wrapped("InvalidAccessKeyId", 403, PermissionError), StorageAccessDeniedError,
         SynapPermanentError),
        (_wrapped("NoSuchBucket", 404, FileNotFoundError), StorageNotFoundError,
         SynapPermanentError),
        (ReadTimeoutError(endpoint_url="http://s3"), StorageTimeoutError, NetworkTimeoutError),
        (EndpointConnectionError(endpoint_url="http://s3"), StorageUnavailableError,
         ServiceUnavailableError),
        (PermissionError(errno.EACCES, "denied"), StorageAccessDeniedError, SynapPermanentError),
        (NoCredentialsError(), StorageAccessDeniedError, SynapPermanentError),  # a bare node
    ],
)
def test_storage_failures_map_into_the_tree(
    exc: BaseException, cls: type[StorageError], semantic: type[Exception]
) -> None:
    mapped = map_storage_error(exc, url="s3://user:secret@bucket/x", operation="write")
    assert type(mapped) is cls
    assert isinstance(mapped, semantic)
    assert isinstance(mapped, SynapTransientError) == (semantic is not SynapPermanentError)
    assert "secret" not in str(mapped) and "secret" not in repr(mapped)
    assert mapped.url == "s3://bucket/x"  # type: ignore[attr-defined]


def test_a_500_leaves_the_outcome_unknown_and_a_503_does_not() -> None:
    five_hundred = map_storage_error(_wrapped("InternalError", 500), url="s3://b", operation="w")
    slow = map_storage_error(_wrapped("ServiceUnavailable", 503), url="s3://b", operation="w")
    assert five_hundred.outcome_unknown is True  # type: ignore[attr-defined]
    assert slow.outcome_unknown is False  # type: ignore[attr-defined]


def test_bugs_and_our_own_errors_are_not_mapped() -> None:
    bug = TypeError("not a storage failure")
    assert map_storage_error(bug, url="s3://b", operation="write") is bug
    ours = StorageThrottledError("x")
    assert map_storage_error(ours, url="s3://b", operation="write") is ours


def test_storage_errors_pickle_with_their_fields() -> None:
    import pickle

    error = StorageAccessDeniedError("no", url="s3://b/x", storage_code="AccessDenied",
                                     status_code=403)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.storage_code, copy.status_code, copy.url) == (
        StorageAccessDeniedError, "AccessDenied", 403, "s3://b/x"
    )


def test_open_storage_picks_local_or_fsspec(tmp_path: Path) -> None:
    assert isinstance(open_storage(tmp_path), LocalStorage)
    local = open_storage(f"file://{tmp_path}")
    assert isinstance(local, LocalStorage) and local.path == tmp_path
    assert isinstance(open_storage("memory://x"), FsspecStorage)
    with pytest.raises(UnsupportedStorageError, match="unsupported storage type 'nosuchfs'"):
        open_storage("nosuchfs://x")


def test_unknown_schemes_are_refused_by_the_params(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unsupported storage type"):
        ExportParams(out_dir="nosuchfs://bucket/x")  # type: ignore[arg-type]
    assert ExportParams(out_dir="memory://a/b/").out_dir == "memory://a/b"  # type: ignore[arg-type]
    assert ExportParams(out_dir=f"file://{tmp_path}").out_dir == tmp_path  # type: ignore[arg-type]


def test_memory_storage_writes_whole_objects_and_lists_them() -> None:
    storage = open_storage(f"memory://{uuid.uuid4().hex}").child("tasks")
    assert storage.listing() == {}
    stored = storage.write("1.json", b"{}\n")
    assert (stored.size, stored.md5) == (3, hashlib.md5(b"{}\n").hexdigest())
    assert storage.read("1.json") == b"{}\n" and storage.exists("1.json")
    assert storage.listing()["1.json"].size == 3
    with pytest.raises(TypeError):
        storage.write("2.json", "text")  # type: ignore[arg-type]


def test_redact_url_drops_credentials() -> None:
    assert redact_url("sftp://me:pw@host:22/x") == "sftp://host:22/x"
    assert redact_url("s3://bucket/x") == "s3://bucket/x"
    assert redact_url("s3://akid:ab/cd@bucket/x") == "s3://bucket/x"  # "/" in the secret
    assert redact_url("sftp://host:22/a@b") == "sftp://host:22/a@b"


@pytest.mark.parametrize(
    "url, refused",
    [
        ("s3://akid1:sekrit@bucket/x", True),
        ("s3://akid1@bucket/x", True),  # the user part of an object store's URL is its key
        ("memory://user:pw@x/y", True),
        ("sftp://me:pw@host/x", True),
        ("sftp://me@host/x", False),  # a user name is no secret
        ("s3://bucket/x", False),
        ("s3://akid1:ab/cd+ef@bucket/x", True),  # a secret with "/"
        ("sftp://me:pa/ss@host/x", True),
        ("sftp://host:22/a@b", False),
        ("sftp://[bad@host/x", True),  # unparsable: judged by its "@"
        ("abfs://container@account.dfs.core.windows.net/x", False),
    ],
)
def test_credentials_in_a_storage_url_are_refused(url: str, refused: bool) -> None:
    assert carries_credentials(url) is refused
    if refused and url.startswith(("s3", "memory")):
        with pytest.raises(CredentialsInUrlError) as caught:
            open_storage(url)
        shown = str(caught.value)
        for secret in ("akid1", "sekrit", "cd+ef", "user", "pw"):
            assert secret not in shown


def test_the_params_refuse_credentials_without_echoing_them() -> None:
    with pytest.raises(ValidationError) as caught:
        ExportParams(out_dir="s3://AKIAEXAMPLE:s3cr3t/xyz@bucket/x")  # type: ignore[arg-type]
    shown = f"{caught.value}\n{caught.value!r}"
    assert "carries credentials" in shown and "AWS_SECRET_ACCESS_KEY" in shown
    assert "s3cr3t" not in shown and "AKIAEXAMPLE" not in shown


@pytest.mark.parametrize(
    "lang, text",
    [
        ("en", "carries credentials in the URL"),
        ("ko", "URL에 자격 증명이 들어 있습니다"),
    ],
)
def test_cli_refuses_credentials_in_out_with_exit_2(
    tmp_path: Path, lang: str, text: str
) -> None:
    code = "import sys; from synapse_sdk.cli import main; sys.exit(main())"
    env = {**os.environ, "SYNAPSE_LANGUAGE": lang, "XDG_STATE_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code, "export", "--out", "s3://AKIAEXAMPLE:s3cr3t@bucket/x",
         "--items", "3"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert text in done.stderr and "AWS_ACCESS_KEY_ID" in done.stderr
    assert "s3://bucket/x" in done.stderr
    assert "s3cr3t" not in done.stdout + done.stderr
    assert "AKIAEXAMPLE" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []  # no state folder, no output


def test_default_state_dir_is_stable_per_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    first = default_state_dir("s3://bucket/a")
    assert first == default_state_dir("s3://bucket/a/")
    assert first != default_state_dir("s3://bucket/b")
    assert first.parent == tmp_path / "synapse-sdk" / "export"
    assert first.name.startswith("s3-bucket-a-")
    assert "pw" not in default_state_dir("sftp://me:pw@host/x").name


def test_export_to_memory_matches_the_local_export(tmp_path: Path) -> None:
    clock = FakeClock()
    url = f"memory://{uuid.uuid4().hex}/out"
    with Emulator(items=12, clock=clock, sleep=clock.sleep, faults="none") as emu:
        config = SDKConfig(
            backend_url=emu.url, token=emu.token, tenant=emu.tenant, language="en"
        )
        outputs = []
        for out in (str(tmp_path / "local"), url):
            action = ExportAction(
                {"out_dir": out, "state_dir": tmp_path / "state" / str(len(outputs))},
                config=config, sleep=clock.sleep, monotonic=clock, clock=clock,
            )
            with action:
                assert action.run().exported == 12
                listing = action.storage.listing()
                outputs.append({name: action.storage.read(name) for name in listing})
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == 24
