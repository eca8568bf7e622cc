"""End to end: the "View" control switches a browser between individual streams and the mix.

docs/protocol.md, "Mixed mode": a participant who picks "Single picture" receives one composite
video and one N-1 sound (participant id "mix") instead of everyone's tracks; switching back
restores the grid. The chair's room default is followed by those who have not chosen.
Screenshots of the single-picture layout are saved under /tmp (see SCREENSHOTS).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, Page, chromium_available
from tests.e2e.room_page import (
    JOIN_TIMEOUT,
    Stats,
    click,
    describe,
    screenshot,
    wait_for_media,
    wait_for_stats,
    with_name,
)

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
)

MIX_TIMEOUT = 45.0
STATE_TIMEOUT = 20.0
SCREENSHOTS = {(1280, 800): "/tmp/mcu-mixed-1280x800.png", (390, 844): "/tmp/mcu-mixed-390x844.png"}

# Where things are on the page, and whether they show.
LAYOUT_JS = """(() => {
  const box = (selector) => {
    const e = document.querySelector(selector);
    const r = e.getBoundingClientRect();
    return {width: r.width, height: r.height,
            shown: !e.closest('[hidden]') && getComputedStyle(e).display !== 'none'};
  };
  const video = document.querySelector('#mix video');
  const audio = document.querySelector('#mix audio');
  return {mix: box('#mix video'), grid: box('#grid'), self: box('#self-view'),
          fit: getComputedStyle(video).objectFit,
          picture: [video.videoWidth, video.videoHeight],
          sound: audio.srcObject?.getAudioTracks()[0]?.readyState === 'live' && !audio.paused};
})()"""


def mix_inbound(stats: Stats, kind: str) -> list[dict[str, Any]]:
    return [s for s in stats["inbound"] if s["participantId"] == "mix" and s["kind"] == kind]


def decodes_mix(stats: Stats) -> bool:
    """Exactly one mixed video, decoded at 1280x720, and the mixed sound arriving."""
    videos = mix_inbound(stats, "video")
    return (
        len(videos) == 1
        and videos[0]["framesDecoded"] > 0
        and (videos[0]["frameWidth"], videos[0]["frameHeight"]) == (1280, 720)
        and any(a["packetsReceived"] > 0 for a in mix_inbound(stats, "audio"))
    )


def camera_frames(stats: Stats, participant_id: str) -> int:
    """Frames decoded of `participant_id`'s camera (0 when it is not carried)."""
    return max(
        (
            s["framesDecoded"]
            for s in stats["inbound"]
            if s["kind"] == "video"
            and s["participantId"] == participant_id
            and s["source"] == "camera"
        ),
        default=0,
    )


async def open_view_menu(page: Page) -> None:
    if await page.evaluate("document.getElementById('view-options').hidden"):
        await click(page, "#view-button")
    await page.wait_for("!document.getElementById('view-options').hidden", timeout=5.0)


