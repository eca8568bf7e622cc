"""End to end: a lecture in real Chromium tabs.

The lecturer (a chair invite) publishes the fake camera; a viewer opens the audience link
(`/r/<room>?view`) with the viewer password, joins with `"media": "none"` and watches the stage
over WHEP; the lecturer sees the audience's size, the viewer raises a hand, the lecturer promotes
them, and the lecturer then receives the new speaker's camera. Run inside a network namespace
(scripts/test does) so that loopback is the only interface Chromium can pick.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, Page, chromium_available
from tests.e2e.room_page import (
    JOIN_TIMEOUT,
    click,
    decodes_video_from,
    describe,
    join_with_password,
    sends_video,
    wait_for_stats,
    with_name,
)

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
)

ROOM = "e2e-lecture"
SPEAKER_PASSWORD = "speakers-pass-1"
VIEWER_PASSWORD = "audience-pass-1"
# The whole scenario: two tabs, one WHEP session, one promotion (typically ~10 s here).
SCENARIO_TIMEOUT = 55.0


def text_of(element_id: str) -> str:
    """A JS expression: the trimmed text of the element with that id."""
    return f"document.getElementById({json.dumps(element_id)}).textContent.trim()"


async def test_viewer_watches_over_whep_raises_a_hand_and_is_promoted(server: Any) -> None:
    await server.create_room(
        ROOM, SPEAKER_PASSWORD, "Grand rounds", kind="lecture", viewer_password=VIEWER_PASSWORD
    )
    chair_link = await server.invite(ROOM, role="chair")

    async with Chromium() as browser:
        pages: list[Page] = []
        try:
            async with asyncio.timeout(SCENARIO_TIMEOUT):
                await run_lecture(browser, pages, with_name(server.base_url, chair_link, "Dr Li"))
                # Leaving ends the viewer's WHEP session on the server.
                await pages[1].evaluate("mcu.leave(), true")
                await whep_sessions_end(server)
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc!r}\n{await describe(pages)}\n{server.log()[-3000:]}")


async def whep_sessions_end(server: Any) -> None:
    for _ in range(50):
        if await server.metric("mcu_whep_sessions") == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("a WHEP session is still open after the viewer left")


async def run_lecture(browser: Chromium, pages: list[Page], lecturer_url: str) -> None:
    lecturer = await browser.open(lecturer_url)
    pages.append(lecturer)
    await lecturer.wait_for("window.mcu?.state === 'joined'", timeout=JOIN_TIMEOUT)
    assert await lecturer.evaluate("mcu.lecture.kind") == "lecture"
    await wait_for_stats(lecturer, sends_video, "the lecturer's camera going out")
    lecturer_id: str = await lecturer.evaluate("mcu.participantId")

    base = lecturer_url.split("/r/")[0]
    viewer = await browser.open(f"{base}/r/{ROOM}?view&name=Student%20Okafor")
    pages.append(viewer)
    # The audience's join screen asks for no camera or microphone.
    await viewer.wait_for("!!window.mcu && document.getElementById('device-fields').hidden")
    assert await viewer.evaluate("document.getElementById('preview').srcObject === null")
    await join_with_password(viewer, VIEWER_PASSWORD)
    await viewer.wait_for("window.mcu.state === 'joined'", timeout=JOIN_TIMEOUT)
    assert await viewer.evaluate("mcu.role") == "viewer"

    # The lecturer's camera reaches the viewer over WHEP (no subscribe connection, nothing sent).
    stats = await wait_for_stats(
        viewer, lambda s: decodes_video_from(s, lecturer_id), "the lecturer's video over WHEP"
    )
    assert stats["subscribeConnection"] is None, stats
    assert stats["publishConnection"] is None, stats
    assert stats["whepConnection"] == "connected", stats
    shown = await viewer.evaluate(
        f"document.querySelector('#grid .tile[data-participant={json.dumps(lecturer_id)}]"
        " .tile-name')?.textContent"
    )
    assert shown == "Dr Li (chair)"
    assert await viewer.evaluate("document.getElementById('mic-button').hidden")

    # The lecturer sees the audience's size, then the raised hand.
    await lecturer.wait_for(f"{text_of('viewer-count')} === '1 viewer'")
    await click(viewer, "#hand-button")
    assert (
        await viewer.evaluate("document.getElementById('hand-button').getAttribute('aria-pressed')")
        == "true"
    )
    await lecturer.wait_for("document.querySelector('#hands-list button') !== null")
    assert "Student Okafor" in await lecturer.evaluate(text_of("hands-list"))
    await click(lecturer, "#hands-list button")

    # Promoted: the viewer publishes its camera (still watching over WHEP) and the lecturer
    # decodes it through its own subscribe connection.
    await viewer.wait_for("window.mcu.role === 'participant'")
    assert await viewer.evaluate(text_of("lecture-status")) == "You may speak now."
    viewer_id: str = await viewer.evaluate("mcu.participantId")
    await wait_for_stats(viewer, sends_video, "the promoted viewer's camera going out")
    await wait_for_stats(
        lecturer, lambda s: decodes_video_from(s, viewer_id), "the new speaker's video"
    )
    await lecturer.wait_for(f"{text_of('viewer-count')} === '0 viewers'")

    # Demoted: back in the audience, sending nothing, counted again.
    await click(lecturer, f"#grid .tile[data-participant={json.dumps(viewer_id)}] .chair-demote")
    await viewer.wait_for("window.mcu.role === 'viewer'")
    await viewer.wait_for("window.mcu.stats().then((s) => s.publishConnection === null)")
    await lecturer.wait_for(f"{text_of('viewer-count')} === '1 viewer'")
