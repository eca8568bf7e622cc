"""Room homes and the node registry against a real Redis, in process: claims, take-overs of a
dead node's rooms (one winner however many ask), refreshes, clean release, id clashes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from mcu.app.cluster.homes import PlacementKind, RoomHomes
from mcu.app.cluster.registry import NodeClash, NodeRegistry, load_or_create_node_id
from mcu.contracts.nodes import NODES_KEY, NodeRecord, home_key, node_key
from mcu.infra.redisconn import connect_redis, parse_redis_url
from tests.support.redis import RedisServer, redis_available

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}")


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[Redis]:
    async with RedisServer(tmp_path / "redis") as server:
        client = connect_redis(parse_redis_url(server.url()))
        try:
            yield client
        finally:
            await client.aclose()


def _record(node: str, url: str | None = None) -> NodeRecord:
    now = time.time()
    return NodeRecord(
        node=node, url=url or f"http://{node}:8080", workers=1, started=now, updated=now
    )


async def _exists() -> bool:
    return True


async def _absent() -> bool:
    return False


async def test_the_first_node_claims_and_the_others_follow(redis: Redis) -> None:
    registry = NodeRegistry(redis)
    for node in ("a", "b"):
        await registry.register(_record(node))
    a, b = RoomHomes(redis, registry, "a"), RoomHomes(redis, registry, "b")

    assert (await a.place("ward", _absent)).kind is PlacementKind.ABSENT
    assert await redis.get(home_key("ward")) is None  # an unknown room claims nothing
    assert (await a.place("ward", _exists)).kind is PlacementKind.HERE
    there = await b.place("ward", _exists)
    assert there.kind is PlacementKind.THERE and there.node is not None
    assert (there.node.node, there.node.url) == ("a", "http://a:8080")
    assert a.owned == {"ward"} and b.owned == set()
    assert 0 < await redis.pttl(home_key("ward")) <= 30_000


async def test_a_dead_home_is_taken_over_by_exactly_one_node(redis: Redis) -> None:
    registry = NodeRegistry(redis)
    for node in ("dead", "b", "c", "d"):
        await registry.register(_record(node))
    await RoomHomes(redis, registry, "dead").place("ward", _exists)
    await redis.delete(node_key("dead"))  # its TTL ran out

    others = [RoomHomes(redis, registry, node) for node in ("b", "c", "d")]
    placements = await asyncio.gather(*(h.place("ward", _exists) for h in others))
    winners = [h.node for h, p in zip(others, placements, strict=True) if p.kind.name == "HERE"]
    assert len(winners) == 1, placements
    assert await redis.get(home_key("ward")) == winners[0]
    for placement in placements:
        assert placement.kind is PlacementKind.HERE or placement.node is not None
        if placement.node is not None:
            assert placement.node.node == winners[0]


async def test_refresh_keeps_restores_and_reports_lost_homes(redis: Redis) -> None:
    registry = NodeRegistry(redis)
    await registry.register(_record("a"))
    await registry.register(_record("b"))
    a = RoomHomes(redis, registry, "a")
    for room in ("kept", "vanished", "taken"):
        await a.place(room, _exists)
    await redis.pexpire(home_key("kept"), 1000)
    await redis.delete(home_key("vanished"))  # e.g. lost in a Redis failover
    await redis.set(home_key("taken"), "b")  # a took too long; b took the room over

    assert await a.refresh() == ["taken"]
    assert a.owned == {"kept", "vanished"}
    assert await redis.pttl(home_key("kept")) > 1000
    assert await redis.get(home_key("vanished")) == "a"
    assert await redis.get(home_key("taken")) == "b"

    await a.release()
    assert await redis.get(home_key("kept")) is None
    assert await redis.get(home_key("taken")) == "b"  # not a's to delete


async def test_registry_lists_live_nodes_and_refuses_a_copied_id(redis: Redis) -> None:
    registry = NodeRegistry(redis)
    await registry.register(_record("a"))
    await registry.register(_record("b"))
    # The same node restarting takes its own entry over; another URL with its id is refused.
    await registry.register(_record("a"))
    with pytest.raises(NodeClash):
        await registry.register(_record("a", "http://elsewhere:8080"))
    await redis.delete(node_key("b"))  # expired
    assert [r.node for r in await registry.live_nodes()] == ["a"]
    assert await redis.smembers(NODES_KEY) == {"a"}
    await redis.set(node_key("a"), "{not json")
    assert await registry.live_nodes() == []
    await registry.leave("a")
    assert await redis.exists(node_key("a"), NODES_KEY) == 0


def test_the_node_id_is_kept_in_the_data_directory(tmp_path: Path) -> None:
    first = load_or_create_node_id(tmp_path)
    assert first == load_or_create_node_id(tmp_path)
    assert (tmp_path / "node-id").read_text().strip() == first
    (tmp_path / "node-id").write_text("Not An Id!\n")
    with pytest.raises(ValueError, match="node id"):
        load_or_create_node_id(tmp_path)
