"""The emulator's store of the demo project: every item made on demand from the seed.

Item ``n`` of a resource depends only on ``(seed, resource, n)`` (:mod:`synapse_sdk.emulator.seed`),
so nothing is generated up front: a page, a bulk fetch or a download builds just the items it
names, and a million-item project starts at once in constant memory. A small cache of recently
built items keeps a retried page or a download after a list from building them again.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from synapse_sdk.emulator.seed import DEMO_PROJECT_ID, RESOURCES, generate_item

__all__ = [
    "DEFAULT_ITEMS",
    "FILE_URL_PLACEHOLDER",
    "MAX_ITEMS",
    "MAX_ORIGINAL_BYTES",
    "Original",
    "Store",
    "validate_items",
    "validate_original_bytes",
]

#: Items per resource when the caller does not say (so 2000 tasks, 2000 assignments and 2000
#: ground truths).
DEFAULT_ITEMS = 2000
#: The largest project the store agrees to serve.
MAX_ITEMS = 1_000_000
#: Where an item's stored JSON holds its file URL, which is signed for each answer.
FILE_URL_PLACEHOLDER = "@signed-file-url@"
#: Built items kept for reuse (about 1.5 KB each).
_CACHE_SIZE = 4096


#: A streamed original (``original_bytes``) is one seeded block repeated; its length is prime,
#: so bytes served from a wrong offset never line up with the right ones.
_BLOCK = 65_521
#: Largest ``original_bytes`` (1 TiB).
MAX_ORIGINAL_BYTES = 1 << 40


@dataclass(frozen=True, slots=True)
class Original:
    """An item's original file as served by ``GET /v2/files/{resource}/{id}/original``.

    A generated demo file is ``content`` itself; a file of ``original_bytes`` (see
    :class:`Store`) is never held whole: ``content`` is empty, the file is ``block`` repeated
    up to ``size`` bytes, and its SHA-256 is not computed (None).
    """

    content: bytes
    content_type: str
    filename: str
    sha256: str | None
    size: int = -1
    block: bytes | None = None

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.content))

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """The bytes ``start..end`` (inclusive), in pieces of at most 64 KiB."""
        if self.block is None:
            for at in range(start, end + 1, _BLOCK):
                yield self.content[at : min(at + _BLOCK, end + 1)]
            return
        twice = self.block * 2
        at = start
        while at <= end:
            offset = at % _BLOCK
            piece = twice[offset : offset + min(_BLOCK, end + 1 - at)]
            yield piece
            at += len(piece)


def validate_original_bytes(size: object) -> int | None:
    """Return ``size`` if it is None or a valid original size; else ``TypeError``/``ValueError``."""
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"original_bytes must be an int, got {type(size).__name__}")
    if not 1 <= size <= MAX_ORIGINAL_BYTES:
        raise ValueError(f"original_bytes must be between 1 and {MAX_ORIGINAL_BYTES}, got {size}")
    return size


def _streamed(seed: int, resource: str, item_id: int, size: int) -> Original:
    """The ``size``-byte original of an item, generated from the seed as it is served."""
    block = random.Random(f"{seed}/{resource}/{item_id}/original").randbytes(_BLOCK)
    return Original(b"", "application/octet-stream", f"{resource}-{item_id}.bin", None,
                    size, block)


@dataclass(frozen=True, slots=True)
class _Built:
    body: str  # the item's bulk JSON text, ready to send
    slim: str  # its list item's JSON text (the v2 API's slim shape)
    original: Original


#: When the demo items were made (``created``: this plus the id in seconds).
_CREATED = datetime(2026, 1, 1, tzinfo=UTC)
_CATEGORIES = ("train", "validation", "test")


def _slim(resource: str, item_id: int) -> dict[str, Any]:
    """The list item of ``resource`` ``item_id``: the fields of the v2 API's ``*V2List``."""
    created = (_CREATED + timedelta(seconds=item_id)).isoformat().replace("+00:00", "Z")
    if resource == "tasks":
        return {"id": item_id, "project_id": DEMO_PROJECT_ID, "data_unit_id": item_id,
                "is_discarded": False, "has_data": True, "created": created}
    if resource == "assignments":
        return {"id": item_id, "user_id": 1, "task_id": item_id, "status_label": "completed",
                "status_review": "completed", "is_confirmed": True, "is_discarded": False,
                "created": created}
    return {"id": item_id, "ground_truth_dataset_id": 1, "data_unit_id": item_id,
            "category": _CATEGORIES[item_id % len(_CATEGORIES)]}


def _detail(resource: str, slim: dict[str, Any], data: Any) -> dict[str, Any]:
    """The retrieve object: the list item plus ``data`` and the ``*V2Detail`` fields."""
    if resource == "tasks":
        return {**slim, "workshop_id": 1, "meta": None, "data": data, "schema": "dm_schema_v1"}
    if resource == "assignments":
        return {**slim, "reviewer_id": 1, "data": data, "tags": []}
    return {**slim, "project_id": DEMO_PROJECT_ID, "data": data, "classes": []}


def validate_items(items: object) -> int:
    """Return ``items`` if it is a valid per-resource count; else ``TypeError``/``ValueError``."""
    if isinstance(items, bool) or not isinstance(items, int):
        raise TypeError(f"items must be an int, got {type(items).__name__}")
    if not 0 <= items <= MAX_ITEMS:
        raise ValueError(f"items must be between 0 and {MAX_ITEMS}, got {items}")
    return items


def _check_resource(resource: str) -> str:
    if resource not in RESOURCES:
        raise ValueError(f"unknown resource {resource!r}; expected one of {', '.join(RESOURCES)}")
    return resource


