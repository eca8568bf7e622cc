"""RTCP from a subscriber or a publisher: aiortc's ``RtcpPacket.parse`` as its DTLS transport and
our relay call it, then our handling of what it returns.

Every parsed packet goes through :func:`mcu.sfu.aiortc_adapter.apply_feedback` to a real consumer
that has forwarded a few packets (so NACKs find history), and sender reports to a producer.
``ValueError`` is the parser's documented refusal; aiortc's transport drops only that, so any
other exception would end the connection that received the datagram.
"""

from __future__ import annotations

from aiortc.rtp import RtcpPacket, RtcpSrPacket

from mcu.media import CodecInfo, TrackSource
from mcu.sfu import aiortc_adapter as adapter
from mcu.sfu.consumer import Consumer
from mcu.sfu.producer import Producer

from ..harness import Crash, no_swallowed_exceptions
from .rtp import _LEG, _Wire

_VP8 = CodecInfo("video/VP8", 90000)
# A keyframe start (S=1, PID=0, P=0) then two more packets of the frame.
_PACKETS = (b"\x10\x00\x9d\x01\x2a", b"\x00\x01\x02", b"\x00\x03\x04")


def rtcp(data: bytes) -> None:
    """One RTCP datagram, compound or not."""
    try:
        packets = RtcpPacket.parse(data)
    except ValueError:
        return
    producer = Producer("t", "p", TrackSource.CAMERA, _VP8, lambda: None)
    wire = _Wire()
    consumer = Consumer(_LEG, wire, producer.history, producer, video=True)
    producer.add_sink(consumer)
    for i, payload in enumerate(_PACKETS):
        producer.on_rtp(0xFFFE + i & 0xFFFF, 3000, i == len(_PACKETS) - 1, payload, None, 1.0)
    forwarded = len(wire.sent)
    with no_swallowed_exceptions():
        for packet in packets:
            if isinstance(packet, RtcpSrPacket):
                info = packet.sender_info
                producer.on_sender_report(info.ntp_timestamp, info.rtp_timestamp)
            adapter.apply_feedback(packet, consumer, 2.0)
    if forwarded != len(_PACKETS):
        raise Crash("the consumer did not forward the keyframe")
    if len(wire.sent) - forwarded > consumer.nacks_received * 0x10000:
        raise Crash("more retransmissions than NACKed sequence numbers")
