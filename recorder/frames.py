"""Whole encoded frames from a producer's packets, for recording: pure, no I/O, no decoding.

An assembler takes the :class:`~mcu.media.IncomingPacket` objects of one track in the order the
producer forwards them and returns a finished :class:`EncodedFrame` when one is complete. Loss
leaves a gap, never a broken frame: a frame with a packet missing is dropped whole, and video then
waits for the next keyframe (a frame decoded against a lost reference would show garbage until
one). Packets arriving late (a retransmission after the gap was seen) are ignored; the recorder
has no jitter buffer, so NACK repair helps subscribers but not the recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mcu.codecs import vp8
from mcu.codecs.h264 import NAL_IDR, NAL_PPS, NAL_SPS, START_CODE, H264Depacketizer
from mcu.media import IncomingPacket


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One complete encoded frame (an H.264 access unit, a VP8 frame, an Opus packet)."""

    data: bytes
    "The frame as a decoder takes it: Annex-B for H.264, the bare VP8 frame, the Opus packet."
    timestamp: int
    "Its RTP timestamp."
    keyframe: bool
    "Decoding can start here (H.264 IDR, VP8 keyframe; every Opus packet)."
    arrival: float
    "Arrival time (monotonic) of its first packet."


class FrameAssembler(Protocol):
    """Turns one track's packets into frames."""

    dropped_frames: int
    "Frames discarded as incomplete, or while waiting for a keyframe."

    @property
    def waiting_for_keyframe(self) -> bool:
        """True while frames are discarded until a keyframe (ask the publisher for one)."""

    def push(self, packet: IncomingPacket) -> EncodedFrame | None:
        """Take the next packet; return a frame when ``packet`` completed one."""

    def restart(self) -> None:
        """The stream broke off (a pause, a resync): drop what is partial, wait for a keyframe."""


