"""H.264 payloads (RFC 6184) and Annex-B reassembly over hand-built payloads."""

import pytest

from mcu.codecs import h264

SC = b"\x00\x00\x00\x01"  # Annex-B start code

# NAL header F|NRI|Type:
SPS = b"\x67\x42\xc0\x1f\xda"  # 0 11 00111 = SPS (7)
PPS = b"\x68\xce\x3c\x80"  # 0 11 01000 = PPS (8)
SEI = b"\x06\x05\x01\x80"  # 0 00 00110 = SEI (6)
IDR = b"\x65\x88\x84\x00\x33\x10"  # 0 11 00101 = IDR slice (5)
SLICE = b"\x41\x9a\x02\x03"  # 0 10 00001 = non-IDR slice (1)


def stap_a(*units: bytes) -> bytes:
    """STAP-A: header 0 11 11000 (24), then each unit behind its 16-bit size."""
    return b"\x78" + b"".join(len(unit).to_bytes(2, "big") + unit for unit in units)


# FU-A fragments of IDR: indicator 0 11 11100 (NRI of the IDR, type 28), then S|E|R|Type.
IDR_BODY = IDR[1:]
FU_START = b"\x7c\x85" + IDR_BODY[:2]  # S=1 E=0 type 5
FU_MIDDLE = b"\x7c\x05" + IDR_BODY[2:4]  # S=0 E=0 type 5
FU_END = b"\x7c\x45" + IDR_BODY[4:]  # S=0 E=1 type 5


def test_single_nal_idr_is_keyframe() -> None:
    assert h264.nal_types(IDR) == [h264.NAL_IDR]
    assert h264.is_keyframe(IDR)


def test_single_nal_non_idr_is_not_keyframe() -> None:
    assert h264.nal_types(SLICE) == [h264.NAL_SLICE]
    assert not h264.is_keyframe(SLICE)
    assert not h264.is_keyframe(PPS)
    assert not h264.is_keyframe(SEI)


def test_single_sps_is_keyframe() -> None:
    assert h264.is_keyframe(SPS)


def test_stap_a_with_sps_and_pps() -> None:
    payload = stap_a(SPS, PPS)
    assert payload[:3] == b"\x78\x00\x05"
    assert h264.nal_types(payload) == [h264.NAL_SPS, h264.NAL_PPS]
    assert h264.is_keyframe(payload)


def test_stap_a_with_idr_after_other_units() -> None:
    payload = stap_a(SEI, PPS, IDR)
    assert h264.nal_types(payload) == [6, 8, 5]
    assert h264.is_keyframe(payload)


def test_stap_a_without_keyframe_units() -> None:
    payload = stap_a(SEI, SLICE)
    assert h264.nal_types(payload) == [6, 1]
    assert not h264.is_keyframe(payload)


def test_fu_a_types() -> None:
    assert h264.nal_types(FU_START) == [h264.NAL_IDR]
    assert h264.nal_types(FU_MIDDLE) == []
    assert h264.nal_types(FU_END) == []
    assert h264.is_keyframe(FU_START)
    assert not h264.is_keyframe(FU_MIDDLE)
    assert not h264.is_keyframe(FU_END)
    # 0 10 11100 | S=1 E=0 type 1: start of a non-IDR slice
    assert not h264.is_keyframe(b"\x5c\x81\x9a\x02")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x7c",  # FU-A without its FU header
        b"\x78\x00",  # STAP-A size field cut short
        b"\x78\x00\x05\x67\x42",  # STAP-A unit shorter than its size
        b"\x78\x00\x00",  # STAP-A unit of size 0
        b"\x79\x00\x02\x67\x42",  # STAP-B (25): interleaved mode, unsupported
        b"\x7d\x85\x88",  # FU-B (29): unsupported
        b"\x00\x01",  # type 0: undefined
    ],
)
def test_malformed_or_unsupported(payload: bytes) -> None:
    with pytest.raises(ValueError):
        h264.nal_types(payload)
    h264.is_keyframe(payload)  # must not raise


def test_is_keyframe_on_memoryview() -> None:
    assert h264.is_keyframe(memoryview(bytes(12) + stap_a(SPS, PPS))[12:])


def test_depacketize_single_nal() -> None:
    depacketizer = h264.H264Depacketizer()
    assert depacketizer.push(IDR, True) == SC + IDR


