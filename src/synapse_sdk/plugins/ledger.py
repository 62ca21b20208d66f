"""The durable per-job ledger: which items of a bulk job are exported, pending a retry, or failed.

A :class:`Ledger` is one SQLite database in the job folder. Every state change is its own
committed transaction, so a job killed at any instant (``kill -9`` included) leaves the ledger
describing exactly what finished; the next run over the same folder resumes from it.

Each item row holds ``id``, ``state`` (``pending`` / ``exported`` / ``failed``), ``code`` (why it
last failed, as the backend named it, e.g. ``item_unavailable``), ``attempts`` (how many failures
were recorded for it in the current run: :meth:`Ledger.start_run` sets them back to zero, so
every run has its own retry rounds), ``permanent_code`` (the last *permanent* failure, from
:meth:`Ledger.mark_failed`: a transient failure on a later run never replaces it, and an item
whose retries run out is failed with it rather than with the transient code) and ``updated``
(wall-clock seconds of the last change).

Ids are stored as TEXT in their canonical form, the string form the backend matches them by
(``2`` and ``"2"`` are one item; the first form recorded is the one given back), with a flag
saying whether it is an integer; any integer fits (``2**63`` too, beyond SQLite's INTEGER).
A schema-1 ledger (ids stored as they came) is migrated when opened.

State machine::

    (unknown) ──enqueue_retry──> pending ──mark_exported──> exported
        │                          │  ▲                        │
        └───────mark_failed──────> failed ──enqueue_retry──┘    │
                                   ▲                            │
                                   └────── requeue (damaged) ───┘ (back to pending)

``exported`` is terminal for every failure: enqueueing or failing an exported item is a no-op,
so the output of an item is never counted twice. Only :meth:`Ledger.requeue` leaves it, for an
item whose files were found missing or damaged on disk. ``mark_exported`` is idempotent.

Durability: the database runs in WAL mode with ``synchronous=NORMAL``. In WAL mode that setting
never corrupts the database and keeps every committed transaction across a *process* crash or
``SIGKILL`` (the WAL is in the OS page cache); only an operating-system crash or power loss can
roll back the last few commits. The export action writes (and fsyncs) an item's files *before*
marking it exported, so losing a trailing mark only makes a rerun redo idempotent work; it can
never lose or duplicate an item. ``FULL`` would fsync on every commit, which costs a disk flush
per page of items for no gain in that guarantee.

Queries never load the whole table: :meth:`Ledger.iter_pending` and :meth:`Ledger.iter_failed`
read in bounded batches, and :meth:`Ledger.summary` aggregates inside SQLite.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from synapse_sdk._closing import ClosesOnExit
from synapse_sdk.envelopes import ItemId

__all__ = [
    "LEDGER_FILENAME",
    "ItemState",
    "Ledger",
    "LedgerRecord",
    "LedgerSummary",
    "item_key",
    "unique_ids",
]

#: The ledger's file name inside a job folder.
LEDGER_FILENAME: Final = "ledger.sqlite3"

ItemState = Literal["pending", "exported", "failed"]

_SCHEMA_VERSION: Final = 2
# Schema 1 stored ids untyped (integers as INTEGER): give them their canonical TEXT form. Where
# one id was stored both ways (2 and "2", one item since schema 2) the integer row is kept.
_MIGRATE_1: Final = """
ALTER TABLE items ADD COLUMN is_int INTEGER NOT NULL DEFAULT 0;
UPDATE OR REPLACE items SET id = CAST(id AS TEXT), is_int = 1 WHERE typeof(id) = 'integer';
"""
_COLUMNS: Final = "id, state, code, attempts, updated, is_int"

# SQLite's default limit of host parameters per statement is 32766 since 3.32; stay far below it.
_MAX_PARAMS: Final = 500
_BATCH: Final = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id       TEXT NOT NULL PRIMARY KEY,     -- the canonical form: str() of the id
    state    TEXT NOT NULL CHECK (state IN ('pending', 'exported', 'failed')),
    code     TEXT,
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    updated  REAL NOT NULL,
    is_int   INTEGER NOT NULL DEFAULT 0,    -- 1: the id is an integer
    permanent_code TEXT                     -- the last permanent failure's code (schema 2)
);
CREATE TABLE IF NOT EXISTS names (
    key      TEXT NOT NULL PRIMARY KEY,     -- what the owner's file names are everywhere
    owner    TEXT NOT NULL                  -- the owning id's string form
);
CREATE TABLE IF NOT EXISTS settings (
    name     TEXT NOT NULL PRIMARY KEY,     -- what the job was started with, e.g. its filter
    value    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_state ON items (state, id);
CREATE INDEX IF NOT EXISTS items_by_age ON items (state, updated, id);
"""
# Listing order: integer ids by value, then the others by text (``1, 2, 10, a``). A generated
# column (no data stored, no schema version bump) and its index keep each batch one index range.
# Integers are exact up to 2**53; beyond, ties (same float) fall back to text, which orders
# non-negative ids of one length by value.
_NUMBER: Final = (
    "ALTER TABLE items ADD COLUMN number REAL "
    "GENERATED ALWAYS AS (CASE WHEN is_int THEN CAST(id AS REAL) ELSE 9e999 END) VIRTUAL"
)
_NUMBER_INDEX: Final = "CREATE INDEX IF NOT EXISTS items_in_order ON items (state, number, id)"


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One item as the ledger knows it."""

    id: ItemId
    state: ItemState
    code: str | None
    attempts: int
    updated: float


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    """Counts of items per state, and failed items per code (``None`` when no code was given)."""

    pending: int = 0
    exported: int = 0
    failed: int = 0
    failed_by_code: dict[str | None, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Every item the ledger knows."""
        return self.pending + self.exported + self.failed


