"""Raised hands: lecture viewers asking to speak, listed to the chairs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcu.signaling.rooms.errors import Forbidden
from mcu.signaling.rooms.participant import Participant, send_quietly

if TYPE_CHECKING:
    from mcu.signaling.rooms.ports import RoomView


class Hands:
    """Lecture viewers asking to speak; chairs see the list and may promote them."""

    def __init__(self, room: RoomView) -> None:
        self.room = room

    def describe(self) -> list[dict[str, str]]:
        """The protocol's ``hands`` list: raised hands of viewers, in the room's order."""
        return [
            {"participant_id": p.id, "name": p.name}
            for p in self.room.participants.values()
            if p.hand_raised and not p.visible
        ]

    async def announce(self) -> None:
        """Send the list to every chair."""
        message = {"type": "hands", "hands": self.describe()}
        for participant in list(self.room.participants.values()):
            if participant.role == "chair":
                await send_quietly(participant, message)

    async def set_hand(self, participant: Participant, raised: bool) -> None:
        """A viewer raises or lowers a hand; chairs see the list."""
        if participant.visible:
            raise Forbidden("only viewers raise a hand; you may already speak")
        if participant.hand_raised != raised:
            participant.hand_raised = raised
            await self.announce()
