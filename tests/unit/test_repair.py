"""Which NACKed packets a consumer resends (mcu.sfu.repair): fresh ones, not twice in a round
trip, and within a budget that follows what the consumer forwards."""

from __future__ import annotations

from mcu.media import CodecInfo, TrackSource
from mcu.sfu.consumer import Consumer, ConsumerLeg
from mcu.sfu.producer import Producer
from mcu.sfu.repair import BURST_BYTES, MAX_AGE_S, RESEND_GUARD_S, SHARE, RepairBudget, Skip
from mcu.sfu.rtp import parse_fixed_header

VP8 = CodecInfo("video/VP8", 90000, None)
KEY = bytes([0x10, 0x00, 0x00, 0x9D, 0x01, 0x2A]) + bytes(994)
DELTA = bytes([0x10, 0x01]) + bytes(998)
LEG = ConsumerLeg(payload_type=96, ssrc=1, mid="0", rtx_payload_type=97, rtx_ssrc=2)


def test_fresh_packets_are_resent_once_per_round_trip() -> None:
    budget = RepairBudget()
    assert budget.check(7, 1000, arrival=10.0, now=10.2) is None
    assert budget.check(7, 1000, arrival=10.0, now=10.25) is Skip.JUST_RESENT
    assert budget.check(7, 1000, arrival=10.0, now=10.21 + RESEND_GUARD_S) is None
    assert budget.check(8, 1000, arrival=10.0, now=10.0 + MAX_AGE_S + 0.01) is Skip.TOO_OLD
    assert (budget.too_old, budget.just_resent, budget.over_budget) == (1, 1, 0)


def test_the_budget_is_a_share_of_what_is_forwarded() -> None:
    budget = RepairBudget()
    resent = 0
    for ext in range(1000):  # a burst right after a quiet spell: the burst allowance only
        if budget.check(ext, 1000, arrival=5.0, now=5.1) is None:
            resent += 1
    assert resent == BURST_BYTES // 1000 and budget.over_budget == 1000 - resent
    budget.earn(40_000)  # 40 kB forwarded since: half of it may be resent
    more = sum(budget.check(2000 + i, 1000, 5.2, 5.2) is None for i in range(100))
    assert more == int(40_000 * SHARE) // 1000
    budget.earn(40_000)  # the same count again: nothing new forwarded, no credit
    assert budget.check(3000, 1000, 5.3, 5.3) is Skip.OVER_BUDGET


def _packet(producer: Producer, seq: int, now: float) -> None:
    payload = KEY if seq % 30 == 0 else DELTA
    producer.on_rtp(seq, seq * 3000, True, payload, None, now)


class _Wire:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def ready(self) -> bool:
        return True

    def send(self, header: bytes, payload: bytes | bytearray = b"") -> bool:
        data = header + payload
        self.sent.append(data)
        return True


def test_a_subscriber_that_nacks_everything_is_repaired_within_its_budget() -> None:
    """A thin link NACKs every packet it was sent, again and again: the consumer resends at
    most half of what it forwards (plus the burst), never the same packet within a round trip,
    nothing older than a second; fresh media keeps flowing."""
    producer = Producer("t", "p", TrackSource.CAMERA, VP8, lambda: None)
    wire = _Wire()
    consumer = Consumer(LEG, wire, producer.history, producer, video=True)
    producer.add_sink(consumer)
    now, seq = 100.0, 29  # the first packet sent is a keyframe
    for _ in range(300):  # 10 s: 30 packets per second, a NACK of the last 100 every 33 ms
        seq += 1
        _packet(producer, seq, now)
        sent = [parse_fixed_header(p)[2] for p in wire.sent if p[1] & 0x7F == 96]
        consumer.on_nack(sent[-100:], now)
        now += 1 / 30
    forwarded, resent = consumer.bytes_sent, consumer.retransmissions * len(DELTA)
    assert consumer.packets_sent == 300
    assert resent <= forwarded * SHARE + BURST_BYTES + len(KEY)
    assert consumer.repair.over_budget > 0 and consumer.repair.just_resent > 0
    assert consumer.repair.too_old > 0
    assert consumer.retransmissions > 0  # repair still happens


def test_a_lone_loss_is_repaired_at_once() -> None:
    producer = Producer("t", "p", TrackSource.CAMERA, VP8, lambda: None)
    wire = _Wire()
    consumer = Consumer(LEG, wire, producer.history, producer, video=True)
    producer.add_sink(consumer)
    for seq in range(30, 40):
        _packet(producer, seq, 1.0 + seq / 100)
    lost = parse_fixed_header(wire.sent[5])[2]
    assert consumer.on_nack([lost], 1.5) == 1
