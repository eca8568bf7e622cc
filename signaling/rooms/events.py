"""What happens in rooms, as the outside world may learn it: one frozen dataclass per event.

Rooms, their recording, content floor and audience emit these to an :class:`EventSink` (the
webhook sender, in a server that has receivers). Emitting is a plain call that never awaits
and never fails the room: the sink only notes the event, so a slow or dead receiver cannot
hold up a join or a packet. Events carry ids, roles and names, never a password, an invite or
a session token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Protocol

__all__ = [
    "NO_EVENTS",
    "EventSink",
    "FloorChanged",
    "ParticipantJoined",
    "ParticipantLeft",
    "RecordingFinished",
    "RecordingReady",
    "RecordingStarted",
    "RoomEvent",
    "RoomFinished",
    "RoomStarted",
    "ViewerPeak",
]


@dataclass(frozen=True)
class RoomEvent:
    """Something that happened in room ``room``; subclasses name their ``type``."""

    type: ClassVar[str]
    room: str
    "The room's id."

    def data(self) -> dict[str, Any]:
        """The event's own fields (everything but the room)."""
        fields = asdict(self)
        fields.pop("room")
        return fields


@dataclass(frozen=True)
class RoomStarted(RoomEvent):
    """The first participant (or WHIP publisher) came into an empty room."""

    type: ClassVar[str] = "room.started"
    kind: str
    "``meeting`` or ``lecture``."
    title: str


@dataclass(frozen=True)
class RoomFinished(RoomEvent):
    """The last participant left, or the room was ended."""

    type: ClassVar[str] = "room.finished"
    reason: str
    """``empty`` when the last one left; else why it was ended (``deleted``, ``ended by the
    chair``, ``server shutting down``)."""


@dataclass(frozen=True)
class ParticipantJoined(RoomEvent):
    """Someone joined (a lecture's audience is counted by :class:`ViewerPeak` instead)."""

    type: ClassVar[str] = "participant.joined"
    participant_id: str
    name: str
    role: str
    "``chair``, ``participant`` or ``viewer``."


@dataclass(frozen=True)
class ParticipantLeft(RoomEvent):
    """Someone left (``left``, ``disconnected``, ``removed``; ``demoted`` back to a lecture's
    audience)."""

    type: ClassVar[str] = "participant.left"
    participant_id: str
    role: str
    reason: str


@dataclass(frozen=True)
class RecordingStarted(RoomEvent):
    """The room is being recorded into library item ``recording_id``."""

    type: ClassVar[str] = "recording.started"
    recording_id: str


@dataclass(frozen=True)
class RecordingFinished(RoomEvent):
    """Recording stopped; the track files are in the library (``kept`` false: nothing was
    sent, so no item was kept)."""

    type: ClassVar[str] = "recording.finished"
    recording_id: str
    duration_s: float
    kept: bool
    error: str | None = None
    "Why recording stopped early (a disk error); None when it was stopped."


@dataclass(frozen=True)
class RecordingReady(RoomEvent):
    """The recording's composite has been made (or failed: ``composite`` false); the library
    item is final."""

    type: ClassVar[str] = "recording.ready"
    recording_id: str
    composite: bool


@dataclass(frozen=True)
class ViewerPeak(RoomEvent):
    """A lesson's audience reached a new largest size (rate-limited: see ``ViewerPeaks``)."""

    type: ClassVar[str] = "lesson.viewers_peak"
    viewers: int


@dataclass(frozen=True)
class FloorChanged(RoomEvent):
    """The content presenter changed (``presenter`` None: nobody presents now)."""

    type: ClassVar[str] = "floor.changed"
    presenter: str | None
    previous: str | None
    reason: Literal["granted", "released", "preempted", "left"]


class EventSink(Protocol):
    """Where a room's events go. ``emit`` is called in the order things happen, returns at
    once and never raises."""

    def emit(self, event: RoomEvent) -> None:
        """Note ``event``."""
        ...


class _NoEvents:
    """The sink of a server with nobody to tell."""

    def emit(self, event: RoomEvent) -> None:
        """Forget ``event``."""


NO_EVENTS: EventSink = _NoEvents()
