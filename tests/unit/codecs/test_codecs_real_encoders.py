"""Keyframe detection and reassembly over real encoder output (aiortc's VP8 and H.264)."""

import fractions

import av
import numpy as np
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from mcu.codecs import h264, vp8

TIME_BASE = fractions.Fraction(1, 90000)


def frames(count: int) -> list[av.VideoFrame]:
    """Noisy 320x240 frames, so that every frame spans several RTP packets."""
    rng = np.random.default_rng(7)
    result = []
    for index in range(count):
        image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index * 3000
        frame.time_base = TIME_BASE
        result.append(frame)
    return result


def test_vp8_encoder_output() -> None:
    encoder = Vp8Encoder()
    key_frame, inter_frame = frames(2)
    key_payloads, _ = encoder.encode(key_frame, force_keyframe=True)
    inter_payloads, _ = encoder.encode(inter_frame)
    assert len(key_payloads) > 1 and inter_payloads

    assert vp8.is_keyframe(key_payloads[0])
    assert not any(vp8.is_keyframe(payload) for payload in key_payloads[1:])
    assert not any(vp8.is_keyframe(payload) for payload in inter_payloads)

    first = vp8.parse_descriptor(key_payloads[0])
    following = vp8.parse_descriptor(inter_payloads[0])
    assert first.start_of_partition and first.picture_id_bits == 15
    assert following.picture_id == (first.picture_id or 0) + 1 & 0x7FFF
    assert not vp8.parse_descriptor(key_payloads[1]).start_of_partition


def test_h264_encoder_output_reassembles_and_decodes() -> None:
    encoder = H264Encoder()
    key_frame, inter_frame = frames(2)
    key_payloads, _ = encoder.encode(key_frame, force_keyframe=True)
    inter_payloads, _ = encoder.encode(inter_frame)
    assert key_payloads and inter_payloads

    assert h264.is_keyframe(key_payloads[0])
    assert h264.NAL_SPS in h264.nal_types(key_payloads[0])
    assert not any(h264.is_keyframe(payload) for payload in inter_payloads)

    depacketizer = h264.H264Depacketizer()
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    for payloads in (key_payloads, inter_payloads):
        access_unit = None
        for index, payload in enumerate(payloads):
            access_unit = depacketizer.push(payload, index == len(payloads) - 1)
        assert access_unit is not None and access_unit.startswith(h264.START_CODE)
        decoded += decoder.decode(av.Packet(access_unit))
    decoded += decoder.decode(None)
    assert depacketizer.dropped == 0
    assert [(frame.width, frame.height) for frame in decoded] == [(320, 240)] * 2
    assert decoded[0].key_frame
