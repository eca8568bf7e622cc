"""A consumer: one producer's packets, rewritten for one subscriber's leg.

Per packet the consumer does only what differs between subscribers: a new SSRC, sequence number,
timestamp and payload type, the header extensions with this leg's ids, then protect and send. The
mapping from incoming to outgoing sequence numbers is a fixed offset chosen when the consumer
starts (:class:`~mcu.sfu.rewrite.SequenceRewriter`), so retransmissions and NACKs map back without
per-packet bookkeeping.

A consumer may also :meth:`~Consumer.follow` another producer on the same leg (a WHEP viewer's
media section following the stage): the subscriber sees one continuous stream whose numbering and
timing run on across the switch, its payload type switched to the new producer's codec when the
leg negotiated several. Attaching the consumer to a producer's sinks is the caller's job;
the consumer only changes what it forwards and whom it asks for keyframes and repairs.
"""

from __future__ import annotations

import itertools
import logging
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from mcu.codecs.red import red_with_payload_type
from mcu.infra.metrics import FORWARDING_SAMPLER, new_metrics_id
from mcu.media import IncomingPacket, KeyframeSource
from mcu.sfu.estimate import DownlinkEstimate
from mcu.sfu.history import PacketHistory
from mcu.sfu.layers import LayerFilter
from mcu.sfu.producer import Producer
from mcu.sfu.repair import RepairBudget
from mcu.sfu.rewrite import RESTART, WAITING, SequenceRewriter
from mcu.sfu.rtp import (
    EXTENSION_BIT,
    RTP_VERSION_BITS,
    abs_send_time,
    extension_block_header,
    mid_element,
    pack_fixed_header,
    rtx_payload,
    shared_extension_elements,
)

logger = logging.getLogger(__name__)

MAX_PROFILES: Final = 1024
_PROFILES: Final[dict[tuple[int, int, bytes], int]] = {}
"The leg profiles (abs-send-time id, audio-level id, mid element) seen lately, by number."
_PROFILE_NUMBERS: Final = itertools.count()


def profile_number(abs_send_time_id: int, audio_level_id: int, mid_element: bytes) -> int:
    """The number consumers with this header-extension profile share their blocks under. Never
    reused: past :data:`MAX_PROFILES` the oldest profile is forgotten (the WHEP players choose
    their mids), and when it comes back it gets a new number, so two profiles never share one."""
    profile = (abs_send_time_id, audio_level_id, mid_element)
    number = _PROFILES.get(profile)
    if number is None:
        if len(_PROFILES) >= MAX_PROFILES:
            del _PROFILES[next(iter(_PROFILES))]
        number = _PROFILES[profile] = next(_PROFILE_NUMBERS)
    return number


# The fixed RTP header, packed inline on the hot path (pack_fixed_header elsewhere).
_pack_header: Final = struct.Struct("!BBHII").pack

# While a video consumer waits for its first keyframe it asks again this often (the producer
# coalesces requests from all consumers).
KEYFRAME_RETRY_INTERVAL: Final = 1.0
# A jump this large in the publisher's numbering (a long outage) is bridged by renumbering rather
# than passed on: SRTP refuses indexes more than 2^15 behind, and receivers would NACK the gap.
MAX_SEQUENCE_JUMP: Final = 3000
# RTP padding (RFC 3550 5.1) that fills the number of a packet left out after its neighbours
# went: the last octet counts the padding octets. Receivers take a payload-less packet as filler
# (Chromium's packet buffer marks the number as received) instead of asking for it.
_PADDING: Final = b"\x00\x00\x00\x04"


class Transmitter(Protocol):
    """Protects and sends one RTP packet on a subscriber's transport."""

    def send(self, header: bytes, payload: bytes | bytearray = b"") -> bool:
        """Send the RTP packet ``header + payload`` (given apart, so the transmitter can write
        them straight into its buffer); False when the transport is not ready or the packet was
        dropped."""

    def ready(self) -> bool:
        """Whether the transport can send (DTLS done, a candidate pair chosen)."""


