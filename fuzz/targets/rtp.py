"""RTP from a publisher: aiortc's parse as our tap calls it, the ingress, and the rewrite.

``rtp_ingress`` feeds a sequence of datagrams through :func:`~mcu.sfu.aiortc_adapter.parse_rtp` (as
:class:`~mcu.sfu.aiortc_adapter.PublisherTap` parses), the ingress router (RTX unwrapping, audio
level), a real :class:`~mcu.sfu.producer.Producer` and a real :class:`~mcu.sfu.consumer.Consumer`,
then a NACK. Properties: whatever aiortc accepts, :func:`mcu.sfu.rtp.parse_fixed_header` reads the
same header from; every packet the consumer sends parses again (as the subscriber's aiortc would)
with the leg's SSRC and payload type, and the payload, audio level and mid it was given.

``rtp_header`` drives :mod:`mcu.sfu.rtp` alone: the fixed-header parser and the header builders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from mcu.media import CodecInfo, IncomingPacket, TrackSource
from mcu.sfu import aiortc_adapter as adapter
from mcu.sfu.consumer import Consumer, ConsumerLeg
from mcu.sfu.nack import NackRequester
from mcu.sfu.producer import Producer
from mcu.sfu.rtp import (
    build_header,
    mid_element,
    parse_fixed_header,
    rtx_payload,
    shared_extension_elements,
)

from ..harness import Crash, Input, no_swallowed_exceptions

_CODECS = (
    CodecInfo("video/VP8", 90000),
    CodecInfo("video/H264", 90000, None, (("packetization-mode", "1"),)),
    CodecInfo("audio/opus", 48000, 2),
)
_PUBLISHER_PT, _PUBLISHER_RTX_PT = 96, 97
_LEG = ConsumerLeg(
    payload_type=100,
    ssrc=0x11223344,
    mid="1",
    rtx_payload_type=101,
    rtx_ssrc=0x55667788,
    mid_id=4,
    abs_send_time_id=3,
    audio_level_id=1,
)


def _extensions_map(mid_id: int, abs_send_time_id: int, audio_level_id: int) -> HeaderExtensionsMap:
    ids = {
        adapter.MID_URI: mid_id,
        adapter.ABS_SEND_TIME_URI: abs_send_time_id,
        adapter.AUDIO_LEVEL_URI: audio_level_id,
    }
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=i, uri=uri) for uri, i in ids.items() if i
            ]
        )
    )
    return extensions_map


# What a browser's publish leg negotiates (ids as Chromium numbers them).
_PUBLISHER_EXTENSIONS = _extensions_map(mid_id=4, abs_send_time_id=2, audio_level_id=1)
_SUBSCRIBER_EXTENSIONS = _extensions_map(_LEG.mid_id, _LEG.abs_send_time_id, _LEG.audio_level_id)


@dataclass
class _Wire:
    """The subscriber's transport: keeps what the consumer sends."""

    sent: list[bytes] = field(default_factory=list)

    def ready(self) -> bool:
        return True

    def send(self, header: bytes, payload: bytes | bytearray = b"") -> bool:
        self.sent.append(header + payload)
        return True


@dataclass
class _Delivered:
    """A sink beside the consumer: what the producer handed on."""

    packets: list[IncomingPacket] = field(default_factory=list)

    def on_packet(self, packet: IncomingPacket) -> None:
        self.packets.append(packet)

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        pass

    def resync(self) -> None:
        pass

    def close(self) -> None:
        pass


def _check_same_header(data: bytes, packet: RtpPacket) -> None:
    """Our parser must read what aiortc read from a packet aiortc accepts."""
    try:
        ours = parse_fixed_header(data)
    except ValueError as exc:
        raise Crash(f"aiortc accepts a packet parse_fixed_header refuses: {exc}") from None
    theirs = (
        packet.payload_type,
        bool(packet.marker),
        packet.sequence_number,
        packet.timestamp,
        packet.ssrc,
    )
    if ours[:5] != theirs:
        raise Crash(f"header read as {ours[:5]}, aiortc read {theirs}")
    end = len(data) - data[-1] if data[0] & 0x20 else len(data)
    if data[ours[5] : end] != packet.payload:
        raise Crash("payload differs from aiortc's")


def _check_sent(wire: bytes, packet: IncomingPacket, *, rtx: bool) -> None:
    """A packet the consumer sent must parse as the subscriber parses it, intact."""
    try:
        parsed = RtpPacket.parse(wire, _SUBSCRIBER_EXTENSIONS)
    except ValueError as exc:
        raise Crash(f"the consumer sent a packet that does not parse: {exc}") from None
    expected_pt = _LEG.rtx_payload_type if rtx else _LEG.payload_type
    expected_ssrc = _LEG.rtx_ssrc if rtx else _LEG.ssrc
    if parsed.payload_type != expected_pt or parsed.ssrc != expected_ssrc:
        raise Crash("the consumer sent a wrong payload type or SSRC")
    payload = parsed.payload[2:] if rtx else parsed.payload
    if payload != packet.payload or bool(parsed.marker) != packet.marker:
        raise Crash("the consumer changed the payload or the marker")
    if parsed.extensions.mid != _LEG.mid:
        raise Crash(f"the consumer sent mid {parsed.extensions.mid!r}")
    level = parsed.extensions.audio_level
    if (level[1] if level else None) != packet.audio_level:
        raise Crash(f"audio level {packet.audio_level} arrived as {level}")


