"""Hot-path microbenchmarks, in-process, each against a baseline measured in the same run.

Run with ``python benchmarks/microbench.py [--json out.json] [--quick]``. Every row times a fixed
number of operations with ``time.perf_counter_ns`` and keeps the best of several repeats (the
least-disturbed run), in ns or µs per operation. Each row prints our figure, a baseline measured
moments before or after it in the same process, and baseline ÷ ours (above 1: ours is faster).

Rows:

- **rtp**: one consumer's header rewrite (``Consumer.on_packet`` with a capturing transmitter, a
  leg with mid + abs-send-time, and a leg without extensions) vs aiortc ``RtpPacket.parse`` of the
  incoming packet, new SSRC/sequence/timestamp/payload type and extensions, ``serialize``;
- **srtp**: pylibsrtp ``Session.protect`` / ``unprotect`` of a 1,174-byte RTP packet with
  AES-GCM (128 and 256) vs AES128-CM-HMAC-SHA1-80, and ``bytearray(packet)`` as the floor (the
  cost of one copy of the packet, which no protect can beat);
- **codec**: ``vp8.is_keyframe`` / ``h264.is_keyframe`` vs aiortc's ``vp8_depayload`` /
  ``h264_depayload`` on the same payload;
- **nack**: ``Consumer.on_nack`` of 10 sequence numbers from the producer's shared 1,024-packet
  ``PacketHistory`` (each resend rebuilt), vs a naive per-consumer ``dict`` of the bytes already
  sent (a lookup and a resend, nothing rebuilt; it costs a copy of every packet per consumer);
- **fanout**: parse + ``Producer.on_rtp`` to 100 consumers with a no-op transmitter, per incoming
  packet and per egress packet, vs a loop that parses and serializes with aiortc per consumer;
- **record**: ``H264FrameAssembler`` / ``Vp8FrameAssembler`` per packet vs aiortc's
  ``h264_depayload`` / ``vp8_depayload`` per packet and a join per frame;
- **mixer**: ``mix_minus`` of 16 parties vs the per-receiver O(N²) sum, and
  ``Compositor.compose`` of a 3x3 grid at 1280x720 vs RGB + Pillow (both baselines imported from
  ``bench_mixer.py``).

Not pinned to a core and wall-clock timed: compare rows of the same run, or the same row across
commits on the same machine (``--json`` writes machine, Python, commit and rows). Figures are
printed for reading, never asserted on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE.parent, HERE):  # run as a script from anywhere
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import numpy as np  # noqa: E402
import pylibsrtp  # noqa: E402
from aiortc.codecs.h264 import h264_depayload  # noqa: E402
from aiortc.codecs.vpx import vp8_depayload  # noqa: E402
from aiortc.rtcrtpparameters import (  # noqa: E402
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket  # noqa: E402
from bench_mixer import RgbCompositor, mix_each_receiver, source_pictures  # noqa: E402

from mcu.codecs import h264, vp8  # noqa: E402
from mcu.media import CodecInfo, IncomingPacket, TrackSource  # noqa: E402
from mcu.mixer.audio import FRAME_SAMPLES, mix_minus  # noqa: E402
from mcu.mixer.compositor import Compositor  # noqa: E402
from mcu.mixer.layout import LayoutInput, compute_layout  # noqa: E402
from mcu.recorder.frames import H264FrameAssembler, Vp8FrameAssembler  # noqa: E402
from mcu.sfu.consumer import Consumer, ConsumerLeg  # noqa: E402
from mcu.sfu.history import PacketHistory  # noqa: E402
from mcu.sfu.producer import Producer  # noqa: E402
from mcu.sfu.repair import RESEND_GUARD_S  # noqa: E402
from mcu.sfu.rtp import parse_fixed_header  # noqa: E402

VP8_CODEC = CodecInfo(mime_type="video/VP8", clock_rate=90000)
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID_ID, ABS_ID = 1, 2
PAYLOAD_BYTES = 1180  # as bench_forward's VP8 clip
SRTP_PACKET_BYTES = 1174
FANOUT_CONSUMERS = 100
NACK_COUNT = 10
FRESH_ARRIVAL = 1.0
NACK_CREDIT_BYTES = 12_000
"Media forwarded to the subscriber between two of its NACKs (funds the repair budget)."
HISTORY_SIZE = 1024
PARTIES = 16

# VP8: X=1 S=1 PID=0 | I=1 L=1 T=1 | M=1 PictureID | TL0PICIDX | TID Y; then the VP8 header.
VP8_KEY = b"\x90\xe0\x81\x23\x05\x60" + b"\x50\x0d\x00\x9d\x01\x2a\x40\x01\xf0\x00"
VP8_KEY += bytes(PAYLOAD_BYTES - len(VP8_KEY))
VP8_INTER = b"\x90\xe0\x81\x24\x06\x60" + b"\x51\x0d\x00"
VP8_INTER += bytes(PAYLOAD_BYTES - len(VP8_INTER))
VP8_CONT = b"\x80\xe0\x81\x24\x06\x60" + bytes(PAYLOAD_BYTES - 6)  # S=0: a later packet
# H.264: STAP-A (SPS, PPS, SEI), and an FU-A middle fragment.
H264_STAP = bytes.fromhex("78 0005 6742c01fda 0004 68ce3c80 0004 06050180")
H264_FU_MIDDLE = b"\x7c\x05" + bytes(1100)


@dataclass
class Row:
    """One line of the table: our figure, the baseline's, in ns per operation."""

    group: str
    name: str
    ours_ns: float
    baseline: str
    baseline_ns: float | None
    unit: str = "op"

    @property
    def ratio(self) -> float | None:
        """Baseline ÷ ours: how many times faster ours is."""
        return None if self.baseline_ns is None else self.baseline_ns / self.ours_ns


