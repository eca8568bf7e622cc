"""Watching a meeting: viewer invites over WHEP and the audience page, seen by the participants."""

from __future__ import annotations

from typing import Any

from aiortc import RTCRtpSender

from tests.support.room_client import ColourTrack, RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer, WhipPublisher, mean_colour, near, post_sdp

PASSWORD = "consult-pass"
GREEN = (30, 200, 60)
RED = (200, 30, 30)


def _token(link: str) -> str:
    return link.split("invite=", 1)[1]


def _watched(message: dict[str, Any], names: list[str]) -> bool:
    """A ``viewers`` event saying exactly these people watch."""
    if message["type"] != "viewers" or message["count"] != len(names):
        return False
    return sorted(w["name"] for w in message.get("watchers", [])) == sorted(names)


async def _vp8_first_publisher(server: ServerProcess, room: str) -> WhipPublisher:
    # aiortc lists VP8 first, as some browsers do: a meeting answers it with VP8.
    publisher = WhipPublisher(server.base_url, room, PASSWORD)
    status, body = await publisher.publish(
        [ToneTrack(), ColourTrack(GREEN)], video_codec="video/VP8", name="County doctor"
    )
    assert status == 201, body
    assert "VP8/90000" in body.split("m=video", 1)[1].split("a=rtpmap", 2)[1]
    return publisher


async def _decodes_green(viewer: WhepViewer) -> None:
    await viewer.wait_until(lambda: viewer.frames("video") > 10 and viewer.frames("audio") > 20)
    section = viewer.section("video", 0)
    assert section is not None and near(mean_colour(section.last_frame), GREEN)


def _colour_is(viewer: WhepViewer, index: int, colour: tuple[int, int, int]) -> bool:
    section = viewer.section("video", index)
    return (
        section is not None
        and section.last_frame is not None
        and near(mean_colour(section.last_frame), colour)
    )


async def test_a_whep_player_with_a_viewer_invite_watches_a_meeting_and_is_shown(
    server: ServerProcess,
) -> None:
    await server.create_room("cardio-1", PASSWORD, "Cardiology consult")
    doctor = await joined_client(server, "Dr Li", password=PASSWORD)
    publisher = await _vp8_first_publisher(server, "cardio-1")
    player = WhepViewer(
        server.base_url, "cardio-1", _token(await server.invite("cardio-1", "viewer"))
    )
    anonymous = WhepViewer(
        server.base_url, "cardio-1", _token(await server.invite("cardio-1", "viewer"))
    )
    try:
        # The player offers VP8 and H.264 (H.264 would be preferred): it decodes the VP8 camera.
        status, body = await player.play(audio=1, video=2, name="Registrar Zhou")
        assert status == 201, body
        await _decodes_green(player)
        # The participants see who watches: the count and the name, in the room's signalling.
        await doctor.wait_for(lambda m: _watched(m, ["Registrar Zhou"]))
        status, body = await anonymous.play()
        assert status == 201, body
        await doctor.wait_for(lambda m: _watched(m, ["Registrar Zhou", "WHEP viewer"]))
        # Someone joining later learns it from `joined`.
        nurse = await joined_client(server, "Nurse Wu", password=PASSWORD)
        joined = next(m for m in nurse.messages if m["type"] == "joined")
        assert joined["viewers"] == 2
        assert sorted(w["name"] for w in joined["watchers"]) == ["Registrar Zhou", "WHEP viewer"]
        await nurse.close()
        assert await player.stop() == 200
        assert await anonymous.stop() == 200
        await doctor.wait_for(lambda m: _watched(m, []))
    finally:
        await player.stop()
        await anonymous.stop()
        await publisher.stop()
        await doctor.close()


async def test_a_meeting_refuses_whep_without_a_viewer_grant(server: ServerProcess) -> None:
    await server.create_room("cardio-1", PASSWORD, "Cardiology consult")
    doctor = await joined_client(server, "Dr Li", password=PASSWORD)
    publisher = await _vp8_first_publisher(server, "cardio-1")
    probe = WhepViewer(server.base_url, "cardio-1", PASSWORD)
    probe.pc.addTransceiver("video", direction="recvonly")
    await probe.pc.setLocalDescription(await probe.pc.createOffer())
    offer = probe.pc.localDescription.sdp
    url = server.base_url + "/whep/cardio-1"
    try:
        # The room password admits participants, who are seen; it never admits unseen watching.
        status, body, _ = await post_sdp(url, offer, PASSWORD)
        assert status == 403 and "viewer_invite_required" in body, body
        assert "viewer invite" in body, body
        participant = _token(await server.invite("cardio-1", "participant"))
        status, body, _ = await post_sdp(url, offer, participant)
        assert status == 403 and "viewer_invite_required" in body, body
        status, body, headers = await post_sdp(url, offer, "not-the-password")
        assert status == 401 and "Bearer" in headers.get("WWW-Authenticate", ""), body
        assert not any(m["type"] == "viewers" and m["count"] for m in doctor.messages)
        # The room goes on.
        async with server.http.get(server.base_url + "/healthz") as r:
            assert r.status == 200
    finally:
        await probe.pc.close()
        await publisher.stop()
        await doctor.close()


