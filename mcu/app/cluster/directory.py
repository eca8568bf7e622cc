"""Which worker is home to which room.

A room lives on one worker (its home): every participant's WebSocket, WHIP publisher and
room-scoped HTTP request goes there. :class:`RoomDirectory` is the seam for running on several
hosts: a Redis-backed directory (``HSETNX rooms <room> <host:worker>`` to claim a home, a hash
of per-worker room counts for the least-loaded choice, a TTL refreshed while the room is live)
implements the same two methods, and fronts on every host then agree on each room's home.
Only the in-memory directory, for one host, is built.

A home, once assigned, is never dropped while the front runs: forgetting a live room's home
would send the next participant to an empty copy of the room on another worker. Memory stays
bounded because only rooms that exist get a home (the front checks before it assigns one);
lookups of unknown ids, however many, leave no trace.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["InMemoryRoomDirectory", "RoomDirectory"]


class RoomDirectory(Protocol):
    """Room id -> index of its home worker."""

    async def lookup(self, room: str) -> int | None:
        """The home worker of ``room`` if it has one; assigns nothing."""
        ...

    async def home(self, room: str) -> int:
        """The home worker of ``room``; the first call for a room assigns one. Call it only for
        rooms that exist."""
        ...

    async def forget(self, room: str) -> None:
        """``room`` has no home any more (the next lookup assigns one afresh)."""
        ...


class InMemoryRoomDirectory:
    """The directory for one host: the first ``home`` of a room assigns the worker with the
    fewest rooms (lowest index on a tie), for as long as the front runs."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self._homes: dict[str, int] = {}
        self._counts = [0] * workers

    async def lookup(self, room: str) -> int | None:
        """The home worker of ``room``, or None before it has one."""
        return self._homes.get(room)

    async def home(self, room: str) -> int:
        """The home worker of ``room``, assigned on the first call."""
        worker = self._homes.get(room)
        if worker is not None:
            return worker
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