def rtp_ingress(data: bytes) -> None:
    """Datagrams (2-byte length each) through parse, ingress, producer and consumer, then a NACK."""
    source = Input(data)
    codec = _CODECS[source.byte() % len(_CODECS)]
    video = codec.kind == "video"
    producer = Producer(
        "t", "p", TrackSource.CAMERA if video else TrackSource.MICROPHONE, codec, lambda: None
    )
    delivered = _Delivered()
    wire = _Wire()
    consumer = Consumer(_LEG, wire, producer.history, producer, video=video)
    producer.add_sink(delivered)
    producer.add_sink(consumer)
    ingress = adapter._Ingress(
        producer, _PUBLISHER_PT, _PUBLISHER_RTX_PT, NackRequester() if video else None
    )
    now = 1000.0
    with no_swallowed_exceptions():
        for _ in range(64):
            if not source.left:
                break
            datagram = source.take(source.uint(2) % 1500)
            packet = adapter.parse_rtp(datagram, _PUBLISHER_EXTENSIONS)  # as PublisherTap does
            if packet is None:
                continue
            _check_same_header(datagram, packet)
            sent_before = len(wire.sent)
            delivered_before = len(delivered.packets)
            ingress.on_packet(packet, now, 0.0)
            now += 0.01
            new = delivered.packets[delivered_before:]
            for wire_packet in wire.sent[sent_before:]:
                if not new:
                    raise Crash("the consumer sent a packet the producer did not deliver")
                _check_sent(wire_packet, new[-1], rtx=False)
        lost = [source.uint(2) for _ in range(source.byte() % 8)]
        sent_before = len(wire.sent)
        consumer.on_nack(lost, now)
        by_sequence = {p.ext_sequence & 0xFFFF: p for p in delivered.packets}
        for wire_packet in wire.sent[sent_before:]:
            offset = _rtx_payload_offset(wire_packet)
            original = int.from_bytes(wire_packet[offset : offset + 2], "big")
            _check_sent(wire_packet, _original_packet(by_sequence, original, consumer), rtx=True)


def _rtx_payload_offset(wire: bytes) -> int:
    offset = parse_fixed_header(wire)[5]
    if len(wire) < offset + 2:
        raise Crash("an RTX packet without its original sequence number")
    return offset


def _original_packet(
    by_sequence: dict[int, IncomingPacket], outgoing_sequence: int, consumer: Consumer
) -> IncomingPacket:
    incoming = (outgoing_sequence - consumer._rewriter.sequence_offset) & 0xFFFF
    packet = by_sequence.get(incoming)
    if packet is None:
        raise Crash(f"RTX for outgoing sequence {outgoing_sequence}, which was never received")
    return packet


def rtp_header(data: bytes) -> None:
    """parse_fixed_header on raw bytes, and a header rebuilt from what it read parses back."""
    source = Input(data)
    pt = source.byte() & 0x7F
    sequence, timestamp, ssrc = source.uint(2), source.uint(4), source.uint(4)
    level = source.byte()
    abs_id, level_id, mid_id = source.byte() % 15, source.byte() % 15, source.byte() % 15
    mid = source.take(source.byte() % 18).decode("ascii", "replace")
    packet = source.rest()
    try:
        read_pt, marker, _, _, _, offset = parse_fixed_header(packet)
    except ValueError:
        return
    end = len(packet) - packet[-1] if packet[0] & 0x20 else len(packet)
    if not 12 <= offset <= end <= len(packet):
        raise Crash(f"payload bounds {offset}..{end} outside a {len(packet)}-byte packet")
    payload = packet[offset:end]
    try:
        elements = shared_extension_elements(abs_id, level_id, source.uint(3), level & 0x7F)
        elements += mid_element(mid_id, mid)
    except ValueError:
        return  # a mid longer than 16 bytes: refused, as documented
    rebuilt = build_header(pt, marker, sequence, timestamp, ssrc, elements) + payload
    again = parse_fixed_header(rebuilt)
    if again[:5] != (pt, marker, sequence, timestamp, ssrc) or rebuilt[again[5] :] != payload:
        raise Crash("a rebuilt header does not read back")
    if read_pt != packet[1] & 0x7F:
        raise Crash("payload type misread")
    if rtx_payload(sequence, payload)[2:] != payload:
        raise Crash("RTX payload does not carry the original")
