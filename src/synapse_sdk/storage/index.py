"""The object index: what each exported item wrote to a non-local storage (name, size, MD5).

Kept on local disk beside the ledger (``objects.sqlite3`` in the job folder). A resumed export
checks an item the ledger calls exported against one listing of the storage: each object the
index holds for it must be listed with the same size and, where the listing gives a
single-put ETag, the same MD5. That is one listing per run instead of one request per item.

An item's rows are written before the ledger marks it exported, so a kill between the two
leaves an item the ledger still calls pending (the next run writes it again).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from synapse_sdk.envelopes import ItemId
from synapse_sdk.storage import ListedObject, StoredObject

__all__ = ["INDEX_FILENAME", "ObjectIndex"]

#: The index's file name inside a job folder.
INDEX_FILENAME: Final = "objects.sqlite3"
_MAX_PARAMS: Final = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    item  NOT NULL,
    name  TEXT NOT NULL,
    size  INTEGER NOT NULL,
    md5   TEXT,
    PRIMARY KEY (item, name)
);
"""


class ObjectIndex:
    """The objects each item wrote, in SQLite (WAL); thread-safe, one connection per index."""

    def __init__(self, job_dir: str | Path) -> None:
        self.path = Path(job_dir) / INDEX_FILENAME
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("the object index is closed")
        return self._conn

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def put(self, written: Mapping[ItemId, Iterable[StoredObject]]) -> None:
        """Record, in one transaction, the objects each item wrote (replacing older rows)."""
        rows = [
            (item_id, obj.name, obj.size, obj.md5)
            for item_id, objects in written.items()
            for obj in objects
        ]
        if not rows:
            return
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                conn.executemany(
                    "DELETE FROM objects WHERE item = ?", [(i,) for i in written]
                )
                conn.executemany("INSERT INTO objects VALUES (?, ?, ?, ?)", rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def present(
        self, ids: Iterable[ItemId], listing: Mapping[str, ListedObject]
    ) -> set[ItemId]:
        """The ids among ``ids`` whose every recorded object is in ``listing`` with the same
        size (and the same MD5 where the listing's ETag is a single-put MD5). An id with no
        rows is not present."""
        wanted = list(dict.fromkeys(ids))
        rows: dict[ItemId, list[tuple[str, int, str | None]]] = {}
        with self._lock:
            conn = self._connection()
            for start in range(0, len(wanted), _MAX_PARAMS):
                part = wanted[start : start + _MAX_PARAMS]
                marks = ",".join("?" * len(part))
                for item, name, size, md5 in conn.execute(
                    f"SELECT item, name, size, md5 FROM objects WHERE item IN ({marks})", part
                ):
                    rows.setdefault(item, []).append((name, size, md5))
        return {
            item_id
            for item_id, objects in rows.items()
            if all(_matches(listing.get(name), size, md5) for name, size, md5 in objects)
        }


def _matches(listed: ListedObject | None, size: int, md5: str | None) -> bool:
    if listed is None or listed.size != size:
        return False
    etag = listed.etag
    if md5 is None or etag is None or "-" in etag or len(etag) != 32:
        return True  # no single-put ETag to compare (multipart, or a storage without ETags)
    return etag.lower() == md5
