"""The relay's wire format, pure: the streams a STAGE message describes, parsing relayed RTP,
and the RTCP each end sends.

:mod:`mcu.sfu.relay` describes the format (one RTP stream per relay SSRC, sender reports down,
keyframe requests and NACKs up, retransmissions as RTX); these functions read and write it.
"""

from __future__ import annotations

from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
)

from mcu.contracts.cluster import CodecDescription, StreamDescription
from mcu.media import CodecInfo, TrackSource
from mcu.sfu.producer import Producer
from mcu.sfu.rtp import parse_fixed_header

__all__ = [
    "AUDIO_LEVEL_ID",
    "codec_from_description",
    "generic_nack",
    "parse_relay_packet",
    "picture_loss_indication",
    "sender_report",
    "source_from_description",
    "stream_description",
]

AUDIO_LEVEL_ID = 1
"Extension id of the audio level in the relay's one-byte extension block."


def stream_description(producer: Producer, ssrc: int) -> StreamDescription:
    """The STREAM object of a STAGE message for ``producer`` relayed as ``ssrc``."""
    codec = producer.codec
    return StreamDescription(
        ssrc=ssrc,
        track_id=producer.track_id,
        participant_id=producer.participant_id,
        # TrackSource's values are the contract's Source (tests/unit/test_cluster_messages.py).
        source=producer.source.value,
        codec=CodecDescription(
            mime_type=codec.mime_type,
            clock_rate=codec.clock_rate,
            channels=codec.channels,
            parameters=codec.parameters,
        ),
    )


def codec_from_description(description: CodecDescription) -> CodecInfo:
    """The codec of a STREAM object's ``codec`` (validated when the message was read)."""
    return CodecInfo(
        description.mime_type,
        description.clock_rate,
        description.channels,
        tuple(sorted(description.parameters)),
    )


def source_from_description(description: StreamDescription) -> TrackSource:
    """The track source of a STREAM object."""
    return TrackSource(description.source)


def parse_relay_packet(data: bytes) -> tuple[int, int, int, bool, bytes, int | None]:
    """Return (ssrc, sequence, timestamp, marker, payload, audio_level) of a relayed RTP packet.

    Raises ValueError for anything that is not well-formed RTP.
    """
    _, marker, sequence, timestamp, ssrc, offset = parse_fixed_header(data)
    end = len(data) - data[-1] if data[0] & 0x20 else len(data)
    level = _audio_level(data) if data[0] & 0x10 else None
    return ssrc, sequence, timestamp, marker, data[offset:end], level


def _audio_level(data: bytes) -> int | None:
    """The level element (id 1) of a packet's one-byte extension block, if it has one.

    Only call on a packet ``parse_fixed_header`` accepted with the X bit set: the block is there.
    """
    start = 12 + 4 * (data[0] & 0x0F)
    if data[start] != 0xBE or data[start + 1] != 0xDE:
        return None  # a two-byte header block: not the relay's
    i = start + 4
    end = i + 4 * ((data[start + 2] << 8) | data[start + 3])
    while i < end:
        byte = data[i]
        if byte == 0:  # padding between elements
            i += 1
            continue
        element_id = byte >> 4
        if element_id == 15:
            break
        if element_id == AUDIO_LEVEL_ID:
            return data[i + 1] & 0x7F if i + 1 < end else None
        i += (byte & 0x0F) + 2
    return None


def sender_report(ssrc: int, ntp_time: int, rtp_time: int, packets: int, octets: int) -> bytes:
    """An RTCP sender report (no report blocks) for relay stream ``ssrc``."""
    info = RtcpSenderInfo(ntp_time, rtp_time, packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
    return bytes(RtcpSrPacket(ssrc=ssrc, sender_info=info))


def picture_loss_indication(ssrc: int) -> bytes:
    """An RTCP PLI for relay stream ``ssrc`` (the edge sends no media: sender SSRC 0)."""
    return bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=0, media_ssrc=ssrc))


def generic_nack(ssrc: int, sequences: list[int]) -> bytes:
    """An RTCP generic NACK (RFC 4585) for relay stream ``ssrc``'s lost ``sequences``."""
    return bytes(
        RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=0, media_ssrc=ssrc, lost=sorted(sequences))
    )
