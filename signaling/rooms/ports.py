"""What a room's features may see of the room and do to it.

The content channel, the mix, the recording, the stage, the audience and the hands each hold
one of these rather than the whole :class:`~mcu.signaling.rooms.session.Room` that built them,
so what a feature touches is written here and a feature can be driven by something smaller
than a room. ``Room`` satisfies both protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from mcu.media import CodecInfo, TrackSource
from mcu.sfu.producer import Producer

if TYPE_CHECKING:
    from mcu.signaling.rooms.events import RoomEvent
    from mcu.signaling.rooms.participant import Participant

__all__ = ["RoomPort", "RoomView"]


class RoomView(Protocol):
    """A room as its features read it, and the one way they speak to everyone in it."""

    @property
    def id(self) -> str:
        """The room's id."""
        ...

    @property
    def title(self) -> str:
        """The room's title (recordings are named after it)."""
        ...

    @property
    def kind(self) -> str:
        """``meeting`` or ``lecture``."""
        ...

    @property
    def e2ee(self) -> bool:
        """Whether the browsers encrypt the room's media end to end (docs/e2ee.md)."""
        ...

    @property
    def ending(self) -> bool:
        """The room is being ended: nobody is told of changes any more."""
        ...

    @property
    def participants(self) -> Mapping[str, Participant]:
        """Who is in the room, by id, in the order they joined (or were promoted)."""
        ...

    @property
    def active_speaker(self) -> str | None:
        """The participant currently detected as speaking."""
        ...

    def producers(self) -> list[Producer]:
        """Every live producer in the room."""
        ...

    async def broadcast(self, message: dict[str, Any], exclude: str | None = None) -> None:
        """Send ``message`` to every participant but ``exclude``."""
        ...

    def emit(self, event: RoomEvent) -> None:
        """Tell the world outside the room (the platform's webhooks) what happened in it."""
        ...


class RoomPort(RoomView, Protocol):
    """A room as features that produce media in it use it (the content channel, the mix), and
    change what a participant receives."""

    def make_producer(self, participant_id: str, source: TrackSource, codec: CodecInfo) -> Producer:
        """A producer with a fresh track id in the name of ``participant_id`` (or the mix)."""
        ...

    async def publish_server_track(
        self, participant: Participant, key: str, producer: Producer
    ) -> None:
        """Publish a track the server produces itself (slides) in ``participant``'s name."""
        ...

    async def unpublish(self, participant: Participant, mid: str) -> None:
        """End one of ``participant``'s tracks for everyone."""
        ...

    async def resubscribe(self, participant: Participant) -> None:
        """Renegotiate ``participant``'s subscribe connection if what it should carry changed."""
        ...
