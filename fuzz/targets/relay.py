"""The relay between workers (``mcu.sfu.relay``): datagrams into a real edge and home endpoint.

A home and an edge :class:`~mcu.sfu.relay.RelayEndpoint` on loopback relay one video and one audio
stream. Fuzzed packets enter the home producer and travel the real relay (sink, socket, edge
parser, edge producer): what the edge producer hands on must be what the home producer handed
on. Fuzzed raw datagrams are also fed to both endpoints as if from the other one; the endpoint's
catch-all must never be needed, and every datagram is counted once.
"""

from __future__ import annotations

import socket

from mcu.media import CodecInfo, IncomingPacket, TrackSource
from mcu.sfu.producer import Producer
from mcu.sfu.relay import RelayEndpoint
from mcu.sfu.relaywire import parse_relay_packet

from ..harness import Crash, Input, no_swallowed_exceptions
from .rtp import _Delivered

_CODECS = (CodecInfo("video/VP8", 90000), CodecInfo("audio/opus", 48000, 2))
_SSRCS = (0x1000, 0x2000)


def _endpoint() -> RelayEndpoint:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    return RelayEndpoint(sock)


class _Relay:
    """A home and an edge endpoint relaying one video and one audio stream."""

    def __init__(self) -> None:
        self.home, self.edge = _endpoint(), _endpoint()
        self.sources: list[Producer] = []
        self.relayed: list[_Delivered] = []
        self.originals: list[_Delivered] = []
        link = self.home.link(self.edge.address)
        for codec, ssrc in zip(_CODECS, _SSRCS, strict=True):
            video = codec.kind == "video"
            kind = TrackSource.CAMERA if video else TrackSource.MICROPHONE
            source = Producer(f"s{ssrc}", "p", kind, codec, lambda: None)
            original = _Delivered()
            source.add_sink(original)
            link.forward(source, ssrc)
            edge = Producer(f"e{ssrc}", "p", kind, codec, lambda: None)
            relayed = _Delivered()
            edge.add_sink(relayed)
            self.edge.receive(self.home.address, ssrc, edge)
            self.sources.append(source)
            self.originals.append(original)
            self.relayed.append(relayed)

    def deliver(self, endpoint: RelayEndpoint, sender: RelayEndpoint) -> None:
        """Hand every datagram waiting on ``endpoint``'s socket to it, as the event loop would."""
        for _ in range(64):
            try:
                data, _ = endpoint._sock.recvfrom(65536)
            except BlockingIOError:
                return
            endpoint.datagram_received(data, sender.address)

    def close(self) -> None:
        self.home.close()
        self.edge.close()


def _same(sent: IncomingPacket, got: IncomingPacket) -> bool:
    return (
        sent.ext_sequence & 0xFFFF == got.ext_sequence & 0xFFFF
        and sent.timestamp == got.timestamp
        and sent.marker == got.marker
        and sent.payload == got.payload
        and sent.audio_level == got.audio_level
    )


def relay(data: bytes) -> None:
    """Packets over the relay, and raw datagrams into either end."""
    source = Input(data)
    pair = _Relay()
    try:
        with no_swallowed_exceptions():
            for _ in range(32):
                if not source.left:
                    break
                kind = source.byte()
                if kind & 3 == 0:  # a packet sent over the relay
                    stream = (kind >> 2) & 1
                    level = source.byte()
                    sequence, timestamp = source.uint(2), source.uint(4)
                    payload = source.take(source.byte())
                    sent, got = pair.originals[stream].packets, pair.relayed[stream].packets
                    counts = len(sent), len(got)
                    pair.sources[stream].on_rtp(
                        sequence, timestamp, bool(kind & 8), payload,
                        level & 0x7F if level & 0x80 else None, 1.0,
                    )  # fmt: skip
                    pair.deliver(pair.edge, pair.home)
                    delivered = len(sent) - counts[0], len(got) - counts[1]
                    if delivered != (1, 1) or not _same(sent[-1], got[-1]):
                        raise Crash("the edge producer got another packet than the home sent")
                else:  # a raw datagram into the edge (from the home) or the home (from the edge)
                    datagram = source.take(source.uint(2) % 2048)
                    to_edge = bool(kind & 1)
                    endpoint, sender = (pair.edge, pair.home) if to_edge else (pair.home, pair.edge)
                    before = endpoint.datagrams_received
                    endpoint.datagram_received(datagram, sender.address)
                    if endpoint.datagrams_received != before + 1:
                        raise Crash("a datagram was not counted")
                    pair.deliver(pair.home, pair.edge)  # PLIs the edge's producers asked for
                    try:
                        parse_relay_packet(datagram)
                    except ValueError:
                        pass
    finally:
        pair.close()
