"""The courseware and recordings library catalogue: one SQLite database, behind asyncio.

Like the room store (``signaling/rooms/store.py``), one connection lives on one worker thread and
every call is queued to it. Text search uses an FTS5 index when SQLite has it (rebuilt from the
items table at every start, so it can never drift), else ``LIKE``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal, cast

from mcu.crypto.atrest import AtRestError, plaintext_size, unwrap_key
from mcu.infra.database import UNSET, DatabaseError, SerialDatabase, Unset
from mcu.recorder.salvage import salvage

__all__ = [
    "DB_FILENAME",
    "RECORDINGS_DIR",
    "UNSET",
    "Catalogue",
    "CatalogueError",
    "FileRole",
    "ItemExists",
    "ItemKind",
    "ItemStatus",
    "LibraryFile",
    "LibraryItem",
    "LibraryPage",
    "Unset",
    "new_item_id",
    "recover",
]

log = logging.getLogger(__name__)

DB_FILENAME = "library.sqlite3"
"""The catalogue's file name inside ``data_dir``."""
RECORDINGS_DIR = "recordings"
"""Recordings' files live in ``data_dir / RECORDINGS_DIR / <item id>``."""

ItemKind = Literal["recording", "upload"]
ItemStatus = Literal["recording", "complete", "failed"]
FileRole = Literal["composite", "track", "slides"]
_KINDS: Final = ("recording", "upload")
_STATUSES: Final = ("recording", "complete", "failed")
_ROLES: Final = ("composite", "track", "slides")
ITEM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What an item id may look like (it appears in URLs)."""
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""What a file name may look like (it appears in URLs)."""


_SCHEMA_V1 = """
CREATE TABLE items (
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    room_id TEXT,
    department TEXT,
    lecturer TEXT,
    tags TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    duration_s REAL,
    size_bytes INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('recording', 'upload')),
    status TEXT NOT NULL CHECK (status IN ('recording', 'complete', 'failed')),
    files TEXT NOT NULL
) STRICT;
CREATE INDEX items_recorded_at ON items (recorded_at DESC, id);
CREATE INDEX items_department ON items (department COLLATE NOCASE, recorded_at DESC);
"""
_SCHEMA_STEPS = (tuple(statement for statement in _SCHEMA_V1.split(";") if statement.strip()),)
SCHEMA_VERSION = len(_SCHEMA_STEPS)
_COLUMNS = (
    "id, title, room_id, department, lecturer, tags, recorded_at, duration_s, size_bytes, "
    "kind, status, files"
)
_FTS_SCHEMA = (
    "CREATE VIRTUAL TABLE temp.items_fts USING fts5("
    "id UNINDEXED, title, lecturer, tags, department, tokenize = 'unicode61 remove_diacritics 2')"
)
_WORD = re.compile(r"\w+", re.UNICODE)


class CatalogueError(DatabaseError):
    """The catalogue cannot be used (newer schema, not started, closed)."""


class ItemExists(Exception):
    """An item with that id already exists."""


