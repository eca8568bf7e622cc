"""RED payloads (RFC 2198) as Chromium sends Opus: literal packets, well-formed and broken."""

import random

import pytest

from mcu.codecs.red import RedBlock, pack_red, red_blocks, red_primary, red_with_payload_type

OPUS = 111

# A primary only: one header byte (F=0, PT 111), then the Opus packet.
PRIMARY_ONLY = bytes([0x6F]) + b"\xfc\x01\x02"
# One redundant block (20 ms earlier: offset 960 at 48 kHz, 3 bytes), then the primary (2 bytes):
#   F=1 PT=111 | offset 960 (14 bits) | length 3 (10 bits) = EF 0F 00 03; then 6F; then the data.
ONE_REDUNDANT = bytes([0xEF, 0x0F, 0x00, 0x03, 0x6F]) + b"old" + b"nw"
# Two redundant blocks (40 and 20 ms earlier), as with Chromium's distance of 2.
TWO_REDUNDANT = (
    bytes([0xEF, 0x1E, 0x00, 0x02, 0xEF, 0x0F, 0x00, 0x01, 0x6F]) + b"aa" + b"b" + b"primary"
)


def test_primary_only() -> None:
    assert red_primary(PRIMARY_ONLY) == (OPUS, b"\xfc\x01\x02")
    assert red_blocks(PRIMARY_ONLY) == [RedBlock(OPUS, 0, b"\xfc\x01\x02")]


def test_one_redundant_block() -> None:
    assert red_primary(ONE_REDUNDANT) == (OPUS, b"nw")
    assert red_blocks(ONE_REDUNDANT) == [RedBlock(OPUS, 960, b"old"), RedBlock(OPUS, 0, b"nw")]


def test_several_redundant_blocks() -> None:
    assert red_primary(TWO_REDUNDANT) == (OPUS, b"primary")
    assert red_blocks(TWO_REDUNDANT) == [
        RedBlock(OPUS, 1920, b"aa"),
        RedBlock(OPUS, 960, b"b"),
        RedBlock(OPUS, 0, b"primary"),
    ]
    assert red_primary(memoryview(TWO_REDUNDANT)) == (OPUS, b"primary")


def test_pack_reads_back() -> None:
    blocks = [RedBlock(OPUS, 1920, b"aa"), RedBlock(OPUS, 960, b"b"), RedBlock(OPUS, 0, b"primary")]
    assert pack_red(blocks) == TWO_REDUNDANT
    with pytest.raises(ValueError):
        pack_red([])
    with pytest.raises(ValueError):
        pack_red([RedBlock(OPUS, 1 << 14, b"x"), RedBlock(OPUS, 0, b"y")])


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # nothing at all
        bytes([0xEF]),  # a redundant header cut after its first byte
        bytes([0xEF, 0x0F, 0x00]),  # ... after three
        bytes([0xEF, 0x0F, 0x00, 0x03]),  # a redundant header and no primary header
        bytes([0xEF, 0x0F, 0x00, 0x05, 0x6F]) + b"abc",  # its length runs past the end
        bytes([0xEF, 0x0F, 0x03, 0xFF, 0x6F]) + b"x" * 100,  # 1023 bytes claimed, 100 there
        bytes([0xEF, 0x0F, 0x00, 0x02, 0xEF, 0x0F, 0x00, 0x02, 0x6F]) + b"abc",  # sum past end
    ],
)
def test_malformed_is_none(payload: bytes) -> None:
    assert red_primary(payload) is None
    assert red_blocks(payload) is None


def test_empty_primary_is_well_formed() -> None:
    # The lengths add up exactly to the end: the primary is empty, which is the caller's choice.
    payload = bytes([0xEF, 0x0F, 0x00, 0x02, 0x6F]) + b"ab"
    assert red_primary(payload) == (OPUS, b"")


def test_random_bytes_never_raise() -> None:
    rng = random.Random(2198)
    for _ in range(5000):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(24)))
        primary = red_primary(payload)
        blocks = red_blocks(payload)
        # Both readings agree on what the primary is.
        assert (primary is None) == (blocks is None)
        if primary is not None and blocks is not None:
            assert primary == (blocks[-1].payload_type, blocks[-1].data)


def test_payload_types_renumbered_for_another_leg() -> None:
    renumbered = red_with_payload_type(TWO_REDUNDANT, 96)
    assert renumbered is not None
    assert red_blocks(renumbered) == [
        RedBlock(96, 1920, b"aa"),
        RedBlock(96, 960, b"b"),
        RedBlock(96, 0, b"primary"),
    ]
    assert red_with_payload_type(TWO_REDUNDANT, OPUS) is TWO_REDUNDANT  # nothing to change
    assert red_with_payload_type(PRIMARY_ONLY, 96) == bytes([96]) + PRIMARY_ONLY[1:]
    for broken in (b"", bytes([0xEF]), bytes([0xEF, 0x0F, 0x00, 0x03])):
        assert red_with_payload_type(broken, 96) is None
