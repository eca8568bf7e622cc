"""The admin API's room list as the front answers it: one list, live counts from every worker."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["merge_room_lists"]


def _room_list(body: bytes) -> tuple[dict[str, Any], list[Any]] | None:
    """The document and its ``rooms`` of a ``GET /api/rooms`` body, None when it is not one."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("rooms"), list):
        return None
    return document, document["rooms"]


def _room_id(room: Any) -> str | None:
    return room.get("id") if isinstance(room, dict) and isinstance(room.get("id"), str) else None


def merge_room_lists(base: bytes, others: list[bytes]) -> bytes | None:
    """``base``, a ``GET /api/rooms`` body, with each room's ``participants`` the largest it or
    any of ``others`` (the same list from other workers) reports; None when ``base`` is none.

    Every worker reads the same room store, so only the live counts differ: a room's
    participants are all on its home worker, and every other worker reports 0.
    """
    parsed = _room_list(base)
    if parsed is None:
        return None
    document, rooms = parsed
    largest: dict[str, int] = {}
    for body in others:
        _, other_rooms = _room_list(body) or ({}, [])
        for room in other_rooms:
            room_id = _room_id(room)
            count = room.get("participants") if room_id is not None else None
            if room_id is not None and isinstance(count, int):
                largest[room_id] = max(count, largest.get(room_id, count))
    for room in rooms:
        room_id = _room_id(room)
        if room_id in largest:
            own = room.get("participants")
            room["participants"] = max(largest[room_id], own if isinstance(own, int) else 0)
    return json.dumps(document).encode()
