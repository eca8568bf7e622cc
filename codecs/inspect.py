"""The one place that maps a negotiated codec to its payload inspection functions."""

from collections.abc import Callable
from typing import Final, TypeAlias

from mcu.codecs import h264, vp8

KeyframeDetector: TypeAlias = Callable[[bytes | memoryview], bool]
"""Tells whether an RTP payload starts a keyframe."""


def _never_keyframe(payload: bytes | memoryview) -> bool:
    """Audio and unknown codecs: no packet is a keyframe."""
    return False


_DETECTORS: Final[dict[str, KeyframeDetector]] = {
    "video/vp8": vp8.is_keyframe,
    "video/h264": h264.is_keyframe,
}


def keyframe_detector(mime_type: str) -> KeyframeDetector:
    """Return the keyframe test for ``mime_type`` ("video/VP8", "video/H264", any case).

    Any other type, audio included, gets a function that always returns False. Look the
    function up once per track, not per packet.
    """
    return _DETECTORS.get(mime_type.lower(), _never_keyframe)
