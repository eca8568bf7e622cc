"""Applying changes made through any node's admin API to the rooms live in this process.

On one node the admin API ends a live room it deletes itself (the front routes ``/api/rooms/{id}``
to the room's home worker). In a cluster the room may be live on another node, so the shared
store (:mod:`mcu.signaling.rooms.redisstore`) announces each change on
:data:`~mcu.contracts.cluster.ROOM_CHANGES_CHANNEL`, and every worker of every node runs a
:class:`RoomChangeFeed` that applies it: a deleted room that is live here is ended with
``room_ended`` (reason ``deleted``), exactly as the deleting node would; a new title is given to
the live room (newcomers and new recordings get it). Other updates need nothing applied: every
admission (password, capacity, open hours) and every session's start (``auto_record``,
``kind``) reads the shared record, as on one node.

Pub/sub delivers only to those listening. The feed resubscribes after a lost connection or a
Sentinel failover (the client asks the Sentinels for the primary again) and then checks its live
rooms against the store, so a deletion announced while it was away still ends its room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mcu.contracts.cluster import ROOM_CHANGES_CHANNEL, RoomChange
from mcu.signaling.rooms.store import RoomRecord, StoreError

__all__ = ["LiveRoomsHere", "RoomChangeFeed"]

logger = logging.getLogger(__name__)

PING_SECONDS = 5.0
"""A quiet subscription is pinged this often; with no answer for two periods the connection is
taken for dead (a partition sends no reset) and made again."""
RETRY_MIN_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0
"Waits between attempts to subscribe again, doubling from the first to the last."
MAX_MESSAGE_CHARS = 4096
"Longer messages on the channel are none of ours: dropped unread."


class LiveRoomsHere(Protocol):
    """The rooms live in this process, as the feed needs them."""

    @property
    def rooms(self) -> Mapping[str, Any]:
        """Live rooms by id."""
        ...

    async def end_room(self, room_id: str, reason: str) -> None:
        """Send everyone ``room_ended`` with ``reason`` and disconnect them (a no-op for a room
        that is not live)."""
        ...

    def retitle(self, room_id: str, title: str) -> None:
        """A live room's new title (a no-op for a room that is not live)."""
        ...


class _Lookup(Protocol):
    async def get(self, room_id: str) -> RoomRecord | None: ...


class RoomChangeFeed:
    """Listens to the room changes every node announces and applies them to ``rooms``.

    ``start()`` runs it as a task; ``await stop()`` ends it. ``subscriptions`` counts the
    (re)subscriptions made, for the log and for tests.
    """

    def __init__(self, redis: Redis, rooms: LiveRoomsHere, store: _Lookup) -> None:
        self._redis = redis
        self._rooms = rooms
        self._store = store
        self._task: asyncio.Task[None] | None = None
        self.subscriptions = 0
        "Times the feed has subscribed (1 + reconnections)."
        self.applied = 0
        "Changes received and applied (or found to need nothing)."

    def start(self) -> None:
        """Start listening (in a task of the running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="room-change-feed")

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def apply(self, data: str) -> None:
        """Apply one message received on the channel; a malformed one is logged and dropped."""
        if len(data) > MAX_MESSAGE_CHARS:
            logger.warning("room change of %d characters dropped", len(data))
            return
        try:
            change = RoomChange.model_validate_json(data)
        except ValidationError as exc:
            logger.warning("malformed room change dropped: %s", exc.errors()[0].get("msg"))
            return
        if change.change == "deleted" and change.room in self._rooms.rooms:
            logger.info("room %s was deleted on another node: ending its session", change.room)
            await self._rooms.end_room(change.room, "deleted")
        elif "title" in change.fields and change.room in self._rooms.rooms:
            record = await self._store.get(change.room)
            if record is not None:
                self._rooms.retitle(change.room, record.title)
        self.applied += 1

    async def _run(self) -> None:
        delay = RETRY_MIN_SECONDS
        while True:
            before = self.subscriptions
            try:
                await self._listen()
            except (RedisError, OSError, StoreError) as exc:
                logger.warning("room changes: subscription lost (%r)", exc)
            except Exception:  # never let one bad change end the feed for good
                logger.exception("room changes: failed; subscribing again")
            # Back off while Redis stays away; a subscription that worked starts over.
            delay = RETRY_MIN_SECONDS if self.subscriptions > before else delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _listen(self) -> None:
        async with self._redis.pubsub() as pubsub:
            await pubsub.subscribe(ROOM_CHANGES_CHANNEL)
            self.subscriptions += 1
            if self.subscriptions > 1:
                logger.info("room changes: subscribed again")
            # Anything announced while we were not subscribed is lost: catch up from the store.
            await self._end_deleted_rooms()
            heard = time.monotonic()
            pinged = heard
            while True:
                message = await pubsub.get_message(timeout=PING_SECONDS)
                now = time.monotonic()
                if message is not None:
                    heard = now
                    if message.get("type") == "message" and isinstance(message.get("data"), str):
                        await self.apply(message["data"])
                if now - heard > 2 * PING_SECONDS:
                    raise RedisError("no answer to pings on the subscription")
                if now - pinged >= PING_SECONDS:
                    await pubsub.ping()
                    pinged = now

    async def _end_deleted_rooms(self) -> None:
        for room_id in list(self._rooms.rooms):
            if await self._store.get(room_id) is None:
                logger.info("room %s was deleted meanwhile: ending its session", room_id)
                await self._rooms.end_room(room_id, "deleted")
