"""The relay tree between nodes, on real sockets and a real Redis: with a fan-out of one, the
home relays to one node, and a further node takes the stage from that one (which re-relays it
as the home does); when the middle node dies, the node below attaches to the home again and its
stage goes on.

Three nodes in one process, each a worker behind a front (the harness of test_node_relay.py),
sharing a real ``redis-server`` for the registry and the tree.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mcu.app.cluster.registry import NodeRegistry
from mcu.app.cluster.relaytree import RedisRelayTree, tree_key
from mcu.contracts.nodes import NodeRecord
from mcu.infra.redisconn import connect_redis, parse_redis_url
from mcu.signaling.rooms.store import RoomRecord
from tests.integration.test_node_relay import (
    DELTA,
    KEYFRAME,
    Sink,
    free_port,
    producer,
    start_node,
    stop_node,
    until,
)
from tests.support.redis import RedisServer, redis_available

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}")


async def test_a_node_takes_the_stage_from_another_and_reattaches_when_it_dies(
    tmp_path: Path,
) -> None:
    async with RedisServer(tmp_path / "redis") as server:
        redis = connect_redis(parse_redis_url(server.url()))
        registry = NodeRegistry(redis)
        urls: dict[str, str] = {}
        a = await start_node(tmp_path, "node-a", free_port(), urls)
        b = await start_node(tmp_path, "node-b", free_port(), urls)
        c = await start_node(tmp_path, "node-c", free_port(), urls)
        nodes = [a, b, c]
        for node in nodes:
            now = time.time()
            await registry.beat(
                NodeRecord(node=node.id, url=node.url, workers=1, started=now, updated=now)
            )
            node.edges.tree = RedisRelayTree(redis, registry, node.id, fanout=1)
            node.home.edges = node.edges
        try:
            record = RoomRecord(
                "lesson", "Lesson", "x", time.time(), None, None, None, kind="lecture"
            )
            await a.store.create(record)
            room = a.rooms.get_or_create(record.id, record.title, record.kind)
            camera = producer()
            room.stage.set([camera], [])

            # B is the home's one child; C, finding the home full, takes the stage from B.
            stage_b = (await b.edges.entry("lesson", a.id)).stage
            stage_c = (await c.edges.entry("lesson", a.id)).stage
            sink = Sink()
            stage_c.video[0].add_sink(sink)
            camera.on_rtp(1, 90, True, KEYFRAME, None, time.monotonic())
            await until(lambda: len(sink.packets) == 1)
            assert set(a.home.packets_sent()) == {"node-b/0"}  # one copy, to B only
            assert set(b.home.packets_sent()) == {"node-c/0"}  # B relays it on to C
            assert c.endpoint.sources.keys() == {b.endpoint.address}
            assert [p.track_id for p in stage_b.video] == ["cam"]
            tree = await redis.hgetall(tree_key("lesson"))
            assert set(tree) == {"node-b", "node-c"}

            # C's viewers are counted at the home, through B.
            c.edges.viewer_added("lesson", ("w1", "Dr Li"))
            await until(lambda: room.audience.remote_viewers.get("node-b/0") == 1)

            # B dies: C attaches to the home, keeps its stage (and the viewers on it).
            await stop_node(b)
            nodes.remove(b)
            del urls["node-b"]
            await redis.delete(f"mcu:node:{b.id}")
            watch = asyncio.create_task(c.edges.watch_upstreams(0.1))
            try:
                await until(lambda: c.edges._rooms["lesson"].home_node == a.id, timeout=10)
            finally:
                watch.cancel()
            # The same stage, now fed by streams from the home (viewers follow a stage's
            # change of producers, as when a speaker joins it).
            assert c.edges.source_of("lesson") is not None
            assert c.edges._rooms["lesson"].stage is stage_c
            after = Sink()
            stage_c.video[0].add_sink(after)
            camera.on_rtp(2, 180, True, DELTA + b"after", None, time.monotonic())
            await until(lambda: len(after.packets) == 1, timeout=10)
            assert after.packets[0].payload == DELTA + b"after"
            assert "node-c/0" in a.home.packets_sent()
            await until(lambda: room.audience.remote_viewers.get("node-c/0") == 1)
        finally:
            for node in nodes:
                await stop_node(node)
            await redis.aclose()