def test_depacketize_stap_a_then_fu_a() -> None:
    depacketizer = h264.H264Depacketizer()
    assert depacketizer.push(stap_a(SPS, PPS), False) is None
    assert depacketizer.push(FU_START, False) is None
    assert depacketizer.push(FU_MIDDLE, False) is None
    # The rebuilt NAL header: F/NRI of the indicator (0 11) with the FU type (00101) = 0x65.
    assert depacketizer.push(FU_END, True) == SC + SPS + SC + PPS + SC + IDR
    assert depacketizer.dropped == 0
    # The next access unit starts clean.
    assert depacketizer.push(SLICE, True) == SC + SLICE


def test_depacketize_with_sequence_numbers_across_wraparound() -> None:
    depacketizer = h264.H264Depacketizer()
    assert depacketizer.push(FU_START, False, 65534) is None
    assert depacketizer.push(FU_MIDDLE, False, 65535) is None
    assert depacketizer.push(FU_END, True, 0) == SC + IDR


def test_fu_a_without_end_is_dropped() -> None:
    depacketizer = h264.H264Depacketizer()
    depacketizer.push(stap_a(SPS, PPS), False)
    depacketizer.push(FU_START, False)
    # FU_END lost; the next packet is a whole NAL unit.
    assert depacketizer.push(SLICE, True) == SC + SPS + SC + PPS + SC + SLICE
    assert depacketizer.dropped == 1


def test_fu_a_without_start_is_dropped() -> None:
    depacketizer = h264.H264Depacketizer()
    assert depacketizer.push(FU_MIDDLE, False) is None
    assert depacketizer.push(FU_END, True) is None  # nothing left in the access unit
    assert depacketizer.dropped == 2


def test_fu_a_restarted_drops_the_first() -> None:
    depacketizer = h264.H264Depacketizer()
    depacketizer.push(FU_START, False)
    depacketizer.push(FU_START, False)
    assert depacketizer.push(FU_END, True) == SC + b"\x65" + IDR_BODY[:2] + IDR_BODY[4:]
    assert depacketizer.dropped == 1


def test_marker_inside_fu_a_drops_the_fragment() -> None:
    depacketizer = h264.H264Depacketizer()
    depacketizer.push(SEI, False)
    depacketizer.push(FU_START, False)
    assert depacketizer.push(FU_MIDDLE, True) == SC + SEI
    assert depacketizer.dropped == 1
    assert depacketizer.push(FU_END, True) is None  # its end finds no start


def test_lost_middle_fragment_detected_by_sequence_number() -> None:
    depacketizer = h264.H264Depacketizer()
    depacketizer.push(SPS, False, 10)
    depacketizer.push(FU_START, False, 11)
    # 12 (FU_MIDDLE) lost: without sequence numbers this would glue a corrupt NAL together.
    assert depacketizer.push(FU_END, True, 13) == SC + SPS
    assert depacketizer.dropped == 2  # the broken fragment, then its orphan end


def test_malformed_stap_a_is_dropped_whole() -> None:
    depacketizer = h264.H264Depacketizer()
    broken = stap_a(SPS, PPS)[:-1]  # last unit one byte short
    assert depacketizer.push(broken, False) is None
    assert depacketizer.push(IDR, True) == SC + IDR
    assert depacketizer.dropped == 1


def test_unsupported_and_empty_payloads_are_dropped() -> None:
    depacketizer = h264.H264Depacketizer()
    depacketizer.push(b"", False)
    depacketizer.push(b"\x79\x00\x02\x67\x42", False)  # STAP-B
    depacketizer.push(b"\x7c", False)  # FU-A without FU header
    assert depacketizer.push(SLICE, True) == SC + SLICE
    assert depacketizer.dropped == 3


def test_reset_forgets_partial_access_unit() -> None:
    depacketizer = h264.H264Depacketizer()
    depacketizer.push(SPS, False, 5)
    depacketizer.push(FU_START, False, 6)
    depacketizer.reset()
    assert depacketizer.push(SLICE, True, 100) == SC + SLICE
    assert depacketizer.dropped == 0


def test_depacketizer_accepts_memoryview_and_copies() -> None:
    buffer = bytearray(bytes(12) + IDR)
    depacketizer = h264.H264Depacketizer()
    access_unit = depacketizer.push(memoryview(buffer)[12:], True)
    buffer[12:] = bytes(len(IDR))  # reusing the receive buffer must not change the output
    assert access_unit == SC + IDR
