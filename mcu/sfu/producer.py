"""A producer: one incoming track, fanned out to its consumers."""

from __future__ import annotations

import logging
from collections.abc import Callable

from mcu.codecs.inspect import keyframe_detector, layer_reader
from mcu.infra.metrics import new_metrics_id
from mcu.media import CodecInfo, IncomingPacket, PacketSink, TrackSource
from mcu.sfu.history import PacketHistory
from mcu.sfu.rtp import SequenceUnwrapper
from mcu.sfu.shedding import LoadShedder, Verdict

logger = logging.getLogger(__name__)

# Layer rates are measured over at least this long (calls in between get the same figures), so
# every subscriber's ladder in a room reads the same rates in one tick.
RATE_WINDOW = 1.0
# RTP, SRTP, UDP and IP headers on top of the payload of a ~1,100-byte video packet.
HEADER_OVERHEAD = 1.05

# A keyframe costs a publisher several times the bits of a normal frame; many viewers asking at
# once (joins, losses) must cost it one keyframe, not a storm.
KEYFRAME_REQUEST_INTERVAL = 0.5


class Producer:
    """One publisher's track: parses each packet once and hands it to every consumer.

    While the server runs behind its ingress (``lateness`` given with each packet), it sheds
    load here, once for every consumer (:mod:`mcu.sfu.shedding`): consumers are left without the
    shed packets and renumber on from their last one when forwarding resumes, so they all resume at
    the same keyframe; sinks added with ``whole=True`` (a recording) still get every packet.
    """

    def __init__(
        self,
        track_id: str,
        participant_id: str,
        source: TrackSource,
        codec: CodecInfo,
        send_keyframe_request: Callable[[], None],
        *,
        keyframe_interval: float = KEYFRAME_REQUEST_INTERVAL,
    ) -> None:
        self.track_id = track_id
        self.metrics_id = new_metrics_id()
        "Tells this producer apart in the metrics' sums (mcu.infra.metrics.CounterSweep)."
        self.participant_id = participant_id
        self.source = source
        self.codec = codec
        self.kind = codec.kind
        self.history = PacketHistory()
        self.sinks: list[PacketSink] = []
        self._whole: list[PacketSink] = []  # sinks that get even what is shed
        self._paused = False
        self.packets_received = 0
        self.bytes_received = 0
        self.keyframe_requests_sent = 0
        self.keyframe_packets_received = 0
        "Packets that start a keyframe (an H.264 keyframe may count twice: SPS, then IDR)."
        self._level_sum = 0
        self._level_count = 0
        self.last_sender_report: tuple[int, int] | None = None
        self._is_keyframe = keyframe_detector(codec.mime_type)
        self._layer_of = layer_reader(codec.mime_type)
        self.layer_bytes = [0, 0, 0, 0]
        "Payload bytes received per temporal layer (TID 0..3; a stream without layers counts as 0)."
        self._rates: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
        self._rates_at: float | None = None
        self._rates_bytes: tuple[int, ...] = (0, 0, 0, 0)
        self._video = self.kind == "video"
        self._unwrapper = SequenceUnwrapper()
        self.send_keyframe_request = send_keyframe_request
        "Asks the publisher for a keyframe; set by whoever feeds the producer (RTCP PLI, encoder)."
        self._keyframe_interval = keyframe_interval
        self._last_keyframe_request = float("-inf")
        self._closed = False
        self._shedder = LoadShedder(self._video)
        self.packets_shed = 0
        "Packets not forwarded to consumers because the server ran behind (see mcu.sfu.shedding)."
        self._timestamp_offset = 0  # added to incoming timestamps once the source restarted
        self._restarted_after: IncomingPacket | None = None  # set until a restart's first packet
        self._restarting = False

    def on_rtp(
        self,
        sequence: int,
        timestamp: int,
        marker: bool,
        payload: bytes,
        audio_level: int | None,
        arrival: float,
        lateness: float = 0.0,
        red: bytes | None = None,
    ) -> None:
        """Take one (already decrypted, RTX-unwrapped) packet and forward it to every sink.

        ``red``: the packet's whole RED payload when it came as RED (``payload`` is then its
        primary block), for the consumers that negotiated RED.

        ``lateness``: how far behind its ingress the server was when it got to this packet
        (seconds, :mod:`mcu.sfu.lateness`); beyond a bound, packets are shed
        (:mod:`mcu.sfu.shedding`).
        """
        if self._closed:
            return
        if self._restarting:
            self._continue_numbering(sequence, timestamp, arrival)
        if self._timestamp_offset:
            timestamp = (timestamp + self._timestamp_offset) & 0xFFFFFFFF
        keyframe = self._video and bool(payload) and self._is_keyframe(payload)
        packet = IncomingPacket(
            self._unwrapper.unwrap(sequence), timestamp, marker, payload, keyframe, audio_level,
            arrival, red=red,
        )  # fmt: skip
        if self._layer_of is not None:
            # Read once here for every consumer that forwards fewer layers (mcu.sfu.layers).
            tid, packet.layer_sync, packet.picture_id = self._layer_of(payload)
            packet.temporal_id = tid
            self.layer_bytes[tid if tid > 0 else 0] += len(payload)
        else:
            self.layer_bytes[0] += len(payload)
        self.packets_received += 1
        self.keyframe_packets_received += keyframe
        self.bytes_received += len(payload)
        if audio_level is not None:
            self._level_sum += audio_level
            self._level_count += 1
        if self._paused:
            return  # not even kept for NACKs: a chair mute must not leak through repair
        verdict = self._shedder.decide(timestamp, keyframe, lateness)
        if verdict is Verdict.FORWARD:
            sinks = self.sinks
        elif verdict is Verdict.RESUME:
            self._renumber_consumers()
            sinks = self.sinks
        else:
            # Not kept for repair either: a NACK for it would cost what shedding saves.
            self.packets_shed += 1
            if verdict is Verdict.CAUGHT_UP:
                self.request_keyframe(arrival)  # resume now, not at the next keyframe interval
            sinks = self._whole
            if not sinks:
                return
        if sinks is self.sinks:
            self.history.put(packet)
        for sink in sinks:
            try:
                sink.on_packet(packet)
            except Exception:  # one broken subscriber must not stop the others
                logger.exception("sink %r failed on a packet of %s", sink, self.track_id)

    def _renumber_consumers(self) -> None:
        # Packets were shed: every sink that missed them continues its numbering from its last
        # packet (video at this keyframe), so no subscriber sees a gap to NACK.
        for sink in self.sinks:
            if sink not in self._whole:
                sink.resync()

    def restart_source(self) -> None:
        """The publisher's stream starts over under this track (it reconnected: a new peer
        connection, SSRC, sequence numbers and RTP clock), and goes on as the same track.

        Its first packet is numbered after the last one seen, and its timestamps continue from
        the last one by the wall-clock time between them, so to every sink the restart looks like
        a pause: each sink resyncs (video restarts at a keyframe) and nothing from the old stream
        (history, NACK mapping) is taken for the new one's.
        """
        last = self._unwrapper.highest
        self._restarted_after = self.history.get(last) if last is not None else None
        self._restarting = last is not None
        for sink in self.sinks:
            sink.resync()

    def _continue_numbering(self, sequence: int, timestamp: int, arrival: float) -> None:
        self._restarting = False
        last = self._unwrapper.highest
        assert last is not None
        # The smallest number above every one the old stream had that shares the packet's low
        # 16 bits: the new stream's packets unwrap from there.
        first = last + 1 + ((sequence - (last + 1)) & 0xFFFF)
        self._unwrapper.highest = first - 1
        previous, self._restarted_after = self._restarted_after, None
        if previous is not None:
            elapsed = max(1, round((arrival - previous.arrival) * self.codec.clock_rate))
            self._timestamp_offset = (previous.timestamp + elapsed - timestamp) & 0xFFFFFFFF
        else:
            self._timestamp_offset = 0

    def layer_rates(self, now: float) -> tuple[float, ...]:
        """Bits per second of temporal layers 0..3 as received (headers included), measured over
        the last window of at least :data:`RATE_WINDOW`; zeros until one window has passed."""
        if self._rates_at is None:
            self._rates_at, self._rates_bytes = now, tuple(self.layer_bytes)
        elif now - self._rates_at >= RATE_WINDOW:
            scale = 8 * HEADER_OVERHEAD / (now - self._rates_at)
            self._rates = tuple(
                (b - a) * scale for a, b in zip(self._rates_bytes, self.layer_bytes, strict=True)
            )
            self._rates_at, self._rates_bytes = now, tuple(self.layer_bytes)
        return self._rates

    @property
    def shedding(self) -> bool:
        """Whether video is being shed because the server runs behind (see mcu.sfu.shedding)."""
        return self._shedder.shedding

    @property
    def frames_shed(self) -> int:
        """Video frames not forwarded to consumers because the server ran behind."""
        return self._shedder.frames_shed

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        """The publisher's RTCP sender report: pass its clock mapping to every sink."""
        rtp_time = (rtp_time + self._timestamp_offset) & 0xFFFFFFFF
        self.last_sender_report = (ntp_time, rtp_time)
        for sink in self.sinks:
            try:
                sink.on_sender_report(ntp_time, rtp_time)
            except Exception:
                logger.exception("sink %r failed on a sender report", sink)

    @property
    def paused(self) -> bool:
        """Set by the chair's mute: nothing is forwarded (or kept) until it is cleared."""
        return self._paused

    @paused.setter
    def paused(self, paused: bool) -> None:
        if self._paused and not paused:
            # The publisher's sequence numbers moved on meanwhile; sinks renumber from where they
            # stopped so subscribers see no gap (and SRTP no jump).
            for sink in self.sinks:
                sink.resync()
        self._paused = paused

    def take_mean_audio_level(self) -> float | None:
        """Mean audio level (-dBov) since the last call, or None if no packet carried one."""
        if not self._level_count:
            return None
        mean = self._level_sum / self._level_count
        self._level_sum = self._level_count = 0
        return mean

    def request_keyframe(self, now: float) -> None:
        """Ask the publisher for a keyframe, at most once per ``keyframe_interval``."""
        if self.kind != "video" or self._closed:
            return
        if now - self._last_keyframe_request < self._keyframe_interval:
            return
        self._last_keyframe_request = now
        self.keyframe_requests_sent += 1
        self.send_keyframe_request()

    def add_sink(self, sink: PacketSink, *, whole: bool = False) -> None:
        """Start forwarding to ``sink``; a known sender report is passed on at once.

        ``whole``: the sink gets every packet, even those shed while the server runs behind (a
        recording must stay complete; it is one sink, not one per viewer).
        """
        self.sinks.append(sink)
        if whole:
            self._whole.append(sink)
        if self.last_sender_report is not None:
            sink.on_sender_report(*self.last_sender_report)

    def remove_sink(self, sink: PacketSink) -> None:
        """Stop forwarding to ``sink`` (it is not closed here)."""
        if sink in self.sinks:
            self.sinks.remove(sink)
        if sink in self._whole:
            self._whole.remove(sink)

    def close(self) -> None:
        """The track ended: close every sink."""
        if self._closed:
            return
        self._closed = True
        # The last ~1,024 packets (1.3 MB of video) go now, not when the garbage collector
        # frees a producer that its publisher's connection and consumers hold in cycles.
        self.history.clear()
        self._restarted_after = None
        sinks, self.sinks, self._whole = self.sinks, [], []
        for sink in sinks:
            try:
                sink.close()
            except Exception:
                logger.exception("sink %r failed to close", sink)
