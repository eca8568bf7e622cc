"""The media contract: what flows between a publisher, the server and a subscriber.

Read this module first. A *producer* is one incoming track (one publisher's camera, microphone or
content stream); a *consumer* is one outgoing copy of a producer to one subscriber. Every incoming
RTP packet is parsed once into an :class:`IncomingPacket`, then the producer hands the same object
to each of its consumers, which only rewrite the header, protect and send. Nothing on that path
decodes media.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


class TrackSource(enum.StrEnum):
    """What a track carries, as the protocol names it."""

    MICROPHONE = "microphone"
    CAMERA = "camera"
    CONTENT = "content"

    @property
    def kind(self) -> str:
        """The media kind ("audio" or "video") this source is sent as."""
        return "audio" if self is TrackSource.MICROPHONE else "video"


@dataclass(frozen=True, slots=True)
class CodecInfo:
    """The codec a producer was negotiated with; consumers must negotiate exactly this."""

    mime_type: str
    "For example ``video/VP8``, ``video/H264`` or ``audio/opus``."
    clock_rate: int
    "RTP clock rate in Hz."
    channels: int | None = None
    "Audio channels, as in the SDP rtpmap."
    parameters: tuple[tuple[str, str], ...] = ()
    "The fmtp parameters (H.264 profile-level-id, packetization-mode, ...), sorted."

    @property
    def kind(self) -> str:
        """``audio`` or ``video``."""
        return self.mime_type.split("/", 1)[0].lower()


@dataclass(slots=True)
class IncomingPacket:
    """One RTP packet from a publisher, parsed once and shared by every consumer.

    RTX retransmissions arrive here already unwrapped: ``sequence`` is the original sequence number
    and ``payload`` the original payload.
    """

    ext_sequence: int
    "Sequence number extended past 16 bits (monotonic across wrap-arounds)."
    timestamp: int
    "RTP timestamp as the publisher sent it."
    marker: bool
    "RTP marker bit (last packet of a video frame)."
    payload: bytes
    "The RTP payload, header and extensions stripped."
    keyframe: bool
    "First packet of a keyframe (video only)."
    audio_level: int | None
    "RFC 6464 level in -dBov (0 loudest, 127 silence), if the publisher sent it."
    arrival: float
    "Arrival time in seconds (monotonic clock)."
    ext_cache: dict[int, bytes] = field(default_factory=dict)
    """The header-extension block built for a consumer profile (its abs-send-time and audio-level
    ids and mid element, numbered once per process), shared by the consumers with that profile."""
    temporal_id: int = -1
    "Temporal layer of the frame (VP8 TID, 0 is the base layer); -1 when the stream has none."
    layer_sync: bool = False
    "The frame references only the base layer (VP8 Y bit): a subscriber may switch up here."
    picture_id: int = -1
    "VP8 PictureID of the frame; -1 when absent."
    red: bytes | None = None
    """The whole RED payload (RFC 2198) when the publisher sent the packet as RED; ``payload`` is
    then its primary block, plain Opus for every sink that did not negotiate RED."""


class PacketSink(Protocol):
    """Anything that takes forwarded packets: a consumer, later a recorder or a mixer input."""

    def on_packet(self, packet: IncomingPacket) -> None:
        """Take one packet; must not block and must not raise."""

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        """The publisher's clock mapping (from its RTCP sender report), for A/V sync downstream."""

    def resync(self) -> None:
        """The stream resumes after a break: continue numbering from the last packet sent."""

    def close(self) -> None:
        """The producer ended; release resources."""


class KeyframeSource(Protocol):
    """What a consumer asks when its subscriber lost a picture or just joined."""

    def request_keyframe(self, now: float) -> None:
        """Ask the publisher for a keyframe (the producer rate-limits this)."""