# -- timing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Scale of a run: ``--quick`` divides iteration counts and repeats."""

    scale: float
    repeats: int

    def n(self, full: int) -> int:
        """Iterations for a benchmark whose full run does ``full``."""
        return max(1, int(full * self.scale))


def best_ns(
    run: Callable[[int], object],
    n: int,
    repeats: int,
    per: int = 1,
    setup: Callable[[], None] | None = None,
) -> float:
    """Best of ``repeats`` runs of ``run(n)``, in ns per operation (``n * per`` operations);
    ``setup`` runs, untimed, before each."""
    run(max(1, n // 10))  # warm caches and lazy state
    best = float("inf")
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = time.perf_counter_ns()
        run(n)
        best = min(best, (time.perf_counter_ns() - start) / (n * per))
    return best


class Capture:
    """A transmitter that keeps the last packet (so nothing is optimised away) and counts."""

    __slots__ = ("last", "sent")

    def __init__(self) -> None:
        self.last: tuple[bytes, bytes | bytearray] = (b"", b"")
        self.sent = 0

    def send(self, header: bytes, payload: bytes | bytearray = b"") -> bool:
        self.last = (header, payload)  # what a transmitter is handed; it copies them itself
        self.sent += 1
        return True

    def ready(self) -> bool:
        return True


class NoKeyframes:
    def request_keyframe(self, now: float) -> None:
        return None


def extensions_map() -> HeaderExtensionsMap:
    """aiortc's map for a leg with mid and abs-send-time, the ids our legs use."""
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=MID_ID, uri=MID_URI),
                RTCRtpHeaderExtensionParameters(id=ABS_ID, uri=ABS_SEND_TIME_URI),
            ]
        )
    )
    return extensions


def publisher_packet(extensions: HeaderExtensionsMap, sequence: int, payload: bytes) -> bytes:
    """An incoming RTP packet as a browser sends it (mid + abs-send-time)."""
    packet = RtpPacket(
        payload_type=96, marker=0, sequence_number=sequence & 0xFFFF,
        timestamp=3000 * sequence, ssrc=0x1234ABCD, payload=payload,
    )  # fmt: skip
    packet.extensions.mid = "0"
    packet.extensions.abs_send_time = 0x123456
    return packet.serialize(extensions)


