"""The relay: a room's stage carried as RTP from its home worker (or an edge) to other workers.

A lecture's viewers may be served by any worker of any node; the room's publishers are connected
to one, its home. The home sends every stage stream to each worker that serves viewers of the
room (an *edge*) over UDP, plain between workers of one node, SRTP to another node. Per stream,
on one socket per worker (pure parsing and building: :mod:`mcu.sfu.relaywire`):

- home → edge, RTP: SSRC = the stream's relay SSRC (unique on the home), sequence = the producer's
  extended sequence number & 0xFFFF, timestamp, marker and payload as the publisher sent them,
  payload type 96 (video) or 111 (audio); an audio level as one RFC 8285 one-byte extension
  block (``0xBEDE``) holding id 1 = the level (V bit 0).
- home → edge, RTCP SR (PT 200) whenever the producer gets a sender report, so edges keep A/V sync.
- edge → home, RTCP PLI (PT 206, FMT 1, media SSRC = relay SSRC) when the edge producer wants a
  keyframe; the home asks its producer, which coalesces requests from every edge and consumer.
- between nodes only: edge → home RTCP NACK (PT 205, FMT 1) for lost packets, home → edge RTX
  (RFC 4588, PT 97) on the stream's RTX SSRC (:mod:`mcu.sfu.relayrepair`). Loopback between
  workers does not lose packets short of a full buffer, which a keyframe request repairs.

On the home, :meth:`RelayLink.forward` adds a :class:`RelaySink` to a producer. On the edge,
:meth:`RelayEndpoint.receive` feeds a :class:`~mcu.sfu.producer.Producer` the caller made from the
stream's description (:mod:`mcu.sfu.relaywire`'s ``stream_description``; the message is
:class:`mcu.contracts.cluster.StreamDescription`), so everything downstream of it (consumers, WHEP
sessions, further relays) works as it does for a local publisher.

Between nodes every packet is SRTP/SRTCP (AES-256-GCM, :mod:`mcu.crypto.relaysrtp`) under keys
both ends derive from the cluster secret (:mod:`mcu.sfu.relaykeying`): a link or a source with a
``cipher`` protects what it sends and drops, counted, whatever fails authentication. An edge
measures how late it reads its relay socket (:mod:`mcu.sfu.lateness`) and its producers shed load
from it exactly as a home's do from a publisher's socket.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import time
from typing import Any, cast

from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
)

from mcu.crypto.relaysrtp import RelayCipher
from mcu.media import IncomingPacket
from mcu.sfu.lateness import INGRESS, LatenessProbe
from mcu.sfu.producer import Producer
from mcu.sfu.relayrepair import RTX_SSRC_BIT, RelayNacks, RelayResender, unwrap_rtx
from mcu.sfu.relaywire import (
    AUDIO_LEVEL_ID,
    parse_relay_packet,
    picture_loss_indication,
    sender_report,
)
from mcu.sfu.rewrite import WAITING, SequenceRewriter
from mcu.sfu.rtp import (
    extension_block_header,
    pack_fixed_header,
    shared_extension_elements,
)

logger = logging.getLogger(__name__)

Address = tuple[str, int]
"An IPv4 address and UDP port, the host spelled numerically (as the socket reports senders)."

VIDEO_PAYLOAD_TYPE = 96
AUDIO_PAYLOAD_TYPE = 111

# A lecture's keyframes and a whole stage's frames arrive in bursts of dozens of packets per
# stream; the kernel's default buffer (~200 KiB) overflows under a handful of streams.
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024

# Every header extension block the relay can send: the audio level is 7 bits.
_LEVEL_BLOCKS = tuple(
    b"".join(
        (
            extension_block_header(2)[0],
            shared_extension_elements(0, AUDIO_LEVEL_ID, 0, level),
            extension_block_header(2)[1],
        )
    )
    for level in range(128)
)


def _no_keyframe_request() -> None:
    """What an edge producer asks once its relay stream is stopped: nobody."""


# -- stream descriptions and SSRCs ----------------------------------------------------------------


class SsrcAllocator:
    """Relay SSRCs unique within one process: consecutive from a random start, never 0.

    The random start keeps a restarted home from reusing the SSRCs an edge may still expect from
    the process it replaced.
    """

    __slots__ = ("_next",)

    def __init__(self, start: int | None = None) -> None:
        self._next = random.randrange(1, 1 << 32) if start is None else start

    def __call__(self) -> int:
        """The next unused SSRC."""
        ssrc = self._next
        self._next = (ssrc + 1) & 0xFFFFFFFF or 1
        return ssrc


assign_ssrc = SsrcAllocator()
"The process's allocator: ``assign_ssrc()`` returns a relay SSRC no other stream here has."


def _address(remote: tuple[str, int]) -> Address:
    """``remote`` spelled as the socket reports a sender, so lookups match."""
    host, port = remote
    ip = ipaddress.ip_address(host)
    if ip.version != 4:
        raise ValueError(f"relay addresses are IPv4: {host}")
    return str(ip), int(port)


# -- home side ------------------------------------------------------------------------------------


class RelaySink:
    """Sends one producer's packets and sender reports to one edge as relay stream ``ssrc``."""

    __slots__ = (
        "_link",
        "_payload_type",
        "_remote",
        "_rewriter",
        "_sendto",
        "_video",
        "bytes_sent",
        "packets_dropped",
        "packets_sent",
        "producer",
        "ssrc",
    )

    def __init__(
        self, link: RelayLink, producer: Producer, ssrc: int, first_sequence: int | None = None
    ) -> None:
        self.producer = producer
        self.ssrc = ssrc
        self.packets_sent = 0
        self.bytes_sent = 0
        "Payload octets sent (the sender report's octet count)."
        self.packets_dropped = 0
        self._link = link
        self._sendto = link.endpoint._sendto
        self._remote = link.remote
        self._video = producer.kind == "video"
        self._payload_type = VIDEO_PAYLOAD_TYPE if self._video else AUDIO_PAYLOAD_TYPE
        # Relay sequence = extended sequence + offset; the offset stays 0 (the numbering the
        # wire format names) until a resync bridges a pause. Timestamps pass unchanged; packets
        # numbered before the first start are still sent, those from before a restart are not.
        # A stream the link sent before continues its numbers (``first_sequence``): SRTP keeps
        # one packet index per SSRC and key, and refuses to go back.
        self._rewriter = SequenceRewriter(
            first_sequence, restart_at_keyframe=self._video, keep_late=True
        )

    def on_packet(self, packet: IncomingPacket) -> None:
        """Send one packet; a full socket buffer drops it (counted), nothing raises."""
        sequence = self._rewriter.forward(packet)
        if sequence < 0:  # WAITING, or LATE (from before a restart); there is no jump limit
            if sequence == WAITING:
                # After a break the edge gets a clean start, as a consumer's subscriber does.
                self.producer.request_keyframe(packet.arrival)
            return
        payload = packet.payload
        level = packet.audio_level
        header = pack_fixed_header(
            self._payload_type,
            packet.marker,
            sequence,
            packet.timestamp,
            self.ssrc,
            level is not None,
        )
        if level is None:
            data = header + payload
        else:
            data = header + _LEVEL_BLOCKS[level & 0x7F] + payload
        cipher = self._link.cipher
        if cipher is not None:
            protected = cipher.protect(data)
            if protected is None:  # too long for SRTP, or a packet index sent before
                self.packets_dropped += 1
                return
            data = protected
        try:
            self._sendto(data, self._remote)
        except OSError:  # BlockingIOError: the socket buffer is full; a PLI will repair
            self.packets_dropped += 1
            return
        self.packets_sent += 1
        self.bytes_sent += len(payload)

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        """Pass the publisher's clock mapping on as an RTCP sender report."""
        report = sender_report(self.ssrc, ntp_time, rtp_time, self.packets_sent, self.bytes_sent)
        cipher = self._link.cipher
        data = report if cipher is None else cipher.protect(report)
        if data is None:
            self.packets_dropped += 1
            return
        try:
            self._sendto(data, self._remote)
        except OSError:
            self.packets_dropped += 1

    def resync(self) -> None:
        """After a pause, continue the relay's numbering from the last packet sent.

        The publisher's numbering ran on meanwhile; a jump of half the sequence space or more
        would look like old packets to the edge. Video waits for the next keyframe.
        """
        self._rewriter.resync()

    def close(self) -> None:
        """The producer ended: the link forgets this stream."""
        self._link._forget(self)

    def next_sequence(self) -> int | None:
        """The relay sequence number after the last one sent (None before the first)."""
        if self.packets_sent == 0:
            return None
        rewriter = self._rewriter
        return (rewriter.last_ext + rewriter.sequence_offset + 1) & 0xFFFF