async def test_the_audience_page_joins_a_meeting_with_a_viewer_invite(
    server: ServerProcess,
) -> None:
    # What /r/{room}?invite=<viewer invite> does: join with media "none", then play the stage
    # over WHEP with the session token.
    await server.create_room("cardio-1", PASSWORD, "Cardiology consult")
    doctor = await joined_client(server, "Dr Li", password=PASSWORD)
    publisher = await _vp8_first_publisher(server, "cardio-1")
    page = RoomClient(server.ws_url, "Student Ma")
    await page.connect()
    whep: WhepViewer | None = None
    try:
        link = await server.invite("cardio-1", "viewer")
        joined = await page.request(
            {"type": "join", "room": "cardio-1", "name": "Student Ma", "invite": _token(link),
             "media": "none"}
        )  # fmt: skip
        assert joined["type"] == "joined", joined
        assert joined["participant"]["role"] == "viewer"
        assert joined["room"]["kind"] == "meeting"
        assert [p["name"] for p in joined["participants"]] == ["Dr Li", "County doctor"]
        assert [t["name"] for t in joined["stage"]["video"]] == ["County doctor"]
        whep = WhepViewer(server.base_url, "cardio-1", joined["session_token"])
        status, body = await whep.play(audio=3, video=3)
        assert status == 201, body
        await _decodes_green(whep)
        # Listed once, by the name given on the page (its own WHEP session is not a second one).
        await doctor.wait_for(lambda m: _watched(m, ["Student Ma"]))
        # The viewer is not a participant: no tile, no track, no publishing.
        assert not any(
            m["type"] == "participant_joined" and m["participant"]["name"] == "Student Ma"
            for m in doctor.messages
        )
        refused = await page.request({"type": "publish", "sdp": "v=0", "tracks": []})
        assert refused["code"] == "forbidden"
        # A stage change reaches the viewer page (it maps WHEP sections to people by it).
        await doctor.publish({"camera": ColourTrack(RED)}, video_codec="video/H264")
        stage = await page.wait_for(lambda m: m["type"] == "stage" and len(m["video"]) == 2)
        # People in join order: Dr Li's H.264 camera takes the first section from the VP8 one.
        assert [t["name"] for t in stage["video"]] == ["Dr Li", "County doctor"]
        await whep.wait_until(lambda: _colour_is(whep, 0, RED) and _colour_is(whep, 1, GREEN))
        await page.send({"type": "leave"})
        await doctor.wait_for(lambda m: _watched(m, []))
    finally:
        if whep is not None:
            await whep.stop()
        await page.close()
        await publisher.stop()
        await doctor.close()


async def test_a_vp8_publisher_in_a_lecture_reaches_whep_players(server: ServerProcess) -> None:
    # Lectures prefer H.264, but a publisher that offers only VP8 gets VP8.
    await server.create_room(
        "lesson-1", PASSWORD, "Lesson", kind="lecture", viewer_password="audience-pass"
    )
    publisher = WhipPublisher(server.base_url, "lesson-1", PASSWORD)
    publisher.pc.addTransceiver(ToneTrack(), direction="sendonly")
    video = publisher.pc.addTransceiver(ColourTrack(GREEN), direction="sendonly")
    caps = RTCRtpSender.getCapabilities("video").codecs
    video.setCodecPreferences([c for c in caps if c.mimeType in ("video/VP8", "video/rtx")])
    status, body = await publisher.publish([])
    assert status == 201, body
    viewer = WhepViewer(server.base_url, "lesson-1", "audience-pass")
    try:
        status, body = await viewer.play()
        assert status == 201, body
        await _decodes_green(viewer)
    finally:
        await viewer.stop()
        await publisher.stop()


async def test_watchers_on_another_worker_are_named_too(cluster: ServerProcess) -> None:
    await cluster.create_room("cardio-1", PASSWORD, "Cardiology consult")
    doctor = await joined_client(cluster, "Dr Li", password=PASSWORD)
    publisher = await _vp8_first_publisher(cluster, "cardio-1")
    players = [
        WhepViewer(cluster.base_url, "cardio-1", _token(await cluster.invite("cardio-1", "viewer")))
        for _ in range(2)
    ]
    try:
        for player, name in zip(players, ["Dr Sun", "Dr Qian"], strict=True):
            status, body = await player.play(name=name)
            assert status == 201, body
        # The front spread them; the one on the edge worker is named through the relay's report.
        workers = {(p.location or "").rsplit("/", 1)[1].split("-", 1)[0] for p in players}
        assert workers == {"0", "1"}, [p.location for p in players]
        for player in players:
            await _decodes_green(player)
        await doctor.wait_for(lambda m: _watched(m, ["Dr Sun", "Dr Qian"]))
        assert await players[1].stop() == 200
        await doctor.wait_for(lambda m: _watched(m, ["Dr Sun"]))
    finally:
        for player in players:
            await player.stop()
        await publisher.stop()
        await doctor.close()
