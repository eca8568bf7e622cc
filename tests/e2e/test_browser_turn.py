"""End to end: a browser that may only use the TURN relay (`?ice=relay`) joins through coturn.

A real `turnserver` (tests/support/coturn.py) with a generated secret; the server hands the
page a credential for it in `joined.ice_servers`, and the page's connections use nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.chromium import CHROMIUM_PATH, Chromium, ChromiumError, chromium_available
from tests.e2e.room_page import (
    JOIN_TIMEOUT,
    decodes_video_from,
    describe,
    wait_for_stats,
    with_name,
)
from tests.support.coturn import Coturn, coturn_available
from tests.support.room_client import ColourTrack, RoomClient, ToneTrack
from tests.support.server import ServerProcess

pytestmark = [
    pytest.mark.skipif(
        not chromium_available(),
        reason=f"no Chromium at {CHROMIUM_PATH} (Debian package `chromium`; CI installs it)",
    ),
    pytest.mark.skipif(coturn_available() is not None, reason=str(coturn_available())),
]


async def test_browser_forced_to_relay_decodes_the_room(tmp_path: Path) -> None:
    async with Coturn(tmp_path / "turn") as turn:
        server = ServerProcess(
            tmp_path / "server",
            extra_args=[f"--turn-url={turn.url('udp')}"],
            env={"MCU_TURN_SECRET": turn.secret},
        )
        await server.start()
        doctor = RoomClient(server.ws_url, "County doctor")
        try:
            await server.create_room("relayed", "relay-secret-pass")
            await doctor.connect()
            assert (await doctor.join("relayed", password="relay-secret-pass"))["type"] == "joined"
            await doctor.publish({"microphone": ToneTrack(), "camera": ColourTrack((30, 200, 30))})
            link = await server.invite("relayed")
            url = with_name(server.base_url, link, "Hospital site") + "&ice=relay"
            async with Chromium() as browser:
                page = await browser.open(url)
                try:
                    await page.wait_for("window.mcu?.state === 'joined'", timeout=JOIN_TIMEOUT)
                    stats = await wait_for_stats(
                        page,
                        lambda s: (
                            decodes_video_from(s, str(doctor.participant_id))
                            and any(r is not None for r in s["routes"])
                        ),
                        "the doctor's video decoded through the relay",
                    )
                    # The page's own camera reaches the doctor through the relay too.
                    site = await page.evaluate("mcu.participantId")
                    await doctor.wait_until(lambda: doctor.frames_from(site, "video") >= 5, 30)
                except (AssertionError, TimeoutError, ChromiumError) as exc:
                    pytest.fail(f"{exc}\n{await describe([page])}\n{turn.log()[-3000:]}")
            routes = [r for r in stats["routes"] if r is not None]
            assert routes and all(r["local"] == "relay" for r in routes), routes
            assert all(r["relayProtocol"] == "udp" for r in routes), routes
        finally:
            await doctor.close()
            assert await server.stop() == 0, server.log()[-4000:]
