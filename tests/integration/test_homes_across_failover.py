"""Room homes across a slow Redis failover, in process against real Redis and Sentinels: while
Sentinel takes longer than a node's TTL to promote the replica, every registry entry expires,
and the first node back must not take the live rooms of the others for dead."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from mcu.app.cluster.homes import PlacementKind, RoomHomes
from mcu.app.cluster.node import ClusterNode, NodeUnavailable
from mcu.app.cluster.registry import NodeRegistry
from mcu.contracts.nodes import NODE_TTL_S, home_key
from mcu.crypto.clustercalls import NodeCredentials
from mcu.infra.redisconn import connect_redis, parse_redis_url
from tests.support.redis import TwoSites, redis_available

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}")

SECRET = b"a cluster secret made for this test only"


async def _health() -> Mapping[str, Any]:
    return {}


async def _exists() -> bool:
    return True


@asynccontextmanager
async def _node(url: str, node_id: str) -> AsyncIterator[ClusterNode]:
    redis = connect_redis(parse_redis_url(url))
    registry = NodeRegistry(redis)
    node = ClusterNode(
        node_id=node_id,
        url=f"http://{node_id}.test:8080",
        workers=1,
        registry=registry,
        homes=RoomHomes(redis, registry, node_id),
        credentials=NodeCredentials(SECRET, node_id),
    )
    await node.start(_health)
    try:
        yield node
    finally:
        await node.leave()
        await node.close()


async def test_a_failover_longer_than_the_ttl_moves_no_live_room(tmp_path: Path) -> None:
    # Sentinel waits longer than a node's TTL: every entry has expired when the replica serves.
    down_after_ms = int(NODE_TTL_S * 1000) + 1000
    async with (
        TwoSites(tmp_path, down_after_ms=down_after_ms) as sites,
        _node(sites.url(), "a") as a,
        _node(sites.url(), "b") as b,
    ):
        assert (await a.place("ward", _exists, forwarded=False)).kind is PlacementKind.HERE
        sites.kill_primary()
        killed = time.monotonic()
        await sites.wait_promoted(timeout=30)
        promoted = time.monotonic() - killed
        assert promoted > NODE_TTL_S, promoted  # the entries written before the kill are gone

        # Until a has beaten again, b is asked for the room over and over: it must never take
        # it (it may say "try again", or send it to a).
        deadline = time.monotonic() + NODE_TTL_S + 10
        back = False
        while not back:
            try:
                placement = await b.place("ward", _exists, forwarded=False)
            except NodeUnavailable:
                placement = None
            assert placement is None or placement.kind is not PlacementKind.HERE, placement
            back = placement is not None and placement.node is not None
            assert time.monotonic() < deadline, "b never saw a again"
            await asyncio.sleep(0.05)
        assert placement is not None and placement.node is not None
        assert placement.node.node == "a"
        assert await b.homes.redis.get(home_key("ward")) == "a"
        assert a.homes.owned == {"ward"} and b.homes.owned == set()
        print(
            f"measured: primary SIGKILLed -> replica promoted {promoted:.1f} s (down-after "
            f"{down_after_ms} ms); -> a listed again {time.monotonic() - killed:.1f} s"
        )
