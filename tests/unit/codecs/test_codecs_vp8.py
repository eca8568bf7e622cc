"""VP8 payload descriptor (RFC 7741) over hand-built payloads."""

import dataclasses

import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor

from mcu.codecs import vp8

# VP8 payload header of a keyframe, then the start code and 320x240:
#   0x50 = Size0=010 H=1 VER=000 P=0   (P=0: keyframe)
KEY_DATA = b"\x50\x0d\x00\x9d\x01\x2a\x40\x01\xf0\x00"
# Same first byte with P=1: an interframe.
INTER_DATA = b"\x51\x0d\x00\xaa\xbb"

# X=1 R=0 N=0 S=1 R=0 PID=000
# I=1 L=0 T=0 K=0 RSV=0000
# M=1 PictureID=0x0123 (15 bits)
DESC_PID15 = b"\x90\x80\x81\x23"


def test_keyframe_with_15_bit_picture_id() -> None:
    payload = DESC_PID15 + KEY_DATA
    assert vp8.is_keyframe(payload)
    assert vp8.parse_descriptor(payload) == vp8.Vp8Descriptor(
        start_of_partition=True,
        partition_id=0,
        picture_id=0x0123,
        picture_id_bits=15,
        tl0picidx=None,
        temporal_id=None,
        layer_sync=False,
        key_idx=None,
        header_size=4,
    )


def test_interframe_is_not_keyframe() -> None:
    assert not vp8.is_keyframe(DESC_PID15 + INTER_DATA)


def test_7_bit_picture_id() -> None:
    # X=1 S=1 PID=0 | I=1 | M=0 PictureID=0x2a
    payload = b"\x90\x80\x2a" + KEY_DATA
    descriptor = vp8.parse_descriptor(payload)
    assert (descriptor.picture_id, descriptor.picture_id_bits) == (42, 7)
    assert descriptor.header_size == 3
    assert vp8.is_keyframe(payload)


def test_minimal_descriptor_without_extension() -> None:
    # X=0 R=0 N=0 S=1 R=0 PID=000
    payload = b"\x10" + KEY_DATA
    descriptor = vp8.parse_descriptor(payload)
    assert descriptor.header_size == 1
    assert descriptor.picture_id is None and descriptor.picture_id_bits == 0
    assert vp8.is_keyframe(payload)
    assert not vp8.is_keyframe(b"\x10" + INTER_DATA)


def test_tl0picidx_tid_keyidx() -> None:
    # X=1 S=1 PID=0
    # I=1 L=1 T=1 K=1 RSV=0000                   -> 0xf0
    # M=1 PictureID=0x0123                       -> 0x81 0x23
    # TL0PICIDX=5                                -> 0x05
    # TID=10 Y=1 KEYIDX=00011                    -> 0xa3
    payload = b"\x90\xf0\x81\x23\x05\xa3" + KEY_DATA
    descriptor = vp8.parse_descriptor(payload)
    assert descriptor.tl0picidx == 5
    assert descriptor.temporal_id == 2
    assert descriptor.layer_sync is True
    assert descriptor.key_idx == 3
    assert descriptor.header_size == 6
    assert vp8.is_keyframe(payload)


def test_keyidx_without_tid_ignores_tid_bits() -> None:
    # X=1 S=1 PID=0 | I=0 L=0 T=0 K=1 | TID=11 Y=1 KEYIDX=00101 (TID/Y ignored: T=0)
    payload = b"\x90\x10\xe5" + INTER_DATA
    descriptor = vp8.parse_descriptor(payload)
    assert descriptor.temporal_id is None
    assert descriptor.layer_sync is False
    assert descriptor.key_idx == 5
    assert descriptor.header_size == 3


def test_tid_without_keyidx() -> None:
    # X=1 S=1 PID=0 | T=1 | TID=01 Y=0 KEYIDX=11111 (KEYIDX ignored: K=0)
    descriptor = vp8.parse_descriptor(b"\x90\x20\x5f" + INTER_DATA)
    assert (descriptor.temporal_id, descriptor.layer_sync, descriptor.key_idx) == (1, False, None)


@pytest.mark.parametrize(
    "descriptor",
    [
        b"\x80\x80\x81\x23",  # X=1 S=0 PID=0: continuation of the partition
        b"\x91\x80\x81\x23",  # X=1 S=1 PID=1: starts a later partition
        b"\x81\x80\x81\x23",  # X=1 S=0 PID=1
    ],
)
def test_non_start_packets_are_not_keyframes(descriptor: bytes) -> None:
    # The bytes after the descriptor look like a keyframe header, but are mid-frame data.
    payload = descriptor + KEY_DATA
    assert not vp8.is_keyframe(payload)
    assert vp8.parse_descriptor(payload).header_size == 4


