"""Packets lost on a subscriber's leg are repaired from the server's history (RTX)."""

from __future__ import annotations

from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RtpPacket

from tests.support.room_client import ColourTrack, RoomClient
from tests.support.server import ServerProcess


class LossyLeg:
    """Drops every 7th original video packet arriving at a subscriber, after SRTP.

    This sits where the network would lose the packet; RTX retransmissions pass, so the test can
    check which dropped packets came back.
    """

    def __init__(self, dtls: RTCDtlsTransport, video_pt: int, rtx_pt: int) -> None:
        self.video_pt, self.rtx_pt = video_pt, rtx_pt
        self.dropped: set[int] = set()
        self.recovered: set[int] = set()
        self.count = 0
        self._inner = dtls._handle_rtp_data
        dtls._handle_rtp_data = self._handle  # type: ignore[method-assign]

    async def _handle(self, data: bytes, arrival_time_ms: int) -> None:
        packet = RtpPacket.parse(data)
        if packet.payload_type == self.video_pt:
            self.count += 1
            if self.count % 7 == 0 and len(self.dropped) < 40:
                self.dropped.add(packet.sequence_number)
                return
        elif packet.payload_type == self.rtx_pt and len(packet.payload) > 2:
            self.recovered.add(int.from_bytes(packet.payload[:2], "big"))
        await self._inner(data, arrival_time_ms)


async def test_nacked_packets_are_retransmitted(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    sender, viewer = RoomClient(server.ws_url, "s"), RoomClient(server.ws_url, "v")
    try:
        for c in (sender, viewer):
            await c.connect()
            assert (await c.join("cardio-1", password="correct horse"))["type"] == "joined"
        await sender.publish({"camera": ColourTrack((50, 100, 150), width=640, height=480, fps=15)})
        offer: dict[str, Any] = await viewer.wait_for(lambda m: m["type"] == "subscribe_offer")
        assert offer["tracks"][0]["kind"] == "video"
        assert viewer.subscribe_pc is not None
        await viewer.wait_until(
            lambda: bool(viewer.subscribe_pc and viewer.subscribe_pc.getTransceivers())
        )
        transceiver = viewer.subscribe_pc.getTransceivers()[0]
        await viewer.wait_until(lambda: transceiver.receiver.transport.state == "connected")
        codecs = transceiver._codecs
        video_pt = next(c.payloadType for c in codecs if c.mimeType == "video/VP8")
        rtx_pt = next(c.payloadType for c in codecs if c.mimeType == "video/rtx")
        leg = LossyLeg(transceiver.receiver.transport, video_pt, rtx_pt)

        await viewer.wait_until(lambda: len(leg.dropped) >= 40, timeout=40)
        await viewer.wait_until(lambda: len(leg.recovered & leg.dropped) >= 36, timeout=15)
        assert await server.metric("mcu_retransmissions_total") >= 36
        assert await server.metric("mcu_nacks_received_total") > 0
        before = viewer.frames_from(sender.participant_id or "", "video")
        await viewer.wait_until(
            lambda: viewer.frames_from(sender.participant_id or "", "video") > before + 15
        )
        assert await server.decoded_frames() == 0
    finally:
        await sender.close()
        await viewer.close()
