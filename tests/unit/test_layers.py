"""Temporal layers dropped for one subscriber, over literal VP8 packets.

Packets go in as bytes through a real :class:`Producer` (which reads TID, Y and PictureID once)
to a real :class:`Consumer` whose transmitter records what would be sent; the assertions read the
sent bytes: sequence numbers without a gap, picture ids without a gap, TL0PICIDX untouched,
markers where frames end, padding where a late packet of a dropped frame had its number kept.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from mcu.codecs import vp8
from mcu.media import CodecInfo, TrackSource
from mcu.sfu.consumer import Consumer, ConsumerLeg
from mcu.sfu.producer import Producer
from mcu.sfu.rtp import parse_fixed_header

VP8 = CodecInfo("video/VP8", 90000)
LEG = ConsumerLeg(payload_type=96, ssrc=0x1234, mid="1", rtx_payload_type=97, rtx_ssrc=0x99)
L1T3 = (0, 2, 1, 2)  # TIDs of the frames of one cycle, as Chromium sends them


def vp8_payload(
    picture_id: int, tl0: int, tid: int, *, sync: bool = False, start: bool = True,
    key: bool = False, body: bytes = b"\xaa\xbb",
) -> bytes:  # fmt: skip
    """A VP8 RTP payload: descriptor with a 15-bit PictureID, TL0PICIDX and TID/Y, then data."""
    return (
        bytes(
            (
                0x80 | (0x10 if start else 0),  # X, S; PID 0
                0xE0,  # I, L, T
                0x80 | (picture_id >> 8),
                picture_id & 0xFF,
                tl0,
                (tid << 6) | (0x20 if sync else 0),
                0x00 if key else 0x01,  # VP8 payload header: P=0 on a keyframe
            )
        )
        + body
    )


@dataclass
class Capture:
    sent: list[bytes] = field(default_factory=list)

    def ready(self) -> bool:
        return True

    def send(self, header: bytes, payload: bytes | bytearray = b"") -> bool:
        packet = header + payload
        self.sent.append(packet)
        return True


@dataclass(frozen=True)
class Sent:
    sequence: int
    timestamp: int
    marker: bool
    picture_id: int | None
    tl0: int | None
    tid: int | None
    padding: bool


def read(packet: bytes) -> Sent:
    _, marker, sequence, timestamp, _, offset = parse_fixed_header(packet)
    padding = bool(packet[0] & 0x20) and offset == len(packet) - packet[-1]
    if padding:
        return Sent(sequence, timestamp, marker, None, None, None, True)
    d = vp8.parse_descriptor(packet[offset:])
    return Sent(sequence, timestamp, marker, d.picture_id, d.tl0picidx, d.temporal_id, False)


class Stream:
    """A publisher sending L1T3 frames of two packets each, 3000 ticks apart."""

    def __init__(self) -> None:
        self.producer = Producer("t1", "p1", TrackSource.CAMERA, VP8, lambda: None)
        self.tx = Capture()
        self.consumer = Consumer(LEG, self.tx, self.producer.history, self.producer, video=True)
        self.producer.add_sink(self.consumer)
        self.seq = 1000
        self.frame = 0
        self.packets: dict[int, tuple[int, bool, bytes]] = {}  # seq -> (timestamp, marker, payload)

    def frame_packets(self, *, key: bool = False, sync: bool = False) -> list[int]:
        """Make the next frame's two packets (not yet sent); returns their sequence numbers."""
        n = self.frame
        tid = L1T3[n % 4]
        tl0 = (n // 4) & 0xFF
        ts = 90000 + 3000 * n
        first = vp8_payload(300 + n, tl0, tid, sync=sync, key=key)
        second = vp8_payload(300 + n, tl0, tid, sync=sync, start=False)
        seqs = [self.seq, self.seq + 1]
        self.packets[seqs[0]] = (ts, False, first)
        self.packets[seqs[1]] = (ts, True, second)
        self.seq += 2
        self.frame += 1
        return seqs

    def send(self, seq: int, at: float = 0.0) -> None:
        ts, marker, payload = self.packets[seq]
        self.producer.on_rtp(seq & 0xFFFF, ts, marker, payload, None, at)

    def frames(self, count: int, *, key_first: bool = False) -> None:
        for i in range(count):
            for seq in self.frame_packets(key=key_first and i == 0):
                self.send(seq)

    def sent(self) -> list[Sent]:
        return [read(p) for p in self.tx.sent]


def assert_continuous(sent: list[Sent]) -> None:
    for a, b in itertools.pairwise(sent):
        assert b.sequence == (a.sequence + 1) & 0xFFFF, (a, b)


def test_producer_reads_temporal_id_sync_and_picture_id_from_the_bytes() -> None:
    assert vp8.temporal_layer(vp8_payload(0x1234, 7, 2, sync=True)) == (2, True, 0x1234)
    assert vp8.temporal_layer(vp8_payload(5, 7, 1)) == (1, False, 5)
    # No T bit (a publisher without layers): no TID; no X bit at all: nothing.
    assert vp8.temporal_layer(bytes((0x90, 0x80, 0x81, 0x02, 0x01))) == (-1, False, 0x102)
    assert vp8.temporal_layer(b"\x10\x01") == vp8.NO_LAYERS
    assert vp8.temporal_layer(b"\x90\xe0\x81") == vp8.NO_LAYERS  # cut inside the PictureID


def test_without_a_limit_every_packet_goes_out_untouched() -> None:
    stream = Stream()
    stream.frames(8, key_first=True)
    sent = stream.sent()
    assert len(sent) == 16 and stream.consumer.layers is None
    assert_continuous(sent)
    assert [s.picture_id for s in sent[::2]] == list(range(300, 308))
    # The payload is the publisher's, byte for byte.
    _, _, _, _, _, offset = parse_fixed_header(stream.tx.sent[5])
    assert stream.tx.sent[5][offset:] == stream.packets[1005][2]


def test_base_layer_only_drops_upper_frames_without_gaps() -> None:
    stream = Stream()
    stream.frames(4, key_first=True)  # one full cycle: picture ids 300..303
    stream.consumer.limit_layers(0)
    stream.frames(8)  # two cycles: only frames 4 and 8 (TID 0) go
    sent = stream.sent()
    assert len(sent) == 8 + 4
    assert_continuous(sent)
    assert all(s.tid == 0 for s in sent[8:])
    # Picture ids run on without a gap: 303, then 304 (was 304), 305 (was 308).
    assert [s.picture_id for s in sent[::2]] == [300, 301, 302, 303, 304, 305]
    # TL0PICIDX is the publisher's: base-layer frames are never dropped.
    assert [s.tl0 for s in sent[8::2]] == [1, 2]
    # Each forwarded frame still ends with its marker.
    assert [s.marker for s in sent[8:]] == [False, True, False, True]
    assert stream.consumer.packets_thinned == 12
    assert stream.consumer.layers is not None and stream.consumer.layers.frames_dropped == 6


def test_two_layers_keep_tid_0_and_1() -> None:
    stream = Stream()
    stream.consumer.limit_layers(1)
    stream.frames(8, key_first=True)
    sent = stream.sent()
    assert [s.tid for s in sent[::2]] == [0, 1, 0, 1]
    assert [s.picture_id for s in sent[::2]] == [300, 301, 302, 303]
    assert_continuous(sent)


def test_switching_up_waits_for_a_layer_sync_frame() -> None:
    stream = Stream()
    stream.consumer.limit_layers(0)
    stream.frames(4, key_first=True)  # frame 0 only
    stream.consumer.limit_layers(2)
    # Frames 4 (TID 0), 5 (TID 2, no sync: not yet), 6 (TID 1, sync: switch to 1),
    # 7 (TID 2, not sync: still waiting for a TID 2 sync), 8 (TID 0), 9 (TID 2, sync: all).
    for n in range(4, 10):
        for seq in stream.frame_packets(sync=n in (6, 9)):
            stream.send(seq)
    sent = stream.sent()
    assert [s.tid for s in sent[::2]] == [0, 0, 1, 0, 2]
    assert [s.picture_id for s in sent[::2]] == [300, 301, 302, 303, 304]
    assert_continuous(sent)
    stream.frames(2)  # 10 (TID 1), 11 (TID 2): everything now
    assert [s.picture_id for s in stream.sent()[10::2]] == [305, 306]


def test_a_keyframe_switches_up_at_once() -> None:
    stream = Stream()
    stream.consumer.limit_layers(0)
    stream.frames(4, key_first=True)
    stream.consumer.limit_layers(2)
    layers = stream.consumer.layers
    assert layers is not None
    stream.frames(2)  # frame 4 (TID 0) and 5 (TID 2, no sync): still base only
    assert layers.current == 0 and layers.waiting_since is not None
    stream.frame = 8  # the publisher answers a keyframe request with a new cycle
    stream.frames(2, key_first=True)  # frame 8 (TID 0, key), frame 9 (TID 2)
    assert layers.current == 2 and layers.waiting_since is None
    assert [s.tid for s in stream.sent()[::2]] == [0, 0, 0, 2]
    assert_continuous(stream.sent())


def test_a_late_packet_of_a_dropped_frame_fills_its_kept_number_with_padding() -> None:
    stream = Stream()
    stream.frames(4, key_first=True)
    stream.consumer.limit_layers(0)
    # Frame 4 (TID 0) sent; frame 5 (TID 2) loses its first packet on the publisher's leg and
    # it comes late (the publisher's retransmission), after frame 6's packets.
    f4, f5, f6 = stream.frame_packets(), stream.frame_packets(), stream.frame_packets()
    for seq in f4 + f5[1:] + f6:
        stream.send(seq)
    f7, f8 = stream.frame_packets(), stream.frame_packets()
    for seq in f7 + f8:
        stream.send(seq)
    before_late = len(stream.tx.sent)
    stream.send(f5[0], at=0.01)
    assert len(stream.tx.sent) == before_late + 1
    sent = stream.sent()
    # f5[1] took no number; f5[0], missing when it went by, kept its own: padding fills it.
    numbers = sorted(s.sequence for s in sent)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert sent[-1].padding and sent[-1].sequence == sent[9].sequence + 1
    assert [s.picture_id for s in sent if not s.padding][8:] == [304, 304, 305, 305]


def test_nack_maps_back_across_dropped_runs() -> None:
    stream = Stream()
    stream.frames(4, key_first=True)
    stream.consumer.limit_layers(0)
    stream.frames(8)
    sent = stream.sent()
    # The subscriber lost the two packets of frame 8 (the second base frame after the limit).
    lost = [sent[-2].sequence, sent[-1].sequence, sent[1].sequence]
    stream.tx.sent.clear()
    assert stream.consumer.on_nack(lost, now=0.1) == 3
    resent = stream.tx.sent
    # RTX: the original sequence number first, then the payload with the rewritten picture id.
    for packet, number in zip(resent, lost, strict=True):
        _, _, _, _, ssrc, offset = parse_fixed_header(packet)
        assert ssrc == LEG.rtx_ssrc
        assert int.from_bytes(packet[offset : offset + 2], "big") == number
    tail = vp8.parse_descriptor(resent[0][parse_fixed_header(resent[0])[5] + 2 :])
    assert tail.picture_id == 305 and tail.temporal_id == 0


def test_paused_stream_resumes_at_a_keyframe_without_a_gap() -> None:
    stream = Stream()
    stream.frames(4, key_first=True)
    stream.consumer.set_paused(True)
    stream.frames(4)
    assert len(stream.tx.sent) == 8
    stream.consumer.set_paused(False)
    stream.frames(1)  # a delta frame: not yet
    assert len(stream.tx.sent) == 8
    stream.frame = 12
    stream.frames(2, key_first=True)
    sent = stream.sent()
    assert len(sent) == 12
    assert_continuous(sent)
