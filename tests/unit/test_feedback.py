"""A subscriber's RTCP feedback (NACK, PLI, REMB) applied to its consumer, from literal packets."""

from __future__ import annotations

import struct

from aiortc.rtp import RTCP_PSFB_APP, RtcpPacket, RtcpPsfbPacket, pack_remb_fci

from mcu.sfu.aiortc_adapter import apply_feedback
from mcu.sfu.consumer import Consumer, ConsumerLeg
from tests.unit.test_consumer import CapturingTransmitter

LEG = ConsumerLeg(payload_type=100, ssrc=0x11223344, mid="1")


def _consumer() -> Consumer:
    return Consumer(LEG, CapturingTransmitter(), video=True)


def test_remb_sets_the_bitrate() -> None:
    remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=2, media_ssrc=0, fci=pack_remb_fci(300_000, [1]))
    consumer = _consumer()
    (packet,) = RtcpPacket.parse(bytes(remb))
    assert apply_feedback(packet, consumer, 1.0)
    assert consumer.remb_bitrate == 300_000


def test_remb_claiming_more_ssrcs_than_it_carries_is_ignored() -> None:
    # Found by the rtcp fuzz target: "REMB" with an SSRC count of 66 and one SSRC. aiortc's
    # unpack_remb_fci raises struct.error, which escaping here would close the subscriber's
    # DTLS transport (aiortc's receive loop ends on any exception).
    fci = b"REMB" + struct.pack("!BBH", 66, 0x06, 0x4900) + struct.pack("!L", 1)
    remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=2, media_ssrc=0, fci=fci)
    consumer = _consumer()
    (packet,) = RtcpPacket.parse(bytes(remb))
    assert apply_feedback(packet, consumer, 1.0)
    assert consumer.remb_bitrate is None
