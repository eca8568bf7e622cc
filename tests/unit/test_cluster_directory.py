"""Room homes: first sight takes the worker with the fewest rooms; memory stays bounded."""

from __future__ import annotations

import pytest

from mcu.cluster.directory import InMemoryRoomDirectory, RoomDirectory


async def test_first_sight_takes_the_least_loaded_worker_and_sticks() -> None:
    directory = InMemoryRoomDirectory(3)
    assert [await directory.home(r) for r in ("a", "b", "c", "d")] == [0, 1, 2, 0]
    assert await directory.home("b") == 1
    assert await directory.home("a") == 0
    assert directory.rooms_per_worker() == [2, 1, 1]


async def test_forget_frees_the_slot() -> None:
    directory = InMemoryRoomDirectory(2)
    for room in ("a", "b", "c"):
        await directory.home(room)
    await directory.forget("b")
    await directory.forget("never-seen")
    assert directory.rooms_per_worker() == [2, 0]
    assert await directory.home("d") == 1


async def test_least_recently_used_room_is_evicted_beyond_the_cap() -> None:
    directory = InMemoryRoomDirectory(2, max_rooms=2)
    await directory.home("a")  # worker 0
    await directory.home("b")  # worker 1
    await directory.home("a")  # a is now the most recent
    assert await directory.home("c") == 1  # evicts b, so worker 1 has the fewest rooms
    assert directory.rooms_per_worker() == [1, 1]
    assert await directory.home("a") == 0


def test_in_memory_directory_meets_the_interface() -> None:
    directory: RoomDirectory = InMemoryRoomDirectory(1)
    assert directory is not None
    with pytest.raises(ValueError):
        InMemoryRoomDirectory(0)
