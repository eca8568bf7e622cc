"""Reconnecting: a participant whose connection was lost stays, away, and resumes as itself.

A WebSocket that closes without a ``leave`` (or a media connection that fails) does not end the
session at once: the participant keeps its id, role, tracks, floor and raised hand for the
grace period (:mod:`mcu.signaling.rooms.grace`), the others are told it is reconnecting, and its
client resumes with the ``resume_token`` it got in ``joined``. The old peer connections are
dead (new ICE, new DTLS), so a resume makes new ones: the subscribe connection at once, the
publish connection with the client's next ``publish``, whose tracks take the places of the old
ones by source (the same track ids, so the others' subscriptions do not change; see
:meth:`mcu.sfu.producer.Producer.restart_source`). Nobody else sees a leave and a join.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from mcu.sfu.peer import Closable, close_quietly
from mcu.signaling.rooms.content import SLIDES_MID
from mcu.signaling.rooms.errors import ResumeRefused
from mcu.signaling.rooms.grace import Absences
from mcu.signaling.rooms.participant import Participant, PublishedTrack, SendFn

if TYPE_CHECKING:
    from mcu.sfu.peer import OfferedTrack

logger = logging.getLogger(__name__)


class ReconnectingRoom(Protocol):
    """What reconnecting uses of the room."""

    @property
    def id(self) -> str:
        """The room's id."""
        ...

    @property
    def participants(self) -> Mapping[str, Participant]:
        """Who is in the room, by id."""
        ...

    async def broadcast(self, message: dict[str, Any], exclude: str | None = None) -> None:
        """Send ``message`` to every participant but ``exclude``."""
        ...

    async def remove(
        self, participant: Participant, reason: Literal["left", "disconnected", "removed"]
    ) -> None:
        """Take a participant out for good."""
        ...

    def attach_subscriber(self, participant: Participant) -> None:
        """Give ``participant`` a new subscribe connection."""
        ...

    async def welcome(self, participant: Participant, *, resumed: bool) -> None:
        """Send ``participant`` its ``joined``: the room as it is now."""
        ...

    async def resubscribe(self, participant: Participant) -> None:
        """Offer ``participant``'s subscribe connection what it should carry."""
        ...


async def _nowhere(message: dict[str, Any]) -> None:
    """Where an away participant's messages go: its ``joined`` on resume says what it missed."""


class Reconnects:
    """The room's absent participants: kept for the grace period, resumed or removed."""

    def __init__(self, room: ReconnectingRoom, grace: float) -> None:
        self.room = room
        self.absences = Absences(grace)
        self._timer: asyncio.TimerHandle | None = None
        self._removals: set[asyncio.Task[None]] = set()

    async def suspend(self, participant: Participant) -> bool:
        """``participant``'s connection was lost: keep it, away, for the grace period.

        False when there is no grace period (the caller removes it, as before) or it is gone.
        """
        if not self.absences.enabled or participant.closed:
            return False
        # Marked away before anything awaits: a resume arriving meanwhile finds it so.
        connections = self._detach(participant)
        first = not participant.away
        participant.away = True
        self.absences.begin(participant.id, _now())
        self._arm()
        logger.info("room %s: %s reconnecting", self.room.id, participant.id)
        if first and participant.visible:
            await self.room.broadcast(
                {"type": "participant_reconnecting", "participant_id": participant.id},
                exclude=participant.id,
            )
        await close_quietly(*connections)
        return True

    async def resume(
        self, participant_id: str, token: str, send: SendFn, *, subscribe: bool
    ) -> Participant:
        """The client of ``participant_id`` is back on a new connection, proving it with the
        participant's resume token; raises :class:`ResumeRefused` otherwise."""
        participant = self.room.participants.get(participant_id)
        if not self.absences.enabled:
            raise ResumeRefused()  # a lost connection was a leave: there is nothing to resume
        # Compared as bytes: compare_digest refuses non-ASCII strings, and a client sends any.
        if (
            participant is None
            or participant.closed
            or not hmac.compare_digest(participant.resume_token.encode(), token.encode())
        ):
            raise ResumeRefused()
        if not participant.away:
            # Its old connection has not noticed it is dead yet (a Wi-Fi hand-over): end it.
            await self.suspend(participant)
        self.absences.end(participant.id)
        self._arm()
        participant.away = False
        participant.send = send
        participant.tracks_to_resume = any(mid != SLIDES_MID for mid in participant.tracks)
        if subscribe:
            self.room.attach_subscriber(participant)
        logger.info("room %s: %s resumed", self.room.id, participant.id)
        await self.room.welcome(participant, resumed=True)
        if participant.visible:
            await self.room.broadcast(
                {"type": "participant_back", "participant_id": participant.id},
                exclude=participant.id,
            )
        await self.room.resubscribe(participant)
        return participant

    def forget(self, participant: Participant) -> None:
        """``participant`` left for good: no longer waited for."""
        if self.absences.end(participant.id):
            self._arm()

    def close(self) -> None:
        """The room ended: nobody is waited for."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _detach(self, participant: Participant) -> tuple[Closable | None, Closable | None]:
        """Take ``participant`` from its connection: nothing is sent to it any more, and its
        peer connections are returned for the caller to close (the others' consumers of its
        tracks stay, waiting)."""
        publisher, subscriber = participant.publisher, participant.subscriber
        participant.publisher = participant.subscriber = None
        participant.send = _nowhere
        participant.resubscribe_pending = False
        participant.tracks_to_resume = False
        detached, participant.on_detached = participant.on_detached, None
        if detached is not None:
            detached()
        return publisher, subscriber

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.absences.next_deadline()
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        for participant_id in self.absences.expired(_now()):
            participant = self.room.participants.get(participant_id)
            if participant is not None and participant.away:
                logger.info("room %s: %s did not come back", self.room.id, participant_id)
                task = asyncio.create_task(self.room.remove(participant, "disconnected"))
                self._removals.add(task)
                task.add_done_callback(self._removals.discard)
        self._arm()


async def resume_tracks(
    participant: Participant,
    offered: Mapping[str, OfferedTrack],
    unpublish: Callable[[str], Awaitable[None]],
) -> None:
    """The first ``publish`` after a resume brings ``participant``'s tracks back, by source.

    ``offered``: the offer's sending sections by mid, on the new publish connection. Each track
    offered again with its codec continues under its track id on its new section (its producer
    restarts its numbering, its consumers wait for a keyframe). The others are ended first with
    ``unpublish(mid)``: not offered again, or with another codec (the consumers were negotiated
    for the old one); a new track of that source is then published as usual.
    """
    participant.tracks_to_resume = False
    publisher = participant.publisher
    assert publisher is not None
    by_source = {t.source: t for t in offered.values()}
    for mid, track in list(participant.tracks.items()):
        again = by_source.get(track.producer.source)
        if mid != SLIDES_MID and (again is None or again.codec != track.producer.codec):
            await unpublish(mid)
    tracks: dict[str, PublishedTrack] = {}
    for mid, track in participant.tracks.items():
        again = by_source.get(track.producer.source)
        if mid == SLIDES_MID or again is None:
            tracks[mid] = track  # slides: the server renders them; they never stopped
            continue
        track.mid = again.mid
        track.producer.restart_source()
        publisher.bind(again, track.producer)
        tracks[again.mid] = track
    participant.tracks = tracks


def _now() -> float:
    return asyncio.get_running_loop().time()