@dataclass(frozen=True)
class LibraryFile:
    """One file of a library item, as stored on disk."""

    name: str
    """Name in URLs (``/library/{id}/files/{name}``); unique within the item."""
    role: FileRole
    """``composite`` (the mixed picture and sound), ``track`` (one participant) or ``slides``."""
    media_type: str
    """``video/mp4``, ``audio/mp4`` or ``application/pdf``."""
    path: str
    """Location relative to ``data_dir``; never shown to clients."""
    encrypted: bool
    """Whether the file is sealed with ``mcu.crypto.atrest``."""
    wrapped_key: str | None
    """Base64 of the file's data key wrapped with the master key; None for plain files."""
    plaintext_size: int
    """Bytes a player receives (the file's size on disk for plain files)."""
    source: str | None = None
    """A recorded track's source (``camera``, ``microphone``, ``content``); None otherwise."""
    participant: str | None = None
    """Whose track it is (the name shown in the room); None for other files."""

    def __post_init__(self) -> None:
        if not FILE_NAME.fullmatch(self.name):
            raise ValueError(f"file name {self.name!r} is not allowed")
        if self.role not in _ROLES:
            raise ValueError(f"file role must be one of {_ROLES}, got {self.role!r}")
        if self.encrypted != (self.wrapped_key is not None):
            raise ValueError("an encrypted file needs a wrapped key, a plain one none")
        if Path(self.path).is_absolute() or ".." in Path(self.path).parts:
            raise ValueError("file path must be relative to data_dir, without '..'")

    def wrapped_key_bytes(self) -> bytes:
        """The wrapped data key; raises ``ValueError`` for a plain file."""
        if self.wrapped_key is None:
            raise ValueError(f"file {self.name!r} is not encrypted")
        try:
            return base64.b64decode(self.wrapped_key, validate=True)
        except binascii.Error:
            raise ValueError(f"file {self.name!r}: wrapped key is not base64") from None

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "name": self.name,
            "role": self.role,
            "media_type": self.media_type,
            "path": self.path,
            "encrypted": self.encrypted,
            "wrapped_key": self.wrapped_key,
            "plaintext_size": self.plaintext_size,
        } | {
            key: value
            for key, value in (("source", self.source), ("participant", self.participant))
            if value is not None
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> LibraryFile:
        """Inverse of ``to_json``."""
        return cls(
            name=str(value["name"]),
            role=cast(FileRole, value["role"]),
            media_type=str(value["media_type"]),
            path=str(value["path"]),
            encrypted=bool(value["encrypted"]),
            wrapped_key=value.get("wrapped_key"),
            plaintext_size=int(value["plaintext_size"]),
            source=value.get("source"),
            participant=value.get("participant"),
        )


@dataclass(frozen=True)
class LibraryItem:
    """A recorded session or uploaded courseware, with what a search needs."""

    id: str
    """Stable identifier used in URLs (see ``new_item_id``)."""
    title: str
    """Shown in the library."""
    recorded_at: float
    """Unix time the recording started, or the upload arrived."""
    kind: ItemKind
    """``recording`` (made by the server) or ``upload`` (courseware a staff member sent)."""
    status: ItemStatus
    """``recording`` while being written, then ``complete`` or ``failed``."""
    room_id: str | None = None
    """The room that was recorded; None for uploads."""
    department: str | None = None
    """Subject or department, for filtering."""
    lecturer: str | None = None
    """Who taught or led the session."""
    tags: tuple[str, ...] = ()
    """Free keywords, searched like the title."""
    duration_s: float | None = None
    """Playing time; None when unknown."""
    size_bytes: int = 0
    """Bytes the item's files take on disk."""
    files: tuple[LibraryFile, ...] = field(default_factory=tuple)
    """The item's files; the ``composite`` one (else the first) is what ``play`` serves."""

    def __post_init__(self) -> None:
        if not ITEM_ID.fullmatch(self.id):
            raise ValueError(f"item id {self.id!r} is not allowed")
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        if self.status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, got {self.status!r}")
        names = [file.name for file in self.files]
        if len(set(names)) != len(names):
            raise ValueError("file names must be unique within an item")

    def file(self, name: str) -> LibraryFile | None:
        """The file called ``name``, or None."""
        return next((file for file in self.files if file.name == name), None)

    def playable(self) -> LibraryFile | None:
        """The composite file, else the first file, else None."""
        return next((f for f in self.files if f.role == "composite"), None) or next(
            iter(self.files), None
        )


@dataclass(frozen=True)
class LibraryPage:
    """One page of a query."""

    items: list[LibraryItem]
    """Newest first."""
    total: int
    """How many items match, over all pages."""


def new_item_id() -> str:
    """A fresh random item id (URL-safe, 16 characters, unguessable)."""
    return secrets.token_urlsafe(12)


def _row(item: LibraryItem) -> tuple[Any, ...]:
    return (
        item.id,
        item.title,
        item.room_id,
        item.department,
        item.lecturer,
        json.dumps(list(item.tags)),
        item.recorded_at,
        item.duration_s,
        item.size_bytes,
        item.kind,
        item.status,
        json.dumps([file.to_json() for file in item.files]),
    )


def _item(row: Sequence[Any]) -> LibraryItem:
    return LibraryItem(
        id=row[0],
        title=row[1],
        room_id=row[2],
        department=row[3],
        lecturer=row[4],
        tags=tuple(json.loads(row[5])),
        recorded_at=row[6],
        duration_s=row[7],
        size_bytes=row[8],
        kind=row[9],
        status=row[10],
        files=tuple(LibraryFile.from_json(value) for value in json.loads(row[11])),
    )


def _like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Catalogue(SerialDatabase):
    """Library items in ``data_dir / DB_FILENAME``; file paths in items are relative to
    ``data_dir``.

    Use ``await Catalogue.open(data_dir)``, or construct and ``await start()``; ``await close()``
    when done.
    """

    label = "library catalogue"
    error = CatalogueError
    private = True  # titles and lecturers' names are nobody else's business

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir / DB_FILENAME)
        self.data_dir = data_dir
        self._fts = False

    @classmethod
    async def open(cls, data_dir: Path) -> Catalogue:
        """A started catalogue for ``data_dir``."""
        catalogue = cls(data_dir)
        await catalogue.start()
        return catalogue

    @property
    def full_text(self) -> bool:
        """Whether text search uses FTS5 (else LIKE)."""
        return self._fts

    async def create(self, item: LibraryItem) -> LibraryItem:
        """Store a new item; raises ``ItemExists`` if its id is taken."""

        def insert(db: sqlite3.Connection) -> LibraryItem:
            try:
                with db:
                    db.execute(f"INSERT INTO items ({_COLUMNS}) VALUES ({_marks(12)})", _row(item))
                    self._index(db, item)
            except sqlite3.IntegrityError:
                raise ItemExists(item.id) from None
            return item

        return await self._run(insert)

    async def get(self, item_id: str) -> LibraryItem | None:
        """The item with ``item_id``, or None."""
        return await self._run(lambda db: _select(db, item_id))

    async def query(
        self,
        *,
        text: str | None = None,
        department: str | None = None,
        recorded_from: float | None = None,
        recorded_to: float | None = None,
        limit: int = 50,
        offset: int = 0,
        scope: str | Unset | None = UNSET,
    ) -> LibraryPage:
        """Items matching every given filter, newest first.

        ``scope``: a staff member's department; only items without a department, or (given one)
        of that department, case-insensitively. UNSET: every item.

        ``text``: every word must occur (as a word prefix with FTS5, as a substring otherwise)
        in the title, lecturer, tags or department. ``department``: exact, case-insensitive.
        ``recorded_from`` (inclusive) and ``recorded_to`` (exclusive): Unix times.
        """
        if limit < 1 or offset < 0:
            raise ValueError("limit must be positive and offset not negative")
        words = _WORD.findall(text or "")
        where: list[str] = []
        params: list[Any] = []
        if words and self._fts:
            # Each word quoted: the user's text is never FTS5 query syntax.
            match = " AND ".join(f'"{word}"*' for word in words)
            where.append("id IN (SELECT id FROM items_fts WHERE items_fts MATCH ?)")
            params.append(match)
        elif words:
            for word in words:
                fields = ("title", "lecturer", "tags", "department")
                where.append(
                    "(" + " OR ".join(f"{name} LIKE ? ESCAPE '\\'" for name in fields) + ")"
                )
                params += [_like_pattern(word)] * len(fields)
        if department is not None:
            where.append("department = ? COLLATE NOCASE")
            params.append(department)
        if scope is None:
            where.append("department IS NULL")
        elif scope is not UNSET:
            where.append("(department IS NULL OR department = ? COLLATE NOCASE)")
            params.append(scope)
        if recorded_from is not None:
            where.append("recorded_at >= ?")
            params.append(recorded_from)
        if recorded_to is not None:
            where.append("recorded_at < ?")
            params.append(recorded_to)
        condition = f"WHERE {' AND '.join(where)}" if where else ""

        def select(db: sqlite3.Connection) -> LibraryPage:
            total = db.execute(f"SELECT COUNT(*) FROM items {condition}", params).fetchone()[0]
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM items {condition} "
                "ORDER BY recorded_at DESC, id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
            return LibraryPage([_item(row) for row in rows], int(total))

        return await self._run(select)

    async def update_metadata(
        self,
        item_id: str,
        *,
        title: str | Unset = UNSET,
        department: str | Unset | None = UNSET,
        lecturer: str | Unset | None = UNSET,
        tags: Sequence[str] | Unset = UNSET,
    ) -> LibraryItem | None:
        """Change only the descriptive fields given (None clears department or lecturer); the
        updated item, or None if there is no such item."""
        changes: dict[str, Any] = {}
        if title is not UNSET:
            changes["title"] = title
        if department is not UNSET:
            changes["department"] = department
        if lecturer is not UNSET:
            changes["lecturer"] = lecturer
        if tags is not UNSET:
            changes["tags"] = tuple(tags)
        return await self._update(item_id, changes)

    async def update_recording(
        self,
        item_id: str,
        *,
        status: ItemStatus | Unset = UNSET,
        duration_s: float | Unset | None = UNSET,
        size_bytes: int | Unset = UNSET,
        files: Sequence[LibraryFile] | Unset = UNSET,
    ) -> LibraryItem | None:
        """Change what the recorder knows (state, length, files); the updated item, or None if
        there is no such item."""
        changes: dict[str, Any] = {}
        if status is not UNSET:
            changes["status"] = status
        if duration_s is not UNSET:
            changes["duration_s"] = duration_s
        if size_bytes is not UNSET:
            changes["size_bytes"] = size_bytes
        if files is not UNSET:
            changes["files"] = tuple(files)
        return await self._update(item_id, changes)

    async def delete(self, item_id: str) -> LibraryItem | None:
        """Forget the item and return it (the caller deletes its files), or None."""

        def remove(db: sqlite3.Connection) -> LibraryItem | None:
            with db:
                item = _select(db, item_id)
                if item is not None:
                    db.execute("DELETE FROM items WHERE id = ?", (item_id,))
                    self._unindex(db, item_id)
            return item

        return await self._run(remove)

    async def discard_unfinished(self, item_id: str) -> bool:
        """Forget a recording that is still being written (one that ended with nothing in it)
        and remove its folder if that is empty; True if it was forgotten. Finished recordings
        and uploads are never deleted here, nor is a folder with anything in it."""

        folder = self.data_dir / RECORDINGS_DIR / item_id

        def remove(db: sqlite3.Connection) -> bool:
            with db:
                item = _select(db, item_id)
                if item is None or item.kind != "recording" or item.status != "recording":
                    return False
                db.execute("DELETE FROM items WHERE id = ?", (item_id,))
                self._unindex(db, item_id)
                # Before the commit: once the item is gone from the library, so is its folder.
                _remove_empty_folder(folder)
            return True

        if not await self._run(remove):
            return False
        log.info("library: recording %s held no media; not kept", item_id)
        return True

    async def recover(self, master_key: bytes | None = None) -> list[LibraryItem]:
        """Finish items a killed server left in ``recording``; returns the items kept.

        Each file is cut back to its last whole fragment (:func:`.salvage.salvage`), so it
        decodes without an error; encrypted files need ``master_key`` for that (without it they
        are kept up to their last complete chunk). A file without one whole fragment is
        deleted. An item with files left becomes ``complete``, its sizes recomputed and, when
        unknown, its duration estimated from its files' modification times (as the crash left
        them). An item whose files are all missing or unreadable becomes ``failed``; one in which
        nothing was recorded is deleted with its empty folder. Call at start-up, before
        recording begins.
        """
        unfinished = await self._run(
            lambda db: [
                _item(row)
                for row in db.execute(
                    f"SELECT {_COLUMNS} FROM items WHERE status = 'recording'"
                ).fetchall()
            ]
        )
        changed: list[LibraryItem] = []
        loop = asyncio.get_running_loop()
        for item in unfinished:
            survey = await loop.run_in_executor(None, self._survey, item, master_key)
            if survey.files:
                duration = item.duration_s
                if not duration and survey.newest is not None:
                    duration = max(0.0, round(survey.newest - item.recorded_at, 3))
                updated = await self.update_recording(
                    item.id,
                    status="complete",
                    files=survey.files,
                    size_bytes=survey.size,
                    duration_s=duration,
                )
            elif survey.unusable:
                updated = await self.update_recording(item.id, status="failed", size_bytes=0)
            else:
                await self.discard_unfinished(item.id)
                continue
            if updated is not None:
                log.info("library: recovered %s as %s", item.id, updated.status)
                changed.append(updated)
        return changed

    def _survey(self, item: LibraryItem, master_key: bytes | None) -> _Survey:
        survey = _Survey()
        for file in item.files:
            path = self.data_dir / file.path
            try:
                # Before salvage touches the file: when the crash came.
                modified = path.stat().st_mtime
                if file.encrypted and master_key is None:
                    readable = plaintext_size(path)
                else:
                    key = None
                    if file.encrypted and master_key is not None:
                        key = unwrap_key(master_key, file.wrapped_key_bytes())
                    readable = salvage(path, key).kept
                if readable == 0:
                    path.unlink()  # not one whole fragment: nothing to play
                    continue
                size = path.stat().st_size
            except (OSError, AtRestError, ValueError) as exc:
                log.warning("library: %s file %s unusable: %s", item.id, file.name, exc)
                survey.unusable += 1
                continue
            survey.files.append(replace(file, plaintext_size=readable))
            survey.size += size
            survey.newest = modified if survey.newest is None else max(survey.newest, modified)
        return survey

    async def _update(self, item_id: str, changes: dict[str, Any]) -> LibraryItem | None:
        def apply(db: sqlite3.Connection) -> LibraryItem | None:
            with db:
                current = _select(db, item_id)
                if current is None or not changes:
                    return current
                # Validate through the dataclass before touching the row.
                updated = replace(current, **changes)
                db.execute(
                    f"UPDATE items SET ({_COLUMNS}) = ({_marks(12)}) WHERE id = ?",
                    (*_row(updated), item_id),
                )
                self._unindex(db, item_id)
                self._index(db, updated)
            return updated

        return await self._run(apply)

    def _index(self, db: sqlite3.Connection, item: LibraryItem) -> None:
        if self._fts:
            db.execute(
                "INSERT INTO items_fts (id, title, lecturer, tags, department) "
                "VALUES (?, ?, ?, ?, ?)",
                (item.id, item.title, item.lecturer, " ".join(item.tags), item.department),
            )

    def _unindex(self, db: sqlite3.Connection, item_id: str) -> None:
        if self._fts:
            db.execute("DELETE FROM items_fts WHERE id = ?", (item_id,))

    def _prepare(self, db: sqlite3.Connection) -> None:
        self._migrate(db, _SCHEMA_STEPS)
        self._fts = _build_fts(db)