@dataclass(frozen=True, slots=True)
class ConsumerLeg:
    """What the subscriber's connection negotiated for this consumer's media section."""

    payload_type: int
    "Payload type of the codec on this leg."
    ssrc: int
    "SSRC announced in the subscriber's SDP."
    mid: str
    "The media section's mid."
    rtx_payload_type: int | None = None
    "RTX payload type when the subscriber negotiated RTX for the codec."
    rtx_ssrc: int = 0
    "SSRC of the RTX stream."
    mid_id: int = 0
    "Header-extension id of sdes:mid on this leg (0: not negotiated)."
    abs_send_time_id: int = 0
    "Header-extension id of abs-send-time on this leg (0: not negotiated)."
    audio_level_id: int = 0
    "Header-extension id of ssrc-audio-level on this leg (0: not negotiated)."
    red_payload_type: int | None = None
    "Payload type of RED (RFC 2198) for the leg's Opus when the subscriber negotiated it."


@dataclass(frozen=True, slots=True)
class PayloadTypes:
    """The payload types one codec was negotiated with on a leg."""

    primary: int
    "Payload type of the codec's media packets."
    rtx: int | None = None
    "Payload type of its retransmissions (RFC 4588), None when RTX was not negotiated for it."


SenderReportSink = Callable[[int, int, int, int], None]
"Receives (ntp_time, rtp_time, packet_count, octet_count) for this leg's RTCP sender reports."


