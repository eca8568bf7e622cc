"""Pure RTP helpers for the forwarding path: sequence unwrapping, header building, RTX.

All functions take and return plain ints and bytes so they can be tested with literal packets.
"""

from __future__ import annotations

import struct

RTP_VERSION_BITS = 0x80
EXTENSION_BIT = 0x10
ONE_BYTE_PROFILE = 0xBEDE

_FIXED_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_ABS_SEND_TIME = struct.Struct("!I")


class SequenceUnwrapper:
    """Extends 16-bit RTP sequence numbers to monotonic integers (RFC 3550 A.1 style).

    Out-of-order and retransmitted packets map to the value they had originally, as long as they
    are within half the sequence space of the highest seen.
    """

    __slots__ = ("highest",)

    def __init__(self) -> None:
        self.highest: int | None = None

    def unwrap(self, seq: int) -> int:
        """Return the extended sequence number of ``seq`` and update the highest seen."""
        highest = self.highest
        if highest is None:
            self.highest = seq
            return seq
        delta = (seq - highest) & 0xFFFF
        if delta < 0x8000:
            ext = highest + delta
            self.highest = ext
            return ext
        return highest - ((highest - seq) & 0xFFFF)


def extend_sequence(seq16: int, highest: int) -> int:
    """Map a 16-bit sequence number to the extended number nearest to ``highest``."""
    delta = (seq16 - highest) & 0xFFFF
    if delta < 0x8000:
        return highest + delta
    return highest - ((highest - seq16) & 0xFFFF)


def abs_send_time(now: float) -> int:
    """The 24-bit abs-send-time value (6.18 fixed-point seconds) for ``now`` in seconds."""
    return int(now * (1 << 18)) & 0xFFFFFF


def shared_extension_elements(
    abs_send_time_id: int, audio_level_id: int, abs_time: int, audio_level: int | None
) -> bytes:
    """The one-byte-header extension elements that are the same for every consumer.

    An id of 0 means the consumer's leg did not negotiate that extension.
    """
    out = b""
    if abs_send_time_id:
        out += bytes((abs_send_time_id << 4 | 2,)) + _ABS_SEND_TIME.pack(abs_time)[1:]
    if audio_level_id and audio_level is not None:
        out += bytes((audio_level_id << 4, audio_level & 0x7F))
    return out


def mid_element(mid_id: int, mid: str) -> bytes:
    """The one-byte-header element carrying the consumer's ``mid`` (empty when not negotiated)."""
    if not mid_id or not mid:
        return b""
    data = mid.encode()
    if not 1 <= len(data) <= 16:
        raise ValueError("mid must be 1-16 bytes")
    return bytes((mid_id << 4 | (len(data) - 1),)) + data


def build_header(
    payload_type: int,
    marker: bool,
    sequence: int,
    timestamp: int,
    ssrc: int,
    extension_elements: bytes,
) -> bytes:
    """Build an RTP header (with a one-byte extension block when there are elements)."""
    if not extension_elements:
        return _FIXED_HEADER.pack(
            RTP_VERSION_BITS, (marker << 7) | payload_type, sequence, timestamp, ssrc
        )
    words = (len(extension_elements) + 3) // 4
    padding = b"\x00" * (words * 4 - len(extension_elements))
    return (
        _FIXED_HEADER.pack(
            RTP_VERSION_BITS | EXTENSION_BIT,
            (marker << 7) | payload_type,
            sequence,
            timestamp,
            ssrc,
        )
        + _EXT_HEADER.pack(ONE_BYTE_PROFILE, words)
        + extension_elements
        + padding
    )


def pack_fixed_header(
    payload_type: int, marker: bool, sequence: int, timestamp: int, ssrc: int, extension: bool
) -> bytes:
    """The 12-byte fixed header alone (the hot path appends a prebuilt extension block)."""
    return _FIXED_HEADER.pack(
        RTP_VERSION_BITS | (EXTENSION_BIT if extension else 0),
        (marker << 7) | payload_type,
        sequence,
        timestamp,
        ssrc,
    )


def extension_block_header(element_bytes: int) -> tuple[bytes, bytes]:
    """The ``0xBEDE`` + length word and the zero padding for ``element_bytes`` of elements."""
    words = (element_bytes + 3) // 4
    return _EXT_HEADER.pack(ONE_BYTE_PROFILE, words), b"\x00" * (words * 4 - element_bytes)


def parse_fixed_header(data: bytes) -> tuple[int, bool, int, int, int, int]:
    """Return (payload_type, marker, sequence, timestamp, ssrc, payload_offset) of an RTP packet.

    Raises ValueError for anything that is not a well-formed RTP packet.
    """
    if len(data) < 12:
        raise ValueError("RTP packet shorter than its fixed header")
    b0, b1, seq, ts, ssrc = _FIXED_HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        raise ValueError("RTP version is not 2")
    offset = 12 + 4 * (b0 & 0x0F)
    if b0 & EXTENSION_BIT:
        if len(data) < offset + 4:
            raise ValueError("RTP extension header truncated")
        _, words = _EXT_HEADER.unpack_from(data, offset)
        offset += 4 + 4 * words
    end = len(data)
    if b0 & 0x20:
        if end <= offset:
            raise ValueError("RTP padding without payload")
        end -= data[-1]
    if offset > end:
        raise ValueError("RTP packet truncated")
    return b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, offset


def rtx_payload(original_sequence: int, payload: bytes | bytearray) -> bytes:
    """RFC 4588 RTX payload: the original sequence number followed by the original payload."""
    return struct.pack("!H", original_sequence & 0xFFFF) + payload
