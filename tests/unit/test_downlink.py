"""A subscriber's downlink end to end in process: the subscribe offer asks for REMB, a literal
REMB packet sets the connection's estimate, and the ladder thins what a real consumer sends."""

from __future__ import annotations

import asyncio

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    pack_remb_fci,
)

from mcu.media import TrackSource
from mcu.sfu.aiortc_adapter import apply_feedback
from mcu.sfu.consumer import Consumer
from mcu.sfu.downlink import SETTLE_SECONDS, Downlink
from mcu.sfu.ladder import Rung, StreamRate
from mcu.sfu.peer import SubscriberConnection
from mcu.sfu.producer import Producer
from tests.unit.test_layers import LEG, VP8, Capture, Stream, read


def test_the_subscribe_offer_negotiates_remb_and_not_transport_cc() -> None:
    async def offer() -> str:
        connection = SubscriberConnection([], lambda delta: None)
        producer = Producer("t1", "p1", TrackSource.CAMERA, VP8, lambda: None)
        try:
            sdp, _ = await connection.offer([producer])
        finally:
            await connection.close()
        return sdp

    sdp = asyncio.run(offer())
    # Chromium sends REMB only when transport-cc is not negotiated, and estimates the delay it
    # reports from abs-send-time.
    assert "goog-remb" in sdp
    assert "abs-send-time" in sdp
    assert "transport-cc" not in sdp and "transport-wide-cc" not in sdp


def remb(bitrate: int) -> RtcpPacket:
    packet = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=2, media_ssrc=0, fci=pack_remb_fci(bitrate, [LEG.ssrc])
    )
    (parsed,) = RtcpPacket.parse(bytes(packet))
    return parsed


def receiver_report(fraction_lost: int) -> RtcpPacket:
    block = RtcpReceiverInfo(
        ssrc=LEG.ssrc, fraction_lost=fraction_lost, packets_lost=0, highest_sequence=0,
        jitter=0, lsr=0, dlsr=0,
    )  # fmt: skip
    (parsed,) = RtcpPacket.parse(bytes(RtcpRrPacket(ssrc=2, reports=[block])))
    return parsed


def _second_of_video(stream: Stream, now: float) -> None:
    """30 frames of two ~1,100-byte packets (~0.5 Mbit/s), every layer measured."""
    big = b"\x00" * 1100
    for n in range(30):
        for seq in stream.frame_packets(key=n == 0):
            ts, marker, payload = stream.packets[seq]
            stream.producer.on_rtp(seq, ts, marker, payload + big, None, now + n / 30)


def test_a_losing_subscriber_gets_the_base_layer_and_a_clean_one_everything() -> None:
    stream = Stream()  # one publisher; its consumer is the thin subscriber's
    wide_tx = Capture()
    wide = Consumer(LEG, wide_tx, stream.producer.history, stream.producer, video=True)
    stream.producer.add_sink(wide)
    thin_link, wide_link = Downlink(), Downlink()
    stream.consumer.estimate = thin_link.estimate
    wide.estimate = wide_link.estimate
    stream.producer.layer_rates(0.0)
    thin_link.adapt(0.0, [(stream.producer, stream.consumer)], "p1")
    wide_link.adapt(0.0, [(stream.producer, wide)], "p1")
    _second_of_video(stream, 0.0)
    now = 1.0
    # Both report a low REMB (a receiver's REMB only follows what it is sent): that alone
    # thins nothing. The thin site also loses 55 % of what it is sent; the other nothing.
    for consumer in (stream.consumer, wide):
        assert apply_feedback(remb(100_000), consumer, now)
    for _ in range(10):
        assert not apply_feedback(receiver_report(141), stream.consumer, now)
        assert not apply_feedback(receiver_report(0), wide, now)
    assert thin_link.estimate.loss > 0.5 and wide_link.estimate.loss == 0
    # One congested tick is taken for a hiccup; the second in a row thins.
    assert thin_link.adapt(now, [(stream.producer, stream.consumer)], "p1").rung is Rung.FULL
    _second_of_video(stream, now)
    now += 1.0
    thin = thin_link.adapt(now, [(stream.producer, stream.consumer)], "p1")
    full = wide_link.adapt(now, [(stream.producer, wide)], "p1")
    # What reaches the thin site (~300 kbit/s, of ~650 sent) carries the base layer (a quarter
    # of the frames) but not two layers (half of them).
    assert thin.rung is Rung.FEWEST_FRAMES and not thin.short
    assert thin.estimate is not None and 200_000 < thin.estimate < 400_000
    assert full.rung is Rung.FULL and not full.short
    before_thin, before_wide = len(stream.tx.sent), len(wide_tx.sent)
    for _ in range(8):
        for seq in stream.frame_packets():
            stream.send(seq, at=now)
    thin_sent = [read(p) for p in stream.tx.sent[before_thin:]]
    wide_sent = [read(p) for p in wide_tx.sent[before_wide:]]
    assert len(wide_sent) == 16 and {s.tid for s in wide_sent} == {0, 1, 2}
    assert len(thin_sent) == 4 and {s.tid for s in thin_sent} == {0}

    # The loss grows to 90 %: what reaches the site is below even the base layer. With no
    # microphone or content to keep, the last rung sends it nothing.
    # (its REMB falls with it: the queue is still growing).
    assert apply_feedback(remb(20_000), stream.consumer, now)
    for _ in range(10):
        apply_feedback(receiver_report(230), stream.consumer, now)
    now += SETTLE_SECONDS  # the first step's reports have come in
    _second_of_video(stream, now - 1.0)
    thin = thin_link.adapt(now, [(stream.producer, stream.consumer)], "p1")
    assert thin.rung is Rung.AUDIO_CONTENT and not thin.short
    before_thin = len(stream.tx.sent)
    for _ in range(8):
        for seq in stream.frame_packets():
            stream.send(seq, at=now)
    assert len(stream.tx.sent) == before_thin

    # The loss ends: the thin site climbs back, one rung per hold, to everything.
    for _ in range(30):
        apply_feedback(receiver_report(0), stream.consumer, now)
    assert thin_link.estimate.loss < 0.05
    rungs = []
    for tick in range(1, 40):
        rungs.append(thin_link.adapt(now + tick, [(stream.producer, stream.consumer)], "p1").rung)
    assert rungs[-1] is Rung.FULL
    assert rungs.index(Rung.FULL) >= 4 * 5 - 1  # four rungs up (no mix offered), a hold each
    assert Rung.MIXED not in rungs