def video_leg(ssrc: int, *, extensions: bool = True, rtx: bool = False) -> ConsumerLeg:
    return ConsumerLeg(
        payload_type=97,
        ssrc=ssrc,
        mid="1",
        rtx_payload_type=98 if rtx else None,
        rtx_ssrc=ssrc + 1,
        mid_id=MID_ID if extensions else 0,
        abs_send_time_id=ABS_ID if extensions else 0,
    )


def incoming(ext: int, payload: bytes, keyframe: bool = False) -> IncomingPacket:
    return IncomingPacket(ext, 3000 * (ext // 5), ext % 5 == 4, payload, keyframe, None, 1.0)


# -- rows --------------------------------------------------------------------------------------


def rtp_rows(b: Budget) -> list[Row]:
    n = b.n(200_000)
    extensions = extensions_map()
    raw = publisher_packet(extensions, 1, VP8_INTER)

    def aiortc_rewrite(with_ext: bool) -> Callable[[int], object]:
        def run(count: int) -> object:
            out = b""
            for i in range(count):
                packet = RtpPacket.parse(raw, extensions)
                packet.payload_type = 97
                packet.ssrc = 0x5678
                packet.sequence_number = i & 0xFFFF
                packet.timestamp = (packet.timestamp + 12345) & 0xFFFFFFFF
                if with_ext:
                    packet.extensions.mid = "1"
                    packet.extensions.abs_send_time = 0x654321
                else:
                    packet.extensions.mid = None
                    packet.extensions.abs_send_time = None
                out = packet.serialize(extensions)
            return out

        return run

    def ours(with_ext: bool) -> tuple[Callable[[int], object], Callable[[], None]]:
        capture = Capture()
        consumer = Consumer(
            video_leg(0x5678, extensions=with_ext), capture, PacketHistory(), NoKeyframes(),
            video=True,
        )  # fmt: skip
        consumer.on_packet(incoming(0, VP8_KEY, keyframe=True))
        packets = [incoming(1 + i, VP8_INTER) for i in range(n)]

        def run(count: int) -> object:
            on_packet = consumer.on_packet
            for packet in packets[:count]:
                on_packet(packet)
            return capture.last

        def fresh() -> None:
            # Each run pays its own shared-extension build, as a packet sent to one consumer does.
            for packet in packets:
                packet.ext_cache.clear()

        return run, fresh
        return run

    rows = []
    for with_ext, label in ((True, "mid + abs-send-time"), (False, "no extensions")):
        ours_run, fresh = ours(with_ext)
        ours_ns = best_ns(ours_run, n, b.repeats, setup=fresh)
        base_ns = best_ns(aiortc_rewrite(with_ext), n, b.repeats)
        rows.append(
            Row("rtp", f"Consumer.on_packet, {label}", ours_ns,
                "aiortc RtpPacket.parse+modify+serialize", base_ns)
        )  # fmt: skip
    return rows


def srtp_rows(b: Budget) -> list[Row]:
    n = b.n(50_000)
    profiles = {
        "AES-128-GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
        "AES-256-GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44),
        "AES128-CM-SHA1-80": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    }
    header = bytes.fromhex("80 61 0001 00000bb8 12345678")
    packet = header + bytes(range(256)) * 5
    packet = packet[:SRTP_PACKET_BYTES]

    def sessions(name: str) -> tuple[pylibsrtp.Session, Callable[[], pylibsrtp.Session]]:
        profile, key_length = profiles[name]
        key = bytes(range(1, key_length + 1))
        tx_policy = pylibsrtp.Policy(
            key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile
        )
        tx_policy.allow_repeat_tx = True  # protect the same packet over and over

        def rx() -> pylibsrtp.Session:
            policy = pylibsrtp.Policy(
                key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile
            )
            return pylibsrtp.Session(policy=policy)

        return pylibsrtp.Session(policy=tx_policy), rx

    protect_ns: dict[str, float] = {}
    unprotect_ns: dict[str, float] = {}
    count = min(n, 60_000)  # distinct sequence numbers for unprotect (replay protection)
    for name in profiles:
        tx, rx = sessions(name)

        def protect(k: int, session: pylibsrtp.Session = tx) -> object:
            out = b""
            for _ in range(k):
                out = session.protect(packet)
            return out

        protect_ns[name] = best_ns(protect, n, b.repeats)
        sender, _ = sessions(name)
        protected = [
            sender.protect(header[:2] + (i + 2).to_bytes(2, "big") + packet[4:])
            for i in range(count)
        ]
        best = float("inf")
        for _ in range(b.repeats):
            session = rx()  # a fresh receiver: each index may be unprotected once
            unprotect = session.unprotect
            start = time.perf_counter_ns()
            for data in protected:
                unprotect(data)
            best = min(best, (time.perf_counter_ns() - start) / count)
        unprotect_ns[name] = best

    def copy(k: int) -> object:
        out = b""
        for _ in range(k):
            out = bytearray(packet)
        return out

    floor = best_ns(copy, n, b.repeats)
    cm = "AES128-CM-SHA1-80"
    rows = []
    for name in ("AES-128-GCM", "AES-256-GCM"):
        rows.append(Row("srtp", f"protect {name}", protect_ns[name], f"protect {cm}",
                        protect_ns[cm]))  # fmt: skip
    for name in ("AES-128-GCM", "AES-256-GCM"):
        rows.append(Row("srtp", f"unprotect {name}", unprotect_ns[name], f"unprotect {cm}",
                        unprotect_ns[cm]))  # fmt: skip
    rows.append(Row("srtp", f"floor: bytearray({SRTP_PACKET_BYTES} B) copy", floor, "—", None))
    return rows


def codec_rows(b: Budget) -> list[Row]:
    n = b.n(300_000)

    def loop(function: Callable[[bytes], object], payload: bytes) -> Callable[[int], object]:
        def run(k: int) -> object:
            out = None
            for _ in range(k):
                out = function(payload)
            return out

        return run

    cases = [
        ("vp8.is_keyframe (keyframe)", vp8.is_keyframe, "vp8_depayload", vp8_depayload, VP8_KEY),
        ("vp8.is_keyframe (interframe)", vp8.is_keyframe, "vp8_depayload", vp8_depayload,
         VP8_INTER),
        ("h264.is_keyframe (STAP-A)", h264.is_keyframe, "h264_depayload", h264_depayload,
         H264_STAP),
        ("h264.is_keyframe (FU-A middle)", h264.is_keyframe, "h264_depayload", h264_depayload,
         H264_FU_MIDDLE),
    ]  # fmt: skip
    rows = []
    for name, ours, base_name, base, payload in cases:
        rows.append(
            Row("codec", name, best_ns(loop(ours, payload), n, b.repeats),
                f"aiortc {base_name}", best_ns(loop(base, payload), n, b.repeats))
        )  # fmt: skip
    return rows


def nack_rows(b: Budget) -> list[Row]:
    n = b.n(50_000)
    rows = []
    for rtx in (False, True):
        history = PacketHistory(HISTORY_SIZE)
        capture = Capture()
        consumer = Consumer(video_leg(0x5678, rtx=rtx), capture, history, NoKeyframes(), video=True)
        sent: dict[int, bytes] = {}  # the naive baseline: every packet sent, by its sequence
        for ext in range(HISTORY_SIZE):
            packet = incoming(ext, VP8_KEY if ext == 0 else VP8_INTER, keyframe=ext == 0)
            packet.arrival = FRESH_ARRIVAL + 1e9  # never too old to resend
            history.put(packet)
            consumer.on_packet(packet)
            header, payload = capture.last
            sent[int.from_bytes(header[2:4], "big")] = header + payload
        # The subscriber's NACK: 10 of the last 100 packets, in its (outgoing) numbering.
        recent = sorted(sent)[-100:]
        lost = recent[::10][:NACK_COUNT]

        def ours(k: int, consumer=consumer, lost=lost, capture=capture) -> object:
            # Steady state: media flows between NACKs (credit for the repair budget), and each
            # NACK comes after the resend guard, of packets that are still fresh.
            on_nack = consumer.on_nack
            now = FRESH_ARRIVAL
            for _ in range(k):
                consumer.bytes_sent += NACK_CREDIT_BYTES
                now += RESEND_GUARD_S
                on_nack(lost, now)
            return capture.last

        def naive(k: int, sent=sent, lost=lost, capture=capture) -> object:
            send = capture.send
            for _ in range(k):
                for seq in lost:
                    data = sent.get(seq)
                    if data is not None:
                        send(data)
            return capture.last

        label = "RTX" if rtx else "no RTX"
        held = sum(len(d) for d in sent.values()) / 1e6  # what each consumer's copy holds
        rows.append(
            Row("nack", f"Consumer.on_nack x{NACK_COUNT}, {label}",
                best_ns(ours, n, b.repeats), f"dict[seq, bytes] per consumer ({held:.1f} MB)",
                best_ns(naive, n, b.repeats))
        )  # fmt: skip
    return rows


def fanout_rows(b: Budget) -> list[Row]:
    n = b.n(4_000)
    extensions = extensions_map()
    raws = [publisher_packet(extensions, i, VP8_INTER if i % 5 else VP8_CONT) for i in range(50)]
    sent = [0]

    class NoOp:
        __slots__ = ()

        def send(self, header: bytes, payload: bytes | bytearray = b"") -> bool:
            return True

        def ready(self) -> bool:
            return True

    producer = Producer("t", "p", TrackSource.CAMERA, VP8_CODEC, lambda: None)
    noop = NoOp()
    for i in range(FANOUT_CONSUMERS):
        producer.add_sink(
            Consumer(video_leg(0x10000 + 2 * i), noop, producer.history, producer, video=True)
        )
    key_raw = publisher_packet(extensions, 0, VP8_KEY)
    _, marker, seq, ts, _, offset = parse_fixed_header(key_raw)
    producer.on_rtp(seq, ts, marker, key_raw[offset:], None, time.monotonic())
    state = {"seq": 1}

    def ours(k: int) -> object:
        on_rtp = producer.on_rtp
        parse = parse_fixed_header
        now = time.monotonic()
        seq0 = state["seq"]
        for i in range(k):
            raw = raws[i % 50]
            _, marker, _, ts, _, offset = parse(raw)
            # Sequence numbers keep increasing across runs, as they would live.
            on_rtp((seq0 + i) & 0xFFFF, ts, marker, raw[offset:], None, now)
        state["seq"] = seq0 + k
        return None

    consumers = [(0x10000 + 2 * i, 1000 * i, 7 * i) for i in range(FANOUT_CONSUMERS)]

    def naive(k: int) -> object:
        out = b""
        for i in range(k):
            raw = raws[i % 50]
            for ssrc, seq_offset, ts_offset in consumers:
                packet = RtpPacket.parse(raw, extensions)
                packet.payload_type = 97
                packet.ssrc = ssrc
                packet.sequence_number = (packet.sequence_number + seq_offset) & 0xFFFF
                packet.timestamp = (packet.timestamp + ts_offset) & 0xFFFFFFFF
                packet.extensions.mid = "1"
                packet.extensions.abs_send_time = 0x654321
                out = packet.serialize(extensions)
                sent[0] += 1
        return out

    ours_ns = best_ns(ours, n, b.repeats)
    base_ns = best_ns(naive, n, b.repeats)
    label = f"aiortc parse+serialize per consumer x{FANOUT_CONSUMERS}"
    return [
        Row("fanout", f"parse + Producer.on_rtp -> {FANOUT_CONSUMERS} consumers", ours_ns,
            label, base_ns, "incoming pkt"),
        Row("fanout", "  same, per egress packet", ours_ns / FANOUT_CONSUMERS, label,
            base_ns / FANOUT_CONSUMERS, "egress pkt"),
    ]  # fmt: skip


def h264_packets(frames: int) -> list[list[bytes]]:
    """Synthetic H.264 RTP payloads: frame 0 is SPS+PPS (STAP-A) and an IDR in 5 FU-A
    fragments, the others a non-IDR slice in 5 FU-A fragments of ~1,100 bytes."""
    sps, pps = bytes.fromhex("6742c01fda"), bytes.fromhex("68ce3c80")
    stap = b"\x78" + len(sps).to_bytes(2, "big") + sps + len(pps).to_bytes(2, "big") + pps
    out = []
    for f in range(frames):
        nal_type, nri = (5, 3) if f == 0 else (1, 2)
        fragments = []
        for j in range(5):
            fu_header = (0x80 if j == 0 else 0) | (0x40 if j == 4 else 0) | nal_type
            fragments.append(bytes((nri << 5 | 28, fu_header)) + bytes([f & 0xFF]) * 1100)
        out.append(([stap] if f == 0 else []) + fragments)
    return out


def vp8_packets(frames: int) -> list[list[bytes]]:
    """Synthetic VP8 RTP payloads: 5 packets per frame, a keyframe first."""
    return [[VP8_KEY if f == 0 else VP8_INTER] + [VP8_CONT] * 4 for f in range(frames)]


def record_rows(b: Budget) -> list[Row]:
    frames = b.n(30_000) // 5 or 1
    rows = []
    cases = [
        ("H264FrameAssembler.push", H264FrameAssembler, h264_packets(frames), h264_depayload,
         "h264_depayload"),
        ("Vp8FrameAssembler.push", Vp8FrameAssembler, vp8_packets(frames), vp8_depayload,
         "vp8_depayload"),
    ]  # fmt: skip
    for name, assembler_type, payloads, depayload, base_name in cases:
        packets = []
        ext = 0
        for f, frame in enumerate(payloads):
            for j, payload in enumerate(frame):
                marker = j == len(frame) - 1
                packets.append(
                    IncomingPacket(ext, 3000 * f, marker, payload, f == 0 and j == 0, None, 1.0)
                )
                ext += 1
        count = len(packets)

        def ours(k: int, assembler_type=assembler_type, packets=packets) -> object:
            assembler = assembler_type()
            push = assembler.push
            out = None
            for packet in packets[:k]:
                frame = push(packet)
                if frame is not None:
                    out = frame
            assert out is not None
            return out

        def naive(k: int, depayload=depayload, packets=packets) -> object:
            parts: list[bytes] = []
            out = b""
            for packet in packets[:k]:
                parts.append(depayload(packet.payload))
                if packet.marker:
                    out = b"".join(parts)
                    parts = []
            return out

        rows.append(
            Row("record", name, best_ns(ours, count, b.repeats), f"aiortc {base_name} + join",
                best_ns(naive, count, b.repeats), "packet")
        )  # fmt: skip
    return rows


def mixer_rows(b: Budget) -> list[Row]:
    rng = np.random.default_rng(3)
    names = [f"p{i}" for i in range(PARTIES)]
    t = np.arange(FRAME_SAMPLES * 50) / 48000
    signals = {}
    for i, name in enumerate(names):  # speech-like, as bench_mixer; three loud parties
        wave = sum(np.sin(2 * np.pi * (110 + 23 * i) * k * t) / k for k in range(1, 6))
        level = 9000 if i < 3 else 1500
        signals[name] = (level * wave / 2.3 + rng.normal(0, 200, t.size)).astype(np.int16)
    frame_sets = [
        {n: s[j * FRAME_SAMPLES : (j + 1) * FRAME_SAMPLES] for n, s in signals.items()}
        for j in range(50)
    ]

    def mixing(function: Callable[..., object]) -> Callable[[int], object]:
        def run(k: int) -> object:
            out = None
            for i in range(k):
                out = function(frame_sets[i % 50], names)
            return out

        return run

    n_audio = b.n(5_000)
    rows = [
        Row("mixer", f"mix_minus, {PARTIES} parties, 20 ms", best_ns(mixing(mix_minus), n_audio,
            b.repeats), "per-receiver sum O(N²), clip",
            best_ns(mixing(mix_each_receiver), n_audio, b.repeats), "frame"),
    ]  # fmt: skip

    pictures = [source_pictures(i, 2) for i in range(9)]
    sets = [{f"p{i}": pictures[i][j % 2] for i in range(9)} for j in range(2)]
    people = ["Dr Ana Souza", "Ben Okafor", "Cai Lin", "Dana Weiss", "Eli Haddad",
              "Fatima Noor", "Gus Berg", "Hana Sato", "Ivo Petrov"]  # fmt: skip
    tiles = compute_layout("grid", [LayoutInput(f"p{i}", people[i]) for i in range(9)], (1280, 720))
    ours, rgb = Compositor(1280, 720), RgbCompositor(1280, 720)

    def composing(compositor: Compositor | RgbCompositor) -> Callable[[int], object]:
        def run(k: int) -> object:
            out = None
            for i in range(k):
                out = compositor.compose(tiles, sets[i % 2], highlight="p4")
            return out

        return run

    n_video = b.n(60)
    rows.append(
        Row("mixer", "Compositor.compose 3x3 1280x720", best_ns(composing(ours), n_video,
            b.repeats), "RGB + Pillow (bench_mixer)", best_ns(composing(rgb), n_video, b.repeats),
            "frame")
    )  # fmt: skip
    return rows


# -- report ------------------------------------------------------------------------------------


def fmt(ns: float | None) -> str:
    if ns is None:
        return "—"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:.1f} µs"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def print_table(rows: list[Row]) -> None:
    name_width = max(len(r.name) for r in rows)
    base_width = max(len(r.baseline) for r in rows)
    head = (f"{'group':7} {'ours':{name_width}} {'per':12} {'time':>9}  "
            f"{'baseline':{base_width}} {'time':>9} {'base/ours':>9}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}x"
        print(f"{r.group:7} {r.name:{name_width}} {r.unit:12} {fmt(r.ours_ns):>9}  "
              f"{r.baseline:{base_width}} {fmt(r.baseline_ns):>9} {ratio:>9}")  # fmt: skip


def commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=HERE.parent, capture_output=True, text=True,
            timeout=5, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def machine() -> dict[str, object]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "processor": model or platform.processor(),
        "cpus": os.cpu_count(),
        "node": platform.node(),
    }


SECTIONS: dict[str, Callable[[Budget], list[Row]]] = {
    "rtp": rtp_rows,
    "srtp": srtp_rows,
    "codec": codec_rows,
    "nack": nack_rows,
    "fanout": fanout_rows,
    "record": record_rows,
    "mixer": mixer_rows,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write machine, python, commit and rows here")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (~20 s)")
    parser.add_argument(
        "--only", default="", help=f"comma-separated groups to run ({', '.join(SECTIONS)})"
    )
    args = parser.parse_args()
    budget = Budget(0.2, 3) if args.quick else Budget(1.0, 5)
    groups = [g for g in args.only.split(",") if g] or list(SECTIONS)
    unknown = set(groups) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown groups: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    rows: list[Row] = []
    for group in groups:
        t0 = time.perf_counter()
        rows += SECTIONS[group](budget)
        print(f"  {group}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(f"best of {budget.repeats} repeats, perf_counter_ns, wall clock; "
          f"base/ours > 1: ours is faster ({elapsed:.0f} s)")  # fmt: skip
    print_table(rows)
    if args.json:
        report = {
            "machine": machine(),
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "commit": commit(),
            "quick": args.quick,
            "repeats": budget.repeats,
            "seconds": round(elapsed, 1),
            "rows": [asdict(r) | {"ratio": r.ratio} for r in rows],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
