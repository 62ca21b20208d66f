"""Fixtures of the storage tests: a fresh bucket per test on moto's standalone server (the
session fixture ``moto_server`` of ``tests/conftest.py``; see ``synapse_testkit.s3``)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from synapse_testkit.s3 import S3, aws_env

_bucket_numbers = itertools.count(1)


@pytest.fixture
def s3(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3:
    """A fresh bucket; this process's environment points at the server (and keeps export
    state under ``tmp_path``)."""
    env = {**aws_env(moto_server), "XDG_STATE_HOME": str(tmp_path / "state-home")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bucket = f"export-{os.getpid()}-{next(_bucket_numbers)}"
    store = S3(moto_server, bucket, env)
    store.client().create_bucket(Bucket=bucket)
    return store


