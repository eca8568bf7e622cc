"""End to end: the audience page in Chromium keeps watching a lecture whose home node dies.

Two nodes and a Redis; the lecturer publishes over WHIP (an aiortc peer, as OBS would) to node
A, the room's home; the audience page is loaded from node B, which passes its signalling to A
and sends its WHEP player there (307). A is SIGKILLed (every process); the lecturer's tool
publishes again through B, which becomes the home. The page, on its own, tries to resume, is
told its session is gone (it lived on A), joins afresh through B with what it joined with, and
decodes the lecture again: nobody clicks. Prints the time from the kill to the picture back
(docs/cluster.md, "What a participant sees when something fails"); asserts no timing.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, Page, chromium_available
from tests.e2e.room_page import JOIN_TIMEOUT, describe, join_with_password
from tests.support.cluster import cluster_nodes
from tests.support.failover import publish_again
from tests.support.redis import RedisServer, redis_available
from tests.support.room_client import ColourTrack, ToneTrack
from tests.support.whip import WhipPublisher

pytestmark = [
    pytest.mark.skipif(
        not chromium_available(),
        reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
    ),
    pytest.mark.skipif(redis_available() is not None, reason=f"{redis_available()}"),
]

ROOM = "e2e-failover"
LECTURERS = "lecturers-pass-1"
AUDIENCE = "audience-pass-1"
# Bounds on waiting, never asserted on: generous for a loaded 2-core machine.
WATCH_TIMEOUT = 30.0
RECOVERY_TIMEOUT = 45.0


def _tracks() -> list[Any]:
    return [ToneTrack(), ColourTrack((30, 60, 200), width=320, height=180, fps=15)]


async def _watched(page: Page) -> set[str]:
    """Whose video the page decodes now (its state may be anything while it rejoins)."""
    try:
        stats = await page.evaluate("window.mcu.stats()", timeout=10)
    except ChromiumError:
        return set()
    return {
        s["participantId"]
        for s in stats.get("inbound") or []
        if s["kind"] == "video" and s["framesDecoded"] > 0 and s.get("participantId")
    }


async def _until_watching(page: Page, other_than: set[str], timeout: float) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        watched = await _watched(page) - other_than
        if watched:
            return watched
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page decodes no new lecturer in {timeout} s")
        await asyncio.sleep(0.5)


async def test_the_audience_page_rejoins_when_the_lecture_moves(tmp_path: Path) -> None:
    async with RedisServer(tmp_path / "redis") as redis, cluster_nodes(tmp_path, redis) as nodes:
        a, b = nodes
        await b.create_room(
            ROOM, LECTURERS, "Stroke care", kind="lecture", viewer_password=AUDIENCE
        )
        lecturers = [WhipPublisher(a.base_url, ROOM, LECTURERS)]
        pages: list[Page] = []
        try:
            status, body = await lecturers[0].publish(_tracks(), name="Dr Wang")
            assert status == 201, body
            async with Chromium() as browser:
                try:
                    page = await browser.open(f"{b.base_url}/r/{ROOM}?view&name=County%201")
                    pages.append(page)
                    await join_with_password(page, AUDIENCE)
                    await page.wait_for("window.mcu.state === 'joined'", timeout=JOIN_TIMEOUT)
                    first = await _until_watching(page, set(), WATCH_TIMEOUT)

                    killed = time.monotonic()
                    await a.kill_every_process()
                    lecturers.append(await publish_again(b, ROOM, LECTURERS, _tracks(), "Dr Wang"))
                    await _until_watching(page, first, RECOVERY_TIMEOUT)
                    back = time.monotonic() - killed
                    assert await page.evaluate("window.mcu.state") == "joined"
                    assert await page.evaluate("window.mcu.role") == "viewer"
                    print(
                        f"measured: home SIGKILLed -> the audience page decodes again {back:.1f} s"
                    )
                except (AssertionError, TimeoutError, ChromiumError) as exc:
                    pytest.fail(f"{exc!r}\n{await describe(pages)}\n{b.log()[-3000:]}")
        finally:
            for lecturer in lecturers:
                await lecturer.pc.close()
