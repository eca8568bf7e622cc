"""Frame assembly for recording, from literal packets."""

from __future__ import annotations

from mcu.media import IncomingPacket
from mcu.recorder.frames import Vp8FrameAssembler

# S=1, PID=0, then a VP8 payload header with P=0: the first packet of a keyframe.
KEYFRAME = b"\x10" + b"\x10\x02\x00\x9d\x01\x2a" + b"\x00" * 8
INTERFRAME = b"\x10" + b"\x01\x02\x03"
DESCRIPTOR_ONLY = b"\x90\x80\x05"  # X, I with PictureID 5: and no VP8 data after it


def _packet(sequence: int, timestamp: int, payload: bytes) -> IncomingPacket:
    return IncomingPacket(sequence, timestamp, True, payload, False, None, float(sequence))


def test_a_picture_of_descriptors_alone_is_no_frame() -> None:
    # Found by the frames fuzz target. An empty frame handed to FFmpeg's VP8 decoder is the
    # end-of-stream signal: every later frame of the recording would then fail to decode.
    assembler = Vp8FrameAssembler()
    first = assembler.push(_packet(1, 3000, KEYFRAME))
    assert first is not None and first.keyframe
    assert assembler.push(_packet(2, 6000, DESCRIPTOR_ONLY)) is None
    assert assembler.dropped_frames == 1
    after = assembler.push(_packet(3, 9000, INTERFRAME))
    assert after is not None and after.data == b"\x01\x02\x03"
