"""Chair actions, mute state, subscriptions and invites over the real protocol."""

from __future__ import annotations

from tests.support.room_client import ColourTrack, RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess


async def test_chair_mutes_and_removes_through_an_invite(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    chair_link = await server.invite("cardio-1", role="chair")
    chair = await joined_client(server, "Chair", invite=chair_link.split("invite=", 1)[1])
    doctor = await joined_client(server, "County doctor", password="correct horse")
    try:
        joined = next(m for m in chair.messages if m["type"] == "joined")
        assert joined["participant"]["role"] == "chair"
        await doctor.publish({"microphone": ToneTrack(), "camera": ColourTrack((10, 120, 200))})
        doctor_id = doctor.participant_id or ""
        await chair.wait_until(lambda: chair.frames_from(doctor_id, "audio") > 10)

        # A participant cannot use chair actions.
        reply = await doctor.request(
            {"type": "chair", "action": "remove", "participant_id": chair.participant_id}
        )
        assert reply["code"] == "forbidden"

        # The chair mutes the doctor's microphone: everyone is told, and forwarding stops.
        await chair.send(
            {"type": "chair", "action": "mute", "participant_id": doctor_id, "source": "microphone"}
        )
        muted = await doctor.wait_for(lambda m: m["type"] == "track_muted")
        assert (muted["muted"], muted["by"], muted["source"]) == (True, "chair", "microphone")
        await chair.wait_for(lambda m: m["type"] == "track_muted")
        sent_before = await server.metric("mcu_rtp_packets_sent_total")
        frames_video = chair.frames_from(doctor_id, "video")
        await chair.wait_until(lambda: chair.frames_from(doctor_id, "video") > frames_video + 10)
        audio_then = chair.frames_from(doctor_id, "audio")
        await chair.wait_until(lambda: chair.frames_from(doctor_id, "video") > frames_video + 20)
        # aiortc's jitter buffer may still release a few queued frames; far fewer than ~50/s.
        assert chair.frames_from(doctor_id, "audio") - audio_then < 10
        assert await server.metric("mcu_rtp_packets_sent_total") > sent_before

        # The doctor unmutes again: audio flows.
        await doctor.send({"type": "mute", "source": "microphone", "muted": False})
        await chair.wait_until(lambda: chair.frames_from(doctor_id, "audio") > audio_then + 30)

        # The chair removes the doctor.
        await chair.send({"type": "chair", "action": "remove", "participant_id": doctor_id})
        removed = await doctor.wait_for(lambda m: m["type"] == "removed")
        assert "Chair" in removed["reason"]
        await doctor.wait_for(lambda m: m["type"] == "_socket_closed")
        left = await chair.wait_for(lambda m: m["type"] == "participant_left")
        assert (left["participant_id"], left["reason"]) == (doctor_id, "removed")
    finally:
        await chair.close()
        await doctor.close()


async def test_subscription_limits_what_is_received(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    phone = await joined_client(server, "Phone", password="correct horse")
    presenter = await joined_client(server, "Presenter", password="correct horse")
    try:
        await phone.send({"type": "subscription", "sources": ["microphone", "content"]})
        await presenter.publish(
            {
                "microphone": ToneTrack(),
                "camera": ColourTrack((200, 200, 0)),
                "content": ColourTrack((0, 0, 0), width=640, height=360, fps=5),
            }
        )
        offer = await phone.wait_for(lambda m: m["type"] == "subscribe_offer")
        assert sorted(t["source"] for t in offer["tracks"]) == ["content", "microphone"]
        pid = presenter.participant_id or ""
        await phone.wait_until(
            lambda: phone.frames_from(pid, "video") > 3 and phone.frames_from(pid, "audio") > 10
        )
        content = next(t for t in phone.received.values() if t.kind == "video")
        assert content.source == "content" and content.last_frame.width == 640
        # Widening the subscription renegotiates to add the camera.
        await phone.send({"type": "subscription", "sources": ["microphone", "camera", "content"]})
        await phone.wait_until(
            lambda: sum(t.kind == "video" and t.frames > 0 for t in phone.received.values()) == 2
        )
        # Who joined later sees the tracks in its joined message.
        late = await joined_client(server, "Late", password="correct horse")
        joined = next(m for m in late.messages if m["type"] == "joined")
        sources = sorted(t["source"] for p in joined["participants"] for t in p["tracks"])
        assert sources == ["camera", "content", "microphone"]
        await late.wait_until(lambda: late.frames_from(pid, "video") > 5)
        await late.close()
    finally:
        await phone.close()
        await presenter.close()


async def test_room_deleted_by_admin_ends_the_session(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    client = await joined_client(server, "Doctor", password="correct horse")
    try:
        async with server.http.delete(server.base_url + "/api/rooms/cardio-1") as r:
            assert r.status == 204
        ended = await client.wait_for(lambda m: m["type"] == "room_ended")
        assert ended["reason"]
        await client.wait_for(lambda m: m["type"] == "_socket_closed")
    finally:
        await client.close()


async def test_a_title_changed_while_the_room_is_live_reaches_newcomers(
    server: ServerProcess,
) -> None:
    await server.create_room("cardio-1", "correct horse", title="Cardiology")
    first = await joined_client(server, "Doctor", password="correct horse")
    newcomer = None
    try:
        async with server.http.patch(
            server.base_url + "/api/rooms/cardio-1", json={"title": "心内科会诊"}
        ) as r:
            assert r.status == 200
        newcomer = RoomClient(server.ws_url, "Specialist")
        await newcomer.connect()
        joined = await newcomer.join("cardio-1", password="correct horse")
        assert joined["room"]["title"] == "心内科会诊", joined
    finally:
        for client in (first, newcomer):
            if client is not None:
                await client.close()


async def test_adding_a_track_renegotiates_for_everyone(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    presenter = await joined_client(server, "Presenter", password="correct horse")
    viewer = await joined_client(server, "Viewer", password="correct horse")
    try:
        await presenter.publish({"microphone": ToneTrack(), "camera": ColourTrack((0, 90, 0))})
        pid = presenter.participant_id or ""
        await viewer.wait_until(lambda: viewer.frames_from(pid, "video") > 3)
        reply = await presenter.publish(
            {"content": ColourTrack((250, 250, 250), width=640, height=360)}
        )
        assert sorted(t["mid"] for t in reply["tracks"]) == ["0", "1", "2"]
        published = await viewer.wait_for(
            lambda m: m["type"] == "track_published" and m["track"]["source"] == "content"
        )
        content_id = published["track"]["id"]
        await viewer.wait_until(
            lambda: content_id in viewer.received and viewer.received[content_id].frames > 3
        )
        frame = viewer.received[content_id].last_frame.to_ndarray(format="rgb24")
        assert frame.shape == (360, 640, 3) and frame[5, -1].min() > 200
        # The camera kept flowing through the renegotiation, with no track ended.
        assert not any(m["type"] == "track_unpublished" for m in viewer.messages)
    finally:
        await presenter.close()
        await viewer.close()


async def test_active_speaker_follows_the_loudest(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    quiet = await joined_client(server, "Quiet", password="correct horse")
    loud = await joined_client(server, "Loud", password="correct horse")
    try:
        await quiet.publish({"microphone": ToneTrack(300, amplitude=0.0005)})
        await loud.publish({"microphone": ToneTrack(500, amplitude=0.5)})
        event = await quiet.wait_for(lambda m: m["type"] == "active_speaker", timeout=10)
        assert event["participant_id"] == loud.participant_id
    finally:
        await quiet.close()
        await loud.close()
