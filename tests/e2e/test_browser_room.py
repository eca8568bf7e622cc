"""End to end: real headless Chromium tabs run the browser client against the server.

Uses the `server` fixture of tests/conftest.py (the `python -m mcu` subprocess on loopback) and
tests/e2e/chromium.py. Run inside a network namespace (scripts/test does) so that loopback is the
only interface Chromium can pick.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, Page, chromium_available
from tests.e2e.room_page import JOIN_TIMEOUT, describe, wait_for_media, with_name

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
)


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_two_browsers_exchange_media_through_forwarding(server: Any, codec: str) -> None:
    """Two invitees (chair and participant) see and hear each other; the server decodes nothing.

    With `?codec=h264` the client puts H.264 first (what recorded rooms want) and the forwarded
    stream keeps the codec it was published with.
    """
    room = "e2e-consult"
    await server.create_room(room, "e2e-secret-pass", title="E2E consultation")
    chair_link = await server.invite(room, role="chair")
    patient_link = await server.invite(room)
    urls = [
        with_name(server.base_url, chair_link, "Dr Chair", codec),
        with_name(server.base_url, patient_link, "Patient", codec),
    ]

    async with Chromium() as browser:
        pages: list[Page] = []
        try:
            for url in urls:
                pages.append(await browser.open(url))
            for page in pages:
                await page.wait_for("window.mcu?.state === 'joined'", timeout=JOIN_TIMEOUT)
            stats = await asyncio.gather(*(wait_for_media(page) for page in pages))
            sessions = [
                await page.evaluate(
                    "({id: mcu.participantId, role: mcu.role, others: mcu.participants})"
                )
                for page in pages
            ]
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe(pages)}")

    chair, patient = sessions
    assert chair["role"] == "chair"
    assert patient["role"] == "participant"
    assert [other["id"] for other in chair["others"]] == [patient["id"]]
    assert [other["id"] for other in patient["others"]] == [chair["id"]]
    for page_stats in stats:
        # Every received video section is mapped to a server track id via the offer's `tracks`.
        for inbound in page_stats["inbound"]:
            if inbound["packetsReceived"] > 0:
                assert inbound["trackId"], page_stats
        assert any(s["kind"] == "video" and s["packetsSent"] > 0 for s in page_stats["outbound"]), (
            page_stats
        )
        streams = page_stats["inbound"] + page_stats["outbound"]
        video_codecs = {s["codec"] for s in streams if s["kind"] == "video"}
        assert video_codecs == {f"video/{codec.upper()}"}, page_stats
    # Forwarding, not transcoding: the server never decoded a frame.
    assert await server.decoded_frames() == 0


async def test_wrong_password_is_reported_on_the_join_screen(server: Any) -> None:
    """A password join with the wrong password shows the server's refusal and stays retryable."""
    room = "e2e-locked"
    await server.create_room(room, "the-right-one", title="Locked")
    async with Chromium() as browser:
        page = await browser.open(f"{server.base_url}/r/{room}")
        try:
            await page.wait_for("document.getElementById('join-form') !== null && !!window.mcu")
            await page.evaluate(
                "document.getElementById('name').value = 'Visitor';"
                "document.getElementById('password').value = 'not-the-password';"
                "document.getElementById('join-form').requestSubmit(); true"
            )
            await page.wait_for("window.mcu.state === 'error'", timeout=JOIN_TIMEOUT)
            error = await page.evaluate("window.mcu.lastError")
            message = await page.evaluate("document.getElementById('join-error').textContent")
            button_enabled = await page.evaluate("!document.getElementById('join-button').disabled")
        except (TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc}\n{await describe([page])}")
    assert error["code"] == "wrong_password"
    assert "password" in message.lower()
    assert button_enabled
