"""The room's features over a plain room: stage order, hands, audience, and domain errors as
the wire shows them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from mcu.media import CodecInfo, TrackSource
from mcu.sfu.producer import Producer
from mcu.sfu.stage import Stage
from mcu.signaling.endpoints.messages import ProtocolError
from mcu.signaling.rooms.audience import Audience
from mcu.signaling.rooms.errors import (
    FloorBusy,
    Forbidden,
    InvalidRequest,
    PageUnavailable,
    RoomDocumentsFull,
    RoomError,
    UnknownRoom,
)
from mcu.signaling.rooms.events import RoomEvent
from mcu.signaling.rooms.hands import Hands
from mcu.signaling.rooms.participant import Participant, PublishedTrack, Role
from mcu.signaling.rooms.ports import RoomView
from mcu.signaling.rooms.stage import describe_stage, refresh_stage, stage_order

VP8 = CodecInfo("video/VP8", 90000)
OPUS = CodecInfo("audio/opus", 48000, 2)


@dataclass
class PlainRoom:
    """A room reduced to what RoomView promises: people, and a broadcast that is written down."""

    id: str = "r1"
    title: str = "Cardiology"
    kind: str = "meeting"
    e2ee: bool = False
    ending: bool = False
    participants: dict[str, Participant] = field(default_factory=dict)
    active_speaker: str | None = None
    broadcasts: list[dict[str, Any]] = field(default_factory=list)
    events: list[RoomEvent] = field(default_factory=list)

    def producers(self) -> list[Producer]:
        return [t.producer for p in self.participants.values() for t in p.tracks.values()]

    async def broadcast(self, message: dict[str, Any], exclude: str | None = None) -> None:
        self.broadcasts.append(message)

    def emit(self, event: RoomEvent) -> None:
        self.events.append(event)


def _room(kind: str = "meeting") -> PlainRoom:
    room = PlainRoom(kind=kind)
    _view: RoomView = room  # the protocol is all a feature may rely on
    return room


def _join(room: PlainRoom, pid: str, role: Role, inbox: list[dict[str, Any]]) -> Participant:
    async def send(message: dict[str, Any]) -> None:
        inbox.append(message)

    participant = Participant(id=pid, name=pid.upper(), role=role, send=send)
    room.participants[pid] = participant
    return participant


def _publish(participant: Participant, source: TrackSource) -> Producer:
    codec = OPUS if source is TrackSource.MICROPHONE else VP8
    producer = Producer(f"t-{participant.id}-{source}", participant.id, source, codec, lambda: None)
    participant.tracks[str(source)] = PublishedTrack(producer, str(source))
    return producer


def test_stage_puts_content_first_then_cameras_in_join_order_and_no_viewer() -> None:
    room = _room()
    ana, ben, vic = (
        _join(room, "ana", "chair", []),
        _join(room, "ben", "participant", []),
        _join(room, "vic", "viewer", []),
    )
    ana_camera, ana_mic = _publish(ana, TrackSource.CAMERA), _publish(ana, TrackSource.MICROPHONE)
    ben_camera, ben_content = _publish(ben, TrackSource.CAMERA), _publish(ben, TrackSource.CONTENT)
    _publish(vic, TrackSource.CAMERA)  # a viewer's track (before a demotion ended it) is not shown

    video, audio = stage_order(room.participants.values())

    assert video == [ben_content, ana_camera, ben_camera]
    assert audio == [ana_mic]


async def test_a_lecture_hears_of_its_stage_and_a_meeting_tells_only_its_viewers() -> None:
    for kind in ("lecture", "meeting"):
        room = _room(kind)
        chair_inbox: list[dict[str, Any]] = []
        viewer_inbox: list[dict[str, Any]] = []
        chair = _join(room, "ana", "chair", chair_inbox)
        _join(room, "vic", "viewer", viewer_inbox)
        track = _publish(chair, TrackSource.CAMERA)
        chair.tracks[str(TrackSource.CAMERA)].muted = True
        stage = Stage(room.id)

        await refresh_stage(room, stage)
        await refresh_stage(room, stage)  # unchanged: nobody is told again

        expected = {
            "type": "stage",
            "video": [
                {
                    "id": track.track_id,
                    "participant_id": "ana",
                    "name": "ANA",
                    "kind": "video",
                    "source": "camera",
                    "muted": True,
                }
            ],
            "audio": [],
        }
        assert stage.video == [track]
        assert describe_stage(stage, room.participants) | {"type": "stage"} == expected
        if kind == "lecture":
            assert room.broadcasts == [expected] and viewer_inbox == []
        else:
            assert room.broadcasts == [] and viewer_inbox == [expected] and chair_inbox == []


async def test_an_ending_room_leaves_its_stage_alone() -> None:
    room = _room("lecture")
    _publish(_join(room, "ana", "chair", []), TrackSource.CAMERA)
    room.ending = True
    stage = Stage(room.id)
    await refresh_stage(room, stage)
    assert stage.video == [] and room.broadcasts == []


async def test_viewers_raise_hands_for_the_chairs_and_speakers_may_not() -> None:
    room = _room("lecture")
    chair_inbox: list[dict[str, Any]] = []
    speaker_inbox: list[dict[str, Any]] = []
    _join(room, "ana", "chair", chair_inbox)
    ben = _join(room, "ben", "participant", speaker_inbox)
    vic = _join(room, "vic", "viewer", [])
    hands = Hands(room)

    await hands.set_hand(vic, True)
    await hands.set_hand(vic, True)  # no change: the chairs are not told again

    assert chair_inbox == [{"type": "hands", "hands": [{"participant_id": "vic", "name": "VIC"}]}]
    assert speaker_inbox == []
    with pytest.raises(Forbidden) as refused:
        await hands.set_hand(ben, True)
    assert refused.value.code == "forbidden"
    assert not ben.hand_raised


async def test_a_meeting_names_who_watches_and_a_lecture_only_counts() -> None:
    for kind in ("meeting", "lecture"):
        room = _room(kind)
        _join(room, "ana", "chair", [])
        _join(room, "vic", "viewer", [])
        audience = Audience(room)
        try:
            audience.whep_watchers["w1"] = "Ward 3"
            audience.set_remote_watchers("2", 2, {"w9": "Ward 9"})
            assert audience.viewer_count() == 4
            if kind == "meeting":
                assert audience.watchers() == [
                    {"id": "vic", "name": "VIC"},
                    {"id": "w1", "name": "Ward 3"},
                    {"id": "w9", "name": "Ward 9"},
                ]
            else:
                assert audience.watchers() == []
            audience.forget_worker("2")
            assert audience.viewer_count() == 2
        finally:
            audience.stop()
        await asyncio.sleep(0)  # let the cancelled announcement finish


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Forbidden("viewers cannot present; raise a hand to speak"), "forbidden"),
        (FloorBusy("someone else is presenting; request the floor"), "floor_busy"),
        (InvalidRequest("source camera is listed twice"), "bad_message"),
        (InvalidRequest("no m= line", code="bad_sdp"), "bad_sdp"),
        (InvalidRequest("no document 'd1' of yours", code="unknown_document"), "unknown_document"),
        (PageUnavailable("page 2 is damaged", code="corrupt"), "corrupt"),
        (RoomDocumentsFull("the room holds 20 documents"), "too_many_documents"),
        (UnknownRoom("no room 'x'"), "unknown_room"),
    ],
)
def test_a_room_error_reaches_the_wire_with_its_code_and_message(
    error: RoomError, code: str
) -> None:
    assert error.code == code
    assert ProtocolError.from_room(error, 7).to_message() == {
        "type": "error",
        "code": code,
        "message": error.message,
        "id": 7,
    }
    assert "id" not in ProtocolError.from_room(error).to_message()
