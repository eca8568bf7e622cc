"""Which participants of a room receive the mix, and keeping the room's MixSession in step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mcu.media import CodecInfo, TrackSource
from mcu.mixer.session import MIX_PARTICIPANT, MixSession, RoomSource
from mcu.mixer.specs import MixSpec
from mcu.sfu.producer import Producer
from mcu.signaling.rooms.e2ee import refuse_in_e2ee

if TYPE_CHECKING:
    from mcu.signaling.rooms.participant import Participant
    from mcu.signaling.rooms.ports import RoomPort

Mode = Literal["forwarded", "mixed"]
RESOLUTIONS = {"1280x720": (1280, 720), "960x540": (960, 540), "640x360": (640, 360)}


class RoomMix:
    """A room's mixing state: the default mode, and the mix session while anyone needs it."""

    def __init__(self, room: RoomPort) -> None:
        self.room = room
        self.default_mode: Mode = "forwarded"
        self.session: MixSession | None = None

    def mode_of(self, participant: Participant) -> Mode:
        """The participant's own choice, else the room's default."""
        return participant.mix_mode or self.default_mode

    def allow(self, mode: str) -> None:
        """Raise ``E2eeRefused`` if ``mode`` is ``mixed`` and the room is end-to-end encrypted:
        the mixer decodes, and the server has no key."""
        if mode == "mixed":
            refuse_in_e2ee(self.room, "mixing")

    def wanted(self, participant: Participant) -> list[Producer]:
        """What a mixed participant receives: the composite for its spec and its N-1 audio."""
        assert self.session is not None
        wanted = []
        if "camera" in participant.wanted_sources or "content" in participant.wanted_sources:
            wanted.append(self.session.video_for(participant.mix_spec))
        if "microphone" in participant.wanted_sources:
            wanted.append(self.session.audio_for(participant.id))
        return wanted

    async def refresh(self) -> None:
        """Start, feed, trim or stop the mix to match who wants it and what is published."""
        mixed = [p for p in self.room.participants.values() if self.mode_of(p) == "mixed"]
        if not mixed:
            if self.session is not None:
                session, self.session = self.session, None
                await session.close()
            return
        if self.session is None:
            self.session = MixSession(
                new_producer=self._new_producer,
                sources=self._sources,
                active_speaker=lambda: self.room.active_speaker,
            )
        self.session.sync_inputs(self.room.producers())
        session = self.session
        await session.retain({session.resolve(p.mix_spec) for p in mixed}, {p.id for p in mixed})

    def _new_producer(self, source: TrackSource, codec: CodecInfo) -> Producer:
        return self.room.make_producer(MIX_PARTICIPANT, source, codec)

    def _sources(self) -> list[RoomSource]:
        return [RoomSource(p.id, p.name) for p in self.room.participants.values()]

    async def close(self) -> None:
        """The room ends."""
        if self.session is not None:
            session, self.session = self.session, None
            await session.close()


def parse_spec(
    layout: str | None, resolution: str | None, bitrate: int | None, page: int | None, base: MixSpec
) -> MixSpec:
    """A new spec from a subscription message's optional fields over the current one."""
    width, height = RESOLUTIONS.get(resolution or "", (base.width, base.height))
    return MixSpec(
        layout=layout if layout in ("grid", "speaker", "content") else base.layout,  # type: ignore[arg-type]
        width=width,
        height=height,
        bitrate=bitrate if bitrate is not None else base.bitrate,
        fps=base.fps,
        page=page if page is not None else base.page,
    )
