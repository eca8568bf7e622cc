"""Durable room definitions in the cluster's Redis, shared by every node.

Each room is a hash ``mcu:room:{id}`` (one field per column of the SQLite store; an optional
field that is None is absent), and the set ``mcu:rooms`` indexes their ids. A revoked access
token is a string ``mcu:revoked:{jti}`` holding its expiry, with a Redis TTL that ends it with
the token. docs/cluster.md lists the keys.

Every step that must not interleave with another node's is one Lua script, which Redis runs
whole before any other command: creating a room whose id exists fails with
:class:`~mcu.signaling.rooms.store.RoomExists` for all but one of two admins racing on two
nodes; an update writes only the fields it changes (so a concurrent update of another field
stays) and never brings back a room deleted meanwhile; and an update or a deletion is announced
on :data:`~mcu.contracts.cluster.ROOM_CHANGES_CHANNEL` in the same step, so a node that hears of
it finds the store already changed.
"""

from __future__ import annotations

import builtins
import contextlib
import math
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from mcu.contracts.cluster import (
    ROOM_CHANGES_CHANNEL,
    ROOM_ID_PATTERN,
    RoomChange,
    RoomField,
)
from mcu.signaling.rooms.store import (
    UNSET,
    RoomExists,
    RoomKind,
    RoomRecord,
    StoreError,
    StoreUnavailable,
    Unset,
)

__all__ = ["REVOKED_PREFIX", "ROOM_INDEX", "ROOM_PREFIX", "RedisRoomStore"]

ROOM_PREFIX = "mcu:room:"
"``mcu:room:{id}``: one room's definition (a hash)."
ROOM_INDEX = "mcu:rooms"
"The ids of every room (a set), for the listing."
REVOKED_PREFIX = "mcu:revoked:"
"``mcu:revoked:{jti}``: a revoked access token's expiry (a string with a TTL)."

# KEYS: the room, the index. ARGV: the id, then field/value pairs.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""
# KEYS: the room. ARGV: the channel, the announcement, n, n field/value pairs to set, then the
# fields to clear. A room that is gone stays gone (nil).
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local n = tonumber(ARGV[3])
if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + 2 * n)) end
if #ARGV > 3 + 2 * n then redis.call('HDEL', KEYS[1], unpack(ARGV, 4 + 2 * n)) end
if #ARGV > 3 then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return redis.call('HGETALL', KEYS[1])
"""
# KEYS: the room, the index. ARGV: the id, the channel, the announcement.
_DELETE = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""
# KEYS: the entry. ARGV: the token's expiry, milliseconds until then. A later expiry already
# listed is kept: a shorter revocation must not lift a ban.
_REVOKE = """
local listed = redis.call('GET', KEYS[1])
if listed and tonumber(listed) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_OPTIONAL = ("opens_at", "closes_at", "max_participants", "viewer_password_hash")


def _fields(record: RoomRecord) -> dict[str, str]:
    """The hash of ``record``: floats in ``repr`` (which reads back exactly), None left out."""
    values: dict[str, object] = {
        "id": record.id,
        "title": record.title,
        "password_hash": record.password_hash,
        "created_at": record.created_at,
        "opens_at": record.opens_at,
        "closes_at": record.closes_at,
        "max_participants": record.max_participants,
        "auto_record": record.auto_record,
        "kind": record.kind,
        "viewer_password_hash": record.viewer_password_hash,
        "e2ee": record.e2ee,
    }
    return {name: _text(value) for name, value in values.items() if value is not None}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _optional_float(fields: Mapping[str, str], name: str) -> float | None:
    return float(fields[name]) if name in fields else None


def _record(fields: Mapping[str, str]) -> RoomRecord:
    """The record a room's hash holds; raises ``StoreError`` when it holds none."""
    try:
        capacity = fields.get("max_participants")
        kind: RoomKind = "lecture" if fields.get("kind") == "lecture" else "meeting"
        return RoomRecord(
            id=fields["id"],
            title=fields["title"],
            password_hash=fields["password_hash"],
            created_at=float(fields["created_at"]),
            opens_at=_optional_float(fields, "opens_at"),
            closes_at=_optional_float(fields, "closes_at"),
            max_participants=None if capacity is None else int(capacity),
            auto_record=fields.get("auto_record") == "1",
            kind=kind,
            viewer_password_hash=fields.get("viewer_password_hash"),
            e2ee=fields.get("e2ee") == "1",
        )
    except (KeyError, ValueError) as exc:
        raise StoreError(f"a room in Redis is malformed ({exc!r})") from None


def _pairs(flat: list[str]) -> dict[str, str]:
    """HGETALL's reply as a script returns it (a flat list) as a dict."""
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def _is_room_id(room_id: str) -> bool:
    return re.fullmatch(ROOM_ID_PATTERN, room_id) is not None


