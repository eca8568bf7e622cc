"""Room homes: first sight takes the worker with the fewest rooms; a home is never dropped."""

from __future__ import annotations

import pytest

from mcu.app.cluster.directory import InMemoryRoomDirectory, RoomDirectory


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


async def test_lookup_assigns_nothing_and_homes_are_never_dropped() -> None:
    directory = InMemoryRoomDirectory(2)
    assert await directory.home("live") == 0
    # A flood of lookups of unknown rooms leaves no trace and moves no live room.
    for i in range(100_500):
        assert await directory.lookup(f"junk{i}") is None
    assert directory.rooms_per_worker() == [1, 0]
    assert await directory.lookup("live") == 0
    assert await directory.home("live") == 0


def test_in_memory_directory_meets_the_interface() -> None:
    directory: RoomDirectory = InMemoryRoomDirectory(1)
    assert directory is not None
    with pytest.raises(ValueError):
        InMemoryRoomDirectory(0)