@dataclass
class _Survey:
    """What recovery found of one interrupted recording's files."""

    files: list[LibraryFile] = field(default_factory=list)
    size: int = 0
    newest: float | None = None
    unusable: int = 0


def _remove_empty_folder(folder: Path) -> None:
    try:
        folder.rmdir()  # refuses a folder that is not empty
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("library: folder %s kept: %s", folder.name, exc.strerror)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _select(db: sqlite3.Connection, item_id: str) -> LibraryItem | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
    return None if row is None else _item(row)


def _build_fts(db: sqlite3.Connection) -> bool:
    # The index is a TEMP table filled from items: derived data that cannot go stale across
    # SQLite builds with and without FTS5, and cheap to rebuild for a library's few thousand rows.
    try:
        db.execute(_FTS_SCHEMA)
    except sqlite3.OperationalError:
        log.info("library: SQLite has no FTS5; text search uses LIKE")
        return False
    with db:
        for row in db.execute("SELECT id, title, lecturer, tags, department FROM items"):
            db.execute(
                "INSERT INTO items_fts (id, title, lecturer, tags, department) "
                "VALUES (?, ?, ?, ?, ?)",
                (row[0], row[1], row[2], " ".join(json.loads(row[3])), row[4]),
            )
    return True


async def recover(data_dir: Path, master_key: bytes | None = None) -> list[LibraryItem]:
    """Open the catalogue in ``data_dir``, finish interrupted recordings (see
    ``Catalogue.recover``), close it; returns the items kept."""
    catalogue = await Catalogue.open(data_dir)
    try:
        return await catalogue.recover(master_key)
    finally:
        await catalogue.close()
