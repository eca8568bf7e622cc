"""The per-subscriber rewrite, start on keyframe, NACK repair and sender reports."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from mcu.media import IncomingPacket
from mcu.sfu.consumer import MAX_PROFILES, Consumer, ConsumerLeg, profile_number
from mcu.sfu.history import PacketHistory
from mcu.sfu.rtp import SequenceUnwrapper, parse_fixed_header


@dataclass
class CapturingTransmitter:
    """The network boundary: records what would be protected and sent."""

    is_ready: bool = True
    sent: list[bytes] = field(default_factory=list)

    def ready(self) -> bool:
        return self.is_ready

    def send(self, header: bytes, payload: bytes | bytearray = b"") -> bool:
        packet = header + payload
        self.sent.append(packet)
        return True


@dataclass
class KeyframeLog:
    requests: list[float] = field(default_factory=list)

    def request_keyframe(self, now: float) -> None:
        self.requests.append(now)


LEG = ConsumerLeg(payload_type=101, ssrc=0xABCDEF01, mid="3", rtx_payload_type=102, rtx_ssrc=0x55)


class Feed:
    """Builds packets the way a producer does (extended sequence numbers, shared history)."""

    def __init__(self) -> None:
        self.history = PacketHistory(64)
        self.unwrap = SequenceUnwrapper()

    def packet(
        self, seq: int, ts: int, *, key: bool = False, payload: bytes = b"x"
    ) -> IncomingPacket:
        p = IncomingPacket(self.unwrap.unwrap(seq), ts, True, payload, key, None, 10.0)
        self.history.put(p)
        return p


def _consumer(
    video: bool = True, leg: ConsumerLeg = LEG
) -> tuple[Consumer, CapturingTransmitter, KeyframeLog, Feed]:
    feed, tx, keys = Feed(), CapturingTransmitter(), KeyframeLog()
    return Consumer(leg, tx, feed.history, keys, video=video), tx, keys, feed


def test_video_waits_for_a_keyframe_and_asks_for_one() -> None:
    consumer, tx, keys, feed = _consumer()
    consumer.on_packet(feed.packet(100, 1000))
    consumer.on_packet(feed.packet(101, 1000))
    assert tx.sent == [] and len(keys.requests) == 1  # asked once, rate-limited
    consumer.on_packet(feed.packet(102, 4000, key=True, payload=b"KEY"))
    consumer.on_packet(feed.packet(103, 7000, payload=b"delta"))
    assert len(tx.sent) == 2
    pt0, marker0, seq0, ts0, ssrc0, off0 = parse_fixed_header(tx.sent[0])
    pt1, _, seq1, ts1, ssrc1, off1 = parse_fixed_header(tx.sent[1])
    assert (pt0, pt1, ssrc0, ssrc1, marker0) == (101, 101, LEG.ssrc, LEG.ssrc, True)
    assert seq1 == (seq0 + 1) & 0xFFFF and seq0 < 0x8000  # low half: SRTP rollover guard
    assert (ts1 - ts0) & 0xFFFFFFFF == 3000
    assert tx.sent[0][off0:] == b"KEY" and tx.sent[1][off1:] == b"delta"


def test_nothing_starts_before_the_transport_is_ready() -> None:
    consumer, tx, keys, feed = _consumer()
    tx.is_ready = False
    consumer.on_packet(feed.packet(1, 0, key=True))
    assert tx.sent == [] and keys.requests == [] and not consumer.started
    tx.is_ready = True
    consumer.on_packet(feed.packet(2, 0, key=True))
    assert consumer.started and len(tx.sent) == 1


def test_audio_starts_at_once_and_late_packets_from_before_start_are_dropped() -> None:
    consumer, tx, _, feed = _consumer(video=False)
    consumer.on_packet(feed.packet(500, 0))
    consumer.on_packet(feed.packet(499, 0))  # reordered, from before this consumer started
    consumer.on_packet(feed.packet(502, 960))
    consumer.on_packet(feed.packet(501, 0))  # reordered but after start: forwarded
    seqs = [parse_fixed_header(p)[2] for p in tx.sent]
    assert len(seqs) == 3
    assert (seqs[1] - seqs[0]) & 0xFFFF == 2 and (seqs[2] - seqs[0]) & 0xFFFF == 1


def test_sequence_wraps_without_gaps() -> None:
    consumer, tx, _, feed = _consumer(video=False)
    for seq in (65533, 65534, 65535, 0, 1):
        consumer.on_packet(feed.packet(seq, 0))
    seqs = [parse_fixed_header(p)[2] for p in tx.sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))


def test_nack_is_answered_with_rtx_from_the_shared_history() -> None:
    consumer, tx, _, feed = _consumer()
    consumer.on_packet(feed.packet(10, 0, key=True, payload=b"k"))
    consumer.on_packet(feed.packet(11, 0, payload=b"lost-one"))
    consumer.on_packet(feed.packet(12, 0, payload=b"c"))
    lost_seq = parse_fixed_header(tx.sent[1])[2]
    tx.sent.clear()
    assert (
        consumer.on_nack([lost_seq, (lost_seq + 1000) & 0xFFFF], 10.0) == 1
    )  # unknown one ignored
    pt, _, _, _, ssrc, offset = parse_fixed_header(tx.sent[0])
    assert (pt, ssrc) == (LEG.rtx_payload_type, LEG.rtx_ssrc)
    payload = tx.sent[0][offset:]
    assert payload[:2] == lost_seq.to_bytes(2, "big") and payload[2:] == b"lost-one"


def test_nack_without_rtx_resends_the_original() -> None:
    leg = ConsumerLeg(payload_type=101, ssrc=7, mid="0")
    consumer, tx, _, feed = _consumer(leg=leg)
    consumer.on_packet(feed.packet(10, 0, key=True, payload=b"k"))
    first = tx.sent[0]
    assert consumer.on_nack([parse_fixed_header(first)[2]], 10.0) == 1
    assert tx.sent[1] == first


def test_keyframe_requests_go_to_the_producer() -> None:
    consumer, _, keys, _feed = _consumer()
    consumer.on_keyframe_request(5.0)
    assert keys.requests == [5.0]


def test_sender_report_is_translated_into_the_leg_timestamps() -> None:
    feed, tx, keys = Feed(), CapturingTransmitter(), KeyframeLog()
    reports: list[tuple[int, int, int, int]] = []
    consumer = Consumer(
        LEG, tx, feed.history, keys, video=False, sender_report_sink=lambda *a: reports.append(a)
    )
    consumer.on_sender_report(1, 1)  # before start: nothing to translate yet
    consumer.on_packet(feed.packet(1, 48000, payload=b"abcd"))
    out_ts = parse_fixed_header(tx.sent[0])[3]
    consumer.on_sender_report(0x1234_5678_0000_0000, 48000 + 960)
    assert reports == [(0x1234_5678_0000_0000, (out_ts + 960) & 0xFFFFFFFF, 1, 4)]


def test_extensions_carry_this_legs_ids_and_mid() -> None:
    leg = ConsumerLeg(payload_type=111, ssrc=9, mid="12", mid_id=1, audio_level_id=2)
    consumer, tx, _, feed = _consumer(video=False, leg=leg)
    p = feed.packet(1, 0)
    p.audio_level = 30
    consumer.on_packet(p)
    data = tx.sent[0]
    assert data[0] & 0x10 and data[12:14] == b"\xbe\xde"
    words = int.from_bytes(data[14:16], "big")
    block = data[16 : 16 + 4 * words]
    assert block.startswith(bytes([0x20, 30])) and bytes([0x11]) + b"12" in block


def test_resync_after_a_pause_continues_numbering_at_a_keyframe() -> None:
    consumer, tx, keys, feed = _consumer()
    consumer.on_packet(feed.packet(100, 0, key=True))
    consumer.on_packet(feed.packet(101, 3000))
    last_seq = parse_fixed_header(tx.sent[-1])[2]
    last_ts = parse_fixed_header(tx.sent[-1])[3]
    consumer.resync()
    consumer.on_packet(feed.packet(40_101, 90_000 * 300))  # a delta: waits, asks for a keyframe
    assert len(tx.sent) == 2 and keys.requests
    consumer.on_packet(feed.packet(40_102, 90_000 * 300 + 3000, key=True))
    _, _, seq, ts, _, _ = parse_fixed_header(tx.sent[-1])
    assert seq == (last_seq + 1) & 0xFFFF
    assert (ts - last_ts) & 0xFFFFFFFF == 90_000 * 300  # the real pause, in timestamp units
    # A NACK for a packet from before the break is not answered.
    assert consumer.on_nack([last_seq], 10.0) == 0


def test_a_long_outage_is_bridged_without_a_sequence_jump() -> None:
    consumer, tx, _, feed = _consumer(video=False)
    consumer.on_packet(feed.packet(1, 0))
    consumer.on_packet(feed.packet(2, 960))
    consumer.on_packet(feed.packet(20_000, 960 * 20_000))
    seqs = [parse_fixed_header(p)[2] for p in tx.sent]
    assert (seqs[2] - seqs[1]) & 0xFFFF == 1


def test_profile_numbers_are_shared_and_never_reused() -> None:
    # Consumers with one header-extension profile share a packet's extension block under its
    # number; a forgotten profile that comes back gets a new number, never another's.
    first = profile_number(3, 1, b"mid-a")
    assert profile_number(3, 1, b"mid-a") == first
    assert profile_number(3, 2, b"mid-a") != first
    seen = {first}
    for i in range(MAX_PROFILES + 1):
        seen.add(profile_number(4, 1, f"m{i}".encode()))
    again = profile_number(3, 1, b"mid-a")  # pushed out by the thousand since
    assert again not in seen
