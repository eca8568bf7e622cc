"""Edits of real offers and answers, to send what a hostile or broken client would."""

from __future__ import annotations

# Transport lines a section may inherit from the session level (RFC 8866 5.13, RFC 8839 5.4).
_TRANSPORT = ("a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:", "a=setup:")
_KEPT = ("c=", "a=mid:", "a=rtcp-mux")
_DIRECTIONS = ("a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive")


def with_extra_sections(sdp: str, total: int) -> str:
    """``sdp`` grown to ``total`` media sections by copying its last one under new mids.

    The copies are as small as a parser accepts (one codec, no SSRC: they send nothing; ICE and
    DTLS lines moved to the session level, where every section inherits them), so hundreds fit
    in the server's size limits as an attacker's would; their mids join the BUNDLE group.
    """
    head, *rest = sdp.rstrip("\r\n").split("\r\nm=")
    sections = ["m=" + s for s in rest]
    last = sections[-1].split("\r\n")
    mid = next(line for line in last if line.startswith("a=mid:"))
    transport = [line for line in last if line.startswith(_TRANSPORT)]
    small = _smallest(last)
    mids = [f"x{index}" for index in range(total - len(sections))]
    head_lines = []
    for line in head.split("\r\n"):
        if line.startswith("a=group:BUNDLE"):
            line += "".join(f" {m}" for m in mids)
        head_lines.append(line)
    head_lines += transport
    extra = [small.replace(mid, f"a=mid:{m}") for m in mids]
    return "\r\n".join([*head_lines, *sections, *extra]) + "\r\n"


def _smallest(lines: list[str]) -> str:
    media, port, proto, payload_type, *_ = lines[0].split(" ")
    kept = [f"{media} {port} {proto} {payload_type}"]
    for line in lines[1:]:
        if line.startswith(_KEPT) or line in _DIRECTIONS:
            kept.append(line)
        elif line.startswith((f"a=rtpmap:{payload_type} ", f"a=fmtp:{payload_type} ")):
            kept.append(line)
    return "\r\n".join(kept)


def media_sections(sdp: str) -> int:
    """How many ``m=`` lines ``sdp`` has."""
    return sum(line.startswith("m=") for line in sdp.splitlines())