@contextlib.asynccontextmanager
async def _answering() -> AsyncIterator[None]:
    # Callers know StoreError (as from SQLite); the Redis error says why, in the log.
    try:
        yield
    except RedisError as exc:
        raise StoreUnavailable(f"the room store in Redis did not answer: {exc!r}") from exc


class RedisRoomStore:
    """Room records and the deny list in Redis (cluster mode); a
    :class:`~mcu.signaling.rooms.records.RoomRecords`.

    ``redis`` must decode replies (``decode_responses=True``, as
    :func:`mcu.infra.redisconn.connect_redis` makes it); its owner closes it.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._create = redis.register_script(_CREATE)
        self._update = redis.register_script(_UPDATE)
        self._delete = redis.register_script(_DELETE)
        self._revoke = redis.register_script(_REVOKE)

    async def create(self, record: RoomRecord) -> RoomRecord:
        """Store a new room; raises ``RoomExists`` if its id is taken (decided by Redis, so
        exactly one of several nodes creating the same id at once succeeds)."""
        pairs = [part for item in _fields(record).items() for part in item]
        async with _answering():
            created = await self._create(
                keys=[ROOM_PREFIX + record.id, ROOM_INDEX], args=[record.id, *pairs]
            )
        if not created:
            raise RoomExists(record.id)
        return record

    async def get(self, room_id: str) -> RoomRecord | None:
        """The room with ``room_id``, or None."""
        async with _answering():
            # The client decodes replies (decode_responses), so every key and value is a str.
            fields = cast(dict[str, str], await self._redis.hgetall(ROOM_PREFIX + room_id))
        return _record(fields) if fields else None

    async def list(self) -> builtins.list[RoomRecord]:
        """Every room, ordered by id."""
        async with _answering():
            ids = sorted(cast(set[str], await self._redis.smembers(ROOM_INDEX)))
            pipeline = self._redis.pipeline(transaction=False)
            for room_id in ids:
                pipeline.hgetall(ROOM_PREFIX + room_id)
            hashes: list[dict[str, str]] = await pipeline.execute()
        # A room deleted between the two reads is simply not listed.
        return [_record(fields) for fields in hashes if fields]

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
        """Change only the fields given (None clears an optional one); the updated room, or
        None if there is no such room. The change is announced to every node."""
        given: dict[RoomField, Any] = {
            "title": title,
            "password_hash": password_hash,
            "opens_at": opens_at,
            "closes_at": closes_at,
            "max_participants": max_participants,
            "auto_record": auto_record,
            "kind": kind,
            "viewer_password_hash": viewer_password_hash,
            "e2ee": e2ee,
        }
        if not _is_room_id(room_id):
            return None  # the admin API creates no such id
        changes = {name: value for name, value in given.items() if value is not UNSET}
        to_set = {name: _text(value) for name, value in changes.items() if value is not None}
        to_clear = [name for name, value in changes.items() if value is None]
        for name in to_clear:
            if name not in _OPTIONAL:
                raise ValueError(f"{name} cannot be cleared")
        announcement = RoomChange(room=room_id, change="updated", fields=tuple(changes))
        args: builtins.list[str | int] = [
            ROOM_CHANGES_CHANNEL,
            announcement.model_dump_json(),
            len(to_set),
            *(part for item in to_set.items() for part in item),
            *to_clear,
        ]
        async with _answering():
            flat = await self._update(keys=[ROOM_PREFIX + room_id], args=args)
        return None if flat is None else _record(_pairs(flat))

    async def delete(self, room_id: str) -> bool:
        """Remove the room, announcing it to every node; whether it existed."""
        if not _is_room_id(room_id):
            return False
        announcement = RoomChange(room=room_id, change="deleted").model_dump_json()
        async with _answering():
            deleted = await self._delete(
                keys=[ROOM_PREFIX + room_id, ROOM_INDEX],
                args=[room_id, ROOM_CHANGES_CHANNEL, announcement],
            )
        return bool(deleted)

    async def revoke_token(self, jti: str, expires_at: float, now: float) -> None:
        """Put the access token ``jti`` on the deny list until ``expires_at``: Redis drops the
        entry then (its TTL counts from ``now``)."""
        ttl_ms = math.ceil((expires_at - now) * 1000)
        if ttl_ms <= 0:
            return  # the token can no longer be used: nothing to deny
        async with _answering():
            await self._revoke(keys=[REVOKED_PREFIX + jti], args=[repr(expires_at), ttl_ms])

    async def token_revoked(self, jti: str, now: float) -> bool:
        """Whether the access token ``jti`` is on the deny list at ``now``."""
        async with _answering():
            listed = await self._redis.get(REVOKED_PREFIX + jti)
        try:
            return listed is not None and float(listed) > now
        except ValueError:
            return True  # an entry we cannot read still denies: refusing is the safe side
