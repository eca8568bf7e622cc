"""Counting media sections without parsing: the same lines aiortc's parser splits."""

from __future__ import annotations

import pytest
from aiortc import sdp

from mcu.sfu.peer import NegotiationError, check_section_count, media_section_count

SECTION = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{}\r\na=rtpmap:111 opus/48000/2\r\n"


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_count_matches_the_parser_whatever_the_line_ends(newline: str) -> None:
    text = ("v=0\r\ns=-\r\nt=0 0\r\n" + "".join(SECTION.format(i) for i in range(5))).replace(
        "\r\n", newline
    )
    assert media_section_count(text) == 5 == len(sdp.SessionDescription.parse(text).media)


def test_an_m_inside_a_line_is_not_a_section() -> None:
    assert media_section_count("v=0\r\na=x m=video\r\n" + SECTION.format(0)) == 1


def test_check_names_the_count_and_the_limit() -> None:
    text = "v=0\r\n" + "".join(SECTION.format(i) for i in range(17))
    check_section_count(text, 17)
    with pytest.raises(NegotiationError, match="17 media sections; at most 16"):
        check_section_count(text, 16)
