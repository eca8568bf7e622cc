"""Active-speaker detection in a live room: the detector fed every tick, changes broadcast."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mcu.sfu.speaker import SpeakerDetector

if TYPE_CHECKING:
    from mcu.signaling.rooms.ports import RoomView

SPEAKER_TICK_SECONDS = 0.3


class ActiveSpeaker:
    """Who speaks in a room: every tick the mean audio levels go to the detector, and a change
    of speaker is broadcast."""

    def __init__(self, room: RoomView) -> None:
        self.room = room
        self._detector = SpeakerDetector()
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> str | None:
        """The participant currently detected as speaking."""
        return self._detector.current

    def start(self) -> None:
        """Start listening (the room's first participant came); a no-op while it listens."""
        if self._task is None:
            self._task = asyncio.create_task(self._detect())

    def stop(self) -> None:
        """Stop listening (the room is empty)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def forget(self, participant_id: str) -> None:
        """``participant_id`` no longer speaks here (left, demoted): if it was the speaker,
        everyone hears that nobody is."""
        if self._detector.forget(participant_id):
            await self.room.broadcast({"type": "active_speaker", "participant_id": None})

    async def _detect(self) -> None:
        while True:
            await asyncio.sleep(SPEAKER_TICK_SECONDS)
            levels: dict[str, float] = {}
            for participant in self.room.participants.values():
                for track in participant.tracks.values():
                    if track.producer.kind == "audio" and not track.muted:
                        level = track.producer.take_mean_audio_level()
                        if level is not None:
                            levels[participant.id] = level
            speaker = self._detector.tick(levels)
            if speaker is not None:
                await self.room.broadcast({"type": "active_speaker", "participant_id": speaker})
