"""The cascade between nodes: what a hop costs, how late it makes a viewer, and the home's egress.

Run where loopback is the only interface (clients gather ICE candidates there):

    unshare -n sh -c 'ip link set lo up && \
      exec .venv/bin/python benchmarks/bench_cascade.py'

Prints three things, none asserted:

1. **Relay cost per packet per hop** (in this process, no servers): a 1,200-byte video packet
   through ``Producer.on_rtp`` on the sending node (relay sink: header, SRTP ``protect``,
   ``sendto``) and ``RelayEndpoint.datagram_received`` on the receiving one (``unprotect``,
   parse, NACK bookkeeping, the edge producer with no sink), CPU µs per packet for the whole hop
   (the kernel's loopback delivery included), medians of batches of 500; beside it the same hop
   as plain RTP between two workers of one node, and the ratio.
2. **Added latency per hop**: ``--nodes`` real nodes (``--workers 1`` each) and a real Redis; a
   WHIP lecturer on the first (the room's home), ``--viewers`` WHEP viewers (aiortc, decoding)
   on each. The lecturer's camera switches colour every 0.6 s; for each switch, the time a
   viewer one hop away decodes it minus the time a viewer at the home does (both viewers in
   this process, so the clocks are one): the median and 90th percentile.
3. **The home's egress as nodes are added**: with viewers on 1, 2, … ``--nodes`` nodes, the
   payload bytes per second the home sends (its own viewers, plus what it relays:
   ``mcu_relay_packets_sent_total`` times the stage's mean payload), against what it would
   send if it served every viewer itself, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from mcu.crypto.relaykeys import relay_keys
from mcu.crypto.relaysrtp import RelayCipher
from mcu.media import CodecInfo, TrackSource
from mcu.sfu import ice
from mcu.sfu.producer import Producer
from mcu.sfu.relay import RelayEndpoint, assign_ssrc
from tests.support.cluster import cluster_nodes
from tests.support.redis import RedisServer
from tests.support.room_client import ColourTrack, ToneTrack
from tests.support.server import ServerProcess
from tests.support.whip import Received, WhepViewer, WhipPublisher, mean_colour, near

BATCH = 500
VP8 = CodecInfo("video/VP8", 90000)
KEYFRAME = bytes([0x10, 0x00, 0x00, 0x00])
DELTA = bytes([0x10, 0x01, 0x00, 0x00])
BLUE = (20, 60, 220)
ORANGE = (230, 140, 20)
SWITCH_S = 0.6
"Seconds between the lecturer's colour switches: far above a hop's delay, so pairs are clear."
PASSWORD = "bench-lecturer"
VIEWERS = "bench-audience"

# -- 1. one hop, in this process ------------------------------------------------------------


def _hop_batch(
    source: Producer, edge: RelayEndpoint, receiver: socket.socket, first: int, payload: bytes
) -> float:
    """CPU seconds per packet: BATCH packets sent by the home and handled by the edge."""
    start = time.process_time()
    for i in range(BATCH):
        source.on_rtp((first + i) & 0xFFFF, 90 * (first + i), True, payload, None, 1.0)
    handled = 0
    while handled < BATCH:
        try:
            data, sender = receiver.recvfrom(2048)
        except BlockingIOError:
            break
        edge.datagram_received(data, sender)
        handled += 1
    took = time.process_time() - start
    return took / max(handled, 1)


async def measure_hop(seconds: float) -> dict[str, list[float]]:
    """Per-packet CPU of one hop, plain (workers of one node) and SRTP (between nodes)."""
    results: dict[str, list[float]] = {"plain": [], "srtp": []}
    setups = {}
    for name in results:
        home = await RelayEndpoint.open()
        edge = await RelayEndpoint.open()
        # The edge's datagrams are read by the benchmark, not the loop: timed without the loop.
        edge._transport.pause_reading()  # type: ignore[union-attr]
        receiver = edge._sock
        link = home.link(edge.address)
        if name == "srtp":
            keys = relay_keys(b"k" * 32, "h", "e", "n1", "n2")
            link.cipher = RelayCipher(keys.home_to_edge, keys.edge_to_home, "n1:n2")
            edge.sources[home.address] = RelayCipher(keys.edge_to_home, keys.home_to_edge, "n1:n2")
        source = Producer("cam", "lecturer", TrackSource.CAMERA, VP8, lambda: None)
        ssrc = assign_ssrc()
        relayed = Producer("cam", "lecturer", TrackSource.CAMERA, VP8, lambda: None)
        edge.receive(home.address, ssrc, relayed)
        link.forward(source, ssrc)
        source.on_rtp(0, 0, True, KEYFRAME + b"\x00" * 1180, None, 1.0)
        await asyncio.sleep(0.05)
        with contextlib.suppress(BlockingIOError):
            while True:
                receiver.recv(2048)
        setups[name] = (home, edge, source, receiver)
    payload = DELTA + b"\x5a" * 1176  # with the 12-byte header: a 1,192-byte packet
    sequence = 1
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, (_, edge, source, receiver) in setups.items():
            results[name].append(_hop_batch(source, edge, receiver, sequence, payload))
        sequence += BATCH
    for home, edge, _, _ in setups.values():
        home.close()
        edge.close()
    return results


# -- 2 and 3. real nodes ----------------------------------------------------------------------


@dataclass
class TimedViewer(WhepViewer):
    """A WHEP viewer that notes when its decoded picture changes colour (and to which)."""

    switches: list[tuple[float, bool]] = field(default_factory=list)

    async def _consume(self, track: MediaStreamTrack, received: Received) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                received.last_frame = frame
                received.frames += 1
                if track.kind == "video":
                    blue = near(mean_colour(frame), BLUE)
                    if not self.switches or self.switches[-1][1] != blue:
                        self.switches.append((time.monotonic(), blue))


async def _metrics(node: ServerProcess) -> str:
    async with node.http.get(node.base_url + "/metrics") as r:
        return await r.text()


def _sum(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}\{{{labels}[^}}]*\}} (\S+)$"
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))


@dataclass
class Egress:
    stage_packets: float
    stage_bytes: float
    viewer_bytes: float
    relayed_packets: float

    @classmethod
    def read(cls, text: str) -> Egress:
        return cls(
            _sum(text, "mcu_rtp_packets_received_total"),
            _sum(text, "mcu_rtp_received_bytes_total"),
            _sum(text, "mcu_rtp_sent_bytes_total"),
            _sum(text, "mcu_relay_packets_sent_total", 'edge="[0-9a-f]+/'),
        )


async def measure_nodes(
    nodes: int, per_node: int, window: float, switches: int, workdir: Path
) -> None:
    async with (
        RedisServer(workdir / "redis") as redis,
        cluster_nodes(workdir, redis, count=nodes) as servers,
    ):
        home = servers[0]
        await home.create_room("bench", PASSWORD, "Bench", kind="lecture", viewer_password=VIEWERS)
        lecturer = WhipPublisher(home.base_url, "bench", PASSWORD)
        camera = ColourTrack(BLUE)
        status, body = await lecturer.publish([ToneTrack(), camera], name="L")
        if status != 201:
            raise RuntimeError(f"WHIP refused: {status} {body}")
        viewers: list[list[TimedViewer]] = []
        rows = []
        try:
            for server in servers:
                here = [TimedViewer(server.base_url, "bench", VIEWERS) for _ in range(per_node)]
                viewers.append(here)
                for viewer in here:
                    status, body = await viewer.play()
                    if status != 201:
                        raise RuntimeError(f"WHEP refused on {server.base_url}: {status} {body}")
                for viewer in here:
                    await viewer.wait_until(lambda v=viewer: v.frames("video") > 10, timeout=30)
                before = Egress.read(await _metrics(home))
                await asyncio.sleep(window)
                after = Egress.read(await _metrics(home))
                rows.append((len(viewers), sum(map(len, viewers)), before, after))
            for _ in range(switches):
                camera.colour = ORANGE if camera.colour == BLUE else BLUE
                await asyncio.sleep(SWITCH_S)
            _report_latency(viewers)
        finally:
            for group in viewers:
                for viewer in group:
                    await viewer.stop()
            await lecturer.stop()
    _report_egress(rows, window)


def _report_latency(viewers: list[list[TimedViewer]]) -> None:
    at_home = viewers[0][0].switches[1:]  # the first entry is the picture's start, no switch
    print("\nadded latency per hop (a colour switch decoded one hop away, minus at the home):")
    for index, group in enumerate(viewers[1:], start=2):
        there = group[0].switches[1:]
        delays = []
        for when, blue in at_home:
            match = [t for t, b in there if b == blue and abs(t - when) < SWITCH_S / 2]
            if match:
                delays.append((match[0] - when) * 1000)
        if len(delays) < 3:
            print(f"  node {index}: too few switches seen at both ({len(delays)})")
            continue
        delays.sort()
        p90 = delays[min(len(delays) - 1, int(len(delays) * 0.9))]
        print(
            f"  node {index}: median {statistics.median(delays):+.1f} ms, "
            f"p90 {p90:+.1f} ms ({len(delays)} switches)"
        )


def _report_egress(rows: list[tuple[int, int, Egress, Egress]], window: float) -> None:
    print(f"\nthe home's egress (payload bytes/s, {window:.0f} s windows):")
    print("nodes  viewers  stage kB/s  home sends kB/s  serving all itself kB/s  ratio  vs 1 node")
    first = None
    for nodes, count, before, after in rows:
        packets = after.stage_packets - before.stage_packets
        stage = (after.stage_bytes - before.stage_bytes) / window
        mean = (after.stage_bytes - before.stage_bytes) / packets if packets else 0.0
        relayed = (after.relayed_packets - before.relayed_packets) * mean / window
        local = (after.viewer_bytes - before.viewer_bytes) / window
        sends = local + relayed
        alone = stage * count
        first = first or sends
        print(
            f"{nodes:>5}  {count:>7}  {stage / 1000:>10.1f}  {sends / 1000:>15.1f}  "
            f"{alone / 1000:>23.1f}  x{sends / alone:.2f}  x{sends / first:.2f}"
        )


def _report_hop(results: dict[str, list[float]]) -> None:
    plain = statistics.median(results["plain"]) * 1e6
    srtp = statistics.median(results["srtp"]) * 1e6
    print(
        "relay cost per packet per hop (1,192-byte video packet, send + receive, CPU µs, "
        f"medians of {len(results['srtp'])} batches of {BATCH}):"
    )
    print(f"  between nodes (SRTP): {srtp:.1f} µs")
    print(f"  between workers (plain RTP): {plain:.1f} µs")
    print(f"  ratio: x{srtp / plain:.2f}")


async def run(args: argparse.Namespace) -> None:
    _report_hop(await measure_hop(args.hop_seconds))
    with tempfile.TemporaryDirectory(prefix="mcu-bench-") as directory:
        await measure_nodes(args.nodes, args.viewers, args.window, args.switches, Path(directory))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4, help="nodes, 1 to 4 (default 4)")
    parser.add_argument("--viewers", type=int, default=2, help="viewers per node (default 2)")
    parser.add_argument("--window", type=float, default=5.0, help="seconds per egress window")
    parser.add_argument("--switches", type=int, default=20, help="colour switches (default 20)")
    parser.add_argument("--hop-seconds", type=float, default=4.0, help="seconds of the hop cell")
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 4:
        parser.error("--nodes is 1 to 4 (the machine has two cores)")
    ice.install(ice.IcePolicy(addresses=("127.0.0.1",)))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
