"""A consumer switching producers on one leg, and a video consumer whose subscriber stalls."""

from __future__ import annotations

from dataclasses import dataclass, field

from mcu.media import CodecInfo, TrackSource
from mcu.sfu.consumer import Consumer, ConsumerLeg, PayloadTypes
from mcu.sfu.producer import Producer
from mcu.sfu.rtp import parse_fixed_header

LEG = ConsumerLeg(payload_type=96, ssrc=0x1234, mid="1", rtx_payload_type=97, rtx_ssrc=0x99)
VP8 = CodecInfo("video/VP8", 90000)
OPUS = CodecInfo("audio/opus", 48000, 2)
# VP8 payloads: descriptor S=1 PID=0, then the payload header whose P bit is clear on a keyframe.
KEY = b"\x10\x00key"
DELTA = b"\x10\x01delta"
MIDDLE = b"\x00more"  # a later packet of the same frame


@dataclass
class StallingTransmitter:
    """The network boundary: refuses every packet while ``refusing`` (a full send buffer)."""

    refusing: bool = False
    sent: list[bytes] = field(default_factory=list)

    def ready(self) -> bool:
        return True

    def send(self, header: bytes, payload: bytes | bytearray = b"") -> bool:
        packet = header + payload
        if self.refusing:
            return False
        self.sent.append(packet)
        return True


class Publisher:
    """A producer and the keyframe requests it passed on to its publisher."""

    def __init__(self, name: str, codec: CodecInfo = VP8) -> None:
        self.asked = 0
        self.producer = Producer(name, "p-" + name, _source(codec), codec, self._ask)

    def _ask(self) -> None:
        self.asked += 1

    def send(self, seq: int, ts: int, payload: bytes, arrival: float, marker: bool = True) -> None:
        self.producer.on_rtp(seq, ts, marker, payload, None, arrival)


def _source(codec: CodecInfo) -> TrackSource:
    return TrackSource.CAMERA if codec.kind == "video" else TrackSource.MICROPHONE


def _switch(consumer: Consumer, old: Publisher | None, new: Publisher | None, now: float) -> None:
    """What a viewer connection does when its stage slot changes hands."""
    if old is not None:
        old.producer.remove_sink(consumer)
    consumer.follow(new.producer if new else None, now)
    if new is not None:
        new.producer.add_sink(consumer)


def _header(packet: bytes) -> tuple[int, int, int, int]:
    """(payload type, sequence, timestamp, ssrc)."""
    pt, _, seq, ts, ssrc, _ = parse_fixed_header(packet)
    return pt, seq, ts, ssrc


def _payload(packet: bytes) -> bytes:
    return packet[parse_fixed_header(packet)[5] :]


def test_follow_continues_the_stream_at_the_new_producers_keyframe() -> None:
    a, b = Publisher("a"), Publisher("b")
    tx = StallingTransmitter()
    consumer = Consumer(LEG, tx, video=True)
    _switch(consumer, None, a, 10.0)
    a.send(100, 1_000, KEY, 10.0)
    a.send(101, 4_000, DELTA, 10.1)
    _, last_seq, last_ts, _ = _header(tx.sent[-1])

    _switch(consumer, a, b, 10.5)
    assert b.asked == 1  # asked at once, not on the first packet
    a.send(102, 7_000, DELTA, 10.6)  # the old producer no longer reaches this consumer
    b.send(5_000, 777, DELTA, 10.7)  # the new one's picture is not decodable yet
    assert len(tx.sent) == 2
    b.send(5_001, 3_000_000, KEY, 11.1)
    b.send(5_002, 3_003_000, DELTA, 11.2)

    (pt1, seq1, ts1, ssrc1), (_, seq2, ts2, ssrc2) = _header(tx.sent[2]), _header(tx.sent[3])
    assert (pt1, ssrc1, ssrc2) == (LEG.payload_type, LEG.ssrc, LEG.ssrc)
    assert seq1 == (last_seq + 1) & 0xFFFF and seq2 == (seq1 + 1) & 0xFFFF
    assert (ts1 - last_ts) & 0xFFFFFFFF == 90_000  # one second of wall clock since the last sent
    assert (ts2 - ts1) & 0xFFFFFFFF == 3_000  # then the new producer's own spacing
    assert _payload(tx.sent[2]) == KEY