def _check_id(item_id: object) -> ItemId:
    # bool is an int subclass but never an id; anything else would be stored as a different key.
    if isinstance(item_id, bool) or not isinstance(item_id, int | str):
        raise TypeError(f"an item id must be an int or a str, not {type(item_id).__name__}")
    return item_id


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"a name key must be a str, not {type(key).__name__}")
    return key


def _check_code(code: object) -> str | None:
    if code is not None and not isinstance(code, str):
        raise TypeError(f"a failure code must be a str or None, not {type(code).__name__}")
    return code


def _chunks(ids: Iterable[ItemId], size: int = _MAX_PARAMS) -> Iterator[list[ItemId]]:
    chunk: list[ItemId] = []
    for item_id in ids:
        chunk.append(_check_id(item_id))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Ledger(ClosesOnExit):
    """A durable record of a bulk job's items, stored in ``<job_dir>/ledger.sqlite3``.

    Use it as a context manager (or call :meth:`close`). One instance may be shared by threads;
    its methods serialize on an internal lock. Several processes may open the same ledger (SQLite
    locks the file), but the export action takes a job-folder lock so only one run writes at a
    time.

    Raises:
        TypeError: an id is not an ``int``/``str`` (``bool`` is refused), or a code not a ``str``.
        ValueError: ``job_dir`` exists and is not a directory, or the database file is not a
            ledger of this schema.
        sqlite3.Error: the database cannot be opened or written (disk full, permissions).
    """

    def __init__(
        self,
        job_dir: str | Path,
        *,
        filename: str = LEDGER_FILENAME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        directory = Path(job_dir)
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"the job folder {str(directory)!r} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / filename
        self._clock = clock
        self._lock = threading.Lock()
        # isolation_level=None: we open transactions explicitly (BEGIN IMMEDIATE) so each state
        # change is exactly one transaction and a writer never upgrades a read lock mid-way.
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        try:
            self._setup(self._conn)
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    @staticmethod
    def _setup(conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - only on filesystems without WAL
            conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, 1, _SCHEMA_VERSION):
            raise ValueError(
                f"ledger schema version {version} is not supported (expected {_SCHEMA_VERSION})"
            )
        try:
            if version == 1:
                Ledger._migrate_1(conn)
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(items)")}
            if "permanent_code" not in columns:  # a version 1 ledger: the column came in 2
                conn.execute("ALTER TABLE items ADD COLUMN permanent_code TEXT")
            hidden = {row[1] for row in conn.execute("PRAGMA table_xinfo(items)")}
            if "number" not in hidden:
                conn.execute(_NUMBER)
            conn.execute(_NUMBER_INDEX)
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"the file is not a usable ledger database: {exc}") from exc

    @staticmethod
    def _migrate_1(conn: sqlite3.Connection) -> None:
        """Schema 1 -> 2 in one transaction (all of it or nothing)."""
        try:
            conn.executescript(f"BEGIN IMMEDIATE; {_MIGRATE_1} COMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database (idempotent). Every committed change is already on disk."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._conn is None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"Ledger({str(self.path)!r}, {state})"

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("the ledger is closed")
        return self._conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one write transaction, committed at the end, rolled back if
        anything raises; holds the lock throughout."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _write(self, sql: str, rows: Iterable[tuple[object, ...]]) -> int:
        """Run ``sql`` for every row inside one committed transaction; return rows changed."""
        with self._transaction() as conn:
            return sum(conn.execute(sql, row).rowcount for row in rows)

    # -- state changes --------------------------------------------------------------------------

    def enqueue_retry(self, ids: Iterable[ItemId], code: str | None = None) -> int:
        """Record that ``ids`` failed retryably and should be fetched again (state ``pending``).

        Each call counts one more attempt for every item named (once, however often it is
        named). Exported items are left alone.
        Returns how many items were enqueued. All ids are written in one transaction.
        """
        now = self._clock()
        code = _check_code(code)
        sql = (
            "INSERT INTO items (id, is_int, state, code, attempts, updated) "
            "VALUES (?, ?, 'pending', ?, 1, ?) "
            "ON CONFLICT (id) DO UPDATE SET state = 'pending', code = excluded.code, "
            "attempts = attempts + 1, updated = excluded.updated WHERE state != 'exported'"
        )
        return self._write(sql, ((*_key(i), code, now) for i in _materialize(ids)))

    def add_pending(self, ids: Iterable[ItemId]) -> int:
        """Register ``ids`` as ``pending`` without counting an attempt (items not seen before
        only; known items keep their state). Returns how many were added."""
        now = self._clock()
        sql = (
            "INSERT INTO items (id, is_int, state, code, attempts, updated) "
            "VALUES (?, ?, 'pending', NULL, 0, ?) ON CONFLICT (id) DO NOTHING"
        )
        return self._write(sql, ((*_key(i), now) for i in _materialize(ids)))

    def mark_exported(self, ids: ItemId | Iterable[ItemId]) -> int:
        """Record that ``ids`` are exported (their output is complete on disk).

        Idempotent: an item already exported is not touched. Returns how many items changed.
        """
        now = self._clock()
        sql = (
            "INSERT INTO items (id, is_int, state, code, attempts, updated) "
            "VALUES (?, ?, 'exported', NULL, 0, ?) "
            "ON CONFLICT (id) DO UPDATE SET state = 'exported', code = NULL,"
            " permanent_code = NULL, updated = excluded.updated WHERE state != 'exported'"
        )
        return self._write(sql, ((*_key(i), now) for i in _materialize(_as_ids(ids))))

    def mark_failed(self, ids: ItemId | Iterable[ItemId], code: str | None) -> int:
        """Record that ``ids`` failed for good with ``code`` (counts one attempt each); the code
        is kept as their permanent code (see the module docstring).

        Exported items are left alone. Returns how many items changed.
        """
        return self.mark_failed_codes(dict.fromkeys(_as_ids(ids), _check_code(code)))

    def mark_failed_codes(self, codes: Mapping[ItemId, str | None]) -> int:
        """Like :meth:`mark_failed` with a code per item, all in one transaction."""
        now = self._clock()
        sql = (
            "INSERT INTO items (id, is_int, state, code, attempts, updated, permanent_code) "
            "VALUES (?, ?, 'failed', ?, 1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET state = 'failed', code = excluded.code, "
            "attempts = attempts + 1, updated = excluded.updated, "
            "permanent_code = excluded.permanent_code WHERE state != 'exported'"
        )
        # One row per item: 2 and "2" named together count once (the last code wins).
        rows = {_key(i): _check_code(c) for i, c in codes.items()}
        return self._write(sql, ((*key, code, now, code) for key, code in rows.items()))

    def fail_pending(self, default_code: str | None = None) -> int:
        """Turn every ``pending`` item into ``failed`` without counting an attempt; used when a
        job stops retrying. Its code is its permanent code when it has one (a failure a retry
        could not change), else its last code, else ``default_code``."""
        now = self._clock()
        sql = (
            "UPDATE items SET state = 'failed', code = COALESCE(permanent_code, code, ?), "
            "updated = ? WHERE state = 'pending'"
        )
        return self._write(sql, [(_check_code(default_code), now)])

    def start_run(self) -> int:
        """Begin a new run: every item not exported gets its attempts back to zero, so each run
        has its own retry rounds (its codes are kept). Returns how many items changed."""
        sql = "UPDATE items SET attempts = 0 WHERE state != 'exported' AND attempts != 0"
        return self._write(sql, [()])

    def requeue(self, ids: Iterable[ItemId], code: str | None = None) -> int:
        """Put exported items whose output turned out missing or damaged back into ``pending``
        (with ``code``, no attempt counted) so they are exported again. Items in another state
        are left alone. Returns how many items changed."""
        now = self._clock()
        sql = (
            "UPDATE items SET state = 'pending', code = ?, attempts = 0, updated = ? "
            "WHERE id = ? AND state = 'exported'"
        )
        code = _check_code(code)
        return self._write(sql, ((code, now, _key(i)[0]) for i in _materialize(ids)))

    def claim_names(self, keys: Mapping[ItemId, str]) -> set[ItemId]:
        """Give each id the name ``key`` its files take unless a different id holds it; return
        the ids refused. First come, first served, kept across runs, so two ids whose files
        would be the same file (``Mixed``/``mixed``) never both get written. Ids are compared
        by their string form (``5`` and ``"5"`` are one item). One transaction."""
        rows = [(_check_key(key), _key(i)[0], i) for i, key in keys.items()]
        refused: set[ItemId] = set()
        with self._transaction() as conn:
            for key, owner, item_id in rows:
                conn.execute(
                    "INSERT INTO names (key, owner) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                    (key, owner),
                )
                held = conn.execute("SELECT owner FROM names WHERE key = ?", (key,)).fetchone()
                if held[0] != owner:
                    refused.add(item_id)
        return refused

    # -- queries --------------------------------------------------------------------------------

    def get(self, item_id: ItemId) -> LedgerRecord | None:
        """The record of one item, or None when the ledger has never seen it."""
        with self._lock:
            row = (
                self._connection()
                .execute(
                    f"SELECT {_COLUMNS} FROM items WHERE id = ?",
                    (_key(item_id)[0],),
                )
                .fetchone()
            )
        return None if row is None else _record(row)

    def exported_among(self, ids: Iterable[ItemId]) -> set[ItemId]:
        """Which of ``ids`` are exported (bounded by the ids passed, never the whole table)."""
        found: set[ItemId] = set()
        for chunk in _chunks(ids):
            asked: dict[str, list[ItemId]] = {}
            for item_id in chunk:
                asked.setdefault(_key(item_id)[0], []).append(item_id)
            marks = ",".join("?" * len(asked))
            with self._lock:
                rows = (
                    self._connection()
                    .execute(
                        f"SELECT id FROM items WHERE state = 'exported' AND id IN ({marks})",
                        list(asked),
                    )
                    .fetchall()
                )
            for (key,) in rows:
                found.update(asked[key])
        return found

    def _iter_state(self, state: ItemState, batch: int) -> Iterator[LedgerRecord]:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch!r}")
        # Keyset pagination on (state, number, id) (see _NUMBER): each batch is a fresh short
        # query, so callers may change states while iterating and memory stays bounded.
        last: tuple[object, ...] = ()
        while True:
            where = "state = ?" + (" AND (number, id) > (?, ?)" if last else "")
            with self._lock:
                rows = (
                    self._connection()
                    .execute(
                        f"SELECT {_COLUMNS}, number FROM items WHERE {where} "
                        "ORDER BY state, number, id LIMIT ?",
                        (state, *last, batch),
                    )
                    .fetchall()
                )
            if not rows:
                return
            for row in rows:
                yield _record(row[:-1])
            last = (rows[-1][-1], rows[-1][0])

    def iter_exported(self, *, batch: int = _BATCH) -> Iterator[LedgerRecord]:
        """Exported items in id order (integers by value, then the others by text), read
        ``batch`` rows at a time."""
        return self._iter_state("exported", batch)

    def iter_pending(self, *, batch: int = _BATCH) -> Iterator[LedgerRecord]:
        """Items waiting for a retry in id order (as :meth:`iter_exported`), read ``batch`` rows
        at a time."""
        return self._iter_state("pending", batch)

    def oldest_pending(
        self, limit: int, *, max_attempts: int | None = None
    ) -> list[LedgerRecord]:
        """Up to ``limit`` pending items, least recently changed first (a FIFO retry queue).

        ``max_attempts`` leaves out items that already failed more often than that.

        Raises:
            ValueError: ``limit`` is below 1 or ``max_attempts`` negative.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        if max_attempts is not None and max_attempts < 0:
            raise ValueError(f"max_attempts must be >= 0, got {max_attempts!r}")
        bound = -1 if max_attempts is None else max_attempts
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    f"SELECT {_COLUMNS} FROM items "
                    "WHERE state = 'pending' AND (? < 0 OR attempts <= ?) "
                    "ORDER BY updated, id LIMIT ?",
                    (bound, bound, limit),
                )
                .fetchall()
            )
        return [_record(row) for row in rows]

    def iter_failed(self, *, batch: int = _BATCH) -> Iterator[LedgerRecord]:
        """Items that failed for good in id order (as :meth:`iter_exported`: ``1, 2, 10``),
        read ``batch`` rows at a time."""
        return self._iter_state("failed", batch)

    def setting(self, name: str) -> str | None:
        """The value recorded under ``name`` (:meth:`record_setting`), None if none was."""
        with self._lock:
            row = self._connection().execute(
                "SELECT value FROM settings WHERE name = ?", (_check_key(name),)
            ).fetchone()
        return None if row is None else str(row[0])

    def record_setting(self, name: str, value: str) -> None:
        """Record ``value`` under ``name`` (what the job was started with), replacing any.

        Raises:
            TypeError: ``name`` or ``value`` is not a str.
        """
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)",
                (_check_key(name), _check_key(value)),
            )

    def summary(self) -> LedgerSummary:
        """Counts per state and failed items per code, computed inside SQLite."""
        with self._lock:
            conn = self._connection()
            counts = dict(conn.execute("SELECT state, COUNT(*) FROM items GROUP BY state"))
            by_code = dict(
                conn.execute(
                    "SELECT code, COUNT(*) FROM items WHERE state = 'failed' GROUP BY code "
                    "ORDER BY code"
                )
            )
        return LedgerSummary(
            pending=counts.get("pending", 0),
            exported=counts.get("exported", 0),
            failed=counts.get("failed", 0),
            failed_by_code=by_code,
        )


def _as_ids(ids: ItemId | Iterable[ItemId]) -> Iterable[ItemId]:
    if isinstance(ids, int | str):
        return (ids,)
    return ids


def _materialize(ids: Iterable[ItemId]) -> list[ItemId]:
    """Validate every id before the transaction starts, so a bad id changes nothing; an id named
    twice in one call (``2`` and ``"2"`` too) counts once."""
    return unique_ids(_as_ids(ids))


def item_key(item_id: object) -> str:
    """An item's canonical form: its id's string form, by which the backend matches ids
    (``2`` and ``"2"`` are one item).

    Raises:
        TypeError: not an ``int`` or ``str`` (``bool`` is refused).
    """
    return str(_check_id(item_id))


def unique_ids(ids: Iterable[ItemId]) -> list[ItemId]:
    """``ids`` with one id per item (:func:`item_key`), the first form of each kept, in order.

    Raises:
        TypeError: an id is not an ``int`` or ``str``.
    """
    unique: dict[str, ItemId] = {}
    for item_id in ids:
        unique.setdefault(item_key(item_id), item_id)
    return list(unique.values())


def _key(item_id: object) -> tuple[str, int]:
    """An id's row: its canonical form (:func:`item_key`) and whether it is an integer."""
    return item_key(item_id), int(isinstance(item_id, int))


def _record(row: tuple[object, ...]) -> LedgerRecord:
    """A ledger row (``_COLUMNS``) as a record, its id back in its recorded type."""
    key, state, code, attempts, updated, is_int = row
    item_id = int(str(key)) if is_int else str(key)
    return LedgerRecord(item_id, state, code, attempts, updated)  # type: ignore[arg-type]
