"""End to end: a browser watches a lecture on a node that is not the room's home.

Two real nodes share a real Redis; a WHIP lecturer publishes on node A, the room's home. A
Chromium tab opens the audience link on node B: its WebSocket is passed on to A, and its WHEP
session is served by B, whose worker relays the stage from A (SRTP between the nodes). Run
inside a network namespace (scripts/test does) so that loopback is the only interface.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, Page, chromium_available
from tests.e2e.room_page import JOIN_TIMEOUT, describe, join_with_password, wait_for_stats
from tests.support.cluster import cluster_nodes
from tests.support.redis import RedisServer, redis_available
from tests.support.room_client import ColourTrack, ToneTrack
from tests.support.server import ServerProcess
from tests.support.whip import WhipPublisher

pytestmark = [
    pytest.mark.skipif(
        not chromium_available(),
        reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
    ),
    pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}"),
]

ROOM = "e2e-cascade"
SPEAKER_PASSWORD = "speakers-pass-2"
VIEWER_PASSWORD = "audience-pass-2"
SCENARIO_TIMEOUT = 50.0
"One tab joining and decoding (typically a few seconds here, the nodes' start excluded)."


def decodes_video(stats: dict[str, Any]) -> bool:
    return any(s["kind"] == "video" and s["framesDecoded"] > 10 for s in stats.get("inbound") or [])


async def whep_viewers(node: ServerProcess) -> int:
    viewers: int = (await node.get_json("/healthz"))["viewers"]
    return viewers


async def test_a_browser_on_another_node_watches_the_lecture(tmp_path: Path) -> None:
    async with (
        RedisServer(tmp_path / "redis") as redis,
        cluster_nodes(tmp_path, redis, count=2) as (a, b),
    ):
        await a.create_room(
            ROOM, SPEAKER_PASSWORD, "Grand rounds", kind="lecture", viewer_password=VIEWER_PASSWORD
        )
        lecturer = WhipPublisher(a.base_url, ROOM, SPEAKER_PASSWORD)
        status, body = await lecturer.publish(
            [ToneTrack(), ColourTrack((20, 60, 220))], name="Dr Wang"
        )
        assert status == 201, body
        pages: list[Page] = []
        try:
            async with Chromium() as browser, asyncio.timeout(SCENARIO_TIMEOUT):
                viewer = await browser.open(f"{b.base_url}/r/{ROOM}?view&name=Student%20Okafor")
                pages.append(viewer)
                await join_with_password(viewer, VIEWER_PASSWORD)
                await viewer.wait_for("window.mcu.state === 'joined'", timeout=JOIN_TIMEOUT)
                stats = await wait_for_stats(viewer, decodes_video, "the lecture over WHEP")
                assert stats["whepConnection"] == "connected", stats
                # Served by B: the session is B's, A only relays the stage to it.
                assert (await whep_viewers(b), await whep_viewers(a)) == (1, 0)
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc!r}\n{await describe(pages)}\n{b.log()[-3000:]}")
        finally:
            await lecturer.stop()
