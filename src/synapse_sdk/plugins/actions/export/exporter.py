"""Exporter hooks: how an item becomes its record and files, overridable by a plugin.

:class:`BaseExporter` has the published SDK's template methods, called by
:class:`~synapse_sdk.plugins.actions.export.action.ExportAction` in this order::

    per item (convert step):  before_convert(item) -> convert_data(item) -> after_convert(record)
    per item (save step):     save_original(record, original, output)       (when it has one)
                              save_as_json(record, original_name, output)
    once, at the end:         additional_file_saving(output)

The defaults reproduce the SDK's own output byte for byte. Originals are streamed: the file is
downloaded to a staged :class:`OriginalFile` (on local disk, never whole in memory) and
``save_original`` stores it (:meth:`ExportOutput.commit`). A plugin written for the bytes API
that overrides ``save_original_file(record, content, output)`` keeps working: the default
``save_original`` then reads the file into memory and calls it. Hooks run inside the export's
guarantees: an exception in a per-item hook fails that item (with the code
``classify_export_error`` gives the hook's error, the chain kept on an
:class:`ExporterHookError`), never the run, unless every item keeps failing (a broken plugin:
then the step fails). Hooks write through :class:`ExportOutput`, i.e. through the storage layer,
so what they write is as atomic as the SDK's own files; a storage failure during a hook's write
is handled as the SDK's own (throttling retried, access denied stops the run) even if the hook
swallowed it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

from synapse_sdk.plugins.actions.export.steps import (
    ExportRecord,
    checked_item,
    default_record,
    record_for,
)
from synapse_sdk.storage import StagedFile, Storage, StoredObject

if TYPE_CHECKING:
    from synapse_sdk.clients.backend_v2 import SavedOriginal

__all__ = [
    "BaseExporter",
    "ExportOutput",
    "ExporterHookError",
    "OriginalFile",
    "convert_with",
    "load_exporter",
]

#: A staged original whose first bytes look like JSON is read whole to sniff it up to this
#: size; a larger one is named from its first bytes alone (``txt``).
SNIFF_WHOLE_BYTES: Final = 64 * 1024 * 1024
_SNIFF_HEAD: Final = 4096


class OriginalFile:
    """An item's original file, downloaded and checked, staged until a hook stores it.

    :attr:`path` is a local file (read it in chunks, hash it, transcode it); :attr:`size` and
    :attr:`sha256` are what was downloaded. :meth:`ExportOutput.commit` stores it without
    reading it into memory; :meth:`read_bytes` reads it whole (the bytes API).
    """

    def __init__(self, staged: StagedFile, saved: SavedOriginal) -> None:
        self._staged = staged
        self.size = saved.size
        self.sha256 = saved.sha256

    @property
    def staged(self) -> StagedFile:
        """The staged file (what :meth:`ExportOutput.commit` stores)."""
        return self._staged

    @property
    def path(self) -> Path:
        """The local file holding the bytes, every byte written (temporary: gone once stored
        or the item ends)."""
        self._staged.flush()
        return self._staged.path

    def head(self, size: int = _SNIFF_HEAD) -> bytes:
        """The first ``size`` bytes."""
        return self._staged.head(size)

    def read_bytes(self) -> bytes:
        """The whole file in memory (only for hooks that need bytes: it costs its size)."""
        return self.path.read_bytes()

    def sniff(self) -> bytes:
        """The bytes to sniff the file's type from: the first 4 KiB, or the whole file when
        it may be JSON and is at most :data:`SNIFF_WHOLE_BYTES` (JSON is proven by parsing)."""
        head = self.head()
        if head.lstrip()[:1] in (b"{", b"[") and self.size <= SNIFF_WHOLE_BYTES:
            return self.read_bytes()
        return head


class ExporterHookError(Exception):
    """A per-item exporter hook raised; ``__cause__`` is what it raised. The item fails."""

    def __init__(self, hook: str, item_id: object) -> None:
        super().__init__(f"exporter hook {hook!r} failed for item {item_id!r}")
        self.hook = hook
        self.item_id = item_id


class ExportOutput:
    """What hooks write through: the export's storage under ``<out>/<target>``.

    :meth:`write` stores a file whole (local disk: temporary file, fsync, rename; object store:
    one put). The output remembers what was written and the first storage failure, so the
    export can act on it even when a hook caught the exception.
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._lock = threading.Lock()
        #: Everything written through this output, in order.
        self.written: list[StoredObject] = []
        #: The first exception the storage raised during :meth:`write` (None: none did).
        self.failure: BaseException | None = None

    @property
    def location(self) -> str:
        """Where the files go (a path, or the URL without credentials)."""
        return self._storage.display

    def write(self, name: str, data: bytes) -> None:
        """Store ``data`` as ``name`` (a plain file name) under the output, whole or not at all.

        Raises:
            ValueError: ``name`` is empty, contains ``/`` or ``\\``, or starts with ``.``.
            TypeError: ``data`` is not bytes.
            OSError / StorageError: the storage failed (also kept in :attr:`failure`).
        """
        self._check_name(name)
        self._store(lambda: self._storage.write(name, data))

    @staticmethod
    def _check_name(name: str) -> None:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"an output file name must be a plain name, got {name!r}")

    def _store(self, store: Callable[[], StoredObject]) -> None:
        try:
            stored = store()
        except Exception as exc:
            with self._lock:
                if self.failure is None:
                    self.failure = exc
            raise
        with self._lock:
            self.written.append(stored)

    def commit(self, name: str, original: OriginalFile) -> None:
        """Store a staged original as ``name`` under the output, whole or not at all, without
        reading it into memory (local disk: rename; object store: one put or a multipart upload
        completed only when whole).

        Raises:
            ValueError: ``name`` is not a plain file name.
            OSError / StorageError: the storage failed (also kept in :attr:`failure`).
        """
        self._check_name(name)
        self._store(lambda: self._storage.commit(original.staged, name))

    def rollback(self) -> list[str]:
        """Remove every file written through this output (newest first), so an item whose later
        hook failed leaves none of its files behind; return the names that could not be
        removed (the storage failed: a rerun overwrites them). Never raises an ``Exception``."""
        with self._lock:
            written, self.written = self.written, []
        left: list[str] = []
        for stored in reversed(written):
            try:
                self._storage.remove(stored.name)
            except Exception:
                left.append(stored.name)
        return left

    def read(self, name: str) -> bytes:
        """The bytes of a file under the output (for aggregate files).

        Raises:
            FileNotFoundError: no such file. OSError / StorageError: the read failed.
        """
        return self._storage.read(name)

    def names(self) -> list[str]:
        """The names of the files under the output, sorted (one listing)."""
        return sorted(self._storage.listing())


