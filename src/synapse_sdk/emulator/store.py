"""The emulator's SQLite store of the demo project.

One table holds every item as its ready-to-send v2 JSON text plus its original file, keyed by
``(resource, id)``. The store is seeded once from :mod:`synapse_sdk.emulator.seed`; a file
database (``path=``) keeps the seed parameters and is reused when they match. One connection is
shared behind a lock: the server's event loop and a test's thread may both read.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synapse_sdk.emulator.seed import DEMO_PROJECT_ID, RESOURCES, generate_item

__all__ = ["DEFAULT_ITEMS", "MAX_ITEMS", "Original", "Store", "validate_items"]

#: Items per resource when the caller does not say (so 2000 tasks, 2000 assignments and 2000
#: ground truths).
DEFAULT_ITEMS = 2000
#: The largest project the store agrees to seed.
MAX_ITEMS = 1_000_000
_SCHEMA_VERSION = "1"
_BATCH = 2000


@dataclass(frozen=True, slots=True)
class Original:
    """An item's original file as served by ``GET /v2/files/{resource}/{id}/original``."""

    content: bytes
    content_type: str
    filename: str
    sha256: str


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


def _rows(seed: int, resource: str, first: int, last: int) -> Iterator[tuple[Any, ...]]:
    for item_id in range(first, last + 1):
        item = generate_item(seed, resource, item_id)
        digest = hashlib.sha256(item.content).hexdigest()
        body = {
            "id": item_id,
            "resource": resource,
            "project_id": DEMO_PROJECT_ID,
            "data": item.data,
            "original": {
                "url": f"/v2/files/{resource}/{item_id}/original",
                "size": len(item.content),
                "sha256": digest,
            },
        }
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        yield (resource, item_id, text, item.content, item.content_type, item.filename, digest)


class Store:
    """The demo project's items in SQLite: ``items`` per resource, seeded from ``seed``.

    ``path`` None keeps the database in memory; a path creates or reuses a file (reuse requires
    the same seed and item count, else ``ValueError``). Raises ``TypeError``/``ValueError`` for
    a bad ``items`` or ``seed``. Safe to call from several threads.
    """

    def __init__(
        self, path: str | Path | None = None, *, items: int = DEFAULT_ITEMS, seed: int = 0
    ) -> None:
        self.items = validate_items(items)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        self.path = None if path is None else Path(path)
        self._lock = threading.RLock()
        target = ":memory:" if self.path is None else str(self.path)
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        try:
            self._prepare()
        except BaseException:
            self._db.close()
            raise

    def _prepare(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=MEMORY" if self.path is None else "PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS items ("
            " resource TEXT NOT NULL, id INTEGER NOT NULL, body TEXT NOT NULL,"
            " content BLOB NOT NULL, content_type TEXT NOT NULL, filename TEXT NOT NULL,"
            " sha256 TEXT NOT NULL, PRIMARY KEY (resource, id)) WITHOUT ROWID"
        )
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        wanted = {"schema": _SCHEMA_VERSION, "seed": str(self.seed), "items": str(self.items)}
        if meta == wanted:
            return
        if meta:
            raise ValueError(
                f"database {self.path} was seeded with seed={meta.get('seed')} "
                f"items={meta.get('items')} (schema {meta.get('schema')}); asked for "
                f"seed={self.seed} items={self.items}: use another path or delete the file"
            )
        db.execute("BEGIN")
        try:
            for resource in RESOURCES:
                for first in range(1, self.items + 1, _BATCH):
                    last = min(self.items, first + _BATCH - 1)
                    db.executemany(
                        "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
                        _rows(self.seed, resource, first, last),
                    )
            db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(wanted.items()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def page(self, resource: str, after: int, limit: int) -> tuple[list[str], int | None]:
        """Up to ``limit`` item JSON texts with id > ``after``, and the last id if more follow.

        Raises ``ValueError`` for an unknown resource.
        """
        _check_resource(resource)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, body FROM items WHERE resource = ? AND id > ? ORDER BY id LIMIT ?",
                (resource, after, limit + 1),
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [body for _, body in rows], (rows[-1][0] if more and rows else None)

    def fetch(self, resource: str, ids: Sequence[int]) -> dict[int, str]:
        """The JSON text of each existing id among ``ids`` (unknown ids are simply absent).

        Raises ``ValueError`` for an unknown resource.
        """
        _check_resource(resource)
        wanted = sorted(set(ids))
        found: dict[int, str] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(
                    self._db.execute(
                        f"SELECT id, body FROM items WHERE resource = ? AND id IN ({marks})",
                        (resource, *chunk),
                    ).fetchall()
                )
        return found

    def item(self, resource: str, item_id: int) -> dict[str, Any] | None:
        """One item as a dict, or None when it does not exist."""
        body = self.fetch(resource, [item_id]).get(item_id)
        return None if body is None else dict(json.loads(body))

    def original(self, resource: str, item_id: int) -> Original | None:
        """The original file of an item, or None when the item does not exist."""
        _check_resource(resource)
        with self._lock:
            row = self._db.execute(
                "SELECT content, content_type, filename, sha256 FROM items"
                " WHERE resource = ? AND id = ?",
                (resource, item_id),
            ).fetchone()
        return None if row is None else Original(bytes(row[0]), row[1], row[2], row[3])

    def count(self, resource: str) -> int:
        """How many items ``resource`` holds."""
        _check_resource(resource)
        with self._lock:
            (total,) = self._db.execute(
                "SELECT COUNT(*) FROM items WHERE resource = ?", (resource,)
            ).fetchone()
        return int(total)

    def digest(self) -> str:
        """A sha256 over every item's JSON and file: equal digests mean identical data."""
        hasher = hashlib.sha256()
        with self._lock:
            for resource, body, sha in self._db.execute(
                "SELECT resource, body, sha256 FROM items ORDER BY resource, id"
            ):
                hasher.update(f"{resource}\x1f{body}\x1f{sha}\x1e".encode())
        return hasher.hexdigest()

    def close(self) -> None:
        """Close the database (an in-memory store is gone afterwards). Idempotent."""
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        return f"Store({where}, items={self.items} per resource, seed={self.seed})"
