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
