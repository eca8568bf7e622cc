"""A server that falls behind its ingress sheds video evenly and refuses new viewers.

The server process is stopped (SIGSTOP) while the lecturer goes on sending, exactly what a
starved core does to it: the lecture queues up in the server's receive buffer and, once it runs
again, reaches it late. Nothing here measures time; the stop only makes a backlog.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from dataclasses import dataclass, field

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RtpPacket

from mcu.codecs.inspect import keyframe_detector
from mcu.sfu.shedding import SHED_ABOVE
from tests.support.room_client import ColourTrack, ToneTrack
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer, WhipPublisher, new_pc, post_sdp

PASSWORD = "lecturers-only"
VIEWERS = "for-every-site"
STOPPED_SECONDS = 3 * SHED_ABOVE  # the backlog this makes is well past the shedding bound
H264_KEYFRAME = keyframe_detector("video/H264")


@dataclass
class Capture:
    """Every RTP packet a viewer's transport decrypted: (payload type, sequence, timestamp,
    whether it starts a keyframe), in arrival order."""

    packets: list[tuple[int, int, int, bool]] = field(default_factory=list)

    def tap(self, dtls: RTCDtlsTransport) -> None:
        inner = dtls._handle_rtp_data

        async def handle(data: bytes, arrival_time_ms: int) -> None:
            packet = RtpPacket.parse(data)
            self.packets.append(
                (
                    packet.payload_type,
                    packet.sequence_number,
                    packet.timestamp,
                    H264_KEYFRAME(packet.payload),
                )
            )
            await inner(data, arrival_time_ms)

        dtls._handle_rtp_data = handle  # type: ignore[method-assign]

    def stream(self, payload_type: int) -> list[tuple[int, int, bool]]:
        return [(s, t, k) for pt, s, t, k in self.packets if pt == payload_type]


def _payload_type(viewer: WhepViewer, kind: str, mime_type: str) -> int:
    transceiver = next(t for t in viewer.pc.getTransceivers() if t.kind == kind)
    return next(c.payloadType for c in transceiver._codecs if c.mimeType == mime_type)


def _contiguous(sequences: list[int]) -> bool:
    return all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(sequences))


def _largest_jump(stream: list[tuple[int, int, bool]]) -> tuple[int, bool]:
    """The largest step between consecutive timestamps, and whether the packet after it starts a
    keyframe."""
    steps = [((b[1] - a[1]) & 0xFFFFFFFF, b[2]) for a, b in itertools.pairwise(stream)]
    return max(steps, key=lambda step: step[0])


async def test_behind_the_server_sheds_video_for_everyone_alike_and_refuses_viewers(
    server: ServerProcess,
) -> None:
    await server.create_room(
        "lesson-1", PASSWORD, "Lesson", kind="lecture", viewer_password=VIEWERS
    )
    lecturer = WhipPublisher(server.base_url, "lesson-1", PASSWORD)
    status, body = await lecturer.publish([ToneTrack(), ColourTrack((20, 60, 220))])
    assert status == 201, body
    viewers = [WhepViewer(server.base_url, "lesson-1", VIEWERS) for _ in range(2)]
    captures = [Capture(), Capture()]
    late_pc = new_pc()
    try:
        for viewer, capture in zip(viewers, captures, strict=True):
            status, body = await viewer.play()
            assert status == 201, body
            capture.tap(viewer.pc.getTransceivers()[0].receiver.transport)
        for viewer in viewers:
            await viewer.wait_until(lambda v=viewer: v.frames("video") > 10)  # type: ignore[misc]
        late_pc.addTransceiver("video", direction="recvonly")
        await late_pc.setLocalDescription(await late_pc.createOffer())

        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(STOPPED_SECONDS)  # the lecturer goes on sending meanwhile
            # A viewer arrives while the lecture waits in the server's buffer.
            late = asyncio.create_task(
                post_sdp(f"{server.base_url}/whep/lesson-1", late_pc.localDescription.sdp, VIEWERS)
            )
            await asyncio.sleep(0.2)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        status, body, _ = await late
        assert status == 503 and '"busy"' in body, (status, body)

        frames = [viewer.frames("video") for viewer in viewers]
        for viewer, before in zip(viewers, frames, strict=True):
            await viewer.wait_until(lambda v=viewer, b=before: v.frames("video") > b + 15)  # type: ignore[misc]
        assert await server.metric("mcu_video_frames_shed_total") > 0
        assert await server.metric("mcu_rtp_packets_shed_total") > 0

        jumps = []
        for viewer, capture in zip(viewers, captures, strict=True):
            video = capture.stream(_payload_type(viewer, "video", "video/H264"))
            audio = capture.stream(_payload_type(viewer, "audio", "audio/opus"))
            # Nothing to NACK or conceal: shedding renumbered every stream without a gap ...
            assert _contiguous([s for s, _, _ in video])
            assert _contiguous([s for s, _, _ in audio])
            # ... video skipped frames (15 fps: 6,000 ticks apart) and came back at a keyframe
            jump, at_keyframe = _largest_jump(video)
            assert jump > 2 * 6000 and at_keyframe, (jump, at_keyframe)
            jumps.append(jump)
        # ... the same frames for both viewers: they resumed at the same keyframe.
        assert jumps[0] == jumps[1]
    finally:
        await late_pc.close()
        for viewer in viewers:
            await viewer.stop()
        await lecturer.stop()
