"""Which of a room's tracks its viewers receive, in what order, and telling them.

The media plane's :class:`~mcu.sfu.stage.Stage` carries the producers to WHEP sessions and
relays; this decides what goes on it: the people seen and heard, in the room's order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mcu.media import TrackSource
from mcu.sfu.producer import Producer
from mcu.sfu.stage import Stage
from mcu.signaling.rooms.participant import Participant, send_quietly

if TYPE_CHECKING:
    from mcu.signaling.rooms.ports import RoomView


def stage_order(participants: Iterable[Participant]) -> tuple[list[Producer], list[Producer]]:
    """The stage's video and audio: the tracks of the people seen and heard, content first, then
    cameras, each in ``participants``' order; microphones likewise."""
    # Join order: someone new takes the next section, and no viewer's picture moves.
    people = [p for p in participants if p.visible]
    tracks = [t.producer for p in people for t in p.tracks.values()]
    video = [t for t in tracks if t.source is TrackSource.CONTENT]
    video += [t for t in tracks if t.source is TrackSource.CAMERA]
    audio = [t for t in tracks if t.source is TrackSource.MICROPHONE]
    return video, audio


def describe_stage(stage: Stage, participants: Mapping[str, Participant]) -> dict[str, Any]:
    """The protocol's stage: the tracks a WHEP session's sections carry, in order."""

    def track(producer: Producer) -> dict[str, Any]:
        owner = participants.get(producer.participant_id)
        published = (
            next((t for t in owner.tracks.values() if t.producer is producer), None)
            if owner is not None
            else None
        )
        return {
            "id": producer.track_id,
            "participant_id": producer.participant_id,
            "name": owner.name if owner is not None else "",
            "kind": producer.kind,
            "source": str(producer.source),
            "muted": published.muted if published is not None else False,
        }

    return {
        "video": [track(p) for p in stage.video],
        "audio": [track(p) for p in stage.audio],
    }


async def refresh_stage(room: RoomView, stage: Stage) -> None:
    """Put ``room``'s people on ``stage`` and, if that changed it, tell whoever maps WHEP
    sections by it."""
    if room.ending:
        return
    video, audio = stage_order(room.participants.values())
    if not stage.set(video, audio):
        return
    message = {"type": "stage"} | describe_stage(stage, room.participants)
    if room.kind == "lecture":
        await room.broadcast(message)
        return
    # A meeting's viewers map their WHEP sections to people by it; participants see everyone
    # already (track_published and participant_joined).
    for participant in list(room.participants.values()):
        if not participant.visible:
            await send_quietly(participant, message)
