"""The building blocks of the export action's steps: safe file names, atomic writes, conversion.

Everything here is free of backend and logging concerns so each piece can be tested alone:

* :func:`item_filename` turns an item id into a file name, refusing ids that could escape the
  output folder (``../``, absolute paths, separators, NUL, control characters);
* :func:`atomic_write` writes a file so that a kill at any instant leaves either the old file,
  the complete new one, or nothing: a temporary file in the same folder, ``fsync``, then
  ``os.replace``; :func:`clean_temp_files` removes temporaries a killed run left behind;
* :func:`convert_item` turns a backend item into the export JSON record;
* :func:`chunked` groups an iterable into lists without reading ahead;
* :class:`RatePacer` paces the requests of an ``httpx.Client`` to the rate limit the backend
  advertised through its 429 answers, so a long export stops being rejected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Final, TypeVar

from synapse_sdk.clients._manifest import primary_file
from synapse_sdk.envelopes import ItemId
from synapse_sdk.retry_after import retry_after_from_headers

if TYPE_CHECKING:
    import httpx

__all__ = [
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "ExportRecord",
    "RatePacer",
    "UnsafeItemIdError",
    "atomic_write",
    "chunked",
    "clean_temp_files",
    "convert_item",
    "fsync_dir",
    "item_filename",
    "original_extension",
    "sha256_hex",
]

#: Temporary files are named ``.<final name>.<random>.tmp`` so they are hidden, never collide
#: with an item's file, and :func:`clean_temp_files` can find them.
TEMP_PREFIX: Final = "."
TEMP_SUFFIX: Final = ".tmp"

_MAX_ID_LENGTH: Final = 128
_DEFAULT_EXTENSION: Final = "bin"
_EXTENSION = re.compile(r"[A-Za-z0-9]{1,10}")
_SUFFIX = re.compile(r"[A-Za-z0-9]{1,10}(?:\.[A-Za-z0-9]{1,10})?")
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")
# Characters an id may never contain in a file name: separators of every platform, NUL and the
# rest of the C0 controls, DEL and the C1 controls (they break terminals, logs and some
# filesystems).
_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f-\x9f]")

T = TypeVar("T")


class UnsafeItemIdError(ValueError):
    """An item id cannot be used as a file name: it could escape the output folder or is not a
    plain name (path separators, ``..``, absolute path, NUL or control characters, too long)."""

    def __init__(self, item_id: object, reason: str) -> None:
        shown = repr(item_id)
        if len(shown) > 80:
            shown = shown[:80] + "…"
        super().__init__(f"item id {shown} cannot be used as a file name: {reason}")
        self.item_id = item_id
        self.reason = reason


def item_filename(item_id: ItemId, suffix: str) -> str:
    """The file name ``<id>.<suffix>`` of an item, after checking the id is a plain name.

    Raises:
        UnsafeItemIdError: the id is empty or blank, ``.`` or ``..``, contains a path separator,
            NUL or a control character, starts with ``.`` or ``~`` (hidden / home-relative), is
            absolute on any platform (``C:``), or is longer than 128 characters.
        TypeError: the id is not an ``int`` or ``str`` (``bool`` is refused).
        ValueError: ``suffix`` is not one or two dot-separated runs of 1-10 ASCII letters or
            digits (``json``, ``original.json``).
    """
    if not _SUFFIX.fullmatch(suffix):
        raise ValueError(f"file suffix must be like 'json' or 'original.json', got {suffix!r}")
    if isinstance(item_id, bool) or not isinstance(item_id, int | str):
        raise TypeError(f"an item id must be an int or a str, not {type(item_id).__name__}")
    if isinstance(item_id, int):
        if item_id < 0:
            raise UnsafeItemIdError(item_id, "negative ids are not valid")
        return f"{item_id}.{suffix}"
    text = item_id
    if not text:
        raise UnsafeItemIdError(item_id, "it is empty")
    if not text.strip():  # the backend client refuses blank ids: the export would stop on it
        raise UnsafeItemIdError(item_id, "it is blank")
    if len(text) > _MAX_ID_LENGTH:
        raise UnsafeItemIdError(item_id, f"it is longer than {_MAX_ID_LENGTH} characters")
    if _FORBIDDEN.search(text):
        raise UnsafeItemIdError(
            item_id, "it contains a path separator, NUL or a control character"
        )
    if text in (".", "..") or text.startswith((".", "~")):
        raise UnsafeItemIdError(item_id, "it starts with '.' or '~'")
    if ":" in text:  # drive letters and alternate data streams on Windows
        raise UnsafeItemIdError(item_id, "it contains ':'")
    name = f"{text}.{suffix}"
    # Belt and braces: the result must be exactly one relative path component.
    if PurePosixPath(name).name != name or os.path.isabs(name):
        raise UnsafeItemIdError(item_id, "it is not a single relative file name")
    return name


def original_extension(item: Mapping[str, Any], content: bytes | None = None) -> str:
    """The extension for an item's original file. Never raises.

    From the ``file_name_original`` of the primary ``files_manifest`` entry, else the item's
    ``original`` block (``ext``/``extension``, else the last segment of
    ``filename``/``name``/``url`` when it has one), else sniffed from the file's first bytes
    (PNG, JPEG, GIF, PDF, ZIP, JSON, UTF-8 text), else ``bin``.
    """
    entry = primary_file(item)
    name = entry.get("file_name_original") if entry is not None else None
    if isinstance(name, str):
        _, dot, ext = name.rsplit("/", 1)[-1].rpartition(".")
        if dot and _EXTENSION.fullmatch(ext):
            return ext.lower()
    original = item.get("original")
    if isinstance(original, Mapping):
        for key in ("ext", "extension"):
            value = original.get(key)
            if isinstance(value, str):
                candidate = value.lstrip(".").lower()
                if _EXTENSION.fullmatch(candidate):
                    return candidate
        for key in ("filename", "name", "url"):
            value = original.get(key)
            if isinstance(value, str):
                _, dot, ext = value.rsplit("/", 1)[-1].rpartition(".")
                if dot and _EXTENSION.fullmatch(ext):
                    return ext.lower()
    return _sniff_extension(content) if content is not None else _DEFAULT_EXTENSION


_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF8", "gif"),
    (b"%PDF-", "pdf"),
    (b"PK\x03\x04", "zip"),
)


def _sniff_extension(content: bytes) -> str:
    for magic, ext in _MAGIC:
        if content.startswith(magic):
            return ext
    head = content[:4096]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a multi-byte character cut at the boundary
            return _DEFAULT_EXTENSION
        text = head[: exc.start].decode("utf-8")
    if "\x00" in text:
        return _DEFAULT_EXTENSION
    if text.lstrip()[:1] in ("{", "["):
        try:
            json.loads(content)
        except ValueError:
            return "txt"
        return "json"
    return "txt"


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


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


def atomic_write(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: all of it or nothing, even under ``kill -9``.

    The bytes go to a hidden temporary file in the same folder, are flushed and (by default)
    fsynced, and the file is then renamed over ``path`` with ``os.replace``. Readers see the old
    file or the complete new one, never a part. The temporary file is removed if anything fails;
    a *kill* can leave one behind, which :func:`clean_temp_files` removes.

    Raises:
        TypeError: ``data`` is not bytes.
        OSError: the folder is missing or the write fails (disk full, permissions).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    target = Path(path)
    temp = target.with_name(f"{TEMP_PREFIX}{target.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
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


@dataclass(frozen=True, slots=True)
class ExportRecord:
    """One item converted for export: its id, its JSON record, and where its files go.

    The original file's name is decided once its bytes are known (:meth:`original_name`), and
    written into the record by :meth:`json_bytes`.
    """

    id: ItemId
    record: Mapping[str, Any]
    json_name: str
    has_original: bool
    original_sha256: str | None
    source: Mapping[str, Any]

    def original_name(self, content: bytes | None = None) -> str:
        """``<id>.<ext>``, the extension from the item or sniffed from ``content``; an original
        that is itself JSON is ``<id>.original.json``, beside the record's ``<id>.json``."""
        ext = original_extension(self.source, content)
        return item_filename(self.id, "original.json" if ext == "json" else ext)

    def json_bytes(self, original_name: str | None = None, sha256: str | None = None) -> bytes:
        """The bytes of the item's JSON file (sorted keys, UTF-8, trailing newline), naming
        the original file saved beside it and, when the item declared none (a v2 manifest
        gives a SHA-1), its SHA-256 as saved."""
        record = dict(self.record)
        original = record.get("original")
        if isinstance(original, Mapping):
            record["original"] = {**original, "file": original_name}
            if original.get("sha256") is None and sha256 is not None:
                record["original"]["sha256"] = sha256
        text = json.dumps(record, ensure_ascii=False, sort_keys=True, indent=2)
        return (text + "\n").encode("utf-8")


