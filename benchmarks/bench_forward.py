"""Forwarding throughput: one publisher's VP8 to N real aiortc subscribers, on one server core.

Run with ``python benchmarks/bench_forward.py --subscribers 25,100 --seconds 5``.

For each N it prints the egress packets per second one full core sustains and the CPU
microseconds per egress packet, for two send paths over the same packets and the same legs:

- **ours**: ``Producer.on_rtp`` -> ``Consumer.on_packet`` (raw header rewrite) ->
  ``SrtpTransmitter.send`` (``srtp.protect`` + the ICE pair's datagram ``sendto``), the server's
  forwarding path.
- **aiortc**: the same ``Producer.on_rtp``, then per subscriber what an aiortc application
  relaying packets would do, mirroring ``RTCRtpSender._run_rtp``: ``RtpPacket(...)`` with the leg's
  payload type, SSRC, sequence number, timestamp, marker and the mid + abs-send-time extensions,
  ``.serialize()``, then ``await dtls._send_rtp(bytes)`` (protect, then aiortc's ICE await chain).

Both paths put packets of the same size on the wire (12-byte header, an 8-byte one-byte extension
block with mid and abs-send-time, the payload, the SRTP tag). Every subscriber connection carries
two sendonly VP8 tracks, one per path, so each path has its own SSRC and sequence space, and each
path has its own producer, fed only in its own cells: a consumer maps sequence numbers with a fixed
offset, so packets fed while it is detached would show up as a jump, and libsrtp refuses to
protect a sequence number that looks more than its window behind the last one.

Setup. The measured process (this one) is pinned to core 0 and runs uvloop. It creates, per
subscriber, an ``RTCPeerConnection`` on 127.0.0.1 (``mcu.sfu.ice`` policy) with
``addTransceiver(IdleTrack(...), direction="sendonly")`` and ``offer_codec(...)`` VP8, as
``mcu.sfu.peer.SubscriberConnection`` does; the subscribers' peer connections answer in a child
process (``forward_receivers.py``) pinned to core 1. Connections are set up concurrently in batches
of 25, each batch bounded in time; once DTLS is connected the server builds
``Consumer(consumer_leg(t), SrtpTransmitter(dtls_transport(t)), producer.history, producer,
video=True)`` and adds it to the producer. The N values run in increasing order, each adding
connections to the previous ones.

Receivers never decrypt or decode: the child counts SRTP packets at each connection's socket and
drops them before aiortc would unprotect them (see ``forward_receivers.py``). Loss = 1 - received /
sent, per subscriber, read after a short drain; the kernel's UDP ``RcvbufErrors`` delta is shown.

Input. A VP8 clip is encoded once with aiortc's ``Vp8Encoder`` (640x360 synthetic frames,
1.5 Mbit/s target, encoder warmed up, then a keyframe) and its RTP payloads kept. A cell feeds
them to ``producer.on_rtp`` from the keyframe as fast as the core allows for ``--seconds`` of wall
time, with increasing sequence numbers and timestamps, yielding to the event loop after every
frame so transports flush and STUN/RTCP run.

Measure. CPU = ``time.process_time()`` of this process across the feed. It includes the kernel
work of each ``sendto``, and on loopback that includes delivering the datagram into the
receiver's socket (softirq run inside the syscall is charged to the task); core 0's /proc/stat
counters confirm it (the 'other' column: what other processes took of core 0 meanwhile). CPU per
egress packet = CPU / packets sent; egress packets/s at one full core = 1 / that. Publisher ingress
(SRTP unprotect and parse, once per incoming packet, i.e. 1/N per egress packet) is not included.

Cells alternate ours/aiortc, the order flipping every round (ABBA), because the same cell varies by
20-30% between runs on these VMs; the table shows medians and ranges. Figures are printed for
reading, never asserted on.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for path in (HERE.parent, HERE):  # run as a script from anywhere
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import av  # noqa: E402
import numpy as np  # noqa: E402
import uvloop  # noqa: E402
from aiortc import (  # noqa: E402
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
    clock,
)
from aiortc.codecs.vpx import Vp8Encoder  # noqa: E402
from aiortc.rtcdtlstransport import RTCDtlsTransport  # noqa: E402
from aiortc.rtcrtpparameters import RTCRtpParameters  # noqa: E402
from aiortc.rtp import HeaderExtensionsMap, RtpPacket  # noqa: E402
from forward_receivers import RECEIVER_CORE, ReceiverProcess  # noqa: E402

from mcu.media import CodecInfo, IncomingPacket, TrackSource  # noqa: E402
from mcu.sfu import ice  # noqa: E402
from mcu.sfu.aiortc_adapter import (  # noqa: E402
    IdleTrack,
    SrtpTransmitter,
    consumer_leg,
    dtls_transport,
    offer_codec,
)
from mcu.sfu.consumer import Consumer  # noqa: E402
from mcu.sfu.peer import new_peer_connection  # noqa: E402
from mcu.sfu.producer import Producer  # noqa: E402

SERVER_CORE = 0
VP8 = CodecInfo(mime_type="video/VP8", clock_rate=90000)
WIDTH, HEIGHT = 640, 360
BITRATE = 1_500_000
CLIP_FRAMES = 90  # 3 s at 30 fps; looping it gives a keyframe every 3 s
WARMUP_FRAMES = 30  # encoded and discarded so the rate control has settled
FRAME_TICKS = 3000  # 90 kHz / 30 fps
DRAIN_SECONDS = 0.5
MAX_FRAMES_PER_SECOND = 100_000  # bounds a cell's loop even if the clock misbehaves
SETUP_BATCH = 25
PATHS = ("ours", "aiortc")


# -- input -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """Pre-encoded VP8 RTP payloads, one list per frame, keyframe first."""

    frames: list[list[bytes]]
    "Payloads of each frame, in order."

    @property
    def packets(self) -> int:
        """RTP packets in the clip."""
        return sum(len(f) for f in self.frames)

    def describe(self) -> dict[str, float]:
        """Bitrate, packets per frame and payload size, for the report."""
        octets = sum(len(p) for f in self.frames for p in f)
        return {
            "bitrate_bps": octets * 8 * 30 / len(self.frames),
            "packets_per_frame": self.packets / len(self.frames),
            "mean_payload_bytes": octets / self.packets,
            "keyframe_packets": len(self.frames[0]),
        }


def encode_clip() -> Clip:
    """Encode synthetic 640x360 frames (a scrolling blocky texture plus noise) with aiortc."""
    encoder = Vp8Encoder()
    encoder.target_bitrate = BITRATE
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, size=(HEIGHT // 8, (WIDTH + 240) // 8, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1).astype(np.int16)
    frames: list[list[bytes]] = []
    for i in range(WARMUP_FRAMES + CLIP_FRAMES):
        x = (i * 3) % 240
        noise = rng.integers(-12, 13, size=(HEIGHT, WIDTH, 3))
        image = (texture[:, x : x + WIDTH] + noise).clip(0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i * FRAME_TICKS
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=i == WARMUP_FRAMES)
        if i >= WARMUP_FRAMES:
            frames.append(payloads)
    return Clip(frames)


class Feeder:
    """Feeds the clip to the producer in a tight loop; keeps sequence and timestamp across cells."""

    def __init__(self, producer: Producer, clip: Clip) -> None:
        self.producer = producer
        self.clip = clip
        self.sequence = 0
        self.timestamp = 0

    async def run(
        self, seconds: float, after_packet: Callable[[], Awaitable[None]] | None
    ) -> tuple[float, float, int]:
        """Feed for ``seconds`` of wall time from the keyframe; returns (cpu s, wall s, packets)."""
        frames = self.clip.frames
        on_rtp = self.producer.on_rtp
        packets = 0
        cpu_start = time.process_time()
        wall_start = time.perf_counter()
        deadline = wall_start + seconds
        for index in range(int(seconds * MAX_FRAMES_PER_SECOND)):
            payloads = frames[index % len(frames)]
            last = len(payloads) - 1
            now = time.monotonic()
            for i, payload in enumerate(payloads):
                on_rtp(self.sequence, self.timestamp, i == last, payload, None, now)
                self.sequence = (self.sequence + 1) & 0xFFFF
                if after_packet is not None:
                    await after_packet()
            self.timestamp = (self.timestamp + FRAME_TICKS) & 0xFFFFFFFF
            packets += len(payloads)
            await asyncio.sleep(0)  # let the loop flush transports and run STUN/RTCP
            if time.perf_counter() >= deadline:
                break
        return time.process_time() - cpu_start, time.perf_counter() - wall_start, packets


# -- the baseline: aiortc's own send path ------------------------------------------------------


class AiortcSender:
    """Sends a producer's packets to one subscriber the way ``RTCRtpSender._run_rtp`` does."""

    def __init__(self, transceiver: RTCRtpTransceiver, rng: np.random.Generator) -> None:
        leg = consumer_leg(transceiver)
        self.dtls: RTCDtlsTransport = dtls_transport(transceiver)
        self.payload_type = leg.payload_type
        self.ssrc = leg.ssrc
        self.mid = leg.mid
        self.extensions = HeaderExtensionsMap()
        self.extensions.configure(RTCRtpParameters(headerExtensions=transceiver._headerExtensions))
        self.sequence = int(rng.integers(0, 0x8000))
        self.timestamp_offset = int(rng.integers(0, 1 << 32))
        self.packets_sent = 0
        self.errors = 0

    async def send(self, packet: IncomingPacket) -> None:
        """Build, serialise and send one packet through ``RTCDtlsTransport._send_rtp``."""
        rtp = RtpPacket(
            payload_type=self.payload_type,
            sequence_number=self.sequence,
            timestamp=(packet.timestamp + self.timestamp_offset) & 0xFFFFFFFF,
        )
        rtp.ssrc = self.ssrc
        rtp.payload = packet.payload
        rtp.marker = 1 if packet.marker else 0
        rtp.extensions.abs_send_time = (clock.current_ntp_time() >> 14) & 0x00FFFFFF
        rtp.extensions.mid = self.mid
        self.sequence = (self.sequence + 1) & 0xFFFF
        try:
            await self.dtls._send_rtp(rtp.serialize(self.extensions))
        except ConnectionError:
            self.errors += 1
        else:
            self.packets_sent += 1


