"""A lecture's home node SIGKILLed (every process) while it broadcasts and records: the lecturer
publishes again through the other node, which becomes the home, the audience's players ask
again and decode, and the dead node, restarted on its data directory, finishes the recording
it was writing. Real nodes, a real Redis, all on 127.0.0.1; the times printed (``measured:``,
with ``pytest -s``) are those docs/cluster.md quotes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from mcu.contracts.nodes import home_key
from mcu.infra.redisconn import connect_redis, parse_redis_url
from tests.support.cluster import cluster_nodes
from tests.support.failover import drop_viewer, publish_again, until_unlisted, watch_again
from tests.support.redis import RedisServer, redis_available
from tests.support.room_client import ColourTrack, ToneTrack
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer, WhipPublisher, mean_colour, near

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}")

LECTURERS = "lecturers-pass"
AUDIENCE = "audience-pass"
BLUE = (30, 60, 200)


def _node_id(server: ServerProcess) -> str:
    return (server.data_dir / "node-id").read_text().strip()


async def _home(redis: RedisServer, room: str) -> str | None:
    client = connect_redis(parse_redis_url(redis.url()))
    try:
        value = await client.get(home_key(room))
        return None if value is None else str(value)
    finally:
        await client.aclose()


async def _recording(node: ServerProcess, item_id: str) -> dict[str, Any]:
    """The library item once it is no longer being recorded (bounded)."""
    for _ in range(100):
        item: dict[str, Any] = await node.get_json(f"/api/library/{item_id}")
        if item["status"] != "recording":
            return item
        await asyncio.sleep(0.2)
    raise AssertionError(f"recording {item_id} still unfinished: {item}")


def _tracks() -> list[Any]:
    return [ToneTrack(), ColourTrack(BLUE, width=160, height=120, fps=15)]


async def test_the_home_dies_the_lecture_moves_and_its_recording_is_recovered(
    tmp_path: Path,
) -> None:
    async with RedisServer(tmp_path / "redis") as redis, cluster_nodes(tmp_path, redis) as nodes:
        a, b = nodes
        await b.create_room(
            "stroke-4", LECTURERS, kind="lecture", viewer_password=AUDIENCE, title="Stroke care"
        )
        lecturer = WhipPublisher(a.base_url, "stroke-4", LECTURERS)
        viewer: WhepViewer | None = None
        try:
            status, body = await lecturer.publish(_tracks(), name="Dr Wang")
            assert status == 201, body
            assert await _home(redis, "stroke-4") == _node_id(a)
            async with a.http.post(
                a.base_url + "/api/rooms/stroke-4/recording", json={"active": True}
            ) as r:
                assert r.status == 200, await r.text()
                recording_id = (await r.json())["recording_id"]
            # A player that knows node B is served there, B taking the stage from A (the home).
            viewer = await watch_again(b, "stroke-4", AUDIENCE, frames=40, name="County 1")
            assert viewer.location is not None and viewer.location.startswith(b.base_url)

            killed = time.monotonic()
            await a.kill_every_process()
            # The lecturer's tool notices and publishes again, through the node it can reach.
            unlisted_task = asyncio.create_task(until_unlisted(b, _node_id(a), killed))
            lecturer_dead, lecturer = (
                lecturer,
                await publish_again(b, "stroke-4", LECTURERS, _tracks(), "Dr Wang"),
            )
            await lecturer_dead.pc.close()
            published = time.monotonic() - killed
            unlisted = await unlisted_task
            assert await _home(redis, "stroke-4") == _node_id(b)
            # The player's picture froze with A: it POSTs again to B, now the home.
            await drop_viewer(viewer)
            viewer = await watch_again(b, "stroke-4", AUDIENCE, name="County 1")
            flowing = time.monotonic() - killed
            assert viewer.location is not None and viewer.location.startswith(b.base_url)
            section = viewer.section("video", 0)
            assert section is not None and near(mean_colour(section.last_frame), BLUE)
            print(f"measured: home SIGKILLed -> unlisted {unlisted:.1f} s")
            print(f"measured: home SIGKILLed -> lecturer's WHIP taken by B {published:.1f} s")
            print(f"measured: home SIGKILLed -> a re-POSTed player decodes {flowing:.1f} s")
        finally:
            if viewer is not None:
                await drop_viewer(viewer)
            await lecturer.pc.close()

        # A restarted on its own data directory: the recording it was writing is finished as
        # the crash-safety rules promise, and A is a node again, the lecture staying on B.
        await a.start()
        item = await _recording(a, recording_id)
        assert item["status"] == "complete", item
        tracks = [f for f in item["files"] if f["role"] == "track"]
        assert {f["media_type"] for f in tracks} == {"audio/mp4", "video/mp4"}, item
        assert all(f["size"] > 0 for f in tracks), item
        listed = await b.get_json("/api/cluster/nodes")
        assert {n["node"] for n in listed["nodes"]} == {_node_id(a), _node_id(b)}
        assert await _home(redis, "stroke-4") == _node_id(b)
