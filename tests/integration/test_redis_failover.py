"""The cluster's Redis client against real servers: one server, and Sentinel promoting a
replica when the primary dies, which a client made from a ``redis+sentinel://`` URL follows
without being made again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mcu.infra.redisconn import connect_redis, parse_redis_url
from tests.support.redis import RedisSentinel, RedisServer, redis_available, sentinel_url

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}")

FAILOVER_LIMIT_S = 30.0


async def test_a_client_of_one_server(tmp_path: Path) -> None:
    async with RedisServer(tmp_path / "r") as server:
        client = connect_redis(parse_redis_url(server.url(db=3)))
        try:
            await client.set("mcu:test", "one")
            assert await client.get("mcu:test") == "one"
            assert await server.command("SELECT", "3") == "+OK"
        finally:
            await client.aclose()


async def test_the_client_follows_sentinel_to_the_promoted_replica(tmp_path: Path) -> None:
    async with RedisServer(tmp_path / "primary") as primary:
        async with RedisServer(tmp_path / "replica", replica_of=primary) as replica:
            async with RedisSentinel(tmp_path / "sentinel", primary, service="mcu") as sentinel:
                client = connect_redis(parse_redis_url(sentinel_url([sentinel], "mcu")))
                try:
                    await client.set("mcu:room:before", "kept")
                    await client.wait(1, 5000)  # the replica has it before the primary dies
                    primary.kill()
                    deadline = time.monotonic() + FAILOVER_LIMIT_S
                    while True:
                        try:
                            await client.set("mcu:room:after", "written")
                            break
                        except (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError):
                            if time.monotonic() > deadline:
                                raise
                            await asyncio.sleep(0.2)
                    assert await client.get("mcu:room:before") == "kept"
                    assert await client.get("mcu:room:after") == "written"
                    # What answers now is the former replica, promoted.
                    info = await client.info("replication")
                    assert info["role"] == "master"
                    assert (await client.info("server"))["tcp_port"] == replica.port
                finally:
                    await client.aclose()
