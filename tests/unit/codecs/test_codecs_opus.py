"""Opus audio level (RFC 6464) and DTX detection."""

import pytest

from mcu.codecs import opus


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\x80", (True, 0)),  # V=1 level=0000000: voice, loudest
        (b"\x7f", (False, 127)),  # V=0 level=1111111: silence
        (b"\xaa", (True, 42)),  # V=1 level=0101010: voice at -42 dBov
        (b"\x1e\x00\x00", (False, 30)),  # padding after the byte is ignored
    ],
)
def test_audio_level(value: bytes, expected: tuple[bool, int]) -> None:
    assert opus.audio_level_dbov(value) == expected
    assert opus.audio_level_dbov(memoryview(value)) == expected


def test_audio_level_empty() -> None:
    with pytest.raises(ValueError):
        opus.audio_level_dbov(b"")


def test_dtx_silence() -> None:
    assert opus.is_dtx_silence(b"")
    assert opus.is_dtx_silence(b"\xf8")  # TOC only: CELT FB 20 ms, code 0, no frame data
    assert opus.is_dtx_silence(b"\xf8\xff")
    assert not opus.is_dtx_silence(b"\xfc\xff\xfe\x01")
