"""The building blocks of the export action's steps: safe file names, atomic writes, conversion.

Everything here is free of backend and logging concerns so each piece can be tested alone:

* :func:`item_filename` turns an item id into a file name, refusing ids that could escape the
  output folder (``../``, absolute paths, separators, NUL, control characters);
* :func:`atomic_write` (from :mod:`synapse_sdk.storage`, the one place files are written)
  writes a file so that a kill at any instant leaves either the old file, the complete new one,
  or nothing; :func:`clean_temp_files` removes temporaries a killed run left behind;
* :func:`convert_item` turns a backend item into the export JSON record;
* :func:`chunked` groups an iterable into lists without reading ahead;
* :class:`RatePacer` paces a backend client's requests (a transport ``pacer``) to the rate limit
  the backend advertised through its 429 answers, so a long export stops being rejected.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any, Final, TypeVar

from synapse_sdk.clients._manifest import primary_file
from synapse_sdk.config import RetryPolicy
from synapse_sdk.envelopes import ItemId
from synapse_sdk.retry import decide_wait
from synapse_sdk.retry_after import (
    RateLimitInfo,
    rate_limit_from_headers,
    retry_after_from_headers,
)
from synapse_sdk.storage._local import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    atomic_write,
    clean_temp_files,
    fsync_dir,
)

__all__ = [
    "ORIGINAL_MARK",
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "ExportRecord",
    "RatePacer",
    "UnsafeItemIdError",
    "atomic_write",
    "checked_item",
    "chunked",
    "clean_temp_files",
    "convert_item",
    "default_record",
    "fsync_dir",
    "item_filename",
    "name_key",
    "original_extension",
    "record_for",
    "sha256_hex",
]

_MAX_ID_LENGTH: Final = 128
#: Most filesystems cap a file name at 255 bytes; the longest name an id gets is the temporary
#: file of its JSON original, ``.<id>.original.json.<16 hex>.tmp`` (36 bytes besides the id).
_MAX_ID_BYTES: Final = 255 - 36
_DEFAULT_EXTENSION: Final = "bin"
_EXTENSION = re.compile(r"[A-Za-z0-9]{1,10}")
_SUFFIX = re.compile(r"[A-Za-z0-9]{1,10}(?:\.[A-Za-z0-9]{1,10})?")
# Characters an id may never contain in a file name: separators of every platform, NUL and the
# rest of the C0 controls, DEL and the C1 controls (they break terminals, logs and some
# filesystems), and lone surrogates (no filesystem encoding can write them).
_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# Characters Windows forbids in a file name besides ':' and the separators.
_WINDOWS_FORBIDDEN = re.compile(r'[<>"|?*]')
# Names Windows takes for devices, whatever the extension (``nul.json`` too).
_WINDOWS_DEVICES: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")}
)
#: The mark of an original file that is itself JSON: ``<id>.original.json``.
ORIGINAL_MARK: Final = ".original"

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
            absolute on any platform (``C:``), is longer than 128 characters or 219 bytes
            (the file names it gets must fit the usual 255-byte limit), or is not portable or
            could be another item's file (see :func:`_check_portable`).
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
    if len(text.encode("utf-8", "surrogatepass")) > _MAX_ID_BYTES:
        raise UnsafeItemIdError(item_id, f"it is longer than {_MAX_ID_BYTES} bytes in UTF-8")
    if _FORBIDDEN.search(text):
        raise UnsafeItemIdError(
            item_id, "it contains a path separator, NUL, a control character or a lone surrogate"
        )
    if text in (".", "..") or text.startswith((".", "~")):
        raise UnsafeItemIdError(item_id, "it starts with '.' or '~'")
    if ":" in text:  # drive letters and alternate data streams on Windows
        raise UnsafeItemIdError(item_id, "it contains ':'")
    _check_portable(item_id, text)
    name = f"{text}.{suffix}"
    # Belt and braces: the result must be exactly one relative path component.
    if PurePosixPath(name).name != name or os.path.isabs(name):
        raise UnsafeItemIdError(item_id, "it is not a single relative file name")
    return name


def _check_portable(item_id: ItemId, text: str) -> None:
    """Refuse a name that is not the same file everywhere outputs move (Windows, macOS), or
    that could be another item's file.

    Raises:
        UnsafeItemIdError: a character Windows forbids, a trailing space or dot (Windows drops
            them), a Windows device name as the part before the first dot (``CON``,
            ``nul.txt``, ``COM1``), or an id ending in ``.original`` (``5.original.json`` is
            item 5's JSON original).
    """
    if _WINDOWS_FORBIDDEN.search(text):
        raise UnsafeItemIdError(item_id, 'it contains one of < > " | ? *')
    if text[-1] in " .":
        raise UnsafeItemIdError(item_id, "it ends with a space or a dot")
    if text.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        raise UnsafeItemIdError(item_id, "it is a Windows device name (CON, NUL, COM1...)")
    if name_key(text).endswith(ORIGINAL_MARK):
        raise UnsafeItemIdError(item_id, f"it ends with {ORIGINAL_MARK!r}, like original files")


def name_key(item_id: ItemId) -> str:
    """What an id's file names are on a filesystem that ignores case and Unicode normalisation
    (Windows, macOS): two ids with the same key would write the same files there
    (``Mixed``/``mixed``, ``é`` composed or not). Never raises."""
    text = str(item_id)
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).casefold())


def original_extension(
    item: Mapping[str, Any], content: bytes | Callable[[], bytes] | None = None
) -> str:
    """The extension for an item's original file. Never raises but for ``content``'s errors.

    From the ``file_name_original`` of the primary ``files_manifest`` entry, else the item's
    ``original`` block (``ext``/``extension``, else the last segment of
    ``filename``/``name``/``url`` when it has one), else sniffed from the file's first bytes
    (PNG, JPEG, GIF, PDF, ZIP, JSON, UTF-8 text), else ``bin``. ``content`` is the file's
    bytes, or a callable giving the bytes to sniff (called only when sniffing is needed: a
    streamed file is not read back otherwise).
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
    if content is None:
        return _DEFAULT_EXTENSION
    return _sniff_extension(content() if callable(content) else content)


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
        except (ValueError, RecursionError):  # nested deeper than the parser goes: unproven
            return "txt"
        return "json"
    return "txt"


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


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

    def original_name(self, content: bytes | Callable[[], bytes] | None = None) -> str:
        """``<id>.<ext>``, the extension from the item or sniffed from ``content`` (the bytes,
        or a callable giving them: see :func:`original_extension`); an original that is itself
        JSON is ``<id>.original.json``, beside the record's ``<id>.json``."""
        ext = original_extension(self.source, content)
        return item_filename(self.id, f"{ORIGINAL_MARK[1:]}.json" if ext == "json" else ext)

    def with_saved_sha256(self, sha256: str) -> ExportRecord:
        """This record with ``original.sha256`` set to the SHA-256 of the bytes saved, where the
        item declared none (a v2 manifest gives a SHA-1 checksum)."""
        original = self.record.get("original")
        if not isinstance(original, Mapping) or original.get("sha256") is not None:
            return self
        return replace(self, record={**self.record, "original": {**original, "sha256": sha256}})

    def json_bytes(self, original_name: str | None = None, sha256: str | None = None) -> bytes:
        """The bytes of the item's JSON file (sorted keys, UTF-8, trailing newline), naming
        the original file saved beside it and, with ``sha256``, the digest of the bytes saved
        where the item declared none (:meth:`with_saved_sha256`)."""
        if sha256 is not None:
            return self.with_saved_sha256(sha256).json_bytes(original_name)
        record = dict(self.record)
        original = record.get("original")
        if isinstance(original, Mapping):
            record["original"] = {**original, "file": original_name}
        text = json.dumps(record, ensure_ascii=False, sort_keys=True, indent=2)
        return (text + "\n").encode("utf-8")


def checked_item(item: Mapping[str, Any]) -> tuple[ItemId, str]:
    """The id of a backend item and its JSON file name, after checking both.

    Raises:
        ValueError: the item is not a mapping with an ``id`` (a malformed backend answer).
        UnsafeItemIdError: the id cannot be used as a file name.
        TypeError: the id is neither an ``int`` nor a ``str``.
    """
    if not isinstance(item, Mapping) or "id" not in item:
        raise ValueError(f"a backend item must be an object with an 'id', got {_brief(item)}")
    item_id = item["id"]
    return item_id, item_filename(item_id, "json")


def default_record(item: Mapping[str, Any], target: str) -> dict[str, Any]:
    """The export record of a backend item: its ``id``, ``resource``, ``project_id`` and
    ``data``, and the description of its original file (``file``, ``size``, ``sha256``)."""
    original = item.get("original")
    entry = primary_file(item)
    described: dict[str, Any] | None = None
    if isinstance(original, Mapping):
        raw_sha = original.get("sha256")
        sha = raw_sha.lower() if isinstance(raw_sha, str) else None
        described = {"file": None, "size": original.get("size"), "sha256": sha}
    elif entry is not None:  # the v2 API's manifest: no SHA-256, a SHA-1 checksum
        described = {"file": None, "size": entry.get("file_size"), "sha256": None}
    return {
        "id": item.get("id"),
        "resource": item.get("resource", target),
        "project_id": item.get("project_id"),
        "data": item.get("data"),
        "original": described,
    }


def convert_item(item: Mapping[str, Any], target: str) -> ExportRecord:
    """Turn a backend item into its export record (:func:`default_record`), the conversion of
    the default exporter.

    Raises:
        ValueError: the item is not a mapping with an ``id`` (a malformed backend answer).
        UnsafeItemIdError: the id cannot be used as a file name.
        TypeError: the id is neither an ``int`` nor a ``str``.
    """
    return record_for(item, default_record(item, target))


def record_for(item: Mapping[str, Any], record: dict[str, Any]) -> ExportRecord:
    """The :class:`ExportRecord` of a backend item whose converted record is ``record``; the
    original file is described from the item as the backend sent it (an ``original`` object,
    or the primary entry of a v2 ``files_manifest``).

    Raises:
        ValueError, UnsafeItemIdError, TypeError: as :func:`checked_item`.
    """
    item_id, json_name = checked_item(item)
    original = item.get("original")
    sha: str | None = None
    if isinstance(original, Mapping):
        raw_sha = original.get("sha256")
        sha = raw_sha.lower() if isinstance(raw_sha, str) else None
    has_original = isinstance(original, Mapping) or primary_file(item) is not None
    return ExportRecord(item_id, record, json_name, has_original, sha, item)


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
    """Paces a backend client's rate-limited requests to the rate its 429 answers reveal.

    A :class:`~synapse_sdk.clients._transport.Pacer`: pass it as ``pacer=`` to the client (the
    export action does); the transport asks :meth:`before_request` before each attempt, sleeps
    what it answers with its own ``sleep``, and tells :meth:`after_response` every answer.
    ``paths`` are the call paths that share the backend's rate limit (for an export: the list and
    bulk-fetch paths of the resource; file downloads are not rate limited and never wait).

    It learns from each 429 on those paths: the answer's ``Retry-After`` says when the next
    request will be let through, so ``429 time + Retry-After - time of the last request let
    through`` is at most the backend's interval between requests (it never overestimates it).
    The largest observation, plus a small margin, becomes the pace: every later request on those
    paths waits for its slot (slots are handed out in order, so threads share one schedule, as
    the backend's per-token bucket is shared) and the client stops spending requests on
    rejections. It also reads the rate-limit headers of every answer (``RateLimit``,
    ``X-RateLimit-*``; see :func:`~synapse_sdk.retry_after.rate_limit_from_headers`): when they
    say no request is left (``remaining`` 0) the next request waits until a unit is back: the
    reset, or sooner when the rate policy (``window / limit``) or the learned pace says so (see
    :meth:`_spent_hold`), so the client slows down before its first 429 without falling to one
    request per whole second of a rounded reset. A client that sees neither is never delayed.

    Every pause is :func:`~synapse_sdk.retry.decide_wait`'s, under ``policy`` (default
    :class:`~synapse_sdk.config.RetryPolicy()`): a ``Retry-After`` above its
    ``retry_after_max`` is not learned (the transport surfaces that 429 at once), and a pause
    the policy refuses is not taken. ``clock`` is injectable so tests run on a fake clock;
    ``on_rejection`` is called with the advertised wait of every 429 the pacer honours (to tell
    the user).

    Raises:
        ValueError: no ``paths``, a path not starting with ``/``, ``margin`` below 1 or
            ``max_interval`` not positive.
        TypeError: ``policy`` is not a RetryPolicy or None.
    """

    def __init__(
        self,
        paths: Iterable[str],
        *,
        policy: RetryPolicy | None = None,
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
        if policy is not None and not isinstance(policy, RetryPolicy):
            raise TypeError(f"policy must be a RetryPolicy or None, not {type(policy).__name__}")
        self._policy = policy if policy is not None else RetryPolicy()
        self._clock = clock
        self._margin = margin
        self._max_interval = max_interval
        self._on_rejection = on_rejection
        self._lock = threading.Lock()
        self._interval = 0.0
        self._spent_step = 0.0
        self._next_at = 0.0
        self._last_ok: float | None = None
        #: 429 answers seen on the paced paths.
        self.rejections = 0

    @property
    def interval(self) -> float:
        """Seconds between paced requests (0 until a 429 was seen)."""
        return self._interval

    def before_request(self, path: str) -> float:
        """The seconds this request waits for its slot (0.0 when ``path`` is not paced, no pace
        is known yet, or the policy refuses so long a pause); takes the slot."""
        if path not in self._paths:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_at)
            decision = decide_wait(self._policy, None, hint=slot - now)
            if decision.surface:
                return 0.0  # sent now: a 429 then surfaces through the transport
            # Slots are spaced by the learned pace, and while the quota is spent by the hold
            # a unit takes to come back (so concurrent callers do not share one unit).
            step = max(self._interval, self._spent_step)
            if step > 0:
                self._next_at = slot + step
        return decision.seconds

    def after_response(self, path: str, status: int, headers: Mapping[str, str]) -> None:
        """Learn from an answer on a paced path: a 429's ``Retry-After``, or a request let in
        (and its rate-limit headers)."""
        if path not in self._paths:
            return
        now = self._clock()
        with self._lock:
            if status != 429:
                self._last_ok = now
                quota = rate_limit_from_headers(headers)
                hold = self._spent_hold(quota) if quota is not None else None
                if hold is not None and not decide_wait(self._policy, None, hint=hold).surface:
                    # Spent: hold the next request until a unit is back (before_request's pause).
                    self._next_at = max(self._next_at, now + hold)
                    self._spent_step = hold
                elif quota is not None and quota.remaining:
                    self._spent_step = 0.0  # units left: no spacing beyond the learned pace
                return
            self.rejections += 1
            wait = retry_after_from_headers(headers)
            if wait is None or decide_wait(self._policy, None, hint=wait).surface:
                return
            allowed_at = now + wait
            self._next_at = max(self._next_at, allowed_at)
            if self._last_ok is not None:
                observed = min((allowed_at - self._last_ok) * self._margin, self._max_interval)
                self._interval = max(self._interval, observed)
        if self._on_rejection is not None:
            self._on_rejection(wait)

    def _spent_hold(self, quota: RateLimitInfo) -> float | None:
        """Seconds until a spent quota (``remaining`` 0) lets the next request in, or None
        when it is not spent or says nothing about when.

        The reset is when the whole quota is back; servers send it in whole seconds, rounded
        up, so alone it caps the pace near one request a second. A token bucket gives a unit
        back sooner: every ``window / limit`` seconds by its rate policy (times the margin),
        and every :attr:`interval` by what 429s' precise ``Retry-After`` taught. The
        shortest of those the answer and the pacer know is the hold.
        """
        if quota.remaining != 0:
            return None
        candidates = [quota.reset] if quota.reset is not None else []
        if quota.limit and quota.window:
            candidates.append(quota.window / quota.limit * self._margin)
        if self._interval > 0:
            candidates.append(self._interval)
        return min(candidates, default=None)

    def __repr__(self) -> str:
        return f"RatePacer(interval={self._interval:.4f}, rejections={self.rejections})"