def test_after_follow_nacks_map_to_the_new_producers_history_only() -> None:
    a, b = Publisher("a"), Publisher("b")
    tx = StallingTransmitter()
    consumer = Consumer(LEG, tx, video=True)
    _switch(consumer, None, a, 0.0)
    a.send(10, 0, KEY, 0.0)
    a.send(11, 3_000, DELTA, 0.1)
    old = [_header(p)[1] for p in tx.sent]
    _switch(consumer, a, b, 0.2)
    b.send(70, 90, KEY, 0.3)
    new = _header(tx.sent[-1])[1]
    tx.sent.clear()

    assert consumer.on_nack(old, 0.4) == 0  # nothing from the old producer is repaired any more
    assert consumer.on_nack([new], 0.4) == 1
    pt, _, _, ssrc = _header(tx.sent[0])
    assert (pt, ssrc) == (LEG.rtx_payload_type, LEG.rtx_ssrc)
    assert _payload(tx.sent[0]) == new.to_bytes(2, "big") + KEY


def test_keyframe_requests_follow_the_producer() -> None:
    a, b = Publisher("a"), Publisher("b")
    consumer = Consumer(LEG, StallingTransmitter(), video=True)
    _switch(consumer, None, a, 0.0)
    _switch(consumer, a, b, 5.0)
    consumer.on_keyframe_request(9.0)  # the subscriber's PLI
    assert (a.asked, b.asked) == (1, 2)


def test_following_nothing_keeps_the_consumer_open_and_quiet() -> None:
    a, b = Publisher("a"), Publisher("b")
    tx = StallingTransmitter()
    consumer = Consumer(LEG, tx, video=True)
    _switch(consumer, None, a, 0.0)
    a.send(1, 0, KEY, 0.0)
    last_seq = _header(tx.sent[-1])[1]

    _switch(consumer, a, None, 1.0)
    consumer.on_keyframe_request(1.5)  # nobody to ask: ignored
    assert consumer.on_nack([last_seq], 1.5) == 0 and a.asked == 1

    _switch(consumer, None, b, 4.0)
    b.send(900, 0, KEY, 4.0)
    assert _header(tx.sent[-1])[1] == (last_seq + 1) & 0xFFFF


def test_audio_follows_at_once_with_timestamps_in_its_clock() -> None:
    a, b = Publisher("a", OPUS), Publisher("b", OPUS)
    tx = StallingTransmitter()
    consumer = Consumer(LEG, tx, video=False)
    _switch(consumer, None, a, 1.0)
    a.send(7, 48_000, b"opus-a", 1.0)
    _switch(consumer, a, b, 1.25)
    b.send(60_000, 5, b"opus-b", 1.5)
    (_, seq0, ts0, _), (_, seq1, ts1, _) = _header(tx.sent[0]), _header(tx.sent[1])
    assert seq1 == (seq0 + 1) & 0xFFFF
    assert (ts1 - ts0) & 0xFFFFFFFF == 24_000  # half a second at 48 kHz
    assert (a.asked, b.asked) == (0, 0)  # audio never asks for keyframes


def test_a_consumer_that_never_started_just_starts_on_the_new_producer() -> None:
    a, b = Publisher("a"), Publisher("b")
    tx = StallingTransmitter()
    consumer = Consumer(LEG, tx, video=True)
    _switch(consumer, None, a, 0.0)
    a.send(1, 0, DELTA, 0.0)  # never a keyframe from a
    _switch(consumer, a, b, 0.5)
    b.send(40, 0, KEY, 0.6)
    assert len(tx.sent) == 1 and consumer.started and _header(tx.sent[0])[1] < 0x8000


def test_a_stalled_video_viewer_resumes_at_a_keyframe_without_a_sequence_gap() -> None:
    a = Publisher("a")
    tx = StallingTransmitter()
    consumer = Consumer(LEG, tx, video=True)
    _switch(consumer, None, a, 0.0)
    a.send(1, 0, KEY, 0.0)
    a.send(2, 3_000, DELTA, 0.1)
    _, last_seq, last_ts, _ = _header(tx.sent[-1])
    assert a.asked == 1

    tx.refusing = True  # the viewer's send buffer is full
    a.send(3, 6_000, DELTA, 2.0)
    a.send(4, 6_000, MIDDLE, 2.01, marker=False)
    assert consumer.packets_dropped == 1 and consumer.stalls == 1
    assert a.asked == 2  # the drop asked for a keyframe at once
    tx.refusing = False
    a.send(5, 6_000, MIDDLE, 2.02)  # the rest of a frame it cannot decode: not sent
    a.send(6, 9_000, DELTA, 2.1)
    assert len(tx.sent) == 2 and a.asked == 2  # the consumer asks at most once a second
    a.send(7, 12_000, KEY, 2.2)
    a.send(8, 15_000, DELTA, 2.3)

    (_, seq1, ts1, _), (_, seq2, _, _) = _header(tx.sent[2]), _header(tx.sent[3])
    assert seq1 == (last_seq + 1) & 0xFFFF and seq2 == (seq1 + 1) & 0xFFFF
    assert (ts1 - last_ts) & 0xFFFFFFFF == 9_000  # same producer: its own clock
    assert _payload(tx.sent[2]) == KEY


