"""Offers and answers with more media sections than any client needs are refused up front."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiortc import RTCSessionDescription

from tests.support.room_client import ColourTrack, ToneTrack, joined_client
from tests.support.sdp import media_sections, with_extra_sections
from tests.support.server import ServerProcess
from tests.support.whip import WhipPublisher, new_pc, post_sdp

PASSWORD = "lecturers-only"
VIEWERS = "for-every-site"
SECTIONS = 500  # a hostile client's count; the 16 allowed are plenty for any real one


async def _health(server: ServerProcess) -> dict[str, Any]:
    health: dict[str, Any] = await server.get_json("/healthz")
    return health


async def test_publish_offer_with_too_many_sections_is_bad_sdp(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    client = await joined_client(server, "a", password="correct horse")
    pc = new_pc()
    try:
        pc.addTransceiver(ToneTrack(), direction="sendonly")
        video = pc.addTransceiver(ColourTrack((200, 40, 40)), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = with_extra_sections(pc.localDescription.sdp, SECTIONS)
        assert media_sections(offer) == SECTIONS
        reply = await client.request(
            {"type": "publish", "sdp": offer, "tracks": [{"mid": video.mid, "source": "camera"}]}
        )
        assert reply["type"] == "error" and reply["code"] == "bad_sdp", reply
        assert f"{SECTIONS} media sections" in reply["message"] and "16" in reply["message"]
        # Still in the room, and an ordinary offer is answered.
        reply = await client.publish({"camera": ColourTrack((200, 40, 40))})
        assert reply["type"] == "publish_answer", reply
    finally:
        await pc.close()
        await client.close()


async def test_subscribe_answer_with_more_sections_than_offered_is_bad_sdp(
    server: ServerProcess,
) -> None:
    await server.create_room("cardio-1", "correct horse")
    publisher = await joined_client(server, "a", password="correct horse")
    pc = new_pc()
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url) as ws:
            join = {"type": "join", "room": "cardio-1", "name": "b", "password": "correct horse"}
            await ws.send_json(join)
            await publisher.publish({"camera": ColourTrack((40, 200, 40))})
            offer: dict[str, Any] = {}
            for _ in range(50):  # a few room events come before the offer
                offer = json.loads((await ws.receive(timeout=20)).data)
                if offer["type"] == "subscribe_offer":
                    break
            assert offer["type"] == "subscribe_offer", offer
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            answer = with_extra_sections(pc.localDescription.sdp, SECTIONS)
            await ws.send_json({"type": "subscribe_answer", "sdp": answer, "id": 7})
            reply: dict[str, Any] = {}
            for _ in range(50):
                reply = json.loads((await ws.receive(timeout=20)).data)
                if reply.get("id") == 7:
                    break
            assert reply["type"] == "error" and reply["code"] == "bad_sdp", reply
            offered = media_sections(offer["sdp"])
            assert f"{SECTIONS} media sections" in reply["message"], reply
            assert f"offer has {offered}" in reply["message"], reply
    finally:
        await pc.close()
        await publisher.close()


async def test_whip_and_whep_offers_with_too_many_sections_are_400(
    server: ServerProcess,
) -> None:
    await server.create_room(
        "lesson-1", PASSWORD, "Lesson", kind="lecture", viewer_password=VIEWERS
    )
    lecturer = WhipPublisher(server.base_url, "lesson-1", PASSWORD)
    whip, whep = new_pc(), new_pc()
    try:
        whip.addTransceiver(ToneTrack(), direction="sendonly")
        whip.addTransceiver(ColourTrack((40, 40, 200)), direction="sendonly")
        await whip.setLocalDescription(await whip.createOffer())
        offer = with_extra_sections(whip.localDescription.sdp, SECTIONS)
        status, body, _ = await post_sdp(server.base_url + "/whip/lesson-1", offer, PASSWORD)
        assert status == 400 and json.loads(body)["error"] == "bad_sdp", body
        assert f"{SECTIONS} media sections" in body
        assert (await _health(server))["participants"] == 0

        whep.addTransceiver("audio", direction="recvonly")
        whep.addTransceiver("video", direction="recvonly")
        await whep.setLocalDescription(await whep.createOffer())
        offer = with_extra_sections(whep.localDescription.sdp, SECTIONS)
        status, body, _ = await post_sdp(server.base_url + "/whep/lesson-1", offer, VIEWERS)
        assert status == 400 and json.loads(body)["error"] == "bad_sdp", body
        assert f"{SECTIONS} media sections" in body
        assert (await _health(server))["viewers"] == 0

        # Ordinary offers still work.
        status, body = await lecturer.publish([ToneTrack(), ColourTrack((40, 40, 200))])
        assert status == 201, body
    finally:
        await lecturer.stop()
        await whip.close()
        await whep.close()
