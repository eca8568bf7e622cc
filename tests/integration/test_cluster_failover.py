"""A cluster losing its Redis primary, a node, or a whole data centre (real nodes, a real Redis
primary and replica, three real Sentinels across two "sites", every process SIGKILLed as a
crash would): what keeps working, and how soon the rest comes back.

Every process runs on 127.0.0.1, so a "site" is the set of processes killed together, not a
network of its own: the test shows what the survivors do once the others are gone (at once,
without a goodbye), not what a partition between two live sites does. The times printed
(``measured: …``, shown with ``pytest -s``) are the figures docs/cluster.md quotes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mcu.contracts.nodes import home_key
from mcu.infra.redisconn import connect_redis, parse_redis_url
from tests.support.cluster import cluster_nodes
from tests.support.failover import (
    drop_viewer,
    join_again,
    publish_again,
    until_unlisted,
    watch_again,
)
from tests.support.redis import TwoSites, redis_available
from tests.support.room_client import ColourTrack, RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer, WhipPublisher, mean_colour, near

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}")

PASSWORD = "consult-pass"
LECTURERS = "lecturers-pass"
AUDIENCE = "audience-pass"
RED = (200, 30, 30)
GREEN = (30, 200, 60)
BLUE = (30, 60, 200)
RECOVERY_BOUND_S = 30.0
"Longest the tests wait for the cluster to serve again after a failure."


def _node_id(server: ServerProcess) -> str:
    return (server.data_dir / "node-id").read_text().strip()


async def _live_nodes(server: ServerProcess) -> set[str]:
    nodes: list[dict[str, Any]] = (await server.get_json("/api/cluster/nodes"))["nodes"]
    return {node["node"] for node in nodes}


async def _home(url: str, room: str) -> str | None:
    client = connect_redis(parse_redis_url(url))
    try:
        home = await client.get(home_key(room))
        return None if home is None else str(home)
    finally:
        await client.aclose()


def _hears(me: RoomClient, peer: str, video: int = 5, audio: int = 10) -> Callable[[], bool]:
    return lambda: me.frames_from(peer, "video") >= video and me.frames_from(peer, "audio") >= audio


async def _create_until_served(node: ServerProcess, room: str, started: float) -> float:
    """Create ``room`` through ``node``, trying again until it is created; returns the seconds
    from ``started`` (the failure) until it was."""
    timeout = aiohttp.ClientTimeout(total=10)
    body = {"id": room, "title": "After the failover", "password": PASSWORD}
    deadline = time.monotonic() + RECOVERY_BOUND_S
    while True:
        try:
            async with node.http.post(
                node.base_url + "/api/rooms", json=body, timeout=timeout
            ) as r:
                if r.status == 201:
                    return time.monotonic() - started
                # While Redis fails over: "try again", never an internal error.
                assert r.status == 503 and r.headers["Retry-After"] == "1", await r.text()
                assert (await r.json())["error"] == "store_unavailable"
        except (aiohttp.ClientError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"no room could be created within {RECOVERY_BOUND_S} s"
        await asyncio.sleep(0.2)


async def test_redis_primary_killed_sentinel_promotes_and_rooms_keep_flowing(
    tmp_path: Path,
) -> None:
    async with TwoSites(tmp_path / "redis") as sites, cluster_nodes(tmp_path, sites.url()) as nodes:
        a, b = nodes
        await b.create_room("ward-1", PASSWORD)
        invite = (await a.invite("ward-1")).split("invite=", 1)[1]  # made before; homes it on A
        clients: list[RoomClient] = []
        try:
            li = await joined_client(a, "Dr Li", "ward-1", password=PASSWORD)
            clients.append(li)
            wang = await joined_client(b, "Dr Wang", "ward-1", password=PASSWORD)  # via B to A
            clients.append(wang)
            await li.publish({"microphone": ToneTrack(400), "camera": ColourTrack(RED)})
            await wang.publish({"microphone": ToneTrack(700), "camera": ColourTrack(GREEN)})
            li_id, wang_id = li.participant_id or "", wang.participant_id or ""
            await li.wait_until(_hears(li, wang_id), timeout=30)
            await wang.wait_until(_hears(wang, li_id), timeout=30)
            assert await _home(sites.url(), "ward-1") == _node_id(a)

            killed = time.monotonic()
            before = (li.frames_from(wang_id, "video"), wang.frames_from(li_id, "video"))
            sites.kill_primary()
            await sites.wait_promoted()
            promoted = time.monotonic() - killed
            # Media never touches Redis: both still decode each other while it fails over.
            during = (li.frames_from(wang_id, "video"), wang.frames_from(li_id, "video"))
            created = await _create_until_served(b, "ward-after", killed)
            # ...and go on after it (the room may be created at once: wait for a frame or two).
            await li.wait_until(lambda: li.frames_from(wang_id, "video") > during[0], timeout=10)
            await wang.wait_until(lambda: wang.frames_from(li_id, "video") > during[1], timeout=10)
            after = (li.frames_from(wang_id, "video"), wang.frames_from(li_id, "video"))
            print(f"measured: primary SIGKILLed -> replica promoted {promoted:.1f} s")
            print(f"measured: primary SIGKILLed -> a room created through B {created:.1f} s")
            assert all(d > x for d, x in zip(during, before, strict=True)), (before, during)
            assert all(y > d for y, d in zip(after, during, strict=True)), (during, after)
            assert not any(m["type"] == "participant_left" for m in li.messages + wang.messages)

            # Neither node was taken for dead: both listed, the live room still homed on A.
            assert await _live_nodes(b) == {_node_id(a), _node_id(b)}
            assert await _home(sites.url(), "ward-1") == _node_id(a)
            # The invite made before is still valid, through either node, into the same room.
            xu = await joined_client(a, "Dr Xu", "ward-1", invite=invite)
            clients.append(xu)
            await li.wait_for(lambda m: m["type"] == "participant_joined", timeout=20)
            # A room made after the failover is served (its home claimed in the new primary).
            chen = await joined_client(a, "Dr Chen", "ward-after", password=PASSWORD)
            clients.append(chen)
            await _changes_heard_by_every_worker(sites.url(), expected=2)

            # Node B, which only carried Dr Wang's signalling to A, dies. His page resumes
            # through A as the same participant; Dr Li sees him reconnecting, never leaving.
            killed = time.monotonic()
            await b.kill_every_process()
            await li.wait_for(lambda m: m["type"] == "participant_reconnecting", timeout=20)
            await wang.drop()  # the page closes both connections and makes new ones
            wang.ws_url = a.ws_url
            assert (await wang.resume("ward-1"))["type"] == "joined"
            await li.wait_for(lambda m: m["type"] == "participant_back", timeout=20)
            heard, seen = li.frames_from(wang_id, "video"), wang.frames_from(li_id, "video")
            await wang.publish({"microphone": ToneTrack(700), "camera": ColourTrack(GREEN)})
            await li.wait_until(lambda: li.frames_from(wang_id, "video") > heard + 5, timeout=20)
            resumed = time.monotonic() - killed
            # His new subscribe connection carries Dr Li again too.
            await wang.wait_until(lambda: wang.frames_from(li_id, "video") > seen + 5, timeout=20)
            print(f"measured: a node passing signalling SIGKILLed -> resumed via A {resumed:.1f} s")
            assert not any(m["type"] == "participant_left" for m in li.messages)
        finally:
            for client in clients:
                await client.close()
        for node in (a, b):
            assert "re-homed" not in node.log() and "now homed on another" not in node.log()


async def _changes_heard_by_every_worker(url: str, expected: int) -> None:
    """Every worker's room-change feed has subscribed again on the new primary."""
    client = connect_redis(parse_redis_url(url))
    try:
        deadline = time.monotonic() + RECOVERY_BOUND_S
        while True:
            counts = await client.pubsub_numsub("mcu:rooms:changes")
            if counts and int(counts[0][1]) >= expected:
                return
            assert time.monotonic() < deadline, counts
            await asyncio.sleep(0.2)
    finally:
        await client.aclose()


