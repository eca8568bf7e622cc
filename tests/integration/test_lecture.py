"""Lectures: a WHIP lecturer, WHEP and protocol viewers, hands, promotion, and refusals."""

from __future__ import annotations

import time

import aiohttp

from tests.support.room_client import ColourTrack, ToneTrack, joined_client
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer, WhipPublisher, delete, mean_colour, near, post_sdp

PASSWORD = "lecturers-only"
VIEWERS = "for-every-site"
BLUE = (20, 60, 220)
ORANGE = (230, 140, 20)


async def create_lecture(server: ServerProcess, room: str = "lesson-1") -> None:
    await server.create_room(
        room, PASSWORD, "Stroke care, lesson 4", kind="lecture", viewer_password=VIEWERS
    )


async def test_whip_lecture_reaches_whep_and_protocol_viewers(server: ServerProcess) -> None:
    await create_lecture(server)
    lecturer = WhipPublisher(server.base_url, "lesson-1", PASSWORD)
    status, body = await lecturer.publish([ToneTrack(), ColourTrack(BLUE)], name="Dr Wang")
    assert status == 201, body
    assert lecturer.location is not None and lecturer.location.startswith("/whip/lesson-1/")
    whep = WhepViewer(server.base_url, "lesson-1", VIEWERS)
    chair_link = await server.invite("lesson-1", role="chair")
    chair = await joined_client(
        server, "Moderator", room="lesson-1", invite=chair_link.split("invite=", 1)[1]
    )
    site = await joined_client(server, "Township site", room="lesson-1", password=VIEWERS)
    try:
        status, body = await whep.play(audio=2, video=2)
        assert status == 201, body
        # Both kinds of viewer decode the lecture: WHEP and the room protocol.
        await whep.wait_until(lambda: whep.frames("video") > 10 and whep.frames("audio") > 20)
        first_video = whep.section("video", 0)
        assert first_video is not None and near(mean_colour(first_video.last_frame), BLUE)
        # A late joiner gets a picture at once: its consumer asks for a keyframe when DTLS is up.
        late = WhepViewer(server.base_url, "lesson-1", VIEWERS)
        started = time.monotonic()
        status, body = await late.play()
        assert status == 201, body
        await late.wait_until(lambda: late.frames("video") > 0)
        print(f"late WHEP joiner: first picture {time.monotonic() - started:.2f} s after POST")
        assert await late.stop() == 200
        joined = next(m for m in site.messages if m["type"] == "joined")
        assert joined["participant"]["role"] == "viewer"
        assert joined["room"]["kind"] == "lecture"
        lecturer_id = joined["stage"]["video"][0]["participant_id"]
        assert joined["stage"]["video"][0]["name"] == "Dr Wang"
        await site.wait_until(lambda: site.frames_from(lecturer_id, "video") > 10)
        # Viewers are counted, not listed: the chair sees two (WHEP + protocol viewer).
        chair_joined = next(m for m in chair.messages if m["type"] == "joined")
        assert all(p["role"] != "viewer" for p in chair_joined["participants"])
        await chair.wait_for(lambda m: m["type"] == "viewers" and m["count"] == 2)
        assert not any(
            m["type"] == "participant_joined" and m["participant"]["role"] == "viewer"
            for m in chair.messages
        )
        # A viewer may not publish; it raises a hand and the chair promotes it.
        refused = await site.request({"type": "publish", "sdp": "v=0", "tracks": []})
        assert refused["code"] == "forbidden"
        await site.send({"type": "hand", "raised": True})
        hands = await chair.wait_for(lambda m: m["type"] == "hands" and m["hands"])
        site_id = hands["hands"][0]["participant_id"]
        await chair.send({"type": "chair", "action": "promote", "participant_id": site_id})
        await site.wait_for(lambda m: m["type"] == "role" and m["role"] == "participant")
        await chair.wait_for(
            lambda m: m["type"] == "participant_joined" and m["participant"]["id"] == site_id
        )
        # The promoted site speaks: the WHEP viewer's second video section shows it, no
        # renegotiation needed.
        answer = await site.publish({"camera": ColourTrack(ORANGE), "microphone": ToneTrack(660)})
        assert answer["type"] == "publish_answer", answer
        stage = await site.wait_for(lambda m: m["type"] == "stage" and len(m["video"]) == 2)
        assert [t["participant_id"] for t in stage["video"]] == [lecturer_id, site_id]
        await whep.wait_until(
            lambda: (
                (s := whep.section("video", 1)) is not None
                and s.last_frame is not None
                and near(mean_colour(s.last_frame), ORANGE)
            )
        )
        # Demoted: the site's tracks end, and it is a viewer again.
        await chair.send({"type": "chair", "action": "demote", "participant_id": site_id})
        await site.wait_for(lambda m: m["type"] == "role" and m["role"] == "viewer")
        left = await chair.wait_for(lambda m: m["type"] == "participant_left")
        assert (left["participant_id"], left["reason"]) == (site_id, "demoted")
        await site.wait_for(lambda m: m["type"] == "stage" and len(m["video"]) == 1)
        # DELETE ends the WHEP session; the WHIP DELETE ends the lecture's tracks.
        assert await whep.stop() == 200
        # The session URL alone does not end a session: it needs the token that made it.
        assert await delete(server.base_url + (lecturer.location or "")) == 401
        assert await delete(server.base_url + (lecturer.location or ""), VIEWERS) == 401
        assert await delete(server.base_url + (lecturer.location or ""), PASSWORD) == 200
        assert await delete(server.base_url + (lecturer.location or ""), PASSWORD) == 404
        await site.wait_for(lambda m: m["type"] == "stage" and not m["video"])
    finally:
        await lecturer.pc.close()
        await whep.pc.close()
        await chair.close()
        await site.close()


async def test_whip_and_whep_refuse_bad_requests(server: ServerProcess) -> None:
    await create_lecture(server)
    viewer = WhepViewer(server.base_url, "lesson-1", VIEWERS)
    viewer.pc.addTransceiver("video", direction="recvonly")
    await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
    offer = viewer.pc.localDescription.sdp
    try:
        for path in ("/whip/lesson-1", "/whep/lesson-1"):
            url = server.base_url + path
            status, body, headers = await post_sdp(url, offer, None)
            assert status == 401 and "Bearer" in headers.get("WWW-Authenticate", ""), body
            status, body, _ = await post_sdp(url, offer, "not-the-password")
            assert status == 401, body
            status, body, _ = await post_sdp(server.base_url + path + "-nope", offer, PASSWORD)
            assert status == 404 and "unknown_room" in body, body
            status, body, _ = await post_sdp(url, "v=0\r\ngarbage", PASSWORD)
            assert status == 400 and "bad_sdp" in body, body
            status, body, _ = await post_sdp(url, offer, PASSWORD, content_type="text/plain")
            assert status == 415, body
        # Viewers cannot publish over WHIP with their password.
        status, body, _ = await post_sdp(server.base_url + "/whip/lesson-1", offer, VIEWERS)
        assert status == 401, body
        # No trickle: PATCH on a session is refused clearly; unknown sessions are 404.
        async with aiohttp.ClientSession() as http:
            async with http.patch(server.base_url + "/whep/lesson-1/0-nope") as r:
                assert r.status == 405
            async with http.delete(server.base_url + "/whep/lesson-1/0-nope") as r:
                assert r.status == 404
        # The server is still well.
        async with server.http.get(server.base_url + "/healthz") as r:
            assert r.status == 200
    finally:
        await viewer.pc.close()