class RelayLink:
    """The streams one home sends to one edge."""

    def __init__(self, endpoint: RelayEndpoint, remote: Address) -> None:
        self.endpoint = endpoint
        self.remote = remote
        self.keyframe_requests_received = 0
        self.cipher: RelayCipher | None = None
        "SRTP for this link (a relay to another node), or None: plain RTP."
        self.resender = RelayResender()
        "What the edge NACKs is resent from here (:mod:`mcu.sfu.relayrepair`)."
        self._sinks: dict[int, RelaySink] = {}
        self._next_sequences: dict[int, int] = {}
        self._retired_sent = 0
        self._retired_dropped = 0

    @property
    def packets_sent(self) -> int:
        """RTP packets this link sent, over every stream it ever had."""
        return self._retired_sent + sum(sink.packets_sent for sink in self._sinks.values())

    @property
    def packets_dropped(self) -> int:
        """RTP and RTCP packets this link dropped because the socket could not take them."""
        return self._retired_dropped + sum(sink.packets_dropped for sink in self._sinks.values())

    @property
    def ssrcs(self) -> list[int]:
        """The relay SSRCs being forwarded."""
        return list(self._sinks)

    def forward(self, producer: Producer, ssrc: int) -> RelaySink:
        """Send ``producer``'s packets to the edge as relay stream ``ssrc`` (replacing another)."""
        self.stop(ssrc)
        sink = RelaySink(self, producer, ssrc, self._next_sequences.get(ssrc))
        self._sinks[ssrc] = sink
        producer.add_sink(sink)  # passes on a known sender report at once
        return sink

    def stop(self, ssrc: int) -> None:
        """Stop sending relay stream ``ssrc``."""
        sink = self._sinks.get(ssrc)
        if sink is not None:
            sink.producer.remove_sink(sink)
            self._forget(sink)

    def close(self) -> None:
        """Stop every stream and leave the endpoint."""
        for ssrc in list(self._sinks):
            self.stop(ssrc)
        self.endpoint._links.pop(self.remote, None)

    def _forget(self, sink: RelaySink) -> None:
        if self._sinks.get(sink.ssrc) is sink:
            del self._sinks[sink.ssrc]
            self.resender.forget(sink.ssrc)
            following = sink.next_sequence()
            if following is not None:
                self._next_sequences[sink.ssrc] = following
            self._retired_sent += sink.packets_sent
            self._retired_dropped += sink.packets_dropped

    def _nack(self, ssrc: int, sequences: list[int], now: float) -> bool:
        """The edge lost packets of stream ``ssrc``: resend what can still help."""
        sink = self._sinks.get(ssrc)
        if sink is None:
            return False
        cipher = self.cipher
        for packet in self.resender.answer(sink, sequences, now):
            data = packet if cipher is None else cipher.protect(packet)
            if data is None:
                continue
            try:
                self.endpoint._sendto(data, self.remote)
            except OSError:  # the socket buffer is full: the edge asks again
                break
        return True

    def _keyframe_request(self, ssrc: int, now: float) -> bool:
        """The edge lost a picture of stream ``ssrc``; False if no such stream is forwarded."""
        sink = self._sinks.get(ssrc)
        if sink is None:
            return False
        self.keyframe_requests_received += 1
        sink.producer.request_keyframe(now)
        return True


