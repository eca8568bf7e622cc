"""An end-to-end encrypted room refuses everything that needs its media in plaintext, on every
endpoint, with one code; forwarding goes on, and the refusals harm nothing else.

The real server process, aiortc clients on loopback, the admin API over HTTP.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.support.room_client import ColourTrack, RoomClient, ToneTrack
from tests.support.server import ServerProcess
from tests.support.whip import delete, new_pc, post_sdp

ROOM, PASSWORD = "e2ee-ward", "e2ee-password-1"


def _png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 90, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


async def _offer(audio: int, video: int, direction: str) -> str:
    pc = new_pc()
    for _ in range(audio):
        pc.addTransceiver("audio", direction=direction)
    for _ in range(video):
        pc.addTransceiver("video", direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


async def test_an_e2ee_room_refuses_what_needs_plaintext(server: ServerProcess) -> None:
    await server.create_room(ROOM, PASSWORD, e2ee=True)
    chair_invite = (await server.invite(ROOM, role="chair")).split("invite=", 1)[1]
    viewer_invite = (await server.invite(ROOM, role="viewer")).split("invite=", 1)[1]
    async with server.http.get(f"{server.base_url}/rooms/{ROOM}") as r:
        assert (await r.json())["e2ee"] is True  # what the join page reads

    chair = RoomClient(server.ws_url, "Dr Chair")
    other = RoomClient(server.ws_url, "Dr Other")
    await chair.connect()
    await other.connect()
    try:
        refused = await chair.join(ROOM, invite=chair_invite)  # a page without the key
        assert refused["type"] == "error" and refused["code"] == "e2ee_mismatch", refused
        joined = await chair.join(ROOM, invite=chair_invite, e2ee=True)
        assert joined["type"] == "joined" and joined["room"]["e2ee"] is True
        assert (await other.join(ROOM, PASSWORD, e2ee=True))["type"] == "joined"
        await chair.publish({"microphone": ToneTrack(), "camera": ColourTrack((20, 90, 200))})

        for request in (
            {"type": "chair", "action": "record", "active": True},
            {"type": "chair", "action": "room_mode", "mode": "mixed"},
            {"type": "subscription", "mode": "mixed"},
        ):
            reply = await chair.request(request)
            assert reply["type"] == "error" and reply["code"] == "e2ee_room", (request, reply)
            assert "end-to-end encrypted" in reply["message"]

        async with server.http.post(
            f"{server.base_url}/api/rooms/{ROOM}/recording", json={"active": True}
        ) as r:
            assert r.status == 409 and (await r.json())["error"] == "e2ee_room"
        async with server.http.post(
            f"{server.base_url}/rooms/{ROOM}/documents",
            data=_png(),
            headers={"Authorization": f"Bearer {joined['session_token']}"},
        ) as r:
            assert r.status == 409 and (await r.json())["error"] == "e2ee_room"

        whep = f"{server.base_url}/whep/{ROOM}"
        status, body, _ = await post_sdp(whep, await _offer(1, 1, "recvonly"), viewer_invite)
        assert status == 403 and "e2ee_room" in body and "room key" in body
        whip = f"{server.base_url}/whip/{ROOM}"
        status, body, _ = await post_sdp(whip, await _offer(1, 1, "sendonly"), PASSWORD)
        assert status == 403 and "e2ee_room" in body
        # A player that holds the key says so, and is admitted like any other.
        status, body, headers = await post_sdp(
            f"{whep}?e2ee=1", await _offer(1, 1, "recvonly"), viewer_invite
        )
        assert status == 201, body
        assert await delete(server.base_url + headers["Location"], viewer_invite) == 200

        # Refused, and nothing else: the room is not recorded, the other still receives.
        state = await chair.request({"type": "ping"})
        assert state["type"] == "pong"
        await other.wait_until(lambda: other.frames_from(chair.participant_id or "", "video") > 5)
        assert all(not m.get("active") for m in chair.messages if m.get("type") == "recording")
    finally:
        await chair.close()
        await other.close()

    # A room that is not end-to-end encrypted refuses a client that encrypts.
    await server.create_room("plain-ward", PASSWORD)
    stray = RoomClient(server.ws_url, "Stray")
    await stray.connect()
    try:
        reply = await stray.join("plain-ward", PASSWORD, e2ee=True)
        assert reply["type"] == "error" and reply["code"] == "e2ee_mismatch", reply
    finally:
        await stray.close()
