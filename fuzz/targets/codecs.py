"""VP8, H.264, Opus and RED payload inspection (``mcu.codecs``), as run on every incoming packet.

Properties: the keyframe tests never raise; they agree with the full parsers; a rewritten VP8
PictureID reads back and leaves the payload after the descriptor untouched; the H.264
depacketizer only ever returns Annex-B access units.
"""

from __future__ import annotations

from mcu.codecs import h264, opus, red, vp8
from mcu.codecs.inspect import keyframe_detector

from ..harness import Crash, Input


def vp8_payload(data: bytes) -> None:
    """One VP8 payload: descriptor, keyframe test, PictureID rewrite."""
    source = Input(data)
    picture_id, tl0 = source.uint(2), source.byte()
    with_tl0 = source.flag()
    payload = source.rest()
    keyframe = vp8.is_keyframe(payload)
    if keyframe_detector("video/VP8")(payload) is not keyframe:
        raise Crash("the VP8 detector and vp8.is_keyframe disagree")
    try:
        descriptor = vp8.parse_descriptor(payload)
    except ValueError:
        if keyframe:
            raise Crash("a keyframe whose descriptor does not parse") from None
        return
    if not 1 <= descriptor.header_size <= len(payload):
        raise Crash(f"descriptor size {descriptor.header_size} of a {len(payload)}-byte payload")
    if keyframe and not (
        descriptor.start_of_partition
        and descriptor.partition_id == 0
        and descriptor.header_size < len(payload)
        and not payload[descriptor.header_size] & 1
    ):
        raise Crash("a keyframe that is not the start of a frame with P=0")
    rewritten = bytearray(payload)
    try:
        vp8.rewrite_picture_id(rewritten, picture_id, tl0 if with_tl0 else None)
    except ValueError:
        if rewritten != payload:
            raise Crash("a refused rewrite changed the payload") from None
        return
    again = vp8.parse_descriptor(rewritten)
    bits = descriptor.picture_id_bits
    if again.picture_id != picture_id % (1 << bits) or again.header_size != descriptor.header_size:
        raise Crash(f"PictureID {picture_id} read back as {again.picture_id}")
    if with_tl0 and again.tl0picidx != tl0:
        raise Crash("TL0PICIDX did not read back")
    if rewritten[again.header_size :] != payload[descriptor.header_size :]:
        raise Crash("the rewrite touched the VP8 data")


def h264_payload(data: bytes) -> None:
    """Payloads (1-byte length each) through nal_types, is_keyframe and the depacketizer."""
    source = Input(data)
    depacketizer = h264.H264Depacketizer()
    sequence = source.uint(2)
    for _ in range(32):
        if not source.left:
            break
        flags = source.byte()
        payload = source.take(source.byte())
        keyframe = h264.is_keyframe(payload)
        if keyframe_detector("video/H264")(payload) is not keyframe:
            raise Crash("the H.264 detector and h264.is_keyframe disagree")
        try:
            types = h264.nal_types(payload)
        except ValueError:
            types = None
        if types is not None and keyframe != bool({h264.NAL_IDR, h264.NAL_SPS} & set(types)):
            raise Crash(f"is_keyframe says {keyframe} for NAL units {types}")
        sequence = (sequence + 1 + (flags >> 6 == 3)) & 0xFFFF  # sometimes a lost packet
        unit = depacketizer.push(payload, bool(flags & 1), sequence if flags & 2 else None)
        if unit is not None and not unit.startswith(h264.START_CODE):
            raise Crash("an access unit that does not start with a start code")
    for level_byte in source.take(2):
        voice, level = opus.audio_level_dbov(bytes((level_byte,)))
        if not 0 <= level <= 127 or voice is not bool(level_byte & 0x80):
            raise Crash("audio level out of range")
    # What is left is a RED payload (RFC 2198): both readings agree on its primary block.
    rest = source.take(source.left)
    primary, blocks = red.red_primary(rest), red.red_blocks(rest)
    if (primary is None) != (blocks is None):
        raise Crash("red_primary and red_blocks disagree on whether the payload is well-formed")
    if (
        primary is not None
        and blocks is not None
        and primary != (blocks[-1].payload_type, blocks[-1].data)
    ):
        raise Crash("red_primary and red_blocks disagree on the primary block")