def convert_item(item: Mapping[str, Any], target: str) -> ExportRecord:
    """Turn a backend item into its export record.

    The record keeps the item's ``id``, ``resource``, ``project_id`` and ``data``, and describes
    the original file as saved beside it (``file``, ``size``, ``sha256``).

    Raises:
        ValueError: the item is not a mapping with an ``id`` (a malformed backend answer).
        UnsafeItemIdError: the id cannot be used as a file name.
        TypeError: the id is neither an ``int`` nor a ``str``.
    """
    if not isinstance(item, Mapping) or "id" not in item:
        raise ValueError(f"a backend item must be an object with an 'id', got {_brief(item)}")
    item_id = item["id"]
    json_name = item_filename(item_id, "json")
    original = item.get("original")
    entry = primary_file(item)
    described: dict[str, Any] | None = None
    sha: str | None = None
    if isinstance(original, Mapping):
        raw_sha = original.get("sha256")
        sha = raw_sha.lower() if isinstance(raw_sha, str) else None
        described = {"file": None, "size": original.get("size"), "sha256": sha}
    elif entry is not None:  # the v2 API's manifest: no SHA-256, a SHA-1 checksum
        described = {"file": None, "size": entry.get("file_size"), "sha256": None}
    record = {
        "id": item_id,
        "resource": item.get("resource", target),
        "project_id": item.get("project_id"),
        "data": item.get("data"),
        "original": described,
    }
    return ExportRecord(item_id, record, json_name, described is not None, sha, item)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield lists of up to ``size`` consecutive items, reading only one list ahead.

    Raises:
        ValueError: ``size`` is below 1.
    """
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size!r}")
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "…"


class RatePacer:
    """Paces an ``httpx.Client``'s rate-limited requests to the rate its 429 answers reveal.

    ``paths`` are the URL paths that share the backend's rate limit (for an export: the list and
    bulk-fetch paths of the resource; file downloads are not rate limited and never wait).
    Attach the pacer with :meth:`install` (httpx event hooks). It learns from each 429 on those
    paths: the answer's ``Retry-After`` says when the next request will be let through, so
    ``429 time + Retry-After - time of the last request let through`` is at most the backend's
    interval between requests (it never overestimates it). The largest observation, plus a small
    margin, becomes the pace: every later request on those paths waits for its slot (slots are
    handed out in order, so threads share one schedule, as the backend's per-token bucket is
    shared) and the client stops spending requests on rejections. A client that never sees a
    429 is never delayed. ``sleep`` and ``clock`` are injectable so tests run on a fake clock;
    ``on_rejection`` is called with the advertised wait of every 429 (to tell the user).

    Raises:
        ValueError: no ``paths``, a path not starting with ``/``, ``margin`` below 1 or
            ``max_interval`` not positive.
    """

    def __init__(
        self,
        paths: Iterable[str],
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        margin: float = 1.01,
        max_interval: float = 60.0,
        on_rejection: Callable[[float], None] | None = None,
    ) -> None:
        self._paths = frozenset(paths)
        if not self._paths or not all(isinstance(p, str) and p[:1] == "/" for p in self._paths):
            raise ValueError(f"paths must be URL paths starting with '/', got {paths!r}")
        if not margin >= 1.0:
            raise ValueError(f"margin must be >= 1, got {margin!r}")
        if not max_interval > 0:
            raise ValueError(f"max_interval must be > 0, got {max_interval!r}")
        self._sleep = sleep
        self._clock = clock
        self._margin = margin
        self._max_interval = max_interval
        self._on_rejection = on_rejection
        self._lock = threading.Lock()
        self._interval = 0.0
        self._next_at = 0.0
        self._last_ok: float | None = None
        #: 429 answers seen on the paced paths.
        self.rejections = 0

    @property
    def interval(self) -> float:
        """Seconds between paced requests (0 until a 429 was seen)."""
        return self._interval

    def install(self, client: httpx.Client) -> httpx.Client:
        """Add the pacer's hooks to ``client``'s event hooks and return the client."""
        hooks = client.event_hooks
        hooks.setdefault("request", []).append(self.before_request)
        hooks.setdefault("response", []).append(self.after_response)
        client.event_hooks = hooks
        return client

    def before_request(self, request: httpx.Request) -> None:
        """Wait for this request's slot when its path is paced and a pace is known."""
        if request.url.path not in self._paths:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_at)
            if self._interval > 0:
                self._next_at = slot + self._interval
        if slot > now:
            self._sleep(slot - now)

    def after_response(self, response: httpx.Response) -> None:
        """Learn from an answer on a paced path: a 429's ``Retry-After``, or a request let in."""
        if response.request.url.path not in self._paths:
            return
        now = self._clock()
        with self._lock:
            if response.status_code != 429:
                self._last_ok = now
                return
            self.rejections += 1
            wait = retry_after_from_headers(response.headers)
            if wait is None:
                return
            allowed_at = now + wait
            self._next_at = max(self._next_at, allowed_at)
            if self._last_ok is not None:
                observed = min((allowed_at - self._last_ok) * self._margin, self._max_interval)
                self._interval = max(self._interval, observed)
        if self._on_rejection is not None:
            self._on_rejection(wait)

    def __repr__(self) -> str:
        return f"RatePacer(interval={self._interval:.4f}, rejections={self.rejections})"