def _thin_site() -> tuple[Stream, Downlink]:
    """One publisher whose consumer is a subscriber's, with a second of video measured."""
    stream = Stream()
    link = Downlink()
    stream.consumer.estimate = link.estimate
    stream.producer.layer_rates(0.0)
    link.adapt(0.0, [(stream.producer, stream.consumer)], "p1")
    _second_of_video(stream, 0.0)
    return stream, link


def test_random_loss_without_a_growing_queue_thins_nothing() -> None:
    stream, link = _thin_site()
    # 8 % lost at random on a line whose REMB (delay-based) stays well above what it is sent.
    assert apply_feedback(remb(5_000_000), stream.consumer, 1.0)
    for _ in range(10):
        apply_feedback(receiver_report(20), stream.consumer, 1.0)
    assert link.estimate.loss > 0.05
    state = link.adapt(1.0, [(stream.producer, stream.consumer)], "p1")
    assert state.rung is Rung.FULL


def test_one_congestion_episode_is_one_step_until_the_reports_catch_up() -> None:
    stream, link = _thin_site()
    carried = [(stream.producer, stream.consumer)]
    # The queue grows (REMB under what is sent) and overflows (20 % lost).
    assert apply_feedback(remb(100_000), stream.consumer, 1.0)
    for _ in range(10):
        apply_feedback(receiver_report(51), stream.consumer, 1.0)

    def tick(now: float) -> Rung:
        _second_of_video(stream, now - 1.0)
        return link.adapt(now, carried, "p1").rung

    assert link.adapt(1.0, carried, "p1").rung is Rung.FULL  # one tick: a hiccup, maybe
    first = tick(2.0)
    assert first is not Rung.FULL

    # The next ticks send less, but the reports still speak of the old rate: no further step
    # within the settling time.
    assert [tick(3.0), tick(4.0)] == [first, first]
    # Past it, a link still losing that much is fitted again, to what reaches it now.
    assert tick(5.5) > first


def test_while_the_subscriber_itself_speaks_it_keeps_seeing_the_last_speaker() -> None:
    link = Downlink()
    streams = [
        StreamRate(f"t{n}", f"p{n}", TrackSource.CAMERA, (400_000.0, 0.0, 0.0, 0.0))
        for n in (1, 2, 3)
    ]
    assert link._speaker_to_show("p2", streams) == "p2"
    # The subscriber (p9, whose own camera it does not receive) talks: still p2, not p1.
    assert link._speaker_to_show("p9", streams) == "p2"
    assert link._speaker_to_show("p3", streams) == "p3"
    assert link._speaker_to_show(None, streams) == "p3"
