"""The emulator's store of the demo project: every item made on demand from the seed.

Item ``n`` of a resource depends only on ``(seed, resource, n)`` (:mod:`synapse_sdk.emulator.seed`),
so nothing is generated up front: a page, a bulk fetch or a download builds just the items it
names, and a million-item project starts at once in constant memory. A small cache of recently
built items keeps a retried page or a download after a list from building them again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from synapse_sdk.emulator.seed import DEMO_PROJECT_ID, RESOURCES, generate_item

__all__ = [
    "DEFAULT_ITEMS",
    "FILE_URL_PLACEHOLDER",
    "MAX_ITEMS",
    "MAX_ORIGINAL_BYTES",
    "AttributeTest",
    "Original",
    "Store",
    "attributes",
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
    """An item's original file as served by its presigned URL (``GET /storage/{resource}/{id}``).

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
_CLASS_NAMES = ("car", "person", "bicycle", "truck", "traffic_light", "dog")


_STATUS_LABELS = ("completed", "completed", "completed", "in_progress", "stand_by", "skipped")
_STATUS_REVIEWS = ("completed", "completed", "in_progress", "rejected", "stand_by", "skipped")


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


_M64 = (1 << 64) - 1


@functools.lru_cache(maxsize=64)
def _base(seed: int, resource: str) -> int:
    key = f"{seed}\x1f{resource}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def _mix(base: int, item_id: int) -> int:
    """64 well-mixed bits of an item of the resource and seed whose :func:`_base` is ``base``
    (splitmix64: arithmetic only)."""
    z = (base + item_id * 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _created(h: int, item_id: int) -> datetime:
    return _CREATED + timedelta(seconds=item_id)


def _labeled(h: int, item_id: int) -> datetime:
    return _created(h, item_id) + timedelta(minutes=1 + (h >> 40) % 600)


def _reviewed(h: int, item_id: int) -> datetime:
    return _labeled(h, item_id) + timedelta(minutes=1 + (h >> 50) % 600)


_Field = Callable[[int, int], Any]  # (hash, id) -> the attribute's value
#: Each filtered attribute of each resource, computed from the item's hash and id alone.
_FIELDS: dict[str, dict[str, _Field]] = {
    "tasks": {
        "id": lambda h, i: i,
        "project": lambda h, i: DEMO_PROJECT_ID,
        "has_data": lambda h, i: h % 20 != 0,
        "is_discarded": lambda h, i: (h >> 5) % 10 == 0,
        "schema": lambda h, i: "dm_schema_v1",
        "created": _created,
    },
    "assignments": {
        "id": lambda h, i: i,
        "project": lambda h, i: DEMO_PROJECT_ID,
        "workshop": lambda h, i: 1,
        "task": lambda h, i: i,
        "user": lambda h, i: 1 + (h >> 4) % 8,
        "reviewer": lambda h, i: 1 + (h >> 8) % 4,
        "group": lambda h, i: 1 + (h >> 11) % 3,
        "stage": lambda h, i: 1 + (h >> 13) % 3,
        "tags": lambda h, i: [1 + (h >> 15) % 5],
        "task_tags": lambda h, i: [1 + (h >> 18) % 5],
        "status_label": lambda h, i: _STATUS_LABELS[(h >> 21) % len(_STATUS_LABELS)],
        "status_review": lambda h, i: _STATUS_REVIEWS[(h >> 24) % len(_STATUS_REVIEWS)],
        "is_confirmed": lambda h, i: (h >> 27) % 4 != 0,
        "is_discarded": lambda h, i: (h >> 29) % 10 == 0,
        "is_discard_confirmed": lambda h, i: (h >> 33) % 20 == 0,
        "created": _created,
        "last_labeled": _labeled,
        "label_submitted": _labeled,
        "labeler_last_action_at": _labeled,
        "last_reviewed": _reviewed,
        "reviewer_last_action_at": _reviewed,
    },
    "ground-truths": {
        "id": lambda h, i: i,
        "ground_truth_dataset": lambda h, i: 1 + h % 2,
        "task": lambda h, i: i,
        "category": lambda h, i: _CATEGORIES[i % len(_CATEGORIES)],
        "classes": lambda h, i: sorted({_CLASS_NAMES[(h >> 3) % 6], _CLASS_NAMES[(h >> 7) % 6]}),
    },
}
#: The attributes every item of a resource shares: a test on them is decided once per page.
_CONSTANT: frozenset[tuple[str, str]] = frozenset({
    ("tasks", "project"), ("tasks", "schema"), ("assignments", "project"),
    ("assignments", "workshop"),
})
#: A test of one attribute: its name and what its value must satisfy.
AttributeTest = tuple[str, Callable[[Any], bool]]


def attributes(seed: int, resource: str, item_id: int) -> dict[str, Any]:
    """What the list filters of ``resource`` test on item ``item_id`` (the fields of
    :data:`synapse_sdk.clients.list_filters.LIST_FILTERS`), drawn from one hash of
    ``(seed, resource, item_id)``: deterministic and cheap, no item is built for it (a filtered
    list computes only the attributes its filters name)."""
    h = _mix(_base(seed, resource), item_id)
    return {name: field(h, item_id) for name, field in _FIELDS[resource].items()}


def _slim(seed: int, resource: str, item_id: int) -> dict[str, Any]:
    """The list item of ``resource`` ``item_id``: the fields of the v2 API's ``*V2List``,
    agreeing with its filter :func:`attributes`."""
    at = attributes(seed, resource, item_id)
    if resource == "tasks":
        return {"id": item_id, "project_id": at["project"], "data_unit_id": item_id,
                "is_discarded": at["is_discarded"], "has_data": at["has_data"],
                "created": _stamp(at["created"])}
    if resource == "assignments":
        return {"id": item_id, "user_id": at["user"], "task_id": item_id,
                "status_label": at["status_label"], "status_review": at["status_review"],
                "is_confirmed": at["is_confirmed"], "is_discarded": at["is_discarded"],
                "created": _stamp(at["created"])}
    return {"id": item_id, "ground_truth_dataset_id": at["ground_truth_dataset"],
            "data_unit_id": item_id, "category": at["category"]}


def _detail(seed: int, resource: str, slim: dict[str, Any], data: Any) -> dict[str, Any]:
    """The retrieve object: the list item plus ``data`` and the ``*V2Detail`` fields."""
    at = attributes(seed, resource, slim["id"])
    if resource == "tasks":
        return {**slim, "workshop_id": 1, "meta": None, "data": data, "schema": at["schema"]}
    if resource == "assignments":
        return {**slim, "reviewer_id": at["reviewer"], "data": data, "tags": at["tags"]}
    return {**slim, "project_id": DEMO_PROJECT_ID, "data": data, "classes": at["classes"]}


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
    listed = _slim(seed, resource, item_id)
    if resource == "ground-truths":  # GroundTruthV2BulkData's own fields
        body |= {key: listed[key] for key in ("ground_truth_dataset_id", "category")}
        body["classes"] = attributes(seed, resource, item_id)["classes"]
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

    def page(
        self,
        resource: str,
        after: int,
        limit: int,
        tests: Sequence[AttributeTest] = (),
    ) -> tuple[list[str], int | None]:
        """Up to ``limit`` list-item JSON texts (slim) with id > ``after`` whose
        :func:`attributes` pass every test of ``tests`` (none: every item), and the last id if
        more may follow. Only the tested attributes are computed; a failing test of an
        attribute all items share ends the page at once.

        Raises ``ValueError`` for an unknown resource or attribute.
        """
        _check_resource(resource)
        fields = _FIELDS[resource]
        for name, _ in tests:
            if name not in fields:
                raise ValueError(f"{resource} items have no attribute {name!r}")
        if any(not test(fields[name](0, 0)) for name, test in tests
               if (resource, name) in _CONSTANT):
            return [], None
        varying = [
            (fields[name], test) for name, test in tests if (resource, name) not in _CONSTANT
        ]
        if not varying:
            first, last = max(after, 0) + 1, min(after + limit, self.items)
            bodies = [self._slim(resource, item_id) for item_id in range(first, last + 1)]
            return bodies, (last if bodies and last < self.items else None)
        bodies, item_id, base = [], max(after, 0), _base(self.seed, resource)
        while len(bodies) < limit and item_id < self.items:
            item_id += 1
            h = _mix(base, item_id)
            if all(test(field(h, item_id)) for field, test in varying):
                bodies.append(self._slim(resource, item_id))
        return bodies, (item_id if bodies and item_id < self.items else None)

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
        return _detail(self.seed, resource, json.loads(built.slim), json.loads(built.body)["data"])

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
