"""The ``joined`` message: the room as a participant finds it on joining, or on resuming."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mcu.signaling.rooms.participant import Participant
from mcu.signaling.rooms.stage import describe_stage

if TYPE_CHECKING:
    from mcu.signaling.rooms.session import Room


def joined_message(room: Room, participant: Participant, *, resumed: bool) -> dict[str, Any]:
    """What ``participant`` is told of ``room`` (docs/protocol.md, ``joined``): who is there,
    the stage, floor, slides, recording and mix, and its own credentials (the session and
    resume tokens, a TURN credential of its own). ``resumed``: it came back after a lost
    connection, as the same participant."""
    visible = participant.visible
    return {
        "type": "joined",
        "participant": participant.describe(),
        "room": {"id": room.id, "title": room.title, "kind": room.kind, "e2ee": room.e2ee},
        "participants": [
            p.describe() for p in room.participants.values() if p.visible and p is not participant
        ],
        "viewers": room.audience.viewer_count() if visible else 0,
        "watchers": room.audience.watchers() if visible else [],
        "stage": describe_stage(room.stage, room.participants),
        "hands": room.hands.describe() if participant.role == "chair" else [],
        "hand_raised": participant.hand_raised,
        "session_token": participant.session_token,
        "resume_token": participant.resume_token,
        "resumed": resumed,
        "reconnect_grace": room.reconnects.absences.grace,
        "ice_servers": [
            {"urls": list(s.urls)}
            | ({"username": s.username} if s.username else {})
            | ({"credential": s.credential} if s.credential else {})
            for s in room.client_ice.issue(participant.id, time.time())
        ],
        "mode": room.mix.chosen_mode(participant),
        "recording": {k: v for k, v in room.recording.describe().items() if k != "type"},
    } | room.content.describe()
