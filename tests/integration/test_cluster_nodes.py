"""Nodes of a cluster (real server processes sharing a real Redis): the registry, rooms homed
on one node and reached through another, WHEP served by another node, a dead home taken over,
and calls between nodes that do not carry a valid credential refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mcu.contracts.cluster import NODE_CREDENTIAL_HEADER
from mcu.contracts.nodes import NODE_TTL_S, home_key
from mcu.crypto.clustercalls import NodeCredentials
from mcu.infra.redisconn import connect_redis, parse_redis_url
from tests.support.cluster import cluster_nodes
from tests.support.redis import RedisServer, redis_available
from tests.support.room_client import ColourTrack, RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer, WhipPublisher, mean_colour, near

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}")

PASSWORD = "consult-pass"
RED = (200, 30, 30)
GREEN = (30, 200, 60)


async def _nodes(server: ServerProcess) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = (await server.get_json("/api/cluster/nodes"))["nodes"]
    return nodes


def _node_id(server: ServerProcess) -> str:
    return (server.data_dir / "node-id").read_text().strip()


async def _home(redis: RedisServer, room: str) -> str | None:
    client = connect_redis(parse_redis_url(redis.url()))
    try:
        home = await client.get(home_key(room))
        return None if home is None else str(home)
    finally:
        await client.aclose()


def _hears(me: RoomClient, peer: str) -> Callable[[], bool]:
    return lambda: me.frames_from(peer, "video") >= 5 and me.frames_from(peer, "audio") >= 10


def _joined(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == "participant_joined" and m["participant"]["name"] == name


async def _participants(server: ServerProcess) -> int:
    count: int = (await server.get_json("/healthz"))["participants"]
    return count


async def test_a_join_through_another_node_reaches_the_home_and_whep_is_served_there(
    tmp_path: Path,
) -> None:
    async with RedisServer(tmp_path / "redis") as redis, cluster_nodes(tmp_path, redis) as nodes:
        a, b = nodes
        await nodes[1].create_room("ward-1", PASSWORD)  # on B: every node has it
        listed = await _nodes(b)
        assert {(n["node"], n["url"]) for n in listed} == {
            (_node_id(a), a.base_url),
            (_node_id(b), b.base_url),
        }
        assert all(n["workers"] == 1 for n in listed)

        clients: list[RoomClient] = []
        viewer: WhepViewer | None = None
        try:
            here = await joined_client(a, "Dr Li", "ward-1", password=PASSWORD)
            clients.append(here)
            # Through node B: piped to A, the room's home, and into the same live room.
            there = await joined_client(b, "Dr Wang", "ward-1", password=PASSWORD)
            clients.append(there)
            joined = next(m for m in there.messages if m["type"] == "joined")
            assert here.participant_id in {p["id"] for p in joined["participants"]}, joined
            assert await _participants(a) == 2 and await _participants(b) == 0
            await here.publish({"microphone": ToneTrack(400), "camera": ColourTrack(RED)})
            await there.publish({"microphone": ToneTrack(700), "camera": ColourTrack(GREEN)})
            await here.wait_until(_hears(here, there.participant_id or ""), timeout=30)
            await there.wait_until(_hears(there, here.participant_id or ""), timeout=30)

            # A WHIP publisher through B is passed on to A, and so is ending its session.
            publisher = WhipPublisher(b.base_url, "ward-1", PASSWORD)
            status, body = await publisher.publish([ToneTrack(), ColourTrack(RED)], name="Dr Xu")
            assert status == 201, body
            await here.wait_for(_joined("Dr Xu"), timeout=20)
            assert await _participants(a) == 3 and await _participants(b) == 0
            assert await publisher.stop() == 200

            # Room-scoped admin HTTP through B is passed on to A (and the invite key is shared).
            invite = await b.invite("ward-1", "viewer")
            token = invite.split("invite=", 1)[1]

            # A new WHEP viewer on B is served there: B's worker relays the stage from A's.
            viewer = WhepViewer(b.base_url, "ward-1", token)
            status, body = await viewer.play(name="Registrar")
            assert status == 201, body
            assert viewer.location is not None and viewer.location.startswith(b.base_url + "/")
            await viewer.wait_until(lambda: viewer.frames("video") > 5, timeout=30)
            section = viewer.section("video", 0)
            assert section is not None and section.last_frame is not None
            assert near(mean_colour(section.last_frame), RED) or near(
                mean_colour(section.last_frame), GREEN
            )
            assert await viewer.stop() == 200
            viewer = None
        finally:
            if viewer is not None:
                await viewer.stop()
            for client in clients:
                await client.close()


async def test_a_dead_home_leaves_the_registry_and_its_room_moves(tmp_path: Path) -> None:
    async with RedisServer(tmp_path / "redis") as redis, cluster_nodes(tmp_path, redis) as nodes:
        a, b = nodes
        await nodes[1].create_room("ward-2", PASSWORD)  # on B: every node has it
        await _calls_without_a_valid_credential_are_refused(a)

        first = await joined_client(a, "Dr Li", "ward-2", password=PASSWORD)
        await first.close()
        assert await _home(redis, "ward-2") == _node_id(a)

        await a.kill_every_process()
        # The home stopped beating: it leaves the registry within the TTL.
        deadline = time.monotonic() + NODE_TTL_S + 5
        while {n["node"] for n in await _nodes(b)} != {_node_id(b)}:
            assert time.monotonic() < deadline, await _nodes(b)
            await asyncio.sleep(0.5)

        # The next join through B takes the room over there, and media flows.
        clients = []
        try:
            one = await joined_client(b, "Dr Wang", "ward-2", password=PASSWORD)
            clients.append(one)
            two = await joined_client(b, "Nurse Wu", "ward-2", password=PASSWORD)
            clients.append(two)
            assert await _home(redis, "ward-2") == _node_id(b)
            await one.publish({"microphone": ToneTrack(400), "camera": ColourTrack(RED)})
            await two.publish({"microphone": ToneTrack(700), "camera": ColourTrack(GREEN)})
            await one.wait_until(_hears(one, two.participant_id or ""), timeout=30)
            await two.wait_until(_hears(two, one.participant_id or ""), timeout=30)
        finally:
            for client in clients:
                await client.close()


async def _calls_without_a_valid_credential_are_refused(node: ServerProcess) -> None:
    """A node-to-node call whose credential is forged, made with another secret, or replayed
    is refused 403; a valid one is served."""
    stranger = NodeCredentials(b"not the cluster secret, but long enough", "intruder")
    path = "/api/rooms/ward-2"
    async with aiohttp.ClientSession() as session:
        for credential in ("forged", stranger.sign("GET", path)):
            async with session.get(
                node.base_url + path,
                headers={
                    NODE_CREDENTIAL_HEADER: credential,
                    "Authorization": f"Bearer {node.admin_token}",
                    "X-Forwarded-For": "10.9.8.7",
                },
            ) as r:
                assert r.status == 403, await r.text()
        # Signed with the cluster's secret: served once, refused when replayed.
        member = NodeCredentials(node.env["MCU_CLUSTER_SECRET"].encode(), "tester")
        credential = member.sign("GET", path)
        for expected in (200, 403):
            async with session.get(
                node.base_url + path,
                headers={
                    NODE_CREDENTIAL_HEADER: credential,
                    "Authorization": f"Bearer {node.admin_token}",
                },
            ) as r:
                assert r.status == expected, await r.text()
    assert "node credential" in node.log()