class BaseExporter:
    """The export's conversion and file-writing steps as overridable hooks (module docstring).

    Subclass it and override what you need; ``synapse export --exporter MODULE:CLASS`` or
    ``ExportAction(..., exporter=MyExporter())`` uses it. The action sets :attr:`target`
    (``tasks``, ``assignments``, ``ground-truths``) before the run. Per-item hooks may run in
    several threads at once (``workers``): keep them free of shared mutable state, or lock it.
    """

    #: The resource being exported (set by the action).
    target: str = "tasks"
    #: Hook names, in call order (used in messages).
    hooks: ClassVar[tuple[str, ...]] = (
        "before_convert",
        "convert_data",
        "after_convert",
        "save_original",
        "save_original_file",
        "save_as_json",
        "additional_file_saving",
    )

    def before_convert(self, data: dict[str, Any]) -> dict[str, Any]:
        """The backend item, before conversion; return it (or a changed copy)."""
        return data

    def convert_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """The item's export record: by default its ``id``, ``resource``, ``project_id``,
        ``data`` and the description of its original file."""
        return default_record(data, self.target)

    def after_convert(self, data: dict[str, Any]) -> dict[str, Any]:
        """The record after conversion; return it (or a changed copy)."""
        return data

    def save_original(
        self, record: ExportRecord, original: OriginalFile, output: ExportOutput
    ) -> str | None:
        """Store the item's original file, streamed (:class:`OriginalFile`); return its name
        (written into the JSON record), or None to store none. By default ``<id>.<ext>``
        (``<id>.original.json`` for JSON), stored without reading it into memory; an exporter
        that overrides :meth:`save_original_file` (the bytes API) gets it called instead."""
        if type(self).save_original_file is not BaseExporter.save_original_file:
            return self.save_original_file(record, original.read_bytes(), output)
        name = record.original_name(original.sniff)
        output.commit(name, original)
        return name

    def save_original_file(
        self, record: ExportRecord, content: bytes, output: ExportOutput
    ) -> str | None:
        """The bytes API of :meth:`save_original` (the published SDK's): store the item's
        original file from its bytes, held in memory; return its name, or None to store none.
        Override :meth:`save_original` instead for files of any size."""
        name = record.original_name(content)
        output.write(name, content)
        return name

    def save_as_json(
        self, record: ExportRecord, original_name: str | None, output: ExportOutput
    ) -> None:
        """Store the item's JSON record (by default ``<id>.json``: sorted keys, 2-space indent,
        UTF-8, a trailing newline, ``original.file`` naming the original)."""
        output.write(record.json_name, record.json_bytes(original_name))

    def additional_file_saving(self, output: ExportOutput) -> None:
        """After every item is settled: write aggregate files (a manifest, a COCO file).
        Runs on every run, resumed ones included; by default writes nothing."""