class _Sequencer:
    """Sequence bookkeeping shared by the assemblers: duplicates, late packets and gaps."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: int | None = None

    def check(self, ext_sequence: int) -> bool | None:
        """None for a duplicate or late packet (ignore it), else True after a gap."""
        last = self._last
        if last is not None and ext_sequence <= last:
            return None
        self._last = ext_sequence
        return last is not None and ext_sequence != last + 1

    def forget(self) -> None:
        self._last = None


def h264_nal_types(access_unit: bytes) -> set[int]:
    """The NAL unit types in an Annex-B access unit as :class:`H264Depacketizer` builds it."""
    types: set[int] = set()
    # Emulation prevention keeps 00 00 00 01 out of NAL unit bodies, so every match is a start code.
    pos = access_unit.find(START_CODE)
    while pos >= 0 and pos + 4 < len(access_unit):
        types.add(access_unit[pos + 4] & 0x1F)
        pos = access_unit.find(START_CODE, pos + 4)
    return types


class H264FrameAssembler:
    """H.264 access units, through :class:`~mcu.codecs.h264.H264Depacketizer`.

    Decoding starts at an IDR access unit once SPS and PPS have been seen (libwebrtc sends them
    in-band before every IDR; parameter sets given only in the SDP are not used).
    """

    __slots__ = (
        "_arrival",
        "_depacketizer",
        "_have_pps",
        "_have_sps",
        "_sequencer",
        "_tainted",
        "_waiting",
        "dropped_frames",
    )

    def __init__(self) -> None:
        self._depacketizer = H264Depacketizer()
        self._sequencer = _Sequencer()
        self._waiting = True
        self._tainted = False
        "A packet of the access unit being assembled may have been lost."
        self._arrival: float | None = None
        self._have_sps = False
        self._have_pps = False
        self.dropped_frames = 0

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._waiting

    def push(self, packet: IncomingPacket) -> EncodedFrame | None:
        gap = self._sequencer.check(packet.ext_sequence)
        if gap is None:
            return None
        if gap:
            # The lost packets may be the start of this access unit as much as the end of the last.
            self._depacketizer.reset()
            self._tainted = True
            self._waiting = True
        if self._arrival is None:
            self._arrival = packet.arrival
        unit = self._depacketizer.push(packet.payload, packet.marker, packet.ext_sequence & 0xFFFF)
        if not packet.marker:
            return None
        arrival, self._arrival = self._arrival, None
        tainted, self._tainted = self._tainted, False
        if unit is None:
            return None
        types = h264_nal_types(unit)
        self._have_sps = self._have_sps or NAL_SPS in types
        self._have_pps = self._have_pps or NAL_PPS in types
        keyframe = NAL_IDR in types
        if tainted or (self._waiting and not (keyframe and self._have_sps and self._have_pps)):
            self.dropped_frames += 1
            return None
        self._waiting = False
        return EncodedFrame(unit, packet.timestamp, keyframe, arrival)

    def restart(self) -> None:
        self._depacketizer.reset()
        self._sequencer.forget()
        self._arrival = None
        self._tainted = False
        self._waiting = True


class Vp8FrameAssembler:
    """VP8 frames: the payloads of one picture, descriptors stripped, from its first packet
    (S=1, PID=0) through the one with the marker bit."""

    __slots__ = (
        "_arrival",
        "_keyframe",
        "_parts",
        "_sequencer",
        "_timestamp",
        "_waiting",
        "dropped_frames",
    )

    def __init__(self) -> None:
        self._sequencer = _Sequencer()
        self._parts: list[bytes] | None = None
        self._timestamp = 0
        self._keyframe = False
        self._arrival = 0.0
        self._waiting = True
        self.dropped_frames = 0

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._waiting

    def push(self, packet: IncomingPacket) -> EncodedFrame | None:
        gap = self._sequencer.check(packet.ext_sequence)
        if gap is None:
            return None
        if gap:
            self._drop()
            self._waiting = True
        payload = packet.payload
        try:
            descriptor = vp8.parse_descriptor(payload)
        except ValueError:
            self._drop()
            return None
        if descriptor.start_of_partition and descriptor.partition_id == 0:
            self._drop()  # a new picture while one is unfinished: its marker was lost
            self._parts = []
            self._timestamp = packet.timestamp
            self._keyframe = vp8.is_keyframe(payload)
            self._arrival = packet.arrival
        elif self._parts is None:
            return None  # the rest of a picture whose start was lost
        elif packet.timestamp != self._timestamp:
            self._drop()
            return None
        self._parts.append(payload[descriptor.header_size :])
        if not packet.marker:
            return None
        parts, self._parts = self._parts, None
        data = b"".join(parts)
        # A picture of descriptors alone carries nothing, and an empty packet is FFmpeg's
        # end-of-stream signal: the transcoder's decoder would refuse every frame after it.
        if not data or (self._waiting and not self._keyframe):
            self.dropped_frames += 1
            return None
        self._waiting = False
        return EncodedFrame(data, self._timestamp, self._keyframe, self._arrival)

    def restart(self) -> None:
        self._drop()
        self._sequencer.forget()
        self._waiting = True

    def _drop(self) -> None:
        if self._parts is not None:
            self._parts = None
            self.dropped_frames += 1


class OpusFrameAssembler:
    """Opus: every packet is a frame; loss just leaves a gap."""

    __slots__ = ("_sequencer", "dropped_frames")

    def __init__(self) -> None:
        self._sequencer = _Sequencer()
        self.dropped_frames = 0

    @property
    def waiting_for_keyframe(self) -> bool:
        return False

    def push(self, packet: IncomingPacket) -> EncodedFrame | None:
        if self._sequencer.check(packet.ext_sequence) is None or not packet.payload:
            return None
        return EncodedFrame(packet.payload, packet.timestamp, True, packet.arrival)

    def restart(self) -> None:
        self._sequencer.forget()


def assembler_for(mime_type: str) -> FrameAssembler:
    """The assembler for a producer's codec; ValueError for a codec the recorder cannot take."""
    mime = mime_type.lower()
    if mime == "video/h264":
        return H264FrameAssembler()
    if mime == "video/vp8":
        return Vp8FrameAssembler()
    if mime == "audio/opus":
        return OpusFrameAssembler()
    raise ValueError(f"cannot record {mime_type}")
