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


LayerReader: TypeAlias = Callable[[bytes | memoryview], tuple[int, bool, int]]
"""Reads (temporal id, layer sync, picture id) from an RTP payload; (-1, False, -1) for none."""

_LAYER_READERS: Final[dict[str, LayerReader]] = {"video/vp8": vp8.temporal_layer}


def layer_reader(mime_type: str) -> LayerReader | None:
    """The temporal-layer reader for ``mime_type``, or None when the server cannot see its layers.

    H.264 has none here: Chromium encodes it in temporal layers too (OpenH264, ``L1T3``), but
    says which frame is in which layer only in the dependency-descriptor header extension, which
    is not negotiated; the NAL units carry no temporal id (no prefix NAL units are sent).
    """
    return _LAYER_READERS.get(mime_type.lower())