def load_exporter(spec: str) -> BaseExporter:
    """The exporter ``MODULE:CLASS`` names, instantiated without arguments.

    Raises:
        ValueError: ``spec`` is not ``MODULE:CLASS``, the module cannot be imported, it has no
            such class, the class is not a :class:`BaseExporter` subclass, or creating it
            raised (the message says which).
    """
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"an exporter is given as MODULE:CLASS, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import the exporter module {module_name!r}: {exc}") from exc
    cls: Any = module
    for part in class_name.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise ValueError(f"module {module_name!r} has no {class_name!r}")
    if not isinstance(cls, type) or not issubclass(cls, BaseExporter):
        raise ValueError(
            f"{spec!r} is not a BaseExporter subclass "
            "(from synapse_sdk.plugins.actions.export import BaseExporter)"
        )
    try:
        exporter: BaseExporter = cls()
    except Exception as exc:
        raise ValueError(f"cannot create the exporter {spec!r}: {exc!r}") from exc
    return exporter


def convert_with(exporter: BaseExporter, item: Mapping[str, Any]) -> ExportRecord:
    """Turn a backend item into its export record through the exporter's conversion hooks
    (``before_convert``, ``convert_data``, ``after_convert``). The original file is described
    from the item as the backend sent it (its download never depends on a hook).

    Raises:
        ValueError: the item is not a mapping with an ``id``.
        UnsafeItemIdError: the id cannot be used as a file name.
        TypeError: the id is neither an ``int`` nor a ``str``.
        ExporterHookError: a hook raised (its exception is the ``__cause__``) or returned
            something other than a dict.
    """
    item_id, _ = checked_item(item)
    data: Any = dict(item)
    for name in ("before_convert", "convert_data", "after_convert"):
        try:
            data = getattr(exporter, name)(data)
        except Exception as exc:
            raise ExporterHookError(name, item_id) from exc
        if not isinstance(data, dict):
            problem = TypeError(f"{name} must return a dict, not {type(data).__name__}")
            raise ExporterHookError(name, item_id) from problem
    return record_for(item, data)
