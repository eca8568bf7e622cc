"""Opus audio: the RFC 6464 audio level header extension and DTX detection.

The forwarding core reads these per packet to rank speakers and to skip silence, so they index
bytes directly and never decode audio.
"""

from typing import TypeAlias

Payload: TypeAlias = bytes | bytearray | memoryview
"""Any read-only view of an RTP payload or header extension value."""

DTX_MAX_SIZE = 2
"""Largest Opus payload that carries no audio: a DTX or comfort-noise frame (RFC 7587)."""


def audio_level_dbov(ext_value: Payload) -> tuple[bool, int]:
    """Decode the ``urn:ietf:params:rtp-hdrext:ssrc-audio-level`` value (RFC 6464).

    Its first byte is::

        +-+-+-+-+-+-+-+-+
        |V|    level    |
        +-+-+-+-+-+-+-+-+

    Returns (voice activity, level), where level is 0..127 meaning -level dBov: 0 is the
    loudest, 127 silence. Bytes after the first (two-byte extension padding) are ignored.
    Raises ValueError if ``ext_value`` is empty.
    """
    if not len(ext_value):
        raise ValueError("audio level extension is empty")
    octet = ext_value[0]
    return bool(octet & 0x80), octet & 0x7F


def is_dtx_silence(payload: Payload) -> bool:
    """Return True if the Opus ``payload`` carries no audio.

    With DTX an Opus encoder sends a 1-2 byte packet (the TOC byte, maybe one more) every
    400 ms or so during silence; an empty payload is treated the same way.
    """
    return len(payload) <= DTX_MAX_SIZE
