"""Freed memory goes back to the system: a real ``malloc_trim`` on a fragmented heap, and when the
server asks for one (soon after a room empties, deferred past the minimum gap, periodically)."""

from __future__ import annotations

import asyncio

import pytest

from mcu.infra import heaptrim
from mcu.infra.heaptrim import HeapTrimmer, resident_bytes


def test_a_fragmented_heap_is_given_back() -> None:
    trimmer = HeapTrimmer()
    if not trimmer.available:
        pytest.fail("glibc's malloc_trim is missing: the server runs on Debian's glibc")
    # 100 KiB blocks come from malloc's heap (below its mmap threshold); every other one freed
    # leaves holes that glibc keeps, and returns only when trimmed.
    blocks = [bytearray(100 * 1024) for _ in range(2000)]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])  # touched: resident
    held = blocks[1::2]
    del blocks
    before = resident_bytes()
    returned = trimmer.trim()
    assert returned > 50 * 2**20, (before, returned)
    assert trimmer.trims == 1 and trimmer.trim() == 0  # within the minimum gap: not again
    del held


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_released_trims_soon_and_defers_past_the_minimum_gap() -> None:
    calls: list[int] = []
    done = asyncio.Event()

    def trim(pad: int) -> int:
        calls.append(pad)
        done.set()
        return 1

    clock = Clock()
    collections: list[int] = []
    trimmer = HeapTrimmer(
        interval=3600,
        after_release=0.01,
        min_gap=0.3,
        trim=trim,
        collect=lambda: collections.append(len(calls)),
        clock=clock,
    )
    trimmer.start()
    try:
        trimmer.released()
        trimmer.released()  # rooms ending together share one trim
        await asyncio.wait_for(done.wait(), 5)
        assert calls == [0]
        done.clear()
        clock.now += 0.1  # another room ends moments later: not dropped, deferred past the gap
        trimmer.released()
        assert trimmer._soon is not None
        assert trimmer._soon.when() - asyncio.get_running_loop().time() > 0.15
        clock.now += 0.5
        await asyncio.wait_for(done.wait(), 5)
        assert calls == [0, 0]
        assert collections == [0, 1]  # a full collection before each: the room's cycles too
        clock.now += 1.0
        trimmer.released()  # due in 0.01 s, but a periodic trim runs first ...
        trimmer.trim()
        assert calls == [0, 0, 0] and collections == [0, 1]
        done.clear()
        await asyncio.sleep(0.05)  # the room's turn came within the gap: not dropped, deferred
        assert calls == [0, 0, 0] and trimmer._soon is not None
        clock.now += 0.5  # ... so the room's collection and trim follow past the gap
        await asyncio.wait_for(done.wait(), 5)
        assert calls == [0, 0, 0, 0] and collections == [0, 1, 3]
    finally:
        await trimmer.stop()
    assert heaptrim._active is None


async def test_periodic_trims_while_started() -> None:
    calls: list[int] = []
    two = asyncio.Event()
    clock = Clock()

    def trim(pad: int) -> int:
        calls.append(pad)
        clock.now += 10  # past the gap for the next period
        if len(calls) == 2:
            two.set()
        return 0

    collections: list[int] = []
    trimmer = HeapTrimmer(
        interval=0.01, min_gap=5.0, trim=trim, collect=lambda: collections.append(1), clock=clock
    )
    trimmer.start()
    try:
        await asyncio.wait_for(two.wait(), 5)
    finally:
        await trimmer.stop()
    assert len(calls) >= 2 and collections == []  # periodic trims leave the collector be