def test_a_drop_inside_a_keyframe_keeps_the_keyframe_and_repairs_the_gap() -> None:
    a = Publisher("a")
    tx = StallingTransmitter()
    consumer = Consumer(LEG, tx, video=True)
    _switch(consumer, None, a, 0.0)
    a.send(1, 0, KEY, 0.0, marker=False)
    tx.refusing = True
    a.send(2, 0, MIDDLE, 0.0)
    tx.refusing = False
    a.send(3, 3_000, DELTA, 0.1)
    seqs = [_header(p)[1] for p in tx.sent]
    # The keyframe's refused packet keeps its number; what follows is still sent.
    assert len(seqs) == 2 and seqs[1] == (seqs[0] + 2) & 0xFFFF
    assert consumer.packets_dropped == 1 and consumer.stalls == 0
    assert consumer.on_nack([(seqs[0] + 1) & 0xFFFF], 0.2) == 1  # the subscriber's NACK repairs it
    assert a.asked == 1  # no new keyframe asked for: this one arrives whole


def test_a_stalled_audio_consumer_simply_continues() -> None:
    a = Publisher("a", OPUS)
    tx = StallingTransmitter()
    consumer = Consumer(LEG, tx, video=False)
    _switch(consumer, None, a, 0.0)
    a.send(1, 0, b"1", 0.0)
    tx.refusing = True
    a.send(2, 960, b"2", 0.02)
    tx.refusing = False
    a.send(3, 1920, b"3", 0.04)
    assert [_payload(p) for p in tx.sent] == [b"1", b"3"]
    assert consumer.packets_dropped == 1 and consumer.stalls == 0 and a.asked == 0


H264 = CodecInfo("video/H264", 90000, None, (("packetization-mode", "1"),))
# H.264 payloads: an IDR NAL unit (type 5) is a keyframe, a non-IDR slice (type 1) is not.
IDR = b"\x65idr"
SLICE = b"\x41slice"


def test_follow_switches_the_payload_type_to_the_new_producers_codec() -> None:
    # A section negotiated with VP8 (96, RTX 97) and H.264 (102, RTX 103) follows a VP8
    # publisher, then an H.264 one: each packet carries its own codec's payload type, and
    # retransmissions the RTX type paired with it.
    vp8, h264 = Publisher("vp8"), Publisher("h264", H264)
    tx = StallingTransmitter()
    consumer = Consumer(LEG, tx, video=True)
    _switch(consumer, None, vp8, 0.0)
    vp8.send(10, 0, KEY, 0.0)
    assert _header(tx.sent[-1])[0] == 96

    vp8.producer.remove_sink(consumer)
    consumer.follow(h264.producer, 0.5, PayloadTypes(102, 103))
    h264.producer.add_sink(consumer)
    h264.send(500, 9_000, IDR, 0.6)
    h264.send(501, 12_000, SLICE, 0.7)
    pt, seq, _, ssrc = _header(tx.sent[-2])
    assert (pt, ssrc) == (102, LEG.ssrc) and _header(tx.sent[-1])[0] == 102
    tx.sent.clear()
    assert consumer.on_nack([seq], 0.8) == 1
    assert _header(tx.sent[0])[0] == 103

    h264.producer.remove_sink(consumer)
    consumer.follow(vp8.producer, 1.0, PayloadTypes(96, None))  # a leg without RTX for VP8
    vp8.producer.add_sink(consumer)
    vp8.send(11, 90_000, KEY, 1.1)
    pt, seq, _, _ = _header(tx.sent[-1])
    assert pt == 96
    tx.sent.clear()
    assert consumer.on_nack([seq], 1.2) == 1
    assert _header(tx.sent[0])[0] == 96  # resent as the original, no RTX on this codec
