"""The front's merged room list: one definition per room, the live count from any worker."""

from __future__ import annotations

import json

from mcu.app.cluster.roomlist import merge_room_lists


def _list(**counts: int) -> bytes:
    return json.dumps(
        {"rooms": [{"id": room, "title": room, "participants": n} for room, n in counts.items()]}
    ).encode()


def test_each_room_takes_the_largest_count_any_worker_reports() -> None:
    merged = merge_room_lists(_list(a=0, b=3), [_list(a=2, b=0), b"not json", _list(c=9)])
    assert merged is not None
    rooms = json.loads(merged)["rooms"]
    assert {r["id"]: r["participants"] for r in rooms} == {"a": 2, "b": 3}
    assert [r["title"] for r in rooms] == ["a", "b"]


def test_an_unreadable_base_is_left_alone() -> None:
    assert merge_room_lists(b"<html>", [_list(a=1)]) is None
    assert merge_room_lists(b'{"error": "unauthorized"}', []) is None
