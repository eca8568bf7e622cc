"""End to end: a meeting watched through a viewer invite, in real Chromium tabs.

The doctor (a chair invite) publishes the fake camera; a student opens the viewer invite's link
(`/r/<room>?invite=<viewer token>`, no `?view`: the page reads the role from the token), joins
with `"media": "none"` and watches over WHEP; the doctor's page says who watches. Run inside a
network namespace (scripts/test does) so that loopback is the only interface Chromium can pick.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, Page, chromium_available
from tests.e2e.room_page import (
    JOIN_TIMEOUT,
    decodes_video_from,
    describe,
    sends_video,
    wait_for_stats,
    with_name,
)

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
)

ROOM = "e2e-consult"
PASSWORD = "consult-pass-1"
SCENARIO_TIMEOUT = 55.0


def text_of(element_id: str) -> str:
    """A JS expression: the trimmed text of the element with that id."""
    return f"document.getElementById({json.dumps(element_id)}).textContent.trim()"


async def test_a_viewer_invite_watches_a_meeting_and_the_doctor_sees_it(server: Any) -> None:
    await server.create_room(ROOM, PASSWORD, "Cardiology consult")
    chair_link = await server.invite(ROOM, role="chair")
    viewer_link = (await server.invite(ROOM, role="viewer")).replace("?view&", "?")

    async with Chromium() as browser:
        pages: list[Page] = []
        try:
            async with asyncio.timeout(SCENARIO_TIMEOUT):
                doctor = await browser.open(with_name(server.base_url, chair_link, "Dr Li"))
                pages.append(doctor)
                await doctor.wait_for("window.mcu?.state === 'joined'", timeout=JOIN_TIMEOUT)
                await wait_for_stats(doctor, sends_video, "the doctor's camera going out")
                doctor_id: str = await doctor.evaluate("mcu.participantId")
                assert await doctor.evaluate("document.getElementById('viewer-count').hidden")

                student = await browser.open(with_name(server.base_url, viewer_link, "Student Ma"))
                pages.append(student)
                await student.wait_for("window.mcu?.state === 'joined'", timeout=JOIN_TIMEOUT)
                assert await student.evaluate("mcu.role") == "viewer"
                # The watch-only page: no camera or microphone asked for, nothing sent.
                assert await student.evaluate("document.getElementById('device-fields').hidden")
                assert await student.evaluate("document.getElementById('mic-button').hidden")
                stats = await wait_for_stats(
                    student,
                    lambda s: decodes_video_from(s, doctor_id),
                    "the doctor's video over WHEP",
                )
                assert stats["subscribeConnection"] is None, stats
                assert stats["publishConnection"] is None, stats
                assert stats["whepConnection"] == "connected", stats

                # The doctor sees that the consultation is watched, and by whom.
                await doctor.wait_for(f"{text_of('viewer-count')} === 'Watched by 1: Student Ma'")
                assert not await doctor.evaluate("document.getElementById('viewer-count').hidden")
                assert await doctor.evaluate("mcu.participants.length") == 0

                await student.evaluate("mcu.leave(), true")
                await doctor.wait_for("document.getElementById('viewer-count').hidden")
        except (AssertionError, TimeoutError, ChromiumError) as exc:
            pytest.fail(f"{exc!r}\n{await describe(pages)}\n{server.log()[-3000:]}")
