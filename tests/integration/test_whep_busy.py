"""A saturated worker refuses new WHEP viewers with 503 and Retry-After, and recovers."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from mcu.app.config import Config
from mcu.app.server import create_app
from mcu.signaling.endpoints.whip import BROADCASTING
from tests.support.whip import new_pc

TOKEN = "admin-token-for-tests-0123456789"


async def test_busy_worker_refuses_new_viewers_then_takes_them(tmp_path: Path) -> None:
    app = await create_app(
        Config(data_dir=tmp_path, admin_token=TOKEN, media_addresses=["127.0.0.1"])
    )
    saturated = [True]
    # The overload detector (sustained event-loop lag) is the boundary; what is under test is
    # what the endpoint does with its verdict.
    app[BROADCASTING].busy = lambda: saturated[0]
    pc = new_pc()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp.encode()
    async with TestClient(TestServer(app)) as client:
        room = {
            "id": "lesson-1",
            "title": "Lesson",
            "password": "lecturers-only",
            "kind": "lecture",
            "viewer_password": "for-every-site",
        }
        r = await client.post("/api/rooms", json=room, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 201, await r.text()
        headers = {"Content-Type": "application/sdp", "Authorization": "Bearer for-every-site"}
        r = await client.post("/whep/lesson-1", data=offer, headers=headers)
        assert r.status == 503, await r.text()
        assert r.headers["Retry-After"] == "5"
        assert (await r.json())["error"] == "busy"
        saturated[0] = False
        r = await client.post("/whep/lesson-1", data=offer, headers=headers)
        assert r.status == 201, await r.text()
        assert r.headers["Location"].startswith("/whep/lesson-1/")
        assert (await client.delete(r.headers["Location"], headers=headers)).status == 200
    await pc.close()
