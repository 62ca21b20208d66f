"""SQLite persistence for the Synap emulator: instances, tokens, certificates, sessions, data.

One connection guarded by a lock: the emulator's event-loop thread and the test thread (which
issues tokens, revokes bindings and travels in time) both use it. Secrets are stored only as
SHA-256 digests (bootstrap and session tokens), never in clear.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CertificateRow",
    "ConversationRow",
    "EventRow",
    "InstanceRow",
    "MemoryRow",
    "SessionRow",
    "SynapStore",
    "TokenRow",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    generation  INTEGER NOT NULL DEFAULT 1,
    revoked     INTEGER NOT NULL DEFAULT 0,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS bootstrap_tokens (
    token_hash      TEXT PRIMARY KEY,
    instance_id     TEXT NOT NULL,
    issued_at       REAL NOT NULL,
    expires_at      REAL NOT NULL,
    consumed_at     REAL,
    idempotency_key TEXT,
    csr_sha256      TEXT,
    response        TEXT
);
CREATE TABLE IF NOT EXISTS certificates (
    serial      TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    issued_at   REAL NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL UNIQUE,
    instance_id TEXT NOT NULL,
    created_at  REAL NOT NULL,
    last_used   REAL NOT NULL,
    expires_at  REAL NOT NULL,
    invalidated TEXT
);
CREATE TABLE IF NOT EXISTS conversations (
    conversation_id TEXT PRIMARY KEY,
    instance_id     TEXT NOT NULL,
    created_at      REAL NOT NULL,
    deleted         INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS memories (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id       TEXT NOT NULL UNIQUE,
    instance_id     TEXT NOT NULL,
    user_id         TEXT,
    conversation_id TEXT,
    content         TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    created_at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS memories_user ON memories (instance_id, user_id);
CREATE INDEX IF NOT EXISTS memories_conversation ON memories (instance_id, conversation_id);
CREATE TABLE IF NOT EXISTS events (
    instance_id     TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    event_id        TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    content         TEXT NOT NULL,
    created_at      REAL NOT NULL,
    PRIMARY KEY (instance_id, sequence)
);
CREATE TABLE IF NOT EXISTS idempotency (
    instance_id  TEXT NOT NULL,
    key          TEXT NOT NULL,
    operation    TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,
    PRIMARY KEY (instance_id, key)
);
"""


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """A registered instance: its credential generation and whether its binding is revoked."""

    instance_id: str
    generation: int
    revoked: bool
    active: bool


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A bootstrap token (by digest) and, once consumed, the response it produced."""

    token_hash: str
    instance_id: str
    issued_at: float
    expires_at: float
    consumed_at: float | None
    idempotency_key: str | None
    csr_sha256: str | None
    response: str | None


@dataclass(frozen=True, slots=True)
class CertificateRow:
    """An issued client certificate's SDK lifetime (on the emulator's clock)."""

    serial: str
    instance_id: str
    generation: int
    issued_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session (by token digest) and why it was invalidated, if it was."""

    token_hash: str
    session_id: str
    instance_id: str
    created_at: float
    last_used: float
    expires_at: float
    invalidated: str | None


@dataclass(frozen=True, slots=True)
class ConversationRow:
    """A conversation of an instance."""

    conversation_id: str
    instance_id: str
    created_at: float
    deleted: bool


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """One stored memory."""

    memory_id: str
    user_id: str | None
    conversation_id: str | None
    content: str
    metadata: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event of an instance's listening stream."""

    sequence: int
    event_id: str
    instance_id: str
    kind: str
    conversation_id: str
    user_id: str
    content: str
    created_at: float


