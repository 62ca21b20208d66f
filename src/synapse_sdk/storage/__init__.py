"""Where an export writes: a local folder or any fsspec URL (``s3://bucket/prefix``, ``memory://``).

:func:`open_storage` gives a :class:`Storage` for an output location; the export writes every
file through it, so what "atomic" means is decided here, once:

* **local disk** (:class:`LocalStorage`, a path or ``file://``): a hidden temporary file in the
  same folder, flushed and fsynced, then renamed over the final name (:func:`atomic_write`); a
  kill leaves the old file, the whole new one, or nothing, and the next run removes the
  temporaries (:func:`clean_temp_files`);
* **object stores and other fsspec filesystems** (:class:`FsspecStorage`): each object is
  written whole in one put (``pipe_file``; s3fs completes a multipart upload only when whole),
  so an object appears under its final key complete or not at all. Nothing is renamed. A staged
  file of ``multipart_threshold`` bytes or more (:data:`DEFAULT_MULTIPART_THRESHOLD`, 16 MiB)
  goes to S3 as a multipart upload in parts of half the threshold, completed only when every
  part is in and aborted on failure.

Credentials and endpoints follow each filesystem's own conventions: for S3 (``pip install
'synapse-sdk[s3]'``, s3fs) the standard ``AWS_*`` environment variables, ``AWS_ENDPOINT_URL``
for S3-compatible servers included. Failures of a non-local storage are mapped at this boundary
into the error tree (:mod:`synapse_sdk.storage.errors`): throttling, 5xx and timeouts are
transient, access and missing-bucket errors permanent.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from synapse_sdk.storage._local import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    StagedFile,
    atomic_write,
    clean_temp_files,
    fsync_dir,
)
from synapse_sdk.storage.errors import (
    StorageAccessDeniedError,
    StorageError,
    StorageNotFoundError,
    StorageThrottledError,
    StorageTimeoutError,
    StorageUnavailableError,
    map_storage_error,
    redact_url,
)

__all__ = [
    "DEFAULT_MULTIPART_THRESHOLD",
    "MIN_MULTIPART_THRESHOLD",
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "CredentialsInUrlError",
    "FsspecStorage",
    "ListedObject",
    "LocalStorage",
    "StagedFile",
    "Storage",
    "StorageAccessDeniedError",
    "StorageError",
    "StorageNotFoundError",
    "StorageThrottledError",
    "StorageTimeoutError",
    "StorageUnavailableError",
    "StoredObject",
    "UnsupportedStorageError",
    "atomic_write",
    "carries_credentials",
    "clean_temp_files",
    "credential_variables",
    "default_state_dir",
    "fsync_dir",
    "is_url",
    "open_storage",
    "redact_url",
]

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: fsspec protocols that are object stores: no folders to create, no rename.
_OBJECT_STORES: Final = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
#: Object stores whose URL's authority is a bucket name (never "@" or ":" in it).
_BUCKET_STORES: Final = frozenset({"s3", "s3a", "gs", "gcs", "memory"})
#: The extra that installs each protocol's filesystem, named in the error when it is missing.
_EXTRAS: Final = {"s3": "s3", "s3a": "s3"}
#: The environment variables that give each protocol's credentials (named in refusals).
_CREDENTIAL_VARIABLES: Final = {
    "s3": "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY",
    "s3a": "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY",
}

#: An object of 16 MiB or more is uploaded in parts of 8 MiB (s3fs's own rule is 100 MiB in
#: parts of 50 MiB): s3fs holds what it sends in memory, about 2.4 x a part (or a whole object
#: below the threshold) per upload, so small parts keep an export's memory flat on S3 too.
DEFAULT_MULTIPART_THRESHOLD: Final = 16 * 2**20
#: S3 refuses parts under 5 MiB (but the last), so the smallest threshold is two such parts.
MIN_MULTIPART_THRESHOLD: Final = 10 * 2**20
_MAX_PARTS: Final = 10_000

T = TypeVar("T")


class UnsupportedStorageError(ValueError):
    """The output URL names a storage this installation cannot write to (an unknown scheme, or
    a filesystem whose package is not installed)."""


class CredentialsInUrlError(UnsupportedStorageError):
    """The output URL carries credentials (``key:secret@``): they would be kept, logged and
    passed around with the URL, so they are refused; the filesystem's own conventions (for S3
    the ``AWS_*`` environment) give them instead. The message shows the URL without them."""


def credential_variables(url: str) -> str | None:
    """The environment variables that give the credentials of ``url``'s storage (for S3
    ``AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY``), None where the filesystem has its own
    configuration."""
    return _CREDENTIAL_VARIABLES.get(url.partition("://")[0].lower())


def carries_credentials(url: str) -> bool:
    """Whether ``url`` holds credentials: a password (``user:password@``), or on a bucket
    store (S3, GCS, memory) any user part (``s3://KEY@bucket``) or ``:`` before the bucket (an
    AWS secret holds ``/``, which ends the URL's authority early: ``s3://KEY:ab/cd@bucket``).
    A plain user name (``sftp://me@host``, ``abfs://container@account``) is no secret."""
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if scheme.lower() in _BUCKET_STORES:  # bucket names hold neither "@" nor ":"
        return "@" in authority or ":" in authority
    try:
        if urlsplit(url).password is not None:
            return True
    except ValueError:  # an unparsable authority: judge by its "@"
        return "@" in authority
    # "me:pa/ss@host": a "/" in the password ends the authority; what is left is no port.
    _, colon, port = authority.rpartition(":")
    return bool(colon) and not port.isdigit() and "@" in rest


def is_url(out: str | os.PathLike[str]) -> bool:
    """Whether ``out`` is a URL (``scheme://...``) rather than a local path."""
    return isinstance(out, str) and _URL.match(out) is not None


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What one write stored: the name (relative to the storage), its size, and its MD5 (hex;
    the ETag S3 gives an object written in one put), None where the storage needs none."""

    name: str
    size: int
    md5: str | None


@dataclass(frozen=True, slots=True)
class ListedObject:
    """An object as a listing shows it: its size and its ETag (quotes removed; None when the
    storage gives none)."""

    size: int
    etag: str | None


class Storage(ABC):
    """A place files are written to, under one root; see the module docstring."""

    #: The location for messages (a path, or the URL without credentials).
    display: str
    #: True for local disk (files can be read back cheaply, one by one).
    is_local: bool

    @abstractmethod
    def child(self, name: str) -> Storage:
        """The storage under ``<root>/<name>``."""

    @abstractmethod
    def prepare(self) -> None:
        """Make the root ready for writes (create the folder; remove a killed run's temporaries).

        Raises:
            OSError: local disk. StorageError: a non-local storage (mapped).
        """

    @abstractmethod
    def write(self, name: str, data: bytes) -> StoredObject:
        """Write ``data`` as ``<root>/<name>``, all of it or nothing (see the module docstring).

        Raises:
            TypeError: ``data`` is not bytes. OSError: local disk. StorageError: non-local.
        """

    @abstractmethod
    def stage(self, name: str) -> StagedFile:
        """A :class:`StagedFile` to fill (e.g. with a streamed download) before
        :meth:`commit` stores it as ``<root>/<name>``: local disk stages it in the folder
        itself, other storages in a local temporary folder.

        Raises:
            OSError: the temporary file cannot be created.
        """

    @abstractmethod
    def commit(self, staged: StagedFile, name: str) -> StoredObject:
        """Store ``staged`` as ``<root>/<name>``, all of it or nothing (local disk: fsync and
        rename; object store: one put, or a multipart upload completed only when whole); the
        staged file is gone afterwards, stored or not.

        Raises:
            OSError: local disk. StorageError: non-local.
        """

    @abstractmethod
    def read(self, name: str) -> bytes:
        """The bytes of ``<root>/<name>``.

        Raises:
            FileNotFoundError: it does not exist. OSError / StorageError: the read failed.
        """

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether ``<root>/<name>`` exists as a file.

        Raises:
            OSError / StorageError: the check failed.
        """

    @abstractmethod
    def remove(self, name: str) -> None:
        """Remove ``<root>/<name>``; nothing happens if it does not exist.

        Raises:
            OSError: local disk. StorageError: non-local (mapped).
        """

    @abstractmethod
    def listing(self) -> dict[str, ListedObject]:
        """The objects directly under the root, by name, in one listing (empty if none).

        Raises:
            OSError / StorageError: the listing failed (a missing bucket, access denied).
        """

    def sync(self) -> None:  # noqa: B027 - a no-op unless the storage buffers renames
        """Make the writes so far durable (local disk: fsync the folder); default no-op."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display!r})"


class LocalStorage(Storage):
    """A local folder; every write is :func:`atomic_write` (temporary file, fsync, rename)."""

    is_local = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.display = str(self.path)

    def child(self, name: str) -> LocalStorage:
        return LocalStorage(self.path / name)

    def prepare(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        clean_temp_files(self.path)

    def write(self, name: str, data: bytes) -> StoredObject:
        atomic_write(self.path / name, data)
        return StoredObject(name, len(data), None)

    def stage(self, name: str) -> StagedFile:
        return StagedFile(self.path, name)

    def commit(self, staged: StagedFile, name: str) -> StoredObject:
        staged.commit(self.path / name)
        return StoredObject(name, staged.size, None)

    def read(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    def exists(self, name: str) -> bool:
        return (self.path / name).is_file()

    def remove(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)

    def listing(self) -> dict[str, ListedObject]:
        found: dict[str, ListedObject] = {}
        if not self.path.is_dir():
            return found
        with os.scandir(self.path) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    found[entry.name] = ListedObject(entry.stat().st_size, None)
        return found

    def sync(self) -> None:
        fsync_dir(self.path)


class FsspecStorage(Storage):
    """A root on an fsspec filesystem; each write is one whole put (``pipe_file``). Errors are
    mapped into the tree (:func:`~synapse_sdk.storage.errors.map_storage_error`).

    ``multipart_threshold`` (S3 only): the size from which a committed file is a multipart
    upload, in parts of half of it (see the module docstring).

    Raises:
        ValueError: ``multipart_threshold`` is under :data:`MIN_MULTIPART_THRESHOLD`.
    """

    is_local = False

    def __init__(
        self,
        fs: Any,
        root: str,
        url: str,
        *,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    ) -> None:
        if multipart_threshold < MIN_MULTIPART_THRESHOLD:
            raise ValueError(
                f"multipart_threshold must be at least {MIN_MULTIPART_THRESHOLD} bytes (two "
                f"5 MiB parts), got {multipart_threshold}"
            )
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url.rstrip("/")
        self.display = redact_url(self.url)
        self.multipart_threshold = multipart_threshold
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.object_store = protocol in _OBJECT_STORES
        self._s3 = protocol in ("s3", "s3a")

    def child(self, name: str) -> FsspecStorage:
        return FsspecStorage(
            self.fs,
            f"{self.root}/{name}",
            f"{self.url}/{name}",
            multipart_threshold=self.multipart_threshold,
        )

    def _call(self, operation: str, func: Callable[[], T]) -> T:
        try:
            return func()
        except Exception as exc:
            mapped = map_storage_error(exc, url=self.url, operation=operation)
            if mapped is exc:
                raise
            raise mapped from exc

    def prepare(self) -> None:
        if not self.object_store:
            self._call("prepare", lambda: self.fs.makedirs(self.root, exist_ok=True))

    def write(self, name: str, data: bytes) -> StoredObject:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        path = f"{self.root}/{name}"
        self._call("write", lambda: self.fs.pipe_file(path, bytes(data)))
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return StoredObject(name, len(data), md5)

    def stage(self, name: str) -> StagedFile:
        return StagedFile(tempfile.gettempdir(), name, md5=True)

    def commit(self, staged: StagedFile, name: str) -> StoredObject:
        path = f"{self.root}/{name}"
        # s3fs: one put below two parts, else a multipart upload it completes only when whole
        # (and aborts on failure): never a partial object under the key.
        options: dict[str, int] = {}
        if self._s3:  # parts of half the threshold, more if S3's 10,000 parts need it
            part = max(self.multipart_threshold // 2, -(-staged.size // _MAX_PARTS))
            options["chunksize"] = part
            # One part in flight per file: s3fs's default (10) holds ten parts in memory.
            options["max_concurrency"] = 1
        try:
            staged.finish(fsync=False)
            self._call("write", lambda: self.fs.put_file(str(staged.path), path, **options))
        finally:
            staged.discard()
        return StoredObject(name, staged.size, staged.md5)

    def read(self, name: str) -> bytes:
        path = f"{self.root}/{name}"
        data: bytes = self._call("read", lambda: self.fs.cat_file(path))
        return data

    def exists(self, name: str) -> bool:
        path = f"{self.root}/{name}"
        return bool(self._call("read", lambda: self.fs.isfile(path)))

    def remove(self, name: str) -> None:
        path = f"{self.root}/{name}"

        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)

        self._call("remove", rm)

    def listing(self) -> dict[str, ListedObject]:
        def ls() -> list[dict[str, Any]]:
            self.fs.invalidate_cache(self.root)
            try:
                entries: list[dict[str, Any]] = self.fs.ls(self.root, detail=True)
            except FileNotFoundError as exc:
                mapped = map_storage_error(exc, url=self.url, operation="list")
                if type(mapped) is StorageError:
                    return []  # no object under the prefix yet
                raise
            return entries

        found: dict[str, ListedObject] = {}
        for entry in self._call("list", ls):
            if entry.get("type") != "file":
                continue
            name = str(entry.get("name", "")).rstrip("/").rsplit("/", 1)[-1]
            etag = entry.get("ETag") or entry.get("etag")
            found[name] = ListedObject(
                int(entry.get("size") or 0), etag.strip('"') if isinstance(etag, str) else None
            )
        return found


def _fsspec_options(protocol: str) -> dict[str, Any]:
    """Options of the filesystem for ``protocol``: S3 retries nothing itself (one attempt in
    s3fs and in botocore), so throttling and 5xx reach the export's own retry policy."""
    if protocol in ("s3", "s3a"):
        return {"config_kwargs": {"retries": {"total_max_attempts": 1}}}
    return {}


def open_storage(
    out: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
) -> Storage:
    """The storage for an output location: a local path (or ``file://`` URL) is a
    :class:`LocalStorage`, any other URL an :class:`FsspecStorage`. ``storage_options`` are
    passed to the fsspec filesystem (credentials are better left to its own conventions);
    ``multipart_threshold`` is the :class:`FsspecStorage`'s (S3).

    Raises:
        UnsupportedStorageError: an unknown scheme, or its package is not installed (the
            message names the extra to install).
        CredentialsInUrlError: the URL carries credentials (:func:`carries_credentials`).
        ValueError: ``multipart_threshold`` is under :data:`MIN_MULTIPART_THRESHOLD`.
    """
    if not is_url(out):
        return LocalStorage(out)
    url = str(out)
    protocol = url.split("://", 1)[0].lower()
    if protocol == "file":
        return LocalStorage(url.split("://", 1)[1])
    if carries_credentials(url):
        env = credential_variables(url)
        raise CredentialsInUrlError(
            f"the storage URL {redact_url(url)!r} carries credentials: remove them from the "
            "URL and give them through "
            + (f"the environment ({env})" if env else "the filesystem's own configuration")
        )
    try:
        import fsspec
        from fsspec.core import url_to_fs
    except ImportError as exc:  # pragma: no cover - fsspec comes with the package
        raise UnsupportedStorageError(
            f"unsupported storage type {protocol!r}: fsspec is not installed"
        ) from exc
    if protocol not in fsspec.available_protocols():
        raise UnsupportedStorageError(
            f"unsupported storage type {protocol!r} in {redact_url(url)!r}: fsspec knows no "
            "such protocol"
        )
    options = {**_fsspec_options(protocol), **(storage_options or {})}
    try:
        fs, root = url_to_fs(url, skip_instance_cache=True, **options)
    except ImportError as exc:
        extra = _EXTRAS.get(protocol)
        hint = f"pip install 'synapse-sdk[{extra}]'" if extra else str(exc)
        raise UnsupportedStorageError(
            f"unsupported storage type {protocol!r}: its filesystem is not installed ({hint})"
        ) from exc
    except ValueError as exc:
        raise UnsupportedStorageError(
            f"unsupported storage location {redact_url(url)!r}: {exc}"
        ) from exc
    if protocol in ("s3", "s3a"):
        fs.retries = 1  # s3fs's own retry loop (a class attribute, not an option)
    return FsspecStorage(fs, root, url, multipart_threshold=multipart_threshold)


def default_state_dir(url: str) -> Path:
    """The local folder that keeps the ledger and job log of an export to ``url``:
    ``$XDG_STATE_HOME/synapse-sdk/export/<readable slug>-<hash of the URL>`` (``~/.local/state``
    without ``XDG_STATE_HOME``). The same URL always gives the same folder, so a rerun resumes.
    """
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    shown = redact_url(url.rstrip("/"))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", shown).strip("-")[:60]
    digest = hashlib.sha256(url.rstrip("/").encode("utf-8")).hexdigest()[:12]
    return Path(base) / "synapse-sdk" / "export" / f"{slug}-{digest}"
