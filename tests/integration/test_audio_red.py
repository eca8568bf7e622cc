"""RED from a publisher reaches a subscriber that did not negotiate it as plain Opus.

The publisher is a real aiortc peer whose offer lists ``red/48000/2`` as Chromium's does and whose
Opus packets leave wrapped in RED (RFC 2198), the previous frame carried as a redundant block,
as Chromium sends them once the answer puts RED first. The subscriber is an aiortc client, which
knows no RED: it must get the primary blocks as Opus, on its Opus payload type, and decode the
publisher's tone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, sdp
from aiortc.rtp import RtpPacket

from mcu.codecs.red import RedBlock, pack_red
from mcu.sfu.redsdp import RED_PAYLOAD_TYPE, with_red
from tests.support.room_client import RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess

TONE_HZ = 700.0


class RedSender:
    """Wraps every Opus packet a DTLS transport sends in RED: previous frame, then this one."""

    def __init__(self, transport: Any, opus: int, red: int) -> None:
        self.opus, self.red, self.sent = opus, red, 0
        self._transport = transport
        self._send = transport._send_rtp
        self._previous: tuple[int, bytes] | None = None
        transport._send_rtp = self._send_rtp

    async def _send_rtp(self, data: bytes) -> None:
        extensions = self._transport._rtp_header_extensions_map
        packet = RtpPacket.parse(data, extensions) if len(data) > 12 else None
        if packet is None or packet.payload_type != self.opus:
            await self._send(data)
            return
        blocks = []
        if self._previous is not None and 0 < packet.timestamp - self._previous[0] < 1 << 14:
            blocks.append(
                RedBlock(self.opus, packet.timestamp - self._previous[0], self._previous[1])
            )
        blocks.append(RedBlock(self.opus, 0, packet.payload))
        self._previous = (packet.timestamp, packet.payload)
        packet.payload_type, packet.payload = self.red, pack_red(blocks)
        self.sent += 1
        await self._send(packet.serialize(extensions))


def tone_strength(samples: list[np.ndarray], frequency: float) -> float:
    signal = np.concatenate(samples[-100:])
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    freqs = np.fft.rfftfreq(len(signal), 1 / 48000)
    band = (freqs > frequency - 20) & (freqs < frequency + 20)
    return float(spectrum[band].max() / (np.median(spectrum) + 1e-9))


async def test_red_publisher_is_heard_as_opus_by_a_client_without_red(
    server: ServerProcess,
) -> None:
    await server.create_room("cardio-1", "correct horse")
    listener = await joined_client(server, "listener", password="correct horse")
    speaker = RoomClient(server.ws_url, "speaker")
    await speaker.connect()
    assert (await speaker.join("cardio-1", password="correct horse"))["type"] == "joined"
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        transceiver = pc.addTransceiver(ToneTrack(TONE_HZ), direction="sendonly")
        offer = await pc.createOffer()
        # Offered as Chromium offers it: Opus, then RED over it.
        await pc.setLocalDescription(
            RTCSessionDescription(
                sdp=with_red(offer.sdp, {transceiver.sender._track_id}), type="offer"
            )
        )
        reply = await speaker.request(
            {
                "type": "publish",
                "sdp": pc.localDescription.sdp,
                "tracks": [{"mid": transceiver.mid, "source": "microphone"}],
            }
        )
        assert reply["type"] == "publish_answer", reply
        audio = sdp.SessionDescription.parse(reply["sdp"]).media[0]
        # The answer takes RED and puts it first (so a browser sends RED), over the offer's Opus,
        # whose fmtp asks for in-band FEC and DTX.
        codecs = {c.payloadType: c for c in audio.rtp.codecs}
        assert audio.fmt[0] == RED_PAYLOAD_TYPE, reply["sdp"]
        opus = audio.fmt[1]
        assert codecs[opus].mimeType.lower() == "audio/opus"
        assert codecs[RED_PAYLOAD_TYPE].parameters == {f"{opus}/{opus}": None}
        assert {k: str(v) for k, v in codecs[opus].parameters.items()} == {
            "useinbandfec": "1",
            "usedtx": "1",
        }
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
        red = RedSender(transceiver.sender.transport, opus, RED_PAYLOAD_TYPE)
        speaker_id = speaker.participant_id

        await listener.wait_until(
            lambda: listener.frames_from(speaker_id, "audio") >= 150, timeout=30
        )
        assert red.sent >= 150
        heard = next(t for t in listener.received.values() if t.participant_id == speaker_id)
        assert tone_strength(heard.audio, TONE_HZ) > 50, "the tone did not come through as Opus"
        assert await server.metric('mcu_rtp_packets_discarded_total{reason="malformed_red"}') == 0
        assert await server.decoded_frames() == 0
    finally:
        await pc.close()
        await speaker.close()
        await listener.close()