class SynapStore:
    """The emulator's SQLite database (a file under the state directory, or in memory)."""

    def __init__(self, path: Path | None = None) -> None:
        if path is not None and not path.exists():
            path.touch(mode=0o600)  # token and session digests: not for other users' eyes
        target = str(path) if path is not None else ":memory:"
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            # WAL without a sync per commit: an emulator favours speed; a crash may lose the
            # last writes but never corrupts the file.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and run statements in one transaction (committed unless it raises)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
            return row

    def _exec(self, sql: str, *args: Any) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    # --- instances -----------------------------------------------------------------------

    def add_instance(self, instance_id: str, now: float) -> None:
        """Register ``instance_id`` (active, generation 1, not revoked)."""
        self._exec(
            "INSERT INTO instances (instance_id, created_at) VALUES (?, ?)", instance_id, now
        )

    def instance(self, instance_id: str) -> InstanceRow | None:
        """The instance row, or None if it was never registered."""
        row = self._one("SELECT * FROM instances WHERE instance_id = ?", instance_id)
        if row is None:
            return None
        return InstanceRow(
            row["instance_id"], row["generation"], bool(row["revoked"]), bool(row["active"])
        )

    def set_instance(
        self,
        instance_id: str,
        *,
        revoked: bool | None = None,
        active: bool | None = None,
        bump_generation: bool = False,
    ) -> None:
        """Change an instance's flags; ``bump_generation`` retires every certificate it holds."""
        with self.transaction() as db:
            if revoked is not None:
                db.execute(
                    "UPDATE instances SET revoked = ? WHERE instance_id = ?", (revoked, instance_id)
                )
            if active is not None:
                db.execute(
                    "UPDATE instances SET active = ? WHERE instance_id = ?", (active, instance_id)
                )
            if bump_generation:
                db.execute(
                    "UPDATE instances SET generation = generation + 1 WHERE instance_id = ?",
                    (instance_id,),
                )

    # --- bootstrap tokens ----------------------------------------------------------------

    def add_token(
        self, token_hash: str, instance_id: str, issued_at: float, expires_at: float
    ) -> None:
        """Store a new bootstrap token's digest and validity window."""
        self._exec(
            "INSERT INTO bootstrap_tokens (token_hash, instance_id, issued_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            token_hash,
            instance_id,
            issued_at,
            expires_at,
        )

    def token(self, token_hash: str) -> TokenRow | None:
        """The token row for a digest, or None."""
        row = self._one("SELECT * FROM bootstrap_tokens WHERE token_hash = ?", token_hash)
        return None if row is None else TokenRow(*row)

    def consume_token(
        self, token_hash: str, now: float, idempotency_key: str, csr_sha256: str, response: str
    ) -> bool:
        """Mark an unconsumed token consumed, remembering the response for replays.

        Returns False if another request consumed it first.
        """
        return (
            self._exec(
                "UPDATE bootstrap_tokens SET consumed_at = ?, idempotency_key = ?, "
                "csr_sha256 = ?, response = ? WHERE token_hash = ? AND consumed_at IS NULL",
                now,
                idempotency_key,
                csr_sha256,
                response,
                token_hash,
            )
            == 1
        )

    # --- certificates --------------------------------------------------------------------

    def add_certificate(self, row: CertificateRow) -> None:
        """Record an issued certificate's SDK lifetime."""
        self._exec(
            "INSERT INTO certificates VALUES (?, ?, ?, ?, ?)",
            row.serial,
            row.instance_id,
            row.generation,
            row.issued_at,
            row.expires_at,
        )

    def certificate(self, serial: str) -> CertificateRow | None:
        """The certificate row for a serial (hex), or None."""
        row = self._one("SELECT * FROM certificates WHERE serial = ?", serial)
        return None if row is None else CertificateRow(*row)

    # --- sessions ------------------------------------------------------------------------

    def add_session(self, row: SessionRow) -> None:
        """Store a new session."""
        self._exec(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
            row.token_hash,
            row.session_id,
            row.instance_id,
            row.created_at,
            row.last_used,
            row.expires_at,
            row.invalidated,
        )

    def session(self, token_hash: str) -> SessionRow | None:
        """The session for a token digest, or None."""
        row = self._one("SELECT * FROM sessions WHERE token_hash = ?", token_hash)
        return None if row is None else SessionRow(*row)

    def touch_session(self, token_hash: str, now: float) -> None:
        """Record activity on a session (resets its idle window)."""
        self._exec("UPDATE sessions SET last_used = ? WHERE token_hash = ?", now, token_hash)

    def invalidate_sessions(self, instance_id: str, reason: str) -> int:
        """Invalidate every live session of an instance; return how many."""
        return self._exec(
            "UPDATE sessions SET invalidated = ? WHERE instance_id = ? AND invalidated IS NULL",
            reason,
            instance_id,
        )

    def invalidate_session(self, token_hash: str, reason: str) -> None:
        """Invalidate one session."""
        self._exec(
            "UPDATE sessions SET invalidated = ? WHERE token_hash = ? AND invalidated IS NULL",
            reason,
            token_hash,
        )

    # --- conversations and memories ------------------------------------------------------

    def add_conversation(self, conversation_id: str, instance_id: str, now: float) -> None:
        """Create a conversation."""
        self._exec(
            "INSERT INTO conversations (conversation_id, instance_id, created_at) VALUES (?, ?, ?)",
            conversation_id,
            instance_id,
            now,
        )

    def conversation(self, conversation_id: str) -> ConversationRow | None:
        """The conversation row, or None."""
        row = self._one("SELECT * FROM conversations WHERE conversation_id = ?", conversation_id)
        if row is None:
            return None
        return ConversationRow(
            row["conversation_id"], row["instance_id"], row["created_at"], bool(row["deleted"])
        )

    def delete_conversation(self, conversation_id: str) -> None:
        """Mark a conversation deleted and drop its memories."""
        with self.transaction() as db:
            db.execute(
                "UPDATE conversations SET deleted = 1 WHERE conversation_id = ?", (conversation_id,)
            )
            db.execute("DELETE FROM memories WHERE conversation_id = ?", (conversation_id,))

    def add_memories(self, instance_id: str, rows: list[MemoryRow]) -> None:
        """Store memories in one transaction."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO memories (memory_id, instance_id, user_id, conversation_id, content, "
                "metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.memory_id,
                        instance_id,
                        r.user_id,
                        r.conversation_id,
                        r.content,
                        json.dumps(r.metadata),
                        r.created_at,
                    )
                    for r in rows
                ],
            )

    def memories(
        self, instance_id: str, *, user_id: str | None, conversation_id: str | None, limit: int
    ) -> list[MemoryRow]:
        """The newest ``limit`` memories of a user or conversation, oldest first."""
        column, value = (
            ("user_id", user_id)
            if user_id is not None
            else (
                "conversation_id",
                conversation_id,
            )
        )
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM memories WHERE instance_id = ? AND {column} = ? "
                "ORDER BY seq DESC LIMIT ?",
                (instance_id, value, limit),
            ).fetchall()
        return [
            MemoryRow(
                r["memory_id"],
                r["user_id"],
                r["conversation_id"],
                r["content"],
                json.loads(r["metadata"]),
                r["created_at"],
            )
            for r in reversed(rows)
        ]

    def forget(self, instance_id: str, *, user_id: str | None, conversation_id: str | None) -> int:
        """Delete the memories of a user or conversation; return how many."""
        if user_id is not None:
            return self._exec(
                "DELETE FROM memories WHERE instance_id = ? AND user_id = ?", instance_id, user_id
            )
        return self._exec(
            "DELETE FROM memories WHERE instance_id = ? AND conversation_id = ?",
            instance_id,
            conversation_id,
        )

    # --- listening stream events ---------------------------------------------------------

    def add_event(
        self,
        event_id: str,
        instance_id: str,
        kind: str,
        conversation_id: str,
        user_id: str,
        content: str,
        now: float,
    ) -> EventRow:
        """Append an event to an instance's stream and return it with its sequence number
        (1, 2, 3, ... per instance)."""
        with self.transaction() as db:
            (last,) = db.execute(
                "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE instance_id = ?",
                (instance_id,),
            ).fetchone()
            sequence = int(last) + 1
            db.execute(
                "INSERT INTO events (instance_id, sequence, event_id, kind, conversation_id, "
                "user_id, content, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (instance_id, sequence, event_id, kind, conversation_id, user_id, content, now),
            )
        return EventRow(
            sequence, event_id, instance_id, kind, conversation_id, user_id, content, now
        )

    def events_after(self, instance_id: str, sequence: int) -> list[EventRow]:
        """Every event of an instance with a sequence number above ``sequence``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM events WHERE instance_id = ? AND sequence > ? ORDER BY sequence",
                (instance_id, sequence),
            ).fetchall()
        return [
            EventRow(
                r["sequence"],
                r["event_id"],
                r["instance_id"],
                r["kind"],
                r["conversation_id"],
                r["user_id"],
                r["content"],
                r["created_at"],
            )
            for r in rows
        ]

    # --- idempotency ---------------------------------------------------------------------

    def idempotent_response(self, instance_id: str, key: str) -> tuple[str, str, str] | None:
        """``(operation, request_hash, response_json)`` stored for a key, or None."""
        row = self._one(
            "SELECT operation, request_hash, response FROM idempotency "
            "WHERE instance_id = ? AND key = ?",
            instance_id,
            key,
        )
        return None if row is None else (row[0], row[1], row[2])

    def remember_response(
        self, instance_id: str, key: str, operation: str, request_hash: str, response: str
    ) -> None:
        """Store the response of a request made with an idempotency key."""
        self._exec(
            "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?)",
            instance_id,
            key,
            operation,
            request_hash,
            response,
        )