def _build(seed: int, resource: str, item_id: int, original_bytes: int | None = None) -> _Built:
    item = generate_item(seed, resource, item_id)
    if original_bytes is None:
        original = Original(
            item.content, item.content_type, item.filename, hashlib.sha256(item.content).hexdigest()
        )
        checksum: str | None = hashlib.sha1(item.content).hexdigest()  # SHA-1, like the platform
    else:  # no checksum: hashing gigabytes per item would cost more than serving them
        original, checksum = _streamed(seed, resource, item_id, original_bytes), None
    entry: dict[str, Any] = {
        "url": FILE_URL_PLACEHOLDER,
        "file_name_original": original.filename,
        "is_primary": True,
        "file_size": original.size,
    }
    if checksum is not None:
        entry["checksum"] = checksum
    body = {
        "id": item_id,
        "project_id": DEMO_PROJECT_ID,
        "data_unit_id": item_id,
        "data": item.data,
        # The v2 API's file manifest; the url is signed per answer (see FILE_URL_PLACEHOLDER).
        # Ground truths get one too: our extension (the real bulk-data item has none).
        "files_manifest": {"original": entry},
    }
    listed = _slim(resource, item_id)
    if resource == "ground-truths":  # GroundTruthV2BulkData's own fields
        body |= {key: listed[key] for key in ("ground_truth_dataset_id", "category")}
        body["classes"] = []
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    slim = json.dumps(listed, separators=(",", ":"))
    return _Built(text, slim, original)


class Store:
    """The demo project: ids ``1..items`` of each resource, built on demand from ``seed``.

    With ``original_bytes`` every item's original is that many bytes, generated from the seed
    as it is served (:class:`Original`), its manifest entry giving ``file_size`` and no
    ``checksum``.

    Raises ``TypeError``/``ValueError`` for a bad ``items``, ``seed`` or ``original_bytes``;
    the accessors raise
    ``ValueError`` for an unknown resource. Safe to call from several threads.
    """

    def __init__(
        self, *, items: int = DEFAULT_ITEMS, seed: int = 0, original_bytes: int | None = None
    ) -> None:
        self.items = validate_items(items)
        self.original_bytes = validate_original_bytes(original_bytes)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, int], _Built] = OrderedDict()

    def _get(self, resource: str, item_id: int) -> _Built | None:
        """The built item, or None when ``item_id`` is not in ``1..items``."""
        if not 1 <= item_id <= self.items:
            return None
        key = (resource, item_id)
        with self._lock:
            built = self._cache.get(key)
            if built is not None:
                self._cache.move_to_end(key)
                return built
        # Outside the lock: pure and deterministic.
        built = _build(self.seed, resource, item_id, self.original_bytes)
        with self._lock:
            self._cache[key] = built
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return built

    def page(self, resource: str, after: int, limit: int) -> tuple[list[str], int | None]:
        """Up to ``limit`` list-item JSON texts (slim) with id > ``after``, and the last id if
        more follow.

        Raises ``ValueError`` for an unknown resource.
        """
        _check_resource(resource)
        first, last = max(after, 0) + 1, min(after + limit, self.items)
        bodies = [self._slim(resource, item_id) for item_id in range(first, last + 1)]
        return bodies, (last if bodies and last < self.items else None)

    def _slim(self, resource: str, item_id: int) -> str:
        built = self._get(resource, item_id)
        assert built is not None
        return built.slim

    def detail(self, resource: str, item_id: int) -> dict[str, Any] | None:
        """The retrieve object of an item, or None when it does not exist.

        Raises ``ValueError`` for an unknown resource.
        """
        _check_resource(resource)
        built = self._get(resource, item_id)
        if built is None:
            return None
        return _detail(resource, json.loads(built.slim), json.loads(built.body)["data"])

    def fetch(self, resource: str, ids: Sequence[int]) -> dict[int, str]:
        """The JSON text of each existing id among ``ids`` (unknown ids are simply absent).

        Raises ``ValueError`` for an unknown resource.
        """
        _check_resource(resource)
        found: dict[int, str] = {}
        for item_id in sorted(set(ids)):
            built = self._get(resource, item_id)
            if built is not None:
                found[item_id] = built.body
        return found

    def item(self, resource: str, item_id: int) -> dict[str, Any] | None:
        """One item as a dict, or None when it does not exist."""
        body = self.fetch(resource, [item_id]).get(item_id)
        return None if body is None else dict(json.loads(body))

    def original(self, resource: str, item_id: int) -> Original | None:
        """The original file of an item, or None when the item does not exist."""
        _check_resource(resource)
        built = self._get(resource, item_id)
        return None if built is None else built.original

    def count(self, resource: str) -> int:
        """How many items ``resource`` holds."""
        _check_resource(resource)
        return self.items

    def digest(self) -> str:
        """A sha256 over every item's JSON and file: equal digests mean identical data.

        Builds every item: meant for tests of small projects.
        """
        hasher = hashlib.sha256()
        for resource in sorted(RESOURCES):
            for item_id in range(1, self.items + 1):
                built = _build(self.seed, resource, item_id, self.original_bytes)
                hasher.update(f"{resource}\x1f{built.body}\x1f{built.original.sha256}\x1e".encode())
        return hasher.hexdigest()

    def close(self) -> None:
        """Drop the cache of built items. Idempotent; the store stays usable."""
        with self._lock:
            self._cache.clear()

    def __repr__(self) -> str:
        return f"Store(items={self.items} per resource, seed={self.seed})"
