"""A room database written by the first schema is upgraded in place, rooms kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mcu.signaling.rooms.store import RoomStore


async def test_version_1_database_gains_auto_record(tmp_path: Path) -> None:
    path = tmp_path / "mcu.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute(
        "CREATE TABLE rooms (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL, "
        "password_hash TEXT NOT NULL, created_at REAL NOT NULL, opens_at REAL, closes_at REAL, "
        "max_participants INTEGER) STRICT"
    )
    db.execute("INSERT INTO rooms VALUES ('old', 'Old', 'h', 1.0, NULL, NULL, 3)")
    db.commit()
    db.close()
    store = await RoomStore.open(path)
    try:
        room = await store.get("old")
        assert room is not None and room.max_participants == 3 and room.auto_record is False
        updated = await store.update("old", auto_record=True)
        assert updated is not None and updated.auto_record is True
    finally:
        await store.close()


async def test_version_4_database_gains_e2ee_off_for_its_rooms(tmp_path: Path) -> None:
    path = tmp_path / "mcu.sqlite3"
    store = await RoomStore.open(path)
    await store.close()
    # The database as schema step 4 left it: no e2ee column, one room.
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE rooms DROP COLUMN e2ee")
    db.execute("DELETE FROM schema_version WHERE version > 4")
    db.execute(
        "INSERT INTO rooms (id, title, password_hash, created_at, auto_record, kind)"
        " VALUES ('old', 'Old', 'h', 1.0, 1, 'meeting')"
    )
    db.commit()
    db.close()
    store = await RoomStore.open(path)
    try:
        room = await store.get("old")
        assert room is not None and room.e2ee is False and room.auto_record is True
        updated = await store.update("old", e2ee=True, auto_record=False)
        assert updated is not None and updated.e2ee is True
        assert [r.e2ee for r in await store.list()] == [True]
    finally:
        await store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT MAX(version) FROM schema_version").fetchone() == (5,)
    db.close()
