"""A participant of a live room: who they are, what they publish and what they want to receive."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from mcu.mixer.specs import MixSpec
from mcu.sfu.peer import PublisherConnection, SubscriberConnection
from mcu.sfu.producer import Producer
from mcu.signaling.rooms.content import SLIDES_MID
from mcu.signaling.rooms.mixing import Mode
from mcu.signaling.rooms.sources import SOURCES

logger = logging.getLogger(__name__)

Role = Literal["chair", "participant", "viewer"]
SendFn = Callable[[dict[str, Any]], Awaitable[None]]


class SharedMessage(dict[str, Any]):
    """A message that goes to many participants (a broadcast): the WebSocket writers send its
    JSON text, encoded once for all of them, instead of encoding the same dict per recipient.
    Like any message handed to ``send``, it is not changed after it is sent."""

    __slots__ = ("_text",)

    def text(self) -> str:
        """The message as ``json.dumps`` gives it (what ``send_json`` would send)."""
        try:
            return self._text
        except AttributeError:
            self._text: str = json.dumps(self)
            return self._text


@dataclass
class PublishedTrack:
    """A track a participant publishes, with its protocol-visible state."""

    producer: Producer
    mid: str
    muted: bool = False
    muted_by: Literal["self", "chair"] = "self"

    def describe(self) -> dict[str, Any]:
        """The protocol's track object."""
        p = self.producer
        return {
            "id": p.track_id,
            "participant_id": p.participant_id,
            "kind": p.kind,
            "source": str(p.source),
            "muted": self.muted,
        }


@dataclass
class Participant:
    """One person in a room, with their two peer connections."""

    id: str
    name: str
    role: Role
    send: SendFn
    publisher: PublisherConnection | None = None
    subscriber: SubscriberConnection | None = None
    tracks: dict[str, PublishedTrack] = field(default_factory=dict)
    "Published tracks by mid."
    wanted_sources: frozenset[str] = frozenset(SOURCES)
    wanted_participants: frozenset[str] | None = None
    negotiation_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    resubscribe_pending: bool = False
    closed: bool = False
    on_removed: Callable[[], None] | None = None
    mix_mode: Mode | None = None
    "forwarded or mixed by the participant's own choice; None follows the room's default."
    mix_spec: MixSpec = field(default_factory=MixSpec)
    session_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    "Authorises this participant's HTTP requests (document uploads, WHEP playback)."
    hand_raised: bool = False
    "A lecture viewer asking to speak."
    resume_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    "Lets this participant's client resume the session after its connection was lost."
    away: bool = False
    "Its connection was lost: kept, reconnecting, for the grace period (signaling/rooms/grace.py)."
    tracks_to_resume: bool = False
    "Resumed, its tracks wait for its next publish to bring them back (by source)."
    on_detached: Callable[[], None] | None = None
    "Called when the room takes the participant from its connection (lost media, or resumed)."

    @property
    def visible(self) -> bool:
        """Whether others see this participant as one of them (viewers are counted, and named
        only to a meeting's participants)."""
        return self.role != "viewer"

    def describe(self) -> dict[str, Any]:
        """The protocol's participant object."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "tracks": [t.describe() for t in self.tracks.values()],
            "reconnecting": self.away,
        }

    def wants(self, producer: Producer) -> bool:
        """Whether this participant's subscription covers ``producer``."""
        if str(producer.source) not in self.wanted_sources:
            return False
        if producer.participant_id == self.id:
            # Only the slides the server renders for us come back: the presenter sees the page
            # exactly as everyone else does (a PDF or DICOM page cannot be previewed locally).
            slides = self.tracks.get(SLIDES_MID)
            return slides is not None and slides.producer is producer
        return (
            self.wanted_participants is None or producer.participant_id in self.wanted_participants
        )


async def send_quietly(participant: Participant, message: dict[str, Any]) -> None:
    """Send ``message`` to ``participant``; a failure is theirs alone (logged, not raised)."""
    try:
        await participant.send(message)
    except Exception:  # a dead socket is cleaned up by its own reader
        logger.debug("send to %s failed", participant.id, exc_info=True)
