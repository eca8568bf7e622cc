"""Reconnecting: a participant whose connection drops comes back as itself, or leaves after the
grace period (docs/protocol.md, Resuming a session). Real aiortc clients, media decoded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.room_client import ColourTrack, RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess

PASSWORD = "correct horse"
VIEWERS = "audience-password"
BACK_AND_FORTH = ("participant_reconnecting", "participant_back")


def about(client: RoomClient, participant_id: str, *types: str) -> list[dict[str, Any]]:
    """The messages of these types that ``client`` got about ``participant_id``."""
    return [
        m
        for m in client.messages
        if m["type"] in types
        and participant_id in (m.get("participant_id"), m.get("participant", {}).get("id"))
    ]


async def test_a_dropped_chair_resumes_with_its_role_floor_tracks_and_media(
    server: ServerProcess,
) -> None:
    await server.create_room("cardio-1", PASSWORD)
    chair_link = await server.invite("cardio-1", role="chair")
    chair = await joined_client(server, "Chair", invite=chair_link.split("invite=", 1)[1])
    doctor = await joined_client(server, "County doctor", password=PASSWORD)
    try:
        chair_id, doctor_id = chair.participant_id or "", doctor.participant_id or ""
        first = await chair.publish(
            {
                "microphone": ToneTrack(),
                "camera": ColourTrack((10, 120, 200)),
                "content": ColourTrack((250, 250, 250), width=640, height=360, fps=5),
            }
        )
        track_ids = sorted(t["track_id"] for t in first["tracks"])
        await doctor.publish({"microphone": ToneTrack(880)})
        await doctor.wait_until(lambda: doctor.frames_from(chair_id, "video") > 10)
        await chair.wait_until(lambda: chair.frames_from(doctor_id, "audio") > 10)
        floor = await doctor.wait_for(lambda m: m["type"] == "floor" and m["mode"] == "stream")
        assert floor["holder"] == chair_id

        # The chair's network drops: socket and media gone, no leave.
        await chair.drop()
        away = await doctor.wait_for(lambda m: m["type"] == "participant_reconnecting")
        assert away["participant_id"] == chair_id
        frames_at_drop = {t: doctor.received[t].frames for t in track_ids if t in doctor.received}

        joined = await chair.resume("cardio-1")
        assert joined["type"] == "joined" and joined["resumed"] is True
        assert joined["participant"]["id"] == chair_id
        assert joined["participant"]["role"] == "chair"
        assert sorted(t["id"] for t in joined["participant"]["tracks"]) == track_ids
        assert (joined["floor"]["holder"], joined["floor"]["mode"]) == (chair_id, "stream")
        assert [p["id"] for p in joined["participants"]] == [doctor_id]
        back = await doctor.wait_for(lambda m: m["type"] == "participant_back")
        assert back["participant_id"] == chair_id

        # Publishing again brings the same tracks back: same ids, nothing renegotiated by others.
        again = await chair.publish(
            {
                "microphone": ToneTrack(),
                "camera": ColourTrack((10, 120, 200)),
                "content": ColourTrack((250, 250, 250), width=640, height=360, fps=5),
            }
        )
        assert sorted(t["track_id"] for t in again["tracks"]) == track_ids
        # The doctor decodes the chair's camera and content again on the same tracks ...
        video = [t for t in frames_at_drop if doctor.received[t].kind == "video"]
        assert len(video) == 2
        await doctor.wait_until(
            lambda: all(doctor.received[t].frames > frames_at_drop[t] + 5 for t in video),
            timeout=30,
        )
        # ... and the chair receives the doctor again on its new subscribe connection.
        await chair.wait_until(lambda: chair.frames_from(doctor_id, "audio") > 10, timeout=30)

        # Chair rights are intact.
        await chair.send(
            {"type": "chair", "action": "mute", "participant_id": doctor_id, "source": "microphone"}
        )
        muted = await doctor.wait_for(lambda m: m["type"] == "track_muted")
        assert (muted["by"], muted["muted"]) == ("chair", True)

        # Nobody saw the chair leave, join again, or lose its tracks or the floor.
        assert about(doctor, chair_id, "participant_left", "participant_joined") == []
        assert [m for m in doctor.messages if m["type"] == "track_unpublished"] == []
        assert [m for m in doctor.messages if m["type"] == "floor" and m["reason"] == "left"] == []
        assert [m["type"] for m in about(doctor, chair_id, *BACK_AND_FORTH)] == list(BACK_AND_FORTH)
    finally:
        await chair.close()
        await doctor.close()


async def test_a_lecture_viewer_keeps_its_raised_hand_across_workers(
    cluster: ServerProcess,
) -> None:
    """With workers the front routes the resume, like the join, to the room's home."""
    await cluster.create_room(
        "lesson-1", PASSWORD, "Stroke care", kind="lecture", viewer_password=VIEWERS
    )
    chair_link = await cluster.invite("lesson-1", role="chair")
    chair = await joined_client(
        cluster, "Lecturer", "lesson-1", invite=chair_link.split("invite=", 1)[1]
    )
    viewer = RoomClient(cluster.ws_url, "Site 3")
    await viewer.connect()
    try:
        joined = await viewer.join("lesson-1", password=VIEWERS, media="none")
        viewer_id = joined["participant"]["id"]
        await viewer.send({"type": "hand", "raised": True})
        await chair.wait_for(lambda m: m["type"] == "hands" and len(m["hands"]) == 1)

        await viewer.drop()
        resumed = await viewer.resume("lesson-1", media="none")
        assert resumed["resumed"] is True and resumed["hand_raised"] is True
        assert (resumed["participant"]["id"], resumed["participant"]["role"]) == (
            viewer_id,
            "viewer",
        )
        # The chair's list never lost the hand, and promoting it works as before.
        assert all(m["hands"] for m in chair.messages if m["type"] == "hands")
        await chair.send({"type": "chair", "action": "promote", "participant_id": viewer_id})
        role = await viewer.wait_for(lambda m: m["type"] == "role")
        assert role["role"] == "participant"

        # A wrong token resumes nothing, and says no more than that.
        intruder = RoomClient(cluster.ws_url, "Intruder")
        await intruder.connect()
        reply = await intruder.request(
            {
                "type": "join",
                "room": "lesson-1",
                "resume": {"participant_id": viewer_id, "token": "x" * 32},
            }
        )
        assert reply["type"] == "error" and reply["code"] == "resume_failed"
        await intruder.close()
    finally:
        await chair.close()
        await viewer.close()