# -- the socket -----------------------------------------------------------------------------------


class RelayEndpoint(asyncio.DatagramProtocol):
    """A worker's relay socket: sends its home rooms' streams, receives the rooms it relays."""

    def __init__(self, sock: socket.socket) -> None:
        # Sends go straight to the non-blocking socket: when the kernel buffer is full the packet
        # is dropped, rather than queued in user space where a lecture's delay would grow.
        self._sock = sock
        self._sendto = sock.sendto
        self.address: Address = sock.getsockname()[:2]
        "Where edges and homes reach this endpoint."
        self.receive_buffer_bytes = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        "The socket's receive buffer as the kernel reports it (Linux doubles what it grants)."
        self.send_buffer_bytes = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        "The socket's send buffer as the kernel reports it."
        self.datagrams_received = 0
        self.datagrams_unknown = 0
        "Datagrams from an address or for an SSRC nothing here expects."
        self.datagrams_malformed = 0
        "Datagrams that are neither RTP nor RTCP."
        self._transport: asyncio.DatagramTransport | None = None
        self._fd = sock.fileno()
        self._lateness = LatenessProbe()  # an edge sheds load as a home does (mcu.sfu.shedding)
        self._links: dict[Address, RelayLink] = {}
        self._receivers: dict[Address, dict[int, Producer]] = {}
        self.nacks = RelayNacks()
        "Packets missing from what homes on other nodes send here, to NACK."
        self.sources: dict[Address, RelayCipher] = {}
        """SRTP for what homes on other nodes send here, by their address. Kept while the socket
        lives: a key is never used again from a fresh packet index (mcu.sfu.relaykeying)."""
        self._closed = False

    @classmethod
    async def open(
        cls, host: str = "127.0.0.1", port: int = 0, *, buffer_bytes: int = SOCKET_BUFFER_BYTES
    ) -> RelayEndpoint:
        """Bind the relay socket (port 0: any free port) with buffers as large as allowed."""
        address = _address((host, port))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            _grow_buffer(sock, socket.SO_RCVBUF, "SO_RCVBUFFORCE", buffer_bytes)
            _grow_buffer(sock, socket.SO_SNDBUF, "SO_SNDBUFFORCE", buffer_bytes)
            sock.bind(address)
            endpoint = cls(sock)
            loop = asyncio.get_running_loop()
            await loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
        except BaseException:
            sock.close()
            raise
        if endpoint.receive_buffer_bytes < buffer_bytes:
            logger.warning(
                "relay receive buffer is %d bytes, not %d: raise net.core.rmem_max",
                endpoint.receive_buffer_bytes,
                buffer_bytes,
            )
        return endpoint

    # -- home side

    def link(self, remote: tuple[str, int]) -> RelayLink:
        """The link to the edge at ``remote`` (made on first use)."""
        self._check_open()
        address = _address(remote)
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = RelayLink(self, address)
        return link

    # -- edge side

    def receive(self, remote: tuple[str, int], ssrc: int, producer: Producer) -> None:
        """Feed ``producer`` with relay stream ``ssrc`` from the home at ``remote``.

        The producer's keyframe requests become PLIs to the home.
        """
        self._check_open()
        address = _address(remote)
        self._receivers.setdefault(address, {})[ssrc] = producer
        pli = picture_loss_indication(ssrc)
        sendto = self._sendto
        sources = self.sources

        def send_pli() -> None:
            cipher = sources.get(address)
            data = pli if cipher is None else cipher.protect(pli)
            if data is None:
                return
            try:
                sendto(data, address)
            except OSError:
                logger.debug("relay PLI for %d to %s dropped", ssrc, address)

        producer.send_keyframe_request = send_pli

    def stop_receiving(self, remote: tuple[str, int], ssrc: int) -> None:
        """Stop feeding the producer of relay stream ``ssrc`` from ``remote``."""
        address = _address(remote)
        streams = self._receivers.get(address)
        if streams is None:
            return
        producer = streams.pop(ssrc, None)
        self.nacks.forget(address, ssrc)
        if producer is not None:
            producer.send_keyframe_request = _no_keyframe_request
        if not streams:
            del self._receivers[address]

    def close(self) -> None:
        """Stop every link and stream and close the socket."""
        if self._closed:
            return
        self._closed = True
        for link in list(self._links.values()):
            link.close()
        for address, streams in list(self._receivers.items()):
            for ssrc in list(streams):
                self.stop_receiving(address, ssrc)
        INGRESS.discard(self._lateness.estimate)
        if self._transport is not None:
            self._transport.close()
        else:
            self._sock.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the relay endpoint is closed")

    # -- asyncio.DatagramProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The event loop took the socket."""
        # uvloop's UDP transport is not an asyncio.DatagramTransport subclass, but behaves as one.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Route one datagram: RTP to its edge producer, SR to it too, PLI to a home producer."""
        self.datagrams_received += 1
        if len(data) < 8 or data[0] >> 6 != 2:
            self.datagrams_malformed += 1
            return
        try:
            if 192 <= data[1] <= 223:  # RFC 5761: RTCP types never collide with 96 or 111
                # A PLI or NACK comes from an edge of ours (a link), a sender report from a home.
                link = self._links.get(addr) if data[1] in (205, 206) else None
                cipher = self.sources.get(addr) if link is None else link.cipher
                if cipher is not None:
                    rtcp = cipher.unprotect(data)
                    if rtcp is None:  # rejected and counted by the cipher
                        return
                    data = rtcp
                self._on_rtcp(data, addr)
                return
            source = self.sources.get(addr)
            if source is not None:
                rtp = source.unprotect(data)
                if rtp is None:
                    return
                data = rtp
            streams = self._receivers.get(addr)
            if streams is None:
                self.datagrams_unknown += 1
                return
            try:
                ssrc, sequence, timestamp, marker, payload, level = parse_relay_packet(data)
            except ValueError:
                self.datagrams_malformed += 1
                return
            producer = streams.get(ssrc)
            now = time.monotonic()
            if source is not None:  # from another node: repaired (mcu.sfu.relayrepair)
                if producer is None and (ssrc ^ RTX_SSRC_BIT) in streams:
                    original = unwrap_rtx(payload)
                    if original is None:
                        self.datagrams_malformed += 1
                        return
                    ssrc ^= RTX_SSRC_BIT
                    producer = streams[ssrc]
                    sequence, payload = original
                if producer is not None:
                    self._nack(addr, ssrc, sequence, now, source)
            if producer is None:
                self.datagrams_unknown += 1
                return
            lateness = self._lateness.sample(self._fd, now)
            producer.on_rtp(sequence, timestamp, marker, payload, level, now, lateness)
        except Exception:  # a datagram must never take the socket down
            self.datagrams_malformed += 1
            logger.exception("relay datagram from %s failed", addr)

    def _nack(
        self, addr: Address, ssrc: int, sequence: int, now: float, cipher: RelayCipher
    ) -> None:
        nack = self.nacks.on_packet(addr, ssrc, sequence, now)
        data = None if nack is None else cipher.protect(nack)
        if data is not None:
            try:
                self._sendto(data, addr)
            except OSError:
                logger.debug("relay NACK for %d to %s dropped", ssrc, addr)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for an earlier send (an edge that went away): nothing to do."""
        logger.debug("relay socket error: %s", exc)

    def _on_rtcp(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            packets = RtcpPacket.parse(data)
        except Exception:  # aiortc's parsers raise ValueError and struct.error on garbage
            self.datagrams_malformed += 1
            return
        for packet in packets:
            if isinstance(packet, RtcpSrPacket):
                producer = self._receivers.get(addr, {}).get(packet.ssrc)
                if producer is None:
                    self.datagrams_unknown += 1
                    continue
                info = packet.sender_info
                producer.on_sender_report(info.ntp_timestamp, info.rtp_timestamp)
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
                link = self._links.get(addr)
                if link is None or not link._keyframe_request(packet.media_ssrc, time.monotonic()):
                    self.datagrams_unknown += 1
            elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                link = self._links.get(addr)
                now = time.monotonic()
                if link is None or not link._nack(packet.media_ssrc, packet.lost, now):
                    self.datagrams_unknown += 1


def _grow_buffer(sock: socket.socket, option: int, force_option: str, size: int) -> None:
    """Set a socket buffer to ``size``, beyond the sysctl limit when the process may."""
    force = getattr(socket, force_option, None)
    if force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
            return
        except OSError:
            pass  # needs CAP_NET_ADMIN; the plain option is capped at net.core.[rw]mem_max
    sock.setsockopt(socket.SOL_SOCKET, option, size)
