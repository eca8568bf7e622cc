"""Home-side cost of the relay between workers, per packet, against a bare ``sendto``.

Run with ``python benchmarks/bench_relay.py [--seconds 3]``.

For a video packet (1,100-byte payload) and an audio packet (80-byte payload with an audio level)
it prints the CPU microseconds per packet of:

- **sendto**: ``socket.sendto`` of the finished relay packet's bytes (the floor: the syscall and
  loopback delivery into the receiving socket);
- **sink**: ``RelaySink.on_packet`` with an already parsed packet (header build + ``sendto``);
- **producer**: ``Producer.on_rtp`` with the relay as its only sink (what the home pays per
  relayed packet when nothing else subscribes: parse once, history, header build, ``sendto``).

Then, for a 1,200-byte video datagram, what SRTP (AES-256-GCM, the relay between nodes) adds:

- **forward**: ``RelaySink.on_packet`` on a plain link and on an SRTP link (header build,
  ``protect``, ``sendto``);
- **receive**: ``RelayEndpoint.datagram_received`` of plain and of SRTP datagrams from the home
  (``unprotect``, parse, the edge producer with no sink), fed straight to the protocol, so the
  kernel is not in it; the SRTP datagrams are made before each batch, outside the timing.

All send to the same receiving socket on 127.0.0.1, drained between batches outside the
timing, so every datagram is queued rather than dropped. Cells rotate (sendto, sink, producer)
so drift between them spreads evenly; the medians of the batches are shown. Figures are printed
for reading, never asserted on.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import time
from collections.abc import Callable

import uvloop

from mcu.crypto.relaykeys import relay_keys
from mcu.crypto.relaysrtp import RelayCipher
from mcu.media import CodecInfo, IncomingPacket, TrackSource
from mcu.sfu.producer import Producer
from mcu.sfu.relay import SOCKET_BUFFER_BYTES, RelayEndpoint, RelaySink
from mcu.sfu.rtp import build_header

BATCH = 500
VP8 = CodecInfo("video/VP8", 90000)
OPUS = CodecInfo("audio/opus", 48000, 2)


def drain(sock: socket.socket) -> None:
    try:
        while True:
            sock.recv(2048)
    except BlockingIOError:
        pass


def timed(send: Callable[[int], None], receiver: socket.socket) -> float:
    """CPU seconds per packet for one batch."""
    start = time.process_time()
    for i in range(BATCH):
        send(i)
    elapsed = time.process_time() - start
    drain(receiver)
    return elapsed / BATCH


async def measure(kind: str, payload: bytes, level: int | None, seconds: float) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    home = await RelayEndpoint.open()
    closing = [receiver]
    try:
        codec, source = (
            (VP8, TrackSource.CAMERA) if kind == "video" else (OPUS, TrackSource.MICROPHONE)
        )
        link = home.link(receiver.getsockname())
        sink_producer = Producer("t", "p", source, codec, lambda: None)
        sink: RelaySink = link.forward(sink_producer, 1)
        producer = Producer("t", "p", source, codec, lambda: None)
        link.forward(producer, 2)

        # The exact bytes the sink sends, for the baseline.
        sink.on_packet(IncomingPacket(0, 0, False, payload, False, level, 0.0))
        wire = b""
        while not wire:
            try:
                wire = receiver.recv(2048)
            except BlockingIOError:
                await asyncio.sleep(0.001)
        bare = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        bare.setblocking(False)
        closing.append(bare)
        address = receiver.getsockname()
        packets = [IncomingPacket(i, i, False, payload, False, level, 0.0) for i in range(BATCH)]
        sequence = 0

        def send_bare(i: int) -> None:
            bare.sendto(wire, address)

        def send_sink(i: int) -> None:
            sink.on_packet(packets[i])

        def send_producer(i: int) -> None:
            nonlocal sequence
            sequence += 1
            producer.on_rtp(sequence & 0xFFFF, sequence, False, payload, level, 0.0)

        cells = {"sendto": send_bare, "sink": send_sink, "producer": send_producer}
        results: dict[str, list[float]] = {name: [] for name in cells}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, send in cells.items():
                results[name].append(timed(send, receiver))
            await asyncio.sleep(0)
        floor = statistics.median(results["sendto"])
        print(f"{kind} ({len(wire)}-byte datagrams, {len(results['sendto'])} batches of {BATCH})")
        for name, samples in results.items():
            median = statistics.median(samples) * 1e6
            print(
                f"  {name:9s} {median:6.2f} µs/packet  (+{median - floor * 1e6:5.2f} over sendto;"
                f" range {min(samples) * 1e6:.2f}-{max(samples) * 1e6:.2f})"
            )
        print(f"  dropped by the relay: {link.packets_dropped}")
    finally:
        home.close()
        for sock in closing:
            sock.close()


def report(title: str, results: dict[str, list[float]], baseline: str) -> None:
    floor = statistics.median(results[baseline]) * 1e6
    print(title)
    for name, samples in results.items():
        median = statistics.median(samples) * 1e6
        print(
            f"  {name:14s} {median:6.2f} µs/packet  (+{median - floor:5.2f}, x{median / floor:4.2f}"
            f" of {baseline}; range {min(samples) * 1e6:.2f}-{max(samples) * 1e6:.2f})"
        )


async def measure_srtp(seconds: float) -> None:
    """Forward and receive a 1,200-byte video datagram, plain and as SRTP."""
    payload = b"\x10\x01\x00\x00" + b"\xaa" * 1184  # + the 12-byte header: 1,200 bytes
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    plain_home, srtp_home, edge = [await RelayEndpoint.open() for _ in range(3)]
    try:
        keys = relay_keys(b"k" * 32, "home", "edge", "edge-nonce", "home-nonce")
        sinks: dict[str, RelaySink] = {}
        for name, home in (("plain", plain_home), ("srtp", srtp_home)):
            link = home.link(receiver.getsockname())
            if name == "srtp":
                link.cipher = RelayCipher(keys.home_to_edge, keys.edge_to_home)
            sinks[name] = link.forward(Producer("t", "p", TrackSource.CAMERA, VP8, lambda: None), 1)
        # The edge receives both homes' stream 1; the SRTP home's through the link's keys.
        edge.sources[srtp_home.address] = RelayCipher(keys.edge_to_home, keys.home_to_edge)
        for home in (plain_home, srtp_home):
            edge.receive(home.address, 1, Producer("t", "p", TrackSource.CAMERA, VP8, lambda: None))
        sender = RelayCipher(keys.home_to_edge, keys.edge_to_home)
        sequence = {"forward plain": 0, "forward srtp": 0, "receive plain": 0, "receive srtp": 0}
        batch: list[bytes] = []

        def forward(name: str) -> Callable[[int], None]:
            sink = sinks[name.split()[1]]

            def send(i: int) -> None:
                n = sequence[name] = sequence[name] + 1
                sink.on_packet(IncomingPacket(n, n * 3000, False, payload, False, None, 0.0))

            return send

        def receive(name: str) -> Callable[[int], None]:
            home = plain_home if name == "receive plain" else srtp_home
            deliver, address = edge.datagram_received, home.address

            def send(i: int) -> None:
                deliver(batch[i], address)

            return send

        def prepare(name: str) -> None:
            batch.clear()
            for _ in range(BATCH):
                n = sequence[name] = (sequence[name] + 1) & 0xFFFF
                wire = build_header(96, False, n, n * 3000, 1, b"") + payload
                batch.append(sender.protect(wire) or b"" if name == "receive srtp" else wire)

        cells = {name: forward(name) for name in ("forward plain", "forward srtp")}
        cells |= {name: receive(name) for name in ("receive plain", "receive srtp")}
        results: dict[str, list[float]] = {name: [] for name in cells}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, send in cells.items():
                if name.startswith("receive"):
                    prepare(name)
                results[name].append(timed(send, receiver))
            await asyncio.sleep(0)
        rounds = len(results["forward plain"])
        print(f"SRTP on the relay (1,200-byte video datagrams, {rounds} batches of {BATCH})")
        report(
            "  home side",
            {k: v for k, v in results.items() if k.startswith("forward")},
            "forward plain",
        )
        report(
            "  edge side",
            {k: v for k, v in results.items() if k.startswith("receive")},
            "receive plain",
        )
        dropped = sum(sink.packets_dropped for sink in sinks.values())
        rejected = sum(edge.sources[srtp_home.address].rejected.values())
        print(f"  dropped by the relay: {dropped}; rejected by the edge: {rejected}")
    finally:
        for endpoint in (plain_home, srtp_home, edge):
            endpoint.close()
        receiver.close()


async def main(seconds: float) -> None:
    await measure("video", b"\x10\x01\x00\x00" + b"\xaa" * 1096, None, seconds / 3)
    await measure("audio", b"\xfc" * 80, 40, seconds / 3)
    await measure_srtp(seconds / 3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="total measuring time")
    uvloop.run(main(parser.parse_args().seconds))
