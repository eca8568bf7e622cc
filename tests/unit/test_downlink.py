"""A subscriber's downlink end to end in process: the subscribe offer asks for REMB, a literal
REMB packet sets the connection's estimate, and the ladder thins what a real consumer sends."""

from __future__ import annotations

import asyncio

from aiortc.rtp import RTCP_PSFB_APP, RtcpPacket, RtcpPsfbPacket, pack_remb_fci

from mcu.media import TrackSource
from mcu.sfu.aiortc_adapter import apply_feedback
from mcu.sfu.consumer import Consumer
from mcu.sfu.downlink import Downlink
from mcu.sfu.ladder import Rung
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


def test_a_thin_subscriber_gets_the_base_layer_and_a_wide_one_everything() -> None:
    stream = Stream()  # one publisher; its consumer is the thin subscriber's
    wide_tx = Capture()
    wide = Consumer(LEG, wide_tx, stream.producer.history, stream.producer, video=True)
    stream.producer.add_sink(wide)
    thin_link, wide_link = Downlink(), Downlink()
    stream.consumer.estimate = thin_link.estimate
    wide.estimate = wide_link.estimate
    assert apply_feedback(remb(8_000_000), wide, 0.0)
    # A second of 30 frames of two ~1,100-byte packets: ~0.5 Mbit/s, every layer measured.
    big = b"\x00" * 1100
    now = 0.0
    stream.producer.layer_rates(now)
    for n in range(30):
        for seq in stream.frame_packets(key=n == 0):
            ts, marker, payload = stream.packets[seq]
            stream.producer.on_rtp(seq, ts, marker, payload + big, None, now)
    now = 1.0
    # The thin site's REMB: 100 kbit/s, below even what the base layer needs.
    assert apply_feedback(remb(100_000), stream.consumer, now)
    assert thin_link.estimate.bitrate == 100_000
    thin = thin_link.adapt(now, [(stream.producer, stream.consumer)], "p1")
    full = wide_link.adapt(now, [(stream.producer, wide)], "p1")
    # The only camera is the speaker's: at the lowest rung it stays, at its base layer.
    assert thin.rung is Rung.SPEAKER_ONLY and thin.short
    assert full.rung is Rung.FULL and not full.short
    before_thin, before_wide = len(stream.tx.sent), len(wide_tx.sent)
    for _ in range(8):
        for seq in stream.frame_packets():
            stream.send(seq, at=now)
    thin_sent = [read(p) for p in stream.tx.sent[before_thin:]]
    wide_sent = [read(p) for p in wide_tx.sent[before_wide:]]
    assert len(wide_sent) == 16 and {s.tid for s in wide_sent} == {0, 1, 2}
    assert len(thin_sent) == 4 and {s.tid for s in thin_sent} == {0}
