"""Every fuzz target by name, with what it covers and what it may cost.

This module imports nothing of the server, so the runner can list targets and the worker can
import a target's module inside atheris' instrumentation.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One fuzz target."""

    name: str
    "Its name on the command line and its corpus folder."
    function: str
    "``module:function`` taking one input's bytes; raises only on a crash."
    covers: str
    "What it feeds, in a line (``python -m fuzz --list`` prints it)."
    instrument: tuple[str, ...]
    "Module prefixes atheris instruments for coverage (ours and the third-party parser we call)."
    max_len: int = 4096
    "Longest input libFuzzer generates."
    budget_share: float = 1.0
    "Fraction of ``--budget`` this target gets (slow targets get less)."
    rss_limit_mb: int = 2048
    "libFuzzer's memory limit: above it the input is kept as an ``oom-`` reproducer."
    timeout_s: int = 10
    "Per-input time limit: above it the input is kept as a ``timeout-`` reproducer."
    dictionaries: tuple[str, ...] = ()
    "libFuzzer dictionaries in ``fuzz/dicts/``: tokens the mutator splices into inputs."

    def load(self) -> Callable[[bytes], None]:
        """Import the target's function."""
        module, _, function = self.function.partition(":")
        loaded: Callable[[bytes], None] = getattr(importlib.import_module(module), function)
        return loaded


_OURS = ("mcu",)

TARGETS: tuple[Target, ...] = (
    Target(
        "rtp_ingress",
        "fuzz.targets.rtp:rtp_ingress",
        "publisher RTP datagrams: parse_rtp (aiortc's parse, as the tap calls it), ingress, "
        "RTX unwrap, producer, consumer rewrite re-parsed, NACK repair",
        (*_OURS, "aiortc.rtp"),
        max_len=8192,
    ),
    Target(
        "rtp_header",
        "fuzz.targets.rtp:rtp_header",
        "mcu.sfu.rtp: parse_fixed_header, and headers rebuilt from it read back",
        _OURS,
        max_len=2048,
    ),
    Target(
        "rtcp",
        "fuzz.targets.rtcp:rtcp",
        "RTCP datagrams: aiortc RtcpPacket.parse as its transport and our relay call it, then "
        "apply_feedback (NACK, PLI, REMB, RR) on a real consumer and SR on a producer",
        (*_OURS, "aiortc.rtp"),
        max_len=2048,
    ),
    Target(
        "vp8_payload",
        "fuzz.targets.codecs:vp8_payload",
        "mcu.codecs.vp8: descriptor, keyframe test, PictureID rewrite read back",
        _OURS,
        max_len=512,
    ),
    Target(
        "h264_payload",
        "fuzz.targets.codecs:h264_payload",
        "mcu.codecs.h264 (NAL types, keyframe test, depacketizer), mcu.codecs.opus and .red",
        _OURS,
        max_len=4096,
    ),
    Target(
        "frames",
        "fuzz.targets.frames:frames",
        "mcu.recorder.frames: H.264, VP8 and Opus frame assembly with loss, duplicates, restarts",
        _OURS,
        max_len=4096,
    ),
    Target(
        "relay",
        "fuzz.targets.relay:relay",
        "mcu.sfu.relay: packets over a real home/edge relay on loopback, raw datagrams and RTCP "
        "into either endpoint",
        (*_OURS, "aiortc.rtp"),
        max_len=4096,
    ),
    Target(
        "sdp_offer",
        "fuzz.targets.sdp:sdp_offer",
        "SDP offers: aiortc SessionDescription.parse, check_offer, check_viewer_offer, WHIP's "
        "section mapping",
        (*_OURS, "aiortc.sdp"),
        max_len=8192,
    ),
    Target(
        "whip_body",
        "fuzz.targets.sdp:whip_body",
        "WHIP/WHEP request bodies: UTF-8 decoding, then the offer checks",
        (*_OURS, "aiortc.sdp"),
        max_len=8192,
        budget_share=0.5,
    ),
    Target(
        "sdp_negotiate",
        "fuzz.targets.sdp:sdp_negotiate",
        "offers our checks accept, applied by a real RTCPeerConnection and narrowed to one codec",
        (*_OURS, "aiortc.sdp", "aiortc.rtcpeerconnection"),
        max_len=8192,
        budget_share=0.5,
    ),
    Target(
        "whep_answer",
        "fuzz.targets.sdp:whep_answer",
        "WHEP offers answered by a real ViewerConnection (checks, setRemoteDescription, codec "
        "choice, answer, consumers)",
        (*_OURS, "aiortc.sdp", "aiortc.rtcpeerconnection"),
        max_len=8192,
        budget_share=0.5,
    ),
    Target(
        "signaling_message",
        "fuzz.targets.messages:signaling_message",
        "WebSocket frames: parse_client_message, and accepted messages round-trip",
        _OURS,
        max_len=4096,
        dictionaries=("json.dict",),
    ),
    Target(
        "front_routing",
        "fuzz.targets.routing:front_routing",
        "the front's routing: request paths (route, session ids) and WebSocket join frames",
        _OURS,
        max_len=1024,
        dictionaries=("path.dict", "json.dict"),
    ),
    Target(
        "range_header",
        "fuzz.targets.library:range_header",
        "HTTP Range headers: byte_range stays within the file",
        _OURS,
        max_len=256,
    ),
    Target(
        "library_query",
        "fuzz.targets.library:library_query",
        "library query strings: parse_search and parse_upload_params (dates, limits, tags)",
        _OURS,
        max_len=1024,
        dictionaries=("path.dict",),
    ),
    Target(
        "share_token",
        "fuzz.targets.library:share_token",
        "library share tokens: ShareSigner.verify on raw text and on signed fuzzed payloads",
        _OURS,
        max_len=1024,
        dictionaries=("json.dict",),
    ),
    Target(
        "invite_token",
        "fuzz.targets.tokens:invite_token",
        "invite tokens: InviteSigner.verify on raw text and on signed fuzzed payloads",
        _OURS,
        max_len=1024,
        dictionaries=("json.dict",),
    ),
    Target(
        "access_token",
        "fuzz.targets.accesstokens:access_token",
        "the platform's access tokens: AccessTokens.verify on raw text and on signed claims",
        (*_OURS, "jwt"),
        max_len=2048,
        dictionaries=("json.dict",),
    ),
    Target(
        "documents",
        "fuzz.targets.documents:documents",
        "uploads: load_document (PNG, JPEG, PDF, DICOM) under strict limits, one page rendered",
        (*_OURS, "pydicom.filereader", "pydicom.dataelem", "pydicom.values"),
        max_len=16384,
        budget_share=0.5,
        timeout_s=20,
    ),
)


def by_name() -> dict[str, Target]:
    """The targets keyed by name."""
    return {target.name: target for target in TARGETS}