def test_reserved_and_non_reference_bits_do_not_matter() -> None:
    # X=1 R=1 N=1 S=1 R=1 PID=000 -> 0xf8
    payload = b"\xf8\x80\x81\x23" + KEY_DATA
    assert vp8.is_keyframe(payload)
    descriptor = vp8.parse_descriptor(payload)
    assert (descriptor.start_of_partition, descriptor.partition_id) == (True, 0)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x90",  # X=1 but no extension byte
        b"\x90\x80",  # I=1 but no PictureID
        b"\x90\x80\x81",  # M=1 but the second PictureID byte is missing
        b"\x90\x40",  # L=1 but no TL0PICIDX
        b"\x90\x20",  # T=1 but no TID byte
        b"\x90\x10",  # K=1 but no KEYIDX byte
        b"\x90\xf0\x81\x23\x05",  # everything but the TID/KEYIDX byte
    ],
)
def test_truncated_descriptor(payload: bytes) -> None:
    with pytest.raises(ValueError):
        vp8.parse_descriptor(payload)
    assert not vp8.is_keyframe(payload)


def test_descriptor_without_vp8_data_is_not_keyframe() -> None:
    assert vp8.parse_descriptor(DESC_PID15).header_size == 4
    assert not vp8.is_keyframe(DESC_PID15)


def test_accepts_memoryview() -> None:
    packet = bytes(12) + DESC_PID15 + KEY_DATA  # an RTP header, then the payload
    view = memoryview(packet)[12:]
    assert vp8.is_keyframe(view)
    assert vp8.parse_descriptor(view).picture_id == 0x0123


@pytest.mark.parametrize("picture_id", [0, 1, 0x7F, 0x80, 0x1234, 0x7FFF])
def test_agrees_with_aiortc_descriptor(picture_id: int) -> None:
    wire = bytes(VpxPayloadDescriptor(partition_start=1, partition_id=0, picture_id=picture_id))
    descriptor = vp8.parse_descriptor(wire + KEY_DATA)
    assert descriptor.picture_id == picture_id
    assert descriptor.header_size == len(wire)


def test_rewrite_15_bit_picture_id_and_tl0picidx() -> None:
    # X=1 S=1 | I=1 L=1 | M=1 PictureID=0x0123 | TL0PICIDX=5
    payload = bytearray(b"\x90\xc0\x81\x23\x05" + KEY_DATA)
    vp8.rewrite_picture_id(payload, 0x8000 + 0x0456, 256 + 9)  # both wrap to their width
    assert payload == b"\x90\xc0\x84\x56\x09" + KEY_DATA
    descriptor = vp8.parse_descriptor(payload)
    assert (descriptor.picture_id, descriptor.picture_id_bits) == (0x0456, 15)
    assert descriptor.tl0picidx == 9


def test_rewrite_7_bit_picture_id_keeps_width() -> None:
    payload = bytearray(b"\x90\x80\x2a" + KEY_DATA)
    vp8.rewrite_picture_id(payload, 200, None)  # 200 mod 128 = 72
    assert payload == b"\x90\x80\x48" + KEY_DATA


def test_rewrite_leaves_tl0picidx_alone_when_none() -> None:
    payload = bytearray(b"\x90\xc0\x81\x23\x05" + KEY_DATA)
    vp8.rewrite_picture_id(payload, 7, None)
    assert payload == b"\x90\xc0\x80\x07\x05" + KEY_DATA


def test_rewrite_through_memoryview_of_rtp_packet() -> None:
    packet = bytearray(b"\x80" * 12 + DESC_PID15 + KEY_DATA)
    vp8.rewrite_picture_id(memoryview(packet)[12:], 0x7FFF, None)
    assert packet[12:16] == b"\x90\x80\xff\xff"
    assert packet[:12] == b"\x80" * 12


@pytest.mark.parametrize(
    ("payload", "tl0picidx"),
    [
        (b"\x10" + KEY_DATA, None),  # no extension
        (b"\x90\x40\x05" + KEY_DATA, None),  # L but no I
        (DESC_PID15 + KEY_DATA, 3),  # I but no L
        (b"\x90\x80\x81", None),  # 15-bit PictureID cut short
        (b"\x90\xc0\x81\x23", 3),  # TL0PICIDX cut short
    ],
)
def test_rewrite_refuses_missing_fields(payload: bytes, tl0picidx: int | None) -> None:
    buffer = bytearray(payload)
    with pytest.raises(ValueError):
        vp8.rewrite_picture_id(buffer, 1, tl0picidx)
    assert buffer == payload


def test_parsed_descriptor_is_a_frozen_vp8_descriptor() -> None:
    descriptor = vp8.parse_descriptor(b"\x90\xf0\x81\x23\x05\xa3" + KEY_DATA)
    assert type(descriptor) is vp8.Vp8Descriptor
    assert descriptor == dataclasses.replace(descriptor)
    assert hash(descriptor) == hash(dataclasses.replace(descriptor))
    assert repr(descriptor).startswith("Vp8Descriptor(start_of_partition=True, partition_id=0,")
    with pytest.raises(dataclasses.FrozenInstanceError):
        descriptor.picture_id = 1  # type: ignore[misc]