class AiortcFanout:
    """A producer sink that keeps the latest packet; ``flush`` sends it to every subscriber."""

    def __init__(self, senders: list[AiortcSender]) -> None:
        self.senders = senders
        self._pending: IncomingPacket | None = None

    def on_packet(self, packet: IncomingPacket) -> None:
        self._pending = packet

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        pass

    def close(self) -> None:
        pass

    async def flush(self) -> None:
        packet, self._pending = self._pending, None
        if packet is not None:
            for sender in self.senders:
                await sender.send(packet)


# -- the server side ---------------------------------------------------------------------------


@dataclass
class Subscriber:
    """The server's end of one subscriber connection: one track per send path."""

    pc: RTCPeerConnection
    ours: RTCRtpTransceiver
    theirs: RTCRtpTransceiver


class Forwarding:
    """Both send paths, each with its own producer and feeder.

    A consumer maps sequence numbers with a fixed offset, so it must see every packet of its
    producer: packets fed while it is detached would show up as a sequence jump. Two producers,
    each fed only in its own path's cells, keep both outgoing streams gapless.
    """

    def __init__(self, clip: Clip) -> None:
        self.producers = {
            path: Producer(f"bench-{path}", "publisher", TrackSource.CAMERA, VP8, lambda: None)
            for path in PATHS
        }
        self.feeders = {path: Feeder(self.producers[path], clip) for path in PATHS}
        self.consumers: list[Consumer] = []
        self.fanout = AiortcFanout([])
        self.producers["aiortc"].add_sink(self.fanout)
        self._rng = np.random.default_rng(1)

    def attach(self, subscriber: Subscriber, transmitter: SrtpTransmitter) -> None:
        """Start forwarding both producers to a connected subscriber."""
        producer = self.producers["ours"]
        consumer = Consumer(
            consumer_leg(subscriber.ours), transmitter, producer.history, producer, video=True
        )
        producer.add_sink(consumer)
        self.consumers.append(consumer)
        self.fanout.senders.append(AiortcSender(subscriber.theirs, self._rng))

    def sent(self, path: str) -> list[int]:
        """Packets sent so far to each subscriber through ``path``."""
        if path == "ours":
            return [c.packets_sent for c in self.consumers]
        return [s.packets_sent for s in self.fanout.senders]

    def dropped(self, path: str) -> int:
        """Sends refused so far through ``path``."""
        if path == "ours":
            return sum(c.packets_dropped for c in self.consumers)
        return sum(s.errors for s in self.fanout.senders)