def _lecture_tracks(colour: tuple[int, int, int]) -> list[Any]:
    return [ToneTrack(), ColourTrack(colour, width=160, height=120, fps=15)]


async def test_a_whole_site_dies_and_the_other_keeps_serving(tmp_path: Path) -> None:
    async with TwoSites(tmp_path / "redis") as sites, cluster_nodes(tmp_path, sites.url()) as nodes:
        a, b = nodes  # a in site 1 with the primary and Sentinel 1; b in site 2
        lecture = {"kind": "lecture", "viewer_password": AUDIENCE}
        await b.create_room("stroke-5", LECTURERS, title="Stroke care 5", **lecture)
        await b.create_room("ward-9", PASSWORD)
        invite = (await a.invite("ward-9")).split("invite=", 1)[1]  # homes ward-9 on A
        lecturer = WhipPublisher(a.base_url, "stroke-5", LECTURERS)
        players: list[WhepViewer] = []
        clients: list[RoomClient] = []
        publishers = [lecturer]
        try:
            status, body = await lecturer.publish(_lecture_tracks(BLUE), name="Dr Wang")
            assert status == 201, body
            players.append(await watch_again(b, "stroke-5", AUDIENCE, name="County 1"))
            # Served by B (the node it asked), which takes the stage from A, the home.
            assert (players[0].location or "").startswith(b.base_url)
            li = await joined_client(a, "Dr Li", "ward-9", invite=invite)
            clients.append(li)
            assert await _home(sites.url(), "ward-9") == _node_id(a)

            killed = time.monotonic()
            sites.kill_site_1()
            await a.kill_every_process()
            unlisting = asyncio.create_task(until_unlisted(b, _node_id(a), killed))
            await drop_viewer(players.pop())
            await li.drop()

            # A new lesson starts on B as soon as the replica serves.
            created = await _create_until_served(b, "stroke-6", killed)
            async with b.http.patch(b.base_url + "/api/rooms/stroke-6", json=lecture) as r:
                assert r.status == 200, await r.text()
            fresh = await publish_again(b, "stroke-6", PASSWORD, _lecture_tracks(RED), "Dr Xu")
            publishers.append(fresh)
            players.append(await watch_again(b, "stroke-6", AUDIENCE, name="County 2"))
            new_lesson = time.monotonic() - killed

            # The old lesson and consultation move to B: the lecturer's tool publishes again,
            # the player asks again, the participant's page joins again with its old invite.
            again, rejoined = await asyncio.gather(
                publish_again(b, "stroke-5", LECTURERS, _lecture_tracks(BLUE), "Dr Wang"),
                join_again(b, "Dr Li", "ward-9", invite=invite),
            )
            publishers.append(again)
            clients.append(rejoined)
            lecturer_back = time.monotonic() - killed
            players.append(await watch_again(b, "stroke-5", AUDIENCE, name="County 1"))
            viewers_back = time.monotonic() - killed
            unlisted = await unlisting
            for player, colour in zip(players, (RED, BLUE), strict=True):
                assert (player.location or "").startswith(b.base_url)
                section = player.section("video", 0)
                assert section is not None and near(mean_colour(section.last_frame), colour)
            assert await _home(sites.url(), "stroke-5") == _node_id(b)
            assert await _home(sites.url(), "ward-9") == _node_id(b)
            print(f"measured: site 1 SIGKILLed -> A unlisted on B {unlisted:.1f} s")
            print(f"measured: site 1 SIGKILLed -> a room created through B {created:.1f} s")
            print(f"measured: site 1 SIGKILLed -> a new lesson watched on B {new_lesson:.1f} s")
            print(f"measured: site 1 SIGKILLed -> old lesson and invite back {lecturer_back:.1f} s")
            print(f"measured: site 1 SIGKILLed -> old lesson's player decodes {viewers_back:.1f} s")
        finally:
            for player in players:
                await drop_viewer(player)
            for client in clients:
                await client.close()
            for publisher in publishers:
                await publisher.pc.close()
