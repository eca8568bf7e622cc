"""Each participant's link, watched: the ladder ticked, changes told to it and to the chairs.

Every :data:`LINK_TICK_SECONDS` each subscribe connection fits what it sends to its downlink
estimate (:meth:`~mcu.sfu.peer.SubscriberConnection.adapt`); the estimate goes to the
``mcu_subscriber_estimate_bits_per_second`` histogram. A participant whose rung changed (or whose
estimate moved by more than :data:`FIGURE_CHANGE` while it gets less than everything) is sent a
``link`` message, and so is every chair, who sees a weak connection marked on that tile. The
mix follows each rung (:meth:`~mcu.signaling.rooms.mixing.RoomMix.follow_link`): a participant
at ``mixed`` is switched to it, and back when it climbs.

With adaptation off (setting ``adapt_downlinks``, for comparisons) the estimates are still
exported, and every subscriber is sent everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from mcu.infra import metrics
from mcu.sfu.downlink import LinkState
from mcu.sfu.ladder import Rung
from mcu.signaling.rooms.participant import send_quietly
from mcu.signaling.rooms.ports import RoomView

if TYPE_CHECKING:
    from mcu.signaling.rooms.mixing import RoomMix

logger = logging.getLogger(__name__)

LINK_TICK_SECONDS = 1.0
"About as often as Chromium sends a REMB when nothing changes."
FIGURE_CHANGE = 0.25
"A thinned participant's figure is told again when it moved by more than this share."


class LinkRoom(RoomView, Protocol):
    """A room as its link watch uses it: what it is, and its mix to switch thin links to."""

    @property
    def mix(self) -> RoomMix:
        """Who receives the mix."""
        ...


class LinkWatch:
    """Ticks the ladder of every subscriber in a room and tells what changed."""

    def __init__(self, room: LinkRoom, adapt: bool = True) -> None:
        self.room = room
        self.adapt = adapt
        "Whether the ladder thins what subscribers are sent (else only the estimate is kept)."
        self._told: dict[str, LinkState] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (a subscriber came); a no-op while watching. The watch ends by itself
        once the room is empty."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while self.room.participants:
            await asyncio.sleep(LINK_TICK_SECONDS)
            try:
                await self.tick(time.monotonic())
            except Exception:  # one bad tick must not end the watch for the room
                logger.exception("room %s: link tick failed", self.room.id)
        self._task = None

    async def tick(self, now: float) -> None:
        """One round: adapt every subscriber, tell it and the chairs of changes."""
        participants = self.room.participants
        for gone in [pid for pid in self._told if pid not in participants]:
            del self._told[gone]
        speaker = self.room.active_speaker
        for participant in list(participants.values()):
            subscriber = participant.subscriber
            if subscriber is None or participant.closed:
                continue
            if not self.adapt:
                if (estimate := subscriber.downlink.estimate.bitrate) is not None:
                    metrics.SUBSCRIBER_ESTIMATE.observe(estimate)
                continue
            state = subscriber.adapt(now, speaker, self.room.mix.offer_for(participant))
            await self.room.mix.follow_link(participant, state)
            if state.estimate is not None:
                metrics.SUBSCRIBER_ESTIMATE.observe(state.estimate)
            before = self._told.get(participant.id)
            if before is not None and before.rung != state.rung:
                metrics.RUNG_STEPS.labels("down" if state.rung > before.rung else "up").inc()
            if not _worth_telling(before, state):
                continue
            self._told[participant.id] = state
            message: dict[str, Any] = {"type": "link", "participant_id": participant.id}
            message.update(state.describe())
            await send_quietly(participant, message)
            for chair in list(participants.values()):
                if chair.role == "chair" and chair.id != participant.id:
                    await send_quietly(chair, message)


def _worth_telling(before: LinkState | None, now: LinkState) -> bool:
    if before is None:
        return now.rung != Rung.FULL or now.short
    if before.rung != now.rung or before.short != now.short:
        return True
    if now.rung == Rung.FULL or now.estimate is None or not before.estimate:
        return False
    return abs(now.estimate - before.estimate) > FIGURE_CHANGE * before.estimate
