"""Both room stores behind one door, so a test can run against each: SQLite (a single node)
and Redis (a cluster's nodes), the latter on a real ``redis-server`` the test starts.

    @pytest.fixture(params=STORE_KINDS)
    async def store(request, tmp_path):
        async with room_store(request.param, tmp_path) as store:
            yield store
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcu.infra.redisconn import connect_redis, parse_redis_url
from mcu.signaling.rooms.records import RoomRecords
from mcu.signaling.rooms.redisstore import RedisRoomStore
from mcu.signaling.rooms.store import DB_FILENAME, RoomStore
from tests.support.redis import RedisServer, redis_available

STORE_KINDS = (
    "sqlite",
    pytest.param(
        "redis",
        marks=pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}"),
    ),
)
"Parameters for a fixture that runs a test against each store."


@contextlib.asynccontextmanager
async def room_store(kind: str, directory: Path) -> AsyncIterator[RoomRecords]:
    """A started, empty store of ``kind`` (``sqlite`` or ``redis``) kept in ``directory``."""
    if kind == "sqlite":
        store = await RoomStore.open(directory / DB_FILENAME)
        try:
            yield store
        finally:
            await store.close()
        return
    async with RedisServer(directory / "redis") as server:
        client = connect_redis(parse_redis_url(server.url()))
        try:
            yield RedisRoomStore(client)
        finally:
            await client.aclose()
