"""Repair on relays between nodes, pure: the edge's NACKs and the upstream's RTX answers, with
time passed in."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc.rtp import RTCP_RTPFB_NACK, RtcpPacket, RtcpRtpfbPacket

from mcu.media import CodecInfo, TrackSource
from mcu.sfu.producer import Producer
from mcu.sfu.relay import RelayLink, RelaySink
from mcu.sfu.relayrepair import (
    RTX_PAYLOAD_TYPE,
    RelayNacks,
    RelayResender,
    rtx_ssrc,
    unwrap_rtx,
)
from mcu.sfu.repair import RESEND_GUARD_S
from mcu.sfu.rtp import parse_fixed_header

VP8 = CodecInfo("video/VP8", 90000)
KEYFRAME = bytes([0x10, 0x00, 0x00, 0x00]) + b"key"
DELTA = bytes([0x10, 0x01, 0x00, 0x00])
EDGE = ("10.0.0.2", 5000)


def lost(nack: bytes | None) -> list[int]:
    assert nack is not None
    (packet,) = RtcpPacket.parse(nack)
    assert isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK
    return list(packet.lost)


def test_the_edge_nacks_a_gap_at_once_and_again_after_a_round_trip() -> None:
    nacks = RelayNacks()
    assert nacks.on_packet(EDGE, 7, 100, 0.0) is None
    assert lost(nacks.on_packet(EDGE, 7, 103, 0.01)) == [101, 102]
    assert nacks.on_packet(EDGE, 7, 104, 0.02) is None  # asked moments ago
    assert lost(nacks.on_packet(EDGE, 7, 105, 0.2)) == [101, 102]  # no answer: again
    assert nacks.on_packet(EDGE, 7, 101, 0.21) is None  # a retransmission fills the gap
    assert lost(nacks.on_packet(EDGE, 7, 106, 0.4)) == [102]
    assert nacks.on_packet(EDGE, 8, 1, 0.4) is None  # another stream: its own gaps


@dataclass
class Wire:
    sent: list[bytes] = field(default_factory=list)

    def _sendto(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append(data)


def relayed(now: float) -> tuple[Producer, RelaySink, Wire]:
    wire = Wire()
    link = RelayLink(wire, EDGE)  # type: ignore[arg-type]
    source = Producer("cam", "lecturer", TrackSource.CAMERA, VP8, lambda: None)
    sink = link.forward(source, 4000)
    source.on_rtp(1, 90, True, KEYFRAME, None, now)
    for sequence in range(2, 6):
        source.on_rtp(sequence, 90 * sequence, True, DELTA + bytes([sequence]), None, now)
    return source, sink, wire


def test_the_upstream_resends_from_history_as_rtx_once_per_round_trip() -> None:
    _, sink, wire = relayed(now=10.0)
    assert len(wire.sent) == 5
    resender = RelayResender()
    answers = resender.answer(sink, [3, 4, 900], 10.1)
    assert len(answers) == 2 and resender.skipped == 1  # 900 was never sent
    for number, (answer, original) in enumerate(zip(answers, (3, 4), strict=True)):
        payload_type, marker, sequence, timestamp, ssrc, offset = parse_fixed_header(answer)
        assert (payload_type, ssrc, sequence) == (RTX_PAYLOAD_TYPE, rtx_ssrc(4000), number)
        assert (timestamp, marker) == (90 * original, True)
        assert unwrap_rtx(answer[offset:]) == (original, DELTA + bytes([original]))
    # Asked again within a round trip: answered once (the first copy is on its way).
    assert resender.answer(sink, [3], 10.1 + RESEND_GUARD_S / 2) == []
    again = resender.answer(sink, [3], 10.1 + RESEND_GUARD_S * 2)
    assert len(again) == 1 and parse_fixed_header(again[0])[2] == 2  # RTX numbering goes on
    # Too old to help (a second after it arrived): a keyframe repairs faster.
    assert resender.answer(sink, [5], 11.5) == []
    assert resender.resent == 3


def test_a_short_rtx_payload_is_no_packet() -> None:
    assert unwrap_rtx(b"\x01") is None
    assert unwrap_rtx(b"\x01\x02") == (0x0102, b"")