async def add_subscribers(
    count: int,
    subscribers: list[Subscriber],
    receivers: ReceiverProcess,
    forwarding: Forwarding,
    timeout: float,
) -> None:
    """Connect ``count`` more subscribers, in concurrent batches, each batch bounded in time."""
    for start in range(0, count, SETUP_BATCH):
        batch: list[Subscriber] = []
        for i in range(min(SETUP_BATCH, count - start)):
            pc = new_peer_connection([])
            index = len(subscribers) + i
            transceivers = []
            for path in PATHS:
                transceiver = pc.addTransceiver(
                    IdleTrack("video", f"{path}-{index}"), direction="sendonly"
                )
                offer_codec(transceiver, VP8)
                transceivers.append(transceiver)
            batch.append(Subscriber(pc, *transceivers))

        async def offer(pc: RTCPeerConnection) -> str:
            await pc.setLocalDescription(await pc.createOffer())
            return str(pc.localDescription.sdp)

        async def connect(batch: list[Subscriber] = batch) -> None:
            offers = await asyncio.gather(*(offer(s.pc) for s in batch))
            reply = await receivers.call({"op": "answer", "offers": offers}, timeout)
            await asyncio.gather(
                *(
                    s.pc.setRemoteDescription(RTCSessionDescription(sdp=a, type="answer"))
                    for s, a in zip(batch, reply["answers"], strict=True)
                )
            )
            transmitters = [SrtpTransmitter(dtls_transport(s.ours)) for s in batch]
            for _ in range(int(timeout / 0.05)):
                if all(t.ready() for t in transmitters) and all(
                    dtls_transport(s.ours).state == "connected" for s in batch
                ):
                    break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("DTLS did not connect in time")
            await receivers.call({"op": "arm", "timeout": timeout}, timeout)
            for s, transmitter in zip(batch, transmitters, strict=True):
                forwarding.attach(s, transmitter)

        subscribers.extend(batch)  # before connecting, so a failure still closes them
        await asyncio.wait_for(connect(), timeout)


