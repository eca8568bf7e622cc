"""A publisher's malformed RTP is dropped; its connection and its other packets carry on.

A real aiortc publisher sends, through its real SRTP session, a packet aiortc's own parser chokes
on; the server's publish connection must stay up and keep forwarding.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy

from mcu.media import TrackSource
from mcu.sfu import aiortc_adapter as adapter
from mcu.sfu.peer import PublisherConnection
from mcu.sfu.producer import Producer
from tests.support.room_client import ToneTrack


async def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


def _nothing() -> None:
    pass


async def test_audio_level_of_the_wrong_size_does_not_end_the_connection() -> None:
    client = RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )
    transceiver = client.addTransceiver(ToneTrack(), direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    server = PublisherConnection([])
    try:
        answer, (section,) = await server.negotiate(
            client.localDescription.sdp, {transceiver.mid or "": TrackSource.MICROPHONE}
        )
        producer = Producer("mic", "p", section.source, section.codec, _nothing)
        server.bind(section, producer)
        await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await _until(lambda: producer.packets_received > 5)

        level_id = next(
            e.id for e in section.transceiver._headerExtensions if e.uri == adapter.AUDIO_LEVEL_URI
        )
        # One-byte extension block holding an audio level two bytes long (RFC 6464 says one):
        # aiortc's parser unpacks it with struct and raises struct.error, not ValueError.
        extension = struct.pack("!HH", 0xBEDE, 1) + bytes((level_id << 4 | 1, 0x7F, 0x7F, 0))
        pt = adapter.payload_type(adapter.negotiated_codecs(section.transceiver)[0])
        # Its own SSRC, so the sender's SRTP replay window does not refuse it.
        header = struct.pack("!BBHII", 0x90, pt, 1, 1, 0x5EED)
        client_dtls = transceiver.sender.transport
        server_dtls = adapter.dtls_transport(section.transceiver)
        for _ in range(3):
            await client_dtls._send_rtp(header + extension + b"\xf8\xff\xfe")

        received = producer.packets_received
        await _until(lambda: producer.packets_received > received + 10)
        assert server_dtls.state == "connected"
    finally:
        await server.close()
        await client.close()
