"""Durable room definitions in SQLite, behind an asyncio interface.

Built on ``mcu.infra.database.SerialDatabase``: one connection on one worker thread.
"""

from __future__ import annotations

import builtins
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcu.infra.database import UNSET, DatabaseError, SerialDatabase, Unset

__all__ = [
    "DB_FILENAME",
    "UNSET",
    "RoomExists",
    "RoomKind",
    "RoomRecord",
    "RoomStore",
    "StoreError",
    "StoreUnavailable",
    "Unset",
]

DB_FILENAME = "mcu.sqlite3"
"""The database's file name inside ``data_dir``."""
RoomKind = Literal["meeting", "lecture"]


_SCHEMA_V1 = """
CREATE TABLE rooms (
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    opens_at REAL,
    closes_at REAL,
    max_participants INTEGER
) STRICT;
"""
_SCHEMA_V2 = "ALTER TABLE rooms ADD COLUMN auto_record INTEGER NOT NULL DEFAULT 0"
_SCHEMA_V3 = (
    "ALTER TABLE rooms ADD COLUMN kind TEXT NOT NULL DEFAULT 'meeting'",
    "ALTER TABLE rooms ADD COLUMN viewer_password_hash TEXT",
)
# The deny list of access tokens: an entry is kept only as long as its token could be used.
_SCHEMA_V4 = (
    "CREATE TABLE revoked_tokens (jti TEXT PRIMARY KEY NOT NULL, expires_at REAL NOT NULL) STRICT",
)
# End-to-end encrypted rooms (docs/e2ee.md): rooms made before it are not.
_SCHEMA_V5 = ("ALTER TABLE rooms ADD COLUMN e2ee INTEGER NOT NULL DEFAULT 0",)
_SCHEMA_STEPS = (
    tuple(statement for statement in _SCHEMA_V1.split(";") if statement.strip()),
    (_SCHEMA_V2,),
    _SCHEMA_V3,
    _SCHEMA_V4,
    _SCHEMA_V5,
)
SCHEMA_VERSION = len(_SCHEMA_STEPS)
_COLUMNS = (
    "id, title, password_hash, created_at, opens_at, closes_at, max_participants, auto_record,"
    " kind, viewer_password_hash, e2ee"
)


class StoreError(DatabaseError):
    """The room database cannot be used (newer schema, not started, closed)."""


class StoreUnavailable(StoreError):
    """The shared store did not answer (its Redis unreachable, or Sentinel promoting a
    replica): nothing is wrong with the request, which may be made again in a moment."""


class RoomExists(Exception):
    """A room with that id already exists."""


@dataclass(frozen=True)
class RoomRecord:
    """A room as an administrator defined it; who is in it lives elsewhere."""

    id: str
    """Stable identifier used in URLs and joins."""
    title: str
    """Shown to participants."""
    password_hash: str
    """Argon2id hash of the room password."""
    created_at: float
    """Unix time of creation."""
    opens_at: float | None
    """Unix time before which joins are refused; None for no limit."""
    closes_at: float | None
    """Unix time from which joins are refused; None for no limit."""
    max_participants: int | None
    """Capacity; None means the server default."""
    auto_record: bool = False
    """Start recording when the first participant joins (consultations kept for the record)."""
    kind: RoomKind = "meeting"
    """``meeting`` (everyone sees everyone) or ``lecture`` (viewers receive the stage only)."""
    viewer_password_hash: str | None = None
    """Argon2id hash of a lecture's viewer password; None when viewers need an invite."""
    e2ee: bool = False
    """Media is end-to-end encrypted by the browsers: the server refuses what needs plaintext
    (recording, mixing, slides, WHEP players without the key)."""

    def is_open(self, now: float) -> bool:
        """Whether joins are allowed at Unix time ``now``."""
        if self.opens_at is not None and now < self.opens_at:
            return False
        return self.closes_at is None or now < self.closes_at


def _record(row: tuple[Any, ...]) -> RoomRecord:
    room_id, title, password_hash, created_at, opens_at, closes_at, capacity, auto = row[:8]
    kind, viewer_hash, e2ee = row[8:]
    return RoomRecord(
        room_id,
        title,
        password_hash,
        created_at,
        opens_at,
        closes_at,
        capacity,
        bool(auto),
        "lecture" if kind == "lecture" else "meeting",
        viewer_hash,
        bool(e2ee),
    )


