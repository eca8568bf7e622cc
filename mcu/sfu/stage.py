"""The stage: what a lecture's viewers receive, in a fixed order.

A room's stage is every track of everyone who may be seen and heard (lecturers and speakers, never
viewers): video with content first, then cameras; audio in the same order of people. A WHEP
session's i-th video section carries ``video[i]`` and its j-th audio section ``audio[j]``, so a
viewer needs no renegotiation when a speaker is promoted or the slides start.

The room's home worker keeps the stage of its :class:`~mcu.signaling.rooms.session.Room`; a worker
that only relays the room to its own viewers keeps a :class:`Stage` of relayed producers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mcu.sfu.producer import Producer

logger = logging.getLogger(__name__)

Listener = Callable[[], None]


class Stage:
    """Ordered video and audio producers, with listeners told about every change."""

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.video: list[Producer] = []
        self.audio: list[Producer] = []
        self._listeners: list[Listener] = []

    def set(self, video: list[Producer], audio: list[Producer]) -> bool:
        """Replace the stage; listeners run only if a producer changed. Returns whether it did."""
        if _same(video, self.video) and _same(audio, self.audio):
            return False
        self.video, self.audio = list(video), list(audio)
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # one viewer's trouble must not stop the others following
                logger.exception("stage listener failed in room %s", self.room_id)
        return True

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every change; returns the function that stops it."""
        self._listeners.append(listener)

        def unlisten() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unlisten

    @property
    def listeners(self) -> int:
        """How many listeners follow this stage (WHEP sessions and relays)."""
        return len(self._listeners)


def _same(a: list[Producer], b: list[Producer]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
