"""Local disk: atomic writes, the temporaries a kill leaves behind, and folder fsyncs.

This is the one place the SDK writes an output file to local disk; the export goes through it
via :class:`synapse_sdk.storage.LocalStorage`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Final

__all__ = ["TEMP_PREFIX", "TEMP_SUFFIX", "atomic_write", "clean_temp_files", "fsync_dir"]

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


def atomic_write(
    path: str | Path, data: bytes, *, fsync: bool = True, mode: int = 0o644
) -> None:
    """Write ``data`` to ``path`` atomically: all of it or nothing, even under ``kill -9``.

    The bytes go to a hidden temporary file in the same folder, are flushed and (by default)
    fsynced, and the file is then renamed over ``path`` with ``os.replace``. Readers see the old
    file or the complete new one, never a part. The temporary file is removed if anything fails;
    a *kill* can leave one behind, which :func:`clean_temp_files` removes. ``mode`` is the
    new file's permission bits (less the umask): ``0o600`` keeps a secret private from the first
    byte.

    Raises:
        TypeError: ``data`` is not bytes.
        OSError: the folder is missing or the write fails (disk full, permissions).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    target = Path(path)
    temp = target.with_name(f"{TEMP_PREFIX}{target.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


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