class RoomStore(SerialDatabase):
    """Room records in ``path`` (usually ``data_dir / DB_FILENAME``).

    Use ``await RoomStore.open(path)``, or construct and ``await start()``; ``await close()``
    when done.
    """

    label = "room store"
    error = StoreError

    @classmethod
    async def open(cls, path: Path) -> RoomStore:
        """A started store for the database at ``path``."""
        store = cls(path)
        await store.start()
        return store

    async def create(self, record: RoomRecord) -> RoomRecord:
        """Store a new room; raises ``RoomExists`` if its id is taken."""

        def insert(db: sqlite3.Connection) -> RoomRecord:
            try:
                with db:
                    db.execute(
                        f"INSERT INTO rooms ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            record.id,
                            record.title,
                            record.password_hash,
                            record.created_at,
                            record.opens_at,
                            record.closes_at,
                            record.max_participants,
                            int(record.auto_record),
                            record.kind,
                            record.viewer_password_hash,
                            int(record.e2ee),
                        ),
                    )
            except sqlite3.IntegrityError:
                raise RoomExists(record.id) from None
            return record

        return await self._run(insert)

    async def get(self, room_id: str) -> RoomRecord | None:
        """The room with ``room_id``, or None."""
        return await self._run(lambda db: self._select(db, room_id))

    async def list(self) -> builtins.list[RoomRecord]:
        """Every room, ordered by id."""

        def select_all(db: sqlite3.Connection) -> builtins.list[RoomRecord]:
            rows = db.execute(f"SELECT {_COLUMNS} FROM rooms ORDER BY id").fetchall()
            return [_record(row) for row in rows]

        return await self._run(select_all)

    async def update(
        self,
        room_id: str,
        *,
        title: str | Unset = UNSET,
        password_hash: str | Unset = UNSET,
        opens_at: float | Unset | None = UNSET,
        closes_at: float | Unset | None = UNSET,
        max_participants: int | Unset | None = UNSET,
        auto_record: bool | Unset = UNSET,
        kind: RoomKind | Unset = UNSET,
        viewer_password_hash: str | Unset | None = UNSET,
        e2ee: bool | Unset = UNSET,
    ) -> RoomRecord | None:
        """Change only the fields given (None clears an optional one); the updated room, or
        None if there is no such room."""
        changes: dict[str, object] = {
            name: value
            for name, value in (
                ("title", title),
                ("password_hash", password_hash),
                ("opens_at", opens_at),
                ("closes_at", closes_at),
                ("max_participants", max_participants),
                (
                    "auto_record",
                    auto_record if isinstance(auto_record, Unset) else int(auto_record),
                ),
                ("kind", kind),
                ("viewer_password_hash", viewer_password_hash),
                ("e2ee", e2ee if isinstance(e2ee, Unset) else int(e2ee)),
            )
            if value is not UNSET
        }

        def apply(db: sqlite3.Connection) -> RoomRecord | None:
            if changes:
                # Column names come from the fixed tuple above, never from the caller.
                assignments = ", ".join(f"{name} = ?" for name in changes)
                with db:
                    db.execute(
                        f"UPDATE rooms SET {assignments} WHERE id = ?",
                        (*changes.values(), room_id),
                    )
            return self._select(db, room_id)

        return await self._run(apply)

    async def delete(self, room_id: str) -> bool:
        """Remove the room; whether it existed."""

        def remove(db: sqlite3.Connection) -> bool:
            with db:
                return db.execute("DELETE FROM rooms WHERE id = ?", (room_id,)).rowcount > 0

        return await self._run(remove)

    async def revoke_token(self, jti: str, expires_at: float, now: float) -> None:
        """Put the access token ``jti`` on the deny list until ``expires_at`` (when the token
        itself ends); entries that have expired by ``now`` are dropped meanwhile."""

        def insert(db: sqlite3.Connection) -> None:
            with db:
                db.execute("DELETE FROM revoked_tokens WHERE expires_at <= ?", (now,))
                # Revoking twice keeps the later expiry: a shorter one must not lift a ban.
                db.execute(
                    "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) "
                    "ON CONFLICT (jti) DO UPDATE "
                    "SET expires_at = MAX(expires_at, excluded.expires_at)",
                    (jti, expires_at),
                )

        await self._run(insert)

    async def token_revoked(self, jti: str, now: float) -> bool:
        """Whether the access token ``jti`` is on the deny list at ``now``."""

        def select(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT 1 FROM revoked_tokens WHERE jti = ? AND expires_at > ?", (jti, now)
            ).fetchone()
            return row is not None

        return await self._run(select)

    @staticmethod
    def _select(db: sqlite3.Connection, room_id: str) -> RoomRecord | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM rooms WHERE id = ?", (room_id,)).fetchone()
        return None if row is None else _record(row)

    def _prepare(self, db: sqlite3.Connection) -> None:
        self._migrate(db, _SCHEMA_STEPS)