@pytest.fixture
async def short_grace(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", extra_args=["--reconnect-grace", "1"])
    await process.start()
    try:
        yield process
    finally:
        assert await process.stop() == 0, process.log()[-4000:]


async def test_after_the_grace_period_a_dropped_participant_leaves(
    short_grace: ServerProcess,
) -> None:
    server = short_grace
    await server.create_room("cardio-1", PASSWORD)
    doctor = await joined_client(server, "County doctor", password=PASSWORD)
    patient = await joined_client(server, "Patient", password=PASSWORD)
    try:
        patient_id = patient.participant_id or ""
        await patient.publish({"microphone": ToneTrack()})
        await doctor.wait_until(lambda: doctor.frames_from(patient_id, "audio") > 5)
        await patient.drop()
        await doctor.wait_for(lambda m: m["type"] == "participant_reconnecting")
        left = await doctor.wait_for(lambda m: m["type"] == "participant_left", timeout=10)
        assert (left["participant_id"], left["reason"]) == (patient_id, "disconnected")
        # Its track ended first, as at any leave.
        assert any(m["type"] == "track_unpublished" for m in doctor.messages)
        reply = await patient.resume("cardio-1")
        assert reply["type"] == "error" and reply["code"] == "resume_failed", reply
    finally:
        await doctor.close()
        await patient.close()


async def test_a_resume_takes_over_a_socket_the_server_still_thinks_open(
    server: ServerProcess,
) -> None:
    """After a Wi-Fi hand-over the old TCP connection may look alive to the server for a while:
    the client's resume closes it, and the others see the participant reconnect and come back."""
    await server.create_room("cardio-1", PASSWORD)
    doctor = await joined_client(server, "County doctor", password=PASSWORD)
    patient = await joined_client(server, "Patient", password=PASSWORD)
    again = RoomClient(server.ws_url, "Patient")
    try:
        patient_id = patient.participant_id or ""
        again.participant_id, again.resume_token = patient_id, patient.resume_token
        joined = await again.resume("cardio-1", media="none")
        assert joined["resumed"] is True and joined["participant"]["id"] == patient_id
        await patient.wait_for(lambda m: m["type"] == "_socket_closed")  # the old one, closed
        await doctor.wait_for(lambda m: m["type"] == "participant_back")
        assert [m["type"] for m in about(doctor, patient_id, *BACK_AND_FORTH)] == list(
            BACK_AND_FORTH
        )
        # The session is the new socket's: it leaves for good.
        await again.send({"type": "leave"})
        left = await doctor.wait_for(lambda m: m["type"] == "participant_left")
        assert (left["participant_id"], left["reason"]) == (patient_id, "left")
    finally:
        for client in (doctor, patient, again):
            await client.close()