async def test_single_picture_view_and_back_to_individual_streams(server: Any) -> None:
    """B picks "Single picture": one 1280x720 composite and the mixed sound replace A's tracks,
    shown large with the grid hidden. The chair's room default moves A (who has not chosen) but
    not B. B picks "Individual streams" again and decodes A's camera in the grid.
    """
    room = "e2e-mixed"
    await server.create_room(room, "mixed-secret", title="Mixed view")
    urls = [
        with_name(server.base_url, await server.invite(room, role="chair"), "Dr Ann Chair"),
        with_name(server.base_url, await server.invite(room), "Clinic Bo"),
    ]
    async with Chromium() as browser:
        pages: list[Page] = []
        try:
            for url in urls:
                pages.append(await browser.open(url))
            for page in pages:
                await page.wait_for("window.mcu?.state === 'joined'", timeout=JOIN_TIMEOUT)
            a, b = pages
            a_id = await a.evaluate("window.mcu.participantId")
            for page in pages:
                await wait_for_media(page)
            initial_view = await b.evaluate("window.mcu.view")
            b_chair_button = await b.evaluate("document.getElementById('room-mode-button').hidden")

            # B: View -> Single picture, with real clicks.
            await open_view_menu(b)
            await click(b, "label:has(#view-mixed)")
            await b.wait_for("window.mcu.view.mode === 'mixed'", timeout=STATE_TIMEOUT)
            sent_view = await b.evaluate("window.mcu.view")
            mixed = await wait_for_stats(
                b, decodes_mix, "one 1280x720 mixed video and mixed audio", MIX_TIMEOUT
            )
            await click(b, "#room-title")  # closes the menu, as any click elsewhere does
            await b.wait_for(
                "document.querySelector('#mix video').videoWidth === 1280"
                " && !document.querySelector('#mix audio').paused",
                timeout=STATE_TIMEOUT,
            )
            layouts = {}
            for (width, height), path in SCREENSHOTS.items():
                await screenshot(b, path, width, height)
                layouts[width] = await b.evaluate(LAYOUT_JS)

            # The chair sets the room to the single picture: A follows, B's own choice stands.
            await open_view_menu(a)
            await click(a, "#room-mode-button")
            await b.wait_for(
                "window.mcu.messages.some(m => m.type === 'room_mode' && m.mode === 'mixed')"
                " && document.getElementById('notice').textContent.includes('single picture')",
                timeout=STATE_TIMEOUT,
            )
            a_view = await a.wait_for(
                "window.mcu.view.mode === 'mixed' && window.mcu.view", timeout=STATE_TIMEOUT
            )
            await wait_for_stats(a, decodes_mix, "the chair's mix (room default)", MIX_TIMEOUT)
            await click(a, "#room-mode-button")  # back to individual streams for the room
            await a.wait_for(
                "window.mcu.view.mode === 'forwarded'"
                " && !window.mcu.received.some(r => r.participantId === 'mix')",
                timeout=STATE_TIMEOUT,
            )
            b_after_room = await b.evaluate("window.mcu.view.mode")

            # B: View -> Individual streams: A's camera in the grid again.
            await open_view_menu(b)
            await click(b, "label:has(#view-forwarded)")
            back = await wait_for_stats(
                b, lambda s: camera_frames(s, a_id) > 0, "A's camera after the mix", MIX_TIMEOUT
            )
            again = await wait_for_stats(
                b,
                lambda s: camera_frames(s, a_id) > camera_frames(back, a_id) + 10,
                "A's camera still decoding",
                STATE_TIMEOUT,
            )
            await click(b, "#room-title")
            await b.wait_for(
                f"document.querySelector('#grid [data-participant={json.dumps(a_id)}] video')"
                ".videoWidth > 0",
                timeout=STATE_TIMEOUT,
            )
            await screenshot(b, "/tmp/mcu-individual-1280x800.png", 1280, 800)
            restored = await b.evaluate(LAYOUT_JS)
            restored_view = await b.evaluate("window.mcu.view")
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe(pages)}")

    assert initial_view == {"mode": "forwarded", "layout": "grid", "resolution": "1280x720"}
    assert b_chair_button is True  # the room control is the chair's
    assert sent_view == {"mode": "mixed", "layout": "grid", "resolution": "1280x720"}
    # Only the mix is carried: nothing of A's own tracks.
    assert len(mix_inbound(mixed, "video")) == 1, mixed
    assert not any(s["participantId"] == a_id for s in mixed["inbound"]), mixed
    for width, layout in layouts.items():
        assert layout["mix"]["shown"] and not layout["grid"]["shown"], (width, layout)
        assert layout["fit"] == "contain" and layout["picture"] == [1280, 720], layout
        assert layout["sound"], layout
        # The composite takes the stage; our own preview stays small.
        assert layout["mix"]["width"] >= 0.9 * width, (width, layout)
        mix_area = layout["mix"]["width"] * layout["mix"]["height"]
        assert 0 < layout["self"]["width"] * layout["self"]["height"] < 0.1 * mix_area, layout
    assert a_view["mode"] == "mixed"
    assert b_after_room == "mixed"
    assert not mix_inbound(again, "video"), again
    assert restored["grid"]["shown"] and not restored["mix"]["shown"], restored
    assert restored_view["mode"] == "forwarded"
