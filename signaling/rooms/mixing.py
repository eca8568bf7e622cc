"""Which participants of a room receive the mix, and keeping the room's MixSession in step.

A participant receives the mix when it asks for it (or follows a room whose default is the mix)
and also when its link is too thin for even the active speaker's camera: its ladder's ``mixed``
rung (:mod:`mcu.sfu.ladder`, docs/thin-links.md) switches it to the mix at a bitrate that fits.
That switch is the server's, kept apart from the participant's own choice: when the link
recovers the participant gets back what it chose, and a choice it makes meanwhile wins. In the
same way a participant that chose the mix is given forwarded audio and content, without the
picture, at the ladder's last rung.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from mcu.media import CodecInfo, TrackSource
from mcu.mixer.session import MIX_PARTICIPANT, MixSession, RoomSource
from mcu.mixer.specs import BITRATE_LADDER, MixSpec, quantise
from mcu.sfu.downlink import LinkState
from mcu.sfu.ladder import NO_MIX, MixOffer, Rung
from mcu.sfu.producer import Producer
from mcu.signaling.rooms.e2ee import refuse_in_e2ee

if TYPE_CHECKING:
    from mcu.signaling.rooms.participant import Participant
    from mcu.signaling.rooms.ports import RoomPort

Mode = Literal["forwarded", "mixed"]
RESOLUTIONS = {"1280x720": (1280, 720), "960x540": (960, 540), "640x360": (640, 360)}
THIN_SIZES = ((500_000, (640, 360)), (1_000_000, (960, 540)))
"""The largest picture a thin link's mix is sent at, by bitrate (up to): fewer pixels look
sharper at a low rate, and cost the mixer less to compose and encode."""
_LADDER_OFFER = MixOffer(BITRATE_LADDER)


class RoomMix:
    """A room's mixing state: the default mode, and the mix session while anyone needs it."""

    def __init__(self, room: RoomPort) -> None:
        self.room = room
        self.default_mode: Mode = "forwarded"
        self.session: MixSession | None = None
        self.automatic: dict[str, MixSpec | None] = {}
        """Participants whose link chose their mode, by id: the mix at this spec, or forwarded
        streams (None) for one that chose the mix. Their own choice is left as it was."""
        self.declined: set[str] = set()
        "Participants that chose forwarded streams while switched to the mix: not switched again."

    def chosen_mode(self, participant: Participant) -> Mode:
        """The participant's own choice, else the room's default."""
        return participant.mix_mode or self.default_mode

    def mode_of(self, participant: Participant) -> Mode:
        """What the participant receives: as its link chose, else as it chose."""
        if participant.id in self.automatic:
            return "forwarded" if self.automatic[participant.id] is None else "mixed"
        return self.chosen_mode(participant)

    def spec_of(self, participant: Participant) -> MixSpec:
        """The mix a mixed participant receives: as its link chose, else as it asked."""
        return self.automatic.get(participant.id) or participant.mix_spec

    def allow(self, mode: str) -> None:
        """Raise ``E2eeRefused`` if ``mode`` is ``mixed`` and the room is end-to-end encrypted:
        the mixer decodes, and the server has no key."""
        if mode == "mixed":
            refuse_in_e2ee(self.room, "mixing")

    def choose(self, participant: Participant, mode: Literal["forwarded", "mixed", "room"]) -> None:
        """The participant chose a mode (``forwarded``, ``mixed`` or ``room``) itself. Its
        choice wins over the one its link made: that ends, and its ladder starts again from the
        top of what it chose. One that declines the mix it was switched to is not switched to
        it again. Raises ``E2eeRefused`` as :meth:`allow`."""
        self.allow(mode)
        before = self.chosen_mode(participant)
        switched = participant.id in self.automatic
        spec = self.automatic.pop(participant.id, None)
        participant.mix_mode = None if mode == "room" else mode
        chosen = self.chosen_mode(participant)
        if chosen == "mixed":
            self.declined.discard(participant.id)
        elif spec is not None:
            self.declined.add(participant.id)
        if (switched or chosen != before) and participant.subscriber is not None:
            participant.subscriber.downlink.ladder.restart()

    def offer_for(self, participant: Participant) -> MixOffer:
        """What the mix offers the participant's ladder: every bitrate it runs at; only its own
        for one that chose the mix; nothing in an end-to-end encrypted room (the server has no
        key to mix with) or for one that declined it."""
        if self.room.e2ee:
            return NO_MIX
        if self.chosen_mode(participant) == "mixed":
            return MixOffer((quantise(participant.mix_spec).bitrate,), chosen=True)
        return NO_MIX if participant.id in self.declined else _LADDER_OFFER

    async def follow_link(self, participant: Participant, state: LinkState) -> None:
        """Switch the participant's subscription as its ladder's rung asks: to the mix at the
        bitrate that fits (``mixed``), to forwarded audio and content for one that chose the mix
        (``audio_content``), back to what it chose otherwise. Renegotiates only on a change."""
        own_mix = self.chosen_mode(participant) == "mixed"
        wanted: MixSpec | None = None
        if state.rung == Rung.MIXED and not own_mix and state.mix_bitrate is not None:
            wanted, switch = thin_spec(participant.mix_spec, state.mix_bitrate), True
        else:
            switch = state.rung == Rung.AUDIO_CONTENT and own_mix
        current = self.automatic.get(participant.id)
        if switch == (participant.id in self.automatic) and (not switch or wanted == current):
            return
        if switch:
            self.automatic[participant.id] = wanted
        else:
            del self.automatic[participant.id]
        await self.refresh()
        await self.room.resubscribe(participant)

    def wanted(self, participant: Participant) -> list[Producer]:
        """What a mixed participant receives: the composite for its spec and its N-1 audio."""
        assert self.session is not None
        wanted = []
        if "camera" in participant.wanted_sources or "content" in participant.wanted_sources:
            wanted.append(self.session.video_for(self.spec_of(participant)))
        if "microphone" in participant.wanted_sources:
            wanted.append(self.session.audio_for(participant.id))
        return wanted

    async def refresh(self) -> None:
        """Start, feed, trim or stop the mix to match who wants it and what is published."""
        present = self.room.participants
        for gone in [pid for pid in self.automatic if pid not in present]:
            del self.automatic[gone]
        self.declined.intersection_update(present)
        mixed = [p for p in present.values() if self.mode_of(p) == "mixed"]
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
        specs = {session.resolve(self.spec_of(p)) for p in mixed}
        await session.retain(specs, {p.id for p in mixed})

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


def thin_spec(own: MixSpec, bitrate: int) -> MixSpec:
    """The mix a thin link is switched to: the participant's layout and page at ``bitrate``, in a
    picture no larger than :data:`THIN_SIZES` gives for it."""
    width, height = own.width, own.height
    for up_to, (w, h) in THIN_SIZES:
        if bitrate <= up_to and w < width:
            width, height = w, h
            break
    return replace(own, bitrate=bitrate, width=width, height=height)
