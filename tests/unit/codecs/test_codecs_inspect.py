"""The codec dispatch used by the forwarding core."""

import pytest

from mcu.codecs import h264, vp8
from mcu.codecs.inspect import keyframe_detector

VP8_KEY = b"\x90\x80\x81\x23\x50\x0d\x00\x9d\x01\x2a"  # S=1 PID=0, 15-bit id, P=0
H264_IDR = b"\x65\x88\x84\x00"  # single NAL, IDR slice


@pytest.mark.parametrize("mime_type", ["video/VP8", "video/vp8", "VIDEO/VP8"])
def test_vp8(mime_type: str) -> None:
    assert keyframe_detector(mime_type) is vp8.is_keyframe


@pytest.mark.parametrize("mime_type", ["video/H264", "video/h264"])
def test_h264(mime_type: str) -> None:
    assert keyframe_detector(mime_type) is h264.is_keyframe


@pytest.mark.parametrize("mime_type", ["audio/opus", "audio/PCMU", "video/VP9", "video/rtx", ""])
def test_others_never_see_keyframes(mime_type: str) -> None:
    detect = keyframe_detector(mime_type)
    assert not detect(VP8_KEY)
    assert not detect(H264_IDR)
    assert not detect(memoryview(b""))
