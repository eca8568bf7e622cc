"""What the rest of the server needs of the durable room definitions, wherever they are kept.

A single node keeps them in SQLite (:class:`mcu.signaling.rooms.store.RoomStore`); the nodes of
a cluster share them in Redis (:class:`mcu.signaling.rooms.redisstore.RedisRoomStore`). Both
hold the rooms (settings and password hashes) and the deny list of revoked access tokens, and
both satisfy :class:`RoomRecords`, the one type the endpoints and the entrance are given.
"""

from __future__ import annotations

import builtins
from typing import Protocol

from mcu.signaling.rooms.store import UNSET, RoomKind, RoomRecord, Unset

__all__ = ["RoomRecords"]


class RoomRecords(Protocol):
    """Rooms as administrators defined them, and the revoked access tokens."""

    async def create(self, record: RoomRecord) -> RoomRecord:
        """Store a new room; raises :class:`~mcu.signaling.rooms.store.RoomExists` if its id is
        taken, however many requests try at once."""
        ...

    async def get(self, room_id: str) -> RoomRecord | None:
        """The room with ``room_id``, or None."""
        ...

    async def list(self) -> builtins.list[RoomRecord]:
        """Every room, ordered by id."""
        ...

    async def update(
        self,
        room_id: str,
        *,
        title: str | Unset = UNSET,
        password_hash: str | Unset = UNSET,
        opens_at: float | Unset | None = UNSET,
        closes_at: float | Unset | None = UNSET,
        max_participants: int | Unset | None = UNSET,
        auto_record: bool | Unset = UNSET,
        kind: RoomKind | Unset = UNSET,
        viewer_password_hash: str | Unset | None = UNSET,
        e2ee: bool | Unset = UNSET,
    ) -> RoomRecord | None:
        """Change only the fields given (None clears an optional one), leaving a concurrent
        change to another field in place; the updated room, or None if there is no such room."""
        ...

    async def delete(self, room_id: str) -> bool:
        """Remove the room; whether it existed."""
        ...

    async def revoke_token(self, jti: str, expires_at: float, now: float) -> None:
        """Put the access token ``jti`` on the deny list until ``expires_at`` (a later expiry
        already listed is kept)."""
        ...

    async def token_revoked(self, jti: str, now: float) -> bool:
        """Whether the access token ``jti`` is on the deny list at ``now``."""
        ...
