"""Counting SRTP packets at a subscriber's socket, without decrypting.

SRTP encrypts the RTP payload only: the 12-byte header (sequence number, SSRC) is readable, so
loss can be computed exactly from sequence numbers. ``count_at_socket`` wraps the
``datagram_received`` of each aioice ``StunProtocol`` under a peer connection (as
``forward_receivers.py`` does): an RTP packet is counted and, unless the subscriber decodes,
dropped before aiortc would unprotect it. STUN (consent freshness), DTLS and SRTCP go on to aiortc.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection


def is_rtp(data: bytes) -> bool:
    """RTP: version 2 (first byte 128-191) and a second byte that is not an RTCP type (200-207)."""
    return len(data) >= 12 and 127 < data[0] < 192 and not 191 < data[1] < 224


def rtp_header(data: bytes) -> tuple[int, int]:
    """``(ssrc, sequence number)`` of an RTP or SRTP packet."""
    return int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big")


def extend_sequence(highest: int, sequence: int) -> int:
    """The extended (unwrapped) value of 16-bit ``sequence`` closest to ``highest``."""
    return highest + ((sequence - highest + 0x8000) & 0xFFFF) - 0x8000


@dataclass
class StreamCount:
    """What one subscriber received of one SSRC."""

    packets: int = 0
    "Packets received (duplicates included)."
    bytes: int = 0
    "SRTP bytes received (header, payload and tag)."
    lowest: int = -1
    "Lowest extended sequence number seen (-1 before the first packet)."
    highest: int = -1
    "Highest extended sequence number seen."
    first_at: float = 0.0
    "Monotonic time of the first packet."
    last_at: float = 0.0
    "Monotonic time of the last packet."

    def add(self, sequence: int, size: int, now: float) -> None:
        """Count one packet."""
        if self.packets == 0:
            self.lowest = self.highest = sequence + 0x10000  # room to unwrap below the first
            self.first_at = now
        else:
            extended = extend_sequence(self.highest, sequence)
            if extended > self.highest:
                self.highest = extended
            elif extended < self.lowest:
                self.lowest = extended
        self.packets += 1
        self.bytes += size
        self.last_at = now

    @property
    def expected(self) -> int:
        """Packets the sequence-number span says were sent."""
        return self.highest - self.lowest + 1 if self.packets else 0

    @property
    def lost(self) -> int:
        """Packets missing from the span (never negative, duplicates notwithstanding)."""
        return max(0, self.expected - self.packets)


def count_at_socket(
    pc: RTCPeerConnection,
    streams: dict[int, StreamCount],
    clock: Any,
    *,
    pass_through: bool,
    wrapped: set[int],
) -> None:
    """Count RTP arriving on ``pc``'s sockets into ``streams`` (keyed by SSRC).

    ``pass_through`` hands RTP on to aiortc too (a decoding subscriber). ``wrapped`` holds the ids
    of protocols already wrapped, so calling this again after a renegotiation is harmless.
    """
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport
        connection = getattr(getattr(transport, "transport", None), "_connection", None)
        for protocol in getattr(connection, "_protocols", []):
            if id(protocol) in wrapped:
                continue
            wrapped.add(id(protocol))
            original = protocol.datagram_received

            def counting(data: bytes, addr: Any, original: Any = original) -> None:
                if is_rtp(data):
                    ssrc, sequence = rtp_header(data)
                    stream = streams.get(ssrc)
                    if stream is None:
                        stream = streams[ssrc] = StreamCount()
                    stream.add(sequence, len(data), clock())
                    if not pass_through:
                        return
                original(data, addr)

            protocol.datagram_received = counting