@dataclass
class Cell:
    """One measurement: one path, N subscribers, one round."""

    subscribers: int
    path: str
    round: int
    cpu_seconds: float
    wall_seconds: float
    packets_in: int
    egress_packets: int
    dropped: int
    received: int
    worst_subscriber_loss: float
    kernel_rcvbuf_errors: int
    core_busy_seconds: float
    receiver_cpu_seconds: float
    sent_per_subscriber: list[int]
    received_per_subscriber: list[int]
    us_per_packet: float = field(init=False)
    pps_at_one_core: float = field(init=False)
    wall_pps: float = field(init=False)
    cpu_utilisation: float = field(init=False)
    loss: float = field(init=False)
    other_load: float = field(init=False)
    receiver_us_per_packet: float = field(init=False)

    def __post_init__(self) -> None:
        self.us_per_packet = self.cpu_seconds / max(self.egress_packets, 1) * 1e6
        self.pps_at_one_core = self.egress_packets / self.cpu_seconds
        self.wall_pps = self.egress_packets / self.wall_seconds
        self.cpu_utilisation = self.cpu_seconds / self.wall_seconds
        self.loss = 1 - self.received / max(self.egress_packets, 1)
        self.other_load = max(0.0, self.core_busy_seconds - self.cpu_seconds) / self.wall_seconds
        self.receiver_us_per_packet = self.receiver_cpu_seconds / max(self.received, 1) * 1e6


def core_busy_seconds(core: int) -> float:
    """Time ``core`` spent busy (user, nice, system, irq, softirq) since boot, from /proc/stat.

    Compared with the process's CPU time it shows how much of the core other processes took
    during a cell. (The loopback delivery to the receivers' sockets runs as softirq inside this
    process's ``sendto`` and is already in its CPU time: the scheduler charges it to the task.)
    """
    prefix = f"cpu{core} "
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(prefix):
            user, nice, system, _idle, _iowait, irq, softirq = map(int, line.split()[1:8])
            return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    return float("nan")


