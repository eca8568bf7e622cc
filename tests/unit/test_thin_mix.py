"""The room's side of a thin link's last rungs (signaling/rooms/mixing.py): switching a
participant to the mix and back as its ladder says, over a plain room, and the participant's own
choice winning over the switch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from mcu.media import CodecInfo, TrackSource
from mcu.mixer.specs import BITRATE_LADDER, MixSpec
from mcu.sfu.downlink import LinkState
from mcu.sfu.ladder import NO_MIX, MixOffer, Rung
from mcu.sfu.producer import Producer
from mcu.signaling.rooms.errors import RoomError
from mcu.signaling.rooms.mixing import RoomMix, thin_spec
from mcu.signaling.rooms.participant import Participant
from mcu.signaling.rooms.ports import RoomPort


@dataclass
class MixingRoom:
    """A room reduced to what RoomPort promises; renegotiations are written down."""

    id: str = "r1"
    title: str = "Cardiology"
    kind: str = "meeting"
    e2ee: bool = False
    ending: bool = False
    participants: dict[str, Participant] = field(default_factory=dict)
    active_speaker: str | None = None
    resubscribed: list[str] = field(default_factory=list)
    _count: int = 0

    def producers(self) -> list[Producer]:
        return []

    async def broadcast(self, message: dict[str, Any], exclude: str | None = None) -> None:
        pass

    def emit(self, event: Any) -> None:
        pass

    def make_producer(self, participant_id: str, source: TrackSource, codec: CodecInfo) -> Producer:
        self._count += 1
        return Producer(f"t{self._count}", participant_id, source, codec, lambda: None)

    async def publish_server_track(self, participant: Participant, key: str, p: Producer) -> None:
        pass

    async def unpublish(self, participant: Participant, mid: str) -> None:
        pass

    async def resubscribe(self, participant: Participant) -> None:
        self.resubscribed.append(participant.id)


def _setup(e2ee: bool = False) -> tuple[MixingRoom, RoomMix, Participant]:
    room = MixingRoom(e2ee=e2ee)
    _port: RoomPort = room  # the protocol is all the mix may rely on

    async def send(message: dict[str, Any]) -> None:
        pass

    participant = Participant(id="p1", name="Township", role="participant", send=send)
    room.participants["p1"] = participant
    return room, RoomMix(room), participant


def _at(rung: Rung, bitrate: int | None = None) -> LinkState:
    return LinkState(200_000, rung, False, bitrate)


def test_what_the_mix_offers_each_ladder() -> None:
    _, mix, participant = _setup()
    assert mix.offer_for(participant) == MixOffer(BITRATE_LADDER)
    participant.mix_mode = "mixed"
    participant.mix_spec = MixSpec(bitrate=800_000)
    assert mix.offer_for(participant) == MixOffer((750_000,), chosen=True)  # as it will run
    _, mix, participant = _setup(e2ee=True)
    assert mix.offer_for(participant) == NO_MIX  # nothing to mix: the server has no key


def test_a_thin_mix_is_smaller_at_low_rates_and_keeps_the_layout() -> None:
    own = MixSpec(layout="speaker")
    assert thin_spec(own, 375_000) == MixSpec("speaker", 640, 360, 375_000)
    assert thin_spec(own, 750_000) == MixSpec("speaker", 960, 540, 750_000)
    assert thin_spec(own, 1_500_000) == MixSpec("speaker", 1280, 720, 1_500_000)
    small = MixSpec(width=640, height=360)
    assert thin_spec(small, 750_000) == MixSpec(width=640, height=360, bitrate=750_000)


async def test_the_mix_rung_switches_to_the_mix_and_climbing_switches_back() -> None:
    room, mix, participant = _setup()
    try:
        await mix.follow_link(participant, _at(Rung.SPEAKER_ONLY))
        assert room.resubscribed == [] and mix.mode_of(participant) == "forwarded"
        await mix.follow_link(participant, _at(Rung.MIXED, 375_000))
        assert mix.mode_of(participant) == "mixed" and mix.session is not None
        assert mix.spec_of(participant).bitrate == 375_000
        assert participant.mix_mode is None  # its own choice is left as it was
        assert mix.chosen_mode(participant) == "forwarded"
        await mix.follow_link(participant, _at(Rung.MIXED, 375_000))
        assert room.resubscribed == ["p1"]  # renegotiated once, not on every tick
        await mix.follow_link(participant, _at(Rung.SPEAKER_ONLY))
        assert mix.mode_of(participant) == "forwarded" and mix.session is None
        assert room.resubscribed == ["p1", "p1"]
    finally:
        await mix.close()


async def test_one_that_chose_the_mix_gets_audio_and_content_then_its_own_mix_again() -> None:
    room, mix, participant = _setup()
    participant.mix_mode = "mixed"
    participant.mix_spec = MixSpec(layout="content", bitrate=500_000)
    try:
        await mix.follow_link(participant, _at(Rung.MIXED, 500_000))
        assert room.resubscribed == []  # what it asked for already
        await mix.follow_link(participant, _at(Rung.AUDIO_CONTENT))
        assert mix.mode_of(participant) == "forwarded" and room.resubscribed == ["p1"]
        await mix.follow_link(participant, _at(Rung.MIXED, 500_000))
        assert mix.mode_of(participant) == "mixed"
        assert mix.spec_of(participant) == MixSpec(layout="content", bitrate=500_000)
    finally:
        await mix.close()


async def test_the_participants_own_choice_wins_over_the_switch() -> None:
    _, mix, participant = _setup()
    try:
        await mix.follow_link(participant, _at(Rung.MIXED, 250_000))
        mix.choose(participant, "forwarded")  # it wants its streams, thin or not
        assert mix.mode_of(participant) == "forwarded"
        assert mix.offer_for(participant) == NO_MIX  # and is not switched to the mix again
        await mix.follow_link(participant, _at(Rung.AUDIO_CONTENT))
        assert mix.mode_of(participant) == "forwarded"
        mix.choose(participant, "mixed")  # until it asks for the mix itself
        assert mix.offer_for(participant).chosen
    finally:
        await mix.close()


def test_an_encrypted_room_refuses_the_mix_as_a_choice() -> None:
    _, mix, participant = _setup(e2ee=True)
    with pytest.raises(RoomError):
        mix.choose(participant, "mixed")
    assert participant.mix_mode is None
