"""The cascade between nodes (real server processes sharing a real Redis): a lecture published on
node A is served to WHEP viewers on B and C by those nodes themselves, the stage relayed from A
once per node; another node's forged internal call is refused at the front; when B dies its
viewers' players post again to C and decode there, and A stops relaying to B."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp
import pytest

from mcu.contracts.cluster import NODE_CREDENTIAL_HEADER, WORKER_HEADER, stage_path
from mcu.crypto.clustercalls import NodeCredentials
from tests.support.cluster import cluster_nodes
from tests.support.redis import RedisServer, redis_available
from tests.support.room_client import ColourTrack, ToneTrack
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer, WhipPublisher, mean_colour, near

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}")

PASSWORD = "lecturers-only"
VIEWERS = "for-every-site"
BLUE = (20, 60, 220)
STALL_S = 1.0
"How long the test's player waits without a frame before it posts again elsewhere."


def _node_id(server: ServerProcess) -> str:
    return (server.data_dir / "node-id").read_text().strip()


async def _metrics_text(node: ServerProcess) -> str:
    async with node.http.get(node.base_url + "/metrics") as r:
        return await r.text()


async def _egress(home: ServerProcess, edges: list[str]) -> tuple[float, dict[str, float]]:
    """Stage packets the home received, and packets it relayed to each edge node, in one
    scrape."""
    async with home.http.get(home.base_url + "/metrics") as r:
        text = await r.text()
    received = sum(
        float(m.group(1))
        for m in re.finditer(r"^mcu_rtp_packets_received_total\{[^}]*\} (\S+)$", text, re.M)
    )
    sent = {}
    for edge in edges:
        pattern = rf'^mcu_relay_packets_sent_total\{{edge="{edge}/\d+"[^}}]*\}} (\S+)$'
        sent[edge] = sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))
    return received, sent


def _decodes_blue(viewer: WhepViewer, frames: int = 5) -> bool:
    section = viewer.section("video", 0)
    return (
        viewer.frames("video") > frames
        and section is not None
        and section.last_frame is not None
        and near(mean_colour(section.last_frame), BLUE)
    )


async def _forged_internal_calls_are_refused(node: ServerProcess) -> None:
    path = stage_path("lesson-9")
    body = b'{"video": [], "audio": []}'
    stranger = NodeCredentials(b"not the cluster secret, but long enough", "intruder")
    async with aiohttp.ClientSession() as http:
        for headers in (
            {},  # a client: no such route
            {NODE_CREDENTIAL_HEADER: "forged"},
            {NODE_CREDENTIAL_HEADER: stranger.sign("POST", path, body)},
        ):
            headers |= {"Content-Type": "application/json", WORKER_HEADER: "0"}
            async with http.post(node.base_url + path, data=body, headers=headers) as r:
                assert r.status == (403 if headers.get(NODE_CREDENTIAL_HEADER) else 404)


async def test_a_node_of_two_workers_takes_one_copy_for_both(tmp_path: Path) -> None:
    """B's workers both serve viewers: one of them (B's entry for the room) takes the stage
    from A and relays it to the other, so A still sends B one copy."""
    async with (
        RedisServer(tmp_path / "redis") as redis,
        cluster_nodes(tmp_path, redis, count=2, workers=2) as (a, b),
    ):
        await a.create_room("lesson-8", PASSWORD, kind="lecture", viewer_password=VIEWERS)
        lecturer = WhipPublisher(a.base_url, "lesson-8", PASSWORD)
        status, body = await lecturer.publish([ToneTrack(), ColourTrack(BLUE)], name="Dr Wang")
        assert status == 201, body
        viewers = [WhepViewer(b.base_url, "lesson-8", VIEWERS) for _ in range(4)]
        try:
            for viewer in viewers:
                status, body = await viewer.play()
                assert status == 201, body
            # B's front spread them over both its workers (the session id names the worker).
            served = {(v.location or "").rsplit("/", 1)[1].split("-", 1)[0] for v in viewers}
            assert served == {"0", "1"}, [v.location for v in viewers]
            for viewer in viewers:
                await viewer.wait_until(lambda v=viewer: _decodes_blue(v), timeout=30)  # type: ignore[misc]
            text = await _metrics_text(a)
            edges = re.findall(
                rf'^mcu_relay_packets_sent_total\{{edge="({_node_id(b)}/\d+)"', text, re.M
            )
            assert len(set(edges)) == 1, edges  # one of B's workers, not both
            before = await _egress(a, [_node_id(b)])
            await asyncio.sleep(2.0)  # a measuring window, not a wait for a condition
            after = await _egress(a, [_node_id(b)])
            ratio = (after[1][_node_id(b)] - before[1][_node_id(b)]) / (after[0] - before[0])
            assert 0.8 <= ratio <= 1.1, (ratio, before, after)
        finally:
            for viewer in viewers:
                await viewer.stop()
            await lecturer.stop()


async def test_a_lecture_cascades_to_viewers_on_other_nodes(tmp_path: Path) -> None:
    async with (
        RedisServer(tmp_path / "redis") as redis,
        cluster_nodes(tmp_path, redis, count=3) as nodes,
    ):
        a, b, c = nodes
        await a.create_room(
            "lesson-9", PASSWORD, "Stroke care", kind="lecture", viewer_password=VIEWERS
        )
        lecturer = WhipPublisher(a.base_url, "lesson-9", PASSWORD)
        status, body = await lecturer.publish([ToneTrack(), ColourTrack(BLUE)], name="Dr Wang")
        assert status == 201, body
        viewers = [WhepViewer(n.base_url, "lesson-9", VIEWERS) for n in (b, b, c)]
        try:
            for viewer, node in zip(viewers, (b, b, c), strict=True):
                status, body = await viewer.play()
                assert status == 201, body
                # Served by the node asked (no 307 to the home): the session lives there.
                assert (viewer.location or "").startswith(node.base_url + "/"), viewer.location
            for viewer in viewers:
                await viewer.wait_until(lambda v=viewer: _decodes_blue(v), timeout=30)  # type: ignore[misc]
            home = await a.get_json("/api/rooms/lesson-9")
            assert home["id"] == "lesson-9"

            # One copy of the stage per node: B's two viewers cost A no more than C's one.
            edges = [_node_id(b), _node_id(c)]
            before = await _egress(a, edges)
            await asyncio.sleep(2.0)  # a measuring window, not a wait for a condition
            after = await _egress(a, edges)
            stage = after[0] - before[0]
            assert stage > 50, (before, after)
            for edge in edges:
                ratio = (after[1][edge] - before[1][edge]) / stage
                print(f"A relayed {ratio:.3f} packet per stage packet to {edge}")
                assert 0.8 <= ratio <= 1.1, (edge, ratio, before, after)

            await _forged_internal_calls_are_refused(b)
            assert "node credential" in b.log()

            # B dies: its viewers' players post again (here to C) and decode there.
            killed = time.monotonic()
            await b.kill_every_process()

            async def play_again(viewer: WhepViewer) -> WhepViewer:
                frames = viewer.frames("video")
                await asyncio.sleep(STALL_S)
                assert viewer.frames("video") == frames  # the player sees its media stop
                await viewer.pc.close()
                again = WhepViewer(c.base_url, "lesson-9", VIEWERS)
                status, body = await again.play()
                assert status == 201, body
                await again.wait_until(lambda: _decodes_blue(again), timeout=30)
                return again

            moved = await asyncio.gather(*(play_again(v) for v in viewers[:2]))
            viewers[:2] = moved
            print(f"B's viewers decode again on C {time.monotonic() - killed:.2f} s after the kill")
            frames = viewers[2].frames("video")
            await viewers[2].wait_until(lambda: viewers[2].frames("video") > frames + 10)
            # A stops relaying to the dead node once the registry has dropped it.
            gone = f"node {_node_id(b)} is gone; its relay ends"
            await viewers[2].wait_until(lambda: gone in a.log(), timeout=20)
        finally:
            for viewer in viewers:
                await viewer.stop()
            await lecturer.stop()


async def test_the_home_dies_the_lecturer_moves_and_viewers_elsewhere_resume(
    tmp_path: Path,
) -> None:
    """A (the home) is SIGKILLed: the lecturer publishes again through B, which takes the room
    over once A has left the registry, and C's viewer, posting again to C, gets B's stage."""
    async with (
        RedisServer(tmp_path / "redis") as redis,
        cluster_nodes(tmp_path, redis, count=3) as (a, b, c),
    ):
        await a.create_room("lesson-7", PASSWORD, kind="lecture", viewer_password=VIEWERS)
        lecturer = WhipPublisher(a.base_url, "lesson-7", PASSWORD)
        status, body = await lecturer.publish([ToneTrack(), ColourTrack(BLUE)], name="Dr Wang")
        assert status == 201, body
        viewer = WhepViewer(c.base_url, "lesson-7", VIEWERS)
        again: WhepViewer | None = None
        try:
            assert (await viewer.play())[0] == 201
            await viewer.wait_until(lambda: _decodes_blue(viewer), timeout=30)
            killed = time.monotonic()
            await a.kill_every_process()
            await lecturer.pc.close()
            # The lecturer's software publishes again, through B, until B takes the room.
            for _ in range(40):  # bounded: the registry drops A within its 5 s TTL
                lecturer = WhipPublisher(b.base_url, "lesson-7", PASSWORD)
                status, body = await lecturer.publish([ToneTrack(), ColourTrack(BLUE)], name="W")
                if status == 201:
                    break
                await lecturer.pc.close()
                await asyncio.sleep(0.5)
            assert status == 201, body
            published = time.monotonic() - killed
            # C's viewer saw its picture stop; its player posts again, to C.
            await viewer.pc.close()
            again = WhepViewer(c.base_url, "lesson-7", VIEWERS)
            assert (await again.play())[0] == 201
            await again.wait_until(lambda: _decodes_blue(again), timeout=30)
            print(
                f"lecturer back on B {published:.2f} s after the home's kill; C's viewer "
                f"decodes again {time.monotonic() - killed:.2f} s after it"
            )
        finally:
            for one in (viewer, again):
                if one is not None:
                    await one.stop()
            await lecturer.stop()
