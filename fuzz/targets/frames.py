"""Recording's frame assembly (``mcu.recorder.frames``) from packets as a producer hands them on.

Each packet record is a flags byte (marker; how the sequence moves: next, duplicate, late or a
gap), a timestamp step and a 1-byte payload length. Properties: frames are never empty; after a
gap or at the start, the first video frame is a keyframe (H.264: an IDR with SPS and PPS seen);
H.264 frames are Annex-B.
"""

from __future__ import annotations

from mcu.codecs.h264 import NAL_IDR, START_CODE
from mcu.codecs.inspect import keyframe_detector
from mcu.media import IncomingPacket
from mcu.recorder.frames import assembler_for, h264_nal_types

from ..harness import Crash, Input

_MIME_TYPES = ("video/H264", "video/VP8", "audio/opus")


def frames(data: bytes) -> None:
    """Packets of one track into its assembler."""
    source = Input(data)
    mime = _MIME_TYPES[source.byte() % len(_MIME_TYPES)]
    assembler = assembler_for(mime)
    is_keyframe = keyframe_detector(mime)
    sequence, timestamp = 1000 + source.uint(2), source.uint(4)
    for _ in range(48):
        if not source.left:
            break
        flags, step = source.byte(), source.byte()
        payload = source.take(source.byte())
        move = (flags >> 1) & 3
        sequence += (1, 0, -2, 3)[move]
        timestamp = (timestamp + step * 90) & 0xFFFFFFFF
        if flags & 0x80:
            assembler.restart()
        waiting = assembler.waiting_for_keyframe
        packet = IncomingPacket(
            sequence,
            timestamp,
            bool(flags & 1),
            payload,
            mime != "audio/opus" and bool(payload) and is_keyframe(payload),
            None,
            float(sequence),
        )
        frame = assembler.push(packet)
        if frame is None:
            continue
        if not frame.data:
            raise Crash("an empty frame")
        if waiting and not frame.keyframe:
            raise Crash("a frame other than a keyframe while waiting for one")
        if mime == "video/H264":
            if not frame.data.startswith(START_CODE):
                raise Crash("an H.264 frame that is not Annex-B")
            if frame.keyframe != (NAL_IDR in h264_nal_types(frame.data)):
                raise Crash("an H.264 frame's keyframe flag does not match its NAL units")
