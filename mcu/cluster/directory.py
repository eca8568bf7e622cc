"""Which worker is home to which room.

A room lives on one worker (its home): every participant's WebSocket, WHIP publisher and
room-scoped HTTP request goes there. :class:`RoomDirectory` is the seam for running on several
hosts: a Redis-backed directory (``HSETNX rooms <room> <host:worker>`` to claim a home, a hash
of per-worker room counts for the least-loaded choice, a TTL refreshed while the room is live)
implements the same two methods, and fronts on every host then agree on each room's home.
Only the in-memory directory, for one host, is built.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

__all__ = ["InMemoryRoomDirectory", "RoomDirectory"]


class RoomDirectory(Protocol):
    """Room id -> index of its home worker."""

    async def home(self, room: str) -> int:
        """The home worker of ``room``; the first lookup of a room assigns one."""
        ...

    async def forget(self, room: str) -> None:
        """``room`` has no home any more (the next lookup assigns one afresh)."""
        ...


class InMemoryRoomDirectory:
    """The directory for one host: first sight of a room assigns the worker with the fewest
    rooms (lowest index on a tie).

    Lookups of unknown room ids (typos, probes) also assign, so memory is bounded by
    ``max_rooms``: beyond it the room looked up least recently is forgotten, and would be
    assigned afresh (possibly elsewhere) if it came back.
    """

    def __init__(self, workers: int, max_rooms: int = 100_000) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if max_rooms < 1:
            raise ValueError("max_rooms must be at least 1")
        self.workers = workers
        self.max_rooms = max_rooms
        self._homes: OrderedDict[str, int] = OrderedDict()
        self._counts = [0] * workers

    async def home(self, room: str) -> int:
        """The home worker of ``room``, assigned on first sight."""
        worker = self._homes.get(room)
        if worker is not None:
            self._homes.move_to_end(room)
            return worker
        while len(self._homes) >= self.max_rooms:
            _, evicted = self._homes.popitem(last=False)
            self._counts[evicted] -= 1
        worker = min(range(self.workers), key=lambda i: (self._counts[i], i))
        self._homes[room] = worker
        self._counts[worker] += 1
        return worker

    async def forget(self, room: str) -> None:
        """Drop ``room``'s assignment."""
        worker = self._homes.pop(room, None)
        if worker is not None:
            self._counts[worker] -= 1

    def rooms_per_worker(self) -> list[int]:
        """How many rooms each worker is home to."""
        return list(self._counts)
