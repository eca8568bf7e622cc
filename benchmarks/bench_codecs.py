"""Nanoseconds per call of the per-packet codec functions, against aiortc's parsers.

Run with ``python benchmarks/bench_codecs.py``. Figures include the Python call itself (an
empty function is timed as the floor); they are printed for reading, never asserted on.
"""

import time
from collections.abc import Callable

from aiortc.codecs.vpx import vp8_depayload
from aiortc.rtp import RtpPacket

from mcu.codecs import h264, vp8

ITERATIONS = 500_000
ROUNDS = 5

# VP8: X=1 S=1 PID=0 | I=1 L=1 T=1 | M=1 PictureID=0x0123 | TL0PICIDX=5 | TID=1 Y=1
VP8_KEY = b"\x90\xe0\x81\x23\x05\x60" + b"\x50\x0d\x00\x9d\x01\x2a\x40\x01\xf0\x00" + bytes(1100)
VP8_INTER = b"\x90\xe0\x81\x24\x06\x60" + b"\x51\x0d\x00" + bytes(1100)
# H.264: STAP-A(SPS, PPS, SEI), then a FU-A middle fragment.
H264_STAP = bytes.fromhex("78 0005 6742c01fda 0004 68ce3c80 0004 06050180")
H264_FU_MIDDLE = b"\x7c\x05" + bytes(1100)
# A whole RTP packet (V=2, M=1, PT=96, seq=1, ts=3000, ssrc=0x1234) carrying VP8_KEY.
RTP_VP8_KEY = bytes.fromhex("80e00001 00000bb8 00001234") + VP8_KEY


def _noop(payload: bytes) -> None:
    return None


def ns_per_call(function: Callable[[bytes], object], payload: bytes) -> float:
    """Best of ROUNDS runs of ITERATIONS calls, in ns per call."""
    best = float("inf")
    loop = range(ITERATIONS)
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in loop:
            function(payload)
        best = min(best, (time.perf_counter_ns() - start) / ITERATIONS)
    return best


def main() -> None:
    """Time each function and print a table with the ratio to aiortc's baselines."""
    floor = ns_per_call(_noop, VP8_KEY)
    depayload = ns_per_call(vp8_depayload, VP8_KEY)
    rtp_parse = ns_per_call(RtpPacket.parse, RTP_VP8_KEY)
    cases: list[tuple[str, Callable[[bytes], object], bytes]] = [
        ("vp8.is_keyframe (keyframe)", vp8.is_keyframe, VP8_KEY),
        ("vp8.is_keyframe (interframe)", vp8.is_keyframe, VP8_INTER),
        ("vp8.parse_descriptor", vp8.parse_descriptor, VP8_KEY),
        ("h264.is_keyframe (STAP-A)", h264.is_keyframe, H264_STAP),
        ("h264.is_keyframe (FU-A middle)", h264.is_keyframe, H264_FU_MIDDLE),
    ]
    print(f"{ITERATIONS} calls, best of {ROUNDS}; empty call floor {floor:.0f} ns")
    print(f"baseline aiortc vp8_depayload      {depayload:7.0f} ns")
    print(f"baseline aiortc RtpPacket.parse    {rtp_parse:7.0f} ns")
    print(f"{'function':34} {'ns/call':>7} {'/vp8_depayload':>15} {'/RtpPacket.parse':>17}")
    for name, function, payload in cases:
        ns = ns_per_call(function, payload)
        print(f"{name:34} {ns:7.0f} {ns / depayload:15.2f} {ns / rtp_parse:17.2f}")


if __name__ == "__main__":
    main()
