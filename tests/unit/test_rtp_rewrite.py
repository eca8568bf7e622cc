"""Header building, sequence unwrapping and RTX over literal packets."""

from __future__ import annotations

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from mcu.sfu.rtp import (
    SequenceUnwrapper,
    abs_send_time,
    build_header,
    extend_sequence,
    mid_element,
    parse_fixed_header,
    rtx_payload,
    shared_extension_elements,
)


def test_unwrapper_extends_across_wrap_and_keeps_late_packets_in_place() -> None:
    u = SequenceUnwrapper()
    assert [u.unwrap(s) for s in (65534, 65535, 0, 1)] == [65534, 65535, 65536, 65537]
    assert u.unwrap(65533) == 65533  # late packet from before the wrap
    assert u.highest == 65537


def test_extend_sequence_picks_the_nearest() -> None:
    assert extend_sequence(2, 65537) == 65538
    assert extend_sequence(65535, 65537) == 65535
    assert extend_sequence(100, 100) == 100


def test_header_without_extensions_is_twelve_bytes() -> None:
    header = build_header(96, True, 0x1234, 0xDEADBEEF, 0x01020304, b"")
    assert header == bytes.fromhex("80e01234deadbeef01020304")


def test_header_with_extensions_parses_back_with_aiortc() -> None:
    elements = shared_extension_elements(3, 2, abs_send_time(1.5), 42) + mid_element(1, "7")
    packet_bytes = build_header(97, False, 7, 9000, 0xCAFE, elements) + b"\x10\x02payload"
    ext_map = HeaderExtensionsMap()
    ext_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    id=2, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"
                ),
                RTCRtpHeaderExtensionParameters(
                    id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                ),
            ]
        )
    )
    parsed = RtpPacket.parse(packet_bytes, ext_map)
    assert (parsed.payload_type, parsed.sequence_number, parsed.timestamp) == (97, 7, 9000)
    assert parsed.ssrc == 0xCAFE
    assert parsed.extensions.mid == "7"
    assert parsed.extensions.audio_level == (False, 42)
    assert parsed.extensions.abs_send_time == abs_send_time(1.5) == int(1.5 * 2**18)
    assert parsed.payload == b"\x10\x02payload"
    assert parse_fixed_header(packet_bytes)[5] == len(packet_bytes) - len(b"\x10\x02payload")


def test_mid_element_rejects_overlong_mids() -> None:
    with pytest.raises(ValueError):
        mid_element(1, "x" * 17)
    assert mid_element(0, "1") == b""


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80" * 11, b"\x40" + b"\x00" * 11, b"\x90" + b"\x00" * 11, b"\xa0" + b"\x00" * 11],
)
def test_parse_fixed_header_rejects_malformed_packets(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_fixed_header(data)


def test_rtx_payload_prefixes_original_sequence() -> None:
    assert rtx_payload(0x1_0203, b"abc") == b"\x02\x03abc"
