"""A video consumer whose subscriber's send buffer is smaller than one keyframe.

The transmitter here is a send buffer that drains at a fixed rate: it refuses a packet while
``capacity`` bytes are queued. The drain rate is well above the lecture's average, so the
subscriber can take the stream; only the keyframe, sent as one burst, does not fit at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcu.media import CodecInfo, TrackSource
from mcu.sfu.consumer import Consumer, ConsumerLeg
from mcu.sfu.producer import Producer
from mcu.sfu.rtp import parse_fixed_header

LEG = ConsumerLeg(payload_type=96, ssrc=0x1234, mid="1", rtx_payload_type=97, rtx_ssrc=0x99)
VP8 = CodecInfo("video/VP8", 90000)
FPS = 30
GOP = 60  # a keyframe every 2 s, as the benchmark's clip
KEYFRAME_PACKETS = 80  # ~96 kB, as the benchmark's 1280x720 keyframe
DELTA_PACKETS = 4
SIZE = 1200


@dataclass
class DrainingBuffer:
    """A subscriber's send buffer: ``capacity`` bytes, drained at ``rate`` bytes/s."""

    capacity: int
    rate: float
    now: float = 0.0
    queued: float = 0.0
    sent: list[bytes] = field(default_factory=list)
    refused: int = 0

    def advance(self, now: float) -> None:
        self.queued = max(0.0, self.queued - (now - self.now) * self.rate)
        self.now = now

    def ready(self) -> bool:
        return True

    def send(self, header: bytes, payload: bytes | bytearray = b"") -> bool:
        packet = header + payload
        if self.queued + len(packet) > self.capacity:
            self.refused += 1
            return False
        self.queued += len(packet)
        self.sent.append(packet)
        return True


def _payload(index: int, keyframe: bool, first: bool) -> bytes:
    # VP8 descriptor (S bit on the first packet of a frame), then the P bit: clear on a keyframe.
    if not first:
        return b"\x00" + bytes(SIZE - 1)
    return (b"\x10\x00" if keyframe else b"\x10\x01") + bytes(SIZE - 2)


def _run(consumer: Consumer, buffer: DrainingBuffer, producer: Producer, seconds: float) -> None:
    """Feed ``seconds`` of 30 fps video; the subscriber NACKs what it misses once per frame."""
    seq = 0
    for frame in range(int(seconds * FPS)):
        now = frame / FPS
        buffer.advance(now)
        keyframe = frame % GOP == 0
        count = KEYFRAME_PACKETS if keyframe else DELTA_PACKETS
        for i in range(count):
            seq += 1
            producer.on_rtp(seq, frame * 3000, i == count - 1, _payload(i, keyframe, i == 0),
                            None, now + i * 1e-4)  # fmt: skip
        # What a browser does: NACK the numbers it has not seen (the server answers from history).
        got = sorted({parse_fixed_header(p)[2] for p in buffer.sent if p[1] & 0x7F == 96})
        if got:
            missing = [s for s in range(got[0], got[-1]) if s not in set(got)]
            if missing:
                consumer.on_nack(missing[-64:], now)


def test_a_keyframe_larger_than_the_send_buffer_does_not_lock_video_out() -> None:
    asked: list[int] = []
    producer = Producer("cam", "p", TrackSource.CAMERA, VP8, lambda: asked.append(1))
    # 48 kB of room, drained at 1.6 Mbit/s: the stream's 1.3 Mbit/s fits, its keyframe burst not.
    buffer = DrainingBuffer(capacity=48_000, rate=200_000)
    consumer = Consumer(LEG, buffer, producer.history, producer, video=True)
    producer.add_sink(consumer)

    _run(consumer, buffer, producer, seconds=10.0)

    media = [p for p in buffer.sent if p[1] & 0x7F == 96]
    deltas = [p for p in media if p[12:14] == b"\x10\x01"]
    # Every 2 s group of pictures after the first keyframe gets its delta frames through: the
    # viewer sees video all along, not a keyframe fragment every 2 s.
    assert len(deltas) >= 4 * (GOP - 1), (len(deltas), consumer.stalls, buffer.refused)
    # Refused keyframe packets were repaired (NACK -> RTX), so each keyframe arrived whole.
    assert consumer.retransmissions > 0
    assert consumer.stalls < 5
