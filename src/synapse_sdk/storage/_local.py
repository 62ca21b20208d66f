"""Local disk: atomic writes, the temporaries a kill leaves behind, and folder fsyncs.

This is the one place the SDK writes an output file to local disk; the export goes through it
via :class:`synapse_sdk.storage.LocalStorage`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Final

__all__ = [
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "StagedFile",
    "atomic_write",
    "clean_temp_files",
    "fsync_dir",
]

#: Temporary files are named ``.<final name>.<random>.tmp`` so they are hidden, never collide
#: with an item's file, and :func:`clean_temp_files` can find them.
TEMP_PREFIX: Final = "."
TEMP_SUFFIX: Final = ".tmp"
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")


def fsync_dir(directory: str | Path) -> None:
    """Flush a folder's entries (the renames into it) to disk; a no-op where folders cannot be
    opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


class StagedFile:
    """A file written under a hidden temporary name in ``folder`` until :meth:`commit` makes it
    final (flush, fsync, rename over the final path) or :meth:`discard` removes it; a context
    manager that discards it on exit unless committed. A kill leaves the temporary, which
    :func:`clean_temp_files` removes. ``name`` (the final file's name) names the temporary;
    ``mode`` is its permission bits (less the umask); with ``md5`` the MD5 of what was written
    is kept (:attr:`md5`, for object stores' ETags).

    It is a download sink (:meth:`write`, :meth:`restart`), so a streamed original goes to disk
    chunk by chunk, never whole in memory.

    Raises:
        OSError: the folder is missing or the file cannot be created.
    """

    def __init__(
        self, folder: str | Path, name: str, *, mode: int = 0o644, md5: bool = False
    ) -> None:
        self.path = Path(folder) / f"{TEMP_PREFIX}{name}.{secrets.token_hex(8)}{TEMP_SUFFIX}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        self._file = os.fdopen(os.open(self.path, flags, mode), "w+b")
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        #: Bytes written so far.
        self.size = 0
        self.committed = False

    def write(self, data: bytes) -> None:
        """Append ``data``.

        Raises:
            TypeError: ``data`` is not bytes. OSError: the write failed (disk full).
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        self._file.write(data)
        self.size += len(data)
        if self._md5 is not None:
            self._md5.update(data)

    def restart(self) -> None:
        """Drop what was written: the next :meth:`write` is byte 0 again."""
        self._file.seek(0)
        self._file.truncate()
        self.size = 0
        if self._md5 is not None:
            self._md5 = hashlib.md5(usedforsecurity=False)

    @property
    def md5(self) -> str | None:
        """The MD5 (hex) of the bytes written, when asked for at creation."""
        return None if self._md5 is None else self._md5.hexdigest()

    def flush(self) -> None:
        """Hand the bytes written to the OS, so reading :attr:`path` sees them all."""
        if not self._file.closed:
            self._file.flush()

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes written (to sniff a file's type)."""
        self.flush()
        with self.path.open("rb") as file:
            return file.read(size)

    def finish(self, *, fsync: bool = True) -> None:
        """Flush (and fsync) the bytes and close the file; it stays under its temporary name."""
        if not self._file.closed:
            self._file.flush()
            if fsync:
                os.fsync(self._file.fileno())
            self._file.close()

    def commit(self, target: str | Path, *, fsync: bool = True) -> None:
        """Make the file ``target`` (in the same folder): finish it and rename it over ``target``
        atomically; readers see the old file or the whole new one.

        Raises:
            OSError: the flush, fsync or rename failed (the temporary is then removed).
        """
        try:
            self.finish(fsync=fsync)
            os.replace(self.path, target)
        except BaseException:
            self.discard()
            raise
        self.committed = True

    def discard(self) -> None:
        """Close and remove the temporary file (nothing under the final name). Idempotent."""
        self._file.close()
        if not self.committed:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()


def atomic_write(
    path: str | Path, data: bytes, *, fsync: bool = True, mode: int = 0o644
) -> None:
    """Write ``data`` to ``path`` atomically: all of it or nothing, even under ``kill -9``.

    The bytes go to a hidden temporary file in the same folder (a :class:`StagedFile`), are
    flushed and (by default) fsynced, and the file is then renamed over ``path`` with
    ``os.replace``. Readers see the old file or the complete new one, never a part. The
    temporary file is removed if anything fails; a *kill* can leave one behind, which
    :func:`clean_temp_files` removes. ``mode`` is the new file's permission bits (less the
    umask): ``0o600`` keeps a secret private from the first byte.

    Raises:
        TypeError: ``data`` is not bytes.
        OSError: the folder is missing or the write fails (disk full, permissions).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    target = Path(path)
    with StagedFile(target.parent, target.name, mode=mode) as staged:
        staged.write(data)
        staged.commit(target, fsync=fsync)


def clean_temp_files(directory: str | Path) -> int:
    """Remove the temporary files :func:`atomic_write` left in ``directory`` when a run was
    killed; return how many were removed. Other files are never touched."""
    folder = Path(directory)
    if not folder.is_dir():
        return 0
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and _TEMP_NAME.fullmatch(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


