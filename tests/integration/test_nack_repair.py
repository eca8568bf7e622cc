"""Packets lost on a subscriber's leg are repaired from the server's history (RTX)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket, RtpPacket, is_rtcp

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


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """The server without downlink adaptation: the viewers here drop one video packet in seven
    on purpose, which the ladder would rightly answer by thinning them, down to the mix (which
    decodes); this file is about repairing what is lost."""
    process = ServerProcess(tmp_path / "server", ["--no-adapt-downlinks"])
    await process.start()
    try:
        yield process
    finally:
        assert await process.stop() == 0, process.log()[-4000:]


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


class LossyUplink:
    """Loses one original video packet on its way from a publisher, and then the first NACK the
    server sends for it: the network losing a request for repair as it loses anything else.

    Sits in the publisher's aiortc stack, before SRTP on the way out and after it on the way in;
    nothing else is lost.
    """

    def __init__(self, transceiver: Any, video_pt: int, drop_after: int = 30) -> None:
        self.video_pt = video_pt
        self.drop_after = drop_after
        self.count = 0
        self.lost: int | None = None
        "The sequence number of the packet lost."
        self.nacks_for_lost = 0
        "NACKs naming it that reached the publisher's stack (the first one is then lost)."
        self.resent = False
        "Whether the publisher retransmitted it."
        sender = transceiver.sender
        dtls = sender.transport
        self._send_rtp = dtls._send_rtp
        dtls._send_rtp = self._on_send_rtp
        self._handle_rtcp = sender._handle_rtcp_packet
        sender._handle_rtcp_packet = self._on_rtcp

    async def _on_send_rtp(self, data: bytes) -> None:
        if is_rtcp(data):  # the sender's reports go this way too
            await self._send_rtp(data)
            return
        packet = RtpPacket.parse(data)
        if packet.payload_type == self.video_pt:
            self.count += 1
            if self.lost is None and self.count == self.drop_after:
                self.lost = packet.sequence_number
                return
        elif self.lost is not None and packet.payload[:2] == self.lost.to_bytes(2, "big"):
            self.resent = True
        await self._send_rtp(data)

    async def _on_rtcp(self, packet: Any) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            if self.lost is not None and self.lost in packet.lost:
                self.nacks_for_lost += 1
                if self.nacks_for_lost == 1:
                    return
        await self._handle_rtcp(packet)


async def test_a_lost_nack_to_the_publisher_is_sent_again(server: ServerProcess) -> None:
    """A packet lost on the publisher's leg is asked for again until it arrives, even when no
    other packet goes missing meanwhile: one lost NACK (or retransmission) must not leave a hole
    that only the next, unrelated loss would repair."""
    await server.create_room("cardio-1", "correct horse")
    sender = RoomClient(server.ws_url, "s")
    try:
        await sender.connect()
        assert (await sender.join("cardio-1", password="correct horse"))["type"] == "joined"
        await sender.publish({"camera": ColourTrack((50, 100, 150), width=640, height=480, fps=15)})
        assert sender.publish_pc is not None
        transceiver = sender.publish_pc.getTransceivers()[0]
        video_pt = next(c.payloadType for c in transceiver._codecs if c.mimeType == "video/VP8")
        uplink = LossyUplink(transceiver, video_pt)

        await sender.wait_until(lambda: uplink.nacks_for_lost >= 1, timeout=20)
        await sender.wait_until(lambda: uplink.nacks_for_lost >= 2, timeout=10)
        await sender.wait_until(lambda: uplink.resent, timeout=10)
        assert await server.metric("mcu_rtx_packets_received_total") >= 1
    finally:
        await sender.close()