class Consumer:
    """Forwards one producer to one subscriber.

    ``history`` and ``keyframes`` are the producer's packet history (answers NACKs) and the source
    of keyframes (usually the producer itself). A consumer made without them repairs nothing and
    asks nobody for keyframes until :meth:`follow` gives it a producer.
    """

    def __init__(
        self,
        leg: ConsumerLeg,
        transmitter: Transmitter,
        history: PacketHistory | None = None,
        keyframes: KeyframeSource | None = None,
        *,
        video: bool,
        sender_report_sink: SenderReportSink | None = None,
    ) -> None:
        self.leg = leg
        self.metrics_id = new_metrics_id()
        "Tells this consumer apart in the metrics' sums (mcu.infra.metrics.CounterSweep)."
        self.packets_sent = 0
        self.bytes_sent = 0
        self.packets_dropped = 0
        self.stalls = 0
        "Times a video consumer stopped after a refused send, to restart at a keyframe."
        self.packets_skipped = 0
        "Video packets not sent while waiting for a keyframe (joining, following, after a stall)."
        self.retransmissions = 0
        self.nacks_received = 0
        self.keyframe_requests_received = 0
        self.remb_bitrate: int | None = None
        self.repair = RepairBudget()
        "Which NACKed packets are resent (and counts of those that were not)."
        self.packets_thinned = 0
        "Packets not sent because the subscriber's link gets fewer layers or this stream paused."
        self.layers: LayerFilter | None = None
        "Temporal layers and pause chosen for a thin link (None: everything, at no cost)."
        self.estimate: DownlinkEstimate | None = None
        "The subscribe connection's downlink estimate, fed with this leg's REMB and loss."
        self._transmitter = transmitter
        self._history = history
        self._keyframes = keyframes
        self._video = video
        self._sender_report_sink = sender_report_sink
        self._closed = False
        self._rewriter = SequenceRewriter(
            random.randrange(0x8000),  # low half: SRTP rollover guard
            random.randrange(1 << 32),
            start_at_keyframe=video,
            restart_at_keyframe=video,
            max_jump=MAX_SEQUENCE_JUMP,
        )
        self._rtx_sequence = random.randrange(0x8000)
        self._last_keyframe_ask = float("-inf")
        self._keyframe_timestamp: int | None = None  # RTP timestamp of the last keyframe sent
        self._payload_type = leg.payload_type
        self._rtx_payload_type = leg.rtx_payload_type
        self._ssrc = leg.ssrc
        self._mid_element = mid_element(leg.mid_id, leg.mid)
        # The profile's number is the packet's cache key: an int hashes for free, where the
        # profile tuple itself was hashed again at every lookup (a percent of the server's CPU).
        self._profile = profile_number(leg.abs_send_time_id, leg.audio_level_id, self._mid_element)
        self._has_extensions = bool(leg.mid_id or leg.abs_send_time_id or leg.audio_level_id)
        self._first_byte = RTP_VERSION_BITS | (EXTENSION_BIT if self._has_extensions else 0)

    # -- forwarding (hot path) -------------------------------------------------------------

    def on_packet(self, packet: IncomingPacket) -> None:
        """Rewrite and send one packet of the producer."""
        if self._closed:
            return
        if self.layers is not None:  # one test: a subscriber never thinned pays nothing more
            self._forward_thinned(packet)
            return
        rewriter = self._rewriter
        # Start only once packets can leave, so the first one sent is the keyframe.
        if not rewriter.started and not self._transmitter.ready():
            return
        # What follows is _forward inlined: one call less per packet on the common path.
        sequence = rewriter.forward(packet)
        if sequence < 0:
            if sequence == WAITING:
                self.packets_skipped += 1
                self._ask_keyframe(packet.arrival)
            elif sequence == RESTART:  # a long outage: start again, as with a first packet
                self.on_packet(packet)
            return  # or LATE: from before this consumer's first keyframe
        if packet.keyframe:
            self._keyframe_timestamp = packet.timestamp
        # What _header does, inlined: one call less per packet on the common path.
        block = b""
        if self._has_extensions:
            block = packet.ext_cache.get(self._profile) or self._extension_block(packet)
        header = _pack_header(
            self._first_byte,
            (packet.marker << 7) | self._payload_type,
            sequence,
            (packet.timestamp + rewriter.timestamp_offset) & 0xFFFFFFFF,
            self._ssrc,
        ) + block  # fmt: skip
        if self._transmitter.send(header, packet.payload):
            self.packets_sent += 1
            self.bytes_sent += len(packet.payload)
            if not self.packets_sent & 63:  # arrival -> send latency, one packet in 64
                FORWARDING_SAMPLER.observe(packet.arrival)
        else:
            self._refused(packet)

    def _forward_thinned(self, packet: IncomingPacket) -> None:
        # The same as on_packet, through the layer filter (mcu.sfu.layers).
        rewriter = self._rewriter
        if not rewriter.started and not self._transmitter.ready():
            return
        layers = self.layers
        assert layers is not None
        if layers.paused:
            self.packets_thinned += 1
            return  # halted when paused (resync): resumes at a keyframe, without a gap
        if not layers.admits(packet):
            self.packets_thinned += 1
            slot = rewriter.drop(packet)
            if slot >= 0:
                self._send_padding(slot, packet)
            return
        self._forward(packet, layers.payload(packet), self._payload_type)

    def _forward(
        self, packet: IncomingPacket, payload: bytes | bytearray, payload_type: int
    ) -> None:
        rewriter = self._rewriter
        sequence = rewriter.forward(packet)
        if sequence < 0:
            if sequence == WAITING:
                self.packets_skipped += 1
                self._ask_keyframe(packet.arrival)
            elif sequence == RESTART:  # a long outage: start again, as with a first packet
                self.on_packet(packet)
            return  # or LATE: from before this consumer's first keyframe
        if packet.keyframe:
            self._keyframe_timestamp = packet.timestamp
        header = self._header(
            payload_type,
            packet.marker,
            sequence,
            (packet.timestamp + rewriter.timestamp_offset) & 0xFFFFFFFF,
            self._ssrc,
            packet,
        )
        if self._transmitter.send(header, payload):
            self.packets_sent += 1
            self.bytes_sent += len(packet.payload)
            if not self.packets_sent & 63:
                FORWARDING_SAMPLER.observe(packet.arrival)
        else:
            self._refused(packet)

    def _refused(self, packet: IncomingPacket) -> None:
        self.packets_dropped += 1
        if self._video and packet.timestamp != self._keyframe_timestamp:
            self._stall(packet)
        # A packet of the keyframe being sent keeps its number: the subscriber NACKs it and
        # the history repairs it once the buffer drains. Halting here would wait for the
        # next keyframe, the same burst, refused again: video would never come back.

    def _send_padding(self, sequence: int, packet: IncomingPacket) -> None:
        timestamp = (packet.timestamp + self._rewriter.timestamp_offset) & 0xFFFFFFFF
        header = self._header(self._payload_type, False, sequence, timestamp, self._ssrc, packet)
        self._transmitter.send(bytes((header[0] | 0x20,)) + header[1:], _PADDING)

    def limit_layers(self, highest_temporal_id: int) -> None:
        """Forward temporal layers up to ``highest_temporal_id`` only (from the next switch
        point, :mod:`mcu.sfu.layers`); a stream without layers is unaffected."""
        if self.layers is None:
            self.layers = LayerFilter()
        self.layers.set_target(highest_temporal_id)

    def set_paused(self, paused: bool) -> None:
        """Stop forwarding this stream for now (the subscriber's link is too thin for it), or
        start again at the next keyframe, numbered on without a gap."""
        if self.layers is None:
            if not paused:
                return
            self.layers = LayerFilter()
        if paused and not self.layers.paused:
            self._rewriter.resync()
        elif not paused and self.layers.paused and self._video:
            self._last_keyframe_ask = float("-inf")  # ask at the first packet
        self.layers.paused = paused

    def _stall(self, packet: IncomingPacket) -> None:
        # The subscriber's transport is backed up inside a delta frame. Sending the rest of a
        # frame whose packets were dropped only makes it NACK and wait; stop, and restart cleanly
        # at the next keyframe with numbering that follows the last packet that really left (so
        # it sees no gap). Delta frames are what we give up; keyframes are kept whole.
        self.stalls += 1
        self._rewriter.withdraw(packet.ext_sequence)
        self._ask_keyframe(packet.arrival)

    def resync(self) -> None:
        """Continue numbering after a break: the next packet sent (a keyframe for video) follows
        the last one sent, and nothing from before the break is repaired any more."""
        self._rewriter.resync()

    def follow(
        self,
        producer: Producer | None,
        now: float | None = None,
        payload: PayloadTypes | None = None,
    ) -> None:
        """Forward ``producer`` from now on instead (``None``: forward nothing, stay open).

        ``payload``: the payload types of the new producer's codec on this leg, when the leg
        negotiated several codecs and the new producer's differs (a WHEP section following a VP8
        publisher, then an H.264 one); the subscriber's decoder switches with the payload type.

        The subscriber sees one stream: the same SSRC, sequence numbers continuing from the last
        one sent, timestamps continuing from the last one sent advanced by the wall-clock time
        since (in the new producer's clock rate). NACKs are answered from the new producer's
        history only, keyframe requests go to it, and video restarts at its next keyframe. With
        ``now`` a video consumer asks for that keyframe at once rather than on the first packet.

        The caller moves the consumer between the producers' sinks (``remove_sink`` on the old
        one before, ``add_sink`` on the new one after); packets still arriving from the old
        producer would be taken for the new one's.
        """
        self.resync()
        if payload is not None:
            # Safe at this point: nothing is sent again before the new producer's first packet
            # (a keyframe for video), and nothing of the old one is retransmitted any more.
            self._payload_type = payload.primary
            self._rtx_payload_type = payload.rtx
        self._history = producer.history if producer is not None else None
        self._keyframes = producer
        if producer is not None:
            self._rewriter.rebase(producer.codec.clock_rate)
        self._last_keyframe_ask = float("-inf")
        if now is not None and producer is not None and self._video and not self._closed:
            self._ask_keyframe(now)

    def _header(
        self,
        payload_type: int,
        marker: bool,
        sequence: int,
        timestamp: int,
        ssrc: int,
        packet: IncomingPacket,
    ) -> bytes:
        """The RTP header (with this leg's extensions) to send ``packet``'s payload under."""
        if not self._has_extensions:
            return pack_fixed_header(payload_type, marker, sequence, timestamp, ssrc, False)
        block = packet.ext_cache.get(self._profile)
        if block is None:
            block = self._extension_block(packet)
        return pack_fixed_header(payload_type, marker, sequence, timestamp, ssrc, True) + block

    def _extension_block(self, packet: IncomingPacket) -> bytes:
        # Built once per packet for all the consumers with this leg profile.
        elements = (
            shared_extension_elements(
                self.leg.abs_send_time_id,
                self.leg.audio_level_id,
                abs_send_time(packet.arrival),
                packet.audio_level,
            )
            + self._mid_element
        )
        head, pad = extension_block_header(len(elements))
        block = packet.ext_cache[self._profile] = head + elements + pad
        return block

    # -- feedback from the subscriber ------------------------------------------------------

    def on_nack(self, sequences: list[int], now: float) -> int:
        """Resend the packets a subscriber reported lost that can still help, within its repair
        budget (:mod:`mcu.sfu.repair`); returns how many were resent."""
        self.nacks_received += 1
        history = self._history
        rewriter = self._rewriter
        if not rewriter.started or self._closed or history is None:
            return 0
        budget = self.repair
        budget.earn(self.bytes_sent)
        resent = 0
        highest = history.highest
        leg = self.leg
        rtx_payload_type = self._rtx_payload_type
        seq_offset, ts_offset = rewriter.sequence_offset, rewriter.timestamp_offset
        for seq in sequences:
            ext = rewriter.incoming(seq, highest)
            if ext is None:
                continue
            packet = history.get(ext)
            if packet is None:
                continue
            if budget.check(ext, len(packet.payload), packet.arrival, now) is not None:
                continue
            sequence = (ext + seq_offset) & 0xFFFF
            timestamp = (packet.timestamp + ts_offset) & 0xFFFFFFFF
            layers = self.layers
            payload: bytes | bytearray = packet.payload
            if layers is not None:
                sequence = rewriter.outgoing(ext)
                if packet.temporal_id > layers.current:
                    # A filled number (a packet of a dropped layer that came late): fill it again.
                    self._send_padding(sequence, packet)
                    continue
                payload = layers.payload(packet)
            if rtx_payload_type is not None:
                header = self._header(
                    rtx_payload_type,
                    packet.marker,
                    self._rtx_sequence,
                    timestamp,
                    leg.rtx_ssrc,
                    packet,
                )
                payload = rtx_payload(sequence, payload)
                self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF
            else:
                header = self._header(
                    self._payload_type, packet.marker, sequence, timestamp, leg.ssrc, packet
                )
            if self._transmitter.send(header, payload):
                resent += 1
        self.retransmissions += resent
        return resent

    def on_transport_ready(self, now: float) -> None:
        """The subscriber's DTLS just connected: ask for a picture now, not on the next packet."""
        if self._video and not self._rewriter.started:
            self._ask_keyframe(now)

    def on_keyframe_request(self, now: float) -> None:
        """The subscriber sent PLI or FIR."""
        self.keyframe_requests_received += 1
        if self._keyframes is not None:
            self._keyframes.request_keyframe(now)

    def on_remb(self, bitrate: int, now: float = 0.0) -> None:
        """The subscriber's receive-side bandwidth estimate (for its whole connection)."""
        self.remb_bitrate = bitrate
        if self.estimate is not None:
            self.estimate.on_remb(bitrate, now)

    def on_receiver_report(self, fraction_lost: int) -> None:
        """This leg's fraction lost (1/256) from the subscriber's receiver report."""
        if self.estimate is not None:
            self.estimate.on_loss(fraction_lost)

    def ask_keyframe(self, now: float) -> None:
        """Ask the producer for a keyframe (a switch up that found no layer-sync frame)."""
        self._ask_keyframe(now)

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        """Translate the publisher's clock mapping into this leg's timestamps."""
        if not self._rewriter.started or self._sender_report_sink is None:
            return
        self._sender_report_sink(
            ntp_time,
            self._rewriter.timestamp(rtp_time),
            self.packets_sent,
            self.bytes_sent,
        )

    def _ask_keyframe(self, now: float) -> None:
        if self._keyframes is not None and now - self._last_keyframe_ask >= KEYFRAME_RETRY_INTERVAL:
            self._last_keyframe_ask = now
            self._keyframes.request_keyframe(now)

    @property
    def started(self) -> bool:
        """Whether the first packet (a keyframe for video) has been sent."""
        return self._rewriter.started

    @property
    def waiting_for_keyframe(self) -> bool:
        """A video consumer with a producer to follow that sends nothing until a keyframe."""
        return (
            self._video
            and not self._rewriter.started
            and not self._closed
            and self._keyframes is not None
        )

    def close(self) -> None:
        """Stop forwarding for good."""
        self._closed = True


class RedConsumer(Consumer):
    """A consumer whose subscriber negotiated RED for Opus (``leg.red_payload_type``).

    Packets the publisher sent as RED go on as RED, on the leg's RED payload type and with its
    blocks numbered as this leg's Opus, so the subscriber's decoder gets the redundant copies
    too; plain Opus packets go on as Opus. Only these consumers look at
    :attr:`~mcu.media.IncomingPacket.red`: every other one forwards the primary block without a
    further test.
    """

    def on_packet(self, packet: IncomingPacket) -> None:
        """Rewrite and send one packet, as RED when it came as RED."""
        red = packet.red
        if red is None or self._closed or self.layers is not None:
            super().on_packet(packet)
            return
        if not self._rewriter.started and not self._transmitter.ready():
            return
        assert self.leg.red_payload_type is not None
        red = red_with_payload_type(red, self._payload_type)
        if red is None:  # checked at ingress already; a packet that fails is sent as Opus
            super().on_packet(packet)
            return
        self._forward(packet, red, self.leg.red_payload_type)
