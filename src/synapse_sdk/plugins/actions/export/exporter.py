"""Exporter hooks: how an item becomes its record and files, overridable by a plugin.

:class:`BaseExporter` has the published SDK's template methods, called by
:class:`~synapse_sdk.plugins.actions.export.action.ExportAction` in this order::

    per item (convert step):  before_convert(item) -> convert_data(item) -> after_convert(record)
    per item (save step):     save_original_file(record, content, output)   (when it has one)
                              save_as_json(record, original_name, output)
    once, at the end:         additional_file_saving(output)

The defaults reproduce the SDK's own output byte for byte. Hooks run inside the export's
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
from collections.abc import Mapping
from typing import Any, ClassVar

from synapse_sdk.plugins.actions.export.steps import (
    ExportRecord,
    checked_item,
    default_record,
    record_for,
)
from synapse_sdk.storage import Storage, StoredObject

__all__ = ["BaseExporter", "ExportOutput", "ExporterHookError", "convert_with", "load_exporter"]


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
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"an output file name must be a plain name, got {name!r}")
        try:
            stored = self._storage.write(name, data)
        except Exception as exc:
            with self._lock:
                if self.failure is None:
                    self.failure = exc
            raise
        with self._lock:
            self.written.append(stored)

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

    def save_original_file(
        self, record: ExportRecord, content: bytes, output: ExportOutput
    ) -> str | None:
        """Store the item's original file; return its name (written into the JSON record), or
        None to store none. By default ``<id>.<ext>`` (``<id>.original.json`` for JSON)."""
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