def udp_rcvbuf_errors() -> int:
    """The kernel's count of UDP datagrams dropped for a full receive buffer (all sockets)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    header, values = [line for line in lines if line[0] == "Udp:"][:2]
    return int(values[header.index("RcvbufErrors")])


async def run_cell(
    path: str,
    rnd: int,
    forwarding: Forwarding,
    receivers: ReceiverProcess,
    seconds: float,
) -> Cell:
    """Forward for ``seconds`` through ``path`` to every subscriber; measure and count."""
    subscribers = len(forwarding.consumers)
    before = await receivers.call({"op": "counts"}, 30)
    kernel_before = udp_rcvbuf_errors()
    busy_before = core_busy_seconds(SERVER_CORE)
    sent_before = forwarding.sent(path)
    dropped_before = forwarding.dropped(path)
    flush = forwarding.fanout.flush if path == "aiortc" else None
    cpu, wall, packets_in = await forwarding.feeders[path].run(seconds, flush)
    busy = core_busy_seconds(SERVER_CORE) - busy_before
    await asyncio.sleep(DRAIN_SECONDS)
    sent_delta = [a - b for a, b in zip(forwarding.sent(path), sent_before, strict=True)]
    after = await receivers.call({"op": "counts"}, 30)
    received = [
        a - b
        for a, b in zip(after["counts"][:subscribers], before["counts"][:subscribers], strict=True)
    ]
    return Cell(
        subscribers=subscribers,
        path=path,
        round=rnd,
        cpu_seconds=cpu,
        wall_seconds=wall,
        packets_in=packets_in,
        egress_packets=sum(sent_delta),
        dropped=forwarding.dropped(path) - dropped_before,
        received=sum(received),
        worst_subscriber_loss=max(
            (1 - r / s for r, s in zip(received, sent_delta, strict=True) if s), default=0.0
        ),
        kernel_rcvbuf_errors=udp_rcvbuf_errors() - kernel_before,
        core_busy_seconds=busy,
        receiver_cpu_seconds=after["cpu"] - before["cpu"],
        sent_per_subscriber=sent_delta,
        received_per_subscriber=received,
    )


# -- report ------------------------------------------------------------------------------------


def summarise(cells: list[Cell]) -> list[dict[str, Any]]:
    """Medians per (N, path) and the ratio ours/aiortc, median and paired."""
    rows: list[dict[str, Any]] = []
    for n in sorted({c.subscribers for c in cells}):
        by_path = {p: [c for c in cells if c.subscribers == n and c.path == p] for p in PATHS}
        row: dict[str, Any] = {"subscribers": n}
        for path, group in by_path.items():
            pps = [c.pps_at_one_core for c in group]
            row[path] = {
                "pps_at_one_core": statistics.median(pps),
                "pps_min": min(pps),
                "pps_max": max(pps),
                "us_per_packet": statistics.median(c.us_per_packet for c in group),
                "wall_pps": statistics.median(c.wall_pps for c in group),
                "cpu_utilisation": statistics.median(c.cpu_utilisation for c in group),
                "other_load": statistics.median(c.other_load for c in group),
                "loss": statistics.median(c.loss for c in group),
                "worst_subscriber_loss": max(c.worst_subscriber_loss for c in group),
                "dropped": sum(c.dropped for c in group),
                "kernel_rcvbuf_errors": sum(c.kernel_rcvbuf_errors for c in group),
            }
        ours, theirs = by_path["ours"], by_path["aiortc"]
        row["ratio"] = row["ours"]["pps_at_one_core"] / row["aiortc"]["pps_at_one_core"]
        row["paired_ratio"] = statistics.median(
            a.pps_at_one_core / b.pps_at_one_core for a, b in zip(ours, theirs, strict=True)
        )
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], target: int) -> None:
    """The summary table: one line per (N, path), then the ratio."""
    print()
    print(
        f"{'N':>4} {'path':7} {'egress pkt/s @1 core':>20} {'(min-max)':>13} {'CPU us/pkt':>10}"
        f" {'wall pkt/s':>10} {'CPU':>4} {'other':>5} {'loss':>6} {'worst':>6} {'dropped':>7}"
        f" {'rcvbuf':>6}"
    )
    for row in rows:
        for path in PATHS:
            r = row[path]
            span = f"{r['pps_min'] / 1000:.0f}k-{r['pps_max'] / 1000:.0f}k"
            print(
                f"{row['subscribers']:>4} {path:7} {r['pps_at_one_core']:>20,.0f} {span:>13}"
                f" {r['us_per_packet']:>10.1f} {r['wall_pps']:>10,.0f}"
                f" {r['cpu_utilisation']:>4.0%} {r['other_load']:>5.0%} {r['loss']:>6.2%}"
                f" {r['worst_subscriber_loss']:>6.2%} {r['dropped']:>7}"
                f" {r['kernel_rcvbuf_errors']:>6}"
            )
        verdict = "meets" if row["ours"]["pps_at_one_core"] >= target else "below"
        print(
            f"{row['subscribers']:>4} ratio ours/aiortc {row['ratio']:.2f}x"
            f" (paired median {row['paired_ratio']:.2f}x); ours {verdict} the {target:,} pkt/s"
            " target"
        )
    print(
        "Medians of the rounds. 'CPU' = this process's CPU time / wall time; 'other' = share of"
        " core 0 other\nprocesses took; loss = 1 - received/sent at the receivers' sockets,"
        " 'worst' = worst subscriber;\n'dropped' = sends refused (full send buffer, not"
        " connected); 'rcvbuf' = kernel UDP RcvbufErrors (all sockets)."
    )


# -- main --------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    ice.install(ice.IcePolicy(addresses=("127.0.0.1",)))
    counts = sorted({int(n) for n in args.subscribers.split(",")})
    clip_start = time.perf_counter()
    clip = encode_clip()
    config: dict[str, Any] = {
        "subscribers": counts,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "server_core": SERVER_CORE,
        "receiver_core": RECEIVER_CORE,
        "clip": clip.describe(),
    }
    print(
        "clip: {packets_per_frame:.1f} packets/frame, {mean_payload_bytes:.0f}-byte payloads,"
        " {bitrate_bps:,.0f} bit/s, keyframe {keyframe_packets} packets".format(**config["clip"])
        + f" (encoded in {time.perf_counter() - clip_start:.1f} s)"
    )
    forwarding = Forwarding(clip)
    receivers = await ReceiverProcess.start()
    subscribers: list[Subscriber] = []
    cells: list[Cell] = []
    try:
        for n in counts:
            setup_start = time.perf_counter()
            await add_subscribers(
                n - len(subscribers), subscribers, receivers, forwarding, args.setup_timeout
            )
            ssl = dtls_transport(subscribers[0].ours)._ssl
            config["srtp_profile"] = ssl.get_selected_srtp_profile().decode() if ssl else "?"
            print(
                f"N={n}: {len(subscribers)} subscriber connections up in"
                f" {time.perf_counter() - setup_start:.1f} s (SRTP {config['srtp_profile']})"
            )
            await asyncio.sleep(1.0)  # let the last handshakes' traffic settle
            for rnd in range(args.rounds):
                order = PATHS if rnd % 2 == 0 else PATHS[::-1]
                for path in order:
                    cell = await run_cell(path, rnd, forwarding, receivers, args.seconds)
                    cells.append(cell)
                    print(
                        f"  N={n} round {rnd} {path:6}: {cell.pps_at_one_core:8,.0f} pkt/s @1 core"
                        f"  {cell.us_per_packet:5.1f} us/pkt  wall {cell.wall_pps:8,.0f} pkt/s"
                        f"  CPU {cell.cpu_utilisation:4.0%} other {cell.other_load:4.0%}"
                        f"  loss {cell.loss:6.2%}"
                        f"  (receivers {cell.receiver_us_per_packet:.1f} us/pkt)"
                    )
    finally:
        await asyncio.wait_for(
            asyncio.gather(*(s.pc.close() for s in subscribers), return_exceptions=True), 30
        )
        await receivers.stop()
    rows = summarise(cells)
    print_table(rows, args.target)
    return {"config": config, "summary": rows, "cells": [asdict(c) for c in cells]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", default="25,100", help="comma-separated N (max 150+)")
    parser.add_argument("--seconds", type=float, default=5.0, help="wall time per cell")
    parser.add_argument("--rounds", type=int, default=3, help="ours/aiortc pairs per N")
    parser.add_argument("--target", type=int, default=60_000, help="egress pkt/s to report against")
    parser.add_argument("--setup-timeout", type=float, default=120.0, help="per batch of setup")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2 and os.cpu_count() in (None, 1):
        sys.exit("needs two cores: one for the server, one for the receivers")
    os.sched_setaffinity(0, {SERVER_CORE})
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    result = uvloop.run(bench(args))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
