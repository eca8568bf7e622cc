"""Producer fan-out and keyframe coalescing; active-speaker hysteresis."""

from __future__ import annotations

from dataclasses import dataclass, field

from mcu.media import CodecInfo, IncomingPacket, TrackSource
from mcu.sfu.producer import Producer
from mcu.sfu.speaker import SpeakerDetector

VP8 = CodecInfo("video/VP8", 90000)
# VP8 payload descriptor S=1, PID=0, then a payload header with P=0: the start of a keyframe.
KEYFRAME = bytes([0x10, 0x00, 0x00, 0x00])
DELTA = bytes([0x10, 0x01, 0x00, 0x00])


@dataclass
class Sink:
    packets: list[IncomingPacket] = field(default_factory=list)
    reports: list[tuple[int, int]] = field(default_factory=list)
    closed: bool = False
    explode: bool = False
    resyncs: int = 0

    def on_packet(self, packet: IncomingPacket) -> None:
        if self.explode:
            raise RuntimeError("broken subscriber")
        self.packets.append(packet)

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        self.reports.append((ntp_time, rtp_time))

    def resync(self) -> None:
        self.resyncs += 1

    def close(self) -> None:
        self.closed = True


def _producer(requests: list[int]) -> Producer:
    return Producer("t1", "p1", TrackSource.CAMERA, VP8, lambda: requests.append(1))


def test_one_parsed_packet_is_shared_by_every_sink_and_a_broken_sink_is_isolated() -> None:
    producer = _producer([])
    good, bad, other = Sink(), Sink(explode=True), Sink()
    for sink in (good, bad, other):
        producer.add_sink(sink)
    producer.on_rtp(65535, 0, True, KEYFRAME, None, 1.0)
    producer.on_rtp(0, 0, True, DELTA, None, 1.0)
    assert [p.ext_sequence for p in good.packets] == [65535, 65536]
    assert good.packets[0] is other.packets[0] and good.packets[0].keyframe
    assert not good.packets[1].keyframe
    assert producer.history.get(65536) is good.packets[1]


def test_keyframe_requests_are_coalesced() -> None:
    requests: list[int] = []
    producer = _producer(requests)
    for now in (10.0, 10.1, 10.2, 10.49, 10.5, 10.6):
        producer.request_keyframe(now)
    assert len(requests) == 2


def test_chair_pause_stops_forwarding_and_close_closes_sinks() -> None:
    producer = _producer([])
    sink = Sink()
    producer.add_sink(sink)
    producer.paused = True
    producer.on_rtp(1, 0, True, KEYFRAME, None, 1.0)
    assert sink.packets == []
    producer.on_sender_report(5, 6)
    assert sink.reports == [(5, 6)]
    late = Sink()
    producer.add_sink(late)
    assert late.reports == [(5, 6)]  # a new sink gets the clock mapping at once
    producer.close()
    assert sink.closed and late.closed


def test_mean_audio_level() -> None:
    producer = Producer(
        "t2", "p1", TrackSource.MICROPHONE, CodecInfo("audio/opus", 48000, 2), lambda: None
    )
    assert producer.take_mean_audio_level() is None
    for level in (20, 40):
        producer.on_rtp(1, 0, False, b"\x01", level, 1.0)
    assert producer.take_mean_audio_level() == 30
    assert producer.take_mean_audio_level() is None


def test_speaker_switches_only_after_a_sustained_lead() -> None:
    d = SpeakerDetector()
    assert d.tick({"a": 30, "b": 50}) == "a"  # first speaker is announced at once
    assert d.tick({"a": 40, "b": 20}) is None  # b leads once: not yet
    assert d.tick({"a": 40, "b": 20}) == "b"
    assert d.tick({"a": 127, "b": 127}) is None  # silence keeps the last speaker
    assert d.forget("b") and d.current is None


def test_paused_packets_are_neither_forwarded_nor_kept_and_sinks_resync() -> None:
    producer = _producer([])
    sink = Sink()
    producer.add_sink(sink)
    producer.paused = True
    producer.on_rtp(1, 0, True, KEYFRAME, None, 1.0)
    assert producer.history.get(1) is None and sink.packets == []
    producer.paused = False
    assert sink.resyncs == 1


def test_a_restarted_source_continues_the_track_as_after_a_pause() -> None:
    # The publisher reconnected: a new stream (numbering, clock) feeds the same track.
    producer = _producer([])
    sink = Sink()
    producer.add_sink(sink)
    producer.on_rtp(40000, 1_000_000, True, KEYFRAME, None, 10.0)
    producer.on_rtp(40001, 1_003_000, True, DELTA, None, 10.1)
    producer.on_sender_report(7, 1_003_000)
    producer.restart_source()
    assert sink.resyncs == 1  # every sink halts and restarts at the next keyframe
    producer.on_rtp(100, 55, True, KEYFRAME, None, 12.1)  # 2 s later, numbers from scratch
    producer.on_rtp(99, 0, True, DELTA, None, 12.1)  # reordered just before it
    producer.on_rtp(101, 3055, True, DELTA, None, 12.2)
    exts = [p.ext_sequence for p in sink.packets]
    # Numbered above everything before (history and NACKs never mix the two streams) ...
    assert exts[:2] == [40000, 40001] and exts[2] > 40001 and exts[3:] == [exts[2] - 1, exts[2] + 1]
    assert exts[2] & 0xFFFF == 100
    # ... timed 2 s (at 90 kHz) after the last packet, the pause it really was.
    assert sink.packets[2].timestamp == 1_003_000 + 180_000
    assert sink.packets[4].timestamp - sink.packets[2].timestamp == 3000
    assert producer.history.get(exts[2]) is sink.packets[2]
    producer.on_sender_report(8, 55)  # the new stream's clock, translated like its packets
    assert sink.reports[-1] == (8, 1_183_000)


def test_a_restart_before_any_packet_changes_nothing() -> None:
    producer = _producer([])
    sink = Sink()
    producer.add_sink(sink)
    producer.restart_source()
    producer.on_rtp(5, 900, True, KEYFRAME, None, 1.0)
    assert [(p.ext_sequence, p.timestamp) for p in sink.packets] == [(5, 900)]


def test_close_lets_go_of_the_packet_history_at_once() -> None:
    # A closed producer often sits in reference cycles until a full collection: its ring of
    # recent packets (1.3 MB of video) must not wait with it.
    import sys

    producer = _producer([])
    producer.on_rtp(7, 0, True, KEYFRAME, None, 1.0)
    packet = producer.history.get(7)
    assert packet is not None
    shared = producer.history  # what consumers hold to answer NACKs
    held = sys.getrefcount(packet)
    producer.close()
    assert shared.get(7) is None
    assert sys.getrefcount(packet) == held - 1  # the ring's reference is gone, not collected
